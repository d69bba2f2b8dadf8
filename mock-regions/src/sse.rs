//! Server-sent-event streaming for chat completions.
//!
//! A spawned producer feeds a channel and the response body drains it, so
//! every event reaches the socket as soon as it is produced rather than when
//! the whole reply is ready; that is what lets tests see the first token
//! arrive through a proxy while the rest is still pending.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::Response;
use tokio::sync::mpsc;

use crate::chat::Completion;
use crate::region::RegionState;
use crate::reply::Body;
use crate::routes::sleep_ms;

// Small: the producer should feel back-pressure from a slow reader instead
// of racing ahead of it.
const CHANNEL_DEPTH: usize = 8;

struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|next| next.map(|data| Ok(Frame::data(data))))
    }
}

/// Starts streaming `words` and returns the response that carries them.
pub(crate) fn respond(
    state: Arc<RegionState>,
    completion: Completion,
    words: Vec<String>,
) -> Response<Body> {
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    tokio::spawn(async move {
        // Err only means the client went away, which needs no handling.
        let _ = produce(&state, &completion, &words, &tx).await;
    });

    let mut resp = Response::new(ChannelBody { rx }.boxed());
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
    tx: &mpsc::Sender<Bytes>,
) -> Result<(), Gone> {
    let mut hold = state.hold_watch();
    pause(tx, sleep_ms(state.settings().work_ms)).await?;
    for (i, word) in words.iter().enumerate() {
        if i > 0 {
            pause(tx, sleep_ms(state.settings().token_ms)).await?;
        }
        let delta = serde_json::json!({ "content": format!("{word} ") });
        send(tx, chunk(completion, delta, None)).await?;
        if i == 0 {
            pause(tx, async {
                // The sender lives in the region state we hold, so this only
                // returns once the hold is released.
                let _ = hold.wait_for(|held| !*held).await;
            })
            .await?;
        }
    }
    pause(tx, sleep_ms(state.settings().token_ms)).await?;
    send(tx, chunk(completion, serde_json::json!({}), Some("stop"))).await?;
    send(tx, "data: [DONE]\n\n".to_string()).await
}

fn chunk(completion: &Completion, delta: serde_json::Value, finish: Option<&str>) -> String {
    let event = serde_json::json!({
        "id": completion.id,
        "object": "chat.completion.chunk",
        "created": completion.created,
        "model": completion.model,
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
    });
    format!("data: {event}\n\n")
}

async fn send(tx: &mpsc::Sender<Bytes>, event: String) -> Result<(), Gone> {
    tx.send(Bytes::from(event)).await.map_err(|_| Gone)
}

/// Waits for `f`, giving up early if the client disconnects meanwhile so an
/// abandoned (or held) stream does not linger.
async fn pause(tx: &mpsc::Sender<Bytes>, f: impl Future<Output = ()>) -> Result<(), Gone> {
    tokio::select! {
        () = f => Ok(()),
        () = tx.closed() => Err(Gone),
    }
}
