//! Per-region state shared between the accept loop, the handlers and the
//! owning [`crate::MockRegion`] handle.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use hyper::header::HeaderValue;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// Static description of a region to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionSpec {
    pub name: String,
    pub latency_ms: u64,
    pub work_ms: u64,
    pub token_ms: u64,
}

impl RegionSpec {
    /// A region with no inference work time and 20 ms between stream chunks.
    pub fn new(name: &str, latency_ms: u64) -> Self {
        RegionSpec {
            name: name.to_string(),
            latency_ms,
            work_ms: 0,
            token_ms: 20,
        }
    }
}

/// The five regions `mock-regions` starts when run without arguments.
pub fn default_regions() -> Vec<(RegionSpec, u16)> {
    vec![
        (RegionSpec::new("us-east-1", 100), 8001),
        (RegionSpec::new("me-south-1", 60), 8002),
        (RegionSpec::new("ap-south-1", 50), 8003),
        (RegionSpec::new("brazilsouth", 80), 8004),
        (RegionSpec::new("eu-west-1", 70), 8005),
    ]
}

/// Request counters. Health probes are kept apart from real traffic so tests
/// can tell "the balancer probed this region" from "the balancer routed here".
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Counts {
    pub total: u64,
    pub health: u64,
    pub inference: u64,
    pub chat: u64,
    pub models: u64,
    pub other: u64,
}

impl Counts {
    /// Requests that were not health probes.
    pub fn served(&self) -> u64 {
        self.inference + self.chat + self.models + self.other
    }

    pub(crate) fn record(&mut self, category: Category) {
        self.total += 1;
        let slot = match category {
            Category::Health => &mut self.health,
            Category::Inference => &mut self.inference,
            Category::Chat => &mut self.chat,
            Category::Models => &mut self.models,
            Category::Other => &mut self.other,
        };
        *slot += 1;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Category {
    Health,
    Inference,
    Chat,
    Models,
    Other,
}

/// Knobs that may change while the region is serving.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    pub latency_ms: u64,
    pub work_ms: u64,
    pub token_ms: u64,
    pub fail_status: Option<u16>,
}

pub(crate) struct RegionState {
    pub name: String,
    pub header: HeaderValue,
    settings: Mutex<Settings>,
    counts: Mutex<Counts>,
    // Headers of the last non-probe request, so a test can check what a proxy forwarded.
    last_headers: Mutex<Vec<(String, String)>>,
    // A watch channel rather than a flag so held streams wake as soon as the
    // hold is released instead of polling.
    hold: watch::Sender<bool>,
    chat_seq: AtomicU64,
}

/// A handler that panicked while holding a lock must not take the whole
/// region down with it; the guarded data is plain counters and numbers.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RegionState {
    pub fn new(spec: &RegionSpec, header: HeaderValue) -> Self {
        RegionState {
            name: spec.name.clone(),
            header,
            settings: Mutex::new(Settings {
                latency_ms: spec.latency_ms,
                work_ms: spec.work_ms,
                token_ms: spec.token_ms,
                fail_status: None,
            }),
            counts: Mutex::new(Counts::default()),
            last_headers: Mutex::new(Vec::new()),
            hold: watch::Sender::new(false),
            chat_seq: AtomicU64::new(0),
        }
    }

    pub fn settings(&self) -> Settings {
        *lock(&self.settings)
    }

    pub fn update(&self, f: impl FnOnce(&mut Settings)) {
        f(&mut lock(&self.settings));
    }

    pub fn counts(&self) -> Counts {
        lock(&self.counts).clone()
    }

    pub fn record(&self, category: Category) {
        lock(&self.counts).record(category);
    }

    pub fn record_headers(&self, headers: &hyper::HeaderMap) {
        *lock(&self.last_headers) = headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
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

    pub fn next_chat_id(&self) -> String {
        let n = self.chat_seq.fetch_add(1, Ordering::Relaxed) + 1;
        format!("chatcmpl-mock-{n}")
    }

    /// The body of `GET /control` (and of a successful `POST /control`).
    pub fn control_json(&self) -> serde_json::Value {
        let s = self.settings();
        serde_json::json!({
            "region": self.name,
            "latency_ms": s.latency_ms,
            "work_ms": s.work_ms,
            "token_ms": s.token_ms,
            "fail_status": s.fail_status,
            "stream_hold": self.is_held(),
            "requests": self.counts(),
            "last_request_headers": self.last_headers(),
        })
    }
}
