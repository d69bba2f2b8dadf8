//! Where access-log lines go. Lines are gathered in memory and written in batches: when
//! 32 KiB have gathered, every 100 ms from a flusher thread, when the log is dropped (a
//! config reload), and when the server has stopped ([`flush_all`], before the process
//! exits). Only a crash or SIGKILL can lose lines: at most the last 100 ms. A write per
//! line would cost a system call per request.

use crate::config::AccessLogTarget;
use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

/// Gathered bytes that trigger a write from the request's own thread.
const FLUSH_BYTES: usize = 32 * 1024;
/// How often the flusher thread writes what has gathered.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

pub struct AccessLog(Option<Arc<Sink>>);

enum Output {
    Stdout,
    File(std::fs::File),
}

struct Sink {
    out: Output,
    buf: Mutex<Vec<u8>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the buffer leaves whole lines in it: keep using it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Sink {
    fn push(&self, line: &[u8]) {
        let mut buf = lock(&self.buf);
        buf.extend_from_slice(line);
        if buf.len() >= FLUSH_BYTES {
            self.write_out(&mut buf);
        }
    }

    fn flush(&self) {
        let mut buf = lock(&self.buf);
        if !buf.is_empty() {
            self.write_out(&mut buf);
        }
    }

    /// Writes the buffer (whole lines only) and empties it. A failed write is dropped
    /// rather than slowing the proxy or growing without bound.
    fn write_out(&self, buf: &mut Vec<u8>) {
        let _ = match &self.out {
            Output::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(buf).and_then(|()| out.flush())
            }
            // O_APPEND: each write lands whole even with other writers.
            Output::File(f) => (&*f).write_all(buf),
        };
        buf.clear();
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Every open log, for the flusher thread and [`flush_all`].
fn registry() -> &'static Mutex<Vec<Weak<Sink>>> {
    static SINKS: OnceLock<Mutex<Vec<Weak<Sink>>>> = OnceLock::new();
    SINKS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Starts the flusher thread once, on the first line: by then the process has done any
/// daemon fork, which a thread started earlier would not survive.
fn start_flusher() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("access log".into())
            .spawn(|| loop {
                std::thread::sleep(FLUSH_EVERY);
                flush_all();
            });
        if let Err(e) = spawned {
            log::error!("access log flusher thread: {e}; lines are written in 32 KiB batches");
        }
    });
}

/// Writes what every open log has gathered. Called when the server has stopped, so the
/// lines of the last requests reach the log before the process exits.
pub fn flush_all() {
    let live: Vec<Arc<Sink>> = {
        let mut sinks = lock(registry());
        sinks.retain(|s| s.strong_count() > 0);
        sinks.iter().filter_map(Weak::upgrade).collect()
    };
    for sink in live {
        sink.flush();
    }
}

impl AccessLog {
    pub fn open(target: &AccessLogTarget) -> std::io::Result<AccessLog> {
        let out = match target {
            AccessLogTarget::Off => return Ok(AccessLog(None)),
            AccessLogTarget::Stdout => Output::Stdout,
            AccessLogTarget::File(path) => Output::File(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        Ok(AccessLog::from_output(out))
    }

    /// The fallback when the configured file cannot be opened.
    pub fn stdout() -> AccessLog {
        AccessLog::from_output(Output::Stdout)
    }

    fn from_output(out: Output) -> AccessLog {
        let sink = Arc::new(Sink {
            out,
            buf: Mutex::new(Vec::with_capacity(FLUSH_BYTES + 1024)),
        });
        lock(registry()).push(Arc::downgrade(&sink));
        AccessLog(Some(sink))
    }

    pub fn enabled(&self) -> bool {
        self.0.is_some()
    }

    /// Adds one whole line (ending in a newline).
    pub(super) fn write(&self, line: &[u8]) {
        if let Some(sink) = &self.0 {
            start_flusher();
            sink.push(line);
        }
    }

    /// Writes what has gathered now.
    pub fn flush(&self) {
        if let Some(sink) = &self.0 {
            sink.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_log(dir: &std::path::Path) -> (AccessLog, std::path::PathBuf) {
        let path = dir.join("access.log");
        let log = AccessLog::open(&AccessLogTarget::File(path.clone())).unwrap();
        (log, path)
    }

    fn until(done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !done() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn read(path: &std::path::Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn lines_are_written_by_the_flusher_on_drop_and_in_whole_batches() {
        let dir = tempfile::tempdir().unwrap();
        let (log, path) = file_log(dir.path());
        log.write(b"{\"n\":1}\n");
        // The flusher writes it within a few of its periods.
        until(|| !read(&path).is_empty());
        assert_eq!(read(&path), "{\"n\":1}\n");

        // Past the batch size, the writer's own thread writes whole lines at once.
        let line = format!("{{\"pad\":\"{}\"}}\n", "x".repeat(1000));
        let n = FLUSH_BYTES / line.len() + 1;
        for _ in 0..n {
            log.write(line.as_bytes());
        }
        // However the flusher's ticks fell, only whole lines reached the file, and more
        // than one line: a batch is written when it is full, not only on a tick.
        // Read under the buffer's lock, so the flusher is not half-way through a write.
        let text = {
            let sink = log.0.as_ref().expect("a file log has a sink");
            let _writes = lock(&sink.buf);
            read(&path)
        };
        assert!(text.ends_with('\n'));
        assert!(text.lines().count() > 1, "{}", text.len());

        // Dropping the log (a reload) writes the rest: at once, or from the flusher if it
        // held the log at that moment.
        log.write(b"{\"n\":2}\n");
        drop(log);
        until(|| read(&path).ends_with("{\"n\":2}\n"));
        let text = read(&path);
        assert!(text.ends_with("{\"n\":2}\n"));
        assert_eq!(text.lines().count(), n + 2);
    }

    #[test]
    fn off_writes_nothing() {
        let log = AccessLog::open(&AccessLogTarget::Off).unwrap();
        assert!(!log.enabled());
        log.write(b"x\n");
        log.flush();
    }
}
