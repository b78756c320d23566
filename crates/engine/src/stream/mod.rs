//! Streaming response unmasking, event by event, for the providers' streaming formats.
//!
//! [`StreamUnmasker`] takes the response body in arbitrary byte chunks and writes the unmasked stream. Text that
//! a provider streams in pieces (text deltas, tool-call argument fragments, thinking) goes through one
//! [`TextStream`] per block, so a placeholder split across any number of events comes
//! back whole; the only delay is a held-back possible placeholder prefix (at most
//! [`MAX_LEN`](crate::placeholder::MAX_LEN) bytes per block). An event whose text is partly held is still sent at
//! once with the safe part (possibly empty). Held text is flushed as an extra delta event of the same kind, for
//! the same block, before the event that closes the block (and, as a fallback, before the end of the message or
//! stream). Everything else in an event is unmasked whole; events that do not parse as expected are unmasked
//! whole per event; events that nothing changes pass through byte for byte.

mod anthropic;
mod gemini;
mod openai;
mod rawjson;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;

use memchr::{memchr2, memchr3};

use crate::resolve::{Resolver, UnmaskStats};
use crate::sse::{Event, SseError, SseFramer, DEFAULT_MAX_EVENT};
use crate::unmask::{may_contain_placeholder, rewrite_json, unmask_text, validate_json, Mode, TextStream};
use rawjson::Val;

/// The streaming formats the gateway understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamFormat {
    /// Anthropic Messages API, `stream: true` (SSE).
    AnthropicMessages,
    /// OpenAI Chat Completions, `stream: true` (SSE).
    OpenAiChat,
    /// OpenAI Responses API, `stream: true` (SSE).
    OpenAiResponses,
    /// Gemini `streamGenerateContent?alt=sse` (SSE, each event a `GenerateContentResponse`).
    GeminiSse,
    /// Gemini `streamGenerateContent` without `alt=sse`: one JSON array of `GenerateContentResponse`s.
    GeminiJsonArray,
    /// Any other `text/event-stream`: each event's data unmasked whole.
    GenericSse,
}

impl StreamFormat {
    /// Picks the format of a response from its `Content-Type`, the upstream host and the request path (with or
    /// without the query string). `None`: not a stream this module handles (buffer and unmask it whole).
    pub fn detect(content_type: &str, host: &str, path: &str) -> Option<StreamFormat> {
        let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        let sse = mime == "text/event-stream";
        let json = mime == "application/json" || mime.ends_with("+json");
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let host = host
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(h, _)| h)
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if path.contains(":streamGenerateContent") {
            let alt_sse = query.split('&').any(|kv| kv.eq_ignore_ascii_case("alt=sse"));
            return if sse || (alt_sse && !json) {
                Some(StreamFormat::GeminiSse)
            } else if json || mime.is_empty() {
                Some(StreamFormat::GeminiJsonArray)
            } else {
                None
            };
        }
        if !sse {
            return None;
        }
        let path = path.trim_end_matches('/');
        Some(if host == "api.anthropic.com" || path.ends_with("/v1/messages") {
            StreamFormat::AnthropicMessages
        } else if path.ends_with("/chat/completions") {
            StreamFormat::OpenAiChat
        } else if path.ends_with("/responses") || path.contains("/responses/") {
            StreamFormat::OpenAiResponses
        } else {
            StreamFormat::GenericSse
        })
    }
}

/// Why a stream could not be unmasked. The gateway should abort the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamError {
    /// One event (or one element of a JSON-array stream) exceeded the size limit.
    EventTooLarge { limit: usize },
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::EventTooLarge { limit } => {
                write!(f, "stream event larger than {limit} bytes")
            }
        }
    }
}

impl std::error::Error for StreamError {}

impl From<SseError> for StreamError {
    fn from(e: SseError) -> Self {
        match e {
            SseError::EventTooLarge { limit } => StreamError::EventTooLarge { limit },
        }
    }
}

/// Unmasks one streamed response. Feed it the body's chunks as they arrive and send on what it writes.
///
/// ```
/// use maskgate_engine::{RequestMap, StreamFormat, StreamUnmasker};
/// let mut map = RequestMap::new();
/// map.insert("AWS_EC2_001", "i-0abc123def4567890");
/// let mut s = StreamUnmasker::new(StreamFormat::OpenAiChat, &map);
/// let mut out = Vec::new();
/// s.feed(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"vm AWS_E\"}}]}\n\n", &mut out).unwrap();
/// s.feed(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"C2_001\"}}]}\n\ndata: [DONE]\n\n", &mut out).unwrap();
/// s.finish(&mut out).unwrap();
/// let out = String::from_utf8(out).unwrap();
/// assert!(out.contains("i-0abc123def4567890") && out.ends_with("data: [DONE]\n\n"));
/// assert_eq!(s.stats().resolved, 1);
/// ```
#[derive(Clone)]
pub struct StreamUnmasker<R: Resolver> {
    format: StreamFormat,
    resolver: R,
    stats: UnmaskStats,
    handler: Handler,
    transport: Transport,
    scratch: String,
    error: Option<StreamError>,
    /// The last SSE event ended with a `\r`: a lone `\n` event next is the rest of its `\r\n`.
    cr_open: bool,
}

impl<R: Resolver> StreamUnmasker<R> {
    /// An unmasker that resolves placeholders through `resolver` (normally the request's
    /// [`RequestMap`](crate::RequestMap)), with the default 16 MiB bound on one event.
    pub fn new(format: StreamFormat, resolver: R) -> Self {
        Self::with_max_event(format, resolver, DEFAULT_MAX_EVENT)
    }

    /// Like [`StreamUnmasker::new`], failing on events (or JSON-array elements) larger than `max_event` bytes.
    pub fn with_max_event(format: StreamFormat, resolver: R, max_event: usize) -> Self {
        let handler = match format {
            StreamFormat::AnthropicMessages => Handler::Anthropic(Default::default()),
            StreamFormat::OpenAiChat => Handler::Chat(Default::default()),
            StreamFormat::OpenAiResponses => Handler::Responses(Default::default()),
            StreamFormat::GeminiSse | StreamFormat::GeminiJsonArray => Handler::Gemini(Default::default()),
            StreamFormat::GenericSse => Handler::Generic,
        };
        let transport = match format {
            StreamFormat::GeminiJsonArray => Transport::Array(ArrayStream::new(max_event)),
            _ => Transport::Sse(SseFramer::with_limit(max_event)),
        };
        StreamUnmasker {
            format,
            resolver,
            stats: UnmaskStats::default(),
            handler,
            transport,
            scratch: String::new(),
            error: None,
            cr_open: false,
        }
    }

    pub fn format(&self) -> StreamFormat {
        self.format
    }

    /// What unmasking has done so far.
    pub fn stats(&self) -> UnmaskStats {
        self.stats
    }

    /// The resolver, for callers that learn more placeholders while the stream runs (tenant-wide resolution:
    /// feed a chunk to a clone whose resolver records what it misses, look those up, add them here, then feed
    /// the chunk for real).
    pub fn resolver(&self) -> &R {
        &self.resolver
    }

    /// See [`StreamUnmasker::resolver`].
    pub fn resolver_mut(&mut self) -> &mut R {
        &mut self.resolver
    }

    /// Feeds one chunk of the upstream body; appends to `out` everything that can be sent now.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), StreamError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let mut cx = Ctx {
            r: &self.resolver,
            stats: &mut self.stats,
        };
        let handler = &mut self.handler;
        let scratch = &mut self.scratch;
        let cr_open = &mut self.cr_open;
        let res = match &mut self.transport {
            Transport::Sse(f) => f
                .feed(chunk, |raw| {
                    sse_event(handler, &mut cx, scratch, cr_open, raw, true, out)
                })
                .map_err(StreamError::from),
            Transport::Array(a) => a.feed(handler, &mut cx, scratch, chunk, out),
        };
        if let Err(e) = &res {
            self.error = Some(e.clone());
        }
        res
    }

    /// The upstream body has ended: appends everything still held.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), StreamError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let mut cx = Ctx {
            r: &self.resolver,
            stats: &mut self.stats,
        };
        let handler = &mut self.handler;
        let scratch = &mut self.scratch;
        let cr_open = &mut self.cr_open;
        match &mut self.transport {
            Transport::Sse(f) => {
                f.finish(|raw| sse_event(handler, &mut cx, scratch, cr_open, raw, false, out));
                handler.flush_all(&mut cx, &mut Framing::Sse, out);
            }
            Transport::Array(a) => a.finish(handler, &mut cx, scratch, out),
        }
        Ok(())
    }
}

/// The resolver and the stats, passed down to the handlers.
pub(crate) struct Ctx<'a, R: ?Sized> {
    pub r: &'a R,
    pub stats: &'a mut UnmaskStats,
}

/// How a flushed piece of held text goes out.
#[derive(Clone)]
pub(crate) enum Framing {
    /// As an SSE event shaped like the template's event.
    Sse,
    /// As an element of a JSON array: before the element being handled (`elem,`), or at the end (`,elem`).
    Array { emitted: bool, at_end: bool },
}

impl Framing {
    fn write_flush(&mut self, tpl: &Template, data: &str, out: &mut Vec<u8>) {
        match self {
            Framing::Sse => Event::new(&tpl.event).write_with_data(data.as_bytes(), out),
            Framing::Array { emitted, at_end } => {
                if *at_end {
                    if *emitted {
                        out.push(b',');
                    }
                    out.extend_from_slice(data.as_bytes());
                } else {
                    out.extend_from_slice(data.as_bytes());
                    out.push(b',');
                }
                *emitted = true;
            }
        }
    }
}

/// Largest event kept as the template of a flush event.
const MAX_TEMPLATE: usize = 64 << 10;

/// The last event that left text held in a block: the shape for the event that flushes it.
#[derive(Debug, Default, Clone)]
pub(crate) struct Template {
    /// The raw SSE event (empty in a JSON-array stream).
    pub event: Vec<u8>,
    /// Its data, a JSON object.
    pub data: String,
    /// `event` ends with a `\r` that the framer emitted at once, so a `\n` may still follow (a `\r\n` cut
    /// between chunks): the next event tells.
    cr_open: bool,
}

impl Template {
    /// The next event has come: `lf` when it is the lone `\n` that completes this event's final `\r\n`, which
    /// then belongs to the template too (whole input would have framed it so).
    fn close_cr(&mut self, lf: bool) {
        if self.cr_open && lf {
            self.event.push(b'\n');
        }
        self.cr_open = false;
    }
}

/// A streamed block of text: its unmasker and the template for flushing it.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub ts: TextStream,
    pub tpl: Template,
}

impl Block {
    pub fn new(mode: Mode) -> Self {
        Block {
            ts: TextStream::with_mode(mode),
            tpl: Template::default(),
        }
    }

    /// Unmasks the next piece of the block, from the event `event` with data `data`, into `out`.
    pub fn push<R: Resolver + ?Sized>(
        &mut self,
        cx: &mut Ctx<'_, R>,
        piece: &str,
        event: &[u8],
        data: &str,
        out: &mut String,
    ) {
        self.ts.push(piece, cx.r, cx.stats, out);
        if self.ts.held().is_empty() {
            return;
        }
        self.tpl.event.clear();
        self.tpl.data.clear();
        if event.len() + data.len() <= MAX_TEMPLATE {
            self.tpl.event.extend_from_slice(event);
            self.tpl.data.push_str(data);
        } else {
            // Too large to keep: the flush event gets this event's other lines and a minimal payload.
            Event::new(event).write_without_data(&mut self.tpl.event);
        }
        // An event emitted at its last `\r`: a `\n` in the next chunk would complete it (see `close_cr`).
        self.tpl.cr_open = self.tpl.event.ends_with(b"\r");
    }

    /// Ends the block: the unmasked held text (empty when nothing was held).
    pub fn take<R: Resolver + ?Sized>(&mut self, cx: &mut Ctx<'_, R>) -> String {
        let mut s = String::new();
        self.ts.finish(cx.r, cx.stats, &mut s);
        s
    }

    /// Ends the block and writes its held text, if any, as the event built by `build(template data, text)`.
    pub fn flush<R: Resolver + ?Sized>(
        &mut self,
        cx: &mut Ctx<'_, R>,
        fr: &mut Framing,
        out: &mut Vec<u8>,
        build: impl FnOnce(Option<Val<'_>>, &str, &mut String),
    ) {
        let text = self.take(cx);
        if text.is_empty() {
            return;
        }
        let mut data = String::new();
        build(Val::root(&self.tpl.data).filter(Val::is_obj), &text, &mut data);
        fr.write_flush(&self.tpl, &data, out);
    }
}

/// Parses an event's data as a JSON object.
pub(crate) fn json_object(data: &str) -> Option<Val<'_>> {
    validate_json(data).ok()?;
    Val::root(data).filter(Val::is_obj)
}

/// Unmasks an event's data whole (JSON-escaping when it is JSON) into `new`. False when nothing changed.
pub(crate) fn whole<R: Resolver + ?Sized>(cx: &mut Ctx<'_, R>, data: &str, new: &mut String) -> bool {
    if !may_contain_placeholder(data.as_bytes()) {
        return false;
    }
    if validate_json(data).is_ok() {
        rewrite_json(data, &[], cx.r, cx.stats, new)
    } else {
        match unmask_text(data, cx.r, cx.stats) {
            Cow::Borrowed(_) => false,
            Cow::Owned(s) => {
                new.push_str(&s);
                true
            }
        }
    }
}

/// The streamed strings of one event and their new values.
#[derive(Default, Clone)]
pub(crate) struct Edits(Vec<(usize, Option<String>)>);

impl Edits {
    /// Records that the string at `at`, whose value was `old`, becomes `new` (kept as it is when equal).
    pub fn set(&mut self, at: usize, old: &str, new: String) {
        self.0.push((at, (new != old).then_some(new)));
    }

    /// Writes `data` with the edits applied and every other string unmasked whole.
    pub fn apply<R: Resolver + ?Sized>(mut self, cx: &mut Ctx<'_, R>, data: &str, new: &mut String) -> bool {
        self.0.sort_by_key(|e| e.0);
        let ov: Vec<crate::unmask::Override<'_>> = self
            .0
            .iter()
            .map(|(at, text)| crate::unmask::Override {
                at: *at,
                text: text.as_deref(),
            })
            .collect();
        rewrite_json(data, &ov, cx.r, cx.stats, new)
    }
}

/// Writes `data` with the streamed string at `at` (value `old`) replaced by `emitted`, every other string
/// unmasked whole. False when nothing changed.
pub(crate) fn single_edit<R: Resolver + ?Sized>(
    cx: &mut Ctx<'_, R>,
    data: &str,
    at: usize,
    old: &str,
    emitted: &str,
    new: &mut String,
) -> bool {
    let changed = emitted != old;
    if !changed && !may_contain_placeholder(data.as_bytes()) {
        return false;
    }
    let ov = [crate::unmask::Override {
        at,
        text: changed.then_some(emitted),
    }];
    rewrite_json(data, &ov, cx.r, cx.stats, new)
}

/// Appends `s` as a JSON string literal.
pub(crate) fn push_str_lit(out: &mut String, s: &str) {
    crate::unmask::push_json_string(out, s);
}

#[derive(Clone)]
enum Handler {
    Anthropic(anthropic::Anthropic),
    Chat(openai::Chat),
    Responses(openai::Responses),
    Gemini(gemini::Gemini),
    Generic,
}

impl Handler {
    /// Handles one event's (or array element's) data: flush events go to `out`, the rewritten data to `new`.
    /// Returns false when the data is to pass through unchanged.
    fn on_data<R: Resolver + ?Sized>(
        &mut self,
        cx: &mut Ctx<'_, R>,
        fr: &mut Framing,
        event: &[u8],
        data: &str,
        new: &mut String,
        out: &mut Vec<u8>,
    ) -> bool {
        match self {
            Handler::Anthropic(h) => h.on_data(cx, fr, event, data, new, out),
            Handler::Chat(h) => h.on_data(cx, fr, event, data, new, out),
            Handler::Responses(h) => h.on_data(cx, fr, event, data, new, out),
            Handler::Gemini(h) => h.on_data(cx, fr, event, data, new, out),
            Handler::Generic => whole(cx, data, new),
        }
    }

    /// Calls `f` on every block held.
    fn each_block(&mut self, f: impl FnMut(&mut Block)) {
        match self {
            Handler::Anthropic(h) => h.each_block(f),
            Handler::Chat(h) => h.each_block(f),
            Handler::Responses(h) => h.each_block(f),
            Handler::Gemini(h) => h.each_block(f),
            Handler::Generic => {}
        }
    }

    /// Flushes every block.
    fn flush_all<R: Resolver + ?Sized>(&mut self, cx: &mut Ctx<'_, R>, fr: &mut Framing, out: &mut Vec<u8>) {
        match self {
            Handler::Anthropic(h) => h.flush_all(cx, fr, out),
            Handler::Chat(h) => h.flush_all(cx, fr, out),
            Handler::Responses(h) => h.flush_all(cx, fr, out),
            Handler::Gemini(h) => h.flush_all(cx, fr, out),
            Handler::Generic => {}
        }
    }
}

#[derive(Clone)]
enum Transport {
    Sse(SseFramer),
    Array(ArrayStream),
}

/// One complete SSE event. `cr_open`: the previous event ended with `\r` (see [`Template::close_cr`]).
fn sse_event<R: Resolver + ?Sized>(
    handler: &mut Handler,
    cx: &mut Ctx<'_, R>,
    scratch: &mut String,
    cr_open: &mut bool,
    raw: &[u8],
    terminated: bool,
    out: &mut Vec<u8>,
) {
    if std::mem::replace(cr_open, raw.ends_with(b"\r")) {
        let lf = raw == b"\n";
        handler.each_block(|b| b.tpl.close_cr(lf));
    }
    let ev = Event::new(raw);
    let Some(data) = ev.data() else {
        out.extend_from_slice(raw);
        return;
    };
    let Ok(data) = std::str::from_utf8(&data) else {
        out.extend_from_slice(raw);
        return;
    };
    scratch.clear();
    let changed = if terminated {
        handler.on_data(cx, &mut Framing::Sse, raw, data, scratch, out)
    } else {
        // The tail of a stream cut short: everything held goes first, the tail is unmasked whole.
        handler.flush_all(cx, &mut Framing::Sse, out);
        whole(cx, data, scratch)
    };
    if changed {
        ev.write_with_data(scratch.as_bytes(), out);
    } else {
        out.extend_from_slice(raw);
    }
}

/// Where the JSON-array splitter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArrayState {
    /// Before the opening `[`.
    Start,
    /// Between elements: whitespace, commas, the next element or the closing `]`.
    Between,
    /// Inside an object element.
    InElem,
    /// After the closing `]`, or after something unexpected: the rest is unmasked as text.
    Raw,
}

/// The Gemini JSON-array stream: `[{...},\r\n{...}]` in arbitrary chunks. Elements are handled like SSE events
/// once complete; bytes between them pass through at once.
#[derive(Clone)]
struct ArrayStream {
    state: ArrayState,
    /// Bytes of the element being assembled, when it spans chunks.
    elem: Vec<u8>,
    depth: usize,
    in_str: bool,
    escape: bool,
    limit: usize,
    framing: Framing,
    raw: RawText,
}

impl ArrayStream {
    fn new(limit: usize) -> Self {
        ArrayStream {
            state: ArrayState::Start,
            elem: Vec::new(),
            depth: 0,
            in_str: false,
            escape: false,
            limit,
            framing: Framing::Array {
                emitted: false,
                at_end: false,
            },
            raw: RawText::default(),
        }
    }

    fn feed<R: Resolver + ?Sized>(
        &mut self,
        h: &mut Handler,
        cx: &mut Ctx<'_, R>,
        scratch: &mut String,
        chunk: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), StreamError> {
        let mut i = 0;
        while i < chunk.len() {
            match self.state {
                ArrayState::Start | ArrayState::Between => {
                    let start = i;
                    while i < chunk.len() && matches!(chunk[i], b' ' | b'\t' | b'\r' | b'\n' | b',') {
                        i += 1;
                    }
                    if self.state == ArrayState::Start && chunk[start..i].contains(&b',') {
                        // A comma before the array: not the stream we expect.
                        i = start;
                        self.give_up(h, cx, out);
                        continue;
                    }
                    out.extend_from_slice(&chunk[start..i]);
                    let Some(&c) = chunk.get(i) else {
                        break;
                    };
                    match (self.state, c) {
                        (ArrayState::Start, b'[') => {
                            out.push(b'[');
                            i += 1;
                            self.state = ArrayState::Between;
                        }
                        (ArrayState::Between, b'{') => {
                            self.state = ArrayState::InElem;
                            self.depth = 0;
                            self.in_str = false;
                            self.escape = false;
                        }
                        (ArrayState::Between, b']') => {
                            self.set_at_end();
                            h.flush_all(cx, &mut self.framing, out);
                            out.push(b']');
                            i += 1;
                            self.state = ArrayState::Raw;
                        }
                        _ => self.give_up(h, cx, out),
                    }
                }
                ArrayState::InElem => {
                    let start = i;
                    match self.scan_elem(chunk, &mut i) {
                        Some(end) => {
                            let part = &chunk[start..end];
                            if self.elem.len() + part.len() > self.limit {
                                return Err(StreamError::EventTooLarge { limit: self.limit });
                            }
                            if self.elem.is_empty() {
                                self.element(h, cx, scratch, part, out);
                            } else {
                                let mut elem = std::mem::take(&mut self.elem);
                                elem.extend_from_slice(part);
                                self.element(h, cx, scratch, &elem, out);
                                elem.clear();
                                self.elem = elem;
                            }
                            self.state = ArrayState::Between;
                        }
                        None => {
                            let part = &chunk[start..];
                            if self.elem.len() + part.len() > self.limit {
                                return Err(StreamError::EventTooLarge { limit: self.limit });
                            }
                            self.elem.extend_from_slice(part);
                        }
                    }
                }
                ArrayState::Raw => {
                    self.raw.push(cx, &chunk[i..], out);
                    i = chunk.len();
                }
            }
        }
        Ok(())
    }

    /// Scans an element from `chunk[*i]`; returns the end of the element if it ends in this chunk.
    fn scan_elem(&mut self, chunk: &[u8], i: &mut usize) -> Option<usize> {
        let mut j = *i;
        loop {
            if self.in_str {
                if self.escape {
                    self.escape = false;
                    j += 1;
                    if j > chunk.len() {
                        self.escape = true;
                        *i = chunk.len();
                        return None;
                    }
                }
                let Some(k) = chunk.get(j..).and_then(|c| memchr2(b'"', b'\\', c)) else {
                    *i = chunk.len();
                    return None;
                };
                j += k;
                if chunk[j] == b'"' {
                    self.in_str = false;
                    j += 1;
                } else {
                    self.escape = true;
                    j += 1;
                }
            } else {
                let Some(k) = memchr3(b'"', b'{', b'}', &chunk[j..]) else {
                    *i = chunk.len();
                    return None;
                };
                j += k;
                match chunk[j] {
                    b'"' => self.in_str = true,
                    b'{' => self.depth += 1,
                    _ => {
                        self.depth -= 1;
                        if self.depth == 0 {
                            *i = j + 1;
                            return Some(j + 1);
                        }
                    }
                }
                j += 1;
            }
        }
    }

    fn element<R: Resolver + ?Sized>(
        &mut self,
        h: &mut Handler,
        cx: &mut Ctx<'_, R>,
        scratch: &mut String,
        elem: &[u8],
        out: &mut Vec<u8>,
    ) {
        if let Framing::Array { at_end, .. } = &mut self.framing {
            *at_end = false;
        }
        scratch.clear();
        let changed = match std::str::from_utf8(elem) {
            Ok(data) => h.on_data(cx, &mut self.framing, &[], data, scratch, out),
            Err(_) => false,
        };
        if changed {
            out.extend_from_slice(scratch.as_bytes());
        } else {
            out.extend_from_slice(elem);
        }
        if let Framing::Array { emitted, .. } = &mut self.framing {
            *emitted = true;
        }
    }

    fn set_at_end(&mut self) {
        if let Framing::Array { at_end, .. } = &mut self.framing {
            *at_end = true;
        }
    }

    /// Gives up on the array structure: held blocks are flushed, the rest is unmasked as JSON text.
    fn give_up<R: Resolver + ?Sized>(&mut self, h: &mut Handler, cx: &mut Ctx<'_, R>, out: &mut Vec<u8>) {
        self.set_at_end();
        h.flush_all(cx, &mut self.framing, out);
        self.state = ArrayState::Raw;
    }

    fn finish<R: Resolver + ?Sized>(
        &mut self,
        h: &mut Handler,
        cx: &mut Ctx<'_, R>,
        _scratch: &mut String,
        out: &mut Vec<u8>,
    ) {
        if self.state != ArrayState::Raw {
            self.give_up(h, cx, out);
        }
        if !self.elem.is_empty() {
            let elem = std::mem::take(&mut self.elem);
            self.raw.push(cx, &elem, out);
        }
        self.raw.finish(cx, out);
    }
}

/// Bytes unmasked as JSON text, for what does not fit the expected structure. Carries incomplete UTF-8
/// sequences between chunks; invalid bytes pass through.
#[derive(Default, Clone)]
struct RawText {
    carry: Vec<u8>,
    ts: Option<TextStream>,
    buf: String,
}

impl RawText {
    fn push<R: Resolver + ?Sized>(&mut self, cx: &mut Ctx<'_, R>, bytes: &[u8], out: &mut Vec<u8>) {
        let joined;
        let mut b = if self.carry.is_empty() {
            bytes
        } else {
            let mut c = std::mem::take(&mut self.carry);
            c.extend_from_slice(bytes);
            joined = c;
            &joined[..]
        };
        let ts = self.ts.get_or_insert_with(|| TextStream::with_mode(Mode::Json));
        loop {
            let (valid, rest) = match std::str::from_utf8(b) {
                Ok(s) => (s, None),
                Err(e) => {
                    let (ok, rest) = b.split_at(e.valid_up_to());
                    // `ok` is valid UTF-8 by construction.
                    (std::str::from_utf8(ok).unwrap_or(""), Some((rest, e.error_len())))
                }
            };
            self.buf.clear();
            ts.push(valid, cx.r, cx.stats, &mut self.buf);
            out.extend_from_slice(self.buf.as_bytes());
            match rest {
                None => return,
                Some((rest, None)) => {
                    self.carry.extend_from_slice(rest);
                    return;
                }
                Some((rest, Some(n))) => {
                    self.buf.clear();
                    ts.finish(cx.r, cx.stats, &mut self.buf);
                    out.extend_from_slice(self.buf.as_bytes());
                    out.extend_from_slice(&rest[..n]);
                    b = &rest[n..];
                }
            }
        }
    }

    fn finish<R: Resolver + ?Sized>(&mut self, cx: &mut Ctx<'_, R>, out: &mut Vec<u8>) {
        if let Some(ts) = &mut self.ts {
            self.buf.clear();
            ts.finish(cx.r, cx.stats, &mut self.buf);
            out.extend_from_slice(self.buf.as_bytes());
        }
        out.append(&mut self.carry);
    }
}
