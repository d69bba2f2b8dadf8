//! Builds the Pingora server: the health service, the proxy (which starts only after the
//! first probe round), and the admin listener.

use super::connections::Limited;
use super::health::HealthService;
use super::reload::ReloadService;
use crate::admin::AdminApp;
use crate::config::{Config, Limits, Listen, ProxyTls};
use crate::proxy::MeridianProxy;
use crate::runtime::{Runtime, Shared};
use pingora::apps::http_app::HttpServer;
use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use std::sync::Arc;

/// Pingora's own settings from the `server:` section.
fn server_conf(config: &Config, daemon: bool) -> ServerConf {
    let s = &config.server;
    ServerConf {
        threads: s.threads,
        work_stealing: s.work_stealing,
        pid_file: s.pid_file.clone(),
        upgrade_sock: s.upgrade_sock.clone(),
        error_log: s.error_log.clone(),
        user: s.user.clone(),
        group: s.group.clone(),
        grace_period_seconds: Some(s.grace_period_seconds),
        graceful_shutdown_timeout_seconds: Some(s.graceful_shutdown_timeout_seconds),
        upstream_keepalive_pool_size: s.upstream_keepalive_pool_size,
        daemon,
        ..ServerConf::default()
    }
}

/// A client listener's socket settings. No L4 read buffer: Pingora's default puts 64 KiB
/// in front of every client connection, kept for the connection's whole life, idle or
/// not, where the HTTP/1 parser reads into buffers of its own anyway (4 KiB for request
/// headers, its body buffers for bodies). Without it an idle keep-alive connection costs
/// a fraction of that, and a request is read with one copy fewer.
fn client_listener(addr: &str) -> ListenerConfig {
    ListenerConfig::tcp(addr).l4_buffer(L4BufferSettings::default().read(0))
}

/// How the proxy listeners treat client connections. `h2c` matters only on the plain
/// listener: Pingora turns it off on TLS connections, where ALPN decides. An HTTP/2
/// connection with no stream open is closed after `limits.keepalive_timeout`, as an idle
/// HTTP/1 one is (Pingora's default keeps it forever); with keep-alive off (0s), after 1 s.
/// Set when the listener starts: a reload does not change it.
fn server_options(listen: &Listen, limits: &Limits) -> HttpServerOptions {
    let mut options = HttpServerOptions::default();
    options.h2c = listen.h2c;
    options.h2_idle_timeout = Some(std::time::Duration::from_secs(
        limits.keepalive().unwrap_or(1),
    ));
    options
}

/// The HTTPS listener's TLS settings: ALPN offers `h2` then `http/1.1` unless
/// `proxy_tls.http2` is false.
fn tls_settings(t: &ProxyTls) -> pingora::Result<TlsSettings> {
    let mut tls = TlsSettings::intermediate(&t.cert_file, &t.key_file)?;
    if t.http2 {
        tls.enable_h2();
    }
    Ok(tls)
}

/// Why the server could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot open the HTTPS listener on {addr}: {why}")]
    TlsListener {
        addr: std::net::SocketAddr,
        why: String,
    },
}

/// `conf_path` is the file SIGHUP reloads (`None`: the built-in default).
pub fn build_server(
    config: Config,
    conf_path: Option<std::path::PathBuf>,
    upgrade: bool,
    daemon: bool,
) -> Result<(Server, Arc<Shared>), ServerError> {
    let opt = Opt {
        upgrade,
        daemon,
        nocapture: false,
        test: false,
        conf: None,
    };
    let conf = server_conf(&config, daemon);
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let proxy_addr = config.listen.proxy.to_string();
    let admin_addr = config.listen.admin.to_string();
    let proxy_tls = config.listen.proxy_tls.clone();
    let options = server_options(&config.listen, &config.limits);
    let shared = Shared::new(Runtime::new(config), conf_path);

    let health = background_service(
        "region health checks",
        HealthService::new(Arc::clone(&shared)),
    );
    let dns = background_service(
        "endpoint names",
        super::dns::DnsService {
            shared: Arc::clone(&shared),
        },
    );
    let reload = background_service(
        "config reload",
        ReloadService {
            shared: Arc::clone(&shared),
        },
    );
    // One service per listener, so each has its own limits.max_connections.
    let proxy_app = |label| {
        let mut app = pingora::proxy::http_proxy(
            &server.configuration,
            MeridianProxy::new(Arc::clone(&shared)),
        );
        app.server_options = Some(options.clone());
        Limited::new(app, Arc::clone(&shared), label)
    };
    let mut proxy = Service::new("meridian proxy".to_string(), proxy_app("proxy"));
    proxy.add_listener(client_listener(&proxy_addr));
    let proxy_tls = match proxy_tls {
        Some(t) => {
            let mut tls =
                Service::new("meridian proxy (https)".to_string(), proxy_app("proxy_tls"));
            // The files were checked when the config was loaded.
            let settings = tls_settings(&t).map_err(|e| ServerError::TlsListener {
                addr: t.addr,
                why: e.to_string(),
            })?;
            tls.add_listener(client_listener(&t.addr.to_string()).tls(settings));
            Some(tls)
        }
        None => None,
    };
    let admin_app = Limited::new(
        HttpServer::new_app(AdminApp::new(Arc::clone(&shared))),
        Arc::clone(&shared),
        "admin",
    );
    let mut admin = Service::new("meridian admin".to_string(), admin_app);
    admin.add_listener(client_listener(&admin_addr));

    let health = server.add_service(health);
    let proxy = server.add_service(proxy);
    proxy.add_dependency(&health);
    if let Some(tls) = proxy_tls {
        server.add_service(tls).add_dependency(&health);
    }
    server.add_service(admin);
    server.add_service(reload);
    server.add_service(dns);
    Ok((server, shared))
}

/// Runs the server until it has shut down (SIGTERM, or SIGQUIT after a graceful upgrade)
/// and writes the access-log lines still gathered in memory.
pub fn serve(server: Server) {
    server.run(pingora::server::RunArgs::default());
    crate::telemetry::flush_access_logs();
}
