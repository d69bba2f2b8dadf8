//! One JSON access-log line per request, with the facts an operator needs and never a
//! body or a credential.

use crate::common::*;
use serde_json::Value;

/// Meridian on `cfg`, its access log in `access.log` of its folder.
async fn start_logging_to_file(cfg: &TestConfig) -> Meridian {
    Meridian::start_with(
        |p, a, d| {
            let log = d.join("access.log");
            format!("{}access_log: {}\n", cfg.render(p, a, d), log.display())
        },
        &[],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_gets_one_json_line() {
    let ap = region("ap-south-1", 0).await;
    let eu = region("eu-west-1", 0).await;
    let dead = region("me-south-1", 0).await;
    let dead_url = dead.url();
    let cfg = TestConfig::new()
        .region("me-south-1", &[dead_url], 0.10, 1, "")
        .mock(&ap, 0.30, 1)
        .mock_tagged(&eu, 0.45, 2, "eu")
        .section("health_check", "  interval: 1h\n  timeout: 500ms\n")
        .section("geo", "  rules:\n    - name: eu-data-residency\n      match: [DE]\n      allow: [tag:eu]\n    - name: embargo\n      match: [KP]\n      deny: true\n");
    let m = start_logging_to_file(&cfg).await;
    m.wait_health("me-south-1", true).await;
    // Dies after the first probe round: found by the first request, which fails over.
    dead.kill().await;
    let secret_body = r#"{"prompt":"do-not-log-this-prompt"}"#;
    let post = |geo: &'static str| {
        client()
            .post(m.url("/v1/inference?api_key=do-not-log-this-query"))
            .header("content-type", "application/json")
            .header("authorization", "Bearer do-not-log-this-token")
            .header("x-geo-country", geo)
            .body(secret_body)
            .send()
    };
    assert_eq!(post("US").await.unwrap().status(), 200);
    assert_eq!(post("DE").await.unwrap().status(), 200);
    assert_eq!(post("KP").await.unwrap().status(), 451);

    let path = m.dir.path().join("access.log");
    let mut lines = Vec::new();
    eventually(
        std::time::Duration::from_secs(5),
        "three access-log lines",
        || {
            lines = std::fs::read_to_string(&path)
                .unwrap_or_default()
                .lines()
                .map(String::from)
                .collect();
            let n = lines.len();
            async move { n >= 3 }
        },
    )
    .await;
    let text = lines.join("\n");
    assert!(
        !text.contains("do-not-log"),
        "no body, query or credential: {text}"
    );
    let json: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(json.len(), 3, "{text}");

    // The first attempt hit the dead cheap region and failed over.
    let us = &json[0];
    assert_eq!(us["method"], "POST");
    assert_eq!(us["path"], "/v1/inference");
    assert_eq!(us["status"], 200);
    assert_eq!(us["region"], "ap-south-1");
    assert_eq!(us["attempts"], 2);
    assert_eq!(us["tried"], serde_json::json!(["me-south-1", "ap-south-1"]));
    assert_eq!(us["geo"], "default");
    assert_eq!(us["bytes_in"], secret_body.len());
    assert!(us["bytes_out"].as_u64().unwrap() > 0);
    assert!(us["latency_ms"].as_f64().unwrap() >= us["ttft_ms"].as_f64().unwrap());
    assert!(us["time"].as_str().unwrap().ends_with('Z'));

    assert_eq!(json[1]["region"], "eu-west-1");
    assert_eq!(json[1]["geo"], "eu-data-residency");
    assert_eq!(json[2]["status"], 451);
    assert_eq!(json[2]["geo"], "geo_denied");
    assert_eq!(json[2]["error"], "geo_denied");
    assert!(json[2]["region"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_lines_are_written_before_the_process_exits() {
    // Lines are written in batches; a SIGTERM right after the last request (no grace
    // period) must still leave every line in the file.
    let ap = region("ap-south-1", 0).await;
    let cfg = TestConfig::new().mock(&ap, 0.30, 1);
    let mut m = Meridian::start_with(
        |p, a, d| {
            let text = cfg
                .render(p, a, d)
                .replace("grace_period_seconds: 1", "grace_period_seconds: 0");
            format!("{text}access_log: {}\n", d.join("access.log").display())
        },
        &[],
    )
    .await;
    for _ in 0..20 {
        assert_eq!(m.infer(&[]).await.status, 200);
    }
    m.signal("TERM");
    assert!(m.exits_within(std::time::Duration::from_secs(10)).await);
    let text = std::fs::read_to_string(m.dir.path().join("access.log")).unwrap_or_default();
    let statuses: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["status"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(statuses, vec![200; 20], "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_is_logged_as_gone_not_as_an_answer() {
    let slow = region("ap-south-1", 3000).await;
    let cfg = TestConfig::new()
        .mock(&slow, 0.30, 1)
        .section("health_check", "  interval: 1h\n  timeout: 5s\n");
    let m = start_logging_to_file(&cfg).await;
    m.wait_health("ap-south-1", true).await;
    {
        use tokio::io::AsyncWriteExt;
        let body = r#"{"prompt":"hello"}"#;
        let mut conn = tokio::net::TcpStream::connect(m.proxy).await.unwrap();
        let req = format!(
            "POST /v1/inference HTTP/1.1\r\nhost: m\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(req.as_bytes()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        // The client gives up while the region is still working.
    }
    let path = m.dir.path().join("access.log");
    let mut line = Value::Null;
    eventually(
        std::time::Duration::from_secs(10),
        "the request's access-log line",
        || {
            line = std::fs::read_to_string(&path)
                .unwrap_or_default()
                .lines()
                .next()
                .map_or(Value::Null, |l| serde_json::from_str(l).unwrap());
            let done = !line.is_null();
            async move { done }
        },
    )
    .await;
    assert_eq!(line["status"], 499, "{line}");
    assert_eq!(line["error"], "client_gone", "{line}");
    let metrics = m.metrics().await;
    assert!(
        metrics.contains("meridian_request_outcomes_total{outcome=\"client_gone\"} 1"),
        "{metrics}"
    );
}
