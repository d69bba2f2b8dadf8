//! Number formatting shared by the report's tables.

/// Milliseconds, whole; a dash when there were no samples.
pub fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.0}"))
}

pub fn cost(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.4}"))
}

/// A 0..=1 share as a percentage with one decimal.
pub fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{:.1}", v * 100.0))
}

pub fn share(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// A markdown table row.
pub fn row(cells: &[String]) -> String {
    format!("| {} |", cells.join(" | "))
}

/// A markdown header row and its separator; `right` columns are right-aligned numbers.
pub fn header(names: &[&str], left: usize) -> String {
    let sep: Vec<&str> = (0..names.len())
        .map(|i| if i < left { "---" } else { "---:" })
        .collect();
    format!("| {} |\n| {} |", names.join(" | "), sep.join(" | "))
}
