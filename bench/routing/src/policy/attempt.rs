//! Sending a request along a baseline's ranked candidates, with the one retry every
//! baseline is allowed.

use std::time::Duration;

use tokio::time::Instant;

use super::Ctx;
use crate::exchange::{self, Exchange, Failure};
use crate::record::Record;
use crate::scenario::models::MODELS;
use crate::scenario::schedule::Planned;

pub struct Attempt {
    pub region: usize,
    pub ex: Exchange,
}

/// Sends to `order[0]` and, after a connection error, once more to `order[1]`. Only a
/// connection error is retried: nothing was sent, so even a POST is safe to repeat, and
/// Meridian follows the same rule. A request naming a model is sent the name the region
/// knows it by, as a client that knows the fleet would send it.
pub async fn with_one_retry(ctx: &Ctx, order: &[usize], req: &Planned) -> Vec<Attempt> {
    let mut attempts = Vec::with_capacity(2);
    for &region in order.iter().take(2) {
        let model = req.model.and_then(|m| MODELS[m].upstream_name(region));
        let ex = exchange::send(&ctx.http, &ctx.urls[region], req, ctx.max_tokens, model).await;
        let retry = ex.failure == Some(Failure::Connect);
        attempts.push(Attempt { region, ex });
        if !retry {
            break;
        }
    }
    attempts
}

/// The request's record: its last attempt decides, an empty list means nowhere to go.
pub fn record(req: &Planned, t0: Instant, lag: Duration, attempts: &[Attempt]) -> Record {
    let Some(last) = attempts.last() else {
        return Record::failed(req, t0, lag, Failure::NoRegion);
    };
    let answered_by = attempts
        .iter()
        .filter(|a| a.ex.status.is_some())
        .map(|a| a.region)
        .collect();
    Record::from_exchange(req, t0, lag, Some(last.region), &last.ex, answered_by)
}
