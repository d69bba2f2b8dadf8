//! nginx as this harness runs it: in the foreground, all its files under one folder, no
//! access log. Used both as the fixed-answer upstream and as a reverse proxy under test.

use std::path::Path;
use std::process::Command;

/// A config whose `http` block holds `http_body`, with `workers` worker processes.
pub fn conf(dir: &Path, workers: u32, fd_limit: u64, http_body: &str) -> String {
    let d = dir.display();
    format!(
        "worker_processes {workers};
worker_rlimit_nofile {fd_limit};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 30000; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
{http_body}}}
"
    )
}

/// Writes `conf` to `dir/nginx.conf` and returns the command that runs it.
pub fn command(dir: &Path, conf: &str) -> Result<Command, String> {
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut cmd = Command::new("nginx");
    cmd.arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&path)
        .arg("-g")
        .arg("daemon off;");
    Ok(cmd)
}
