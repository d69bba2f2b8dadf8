//! The OpenAI Python SDK against Meridian routing by model: list the models, chat with an
//! alias, stream, embed, and read which region served it from the raw response.
//!
//! The SDK lives in a virtualenv (`tests/openai-requirements.txt`, pinned): `.ci/run`
//! makes it at `target/venv-openai` and sets `MERIDIAN_REQUIRE_OPENAI_SDK=1`, so in CI this
//! test cannot be skipped. Elsewhere, without that virtualenv, it says so and passes.

use crate::common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

const SCRIPT: &str = r#"
import json, os, sys
from openai import OpenAI
client = OpenAI(base_url=os.environ["MERIDIAN_URL"], api_key="sk-test", max_retries=0)
out = {}
out["models"] = sorted(m.id for m in client.models.list())
raw = client.chat.completions.with_raw_response.create(
    model="llama-70b", messages=[{"role": "user", "content": "hello"}], max_tokens=8)
chat = raw.parse()
out["chat_model"] = chat.model
out["chat_text"] = chat.choices[0].message.content
out["chat_region"] = raw.headers.get("x-meridian-region")
stream = client.chat.completions.create(
    model="qwen-7b", messages=[{"role": "user", "content": "one two three"}],
    max_tokens=4, stream=True)
out["stream_chunks"] = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
emb = client.embeddings.create(model="bge-m3", input="hi")
out["embedding_len"] = len(emb.data[0].embedding)
try:
    client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    out["unknown"] = "no error"
except Exception as e:
    out["unknown"] = [type(e).__name__, getattr(e, "status_code", None)]
print(json.dumps(out))
"#;

pub fn python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("MERIDIAN_TEST_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/venv-openai/bin/python"
    ));
    venv.exists().then_some(venv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdk_lists_chats_streams_and_embeds_by_model() {
    let Some(python) = python() else {
        assert!(
            std::env::var("MERIDIAN_REQUIRE_OPENAI_SDK").is_err(),
            "MERIDIAN_REQUIRE_OPENAI_SDK is set but there is no target/venv-openai"
        );
        eprintln!("skipped: no OpenAI SDK (python3 -m venv target/venv-openai && target/venv-openai/bin/pip install -r tests/openai-requirements.txt)");
        return;
    };
    let big = serving(
        "us-east-1",
        &[
            ("meta-llama/Llama-3.1-70B-Instruct", "v1"),
            ("BAAI/bge-m3", "v1"),
        ],
    )
    .await;
    let small = serving(
        "ap-south-1",
        &[("Qwen/Qwen2.5-7B-Instruct", "v1"), ("BAAI/bge-m3", "v1")],
    )
    .await;
    let models = "  - name: llama-3.1-70b\n    aliases: [llama-70b]\n  - name: qwen2.5-7b\n    aliases: [qwen-7b]\n  - name: bge-m3\n";
    let cfg = TestConfig::new()
        .section("models", models)
        .mock_with(
            &big,
            0.5,
            2,
            &["models:\n      - name: llama-3.1-70b\n        upstream_name: meta-llama/Llama-3.1-70B-Instruct\n      - name: bge-m3\n        upstream_name: BAAI/bge-m3"],
        )
        .mock_with(
            &small,
            0.1,
            1,
            &["models:\n      - name: qwen2.5-7b\n        upstream_name: Qwen/Qwen2.5-7B-Instruct\n      - name: bge-m3\n        upstream_name: BAAI/bge-m3"],
        );
    let m = Meridian::start(&cfg).await;
    m.wait_health("us-east-1", true).await;
    m.wait_health("ap-south-1", true).await;
    let url = m.url("/v1");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .args(["-c", SCRIPT])
            .env("MERIDIAN_URL", url)
            .env("NO_PROXY", "127.0.0.1")
            .output()
            .expect("python runs")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["models"],
        serde_json::json!([
            "bge-m3",
            "llama-3.1-70b",
            "llama-70b",
            "qwen-7b",
            "qwen2.5-7b"
        ])
    );
    assert_eq!(v["chat_region"], "us-east-1");
    assert_eq!(v["chat_model"], "meta-llama/Llama-3.1-70B-Instruct");
    assert!(
        v["chat_text"]
            .as_str()
            .unwrap()
            .starts_with("Mock response"),
        "{v}"
    );
    assert!(!v["stream_chunks"].as_array().unwrap().is_empty(), "{v}");
    assert_eq!(v["embedding_len"], 8);
    assert_eq!(v["unknown"], serde_json::json!(["NotFoundError", 404]));
    assert_eq!(
        small.model_counts().get("Qwen/Qwen2.5-7B-Instruct"),
        Some(&1)
    );
}
