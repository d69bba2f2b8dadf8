//! Per-region state shared between the accept loop, the handlers and the
//! owning [`crate::MockRegion`] handle.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use hyper::header::HeaderValue;
use tokio::sync::watch;

use crate::capacity::Capacity;
use crate::counts::{Category, Counts};
use crate::models::{self, MockModel, Resolved};
use crate::prefix_cache::{Prefix, PrefixCache};
use crate::seen::Seen;
use crate::spec::RegionSpec;
use crate::timing::Prefill;
use crate::usage::{Totals, Usage};

/// Knobs that may change while the region is serving.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    pub latency_ms: u64,
    pub work_ms: u64,
    pub token_ms: u64,
    pub fail_status: Option<u16>,
    /// Failures left before the region recovers on its own; `None` fails for
    /// as long as `fail_status` is set.
    pub fail_count: Option<u64>,
    pub retry_after_s: Option<u64>,
    pub stream_abort_after: Option<u32>,
    /// Reset the connection (no answer) once a non-probe request's body is read.
    pub reset_after_body: bool,
    /// Alternate up and down every this many milliseconds; while down every request,
    /// probes included, has its connection reset.
    pub flap_ms: Option<u64>,
    /// Report token usage in answers; off, the region reports none at all.
    pub usage: bool,
    /// Prompt tokens reported as read from the cache (capped at the prompt's).
    pub cached_tokens: u64,
    /// Answer `/health` (off: 404, as a provider without a health endpoint).
    pub health_route: bool,
    /// Prefill time per prompt token not read from the prefix cache, in microseconds.
    pub prefill_us_per_token: u64,
}

/// Request targets kept for [`RegionState::targets`]; older ones are dropped.
const MAX_TARGETS: usize = 256;

/// How one request is to fail.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Failure {
    pub status: u16,
    pub retry_after_s: Option<u64>,
}

pub(crate) struct RegionState {
    pub name: String,
    pub header: HeaderValue,
    pub capacity: Arc<Capacity>,
    settings: Mutex<Settings>,
    model_version: Mutex<String>,
    /// Served models; empty serves any.
    models: Mutex<Vec<MockModel>>,
    seen: Mutex<Seen>,
    counts: Mutex<Counts>,
    // Headers of the last non-probe request, so a test can check what a proxy forwarded.
    last_headers: Mutex<Vec<(String, String)>>,
    // Headers of the last health probe.
    last_probe_headers: Mutex<Vec<(String, String)>>,
    /// `METHOD target` of recent requests (control excluded), oldest first.
    targets: Mutex<std::collections::VecDeque<String>>,
    /// Served under this path prefix (`/openai`), as a gateway mounted under a path is.
    mount: Mutex<Option<String>>,
    // Watch channels rather than flags so waiting requests and held streams
    // wake as soon as the switch is released instead of polling.
    hold: watch::Sender<bool>,
    hang: watch::Sender<bool>,
    blackhole: watch::Sender<bool>,
    /// When flapping started; the phase is counted from here.
    flap_epoch: Mutex<std::time::Instant>,
    id_seq: AtomicU64,
    /// Tokens reported in answers so far.
    tokens: Mutex<Totals>,
    /// The simulated KV prefix cache, when the spec asks for one.
    prefix_cache: Option<Mutex<PrefixCache>>,
}

/// A handler that panicked while holding a lock must not take the whole
/// region down with it; the guarded data is plain counters and numbers.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RegionState {
    pub fn new(spec: &RegionSpec, header: HeaderValue) -> Self {
        RegionState {
            name: spec.name.clone(),
            header,
            capacity: Arc::new(Capacity::new(spec.capacity)),
            settings: Mutex::new(Settings {
                latency_ms: spec.latency_ms,
                work_ms: spec.work_ms,
                token_ms: spec.token_ms,
                fail_status: None,
                fail_count: None,
                retry_after_s: None,
                stream_abort_after: None,
                reset_after_body: false,
                flap_ms: None,
                usage: true,
                cached_tokens: 0,
                health_route: true,
                prefill_us_per_token: spec.prefill_us_per_token,
            }),
            model_version: Mutex::new(spec.model_version.clone()),
            models: Mutex::new(spec.models.clone()),
            seen: Mutex::new(Seen::default()),
            counts: Mutex::new(Counts::default()),
            last_headers: Mutex::new(Vec::new()),
            last_probe_headers: Mutex::new(Vec::new()),
            targets: Mutex::new(std::collections::VecDeque::new()),
            mount: Mutex::new(None),
            hold: watch::Sender::new(false),
            hang: watch::Sender::new(false),
            blackhole: watch::Sender::new(false),
            flap_epoch: Mutex::new(std::time::Instant::now()),
            id_seq: AtomicU64::new(0),
            tokens: Mutex::new(Totals::default()),
            prefix_cache: spec.prefix_cache.map(|c| Mutex::new(PrefixCache::new(c))),
        }
    }

    pub fn settings(&self) -> Settings {
        *lock(&self.settings)
    }

    pub fn update(&self, f: impl FnOnce(&mut Settings)) {
        f(&mut lock(&self.settings));
    }

    /// Decides whether this request fails, using up one of a limited number
    /// of failures. A limited number of failures is meant for requests, so a
    /// health probe never takes one (a probe racing a test's request would
    /// otherwise steal it); an unlimited `fail_status` fails probes too. When
    /// the last one is used the failure mode is switched off entirely, so a
    /// later `fail_status` alone fails everything again instead of being
    /// silently cancelled by a spent counter.
    pub fn take_failure(&self, probe: bool) -> Option<Failure> {
        let mut s = lock(&self.settings);
        let status = s.fail_status?;
        match s.fail_count {
            Some(_) if probe => return None,
            Some(0) => return None,
            Some(1) => {
                s.fail_status = None;
                s.fail_count = None;
            }
            Some(n) => s.fail_count = Some(n - 1),
            None => {}
        }
        Some(Failure {
            status,
            retry_after_s: s.retry_after_s,
        })
    }

    pub fn model_version(&self) -> String {
        lock(&self.model_version).clone()
    }

    pub fn set_model_version(&self, version: &str) {
        *lock(&self.model_version) = version.to_string();
    }

    pub fn models(&self) -> Vec<MockModel> {
        lock(&self.models).clone()
    }

    pub fn set_models(&self, served: Vec<MockModel>) {
        *lock(&self.models) = served;
    }

    pub fn resolve_model(&self, requested: Option<&str>) -> Resolved {
        models::resolve(&lock(&self.models), requested)
    }

    pub fn observe_model(&self, model: Option<&str>, body: &Bytes) {
        lock(&self.seen).record(model, body);
    }

    pub fn last_model(&self) -> Option<String> {
        lock(&self.seen).last_model()
    }

    pub fn last_body(&self) -> Option<Bytes> {
        lock(&self.seen).last_body()
    }

    pub fn model_counts(&self) -> BTreeMap<String, u64> {
        lock(&self.seen).per_model()
    }

    pub fn counts(&self) -> Counts {
        lock(&self.counts).clone()
    }

    pub fn record(&self, category: Category) {
        lock(&self.counts).record(category);
    }

    pub fn record_failed_probe(&self) {
        lock(&self.counts).health_failed += 1;
    }

    pub fn record_headers(&self, headers: &hyper::HeaderMap) {
        *lock(&self.last_headers) = header_list(headers);
    }

    pub fn record_probe_headers(&self, headers: &hyper::HeaderMap) {
        *lock(&self.last_probe_headers) = header_list(headers);
    }

    pub fn record_target(&self, method: &str, target: &str) {
        let mut t = lock(&self.targets);
        if t.len() == MAX_TARGETS {
            t.pop_front();
        }
        t.push_back(format!("{method} {target}"));
    }

    pub fn targets(&self) -> Vec<String> {
        lock(&self.targets).iter().cloned().collect()
    }

    pub fn set_mount(&self, prefix: Option<String>) {
        *lock(&self.mount) = prefix;
    }

    /// `path` with the mount prefix removed; `None` when it is outside the mount.
    pub fn unmounted<'a>(&self, path: &'a str) -> Option<&'a str> {
        match lock(&self.mount).as_deref() {
            None => Some(path),
            Some(prefix) => path
                .strip_prefix(prefix)
                .filter(|rest| rest.starts_with('/')),
        }
    }

    pub fn last_probe_headers(&self) -> Vec<(String, String)> {
        lock(&self.last_probe_headers).clone()
    }

    pub fn last_headers(&self) -> Vec<(String, String)> {
        lock(&self.last_headers).clone()
    }

    pub fn set_hold(&self, hold: bool) {
        self.hold.send_replace(hold);
    }

    pub fn is_held(&self) -> bool {
        *self.hold.borrow()
    }

    pub fn hold_watch(&self) -> watch::Receiver<bool> {
        self.hold.subscribe()
    }

    pub fn set_hang(&self, hang: bool) {
        self.hang.send_replace(hang);
    }

    pub fn is_hung(&self) -> bool {
        *self.hang.borrow()
    }

    /// Returns once the region is not hung; at once if it is not.
    pub async fn wait_unhung(&self) {
        let mut hang = self.hang.subscribe();
        // The sender lives in this state, so this only returns once hang is
        // cleared; a client leaving drops the whole request future instead.
        let _ = hang.wait_for(|hung| !*hung).await;
    }

    pub fn set_blackhole(&self, on: bool) {
        self.blackhole.send_replace(on);
    }

    pub fn is_blackholed(&self) -> bool {
        *self.blackhole.borrow()
    }

    /// Returns once the region answers again; at once if it does.
    pub async fn wait_unblackholed(&self) {
        let mut b = self.blackhole.subscribe();
        let _ = b.wait_for(|on| !*on).await;
    }

    /// Restarts the flapping cycle (up first) from now.
    pub fn restart_flap(&self) {
        *lock(&self.flap_epoch) = std::time::Instant::now();
    }

    /// Whether a flapping region is in its down half-cycle.
    pub fn flapped_down(&self) -> bool {
        let Some(period) = self.settings().flap_ms.filter(|ms| *ms > 0) else {
            return false;
        };
        let elapsed = lock(&self.flap_epoch).elapsed().as_millis() as u64;
        (elapsed / period) % 2 == 1
    }

    /// A prompt of `prompt` tokens with these prefixes reaches the engine: what the
    /// prefix cache holds of it (then every prefix is cached), and the prefill time the
    /// rest costs. Without a cache nothing is cached and every token is prefilled.
    pub fn prefill(&self, prefixes: &[Prefix], prompt: u64) -> Prefill {
        let cached = self
            .prefix_cache
            .as_ref()
            .map_or(0, |c| lock(c).lookup_and_insert(prefixes))
            .min(prompt);
        let per_token = self.settings().prefill_us_per_token;
        Prefill {
            cached,
            micros: per_token.saturating_mul(prompt - cached),
        }
    }

    /// The usage an answer is to report with the settings as they are now,
    /// or `None` when the region reports none. `prefill.cached` tokens came from
    /// the prefix cache; the `cached_tokens` setting, when larger, wins.
    pub fn usage(&self, prompt: u64, completion: u64, prefill: Prefill) -> Option<Usage> {
        let s = self.settings();
        s.usage
            .then(|| Usage::new(prompt, completion, s.cached_tokens.max(prefill.cached)))
    }

    /// [`RegionState::usage`] for a whole answer about to be sent, counted
    /// in the totals.
    pub fn report(&self, prompt: u64, completion: u64, prefill: Prefill) -> Option<Usage> {
        let usage = self.usage(prompt, completion, prefill)?;
        self.record_usage(&usage);
        Some(usage)
    }

    /// Adds what an answer has just reported to the totals.
    pub fn record_usage(&self, usage: &Usage) {
        lock(&self.tokens).add(usage);
    }

    pub fn tokens(&self) -> Totals {
        *lock(&self.tokens)
    }

    /// A fresh answer id such as `chatcmpl-mock-7`, numbered across routes.
    pub fn next_id(&self, prefix: &str) -> String {
        let n = self.id_seq.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{prefix}-{n}")
    }

    /// The body of a successful `GET /health`; `models` only when the region
    /// serves particular ones.
    pub fn health_json(&self) -> serde_json::Value {
        let load = self.capacity.load();
        let mut health = serde_json::json!({
            "status": "ok",
            "region": self.name,
            "in_flight": load.in_flight,
            "queue_depth": load.queue_depth,
            "max_concurrency": self.capacity.limit(),
            "gpu_utilization": self.capacity.utilization(),
            "model_version": self.model_version(),
        });
        let served = self.models();
        if !served.is_empty() {
            health["models"] = serde_json::json!(served);
        }
        health
    }

    /// The body of a successful `GET /v1/models`.
    pub fn models_json(&self) -> serde_json::Value {
        models::list_json(&self.name, &lock(&self.models))
    }

    /// The body of `GET /control` (and of a successful `POST /control`).
    pub fn control_json(&self) -> serde_json::Value {
        let s = self.settings();
        let load = self.capacity.load();
        let tokens = self.tokens();
        serde_json::json!({
            "region": self.name,
            "latency_ms": s.latency_ms,
            "work_ms": s.work_ms,
            "token_ms": s.token_ms,
            "fail_status": s.fail_status,
            "fail_count": s.fail_count,
            "retry_after_s": s.retry_after_s,
            "stream_hold": self.is_held(),
            "stream_abort_after": s.stream_abort_after,
            "hang": self.is_hung(),
            "blackhole": self.is_blackholed(),
            "reset_after_body": s.reset_after_body,
            "flap_ms": s.flap_ms,
            "flapped_down": self.flapped_down(),
            "usage": s.usage,
            "cached_tokens": s.cached_tokens,
            "prefill_us_per_token": s.prefill_us_per_token,
            "prefix_cache": self.prefix_cache_json(),
            "capacity": self.capacity.limit(),
            "model_version": self.model_version(),
            "models": self.models(),
            "in_flight": load.in_flight,
            "queue_depth": load.queue_depth,
            "requests": self.counts(),
            "tokens": {
                "prompt_tokens": tokens.prompt,
                "completion_tokens": tokens.completion,
                "cached_tokens": tokens.cached,
            },
            "last_request_headers": self.last_headers(),
        })
    }
}

impl RegionState {
    /// The prefix cache's size and use, for `/control`; `null` without one.
    fn prefix_cache_json(&self) -> serde_json::Value {
        let Some(cache) = &self.prefix_cache else {
            return serde_json::Value::Null;
        };
        let cache = lock(cache);
        let (lookups, hits) = cache.stats();
        serde_json::json!({
            "entries": cache.len(),
            "capacity": cache.capacity(),
            "lookups": lookups,
            "hits": hits,
        })
    }
}

fn header_list(headers: &hyper::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}
