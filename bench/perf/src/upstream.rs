//! Upstreams: nginx answering a fixed OpenAI-shaped JSON on several ports (the regions
//! for request cost; fast, so the proxy is what gets measured), mock regions for
//! streaming, and mock regions that read every request body whole (for the cost of
//! routing by model, where the body is what grows).

use crate::procs::Proc;
use crate::systems::free_port;
use mock_regions::{MockRegion, RegionSpec};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

pub const REGIONS: usize = 5;

const ANSWER: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"mock-model","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the benchmark upstream."},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":6,"total_tokens":9}}"#;

/// One nginx process (one worker) listening on `REGIONS` ports.
pub async fn fixed(dir: &Path, fd_limit: u64) -> Result<(Proc, Vec<SocketAddr>), String> {
    let dir = dir.join("upstream");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut addrs = Vec::new();
    let mut listens = String::new();
    for _ in 0..REGIONS {
        let a = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let _ = writeln!(listens, "    listen {a} backlog=4096;");
        addrs.push(a);
    }
    let body = format!(
        "  server {{
{listens}    location / {{
      default_type application/json;
      return 200 '{ANSWER}';
    }}
  }}
"
    );
    let cmd = crate::nginx::command(&dir, &crate::nginx::conf(&dir, 1, fd_limit, &body))?;
    let mut proc = Proc::spawn("upstream-nginx", cmd, &dir.join("output.log"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    for a in &addrs {
        while !crate::request::ready(*a, "/").await {
            if !proc.running() || Instant::now() > deadline {
                return Err(format!(
                    "upstream nginx did not start; see {}",
                    dir.join("output.log").display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok((proc, addrs))
}

/// Mock regions streaming one token per `token_ms`, first token at once.
pub async fn streaming(token_ms: u64) -> Result<Vec<MockRegion>, String> {
    let mut regions = Vec::new();
    for i in 0..REGIONS {
        let mut spec = RegionSpec::new(&format!("stream-{i}"), 0);
        spec.token_ms = token_ms;
        let r = MockRegion::start(spec, SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(|e| format!("mock region: {e}"))?;
        regions.push(r);
    }
    Ok(regions)
}

/// Mock regions answering a chat completion whole and at once, over HTTP/1.1 or h2c as the
/// client opens (one port each): the upstream of the http2 phase. nginx 1.22's `listen ...
/// http2` port does not serve there: it answers Meridian's HTTP/2 health probe with 400
/// ("client sent duplicate host header": Pingora 0.9.1's HTTP/2 client sends `:authority`
/// from the probe's `host` and keeps the `host` header too), so every region would stay
/// unhealthy.
pub async fn instant() -> Result<Vec<MockRegion>, String> {
    streaming(0).await
}

/// Mock regions answering at once, each reading every body whole before it answers (nginx's
/// `return` answers without reading it, which would let a proxy skip sending it). Region `i`
/// serves `request::CHAT_MODEL` under its own name, `systems::upstream_model(i)`, and
/// under the fleet-wide name too, so Meridian with and without models gets the same answers;
/// what each received is in its counters.
pub async fn body_reading() -> Result<Vec<MockRegion>, String> {
    let mut regions = Vec::new();
    for i in 0..REGIONS {
        let own = crate::systems::upstream_model(i);
        let mut spec = RegionSpec::new(&format!("body-{i}"), 0)
            .with_models(&[(&own, "v1"), (crate::request::CHAT_MODEL, "v1")]);
        spec.token_ms = 0;
        let r = MockRegion::start(spec, SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(|e| format!("mock region: {e}"))?;
        regions.push(r);
    }
    Ok(regions)
}
