//! The token usage a region reports in its response, read as the body passes through.
//!
//! - A JSON answer (OpenAI chat, completions, embeddings and responses; Anthropic
//!   messages) carries a top-level `usage`. Its chunks are kept (shared, not copied) up to
//!   [`MAX_JSON`] and parsed once at the end, the top level only.
//! - An event stream carries usage in a few events: OpenAI's last chunk (with
//!   `stream_options.include_usage`), Anthropic's `message_start` and `message_delta`.
//!   Each chunk is searched for `"usage":{` (a byte search, no JSON), and only the events
//!   that contain it are parsed. Content chunks are never parsed; the only bytes kept are
//!   those of an event still incomplete at the end of a chunk, at most [`MAX_EVENT`].

use bytes::Bytes;
use memchr::memmem::{Finder, FinderRev};
use serde::Deserialize;
use std::sync::LazyLock;

// The searchers are built once: `memmem::find` builds one on every call, which cost more
// than the search itself on a stream's short chunks.
static USAGE_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"usage\""));
static USAGE_KEY_REV: LazyLock<FinderRev<'static>> = LazyLock::new(|| FinderRev::new(b"\"usage\""));
static EVENT_END: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\n\n"));
static EVENT_END_REV: LazyLock<FinderRev<'static>> = LazyLock::new(|| FinderRev::new(b"\n\n"));

/// The largest JSON answer whose usage is read; a bigger one counts as unknown.
pub const MAX_JSON: usize = 1 << 20;
/// The longest event kept while it is incomplete.
pub const MAX_EVENT: usize = 64 * 1024;

/// Tokens as a region reported them. `input` includes `cached` (OpenAI's convention;
/// Anthropic's cache reads are added back).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cached: u64,
}

/// Which provider's fields the answer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    /// `/v1/messages`: `input_tokens` excludes `cache_read_input_tokens`.
    Anthropic,
}

#[derive(Debug)]
enum Mode {
    Json { chunks: Vec<Bytes>, len: usize },
    Sse { partial: Vec<u8> },
}

/// Follows one response body to its usage.
#[derive(Debug)]
pub struct UsageReader {
    dialect: Dialect,
    mode: Mode,
    found: Option<Usage>,
    /// The answer was too big, or an event too long: usage is unknown.
    gave_up: bool,
    /// Takes the usage chunk Meridian asked for out of the stream (see [`Self::strip`]).
    strip: bool,
}

#[derive(Deserialize, Default)]
struct Details {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

/// Every field any of the shapes uses; the dialect says how to read them.
#[derive(Deserialize, Default)]
struct Fields {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<Details>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    input_tokens_details: Option<Details>,
    cache_read_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct WithUsage {
    #[serde(default)]
    usage: Option<Fields>,
    /// Anthropic's `message_start` nests it in `message`.
    #[serde(default)]
    message: Option<Box<WithUsage>>,
}

impl UsageReader {
    /// A reader for a response of `content_type` to a request on `path`; `None` for a
    /// body that cannot carry usage.
    pub fn new(path: &str, content_type: &str) -> Option<UsageReader> {
        let mime = content_type.split(';').next().unwrap_or("").trim();
        let mode = if mime.eq_ignore_ascii_case("text/event-stream") {
            Mode::Sse {
                partial: Vec::new(),
            }
        } else if mime.eq_ignore_ascii_case("application/json") {
            Mode::Json {
                chunks: Vec::new(),
                len: 0,
            }
        } else {
            return None;
        };
        let dialect = if path == "/v1/messages" {
            Dialect::Anthropic
        } else {
            Dialect::OpenAi
        };
        Some(UsageReader {
            dialect,
            mode,
            found: None,
            gave_up: false,
            strip: false,
        })
    }

    /// For a stream whose usage Meridian asked for on the client's behalf: the usage
    /// chunk (OpenAI's last, with `"choices":[]`) is removed from what the client gets.
    pub fn stripping(mut self) -> Self {
        self.strip = matches!(self.mode, Mode::Sse { .. });
        self
    }

    pub fn strips(&self) -> bool {
        self.strip
    }

    /// What of `chunk` goes on to the client, reading usage on the way. Only whole events
    /// go on (an incomplete one waits for its end, at most [`MAX_EVENT`]), so the usage
    /// event can be cut out exactly; every other byte is passed as the region sent it.
    pub fn strip(&mut self, chunk: Option<Bytes>, end_of_stream: bool) -> Option<Bytes> {
        let Mode::Sse { partial } = &mut self.mode else {
            return chunk;
        };
        let mut data = std::mem::take(partial);
        if let Some(c) = &chunk {
            if data.is_empty() && !end_of_stream {
                // The common case: a chunk of whole events, nothing held.
                if c.ends_with(b"\n\n") && !has_usage_object(c) {
                    return chunk;
                }
            }
            data.extend_from_slice(c);
        }
        let cut = if end_of_stream {
            data.len()
        } else {
            match EVENT_END_REV.rfind(&data) {
                Some(i) => i + 2,
                None => {
                    if data.len() > MAX_EVENT {
                        // Not an event stream after all: let it through untouched.
                        self.strip = false;
                        self.gave_up = true;
                        return Some(data.into());
                    }
                    *partial = data;
                    return Some(Bytes::new());
                }
            }
        };
        let rest = data.split_off(cut);
        *partial = rest;
        if !has_usage_object(&data) {
            return Some(data.into());
        }
        let mut out = Vec::with_capacity(data.len());
        for event in split_events(&data) {
            if has_usage_object(event) {
                if let Some(u) = events_with_usage(event, self.dialect) {
                    self.found = Some(merge(self.found, u, self.dialect));
                }
                if is_usage_only(event) {
                    continue;
                }
            }
            out.extend_from_slice(event);
        }
        Some(out.into())
    }

    pub fn feed(&mut self, chunk: &Bytes) {
        if self.gave_up {
            return;
        }
        match &mut self.mode {
            Mode::Json { chunks, len } => {
                *len += chunk.len();
                if *len > MAX_JSON {
                    chunks.clear();
                    self.gave_up = true;
                } else {
                    chunks.push(chunk.clone());
                }
            }
            Mode::Sse { partial } => {
                let Some(last) = EVENT_END_REV.rfind(chunk) else {
                    // No event ends in this chunk: keep it only while an event is open
                    // that could carry usage.
                    partial.extend_from_slice(chunk);
                    if partial.len() > MAX_EVENT {
                        partial.clear();
                        self.gave_up = true;
                    }
                    return;
                };
                let (done, rest) = chunk.split_at(last + 2);
                let found = if partial.is_empty() {
                    events_with_usage(done, self.dialect)
                } else {
                    partial.extend_from_slice(done);
                    let f = events_with_usage(partial, self.dialect);
                    partial.clear();
                    f
                };
                if let Some(u) = found {
                    self.found = Some(merge(self.found, u, self.dialect));
                }
                partial.extend_from_slice(rest);
                if partial.len() > MAX_EVENT {
                    partial.clear();
                    self.gave_up = true;
                }
            }
        }
    }

    /// The usage the answer reported, or `None` (unknown) when it reported none or could
    /// not be read.
    pub fn finish(mut self) -> Option<Usage> {
        if self.gave_up {
            return None;
        }
        match &mut self.mode {
            Mode::Json { chunks, .. } => {
                let joined;
                let whole: &[u8] = match chunks.as_slice() {
                    [one] => one,
                    _ => {
                        joined = chunks.concat();
                        &joined
                    }
                };
                last_usage_object(whole).map(|f| read(&f, self.dialect))
            }
            Mode::Sse { partial } => {
                if !partial.is_empty() {
                    // A last event without its blank line.
                    if let Some(u) = events_with_usage(partial, self.dialect) {
                        self.found = Some(merge(self.found, u, self.dialect));
                    }
                }
                self.found
            }
        }
    }
}

/// Anthropic reports input in `message_start` and output in `message_delta`: add them up.
/// OpenAI's usage chunk is complete: the last one stands.
fn merge(before: Option<Usage>, new: Usage, dialect: Dialect) -> Usage {
    match (dialect, before) {
        (Dialect::Anthropic, Some(b)) => Usage {
            input: b.input.max(new.input),
            output: b.output.max(new.output),
            cached: b.cached.max(new.cached),
        },
        _ => new,
    }
}

fn read(f: &Fields, dialect: Dialect) -> Usage {
    match dialect {
        Dialect::OpenAi => {
            let cached = f
                .prompt_tokens_details
                .as_ref()
                .or(f.input_tokens_details.as_ref())
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0);
            Usage {
                input: f.prompt_tokens.or(f.input_tokens).unwrap_or(0),
                output: f.completion_tokens.or(f.output_tokens).unwrap_or(0),
                cached,
            }
        }
        Dialect::Anthropic => {
            let cached = f.cache_read_input_tokens.unwrap_or(0);
            Usage {
                input: f.input_tokens.unwrap_or(0).saturating_add(cached),
                output: f.output_tokens.unwrap_or(0),
                cached,
            }
        }
    }
}

/// The events of `text`, each with its blank line.
fn split_events(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = EVENT_END.find(rest).map_or(rest.len(), |i| i + 2);
        let (event, tail) = rest.split_at(end);
        rest = tail;
        Some(event)
    })
}

/// OpenAI's usage chunk: a `data:` event whose `choices` is empty.
fn is_usage_only(event: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Chunk {
        #[serde(default)]
        choices: Option<Vec<serde::de::IgnoredAny>>,
    }
    event
        .split(|b| *b == b'\n')
        .find_map(|l| l.strip_prefix(b"data:"))
        .and_then(|d| serde_json::from_slice::<Chunk>(d).ok())
        .is_some_and(|c| c.choices.is_some_and(|v| v.is_empty()))
}

/// The `usage` object of a JSON answer: the last `"usage":{` outside any string (a quote
/// inside a string is escaped), parsed on its own. The answers put it at the top level,
/// and after their content; parsing the whole answer to find it would cost about 25
/// instructions per byte.
fn last_usage_object(text: &[u8]) -> Option<Fields> {
    let mut end = text.len();
    while let Some(i) = USAGE_KEY_REV.rfind(&text[..end]) {
        end = i;
        let escapes = text[..i].iter().rev().take_while(|b| **b == b'\\').count();
        if escapes % 2 == 1 {
            continue;
        }
        let rest = &text[i + 7..];
        let colon = rest.iter().position(|b| !b.is_ascii_whitespace())?;
        if rest[colon] != b':' {
            continue;
        }
        let value = &rest[colon + 1..];
        let start = value.iter().position(|b| !b.is_ascii_whitespace())?;
        if value[start] != b'{' {
            continue;
        }
        let mut de = serde_json::Deserializer::from_slice(&value[start..]);
        return Fields::deserialize(&mut de).ok();
    }
    None
}

/// Whether `text` holds `"usage":` followed by an object (not `null`).
fn has_usage_object(text: &[u8]) -> bool {
    let mut from = 0;
    while let Some(i) = USAGE_KEY.find(&text[from..]) {
        let after = &text[from + i + 7..];
        let mut rest = after.iter().skip_while(|b| b.is_ascii_whitespace());
        if rest.next() == Some(&b':') && rest.find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
            return true;
        }
        from += i + 7;
    }
    false
}

/// The usage in the complete events of `text`, parsing only the events that carry one.
fn events_with_usage(text: &[u8], dialect: Dialect) -> Option<Usage> {
    if !has_usage_object(text) {
        return None;
    }
    let mut found = None;
    for event in text
        .split(|b| *b == b'\n')
        .filter(|l| l.starts_with(b"data:"))
    {
        let data = &event[5..];
        if !has_usage_object(data) {
            continue;
        }
        let Ok(v) = serde_json::from_slice::<WithUsage>(data) else {
            continue;
        };
        let fields = v.usage.or_else(|| v.message.and_then(|m| m.usage));
        if let Some(f) = fields {
            let u = read(&f, dialect);
            found = Some(merge(found, u, dialect));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(path: &str, ct: &str, chunks: &[&str]) -> Option<Usage> {
        let mut r = UsageReader::new(path, ct)?;
        for c in chunks {
            r.feed(&Bytes::copy_from_slice(c.as_bytes()));
        }
        r.finish()
    }

    #[test]
    fn json_answers_in_every_shape() {
        let chat = r#"{"id":"x","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4}}}"#;
        let (a, b) = chat.split_at(20);
        assert_eq!(
            read_all("/v1/chat/completions", "application/json", &[a, b]),
            Some(Usage {
                input: 10,
                output: 5,
                cached: 4
            })
        );
        let emb = r#"{"data":[],"usage":{"prompt_tokens":7,"total_tokens":7}}"#;
        assert_eq!(
            read_all("/v1/embeddings", "application/json; charset=utf-8", &[emb]),
            Some(Usage {
                input: 7,
                output: 0,
                cached: 0
            })
        );
        let anthropic = r#"{"content":[],"usage":{"input_tokens":6,"output_tokens":3,"cache_read_input_tokens":4}}"#;
        assert_eq!(
            read_all("/v1/messages", "application/json", &[anthropic]),
            Some(Usage {
                input: 10,
                output: 3,
                cached: 4
            })
        );
        let responses = r#"{"output":[],"usage":{"input_tokens":9,"output_tokens":2,"input_tokens_details":{"cached_tokens":1}}}"#;
        assert_eq!(
            read_all("/v1/responses", "application/json", &[responses]),
            Some(Usage {
                input: 9,
                output: 2,
                cached: 1
            })
        );
        // Text that only looks like usage, inside a string, does not count.
        let fake = r#"{"choices":[{"message":{"content":"\"usage\":{\"prompt_tokens\":99}"}}],"usage":{"prompt_tokens":2,"completion_tokens":1}}"#;
        assert_eq!(
            read_all("/v1/chat/completions", "application/json", &[fake]),
            Some(Usage {
                input: 2,
                output: 1,
                cached: 0
            })
        );
        let only_fake =
            r#"{"choices":[{"message":{"content":"\"usage\":{\"prompt_tokens\":99}"}}]}"#;
        assert_eq!(
            read_all("/v1/chat/completions", "application/json", &[only_fake]),
            None
        );
        // No usage, null usage, not JSON: unknown.
        for body in [r#"{"choices":[]}"#, r#"{"usage":null}"#, "oops"] {
            assert_eq!(
                read_all("/v1/chat/completions", "application/json", &[body]),
                None
            );
        }
        assert!(UsageReader::new("/v1/x", "text/plain").is_none());
    }

    #[test]
    fn streams_read_only_their_usage_events_across_chunk_boundaries() {
        let events = [
            "data: {\"choices\":[{\"delta\":{\"content\":\"a usage\"}}],\"usage\":null}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3}}\n\n",
            "data: [DONE]\n\n",
        ];
        let whole = events.concat();
        // Every split of the stream gives the same answer.
        for at in 0..whole.len() {
            let (a, b) = whole.split_at(at);
            assert_eq!(
                read_all("/v1/chat/completions", "text/event-stream", &[a, b]),
                Some(Usage {
                    input: 12,
                    output: 3,
                    cached: 0
                }),
                "split at {at}"
            );
        }
        // A stream that did not ask for usage has none: unknown.
        assert_eq!(
            read_all(
                "/v1/chat/completions",
                "text/event-stream",
                &[events[0], events[2]]
            ),
            None
        );
        let anthropic = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"cache_read_input_tokens\":2}}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"hi\"}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":9}}\n\n";
        assert_eq!(
            read_all("/v1/messages", "text/event-stream", &[anthropic]),
            Some(Usage {
                input: 7,
                output: 9,
                cached: 2
            })
        );
    }

    #[test]
    fn the_usage_chunk_meridian_asked_for_is_cut_out_and_nothing_else() {
        let content = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n";
        let usage =
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n";
        let done = "data: [DONE]\n\n";
        let whole = format!("{content}{content}{usage}{done}");
        let expected = format!("{content}{content}{done}");
        for at in 0..whole.len() {
            let mut r = UsageReader::new("/v1/chat/completions", "text/event-stream")
                .unwrap()
                .stripping();
            let (a, b) = whole.split_at(at);
            let mut out = Vec::new();
            for (chunk, end) in [(a, false), (b, false)] {
                if let Some(o) = r.strip(Some(Bytes::copy_from_slice(chunk.as_bytes())), end) {
                    out.extend_from_slice(&o);
                }
            }
            if let Some(o) = r.strip(None, true) {
                out.extend_from_slice(&o);
            }
            assert_eq!(String::from_utf8(out).unwrap(), expected, "split at {at}");
            assert_eq!(
                r.finish(),
                Some(Usage {
                    input: 3,
                    output: 1,
                    cached: 0
                })
            );
        }
    }

    #[test]
    fn memory_stays_bounded() {
        let mut r = UsageReader::new("/v1/chat/completions", "text/event-stream").unwrap();
        let no_end = Bytes::from(vec![b'x'; 1024]);
        for _ in 0..100 {
            r.feed(&no_end);
        }
        assert!(r.gave_up);
        let mut j = UsageReader::new("/v1/chat/completions", "application/json").unwrap();
        let big = Bytes::from(vec![b' '; 64 * 1024]);
        for _ in 0..20 {
            j.feed(&big);
        }
        assert_eq!(j.finish(), None);
    }
}
