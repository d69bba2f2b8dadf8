//! Command-line options. Defaults are the full run; `--smoke` shrinks every phase to
//! seconds so CI can check that the harness still works end to end.

use clap::Parser;
use std::path::PathBuf;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "perf-bench",
    about = "Meridian performance harness (loopback only)"
)]
pub struct Opts {
    /// Seconds of load per system and round in the throughput phase.
    #[arg(long, default_value_t = 8)]
    pub duration: u64,
    /// Rounds of the throughput phase; systems alternate within each round.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// wrk connections in the throughput phase.
    #[arg(long, default_value_t = 50)]
    pub connections: u32,
    /// Offered requests per second in the latency phase (well below saturation).
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// Seconds of the fixed-rate latency phase per system.
    #[arg(long, default_value_t = 10)]
    pub rate_duration: u64,
    /// Idle keep-alive client connections opened for the memory figure.
    #[arg(long, default_value_t = 10_000)]
    pub idle_connections: usize,
    /// Seconds of the memory soak through Meridian.
    #[arg(long, default_value_t = 60)]
    pub soak: u64,
    /// Streams per system in the streaming phase, and tokens per stream.
    #[arg(long, default_value_t = 40)]
    pub streams: usize,
    #[arg(long, default_value_t = 200)]
    pub tokens: u32,
    /// Worker threads or processes given to every proxy.
    #[arg(long, default_value_t = 2)]
    pub threads: u32,
    /// Systems to run, comma separated (default: all).
    #[arg(long, value_delimiter = ',')]
    pub systems: Vec<String>,
    /// Phases to run, comma separated: throughput, latency, memory, soak, instructions,
    /// instructions-models, instructions-affinity, instructions-streams, http2, streaming
    /// (default: all).
    /// `http2` measures Meridian and bare Pingora with h2c on their listener, upstream over
    /// HTTP/1.1 and over h2c, loaded by oha over HTTP/1.1 and h2c: req/s and proxy CPU
    /// (`--duration`, `--rounds`, `--connections`), then instructions per request under
    /// callgrind (`--h2-instr-requests`, `--instr-runs`).
    /// `instructions-models` counts Meridian's instructions per request without and with
    /// models declared, on chat bodies of each `--body-kib` size. `instructions-streams`
    /// counts them for 1 KiB chat completions answered whole, streamed (SSE), and streamed
    /// with `stream_options.include_usage` (the usage chunk), at each `--stream-tokens`
    /// count: what reading token usage costs per request and per streamed chunk.
    /// `instructions-affinity` counts them on 1 KiB chat completions with prompt-cache
    /// affinity off and on, without and with models, the key from the prompt prefix or
    /// (with models) an `x-session-id` header, every request with the same key: what a key
    /// already known costs (`--instr-requests`, `--instr-runs`, `--instr-warmup`; one
    /// Meridian process under callgrind for each of five configs, two in a smoke). These
    /// three need meridian among `--systems`. With `--only`, the results file keeps every
    /// section this run did not measure.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Request body sizes in KiB for the instructions-models phase, comma separated
    /// (1..=1000). Each size's runs send `--instr-requests` divided by the size, at least a
    /// fortieth of it; three sizes or more let the report judge whether the cost grows
    /// linearly.
    #[arg(long, value_delimiter = ',', default_values_t = [1u32, 10, 100])]
    pub body_kib: Vec<u32>,
    /// Output tokens per answer in the instructions-streams phase, comma separated
    /// (1..=4096; `--smoke` caps them at 32): a streamed answer has one chunk per token, so
    /// two counts or more give the cost per chunk.
    #[arg(long, value_delimiter = ',', default_values_t = [16u32, 256])]
    pub stream_tokens: Vec<u32>,
    /// Requests per callgrind run in the instructions-streams phase, at the smallest
    /// `--stream-tokens` count; longer streams get proportionally fewer (about the same
    /// chunks per run), at least a fortieth; whole answers always this many. The warm-up
    /// is a fifth of a run, at least 10.
    #[arg(long, default_value_t = 1000)]
    pub stream_requests: u64,
    /// Milliseconds between streamed chunks from the mock regions in the
    /// instructions-streams phase (and for a whole answer, this times its tokens before
    /// it), so every chunk reaches Meridian on its own, as from an inference engine. 0
    /// sends them as fast as they are made: several then arrive in one read.
    #[arg(long, default_value_t = 1)]
    pub stream_token_ms: u64,
    /// Client connections in the instructions-streams phase, each one request at a time.
    #[arg(long, default_value_t = 2)]
    pub stream_connections: u32,
    /// Offered rate for the AI-gateway comparison (direct, Meridian, vllm-router, LiteLLM),
    /// low enough for LiteLLM to keep up.
    #[arg(long, default_value_t = 20)]
    pub gateway_rate: u32,
    /// The Meridian config the harness adapts (addresses, paths and threads swapped in);
    /// another file measures a variant, e.g. with the access log off.
    #[arg(long, default_value = "conf/meridian.yaml")]
    pub meridian_config: PathBuf,
    /// Keep the working folder (configs, logs, callgrind dumps for callgrind_annotate)
    /// even when the run went well; its path is printed.
    #[arg(long)]
    pub keep: bool,
    /// Where meridian and pingora-rr were built.
    #[arg(long, default_value = "target/release")]
    pub bin_dir: PathBuf,
    /// The litellm command (from the virtualenv run.sh creates).
    #[arg(long, default_value = "bench/.venv/bin/litellm")]
    pub litellm: PathBuf,
    /// The vllm-router command (from the virtualenv run.sh creates).
    #[arg(long, default_value = "bench/.venv-vllm/bin/vllm-router")]
    pub vllm_router: PathBuf,
    /// Requests per callgrind run in the instructions phase (Meridian and bare Pingora).
    #[arg(long, default_value_t = 20_000)]
    pub instr_requests: u64,
    /// Callgrind runs per system, each on counters zeroed just before it.
    #[arg(long, default_value_t = 3)]
    pub instr_runs: u32,
    /// Requests per callgrind run and client in the http2 phase (each of Meridian and bare
    /// Pingora, upstream over HTTP/1.1 and over h2c, clients HTTP/1.1, h2c and h2c
    /// multiplexed); the warm-up is a tenth.
    #[arg(long, default_value_t = 10_000)]
    pub h2_instr_requests: u64,
    /// Requests before the first callgrind run (pools, caches, first-request work).
    #[arg(long, default_value_t = 2_000)]
    pub instr_warmup: u64,
    /// The valgrind command.
    #[arg(long, default_value = "valgrind")]
    pub valgrind: PathBuf,
    /// Criterion's output folder, for the selection micro-benchmark figures.
    #[arg(long, default_value = "target/criterion")]
    pub criterion: PathBuf,
    /// Where the results are written.
    #[arg(long, default_value = "bench/RESULTS.md")]
    pub out: PathBuf,
    /// Seconds of every phase instead of the defaults: a quick check that all works. Without
    /// `--systems`, it runs only the systems whose programs are already on the machine.
    #[arg(long)]
    pub smoke: bool,
}

/// Every phase `--only` accepts.
pub const PHASES: [&str; 10] = [
    "throughput",
    "latency",
    "memory",
    "soak",
    "instructions",
    "instructions-models",
    "instructions-affinity",
    "instructions-streams",
    "http2",
    "streaming",
];

impl Opts {
    pub fn runs(&self, phase: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == phase)
    }

    /// Unknown phases and body sizes out of range, named.
    pub fn check(&self) -> Result<(), String> {
        if let Some(p) = self.only.iter().find(|p| !PHASES.contains(&p.as_str())) {
            return Err(format!(
                "unknown phase {p:?} (phases: {})",
                PHASES.join(", ")
            ));
        }
        if self.body_kib.is_empty() || self.body_kib.iter().any(|k| !(1..=1000).contains(k)) {
            return Err("--body-kib sizes must be within 1..=1000".into());
        }
        if self.stream_tokens.is_empty()
            || self.stream_tokens.iter().any(|t| !(1..=4096).contains(t))
        {
            return Err("--stream-tokens counts must be within 1..=4096".into());
        }
        if self.stream_connections == 0 || self.stream_requests == 0 {
            return Err("--stream-connections and --stream-requests must be at least 1".into());
        }
        Ok(())
    }

    /// The options with `--smoke` applied.
    pub fn effective(mut self) -> Self {
        if self.smoke {
            self.duration = 1;
            self.rounds = 1;
            self.rate = 50;
            self.gateway_rate = 10;
            self.rate_duration = 1;
            self.idle_connections = self.idle_connections.min(200);
            self.soak = 2;
            self.streams = 4;
            self.tokens = 20;
            // Under callgrind a debug build serves tens of requests a second (a few per
            // second over h2c): a handful per run checks the counting end to end.
            self.instr_requests = self.instr_requests.min(20);
            self.instr_runs = self.instr_runs.min(2);
            self.instr_warmup = self.instr_warmup.min(10);
            self.h2_instr_requests = self.h2_instr_requests.min(20);
            self.stream_requests = self.stream_requests.min(10);
            // Short streams: a debug build under callgrind falls far behind the pace.
            for t in &mut self.stream_tokens {
                *t = (*t).min(32);
            }
            self.stream_tokens.dedup();
        }
        self
    }
}
