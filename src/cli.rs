//! Command line: `meridian [-c FILE] [-t] [-d] [-u]` and `meridian demo`.

use crate::config::{Config, DEFAULT_SOURCE};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "meridian",
    version,
    about = "Edge load balancer for AI inference across cloud regions"
)]
pub struct Cli {
    /// Meridian YAML config (default: the built-in conf/meridian.yaml)
    #[arg(short = 'c', long = "conf", global = true)]
    pub conf: Option<PathBuf>,
    /// Validate the config and exit (0 = valid)
    #[arg(short = 't', long = "test", global = true)]
    pub test: bool,
    /// Run in the background (Pingora daemon mode)
    #[arg(short = 'd', long = "daemon")]
    pub daemon: bool,
    /// Take over the listening sockets of a running Meridian (graceful upgrade)
    #[arg(short = 'u', long = "upgrade")]
    pub upgrade: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start the five default mock regions and the proxy together (the README walk-through)
    Demo,
    /// One mock region as its own process (started by `demo`; exits with its parent)
    #[command(hide = true)]
    MockRegion {
        name: String,
        port: u16,
        latency_ms: u64,
        /// Address to listen on (tests run regions inside network namespaces).
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// Models served, NAME[@VERSION],... (default: any model)
        #[arg(long, default_value = "")]
        models: String,
    },
}

fn load(conf: &Option<PathBuf>) -> Result<Config, String> {
    let config = match conf {
        Some(path) => Config::load_file(path),
        None => Config::load_default(),
    }
    .map_err(|e| e.to_string())?;
    for w in &config.warnings {
        log::warn!("{}: {w}", config.source);
    }
    Ok(config)
}

/// Runs the command line; returns the process exit code when it returns at all.
pub fn run(cli: Cli) -> i32 {
    if let Some(Command::MockRegion {
        name,
        port,
        latency_ms,
        bind,
        models,
    }) = &cli.command
    {
        return mock_region(name, SocketAddr::new(*bind, *port), *latency_ms, models);
    }
    let config = match load(&cli.conf) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("meridian: {e}");
            return 1;
        }
    };
    if cli.test {
        let source = cli
            .conf
            .as_ref()
            .map_or(DEFAULT_SOURCE.to_string(), |p| p.display().to_string());
        println!(
            "meridian: config {source} is valid ({} region(s), {} geo rule(s))",
            config.regions.len(),
            config.geo.rules.len()
        );
        return 0;
    }
    match cli.command {
        Some(Command::Demo) => demo(config, cli.daemon, cli.upgrade),
        Some(Command::MockRegion { .. }) => 2,
        None => match crate::app::build_server(config, cli.conf.clone(), cli.upgrade, cli.daemon) {
            Ok((server, _shared)) => {
                crate::app::serve(server);
                0
            }
            Err(e) => {
                eprintln!("meridian: {e}");
                1
            }
        },
    }
}

#[cfg(feature = "demo")]
fn demo(config: Config, daemon: bool, upgrade: bool) -> i32 {
    crate::demo::run(config, daemon, upgrade)
}

#[cfg(feature = "demo")]
fn mock_region(name: &str, addr: SocketAddr, latency_ms: u64, models: &str) -> i32 {
    crate::demo::run_region(name, addr, latency_ms, models)
}

#[cfg(not(feature = "demo"))]
const NO_DEMO: &str = "meridian: this build has no demo: it was built without the `demo` feature (the production build); `cargo run --release -- demo` builds one with it";

#[cfg(not(feature = "demo"))]
fn demo(_config: Config, _daemon: bool, _upgrade: bool) -> i32 {
    eprintln!("{NO_DEMO}");
    2
}

#[cfg(not(feature = "demo"))]
fn mock_region(_name: &str, _addr: SocketAddr, _latency_ms: u64, _models: &str) -> i32 {
    eprintln!("{NO_DEMO}");
    2
}
