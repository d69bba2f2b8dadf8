//! Provider URL shapes and per-region probes through the real server: an endpoint mounted
//! under a path prefix with `?api-version=...` gets every request and probe under the
//! prefix with its parameters merged in (its own winning); a region with no health
//! endpoint is probed with `GET /v1/models`; a status the region does not expect marks it
//! down; a POST probe sends its body; the region's credential reaches every probe.

use crate::common::*;
use std::time::Duration;

const SECRET: &str = "Bearer probe-secret-0123456789";

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

async fn chat(m: &Meridian, path_and_query: &str) -> Reply {
    Reply::from(
        client()
            .post(m.url(path_and_query))
            .header("content-type", "application/json")
            .body(r#"{"model":"mock-model","messages":[{"role":"user","content":"hi"}],"max_tokens":4}"#)
            .send()
            .await
            .expect("proxy answers"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefixed_endpoint_gets_its_prefix_and_parameters_on_requests_and_probes() {
    let azure = region("eastus2", 0).await;
    azure.set_mount(Some("/gw/openai"));
    let url = format!("'{}/gw/openai/?api-version=2024-10-21'", azure.url());
    let cfg = TestConfig::new().region(
        "eastus2",
        &[url],
        0.3,
        1,
        "credentials:\n      header: api-key\n      value_env: TEST_AZURE_KEY",
    );
    let m = Meridian::start_with(
        |p, a, d| cfg.render(p, a, d),
        &[("TEST_AZURE_KEY".to_string(), SECRET.to_string())],
    )
    .await;
    // Healthy only if the probe followed the prefix: the mock's root /health is a 404.
    m.wait_health("eastus2", true).await;

    let r = chat(
        &m,
        "/v1/chat/completions?api-version=1999-01-01&client-param=a%2Fb&api%2Dversion=2",
    )
    .await;
    assert_eq!(
        (r.status, r.region.as_deref()),
        (200, Some("eastus2")),
        "{}",
        r.body
    );
    let targets = azure.targets();
    assert!(
        targets.contains(
            &"POST /gw/openai/v1/chat/completions?api-version=2024-10-21&client-param=a%2Fb"
                .to_string()
        ),
        "the endpoint's api-version wins, the client's other parameter stays: {targets:?}"
    );
    assert!(
        targets.contains(&"GET /gw/openai/health?api-version=2024-10-21".to_string()),
        "the probe follows the prefix with the parameters: {targets:?}"
    );
    // A path that already starts with the prefix is prefixed all the same (documented).
    let r = chat(&m, "/gw/openai/v1/chat/completions").await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(azure
        .targets()
        .contains(&"POST /gw/openai/gw/openai/v1/chat/completions?api-version=2024-10-21".into()));

    assert_eq!(header(&azure.last_probe_headers(), "api-key"), [SECRET]);
    let status = m.region_status("eastus2").await;
    let ep = &status["endpoints"][0];
    assert_eq!(ep["path_prefix"], "/gw/openai");
    assert_eq!(ep["query"], "api-version=2024-10-21");
    assert_eq!(ep["probe"], "GET /gw/openai/health?api-version=2024-10-21");
    assert_eq!(
        status["health_check"]["expect_status"],
        serde_json::json!([200])
    );
    assert!(!status.to_string().contains("probe-secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_without_a_health_endpoint_is_probed_with_get_v1_models() {
    let models_probed = region("ap-south-1", 0).await;
    let health_probed = region("me-south-1", 0).await;
    for r in [&models_probed, &health_probed] {
        r.set_health_route(false);
    }
    let cfg = TestConfig::new()
        .mock_with(
            &models_probed,
            0.4,
            2,
            &[
                "health_check: {path: /v1/models, expect_status: 200}",
                "credentials: {value_env: TEST_MODELS_KEY}",
            ],
        )
        .mock(&health_probed, 0.1, 1);
    let m = Meridian::start_with(
        |p, a, d| cfg.render(p, a, d),
        &[("TEST_MODELS_KEY".to_string(), SECRET.to_string())],
    )
    .await;
    m.wait_health("ap-south-1", true).await;
    m.wait_health("me-south-1", false).await;
    // Nothing but probes has reached it yet: the last request seen is a probe.
    assert_eq!(
        header(&models_probed.last_headers(), "authorization"),
        [SECRET],
        "the credential reaches a /v1/models probe"
    );
    assert!(models_probed
        .targets()
        .iter()
        .all(|t| t == "GET /v1/models"));
    assert!(health_probed.targets().iter().all(|t| t == "GET /health"));
    // The cheaper region is down, so traffic goes to the one probed on /v1/models.
    let r = chat(&m, "/v1/chat/completions").await;
    assert_eq!((r.status, r.region.as_deref()), (200, Some("ap-south-1")));
    let status = m.region_status("ap-south-1").await;
    assert_eq!(status["endpoints"][0]["probe"], "GET /v1/models");
    assert_eq!(status["health_check"]["path"], "/v1/models");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expected_statuses_post_probes_and_probes_outside_the_prefix() {
    let wants_204 = region("us-east-1", 0).await;
    let takes_either = region("us-west-2", 0).await;
    let posted = region("eu-west-1", 0).await;
    let outside = region("eu-north-1", 0).await;
    let probe_body =
        r#"{"model":"mock-model","messages":[{"role":"user","content":"ping"}],"max_tokens":1}"#;
    let cfg = TestConfig::new()
        .mock_with(&wants_204, 0.1, 1, &["health_check: {expect_status: 204}"])
        .mock_with(
            &takes_either,
            0.2,
            1,
            &["health_check: {expect_status: [200, 204]}"],
        )
        .mock_with(
            &posted,
            0.3,
            1,
            &[&format!(
                "health_check: {{method: POST, path: /v1/chat/completions, body: '{probe_body}'}}"
            )],
        )
        .region(
            "eu-north-1",
            &[format!("'{}/gw?api-version=7'", outside.url())],
            0.4,
            1,
            "health_check: {follow_prefix: false}",
        );
    let m = Meridian::start(&cfg).await;
    m.wait_health("us-east-1", false).await;
    m.wait_health("us-west-2", true).await;
    m.wait_health("eu-west-1", true).await;
    m.wait_health("eu-north-1", true).await;
    // Down from the first round and never up since.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(m.region_status("us-east-1").await["healthy"], false);

    assert!(posted
        .targets()
        .iter()
        .all(|t| t == "POST /v1/chat/completions"));
    assert_eq!(
        posted.last_body().as_deref(),
        Some(probe_body.as_bytes()),
        "the POST probe sends its body"
    );
    assert!(
        outside
            .targets()
            .iter()
            .all(|t| t == "GET /health?api-version=7"),
        "follow_prefix: false keeps the path but merges the parameters: {:?}",
        outside.targets()
    );
    let status = m.region_status("eu-west-1").await;
    assert_eq!(status["health_check"]["method"], "POST");
    assert_eq!(status["health_check"]["sends_body"], true);
}
