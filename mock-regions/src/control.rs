//! `/control`: inspect and change a region's behaviour over HTTP, for users
//! driving the standalone binary (the library exposes the same knobs).

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Deserializer};

use crate::region::RegionState;
use crate::reply::{self, Body, Reject};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlUpdate {
    latency_ms: Option<u64>,
    work_ms: Option<u64>,
    token_ms: Option<u64>,
    // Absent leaves the setting alone; an explicit null clears it.
    #[serde(default, deserialize_with = "present")]
    fail_status: Option<Option<u16>>,
    stream_hold: Option<bool>,
}

fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

pub(crate) async fn handle(req: Request<Incoming>, state: &RegionState) -> Response<Body> {
    match *req.method() {
        Method::GET | Method::HEAD => reply::json(StatusCode::OK, &state.control_json()),
        Method::POST => {
            let body = match reply::read_body(req).await {
                Ok(body) => body,
                Err(reject) => return reject.into_response(),
            };
            match apply(state, &body) {
                Ok(()) => reply::json(StatusCode::OK, &state.control_json()),
                Err(reject) => reject.into_response(),
            }
        }
        _ => reply::method_not_allowed("GET, HEAD, POST"),
    }
}

fn apply(state: &RegionState, body: &[u8]) -> Result<(), Reject> {
    let value: serde_json::Value = reply::parse_json(body)?;
    // serde would also accept a JSON array for a struct; only objects make sense.
    if !value.is_object() {
        return Err(Reject::bad_request("control body must be a JSON object"));
    }
    let update: ControlUpdate = serde_json::from_value(value)
        .map_err(|e| Reject::bad_request(format!("invalid control update: {e}")))?;
    if let Some(Some(status)) = update.fail_status {
        if !(100..=599).contains(&status) {
            return Err(Reject::bad_request("fail_status must be within 100..=599"));
        }
    }

    state.update(|s| {
        if let Some(ms) = update.latency_ms {
            s.latency_ms = ms;
        }
        if let Some(ms) = update.work_ms {
            s.work_ms = ms;
        }
        if let Some(ms) = update.token_ms {
            s.token_ms = ms;
        }
        if let Some(status) = update.fail_status {
            s.fail_status = status;
        }
    });
    if let Some(hold) = update.stream_hold {
        state.set_hold(hold);
    }
    Ok(())
}
