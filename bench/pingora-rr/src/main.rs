//! A bare Pingora round-robin proxy: what any Pingora-based proxy costs before it does
//! anything of its own. Benchmarks compare Meridian against it.
//!
//! `pingora-rr LISTEN UPSTREAM [UPSTREAM ...] [--threads N] [--h2c] [--upstream-h2]`, e.g.
//! `pingora-rr 127.0.0.1:7000 127.0.0.1:8001 127.0.0.1:8002`. `--h2c` lets clients speak
//! HTTP/2 with prior knowledge beside HTTP/1.1 (Pingora's `HttpServerOptions::h2c`, as
//! Meridian's `listen.h2c`); `--upstream-h2` speaks HTTP/2 with prior knowledge to the
//! upstreams (ALPN `H2` on a plain peer, as Meridian's `protocol: h2`).

use async_trait::async_trait;
use pingora::apps::HttpServerOptions;
use pingora::prelude::*;
use pingora::protocols::ALPN;
use pingora::server::configuration::ServerConf;
use pingora_load_balancing::{selection::RoundRobin, LoadBalancer};
use std::sync::Arc;
use std::time::Duration;

// The same allocator as Meridian, so the floor is measured on equal terms.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct RoundRobinProxy {
    lb: Arc<LoadBalancer<RoundRobin>>,
    upstream_h2: bool,
}

#[async_trait]
impl ProxyHttp for RoundRobinProxy {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let backend = self
            .lb
            .select(b"", 256)
            .ok_or_else(|| Error::explain(ErrorType::HTTPStatus(503), "no upstream"))?;
        let mut peer = HttpPeer::new(backend, false, String::new());
        peer.options.connection_timeout = Some(Duration::from_secs(1));
        peer.options.read_timeout = Some(Duration::from_secs(60));
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        if self.upstream_h2 {
            peer.options.alpn = ALPN::H2;
        }
        Ok(Box::new(peer))
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: pingora-rr LISTEN UPSTREAM [UPSTREAM ...] [--threads N] [--h2c] [--upstream-h2]"
    );
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
    let mut flag = |name: &str| {
        let at = args.iter().position(|a| a == name);
        at.map(|i| args.remove(i)).is_some()
    };
    let h2c = flag("--h2c");
    let upstream_h2 = flag("--upstream-h2");
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
    let mut proxy = http_proxy_service(
        &server.configuration,
        RoundRobinProxy {
            lb: Arc::new(lb),
            upstream_h2,
        },
    );
    if h2c {
        let mut options = HttpServerOptions::default();
        options.h2c = true;
        if let Some(app) = proxy.app_logic_mut() {
            app.server_options = Some(options);
        }
    }
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever()
}
