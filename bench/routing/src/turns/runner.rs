//! Drives one policy through the sessions: each session starts at its planned time and
//! sends its turns one after the other, each after the answer to the last and the
//! session's think time, as a chat user does; sessions run side by side, interleaved.
//! Every endpoint of the cheapest region is killed at the kill time.
//!
//! Bounded: every turn by the request timeout, every session by its turn count, and the
//! whole run by a deadline after which no session sends another turn.

use std::sync::Arc;
use std::time::Duration;

use mock_regions::MockRegion;
use reqwest::Client;
use tokio::time::{sleep_until, timeout_at, Instant};

use super::record::TurnRecord;
use super::route::{self, TurnRouter};
use super::script::SessionPlan;
use crate::exchange::Failure;

/// Head start so spawning the first sessions does not already make them late.
const LEAD: Duration = Duration::from_millis(200);

pub struct Timing {
    pub kill_at: Duration,
    pub request_timeout: Duration,
    /// No turn is sent after this, from the start of the run.
    pub deadline: Duration,
    pub max_tokens: u32,
}

pub async fn run(
    router: Arc<TurnRouter>,
    http: Client,
    sessions: &[SessionPlan],
    victims: Vec<MockRegion>,
    timing: &Timing,
) -> (Vec<TurnRecord>, Duration) {
    let start = Instant::now() + LEAD;
    // How long closing the victims took: a turn sent meanwhile met the kill too.
    let killer = async {
        sleep_until(start + timing.kill_at).await;
        let began = Instant::now();
        for mock in victims {
            mock.kill().await;
        }
        Instant::now().saturating_duration_since(began)
    };
    let mut tasks = Vec::with_capacity(sessions.len());
    for session in sessions {
        let (router, http, session) = (Arc::clone(&router), http.clone(), session.clone());
        let (timeout, deadline, max_tokens) =
            (timing.request_timeout, timing.deadline, timing.max_tokens);
        tasks.push(tokio::spawn(async move {
            sleep_until(start + session.start).await;
            let mut records = Vec::with_capacity(session.thinks.len() + 1);
            for turn in 1..=session.thinks.len() + 1 {
                let sent = Instant::now();
                let now = sent.saturating_duration_since(start);
                if now >= deadline {
                    break;
                }
                let send = router.send(&http, &session, turn, now, max_tokens);
                let record = match timeout_at(sent + timeout, send).await {
                    Ok(record) => record,
                    Err(_) => route::failed(&session, turn, now, sent, Failure::Timeout),
                };
                records.push(record);
                if let Some(think) = session.thinks.get(turn - 1) {
                    tokio::time::sleep(*think).await;
                }
            }
            records
        }));
    }
    let collect = async {
        let mut all = Vec::new();
        for task in tasks {
            // A session task only fails to join if it panicked; its turns are then lost,
            // which the report's turn count shows.
            if let Ok(records) = task.await {
                all.extend(records);
            }
        }
        all
    };
    tokio::join!(collect, killer)
}
