//! A bare Pingora round-robin proxy: what any Pingora-based proxy costs before it does
//! anything of its own. Benchmarks compare Meridian against it.
//!
//! `pingora-rr LISTEN UPSTREAM [UPSTREAM ...] [--threads N]`, e.g.
//! `pingora-rr 127.0.0.1:7000 127.0.0.1:8001 127.0.0.1:8002`

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use pingora_load_balancing::{selection::RoundRobin, LoadBalancer};
use std::sync::Arc;
use std::time::Duration;

// The same allocator as Meridian, so the floor is measured on equal terms.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct RoundRobinProxy(Arc<LoadBalancer<RoundRobin>>);

#[async_trait]
impl ProxyHttp for RoundRobinProxy {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let backend = self
            .0
            .select(b"", 256)
            .ok_or_else(|| Error::explain(ErrorType::HTTPStatus(503), "no upstream"))?;
        let mut peer = HttpPeer::new(backend, false, String::new());
        peer.options.connection_timeout = Some(Duration::from_secs(1));
        peer.options.read_timeout = Some(Duration::from_secs(60));
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        Ok(Box::new(peer))
    }
}

fn usage() -> ! {
    eprintln!("usage: pingora-rr LISTEN UPSTREAM [UPSTREAM ...] [--threads N]");
    std::process::exit(2)
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut threads = 1usize;
    if let Some(i) = args.iter().position(|a| a == "--threads") {
        threads = args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .filter(|n| *n > 0)
            .unwrap_or_else(|| usage());
        args.drain(i..=i + 1);
    }
    if args.len() < 2 || args.iter().any(|a| a.starts_with('-')) {
        usage();
    }
    let listen = args.remove(0);
    let lb = LoadBalancer::try_from_iter(args.iter().map(String::as_str)).unwrap_or_else(|e| {
        eprintln!("pingora-rr: bad upstream address: {e}");
        std::process::exit(2)
    });
    let conf = ServerConf {
        threads,
        pid_file: "/tmp/pingora-rr.pid".into(),
        upgrade_sock: "/tmp/pingora-rr-upgrade.sock".into(),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, RoundRobinProxy(Arc::new(lb)));
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever()
}
