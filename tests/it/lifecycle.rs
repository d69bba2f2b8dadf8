//! Operations without dropped requests: a graceful upgrade under load (a new process with
//! `-u`, then SIGQUIT to the old one) and SIGTERM draining what is in flight.

use crate::common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_graceful_upgrade_under_load_drops_no_request_from_keep_alive_clients() {
    upgrade_under_load(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_graceful_upgrade_under_load_drops_no_request_from_new_connections() {
    upgrade_under_load(true).await;
}

async fn upgrade_under_load(fresh_connections: bool) {
    let ap = region("ap-south-1", 2).await;
    let me = region("me-south-1", 2).await;
    let cfg = TestConfig::new().mock(&ap, 0.30, 1).mock(&me, 0.40, 2);
    let mut old = Meridian::start(&cfg).await;
    old.wait_health("ap-south-1", true).await;

    let log = std::fs::File::create(old.dir.path().join("new.log")).unwrap();
    let upgrade = || {
        // The new process takes the listening sockets over the upgrade socket, which
        // the old one hands over on SIGQUIT before it drains and exits.
        let new = Command::new(meridian_bin())
            .arg("-c")
            .arg(old.conf_path())
            .arg("-u")
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log.try_clone().unwrap()))
            .spawn()
            .expect("new meridian starts");
        std::thread::sleep(Duration::from_millis(300));
        old.signal("QUIT");
        new
    };
    let mut new = None;
    let l = Load {
        fresh_connections,
        ..Load::for_(Duration::from_secs(4))
    };
    let (out, _, _) = load(&old, l, Duration::from_millis(1000), async {
        new = Some(upgrade());
    })
    .await;
    let mut new = new.expect("upgrade ran");
    let failed = failures(&out);
    println!(
        "graceful upgrade under load ({}): {} requests, {} failed",
        if fresh_connections {
            "a connection per request"
        } else {
            "keep-alive clients"
        },
        out.len(),
        failed.len()
    );
    assert!(out.len() > 200, "load ran: {}", out.len());
    assert!(failed.is_empty(), "no request may fail: {failed:?}");
    assert!(
        old.exits_within(Duration::from_secs(10)).await,
        "the old process drains and exits"
    );
    // The new process serves on the same address.
    assert_eq!(old.infer(&[]).await.status, 200);
    assert!(new.try_wait().unwrap().is_none(), "the new process runs");
    let _ = new.kill();
    let _ = new.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_and_streams_finish() {
    let slow = region("ap-south-1", 0).await;
    // Both finish about 0.4 s after the signal, inside the 1 s grace period of the
    // test config (Pingora stops accepting at once and ends what is left after it).
    slow.set_work_ms(300);
    slow.set_token_ms(100);
    let cfg = TestConfig::new().mock(&slow, 0.30, 1);
    let mut m = Meridian::start(&cfg).await;
    m.wait_health("ap-south-1", true).await;

    let post = client()
        .post(m.url("/v1/inference"))
        .header("content-type", "application/json")
        .body(r#"{"prompt":"drain me","max_tokens":1}"#)
        .send();
    let stream = client()
        .post(m.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(r#"{"stream":true,"max_tokens":3,"messages":[{"role":"user","content":"drain"}]}"#)
        .send();
    let in_flight = tokio::spawn(async move {
        let (a, b) = tokio::join!(post, stream);
        let a = a.expect("answered");
        let b = b.expect("answered");
        (
            a.status().as_u16(),
            b.status().as_u16(),
            b.text().await.unwrap_or_default(),
        )
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    m.signal("TERM");
    let (post_status, stream_status, body) = in_flight.await.unwrap();
    assert_eq!(post_status, 200);
    assert_eq!(stream_status, 200);
    assert!(
        body.contains("data: [DONE]"),
        "the stream ran to its end: {body}"
    );
    // Bounded: grace period 1 s plus graceful_shutdown_timeout 1 s in the test config.
    assert!(
        client().get(m.url("/health")).send().await.is_err(),
        "no new connections are taken while draining"
    );
    assert!(
        m.exits_within(Duration::from_secs(5)).await,
        "exits after draining"
    );
}
