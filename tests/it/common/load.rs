//! A bounded load run through Meridian: concurrent clients sending POSTs, every outcome
//! recorded with its timing, status and serving region.

use super::{client, Meridian};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One client request of a load run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Start and end, from the start of the run.
    pub start: Duration,
    pub took: Duration,
    /// 0 when the client got no HTTP answer at all.
    pub status: u16,
    pub region: Option<String>,
}

/// `workers` clients, each sending POSTs back to back with `gap` between the end of one
/// and the start of the next, for `run` (and at most `max` requests in all).
pub struct Load {
    pub workers: usize,
    pub gap: Duration,
    pub run: Duration,
    pub max: usize,
    pub headers: &'static [(&'static str, &'static str)],
    /// A new connection for every request (no client keep-alive).
    pub fresh_connections: bool,
}

impl Load {
    /// Eight clients, 10 ms apart, for `run`.
    pub fn for_(run: Duration) -> Load {
        Load {
            workers: 8,
            gap: Duration::from_millis(10),
            run,
            max: 5_000,
            headers: &[],
            fresh_connections: false,
        }
    }
}

/// Runs `l` against `m`; `event` fires once at `event_at`. Returns the outcomes by start
/// time and when the event began and ended.
pub async fn load(
    m: &Meridian,
    l: Load,
    event_at: Duration,
    event: impl std::future::Future<Output = ()>,
) -> (Vec<Outcome>, Duration, Duration) {
    let Load {
        workers,
        gap,
        run,
        max,
        headers,
        fresh_connections,
    } = l;
    let t0 = Instant::now();
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let client = if fresh_connections {
        reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client")
    } else {
        client()
    };
    let url = m.url("/v1/inference");
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (client, url, sent) = (client.clone(), url.clone(), Arc::clone(&sent));
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            while t0.elapsed() < run
                && sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < max
            {
                let start = t0.elapsed();
                let mut req = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .timeout(Duration::from_secs(10))
                    .body(r#"{"prompt":"chaos","max_tokens":1}"#);
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                let (status, region) = match req.send().await {
                    Ok(resp) => {
                        let region = resp
                            .headers()
                            .get("x-meridian-region")
                            .and_then(|v| v.to_str().ok())
                            .map(String::from);
                        let status = resp.status().as_u16();
                        let _ = resp.bytes().await;
                        (status, region)
                    }
                    Err(_) => (0, None),
                };
                out.push(Outcome {
                    start,
                    took: t0.elapsed() - start,
                    status,
                    region,
                });
                tokio::time::sleep(gap).await;
            }
            out
        }));
    }
    tokio::time::sleep_until((t0 + event_at).into()).await;
    let event_began = t0.elapsed();
    event.await;
    let event_done = t0.elapsed();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("load worker"));
    }
    all.sort_by_key(|o| o.start);
    (all, event_began, event_done)
}

/// The requests that did not get a 200.
pub fn failures(outcomes: &[Outcome]) -> Vec<&Outcome> {
    outcomes.iter().filter(|o| o.status != 200).collect()
}
