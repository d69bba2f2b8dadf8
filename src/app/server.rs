//! Builds the Pingora server: the health service, the proxy (which starts only after the
//! first probe round), and the admin listener.

use super::reload::ReloadService;
use super::{Runtime, Shared};
use crate::admin::AdminApp;
use crate::config::Config;
use crate::health::HealthService;
use crate::proxy::MeridianProxy;
use pingora::apps::http_app::HttpServer;
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

/// `conf_path` is the file SIGHUP reloads (`None`: the built-in default).
pub fn build_server(
    config: Config,
    conf_path: Option<std::path::PathBuf>,
    upgrade: bool,
    daemon: bool,
) -> (Server, Arc<Shared>) {
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
    let shared = Shared::new(Runtime::new(config), conf_path);

    let health = background_service(
        "region health checks",
        HealthService::new(Arc::clone(&shared)),
    );
    let reload = background_service(
        "config reload",
        ReloadService {
            shared: Arc::clone(&shared),
        },
    );
    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        MeridianProxy::new(Arc::clone(&shared)),
        "meridian proxy",
    );
    proxy.add_tcp(&proxy_addr);
    if let Some(t) = proxy_tls {
        // The files were checked when the config was loaded.
        if let Err(e) = proxy.add_tls(&t.addr.to_string(), &t.cert_file, &t.key_file) {
            eprintln!(
                "meridian: cannot open the HTTPS listener on {}: {e}",
                t.addr
            );
            std::process::exit(1);
        }
    }
    let mut admin = Service::new(
        "meridian admin".to_string(),
        HttpServer::new_app(AdminApp::new(Arc::clone(&shared))),
    );
    admin.add_tcp(&admin_addr);

    let health = server.add_service(health);
    let proxy = server.add_service(proxy);
    proxy.add_dependency(&health);
    server.add_service(admin);
    server.add_service(reload);
    (server, shared)
}

/// Runs the server until it has shut down (SIGTERM, or SIGQUIT after a graceful upgrade),
/// writes the access-log lines still gathered in memory, and exits.
pub fn serve(server: Server) -> ! {
    server.run(pingora::server::RunArgs::default());
    crate::proxy::flush_access_logs();
    std::process::exit(0)
}
