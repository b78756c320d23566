//! Request masking of JSON bodies: arbitrary bytes into `Masker::plan_json` (default configuration), finished
//! with the placeholders a fresh vault would give (`prefix_001`, `prefix_002`, ...).
//!
//! Asserts:
//! - Searching each repeated short string once gives the plan and the output of searching every string.
//! - `plan_json` accepts exactly the bodies that serde_json accepts, but for what serde_json refuses beyond the
//!   grammar (nesting deeper than 128, numbers out of the range of f64).
//! - Masking a body that serde_json accepts succeeds, unless an original also stands outside every string (in a
//!   number, say): then the leak check must refuse it, and does.
//! - Every placeholder in a (decoded, not skipped) string of the output is one that masking wrote.
//! - The output is valid JSON (serde_json) whenever the input was, and in any case valid for the engine's own
//!   reader.
//! - `unmask_json` of the output with the returned map gives a document equal (as `serde_json::Value`) to the
//!   input.
//! - No entry's original (raw or JSON-escaped) occurs in the output within its reach (see
//!   [`maskgate_fuzz::Reach`]: 8+ bytes anywhere, shorter ones as a word of their own, plain-word names only
//!   where found) except inside the values that skip rules
//!   pass unchanged, where it overlaps a placeholder that this masking inserted (it is then made of the
//!   placeholder), or from inside an escape sequence (`00e` in `\u00e5`: the string does not contain it).

#![no_main]

use libfuzzer_sys::fuzz_target;
use maskgate_engine::json::{self, SkipRules};
use maskgate_engine::placeholder;
use maskgate_engine::{unmask_json, MaskError, UnmaskStats};
use maskgate_fuzz::{find_all, fresh_placeholders, reach, within_reach, MASKER};
use serde_json::Value;

fn escaped(s: &str) -> Vec<u8> {
    let mut v = Vec::new();
    json::escape_into(s, &mut v);
    v
}

fuzz_target!(|data: &[u8]| {
    let parsed = serde_json::from_slice::<Value>(data);
    let value: Option<&Value> = parsed.as_ref().ok();
    let plan = match MASKER.plan_json(data) {
        Ok(p) => p,
        Err(e) => {
            assert!(value.is_none(), "serde_json accepts what plan_json refuses: {e}");
            return;
        }
    };
    // The two readers agree, but for what serde_json refuses beyond the grammar: nesting deeper than 128 (the
    // engine's limit is 256) and numbers out of the range of f64 (the engine passes numbers through as bytes).
    if let Err(e) = &parsed {
        let e = e.to_string();
        assert!(
            e.starts_with("recursion limit exceeded") || e.starts_with("number out of range"),
            "plan_json accepts what serde_json refuses ({e}): {}",
            String::from_utf8_lossy(data)
        );
    }
    // Repeated strings are searched once: the plan is the one searching each string on its own gives.
    let each = MASKER.plan_json_each(data).expect("planned once");
    assert_eq!(
        each.entries(),
        plan.entries(),
        "a repeated string is masked otherwise than on its own"
    );
    let each_placeholders = fresh_placeholders(&each);
    let each = each.finish(&each_placeholders).map(|m| m.body);
    let originals: Vec<String> = plan.entries().iter().map(|e| e.original.to_string()).collect();
    let reaches: Vec<_> = plan.entries().iter().map(reach).collect();
    let placeholders = fresh_placeholders(&plan);
    let masked = match plan.finish(&placeholders) {
        Ok(m) => m,
        Err(MaskError::Leak { kind }) => {
            assert!(each.is_err(), "a repeated string is masked otherwise than on its own");
            // Legitimate only when an original stands in the input outside every string.
            let strings = json::scan(data, &SkipRules::default()).expect("planned");
            let mut outside = data.to_vec();
            for s in strings.iter() {
                outside[s.raw_start..s.raw_end].fill(b'"');
            }
            assert!(
                originals
                    .iter()
                    .any(|o| find_all(&outside, o.as_bytes()).next().is_some()),
                "leak check refused ({kind}) a body whose originals are all inside strings"
            );
            return;
        }
        Err(e) => panic!("finish failed: {e}"),
    };
    let out = &masked.body;
    assert_eq!(each.as_ref().ok(), Some(out), "a repeated string is masked otherwise than on its own");

    // Valid JSON in, valid JSON out.
    let out_strings = json::scan(out, &SkipRules::default()).expect("output readable by the engine");
    let out_value: Option<Value> = serde_json::from_slice(out).ok();
    if value.is_some() {
        assert!(
            out_value.is_some(),
            "output is not valid JSON: {}",
            String::from_utf8_lossy(out)
        );
    }

    // Placeholder-shaped text of the request is masked itself: every placeholder left in a masked string is one
    // just written.
    for st in out_strings.iter().filter(|s| !s.skip) {
        for (a, b) in placeholder::find_all(st.text.as_bytes()) {
            let p = &st.text[a..b];
            assert!(
                placeholders.iter().any(|q| q == p),
                "unmasked literal {p:?} in {:?}",
                st.text
            );
        }
    }

    // Round trip.
    if let Some(v) = &value {
        let mut st = UnmaskStats::default();
        let back = unmask_json(out, &masked.map, &mut st).expect("the masked body unmasks");
        let back: Value = serde_json::from_slice(&back).expect("unmasked output is JSON");
        assert_eq!(&back, *v, "round trip; masked: {}", String::from_utf8_lossy(out));
    }

    // No original left within its reach, except in skipped values and inside inserted placeholders.
    let skipped: Vec<(usize, usize)> = out_strings
        .iter()
        .filter(|s| s.skip)
        .map(|s| (s.raw_start, s.raw_end))
        .collect();
    // Bytes of escape sequences that do not stand for themselves (`n` of `\n`, `u00e9` of `\u00e9`): an original
    // that starts there is not in the string.
    let mut in_escape = vec![false; out.len()];
    for s in &out_strings {
        let mut i = s.raw_start + 1;
        while i < s.raw_end - 1 {
            if out[i] == b'\\' {
                let n = if out[i + 1] == b'u' { 5 } else { 1 };
                if !matches!(out[i + 1], b'/' | b'"' | b'\\') {
                    in_escape[i + 1..i + 1 + n].fill(true);
                }
                i += 1 + n;
            } else {
                i += 1;
            }
        }
    }
    // Placeholders written, found in the strings as they read decoded: `\u000cAWS_EC2_001` holds the placeholder
    // after a form feed, though the byte before it is the `c` of the escape.
    let mut view = out.to_vec();
    for (i, &e) in in_escape.iter().enumerate() {
        if e {
            view[i] = b' ';
        }
    }
    let inserted: Vec<(usize, usize)> = placeholder::find_all(&view)
        .filter(|&(a, b)| std::str::from_utf8(&out[a..b]).is_ok_and(|p| placeholders.iter().any(|q| q == p)))
        .collect();
    for (o, reach) in originals.iter().zip(reaches) {
        for needle in [o.as_bytes().to_vec(), escaped(o)] {
            for at in find_all(out, &needle) {
                let end = at + needle.len();
                if !within_reach(reach, out, at, end) {
                    continue;
                }
                let ok = in_escape[at]
                    || skipped.iter().any(|&(a, b)| a <= at && end <= b)
                    || inserted.iter().any(|&(a, b)| a < end && at < b);
                assert!(ok, "original {o:?} left at {at}: {}", String::from_utf8_lossy(out));
            }
        }
    }
});
