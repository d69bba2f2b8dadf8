//! The dashboard on the admin listener (`GET /`): served without data or token, and in a
//! real headless Chromium it shows every region with its state, takes the admin token
//! from its URL fragment or a form, and shows a region going down within seconds.
//! Screenshots go to target/ci-artifacts/dashboard-*.png.

use crate::common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_carries_no_data_and_the_api_still_needs_the_token() {
    let fleet = Fleet::start().await;
    let m = &fleet.meridian;
    let page = client().get(m.admin_url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let h = |n: &str| {
        page.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert_eq!(h("content-type"), "text/html; charset=utf-8");
    let csp = h("content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'sha256-",
        "style-src 'sha256-",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert_eq!(h("referrer-policy"), "no-referrer");
    let body = page.text().await.unwrap();
    eprintln!("dashboard page: {} bytes", body.len());
    assert!(
        body.len() < 32 * 1024,
        "the page stays small: {}",
        body.len()
    );
    for secret in ["us-east-1", "llama-3.1-70b", ADMIN_TOKEN] {
        assert!(!body.contains(secret), "the page itself shows no {secret}");
    }

    // Only GET / is open; everything else keeps its answers.
    let status = |method: reqwest::Method, path: &str, token: bool| {
        let mut req = client().request(method, m.admin_url(path));
        if token {
            req = req.header("authorization", format!("Bearer {ADMIN_TOKEN}"));
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        status(reqwest::Method::GET, "/regions/status", false).await,
        401
    );
    assert_eq!(status(reqwest::Method::GET, "/metrics", false).await, 401);
    assert_eq!(status(reqwest::Method::HEAD, "/", false).await, 401);
    assert_eq!(status(reqwest::Method::POST, "/", false).await, 401);
    assert_eq!(status(reqwest::Method::HEAD, "/", true).await, 405);
    assert_eq!(status(reqwest::Method::POST, "/", true).await, 405);
    assert_eq!(status(reqwest::Method::GET, "/", true).await, 200);
}

/// What the page shows: each region card's name, health and circuit; whether it asks for
/// the token; how many refreshes it made; and whether the token is in the URL or DOM.
const VIEW: &str = r#"
const cards = [...document.querySelectorAll('[data-region]')].map(e =>
  ({name: e.dataset.region, health: e.dataset.health, circuit: e.dataset.circuit}));
return {
  cards,
  login: !document.getElementById('login').hidden,
  polls: Number(document.body.dataset.polls || 0),
  href: location.href,
  token_in_dom: document.documentElement.outerHTML.includes(arguments[0]),
  bytes: Number(document.getElementById('foot').dataset.bytes || 0),
  foot: document.getElementById('foot').textContent,
  overflow: document.documentElement.scrollWidth - window.innerWidth,
  tiles: [...document.querySelectorAll('.tile .k')].map(e => e.textContent),
};"#;

async fn view(b: &Browser) -> Value {
    b.eval(VIEW, json!([ADMIN_TOKEN])).await
}

/// Polls the page until `check` holds, up to `within`; the last view otherwise panics.
async fn until(b: &Browser, within: Duration, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let v = view(b).await;
        if check(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "not within {within:?}: {what}; page: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn health_of(v: &Value, region: &str) -> Option<String> {
    v["cards"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == region)
        .and_then(|c| c["health"].as_str().map(str::to_string))
}

fn all_up(v: &Value, names: &[String]) -> bool {
    v["cards"]
        .as_array()
        .is_some_and(|c| c.len() == names.len())
        && names
            .iter()
            .all(|n| health_of(v, n).as_deref() == Some("up"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_every_region_shows_and_one_going_down_shows_within_seconds() {
    let mut fleet = Fleet::start().await;
    let Some(b) = Browser::start().await else {
        return;
    };
    let stop = fleet.traffic();
    let names: Vec<String> = fleet.regions.iter().map(|r| r.name().to_string()).collect();
    let admin = fleet.meridian.admin_url("/");
    // Generous for what depends on a loaded machine (the browser starting, the first
    // fetches); the region going down has its own, tighter bound below.
    let wait = Duration::from_secs(20);

    // The token in the fragment: the page uses it and takes it out of the address bar.
    b.open(&format!("{admin}#token={ADMIN_TOKEN}")).await;
    let v = until(&b, wait, "every region up", |v| all_up(v, &names)).await;
    assert!(!v["login"].as_bool().unwrap(), "{v}");
    assert!(!v["href"].as_str().unwrap().contains("token"), "{v}");
    assert_eq!(v["token_in_dom"], false, "{v}");

    // Without a stored token the page asks for one; a wrong one is refused.
    b.eval("sessionStorage.clear()", json!([])).await;
    b.open(&admin).await;
    let v = until(&b, wait, "the token form", |v| {
        v["login"] == true && v["polls"].as_u64() >= Some(1)
    })
    .await;
    assert_eq!(v["cards"], json!([]), "no data without the token: {v}");
    let polls = v["polls"].as_u64().unwrap();
    b.type_into("#token", "wrong-token-0123456789").await;
    b.click("#tokenform button").await;
    let v = until(&b, wait, "the wrong token tried", |v| {
        v["polls"].as_u64() > Some(polls)
    })
    .await;
    assert!(v["login"] == true && v["cards"] == json!([]), "{v}");
    b.type_into("#token", ADMIN_TOKEN).await;
    b.click("#tokenform button").await;
    let v = until(&b, wait, "every region up after the form", |v| {
        all_up(v, &names)
    })
    .await;
    assert_eq!(v["token_in_dom"], false, "{v}");

    // A few refreshes of history for the charts, then the desktop screenshot.
    let polls = v["polls"].as_u64().unwrap();
    let v = until(&b, wait, "four more refreshes", |v| {
        v["polls"].as_u64() >= Some(polls + 4)
    })
    .await;
    eprintln!(
        "one refresh: {} bytes of JSON and Prometheus text ({})",
        v["bytes"], v["foot"]
    );
    assert!(v["bytes"].as_u64().unwrap() > 0, "{v}");
    let tiles: Vec<&str> = v["tiles"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    for t in [
        "Requests/s (1 min)",
        "Healthy regions",
        "Conversations kept (1 min)",
    ] {
        assert!(tiles.contains(&t), "{t} in {tiles:?}");
    }
    let dir = artifacts_dir();
    b.viewport(1280, 900, 1.0, false).await;
    b.screenshot(&dir.join("dashboard-desktop.png")).await;

    // One region dies; the page, left open, shows it within seconds.
    let killed = Instant::now();
    fleet.regions.remove(2).kill().await;
    let v = until(&b, Duration::from_secs(10), "ap-south-1 shown down", |v| {
        health_of(v, "ap-south-1").as_deref() == Some("down")
    })
    .await;
    eprintln!(
        "ap-south-1 shown down {:?} after it was killed",
        killed.elapsed()
    );
    for up in ["us-east-1", "eu-west-1"] {
        assert_eq!(health_of(&v, up).as_deref(), Some("up"), "{v}");
    }
    let polls = v["polls"].as_u64().unwrap();
    until(&b, wait, "two more refreshes", |v| {
        v["polls"].as_u64() >= Some(polls + 2)
    })
    .await;
    b.screenshot(&dir.join("dashboard-down.png")).await;

    // A phone: one column, nothing wider than the screen.
    b.viewport(390, 844, 2.0, true).await;
    let v = until(&b, wait, "the phone layout", |v| {
        v["overflow"].as_i64().is_some_and(|o| o <= 0)
    })
    .await;
    assert_eq!(health_of(&v, "ap-south-1").as_deref(), Some("down"), "{v}");
    b.screenshot(&dir.join("dashboard-phone.png")).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
}
