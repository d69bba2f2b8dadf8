//! One JSON line per request: what was asked, what answered, and how it went. Never a body
//! or a credential: only the method, the path without its query, and Meridian's own facts.

use super::ctx::RequestCtx;
use crate::app::Runtime;
use crate::config::AccessLogTarget;
use pingora::proxy::Session;
use std::io::Write;
use std::time::SystemTime;

pub enum AccessLog {
    Off,
    Stdout,
    File(std::fs::File),
}

impl AccessLog {
    pub fn open(target: &AccessLogTarget) -> std::io::Result<AccessLog> {
        Ok(match target {
            AccessLogTarget::Off => AccessLog::Off,
            AccessLogTarget::Stdout => AccessLog::Stdout,
            AccessLogTarget::File(path) => AccessLog::File(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        })
    }

    pub fn enabled(&self) -> bool {
        !matches!(self, AccessLog::Off)
    }

    /// Writes one line; a failed write is dropped rather than slowing the proxy.
    fn write(&self, line: &[u8]) {
        let _ = match self {
            AccessLog::Off => Ok(()),
            AccessLog::Stdout => std::io::stdout().lock().write_all(line),
            // O_APPEND: each line lands whole even with many writers.
            AccessLog::File(f) => (&*f).write_all(line),
        };
    }
}

fn ms(d: Option<std::time::Duration>) -> serde_json::Value {
    d.map_or(serde_json::Value::Null, |d| {
        serde_json::json!((d.as_secs_f64() * 1e6).round() / 1e3)
    })
}

pub fn record(rt: &Runtime, session: &Session, ctx: &RequestCtx, status: u16) {
    if !rt.access_log.enabled() {
        return;
    }
    let req = session.req_header();
    let tried: Vec<&str> = ctx
        .tried
        .iter()
        .filter_map(|i| rt.regions.get(i).map(|r| r.name()))
        .collect();
    let geo = match (&ctx.failure, ctx.geo_rule) {
        (Some(f), _) if f.kind.contains("geo") => f.kind.to_string(),
        (_, Some(rule)) => rt.geo.rule_name(rule).to_string(),
        (_, None) => "default".to_string(),
    };
    let line = serde_json::json!({
        "time": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        "method": req.method.as_str(),
        "path": req.uri.path(),
        "status": status,
        "region": ctx.served_by.and_then(|id| rt.regions.get(id)).map(|r| r.name()),
        "attempts": ctx.attempts,
        "tried": tried,
        "geo": geo,
        "error": ctx.failure.as_ref().filter(|f| f.status >= 400).map(|f| f.kind),
        "latency_ms": ms(ctx.received.map(|t| t.elapsed())),
        "ttft_ms": ms(ctx.ttft),
        "bytes_in": session.body_bytes_read(),
        "bytes_out": session.body_bytes_sent(),
    });
    let mut text = line.to_string();
    text.push('\n');
    rt.access_log.write(text.as_bytes());
}
