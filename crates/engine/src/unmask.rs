//! Response unmasking: whole text, buffered JSON bodies, and [`TextStream`], the streaming unmasker for one block
//! of text that arrives in pieces.
//!
//! Only placeholders that the given [`Resolver`] knows are replaced; every other placeholder-shaped token stays as
//! it is and is counted in [`UnmaskStats::misses`].
//!
//! # Placeholders inside raw JSON text
//!
//! Placeholders are ASCII `[A-Z0-9_]`, so inside a JSON string they appear literally, and JSON bodies are unmasked
//! by scanning the raw bytes: bytes outside the strings that change are preserved exactly. What touches a
//! placeholder is judged on the *decoded* characters: in `"\nAWS_EC2_001"` the `n` belongs to the escape `\n`, so
//! the placeholder has a boundary on its left, and so it has in `"\\nAWS_EC2_001"`, where the text spells out the
//! escape `\n` (the detectors take `\nmy-bucket` for a separator and a value, so masking writes
//! `\nAWS_S3_BUCKET_001` there), while in `"\\xAWS_EC2_001"` the `x` is a letter and there is no boundary; `\u0041` next to a placeholder is the letter `A`. A placeholder that is itself spelled with `\u`
//! escapes is not recognised (providers do not escape ASCII letters). Restored originals are JSON-escaped; the
//! value of an `arguments` member (tool-call arguments: JSON text inside a JSON string) is unmasked as JSON text,
//! so originals there are escaped for the inner document too.

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use memchr::{memchr, memchr_iter, memmem};

use crate::placeholder::{self, is_word_byte, match_at, MAX_LEN};
use crate::resolve::{Resolver, UnmaskStats};

static AWS: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(b"AWS_"));

/// True when `text` contains `AWS_`, the start of every placeholder: the cheap test before any unmasking work.
#[inline]
pub(crate) fn may_contain_placeholder(text: &[u8]) -> bool {
    AWS.find(text).is_some()
}

/// Replaces every placeholder in `text` that `r` resolves by its original. Borrows when nothing changed.
pub fn unmask_text<'a, R: Resolver + ?Sized>(text: &'a str, r: &R, stats: &mut UnmaskStats) -> Cow<'a, str> {
    let mut out: Option<String> = None;
    let mut copied = 0;
    for (s, e) in placeholder::find_all(text.as_bytes()) {
        match r.resolve(&text[s..e]) {
            Some(orig) => {
                let o = out.get_or_insert_with(|| String::with_capacity(text.len() + 32));
                o.push_str(&text[copied..s]);
                o.push_str(orig);
                copied = e;
                stats.resolved += 1;
            }
            None => stats.misses += 1,
        }
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut o) => {
            o.push_str(&text[copied..]);
            Cow::Owned(o)
        }
    }
}

/// Why [`unmask_json`] refused a body. The caller falls back to [`unmask_text`] (or passes the body through).
#[derive(Debug)]
pub enum UnmaskError {
    /// The body is not UTF-8, so it is not JSON.
    NotUtf8,
    /// The body is not valid JSON.
    Json(serde_json::Error),
}

impl fmt::Display for UnmaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnmaskError::NotUtf8 => f.write_str("response body is not UTF-8"),
            UnmaskError::Json(e) => write!(f, "response body is not valid JSON: {e}"),
        }
    }
}

impl std::error::Error for UnmaskError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UnmaskError::NotUtf8 => None,
            UnmaskError::Json(e) => Some(e),
        }
    }
}

/// Unmasks a buffered JSON body: every string, keys included, restored values JSON-escaped. Bytes outside the
/// strings that change are preserved exactly. A body that is not valid JSON is an error.
pub fn unmask_json<R: Resolver + ?Sized>(body: &[u8], r: &R, stats: &mut UnmaskStats) -> Result<Vec<u8>, UnmaskError> {
    let text = std::str::from_utf8(body).map_err(|_| UnmaskError::NotUtf8)?;
    validate_json(text).map_err(UnmaskError::Json)?;
    let mut out = String::new();
    if rewrite_json(text, &[], r, stats, &mut out) {
        Ok(out.into_bytes())
    } else {
        Ok(body.to_vec())
    }
}

/// Checks that `text` is one valid JSON value, without building it.
pub(crate) fn validate_json(text: &str) -> Result<(), serde_json::Error> {
    serde_json::from_str::<serde::de::IgnoredAny>(text).map(|_| ())
}

/// A string of a JSON text that is not unmasked like the others: `at` is the offset of its opening quote,
/// `text` its new (decoded) value, which is JSON-escaped on output, or `None` to keep it as it is.
pub(crate) struct Override<'s> {
    pub at: usize,
    pub text: Option<&'s str>,
}

/// Rewrites the valid JSON text `data` into `out`: strings starting at an override's offset get the override's
/// value; every other string is unmasked. Returns false, leaving `out` as it was, when nothing changed.
/// Overrides must be sorted by offset.
pub(crate) fn rewrite_json<R: Resolver + ?Sized>(
    data: &str,
    overrides: &[Override<'_>],
    r: &R,
    stats: &mut UnmaskStats,
    out: &mut String,
) -> bool {
    let b = data.as_bytes();
    let scan_all = may_contain_placeholder(b);
    if !scan_all && overrides.iter().all(|o| o.text.is_none()) {
        return false;
    }
    let start_len = out.len();
    let mut copied = 0;
    let mut changed = false;
    let mut ov = overrides.iter().peekable();
    if !scan_all {
        // Only the overrides change: splice them without walking the strings.
        for o in ov {
            let Some(text) = o.text else {
                continue;
            };
            let Some(end) = string_end(b, o.at) else {
                continue;
            };
            if o.at < copied {
                continue;
            }
            out.push_str(&data[copied..o.at]);
            push_json_string(out, text);
            copied = end;
            changed = true;
        }
    } else {
        let mut pos = 0;
        while let Some(k) = memchr(b'"', &b[pos..]) {
            let s = pos + k;
            let Some(e) = string_end(b, s) else {
                break;
            };
            while ov.peek().is_some_and(|o| o.at < s) {
                ov.next();
            }
            if let Some(o) = ov.next_if(|o| o.at == s) {
                if let Some(text) = o.text {
                    out.push_str(&data[copied..s]);
                    push_json_string(out, text);
                    copied = e;
                    changed = true;
                }
            } else {
                let content = &data[s + 1..e - 1];
                if !may_contain_placeholder(content.as_bytes()) {
                    // Nothing to do.
                } else if is_value_of(b, s, b"arguments") {
                    // Tool-call arguments are JSON text inside a JSON string: unmask the decoded text as JSON
                    // (restored values escaped for the inner document), then encode it again.
                    if let Ok(decoded) = serde_json::from_str::<String>(&data[s..e]) {
                        let mut inner = String::with_capacity(decoded.len() + 32);
                        let before = stats.resolved;
                        scan(&decoded, Mode::Json, Left::Free, &[], true, r, stats, &mut inner);
                        if stats.resolved > before {
                            out.push_str(&data[copied..s]);
                            push_json_string(out, &inner);
                            copied = e;
                            changed = true;
                        }
                    }
                } else {
                    let mark = out.len();
                    out.push_str(&data[copied..s + 1]);
                    let before = stats.resolved;
                    scan(content, Mode::Json, Left::Free, &[], true, r, stats, out);
                    if stats.resolved > before {
                        copied = e - 1;
                        changed = true;
                    } else {
                        out.truncate(mark);
                    }
                }
            }
            pos = e;
        }
    }
    if changed {
        out.push_str(&data[copied..]);
    } else {
        out.truncate(start_len);
    }
    changed
}

/// True when the string starting at `b[at]` is the value of an object member named `key` (unescaped).
fn is_value_of(b: &[u8], at: usize, key: &[u8]) -> bool {
    (|| {
        let k = b[..at].trim_ascii_end().strip_suffix(b":")?;
        let k = k.trim_ascii_end().strip_suffix(b"\"")?;
        let k = k.strip_suffix(key)?.strip_suffix(b"\"")?;
        // A key's opening quote follows `{` or `,`.
        Some(matches!(k.trim_ascii_end().last(), Some(b'{' | b',')))
    })()
    .unwrap_or(false)
}

/// `b[at]` is the opening quote of a JSON string: the offset just past its closing quote.
pub(crate) fn string_end(b: &[u8], at: usize) -> Option<usize> {
    if b.get(at) != Some(&b'"') {
        return None;
    }
    let mut i = at + 1;
    loop {
        let k = memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
        i += k;
        if b[i] == b'"' {
            return Some(i + 1);
        }
        i += 2;
    }
}

/// Appends `s` as a JSON string literal, quotes included.
pub(crate) fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    push_json_escaped(out, s);
    out.push('"');
}

/// Appends `s` JSON-escaped (the content of a string literal): `"`, `\` and control characters are escaped,
/// everything else, non-ASCII included, is copied.
pub fn push_json_escaped(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let b = s.as_bytes();
    let mut copied = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc: &str = match c {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[copied..i]);
        if esc.is_empty() {
            out.push_str("\\u00");
            out.push(HEX[(c >> 4) as usize] as char);
            out.push(HEX[(c & 0xf) as usize] as char);
        } else {
            out.push_str(esc);
        }
        copied = i + 1;
    }
    out.push_str(&s[copied..]);
}

/// How the text being unmasked is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Plain text: originals are inserted as they are.
    Text,
    /// Raw JSON text (the inside of a JSON string, or a fragment of a JSON document such as a tool call's
    /// streamed arguments): backslash escapes are understood for boundaries, originals are JSON-escaped.
    Json,
}

/// What follows a literal segment of the scanned text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Right {
    /// A character that touches a placeholder (`[A-Za-z0-9_]`, possibly escaped).
    Word,
    /// A boundary: another character, or the end of the text.
    NonWord,
    /// An escape sequence that has not fully arrived.
    Pending,
    /// The end of what has arrived so far; more may follow.
    End,
}

enum Esc {
    /// An escape sequence of `len` bytes; `left`: what its decoded character means for a placeholder after it.
    Done { len: usize, left: Left },
    /// The sequence is cut off by the end of the input.
    Incomplete,
}

/// Parses the escape sequence at `b[0] == b'\\'`. Invalid escapes count as a lone backslash (one byte, no word).
fn parse_escape(b: &[u8], fin: bool) -> Esc {
    const LONE: Esc = Esc::Done {
        len: 1,
        left: Left::Free,
    };
    let Some(&c) = b.get(1) else {
        return if fin { LONE } else { Esc::Incomplete };
    };
    match c {
        b'u' => {
            let avail = &b[2..b.len().min(6)];
            if !avail.iter().all(u8::is_ascii_hexdigit) {
                return LONE;
            }
            if avail.len() < 4 {
                return if fin { LONE } else { Esc::Incomplete };
            }
            let v = avail
                .iter()
                .fold(0u32, |v, &h| v * 16 + (h as char).to_digit(16).unwrap_or(0));
            let left = match v {
                0x5c => Left::Backslash,
                v if v < 0x80 && is_word_byte(v as u8) => Left::Word,
                _ => Left::Free,
            };
            Esc::Done { len: 6, left }
        }
        b'\\' => Esc::Done {
            len: 2,
            left: Left::Backslash,
        },
        b'"' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Esc::Done {
            len: 2,
            left: Left::Free,
        },
        _ => LONE,
    }
}

/// What the character before a position means for a placeholder that starts there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Left {
    /// A boundary, or the start of the text.
    Free,
    /// A character that touches a placeholder (`[A-Za-z0-9_]`).
    Word,
    /// A backslash: the letter of an escape after it (`\n` spelled out) is a boundary, as for the detectors.
    Backslash,
}

/// The [`Left`] of the position `at` of `seg`, given `before`, the [`Left`] of its start.
fn left_at(seg: &[u8], at: usize, before: Left) -> Left {
    let Some(&c) = at.checked_sub(1).and_then(|i| seg.get(i)) else {
        return before;
    };
    if c == b'\\' {
        Left::Backslash
    } else if !is_word_byte(c) {
        Left::Free
    } else {
        let backslash = if at >= 2 {
            seg[at - 2] == b'\\'
        } else {
            before == Left::Backslash
        };
        if backslash && placeholder::is_escape_letter(c) {
            Left::Free
        } else {
            Left::Word
        }
    }
}

/// Where a scan stopped: `buf[..hold]` has been written out, `buf[hold..]` must be kept for the next piece;
/// `prev_word` tells what the character before `hold` means for a placeholder; `esc` says whether the text
/// written out ends inside an escape sequence.
struct Scanned {
    hold: usize,
    prev_word: Left,
    esc: EscTail,
}

/// An escape sequence cut off at the end of the text written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EscTail {
    None,
    /// It starts at this offset of the scanned text.
    At(usize),
    /// The whole scanned text continues the escape that was already pending.
    Extends,
}

/// The one unmasking loop. Writes `buf` with resolved placeholders replaced to `out`, except, unless `fin`, a
/// tail that more input could turn into (or extend) a placeholder. `prev_word`: what the character before
/// `buf` means for a placeholder; `pending`: the start of an escape sequence cut off just before `buf` (Json).
#[allow(clippy::too_many_arguments)]
fn scan<R: Resolver + ?Sized>(
    buf: &str,
    mode: Mode,
    prev_word: Left,
    pending: &[u8],
    fin: bool,
    r: &R,
    stats: &mut UnmaskStats,
    out: &mut String,
) -> Scanned {
    let b = buf.as_bytes();
    let mut copied = 0;
    let mut seg_start = 0;
    let mut pw = prev_word;
    if !pending.is_empty() {
        // Finish the escape sequence begun in the previous piece; its bytes have been written already.
        let mut tmp = [0u8; 6];
        let n = pending.len().min(6);
        tmp[..n].copy_from_slice(&pending[..n]);
        let take = (6 - n).min(b.len());
        tmp[n..n + take].copy_from_slice(&b[..take]);
        match parse_escape(&tmp[..n + take], fin) {
            Esc::Incomplete => {
                out.push_str(buf);
                return Scanned {
                    hold: b.len(),
                    prev_word: pw,
                    esc: EscTail::Extends,
                };
            }
            Esc::Done { len, left } => {
                if len > n {
                    seg_start = len - n;
                    pw = left;
                } else {
                    // An invalid escape: a lone backslash; the rest of `pending` was literal text.
                    pw = if len == n { left } else { left_at(pending, n, pw) };
                }
            }
        }
    }
    loop {
        // A segment is literal text up to the next escape sequence (Json) or the end.
        let mut next = None;
        let (seg_end, right) = match mode {
            Mode::Json => match memchr(b'\\', &b[seg_start..]) {
                Some(k) => {
                    let e = seg_start + k;
                    match parse_escape(&b[e..], fin) {
                        Esc::Done { len, left } => {
                            next = Some((e + len, left));
                            (
                                e,
                                if left == Left::Word {
                                    Right::Word
                                } else {
                                    Right::NonWord
                                },
                            )
                        }
                        Esc::Incomplete => (e, Right::Pending),
                    }
                }
                None => (b.len(), if fin { Right::NonWord } else { Right::End }),
            },
            Mode::Text => (b.len(), if fin { Right::NonWord } else { Right::End }),
        };
        let seg = &b[seg_start..seg_end];
        let mut hold = if right == Right::End { holdback(seg, pw) } else { None };
        let search_end = hold.unwrap_or(seg.len());
        let mut p = 0;
        while p < search_end {
            let Some(k) = AWS.find(&seg[p..]) else {
                break;
            };
            let s = p + k;
            if s >= search_end {
                break;
            }
            let left_ok = left_at(seg, s, pw) != Left::Word;
            if !left_ok {
                p = s + 1;
                continue;
            }
            let Some(n) = match_at(&seg[s..]) else {
                p = s + 1;
                continue;
            };
            if s + n == seg.len() {
                match right {
                    Right::Word => {
                        p = s + 1;
                        continue;
                    }
                    Right::NonWord => {}
                    Right::Pending | Right::End => {
                        // What follows decides: keep the placeholder (and the escape after it) for later.
                        hold = Some(s);
                        break;
                    }
                }
            }
            let (abs_s, abs_e) = (seg_start + s, seg_start + s + n);
            match r.resolve(&buf[abs_s..abs_e]) {
                Some(orig) => {
                    out.push_str(&buf[copied..abs_s]);
                    match mode {
                        Mode::Text => out.push_str(orig),
                        Mode::Json => push_json_escaped(out, orig),
                    }
                    copied = abs_e;
                    stats.resolved += 1;
                }
                None => stats.misses += 1,
            }
            p = s + n;
        }
        if let Some(h) = hold {
            let abs = seg_start + h;
            out.push_str(&buf[copied..abs]);
            let prev_word = left_at(seg, h, pw);
            return Scanned {
                hold: abs,
                prev_word,
                esc: EscTail::None,
            };
        }
        match next {
            Some((next_start, left)) => {
                pw = left;
                seg_start = next_start;
            }
            None => {
                // The end of the input, possibly inside an escape sequence that has not fully arrived: the
                // sequence goes out now, what it means for a boundary is remembered.
                out.push_str(&buf[copied..]);
                let seg_pw = left_at(seg, seg.len(), pw);
                return Scanned {
                    hold: b.len(),
                    prev_word: seg_pw,
                    esc: if right == Right::Pending {
                        EscTail::At(seg_end)
                    } else {
                        EscTail::None
                    },
                };
            }
        }
    }
}

/// The start of the tail of `seg` that could still become a placeholder, if any (like
/// [`placeholder::holdback_len`], but with the boundary before `seg` given by `prev_word`).
fn holdback(seg: &[u8], prev_word: Left) -> Option<usize> {
    let from = seg.len().saturating_sub(MAX_LEN);
    memchr_iter(b'A', &seg[from..]).map(|k| from + k).find(|&p| {
        let left_ok = left_at(seg, p, prev_word) != Left::Word;
        left_ok && placeholder::holdback_len(&seg[p..]) == seg.len() - p
    })
}

/// Streaming unmasker for one block of text that arrives in pieces (one content block, one tool call's
/// arguments, ...). Everything that can no longer be part of a placeholder is written out at once; at most a
/// possible placeholder prefix (≤ [`MAX_LEN`] bytes, plus an escape sequence right after it) is held back until
/// the next piece or [`TextStream::finish`].
///
/// The concatenated output equals [`unmask_text`] of the concatenated input (for a JSON fragment stream:
/// [`unmask_json`] of the concatenated document), for any split into pieces.
#[derive(Debug, Clone)]
pub struct TextStream {
    held: String,
    prev_word: Left,
    /// The start of an escape sequence cut off at the end of what was written out (Json).
    esc: String,
    mode: Mode,
}

impl Default for TextStream {
    fn default() -> Self {
        Self::new()
    }
}

impl TextStream {
    /// A stream of plain text: originals are inserted as they are.
    pub fn new() -> Self {
        TextStream {
            held: String::new(),
            prev_word: Left::Free,
            esc: String::new(),
            mode: Mode::Text,
        }
    }

    /// A stream of raw JSON text (for instance a tool call's arguments streamed as fragments of a JSON
    /// document): backslash escapes are understood, originals are JSON-escaped.
    pub fn json_fragment() -> Self {
        Self::with_mode(Mode::Json)
    }

    pub(crate) fn with_mode(mode: Mode) -> Self {
        TextStream { mode, ..Self::new() }
    }

    /// True for a stream made by [`TextStream::json_fragment`].
    pub fn is_json(&self) -> bool {
        self.mode == Mode::Json
    }

    /// The text currently held back (not yet unmasked).
    pub fn held(&self) -> &str {
        &self.held
    }

    /// Unmasks `piece` and appends to `out` everything that is safe to send.
    pub fn push<R: Resolver + ?Sized>(&mut self, piece: &str, r: &R, stats: &mut UnmaskStats, out: &mut String) {
        if self.held.is_empty() {
            let s = scan(
                piece,
                self.mode,
                self.prev_word,
                self.esc.as_bytes(),
                false,
                r,
                stats,
                out,
            );
            self.held.push_str(&piece[s.hold..]);
            self.prev_word = s.prev_word;
            match s.esc {
                EscTail::None => self.esc.clear(),
                EscTail::At(i) => {
                    self.esc.clear();
                    self.esc.push_str(&piece[i..]);
                }
                EscTail::Extends => self.esc.push_str(piece),
            }
        } else {
            // The held text starts with a placeholder's first letter: no escape is pending before it.
            self.held.push_str(piece);
            let s = scan(&self.held, self.mode, self.prev_word, &[], false, r, stats, out);
            self.esc.clear();
            if let EscTail::At(i) = s.esc {
                self.esc.push_str(&self.held[i..]);
            }
            self.held.drain(..s.hold);
            self.prev_word = s.prev_word;
        }
    }

    /// The block is over: unmasks and appends whatever is held. The stream can then be reused.
    pub fn finish<R: Resolver + ?Sized>(&mut self, r: &R, stats: &mut UnmaskStats, out: &mut String) {
        if !self.held.is_empty() {
            scan(&self.held, self.mode, self.prev_word, &[], true, r, stats, out);
            self.held.clear();
        }
        self.esc.clear();
        self.prev_word = Left::Free;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::resolve::RequestMap;
    use proptest::prelude::*;

    pub(crate) fn map() -> RequestMap {
        let mut m = RequestMap::new();
        m.insert("AWS_EC2_001", "i-0abc123def4567890");
        m.insert("AWS_IAM_ROLE_003", "arn:aws:iam::123456789012:role/Admin");
        m.insert("AWS_S3_BUCKET_010", "my-bucket");
        m.insert("AWS_EC2_1000", "i-0000000000000abcd");
        m.insert("AWS_ODD_002", "q\"b\\s\nc\u{1}é日");
        m
    }

    fn text(s: &str) -> (String, UnmaskStats) {
        let mut st = UnmaskStats::default();
        let out = unmask_text(s, &map(), &mut st).into_owned();
        (out, st)
    }

    fn json(s: &str) -> (String, UnmaskStats) {
        let mut st = UnmaskStats::default();
        let out = unmask_json(s.as_bytes(), &map(), &mut st).unwrap();
        (String::from_utf8(out).unwrap(), st)
    }

    #[test]
    fn text_basic() {
        let (o, st) = text("vm AWS_EC2_001 role AWS_IAM_ROLE_003, AWS_EC2_1000 AWS_EC2_100 AWS_EC2_002.");
        assert_eq!(
            o,
            "vm i-0abc123def4567890 role arn:aws:iam::123456789012:role/Admin, i-0000000000000abcd \
             AWS_EC2_100 AWS_EC2_002."
        );
        assert_eq!(st, UnmaskStats { resolved: 3, misses: 2 });
        let (o, st) = text("xAWS_EC2_001 AWS_EC2_001x AWS_EC2_0011");
        assert_eq!(o, "xAWS_EC2_001 AWS_EC2_001x AWS_EC2_0011");
        assert_eq!(st, UnmaskStats { resolved: 0, misses: 1 });
        assert!(matches!(
            unmask_text("nothing here", &map(), &mut UnmaskStats::default()),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn json_preserves_bytes_and_escapes() {
        let body = "{ \"a\" : [1, 2.50e3, \"AWS_EC2_001\", null],\n  \"AWS_S3_BUCKET_010\":\"x\\u00e9 AWS_ODD_002\",\"n\":\"AWS_EC2_009\" }";
        let (o, st) = json(body);
        assert_eq!(
            o,
            "{ \"a\" : [1, 2.50e3, \"i-0abc123def4567890\", null],\n  \"my-bucket\":\"x\\u00e9 q\\\"b\\\\s\\nc\\u0001é日\",\"n\":\"AWS_EC2_009\" }"
        );
        assert_eq!(st, UnmaskStats { resolved: 3, misses: 1 });
        let v: serde_json::Value = serde_json::from_str(&o).unwrap();
        assert_eq!(v["my-bucket"], "xé q\"b\\s\nc\u{1}é日");
        // Unchanged bodies come back byte for byte.
        let body = "[ \"AWS_EC2_777\" , {\"k\" :\t\"v\"} ]";
        assert_eq!(json(body).0, body);
        assert!(unmask_json(b"{\"a\":", &map(), &mut UnmaskStats::default()).is_err());
        assert!(unmask_json(b"AWS_EC2_001", &map(), &mut UnmaskStats::default()).is_err());
        assert!(unmask_json(b"\xff", &map(), &mut UnmaskStats::default()).is_err());
    }

    #[test]
    fn json_nested_arguments() {
        // Tool-call arguments are JSON inside a JSON string: the original is escaped for both levels.
        let body = r#"{"tool_calls":[{"function":{"name":"AWS_EC2_001","arguments":"{\"id\": \"AWS_ODD_002\", \"vm\": \"AWS_EC2_001\"}"}}]}"#;
        let (o, st) = json(body);
        let v: serde_json::Value = serde_json::from_str(&o).unwrap();
        assert_eq!(v["tool_calls"][0]["function"]["name"], "i-0abc123def4567890");
        let args: serde_json::Value =
            serde_json::from_str(v["tool_calls"][0]["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args["id"], "q\"b\\s\nc\u{1}é日");
        assert_eq!(args["vm"], "i-0abc123def4567890");
        assert_eq!(st.resolved, 3);
        // Only as the value of an `arguments` member.
        let (o, _) = json(r#"["arguments", "{\"a\":\"AWS_ODD_002\"}"]"#);
        let v: serde_json::Value = serde_json::from_str(&o).unwrap();
        assert_eq!(v[1], "{\"a\":\"q\"b\\s\nc\u{1}é日\"}");
    }

    #[test]
    fn json_escape_boundaries() {
        let cases = [
            (r#""\nAWS_EC2_001""#, r#""\ni-0abc123def4567890""#),
            (r#""\\nAWS_EC2_001""#, r#""\\ni-0abc123def4567890""#),
            (r#""\u005ctAWS_EC2_001""#, r#""\u005cti-0abc123def4567890""#),
            (r#""\\xAWS_EC2_001""#, r#""\\xAWS_EC2_001""#),
            (r#""\\\nAWS_EC2_001""#, r#""\\\ni-0abc123def4567890""#),
            (r#""\\AWS_EC2_001\\""#, r#""\\i-0abc123def4567890\\""#),
            (r#""\u0041AWS_EC2_001""#, r#""\u0041AWS_EC2_001""#),
            (r#""\u002cAWS_EC2_001\u002C""#, r#""\u002ci-0abc123def4567890\u002C""#),
            (r#""AWS_EC2_001\u0030""#, r#""AWS_EC2_001\u0030""#),
            (r#""AWS_EC2_001\u005f""#, r#""AWS_EC2_001\u005f""#),
            (r#""AWS_EC2_001\t""#, r#""i-0abc123def4567890\t""#),
            (r#""\u0041WS_EC2_001""#, r#""\u0041WS_EC2_001""#),
            (r#""\"AWS_EC2_001\"""#, r#""\"i-0abc123def4567890\"""#),
        ];
        for (i, o) in cases {
            assert_eq!(json(i).0, o, "{i}");
        }
    }

    /// Streams `pieces` through a TextStream.
    fn stream(pieces: &[&str], json: bool) -> (String, UnmaskStats) {
        let m = map();
        let mut st = UnmaskStats::default();
        let mut ts = if json {
            TextStream::json_fragment()
        } else {
            TextStream::new()
        };
        let mut out = String::new();
        for p in pieces {
            ts.push(p, &m, &mut st, &mut out);
            assert!(ts.held().len() <= MAX_LEN + 6, "held {:?}", ts.held());
        }
        ts.finish(&m, &mut st, &mut out);
        (out, st)
    }

    fn char_splits(s: &str) -> Vec<usize> {
        (0..=s.len()).filter(|&i| s.is_char_boundary(i)).collect()
    }

    #[test]
    fn stream_every_split() {
        let inputs = [
            "see AWS_EC2_001 and AWS_IAM_ROLE_003.",
            "AWS_EC2_001",
            "xAWS_EC2_001 AWS_EC2_0011 AWS_EC2_1000 AWS_EC2_100 AWS_EC2_001_",
            "é AWS_S3_BUCKET_010日AWS_EC2_001😀",
            "A AW AWS AWS_ AWS_E AWS_EC2_ AWS_EC2_00 end A",
        ];
        for input in inputs {
            let want = text(input);
            let cuts = char_splits(input);
            for &a in &cuts {
                for &b in cuts.iter().filter(|&&b| b >= a) {
                    let got = stream(&[&input[..a], &input[a..b], &input[b..]], false);
                    assert_eq!(got, want, "{input:?} split at {a},{b}");
                }
            }
            // One character at a time.
            let chars: Vec<String> = input.chars().map(String::from).collect();
            let pieces: Vec<&str> = chars.iter().map(String::as_str).collect();
            assert_eq!(stream(&pieces, false), want);
        }
    }

    #[test]
    fn stream_emits_early() {
        let m = map();
        let mut st = UnmaskStats::default();
        let mut ts = TextStream::new();
        let mut out = String::new();
        ts.push("Instance AWS_E", &m, &mut st, &mut out);
        assert_eq!(out, "Instance ");
        assert_eq!(ts.held(), "AWS_E");
        ts.push("C2_001", &m, &mut st, &mut out);
        assert_eq!(out, "Instance ");
        ts.push(" is up", &m, &mut st, &mut out);
        assert_eq!(out, "Instance i-0abc123def4567890 is up");
        assert_eq!(ts.held(), "");
        // A word character before the piece: nothing to hold.
        ts.push("xA", &m, &mut st, &mut out);
        assert_eq!(ts.held(), "");
        ts.push("WS_EC2_001", &m, &mut st, &mut out);
        assert_eq!(ts.held(), "");
        ts.finish(&m, &mut st, &mut out);
        assert_eq!(out, "Instance i-0abc123def4567890 is upxAWS_EC2_001");
        assert_eq!(st.resolved, 1);
    }

    #[test]
    fn json_fragment_stream() {
        // Tool arguments streamed as fragments of a JSON document.
        let doc = r#"{"id": "AWS_EC2_001", "odd": "AWS_ODD_002", "e": "\nAWS_EC2_001\\nAWS_EC2_001\u002cAWS_EC2_001"}"#;
        let want = json(doc);
        let v: serde_json::Value = serde_json::from_str(&want.0).unwrap();
        assert_eq!(v["odd"], "q\"b\\s\nc\u{1}é日");
        assert_eq!(
            v["e"],
            "\ni-0abc123def4567890\\ni-0abc123def4567890,i-0abc123def4567890"
        );
        let cuts = char_splits(doc);
        for &a in &cuts {
            for &b in cuts.iter().filter(|&&b| b >= a).step_by(3) {
                let got = stream(&[&doc[..a], &doc[a..b], &doc[b..]], true);
                assert_eq!(got, want, "split at {a},{b}");
            }
        }
        let chars: Vec<String> = doc.chars().map(String::from).collect();
        let pieces: Vec<&str> = chars.iter().map(String::as_str).collect();
        assert_eq!(stream(&pieces, true), want);
    }

    #[test]
    fn json_fragment_escapes_across_pieces() {
        // Escapes cut anywhere still decide boundaries; nothing but a placeholder is ever held back.
        let doc = r#"["AWS_EC2_001\u0041", "\u0041AWS_EC2_001", "\u002cAWS_EC2_001\u002c", "AWS_EC2_001\\", "\\AWS_EC2_001", "\uD83D\uDE00AWS_EC2_001\n", "\\\"AWS_EC2_001\"", "\x\uZ AWS_EC2_001"]"#;
        let want = (
            r#"["AWS_EC2_001\u0041", "\u0041AWS_EC2_001", "\u002ci-0abc123def4567890\u002c", "i-0abc123def4567890\\", "\\i-0abc123def4567890", "\uD83D\uDE00i-0abc123def4567890\n", "\\\"i-0abc123def4567890\"", "\x\uZ i-0abc123def4567890"]"#
                .to_owned(),
            UnmaskStats { resolved: 6, misses: 0 },
        );
        let m = map();
        let cuts = char_splits(doc);
        for &a in &cuts {
            for &b in cuts.iter().filter(|&&b| b >= a) {
                assert_eq!(stream(&[&doc[..a], &doc[a..b], &doc[b..]], true), want, "split {a} {b}");
                // What is written before the end of a piece never waits for anything but a placeholder.
                let mut ts = TextStream::json_fragment();
                let mut out = String::new();
                ts.push(&doc[..a], &m, &mut UnmaskStats::default(), &mut out);
                assert!(ts.held().is_empty() || ts.held().starts_with('A'), "{:?}", ts.held());
            }
        }
    }

    #[test]
    fn escaping() {
        let mut s = String::new();
        push_json_escaped(&mut s, "a\"b\\c\nd\re\tf\u{8}\u{c}\u{0}\u{1f}é");
        assert_eq!(s, r#"a\"b\\c\nd\re\tf\b\f\u0000\u001fé"#);
    }

    /// Text made of pieces likely to form, almost form, or break placeholders.
    pub(crate) fn arb_text() -> impl Strategy<Value = String> {
        let atoms = prop_oneof![
            Just("AWS_EC2_001"),
            Just("AWS_IAM_ROLE_003"),
            Just("AWS_S3_BUCKET_010"),
            Just("AWS_EC2_1000"),
            Just("AWS_ODD_002"),
            Just("AWS_EC2_002"),
            Just("AWS_"),
            Just("AWS"),
            Just("A"),
            Just("_"),
            Just("0"),
            Just("1"),
            Just("x"),
            Just(" "),
            Just("\n"),
            Just("\\"),
            Just("\""),
            Just("é"),
            Just("日本"),
            Just("😀"),
            Just("\u{1}"),
            Just("EC2_"),
        ];
        proptest::collection::vec(atoms, 0..40).prop_map(|v| v.concat())
    }

    /// Splits `s` at char boundaries chosen by `cuts` (fractions of the length).
    pub(crate) fn split_chars<'a>(s: &'a str, cuts: &[usize]) -> Vec<&'a str> {
        let mut at: Vec<usize> = cuts
            .iter()
            .map(|c| {
                let mut i = c % (s.len() + 1);
                while !s.is_char_boundary(i) {
                    i -= 1;
                }
                i
            })
            .collect();
        at.push(0);
        at.push(s.len());
        at.sort_unstable();
        at.windows(2).map(|w| &s[w[0]..w[1]]).collect()
    }

    proptest! {

        #[test]
        fn prop_stream_equals_buffered(s in arb_text(), cuts in proptest::collection::vec(0usize..1000, 0..12)) {
            let pieces = split_chars(&s, &cuts);
            prop_assert_eq!(stream(&pieces, false), text(&s));
        }

        #[test]
        fn prop_stream_one_char_pieces(s in arb_text()) {
            let chars: Vec<String> = s.chars().map(String::from).collect();
            let pieces: Vec<&str> = chars.iter().map(String::as_str).collect();
            prop_assert_eq!(stream(&pieces, false), text(&s));
        }

        /// The raw JSON scan judges boundaries on decoded characters: it agrees with unmasking the decoded text.
        #[test]
        fn prop_json_agrees_with_text(s in arb_text()) {
            let body = serde_json::to_string(&s).unwrap();
            let (o, st) = json(&body);
            let decoded: String = serde_json::from_str(&o).unwrap();
            prop_assert_eq!((decoded, st), text(&s));
            // Same with non-ASCII escaped the way Python's json.dumps does.
            let ascii: String = body.chars().map(|c| if c.is_ascii() { c.to_string() } else {
                let mut b = [0u16; 2];
                c.encode_utf16(&mut b).iter().map(|u| format!("\\u{u:04x}")).collect()
            }).collect();
            let (o, st) = json(&ascii);
            let decoded: String = serde_json::from_str(&o).unwrap();
            prop_assert_eq!((decoded, st), text(&s));
        }

        /// A JSON document streamed in fragments unmasks like the buffered document.
        #[test]
        fn prop_json_fragment_stream(s in arb_text(), k in "[a-zA-Z_ ]{0,6}", cuts in proptest::collection::vec(0usize..1000, 0..12)) {
            let doc = serde_json::to_string(&serde_json::json!({ k: s, "n": [1, s] })).unwrap();
            let pieces = split_chars(&doc, &cuts);
            prop_assert_eq!(stream(&pieces, true), json(&doc));
        }
    }
}
