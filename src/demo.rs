//! `meridian demo`: the default mock regions and the proxy in one process, so every curl
//! in the README works after one command.

use crate::config::Config;
use mock_regions::{default_regions, MockRegion};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::mpsc;

pub fn run(config: Config, daemon: bool, upgrade: bool) -> i32 {
    if daemon || upgrade {
        eprintln!("meridian: demo runs in the foreground only (no -d or -u)");
        return 2;
    }
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                let _ = ready_tx.send(Err(format!("cannot start mock regions: {e}")));
                return;
            }
        };
        runtime.block_on(async move {
            let mut running = Vec::new();
            for (spec, port) in default_regions() {
                let name = spec.name.clone();
                let latency = spec.latency_ms;
                match MockRegion::start(spec, SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await {
                    Ok(region) => {
                        println!("mock region {name:<12} {} (latency {latency} ms)", region.url());
                        running.push(region);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!(
                            "cannot start mock region {name} on port {port}: {e} (is another demo or mock-regions running?)"
                        )));
                        return;
                    }
                }
            }
            let _ = ready_tx.send(Ok(()));
            // Keep the regions alive for as long as the process runs.
            std::future::pending::<()>().await;
            drop(running);
        });
    });
    match ready_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            eprintln!("meridian: {e}");
            return 1;
        }
        Err(_) => {
            eprintln!("meridian: mock regions stopped unexpectedly");
            return 1;
        }
    }
    println!(
        "meridian proxy on http://{} (admin http://{}); try:\n  curl -s http://{}/v1/inference -d '{{\"prompt\":\"hello\",\"max_tokens\":8}}' -i",
        config.listen.proxy, config.listen.admin, config.listen.proxy
    );
    let (server, _rt) = crate::app::build_server(config, false, false);
    server.run_forever()
}
