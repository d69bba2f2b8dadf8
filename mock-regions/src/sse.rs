//! Server-sent-event streaming for chat and text completions (OpenAI's
//! chunks, with a last usage chunk when `stream_options.include_usage` asks)
//! and for Anthropic's messages (its named events, usage in `message_start`
//! and `message_delta`).
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
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::capacity::Slot;
use crate::region::RegionState;
use crate::reply::Body;
use crate::timing::{self, sleep_ms, Prefill};
use crate::usage::Usage;

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

/// Which provider's event shape a stream takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stream {
    /// OpenAI `chat.completion.chunk` with a `delta`.
    Chat,
    /// OpenAI `text_completion` with a `text`.
    Text,
    /// Anthropic Messages events (`message_start` ... `message_stop`).
    Messages,
}

/// OpenAI's `stream_options`, for chat and completions.
#[derive(Deserialize)]
pub(crate) struct StreamOptions {
    /// Ask for a last chunk with the usage (and `"usage": null` on the others).
    include_usage: Option<bool>,
}

impl StreamOptions {
    pub fn include_usage(options: Option<&StreamOptions>) -> bool {
        options.and_then(|o| o.include_usage).unwrap_or(false)
    }
}

/// Identity shared by every event of one completion, and what it reports.
pub(crate) struct Completion {
    pub id: String,
    pub created: u64,
    pub model: String,
    pub stream: Stream,
    /// The request's prompt tokens, for the usage the stream reports.
    pub prompt_tokens: u64,
    /// OpenAI's `stream_options.include_usage`: only then does an OpenAI
    /// stream report usage. Anthropic streams always do.
    pub include_usage: bool,
    /// What the prefix cache held of the prompt, and the prefill time of the rest.
    pub prefill: Prefill,
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
    // Decided once, so every event of a stream agrees on whether usage is
    // reported even if the setting changes meanwhile.
    let usage = match completion.stream {
        Stream::Chat | Stream::Text if !completion.include_usage => None,
        _ => state.usage(
            completion.prompt_tokens,
            words.len() as u64,
            completion.prefill,
        ),
    };
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    tokio::spawn(async move {
        let events = Events { completion, usage };
        // Err only means the client went away, which needs no handling.
        let _ = produce(&state, &events, &words, &tx).await;
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
    events: &Events,
    words: &[String],
    tx: &mpsc::Sender<Event>,
) -> Result<(), Gone> {
    let mut hold = state.hold_watch();
    // Time to first token.
    pause(tx, timing::first_token(state, events.completion.prefill)).await?;
    for event in events.opening() {
        send(tx, event).await?;
    }
    if let Some(usage) = events
        .usage
        .filter(|_| events.completion.stream == Stream::Messages)
    {
        // Anthropic reports the input in `message_start`, just sent.
        state.record_usage(&Usage {
            completion: 0,
            ..usage
        });
    }
    for (sent, word) in words.iter().enumerate() {
        if sent > 0 {
            pause(tx, sleep_ms(state.settings().token_ms)).await?;
        }
        // Checked where the next chunk would go out, so the cut lands when
        // the next token was due.
        if aborts_after(state, sent) {
            return send(tx, Event::Abort).await;
        }
        send(tx, events.token(sent, word)).await?;
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
    let (report, last) = events.closing();
    for event in report {
        send(tx, event).await?;
    }
    if let Some(usage) = &events.usage {
        // Counted once the events carrying it are on their way, before the
        // end of the stream, so a client that has read to the end sees it.
        match events.completion.stream {
            Stream::Messages => state.record_usage(&Usage {
                prompt: 0,
                cached: 0,
                ..*usage
            }),
            Stream::Chat | Stream::Text => state.record_usage(usage),
        }
    }
    send(tx, last).await
}

/// Read on every chunk so switching it on reaches streams already running.
fn aborts_after(state: &RegionState, sent: usize) -> bool {
    state
        .settings()
        .stream_abort_after
        .is_some_and(|n| sent as u64 >= u64::from(n))
}

/// The events of one stream in its provider's shape.
struct Events {
    completion: Completion,
    /// What the stream reports; `None` when it reports no usage at all.
    usage: Option<Usage>,
}

impl Events {
    /// Sent with the first token: Anthropic's `message_start` and
    /// `content_block_start`; nothing for OpenAI.
    fn opening(&self) -> Vec<Event> {
        let c = &self.completion;
        if c.stream != Stream::Messages {
            return Vec::new();
        }
        let mut message = json!({
            "id": c.id,
            "type": "message",
            "role": "assistant",
            "model": c.model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
        });
        if let Some(usage) = &self.usage {
            // Nothing is generated yet; `message_delta` has the output.
            message["usage"] = Usage {
                completion: 0,
                ..*usage
            }
            .anthropic();
        }
        vec![
            named(
                "message_start",
                &json!({ "type": "message_start", "message": message }),
            ),
            named(
                "content_block_start",
                &json!({
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": { "type": "text", "text": "" },
                }),
            ),
        ]
    }

    /// The event carrying the `index`th token.
    fn token(&self, index: usize, word: &str) -> Event {
        match self.completion.stream {
            Stream::Chat | Stream::Text => self.chunk(Some(&format!("{word} ")), None),
            // Spaced so the deltas join into exactly the non-streamed text.
            Stream::Messages => {
                let text = if index == 0 {
                    word.to_string()
                } else {
                    format!(" {word}")
                };
                named(
                    "content_block_delta",
                    &json!({
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": { "type": "text_delta", "text": text },
                    }),
                )
            }
        }
    }

    /// The events after the last token, and the one that ends the stream.
    fn closing(&self) -> (Vec<Event>, Event) {
        let c = &self.completion;
        match c.stream {
            Stream::Chat | Stream::Text => {
                let mut events = vec![self.chunk(None, Some("stop"))];
                if let Some(usage) = &self.usage {
                    let object = match c.stream {
                        Stream::Chat => "chat.completion.chunk",
                        _ => "text_completion",
                    };
                    events.push(data(&json!({
                        "id": c.id,
                        "object": object,
                        "created": c.created,
                        "model": c.model,
                        "choices": [],
                        "usage": usage.openai(),
                    })));
                }
                (events, Event::Data(Bytes::from_static(b"data: [DONE]\n\n")))
            }
            Stream::Messages => {
                let mut delta = json!({
                    "type": "message_delta",
                    "delta": { "stop_reason": "end_turn", "stop_sequence": null },
                });
                if let Some(usage) = &self.usage {
                    delta["usage"] = json!({ "output_tokens": usage.completion });
                }
                (
                    vec![
                        named(
                            "content_block_stop",
                            &json!({ "type": "content_block_stop", "index": 0 }),
                        ),
                        named("message_delta", &delta),
                    ],
                    named("message_stop", &json!({ "type": "message_stop" })),
                )
            }
        }
    }

    /// An OpenAI chunk: a piece of text, or with `text` `None` the closing
    /// chunk. It says `"usage": null` when the stream reports usage at its end.
    fn chunk(&self, text: Option<&str>, finish: Option<&str>) -> Event {
        let c = &self.completion;
        let mut event = match c.stream {
            Stream::Text => json!({
                "id": c.id,
                "object": "text_completion",
                "created": c.created,
                "model": c.model,
                "choices": [{
                    "text": text.unwrap_or_default(),
                    "index": 0,
                    "logprobs": null,
                    "finish_reason": finish,
                }],
            }),
            _ => {
                let delta = match text {
                    Some(text) => json!({ "content": text }),
                    None => json!({}),
                };
                json!({
                    "id": c.id,
                    "object": "chat.completion.chunk",
                    "created": c.created,
                    "model": c.model,
                    "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
                })
            }
        };
        if self.usage.is_some() {
            event["usage"] = Value::Null;
        }
        data(&event)
    }
}

/// An OpenAI event: `data: JSON`.
fn data(event: &Value) -> Event {
    Event::Data(Bytes::from(format!("data: {event}\n\n")))
}

/// An Anthropic event: `event: NAME` then `data: JSON`.
fn named(name: &str, event: &Value) -> Event {
    Event::Data(Bytes::from(format!("event: {name}\ndata: {event}\n\n")))
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
