//! Regions that serve particular models, as vLLM does.

use std::collections::BTreeMap;

use crate::common::{client, get, post, post_model, region, serving};
use mock_regions::{parse_models, MockModel, RegionSpec};
use serde_json::json;

const EAST: &[(&str, &str)] = &[("llama-70b-east", "v1"), ("bge-m3", "v2")];

/// Every model-carrying route with a body it accepts, `model` left to the caller.
const ROUTES: &[(&str, &str)] = &[
    ("/v1/inference", r#""prompt":"hi""#),
    (
        "/v1/chat/completions",
        r#""messages":[{"role":"user","content":"hi"}]"#,
    ),
    ("/v1/completions", r#""prompt":"hi""#),
    ("/v1/embeddings", r#""input":"hi""#),
    (
        "/v1/messages",
        r#""max_tokens":8,"messages":[{"role":"user","content":"hi"}]"#,
    ),
    ("/v1/responses", r#""input":"hi""#),
];

fn with_model(model: &str, rest: &str) -> String {
    format!(r#"{{"model":"{model}",{rest}}}"#)
}

fn vllm_404(model: &str) -> serde_json::Value {
    json!({
        "object": "error",
        "message": format!("The model `{model}` does not exist."),
        "type": "NotFoundError",
        "param": null,
        "code": 404,
    })
}

#[test]
fn spec_serves_any_model_unless_given_some() {
    assert!(RegionSpec::new("x", 0).models.is_empty());
    let spec = RegionSpec::new("x", 0).with_models(EAST);
    assert_eq!(
        spec.models,
        vec![
            MockModel::new("llama-70b-east", "v1"),
            MockModel::new("bge-m3", "v2")
        ]
    );
    assert_eq!(
        parse_models("llama-70b-east,bge-m3@v2").unwrap(),
        spec.models
    );
    assert!(parse_models("a,,b").is_err());
}

#[tokio::test]
async fn a_served_model_is_answered_and_echoed_on_every_route() {
    let r = serving("mod-1", EAST).await;
    for (path, rest) in ROUTES {
        let (status, header, json) = post_model(&r, path, &with_model("bge-m3", rest)).await;
        assert_eq!(status, 200, "{path}: {json}");
        assert_eq!(json["model"], "bge-m3", "{path}");
        assert_eq!(header.as_deref(), Some("bge-m3"), "{path}");
        assert_eq!(r.last_model().as_deref(), Some("bge-m3"));
    }
    assert_eq!(
        r.model_counts(),
        BTreeMap::from([("bge-m3".to_string(), 6)])
    );
    let counts = r.counts();
    assert_eq!(
        (counts.inference, counts.chat, counts.completions),
        (1, 1, 1)
    );
    assert_eq!(
        (counts.embeddings, counts.messages, counts.responses),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn an_unknown_model_gets_vllms_404_without_taking_a_slot() {
    let r = serving("mod-2", EAST).await;
    // No slot at all: a request that reached the queue would never answer.
    r.set_capacity(Some(0));
    for (path, rest) in ROUTES {
        let (status, header, json) = post_model(&r, path, &with_model("gpt-4o", rest)).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(json, vllm_404("gpt-4o"), "{path}");
        assert_eq!(header.as_deref(), Some("gpt-4o"), "{path}");
    }
    assert_eq!(r.last_model().as_deref(), Some("gpt-4o"));
    assert_eq!(
        r.model_counts(),
        BTreeMap::from([("gpt-4o".to_string(), 6)])
    );
    assert_eq!(r.counts().chat, 1, "refused requests are still counted");

    // A bad body is refused as a bad body first, as vLLM validates before it looks the model up.
    let (status, _, json) = post_model(&r, "/v1/chat/completions", r#"{"model":"gpt-4o"}"#).await;
    assert_eq!(
        (status, json["error"]["type"].as_str()),
        (400, Some("invalid_request_error"))
    );
}

#[tokio::test]
async fn a_request_naming_no_model_is_answered_as_the_first() {
    let r = serving("mod-3", EAST).await;
    let chat = ROUTES[1];
    for body in [
        format!("{{{}}}", chat.1),
        with_model("", chat.1),
        format!(r#"{{"model":null,{}}}"#, chat.1),
    ] {
        let (status, header, json) = post_model(&r, chat.0, &body).await;
        assert_eq!(
            (status, json["model"].as_str()),
            (200, Some("llama-70b-east")),
            "{body}"
        );
        assert_eq!(header.as_deref(), Some("llama-70b-east"));
    }
    // As received: the empty name is a name, an absent or null one is none.
    assert_eq!(r.last_model(), None);
    assert_eq!(r.model_counts(), BTreeMap::from([(String::new(), 3)]));
}

#[tokio::test]
async fn a_region_serving_any_model_echoes_whatever_it_is_sent() {
    let r = region("mod-4").await;
    let (status, header, json) = post_model(
        &r,
        "/v1/chat/completions",
        &with_model("anything-at-all", ROUTES[1].1),
    )
    .await;
    assert_eq!(
        (status, json["model"].as_str()),
        (200, Some("anything-at-all"))
    );
    assert_eq!(header.as_deref(), Some("anything-at-all"));

    let (_, header, json) = post_model(&r, "/v1/inference", r#"{"prompt":"x"}"#).await;
    assert_eq!(
        (header.as_deref(), json["model"].as_str()),
        (Some("mock-model"), Some("mock-model"))
    );
    assert_eq!(r.last_model(), None);

    // A name a header cannot carry is percent-encoded there, and echoed as is in the body.
    let (status, header, json) =
        post_model(&r, "/v1/inference", r#"{"model":"a\u0001b","prompt":"x"}"#).await;
    assert_eq!((status, header.as_deref()), (200, Some("a%01b")));
    assert_eq!(json["model"], "a\u{1}b");
}

#[tokio::test]
async fn a_model_that_is_not_a_string_is_refused() {
    let r = serving("mod-5", EAST).await;
    let (status, header, json) = post_model(
        &r,
        "/v1/chat/completions",
        &format!(r#"{{"model":5,{}}}"#, ROUTES[1].1),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(json["error"]["type"], "invalid_request_error");
    assert_eq!(json["error"]["message"], "model must be a string");
    assert_eq!(header.as_deref(), Some("llama-70b-east"));
    assert_eq!(r.model_counts(), BTreeMap::from([(String::new(), 1)]));
}

#[tokio::test]
async fn the_model_list_and_health_show_the_served_models() {
    let r = serving("mod-6", EAST).await;
    let (status, json) = get(&r, "/v1/models").await;
    assert_eq!(status, 200);
    assert_eq!(
        json,
        json!({
            "object": "list",
            "data": [
                { "id": "llama-70b-east", "object": "model", "owned_by": "mod-6", "created": 0 },
                { "id": "bge-m3", "object": "model", "owned_by": "mod-6", "created": 0 },
            ],
        })
    );
    let (_, health) = get(&r, "/health").await;
    assert_eq!(
        health,
        json!({
            "status": "ok",
            "region": "mod-6",
            "in_flight": 0,
            "queue_depth": 0,
            "max_concurrency": null,
            "gpu_utilization": null,
            "model_version": "v1",
            "models": [
                { "name": "llama-70b-east", "version": "v1" },
                { "name": "bge-m3", "version": "v2" },
            ],
        })
    );
    // None of these is a model-carrying request; the refused GET still says
    // which model it would have been answered as.
    let resp = client()
        .get(format!("{}/v1/chat/completions", r.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["x-mock-model"], "llama-70b-east");
    assert!(r.model_counts().is_empty() && r.last_body().is_none());
}

#[tokio::test]
async fn control_replaces_the_list_at_run_time() {
    let r = serving("mod-7", EAST).await;
    let (status, json) = post(
        &r,
        "/control",
        r#"{"models":[{"name":"qwen-7b","version":"v3"},{"name":"bge-m3"}]}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        json["models"],
        json!([{ "name": "qwen-7b", "version": "v3" }, { "name": "bge-m3", "version": "v1" }])
    );
    assert_eq!(get(&r, "/health").await.1["models"][0]["version"], "v3");
    assert_eq!(get(&r, "/v1/models").await.1["data"][0]["id"], "qwen-7b");
    let chat = ROUTES[1];
    let (status, _, json) = post_model(&r, chat.0, &with_model("llama-70b-east", chat.1)).await;
    assert_eq!((status, json), (404, vllm_404("llama-70b-east")));
    let (_, _, json) = post_model(&r, chat.0, &format!("{{{}}}", chat.1)).await;
    assert_eq!(json["model"], "qwen-7b");

    // An empty list serves any model again, as a v0.1 region does.
    let (status, json) = post(&r, "/control", r#"{"models":[]}"#).await;
    assert_eq!((status, json["models"].clone()), (200, json!([])));
    let (status, _, _) = post_model(&r, chat.0, &with_model("llama-70b-east", chat.1)).await;
    assert_eq!(status, 200);
    assert!(get(&r, "/health").await.1.get("models").is_none());
    assert_eq!(get(&r, "/v1/models").await.1["data"][0]["id"], "mock-model");

    // And the library does the same.
    r.set_models(&[("m1", "v9")]);
    assert_eq!(r.models(), vec![MockModel::new("m1", "v9")]);
    assert_eq!(
        get(&r, "/health").await.1["models"],
        json!([{ "name": "m1", "version": "v9" }])
    );
}

#[tokio::test]
async fn control_refuses_bad_model_lists_and_changes_nothing() {
    let r = serving("mod-8", EAST).await;
    let long = "x".repeat(65);
    for body in [
        r#"{"models":[{"name":""}]}"#.to_string(),
        format!(r#"{{"models":[{{"name":"{long}"}}]}}"#),
        format!(r#"{{"models":[{{"name":"m","version":"{long}"}}]}}"#),
        r#"{"models":[{"name":"a\u0007b"}]}"#.to_string(),
        r#"{"models":[{"name":"m","version":""}]}"#.to_string(),
        r#"{"models":[{"name":"m","version":"v\n1"}]}"#.to_string(),
        r#"{"models":[{"name":"m"},{"name":"m","version":"v2"}]}"#.to_string(),
        r#"{"models":[{"version":"v1"}]}"#.to_string(),
        r#"{"models":[{"name":"m","size":"70b"}]}"#.to_string(),
        r#"{"models":["m"]}"#.to_string(),
        r#"{"models":"m"}"#.to_string(),
        r#"{"latency_ms":5,"models":[{"name":""}]}"#.to_string(),
    ] {
        let (status, json) = post(&r, "/control", &body).await;
        assert_eq!(status, 400, "body {body}");
        assert_eq!(
            json["error"]["type"], "invalid_request_error",
            "body {body}"
        );
    }
    let (_, json) = get(&r, "/control").await;
    assert_eq!(json["latency_ms"], 0);
    assert_eq!(
        json["models"],
        json!([
            { "name": "llama-70b-east", "version": "v1" },
            { "name": "bge-m3", "version": "v2" },
        ])
    );
    // 64 characters is the limit, counted as characters.
    let most = "é".repeat(64);
    let (status, _) = post(
        &r,
        "/control",
        &format!(r#"{{"models":[{{"name":"{most}"}}]}}"#),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn what_requests_carried_is_kept_as_received() {
    let r = serving("mod-9", EAST).await;
    assert_eq!((r.last_model(), r.last_body()), (None, None));
    let body = r#"{"model":"bge-m3",  "input":["a","b"]}"#;
    post_model(&r, "/v1/embeddings", body).await;
    assert_eq!(r.last_body().as_deref(), Some(body.as_bytes()));
    post_model(&r, "/v1/chat/completions", &with_model("nope", ROUTES[1].1)).await;
    post_model(&r, "/v1/inference", r#"{"prompt":"x"}"#).await;
    assert_eq!(r.last_model(), None);
    assert_eq!(r.last_body().as_deref(), Some(&br#"{"prompt":"x"}"#[..]));
    assert_eq!(
        r.model_counts(),
        BTreeMap::from([
            (String::new(), 1),
            ("bge-m3".to_string(), 1),
            ("nope".to_string(), 1),
        ])
    );

    // Kept on failures, whose answers carry the header too.
    r.set_fail_status(Some(503));
    let completion = with_model("bge-m3", r#""prompt":"x""#);
    let (status, header, _) = post_model(&r, "/v1/completions", &completion).await;
    assert_eq!((status, header.as_deref()), (503, Some("bge-m3")));
    assert_eq!(r.model_counts()["bge-m3"], 2);
    r.set_fail_status(None);

    // And when the request is never answered at all.
    r.set_reset_after_body(true);
    let reset = client()
        .post(format!("{}/v1/messages", r.url()))
        .body(with_model("cut-off", ROUTES[4].1))
        .send()
        .await;
    assert!(reset.is_err());
    assert_eq!(r.last_model().as_deref(), Some("cut-off"));
}
