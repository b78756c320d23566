//! A small, strict JSON reader for request masking: it validates the document and records every string (keys
//! and values) with its raw byte span, its decoded text and its key context, so that the masker can rewrite only
//! the strings that change and copy every other byte through untouched (numbers keep their exact digits, key
//! order and whitespace stay as sent).

/// Nesting deeper than this is refused (it would only serve to exhaust the stack).
pub const MAX_DEPTH: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    pub offset: usize,
    pub reason: &'static str,
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid JSON at byte {}: {}", self.offset, self.reason)
    }
}

/// One string of the document, as [`JsonStrings::get`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonString<'s> {
    /// Span of the raw string including its quotes.
    pub raw_start: usize,
    pub raw_end: usize,
    /// The decoded text ([`JsonStrings::body_text`] tells whether it is the raw bytes).
    pub text: &'s str,
    pub is_key: bool,
    /// For a value: index (in the list of strings) of its object key; `None` in arrays and at the top level.
    pub key: Option<usize>,
    /// Index of the key of the enclosing object's own key (`{"owner": {"id": "…"}}`: "owner" for "id").
    pub parent_key: Option<usize>,
    /// Not to be masked (a skip rule matched).
    pub skip: bool,
}

/// The strings of a document in document order ([`scan`]), kept compact: AWS API output holds a string every
/// ~14 bytes, and a body of 32 MiB holds millions. One entry of 28 bytes each; the text of a string without
/// escapes is read from the body, that of the others from one buffer of decoded texts.
pub struct JsonStrings<'a> {
    body: &'a [u8],
    list: Vec<Entry>,
    /// The decoded text of every string with escapes, one after another.
    decoded: String,
}

#[derive(Clone, Copy)]
struct Entry {
    raw_start: u32,
    raw_end: u32,
    /// Where the decoded text starts in `decoded`, or [`PLAIN`] (the text is the raw string without its quotes).
    decoded_at: u32,
    decoded_len: u32,
    /// [`NO_KEY`] for none.
    key: u32,
    parent_key: u32,
    is_key: bool,
    skip: bool,
}

const PLAIN: u32 = u32::MAX;
const NO_KEY: u32 = u32::MAX;

impl Entry {
    /// The decoded bytes of this string of `body`, whose escaped strings' texts are in `decoded`.
    #[inline(always)]
    fn text<'x>(&self, body: &'x [u8], decoded: &'x [u8]) -> &'x [u8] {
        if self.decoded_at == PLAIN {
            &body[self.raw_start as usize + 1..self.raw_end as usize - 1]
        } else {
            &decoded[self.decoded_at as usize..][..self.decoded_len as usize]
        }
    }
}

/// The largest body [`scan`] reads: offsets are kept in 32 bits.
pub const MAX_BODY: usize = u32::MAX as usize - 1;

impl<'a> JsonStrings<'a> {
    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// String `i`.
    #[inline(always)]
    pub fn get(&self, i: usize) -> JsonString<'_> {
        let e = &self.list[i];
        let key = |k: u32| (k != NO_KEY).then_some(k as usize);
        JsonString {
            raw_start: e.raw_start as usize,
            raw_end: e.raw_end as usize,
            text: self.text(i),
            is_key: e.is_key,
            key: key(e.key),
            parent_key: key(e.parent_key),
            skip: e.skip,
        }
    }

    /// The text of string `i`.
    #[inline(always)]
    pub fn text(&self, i: usize) -> &str {
        let t = self.list[i].text(self.body, self.decoded.as_bytes());
        // SAFETY: `scan` checked that every raw string is valid UTF-8 (`body` is borrowed unchanged since), and
        // `decoded` is a `String`; the spans end at string ends, and a decoded text is whole characters.
        unsafe { std::str::from_utf8_unchecked(t) }
    }

    /// Span of string `i` in the body, with its quotes (`get(i)` without reading the text).
    #[inline(always)]
    pub fn raw(&self, i: usize) -> (usize, usize) {
        let e = &self.list[i];
        (e.raw_start as usize, e.raw_end as usize)
    }

    /// Whether a skip rule matched string `i`.
    #[inline(always)]
    pub fn skipped(&self, i: usize) -> bool {
        self.list[i].skip
    }

    /// The text of string `i` when it is the body's own bytes (no escapes).
    #[inline]
    pub fn body_text(&self, i: usize) -> Option<&'a str> {
        let e = &self.list[i];
        let body: &'a [u8] = self.body;
        // SAFETY: as in `text`.
        (e.decoded_at == PLAIN).then(|| unsafe { std::str::from_utf8_unchecked(e.text(body, &[])) })
    }

    pub fn iter(&self) -> Iter<'_, 'a> {
        Iter { strings: self, at: 0 }
    }
}

/// The strings of a [`JsonStrings`], in order.
pub struct Iter<'s, 'a> {
    strings: &'s JsonStrings<'a>,
    at: usize,
}

impl<'s> Iterator for Iter<'s, '_> {
    type Item = JsonString<'s>;

    #[inline(always)]
    fn next(&mut self) -> Option<JsonString<'s>> {
        let s = (self.at < self.strings.len()).then(|| self.strings.get(self.at))?;
        self.at += 1;
        Some(s)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.strings.len() - self.at;
        (n, Some(n))
    }
}

impl<'s, 'a> IntoIterator for &'s JsonStrings<'a> {
    type Item = JsonString<'s>;
    type IntoIter = Iter<'s, 'a>;

    fn into_iter(self) -> Iter<'s, 'a> {
        self.iter()
    }
}

impl std::fmt::Debug for JsonStrings<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Which values must pass unchanged.
#[derive(Debug, Clone, Default)]
pub struct SkipRules {
    /// Extra paths from the configuration: `a.b.c`, with `*` for any one key or index and `**` for any depth.
    pub paths: Vec<Vec<String>>,
}

impl SkipRules {
    pub fn parse(paths: &[String]) -> Result<SkipRules, String> {
        let mut out = Vec::new();
        for p in paths {
            let segs: Vec<String> = p.split('.').map(str::to_string).collect();
            if p.is_empty() || segs.iter().any(String::is_empty) {
                return Err(format!("skip path {p:?} has an empty segment"));
            }
            out.push(segs);
        }
        Ok(SkipRules { paths: out })
    }
}

#[derive(Clone)]
enum Seg {
    Key(usize), // index into strings
    Index,
}

struct Parser<'a, 'r> {
    b: &'a [u8],
    i: usize,
    strings: Vec<Entry>,
    /// The decoded texts of the strings with escapes.
    decoded: Vec<u8>,
    path: Vec<Seg>,
    rules: &'r SkipRules,
    /// Member lists of finished objects, for the next ones (AWS API output is thousands of small objects: one
    /// allocation each otherwise).
    spare: Vec<Vec<(usize, usize, usize)>>,
}

/// Parses `body` and returns its strings in document order.
pub fn scan<'a>(body: &'a [u8], rules: &SkipRules) -> Result<JsonStrings<'a>, JsonError> {
    if body.len() > MAX_BODY {
        return Err(JsonError {
            offset: 0,
            reason: "document larger than 4 GiB",
        });
    }
    // Room for every string at once, not one doubling after another of a list of millions: a string has two
    // quotes (escaped quotes count too, which only overestimates). One pass at memory speed; a body of one
    // base64 image reserves next to nothing.
    let quotes = memchr::memchr_iter(b'"', body).count();
    let mut p = Parser {
        b: body,
        i: 0,
        strings: Vec::with_capacity(quotes / 2),
        decoded: Vec::new(),
        path: Vec::new(),
        rules,
        spare: Vec::new(),
    };
    p.ws();
    p.value(None, None, 0)?;
    p.ws();
    if p.i != body.len() {
        return Err(p.err("trailing data after the JSON document"));
    }
    Ok(JsonStrings {
        body,
        list: p.strings,
        // SAFETY: the decoded texts are each valid UTF-8 (`Parser::string` checks every escaped string), and so
        // is their concatenation.
        decoded: unsafe { String::from_utf8_unchecked(p.decoded) },
    })
}

impl<'a> Parser<'a, '_> {
    /// The decoded bytes of string `i`.
    #[inline]
    fn text(&self, i: usize) -> &[u8] {
        self.strings[i].text(self.b, &self.decoded)
    }

    fn err(&self, reason: &'static str) -> JsonError {
        JsonError { offset: self.i, reason }
    }

    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Parses one value; returns the range of string indices it produced.
    fn value(&mut self, key: Option<usize>, parent_key: Option<usize>, depth: usize) -> Result<(), JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        let first = self.strings.len();
        match self.peek() {
            Some(b'{') => self.object(key, depth)?,
            Some(b'[') => self.array(key, parent_key, depth)?,
            Some(b'"') => {
                let s = self.string(false, key, parent_key)?;
                self.strings.push(s);
            }
            Some(b't') => self.literal(b"true")?,
            Some(b'f') => self.literal(b"false")?,
            Some(b'n') => self.literal(b"null")?,
            Some(b'-' | b'0'..=b'9') => self.number()?,
            Some(_) => return Err(self.err("unexpected character")),
            None => return Err(self.err("unexpected end of input")),
        }
        if self.path_skipped() {
            for s in &mut self.strings[first..] {
                s.skip = true;
            }
        }
        Ok(())
    }

    /// A member's or an item's value, at `seg` of the path (kept only when skip paths are configured: nothing
    /// else reads it).
    fn nested(
        &mut self,
        seg: Seg,
        key: Option<usize>,
        parent_key: Option<usize>,
        depth: usize,
    ) -> Result<(), JsonError> {
        if self.rules.paths.is_empty() {
            return self.value(key, parent_key, depth);
        }
        self.path.push(seg);
        let r = self.value(key, parent_key, depth);
        self.path.pop();
        r
    }

    fn path_skipped(&self) -> bool {
        if self.rules.paths.is_empty() {
            return false;
        }
        self.rules.paths.iter().any(|pat| self.match_path(pat, 0, 0))
    }

    fn match_path(&self, pat: &[String], pi: usize, si: usize) -> bool {
        if pi == pat.len() {
            return si == self.path.len();
        }
        if pat[pi] == "**" {
            return (si..=self.path.len()).any(|k| self.match_path(pat, pi + 1, k));
        }
        if si == self.path.len() {
            return false;
        }
        let ok = match &self.path[si] {
            _ if pat[pi] == "*" => true,
            Seg::Key(k) => self.text(*k) == pat[pi].as_bytes(),
            Seg::Index => false,
        };
        ok && self.match_path(pat, pi + 1, si + 1)
    }

    fn object(&mut self, own_key: Option<usize>, depth: usize) -> Result<(), JsonError> {
        self.i += 1; // {
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        // (key index, first string of value, end string of value)
        let mut members = self.spare.pop().unwrap_or_default();
        members.clear();
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a string key"));
            }
            let k = self.string(true, None, own_key)?;
            let kidx = self.strings.len();
            self.strings.push(k);
            self.ws();
            if self.peek() != Some(b':') {
                return Err(self.err("expected ':'"));
            }
            self.i += 1;
            self.ws();
            let first = self.strings.len();
            self.nested(Seg::Key(kidx), Some(kidx), own_key, depth + 1)?;
            members.push((kidx, first, self.strings.len()));
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    break;
                }
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
        self.object_rules(own_key, &members, depth == 0);
        self.spare.push(members);
        Ok(())
    }

    /// The built-in skip rules, decided once the whole object is known (a `type` may follow `data`).
    fn object_rules(&mut self, own_key: Option<usize>, members: &[(usize, usize, usize)], top: bool) {
        // `data` members wait for the other members to tell whether they are a base64 payload (only objects
        // that have one are read twice; AWS API output is thousands of small objects without).
        let mut data = Vec::new();
        for &(k, first, end) in members {
            let skip = match self.text(k) {
                // Thinking-block signatures, OpenAI encrypted reasoning: opaque, and signed.
                b"signature" | b"thoughtSignature" | b"thought_signature" | b"encrypted_content" => true,
                // Base64 payloads: Anthropic image/document sources, OpenAI audio and files, Gemini inline data.
                b"data" => {
                    data.push((first, end));
                    false
                }
                b"file_data" => true,
                b"model" => top,
                _ => false,
            };
            if skip {
                self.mark_skipped(first, end);
            }
        }
        if !data.is_empty() && self.data_is_payload(own_key, members) {
            for (first, end) in data {
                self.mark_skipped(first, end);
            }
        }
    }

    /// Whether the `data` member of an object with these members is a base64 payload.
    fn data_is_payload(&self, own_key: Option<usize>, members: &[(usize, usize, usize)]) -> bool {
        let ty = members
            .iter()
            .find(|(k, f, e)| self.text(*k) == b"type" && e - f == 1 && !self.strings[*f].is_key)
            .map(|(_, f, _)| self.text(*f));
        let own = own_key.map(|k| self.text(k));
        matches!(ty, Some(b"base64") | Some(b"redacted_thinking"))
            || matches!(own, Some(b"inline_data" | b"inlineData" | b"input_audio" | b"audio"))
    }

    fn mark_skipped(&mut self, first: usize, end: usize) {
        for s in &mut self.strings[first..end] {
            s.skip = true;
        }
    }

    fn array(&mut self, key: Option<usize>, parent_key: Option<usize>, depth: usize) -> Result<(), JsonError> {
        self.i += 1; // [
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            self.nested(Seg::Index, key, parent_key, depth + 1)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
    }

    fn literal(&mut self, lit: &'static [u8]) -> Result<(), JsonError> {
        if self.b[self.i..].starts_with(lit) {
            self.i += lit.len();
            Ok(())
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn number(&mut self) -> Result<(), JsonError> {
        let b = self.b;
        let digits = |i: &mut usize| {
            let s = *i;
            while *i < b.len() && b[*i].is_ascii_digit() {
                *i += 1;
            }
            *i - s
        };
        let mut i = self.i;
        if b[i] == b'-' {
            i += 1;
        }
        if i < b.len() && b[i] == b'0' {
            i += 1;
        } else if digits(&mut i) == 0 {
            self.i = i;
            return Err(self.err("invalid number"));
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            if digits(&mut i) == 0 {
                self.i = i;
                return Err(self.err("invalid number"));
            }
        }
        if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
            i += 1;
            if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                i += 1;
            }
            if digits(&mut i) == 0 {
                self.i = i;
                return Err(self.err("invalid number"));
            }
        }
        self.i = i;
        Ok(())
    }

    fn string(&mut self, is_key: bool, key: Option<usize>, parent_key: Option<usize>) -> Result<Entry, JsonError> {
        let start = self.i;
        let key = key.map_or(NO_KEY, |k| k as u32);
        let parent_key = parent_key.map_or(NO_KEY, |k| k as u32);
        self.i += 1;
        let b = self.b;
        let body_start = self.i;
        // Fast path: no escapes. One pass to the first special byte, which tells whether the bytes before it are
        // all ASCII (most keys and ids: no UTF-8 check then).
        let (run, ascii) = plain_run_ascii(&b[body_start..]);
        let p = body_start + run;
        match b.get(p) {
            None => return Err(self.err("unterminated string")),
            Some(b'"') => {
                if !ascii && utf8(&b[body_start..p]).is_none() {
                    return Err(self.err("string is not valid UTF-8"));
                }
                self.i = p + 1;
                return Ok(Entry {
                    raw_start: start as u32,
                    raw_end: (p + 1) as u32,
                    decoded_at: PLAIN,
                    decoded_len: 0,
                    key,
                    parent_key,
                    is_key,
                    skip: false,
                });
            }
            Some(b'\\') => {}
            Some(_) => {
                self.i = p;
                return Err(self.err("control character in string"));
            }
        }
        // Slow path: decode escapes, after the texts decoded before.
        let at = self.decoded.len();
        let out = &mut self.decoded;
        let mut i = body_start;
        loop {
            let Some(&c) = b.get(i) else {
                self.i = i;
                return Err(self.err("unterminated string"));
            };
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = b.get(i + 1) else {
                        self.i = i;
                        return Err(self.err("unterminated escape"));
                    };
                    i += 2;
                    match e {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'/' => out.push(b'/'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let Some(u) = hex4(b, i) else {
                                self.i = i;
                                return Err(self.err("invalid \\u escape"));
                            };
                            i += 4;
                            let ch = if (0xD800..0xDC00).contains(&u) {
                                // High surrogate: a low one must follow.
                                let lo = if b.get(i) == Some(&b'\\') && b.get(i + 1) == Some(&b'u') {
                                    hex4(b, i + 2)
                                } else {
                                    None
                                };
                                match lo {
                                    Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                                        i += 6;
                                        char::from_u32(0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00))
                                    }
                                    _ => None,
                                }
                            } else {
                                char::from_u32(u)
                            };
                            // A lone surrogate cannot be represented in UTF-8: refuse rather than guess.
                            let Some(ch) = ch else {
                                self.i = i;
                                return Err(self.err("unpaired surrogate in \\u escape"));
                            };
                            push_char(out, ch);
                        }
                        _ => {
                            self.i = i;
                            return Err(self.err("invalid escape"));
                        }
                    }
                }
                c if c < 0x20 => {
                    self.i = i;
                    return Err(self.err("control character in string"));
                }
                _ => {
                    // Copy the plain run up to the next quote, backslash or control character at once.
                    let run = plain_run(&b[i..]).max(1);
                    if run == 1 {
                        out.push(c); // (a space between escapes: no copy call for one byte)
                    } else {
                        out.extend_from_slice(&b[i..i + run]);
                    }
                    i += run;
                }
            }
        }
        self.i = i + 1;
        // The raw string is checked, not `out`: `out` is its plain runs (each cut at ASCII bytes, so whole
        // characters) and the characters its escapes stand for. (One pass over the raw string costs less than
        // telling each run's ASCII-ness: escaped Korean is a run of one space between escapes.)
        if utf8(&b[body_start..i]).is_none() {
            return Err(JsonError {
                offset: start,
                reason: "string is not valid UTF-8",
            });
        }
        Ok(Entry {
            raw_start: start as u32,
            raw_end: (i + 1) as u32,
            decoded_at: at as u32,
            decoded_len: (self.decoded.len() - at) as u32,
            key,
            parent_key,
            is_key,
            skip: false,
        })
    }
}

/// `b` as a `str` when it is valid UTF-8: `simdutf8` for long strings (the same answer as `std::str::from_utf8`,
/// several times faster), std for short ones (keys, ids: simdutf8's set-up costs more there).
#[inline]
fn utf8(b: &[u8]) -> Option<&str> {
    if b.len() >= 64 {
        simdutf8::basic::from_utf8(b).ok()
    } else {
        std::str::from_utf8(b).ok()
    }
}

/// The value of the four hex digits at `b[at..]` (text in another script than Latin is all `\\uXXXX` escapes when
/// a client escapes non-ASCII, as Python's `json.dumps` does by default: one per two or three bytes of UTF-8).
#[inline]
fn hex4(b: &[u8], at: usize) -> Option<u32> {
    let h = b.get(at..at + 4)?;
    let d = |k: usize| HEX[h[k] as usize] as u32;
    let (x0, x1, x2, x3) = (d(0), d(1), d(2), d(3));
    ((x0 | x1 | x2 | x3) < 16).then_some(x0 << 12 | x1 << 8 | x2 << 4 | x3)
}

/// The value of each hex digit, 0xff for other bytes.
const HEX: [u8; 256] = {
    let mut t = [0xff; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = match (c as u8 as char).to_digit(16) {
            Some(v) => v as u8,
            None => 0xff,
        };
        c += 1;
    }
    t
};

/// Appends the UTF-8 of `ch` (copies of a known length, which compile to moves, not a copy call).
#[inline]
fn push_char(out: &mut Vec<u8>, ch: char) {
    let mut buf = [0u8; 4];
    match ch.encode_utf8(&mut buf).len() {
        1 => out.push(buf[0]),
        2 => out.extend_from_slice(&buf[..2]),
        3 => out.extend_from_slice(&buf[..3]),
        _ => out.extend_from_slice(&buf),
    }
}

/// Appends `s` as a JSON string body (without quotes): `"`, `\` and control characters escaped.
pub fn escape_into(s: &str, out: &mut Vec<u8>) {
    escape_bytes_into(s.as_bytes(), out)
}

/// [`escape_into`] on bytes (per byte, so a text may be escaped piece by piece).
pub(crate) fn escape_bytes_into(b: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    #[cfg(target_arch = "x86_64")]
    {
        // Sixteen bytes at a time, stored whole into the spare room and kept up to the first special byte (if
        // any), whose escape follows: no call per run. AWS CLI output quoted in a tool result is an escape every
        // few bytes (`\n`, indentation, `\"`), and one copy call per run and one per escape cost twice this.
        out.reserve(b.len() + b.len() / 8 + 32);
        while i + 16 <= b.len() {
            if out.capacity() - out.len() < 32 {
                out.reserve(b.len() - i + 32);
            }
            // SAFETY: `b[i..i + 16]` is in bounds; the spare room holds at least 32 bytes, enough for the 16
            // stored and an escape of at most 6 after at most 15 of them, and `set_len` counts only bytes
            // written.
            unsafe {
                let (bits, _) = sse2::specials(b.as_ptr().add(i));
                let len = out.len();
                let dst = out.as_mut_ptr().add(len);
                std::ptr::copy_nonoverlapping(b.as_ptr().add(i), dst, 16);
                if bits == 0 {
                    out.set_len(len + 16);
                    i += 16;
                    continue;
                }
                let run = bits.trailing_zeros() as usize;
                let (esc, n) = escape_of(b[i + run]);
                std::ptr::copy_nonoverlapping(esc.as_ptr(), dst.add(run), 6);
                out.set_len(len + run + n);
                i += run + 1;
            }
        }
    }
    let mut last = i;
    while i < b.len() {
        let run = plain_run(&b[i..]);
        i += run;
        let Some(&c) = b.get(i) else { break };
        out.extend_from_slice(&b[last..i]);
        let (esc, n) = escape_of(c);
        out.extend_from_slice(&esc[..n]);
        i += 1;
        last = i;
    }
    out.extend_from_slice(&b[last..]);
}

/// The escape of a byte [`plain_run`] stops at, in six bytes (how many of them count, the second).
#[inline(always)]
fn escape_of(c: u8) -> ([u8; 6], usize) {
    const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";
    match c {
        b'"' => (*b"\\\"    ", 2),
        b'\\' => (*b"\\\\    ", 2),
        b'\n' => (*b"\\n    ", 2),
        b'\r' => (*b"\\r    ", 2),
        b'\t' => (*b"\\t    ", 2),
        _ => {
            debug_assert!(
                c < 0x20,
                "plain_run stops only at a quote, a backslash or a control character"
            );
            (
                [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX_DIGITS[(c >> 4) as usize & 15],
                    HEX_DIGITS[(c & 15) as usize],
                ],
                6,
            )
        }
    }
}

/// How many bytes at the start of `b` stand for themselves in a JSON string: up to the first `"`, `\\` or control
/// character. Sixteen bytes at a time (SSE2, which every x86-64 CPU has: a compare per class and a bit mask, so
/// the first special byte is found without a loop over the bytes before it; the text of a request has one every
/// few dozen bytes, a line end or a quote).
#[inline]
pub(crate) fn plain_run(b: &[u8]) -> usize {
    plain_run_ascii(b).0
}

/// [`plain_run`], and whether the bytes of the run are all ASCII.
#[inline]
fn plain_run_ascii(b: &[u8]) -> (usize, bool) {
    #[cfg(target_arch = "x86_64")]
    {
        let mut i = 0;
        let mut high = 0;
        while i + 16 <= b.len() {
            // SAFETY: `b[i..i + 16]` is in bounds.
            let (bits, h) = unsafe { sse2::specials(b.as_ptr().add(i)) };
            if bits != 0 {
                let run = bits.trailing_zeros();
                return (i + run as usize, high == 0 && h & ((1 << run) - 1) == 0);
            }
            high |= h;
            i += 16;
        }
        // The last bytes, in a copy padded with plain ones.
        let mut tail = [b'a'; 16];
        tail[..b.len() - i].copy_from_slice(&b[i..]);
        // SAFETY: `tail` holds 16 bytes.
        let (bits, h) = unsafe { sse2::specials(tail.as_ptr()) };
        let run = bits.trailing_zeros().min(16);
        let low = if run >= 16 { u32::MAX } else { (1 << run) - 1 };
        (i + run.min((b.len() - i) as u32) as usize, high == 0 && h & low == 0)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let run = b.iter().position(|&c| special(c)).unwrap_or(b.len());
        (run, b[..run].is_ascii())
    }
}

/// A byte that does not stand for itself in a JSON string.
#[cfg(any(test, not(target_arch = "x86_64")))]
#[inline]
fn special(c: u8) -> bool {
    c < 0x20 || c == b'"' || c == b'\\'
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::*;

    /// Bit `k` set when byte `k` of the 16 at `p` is special (see [`super::special`]), and bit `k` set when it is
    /// not ASCII.
    ///
    /// # Safety
    /// `p..p + 16` is readable. (SSE2 is part of x86-64.)
    #[inline(always)]
    pub(super) unsafe fn specials(p: *const u8) -> (u32, u32) {
        // SAFETY: the caller's; unaligned load.
        let v = unsafe { _mm_loadu_si128(p as *const __m128i) };
        // `min(v, 0x1f) == v`: `v <= 0x1f`, unsigned (bytes of 0x80 and above are not special).
        let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        (
            _mm_movemask_epi8(_mm_or_si128(control, _mm_or_si128(quote, backslash))) as u32,
            _mm_movemask_epi8(v) as u32,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(body: &str) -> Vec<(String, bool)> {
        scan(body.as_bytes(), &SkipRules::default())
            .unwrap()
            .iter()
            .map(|s| (s.text.to_string(), s.skip))
            .collect()
    }

    #[test]
    fn strings_and_escapes() {
        let t = texts(r#"{"a\n":"x\"y\u00e9\ud83d\ude00","n":[1,-2.5e3,true,null,"z"],"k":"\uAC00\u00C9\u0041"}"#);
        assert_eq!(t[0].0, "a\n");
        assert_eq!(t[1].0, "x\"yé😀");
        assert_eq!(t[3].0, "z");
        assert_eq!(t[5].0, "가ÉA");
    }

    #[test]
    fn rejects_bad_json() {
        for bad in [
            "",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "[1,]",
            "[01]",
            "\"\\x\"",
            "\"a",
            "{} x",
            "[1 2]",
            "\"\\ud800\"",
            "\"\\u+00e\"",
            "\"\\u00g0\"",
            "\"\\u00e\"",
            "\"\\ud83d\\u+e00\"",
            "nul",
            "\"a\u{1}\"",
            "-",
            "1.",
            "1e",
        ] {
            assert!(scan(bad.as_bytes(), &SkipRules::default()).is_err(), "{bad:?}");
        }
        let deep = "[".repeat(MAX_DEPTH + 2) + &"]".repeat(MAX_DEPTH + 2);
        assert!(scan(deep.as_bytes(), &SkipRules::default()).is_err());
        // Invalid UTF-8 with and without escapes in the string (two readers), and a character cut by an escape.
        for bad in [&b"\"\xff\""[..], b"\"a\\n\xff\"", b"\"\xc3\\n\xa9\"", b"\"\\n\xc3\""] {
            let e = scan(bad, &SkipRules::default()).unwrap_err();
            assert_eq!(e.reason, "string is not valid UTF-8", "{bad:?}");
        }
        assert_eq!(texts("\"\\n\u{e9}\\t\u{ac00}\"")[0].0, "\n\u{e9}\t\u{ac00}");
    }

    #[test]
    fn builtin_skip_rules() {
        let body = r#"{"model":"m","messages":[{"content":[
            {"type":"image","source":{"data":"QUJD","media_type":"image/png","type":"base64"}},
            {"type":"document","source":{"type":"text","data":"plain i-1234567890abcdef0"}},
            {"type":"thinking","thinking":"t","signature":"sig"},
            {"type":"redacted_thinking","data":"opaque"},
            {"type":"tool_use","input":{"model":"nested"}}]}],
            "contents":[{"parts":[{"inline_data":{"mime_type":"image/png","data":"QkFT"}}]}]}"#;
        let skipped: Vec<String> = texts(body).into_iter().filter(|(_, s)| *s).map(|(t, _)| t).collect();
        // (`model` only at the top level: a tool's input may name one with an identifier in it.)
        assert_eq!(skipped, ["m", "QUJD", "sig", "opaque", "QkFT"]);
    }

    #[test]
    fn configured_skip_paths() {
        let rules = SkipRules::parse(&["meta.trace".into(), "**.blob".into(), "items.*.raw".into()]).unwrap();
        let body =
            r#"{"meta":{"trace":"a","other":"b"},"x":{"y":{"blob":{"k":"c"}}},"items":[{"raw":"d","cooked":"e"}]}"#;
        let s = scan(body.as_bytes(), &rules).unwrap();
        let skipped: Vec<&str> = s.iter().filter(|s| s.skip).map(|s| s.text).collect();
        assert_eq!(skipped, ["a", "k", "c", "d"]);
    }

    #[test]
    fn escape_round_trip() {
        let s = "q\"b\\n\n\u{1}é";
        let mut out = b"\"".to_vec();
        escape_into(s, &mut out);
        out.push(b'"');
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, s);
    }

    /// The block-at-a-time escaping writes what escaping byte by byte writes, with special bytes at every offset
    /// of a block and across blocks' ends, in strings of every length up to a few blocks.
    #[test]
    fn escape_by_blocks_matches_byte_by_byte() {
        fn reference(s: &str) -> Vec<u8> {
            let mut out = Vec::new();
            for &c in s.as_bytes() {
                match c {
                    b'"' => out.extend_from_slice(b"\\\""),
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    0..=0x1f => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
                    _ => out.push(c),
                }
            }
            out
        }
        let palette = [
            "a", "é", "😀", "\"", "\\", "\n", "\u{1}", "\u{1f}", "\u{8}", " ", "\t", "\r", "xyz", "가",
        ];
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (x % 60) as usize;
            let s: String = (0..n)
                .map(|k| palette[((x >> (k % 50)) as usize + k * 7) % palette.len()])
                .collect();
            // Into an empty buffer and after other output (another capacity, another offset).
            for prefix in [&b""[..], b"{\"k\":\""] {
                let mut out = prefix.to_vec();
                escape_into(&s, &mut out);
                assert_eq!(&out[prefix.len()..], &reference(&s)[..], "{s:?}");
            }
        }
    }
}

#[cfg(test)]
mod run_tests {
    use super::*;

    /// `\\u` escapes of code points all over Unicode (pairs beyond the BMP), in both cases of hex digits, and of
    /// every byte value in each digit's place.
    #[test]
    fn unicode_escapes() {
        for cp in (0..=0x10ffffu32)
            .step_by(97)
            .chain([0x7f, 0x80, 0x7ff, 0x800, 0xffff, 0x10000, 0x10ffff])
        {
            let Some(ch) = char::from_u32(cp) else { continue };
            let mut units = [0u16; 2];
            let esc: String = ch
                .encode_utf16(&mut units)
                .iter()
                .map(|u| format!("\\u{u:04x}"))
                .collect();
            for e in [esc.clone(), esc.to_uppercase().replace("\\U", "\\u")] {
                let body = format!("\"a{e}b\"");
                let read = scan(body.as_bytes(), &SkipRules::default()).unwrap();
                assert_eq!(read.get(0).text, format!("a{ch}b"), "{e}");
            }
        }
        for c in 0..=255u8 {
            for at in 0..4 {
                let mut h = *b"00e9";
                h[at] = c;
                let want = std::str::from_utf8(&h)
                    .ok()
                    .and_then(|t| u32::from_str_radix(t, 16).ok());
                let want = want.filter(|_| h.iter().all(u8::is_ascii_hexdigit));
                assert_eq!(hex4(&h, 0), want, "{h:?}");
            }
        }
    }

    /// `plain_run` stops at the first special byte, whatever its value and place in a block of 16.
    #[test]
    fn plain_run_stops_at_every_special_byte() {
        for c in 0..=255u8 {
            for len in [1usize, 15, 16, 17, 33, 40] {
                for at in 0..len {
                    let mut b = vec![b'x'; len];
                    b[at] = c;
                    b[len - 1] = if at == len - 1 { c } else { b'"' };
                    let want = b.iter().position(|&c| special(c)).unwrap_or(len);
                    assert_eq!(plain_run(&b), want, "byte {c:#x} at {at} of {len}");
                    // And whether the run is ASCII, with the byte before, in or after the run (`é` is two).
                    for other in [b'x', 0xc3] {
                        for at2 in 0..len {
                            let mut b = b.clone();
                            b[at2] = other;
                            let run = b.iter().position(|&c| special(c)).unwrap_or(len);
                            assert_eq!(plain_run_ascii(&b), (run, b[..run].is_ascii()), "{b:?}");
                        }
                    }
                    assert_eq!(plain_run(&b[..at + 1]), if special(c) { at } else { at + 1 });
                }
            }
        }
    }

    /// The block-skipping escaper and string reader agree with serde_json on every position of a special byte.
    #[test]
    fn escaping_and_reading_agree_with_serde_json() {
        let specials = ["\"", "\\", "\n", "\u{1}", "\t", "\u{1f}", "é", "x"];
        for len in [0usize, 1, 15, 16, 17, 31, 32, 33, 70] {
            for at in 0..=len {
                for sp in specials {
                    let text = format!("{}{sp}{}", "a".repeat(at), "b".repeat(len - at));
                    let mut out = Vec::new();
                    escape_into(&text, &mut out);
                    let quoted = format!("\"{}\"", String::from_utf8(out).unwrap());
                    assert_eq!(serde_json::from_str::<String>(&quoted).unwrap(), text);
                    let read = scan(quoted.as_bytes(), &SkipRules::default()).unwrap();
                    assert_eq!(read.get(0).text, text);
                    assert_eq!(
                        plain_run(text.as_bytes()),
                        text.find(['"', '\\'])
                            .into_iter()
                            .chain(text.bytes().position(|c| c < 0x20))
                            .min()
                            .unwrap_or(text.len())
                    );
                }
            }
        }
    }
}
