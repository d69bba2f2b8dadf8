//! Client keys on the proxy listener: no key, a wrong key and a right one (Bearer, as the
//! OpenAI SDK sends it, and x-api-key); a key limited to models; residency bound to a key;
//! keys added and revoked by a reload under load; the refusal to start as an open relay;
//! and the key itself never forwarded or logged.

use crate::common::*;
use mock_regions::MockRegion;
use serde_json::{json, Value};
use std::time::Duration;

const OPS: &str = "sk-ops-0123456789abcdef";
const TEAM_A: &str = "sk-team-a-9876543210";
const EU: &str = "sk-eu-resident-55555";
const NEW: &str = "sk-newcomer-4242";

fn sha256(key: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn keys_file(extra: &str) -> String {
    format!(
        "keys:\n  - name: ops\n    sha256: {}\n  - name: team-a\n    sha256: {}\n    models: [bge-m3]\n  - name: eu-only\n    sha256: {}\n    allow: [tag:eu]\n{extra}",
        sha256(OPS),
        sha256(TEAM_A),
        sha256(EU)
    )
}

/// Two regions (us-east-1 cheap, eu-west-1 tagged eu), two models, keys from a file.
async fn keyed() -> (MockRegion, MockRegion, Meridian) {
    let us = serving("us-east-1", &[("llama", "v1"), ("bge-m3", "v1")]).await;
    let eu = serving("eu-west-1", &[("llama", "v1"), ("bge-m3", "v1")]).await;
    let both =
        "models:\n      - name: llama-3.1-70b\n        upstream_name: llama\n      - name: bge-m3";
    let cfg = TestConfig::new()
        .section("models", "  - name: llama-3.1-70b\n  - name: bge-m3\n")
        .section("auth", "  keys_file: keys.yaml\n")
        .mock_with(&us, 0.10, 1, &[both])
        .mock_with(&eu, 0.50, 2, &["tags: [eu]", both]);
    let m = Meridian::start_with(
        |p, a, d| {
            std::fs::write(d.join("keys.yaml"), keys_file("")).unwrap();
            cfg.render(p, a, d)
        },
        &[],
    )
    .await;
    m.wait_health("us-east-1", true).await;
    m.wait_health("eu-west-1", true).await;
    (us, eu, m)
}

async fn chat(m: &Meridian, model: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = client()
        .post(m.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}).to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Reply::from(req.send().await.expect("proxy answers")).await
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_or_a_wrong_key_gets_401_and_a_right_one_gets_through() {
    let (us, eu, m) = keyed().await;
    let r = chat(&m, "llama-3.1-70b", &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.error_type(), "invalid_api_key");
    let r = chat(&m, "llama-3.1-70b", &[("authorization", "Bearer sk-wrong")]).await;
    assert_eq!(r.status, 401);
    let r = chat(
        &m,
        "llama-3.1-70b",
        &[("authorization", "Basic b3BzOm9wcw==")],
    )
    .await;
    assert_eq!(r.status, 401);
    // Nothing of that reached a region.
    assert_eq!(
        us.model_counts().values().sum::<u64>() + eu.model_counts().values().sum::<u64>(),
        0
    );

    let r = chat(&m, "llama-3.1-70b", &[("authorization", &bearer(OPS))]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.region.as_deref(), Some("us-east-1"));
    let r = chat(&m, "llama-3.1-70b", &[("x-api-key", OPS)]).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // The key was not forwarded, and is nowhere in the logs; its name is.
    let seen = us.last_headers();
    assert!(
        !seen
            .iter()
            .any(|(k, v)| k == "authorization" || k == "x-api-key" || v.contains(OPS)),
        "{seen:?}"
    );
    eventually(Duration::from_secs(5), "the access-log lines", || {
        let n = m.log().matches("\"key\":\"ops\"").count();
        async move { n == 2 }
    })
    .await;
    assert!(!m.log().contains(OPS));
    assert!(!m.log().contains("sk-wrong"));
    let status = m.status().await.to_string();
    assert!(!status.contains(OPS));
    let metrics = m.metrics().await;
    assert!(
        metrics.contains("meridian_key_requests_total{key=\"ops\",status=\"200\"} 2"),
        "{metrics}"
    );
    // The proxy's own /health stays open for load balancers.
    let health = client().get(m.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_limited_to_a_model_gets_403_for_others_and_sees_only_its_own() {
    let (_us, _eu, m) = keyed().await;
    let team_a = bearer(TEAM_A);
    let r = chat(&m, "llama-3.1-70b", &[("authorization", &team_a)]).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.error_type(), "model_not_allowed");
    assert!(r.body.contains("bge-m3"), "{}", r.body);
    let r = Reply::from(
        client()
            .post(m.url("/v1/embeddings"))
            .header("authorization", &team_a)
            .header("content-type", "application/json")
            .body(r#"{"model":"bge-m3","input":"x"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Without a model it cannot go anywhere a model list would not allow.
    let r = Reply::from(
        client()
            .post(m.url("/v1/inference"))
            .header("authorization", &team_a)
            .body(r#"{"prompt":"x"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);

    let ids = |key: String| {
        let url = m.url("/v1/models");
        async move {
            let v: Value = client()
                .get(url)
                .header("authorization", key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let mut ids: Vec<String> = v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["id"].as_str().unwrap().to_string())
                .collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(ids(team_a.clone()).await, ["bge-m3"]);
    assert_eq!(ids(bearer(OPS)).await, ["bge-m3", "llama-3.1-70b"]);
    let anonymous = client().get(m.url("/v1/models")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_residency_bound_key_stays_in_its_regions_without_any_geo_header() {
    let (us, eu, m) = keyed().await;
    let eu_key = bearer(EU);
    for _ in 0..5 {
        let r = chat(&m, "llama-3.1-70b", &[("authorization", &eu_key)]).await;
        assert_eq!(r.region.as_deref(), Some("eu-west-1"), "{}", r.body);
    }
    // Its only region down: 503, and the cheaper region never sees the request.
    eu.kill().await;
    m.wait_health("eu-west-1", false).await;
    let before = us.model_counts().values().sum::<u64>();
    for _ in 0..3 {
        let r = chat(&m, "llama-3.1-70b", &[("authorization", &eu_key)]).await;
        assert_eq!(r.status, 503, "{}", r.body);
    }
    assert_eq!(us.model_counts().values().sum::<u64>(), before);
    // Other keys go on as usual.
    let r = chat(&m, "llama-3.1-70b", &[("authorization", &bearer(OPS))]).await;
    assert_eq!(r.region.as_deref(), Some("us-east-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reload_adds_and_revokes_keys_without_failing_the_keys_that_stay() {
    let (_us, _eu, m) = keyed().await;
    let r = chat(&m, "llama-3.1-70b", &[("authorization", &bearer(NEW))]).await;
    assert_eq!(r.status, 401);
    let keys = m.dir.path().join("keys.yaml");
    // team-a is revoked, newcomer added, while ops sends a steady load.
    let new_keys = format!(
        "keys:\n  - name: ops\n    sha256: {}\n  - name: eu-only\n    sha256: {}\n    allow: [tag:eu]\n  - name: newcomer\n    sha256: {}\n",
        sha256(OPS),
        sha256(EU),
        sha256(NEW)
    );
    let (out, _, _) = load(
        &m,
        Load {
            headers: &[("authorization", "Bearer sk-ops-0123456789abcdef")],
            ..Load::for_(Duration::from_secs(3))
        },
        Duration::from_millis(1000),
        async {
            std::fs::write(&keys, &new_keys).unwrap();
            m.signal("HUP");
        },
    )
    .await;
    assert!(out.len() > 20, "{} requests", out.len());
    let failed: Vec<&Outcome> = out.iter().filter(|o| o.status != 200).collect();
    assert!(failed.is_empty(), "{failed:?}");
    eventually(Duration::from_secs(5), "the new key works", || async {
        chat(&m, "llama-3.1-70b", &[("authorization", &bearer(NEW))])
            .await
            .status
            == 200
    })
    .await;
    let r = chat(&m, "bge-m3", &[("authorization", &bearer(TEAM_A))]).await;
    assert_eq!(r.status, 401, "team-a was revoked");
    // A broken keys file is refused like a broken config: the keys in force stay.
    std::fs::write(&keys, "keys:\n  - name: ops\n    sha256: nothex\n").unwrap();
    m.signal("HUP");
    eventually(Duration::from_secs(5), "the refused reload", || async {
        m.status().await["last_reload"]["ok"] == false
    })
    .await;
    let msg = m.status().await["last_reload"]["message"].to_string();
    assert!(
        msg.contains("keys.yaml") && msg.contains("key 'ops'") && msg.contains("sha256"),
        "{msg}"
    );
    assert!(!msg.contains(OPS));
    let r = chat(&m, "llama-3.1-70b", &[("authorization", &bearer(NEW))]).await;
    assert_eq!(r.status, 200);
}

/// `meridian -t` on a config; (exit code, stderr).
fn check(yaml: &str, env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meridian.yaml");
    std::fs::write(&path, yaml).unwrap();
    std::fs::write(dir.path().join("keys.yaml"), keys_file("")).unwrap();
    let out = std::process::Command::new(meridian_bin())
        .args(["-t", "-c"])
        .arg(&path)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn an_exposed_proxy_that_injects_credentials_will_not_start_without_keys() {
    let base = "listen:\n  proxy: 0.0.0.0:18000\n  admin: 127.0.0.1:19000\nmodels:\n  - name: llama-3.1-70b\n  - name: bge-m3\nregions:\n  - name: ap-south-1\n    provider: aws\n    endpoints: [http://127.0.0.1:8003]\n    cost_per_1k: 0.3\n    priority: 1\n    tags: [eu]\n    credentials:\n      value_env: AP_KEY\n";
    let env = [("AP_KEY", "Bearer sk-upstream")];
    let (code, stderr) = check(base, &env);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("0.0.0.0:18000") && stderr.contains("off loopback"),
        "{stderr}"
    );
    assert!(
        stderr.contains("auth: {keys_file: keys.yaml}") && stderr.contains("auth: {open: true}"),
        "{stderr}"
    );
    // Keys, or running open on purpose, both start.
    let (code, stderr) = check(&format!("{base}auth:\n  keys_file: keys.yaml\n"), &env);
    assert_eq!(code, 0, "{stderr}");
    let (code, stderr) = check(&format!("{base}auth:\n  open: true\n"), &env);
    assert_eq!(code, 0, "{stderr}");
    // Keys may also come from the environment (the value is the key itself).
    let env_keys = format!("{base}auth:\n  env_keys:\n    - name: ci\n      value_env: CI_KEY\n");
    let (code, stderr) = check(&env_keys, &[("AP_KEY", "x"), ("CI_KEY", "sk-ci-123")]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stderr) = check(&env_keys, &env);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("key 'ci'") && stderr.contains("CI_KEY is not set"),
        "{stderr}"
    );
    // On loopback, or without injected credentials, there is nothing to relay.
    let (code, stderr) = check(&base.replace("0.0.0.0:18000", "127.0.0.1:18000"), &env);
    assert_eq!(code, 0, "{stderr}");
    // A bad keys file names the file, the line, the key and the field.
    let (code, stderr) = check(&format!("{base}auth:\n  keys_file: bad.yaml\n"), &env);
    assert_eq!(code, 1);
    assert!(stderr.contains("bad.yaml"), "{stderr}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meridian.yaml");
    std::fs::write(&path, format!("{base}auth:\n  keys_file: keys.yaml\n")).unwrap();
    std::fs::write(
        dir.path().join("keys.yaml"),
        "keys:\n  - name: ops\n    sha256: 00\n",
    )
    .unwrap();
    let out = std::process::Command::new(meridian_bin())
        .args(["-t", "-c"])
        .arg(&path)
        .env("AP_KEY", "Bearer x")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("keys.yaml line 3: key 'ops': field 'sha256'"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdk_authenticates_with_its_api_key() {
    let Some(python) = crate::openai_sdk::python() else {
        assert!(std::env::var("MERIDIAN_REQUIRE_OPENAI_SDK").is_err());
        eprintln!("skipped: no OpenAI SDK");
        return;
    };
    let (_us, _eu, m) = keyed().await;
    let script = r#"
import json, os
from openai import OpenAI, AuthenticationError, PermissionDeniedError
url = os.environ["MERIDIAN_URL"]
out = {}
ok = OpenAI(base_url=url, api_key=os.environ["GOOD"], max_retries=0)
out["models"] = sorted(m.id for m in ok.models.list())
out["reply"] = ok.chat.completions.create(model="llama-3.1-70b", messages=[{"role": "user", "content": "hi"}]).model
try:
    OpenAI(base_url=url, api_key="sk-not-a-key", max_retries=0).models.list()
    out["bad"] = "accepted"
except AuthenticationError as e:
    out["bad"] = e.status_code
try:
    OpenAI(base_url=url, api_key=os.environ["LIMITED"], max_retries=0).chat.completions.create(
        model="llama-3.1-70b", messages=[{"role": "user", "content": "hi"}])
    out["limited"] = "accepted"
except PermissionDeniedError as e:
    out["limited"] = e.status_code
print(json.dumps(out))
"#;
    let url = m.url("/v1");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .args(["-c", script])
            .env("MERIDIAN_URL", url)
            .env("GOOD", OPS)
            .env("LIMITED", TEAM_A)
            .output()
            .expect("python runs")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["models"], json!(["bge-m3", "llama-3.1-70b"]));
    assert_eq!(v["reply"], "llama");
    assert_eq!(v["bad"], 401);
    assert_eq!(v["limited"], 403);
}
