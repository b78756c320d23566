//! The detectors on arbitrary UTF-8 text (invalid input bytes become U+FFFD), with and without a JSON key
//! context, and text masking end to end.
//!
//! Input: one byte choosing a key context, then the text.
//!
//! Asserts:
//! - `Detector::find`: every finding is a non-empty span inside the text, on char boundaries; findings come in
//!   order and do not overlap; findings already in the output vector are left alone; the findings are those
//!   of `Detector::find_reference` (the block scan against the byte-by-byte definition).
//! - `Detector::pattern_matches`: on each whitespace-separated token, the token search (anchored DFA at the
//!   starts its start table allows, the IPv4 shortcut) finds what the meta regex finds.
//! - `Masker::plan_text` + `finish` (fresh-vault placeholders) succeeds; every placeholder in the output is one
//!   that masking wrote (placeholder-shaped text of the input is masked itself, so it can never resolve); text
//!   masking never trips its own leak check; no original is left in the output within its reach (see
//!   [`maskgate_fuzz::Reach`]: 8+ bytes anywhere, shorter ones as a word of their own, plain-word names only
//!   where found) except where it overlaps an inserted placeholder; the counts are the placeholders written.
//! - `unmask_text` of the output with the returned map gives the input back exactly.

#![no_main]

use libfuzzer_sys::fuzz_target;
use maskgate_engine::placeholder;
use maskgate_engine::{unmask_text, Finding, KeyContext, UnmaskStats};
use maskgate_fuzz::{find_all, fresh_placeholders, reach, within_reach, MASKER};

/// `(key, parent)` contexts: keys that name a kind, and some that do not.
const KEYS: &[(&str, Option<&str>)] = &[
    ("OwnerId", None),
    ("AccountId", None),
    ("KeyId", None),
    ("HostedZoneId", None),
    ("restApiId", None),
    ("SecretAccessKey", None),
    ("BucketName", None),
    ("DistributionId", None),
    ("ID", Some("Owner")),
    ("id", Some("grantee")),
    ("content", Some("messages")),
    ("text", None),
];

fn check(text: &str, fs: &[Finding]) {
    let mut last = 0;
    for f in fs {
        assert!(f.start < f.end && f.end <= text.len(), "span {f:?} in {text:?}");
        assert!(
            text.is_char_boundary(f.start) && text.is_char_boundary(f.end),
            "{f:?} in {text:?}"
        );
        assert!(f.start >= last, "out of order or overlapping: {fs:?} in {text:?}");
        last = f.end;
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let text: &str = &text;
    let d = MASKER.detector();

    let mut fs = Vec::new();
    d.find(text.as_bytes(), KeyContext::default(), &mut fs);
    check(text, &fs);
    // The block scan finds what the byte-by-byte reference finds (`find` scans short texts byte by byte: the
    // block scan is asked on its own too).
    let mut reference = Vec::new();
    d.find_reference(text.as_bytes(), KeyContext::default(), &mut reference);
    assert_eq!(fs, reference, "find against the reference in {text:?}");
    let mut blocks = Vec::new();
    d.find_blocks(text.as_bytes(), KeyContext::default(), &mut blocks);
    assert_eq!(blocks, reference, "block scan against the reference in {text:?}");
    for token in text.split_ascii_whitespace() {
        let [fast, regex] = d.pattern_matches(token.as_bytes());
        assert_eq!(fast, regex, "token search against the meta regex in {token:?}");
    }

    let (key, parent) = KEYS[usize::from(sel) % KEYS.len()];
    let sentinel = Finding {
        start: 7,
        end: 3,
        kind: 0,
    };
    let mut fs = vec![sentinel];
    d.find(text.as_bytes(), KeyContext { key: Some(key), parent }, &mut fs);
    assert_eq!(fs[0], sentinel, "find touched what was already in `out`");
    check(text, &fs[1..]);

    // Masking and unmasking: the exact text comes back.
    let plan = MASKER.plan_text(text);
    let originals: Vec<_> = plan.entries().iter().map(|e| (e.original.clone(), reach(e))).collect();
    let placeholders = fresh_placeholders(&plan);
    let masked = match plan.finish(&placeholders) {
        Ok(m) => m,
        Err(e) => panic!("masking {text:?} failed: {e}"),
    };
    let out = std::str::from_utf8(&masked.body).expect("masked text is UTF-8");
    let total: u64 = masked.counts.iter().map(|c| c.1).sum();
    let inserted: Vec<(usize, usize)> = placeholder::find_all(out.as_bytes())
        .filter(|&(a, b)| placeholders.iter().any(|p| *p == out[a..b]))
        .collect();
    assert_eq!(inserted.len() as u64, total, "placeholders in {out:?}");
    // Placeholder-shaped text of the request is masked itself: every placeholder left is one just written.
    for (a, b) in placeholder::find_all(out.as_bytes()) {
        assert!(
            placeholders.iter().any(|p| *p == out[a..b]),
            "unmasked literal {:?} in {out:?}",
            &out[a..b]
        );
    }
    for (o, reach) in &originals {
        for at in find_all(out.as_bytes(), o.as_bytes()) {
            let end = at + o.len();
            if !within_reach(*reach, out.as_bytes(), at, end) {
                continue;
            }
            assert!(
                inserted.iter().any(|&(a, b)| a < end && at < b),
                "original {o:?} ({reach:?}) left in {out:?} (input {text:?})"
            );
        }
    }
    let mut st = UnmaskStats::default();
    let back = unmask_text(out, &masked.map, &mut st);
    assert_eq!(back, text, "round trip through {out:?}");
    assert_eq!(st.resolved, total);
});
