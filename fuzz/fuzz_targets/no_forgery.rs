//! The fuzz-found class to rule out: a request containing placeholder-shaped text must never yield an original
//! that the request did not contain.
//!
//! One tenant vault (counters per prefix, shared by the tenant's requests, as in the gateway). A victim request
//! with real identifiers is masked first, so the tenant's low placeholders (`AWS_EC2_001`, ...) belong to it.
//! Then an attacker request built from the fuzz input (text, placeholder-shaped strings, identifiers, some of
//! them the victim's) is masked, as text and as a JSON body. The "response" is made of pieces of the attacker's
//! masked request and fuzz-chosen placeholder-shaped strings (the victim's among them). It is unmasked with the
//! attacker request's map: buffered text, buffered JSON, and streamed (Anthropic SSE, cut into deltas).
//!
//! Asserts: every value a resolver hands out is a substring of the attacker's request text; no victim original
//! that the attacker's request does not contain appears in any unmasked response; the attacker's own masked
//! request unmasks back to exactly what was sent.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use maskgate_engine::{unmask_json, unmask_text, StreamFormat, StreamUnmasker, UnmaskStats};
use maskgate_fuzz::{placeholder_like, Reader, Recording, TenantVault, MASKER};
use serde_json::json;

const VICTIM: &str = "instance i-0abc123def4567890 in vpc-0a1b2c3d, role arn:aws:iam::123456789012:role/Admin, \
    account 210987654321, bucket s3://victim-bucket/key, key AKIAIOSFODNN7EXAMPLE, subnet-1a2b3c4d";

const WORDS: &[&str] = &[
    " ",
    "\n",
    "the ",
    "account ",
    "instance ",
    "AWS_",
    "_",
    "0",
    "\"",
    "\\",
    "é",
    "日本",
    "x",
    ":",
    "/",
    "-",
    "--owner-id ",
    "i-0abc123def4567890",
    "i-0def456abc7890123",
    "vpc-0a1b2c3d",
    "123456789012",
    "210987654321",
    "arn:aws:iam::123456789012:role/Admin",
    "AKIAIOSFODNN7EXAMPLE",
    "sg-0123456789abcdef0",
];

/// Glue for responses: nothing that could be an original.
const GLUE: &[&str] = &[" ", "\n", "\\n", "AWS_", "_", "0", "\\", "x", "-", ".", "é", "\""];

/// The tenant's vault once the victim's request is masked, and the victim's originals.
static AFTER_VICTIM: LazyLock<(TenantVault, Vec<String>)> = LazyLock::new(|| {
    let plan = MASKER.plan_text(VICTIM);
    let originals = plan.entries().iter().map(|e| e.original.to_string()).collect();
    let mut vault = TenantVault::default();
    vault.finish(plan).expect("victim masked");
    (vault, originals)
});

/// Text made of placeholder-shaped strings, words and raw bytes.
fn attacker_text(r: &mut Reader<'_>) -> String {
    let mut s = String::new();
    let n = r.u8() % 32;
    for _ in 0..n {
        match r.u8() % 4 {
            0 | 1 => s.push_str(&placeholder_like(r)),
            2 => s.push_str(WORDS[usize::from(r.u8()) % WORDS.len()]),
            _ => {
                let k = usize::from(r.u8() % 8);
                s.push_str(&String::from_utf8_lossy(r.bytes(k)));
            }
        }
    }
    s
}

/// A response: pieces of the masked request and placeholder-shaped strings.
fn response(r: &mut Reader<'_>, masked: &str) -> String {
    let mut s = String::new();
    let n = r.u8() % 24;
    for _ in 0..n {
        match r.u8() % 3 {
            0 => s.push_str(&placeholder_like(r)),
            1 => {
                let b = masked.as_bytes();
                let (a, len) = (usize::from(r.u16()) % (b.len() + 1), usize::from(r.u8()));
                let mut e = (a + len).min(b.len());
                let mut a = a;
                while !masked.is_char_boundary(a) {
                    a -= 1;
                }
                while !masked.is_char_boundary(e) {
                    e += 1;
                }
                s.push_str(&masked[a..e]);
            }
            _ => s.push_str(GLUE[usize::from(r.u8()) % GLUE.len()]),
        }
    }
    s
}

fn check(what: &str, rec: &Recording<'_>, request: &str, unmasked: &str, victim: &[String]) {
    for v in rec.resolved.borrow().iter() {
        assert!(
            request.contains(v.as_str()),
            "{what}: resolved {v:?}, not in the request {request:?}"
        );
    }
    for o in victim {
        assert!(
            request.contains(o.as_str()) || !unmasked.contains(o.as_str()),
            "{what}: victim's {o:?} in {unmasked:?}, request {request:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let mut vault = AFTER_VICTIM.0.clone();
    let victim = &AFTER_VICTIM.1;

    let request = attacker_text(&mut r);

    // As text.
    let masked = vault.finish(MASKER.plan_text(&request)).expect("text request masked");
    let masked_text = std::str::from_utf8(&masked.body).expect("UTF-8");
    let mut st = UnmaskStats::default();
    assert_eq!(
        unmask_text(masked_text, &masked.map, &mut st),
        request,
        "request round trip"
    );

    let resp = response(&mut r, masked_text);
    let rec = Recording::new(&masked.map);
    let out = unmask_text(&resp, &rec, &mut st);
    check("text", &rec, &request, &out, victim);

    // Streamed: the response's text as Anthropic text deltas, cut by the fuzz input.
    let rec = Recording::new(&masked.map);
    let mut s = StreamUnmasker::new(StreamFormat::AnthropicMessages, &rec);
    let mut sse = Vec::new();
    let mut at = 0;
    while at < resp.len() {
        let mut e = (at + 1 + usize::from(r.u8() % 16)).min(resp.len());
        while !resp.is_char_boundary(e) {
            e += 1;
        }
        let ev =
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": &resp[at..e]}});
        sse.extend_from_slice(format!("event: content_block_delta\ndata: {ev}\n\n").as_bytes());
        at = e;
    }
    sse.extend_from_slice(b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n");
    let mut out = Vec::new();
    s.feed(&sse, &mut out).expect("stream");
    s.finish(&mut out).expect("stream");
    drop(s);
    check("stream", &rec, &request, &String::from_utf8_lossy(&out), victim);

    // As a JSON body.
    let body = json!({"model": "m", "messages": [{"role": "user", "content": &request}]}).to_string();
    let masked = vault
        .finish(MASKER.plan_json(body.as_bytes()).expect("valid JSON"))
        .expect("JSON request masked");
    let back = unmask_json(&masked.body, &masked.map, &mut st).expect("JSON");
    let back: serde_json::Value = serde_json::from_slice(&back).expect("JSON");
    assert_eq!(
        back["messages"][0]["content"].as_str(),
        Some(request.as_str()),
        "JSON request round trip"
    );
    let masked_content: serde_json::Value = serde_json::from_slice(&masked.body).expect("JSON");
    let masked_content = masked_content["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let resp = response(&mut r, &masked_content);
    let resp_body = json!({"content": [{"type": "text", "text": &resp}], "id": &resp}).to_string();
    let rec = Recording::new(&masked.map);
    let out = unmask_json(resp_body.as_bytes(), &rec, &mut st).expect("JSON");
    let out: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
    check("json", &rec, &request, &out.to_string(), victim);
    check(
        "json text",
        &rec,
        &request,
        out["content"][0]["text"].as_str().unwrap_or_default(),
        victim,
    );
});
