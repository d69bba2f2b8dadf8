//! Prompt-cache affinity through the real server: a conversation stays on the endpoint
//! that served it (by session header, `prompt_cache_key`, `user` or prompt prefix),
//! moves when that place fails, fills or falls behind by more than the margin, never
//! against a geo or model rule, and never back to a region the request already tried.
//! Each endpoint is its own mock server, named so its `x-mock-region` says which one
//! answered.

use crate::common::*;
use mock_regions::MockRegion;
use serde_json::{json, Value};

/// Two regions of two endpoints each: ap (`ap-a`, `ap-b`) and me (`me-a`, `me-b`).
struct Fleet {
    ap: [MockRegion; 2],
    me: [MockRegion; 2],
}

async fn fleet() -> Fleet {
    Fleet {
        ap: [region("ap-a", 0).await, region("ap-b", 0).await],
        me: [region("me-a", 0).await, region("me-b", 0).await],
    }
}

/// `ap` and `me` with the given prices and tiers; `extra` more YAML for ap.
/// Both serve the declared model `m`, as a production fleet declares its models (the
/// body is then read anyway, and affinity reads its keys in the same pass).
fn config(f: &Fleet, ap: (f64, u32), me: (f64, u32), ap_extra: &str) -> TestConfig {
    let serves = "models: [{name: m}]";
    let ap_extra = if ap_extra.is_empty() {
        serves.to_string()
    } else {
        format!("{serves}\n    {ap_extra}")
    };
    TestConfig::new()
        .section("models", "  - name: m\n")
        .region("ap", &[f.ap[0].url(), f.ap[1].url()], ap.0, ap.1, &ap_extra)
        .region("me", &[f.me[0].url(), f.me[1].url()], me.0, me.1, serves)
}

/// As [`config`], with room for one request of `m` at a time in ap: a model's own cap is
/// exact (a region's leaves room for requests still on their way, see
/// `src/routing/score.rs`, which under a loaded machine can be one more).
fn capped(f: &Fleet, ap: (f64, u32), me: (f64, u32)) -> TestConfig {
    let serves = "models: [{name: m}]";
    TestConfig::new()
        .section("models", "  - name: m\n")
        .region(
            "ap",
            &[f.ap[0].url(), f.ap[1].url()],
            ap.0,
            ap.1,
            "models: [{name: m, max_in_flight: 1}]",
        )
        .region("me", &[f.me[0].url(), f.me[1].url()], me.0, me.1, serves)
}

/// A chat turn: the endpoint that answered, and the decision header.
struct Turn {
    status: u16,
    endpoint: String,
    region: String,
    decision: String,
    attempts: String,
}

async fn chat(m: &Meridian, body: Value, headers: &[(&str, &str)]) -> Turn {
    let mut req = client()
        .post(m.url("/v1/chat/completions"))
        .header("x-meridian-debug", "1")
        .json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = Reply::from(req.send().await.expect("proxy answers")).await;
    let h = |n: &str| {
        r.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    Turn {
        status: r.status,
        endpoint: h("x-mock-region"),
        region: r.region.clone().unwrap_or_default(),
        decision: h("x-meridian-decision"),
        attempts: r.attempts.clone().unwrap_or_default(),
    }
}

fn user_turn(text: &str) -> Value {
    json!({"model": "m", "max_tokens": 4, "messages": [{"role": "user", "content": text}]})
}

/// Turn `n` of a conversation: its whole history so far, then a new question.
fn history(first: &str, n: usize) -> Value {
    let mut messages = vec![
        json!({"role": "system", "content": "You answer briefly."}),
        json!({"role": "user", "content": first}),
    ];
    for i in 1..n {
        messages.push(json!({"role": "assistant", "content": format!("answer {i}")}));
        messages.push(json!({"role": "user", "content": format!("follow-up {i}")}));
    }
    json!({"model": "m", "max_tokens": 4, "messages": messages})
}

async fn start(cfg: &TestConfig) -> Meridian {
    let m = Meridian::start(cfg).await;
    m.wait_health("ap", true).await;
    m.wait_health("me", true).await;
    m
}

/// Sends `turns` of one conversation and returns the endpoints that answered.
async fn conversation(
    m: &Meridian,
    turns: usize,
    mut turn: impl FnMut(usize) -> (Value, Vec<(String, String)>),
) -> Vec<Turn> {
    let mut out = Vec::new();
    for i in 0..turns {
        let (body, headers) = turn(i);
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let t = chat(m, body, &headers).await;
        assert_eq!(t.status, 200, "turn {i}: {}", t.decision);
        out.push(t);
    }
    out
}

fn assert_stuck(turns: &[Turn], source: &str) {
    let first = &turns[0];
    assert!(
        first
            .decision
            .contains(&format!("affinity=new key={source}")),
        "{}",
        first.decision
    );
    for (i, t) in turns.iter().enumerate().skip(1) {
        assert_eq!(
            t.endpoint, first.endpoint,
            "{source}: turn {i} moved: {}",
            t.decision
        );
        assert!(
            t.decision.contains(&format!("affinity=hit key={source}")),
            "{}",
            t.decision
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_source_keeps_a_conversation_on_one_endpoint() {
    let f = fleet().await;
    let m = start(&config(&f, (0.1, 1), (0.5, 2), "")).await;
    // Unrelated conversations (each a new prefix key) spread over both of ap's
    // endpoints: each key's endpoint is its highest rendezvous hash, a coin toss per key
    // (the endpoints' URLs carry ephemeral ports), so a few may share one; 32 all on one
    // would be a one in 2^31 chance.
    let mut plain: Vec<Turn> = Vec::new();
    let mut endpoints = std::collections::BTreeSet::new();
    for i in 0..32 {
        let t = chat(&m, user_turn(&format!("unrelated {i}")), &[]).await;
        assert_eq!(t.status, 200, "unrelated {i}: {}", t.decision);
        endpoints.insert(t.endpoint.clone());
        plain.push(t);
        if endpoints.len() == 2 {
            break;
        }
    }
    assert_eq!(
        endpoints.len(),
        2,
        "unrelated conversations use both of ap's endpoints"
    );
    assert!(plain
        .iter()
        .all(|t| t.decision.contains("affinity=new key=prefix")));

    let turns = conversation(&m, 6, |i| {
        (
            user_turn(&format!("turn {i}")),
            vec![("x-session-id".into(), "session-1".into())],
        )
    })
    .await;
    assert_stuck(&turns, "header");
    let turns = conversation(&m, 6, |i| {
        let mut b = user_turn(&format!("turn {i}"));
        b["prompt_cache_key"] = json!("cache-key-1");
        (b, vec![])
    })
    .await;
    assert_stuck(&turns, "prompt_cache_key");
    let turns = conversation(&m, 6, |i| {
        let mut b = user_turn(&format!("turn {i}"));
        b["user"] = json!("user-1");
        (b, vec![])
    })
    .await;
    assert_stuck(&turns, "user");
    // No key given: the conversation's first messages are its key, turn after turn.
    let turns = conversation(&m, 6, |i| (history("Plan a trip to Lisbon", i + 1), vec![])).await;
    assert_stuck(&turns, "prefix");
    for t in &turns {
        assert_eq!(t.region, "ap");
    }
    let metrics = m.metrics().await;
    assert!(
        metric(&metrics, "meridian_affinity_hits_total") >= 20.0,
        "{metrics}"
    );
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(series) && l[series.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_keys_spread_over_the_endpoints_and_the_table_stays_bounded() {
    let f = fleet().await;
    let cfg = config(&f, (0.1, 1), (0.5, 2), "").section("affinity", "  max_keys: 64\n");
    let m = start(&cfg).await;
    let mut on_a = 0;
    for i in 0..200 {
        let id = format!("s-{i}");
        let t = chat(&m, user_turn("hi"), &[("x-session-id", &id)]).await;
        assert_eq!((t.status, t.region.as_str()), (200, "ap"));
        on_a += usize::from(t.endpoint == "ap-a");
    }
    // Rendezvous hashing: about half each (200 keys; 60..140 is more than 5 sigma).
    assert!((60..=140).contains(&on_a), "{on_a} of 200 keys on ap-a");
    let status = m.status().await;
    let keys = status["affinity"]["keys"].as_u64().unwrap();
    assert!((32..=64).contains(&keys), "{}", status["affinity"]);
    assert!(status["affinity"]["evictions"].as_u64().unwrap() >= 136);
    let metrics = m.metrics().await;
    assert!(metric(&metrics, "meridian_affinity_keys") <= 64.0);
    assert_eq!(metric(&metrics, "meridian_affinity_new_keys_total"), 200.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_leaves_a_dead_endpoint_and_sticks_to_its_new_place() {
    let f = fleet().await;
    let Fleet {
        ap: [ap_a, ap_b],
        me: _me,
    } = f;
    let urls = [ap_a.url(), ap_b.url()];
    let cfg = TestConfig::new().region("ap", &urls, 0.1, 1, "").region(
        "me",
        &[_me[0].url(), _me[1].url()],
        0.5,
        2,
        "",
    );
    let m = start(&cfg).await;
    // A session on each endpoint.
    let mut on = std::collections::BTreeMap::new();
    for i in 0..40 {
        let id = format!("s-{i}");
        let t = chat(&m, user_turn("hi"), &[("x-session-id", &id)]).await;
        on.entry(t.endpoint).or_insert(id);
        if on.len() == 2 {
            break;
        }
    }
    let (doomed, survivor) = (on["ap-a"].clone(), on["ap-b"].clone());
    ap_a.kill().await;
    eventually(
        std::time::Duration::from_secs(10),
        "ap-a marked down",
        || async { m.region_status("ap").await["endpoints"][0]["healthy"] == false },
    )
    .await;
    // The key of the dead endpoint moves to the region's other one, and stays there;
    // the other session never moved.
    let t = chat(&m, user_turn("hi"), &[("x-session-id", &doomed)]).await;
    assert_eq!(
        (t.status, t.endpoint.as_str()),
        (200, "ap-b"),
        "{}",
        t.decision
    );
    assert!(
        t.decision.contains("affinity=moved(unhealthy)"),
        "{}",
        t.decision
    );
    for _ in 0..5 {
        let t = chat(&m, user_turn("hi"), &[("x-session-id", &doomed)]).await;
        assert_eq!(t.endpoint, "ap-b");
        assert!(t.decision.contains("affinity=hit"), "{}", t.decision);
        let t = chat(&m, user_turn("hi"), &[("x-session-id", &survivor)]).await;
        assert!(t.decision.contains("affinity=hit"), "{}", t.decision);
    }
    let metrics = m.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "meridian_affinity_moves_total{reason=\"unhealthy\"}"
        ),
        1.0,
        "{metrics}"
    );
}

/// Another conversation takes ap's only slot, its answer `work_ms` away; returns its
/// status once answered.
async fn hold_ap(
    m: &Meridian,
    f: &Fleet,
    work_ms: u64,
) -> tokio::task::JoinHandle<reqwest::Result<u16>> {
    // The previous request's slot is released just after its client has the answer
    // (Meridian's end of a request runs after the last byte is written): wait for it, or
    // the holder could find ap full and go to me.
    eventually(std::time::Duration::from_secs(5), "ap idle", || async {
        m.region_status("ap").await["in_flight"].as_u64() == Some(0)
    })
    .await;
    for e in &f.ap {
        e.set_work_ms(work_ms);
    }
    let url = m.url("/v1/chat/completions");
    let busy = tokio::spawn(async move {
        client()
            .post(url)
            .header("x-session-id", "other")
            .json(&user_turn("slow"))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    eventually(std::time::Duration::from_secs(5), "ap busy", || async {
        m.region_status("ap").await["in_flight"].as_u64() == Some(1)
    })
    .await;
    busy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_region_moves_a_key_which_then_stays_where_it_went() {
    let f = fleet().await;
    // ap is clearly cheaper, but with a wide margin me, once it has the key, keeps it.
    let cfg = capped(&f, (0.1, 1), (0.5, 1)).section("affinity", "  margin: 5\n");
    let m = start(&cfg).await;
    let first = chat(&m, user_turn("hi"), &[("x-session-id", "s")]).await;
    assert_eq!(first.region, "ap");
    // Another conversation holds ap's only slot.
    let busy = hold_ap(&m, &f, 1500).await;
    let t = chat(&m, user_turn("hi"), &[("x-session-id", "s")]).await;
    assert_eq!((t.status, t.region.as_str()), (200, "me"), "{}", t.decision);
    assert!(
        t.decision.contains("affinity=moved(saturated)"),
        "{}",
        t.decision
    );
    assert_eq!(busy.await.unwrap().unwrap(), 200);
    for e in &f.ap {
        e.set_work_ms(0);
    }
    for _ in 0..5 {
        let again = chat(&m, user_turn("hi"), &[("x-session-id", "s")]).await;
        assert_eq!(again.endpoint, t.endpoint, "{}", again.decision);
        assert!(
            again.decision.contains("affinity=hit"),
            "{}",
            again.decision
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_score_gap_beyond_the_margin_moves_a_key_and_one_within_it_does_not() {
    for (margin, moves) in [("0.25", true), ("9", false)] {
        let f = fleet().await;
        let cfg = config(&f, (0.10, 1), (0.30, 1), "")
            .section("affinity", &format!("  margin: {margin}\n"));
        let m = start(&cfg).await;
        // Whichever region the key starts in slows down by far more than a quarter of
        // its score.
        let first = chat(&m, user_turn("hi"), &[("x-session-id", "s")]).await;
        let (slow, other) = if first.region == "ap" {
            (&f.ap, "me")
        } else {
            (&f.me, "ap")
        };
        for e in slow {
            e.set_latency_ms(400);
        }
        eventually(
            std::time::Duration::from_secs(10),
            "the latency estimate rises",
            || async {
                m.region_status(&first.region).await["latency_ewma_ms"]
                    .as_f64()
                    .unwrap_or(0.0)
                    > 300.0
            },
        )
        .await;
        let t = chat(&m, user_turn("hi"), &[("x-session-id", "s")]).await;
        if moves {
            assert_eq!(t.region, other, "{}", t.decision);
            assert!(
                t.decision.contains("affinity=moved(score_gap)"),
                "{}",
                t.decision
            );
        } else {
            assert_eq!(t.endpoint, first.endpoint, "{}", t.decision);
            assert!(t.decision.contains("affinity=hit"), "{}", t.decision);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geo_and_model_rules_are_never_overridden() {
    let ap = serving("ap", &[("m-a", "v1"), ("m-b", "v1")]).await;
    let eu = serving("eu", &[("m-a", "v1")]).await;
    let me = serving("me", &[("m-b", "v1")]).await;
    let cfg = TestConfig::new()
        .region(
            "ap",
            &[ap.url()],
            0.1,
            1,
            "models: [{name: m-a}, {name: m-b}]",
        )
        .region(
            "eu",
            &[eu.url()],
            0.2,
            1,
            "tags: [eu]\n    models: [{name: m-a}]",
        )
        .region("me", &[me.url()], 0.3, 1, "models: [{name: m-b}]")
        .section("models", "  - name: m-a\n  - name: m-b\n")
        .section(
            "geo",
            "  rules:\n    - name: eu-data-residency\n      match: [DE]\n      allow: [tag:eu]\n",
        );
    let m = Meridian::start(&cfg).await;
    for r in ["ap", "eu", "me"] {
        m.wait_health(r, true).await;
    }
    let body = |model: &str| json!({"model": model, "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]});
    let s = [("x-session-id", "s")];
    let de = [("x-session-id", "s"), ("x-geo-country", "DE")];
    for _ in 0..3 {
        let t = chat(&m, body("m-a"), &s).await;
        assert_eq!(t.region, "ap", "{}", t.decision);
        // The key's place is ap; a DE request may use eu only.
        let t = chat(&m, body("m-a"), &de).await;
        assert_eq!((t.status, t.region.as_str()), (200, "eu"), "{}", t.decision);
        assert!(t.decision.contains("affinity=moved(geo)"), "{}", t.decision);
        // The key's place is eu now, which does not serve m-b.
        let t = chat(&m, body("m-b"), &s).await;
        assert_eq!((t.status, t.region.as_str()), (200, "ap"), "{}", t.decision);
        assert!(
            t.decision.contains("affinity=moved(model)"),
            "{}",
            t.decision
        );
    }
    // A DE request for a model eu does not serve is refused, whatever the key's place.
    let t = chat(&m, body("m-b"), &de).await;
    assert_ne!(t.status, 200, "{}", t.decision);
    assert_eq!(me.counts().served(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_never_goes_back_to_a_region_the_request_tried() {
    let f = fleet().await;
    let m = start(&config(&f, (0.1, 1), (0.5, 2), "")).await;
    let first = chat(&m, user_turn("hi"), &[("x-session-id", "s")]).await;
    assert_eq!(first.region, "ap");
    for e in &f.ap {
        e.set_fail_status(Some(503));
    }
    let t = chat(&m, user_turn("hi"), &[("x-session-id", "s")]).await;
    assert_eq!(
        (t.status, t.region.as_str(), t.attempts.as_str()),
        (200, "me", "2"),
        "{}",
        t.decision
    );
    assert!(
        t.decision.contains("affinity=moved(failover)"),
        "{}",
        t.decision
    );
    let ap_requests: u64 = f.ap.iter().map(|e| e.counts().served()).sum();
    // The first request, and the one attempt of the second: never a second attempt there.
    assert_eq!(ap_requests, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_carries_a_digest_never_the_key_and_affinity_can_be_off() {
    let f = fleet().await;
    let cfg = config(&f, (0.1, 1), (0.5, 2), "");
    let m = Meridian::start_with(
        |p, a, d| {
            format!(
                "{}access_log: {}\n",
                cfg.render(p, a, d),
                d.join("access.log").display()
            )
        },
        &[],
    )
    .await;
    m.wait_health("ap", true).await;
    for _ in 0..2 {
        chat(
            &m,
            user_turn("hi"),
            &[("x-session-id", "secret-session-42")],
        )
        .await;
    }
    let log_path = m.dir.path().join("access.log");
    let read = || -> Vec<Value> {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    eventually(
        std::time::Duration::from_secs(5),
        "two access-log lines",
        || async { read().len() >= 2 },
    )
    .await;
    let lines = read();
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(!text.contains("secret-session-42"));
    assert_eq!(lines[0]["affinity"], "new");
    assert_eq!(lines[1]["affinity"], "hit");
    assert_eq!(lines[0]["affinity_source"], "header");
    let digest = lines[0]["affinity_key"].as_str().unwrap();
    assert_eq!(digest.len(), 12);
    assert!(digest.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(lines[1]["affinity_key"], digest);
    drop(m);

    // Off: endpoints take turns whatever the session, and nothing is logged of it.
    let cfg = config(&f, (0.1, 1), (0.5, 2), "").section("affinity", "  enabled: false\n");
    let m = start(&cfg).await;
    let turns = conversation(&m, 4, |_| {
        (user_turn("hi"), vec![("x-session-id".into(), "s".into())])
    })
    .await;
    let endpoints: std::collections::BTreeSet<&str> =
        turns.iter().map(|t| t.endpoint.as_str()).collect();
    assert_eq!(endpoints.len(), 2);
    assert!(turns.iter().all(|t| !t.decision.contains("affinity")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waits_briefly_for_room_at_its_place_before_it_moves() {
    let f = fleet().await;
    let cfg = capped(&f, (0.1, 1), (0.5, 2)).section("affinity", "  wait_for_room: 3s\n");
    let m = start(&cfg).await;
    let first = chat(&m, user_turn("hi"), &[("x-session-id", "s")]).await;
    assert_eq!(first.region, "ap");
    // Another conversation holds ap's only slot for a moment.
    let busy = hold_ap(&m, &f, 300).await;
    let t = chat(&m, user_turn("hi"), &[("x-session-id", "s")]).await;
    // It waited for the slot rather than go to me, cold.
    assert_eq!(
        (t.status, t.endpoint.as_str()),
        (200, first.endpoint.as_str()),
        "{}",
        t.decision
    );
    assert!(t.decision.contains("affinity=hit"), "{}", t.decision);
    assert_eq!(busy.await.unwrap().unwrap(), 200);
    assert_eq!(f.me.iter().map(|e| e.counts().served()).sum::<u64>(), 0);
}

/// ap's two endpoints each keep a prefix cache of their own, as vLLM does.
async fn caching_fleet() -> Fleet {
    let cached = |name: &str| {
        let spec = mock_regions::RegionSpec {
            token_ms: 0,
            ..mock_regions::RegionSpec::new(name, 0)
        }
        .with_prefix_cache(mock_regions::PrefixCacheSpec::default(), 0);
        async move {
            MockRegion::start(spec, "127.0.0.1:0".parse().unwrap())
                .await
                .expect("mock region starts")
        }
    };
    Fleet {
        ap: [cached("ap-a").await, cached("ap-b").await],
        me: [region("me-a", 0).await, region("me-b", 0).await],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_conversation_finds_its_history_cached_and_meridian_counts_it() {
    let mut cached_by = Vec::new();
    for enabled in [true, false] {
        let f = caching_fleet().await;
        let cfg = config(&f, (0.1, 1), (0.5, 2), "")
            .section("affinity", &format!("  enabled: {enabled}\n"));
        let m = start(&cfg).await;
        let mut cached = 0;
        for turn in 1..=6 {
            let r = client()
                .post(m.url("/v1/chat/completions"))
                .json(&history("Tell me about Lisbon", turn))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.unwrap();
            cached += v["usage"]["prompt_tokens_details"]["cached_tokens"]
                .as_u64()
                .unwrap_or(0);
        }
        // Meridian's account holds exactly what the regions reported, once the last
        // request's end (which runs just after its client has the answer) is counted.
        let counted = || async {
            m.metrics()
                .await
                .lines()
                .filter(|l| {
                    l.starts_with("meridian_tokens_total{") && l.contains("kind=\"cached_input\"")
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        };
        eventually(
            std::time::Duration::from_secs(5),
            "the cached tokens counted",
            || async { counted().await == cached as f64 },
        )
        .await;
        assert_eq!(counted().await, cached as f64, "affinity {enabled}");
        cached_by.push(cached);
    }
    // Kept on one endpoint, every turn finds all the turns before it cached; alternating
    // between two, each finds only the one two turns back.
    let (with, without) = (cached_by[0], cached_by[1]);
    assert!(with > without, "with {with}, without {without}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_declared_models_bodies_are_read_for_keys_only_when_asked() {
    let f = fleet().await;
    let bare = TestConfig::new()
        .region("ap", &[f.ap[0].url(), f.ap[1].url()], 0.1, 1, "")
        .region("me", &[f.me[0].url(), f.me[1].url()], 0.5, 2, "");
    // auto: the body streams through unread, so only the session header makes a key.
    let m = start(&bare).await;
    let turns = conversation(&m, 4, |i| (history("Plan a trip", i + 1), vec![])).await;
    let endpoints: std::collections::BTreeSet<&str> =
        turns.iter().map(|t| t.endpoint.as_str()).collect();
    assert_eq!(
        endpoints.len(),
        2,
        "no prefix key: the endpoints take turns"
    );
    assert!(turns.iter().all(|t| !t.decision.contains("affinity")));
    let turns = conversation(&m, 4, |_| {
        (user_turn("hi"), vec![("x-session-id".into(), "s".into())])
    })
    .await;
    assert_stuck(&turns, "header");
    drop(m);
    // always: the body is held for its keys.
    let m = start(&bare.clone().section("affinity", "  read_body: always\n")).await;
    let turns = conversation(&m, 4, |i| (history("Plan a trip", i + 1), vec![])).await;
    assert_stuck(&turns, "prefix");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_keeps_the_regions_keeps_the_conversations() {
    let f = fleet().await;
    let m = start(&config(&f, (0.1, 1), (0.5, 2), "")).await;
    let mut on = Vec::new();
    for i in 0..6 {
        let id = format!("s-{i}");
        on.push((
            id.clone(),
            chat(&m, user_turn("hi"), &[("x-session-id", &id)])
                .await
                .endpoint,
        ));
    }
    // Another setting changes; the regions stay as they were.
    let path = m.conf_path();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("cost_weight_ms: 200", "cost_weight_ms: 210"),
    )
    .unwrap();
    m.signal("HUP");
    eventually(std::time::Duration::from_secs(10), "the reload", || async {
        m.status().await["last_reload"]["ok"] == true
    })
    .await;
    m.wait_health("ap", true).await;
    for (id, endpoint) in &on {
        let t = chat(&m, user_turn("hi"), &[("x-session-id", id)]).await;
        assert_eq!(&t.endpoint, endpoint, "{}", t.decision);
        assert!(t.decision.contains("affinity=hit"), "{}", t.decision);
    }
}
