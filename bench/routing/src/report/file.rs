//! How a report goes into the results file. The default scenario's report is the file; the
//! multi-model scenario's is a section of it between two markers, its headings one level
//! down. Each run replaces only its own part, so either can be rerun without losing the
//! other's results.

use crate::scenario::Kind;

const BEGIN: &str = "<!-- routing-bench --scenario multi-model: begin -->";
const END: &str = "<!-- routing-bench --scenario multi-model: end -->";

/// The multi-model section of `text`, markers included, and the text without it.
fn split(text: &str) -> (Option<&str>, String) {
    let Some(start) = text.find(BEGIN) else {
        return (None, text.to_string());
    };
    let end = text[start..]
        .find(END)
        .map_or(text.len(), |i| start + i + END.len());
    let rest = format!(
        "{}{}",
        text[..start].trim_end(),
        text[end..].trim_start_matches('\n')
    );
    (Some(&text[start..end]), rest)
}

/// Every heading one level deeper, so a whole report nests under the file's title.
fn demote(report: &str) -> String {
    report
        .lines()
        .map(|l| {
            if l.starts_with('#') {
                format!("#{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The file's new text: `report` of a `kind` run merged into what the file held.
pub fn merge(existing: Option<&str>, report: &str, kind: Kind) -> String {
    let (section, rest) = existing.map_or((None, String::new()), split);
    match kind {
        Kind::Default => match section {
            Some(section) => format!("{}\n\n{section}\n", report.trim_end()),
            None => report.to_string(),
        },
        Kind::MultiModel => {
            let section = format!("{BEGIN}\n\n{}\n\n{END}", demote(report).trim_end());
            let rest = rest.trim_end();
            if rest.is_empty() {
                format!("{section}\n")
            } else {
                format!("{rest}\n\n{section}\n")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_run_replaces_only_its_own_part() {
        let first = merge(None, "# Routing\n\n## Overall\nA\n", Kind::Default);
        assert_eq!(first, "# Routing\n\n## Overall\nA\n");
        let both = merge(
            Some(&first),
            "# Multi\n\n## Overall\nM1\n",
            Kind::MultiModel,
        );
        assert!(both.starts_with("# Routing\n\n## Overall\nA\n\n"));
        assert!(both.contains("## Multi\n\n### Overall\nM1"));
        let again = merge(Some(&both), "# Multi\n\n## Overall\nM2\n", Kind::MultiModel);
        assert!(again.contains("M2") && !again.contains("M1"));
        assert_eq!(again.matches(BEGIN).count(), 1);
        let rerun = merge(Some(&again), "# Routing\n\n## Overall\nB\n", Kind::Default);
        assert!(rerun.starts_with("# Routing\n\n## Overall\nB\n\n<!--"));
        assert!(rerun.contains("M2") && !rerun.contains("\nA\n"));
        assert!(rerun.ends_with(&format!("{END}\n")));
    }
}
