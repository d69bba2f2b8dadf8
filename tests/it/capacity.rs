//! Capacity-aware routing: a saturated region is skipped while others have room (its tier
//! spills to the next), traffic returns when it frees up, and when every eligible region is
//! full Meridian sheds with 503 + Retry-After (or queues, when configured to).

use crate::common::*;
use std::time::Duration;

async fn concurrent(m: &Meridian, n: usize) -> Vec<Reply> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let url = m.url("/v1/inference");
        tasks.push(tokio::spawn(async move {
            Reply::from(
                client()
                    .post(url)
                    .body(r#"{"prompt":"x","max_tokens":1}"#)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saturated_tier_spills_and_takes_traffic_back() {
    let ap = region("ap-south-1", 5).await;
    let me = region("me-south-1", 5).await;
    ap.set_work_ms(1500);
    me.set_work_ms(1500);
    let cfg = TestConfig::new()
        .mock_with(&ap, 0.3, 1, &["max_in_flight: 2"])
        .mock(&me, 0.5, 2);
    let m = Meridian::start(&cfg).await;
    let replies = concurrent(&m, 5).await;
    assert!(replies.iter().all(|r| r.status == 200), "{replies:?}");
    // ap-south-1 takes exactly its two slots; the rest spill to the next tier.
    assert_eq!(ap.counts().inference, 2);
    assert_eq!(me.counts().inference, 3);
    // Free again: the cheap tier gets traffic back.
    ap.set_work_ms(0);
    me.set_work_ms(0);
    eventually(
        Duration::from_secs(5),
        "traffic back on ap-south-1",
        || async { m.infer(&[]).await.region.as_deref() == Some("ap-south-1") },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reported_capacity_is_honoured() {
    let ap = region("ap-south-1", 5).await;
    let me = region("me-south-1", 5).await;
    ap.set_capacity(Some(1));
    ap.set_work_ms(1500);
    me.set_work_ms(1500);
    let cfg = TestConfig::new().mock(&ap, 0.3, 1).mock(&me, 0.5, 2);
    let m = Meridian::start(&cfg).await;
    eventually(
        Duration::from_secs(5),
        "capacity learned from /health",
        || async { m.region_status("ap-south-1").await["capacity"] == 1 },
    )
    .await;
    let replies = concurrent(&m, 3).await;
    assert!(replies.iter().all(|r| r.status == 200), "{replies:?}");
    assert_eq!(
        ap.counts().inference,
        1,
        "one slot, one request: no queueing on a full region"
    );
    assert_eq!(me.counts().inference, 2);
    let st = m.region_status("ap-south-1").await;
    assert_eq!(st["endpoints"][0]["reported"]["max_concurrency"], 1, "{st}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_saturated_sheds_with_retry_after() {
    let ap = region("ap-south-1", 5).await;
    let me = region("me-south-1", 5).await;
    ap.set_work_ms(1500);
    me.set_work_ms(1500);
    let regions = |shed: bool| {
        TestConfig::new()
            .mock_with(&ap, 0.3, 1, &["max_in_flight: 1"])
            .mock_with(&me, 0.5, 2, &["max_in_flight: 1"])
            .section("capacity", &format!("  shed_when_saturated: {shed}\n"))
    };
    let m = Meridian::start(&regions(true)).await;
    let replies = concurrent(&m, 4).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let shed: Vec<&Reply> = replies.iter().filter(|r| r.status == 503).collect();
    assert_eq!((ok, shed.len()), (2, 2), "{replies:?}");
    for r in shed {
        assert_eq!(r.error_type(), "overloaded");
        assert!(r.headers.contains_key("retry-after"));
    }
    let metrics = m.metrics().await;
    assert!(metrics.contains("meridian_shed_total 2"), "{metrics}");
    drop(m);

    // Shedding off: the same burst queues on the regions instead.
    let m = Meridian::start(&regions(false)).await;
    let replies = concurrent(&m, 4).await;
    assert!(replies.iter().all(|r| r.status == 200), "{replies:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cheap_region_takes_requests_until_its_slots_are_full() {
    // One tier, 200 ms away, ap cheaper by 100 ms of score at the default weights (more
    // than probe round-trips jitter on a busy machine, far less than a load stretch): a
    // load stretch below capacity (ap at two of its three slots) would hand the third
    // request to me. ap keeps it; with ap full, the fourth goes to me.
    let ap = region("ap-south-1", 200).await;
    let me = region("me-south-1", 200).await;
    ap.set_capacity(Some(3));
    ap.set_work_ms(1500);
    me.set_work_ms(1500);
    let cfg = TestConfig::new().mock(&ap, 0.30, 1).mock(&me, 0.80, 1);
    let m = Meridian::start(&cfg).await;
    eventually(
        Duration::from_secs(5),
        "capacity learned from /health",
        || async { m.region_status("ap-south-1").await["capacity"] == 3 },
    )
    .await;
    let replies = concurrent(&m, 3).await;
    assert!(replies.iter().all(|r| r.status == 200), "{replies:?}");
    assert_eq!(ap.counts().inference, 3, "ap fills its three slots");
    assert_eq!(me.counts().inference, 0);
    let replies = concurrent(&m, 4).await;
    assert!(replies.iter().all(|r| r.status == 200), "{replies:?}");
    assert_eq!(ap.counts().inference, 6);
    assert_eq!(me.counts().inference, 1);
}
