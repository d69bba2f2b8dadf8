//! Processes the harness starts, and what `/proc` says they cost: CPU time and resident
//! memory summed over a process and all its descendants (nginx workers, LiteLLM workers).

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A started program; it and its process group are killed when this is dropped.
pub struct Proc {
    child: Child,
}

impl Proc {
    /// Starts `cmd` in its own process group with output appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Proc, String> {
        use std::os::unix::process::CommandExt;
        let out = fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name} ({:?}): {e}", cmd.get_program()))?;
        Ok(Proc { child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the program is still running (an early exit means a bad setup).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// CPU and memory of the whole process tree right now.
    pub fn usage(&self) -> Usage {
        tree_usage(self.pid())
    }
}

impl Drop for Proc {
    /// Stops the program's whole tree: its process group, then any descendant that left
    /// the group (a daemon's `setsid`, say), so nothing outlives the harness.
    fn drop(&mut self) {
        let root = self.child.id();
        let tree = descendants(root);
        let pgid = -(root as i32);
        // SAFETY: kill(2) with a negative pid signals our own child's process group.
        unsafe {
            libc::kill(pgid, libc::SIGINT);
        }
        let mut stopped = false;
        for _ in 0..50 {
            if !self.running() {
                stopped = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !stopped {
            unsafe {
                libc::kill(pgid, libc::SIGKILL);
            }
            let _ = self.child.wait();
        }
        for (pid, start) in tree {
            // SAFETY: as above, for a process this tree started (same pid and start
            // time, so not a reused pid).
            if stat(pid).is_some_and(|s| s.start == start) {
                unsafe {
                    libc::kill(pid as i32, libc::SIGKILL);
                }
            }
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// User + system CPU time in seconds.
    pub cpu_s: f64,
    /// Resident set size in KiB.
    pub rss_kib: u64,
    pub processes: usize,
}

struct Stat {
    ppid: u32,
    ticks: u64,
    /// Clock ticks after boot when the process started: with the pid, names one process.
    start: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; fields resume after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        ppid: f.get(1)?.parse().ok()?,
        ticks: f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?,
        start: f.get(19)?.parse().ok()?,
    })
}

fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Every process under `root` (not `root` itself) found in `/proc` now, with its start
/// time.
fn descendants(root: u32) -> Vec<(u32, u64)> {
    let (parent, _) = scan();
    parent
        .keys()
        .filter(|&&pid| pid != root && in_tree(&parent, root, pid))
        .filter_map(|&pid| Some((pid, stat(pid)?.start)))
        .collect()
}

fn in_tree(parent: &HashMap<u32, u32>, root: u32, mut pid: u32) -> bool {
    for _ in 0..64 {
        if pid == root {
            return true;
        }
        match parent.get(&pid) {
            Some(&p) if p > 1 => pid = p,
            _ => return false,
        }
    }
    false
}

/// Parent and CPU ticks of every process in `/proc`.
fn scan() -> (HashMap<u32, u32>, HashMap<u32, u64>) {
    let mut parent: HashMap<u32, u32> = HashMap::new();
    let mut ticks: HashMap<u32, u64> = HashMap::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(s) = stat(pid) {
                parent.insert(pid, s.ppid);
                ticks.insert(pid, s.ticks);
            }
        }
    }
    (parent, ticks)
}

/// Sums over `root` and every descendant found in `/proc` now.
pub fn tree_usage(root: u32) -> Usage {
    let (parent, ticks) = scan();
    let mut usage = Usage::default();
    let tps = ticks_per_second();
    for (&pid, &t) in &ticks {
        if in_tree(&parent, root, pid) {
            usage.cpu_s += t as f64 / tps;
            usage.rss_kib += rss_kib(pid);
            usage.processes += 1;
        }
    }
    usage
}
