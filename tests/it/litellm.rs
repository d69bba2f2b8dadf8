//! A real third-party upstream: LiteLLM's proxy, serving mock responses, as a Meridian
//! region beside a mock region. Through Meridian: a chat answered by LiteLLM, a stream
//! (SSE chunks and `[DONE]`), model routing (LiteLLM's models go there, each sent under
//! LiteLLM's own name) and usage accounting (Meridian's token and spend counters grow by
//! the usage LiteLLM reported). LiteLLM's `/health` wants a key, so the region is probed
//! with `GET /v1/models` carrying the region's credential.
//!
//! LiteLLM lives in a virtualenv (`bench/litellm-requirements.txt`, pinned): `.ci/run`
//! makes it at `target/venv-litellm` and sets `MERIDIAN_REQUIRE_LITELLM=1`, so in CI this
//! test cannot be skipped. Elsewhere, without that virtualenv, it says so and passes.
//! LiteLLM runs on loopback with telemetry off and its local cost map, so it reaches
//! nothing beyond this machine.

use crate::common::*;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MASTER_KEY: &str = "sk-meridian-test-0123456789abcdef";
/// LiteLLM boots in 5-30 s; the wait ends as soon as it answers.
const BOOT_LIMIT: Duration = Duration::from_secs(90);

fn litellm_bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("MERIDIAN_TEST_LITELLM") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/venv-litellm/bin/litellm"
    ));
    venv.exists().then_some(venv)
}

const LITELLM_CONFIG: &str = r#"model_list:
  - model_name: lite-chat
    litellm_params:
      model: openai/lite-chat
      api_key: sk-unused
      mock_response: "Hello from LiteLLM"
  - model_name: lite-small
    litellm_params:
      model: openai/lite-small
      api_key: sk-unused
      mock_response: "Small talk from LiteLLM"
litellm_settings:
  telemetry: false
general_settings:
  master_key: MASTER_KEY
"#;

/// A LiteLLM proxy on a loopback port, in its own process group; killed (the whole group)
/// on drop, its log printed if the test failed.
struct Litellm {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
    log: PathBuf,
}

impl Litellm {
    async fn start(bin: &Path) -> Litellm {
        let mut last = String::new();
        // A port picked free may be taken before LiteLLM binds it: then it exits, and
        // another port is tried.
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let conf = dir.path().join("litellm.yaml");
            std::fs::write(&conf, LITELLM_CONFIG.replace("MASTER_KEY", MASTER_KEY)).unwrap();
            let log = dir.path().join("litellm.log");
            let out = std::fs::File::create(&log).unwrap();
            let addr = free_addr();
            let child = {
                use std::os::unix::process::CommandExt;
                Command::new(bin)
                    .arg("--config")
                    .arg(&conf)
                    .args(["--host", "127.0.0.1", "--port", &addr.port().to_string()])
                    .current_dir(dir.path())
                    .env("LITELLM_TELEMETRY", "False")
                    .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
                    .env("LITELLM_LOG", "ERROR")
                    .env("NO_PROXY", "*")
                    .env_remove("HTTP_PROXY")
                    .env_remove("HTTPS_PROXY")
                    .env_remove("http_proxy")
                    .env_remove("https_proxy")
                    .stdin(Stdio::null())
                    .stdout(Stdio::from(out.try_clone().unwrap()))
                    .stderr(Stdio::from(out))
                    .process_group(0)
                    .spawn()
                    .expect("litellm starts")
            };
            let mut l = Litellm {
                child,
                addr,
                _dir: dir,
                log,
            };
            if l.wait_ready().await {
                return l;
            }
            last = l.log();
        }
        panic!("LiteLLM did not become ready within {BOOT_LIMIT:?}:\n{last}");
    }

    async fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + BOOT_LIMIT;
        let url = format!("http://{}/health/liveliness", self.addr);
        let http = client();
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(r) = http.get(&url).timeout(Duration::from_secs(2)).send().await {
                if r.status().is_success() {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Litellm {
    fn drop(&mut self) {
        // The process group this test started (LiteLLM and any worker it forked).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- litellm log -----\n{}", self.log());
        }
    }
}

/// The value of a metric line `name{labels} value`, or 0.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

fn tokens(text: &str, model: &str, kind: &str) -> f64 {
    metric(
        text,
        &format!("meridian_tokens_total{{kind=\"{kind}\",model=\"{model}\",region=\"litellm\"}}"),
    )
}

fn spend(text: &str, model: &str) -> f64 {
    metric(
        text,
        &format!("meridian_spend_total{{model=\"{model}\",region=\"litellm\"}}"),
    )
}

async fn chat(m: &Meridian, body: Value) -> Reply {
    Reply::from(
        client()
            .post(m.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("proxy answers"),
    )
    .await
}

/// `(prompt_tokens, completion_tokens)` of an OpenAI usage object.
fn usage_of(v: &Value) -> (f64, f64) {
    let n = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("usage.{k} in {v}"));
    (n("prompt_tokens"), n("completion_tokens"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litellm_behind_meridian_chats_streams_routes_and_is_accounted() {
    let Some(bin) = litellm_bin() else {
        assert!(
            std::env::var("MERIDIAN_REQUIRE_LITELLM").is_err(),
            "MERIDIAN_REQUIRE_LITELLM is set but there is no target/venv-litellm"
        );
        eprintln!("skipped: no LiteLLM (python3 -m venv target/venv-litellm && target/venv-litellm/bin/pip install -r bench/litellm-requirements.txt)");
        return;
    };
    let litellm = Litellm::start(&bin).await;
    let mock = serving("us-east-1", &[("mock-chat-upstream", "v1")]).await;
    let models = "  - name: chat-large\n  - name: chat-small\n  - name: mock-chat\n";
    let lite_models = "models:\n      - name: chat-large\n        upstream_name: lite-chat\n        price: {input: 3.0, output: 15.0}\n      - name: chat-small\n        upstream_name: lite-small\n        price: {input: 0.5, output: 1.5}";
    let cfg = TestConfig::new()
        .section("models", models)
        .region(
            "litellm",
            &[litellm.url()],
            0.5,
            1,
            &[
                lite_models,
                "credentials: {value_env: TEST_LITELLM_KEY}",
                "health_check: {path: /v1/models, expect_status: 200}",
            ]
            .join("\n    "),
        )
        .mock_with(
            &mock,
            0.1,
            1,
            &["models:\n      - name: mock-chat\n        upstream_name: mock-chat-upstream"],
        );
    let m = Meridian::start_with(
        |p, a, d| cfg.render(p, a, d),
        &[(
            "TEST_LITELLM_KEY".to_string(),
            format!("Bearer {MASTER_KEY}"),
        )],
    )
    .await;
    // Healthy only if the probe of /v1/models carried the master key.
    m.wait_health("litellm", true).await;
    m.wait_health("us-east-1", true).await;
    assert_eq!(
        m.region_status("litellm").await["endpoints"][0]["probe"],
        "GET /v1/models"
    );

    // A chat answered by LiteLLM, under LiteLLM's name for the model.
    let r = chat(
        &m,
        json!({"model": "chat-large", "messages": [{"role": "user", "content": "hello"}]}),
    )
    .await;
    assert_eq!(
        (r.status, r.region.as_deref()),
        (200, Some("litellm")),
        "{}",
        r.body
    );
    let answer = r.json();
    assert_eq!(answer["model"], "lite-chat", "{answer}");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Hello from LiteLLM"
    );
    let chat_usage = usage_of(&answer["usage"]);

    // A stream: SSE chunks, LiteLLM's usage chunk, `[DONE]`.
    let r = chat(
        &m,
        json!({"model": "chat-small", "stream": true, "stream_options": {"include_usage": true},
               "messages": [{"role": "user", "content": "stream please"}]}),
    )
    .await;
    assert_eq!(
        (r.status, r.region.as_deref()),
        (200, Some("litellm")),
        "{}",
        r.body
    );
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"),
        "{:?}",
        r.headers
    );
    let events: Vec<&str> = r
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{}", r.body);
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Small talk from LiteLLM", "{}", r.body);
    assert!(
        chunks.iter().all(|c| c["model"] == "lite-small"),
        "{}",
        r.body
    );
    let stream_usage = chunks
        .iter()
        .find(|c| c["usage"].is_object())
        .map(|c| usage_of(&c["usage"]))
        .unwrap_or_else(|| panic!("no usage chunk in {}", r.body));

    // Model routing: a model LiteLLM does not serve goes to the mock region.
    let r = chat(
        &m,
        json!({"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}),
    )
    .await;
    assert_eq!((r.status, r.region.as_deref()), (200, Some("us-east-1")));
    assert_eq!(mock.last_model().as_deref(), Some("mock-chat-upstream"));

    // Usage accounting: exactly what LiteLLM reported, priced per model.
    eventually(
        Duration::from_secs(5),
        "LiteLLM's usage accounted",
        || async {
            let text = m.metrics().await;
            tokens(&text, "chat-large", "output") == chat_usage.1
                && tokens(&text, "chat-small", "output") == stream_usage.1
        },
    )
    .await;
    let text = m.metrics().await;
    for (model, (input, output), (pi, po)) in [
        ("chat-large", chat_usage, (3.0, 15.0)),
        ("chat-small", stream_usage, (0.5, 1.5)),
    ] {
        assert_eq!(tokens(&text, model, "input"), input, "{model}: {text}");
        assert_eq!(tokens(&text, model, "output"), output, "{model}");
        let expected = (input * pi + output * po) / 1e6;
        let got = spend(&text, model);
        assert!(
            (got - expected).abs() < 1e-12,
            "{model}: spend {got} vs {expected}"
        );
    }
    assert!(
        !m.status().await.to_string().contains(MASTER_KEY),
        "the status API never shows the region's key"
    );
}
