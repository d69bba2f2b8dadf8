//! A configuration error that says where: file, line (where known), region and field.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Region(String),
    Key(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    /// The region, or the client key of a keys file, the error is about.
    pub subject: Option<Subject>,
    pub field: Option<String>,
    pub message: String,
}

impl ConfigError {
    pub fn new(file: &str, message: impl Into<String>) -> Self {
        Self {
            file: file.to_string(),
            line: None,
            subject: None,
            field: None,
            message: message.into(),
        }
    }

    pub fn line(mut self, line: Option<usize>) -> Self {
        self.line = line;
        self
    }

    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.subject = Some(Subject::Region(region.into()));
        self
    }

    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.subject = Some(Subject::Key(key.into()));
        self
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid config {}", self.file)?;
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        match &self.subject {
            Some(Subject::Region(region)) => write!(f, ": region '{region}'")?,
            Some(Subject::Key(key)) => write!(f, ": key '{key}'")?,
            None => {}
        }
        if let Some(field) = &self.field {
            write!(f, ": field '{field}'")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Finds the line a piece of config sits on, for errors found after parsing (serde_yaml
/// keeps no spans). `after` narrows the search to lines following another match.
pub fn find_line(text: &str, after: Option<usize>, pred: impl Fn(&str) -> bool) -> Option<usize> {
    let start = after.unwrap_or(0);
    text.lines()
        .enumerate()
        .skip(start)
        .find(|(_, l)| pred(l.trim_start().trim_start_matches("- ")))
        .map(|(i, _)| i + 1)
}

/// The line of the n-th (0-based) `name: <region>` entry.
pub fn region_line(text: &str, region: &str, nth: usize) -> Option<usize> {
    let wanted = |l: &str| {
        l.strip_prefix("name:")
            .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'') == region)
            .unwrap_or(false)
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| wanted(l.trim_start().trim_start_matches("- ")))
        .nth(nth)
        .map(|(i, _)| i + 1)
}

/// The line of `field:` inside the list item that holds `name_line` (1-based).
pub fn field_line(text: &str, name_line: Option<usize>, field: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let name_idx = name_line?.checked_sub(1)?;
    // Walk back to the `- ` that opens this item: the name need not be its first key.
    let item_idx = (0..=name_idx).rev().find(|&i| {
        lines[i].trim_start().starts_with("- ") && indent(lines[i]) <= indent(lines[name_idx])
    })?;
    let item_indent = indent(lines[item_idx]);
    let key = format!("{field}:");
    for (i, l) in lines.iter().enumerate().skip(item_idx) {
        let trimmed = l.trim_start();
        if i > item_idx
            && !trimmed.is_empty()
            && !trimmed.starts_with('#')
            && indent(l) <= item_indent
        {
            return None;
        }
        if trimmed.trim_start_matches("- ").starts_with(&key) {
            return Some(i + 1);
        }
    }
    None
}

/// The line of `key:` nested under the key on `parent_line` (1-based): the first such line
/// indented deeper than the parent, before the parent's block ends.
pub fn nested_line(text: &str, parent_line: Option<usize>, key: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let parent_idx = parent_line?.checked_sub(1)?;
    let parent_indent = indent(lines.get(parent_idx)?);
    let key = format!("{key}:");
    for (i, l) in lines.iter().enumerate().skip(parent_idx + 1) {
        let trimmed = l.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if indent(l) <= parent_indent {
            return None;
        }
        if trimmed.trim_start_matches("- ").starts_with(&key) {
            return Some(i + 1);
        }
    }
    None
}
