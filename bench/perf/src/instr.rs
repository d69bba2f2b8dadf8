//! Instructions per request, counted by callgrind over the whole proxy process: the same
//! figure for the same binary and requests however busy the machine is, where CPU time
//! from `/proc` moves with the other core's load.

use crate::cli::Opts;
use crate::load;
use crate::systems::{self, Kind, Setup};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
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
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let out = dir.join("callgrind.out");
    let mut out_arg = OsString::from("--callgrind-out-file=");
    out_arg.push(&out);
    let wrapper: Vec<OsString> = vec![
        opts.valgrind.clone().into(),
        "--tool=callgrind".into(),
        out_arg,
        // Dumps and zeroing come from callgrind_control, through valgrind's gdb server.
        "--vgdb=yes".into(),
    ];
    let r = systems::start_wrapped(kind, setup, upstreams, "callgrind", &wrapper).await?;
    let pid = r.proc.as_ref().ok_or("no process")?.pid();
    // Under callgrind a proxy serves a few thousand requests a second at best.
    let limit = |n: u64| Duration::from_secs(60 + n / 20);
    load::fixed_count(
        r.addr,
        opts.instr_warmup,
        CONNECTIONS,
        limit(opts.instr_warmup),
    )
    .await
    .map_err(|e| format!("callgrind warm-up: {e}"))?;
    let mut per_request = Vec::new();
    for run in 1..=opts.instr_runs {
        control(&opts.valgrind, "-z", pid)?;
        load::fixed_count(
            r.addr,
            opts.instr_requests,
            CONNECTIONS,
            limit(opts.instr_requests),
        )
        .await
        .map_err(|e| format!("callgrind run {run}: {e}"))?;
        // A proxy logs a request after its answer is out: let the last ones finish.
        tokio::time::sleep(Duration::from_millis(200)).await;
        control(&opts.valgrind, "-d", pid)?;
        // The first dump is `callgrind.out.1`: one zeroing and one dump per run.
        let dump = dir.join(format!("callgrind.out.{run}"));
        let ir = read_total(&dump)?;
        let n = ir as f64 / opts.instr_requests as f64;
        eprintln!(
            "perf-bench: {} under callgrind, run {run}: {ir} instructions, {n:.0} per request",
            kind.name()
        );
        per_request.push(n);
    }
    Ok(per_request)
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
    fn reads_callgrind_totals() {
        let text = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: 0\n\nfn=(1) main\n5 5\n\ntotals: 1234567\n";
        assert_eq!(parse_total(text), Some(1_234_567));
        assert_eq!(parse_total("events: Ir\nsummary: 42\n"), Some(42));
        assert_eq!(parse_total("events: Ir\n"), None);
    }
}
