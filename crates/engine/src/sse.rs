//! Server-sent events: a framer that cuts an arbitrarily chunked byte stream into complete events, raw bytes
//! untouched, and [`Event`] to read an event's `event:` name and `data` payload and to write it back with a new
//! payload, every other line byte for byte.
//!
//! Lines end with `\r\n`, `\n` or `\r`; a blank line ends an event. Chunks may split anywhere, inside `\r\n` and
//! inside UTF-8 sequences. One event larger than the limit is an error, never unbounded buffering.

use std::borrow::Cow;
use std::fmt;

use memchr::{memchr, memchr2};

/// Default bound on one event.
pub const DEFAULT_MAX_EVENT: usize = 16 << 20;

const BOM: &[u8] = b"\xEF\xBB\xBF";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// An event grew beyond the limit without ending.
    EventTooLarge { limit: usize },
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::EventTooLarge { limit } => {
                write!(f, "server-sent event larger than {limit} bytes")
            }
        }
    }
}

impl std::error::Error for SseError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cr {
    /// Nothing special.
    None,
    /// The last chunk ended with `\r` closing a non-empty line of the pending event: a leading `\n` belongs to it.
    InEvent,
    /// The last chunk ended with `\r` closing an event that has been emitted: a leading `\n` is emitted alone.
    AfterEvent,
}

/// Cuts a byte stream into SSE events. Feed chunks; complete events are handed to the callback as raw bytes,
/// terminating blank line included. Events that lie within one chunk are not copied.
#[derive(Debug, Clone)]
pub struct SseFramer {
    pending: Vec<u8>,
    line_has_content: bool,
    cr: Cr,
    limit: usize,
}

impl Default for SseFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl SseFramer {
    pub fn new() -> Self {
        Self::with_limit(DEFAULT_MAX_EVENT)
    }

    /// A framer that fails on events larger than `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        SseFramer {
            pending: Vec::new(),
            line_has_content: false,
            cr: Cr::None,
            limit,
        }
    }

    /// Bytes of the event being assembled.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Feeds a chunk; calls `emit` with every event it completes, in order.
    ///
    /// A `\r` at the end of a chunk that ends an event emits the event at once; if the next chunk starts with the
    /// `\n` of that `\r\n`, the `\n` is emitted on its own (it parses as an empty event), so no byte is held.
    pub fn feed(&mut self, chunk: &[u8], mut emit: impl FnMut(&[u8])) -> Result<(), SseError> {
        if chunk.is_empty() {
            return Ok(());
        }
        // `i`: where line scanning resumes; `ev_start`: where the bytes of the pending event start in `chunk`.
        let (mut i, mut ev_start) = (0, 0);
        match self.cr {
            Cr::None => {}
            Cr::InEvent => {
                if chunk[0] == b'\n' {
                    i = 1;
                }
            }
            Cr::AfterEvent => {
                if chunk[0] == b'\n' {
                    emit(&chunk[..1]);
                    (i, ev_start) = (1, 1);
                }
            }
        }
        self.cr = Cr::None;
        while let Some(k) = memchr2(b'\n', b'\r', &chunk[i..]) {
            let j = i + k;
            let empty = !self.line_has_content && j == i;
            let (t, cr_at_end) = if chunk[j] == b'\n' {
                (j + 1, false)
            } else if j + 1 < chunk.len() {
                (j + 1 + usize::from(chunk[j + 1] == b'\n'), false)
            } else {
                (j + 1, true)
            };
            self.line_has_content = false;
            i = t;
            if empty {
                self.emit_event(&chunk[ev_start..t], &mut emit)?;
                ev_start = t;
                if cr_at_end {
                    self.cr = Cr::AfterEvent;
                }
            } else if cr_at_end {
                self.cr = Cr::InEvent;
            }
        }
        if i < chunk.len() {
            self.line_has_content = true;
        }
        let rest = &chunk[ev_start..];
        if self.pending.len() + rest.len() > self.limit {
            return Err(SseError::EventTooLarge { limit: self.limit });
        }
        self.pending.extend_from_slice(rest);
        Ok(())
    }

    fn emit_event(&mut self, part: &[u8], emit: &mut impl FnMut(&[u8])) -> Result<(), SseError> {
        if self.pending.len() + part.len() > self.limit {
            return Err(SseError::EventTooLarge { limit: self.limit });
        }
        if self.pending.is_empty() {
            emit(part);
        } else {
            self.pending.extend_from_slice(part);
            emit(&self.pending);
            self.pending.clear();
        }
        Ok(())
    }

    /// End of stream: emits the bytes of an unterminated last event, if any (check
    /// [`Event::is_terminated`]), and resets the framer.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8])) {
        if !self.pending.is_empty() {
            emit(&self.pending);
            self.pending.clear();
        }
        self.line_has_content = false;
        self.cr = Cr::None;
    }
}

/// One line of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// A byte-order mark before the first line of the stream, if any (not part of `text`).
    pub lead: &'a [u8],
    /// The line without its terminator.
    pub text: &'a [u8],
    /// `\r\n`, `\n`, `\r`, or empty for an unterminated last line.
    pub term: &'a [u8],
}

/// What a line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field<'a> {
    /// The blank line that ends an event.
    Blank,
    /// `:comment`.
    Comment(&'a [u8]),
    /// `name: value` (one space after the colon is not part of the value), or `name` alone with an empty value.
    Field { name: &'a [u8], value: &'a [u8] },
}

impl<'a> Line<'a> {
    pub fn field(&self) -> Field<'a> {
        let t = self.text;
        if t.is_empty() {
            return Field::Blank;
        }
        if t[0] == b':' {
            return Field::Comment(&t[1..]);
        }
        match memchr(b':', t) {
            Some(c) => {
                let v = &t[c + 1..];
                Field::Field {
                    name: &t[..c],
                    value: v.strip_prefix(b" ").unwrap_or(v),
                }
            }
            None => Field::Field { name: t, value: &[] },
        }
    }

    fn is_data(&self) -> bool {
        matches!(self.field(), Field::Field { name: b"data", .. })
    }
}

/// Iterator over the lines of an event.
#[derive(Debug, Clone)]
pub struct Lines<'a> {
    raw: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = Line<'a>;
    fn next(&mut self) -> Option<Line<'a>> {
        if self.pos >= self.raw.len() {
            return None;
        }
        let start = self.pos;
        let lead_len = if start == 0 && self.raw.starts_with(BOM) {
            BOM.len()
        } else {
            0
        };
        let from = start + lead_len;
        let (end, term_end) = match memchr2(b'\n', b'\r', &self.raw[from..]) {
            Some(k) => {
                let j = from + k;
                let t = if self.raw[j] == b'\r' && self.raw.get(j + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                (j, j + t)
            }
            None => (self.raw.len(), self.raw.len()),
        };
        self.pos = term_end;
        Some(Line {
            lead: &self.raw[start..from],
            text: &self.raw[from..end],
            term: &self.raw[end..term_end],
        })
    }
}

/// A view of one event's raw bytes.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    raw: &'a [u8],
}

impl<'a> Event<'a> {
    pub fn new(raw: &'a [u8]) -> Self {
        Event { raw }
    }

    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    pub fn lines(&self) -> Lines<'a> {
        Lines { raw: self.raw, pos: 0 }
    }

    /// True when the event ends with its blank line (false only for the tail of a stream cut short).
    pub fn is_terminated(&self) -> bool {
        self.lines()
            .last()
            .is_some_and(|l| l.text.is_empty() && !l.term.is_empty())
    }

    /// The value of the last `event:` field.
    pub fn name(&self) -> Option<&'a [u8]> {
        self.lines()
            .filter_map(|l| match l.field() {
                Field::Field { name: b"event", value } => Some(value),
                _ => None,
            })
            .last()
    }

    /// The value of the last `id:` field.
    pub fn id(&self) -> Option<&'a [u8]> {
        self.lines()
            .filter_map(|l| match l.field() {
                Field::Field { name: b"id", value } => Some(value),
                _ => None,
            })
            .last()
    }

    /// The `data` payload: the values of all `data:` lines joined with `\n`; `None` when there is no data line.
    pub fn data(&self) -> Option<Cow<'a, [u8]>> {
        let mut data: Option<Cow<'a, [u8]>> = None;
        for l in self.lines() {
            if let Field::Field { name: b"data", value } = l.field() {
                match &mut data {
                    None => data = Some(Cow::Borrowed(value)),
                    Some(d) => {
                        let d = d.to_mut();
                        d.push(b'\n');
                        d.extend_from_slice(value);
                    }
                }
            }
        }
        data
    }

    /// Writes the event with `data` as its payload: the new `data:` lines take the place of the first data line
    /// (same prefix, same line ending), later data lines are dropped, and every other line is copied byte for
    /// byte. An event without a data line gets one before its blank line. With the payload it already has, a
    /// single-data-line event is written back unchanged.
    pub fn write_with_data(&self, data: &[u8], out: &mut Vec<u8>) {
        let mut wrote = false;
        for l in self.lines() {
            if l.is_data() {
                if !wrote {
                    wrote = true;
                    let space = l.text.get(5) == Some(&b' ');
                    out.extend_from_slice(l.lead);
                    write_data_lines(data, space, l.term, out);
                }
                continue;
            }
            if !wrote && l.text.is_empty() && !l.term.is_empty() {
                wrote = true;
                write_data_lines(data, true, l.term, out);
            }
            out.extend_from_slice(l.lead);
            out.extend_from_slice(l.text);
            out.extend_from_slice(l.term);
        }
        if !wrote {
            let term: &[u8] = if out.last() == Some(&b'\r') || out.ends_with(b"\r\n") {
                b"\r\n"
            } else {
                b"\n"
            };
            write_data_lines(data, true, term, out);
            out.extend_from_slice(term);
        }
    }
}

impl Event<'_> {
    /// Writes the event without its `data:` lines.
    pub fn write_without_data(&self, out: &mut Vec<u8>) {
        for l in self.lines().filter(|l| !l.is_data()) {
            out.extend_from_slice(l.lead);
            out.extend_from_slice(l.text);
            out.extend_from_slice(l.term);
        }
    }
}

/// Writes `data` as `data:` lines; a line break inside `data` (`\n`, `\r\n` or `\r`) starts a new line.
fn write_data_lines(data: &[u8], space: bool, term: &[u8], out: &mut Vec<u8>) {
    let mid_term: &[u8] = if term.is_empty() { b"\n" } else { term };
    let mut pos = 0;
    loop {
        let (end, next) = match memchr2(b'\n', b'\r', &data[pos..]) {
            Some(k) => {
                let j = pos + k;
                let t = if data[j] == b'\r' && data.get(j + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                (j, Some(j + t))
            }
            None => (data.len(), None),
        };
        let seg = &data[pos..end];
        out.extend_from_slice(b"data:");
        if space || seg.first() == Some(&b' ') {
            out.push(b' ');
        }
        out.extend_from_slice(seg);
        match next {
            Some(n) => {
                out.extend_from_slice(mid_term);
                pos = n;
            }
            None => {
                out.extend_from_slice(term);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(chunks: &[&[u8]], limit: usize) -> Result<Vec<Vec<u8>>, SseError> {
        let mut f = SseFramer::with_limit(limit);
        let mut evs = Vec::new();
        for c in chunks {
            f.feed(c, |e| evs.push(e.to_vec()))?;
        }
        f.finish(|e| evs.push(e.to_vec()));
        Ok(evs)
    }

    /// Events of `stream` after merging the lone-`\n` events produced by a `\r` | `\n` split.
    fn normalized(evs: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        for e in evs {
            if e == b"\n" && out.last().is_some_and(|l| l.ends_with(b"\r")) {
                out.last_mut().unwrap().push(b'\n');
            } else {
                out.push(e);
            }
        }
        out
    }

    const STREAM: &[u8] = b": hello\n\nevent: a\ndata: 1\nid: 7\nretry: 100\n\n\
        data: x\r\ndata:  y\r\n\r\n\
        event: b\rdata: z\r\r\
        data: {\"t\":\"\xc3\xa9\xe6\x97\xa5\"}\n\n\n\
        data: mixed\r\n\n\
        data: tail";

    #[test]
    fn frames() {
        let evs = frame(&[STREAM], 1 << 20).unwrap();
        let want: Vec<&[u8]> = vec![
            b": hello\n\n",
            b"event: a\ndata: 1\nid: 7\nretry: 100\n\n",
            b"data: x\r\ndata:  y\r\n\r\n",
            b"event: b\rdata: z\r\r",
            b"data: {\"t\":\"\xc3\xa9\xe6\x97\xa5\"}\n\n",
            b"\n",
            b"data: mixed\r\n\n",
            b"data: tail",
        ];
        assert_eq!(evs, want);
        assert_eq!(evs.concat(), STREAM);
        let e = Event::new(&evs[1]);
        assert_eq!(e.name(), Some(&b"a"[..]));
        assert_eq!(e.id(), Some(&b"7"[..]));
        assert_eq!(e.data().unwrap(), &b"1"[..]);
        let e = Event::new(&evs[2]);
        assert_eq!(e.data().unwrap(), &b"x\n y"[..]);
        assert!(e.is_terminated());
        assert_eq!(Event::new(&evs[3]).name(), Some(&b"b"[..]));
        assert_eq!(Event::new(&evs[3]).data().unwrap(), &b"z"[..]);
        assert!(Event::new(&evs[0]).data().is_none());
        assert!(Event::new(&evs[5]).data().is_none());
        assert!(!Event::new(&evs[7]).is_terminated());
        assert_eq!(Event::new(&evs[7]).data().unwrap(), &b"tail"[..]);
    }

    #[test]
    fn every_split() {
        let whole = frame(&[STREAM], 1 << 20).unwrap();
        for a in 0..=STREAM.len() {
            for b in a..=STREAM.len() {
                let evs = frame(&[&STREAM[..a], &STREAM[a..b], &STREAM[b..]], 1 << 20).unwrap();
                assert_eq!(evs.concat(), STREAM);
                assert_eq!(normalized(evs), whole, "split {a} {b}");
            }
        }
        let bytes: Vec<&[u8]> = STREAM.chunks(1).collect();
        let evs = frame(&bytes, 1 << 20).unwrap();
        assert_eq!(normalized(evs), whole);
    }

    #[test]
    fn cr_lf_split_emits_at_once() {
        let mut f = SseFramer::new();
        let mut evs = Vec::new();
        f.feed(b"data: a\r\n\r", |e| evs.push(e.to_vec())).unwrap();
        assert_eq!(evs, vec![b"data: a\r\n\r".to_vec()]);
        f.feed(b"\ndata: b\r", |e| evs.push(e.to_vec())).unwrap();
        f.feed(b"\n\r\n", |e| evs.push(e.to_vec())).unwrap();
        assert_eq!(
            evs,
            vec![b"data: a\r\n\r".to_vec(), b"\n".to_vec(), b"data: b\r\n\r\n".to_vec()]
        );
    }

    #[test]
    fn limit() {
        assert!(frame(&[b"data: 0123456789\n\n"], 12).is_err());
        assert!(frame(&[b"data: 0123", b"456789"], 12).is_err());
        assert!(frame(&[b"data: 01\n\n", b"data: 02\n\n"], 12).is_ok());
        // Memory stays bounded by the limit however the stream is cut.
        let mut f = SseFramer::with_limit(100);
        let mut err = false;
        for _ in 0..1000 {
            if f.feed(b"data: xxxxxxxx", |_| {}).is_err() {
                err = true;
                break;
            }
            assert!(f.pending_len() <= 100);
        }
        assert!(err);
    }

    #[test]
    fn rewrite() {
        let raw = b"event: e\r\nid: 1\r\n: c\r\ndata: old\r\ndata: more\r\nretry: 5\r\n\r\n";
        let e = Event::new(raw);
        let mut out = Vec::new();
        e.write_with_data(b"new\nline", &mut out);
        assert_eq!(
            out,
            b"event: e\r\nid: 1\r\n: c\r\ndata: new\r\ndata: line\r\nretry: 5\r\n\r\n"
        );
        // No space after the colon is kept, unless the value starts with a space.
        let raw = b"data:old\n\n";
        let mut out = Vec::new();
        Event::new(raw).write_with_data(b" x", &mut out);
        assert_eq!(out, b"data:  x\n\n");
        assert_eq!(Event::new(&out).data().unwrap(), &b" x"[..]);
        let mut out = Vec::new();
        Event::new(raw).write_with_data(b"old", &mut out);
        assert_eq!(out, raw);
        // BOM on the first line.
        let raw = b"\xEF\xBB\xBFdata: a\n\n";
        assert_eq!(Event::new(raw).data().unwrap(), &b"a"[..]);
        let mut out = Vec::new();
        Event::new(raw).write_with_data(b"b", &mut out);
        assert_eq!(out, b"\xEF\xBB\xBFdata: b\n\n");
        // No data line yet.
        let mut out = Vec::new();
        Event::new(b"event: x\n\n").write_with_data(b"d", &mut out);
        assert_eq!(out, b"event: x\ndata: d\n\n");
    }

    proptest! {
        #[test]
        fn prop_any_chunking(
            parts in proptest::collection::vec(proptest::sample::select(vec![
                &b"data: a"[..], b"\n", b"\r", b"\r\n", b":c", b"event: e", b"\xe6\x97\xa5", b"id: 3", b"x",
            ]), 0..30),
            cuts in proptest::collection::vec(0usize..200, 0..10),
        ) {
            let stream = parts.concat();
            let whole = frame(&[&stream], 1 << 20).unwrap();
            let mut at: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
            at.push(0);
            at.push(stream.len());
            at.sort_unstable();
            let chunks: Vec<&[u8]> = at.windows(2).map(|w| &stream[w[0]..w[1]]).collect();
            let evs = frame(&chunks, 1 << 20).unwrap();
            prop_assert_eq!(evs.concat(), stream.clone());
            prop_assert_eq!(normalized(evs), whole);
        }
    }
}
