//! Instructions per request, counted by callgrind over the whole proxy process: the same
//! figure for the same binary and requests however busy the machine is, where CPU time
//! from `/proc` moves with the other core's load.

use crate::cli::Opts;
use crate::request::Answer;
use crate::systems::{self, Affinity, Kind, Models, Running, Setup, Variant};
use crate::{load, request, upstream};
use mock_regions::MockRegion;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod affinity;
pub use affinity::{
    measure_affinity, AffinityCost, Case as AffinityCase, AFFINITY_CONNECTIONS, AFFINITY_KIB,
    SESSION_HEADER,
};

/// Connections the fixed-count client keeps busy, as in bench/profile/README.md.
pub const CONNECTIONS: u32 = 10;

/// `kind` under callgrind in front of `upstreams`: warmed up, then `opts.instr_runs` runs of
/// `opts.instr_requests` requests, each on counters zeroed just before it. Returns the
/// instructions per request of each run.
pub async fn measure(
    kind: Kind,
    setup: &Setup,
    upstreams: &[SocketAddr],
    opts: &Opts,
) -> Result<Vec<f64>, String> {
    let dir = setup.dir.join(format!("{}-callgrind", kind.name()));
    let wrapper = wrapper(&dir, opts)?;
    let r = systems::start_wrapped(kind, setup, upstreams, "callgrind", &wrapper).await?;
    let mut cg = Callgrind::new(r, dir, kind.name().to_string(), opts)?;
    let raw = Arc::new(request::raw(cg.r.addr));
    cg.count(raw, opts.instr_warmup, opts.instr_requests, 1, opts)
        .await
}

/// `kind` (Meridian or bare Pingora) with `h2` under callgrind in front of `upstreams`;
/// for each of `clients` in turn (oha, HTTP/1.1 or h2c), `warmup` requests then
/// `opts.instr_runs` runs of `n`. Returns each client's instructions per request by run.
pub async fn measure_http2(
    kind: Kind,
    setup: &Setup,
    upstreams: &[SocketAddr],
    h2: systems::Http2,
    clients: &[load::OhaClient],
    (warmup, n): (u64, u64),
    opts: &Opts,
) -> Result<Vec<Vec<f64>>, String> {
    let up = if h2.upstream { "h2" } else { "http1" };
    let tag = format!("http2-up-{up}-callgrind");
    let dir = setup.dir.join(format!("{}-{tag}", kind.name()));
    let wrapper = wrapper(&dir, opts)?;
    let r = systems::start_http2(kind, setup, upstreams, &tag, &wrapper, h2).await?;
    let label = format!("{} (upstream {up})", kind.name());
    let mut cg = Callgrind::new(r, dir, label, opts)?;
    let mut out = Vec::new();
    for &c in clients {
        out.push(cg.count_oha(c, warmup, n, opts).await?);
    }
    Ok(out)
}

/// valgrind's command line for a process whose dumps go to `dir`.
fn wrapper(dir: &Path, opts: &Opts) -> Result<Vec<OsString>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut out_arg = OsString::from("--callgrind-out-file=");
    out_arg.push(dir.join("callgrind.out"));
    let mut args = vec![
        opts.valgrind.clone().into(),
        "--tool=callgrind".into(),
        out_arg,
        // Dumps and zeroing come from callgrind_control, through valgrind's gdb server.
        "--vgdb=yes".into(),
    ];
    // A smoke starts the process uninstrumented (a debug build then starts in a third of
    // the time) and `Callgrind::new` turns instrumentation on before the first request:
    // every count is still of requests only, from counters zeroed just before them.
    if opts.smoke {
        args.push("--instr-atstart=no".into());
    }
    Ok(args)
}

/// How long a counted run waits after its last answer before the dump, for the proxy's
/// work after the answer is out (its access log line); a smoke's counts are not judged.
fn after_run(opts: &Opts) -> Duration {
    Duration::from_millis(if opts.smoke { 50 } else { 200 })
}

/// A proxy running under callgrind; its dumps are numbered in the order they are taken.
struct Callgrind {
    r: Running,
    pid: u32,
    dir: PathBuf,
    label: String,
    dumps: u32,
}

/// What a counted run sends: one request over and over, each answer checked.
struct Job {
    raw: Arc<Vec<u8>>,
    check: Option<load::Check>,
    connections: u32,
    /// Seconds one request may take under callgrind, on one connection.
    secs_per_request: f64,
}

impl Job {
    /// `raw` over `CONNECTIONS`, allowing `kib` (the body size) a twentieth of a second
    /// per KiB: under callgrind a proxy serves a few thousand small requests a second.
    fn sized(raw: Vec<u8>, kib: u64) -> Job {
        Job {
            raw: Arc::new(raw),
            check: None,
            connections: CONNECTIONS,
            secs_per_request: kib.max(1) as f64 / 20.0,
        }
    }

    fn limit(&self, n: u64) -> Duration {
        Duration::from_secs_f64(60.0 + n as f64 * self.secs_per_request)
    }
}

/// One counted run.
#[derive(Clone, Debug)]
pub struct Run {
    pub per_request: f64,
    /// Wall time of the run, from zeroing to the dump.
    pub seconds: f64,
    /// The dump's file name in the working folder.
    pub dump: String,
}

impl Callgrind {
    /// `r`, started under `wrapper(dir, opts)`, ready to count.
    fn new(r: Running, dir: PathBuf, label: String, opts: &Opts) -> Result<Self, String> {
        let pid = r.proc.as_ref().ok_or("no process")?.pid();
        if opts.smoke {
            control(&opts.valgrind, &["-i", "on"], pid)?;
        }
        Ok(Callgrind {
            r,
            pid,
            dir,
            label,
            dumps: 0,
        })
    }

    /// `warmup` requests of `raw`, then `opts.instr_runs` runs of `n`, each between a
    /// zeroing and a dump. `kib` (the body size) stretches the time allowed.
    async fn count(
        &mut self,
        raw: Arc<Vec<u8>>,
        warmup: u64,
        n: u64,
        kib: u64,
        opts: &Opts,
    ) -> Result<Vec<f64>, String> {
        let job = Job {
            raw,
            ..Job::sized(Vec::new(), kib)
        };
        let runs = self.count_job(&job, warmup, n, opts).await?;
        Ok(runs.into_iter().map(|r| r.per_request).collect())
    }

    /// `warmup` requests of `job`, then `opts.instr_runs` runs of `n`, each between a
    /// zeroing and a dump.
    async fn count_job(
        &mut self,
        job: &Job,
        warmup: u64,
        n: u64,
        opts: &Opts,
    ) -> Result<Vec<Run>, String> {
        let addr = self.r.addr;
        let send = |n: u64| {
            load::fixed_count(
                addr,
                job.raw.clone(),
                n,
                job.connections,
                job.limit(n),
                job.check.clone(),
            )
        };
        send(warmup)
            .await
            .map_err(|e| format!("callgrind warm-up: {e}"))?;
        let mut runs = Vec::new();
        for run in 1..=opts.instr_runs {
            control(&opts.valgrind, &["-z"], self.pid)?;
            let start = Instant::now();
            let reconnects = send(n)
                .await
                .map_err(|e| format!("callgrind run {run}: {e}"))?;
            // A proxy logs a request after its answer is out: let the last ones finish.
            tokio::time::sleep(after_run(opts)).await;
            let ir = self.dump(opts)?;
            let seconds = start.elapsed().as_secs_f64();
            let per = ir as f64 / n as f64;
            eprintln!(
                "perf-bench: {} under callgrind, run {run}: {ir} instructions, {per:.0} per request, {reconnects} reconnection(s) after Connection: close (callgrind.out.{})",
                self.label, self.dumps
            );
            runs.push(Run {
                per_request: per,
                seconds,
                dump: format!("callgrind.out.{}", self.dumps),
            });
        }
        Ok(runs)
    }

    /// `warmup` requests from oha as `client`, then `opts.instr_runs` runs of exactly `n`,
    /// each between a zeroing and a dump: the same client tool for HTTP/1.1 and HTTP/2.
    async fn count_oha(
        &mut self,
        client: load::OhaClient,
        warmup: u64,
        n: u64,
        opts: &Opts,
    ) -> Result<Vec<f64>, String> {
        let addr = self.r.addr;
        let job = Job::sized(Vec::new(), 1);
        // Off the runtime's threads: the mock regions answering it run on them.
        let send = |n: u64| {
            let limit = job.limit(n);
            async move {
                tokio::task::spawn_blocking(move || {
                    load::oha_load(addr, client, load::Amount::Requests(n), limit)
                })
                .await
                .map_err(|e| e.to_string())?
            }
        };
        send(warmup)
            .await
            .map_err(|e| format!("callgrind warm-up: {e}"))?;
        let mut runs = Vec::new();
        for run in 1..=opts.instr_runs {
            control(&opts.valgrind, &["-z"], self.pid)?;
            send(n)
                .await
                .map_err(|e| format!("callgrind run {run}: {e}"))?;
            tokio::time::sleep(after_run(opts)).await;
            let ir = self.dump(opts)?;
            let per = ir as f64 / n as f64;
            eprintln!(
                "perf-bench: {}, {} under callgrind, run {run}: {ir} instructions, {per:.0} per request (callgrind.out.{})",
                self.label,
                client.label(),
                self.dumps
            );
            runs.push(per);
        }
        Ok(runs)
    }

    /// Dumps the counters and returns the dump's instruction total.
    fn dump(&mut self, opts: &Opts) -> Result<u64, String> {
        control(&opts.valgrind, &["-d"], self.pid)?;
        // The first dump is `callgrind.out.1`: one zeroing and one dump per run.
        self.dumps += 1;
        read_total(&self.dir.join(format!("callgrind.out.{}", self.dumps)))
    }

    /// Instructions per second with no request in flight: zeroed, `secs` of nothing, dumped.
    async fn idle(&mut self, secs: u64, opts: &Opts) -> Result<f64, String> {
        control(&opts.valgrind, &["-z"], self.pid)?;
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let ir = self.dump(opts)?;
        let per_s = ir as f64 / start.elapsed().as_secs_f64();
        eprintln!(
            "perf-bench: {} idle under callgrind: {ir} instructions in {secs} s, {per_s:.0} per second (callgrind.out.{})",
            self.label, self.dumps
        );
        Ok(per_s)
    }
}

/// Instructions per request of Meridian without and with models, on chat bodies of each
/// size in `opts.body_kib`.
pub struct ModelRouting {
    pub sizes: Vec<SizeRuns>,
    /// What the upstream regions received, one line per configuration.
    pub upstream: Vec<String>,
}

pub struct SizeRuns {
    pub kib: u32,
    pub warmup: u64,
    pub requests: u64,
    pub without: Vec<f64>,
    pub with: Vec<f64>,
}

/// `n` requests for 1 KiB bodies, fewer for larger ones (about the same bytes per run), but
/// at least a fortieth of `n`, so a run still spreads Meridian's background work (probes,
/// timers) over enough requests.
pub fn per_size(n: u64, kib: u32) -> u64 {
    (n / u64::from(kib.max(1))).max(n / 40).max(1)
}

/// Meridian under callgrind twice, affinity off, in front of mock regions that read every
/// body: without models (the body streams through unread) and with them declared (every region serving
/// the model under its own name, so routing is unchanged but every body is read, held, its
/// `model` found and rewritten). One process per configuration, all body sizes in turn.
pub async fn measure_models(setup: &Setup, opts: &Opts) -> Result<ModelRouting, String> {
    let mut out = ModelRouting {
        sizes: opts
            .body_kib
            .iter()
            .map(|&kib| SizeRuns {
                kib,
                warmup: per_size(opts.instr_warmup, kib),
                requests: per_size(opts.instr_requests, kib),
                without: Vec::new(),
                with: Vec::new(),
            })
            .collect(),
        upstream: Vec::new(),
    };
    for models in [Models::None, Models::Declared] {
        // Fresh regions, so their counters hold this configuration's requests only.
        let regions = upstream::body_reading().await?;
        let addrs: Vec<SocketAddr> = regions.iter().map(|r| r.addr()).collect();
        let tag = match models {
            Models::None => "plain",
            Models::Declared => "models",
        };
        let dir = setup.dir.join(format!("meridian-{tag}-callgrind"));
        let wrapper = wrapper(&dir, opts)?;
        // Affinity off: on (the default), its prompt-prefix key has the body held and read
        // without models too, and the instructions-affinity phase measures that.
        let variant = Variant {
            models,
            affinity: Affinity::Off,
            ..Variant::DEFAULT
        };
        let tag = format!("callgrind-{tag}");
        let r = systems::start_meridian_with(setup, &addrs, &tag, &wrapper, variant).await?;
        let mut cg = Callgrind::new(r, dir, String::new(), opts)?;
        let mut sent = 0;
        for size in &mut out.sizes {
            cg.label = format!("meridian {} at {} KiB", models.name(), size.kib);
            let raw = Arc::new(request::raw_with(cg.r.addr, &request::chat_body(size.kib)));
            let runs = cg
                .count(raw, size.warmup, size.requests, u64::from(size.kib), opts)
                .await
                .map_err(|e| format!("{}: {e}", cg.label))?;
            sent += size.warmup + size.requests * u64::from(opts.instr_runs);
            match models {
                Models::None => size.without = runs,
                Models::Declared => size.with = runs,
            }
        }
        // Stops Meridian; the counters are read after its last request.
        drop(cg);
        let sizes: Vec<u32> = out.sizes.iter().map(|s| s.kib).collect();
        out.upstream
            .push(check_upstream(&regions, models, sent, &sizes)?);
    }
    Ok(out)
}

/// That the regions received every request, each naming what it should (the fleet-wide
/// name without models, the region's own with them), and the last one whole: as long as a
/// body of one of the sizes sent, with the name's length changed by the rewrite.
fn check_upstream(
    regions: &[MockRegion],
    models: Models,
    sent: u64,
    sizes: &[u32],
) -> Result<String, String> {
    let mut total = 0;
    let mut whole = 0;
    for (i, r) in regions.iter().enumerate() {
        let expected = match models {
            Models::None => request::CHAT_MODEL.to_string(),
            Models::Declared => systems::upstream_model(i),
        };
        for (name, n) in r.model_counts() {
            if name != expected {
                return Err(format!(
                    "meridian {}: region {i} received {n} requests naming {name:?}, not {expected:?}",
                    models.name()
                ));
            }
            total += n;
        }
        if let Some(body) = r.last_body() {
            let want =
                |kib: &u32| *kib as usize * 1024 - request::CHAT_MODEL.len() + expected.len();
            if !sizes.iter().any(|k| body.len() == want(k)) {
                let wants: Vec<String> = sizes.iter().map(|k| want(k).to_string()).collect();
                return Err(format!(
                    "meridian {}: region {i}'s last body had {} bytes, not one of {}",
                    models.name(),
                    body.len(),
                    wants.join(", ")
                ));
            }
            whole += 1;
        }
    }
    if total != sent {
        return Err(format!(
            "meridian {}: the regions received {total} requests, {sent} were sent",
            models.name()
        ));
    }
    let named = match models {
        Models::None => format!("`{}`", request::CHAT_MODEL),
        Models::Declared => "the region's own name (`llama70b-r0` ... `llama70b-r4`)".into(),
    };
    Ok(format!(
        "{}: the regions received all {total} requests sent, each naming {named}; the last \
         body each of the {whole} regions that got traffic received was whole (one of the \
         sizes sent, give or take the rewritten name's length)",
        models.name()
    ))
}

/// Meridian's instructions per request for chat completions answered whole and streamed,
/// with and without the usage chunk, at each token count of `opts.stream_tokens`.
pub struct StreamAccounting {
    pub kib: u32,
    pub token_ms: u64,
    pub connections: u32,
    pub cases: Vec<StreamCase>,
    /// Instructions per second of the same process with no request in flight (probes,
    /// timers), and over how many seconds.
    pub idle_per_s: f64,
    pub idle_secs: u64,
    /// The idle dump's file name.
    pub idle_dump: String,
}

pub struct StreamCase {
    pub answer: Answer,
    pub tokens: u32,
    pub warmup: u64,
    pub requests: u64,
    pub runs: Vec<Run>,
    /// What Meridian's `/metrics` counted over this case (warm-up and runs): output tokens
    /// and answers with usage unknown, with what was expected.
    pub counted: Counted,
    /// The HTTP chunks each streamed answer came in, over the warm-up and runs.
    pub chunks: Arc<Chunks>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counted {
    pub output_tokens: u64,
    pub unknown: u64,
}

/// The body size of the streaming cases.
pub const STREAM_KIB: u32 = 1;

/// Requests for the smallest token count, fewer for larger ones (about the same chunks per
/// run), but at least a fortieth, as `per_size` does for bodies.
pub fn per_tokens(n: u64, smallest: u32, tokens: u32) -> u64 {
    (n * u64::from(smallest.max(1)) / u64::from(tokens.max(1)))
        .max(n / 40)
        .max(1)
}

/// The HTTP chunks of the streamed answers a case received: how many pieces Meridian read
/// each stream in (it sends each on as one chunk).
#[derive(Debug, Default)]
pub struct Chunks {
    answers: AtomicU64,
    total: AtomicU64,
    min: AtomicU64,
    max: AtomicU64,
}

impl Chunks {
    fn new() -> Self {
        Chunks {
            min: AtomicU64::new(u64::MAX),
            ..Chunks::default()
        }
    }

    fn record(&self, n: usize) {
        let n = n as u64;
        self.answers.fetch_add(1, Ordering::Relaxed);
        self.total.fetch_add(n, Ordering::Relaxed);
        self.min.fetch_min(n, Ordering::Relaxed);
        self.max.fetch_max(n, Ordering::Relaxed);
    }

    /// (min, mean, max) per answer, `None` before any.
    pub fn summary(&self) -> Option<(u64, f64, u64)> {
        let answers = self.answers.load(Ordering::Relaxed);
        (answers > 0).then(|| {
            (
                self.min.load(Ordering::Relaxed),
                self.total.load(Ordering::Relaxed) as f64 / answers as f64,
                self.max.load(Ordering::Relaxed),
            )
        })
    }
}

/// The check of every answer of `answer` with `tokens` tokens: the whole answer, as the
/// mock regions send it (each token, the usage only when asked, `[DONE]` last). The chunks
/// of each go to `chunks`.
fn answer_check(answer: Answer, tokens: u32, chunks: Arc<Chunks>) -> load::Check {
    let tokens = tokens as usize;
    Arc::new(move |reply: &request::Reply| {
        let body = &reply.body[..];
        if answer != Answer::Json {
            chunks.record(reply.chunks);
        }
        let usage = request::count(body, b"\"usage\":{");
        match answer.events(tokens as u32) {
            None => {
                let v: serde_json::Value =
                    serde_json::from_slice(body).map_err(|e| format!("answer is not JSON: {e}"))?;
                let words = v["choices"][0]["message"]["content"]
                    .as_str()
                    .map_or(0, |t| t.split_whitespace().count());
                let reported = v["usage"]["completion_tokens"].as_u64();
                if words != tokens || reported != Some(tokens as u64) {
                    return Err(format!(
                        "answer of {words} words reporting {reported:?} completion tokens, not {tokens}"
                    ));
                }
            }
            Some(events) => {
                let got = request::count(body, b"data: ");
                let content = request::count(body, b"\"content\":\"");
                let want_usage = usize::from(answer == Answer::StreamUsage);
                if got != events as usize
                    || content != tokens
                    || usage != want_usage
                    || !body.ends_with(b"data: [DONE]\n\n")
                {
                    return Err(format!(
                        "stream of {got} events ({content} tokens, {usage} usage), not {events} ({tokens}, {want_usage}) ending in [DONE]"
                    ));
                }
            }
        }
        Ok(())
    })
}

/// Meridian (default config without models) under callgrind in front of mock regions that
/// stream one token per `opts.stream_token_ms` (and answer whole at once): every token
/// count, and for each a chat completion answered whole, streamed, and streamed with the
/// usage chunk; then a few idle seconds. One process for all.
pub async fn measure_streams(setup: &Setup, opts: &Opts) -> Result<StreamAccounting, String> {
    let regions = upstream::body_reading().await?;
    let addrs: Vec<SocketAddr> = regions.iter().map(|r| r.addr()).collect();
    let dir = setup.dir.join("meridian-streams-callgrind");
    let wrapper = wrapper(&dir, opts)?;
    let r =
        systems::start_meridian(setup, &addrs, "callgrind-streams", &wrapper, Models::None).await?;
    let admin = r.admin.ok_or("meridian without an admin address")?;
    let mut cg = Callgrind::new(r, dir, String::new(), opts)?;
    let smallest = opts.stream_tokens.iter().copied().min().unwrap_or(1);
    let mut cases = Vec::new();
    for &tokens in &opts.stream_tokens {
        for answer in Answer::ALL {
            cg.label = format!("meridian, {} tokens {}", tokens, answer.name());
            // Streams paced; a whole answer at once (waiting would only add background).
            let pace = match answer {
                Answer::Json => 0,
                Answer::Stream | Answer::StreamUsage => opts.stream_token_ms,
            };
            for r in &regions {
                r.set_token_ms(pace);
            }
            // Fewer of the longer streams (about the same chunks per run); a whole answer
            // is one read however long, so as many as at the smallest count.
            let requests = match answer {
                Answer::Json => opts.stream_requests,
                Answer::Stream | Answer::StreamUsage => {
                    per_tokens(opts.stream_requests, smallest, tokens)
                }
            };
            let warmup = (requests / 5).max(10);
            let body = request::chat_request(STREAM_KIB, tokens, answer);
            let chunks = Arc::new(Chunks::new());
            // Under callgrind each chunk may take a few times its pace.
            let per = (f64::from(tokens) * (pace as f64 + 1.0) * 4.0 + 100.0) / 1000.0;
            let job = Job {
                raw: Arc::new(request::raw_with(cg.r.addr, &body)),
                check: Some(answer_check(answer, tokens, chunks.clone())),
                connections: opts.stream_connections,
                secs_per_request: per / f64::from(opts.stream_connections.max(1)),
            };
            let before = counted(admin).await?;
            let runs = cg
                .count_job(&job, warmup, requests, opts)
                .await
                .map_err(|e| format!("{}: {e}", cg.label))?;
            // The last answers are logged and counted after they are out.
            let after = counted(admin).await?;
            let counted = Counted {
                output_tokens: after.output_tokens - before.output_tokens,
                unknown: after.unknown - before.unknown,
            };
            let sent = warmup + requests * u64::from(opts.instr_runs);
            let expected = match answer {
                Answer::Stream => Counted {
                    output_tokens: 0,
                    unknown: sent,
                },
                Answer::Json | Answer::StreamUsage => Counted {
                    output_tokens: sent * u64::from(tokens),
                    unknown: 0,
                },
            };
            if counted != expected {
                return Err(format!(
                    "{}: Meridian counted {counted:?} over {sent} answers, not {expected:?}",
                    cg.label
                ));
            }
            cases.push(StreamCase {
                answer,
                tokens,
                warmup,
                requests,
                runs,
                counted,
                chunks,
            });
        }
    }
    cg.label = "meridian".into();
    let idle_secs = if opts.smoke { 1 } else { 10 };
    let idle_per_s = cg.idle(idle_secs, opts).await?;
    let idle_dump = format!("callgrind.out.{}", cg.dumps);
    drop(cg);
    Ok(StreamAccounting {
        kib: STREAM_KIB,
        token_ms: opts.stream_token_ms,
        connections: opts.stream_connections,
        cases,
        idle_per_s,
        idle_secs,
        idle_dump,
    })
}

/// Output tokens and answers of unknown usage Meridian has counted, from its `/metrics`.
async fn counted(admin: SocketAddr) -> Result<Counted, String> {
    let text = metrics(admin).await?;
    Ok(parse_counted(&text))
}

fn parse_counted(text: &str) -> Counted {
    let value = |l: &str| {
        l.rsplit(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    };
    let mut c = Counted::default();
    for l in text.lines() {
        if l.starts_with("meridian_tokens_total{") && l.contains("kind=\"output\"") {
            c.output_tokens += value(l);
        } else if l.starts_with("meridian_usage_unknown_total{") {
            c.unknown += value(l);
        }
    }
    c
}

async fn metrics(admin: SocketAddr) -> Result<String, String> {
    let get = async {
        let mut conn = tokio::net::TcpStream::connect(admin)
            .await
            .map_err(|e| format!("connect {admin}: {e}"))?;
        let req = format!("GET /metrics HTTP/1.1\r\nhost: {admin}\r\nconnection: close\r\n\r\n");
        tokio::io::AsyncWriteExt::write_all(&mut conn, req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        match request::read_answer(&mut conn).await? {
            r if r.status == 200 => Ok(String::from_utf8_lossy(&r.body).into_owned()),
            r => Err(format!("/metrics answered {}", r.status)),
        }
    };
    tokio::time::timeout(Duration::from_secs(60), get)
        .await
        .map_err(|_| "/metrics took longer than 60 s".to_string())?
}

/// `callgrind_control ARGS... PID`, from the folder valgrind is in when that is a path.
fn control(valgrind: &Path, args: &[&str], pid: u32) -> Result<(), String> {
    let program = match valgrind.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.join("callgrind_control"),
        _ => "callgrind_control".into(),
    };
    let out = Command::new("timeout")
        .arg("60")
        .arg(&program)
        .args(args)
        .arg(pid.to_string())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if !out.status.success() {
        return Err(format!(
            "callgrind_control {} {pid} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// The instruction total of one callgrind dump (its `totals:` line).
fn read_total(path: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_total(&text).ok_or_else(|| format!("{}: no totals line", path.display()))
}

fn parse_total(text: &str) -> Option<u64> {
    let line = text
        .lines()
        .find(|l| l.starts_with("totals:"))
        .or_else(|| text.lines().find(|l| l.starts_with("summary:")))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bigger_bodies_get_fewer_requests_but_not_too_few() {
        assert_eq!(per_size(20_000, 1), 20_000);
        assert_eq!(per_size(20_000, 10), 2_000);
        assert_eq!(per_size(20_000, 100), 500);
        assert_eq!(per_size(200, 100), 5);
        assert_eq!(per_size(50, 100), 1);
    }

    #[test]
    fn reads_callgrind_totals() {
        let text = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: 0\n\nfn=(1) main\n5 5\n\ntotals: 1234567\n";
        assert_eq!(parse_total(text), Some(1_234_567));
        assert_eq!(parse_total("events: Ir\nsummary: 42\n"), Some(42));
        assert_eq!(parse_total("events: Ir\n"), None);
    }

    #[test]
    fn more_tokens_get_fewer_requests_but_not_too_few() {
        assert_eq!(per_tokens(1000, 16, 16), 1000);
        assert_eq!(per_tokens(1000, 16, 256), 62);
        assert_eq!(per_tokens(1000, 16, 4096), 25);
        assert_eq!(per_tokens(40, 16, 256), 2);
        assert_eq!(per_tokens(10, 16, 256), 1);
    }

    #[test]
    fn reads_meridians_usage_counters() {
        let text = "# HELP meridian_tokens_total x\n\
            meridian_tokens_total{kind=\"input\",model=\"none\",region=\"a\"} 500\n\
            meridian_tokens_total{kind=\"output\",model=\"none\",region=\"a\"} 32\n\
            meridian_tokens_total{kind=\"output\",model=\"none\",region=\"b\"} 16\n\
            meridian_usage_unknown_total{model=\"none\",region=\"b\"} 3\n";
        assert_eq!(
            parse_counted(text),
            Counted {
                output_tokens: 48,
                unknown: 3
            }
        );
    }

    #[test]
    fn answers_are_checked_whole() {
        let token = "data: {\"choices\":[{\"delta\":{\"content\":\"w \"}}]}\n\n";
        let close = "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
        let usage = "data: {\"choices\":[],\"usage\":{\"completion_tokens\":2}}\n\n";
        let done = "data: [DONE]\n\n";
        let plain = format!("{token}{token}{close}{done}");
        let with = format!("{token}{token}{close}{usage}{done}");
        let chunks = Arc::new(Chunks::new());
        let ok = |a: Answer, body: &str| {
            answer_check(a, 2, chunks.clone())(&request::Reply {
                status: 200,
                body: body.as_bytes().to_vec(),
                chunks: 5,
                close: false,
            })
        };
        assert!(ok(Answer::Stream, &plain).is_ok());
        assert!(ok(Answer::StreamUsage, &with).is_ok());
        assert!(ok(Answer::Stream, &with).is_err());
        assert!(ok(Answer::StreamUsage, &plain).is_err());
        assert!(ok(Answer::Stream, &format!("{token}{close}{done}")).is_err());
        assert!(ok(Answer::Stream, &format!("{token}{token}{close}")).is_err());
        let json = r#"{"choices":[{"message":{"content":"a b"}}],"usage":{"completion_tokens":2}}"#;
        assert!(ok(Answer::Json, json).is_ok());
        assert!(ok(Answer::Json, &json.replace("a b", "a")).is_err());
        // Six streamed answers checked, each of five chunks.
        assert_eq!(chunks.summary(), Some((5, 5.0, 5)));
    }
}
