//! `meridian demo`: the five default mock regions, each in its own process (so a user can
//! kill one, as in a real outage), and the proxy on the built-in config.

use crate::config::Config;
use mock_regions::{demo_regions, parse_models, MockRegion, RegionSpec};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub fn run(config: Config, daemon: bool, upgrade: bool) -> i32 {
    if daemon || upgrade {
        eprintln!("meridian: demo runs in the foreground only (no -d or -u)");
        return 2;
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("meridian: cannot find own executable to start mock regions: {e}");
            return 1;
        }
    };
    let mut children: Vec<Child> = Vec::new();
    for (spec, port) in demo_regions() {
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            eprintln!("meridian: port {port} for mock region {} is in use (is another demo or mock-regions running?)", spec.name);
            return 1;
        }
        let models: Vec<String> = spec
            .models
            .iter()
            .map(|m| format!("{}@{}", m.name, m.version))
            .collect();
        match Command::new(&exe)
            .args([
                "mock-region",
                &spec.name,
                &port.to_string(),
                &spec.latency_ms.to_string(),
                "--models",
                &models.join(","),
            ])
            .spawn()
        {
            Ok(child) => children.push(child),
            Err(e) => {
                eprintln!("meridian: cannot start mock region {}: {e}", spec.name);
                return 1;
            }
        }
    }
    for (spec, port) in demo_regions() {
        if !wait_listening(port, Duration::from_secs(10)) {
            eprintln!(
                "meridian: mock region {} did not come up on port {port}",
                spec.name
            );
            for c in &mut children {
                let _ = c.kill();
            }
            return 1;
        }
    }
    println!(
        "meridian demo: proxy http://{p} admin http://{}\n  curl -si http://{p}/v1/chat/completions -H 'content-type: application/json' -d '{{\"model\":\"llama-3.1-70b\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello\"}}]}}'\n  curl -s http://{p}/v1/models\n  take a region down: pkill -f 'mock-region ap-south-1'",
        config.listen.admin,
        p = config.listen.proxy
    );
    match crate::app::build_server(config, None, false, false) {
        Ok((server, _shared)) => {
            crate::app::serve(server);
            0
        }
        Err(e) => {
            eprintln!("meridian: {e}");
            for c in &mut children {
                let _ = c.kill();
            }
            1
        }
    }
}

fn wait_listening(port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The `mock-region` child: serves one region until killed or until the demo exits.
pub fn run_region(name: &str, addr: SocketAddr, latency_ms: u64, models: &str) -> i32 {
    let models = if models.is_empty() {
        Vec::new()
    } else {
        match parse_models(models) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("mock region {name}: --models: {e}");
                return 2;
            }
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mock region {name}: cannot start runtime: {e}");
            return 1;
        }
    };
    let parent = std::os::unix::process::parent_id();
    runtime.block_on(async move {
        let spec = RegionSpec {
            models,
            ..RegionSpec::new(name, latency_ms)
        };
        let region = match MockRegion::start(spec, addr).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("mock region {name}: cannot listen on {addr}: {e}");
                return 1;
            }
        };
        println!(
            "mock region {name:<12} {} (latency {latency_ms} ms)",
            region.url()
        );
        // No orphans: when the demo process goes away, so does its region.
        while std::os::unix::process::parent_id() == parent {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        region.kill().await;
        0
    })
}
