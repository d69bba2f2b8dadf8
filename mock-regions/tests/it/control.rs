use std::time::{Duration, Instant};

use crate::common::{get, post, region};
use mock_regions::Counts;

#[tokio::test]
async fn control_reports_settings_and_is_not_counted() {
    let r = region("ctl-1").await;
    get(&r, "/health").await;
    let (status, json) = get(&r, "/control").await;
    assert_eq!(status, 200);
    assert_eq!(
        json,
        serde_json::json!({
            "region": "ctl-1",
            "latency_ms": 0,
            "work_ms": 0,
            "token_ms": 1,
            "fail_status": null,
            "fail_count": null,
            "retry_after_s": null,
            "stream_hold": false,
            "stream_abort_after": null,
            "hang": false,
            "blackhole": false,
            "reset_after_body": false,
            "flap_ms": null,
            "flapped_down": false,
            "usage": true,
            "cached_tokens": 0,
            "prefill_us_per_token": 0,
            "prefix_cache": null,
            "capacity": null,
            "model_version": "v1",
            "models": [],
            "in_flight": 0,
            "queue_depth": 0,
            "requests": {
                "total": 1, "health": 1, "inference": 0, "chat": 0, "models": 0, "other": 0,
                "completions": 0, "embeddings": 0, "messages": 0, "responses": 0,
                "health_failed": 0,
            },
            "tokens": { "prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0 },
            "last_request_headers": [],
        })
    );
    assert_eq!(r.counts().total, 1);
}

#[tokio::test]
async fn control_shows_the_last_real_request_headers() {
    let r = region("ctl-h").await;
    get(&r, "/v1/models").await;
    get(&r, "/health").await;
    let (_, json) = get(&r, "/control").await;
    let headers = json["last_request_headers"].as_array().unwrap();
    assert!(headers.iter().any(|h| h[0] == "host"), "{json}");
    assert_eq!(
        r.last_headers().len(),
        headers.len(),
        "probes do not overwrite it"
    );
}

#[tokio::test]
async fn control_changes_latency() {
    let r = region("ctl-2").await;
    let (status, json) = post(&r, "/control", r#"{"latency_ms":150,"work_ms":5}"#).await;
    assert_eq!(status, 200);
    assert_eq!(
        (json["latency_ms"].as_u64(), json["work_ms"].as_u64()),
        (Some(150), Some(5))
    );

    let started = Instant::now();
    let (status, _) = get(&r, "/health").await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));

    // Control itself is never delayed.
    let started = Instant::now();
    get(&r, "/control").await;
    assert!(started.elapsed() < Duration::from_millis(150));
}

#[tokio::test]
async fn control_fail_status_and_recovery() {
    let r = region("ctl-3").await;
    let (status, json) = post(&r, "/control", r#"{"fail_status":503}"#).await;
    assert_eq!((status, json["fail_status"].as_u64()), (200, Some(503)));

    for path in ["/health", "/v1/models"] {
        let (status, json) = get(&r, path).await;
        assert_eq!(status, 503);
        assert_eq!(json["error"]["type"], "mock_failure");
        assert_eq!(
            json["error"]["message"],
            "region ctl-3 configured to fail with 503"
        );
    }
    let (status, _) = post(&r, "/v1/inference", r#"{"prompt":"x"}"#).await;
    assert_eq!(status, 503);

    let (status, json) = post(&r, "/control", r#"{"fail_status":null}"#).await;
    assert_eq!((status, json["fail_status"].is_null()), (200, true));
    assert_eq!(get(&r, "/health").await.0, 200);

    assert_eq!(
        r.counts(),
        Counts {
            total: 4,
            health: 2,
            inference: 1,
            models: 1,
            health_failed: 1,
            ..Counts::default()
        }
    );
}

#[tokio::test]
async fn control_rejects_invalid_updates() {
    let r = region("ctl-4").await;
    for body in [
        r#"{"latency":5}"#,
        r#"{"fail_status":700}"#,
        r#"{"latency_ms":-1}"#,
        r#"{"stream_hold":"yes"}"#,
        r#"{"capacity":-1}"#,
        r#"{"capacity":1.5}"#,
        r#"{"model_version":""}"#,
        r#"{"latency_ms":9,"fail_count":"two"}"#,
        r#"{"usage":"no"}"#,
        r#"{"cached_tokens":-1}"#,
        "[1]",
        "nope",
    ] {
        let (status, json) = post(&r, "/control", body).await;
        assert_eq!(status, 400, "body {body}");
        assert_eq!(json["error"]["type"], "invalid_request_error");
    }
    let (_, json) = get(&r, "/control").await;
    assert_eq!(json["latency_ms"], 0);
    assert!(json["fail_status"].is_null());
}

#[tokio::test]
async fn library_setters_apply() {
    let r = region("ctl-5").await;
    r.set_latency_ms(120);
    r.set_work_ms(7);
    r.set_stream_hold(true);
    r.set_fail_status(Some(500));
    let (_, json) = get(&r, "/control").await;
    assert_eq!(json["latency_ms"], 120);
    assert_eq!(json["work_ms"], 7);
    assert_eq!(json["stream_hold"], true);
    assert_eq!(json["fail_status"], 500);

    let started = Instant::now();
    assert_eq!(get(&r, "/health").await.0, 500);
    assert!(started.elapsed() >= Duration::from_millis(120));

    r.set_fail_status(None);
    r.set_latency_ms(0);
    assert_eq!(get(&r, "/health").await.0, 200);
    assert_eq!(r.counts().served(), 0);
}
