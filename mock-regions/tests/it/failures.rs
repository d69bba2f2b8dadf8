use std::time::Duration;

use crate::common::{client, get, post, region, until};

#[tokio::test]
async fn retry_after_rides_on_failures_only() {
    let r = region("fail-1").await;
    let (status, json) = post(&r, "/control", r#"{"fail_status":429,"retry_after_s":7}"#).await;
    assert_eq!((status, json["retry_after_s"].as_u64()), (200, Some(7)));

    for path in ["/health", "/v1/models"] {
        let resp = client()
            .get(format!("{}{path}", r.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["retry-after"], "7");
    }

    // Without a failure mode the setting has nothing to ride on.
    r.set_fail_status(None);
    let resp = client()
        .get(format!("{}/health", r.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("retry-after").is_none());

    r.set_fail_status(Some(503));
    r.set_retry_after_s(None);
    let resp = client()
        .get(format!("{}/health", r.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("retry-after").is_none());
}

#[tokio::test]
async fn fail_count_fails_the_next_n_then_recovers() {
    let r = region("fail-2").await;
    let (_, json) = post(&r, "/control", r#"{"fail_status":503,"fail_count":2}"#).await;
    assert_eq!(json["fail_count"], 2);

    // A counted failure is for requests: a probe passes and takes none.
    assert_eq!(get(&r, "/health").await.0, 200);
    assert_eq!(get(&r, "/control").await.1["fail_count"], 2);
    assert_eq!(get(&r, "/v1/models").await.0, 503);
    assert_eq!(get(&r, "/control").await.1["fail_count"], 1);
    assert_eq!(post(&r, "/v1/inference", r#"{"prompt":"x"}"#).await.0, 503);

    let (_, json) = get(&r, "/control").await;
    assert!(
        json["fail_status"].is_null() && json["fail_count"].is_null(),
        "{json}"
    );
    assert_eq!(post(&r, "/v1/inference", r#"{"prompt":"x"}"#).await.0, 200);
    assert_eq!(get(&r, "/health").await.0, 200);

    // Through the library, and a spent counter does not linger: a later
    // plain fail_status fails everything again.
    r.set_fail_count(Some(1));
    r.set_fail_status(Some(500));
    assert_eq!(get(&r, "/v1/models").await.0, 500);
    assert_eq!(get(&r, "/v1/models").await.0, 200);
    r.set_fail_status(Some(502));
    for _ in 0..3 {
        assert_eq!(get(&r, "/health").await.0, 502);
    }
}

#[tokio::test]
async fn hang_holds_requests_until_cleared() {
    let r = region("fail-3").await;
    let (_, json) = post(&r, "/control", r#"{"hang":true}"#).await;
    assert_eq!(json["hang"], true);

    let url = format!("{}/v1/inference", r.url());
    let mut pending = tokio::spawn(async move {
        client()
            .post(url)
            .body(r#"{"prompt":"x"}"#)
            .send()
            .await
            .map(|resp| resp.status().as_u16())
    });
    until("hung request counted", || r.counts().inference == 1).await;
    let waited = tokio::time::timeout(Duration::from_millis(300), &mut pending).await;
    assert!(waited.is_err(), "hung request was answered");

    // Probes and the control plane still answer.
    assert_eq!(get(&r, "/health").await.0, 200);
    r.set_hang(false);
    let status = tokio::time::timeout(Duration::from_secs(2), pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
}
