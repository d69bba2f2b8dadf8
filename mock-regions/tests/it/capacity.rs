use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::{client, get, post, region, start_stream, until};
use mock_regions::{Load, MockRegion, RegionSpec};

async fn limited(name: &str, capacity: u32) -> MockRegion {
    let mut spec = RegionSpec::new(name, 0);
    spec.token_ms = 1;
    spec.capacity = Some(capacity);
    spec.model_version = "llama-3-70b@2".to_string();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    MockRegion::start(spec, addr).await.unwrap()
}

/// Sends one inference request and returns its status and when it finished.
fn infer(r: &MockRegion) -> tokio::task::JoinHandle<(u16, Instant)> {
    let url = format!("{}/v1/inference", r.url());
    tokio::spawn(async move {
        let resp = client()
            .post(url)
            .body(r#"{"prompt":"x","max_tokens":1}"#)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), Instant::now())
    })
}

#[tokio::test]
async fn second_request_queues_behind_the_first() {
    let r = limited("cap-1", 1).await;
    r.set_work_ms(250);
    let first = infer(&r);
    until("first request working", || r.load().in_flight == 1).await;
    let second_sent = Instant::now();
    let second = infer(&r);
    until("second request queued", || r.load().queue_depth == 1).await;

    let (status, health) = get(&r, "/health").await;
    assert_eq!(status, 200, "probes never wait for a slot");
    assert_eq!(health["in_flight"], 1);
    assert_eq!(health["queue_depth"], 1);
    assert_eq!(health["max_concurrency"], 1);
    assert_eq!(health["gpu_utilization"], 1.0);

    let (first_status, first_done) = first.await.unwrap();
    let (second_status, second_done) = second.await.unwrap();
    assert_eq!((first_status, second_status), (200, 200));
    // The second did its own work only after the first was done.
    assert!(second_done > first_done);
    assert!(second_done >= second_sent + Duration::from_millis(250));
    assert_eq!(r.load(), Load::default());
}

#[tokio::test]
async fn health_reports_live_figures() {
    let r = limited("cap-2", 4).await;
    r.set_stream_hold(true);
    // Held streams keep their slot after the first chunk.
    let mut a = start_stream(&r).await;
    let mut b = start_stream(&r).await;
    assert!(a.chunk().await.unwrap().is_some());
    assert!(b.chunk().await.unwrap().is_some());

    let (_, health) = get(&r, "/health").await;
    assert_eq!(
        health,
        serde_json::json!({
            "status": "ok",
            "region": "cap-2",
            "in_flight": 2,
            "queue_depth": 0,
            "max_concurrency": 4,
            "gpu_utilization": 0.5,
            "model_version": "llama-3-70b@2",
        })
    );
    let (_, control) = get(&r, "/control").await;
    assert_eq!(
        (control["in_flight"].as_u64(), control["capacity"].as_u64()),
        (Some(2), Some(4))
    );

    r.set_model_version("v2");
    r.set_stream_hold(false);
    assert!(a.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    assert!(b.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    until("streams released their slots", || r.load().in_flight == 0).await;
    let (_, health) = get(&r, "/health").await;
    assert_eq!(health["gpu_utilization"], 0.0);
    assert_eq!(health["model_version"], "v2");
}

#[tokio::test]
async fn capacity_changes_at_run_time() {
    let r = limited("cap-3", 1).await;
    r.set_stream_hold(true);
    let mut a = start_stream(&r).await;
    assert!(a.chunk().await.unwrap().is_some());

    // No slot: the second stream does not even get its response head.
    let url = r.url();
    let queued = tokio::spawn(async move {
        let body = r#"{"stream":true,"messages":[{"role":"user","content":"x"}]}"#;
        client()
            .post(format!("{url}/v1/chat/completions"))
            .body(body)
            .send()
            .await
            .unwrap()
    });
    until("second stream queued", || r.load().queue_depth == 1).await;

    let (status, json) = post(&r, "/control", r#"{"capacity":2}"#).await;
    assert_eq!((status, json["capacity"].as_u64()), (200, Some(2)));
    let mut b = queued.await.unwrap();
    assert!(b.chunk().await.unwrap().is_some());
    assert_eq!(r.load().in_flight, 2);

    // Shrinking below what is in flight interrupts no one; newcomers wait
    // until the count drops below the new limit.
    r.set_capacity(Some(1));
    let (_, health) = get(&r, "/health").await;
    assert_eq!(
        (
            health["in_flight"].as_u64(),
            health["max_concurrency"].as_u64()
        ),
        (Some(2), Some(1))
    );
    assert_eq!(health["gpu_utilization"], 1.0);
    let third = infer(&r);
    until("third request queued", || r.load().queue_depth == 1).await;

    r.set_stream_hold(false);
    a.text().await.unwrap();
    b.text().await.unwrap();
    assert_eq!(third.await.unwrap().0, 200);

    let (_, json) = post(&r, "/control", r#"{"capacity":null}"#).await;
    assert!(json["capacity"].is_null());
    let (_, health) = get(&r, "/health").await;
    assert!(health["max_concurrency"].is_null() && health["gpu_utilization"].is_null());
}

#[tokio::test]
async fn a_client_leaving_the_queue_frees_its_place() {
    let r = limited("cap-4", 0).await;
    let url = format!("{}/v1/inference", r.url());
    let gave_up = client()
        .post(url)
        .timeout(Duration::from_millis(100))
        .body(r#"{"prompt":"x"}"#)
        .send()
        .await;
    assert!(gave_up.is_err(), "capacity 0 must queue everything");
    until("queue emptied", || r.load().queue_depth == 0).await;

    r.set_capacity(Some(1));
    let (status, _) = post(&r, "/v1/inference", r#"{"prompt":"x"}"#).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn non_stream_answers_take_longer_for_more_tokens() {
    let r = region("cap-5").await;
    r.set_token_ms(10);
    r.set_work_ms(50);
    let started = Instant::now();
    let (status, json) = post(&r, "/v1/inference", r#"{"prompt":"x","max_tokens":30}"#).await;
    assert_eq!((status, json["tokens_used"].as_u64()), (200, Some(30)));
    assert!(started.elapsed() >= Duration::from_millis(50 + 30 * 10));

    // Chat pays per word of its reply: "Mock response from cap-5: hi..." is 5.
    r.set_token_ms(40);
    r.set_work_ms(0);
    let started = Instant::now();
    let (status, _) = post(
        &r,
        "/v1/chat/completions",
        r#"{"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(5 * 40));

    // Requests past the cap are served as the cap.
    r.set_token_ms(0);
    let (_, json) = post(&r, "/v1/inference", r#"{"prompt":"x","max_tokens":100000}"#).await;
    assert_eq!(json["tokens_used"], 4096);
}

#[tokio::test]
async fn probes_models_and_control_never_take_a_slot() {
    let r = limited("cap-6", 0).await;
    assert_eq!(get(&r, "/health").await.0, 200);
    assert_eq!(get(&r, "/v1/models").await.0, 200);
    assert_eq!(get(&r, "/control").await.0, 200);
    assert_eq!(r.load(), Load::default());
}
