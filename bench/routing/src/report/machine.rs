//! Where and when the benchmark ran, for the report header.

use std::time::{SystemTime, UNIX_EPOCH};

pub struct Meta {
    pub command_line: String,
    /// UTC, from the system clock.
    pub date: String,
    pub nproc: usize,
    pub cpu_model: String,
    pub source: Option<String>,
}

impl Meta {
    /// `meridian` is the binary the run uses, whose source the header names.
    pub fn collect(meridian: &std::path::Path) -> Meta {
        Meta {
            command_line: command_line(std::env::args()),
            date: utc_now(),
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: cpu_model().unwrap_or_else(|| "unknown".into()),
            source: super::source::describe(meridian),
        }
    }
}

/// The arguments as typed, quoted where a shell would need it, so the line can be pasted.
fn command_line(args: impl Iterator<Item = String>) -> String {
    args.map(|a| {
        let plain = !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=,:@+".contains(c));
        if plain {
            a
        } else {
            format!("'{}'", a.replace('\'', r"'\''"))
        }
    })
    .collect::<Vec<_>>()
    .join(" ")
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc(secs)
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC`; the civil-from-days conversion
/// of Howard Hinnant's date algorithms, to avoid a date crate for one line.
fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_utc(1_709_210_096), "2024-02-29 12:34:56 UTC");
    }

    #[test]
    fn quotes_only_what_needs_it() {
        let args = ["routing-bench", "--seconds", "30", "--out", "a b.md"].map(String::from);
        assert_eq!(
            command_line(args.into_iter()),
            "routing-bench --seconds 30 --out 'a b.md'"
        );
    }
}
