//! What the conversations say and when they speak: computed once from the seed, so every
//! policy sees the same sessions, the same residency headers, the same think times and
//! the same messages.
//!
//! Turn `n` of a session resends its system message, every earlier user message and
//! assistant answer, and the new user message, as a chat client does. The assistant
//! answers in the history are the harness's own fixed text for that turn rather than the
//! mock's real answer (which names the endpoint that wrote it), so a session's history is
//! the same whichever endpoint answered, as a real model's answer would be once written.

use std::time::Duration;

use super::Params;
use crate::rng::XorShift;

/// Mixed into the seed so the sessions do not share a stream with the default schedule.
const TURNS_STREAM: u64 = 0x0074_7572_6e73;

/// Characters of each kind of message: about 200, 60 and 80 prompt tokens.
const SYSTEM_CHARS: usize = 800;
const USER_CHARS: usize = 240;
const ASSISTANT_CHARS: usize = 320;

const FILLER: &str = "Answer briefly, cite the account's documents, keep the \
    conversation's context and say when something is not known. ";

#[derive(Clone, Debug, PartialEq)]
pub struct SessionPlan {
    pub id: usize,
    /// When its first turn is sent, from the start of the run.
    pub start: Duration,
    /// Every turn carries the residency country and must stay in the residency region.
    pub residency: bool,
    /// The pause after each answer before the next turn (one fewer than the turns).
    pub thinks: Vec<Duration>,
}

impl SessionPlan {
    /// The `x-session-id` it sends on every turn.
    pub fn key(&self) -> String {
        format!("session-{:04}", self.id)
    }
}

pub fn build(p: &Params, seed: u64, residency_share: f64) -> Vec<SessionPlan> {
    let mut rng = XorShift::new(seed ^ TURNS_STREAM);
    let mean_gap = 1.0 / p.session_rate;
    let think = p.think.as_secs_f64();
    let mut t = 0.0;
    (0..p.sessions)
        .map(|id| {
            t += rng.exponential(mean_gap);
            let residency = rng.next_f64() < residency_share;
            let thinks = (1..p.turns)
                .map(|_| Duration::from_secs_f64(rng.exponential(think)))
                .collect();
            SessionPlan {
                id,
                start: Duration::from_secs_f64(t),
                residency,
                thinks,
            }
        })
        .collect()
}

/// `head` followed by the filler, cut to `chars`.
fn padded(head: String, chars: usize) -> String {
    let mut s = head;
    while s.len() < chars {
        s.push_str(FILLER);
    }
    s.truncate(chars);
    s
}

fn system(session: usize) -> String {
    padded(
        format!("Session {session:04}. You are the support assistant of account {session:04}. "),
        SYSTEM_CHARS,
    )
}

fn user(session: usize, turn: usize) -> String {
    padded(
        format!("Question {turn} of session {session:04}: "),
        USER_CHARS,
    )
}

fn assistant(session: usize, turn: usize) -> String {
    padded(
        format!("Answer {turn} for session {session:04}: "),
        ASSISTANT_CHARS,
    )
}

/// The messages of turn `turn` (1-based) of `session`.
pub fn messages(session: usize, turn: usize) -> serde_json::Value {
    let mut out = vec![serde_json::json!({ "role": "system", "content": system(session) })];
    for n in 1..turn {
        out.push(serde_json::json!({ "role": "user", "content": user(session, n) }));
        out.push(serde_json::json!({ "role": "assistant", "content": assistant(session, n) }));
    }
    out.push(serde_json::json!({ "role": "user", "content": user(session, turn) }));
    serde_json::Value::Array(out)
}

/// The prompt tokens of turn `turn` as the mock counts them (4 characters a token).
#[cfg(test)]
pub fn prompt_tokens(turn: usize) -> u64 {
    let chars = SYSTEM_CHARS + turn * USER_CHARS + (turn - 1) * ASSISTANT_CHARS;
    (chars as u64).div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        Params {
            sessions: 200,
            turns: 8,
            session_rate: 10.0,
            think: Duration::from_millis(1000),
            prefill_us: 150,
        }
    }

    #[test]
    fn same_seed_same_sessions_and_starts_in_order() {
        let a = build(&params(), 42, 0.1);
        assert_eq!(a, build(&params(), 42, 0.1));
        assert_ne!(a, build(&params(), 43, 0.1));
        assert!(a.windows(2).all(|w| w[0].start <= w[1].start));
        assert!(a.iter().all(|s| s.thinks.len() == 7));
        let residency = a.iter().filter(|s| s.residency).count();
        assert!((5..=40).contains(&residency), "{residency}");
        assert_eq!(a[7].key(), "session-0007");
    }

    #[test]
    fn each_turn_resends_the_last_one_and_adds_two_messages() {
        let t1 = messages(3, 1);
        let t2 = messages(3, 2);
        let (t1, t2) = (t1.as_array().expect("list"), t2.as_array().expect("list"));
        assert_eq!((t1.len(), t2.len()), (2, 4));
        assert_eq!(t1[..], t2[..2]);
        assert_eq!(t2[2]["role"], "assistant");
        let chars: usize = t2
            .iter()
            .map(|m| m["content"].as_str().expect("text").chars().count())
            .sum();
        assert_eq!((chars as u64).div_ceil(4), prompt_tokens(2));
        assert_eq!(prompt_tokens(8), 200 + 8 * 60 + 7 * 80);
        // Sessions do not share their first message.
        assert_ne!(messages(3, 1)[0], messages(4, 1)[0]);
    }
}
