//! deploy/grafana/meridian.json against a live Meridian: every metric and label its
//! PromQL queries exists in `/metrics` after traffic (failures, cooldowns and an open
//! circuit included), its variables are wired, and `promtool check metrics` (Debian's
//! `prometheus` package) accepts the exposition.

use crate::common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const BOARD: &str = include_str!("../../deploy/grafana/meridian.json");

/// Metric families every test below needs in the exposition before it looks.
const AFTER_TRAFFIC: &[&str] = &[
    "meridian_cooldowns_total{",
    "meridian_retries_total{",
    "meridian_circuit_opens_total{",
    "meridian_upstream_failures_total{",
    "meridian_spend_baseline_total{",
];

/// A fleet after traffic of both models, 503s that cool regions down (and are retried),
/// and 500s until a circuit opens; its `/metrics` text.
async fn exposition_after_traffic() -> (Fleet, String) {
    let fleet = Fleet::start().await;
    for _ in 0..6 {
        for model in ["llama-3.1-70b", "qwen2.5-7b"] {
            assert_eq!(fleet.chat(model).await.status, 200);
        }
    }
    // Every region refuses its next answer with a 503 and Retry-After: 1 (probes still
    // pass: fail_count), so whichever region a request goes to first cools down and the
    // request is retried, wherever routing sends it.
    for r in &fleet.regions {
        r.set_retry_after_s(Some(1));
        r.set_fail_count(Some(1));
        r.set_fail_status(Some(503));
    }
    let _ = fleet.chat("qwen2.5-7b").await;
    eventually(
        Duration::from_secs(10),
        "no region cooling down",
        || async {
            let st = fleet.admin("/regions/status").await.json();
            st["regions"]
                .as_array()
                .is_some_and(|rs| rs.iter().all(|r| r["cooldown_remaining_ms"].is_null()))
        },
    )
    .await;
    // Then every region fails its next three answers with a 500: the first region to get
    // three in a row opens its circuit.
    for r in &fleet.regions {
        r.set_retry_after_s(None);
        r.set_fail_count(Some(3));
        r.set_fail_status(Some(500));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut text = String::new();
    while Instant::now() < deadline {
        let _ = fleet.chat("llama-3.1-70b").await;
        text = fleet.admin("/metrics").await.body;
        if AFTER_TRAFFIC.iter().all(|f| text.contains(f)) {
            return (fleet, text);
        }
    }
    panic!("traffic did not produce every family of {AFTER_TRAFFIC:?}:\n{text}");
}

// === the exposition ===

/// Sample names (with `_bucket`, `_sum`, `_count`) and the label names each carries, and
/// each family's `# TYPE`.
struct Exposition {
    labels: BTreeMap<String, BTreeSet<String>>,
    types: BTreeMap<String, String>,
}

fn parse_exposition(text: &str) -> Exposition {
    let mut labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut types = BTreeMap::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            let mut f = t.split_whitespace();
            if let (Some(n), Some(k)) = (f.next(), f.next()) {
                types.insert(n.to_string(), k.to_string());
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let set = labels.entry(line[..end].to_string()).or_default();
        if line[end..].starts_with('{') {
            let body = &line[end + 1..line.rfind('}').expect("closing brace")];
            for (k, _) in matchers(body) {
                set.insert(k);
            }
        }
    }
    Exposition { labels, types }
}

// === PromQL ===

/// `label op "value", ...` inside braces: the label names and operators.
fn matchers(body: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let name_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let name = rest[..name_end].to_string();
        rest = rest[name_end..].trim_start();
        let op_end = rest.find('"').expect("a quoted label value");
        let op = rest[..op_end].trim().to_string();
        rest = &rest[op_end + 1..];
        let mut close = 0;
        let bytes = rest.as_bytes();
        while bytes[close] != b'"' {
            close += if bytes[close] == b'\\' { 2 } else { 1 };
        }
        rest = rest[close + 1..]
            .trim_start()
            .trim_start_matches(',')
            .trim_start();
        out.push((name, op));
    }
    out
}

/// The index of the `close` byte ending what opens at `open`, skipping quoted strings.
fn closing(text: &str, open: usize, close: u8) -> usize {
    let s = text.as_bytes();
    let mut i = open + 1;
    while s[i] != close {
        if s[i] == b'"' {
            i += 1;
            while s[i] != b'"' {
                i += if s[i] == b'\\' { 2 } else { 1 };
            }
        }
        i += 1;
    }
    i
}

/// One selector `metric{matchers}` of an expression.
#[derive(Debug)]
struct Selector {
    metric: String,
    matchers: Vec<(String, String)>,
}

/// The metric selectors and the labels of `by (...)` / `without (...)` in `expr`.
fn parse_expr(expr: &str) -> (Vec<Selector>, BTreeSet<String>) {
    let (mut selectors, mut grouped) = (Vec::new(), BTreeSet::new());
    let s = expr.as_bytes();
    let mut i = 0;
    while i < s.len() {
        let c = s[i] as char;
        if c == '"' {
            i += 1;
            while s[i] != b'"' {
                i += if s[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '[' {
            i += expr[i..].find(']').expect("closing bracket") + 1;
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < s.len() && ((s[i] as char).is_ascii_alphanumeric() || b"_:".contains(&s[i])) {
                i += 1;
            }
            let word = &expr[start..i];
            let after = expr[i..].trim_start();
            if word.starts_with("meridian_") {
                let mut sel = Selector {
                    metric: word.to_string(),
                    matchers: Vec::new(),
                };
                if after.starts_with('{') {
                    let open = i + expr[i..].find('{').unwrap();
                    let close = closing(expr, open, b'}');
                    sel.matchers = matchers(&expr[open + 1..close]);
                    i = close + 1;
                }
                selectors.push(sel);
            } else if (word == "by" || word == "without") && after.starts_with('(') {
                let open = i + expr[i..].find('(').unwrap();
                let close = closing(expr, open, b')');
                for l in expr[open + 1..close].split(',') {
                    grouped.insert(l.trim().to_string());
                }
                i = close + 1;
            }
        } else {
            i += 1;
        }
    }
    (selectors, grouped)
}

/// Every target expression of every panel (rows' nested panels too), with its panel's
/// title; panics on a panel whose data source is not the board's variable.
fn expressions(board: &Value) -> Vec<(String, String)> {
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            walk(&p["panels"], out);
            let title = p["title"].as_str().unwrap_or("?").to_string();
            for t in p["targets"].as_array().into_iter().flatten() {
                assert_eq!(p["datasource"]["uid"], "${datasource}", "panel {title}");
                assert_eq!(t["datasource"]["uid"], "${datasource}", "panel {title}");
                let expr = t["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("panel {title}: no expr"));
                out.push((title.clone(), expr.to_string()));
            }
        }
    }
    let mut out = Vec::new();
    walk(&board["panels"], &mut out);
    out
}

#[test]
fn the_promql_reader_finds_metrics_matchers_and_grouping() {
    let (sel, by) = parse_expr(
        r#"histogram_quantile(0.95, sum by (le, region) (rate(meridian_x_bucket{region=~"$region",status!="a\"}b"}[5m]))) / meridian_y"#,
    );
    assert_eq!(sel.len(), 2, "{sel:?}");
    assert_eq!(sel[0].metric, "meridian_x_bucket");
    assert_eq!(
        sel[0].matchers,
        vec![
            ("region".into(), "=~".into()),
            ("status".into(), "!=".into())
        ]
    );
    assert_eq!(
        (sel[1].metric.as_str(), sel[1].matchers.len()),
        ("meridian_y", 0)
    );
    assert_eq!(by, ["le", "region"].map(String::from).into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_and_label_the_board_queries_is_in_a_live_exposition() {
    let board: Value = serde_json::from_str(BOARD).expect("the board is JSON");
    let vars: BTreeMap<&str, &Value> = board["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .map(|v| (v["name"].as_str().unwrap_or(""), v))
        .collect();
    assert_eq!(vars["datasource"]["type"], "datasource");
    assert_eq!(vars["datasource"]["query"], "prometheus");
    let (_fleet, text) = exposition_after_traffic().await;
    let live = parse_exposition(&text);

    let has =
        |metric: &str, label: &str| live.labels.get(metric).is_some_and(|l| l.contains(label));
    for var in ["region", "model"] {
        let q = vars[var]["query"]["query"]
            .as_str()
            .expect("a query variable");
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .expect("label_values(metric, label)");
        let (metric, label) = inner.split_once(',').expect("metric, label");
        assert_eq!(label.trim(), var);
        assert!(has(metric.trim(), var), "variable {var}: {q}");
    }

    let exprs = expressions(&board);
    assert!(exprs.len() >= 30, "{} queries", exprs.len());
    let mut queried = BTreeSet::new();
    let mut uses = BTreeMap::<&str, usize>::new();
    for (title, expr) in &exprs {
        let (selectors, grouped) = parse_expr(expr);
        assert!(
            !selectors.is_empty(),
            "{title}: no Meridian metric in {expr}"
        );
        let mut available = BTreeSet::new();
        // The baseline is per model: savings compare it with spend over all regions.
        let per_model = selectors
            .iter()
            .any(|s| s.metric == "meridian_spend_baseline_total");
        for s in &selectors {
            let labels = live
                .labels
                .get(&s.metric)
                .unwrap_or_else(|| panic!("{title}: {} is not exported; {expr}", s.metric));
            if let Some(base) = s.metric.strip_suffix("_bucket") {
                assert_eq!(
                    live.types.get(base).map(String::as_str),
                    Some("histogram"),
                    "{title}: {}",
                    s.metric
                );
            }
            for (label, _) in &s.matchers {
                assert!(
                    labels.contains(label),
                    "{title}: {} has no label {label}",
                    s.metric
                );
            }
            for (var, label) in [("$region", "region"), ("$model", "model")] {
                let filtered = s.matchers.iter().any(|(l, _)| l == label) && expr.contains(var);
                if filtered {
                    *uses.entry(var).or_default() += 1;
                }
                let exempt = label == "region" && per_model;
                assert!(
                    !labels.contains(label) || filtered || exempt,
                    "{title}: {} is not filtered by {var}: {expr}",
                    s.metric
                );
            }
            available.extend(labels.iter().cloned());
            queried.insert(
                s.metric
                    .trim_end_matches("_bucket")
                    .trim_end_matches("_sum")
                    .trim_end_matches("_count")
                    .to_string(),
            );
        }
        for label in &grouped {
            assert!(
                available.contains(label),
                "{title}: grouped by {label}, which no metric of {expr} has"
            );
        }
        if expr.contains("histogram_quantile") {
            assert!(
                selectors.iter().all(|s| s.metric.ends_with("_bucket")) && grouped.contains("le"),
                "{title}: {expr}"
            );
        }
    }
    assert!(uses["$region"] > 10 && uses["$model"] > 5, "{uses:?}");
    let families: BTreeSet<&String> = live.types.keys().collect();
    let unqueried: Vec<_> = families
        .iter()
        .filter(|f| !queried.contains(f.as_str()))
        .collect();
    eprintln!(
        "{} queries over {} families; exported, not on the board: {unqueried:?}",
        exprs.len(),
        queried.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_the_exposition() {
    let Some(promtool) = ["/usr/bin/promtool", "promtool"].into_iter().find(|b| {
        std::process::Command::new(b)
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok()
    }) else {
        let missing = "promtool is not installed (apt-get install prometheus)";
        assert!(
            std::env::var_os("MERIDIAN_REQUIRE_PROMTOOL").is_none(),
            "{missing}"
        );
        eprintln!("skipped: {missing}");
        return;
    };
    let (_fleet, text) = exposition_after_traffic().await;
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(text.as_bytes()).expect("promtool reads");
    }
    let out = child.wait_with_output().expect("promtool ends");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}\n{text}"
    );
}
