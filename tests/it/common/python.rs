//! Real gRPC and WebSocket clients and servers (grpcio, websockets) from a pinned
//! virtualenv: `tests/h2-requirements.txt`, made at `target/venv-h2` by `.ci/run`, which
//! also sets `MERIDIAN_REQUIRE_H2_CLIENTS=1` so these tests cannot be skipped there.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The virtualenv's python, or `None` (the test then says so and passes) outside CI.
pub fn h2_python() -> Option<PathBuf> {
    let venv = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/venv-h2/bin/python"
    ));
    if venv.exists() {
        return Some(venv);
    }
    assert!(
        std::env::var("MERIDIAN_REQUIRE_H2_CLIENTS").is_err(),
        "MERIDIAN_REQUIRE_H2_CLIENTS is set but there is no target/venv-h2"
    );
    eprintln!("skipped: no target/venv-h2 (python3 -m venv target/venv-h2 && target/venv-h2/bin/pip install -r tests/h2-requirements.txt)");
    None
}

/// A Python server script on an ephemeral port; killed on drop.
pub struct PyServer {
    child: Child,
    pub port: u16,
}

impl PyServer {
    /// Runs `script` with `args`; the script binds 127.0.0.1:0 and prints its port first.
    pub async fn start(python: &PathBuf, script: &str, args: &[&str]) -> PyServer {
        let mut child = Command::new(python)
            .arg("-c")
            .arg(script)
            .args(args)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let line = tokio::time::timeout(Duration::from_secs(30), async {
            BufReader::new(stdout).lines().next_line().await
        })
        .await
        .expect("the server prints its port")
        .expect("readable stdout")
        .expect("a first line");
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("not a port: {line}"));
        PyServer { child, port }
    }

    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Kills the server and waits until it is gone, so its port refuses connections.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Runs a client `script` with `args` to its end; its stdout parsed as JSON.
pub async fn run_json(python: &PathBuf, script: &str, args: &[&str]) -> serde_json::Value {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(python)
            .arg("-c")
            .arg(script)
            .args(args)
            .output(),
    )
    .await
    .expect("the client finishes")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}
