//! Pingora's process flags keep their meaning: `-d` detaches and writes the pid file.

use crate::common::*;
use std::process::Command;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_mode_detaches_writes_pid_file_and_serves() {
    let ap = region("ap-south-1", 5).await;
    let cfg = TestConfig::new().mock(&ap, 0.32, 1);
    let dir = tempfile::tempdir().unwrap();
    let (proxy, admin) = (free_addr(), free_addr());
    let conf = dir.path().join("meridian.yaml");
    std::fs::write(&conf, cfg.render(proxy, admin, dir.path())).unwrap();
    let status = Command::new(meridian_bin())
        .arg("-d")
        .arg("-c")
        .arg(&conf)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the launching process returns once detached"
    );

    let pid_file = dir.path().join("meridian.pid");
    eventually(Duration::from_secs(10), "pid file written", || {
        let exists = pid_file.exists();
        async move { exists }
    })
    .await;
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_string();
    let url = format!("http://{proxy}/v1/models");
    eventually(Duration::from_secs(10), "daemon serves", || {
        let url = url.clone();
        async move { matches!(client().get(url).send().await, Ok(r) if r.status() == 200) }
    })
    .await;
    assert!(ap.counts().models >= 1);
    // Stop it immediately (SIGINT) and check it is gone.
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    eventually(Duration::from_secs(10), "daemon exits", || {
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
        async move { !alive }
    })
    .await;
}
