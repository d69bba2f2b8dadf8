//! perf-bench: one reproducible run of Meridian against direct, nginx, HAProxy, bare
//! Pingora, vllm-router and LiteLLM proxy on this machine, on loopback, written to
//! `bench/RESULTS.md`. `bench/run.sh` installs the tools, builds, and runs this.

mod cli;
mod conns;
mod http2;
mod instr;
mod load;
mod nginx;
mod procs;
mod report;
mod request;
mod stream;
mod systems;
mod upstream;

use clap::Parser;
use report::Report;
use std::time::Duration;
use systems::{Kind, Running, Setup};

#[tokio::main]
async fn main() {
    let opts = cli::Opts::parse().effective();
    if let Err(e) = opts.check() {
        eprintln!("perf-bench: {e}");
        std::process::exit(2);
    }
    match run(&opts).await {
        Ok(report) => {
            let text = report.markdown(&opts);
            // A run of some phases only updates their sections of an existing file.
            let written = match std::fs::read_to_string(&opts.out) {
                Ok(old) if !opts.only.is_empty() => {
                    report::merge(&old, &text, &report::owned(&opts, &text))
                }
                _ => text.clone(),
            };
            if let Err(e) = std::fs::write(&opts.out, &written) {
                eprintln!("perf-bench: cannot write {}: {e}", opts.out.display());
                std::process::exit(1);
            }
            println!("{text}");
            eprintln!("perf-bench: results written to {}", opts.out.display());
            if !report.problems.is_empty() {
                eprintln!("perf-bench: {} problem(s):", report.problems.len());
                for p in &report.problems {
                    eprintln!("  - {p}");
                }
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("perf-bench: {e}");
            std::process::exit(1);
        }
    }
}

/// The systems to run. A smoke run without `--systems` takes those already installed and
/// names the others (it installs nothing); a full run takes all, so a missing one is a
/// problem. Returns them and a line for each system left out.
fn selected(opts: &cli::Opts, setup: &Setup) -> Result<(Vec<Kind>, Vec<String>), String> {
    if opts.systems.is_empty() {
        if !opts.smoke {
            return Ok((Kind::ALL.to_vec(), Vec::new()));
        }
        let (kinds, missing): (Vec<Kind>, Vec<Kind>) =
            Kind::ALL.into_iter().partition(|k| k.installed(setup));
        let skipped = missing
            .into_iter()
            .map(|k| {
                let program = k.program(setup).unwrap_or_default();
                format!("{}: {} not installed", k.name(), program.display())
            })
            .collect();
        return Ok((kinds, skipped));
    }
    let mut kinds: Vec<Kind> = opts
        .systems
        .iter()
        .map(|s| Kind::parse(s).ok_or_else(|| format!("unknown system {s:?}")))
        .collect::<Result<_, _>>()?;
    // Direct is the floor every added figure is measured from.
    if !kinds.contains(&Kind::Direct) {
        kinds.insert(0, Kind::Direct);
    }
    Ok((kinds, Vec::new()))
}

/// The wait before memory is read, after the systems start and after the idle connections
/// open: a second, a fifth of it in a smoke (its figures are not judged).
fn pause(opts: &cli::Opts) -> Duration {
    Duration::from_millis(if opts.smoke { 200 } else { 1000 })
}

/// Raises the open-file limit to the hard limit and returns it.
fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on our own process with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    lim.rlim_cur.min(1 << 20)
}

async fn run(opts: &cli::Opts) -> Result<Report, String> {
    let fd_limit = raise_fd_limit();
    let dir = std::env::temp_dir().join(format!("perf-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let setup = Setup {
        dir: dir.clone(),
        bin_dir: opts.bin_dir.clone(),
        litellm: opts.litellm.clone(),
        vllm_router: opts.vllm_router.clone(),
        threads: opts.threads,
        fd_limit,
        meridian_default: opts.meridian_config.clone(),
    };
    let (kinds, skipped) = selected(opts, &setup)?;
    let mut report = Report::new(&kinds);
    for s in skipped {
        report.skip(s);
    }
    let script = dir.join("request.lua");
    std::fs::write(&script, request::wrk_script()).map_err(|e| e.to_string())?;
    report.fd_limit = fd_limit;

    // Each phase's seconds go to stderr as it ends, so a slow one can be found in a CI log.
    let mut clock = Clock::start();
    // Request cost: every system in front of the fixed-answer nginx.
    let (upstream, addrs) = upstream::fixed(&dir, fd_limit).await?;
    let mut running = Vec::new();
    for &k in &kinds {
        eprintln!("perf-bench: starting {}", k.name());
        match systems::start(k, &setup, &addrs, "fixed").await {
            Ok(r) => running.push(r),
            Err(e) => report.problem(k, e),
        }
    }
    tokio::time::sleep(pause(opts)).await;
    for r in &running {
        report.get(r.kind).rss_idle_kib = r.proc.as_ref().map(|p| p.usage().rss_kib);
    }
    clock.lap("start-up");
    if opts.runs("throughput") {
        throughput(opts, &running, &script, &mut report).await;
        clock.lap("throughput");
    }
    if opts.runs("latency") {
        if systems::found(std::path::Path::new("oha")) || !opts.smoke {
            latency(opts, &running, &mut report).await;
        } else {
            report.skip("latency phase: oha not installed".to_string());
        }
        clock.lap("latency");
    }
    // Before the idle-connection phase, whose buffers the allocator keeps afterwards.
    if opts.runs("soak") {
        soak(opts, &running, &script, &mut report).await;
        clock.lap("soak");
    }
    if opts.runs("memory") {
        memory(opts, &running, &mut report).await;
        clock.lap("memory");
    }
    drop(running);
    if opts.runs("instructions") {
        instructions(opts, &setup, &kinds, &addrs, &mut report).await;
        clock.lap("instructions");
    }
    if opts.runs("instructions-models") {
        instructions_models(opts, &setup, &kinds, &mut report).await;
        clock.lap("instructions-models");
    }
    if opts.runs("instructions-affinity") {
        instructions_affinity(opts, &setup, &kinds, &mut report).await;
        clock.lap("instructions-affinity");
    }
    if opts.runs("instructions-streams") {
        instructions_streams(opts, &setup, &kinds, &mut report).await;
        clock.lap("instructions-streams");
    }
    if opts.runs("http2") {
        http2(opts, &setup, &kinds, &mut report).await;
        clock.lap("http2");
    }
    drop(upstream);
    if !opts.runs("streaming") {
        report.selection = report::read_criterion(&opts.criterion);
        return Ok(report);
    }

    // Streaming: every system in front of mock regions streaming tokens.
    let regions = upstream::streaming(1).await?;
    let addrs: Vec<_> = regions.iter().map(|r| r.addr()).collect();
    for &k in &kinds {
        eprintln!("perf-bench: streaming through {}", k.name());
        let r = match systems::start(k, &setup, &addrs, "stream").await {
            Ok(r) => r,
            Err(e) => {
                report.problem(k, e);
                continue;
            }
        };
        // One warm-up stream so connection set-up is not in the figures.
        stream::measure(r.addr, 1, opts.tokens, 1).await;
        let s = stream::measure(r.addr, opts.streams, opts.tokens, 4).await;
        if s.failed > 0 {
            report.problem(k, format!("{} of {} streams failed", s.failed, s.streams));
        }
        report.get(k).stream = Some(s);
    }
    clock.lap("streaming");
    report.selection = report::read_criterion(&opts.criterion);
    // Kept when something went wrong: the logs the problems point to are there.
    if report.problems.is_empty() && !opts.keep {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("perf-bench: working folder kept: {}", dir.display());
    }
    Ok(report)
}

/// Seconds per phase, printed as each ends.
struct Clock {
    begun: std::time::Instant,
    last: std::time::Instant,
}

impl Clock {
    fn start() -> Self {
        let now = std::time::Instant::now();
        Clock {
            begun: now,
            last: now,
        }
    }

    fn lap(&mut self, phase: &str) {
        let now = std::time::Instant::now();
        eprintln!(
            "perf-bench: {phase} took {:.1} s ({:.1} s in all)",
            (now - self.last).as_secs_f64(),
            (now - self.begun).as_secs_f64()
        );
        self.last = now;
    }
}

/// Rounds of wrk at fixed concurrency; the order rotates each round so drift cancels.
async fn throughput(
    opts: &cli::Opts,
    running: &[Running],
    script: &std::path::Path,
    report: &mut Report,
) {
    for r in running {
        // Warm-up: connection pools, caches, LiteLLM's first-request work. A smoke's is
        // one request on each connection (wrk's shortest run is a second, as its round).
        if opts.smoke {
            let raw = std::sync::Arc::new(request::raw(r.addr));
            let n = u64::from(opts.connections);
            let limit = Duration::from_secs(60);
            let _ = load::fixed_count(r.addr, raw, n, opts.connections, limit, None).await;
        } else {
            let _ = load::wrk(r.addr, opts.connections, 1, script);
        }
    }
    for round in 0..opts.rounds as usize {
        for i in 0..running.len() {
            let r = &running[(i + round) % running.len()];
            load::settle(opts).await;
            let before = r.proc.as_ref().map(|p| p.usage());
            let t = match load::wrk(r.addr, opts.connections, opts.duration, script) {
                Ok(t) => t,
                Err(e) => {
                    report.problem(r.kind, e);
                    continue;
                }
            };
            let after = r.proc.as_ref().map(|p| p.usage());
            let cpu_us = match (before, after) {
                (Some(b), Some(a)) => Some((a.cpu_s - b.cpu_s) * 1e6 / t.requests as f64),
                _ => None,
            };
            eprintln!(
                "perf-bench: round {} {}: {:.0} req/s, {} µs CPU/req, {} errors",
                round + 1,
                r.kind.name(),
                t.per_s,
                cpu_us.map_or("-".into(), |c| format!("{c:.1}")),
                t.errors
            );
            if t.errors > 0 {
                report.problem(r.kind, format!("{} errors under wrk", t.errors));
            }
            report.get(r.kind).runs.push((t, cpu_us));
        }
    }
}

/// Each system right after a run straight to the upstream at the same rate, so drift
/// between the two cancels in the added figure; then Meridian and the AI gateways at a rate
/// LiteLLM keeps up with.
async fn latency(opts: &cli::Opts, running: &[Running], report: &mut Report) {
    let Some(direct) = running.iter().find(|r| r.kind == Kind::Direct) else {
        return;
    };
    let measure = |r: &Running, rate: u32| {
        let l = load::oha(r.addr, rate, opts.rate_duration, 8);
        if let Ok(l) = &l {
            eprintln!(
                "perf-bench: {} at {rate} req/s: p50 {:.3} ms, p99 {:.3} ms",
                r.kind.name(),
                l.p50_ms,
                l.p99_ms
            );
        }
        l
    };
    for r in running.iter().filter(|r| r.kind != Kind::Direct) {
        let rates: &[u32] = match r.kind {
            Kind::Litellm => &[opts.gateway_rate],
            Kind::Meridian | Kind::VllmRouter => &[opts.rate, opts.gateway_rate],
            _ => &[opts.rate],
        };
        for &rate in rates {
            load::settle(opts).await;
            let pair = (measure(direct, rate), measure(r, rate));
            match pair {
                (Ok(d), Ok(l)) => {
                    if l.errors > 0 {
                        report.problem(r.kind, format!("{} errors at {rate} req/s", l.errors));
                    }
                    report.get(r.kind).latency.push(report::LatencyRun {
                        rate,
                        direct: d,
                        system: l,
                    });
                }
                (Err(e), _) | (_, Err(e)) => report.problem(r.kind, e),
            }
        }
    }
}

/// Bare Pingora and Meridian under callgrind, one after the other, in front of the same
/// fixed-answer upstream: instructions per request over the whole process.
async fn instructions(
    opts: &cli::Opts,
    setup: &Setup,
    kinds: &[Kind],
    upstreams: &[std::net::SocketAddr],
    report: &mut Report,
) {
    let wanted: Vec<Kind> = [Kind::PingoraRr, Kind::Meridian]
        .into_iter()
        .filter(|k| kinds.contains(k))
        .collect();
    if wanted.is_empty() {
        return;
    }
    if !valgrind_found(opts, "instructions", report) {
        return;
    }
    for k in wanted {
        eprintln!(
            "perf-bench: counting {}'s instructions under callgrind",
            k.name()
        );
        match instr::measure(k, setup, upstreams, opts).await {
            Ok(runs) => report.instructions.push((k, runs)),
            Err(e) => report.problem(k, e),
        }
    }
}

/// Whether valgrind is there for `phase`; if not, a smoke run skips the phase and a full
/// run reports it as a problem.
fn valgrind_found(opts: &cli::Opts, phase: &str, report: &mut Report) -> bool {
    if systems::found(&opts.valgrind) {
        return true;
    }
    let what = format!("{phase} phase: {} not installed", opts.valgrind.display());
    if opts.smoke {
        report.skip(what);
    } else {
        report.problems.push(what);
    }
    false
}

/// Meridian under callgrind without and with models, on chat bodies of each size, in front
/// of mock regions that read every body: what routing by model costs per request.
async fn instructions_models(opts: &cli::Opts, setup: &Setup, kinds: &[Kind], report: &mut Report) {
    if !kinds.contains(&Kind::Meridian) {
        return;
    }
    if !valgrind_found(opts, "instructions-models", report) {
        return;
    }
    eprintln!("perf-bench: counting Meridian's instructions without and with models by body size");
    match instr::measure_models(setup, opts).await {
        Ok(m) => report.model_routing = Some(m),
        Err(e) => report.problem(Kind::Meridian, e),
    }
}

/// Meridian under callgrind with prompt-cache affinity off and on, without and with models,
/// on 1 KiB chat completions all with one key: what a key already in the table costs per
/// request, from the prompt prefix and from the session header.
async fn instructions_affinity(
    opts: &cli::Opts,
    setup: &Setup,
    kinds: &[Kind],
    report: &mut Report,
) {
    if !kinds.contains(&Kind::Meridian) {
        return;
    }
    if !valgrind_found(opts, "instructions-affinity", report) {
        return;
    }
    if opts.smoke {
        report.skip(format!(
            "instructions-affinity phase: {} of its {} configurations (two processes under \
             callgrind keep the smoke short; the full run measures all)",
            instr::AffinityCase::ALL.len() - instr::AffinityCase::SMOKE.len(),
            instr::AffinityCase::ALL.len()
        ));
    }
    eprintln!("perf-bench: counting Meridian's instructions with affinity off and on");
    match instr::measure_affinity(setup, opts).await {
        Ok(a) => report.affinity = Some(a),
        Err(e) => report.problem(Kind::Meridian, e),
    }
}

/// Meridian under callgrind on 1 KiB chat completions answered whole, streamed, and
/// streamed with the usage chunk, at each token count: what usage accounting costs per
/// request and per streamed chunk.
async fn instructions_streams(
    opts: &cli::Opts,
    setup: &Setup,
    kinds: &[Kind],
    report: &mut Report,
) {
    if !kinds.contains(&Kind::Meridian) {
        return;
    }
    if !valgrind_found(opts, "instructions-streams", report) {
        return;
    }
    eprintln!("perf-bench: counting Meridian's instructions on streamed and whole answers");
    match instr::measure_streams(setup, opts).await {
        Ok(s) => report.stream_accounting = Some(s),
        Err(e) => report.problem(Kind::Meridian, e),
    }
}

/// Meridian and bare Pingora with h2c on their listener, in front of mock regions reached
/// over HTTP/1.1 and over h2c, each loaded by oha over HTTP/1.1 and over h2c; then the
/// same under callgrind.
async fn http2(opts: &cli::Opts, setup: &Setup, kinds: &[Kind], report: &mut Report) {
    if !kinds
        .iter()
        .any(|k| matches!(k, Kind::Meridian | Kind::PingoraRr))
    {
        return;
    }
    let missing = |program: &std::path::Path, report: &mut Report, what: String| {
        if systems::found(program) {
            return false;
        }
        if opts.smoke {
            report.skip(what);
        } else {
            report.problems.push(what);
        }
        true
    };
    if missing(
        std::path::Path::new("oha"),
        report,
        "http2 phase: oha not installed".into(),
    ) {
        return;
    }
    let counted = !missing(
        &opts.valgrind,
        report,
        format!(
            "http2 phase's instruction counts: {} not installed",
            opts.valgrind.display()
        ),
    );
    let regions = match upstream::instant().await {
        Ok(r) => r,
        Err(e) => {
            report.problems.push(format!("http2 phase: {e}"));
            return;
        }
    };
    let addrs: Vec<_> = regions.iter().map(|r| r.addr()).collect();
    let mut problems = Vec::new();
    let r = http2::measure(opts, setup, kinds, &addrs, counted, &mut problems).await;
    drop(regions);
    for p in problems {
        eprintln!("perf-bench: {p}");
        report.problems.push(p);
    }
    report.http2 = Some(r);
}

async fn memory(opts: &cli::Opts, running: &[Running], report: &mut Report) {
    for r in running {
        let Some(p) = &r.proc else { continue };
        load::settle(opts).await;
        let before = p.usage().rss_kib;
        let n = opts
            .idle_connections
            .min(r.max_clients.unwrap_or(usize::MAX));
        let (conns, failed) = conns::open(r.addr, n, Duration::from_secs(180)).await;
        tokio::time::sleep(pause(opts)).await;
        let with = p.usage().rss_kib;
        eprintln!(
            "perf-bench: {} with {} idle connections: {} -> {} KiB",
            r.kind.name(),
            conns.len(),
            before,
            with
        );
        if failed > 0 {
            report.problem(
                r.kind,
                format!(
                    "{failed} of {} idle connections failed",
                    opts.idle_connections
                ),
            );
        }
        let m = report.get(r.kind);
        m.rss_before_conns_kib = Some(before);
        m.rss_with_conns_kib = Some(with);
        m.conns_open = conns.len();
        drop(conns);
    }
}

/// Meridian under sustained load, its memory read after each segment.
async fn soak(
    opts: &cli::Opts,
    running: &[Running],
    script: &std::path::Path,
    report: &mut Report,
) {
    let Some(r) = running.iter().find(|r| r.kind == Kind::Meridian) else {
        return;
    };
    let Some(p) = &r.proc else { return };
    let segments = 6u64;
    let secs = (opts.soak / segments).max(1);
    let mut samples = Vec::new();
    let mut requests = 0;
    for _ in 0..segments {
        match load::wrk(r.addr, opts.connections, secs, script) {
            Ok(t) => requests += t.requests,
            Err(e) => {
                report.problem(r.kind, e);
                return;
            }
        }
        samples.push(p.usage().rss_kib);
    }
    report.soak = Some(report::Soak {
        seconds: secs * segments,
        requests,
        rss_kib: samples,
    });
}
