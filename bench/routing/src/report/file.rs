//! How a report goes into the results file. The default scenario's report is the file; the
//! multi-model scenario's is a section of it between two markers, its headings one level
//! down. Each run replaces only its own part, so either can be rerun without losing the
//! other's results.

use crate::scenario::Kind;

/// The markers around a scenario's section; `None` for the default scenario, whose
/// report is the rest of the file.
fn markers(kind: Kind) -> Option<(String, String)> {
    match kind {
        Kind::Default => None,
        Kind::MultiModel | Kind::MultiTurn => {
            let name = kind.name();
            Some((
                format!("<!-- routing-bench --scenario {name}: begin -->"),
                format!("<!-- routing-bench --scenario {name}: end -->"),
            ))
        }
    }
}

/// The section between `begin` and `end` in `text`, markers included, and the text
/// without it.
fn split<'a>(text: &'a str, begin: &str, end: &str) -> (Option<&'a str>, String) {
    let Some(start) = text.find(begin) else {
        return (None, text.to_string());
    };
    let stop = text[start..]
        .find(end)
        .map_or(text.len(), |i| start + i + end.len());
    let rest = format!(
        "{}{}",
        text[..start].trim_end(),
        text[stop..].trim_start_matches('\n')
    );
    (Some(&text[start..stop]), rest)
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

/// The scenarios with a section of their own, in the order they follow the default report.
const SECTIONS: [Kind; 2] = [Kind::MultiModel, Kind::MultiTurn];

/// The file's new text: `report` of a `kind` run merged into what the file held.
pub fn merge(existing: Option<&str>, report: &str, kind: Kind) -> String {
    // The default report, then each section in its fixed order.
    let mut rest = existing.unwrap_or_default().to_string();
    let mut sections: Vec<Option<String>> = Vec::new();
    for section in SECTIONS {
        let Some((begin, end)) = markers(section) else {
            continue;
        };
        let (found, without) = split(&rest, &begin, &end);
        sections.push(found.map(str::to_string));
        rest = without;
        if section == kind {
            let last = sections.len() - 1;
            sections[last] = Some(format!("{begin}\n\n{}\n\n{end}", demote(report).trim_end()));
        }
    }
    if kind == Kind::Default {
        rest = report.to_string();
    }
    let mut parts: Vec<String> = Vec::new();
    if !rest.trim().is_empty() {
        parts.push(rest.trim_end().to_string());
    }
    parts.extend(sections.into_iter().flatten());
    format!("{}\n", parts.join("\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEGIN: &str = "<!-- routing-bench --scenario multi-model: begin -->";
    const END: &str = "<!-- routing-bench --scenario multi-model: end -->";

    #[test]
    fn the_multi_turn_section_follows_the_multi_model_one_and_is_replaced_alone() {
        let base = merge(None, "# Routing\n\nA\n", Kind::Default);
        let turns = merge(Some(&base), "# Turns\n\nT1\n", Kind::MultiTurn);
        let both = merge(Some(&turns), "# Multi\n\nM1\n", Kind::MultiModel);
        let m = both.find("scenario multi-model: begin").expect("mm");
        let t = both.find("scenario multi-turn: begin").expect("mt");
        assert!(both.starts_with("# Routing\n\nA\n\n") && m < t);
        let again = merge(Some(&both), "# Turns\n\nT2\n", Kind::MultiTurn);
        assert!(again.contains("## Turns\n\nT2") && !again.contains("T1"));
        assert!(again.contains("M1") && again.contains("\nA\n"));
        let rerun = merge(Some(&again), "# Routing\n\nB\n", Kind::Default);
        assert!(rerun.contains("T2") && rerun.contains("M1") && !rerun.contains("\nA\n"));
    }

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
