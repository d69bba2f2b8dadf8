//! Instructions per request, counted by callgrind over the whole proxy process: the same
//! figure for the same binary and requests however busy the machine is, where CPU time
//! from `/proc` moves with the other core's load.

use crate::cli::Opts;
use crate::systems::{self, Kind, Models, Running, Setup};
use crate::{load, request, upstream};
use mock_regions::MockRegion;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

/// Connections the fixed-count client keeps busy, as in bench/profile/README.md.
pub const CONNECTIONS: u32 = 10;

/// `kind` under callgrind in front of `upstreams`: warmed up, then `opts.instr_runs` runs of
/// `opts.instr_requests` requests, each on counters zeroed just before it. Returns the
/// instructions per request of each run.
pub async fn measure(
    kind: Kind,
    setup: &Setup,
    upstreams: &[SocketAddr],
    opts: &Opts,
) -> Result<Vec<f64>, String> {
    let dir = setup.dir.join(format!("{}-callgrind", kind.name()));
    let wrapper = wrapper(&dir, opts)?;
    let r = systems::start_wrapped(kind, setup, upstreams, "callgrind", &wrapper).await?;
    let mut cg = Callgrind::new(r, dir, kind.name().to_string())?;
    let raw = Arc::new(request::raw(cg.r.addr));
    cg.count(raw, opts.instr_warmup, opts.instr_requests, 1, opts)
        .await
}

/// valgrind's command line for a process whose dumps go to `dir`.
fn wrapper(dir: &Path, opts: &Opts) -> Result<Vec<OsString>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut out_arg = OsString::from("--callgrind-out-file=");
    out_arg.push(dir.join("callgrind.out"));
    Ok(vec![
        opts.valgrind.clone().into(),
        "--tool=callgrind".into(),
        out_arg,
        // Dumps and zeroing come from callgrind_control, through valgrind's gdb server.
        "--vgdb=yes".into(),
    ])
}

/// A proxy running under callgrind; its dumps are numbered in the order they are taken.
struct Callgrind {
    r: Running,
    pid: u32,
    dir: PathBuf,
    label: String,
    dumps: u32,
}

impl Callgrind {
    fn new(r: Running, dir: PathBuf, label: String) -> Result<Self, String> {
        let pid = r.proc.as_ref().ok_or("no process")?.pid();
        Ok(Callgrind {
            r,
            pid,
            dir,
            label,
            dumps: 0,
        })
    }

    /// `warmup` requests of `raw`, then `opts.instr_runs` runs of `n`, each between a
    /// zeroing and a dump. `kib` (the body size) stretches the time allowed.
    async fn count(
        &mut self,
        raw: Arc<Vec<u8>>,
        warmup: u64,
        n: u64,
        kib: u64,
        opts: &Opts,
    ) -> Result<Vec<f64>, String> {
        // Under callgrind a proxy serves a few thousand small requests a second at best.
        let limit = |n: u64| Duration::from_secs(60 + n * kib.max(1) / 20);
        let addr = self.r.addr;
        load::fixed_count(addr, raw.clone(), warmup, CONNECTIONS, limit(warmup))
            .await
            .map_err(|e| format!("callgrind warm-up: {e}"))?;
        let mut per_request = Vec::new();
        for run in 1..=opts.instr_runs {
            control(&opts.valgrind, "-z", self.pid)?;
            load::fixed_count(addr, raw.clone(), n, CONNECTIONS, limit(n))
                .await
                .map_err(|e| format!("callgrind run {run}: {e}"))?;
            // A proxy logs a request after its answer is out: let the last ones finish.
            tokio::time::sleep(Duration::from_millis(200)).await;
            control(&opts.valgrind, "-d", self.pid)?;
            // The first dump is `callgrind.out.1`: one zeroing and one dump per run.
            self.dumps += 1;
            let dump = self.dir.join(format!("callgrind.out.{}", self.dumps));
            let ir = read_total(&dump)?;
            let per = ir as f64 / n as f64;
            eprintln!(
                "perf-bench: {} under callgrind, run {run}: {ir} instructions, {per:.0} per request",
                self.label
            );
            per_request.push(per);
        }
        Ok(per_request)
    }
}

/// Instructions per request of Meridian without and with models, on chat bodies of each
/// size in `opts.body_kib`.
pub struct ModelRouting {
    pub sizes: Vec<SizeRuns>,
    /// What the upstream regions received, one line per configuration.
    pub upstream: Vec<String>,
}

pub struct SizeRuns {
    pub kib: u32,
    pub warmup: u64,
    pub requests: u64,
    pub without: Vec<f64>,
    pub with: Vec<f64>,
}

/// `n` requests for 1 KiB bodies, fewer for larger ones (about the same bytes per run), but
/// at least a fortieth of `n`, so a run still spreads Meridian's background work (probes,
/// timers) over enough requests.
pub fn per_size(n: u64, kib: u32) -> u64 {
    (n / u64::from(kib.max(1))).max(n / 40).max(1)
}

/// Meridian under callgrind twice, in front of mock regions that read every body: without
/// models (the body streams through unread) and with them declared (every region serving
/// the model under its own name, so routing is unchanged but every body is read, held, its
/// `model` found and rewritten). One process per configuration, all body sizes in turn.
pub async fn measure_models(setup: &Setup, opts: &Opts) -> Result<ModelRouting, String> {
    let mut out = ModelRouting {
        sizes: opts
            .body_kib
            .iter()
            .map(|&kib| SizeRuns {
                kib,
                warmup: per_size(opts.instr_warmup, kib),
                requests: per_size(opts.instr_requests, kib),
                without: Vec::new(),
                with: Vec::new(),
            })
            .collect(),
        upstream: Vec::new(),
    };
    for models in [Models::None, Models::Declared] {
        // Fresh regions, so their counters hold this configuration's requests only.
        let regions = upstream::body_reading().await?;
        let addrs: Vec<SocketAddr> = regions.iter().map(|r| r.addr()).collect();
        let tag = match models {
            Models::None => "plain",
            Models::Declared => "models",
        };
        let dir = setup.dir.join(format!("meridian-{tag}-callgrind"));
        let wrapper = wrapper(&dir, opts)?;
        let r =
            systems::start_meridian(setup, &addrs, &format!("callgrind-{tag}"), &wrapper, models)
                .await?;
        let mut cg = Callgrind::new(r, dir, String::new())?;
        let mut sent = 0;
        for size in &mut out.sizes {
            cg.label = format!("meridian {} at {} KiB", models.name(), size.kib);
            let raw = Arc::new(request::raw_with(cg.r.addr, &request::chat_body(size.kib)));
            let runs = cg
                .count(raw, size.warmup, size.requests, u64::from(size.kib), opts)
                .await
                .map_err(|e| format!("{}: {e}", cg.label))?;
            sent += size.warmup + size.requests * u64::from(opts.instr_runs);
            match models {
                Models::None => size.without = runs,
                Models::Declared => size.with = runs,
            }
        }
        // Stops Meridian; the counters are read after its last request.
        drop(cg);
        let sizes: Vec<u32> = out.sizes.iter().map(|s| s.kib).collect();
        out.upstream
            .push(check_upstream(&regions, models, sent, &sizes)?);
    }
    Ok(out)
}

/// That the regions received every request, each naming what it should (the fleet-wide
/// name without models, the region's own with them), and the last one whole: as long as a
/// body of one of the sizes sent, with the name's length changed by the rewrite.
fn check_upstream(
    regions: &[MockRegion],
    models: Models,
    sent: u64,
    sizes: &[u32],
) -> Result<String, String> {
    let mut total = 0;
    let mut whole = 0;
    for (i, r) in regions.iter().enumerate() {
        let expected = match models {
            Models::None => request::CHAT_MODEL.to_string(),
            Models::Declared => systems::upstream_model(i),
        };
        for (name, n) in r.model_counts() {
            if name != expected {
                return Err(format!(
                    "meridian {}: region {i} received {n} requests naming {name:?}, not {expected:?}",
                    models.name()
                ));
            }
            total += n;
        }
        if let Some(body) = r.last_body() {
            let want =
                |kib: &u32| *kib as usize * 1024 - request::CHAT_MODEL.len() + expected.len();
            if !sizes.iter().any(|k| body.len() == want(k)) {
                let wants: Vec<String> = sizes.iter().map(|k| want(k).to_string()).collect();
                return Err(format!(
                    "meridian {}: region {i}'s last body had {} bytes, not one of {}",
                    models.name(),
                    body.len(),
                    wants.join(", ")
                ));
            }
            whole += 1;
        }
    }
    if total != sent {
        return Err(format!(
            "meridian {}: the regions received {total} requests, {sent} were sent",
            models.name()
        ));
    }
    let named = match models {
        Models::None => format!("`{}`", request::CHAT_MODEL),
        Models::Declared => "the region's own name (`llama70b-r0` ... `llama70b-r4`)".into(),
    };
    Ok(format!(
        "{}: the regions received all {total} requests sent, each naming {named}; the last \
         body each of the {whole} regions that got traffic received was whole (one of the \
         sizes sent, give or take the rewritten name's length)",
        models.name()
    ))
}

/// `callgrind_control ARG PID`, from the folder valgrind is in when that is a path.
fn control(valgrind: &Path, arg: &str, pid: u32) -> Result<(), String> {
    let program = match valgrind.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.join("callgrind_control"),
        _ => "callgrind_control".into(),
    };
    let out = Command::new("timeout")
        .arg("60")
        .arg(&program)
        .arg(arg)
        .arg(pid.to_string())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if !out.status.success() {
        return Err(format!(
            "callgrind_control {arg} {pid} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// The instruction total of one callgrind dump (its `totals:` line).
fn read_total(path: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_total(&text).ok_or_else(|| format!("{}: no totals line", path.display()))
}

fn parse_total(text: &str) -> Option<u64> {
    let line = text
        .lines()
        .find(|l| l.starts_with("totals:"))
        .or_else(|| text.lines().find(|l| l.starts_with("summary:")))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bigger_bodies_get_fewer_requests_but_not_too_few() {
        assert_eq!(per_size(20_000, 1), 20_000);
        assert_eq!(per_size(20_000, 10), 2_000);
        assert_eq!(per_size(20_000, 100), 500);
        assert_eq!(per_size(200, 100), 5);
        assert_eq!(per_size(50, 100), 1);
    }

    #[test]
    fn reads_callgrind_totals() {
        let text = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: 0\n\nfn=(1) main\n5 5\n\ntotals: 1234567\n";
        assert_eq!(parse_total(text), Some(1_234_567));
        assert_eq!(parse_total("events: Ir\nsummary: 42\n"), Some(42));
        assert_eq!(parse_total("events: Ir\n"), None);
    }
}
