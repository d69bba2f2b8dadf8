//! `mock-regions`: run the default set of mock regions, or a single one so it
//! can be killed on its own to simulate a regional outage.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use mock_regions::{
    demo_regions, parse_models, MockModel, MockRegion, PrefixCacheSpec, RegionSpec,
};

const USAGE: &str = "\
usage: mock-regions [OPTIONS]
       mock-regions [OPTIONS] NAME PORT LATENCY_MS

Without arguments, starts the five demo regions on ports 8001-8005, each serving
the models the built-in conf/meridian.yaml places there (--models replaces them).
With NAME PORT LATENCY_MS, starts that one region (PORT 0 picks a free port).
LATENCY_MS is network latency, paid by every request before anything else.

options:
  --work-ms N          time to first token: waited after a request gets a
                       capacity slot, before its first chunk or answer (default 0)
  --ttft-ms N          same as --work-ms
  --token-ms N         time per generated token: between streamed chunks, and
                       times the token count for non-streamed answers (default 20)
  --capacity N         model-carrying requests worked on at once; the rest
                       queue, and 0 queues all of them (default: unlimited)
  --model-version V    model version reported by /health (default v1)
  --models LIST        serve only these models, as vLLM does: LIST is
                       NAME[@VERSION][,NAME[@VERSION]...] (VERSION defaults
                       to v1); a request naming another model is answered 404,
                       one naming none is answered as the first
                       (default: any model, listed as mock-model)
  --prefix-cache N     simulate a KV prefix cache of N prefix hashes (LRU) in each
                       region: the longest run of leading messages it has seen is
                       reported as cached_tokens and skips its prefill (default: off)
  --prefill-us N       prefill time per prompt token not in the prefix cache, in
                       microseconds, added to the time to first token (default 0)
  --host ADDR          IP address to listen on (default 127.0.0.1)
  -h, --help           print this help

Routes: GET /health, GET /v1/models, and POST /v1/inference,
/v1/chat/completions, /v1/completions, /v1/embeddings, /v1/messages and
/v1/responses (chat, completions and messages stream on \"stream\":true).
Answers report token usage in each API's shape: prompt tokens are
ceil(chars / 4) of the request's text, completion tokens the words generated.
Each region also serves /control to inspect and change these settings at run
time (POST a JSON object, e.g. {\"latency_ms\":50},
{\"models\":[{\"name\":\"m\",\"version\":\"v2\"}]}, {\"usage\":false} to
report no usage, {\"cached_tokens\":8} to report 8 prompt tokens cached, or
{\"prefill_us_per_token\":150}); GET /control also shows the tokens reported so
far and the prefix cache's size and hits.";

struct Options {
    host: IpAddr,
    work_ms: u64,
    token_ms: u64,
    capacity: Option<u32>,
    model_version: String,
    models: Vec<MockModel>,
    prefix_cache: Option<PrefixCacheSpec>,
    prefill_us: u64,
    single: Option<(String, u16, u64)>,
}

enum Command {
    Run(Options),
    Help,
}

fn number<T: std::str::FromStr>(what: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("invalid {what}: {value:?}"))
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut opts = Options {
        host: IpAddr::V4(Ipv4Addr::LOCALHOST),
        work_ms: 0,
        token_ms: 20,
        capacity: None,
        model_version: "v1".to_string(),
        models: Vec::new(),
        prefix_cache: None,
        prefill_us: 0,
        single: None,
    };
    let mut positional = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
        }
        if !arg.starts_with("--") {
            positional.push(arg);
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_string(), Some(value.to_string())),
            None => (arg, None),
        };
        if !matches!(
            flag.as_str(),
            "--work-ms"
                | "--ttft-ms"
                | "--token-ms"
                | "--capacity"
                | "--model-version"
                | "--models"
                | "--prefix-cache"
                | "--prefill-us"
                | "--host"
        ) {
            return Err(format!("unknown option {flag}"));
        }
        let value = match inline.or_else(|| args.next()) {
            Some(value) => value,
            None => return Err(format!("{flag} needs a value")),
        };
        match flag.as_str() {
            "--work-ms" | "--ttft-ms" => opts.work_ms = number(&flag, &value)?,
            "--token-ms" => opts.token_ms = number("--token-ms", &value)?,
            "--capacity" => opts.capacity = Some(number("--capacity", &value)?),
            "--model-version" => {
                if value.is_empty() {
                    return Err("--model-version must not be empty".to_string());
                }
                opts.model_version = value;
            }
            "--models" => {
                opts.models = parse_models(&value).map_err(|e| format!("--models: {e}"))?
            }
            "--prefix-cache" => {
                let entries: usize = number("--prefix-cache", &value)?;
                if entries == 0 {
                    return Err("--prefix-cache must be at least 1".to_string());
                }
                opts.prefix_cache = Some(PrefixCacheSpec { entries });
            }
            "--prefill-us" => opts.prefill_us = number("--prefill-us", &value)?,
            _ => opts.host = number("--host address", &value)?,
        }
    }
    match positional.as_slice() {
        [] => {}
        [name, port, latency] => {
            if name.is_empty() {
                return Err("region NAME must not be empty".to_string());
            }
            opts.single = Some((
                name.clone(),
                number("PORT", port)?,
                number("LATENCY_MS", latency)?,
            ));
        }
        _ => return Err("expected either no arguments or NAME PORT LATENCY_MS".to_string()),
    }
    Ok(Command::Run(opts))
}

#[tokio::main]
async fn main() -> ExitCode {
    let opts = match parse(std::env::args().skip(1)) {
        Ok(Command::Run(opts)) => opts,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("mock-regions: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    let specs = match opts.single {
        Some((name, port, latency)) => vec![(RegionSpec::new(&name, latency), port)],
        None => demo_regions(),
    };
    let mut regions = Vec::with_capacity(specs.len());
    for (mut spec, port) in specs {
        spec.work_ms = opts.work_ms;
        spec.token_ms = opts.token_ms;
        spec.capacity = opts.capacity;
        spec.model_version.clone_from(&opts.model_version);
        if !opts.models.is_empty() {
            spec.models.clone_from(&opts.models);
        }
        spec.prefix_cache = opts.prefix_cache;
        spec.prefill_us_per_token = opts.prefill_us;
        let latency = spec.latency_ms;
        let addr = SocketAddr::new(opts.host, port);
        let name = spec.name.clone();
        match MockRegion::start(spec, addr).await {
            Ok(region) => {
                println!(
                    "mock region {name} listening on {} (latency {latency} ms{})",
                    region.url(),
                    served(&region.models())
                );
                regions.push(region);
            }
            Err(e) => {
                eprintln!("mock-regions: cannot start region {name} on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }

    shutdown_signal().await;
    for region in regions {
        region.kill().await;
    }
    ExitCode::SUCCESS
}

/// ", models a@v1, b@v2" for the startup line; nothing when any model is served.
fn served(models: &[MockModel]) -> String {
    if models.is_empty() {
        return String::new();
    }
    let list: Vec<String> = models
        .iter()
        .map(|m| format!("{}@{}", m.name, m.version))
        .collect();
    format!(", models {}", list.join(", "))
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn prefix_cache_and_prefill_flags() {
        let Ok(Command::Run(opts)) = parse(args(&["--prefix-cache", "64", "--prefill-us=150"]))
        else {
            panic!("parses");
        };
        assert_eq!(opts.prefix_cache, Some(PrefixCacheSpec { entries: 64 }));
        assert_eq!(opts.prefill_us, 150);
        let Ok(Command::Run(opts)) = parse(args(&[])) else {
            panic!("parses");
        };
        assert_eq!((opts.prefix_cache, opts.prefill_us), (None, 0));
        assert!(parse(args(&["--prefix-cache", "0"])).is_err());
    }

    #[test]
    fn models_flag_takes_a_list_with_optional_versions() {
        for form in [
            args(&["--models", "llama-70b@v2,bge-m3", "r", "0", "5"]),
            args(&["--models=llama-70b@v2,bge-m3", "r", "0", "5"]),
        ] {
            let Ok(Command::Run(opts)) = parse(form) else {
                panic!("parses");
            };
            assert_eq!(
                opts.models,
                vec![
                    MockModel::new("llama-70b", "v2"),
                    MockModel::new("bge-m3", "v1")
                ]
            );
        }
        let Ok(Command::Run(opts)) = parse(args(&[])) else {
            panic!("parses");
        };
        assert!(opts.models.is_empty());
        for bad in [&["--models"][..], &["--models", ""], &["--models", "a,a"]] {
            assert!(parse(args(bad)).is_err(), "{bad:?}");
        }
    }
}
