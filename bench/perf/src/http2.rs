//! HTTP/2 next to HTTP/1.1: Meridian and bare Pingora with their plain listener taking
//! h2c beside HTTP/1.1, in front of the same mock regions reached over HTTP/1.1 or over
//! HTTP/2 (h2c), loaded by the same client (oha) over each protocol with the same
//! request. Request rate and proxy CPU from `/proc`, then instructions per request under
//! callgrind.

use crate::cli::Opts;
use crate::load::{self, Amount, OhaClient, Throughput};
use crate::systems::{self, Http2, Kind, Running, Setup};
use std::net::SocketAddr;
use std::time::Duration;

/// One proxy configuration measured with one client.
pub struct Case {
    pub kind: Kind,
    /// HTTP/2 to the upstream (`protocol: h2`, `--upstream-h2`).
    pub upstream_h2: bool,
    pub client: OhaClient,
    /// Each round's oha run and the proxy's CPU µs per request over it.
    pub runs: Vec<(Throughput, Option<f64>)>,
    /// Instructions per request, one per callgrind run.
    pub instructions: Vec<f64>,
}

pub struct Http2Results {
    pub cases: Vec<Case>,
    /// Requests before the counted runs and per counted run, per client.
    pub instr_warmup: u64,
    pub instr_requests: u64,
    /// Whether the callgrind part ran (valgrind found).
    pub counted: bool,
}

/// The clients: HTTP/1.1 on `connections` connections, h2c on as many with one stream
/// each (the same concurrency, one request at a time per connection), and h2c multiplexed,
/// a tenth of the connections with ten streams each (the same requests in flight).
pub fn clients(connections: u32) -> [OhaClient; 3] {
    let connections = connections.max(1);
    [
        OhaClient {
            http2: false,
            connections,
            parallel: 1,
        },
        OhaClient {
            http2: true,
            connections,
            parallel: 1,
        },
        OhaClient {
            http2: true,
            connections: (connections / 10).max(1),
            parallel: 10,
        },
    ]
}

/// The proxy configurations: each of `kinds` (Meridian, bare Pingora) with h2c on its
/// listener, once over HTTP/1.1 to the upstream and once over h2c.
fn configs(kinds: &[Kind]) -> Vec<(Kind, Http2)> {
    let mut out = Vec::new();
    for k in [Kind::PingoraRr, Kind::Meridian] {
        if !kinds.contains(&k) {
            continue;
        }
        for upstream in [false, true] {
            out.push((
                k,
                Http2 {
                    h2c: true,
                    upstream,
                },
            ));
        }
    }
    out
}

/// oha off the runtime's threads: the mock regions answering it run on them.
async fn oha(
    addr: SocketAddr,
    c: OhaClient,
    amount: Amount,
    limit: Duration,
) -> Result<Throughput, String> {
    tokio::task::spawn_blocking(move || load::oha_load(addr, c, amount, limit))
        .await
        .map_err(|e| e.to_string())?
}

/// Runs the phase in front of `upstreams` (each speaking HTTP/1.1 and h2c). Problems go
/// to `problems`.
pub async fn measure(
    opts: &Opts,
    setup: &Setup,
    kinds: &[Kind],
    upstreams: &[SocketAddr],
    counted: bool,
    problems: &mut Vec<String>,
) -> Http2Results {
    let mut cases = Vec::new();
    let load_clients = clients(opts.connections);
    let mut running: Vec<(Running, Http2)> = Vec::new();
    for (k, h) in configs(kinds) {
        let up = if h.upstream { "h2" } else { "http1" };
        eprintln!(
            "perf-bench: starting {} with h2c, upstream over {up}",
            k.name()
        );
        match systems::start_http2(k, setup, upstreams, &format!("http2-up-{up}"), &[], h).await {
            Ok(r) => running.push((r, h)),
            Err(e) => problems.push(format!("{} (upstream {up}): {e}", k.name())),
        }
    }
    for (r, h) in &running {
        for c in load_clients {
            // Warm-up: connections to the upstream, caches; a failure is reported below. A
            // smoke's is two requests per connection instead of a second.
            let warmup = if opts.smoke {
                Amount::Requests(u64::from(c.connections) * 2)
            } else {
                Amount::Secs(1)
            };
            let _ = oha(r.addr, c, warmup, Duration::from_secs(40)).await;
            cases.push(Case {
                kind: r.kind,
                upstream_h2: h.upstream,
                client: c,
                runs: Vec::new(),
                instructions: Vec::new(),
            });
        }
    }
    // Rounds over every configuration and client, the order rotating so drift cancels.
    let pairs: Vec<(usize, usize)> = (0..running.len())
        .flat_map(|i| (0..load_clients.len()).map(move |j| (i, j)))
        .collect();
    for round in 0..opts.rounds as usize {
        for p in 0..pairs.len() {
            let (i, j) = pairs[(p + round) % pairs.len()];
            let (r, _) = &running[i];
            let c = load_clients[j];
            let case = &mut cases[i * load_clients.len() + j];
            load::settle(opts).await;
            let before = r.proc.as_ref().map(|p| p.usage());
            let limit = Duration::from_secs(opts.duration + 40);
            let t = match oha(r.addr, c, Amount::Secs(opts.duration), limit).await {
                Ok(t) => t,
                Err(e) => {
                    problems.push(format!("{}: {e}", r.kind.name()));
                    continue;
                }
            };
            let after = r.proc.as_ref().map(|p| p.usage());
            let cpu_us = match (before, after) {
                (Some(b), Some(a)) if t.requests > 0 => {
                    Some((a.cpu_s - b.cpu_s) * 1e6 / t.requests as f64)
                }
                _ => None,
            };
            eprintln!(
                "perf-bench: http2 round {} {} (upstream {}), {}: {:.0} req/s, {} µs CPU/req, {} errors",
                round + 1,
                r.kind.name(),
                if case.upstream_h2 { "h2" } else { "http1" },
                c.label(),
                t.per_s,
                cpu_us.map_or("-".into(), |c| format!("{c:.1}")),
                t.errors
            );
            if t.errors > 0 {
                problems.push(format!(
                    "{}: {} errors under oha {}",
                    r.kind.name(),
                    t.errors,
                    c.label()
                ));
            }
            case.runs.push((t, cpu_us));
        }
    }
    drop(running);
    let warmup = (opts.h2_instr_requests / 10).max(10);
    if counted {
        let instr_clients = clients(crate::instr::CONNECTIONS);
        for (k, h) in configs(kinds) {
            eprintln!(
                "perf-bench: counting {}'s instructions over HTTP/1.1 and h2c (upstream {})",
                k.name(),
                if h.upstream { "h2" } else { "http1" }
            );
            let runs = crate::instr::measure_http2(
                k,
                setup,
                upstreams,
                h,
                &instr_clients,
                (warmup, opts.h2_instr_requests),
                opts,
            )
            .await;
            match runs {
                Ok(runs) => {
                    for (c, r) in instr_clients.iter().zip(runs) {
                        let case = cases.iter_mut().find(|x| {
                            x.kind == k
                                && x.upstream_h2 == h.upstream
                                && x.client.http2 == c.http2
                                && x.client.parallel == c.parallel
                        });
                        match case {
                            Some(case) => case.instructions = r,
                            None => cases.push(Case {
                                kind: k,
                                upstream_h2: h.upstream,
                                client: *c,
                                runs: Vec::new(),
                                instructions: r,
                            }),
                        }
                    }
                }
                Err(e) => problems.push(format!("{} under callgrind: {e}", k.name())),
            }
        }
    }
    Http2Results {
        cases,
        instr_warmup: warmup,
        instr_requests: opts.h2_instr_requests,
        counted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_keep_the_requests_in_flight() {
        let [h1, h2, mux] = clients(50);
        assert_eq!((h1.http2, h1.connections), (false, 50));
        assert_eq!((h2.http2, h2.connections, h2.parallel), (true, 50, 1));
        assert_eq!((mux.http2, mux.connections, mux.parallel), (true, 5, 10));
        assert_eq!(clients(5)[2].connections, 1);
    }

    #[test]
    fn both_proxies_over_both_upstream_protocols() {
        let c = configs(&[Kind::Direct, Kind::Meridian, Kind::PingoraRr]);
        assert_eq!(c.len(), 4);
        assert!(c.iter().all(|(_, h)| h.h2c));
        assert_eq!(configs(&[Kind::Meridian]).len(), 2);
        assert!(configs(&[Kind::Nginx]).is_empty());
    }
}
