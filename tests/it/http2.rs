//! HTTP/2 with curl (nghttp2): ALPN `h2` on the HTTPS listener by default, h2c on the plain
//! listener with `listen.h2c`, HTTP/1.1 beside both, and an SSE stream that stays a stream
//! over HTTP/2 on both sides (client to Meridian over h2c, Meridian to a `protocol: h2`
//! region over h2c).

use crate::common::*;
use crate::https::{pki, Pki};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// `curl <flags> <url>` posting a small inference request; (HTTP version, status, headers).
fn curl(flags: &[&str], url: &str) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-o", "/dev/null", "-D", "-"])
        .args(["-w", "\nversion=%{http_version} status=%{http_code}"])
        .args(["-H", "content-type: application/json"])
        .args(["-d", r#"{"prompt":"over h2","max_tokens":2}"#])
        .args(flags)
        .arg(url)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    let tail = text.lines().last().unwrap_or_default().to_string();
    (
        tail,
        format!("{text}{}", String::from_utf8_lossy(&out.stderr)),
    )
}

/// The config's `listen:` block with `extra` lines (indented two spaces) added.
pub fn with_listen(
    cfg: &TestConfig,
    extra: String,
) -> impl Fn(SocketAddr, SocketAddr, &Path) -> String + '_ {
    move |p, a, d| {
        cfg.render(p, a, d).replacen(
            &format!("  admin: {a}\n"),
            &format!("  admin: {a}\n{extra}"),
            1,
        )
    }
}

pub fn write_pki(dir: &Path, pki: &Pki) -> (String, String, String) {
    let path = |n: &str| dir.join(n).display().to_string();
    std::fs::write(dir.join("cert.pem"), &pki.cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), &pki.key_pem).unwrap();
    std::fs::write(dir.join("ca.pem"), &pki.ca_pem).unwrap();
    (path("cert.pem"), path("key.pem"), path("ca.pem"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_offers_h2_by_alpn_and_the_plain_listener_h2c_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca) = write_pki(dir.path(), &pki());
    let ap = region("ap-south-1", 0).await;
    let cfg = TestConfig::new().mock(&ap, 0.30, 1);
    let tls = free_addr();
    let extra = format!(
        "  h2c: true\n  proxy_tls:\n    addr: {tls}\n    cert_file: {cert}\n    key_file: {key}\n"
    );
    let m = Meridian::start_with(with_listen(&cfg, extra), &[]).await;
    m.wait_health("ap-south-1", true).await;

    let https = format!("https://127.0.0.1:{}/v1/inference", tls.port());
    let (got, all) = curl(&["--http2", "--cacert", &ca], &https);
    assert_eq!(got, "version=2 status=200", "{all}");
    assert!(all.contains("x-meridian-region: ap-south-1"), "{all}");
    let (got, all) = curl(&["--http1.1", "--cacert", &ca], &https);
    assert_eq!(
        got, "version=1.1 status=200",
        "HTTP/1.1 still offered: {all}"
    );

    let plain = m.url("/v1/inference");
    let (got, all) = curl(&["--http2-prior-knowledge"], &plain);
    assert_eq!(got, "version=2 status=200", "{all}");
    assert!(all.contains("x-meridian-region: ap-south-1"), "{all}");
    let (got, all) = curl(&["--http1.1"], &plain);
    assert_eq!(got, "version=1.1 status=200", "{all}");
    // The region was spoken to as before: HTTP/1.1 is every region's default.
    assert!(all.contains("x-mock-http-version: 1.1"), "{all}");
    assert_eq!(ap.counts().inference, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_h2c_the_plain_listener_speaks_http1_only() {
    let ap = region("ap-south-1", 0).await;
    let m = Meridian::start(&TestConfig::new().mock(&ap, 0.30, 1)).await;
    m.wait_health("ap-south-1", true).await;
    let (got, all) = curl(&["--http2-prior-knowledge"], &m.url("/v1/inference"));
    assert!(!got.contains("status=200"), "{all}");
    let (got, all) = curl(&["--http1.1"], &m.url("/v1/inference"));
    assert_eq!(got, "version=1.1 status=200", "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_over_h2c_from_a_region_spoken_to_over_h2c() {
    let ap = region("ap-south-1", 5).await;
    let cfg = TestConfig::new().mock_with(&ap, 0.32, 1, &["protocol: h2"]);
    let m = Meridian::start_with(with_listen(&cfg, "  h2c: true\n".into()), &[]).await;
    m.wait_health("ap-south-1", true).await;
    ap.set_stream_hold(true);
    let mut child = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "-N",
            "--http2-prior-knowledge",
            "--max-time",
            "20",
            "-i",
        ])
        .args(["-w", "\nversion=%{http_version}\n"])
        .args(["-H", "content-type: application/json", "-d"])
        .arg(
            r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"stream please"}]}"#,
        )
        .arg(m.url("/v1/chat/completions"))
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("curl runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut head = Vec::new();
    // The region holds after its first chunk: a buffering proxy would show nothing here.
    let first = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("data: ") {
                return line;
            }
            head.push(line.to_lowercase());
        }
        panic!("the stream ended before its first event: {head:?}");
    })
    .await
    .expect("the first event arrives while the region holds the rest");
    assert!(first.starts_with("data: {"), "{first}");
    let head = head.join("\n");
    assert!(head.starts_with("http/2 200"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(
        head.contains("x-mock-http-version: 2"),
        "the region was spoken to over h2c: {head}"
    );

    ap.set_stream_hold(false);
    let mut rest = String::new();
    while let Some(line) = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("the stream goes on")
        .unwrap()
    {
        rest.push_str(&line);
        rest.push('\n');
    }
    assert!(rest.contains("data: [DONE]"), "{rest}");
    assert!(rest.trim_end().ends_with("version=2"), "{rest}");
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_over_tls_is_spoken_to_over_http2_as_its_protocol_says() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let (_, _, ca) = write_pki(dir.path(), &pki);
    // Three regions behind TLS that offer h2 and http/1.1 by ALPN, as a cloud endpoint does.
    let h2 = crate::https::tls_region("ap-south-1", &pki).await;
    let auto = crate::https::tls_region("me-south-1", &pki).await;
    let http1 = crate::https::tls_region("us-east-1", &pki).await;
    let https = |m: &mock_regions::MockRegion| format!("https://{}", m.addr());
    let ca = format!("ca_file: {ca}");
    let cfg = TestConfig::new()
        .region(
            "ap-south-1",
            &[https(&h2)],
            0.3,
            1,
            &format!("{ca}\n    protocol: h2"),
        )
        .region(
            "me-south-1",
            &[https(&auto)],
            0.3,
            1,
            &format!("{ca}\n    protocol: auto"),
        )
        .region("us-east-1", &[https(&http1)], 0.3, 1, &ca);
    let m = Meridian::start(&cfg).await;
    for name in ["ap-south-1", "me-south-1", "us-east-1"] {
        m.wait_health(name, true).await;
    }
    for (region, version) in [
        ("ap-south-1", "2"),
        ("me-south-1", "2"),
        ("us-east-1", "1.1"),
    ] {
        let r = m.infer(&[("x-meridian-prefer-region", region)]).await;
        assert_eq!(
            (r.status, r.region.as_deref()),
            (200, Some(region)),
            "{}",
            r.body
        );
        let seen = r
            .headers
            .get("x-mock-http-version")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert_eq!(seen, version, "{region} was spoken to in HTTP/{seen}");
    }
}

/// nginx serving HTTP/2 with prior knowledge (h2c) on a free port: `/health` and an
/// inference answer. One process (`master_process off`): killing a master leaves its
/// workers running, each holding its port, after the test. `None` when nginx is not installed (CI installs it and sets
/// MERIDIAN_REQUIRE_NGINX=1, which makes a missing one fail the test).
struct Nginx {
    child: std::process::Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start_h2c() -> Option<Nginx> {
        let bin = ["/usr/sbin/nginx", "nginx"].into_iter().find(|b| {
            Command::new(b)
                .arg("-v")
                .stderr(Stdio::null())
                .status()
                .is_ok()
        })?;
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..3 {
            let addr = free_addr();
            let conf = format!(
                "master_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {d};\n  server {{\n    listen {addr} http2;\n    location = /health {{ return 200 'ok'; }}\n    location / {{ default_type application/json; return 200 '{{\"id\":\"nginx\",\"object\":\"text_completion\"}}'; }}\n  }}\n}}\n",
                d = dir.path().display()
            );
            std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
            let mut child = Command::new(bin)
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(dir.path().join("nginx.conf"))
                .args(["-g", "daemon off;"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nginx starts");
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while std::time::Instant::now() < deadline && child.try_wait().ok().flatten().is_none()
            {
                if std::net::TcpStream::connect(addr).is_ok() {
                    return Some(Nginx {
                        child,
                        addr,
                        _dir: dir,
                    });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("nginx did not start");
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_behind_nginx_over_h2c_is_probed_and_served() {
    let Some(nginx) = Nginx::start_h2c() else {
        assert!(
            std::env::var_os("MERIDIAN_REQUIRE_NGINX").is_none(),
            "nginx is not installed (apt-get install nginx-light)"
        );
        eprintln!("skipped: nginx is not installed (apt-get install nginx-light)");
        return;
    };
    // nginx refuses an HTTP/2 request that carries both :authority and Host (400), so a
    // probe that sent both would never find this region healthy.
    let cfg = TestConfig::new().region(
        "ap-south-1",
        &[format!("http://{}", nginx.addr)],
        0.3,
        1,
        "protocol: h2",
    );
    let m = Meridian::start(&cfg).await;
    m.wait_health("ap-south-1", true).await;
    let r = m.infer(&[]).await;
    assert_eq!(
        (r.status, r.region.as_deref()),
        (200, Some("ap-south-1")),
        "{}",
        r.body
    );
    assert_eq!(r.json()["id"], "nginx", "{}", r.body);
}
