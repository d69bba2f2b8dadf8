//! How one turn is sent: through Meridian, which picks region and endpoint, or by the
//! session oracle straight to its endpoint.

use std::time::Duration;

use reqwest::Client;
use tokio::time::Instant;

use super::fleet::endpoint_of;
use super::oracle::SessionOracle;
use super::record::TurnRecord;
use super::script::{self, SessionPlan};
use crate::exchange::{self, Failure};
use crate::scenario::regions::RESIDENCY_COUNTRY;

const PATH: &str = "/v1/chat/completions";

pub enum TurnRouter {
    /// Meridian's proxy URL.
    Meridian(String),
    /// The oracle and the endpoints' base URLs.
    Oracle(SessionOracle, Vec<String>),
}

/// Every turn is a streamed chat asking for its usage, as a chat client that accounts for
/// tokens sends it, with the session's key in `x-session-id`.
fn body(session: &SessionPlan, turn: usize, max_tokens: u32) -> serde_json::Value {
    serde_json::json!({
        "model": "mock-model",
        "max_tokens": max_tokens,
        "stream": true,
        "stream_options": { "include_usage": true },
        "messages": script::messages(session.id, turn),
    })
}

impl TurnRouter {
    /// Sends turn `turn` of `session` at `now` (from the start of the run).
    pub async fn send(
        &self,
        http: &Client,
        session: &SessionPlan,
        turn: usize,
        now: Duration,
        max_tokens: u32,
    ) -> TurnRecord {
        let key = session.key();
        let mut headers = vec![("x-session-id", key.as_str())];
        if session.residency {
            headers.push(("x-geo-country", RESIDENCY_COUNTRY));
        }
        let json = body(session, turn, max_tokens);
        let started = Instant::now();
        let (ex, placed) = match self {
            TurnRouter::Meridian(proxy) => {
                let url = format!("{proxy}{PATH}");
                (
                    exchange::post(http, &url, &json, &headers, true).await,
                    None,
                )
            }
            TurnRouter::Oracle(oracle, urls) => {
                let Some(e) = oracle.place(session.id, session.residency, now) else {
                    return failed(session, turn, now, started, Failure::NoRegion);
                };
                let url = format!("{}{PATH}", urls[e]);
                let ex = exchange::post(http, &url, &json, &headers, true).await;
                oracle.done(e);
                (ex, Some(e))
            }
        };
        let endpoint = ex.mock_region.as_deref().and_then(endpoint_of).or(placed);
        let total = ex.finished.saturating_duration_since(started);
        TurnRecord {
            session: session.id,
            turn,
            at: now,
            residency: session.residency,
            endpoint,
            failure: ex.failure,
            ttft: ex
                .first_byte
                .map_or(total, |f| f.saturating_duration_since(started)),
            total,
            usage: ex.usage,
        }
    }
}

/// A turn that produced no exchange: timed out as a whole, or had nowhere to go.
pub fn failed(
    session: &SessionPlan,
    turn: usize,
    now: Duration,
    started: Instant,
    failure: Failure,
) -> TurnRecord {
    let total = started.elapsed();
    TurnRecord {
        session: session.id,
        turn,
        at: now,
        residency: session.residency,
        endpoint: None,
        failure: Some(failure),
        ttft: total,
        total,
        usage: None,
    }
}
