//! The SSE framer and the stream unmasker, for every stream format, fed arbitrary bytes in arbitrary chunks.
//!
//! Input: one byte `n`, then `2 * (n % 16)` bytes of cut positions, then the stream.
//!
//! Asserts:
//! - `SseFramer`: the events, concatenated, are the input byte for byte, however it is cut; cut input gives the
//!   same events as whole input once the lone `\n` of a `\r` | `\n` split is merged back (the framer's promise:
//!   a `\r` ending a chunk ends the event at once, no byte is held).
//! - `StreamUnmasker` (a `RequestMap` with a few placeholders): no panic, no error under the default limit; the
//!   output and the stats for cut input (and for 1-byte chunks) equal those for the whole input; under a small
//!   event limit, cut and whole input fail alike (except for an event one byte over the limit whose final
//!   `\r\n` is cut: the framer emits it at the `\r`), and give the same output when they do not fail.
//! - With an empty resolver, SSE formats pass the input through byte for byte when nothing can be held back:
//!   no `AWS_` (generic SSE: events are unmasked whole), and for the formats that stream text blocks not even
//!   an `A` (a block's trailing `A`, `AW`, ... is held as a possible placeholder prefix and sent as a flush event,
//!   which changes the framing but not the text; `\u0041` decodes to `A`).

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use maskgate_engine::sse::SseFramer;
use maskgate_engine::{RequestMap, Resolver, StreamError, StreamFormat, StreamUnmasker, UnmaskStats};
use maskgate_fuzz::{cuts, Reader};

const FORMATS: [StreamFormat; 6] = [
    StreamFormat::AnthropicMessages,
    StreamFormat::OpenAiChat,
    StreamFormat::OpenAiResponses,
    StreamFormat::GeminiSse,
    StreamFormat::GeminiJsonArray,
    StreamFormat::GenericSse,
];

static MAP: LazyLock<RequestMap> = LazyLock::new(|| {
    let mut m = RequestMap::new();
    for (p, o) in [
        ("AWS_EC2_001", "i-0abc123def4567890"),
        ("AWS_EC2_1000", "i-0fff123def4567890"),
        ("AWS_IAM_ROLE_002", "arn:aws:iam::123456789012:role/Admin"),
        ("AWS_ACCOUNT_001", "123456789012"),
        ("AWS_LITERAL_001", "AWS_EC2_001"),
        // Not an identifier shape, but a resolver may return anything: it must come back JSON-escaped.
        ("AWS_S3_BUCKET_003", "we\"ird\\bucket\n\u{e9}"),
    ] {
        m.insert(p, o);
    }
    m
});

fn run<R: Resolver>(
    format: StreamFormat,
    r: R,
    input: &[u8],
    at: &[usize],
    max_event: usize,
) -> Result<(Vec<u8>, UnmaskStats), StreamError> {
    let mut s = StreamUnmasker::with_max_event(format, r, max_event);
    let mut out = Vec::new();
    for w in at.windows(2) {
        s.feed(&input[w[0]..w[1]], &mut out)?;
    }
    s.finish(&mut out)?;
    Ok((out, s.stats()))
}

fn frame(input: &[u8], at: &[usize]) -> Vec<Vec<u8>> {
    let mut f = SseFramer::new();
    let mut evs = Vec::new();
    for w in at.windows(2) {
        f.feed(&input[w[0]..w[1]], |e| evs.push(e.to_vec()))
            .expect("under the limit");
    }
    f.finish(|e| evs.push(e.to_vec()));
    evs
}

/// Merges the lone `\n` event that a `\r` | `\n` split produces back into the event before it.
fn normalized(evs: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for e in evs {
        match out.last_mut() {
            Some(l) if e == b"\n" && l.ends_with(b"\r") => l.push(b'\n'),
            _ => out.push(e),
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let n = usize::from(r.u8() % 16);
    let mut cr = Reader::new(r.bytes(2 * n));
    let input = r.rest();
    let whole_at = [0, input.len()];
    let at = cuts(&mut cr, input.len(), n);
    let bytes_at: Vec<usize> = (0..=input.len()).collect();
    const DEFAULT: usize = maskgate_engine::sse::DEFAULT_MAX_EVENT;
    const SMALL: usize = 48;

    // The framer.
    let whole_evs = frame(input, &whole_at);
    assert_eq!(whole_evs.concat(), input);
    let cut_evs = frame(input, &at);
    assert_eq!(cut_evs.concat(), input);
    assert_eq!(normalized(cut_evs), whole_evs);

    for format in FORMATS {
        let whole = run(format, &*MAP, input, &whole_at, DEFAULT).expect("under the limit");
        let cut = run(format, &*MAP, input, &at, DEFAULT).expect("under the limit");
        assert_eq!(
            String::from_utf8_lossy(&cut.0),
            String::from_utf8_lossy(&whole.0),
            "{format:?}: cut at {at:?}"
        );
        assert_eq!(cut, whole, "{format:?}: cut at {at:?}");
        if input.len() <= 256 {
            let bytes = run(format, &*MAP, input, &bytes_at, DEFAULT).expect("under the limit");
            assert_eq!(bytes, whole, "{format:?}: 1-byte chunks");
        }

        // A small event limit: whole and cut input fail alike, and agree when they do not fail. The one
        // exception is the framer's: an event of limit + 1 bytes ending in `\r\n`, cut between the two, is
        // emitted at its `\r` (limit bytes, no error) and the `\n` follows alone.
        let small_whole = run(format, &*MAP, input, &whole_at, SMALL);
        let small_cut = run(format, &*MAP, input, &at, SMALL);
        let edge = format != StreamFormat::GeminiJsonArray
            && whole_evs.iter().any(|e| e.len() == SMALL + 1 && e.ends_with(b"\r\n"));
        assert!(
            small_whole.is_ok() == small_cut.is_ok() || edge,
            "{format:?}: limit, cut at {at:?}"
        );
        if let (Ok(a), Ok(b)) = (small_whole, small_cut) {
            assert_eq!(a, b, "{format:?}: limit, cut at {at:?}");
        }

        // Nothing to resolve: pass-through when nothing can be held back.
        if format == StreamFormat::GeminiJsonArray {
            continue;
        }
        let no_hold = if format == StreamFormat::GenericSse {
            memchr_find(input, b"AWS_").is_none()
        } else {
            !input.contains(&b'A') && memchr_find(input, b"u0041").is_none()
        };
        let empty = RequestMap::new();
        let (out, st) = run(format, &empty, input, &at, DEFAULT).expect("under the limit");
        assert_eq!(st.resolved, 0);
        if no_hold {
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(input),
                "{format:?}: pass-through, cut at {at:?}"
            );
            assert_eq!(out, input);
        }
    }
});

fn memchr_find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}
