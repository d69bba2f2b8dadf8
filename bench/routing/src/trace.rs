//! `--trace DIR`: what a run looked like from the inside, for working out why a policy
//! routed as it did. Per policy: every request (`<policy>-requests.csv`), every region's
//! load as sampled (`<policy>-loads.csv`) and, for Meridian, its `/regions/status` every
//! 20 ms (`meridian-status.jsonl`). Load samples count from the run's start; status
//! samples from 200 ms before it (the run's head start). None of it goes into the report.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::Client;
use tokio::time::Instant;

use crate::bench::Traced;
use crate::policy::Policy;
use crate::record::Record;
use crate::scenario::regions::REGIONS;
use crate::scenario::schedule::Kind;

const STATUS_EVERY: Duration = Duration::from_millis(20);

/// Ms since the watch began, and the status body as Meridian gave it.
pub type StatusSample = (f64, String);

/// Reads Meridian's status every [`STATUS_EVERY`] until `stop` is set.
pub async fn watch_status(http: &Client, admin: &str, stop: &AtomicBool) -> Vec<StatusSample> {
    let url = format!("{admin}/regions/status");
    let start = Instant::now();
    let mut out = Vec::new();
    let mut tick = tokio::time::interval(STATUS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let t = start.elapsed().as_secs_f64() * 1000.0;
        let body = async { http.get(&url).send().await.ok()?.text().await.ok() };
        if let Ok(Some(body)) = tokio::time::timeout(STATUS_EVERY * 5, body).await {
            out.push((t, body));
        }
    }
    out
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn write(
    dir: &Path,
    policy: Policy,
    records: &[Record],
    traced: &Traced,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let name = policy.name();
    let mut csv = String::from(
        "id,at_ms,phase,kind,residency,model,region,failure,ttft_ms,total_ms,lag_ms,attempts,prompt_tokens,completion_tokens\n",
    );
    for (id, r) in records.iter().enumerate() {
        let _ = writeln!(
            csv,
            "{id},{:.3},{},{},{},{},{},{},{:.3},{:.3},{:.3},{},{},{}",
            ms(r.at),
            r.phase.name(),
            if r.kind == Kind::Stream {
                "stream"
            } else {
                "plain"
            },
            u8::from(r.residency),
            r.model.map_or(String::new(), |m| m.to_string()),
            r.region.map_or("", |i| REGIONS[i].name),
            r.failure.map_or(String::new(), |f| f.label()),
            ms(r.ttft),
            ms(r.total),
            ms(r.lag),
            r.proxy_attempts.map_or(String::new(), |n| n.to_string()),
            r.usage.map_or(String::new(), |u| u.prompt.to_string()),
            r.usage.map_or(String::new(), |u| u.completion.to_string()),
        );
    }
    std::fs::write(dir.join(format!("{name}-requests.csv")), csv)?;
    let mut loads = String::from("t_ms,region,in_flight,queue_depth\n");
    for (t, i, load) in &traced.loads {
        let _ = writeln!(
            loads,
            "{t:.3},{},{},{}",
            REGIONS[*i].name, load.in_flight, load.queue_depth
        );
    }
    std::fs::write(dir.join(format!("{name}-loads.csv")), loads)?;
    if !traced.status.is_empty() {
        let mut lines = String::new();
        for (t, body) in &traced.status {
            let body: String = body.chars().filter(|c| *c != '\n').collect();
            let _ = writeln!(lines, "{{\"t_ms\":{t:.3},\"status\":{body}}}");
        }
        std::fs::write(dir.join(format!("{name}-status.jsonl")), lines)?;
    }
    Ok(())
}
