//! Headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`),
//! with plain HTTP requests to chromedriver on a free loopback port.

use super::free_addr;
use base64::Engine;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &[&str] = &["/usr/bin/chromium", "/usr/bin/chromium-browser"];
const DRIVER: &[&str] = &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"];

/// Flags that keep a test browser to itself: no sandbox (tests run as root in CI), no
/// first-run work, and none of the background requests Chromium makes to Google.
const FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-proxy-server",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-sync",
    "--disable-extensions",
    "--disable-breakpad",
    "--window-size=1280,900",
];

/// A chromedriver process with one browser session; both end on drop.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

fn find(candidates: &[&'static str]) -> Option<&'static str> {
    candidates.iter().copied().find(|p| Path::new(p).exists())
}

impl Browser {
    /// `None` when Chromium or its driver is not installed; a test then skips, unless
    /// MERIDIAN_REQUIRE_CHROMIUM=1 (CI) makes that a failure.
    pub async fn start() -> Option<Browser> {
        let missing =
            "chromium or chromedriver is not installed (apt-get install chromium chromium-driver)";
        let (Some(chromium), Some(driver)) = (find(CHROMIUM), find(DRIVER)) else {
            assert!(
                std::env::var_os("MERIDIAN_REQUIRE_CHROMIUM").is_none(),
                "{missing}"
            );
            eprintln!("skipped: {missing}");
            return None;
        };
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        for _ in 0..3 {
            let addr = free_addr();
            let mut child = Command::new(driver)
                .arg(format!("--port={}", addr.port()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver starts");
            let base = format!("http://{addr}");
            if !ready(&http, &base, &mut child).await {
                let _ = child.kill();
                let _ = child.wait();
                continue;
            }
            let profile = tempfile::tempdir().unwrap();
            let mut args: Vec<String> = FLAGS.iter().map(|f| f.to_string()).collect();
            args.push(format!("--user-data-dir={}", profile.path().display()));
            let caps = json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": chromium, "args": args},
            }}});
            let r: Value = http
                .post(format!("{base}/session"))
                .json(&caps)
                .send()
                .await
                .expect("chromedriver answers")
                .json()
                .await
                .expect("chromedriver answers JSON");
            let session = r["value"]["sessionId"]
                .as_str()
                .unwrap_or_else(|| panic!("no WebDriver session: {r}"))
                .to_string();
            return Some(Browser {
                driver: child,
                base,
                session,
                http,
                _profile: profile,
            });
        }
        panic!("chromedriver did not start");
    }

    async fn call(&self, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let r: Value = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        if r["value"]["error"].is_string() {
            panic!("WebDriver {path}: {}", r["value"]);
        }
        r["value"].clone()
    }

    pub async fn open(&self, url: &str) {
        self.call("/url", json!({ "url": url })).await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub async fn eval(&self, script: &str, args: Value) -> Value {
        self.call("/execute/sync", json!({ "script": script, "args": args }))
            .await
    }

    /// Types `text` into the element `css` selects.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.call(&format!("/element/{id}/value"), json!({ "text": text }))
            .await;
    }

    pub async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.call(&format!("/element/{id}/click"), json!({})).await;
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .call("/element", json!({"using": "css selector", "value": css}))
            .await;
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(|id| id.as_str())
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    /// Sets the viewport (CSS pixels) and whether the page sees a mobile device.
    pub async fn viewport(&self, width: u32, height: u32, scale: f64, mobile: bool) {
        let params =
            json!({"width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile});
        self.call(
            "/goog/cdp/execute",
            json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": params}),
        )
        .await;
    }

    /// A PNG of the whole page (beyond the viewport) written to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let params = json!({"format": "png", "captureBeyondViewport": true});
        let v = self
            .call(
                "/goog/cdp/execute",
                json!({"cmd": "Page.captureScreenshot", "params": params}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v["data"].as_str().expect("screenshot data"))
            .expect("screenshot is base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}

async fn ready(http: &reqwest::Client, base: &str, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(r) = http.get(format!("{base}/status")).send().await {
            if let Ok(v) = r.json::<Value>().await {
                if v["value"]["ready"] == true {
                    return true;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session closes Chromium (a killed driver would leave it running);
        // a plain blocking request, as drop may run inside the test's runtime.
        use std::io::{Read, Write};
        let host = self.base.trim_start_matches("http://");
        if let Ok(mut s) = std::net::TcpStream::connect(host) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let req = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            );
            let mut answer = Vec::new();
            let _ = s
                .write_all(req.as_bytes())
                .and_then(|_| s.read_to_end(&mut answer));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where CI keeps what a test run produced (screenshots): target/ci-artifacts.
pub fn artifacts_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ci-artifacts")
}
