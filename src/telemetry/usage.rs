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
use smallvec::SmallVec;
use std::sync::LazyLock;

// The searchers are built once: `memmem::find` builds one on every call, which cost more
// than the search itself on a stream's short chunks.
static USAGE_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"usage\""));
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
    /// Most answers arrive in one chunk: kept inline, nothing allocated.
    Json {
        chunks: SmallVec<[Bytes; 1]>,
        len: usize,
    },
    Sse {
        partial: Vec<u8>,
    },
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
        // `content_type` is a header value's text, so ASCII: no Unicode trimming needed.
        // What precedes the first `;` (a byte search: `split_once`'s char searcher cost
        // more than the rest of this function).
        let mime = match memchr::memchr(b';', content_type.as_bytes()) {
            Some(i) => content_type.get(..i).unwrap_or(content_type),
            None => content_type,
        }
        .trim_ascii();
        // The usual spelling is compared first: a plain comparison of bytes.
        let is = |name: &str| mime == name || mime.eq_ignore_ascii_case(name);
        let mode = if is("text/event-stream") {
            Mode::Sse {
                partial: Vec::new(),
            }
        } else if is("application/json") {
            Mode::Json {
                chunks: SmallVec::new(),
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
    while let Some(i) = rfind_usage_key(&text[..end]) {
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
        return parse_fields(&value[start..]);
    }
    None
}

/// The start of the last `"usage"` in `text`. Its `g` is searched for backwards (a
/// vectorised byte search, and a rare letter in what follows a usage object) and the key
/// checked around it: cheaper than a reverse substring search on an answer's tail.
fn rfind_usage_key(text: &[u8]) -> Option<usize> {
    let mut end = text.len();
    while let Some(g) = memchr::memrchr(b'g', &text[..end]) {
        end = g;
        if g >= 4 && text.get(g - 4..g + 3) == Some(b"\"usage\"") {
            return Some(g - 4);
        }
    }
    None
}

/// `Fields` from the object at the start of `text`, exactly as serde_json reads it: the
/// scanner below reads the usual shapes (integer fields, the details objects, other keys
/// with any JSON value, in any order) and leaves anything else to serde_json, so a usage
/// object serde_json refuses is refused the same way.
fn parse_fields(text: &[u8]) -> Option<Fields> {
    match scan::fields(text) {
        Some(f) => Some(f),
        None => {
            let mut de = serde_json::Deserializer::from_slice(text);
            Fields::deserialize(&mut de).ok()
        }
    }
}

/// A hand-written reader of the usage object. It accepts only what serde_json accepts,
/// with the same result; `None` means "not understood here" (serde_json decides then).
mod scan {
    use super::{Details, Fields};

    /// Nesting the skipper follows before it leaves the object to serde_json.
    const MAX_DEPTH: usize = 32;

    struct Cursor<'a> {
        text: &'a [u8],
        at: usize,
    }

    /// Non-zero when some byte of `w` is not printable ASCII or is the quote or the
    /// backslash (exactly then for the lowest such byte, which is all the key scan needs):
    /// `(w - 0x01..01 * n) & !w & 0x80..80` flags a byte below `n`, a byte equal to `c` is a
    /// zero byte of `w ^ c..c`, and the high bits flag the bytes above ASCII.
    fn special_bytes(w: u64) -> u64 {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH;
        let has = |w: u64, c: u8| below(w ^ (ONES * u64::from(c)), 1);
        (w & HIGH) | below(w, 0x20) | has(w, b'"') | has(w, b'\\')
    }

    impl<'a> Cursor<'a> {
        fn peek(&self) -> Option<u8> {
            self.text.get(self.at).copied()
        }

        /// JSON's whitespace (RFC 8259: space, tab, line feed, carriage return).
        fn ws(&mut self) {
            while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
                self.at += 1;
            }
        }

        fn eat(&mut self, b: u8) -> Option<()> {
            (self.peek()? == b).then(|| self.at += 1)
        }

        fn literal(&mut self, word: &[u8]) -> Option<()> {
            let end = self.at.checked_add(word.len())?;
            (self.text.get(self.at..end)? == word).then(|| self.at = end)
        }

        /// A key without escapes (a key with one is left to serde_json, which unescapes).
        /// Keys are short: a plain loop beats setting up a vectorised search.
        #[inline(always)]
        fn key(&mut self) -> Option<&'a [u8]> {
            self.eat(b'"')?;
            let start = self.at;
            // Eight bytes at a time while they are printable ASCII other than the quote and
            // the backslash (every key of the usual shapes). The first other byte ends the
            // key if it is the quote; anything else, and the last few bytes, go to the byte
            // loop below, which decides as it always did.
            while let Some(word) = self.text.get(self.at..self.at + 8) {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(word);
                let special = special_bytes(u64::from_le_bytes(bytes));
                if special == 0 {
                    self.at += 8;
                    continue;
                }
                let i = special.trailing_zeros() as usize / 8;
                if word[i] == b'"' {
                    let key = &self.text[start..self.at + i];
                    self.at += i + 1;
                    return Some(key);
                }
                break;
            }
            let mut ascii = true;
            loop {
                match *self.text.get(self.at)? {
                    b'"' => break,
                    // serde_json reads a key as a string: no control character.
                    b'\\' | 0..0x20 => return None,
                    b => ascii &= b < 0x80,
                }
                self.at += 1;
            }
            let key = &self.text[start..self.at];
            self.at += 1;
            // And valid UTF-8.
            if !ascii && std::str::from_utf8(key).is_err() {
                return None;
            }
            Some(key)
        }

        /// An unsigned integer as serde_json reads it into a `u64`, or `null`. Fractions,
        /// exponents, signs and overflow are left to serde_json.
        #[inline(always)]
        fn opt_u64(&mut self) -> Option<Option<u64>> {
            if self.peek()? == b'n' {
                self.literal(b"null")?;
                return Some(None);
            }
            let first = self.peek()?;
            if !first.is_ascii_digit() {
                return None;
            }
            self.at += 1;
            let mut n = u64::from(first - b'0');
            if first != b'0' {
                while let Some(d @ b'0'..=b'9') = self.peek() {
                    n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
                    self.at += 1;
                }
            }
            match self.peek()? {
                b'.' | b'e' | b'E' | b'0'..=b'9' => None,
                _ => Some(Some(n)),
            }
        }

        /// Any JSON value, checked as strictly as serde_json checks a value it ignores.
        fn skip(&mut self, depth: usize) -> Option<()> {
            match self.peek()? {
                b'"' => self.skip_str(),
                b'{' => {
                    if depth >= MAX_DEPTH {
                        return None;
                    }
                    self.at += 1;
                    self.ws();
                    if self.eat(b'}').is_some() {
                        return Some(());
                    }
                    loop {
                        self.ws();
                        self.skip_str()?;
                        self.ws();
                        self.eat(b':')?;
                        self.ws();
                        self.skip(depth + 1)?;
                        self.ws();
                        match self.peek()? {
                            b',' => self.at += 1,
                            b'}' => {
                                self.at += 1;
                                return Some(());
                            }
                            _ => return None,
                        }
                    }
                }
                b'[' => {
                    if depth >= MAX_DEPTH {
                        return None;
                    }
                    self.at += 1;
                    self.ws();
                    if self.eat(b']').is_some() {
                        return Some(());
                    }
                    loop {
                        self.ws();
                        self.skip(depth + 1)?;
                        self.ws();
                        match self.peek()? {
                            b',' => self.at += 1,
                            b']' => {
                                self.at += 1;
                                return Some(());
                            }
                            _ => return None,
                        }
                    }
                }
                b't' => self.literal(b"true"),
                b'f' => self.literal(b"false"),
                b'n' => self.literal(b"null"),
                b'-' | b'0'..=b'9' => self.skip_number(),
                _ => None,
            }
        }

        /// A string: no control character, only JSON's escapes.
        fn skip_str(&mut self) -> Option<()> {
            self.eat(b'"')?;
            loop {
                let rest = &self.text[self.at..];
                let i = memchr::memchr2(b'"', b'\\', rest)?;
                if rest[..i].iter().any(|b| *b < 0x20) {
                    return None;
                }
                self.at += i + 1;
                if rest[i] == b'"' {
                    return Some(());
                }
                match self.peek()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 1,
                    b'u' => {
                        let hex = self.text.get(self.at + 1..self.at + 5)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        self.at += 5;
                    }
                    _ => return None,
                }
            }
        }

        /// A number by JSON's grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
        fn skip_number(&mut self) -> Option<()> {
            let digits = |c: &mut Self| {
                let start = c.at;
                while let Some(b'0'..=b'9') = c.peek() {
                    c.at += 1;
                }
                (c.at > start).then_some(())
            };
            let _ = self.eat(b'-');
            if self.eat(b'0').is_none() {
                digits(self)?;
            }
            if self.eat(b'.').is_some() {
                digits(self)?;
            }
            if let Some(b'e' | b'E') = self.peek() {
                self.at += 1;
                if let Some(b'+' | b'-') = self.peek() {
                    self.at += 1;
                }
                digits(self)?;
            }
            // What may follow a number inside an object or array.
            match self.peek()? {
                b' ' | b'\t' | b'\n' | b'\r' | b',' | b'}' | b']' => Some(()),
                _ => None,
            }
        }

        /// The members of an object, each handed to `member` with the cursor on its value.
        fn object(&mut self, mut member: impl FnMut(&mut Self, &[u8]) -> Option<()>) -> Option<()> {
            self.eat(b'{')?;
            self.ws();
            if self.eat(b'}').is_some() {
                return Some(());
            }
            loop {
                self.ws();
                let key = self.key()?;
                self.ws();
                self.eat(b':')?;
                self.ws();
                member(self, key)?;
                self.ws();
                match self.peek()? {
                    b',' => self.at += 1,
                    b'}' => {
                        self.at += 1;
                        return Some(());
                    }
                    _ => return None,
                }
            }
        }

        fn details(&mut self) -> Option<Option<Details>> {
            if self.peek()? == b'n' {
                self.literal(b"null")?;
                return Some(None);
            }
            let mut cached = None;
            let mut seen = false;
            self.object(|c, key| {
                if key == b"cached_tokens" {
                    // serde refuses a field given twice.
                    if std::mem::replace(&mut seen, true) {
                        return None;
                    }
                    cached = c.opt_u64()?;
                    Some(())
                } else {
                    c.skip(2)
                }
            })?;
            Some(Some(Details {
                cached_tokens: cached,
            }))
        }
    }

    /// The usage object at the start of `text`; what follows it is not read.
    pub(super) fn fields(text: &[u8]) -> Option<Fields> {
        let mut c = Cursor { text, at: 0 };
        let mut f = Fields::default();
        let mut seen = 0u8;
        c.object(|c, key| {
            let bit = match key {
                b"prompt_tokens" => 0,
                b"completion_tokens" => 1,
                b"prompt_tokens_details" => 2,
                b"input_tokens" => 3,
                b"output_tokens" => 4,
                b"input_tokens_details" => 5,
                b"cache_read_input_tokens" => 6,
                _ => return c.skip(1),
            };
            if seen & (1 << bit) != 0 {
                return None;
            }
            seen |= 1 << bit;
            match bit {
                0 => f.prompt_tokens = c.opt_u64()?,
                1 => f.completion_tokens = c.opt_u64()?,
                2 => f.prompt_tokens_details = c.details()?,
                3 => f.input_tokens = c.opt_u64()?,
                4 => f.output_tokens = c.opt_u64()?,
                5 => f.input_tokens_details = c.details()?,
                _ => f.cache_read_input_tokens = c.opt_u64()?,
            }
            Some(())
        })?;
        Some(f)
    }

    #[cfg(test)]
    mod tests {
        use super::Cursor;

        /// The key scan as it was, a byte at a time.
        fn bytewise(text: &[u8]) -> Option<(&[u8], usize)> {
            let mut at = 1;
            if text.first() != Some(&b'"') {
                return None;
            }
            let mut ascii = true;
            loop {
                match *text.get(at)? {
                    b'"' => break,
                    b'\\' | 0..0x20 => return None,
                    b => ascii &= b < 0x80,
                }
                at += 1;
            }
            let key = &text[1..at];
            if !ascii && std::str::from_utf8(key).is_err() {
                return None;
            }
            Some((key, at + 1))
        }

        #[test]
        fn keys_are_read_as_byte_by_byte() {
            let mut texts: Vec<Vec<u8>> = Vec::new();
            for len in 0..20 {
                let plain: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                for b in 0u8..=255 {
                    for at in 0..len {
                        let mut key = plain.clone();
                        key[at] = b;
                        texts.push([&b"\""[..], &key, b"\":1"].concat());
                        // Cut short, and with a second special byte after the first.
                        texts.push([&b"\""[..], &key].concat());
                        if at + 1 < len {
                            key[at + 1] = b'"';
                            texts.push([&b"\""[..], &key, b"\":1"].concat());
                        }
                    }
                }
                texts.push([&b"\""[..], &plain, b"\":1"].concat());
            }
            for tail in [
                "é\"",
                "東京\"",
                "\u{7f}\"",
                "ü\u{80}x\"",
                "abcdefgh\u{ffff}\"",
            ] {
                texts.push(format!("\"abcdefg{tail}:1").into_bytes());
            }
            texts.push(b"\"abcdefghij\xe9\":1".to_vec());
            texts.push(b"\"abcdefghijklmnop\xc3\":1".to_vec());
            for text in &texts {
                let mut c = Cursor { text, at: 0 };
                let ours = c.key().map(|k| (k, c.at));
                assert_eq!(ours, bytewise(text), "{:?}", String::from_utf8_lossy(text));
            }
        }
    }
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

    /// What both dialects read from a usage object, by the scanner (with its fallback)
    /// and by serde_json alone.
    fn both(text: &str) -> (Option<[Usage; 2]>, Option<[Usage; 2]>) {
        let dialects = |f: Fields| [read(&f, Dialect::OpenAi), read(&f, Dialect::Anthropic)];
        let ours = parse_fields(text.as_bytes()).map(dialects);
        let mut de = serde_json::Deserializer::from_slice(text.as_bytes());
        let theirs = Fields::deserialize(&mut de).ok().map(dialects);
        (ours, theirs)
    }

    #[test]
    fn the_usage_scanner_reads_what_serde_json_reads() {
        // The shapes the APIs send: read by the scanner itself, not the fallback.
        let usual = [
            r#"{"prompt_tokens":3,"completion_tokens":6,"total_tokens":9}"#,
            r#"{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}"#,
            r#"{"input_tokens":6,"output_tokens":3,"cache_creation_input_tokens":0,"cache_read_input_tokens":4,"service_tier":"standard","server_tool_use":null}"#,
            r#"{"input_tokens":9,"input_tokens_details":{"cached_tokens":1},"output_tokens":2,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":11}"#,
            "{ \"prompt_tokens\" :\n 7 ,\t\"total_tokens\": 7\r\n}",
            r#"{"total_tokens":9,"completion_tokens":6,"prompt_tokens":3}"#,
            r#"{}"#,
            r#"{"prompt_tokens":null,"prompt_tokens_details":null}"#,
            r#"{"prompt_tokens_details":{},"x":[1,-2.5e3,true,false,null,"a\"\\\/\b\f\n\r\tb\u00e9",{"y":[]}],"completion_tokens":0}"#,
            r#"{"prompt_tokens":18446744073709551615}"#,
            r#"{"é":{"ü":"東京"},"prompt_tokens":2}"#,
        ];
        for text in usual {
            assert!(scan::fields(text.as_bytes()).is_some(), "{text}");
            let (ours, theirs) = both(text);
            assert!(theirs.is_some(), "{text}");
            assert_eq!(ours, theirs, "{text}");
        }
        // Everything else gets serde_json's verdict: refused, or read as it reads it.
        let unusual = [
            r#"{"prompt_tokens":3,"prompt_tokens":4}"#,
            r#"{"prompt_tokens_details":{"cached_tokens":1,"cached_tokens":2}}"#,
            r#"{"prompt_tokens":3.0}"#,
            r#"{"prompt_tokens":3e2}"#,
            r#"{"prompt_tokens":-3}"#,
            r#"{"prompt_tokens":03}"#,
            r#"{"prompt_tokens":"3"}"#,
            r#"{"prompt_tokens":18446744073709551616}"#,
            r#"{"prompt_tokens_details":[1]}"#,
            r#"{"prompt_tokens_details":{"cached_tokens":true}}"#,
            r#"{"prompt\u005ftokens":5}"#,
            r#"{"x":tru,"prompt_tokens":1}"#,
            r#"{"x":01,"prompt_tokens":1}"#,
            r#"{"x":1.,"prompt_tokens":1}"#,
            r#"{"x":-,"prompt_tokens":1}"#,
            r#"{"x":"\q","prompt_tokens":1}"#,
            r#"{"x":"\u12g4","prompt_tokens":1}"#,
            "{\"x\":\"a\u{1}b\",\"prompt_tokens\":1}",
            "{\"x\u{1}\":1,\"prompt_tokens\":1}",
            r#"{"x":[1,],"prompt_tokens":1}"#,
            r#"{"x":{"a"},"prompt_tokens":1}"#,
            r#"{"prompt_tokens":1,}"#,
            r#"{"prompt_tokens":1"#,
            r#"{"prompt_tokens":"#,
            r#"{"prompt_tokens" 1}"#,
            r#"{prompt_tokens:1}"#,
            "{\"prompt_tokens\":1\u{c}}",
            r#"{"x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],"prompt_tokens":2}"#,
            r#"{"prompt_tokens":2} trailing text is not read"#,
            r#"{"prompt_tokens":1}}"#,
        ];
        for text in unusual {
            let (ours, theirs) = both(text);
            assert_eq!(ours, theirs, "{text}");
        }
        // A key that is not UTF-8: serde_json refuses it, and so does the scanner.
        let latin1 = b"{\"\xe9\":1,\"prompt_tokens\":2}";
        assert!(scan::fields(latin1).is_none());
        assert!(parse_fields(latin1).is_none());
        // Every cut of a usual object: the scanner never reads past the end.
        for text in usual {
            for at in (0..text.len()).filter(|at| text.is_char_boundary(*at)) {
                let (ours, theirs) = both(&text[..at]);
                assert_eq!(ours, theirs, "{}", &text[..at]);
            }
        }
    }

    #[test]
    fn the_usage_key_is_found_from_the_end() {
        let body = br#"{"choices":[{"message":{"content":"a big long message"}}],"usage":{"prompt_tokens":1}}"#;
        let at = rfind_usage_key(body).unwrap();
        assert_eq!(&body[at..at + 7], b"\"usage\"");
        assert_eq!(rfind_usage_key(br#"{"usage":1,"usage":2}"#), Some(11));
        for miss in [&b""[..], b"g", b"usage\"", b"\"usag\"", b"sage\":{}"] {
            assert_eq!(rfind_usage_key(miss), None);
        }
        assert_eq!(rfind_usage_key(b"\"usage\""), Some(0));
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
