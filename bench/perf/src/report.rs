//! Figures gathered during the run and the Markdown written from them.

use crate::cli::Opts;
use crate::http2::{Case, Http2Results};
use crate::instr::{AffinityCost, ModelRouting, StreamAccounting};
use crate::load::{Latency, Throughput};
use crate::request::Answer;
use crate::stream::{percentile, StreamStats};
use crate::systems::Kind;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

mod affinity;
use affinity::{affinity_section, AFFINITY};

pub struct SystemResult {
    pub kind: Kind,
    /// One entry per throughput round: wrk's figures and proxy CPU µs per request.
    pub runs: Vec<(Throughput, Option<f64>)>,
    /// Fixed-rate runs, each paired with a direct run at the same rate just before it.
    pub latency: Vec<LatencyRun>,
    pub rss_idle_kib: Option<u64>,
    pub rss_before_conns_kib: Option<u64>,
    pub rss_with_conns_kib: Option<u64>,
    pub conns_open: usize,
    pub stream: Option<StreamStats>,
}

impl SystemResult {
    fn new(kind: Kind) -> Self {
        SystemResult {
            kind,
            runs: Vec::new(),
            latency: Vec::new(),
            rss_idle_kib: None,
            rss_before_conns_kib: None,
            rss_with_conns_kib: None,
            conns_open: 0,
            stream: None,
        }
    }

    pub fn per_s(&self) -> Option<f64> {
        median(self.runs.iter().map(|(t, _)| t.per_s).collect())
    }

    pub fn cpu_us(&self) -> Option<f64> {
        median(self.runs.iter().filter_map(|(_, c)| *c).collect())
    }

    /// Extra resident memory per idle client connection, KiB.
    pub fn kib_per_conn(&self) -> Option<f64> {
        let (b, w) = (self.rss_before_conns_kib?, self.rss_with_conns_kib?);
        (self.conns_open > 0).then(|| (w as f64 - b as f64) / self.conns_open as f64)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct LatencyRun {
    pub rate: u32,
    pub direct: Latency,
    pub system: Latency,
}

impl LatencyRun {
    pub fn added_p50(&self) -> f64 {
        self.system.p50_ms - self.direct.p50_ms
    }
    pub fn added_p99(&self) -> f64 {
        self.system.p99_ms - self.direct.p99_ms
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    (!v.is_empty()).then(|| percentile(&mut v, 0.5))
}

pub struct Soak {
    pub seconds: u64,
    pub requests: u64,
    pub rss_kib: Vec<u64>,
}

pub struct Report {
    pub systems: Vec<SystemResult>,
    pub problems: Vec<String>,
    pub soak: Option<Soak>,
    /// (endpoints, mean ns) of the selection micro-benchmark.
    pub selection: Vec<(usize, f64)>,
    /// The open-file limit the systems ran with.
    pub fd_limit: u64,
    /// Systems and phases a smoke run left out, and why.
    pub skipped: Vec<String>,
    /// Instructions per request under callgrind, one figure per run.
    pub instructions: Vec<(Kind, Vec<f64>)>,
    /// Meridian's instructions per request without and with models, by body size.
    pub model_routing: Option<ModelRouting>,
    /// Meridian's instructions per request with prompt-cache affinity off and on.
    pub affinity: Option<AffinityCost>,
    /// Meridian's instructions per request on answers whole and streamed, by tokens.
    pub stream_accounting: Option<StreamAccounting>,
    /// Meridian and bare Pingora over HTTP/2 next to HTTP/1.1.
    pub http2: Option<Http2Results>,
}

impl Report {
    pub fn new(kinds: &[Kind]) -> Self {
        Report {
            systems: kinds.iter().map(|&k| SystemResult::new(k)).collect(),
            problems: Vec::new(),
            soak: None,
            selection: Vec::new(),
            fd_limit: 0,
            skipped: Vec::new(),
            instructions: Vec::new(),
            model_routing: None,
            affinity: None,
            stream_accounting: None,
            http2: None,
        }
    }

    pub fn skip(&mut self, what: String) {
        eprintln!("perf-bench: skipped {what}");
        self.skipped.push(what);
    }

    pub fn get(&mut self, kind: Kind) -> &mut SystemResult {
        let i = match self.systems.iter().position(|s| s.kind == kind) {
            Some(i) => i,
            None => {
                self.systems.push(SystemResult::new(kind));
                self.systems.len() - 1
            }
        };
        &mut self.systems[i]
    }

    pub fn problem(&mut self, kind: Kind, what: impl std::fmt::Display) {
        eprintln!("perf-bench: {}: {what}", kind.name());
        self.problems.push(format!("{}: {what}", kind.name()));
    }

    fn find(&self, kind: Kind) -> Option<&SystemResult> {
        self.systems.iter().find(|s| s.kind == kind)
    }

    pub fn markdown(&self, opts: &Opts) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# Performance results\n");
        let _ = writeln!(
            md,
            "Written by `bench/run.sh` ({}). {}\n",
            if opts.smoke {
                "smoke run: seconds per phase, figures are not meaningful"
            } else {
                "full run"
            },
            machine(opts)
        );
        if !self.skipped.is_empty() {
            let _ = writeln!(
                md,
                "Left out of this smoke run (a smoke installs nothing; the full run installs \
                 and measures all):\n"
            );
            for s in &self.skipped {
                let _ = writeln!(md, "- {s}");
            }
            md.push('\n');
        }
        self.request_cost(&mut md, opts);
        self.instructions_table(&mut md, opts);
        if let Some(h) = &self.http2 {
            http2_section(&mut md, h, opts);
        }
        self.latency_table(&mut md, opts);
        self.memory_table(&mut md, opts);
        self.streaming_table(&mut md, opts);
        self.selection_table(&mut md);
        self.targets(&mut md, opts);
        if !self.problems.is_empty() {
            let _ = writeln!(md, "## Problems during the run\n");
            for p in &self.problems {
                let _ = writeln!(md, "- {p}");
            }
            md.push('\n');
        }
        md
    }

    fn request_cost(&self, md: &mut String, opts: &Opts) {
        let nginx = self.find(Kind::Nginx).and_then(SystemResult::cpu_us);
        let bare = self.find(Kind::PingoraRr).and_then(SystemResult::cpu_us);
        let _ = writeln!(
            md,
            "## Request cost\n\nFixed-answer nginx upstream on {} ports; `wrk -t1 -c{} -d{}s`, {} round(s), \
             systems alternating; medians. CPU is user+system time of the proxy's processes from \
             `/proc`, divided by the requests wrk completed. Every proxy has {} worker thread(s) or \
             process(es); all share the machine's cores with wrk and the upstream.\n",
            crate::upstream::REGIONS,
            opts.connections,
            opts.duration,
            opts.rounds,
            opts.threads
        );
        let _ = writeln!(
            md,
            "| system | req/s | proxy CPU µs/req | vs nginx | vs bare Pingora | errors |"
        );
        let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: |");
        for s in &self.systems {
            let cpu = s.cpu_us();
            let errors: u64 = s.runs.iter().map(|(t, _)| t.errors).sum();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                s.kind.name(),
                fmt(s.per_s(), 0),
                fmt(cpu, 1),
                ratio(cpu, nginx),
                ratio(cpu, bare),
                errors
            );
        }
        md.push('\n');
    }

    fn latency_table(&self, md: &mut String, opts: &Opts) {
        let _ = writeln!(
            md,
            "## Added latency\n\n`oha -z {}s -q RATE -c 8 --latency-correction`, each system right \
             after the same run straight to the upstream (direct), so drift cancels; added = the \
             system's figure minus that direct run's. {} req/s is well below every proxy's \
             saturation; LiteLLM cannot sustain it (about {} req/s at most here), so the AI-gateway \
             comparison runs direct, Meridian, vllm-router and LiteLLM at {} req/s.\n",
            opts.rate_duration,
            opts.rate,
            self.find(Kind::Litellm)
                .and_then(SystemResult::per_s)
                .map_or("-".into(), |r| format!("{r:.0}")),
            opts.gateway_rate
        );
        let _ = writeln!(
            md,
            "| system | req/s offered | requests | p50 ms | p99 ms | direct p50 / p99 ms | added p50 ms | added p99 ms |"
        );
        let _ = writeln!(
            md,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for s in &self.systems {
            for run in &s.latency {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {:.3} | {:.3} | {:.3} / {:.3} | {:.3} | {:.3} |",
                    s.kind.name(),
                    run.rate,
                    run.system.requests,
                    run.system.p50_ms,
                    run.system.p99_ms,
                    run.direct.p50_ms,
                    run.direct.p99_ms,
                    run.added_p50(),
                    run.added_p99(),
                );
            }
        }
        md.push('\n');
    }

    fn instructions_table(&self, md: &mut String, opts: &Opts) {
        if self.instructions.is_empty() {
            if self.model_routing.is_some()
                || self.affinity.is_some()
                || self.stream_accounting.is_some()
            {
                let _ = writeln!(md, "{INSTRUCTIONS}\n");
            }
            if let Some(m) = &self.model_routing {
                model_routing(md, m, opts);
            }
            if let Some(a) = &self.affinity {
                affinity_section(md, a, opts);
            }
            if let Some(s) = &self.stream_accounting {
                stream_accounting(md, s, opts);
            }
            return;
        }
        let _ = writeln!(
            md,
            "{INSTRUCTIONS}\n\n`valgrind --tool=callgrind` on the whole proxy process \
             (all its threads; user-space instructions, not the kernel's), same fixed-answer \
             upstream, config and worker threads as above. After {} warm-up requests, each run \
             zeroes the counters (`callgrind_control -z`), sends exactly {} requests over {} \
             keep-alive connections and dumps (`callgrind_control -d`). An answer with \
             `Connection: close` is followed by a new connection, as any client does (Meridian \
             closes one after `limits.keepalive_requests`, 1000 by default; bare Pingora never \
             does), so the count includes those reconnections. Counted, not timed: \
             the machine's load moves the figure by about 1% at most (more reads wait, so more \
             timers and wake-ups), far less than it moves time. Spread is (max - min) / median \
             over the runs.\n",
            opts.instr_warmup,
            opts.instr_requests,
            crate::instr::CONNECTIONS
        );
        let runs = self
            .instructions
            .iter()
            .map(|(_, r)| r.len())
            .max()
            .unwrap_or(0);
        let mut head = String::from("| system |");
        let mut rule = String::from("| --- |");
        for i in 1..=runs {
            let _ = write!(head, " run {i} |");
            rule.push_str(" ---: |");
        }
        let _ = writeln!(md, "{head} median | spread |\n{rule} ---: | ---: |");
        let median_of = |k: Kind| {
            self.instructions
                .iter()
                .find(|(s, _)| *s == k)
                .and_then(|(_, r)| median(r.clone()))
        };
        for (k, r) in &self.instructions {
            let mut row = format!("| {} |", k.name());
            for i in 0..runs {
                let _ = write!(row, " {} |", fmt(r.get(i).copied(), 0));
            }
            let _ = writeln!(
                md,
                "{row} {} | {} |",
                fmt(median(r.clone()), 0),
                spread(r).map_or("-".into(), |s| format!("{:.2}%", s * 100.0))
            );
        }
        let (m, b) = (
            self.instructions.iter().find(|(k, _)| *k == Kind::Meridian),
            self.instructions
                .iter()
                .find(|(k, _)| *k == Kind::PingoraRr),
        );
        if let (Some((_, m)), Some((_, b))) = (m, b) {
            let per_run: Vec<f64> = m.iter().zip(b).map(|(m, b)| m / b).collect();
            let mut row = String::from("| meridian / pingora-rr |");
            for i in 0..runs {
                let r = per_run.get(i);
                let _ = write!(row, " {} |", r.map_or("-".into(), |r| format!("{r:.3}x")));
            }
            let _ = writeln!(
                md,
                "{row} {}x | {} |",
                fmt(
                    ratio_f(median_of(Kind::Meridian), median_of(Kind::PingoraRr)),
                    3
                ),
                spread(&per_run).map_or("-".into(), |s| format!("{:.2}%", s * 100.0))
            );
        }
        md.push('\n');
        if let Some(m) = &self.model_routing {
            model_routing(md, m, opts);
        }
        if let Some(a) = &self.affinity {
            affinity_section(md, a, opts);
        }
        if let Some(s) = &self.stream_accounting {
            stream_accounting(md, s, opts);
        }
    }

    fn memory_table(&self, md: &mut String, opts: &Opts) {
        let _ = writeln!(
            md,
            "## Memory\n\nResident memory of the proxy's processes: idle after start, then before and \
             after {} client connections each sent one request and stayed open (keep-alive). \
             The open-file limit here is {}; HAProxy, which reserves two descriptors per \
             connection, is given the largest connection cap that fits.\n",
            opts.idle_connections, self.fd_limit
        );
        let _ = writeln!(
            md,
            "| system | RSS idle MiB | RSS before MiB | RSS with connections MiB | connections held | KiB per idle connection |"
        );
        let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: |");
        let mib = |k: Option<u64>| fmt(k.map(|k| k as f64 / 1024.0), 1);
        for s in self.systems.iter().filter(|s| s.kind != Kind::Direct) {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                s.kind.name(),
                mib(s.rss_idle_kib),
                mib(s.rss_before_conns_kib),
                mib(s.rss_with_conns_kib),
                s.conns_open,
                fmt(s.kib_per_conn(), 1)
            );
        }
        if let Some(soak) = &self.soak {
            let list: Vec<String> = soak
                .rss_kib
                .iter()
                .map(|k| format!("{:.1}", *k as f64 / 1024.0))
                .collect();
            let _ = writeln!(
                md,
                "\nSoak: Meridian under `wrk -c{}` for {} s ({} requests); RSS after each sixth, MiB: {}.",
                opts.connections,
                soak.seconds,
                soak.requests,
                list.join(", ")
            );
        }
        md.push('\n');
    }

    fn streaming_table(&self, md: &mut String, opts: &Opts) {
        let direct = self.find(Kind::Direct).and_then(|s| s.stream.clone());
        let _ = writeln!(
            md,
            "## Streaming\n\nMock regions streaming one token per millisecond; {} streams of {} tokens, 4 \
             at a time. TTFT is from sending the request to the first token's bytes; tokens/s is \
             per stream after the first token (median).\n",
            opts.streams, opts.tokens
        );
        let _ = writeln!(
            md,
            "| system | TTFT p50 ms | added TTFT p50 ms | TTFT p99 ms | tokens/s | vs direct |"
        );
        let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: |");
        for s in &self.systems {
            let st = s.stream.as_ref();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                s.kind.name(),
                fmt(st.map(|s| s.ttft_p50_ms), 3),
                fmt(
                    diff(
                        st.map(|s| s.ttft_p50_ms),
                        direct.as_ref().map(|d| d.ttft_p50_ms)
                    ),
                    3
                ),
                fmt(st.map(|s| s.ttft_p99_ms), 3),
                fmt(st.map(|s| s.tokens_per_s), 0),
                ratio(
                    st.map(|s| s.tokens_per_s),
                    direct.as_ref().map(|d| d.tokens_per_s)
                ),
            );
        }
        md.push('\n');
    }

    fn selection_table(&self, md: &mut String) {
        let _ = writeln!(
            md,
            "## Selection decision\n\n`cargo bench --bench selection` (criterion, mean of one routing \
             decision: `routing::pick` over a fresh ranking).\n"
        );
        if self.selection.is_empty() {
            let _ = writeln!(md, "Not run: no criterion results found.\n");
            return;
        }
        let _ = writeln!(md, "| endpoints | ns per decision |\n| ---: | ---: |");
        for (n, ns) in &self.selection {
            let _ = writeln!(md, "| {n} | {ns:.0} |");
        }
        md.push('\n');
    }

    fn targets(&self, md: &mut String, opts: &Opts) {
        let cpu = |k| self.find(k).and_then(SystemResult::cpu_us);
        let added_p99 = |k, rate: u32| {
            self.find(k)
                .and_then(|s| s.latency.iter().find(|r| r.rate == rate))
                .map(LatencyRun::added_p99)
        };
        let stream = |k: Kind| self.find(k).and_then(|s| s.stream.clone());
        let m_added = added_p99(Kind::Meridian, opts.rate);
        let m_gateway = added_p99(Kind::Meridian, opts.gateway_rate);
        let l_added = added_p99(Kind::Litellm, opts.gateway_rate);
        let sd = stream(Kind::Direct);
        let sm = stream(Kind::Meridian);
        let ttft_added = diff(
            sm.as_ref().map(|s| s.ttft_p50_ms),
            sd.as_ref().map(|s| s.ttft_p50_ms),
        );
        let tok = ratio_f(
            sm.as_ref().map(|s| s.tokens_per_s),
            sd.as_ref().map(|s| s.tokens_per_s),
        );
        let sel = |n| {
            self.selection
                .iter()
                .find(|(e, _)| *e == n)
                .map(|(_, ns)| *ns)
        };
        let growth = match (sel(64), sel(1024)) {
            (Some(a), Some(b)) => Some(b / a),
            _ => None,
        };
        let soak_growth = self.soak.as_ref().and_then(|s| {
            let (second, last) = (*s.rss_kib.get(1)?, *s.rss_kib.last()?);
            Some((last as f64 - second as f64) / 1024.0)
        });
        let rows: Vec<(String, String, Option<bool>)> = vec![
            (
                "CPU/request ≤ 1.15x bare Pingora".into(),
                ratio(cpu(Kind::Meridian), cpu(Kind::PingoraRr)),
                ratio_f(cpu(Kind::Meridian), cpu(Kind::PingoraRr)).map(|r| r <= 1.15),
            ),
            (
                "CPU/request ≤ 1.0x nginx".into(),
                ratio(cpu(Kind::Meridian), cpu(Kind::Nginx)),
                ratio_f(cpu(Kind::Meridian), cpu(Kind::Nginx)).map(|r| r <= 1.0),
            ),
            (
                format!("added p99 ≤ 1 ms at {} req/s", opts.rate),
                fmt(m_added, 3) + " ms",
                m_added.map(|a| a <= 1.0),
            ),
            (
                format!(
                    "added p99 ≥ 10x lower than LiteLLM's (both at {} req/s)",
                    opts.gateway_rate
                ),
                match (l_added, m_gateway) {
                    (Some(l), Some(m)) => format!("{l:.3} ms vs {m:.3} ms"),
                    _ => "-".into(),
                },
                match (l_added, m_gateway) {
                    (Some(l), Some(m)) => Some(l >= 10.0 * m.max(0.0)),
                    _ => None,
                },
            ),
            (
                "selection ≤ 1 µs at 64 endpoints".into(),
                fmt(sel(64).map(|ns| ns / 1000.0), 2) + " µs",
                sel(64).map(|ns| ns <= 1000.0),
            ),
            (
                "selection grows at most linearly (1,024 vs 64: ≤ 16x)".into(),
                fmt(growth, 2) + "x",
                growth.map(|g| g <= 16.0),
            ),
            (
                "no memory growth over the soak (after its first sixth, ≤ 2 MiB)".into(),
                fmt(soak_growth, 1) + " MiB",
                soak_growth.map(|g| g <= 2.0),
            ),
            (
                "streaming: added TTFT ≤ 1 ms".into(),
                fmt(ttft_added, 3) + " ms",
                ttft_added.map(|a| a <= 1.0),
            ),
            (
                "streaming: tokens/s within 5% of direct".into(),
                fmt(tok.map(|r| r * 100.0), 1) + "%",
                tok.map(|r| r >= 0.95),
            ),
        ];
        let _ = writeln!(
            md,
            "## Targets\n\n| target | this run | met |\n| --- | ---: | --- |"
        );
        for (what, figure, met) in rows {
            let met = match met {
                Some(true) => "yes",
                Some(false) => "no",
                None => "not measured",
            };
            let _ = writeln!(md, "| {what} | {figure} | {met} |");
        }
        md.push('\n');
    }
}

const INSTRUCTIONS: &str = "## Instructions per request";
const MODEL_ROUTING: &str = "### Model routing: instructions per request by body size";

/// Model routing's cost at 1 KiB may be at most this share of the request without it.
const MODEL_RATIO_TARGET: f64 = 1.10;

/// Growth is linear when no later interval costs more per extra KiB than this times the
/// first one.
const LINEAR_TOLERANCE: f64 = 1.25;

/// The subsection on what routing by model costs, with its own command line, source and
/// targets (so it stands on its own when a run of that phase alone merges it in).
fn model_routing(md: &mut String, m: &ModelRouting, opts: &Opts) {
    let _ = writeln!(
        md,
        "{MODEL_ROUTING}\n\nWhat routing by model costs per request. The same Meridian \
         binary, default config and client as above, but in front of five mock regions \
         (mock-regions, in-process, answering at once) that read every body whole before \
         answering, as an inference server does (the nginx above answers with `return` \
         before it has read a body), with prompt-cache affinity off (`affinity: {{enabled: \
         false}}`; on, its prompt-prefix key has the body held and read without models too: \
         see the affinity table): once **without models** (the config's \
         `models` taken out: every region serves any model and Meridian streams the body \
         through unread) and once **with models** (`{}` declared, every region serving it \
         under a name of its own, `upstream_name: llama70b-rN`, so routing is unchanged but \
         every body is read and held, its `model` found and rewritten for the region, as in \
         a multi-model fleet). Requests: OpenAI chat completions of exactly the size given, \
         `messages` (a system turn and a long user turn) before `model`, sent with a \
         Content-Length over {} keep-alive connections. One Meridian process per \
         configuration, every size in turn; per size, the warm-up requests, then {} run(s) \
         between `callgrind_control -z` and `-d`. Medians of the runs; spread is \
         (max - min) / median. The other upstream and answers make these figures differ \
         from the table above. Callgrind counts each iteration of `rep movsb`, so a large \
         `memcpy` counts about one instruction per byte: the per-KiB figures weigh copies \
         more than their CPU time.\n",
        crate::request::CHAT_MODEL,
        crate::instr::CONNECTIONS,
        opts.instr_runs,
    );
    let _ = writeln!(md, "- command: `{}`", command_line());
    let _ = writeln!(md, "- meridian: {}", binary_source(&opts.bin_dir));
    for line in &m.upstream {
        let _ = writeln!(md, "- upstream check, {line}");
    }
    md.push('\n');
    let _ = writeln!(
        md,
        "| body KiB | warm-up | requests per run | without models | spread | with models | spread | with / without | added by models |"
    );
    let _ = writeln!(
        md,
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let med = |v: &[f64]| median(v.to_vec());
    let sp = |v: &[f64]| spread(v).map_or("-".into(), |s| format!("{:.2}%", s * 100.0));
    for s in &m.sizes {
        let (a, b) = (med(&s.without), med(&s.with));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.kib,
            s.warmup,
            s.requests,
            fmt(a, 0),
            sp(&s.without),
            fmt(b, 0),
            sp(&s.with),
            fmt(ratio_f(b, a), 3) + "x",
            diff(b, a).map_or("-".into(), |d| format!("{d:+.0}")),
        );
    }
    md.push('\n');
    // Per extra KiB between consecutive sizes.
    let mut slopes: Vec<(u32, u32, Option<f64>, Option<f64>)> = Vec::new();
    for w in m.sizes.windows(2) {
        let dk = f64::from(w[1].kib) - f64::from(w[0].kib);
        let per = |x: Option<f64>, y: Option<f64>| diff(y, x).map(|d| d / dk);
        slopes.push((
            w[0].kib,
            w[1].kib,
            per(med(&w[0].without), med(&w[1].without)),
            per(med(&w[0].with), med(&w[1].with)),
        ));
    }
    if !slopes.is_empty() {
        let _ = writeln!(
            md,
            "| from KiB | to KiB | without models per extra KiB | with models per extra KiB | added by models per extra KiB |"
        );
        let _ = writeln!(md, "| ---: | ---: | ---: | ---: | ---: |");
        for (a, b, w0, w1) in &slopes {
            let _ = writeln!(
                md,
                "| {a} | {b} | {} | {} | {} |",
                fmt(*w0, 0),
                fmt(*w1, 0),
                diff(*w1, *w0).map_or("-".into(), |d| format!("{d:+.0}")),
            );
        }
        md.push('\n');
    }
    // Targets.
    let at = |kib: u32| m.sizes.iter().find(|s| s.kib == kib);
    let ratio_1 = at(1).and_then(|s| ratio_f(med(&s.with), med(&s.without)));
    let first = slopes.first().and_then(|s| s.3);
    let worst = slopes
        .iter()
        .skip(1)
        .filter_map(|s| s.3)
        .fold(None, |acc: Option<f64>, x| {
            Some(acc.map_or(x, |a| a.max(x)))
        });
    let linear = match (first, worst) {
        (Some(f), Some(w)) if f > 0.0 => Some(w <= f * LINEAR_TOLERANCE),
        _ => None,
    };
    let slope_list: Vec<String> = slopes
        .iter()
        .map(|(a, b, _, w)| format!("{a}->{b} KiB: {} per KiB", fmt(*w, 0)))
        .collect();
    let _ = writeln!(md, "| target | this run | met |\n| --- | ---: | --- |");
    let _ = writeln!(
        md,
        "| with models ≤ {MODEL_RATIO_TARGET:.2}x without, at 1 KiB | {} | {} |",
        // Four decimals: a figure this close to its bar must show which side it is on.
        fmt(ratio_1, 4) + "x",
        met(ratio_1.map(|r| r <= MODEL_RATIO_TARGET)),
    );
    let _ = writeln!(
        md,
        "| with models, linear in body size (no later interval above {LINEAR_TOLERANCE:.2}x the first's instructions per extra KiB) | {} | {} |",
        if slope_list.is_empty() {
            "-".to_string()
        } else {
            slope_list.join("; ")
        },
        match linear {
            Some(l) => met(Some(l)),
            None => "not measured (needs three sizes or more)".into(),
        },
    );
    md.push('\n');
}

const HTTP2: &str = "## HTTP/2 next to HTTP/1.1";

fn http2_section(md: &mut String, h: &Http2Results, opts: &Opts) {
    let _ = writeln!(
        md,
        "{HTTP2}\n\nBare Pingora (`pingora-rr --h2c`) and Meridian (`listen.h2c: true`, the \
         default config otherwise) with their plain listener taking HTTP/2 with prior \
         knowledge (h2c) beside HTTP/1.1, in front of five mock regions (mock-regions, \
         in-process, answering a chat completion whole and at once) reached over HTTP/1.1 or \
         over h2c (Meridian's regions `protocol: h2`, `pingora-rr --upstream-h2`); the mock \
         regions take either on the same port. Not the nginx of the tables above: nginx \
         1.22's h2c port answers Meridian's HTTP/2 health probe with 400 (\"client sent \
         duplicate host header\": Pingora 0.9.1's HTTP/2 client makes `:authority` of the \
         probe's `host` and sends `host` too), so every region stays unhealthy. One client \
         tool for both protocols, oha, with the same request: HTTP/1.1 on N connections, h2c \
         on N connections with one stream each (the same concurrency), and h2c multiplexed, \
         N/10 connections with 10 streams each (the same requests in flight). Load: `oha -z \
         {}s` as fast as it goes, N = {}, {} round(s), cases alternating; medians; proxy CPU \
         from `/proc` as above. oha and the in-process regions cost more per request than \
         wrk and nginx, so req/s here are below the request-cost table's; the CPU per request \
         is the proxy's own. Meridian closes an HTTP/1.1 client connection after 1000 \
         requests (`limits.keepalive_requests`) and oha reconnects; HTTP/2 connections have \
         no such cap.\n",
        opts.duration, opts.connections, opts.rounds
    );
    let _ = writeln!(md, "- command: `{}`", command_line());
    let _ = writeln!(md, "- meridian: {}", binary_source(&opts.bin_dir));
    md.push('\n');
    let cpu = |c: &Case| median(c.runs.iter().filter_map(|(_, c)| *c).collect());
    let per_s = |c: &Case| median(c.runs.iter().map(|(t, _)| t.per_s).collect());
    let instr = |c: &Case| median(c.instructions.clone());
    // The HTTP/1.1 row of the same proxy and upstream, and bare Pingora's of the same
    // upstream and client.
    let h1_of = |c: &Case| {
        h.cases
            .iter()
            .find(|x| x.kind == c.kind && x.upstream_h2 == c.upstream_h2 && !x.client.http2)
    };
    let bare_of = |c: &Case| {
        h.cases.iter().find(|x| {
            x.kind == Kind::PingoraRr && x.upstream_h2 == c.upstream_h2 && x.client == c.client
        })
    };
    let up = |c: &Case| if c.upstream_h2 { "h2c" } else { "HTTP/1.1" };
    let _ = writeln!(
        md,
        "| system | upstream | client | req/s | proxy CPU µs/req | vs HTTP/1.1 client | vs bare Pingora | errors |"
    );
    let _ = writeln!(md, "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for c in h.cases.iter().filter(|c| !c.runs.is_empty()) {
        let errors: u64 = c.runs.iter().map(|(t, _)| t.errors).sum();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {errors} |",
            c.kind.name(),
            up(c),
            c.client.label(),
            fmt(per_s(c), 0),
            fmt(cpu(c), 1),
            ratio(cpu(c), h1_of(c).and_then(&cpu)),
            ratio(cpu(c), bare_of(c).and_then(&cpu)),
        );
    }
    md.push('\n');
    if !h.counted {
        return;
    }
    let _ = writeln!(
        md,
        "Instructions per request under callgrind, as in the instructions table (whole \
         process, counters zeroed just before each run and dumped after it), one process per \
         proxy and upstream protocol, every client in turn: {} warm-up requests, then {} \
         run(s) of exactly {} requests, each from oha with N = {}. oha's connection set-up \
         (N connections, HTTP/2's preface and SETTINGS) falls inside each run; spread is \
         (max - min) / median.\n",
        h.instr_warmup,
        opts.instr_runs,
        h.instr_requests,
        crate::instr::CONNECTIONS
    );
    let runs = h
        .cases
        .iter()
        .map(|c| c.instructions.len())
        .max()
        .unwrap_or(0);
    let mut head = String::from("| system | upstream | client |");
    let mut rule = String::from("| --- | --- | --- |");
    for i in 1..=runs {
        let _ = write!(head, " run {i} |");
        rule.push_str(" ---: |");
    }
    let _ = writeln!(
        md,
        "{head} median | spread | vs HTTP/1.1 client | vs bare Pingora |\n{rule} ---: | ---: | ---: | ---: |"
    );
    let instr_clients = crate::http2::clients(crate::instr::CONNECTIONS);
    for c in h.cases.iter().filter(|c| !c.instructions.is_empty()) {
        let client = instr_clients
            .iter()
            .find(|x| x.http2 == c.client.http2 && x.parallel == c.client.parallel)
            .copied()
            .unwrap_or(c.client);
        let mut row = format!("| {} | {} | {} |", c.kind.name(), up(c), client.label());
        for i in 0..runs {
            let _ = write!(row, " {} |", fmt(c.instructions.get(i).copied(), 0));
        }
        let _ = writeln!(
            md,
            "{row} {} | {} | {} | {} |",
            fmt(instr(c), 0),
            spread(&c.instructions).map_or("-".into(), |s| format!("{:.2}%", s * 100.0)),
            ratio(instr(c), h1_of(c).and_then(&instr)),
            ratio(instr(c), bare_of(c).and_then(&instr)),
        );
    }
    md.push('\n');
}

const STREAM_ACCOUNTING: &str = "### Usage accounting: instructions per request, streamed and not";

/// The subsection on what reading token usage costs on whole and streamed answers, with its
/// own command line and source (so it stands on its own when merged in alone).
fn stream_accounting(md: &mut String, s: &StreamAccounting, opts: &Opts) {
    let tokens: Vec<String> = opts.stream_tokens.iter().map(u32::to_string).collect();
    let _ = writeln!(
        md,
        "{STREAM_ACCOUNTING}\n\nWhat reading the token usage of answers costs, streamed \
         and not. The same Meridian binary and default config as above, without models \
         (as the first table; every answer of the model APIs is read for its usage either \
         way), in front of the five mock regions of the model-routing table. Requests: \
         OpenAI chat completions of {} KiB asking for exactly {} tokens (`max_tokens`), \
         answered **not streamed** (one JSON answer; Meridian keeps its chunks and parses \
         the top-level `usage` once at the end), **streamed** (`\"stream\": true`: \
         server-sent events, one chunk per token, then the closing chunk and `[DONE]`; no \
         usage, so Meridian counts the answer as unknown) and **streamed, include_usage** \
         (`\"stream_options\": {{\"include_usage\": true}}`: every chunk carries \
         `\"usage\": null` and one more chunk before `[DONE]` the usage; Meridian searches \
         each chunk's bytes for `\"usage\":{{` and parses only that event). In streams \
         the regions send one token every {} ms, so that each chunk reaches Meridian on its \
         own, as from an inference engine (the closing chunk, the usage chunk and `[DONE]` \
         go out back to back); a whole answer goes out at once. The HTTP chunks each stream \
         reached the client in say how many pieces Meridian read it in: it sends each piece \
         on as one chunk. The client \
         reads every answer whole (a chunked stream to its last chunk) over {} keep-alive \
         connections and checks it: the tokens, the usage only where asked, `[DONE]` last. \
         One Meridian process for all cases; per case, the warm-up, then {} run(s) between \
         `callgrind_control -z` and `-d`. Medians of the runs; spread is (max - min) / \
         median. Events are the server-sent events of one answer; per event is the \
         median per request divided by them. Background is Meridian's instructions per \
         second with no request in flight (health probes, timers), times a run's wall time, \
         per request: an estimate of how much of the figure is not the request's.\n",
        s.kib,
        tokens.join(" and "),
        s.token_ms,
        s.connections,
        opts.instr_runs,
    );
    let _ = writeln!(md, "- command: `{}`", command_line());
    let _ = writeln!(md, "- meridian: {}", binary_source(&opts.bin_dir));
    let _ = writeln!(
        md,
        "- Meridian's own count (`/metrics`, over each case's warm-up and runs): every whole \
         answer and every include_usage stream counted with exactly its output tokens, every \
         stream without usage as unknown ({} answers in all)",
        s.cases
            .iter()
            .map(|c| c.warmup + c.requests * u64::from(opts.instr_runs))
            .sum::<u64>()
    );
    let _ = writeln!(
        md,
        "- idle: {:.0} instructions per second over {} s with no request in flight (`{}`)\n",
        s.idle_per_s, s.idle_secs, s.idle_dump
    );
    let merged: Vec<String> = s
        .cases
        .iter()
        .filter_map(|c| {
            let (lo, _, _) = c.chunks.summary()?;
            // Each token on its own, the closing events together or not.
            c.answer.events(c.tokens)?;
            let reads = u64::from(c.tokens) + 1;
            (lo < reads).then(|| format!("{} tokens {}: as few as {lo}", c.tokens, c.answer.name()))
        })
        .collect();
    md.pop();
    if merged.is_empty() {
        let _ = writeln!(
            md,
            "- chunks: every streamed answer reached the client in at least one HTTP chunk \
             per token and one for the closing events: Meridian read each token's event on \
             its own\n"
        );
    } else {
        let _ = writeln!(
            md,
            "- chunks: some streamed answers reached the client in fewer HTTP chunks than \
             their tokens plus one (the closing events), so Meridian read some tokens' \
             events together (it fell behind the pace now and then; each such read saves \
             the cost of one): {}\n",
            merged.join("; ")
        );
    }
    let _ = writeln!(
        md,
        "| tokens | answer | events | HTTP chunks min / mean / max | warm-up | requests per run | instructions per request | spread | per event | vs not streamed | background per request | run s | Meridian counted: output tokens / unknown | dumps |"
    );
    let _ = writeln!(
        md,
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    let med = |c: &crate::instr::StreamCase| median(c.runs.iter().map(|r| r.per_request).collect());
    let find =
        |tokens: u32, a: Answer| s.cases.iter().find(|c| c.tokens == tokens && c.answer == a);
    for c in &s.cases {
        let m = med(c);
        let per: Vec<f64> = c.runs.iter().map(|r| r.per_request).collect();
        let secs = median(c.runs.iter().map(|r| r.seconds).collect());
        let events = c.answer.events(c.tokens);
        let whole = find(c.tokens, Answer::Json).and_then(med);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} |",
            c.tokens,
            c.answer.name(),
            events.map_or("1 (JSON)".into(), |e| e.to_string()),
            c.chunks
                .summary()
                .map_or("-".into(), |(lo, mean, hi)| format!(
                    "{lo} / {mean:.1} / {hi}"
                )),
            c.warmup,
            c.requests,
            fmt(m, 0),
            spread(&per).map_or("-".into(), |s| format!("{:.2}%", s * 100.0)),
            events.map_or("-".into(), |e| fmt(m.map(|m| m / f64::from(e)), 0)),
            if c.answer == Answer::Json {
                "-".into()
            } else {
                fmt(ratio_f(m, whole), 3) + "x"
            },
            fmt(secs.map(|t| s.idle_per_s * t / c.requests as f64), 0),
            fmt(secs, 1),
            c.counted.output_tokens,
            c.counted.unknown,
            c.runs
                .iter()
                .map(|r| format!("`{}`", r.dump))
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    md.push('\n');
    // What each answer costs per extra token, between consecutive token counts.
    let mut counts = opts.stream_tokens.clone();
    counts.sort_unstable();
    counts.dedup();
    if counts.len() >= 2 {
        let _ = writeln!(
            md,
            "Per extra token, between token counts (a streamed token is one more chunk; a \
             whole answer's is a longer JSON text):\n"
        );
        let _ = writeln!(
            md,
            "| from tokens | to tokens | not streamed | streamed | streamed, include_usage | include_usage - streamed |"
        );
        let _ = writeln!(md, "| ---: | ---: | ---: | ---: | ---: | ---: |");
        for w in counts.windows(2) {
            let dt = f64::from(w[1]) - f64::from(w[0]);
            let slope = |a: Answer| {
                diff(find(w[1], a).and_then(med), find(w[0], a).and_then(med)).map(|d| d / dt)
            };
            let (j, st, su) = (
                slope(Answer::Json),
                slope(Answer::Stream),
                slope(Answer::StreamUsage),
            );
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                w[0],
                w[1],
                fmt(j, 0),
                fmt(st, 0),
                fmt(su, 0),
                diff(su, st).map_or("-".into(), |d| format!("{d:+.0}")),
            );
        }
        md.push('\n');
    }
    let _ = writeln!(
        md,
        "| tokens | streamed - not streamed | include_usage - streamed (the usage chunk and `\"usage\": null` in every chunk) |"
    );
    let _ = writeln!(md, "| ---: | ---: | ---: |");
    for &t in &counts {
        let m = |a| find(t, a).and_then(med);
        let (j, st, su) = (m(Answer::Json), m(Answer::Stream), m(Answer::StreamUsage));
        let _ = writeln!(
            md,
            "| {t} | {} | {} |",
            diff(st, j).map_or("-".into(), |d| format!("{d:+.0}")),
            diff(su, st).map_or("-".into(), |d| format!("{d:+.0}")),
        );
    }
    md.push('\n');
}

fn met(v: Option<bool>) -> String {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "not measured",
    }
    .into()
}

/// This process's arguments as a shell would take them back.
fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=,:@+".contains(c))
            {
                a
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The binary and the commit of the checkout it was built in, with a note when that
/// checkout's sources had uncommitted changes.
fn binary_source(bin_dir: &Path) -> String {
    let bin = bin_dir.join("meridian");
    let git = |dir: &Path, args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(root) = git(bin_dir, &["rev-parse", "--show-toplevel"]) else {
        return format!("`{}`", bin.display());
    };
    let root = Path::new(&root);
    let commit = git(root, &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "?".into());
    let dirty = git(root, &["status", "--porcelain", "--", "src"]).is_some_and(|s| !s.is_empty());
    format!(
        "`{}`, built at commit {commit} in {}{}",
        bin.display(),
        root.display(),
        if dirty {
            ", with uncommitted changes under src/"
        } else {
            ""
        }
    )
}

/// The headings of the sections a run of `opts.only` measured, as they appear in `text`.
pub fn owned(opts: &Opts, text: &str) -> Vec<String> {
    let mut own: Vec<&str> = Vec::new();
    for (phase, heading) in [
        ("throughput", "## Request cost"),
        ("latency", "## Added latency"),
        ("memory", "## Memory"),
        ("soak", "## Memory"),
        ("instructions", INSTRUCTIONS),
        ("instructions-models", MODEL_ROUTING),
        ("instructions-affinity", AFFINITY),
        ("instructions-streams", STREAM_ACCOUNTING),
        ("http2", HTTP2),
        ("streaming", "## Streaming"),
    ] {
        if opts.runs(phase) {
            own.push(heading);
        }
    }
    own.push("## Problems during the run");
    own.into_iter()
        .filter(|h| text.lines().any(|l| l == *h))
        .map(String::from)
        .collect()
}

/// A markdown text cut at its `##` and `###` headings: (heading, the lines up to the next).
fn blocks(text: &str) -> Vec<(Option<String>, String)> {
    let mut out: Vec<(Option<String>, String)> = vec![(None, String::new())];
    for line in text.split_inclusive('\n') {
        let l = line.trim_end_matches('\n');
        if l.starts_with("## ") || l.starts_with("### ") {
            out.push((Some(l.to_string()), String::new()));
        }
        if let Some(last) = out.last_mut() {
            last.1.push_str(line);
        }
    }
    out
}

/// `old` with the sections of `new` whose headings are in `owned` put in place of its own
/// (or, when it has none, after the section that precedes them in `new`); everything else
/// of `old`, its header included, is kept as it was.
pub fn merge(old: &str, new: &str, owned: &[String]) -> String {
    let mut out = blocks(old);
    let incoming = blocks(new);
    let in_new = |h: &str| incoming.iter().any(|(k, _)| k.as_deref() == Some(h));
    let mut anchor: Option<usize> = None;
    for (key, body) in incoming.iter().cloned() {
        let Some(k) = &key else { continue };
        let found = out.iter().position(|(ok, _)| ok.as_ref() == Some(k));
        if owned.contains(k) {
            let mut body = body;
            if !body.ends_with("\n\n") {
                body.push('\n');
            }
            match found {
                Some(i) => {
                    out[i].1 = body;
                    anchor = Some(i);
                }
                None => {
                    // After the preceding section and the subsections of `old` that
                    // follow it and this run did not write (another phase's, kept).
                    let mut at = anchor.map_or(out.len(), |a| a + 1);
                    while out
                        .get(at)
                        .and_then(|(k, _)| k.as_deref())
                        .is_some_and(|h| h.starts_with("### ") && !in_new(h))
                    {
                        at += 1;
                    }
                    out.insert(at, (key.clone(), body));
                    anchor = Some(at);
                }
            }
        } else if let Some(i) = found {
            anchor = Some(i);
        }
    }
    out.into_iter().map(|(_, b)| b).collect()
}

fn fmt(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        _ => "-".into(),
    }
}

/// (max - min) / median, for two or more figures.
fn spread(v: &[f64]) -> Option<f64> {
    if v.len() < 2 {
        return None;
    }
    let max = v.iter().copied().fold(f64::MIN, f64::max);
    let min = v.iter().copied().fold(f64::MAX, f64::min);
    ratio_f(Some(max - min), median(v.to_vec()))
}

fn diff(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? - b?)
}

fn ratio_f(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    let (a, b) = (a?, b?);
    (b > 0.0).then(|| a / b)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match ratio_f(a, b) {
        Some(r) if r.is_finite() => format!("{r:.2}x"),
        _ => "-".into(),
    }
}

/// Mean ns per decision for each endpoint count criterion recorded.
pub fn read_criterion(dir: &Path) -> Vec<(usize, f64)> {
    let mut out = Vec::new();
    for n in [4usize, 64, 1024] {
        let path = dir.join(format!("select/{n}/new/estimates.json"));
        let ns = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["mean"]["point_estimate"].as_f64());
        if let Some(ns) = ns {
            out.push((n, ns));
        }
    }
    out
}

/// The version a pinned requirements file gives `package`.
fn pinned(file: &str, package: &str) -> String {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix(&format!("{package}==")).map(str::to_string))
        })
        .map_or_else(
            || format!("{package} not pinned"),
            |v| format!("{package} {v}"),
        )
}

/// One line on the machine and tool versions.
fn machine(opts: &Opts) -> String {
    let cmd = |c: &str, args: &[&str]| {
        Command::new(c)
            .args(args)
            .output()
            .ok()
            .map(|o| {
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
                text.lines().next().unwrap_or("").trim().to_string()
            })
            .unwrap_or_else(|| "not found".into())
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let valgrind = opts.valgrind.to_string_lossy();
    format!(
        "Commit {}, {cores} cores, kernel {}, {} build. Tools: {}; {}; {}; {}; {}; {}; {}.",
        cmd("git", &["rev-parse", "--short", "HEAD"]),
        cmd("uname", &["-r"]),
        if opts.bin_dir.ends_with("debug") {
            "debug"
        } else {
            "release"
        },
        cmd("nginx", &["-v"]),
        cmd("haproxy", &["-v"]),
        cmd("wrk", &["-v"]),
        cmd("oha", &["--version"]),
        cmd(valgrind.as_ref(), &["--version"]),
        pinned("bench/vllm-router-requirements.txt", "vllm-router"),
        pinned("bench/litellm-requirements.txt", "litellm"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "# Performance results\n\nWritten by a full run.\n\n## Request cost\n\nold cost\n\n## Instructions per request\n\nold table\n\n## Targets\n\nold targets\n";

    #[test]
    fn a_partial_run_replaces_only_its_sections() {
        let new = "# Performance results\n\nWritten by a partial run.\n\n## Request cost\n\nempty\n\n## Instructions per request\n\n### Model routing: instructions per request by body size\n\nnew models\n\n## Targets\n\nnot measured\n";
        let owned = vec![MODEL_ROUTING.to_string()];
        let m = merge(OLD, new, &owned);
        assert_eq!(
            m,
            "# Performance results\n\nWritten by a full run.\n\n## Request cost\n\nold cost\n\n## Instructions per request\n\nold table\n\n### Model routing: instructions per request by body size\n\nnew models\n\n## Targets\n\nold targets\n"
        );
        // Run again: replaced in place, not added twice.
        let again = merge(&m, &new.replace("new models", "newer"), &owned);
        assert!(again.contains("newer") && !again.contains("new models"));
        assert_eq!(again.matches(MODEL_ROUTING).count(), 1);
        // The instructions phase replaces its table and keeps the subsection after it.
        let instr = "## Instructions per request\n\nnew table\n\n";
        let both = merge(&again, instr, &[INSTRUCTIONS.to_string()]);
        assert!(both.contains("new table\n\n### Model routing"));
        assert!(both.contains("newer") && both.contains("old cost"));
        // A new subsection goes after the ones already there that this run did not write.
        let streams = "## Instructions per request\n\n### Usage accounting: instructions per request, streamed and not\n\nstreams\n\n## Targets\n\nnot measured\n";
        let three = merge(&both, streams, &[STREAM_ACCOUNTING.to_string()]);
        assert!(three.contains("new table\n\n### Model routing"));
        assert!(three.contains("newer\n\n### Usage accounting"));
        assert!(three.contains("streams\n\n## Targets\n\nold targets"));
    }
}
