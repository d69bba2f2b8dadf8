//! Server-sent-event streaming for chat and text completions.
//!
//! A spawned producer feeds a channel and the response body drains it, so
//! every event reaches the socket as soon as it is produced rather than when
//! the whole reply is ready; that is what lets tests see the first token
//! arrive through a proxy while the rest is still pending.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::Response;
use tokio::sync::mpsc;

use crate::capacity::Slot;
use crate::region::RegionState;
use crate::reply::Body;
use crate::timing::sleep_ms;

// Small: the producer should feel back-pressure from a slow reader instead
// of racing ahead of it.
const CHANNEL_DEPTH: usize = 8;

enum Event {
    Data(Bytes),
    /// Cut the connection as a crashed backend would.
    Abort,
}

struct ChannelBody {
    rx: mpsc::Receiver<Event>,
    aborting: bool,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.aborting {
            // A body error makes hyper drop the connection without the
            // terminating chunk, so the client sees a truncated body.
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "mock stream aborted",
            ))));
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Event::Data(data))) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Poll::Ready(Some(Event::Abort)) => {
                // Pending once first: hyper flushes what it has buffered when
                // the body is not ready, but not when the body fails, and the
                // chunks already sent must reach the client before the cut.
                self.aborting = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Which OpenAI chunk shape a stream's events take.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Stream {
    /// `chat.completion.chunk` with a `delta`.
    Chat,
    /// `text_completion` with a `text`.
    Text,
}

/// Identity shared by every chunk of one completion.
pub(crate) struct Completion {
    pub id: String,
    pub created: u64,
    pub model: String,
    pub stream: Stream,
}

/// Starts streaming the words of `text` and returns the response that
/// carries them. The capacity slot is held until the stream ends or the
/// client leaves.
pub(crate) fn respond(
    state: Arc<RegionState>,
    completion: Completion,
    text: &str,
    slot: Slot,
) -> Response<Body> {
    let words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    tokio::spawn(async move {
        // Err only means the client went away, which needs no handling.
        let _ = produce(&state, &completion, &words, &tx).await;
        drop(slot);
    });

    let body = ChannelBody {
        rx,
        aborting: false,
    };
    let mut resp = Response::new(body.boxed());
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// The client hung up; the stream should stop.
struct Gone;

async fn produce(
    state: &RegionState,
    completion: &Completion,
    words: &[String],
    tx: &mpsc::Sender<Event>,
) -> Result<(), Gone> {
    let mut hold = state.hold_watch();
    // Time to first token.
    pause(tx, sleep_ms(state.settings().work_ms)).await?;
    for (sent, word) in words.iter().enumerate() {
        if sent > 0 {
            pause(tx, sleep_ms(state.settings().token_ms)).await?;
        }
        // Checked where the next chunk would go out, so the cut lands when
        // the next token was due.
        if aborts_after(state, sent) {
            return send(tx, Event::Abort).await;
        }
        send(tx, chunk(completion, Some(&format!("{word} ")), None)).await?;
        if sent == 0 {
            pause(tx, async {
                // The sender lives in the region state we hold, so this only
                // returns once the hold is released.
                let _ = hold.wait_for(|held| !*held).await;
            })
            .await?;
        }
    }
    pause(tx, sleep_ms(state.settings().token_ms)).await?;
    // A reply no longer than the abort point is still cut before its end, so
    // an abort setting always yields an unfinished stream.
    if aborts_after(state, words.len()) {
        return send(tx, Event::Abort).await;
    }
    send(tx, chunk(completion, None, Some("stop"))).await?;
    send(tx, Event::Data(Bytes::from_static(b"data: [DONE]\n\n"))).await
}

/// Read on every chunk so switching it on reaches streams already running.
fn aborts_after(state: &RegionState, sent: usize) -> bool {
    state
        .settings()
        .stream_abort_after
        .is_some_and(|n| sent as u64 >= u64::from(n))
}

/// One event: a piece of text, or with `text` `None` the closing chunk.
fn chunk(completion: &Completion, text: Option<&str>, finish: Option<&str>) -> Event {
    let event = match completion.stream {
        Stream::Chat => {
            let delta = match text {
                Some(text) => serde_json::json!({ "content": text }),
                None => serde_json::json!({}),
            };
            serde_json::json!({
                "id": completion.id,
                "object": "chat.completion.chunk",
                "created": completion.created,
                "model": completion.model,
                "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
            })
        }
        Stream::Text => serde_json::json!({
            "id": completion.id,
            "object": "text_completion",
            "created": completion.created,
            "model": completion.model,
            "choices": [{
                "text": text.unwrap_or_default(),
                "index": 0,
                "logprobs": null,
                "finish_reason": finish,
            }],
        }),
    };
    Event::Data(Bytes::from(format!("data: {event}\n\n")))
}

async fn send(tx: &mpsc::Sender<Event>, event: Event) -> Result<(), Gone> {
    tx.send(event).await.map_err(|_| Gone)
}

/// Waits for `f`, giving up early if the client disconnects meanwhile so an
/// abandoned (or held) stream does not linger.
async fn pause(tx: &mpsc::Sender<Event>, f: impl Future<Output = ()>) -> Result<(), Gone> {
    tokio::select! {
        () = f => Ok(()),
        () = tx.closed() => Err(Gone),
    }
}
