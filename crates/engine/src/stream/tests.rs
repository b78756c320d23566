//! Stream unmasking tests: realistic event streams per format, placeholders split at every byte and across
//! events, arbitrary chunking of the byte stream, flush placement, pass-through framing.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::Value;

use super::*;
use crate::resolve::RequestMap;
use crate::sse::SseFramer;
use crate::unmask::tests::{arb_text, map, split_chars};
use crate::unmask::unmask_json;

const ROLE: &str = "arn:aws:iam::123456789012:role/Admin";
const VM: &str = "i-0abc123def4567890";

fn lit(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Feeds `input` cut at `cuts` (taken modulo the length).
fn feed(format: StreamFormat, input: &[u8], cuts: &[usize]) -> (Vec<u8>, UnmaskStats) {
    let m = map();
    let mut s = StreamUnmasker::new(format, &m);
    let mut out = Vec::new();
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    at.push(0);
    at.push(input.len());
    at.sort_unstable();
    for w in at.windows(2) {
        s.feed(&input[w[0]..w[1]], &mut out).unwrap();
    }
    s.finish(&mut out).unwrap();
    (out, s.stats())
}

/// Feeds `input` whole, one byte at a time, and cut at every single position; all must give the same bytes.
fn feed_all_ways(format: StreamFormat, input: &[u8]) -> (Vec<u8>, UnmaskStats) {
    let whole = feed(format, input, &[]);
    let cuts: Vec<usize> = (0..input.len()).collect();
    assert_eq!(feed(format, input, &cuts), whole, "1-byte chunks");
    for k in 0..input.len() {
        assert_eq!(feed(format, input, &[k]), whole, "split at {k}");
    }
    whole
}

fn sse_events(out: &[u8]) -> Vec<Vec<u8>> {
    let mut f = SseFramer::new();
    let mut evs = Vec::new();
    f.feed(out, |e| evs.push(e.to_vec())).unwrap();
    f.finish(|e| evs.push(e.to_vec()));
    evs
}

/// The JSON data of every event that has some.
fn sse_json(out: &[u8]) -> Vec<Value> {
    sse_events(out)
        .iter()
        .filter_map(|e| Event::new(e).data())
        .filter_map(|d| serde_json::from_slice(&d).ok())
        .collect()
}

fn text_of(s: &str) -> (String, UnmaskStats) {
    let mut st = UnmaskStats::default();
    (unmask_text(s, &map(), &mut st).into_owned(), st)
}

fn json_of(s: &str) -> (String, UnmaskStats) {
    let mut st = UnmaskStats::default();
    let o = unmask_json(s.as_bytes(), &map(), &mut st).unwrap();
    (String::from_utf8(o).unwrap(), st)
}

fn add(a: UnmaskStats, b: UnmaskStats) -> UnmaskStats {
    let mut a = a;
    a.add(b);
    a
}

// ---------------------------------------------------------------- Anthropic

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum AKind {
    Text,
    Tool,
    Thinking,
}

fn sse(name: &str, data: &str) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

fn anthropic_stream(blocks: &[(AKind, Vec<&str>)]) -> String {
    let mut s = sse(
        "message_start",
        r#"{"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2}}}"#,
    );
    for (i, (kind, pieces)) in blocks.iter().enumerate() {
        let start = match kind {
            AKind::Text => r#"{"type":"text","text":""}"#,
            AKind::Tool => {
                r#"{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"describe_instances","input":{}}"#
            }
            AKind::Thinking => r#"{"type":"thinking","thinking":"","signature":""}"#,
        };
        s += &sse(
            "content_block_start",
            &format!(r#"{{"type":"content_block_start","index":{i},"content_block":{start}}}"#),
        );
        if i == 0 {
            s += &sse("ping", r#"{"type": "ping"}"#);
        }
        let (dt, field) = match kind {
            AKind::Text => ("text_delta", "text"),
            AKind::Tool => ("input_json_delta", "partial_json"),
            AKind::Thinking => ("thinking_delta", "thinking"),
        };
        for p in pieces {
            s += &sse(
                "content_block_delta",
                &format!(
                    r#"{{"type":"content_block_delta","index":{i},"delta":{{"type":"{dt}","{field}":{}}}}}"#,
                    lit(p)
                ),
            );
        }
        if *kind == AKind::Thinking {
            s += &sse(
                "content_block_delta",
                &format!(
                    r#"{{"type":"content_block_delta","index":{i},"delta":{{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}}}}"#
                ),
            );
        }
        s += &sse(
            "content_block_stop",
            &format!(r#"{{"type":"content_block_stop","index":{i}}}"#),
        );
    }
    s += &sse(
        "message_delta",
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#,
    );
    s += &sse("message_stop", r#"{"type":"message_stop"}"#);
    s
}

/// Text per block index, checking that every delta of a block comes before its stop (and its signature).
fn anthropic_blocks(out: &[u8]) -> BTreeMap<u64, String> {
    let mut blocks: BTreeMap<u64, String> = BTreeMap::new();
    let mut closed: Vec<u64> = Vec::new();
    let evs = sse_json(out);
    assert_eq!(evs.last().unwrap()["type"], "message_stop");
    for v in evs {
        let idx = v["index"].as_u64();
        match v["type"].as_str().unwrap() {
            "content_block_delta" => {
                let idx = idx.unwrap();
                assert!(!closed.contains(&idx), "delta after the block closed");
                let d = &v["delta"];
                let t = match d["type"].as_str().unwrap() {
                    "text_delta" => &d["text"],
                    "input_json_delta" => &d["partial_json"],
                    "thinking_delta" => &d["thinking"],
                    "signature_delta" => {
                        closed.push(idx);
                        continue;
                    }
                    other => panic!("{other}"),
                };
                blocks.entry(idx).or_default().push_str(t.as_str().unwrap());
            }
            "content_block_stop" => closed.push(idx.unwrap()),
            _ => {}
        }
    }
    blocks
}

#[test]
fn anthropic_exact_events() {
    let input = anthropic_stream(&[(AKind::Text, vec!["Use AWS_E", "C2_0", "01 now, see AWS_EC2_001"])]);
    let (out, st) = feed_all_ways(StreamFormat::AnthropicMessages, input.as_bytes());
    let out = String::from_utf8(out).unwrap();
    let delta = |t: &str| {
        sse(
            "content_block_delta",
            &format!(
                r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":{}}}}}"#,
                lit(t)
            ),
        )
    };
    let want = input
        .replace(&delta("Use AWS_E"), &delta("Use "))
        .replace(&delta("C2_0"), &delta(""))
        .replace(
            &delta("01 now, see AWS_EC2_001"),
            &(delta(&format!("{VM} now, see ")) + &delta(VM)),
        );
    assert_eq!(out, want);
    assert_eq!(st, UnmaskStats { resolved: 2, misses: 0 });
}

#[test]
fn anthropic_split_everywhere() {
    let text = "Instance AWS_EC2_001 uses AWS_IAM_ROLE_003; AWS_EC2_009 is unknown. é AWS_S3_BUCKET_010";
    let args = r#"{"instance_id": "AWS_EC2_001", "odd": "AWS_ODD_002", "n": 1}"#;
    let think = "The user means AWS_EC2_001.";
    let (want_text, st1) = text_of(text);
    let (want_args, st2) = json_of(args);
    let (want_think, st3) = text_of(think);
    let want_stats = add(add(st1, st2), st3);
    let cuts: Vec<usize> = (0..=text.len()).filter(|&i| text.is_char_boundary(i)).collect();
    for &a in &cuts {
        for &b in cuts.iter().filter(|&&b| b >= a) {
            let ka = a % args.len();
            let kt = b % think.len();
            let input = anthropic_stream(&[
                (AKind::Thinking, vec![&think[..kt], &think[kt..]]),
                (AKind::Text, vec![&text[..a], &text[a..b], &text[b..]]),
                (AKind::Tool, vec![&args[..ka], &args[ka..]]),
            ]);
            let (out, st) = feed(StreamFormat::AnthropicMessages, input.as_bytes(), &[a, b * 7]);
            let blocks = anthropic_blocks(&out);
            assert_eq!(blocks[&0], want_think);
            assert_eq!(blocks[&1], want_text, "split {a} {b}");
            assert_eq!(blocks[&2], want_args);
            assert_eq!(st, want_stats);
        }
    }
    let args_v: Value = serde_json::from_str(&want_args).unwrap();
    assert_eq!(args_v["instance_id"], VM);
    assert_eq!(args_v["odd"], "q\"b\\s\nc\u{1}é日");
}

#[test]
fn anthropic_passthrough_and_framing() {
    // Events that nothing changes pass through byte for byte, whatever the chunking.
    let input = anthropic_stream(&[
        (AKind::Thinking, vec!["hmm", " ok"]),
        (AKind::Text, vec!["Hello", " world, é日😀"]),
        (AKind::Tool, vec!["{\"a\":", " \"b\"}"]),
    ]);
    let (out, st) = feed_all_ways(StreamFormat::AnthropicMessages, input.as_bytes());
    assert_eq!(out, input.as_bytes());
    assert_eq!(st, UnmaskStats::default());
    // CRLF framing, comments and ids are kept.
    let crlf =
        input
            .replace('\n', "\r\n")
            .replacen("event: ping", ": keep-alive\r\nid: 42\r\nretry: 3000\r\nevent: ping", 1);
    let (out, _) = feed_all_ways(StreamFormat::AnthropicMessages, crlf.as_bytes());
    assert_eq!(out, crlf.as_bytes());
    // Changed events keep their framing too.
    let input = anthropic_stream(&[(AKind::Text, vec!["vm AWS_E", "C2_001."])]).replace('\n', "\r\n");
    let (out, _) = feed_all_ways(StreamFormat::AnthropicMessages, input.as_bytes());
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains(&format!(
        "event: content_block_delta\r\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{VM}.\"}}}}\r\n\r\n"
    )));
    assert_eq!(out.matches("\r\n\r\n").count(), input.matches("\r\n\r\n").count());
    assert!(!out.replace("\r\n", "").contains('\n'));
}

/// fuzz `sse_stream`: an event whose lines end differently (`\r`, `\n`, then a `\r\n` blank line) left a block
/// held; cut between that last `\r` and `\n`, the framer emits the event at the `\r` and the `\n` alone, and the
/// flush event built from it ended with `\r` where whole input gives `\r\n`. The lone `\n` now completes the
/// template, exactly.
#[test]
fn mixed_line_endings_cut_inside_the_last_crlf() {
    let delta =
        |t: &str| format!(r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{t}"}}}}"#);
    let input = format!(
        "data: {}\rid: 1\n\r\ndata: {{\"type\":\"content_block_stop\",\"index\":0}}\r\r",
        delta("vm AWS_E"),
    );
    let (out, _) = feed_all_ways(StreamFormat::AnthropicMessages, input.as_bytes());
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains(&format!(
            "data: {}\rid: 1\n\r\ndata: {}\rid: 1\n\r\n",
            delta("vm "),
            delta("AWS_E")
        )),
        "{out:?}"
    );
    // A `\r`-only blank line, then a lone `\n` event of its own: nothing to complete.
    let input = format!(
        "data: {}\n\r\n\ndata: {{\"type\":\"message_stop\"}}\n\n",
        delta("x AWS_E")
    );
    feed_all_ways(StreamFormat::AnthropicMessages, input.as_bytes());
    let gemini =
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"thinking AWS_AC\", \"thought\": true}]}}]}\r\
        content_index\n\r\ndata: {\"candidates\":{\"[c oncteonntent\": {\"parts\": []}}]t\":\n";
    feed_all_ways(StreamFormat::GeminiSse, gemini.as_bytes());
}

#[test]
fn anthropic_unresolved_and_whole_events() {
    // An unknown placeholder split across events stays as it was, counted once.
    let input = anthropic_stream(&[(AKind::Text, vec!["x AWS_EC", "2_009 y"])]);
    let (out, st) = feed_all_ways(StreamFormat::AnthropicMessages, input.as_bytes());
    assert_eq!(anthropic_blocks(&out)[&0], "x AWS_EC2_009 y");
    assert_eq!(st, UnmaskStats { resolved: 0, misses: 1 });
    // Strings in message_start / content_block_start (tool input given whole) are unmasked, JSON-escaped.
    let input = anthropic_stream(&[(AKind::Text, vec!["hi"])]).replace(
        r#""content_block":{"type":"text","text":""}"#,
        r#""content_block":{"type":"tool_use","id":"t","name":"n","input":{"id":"AWS_ODD_002"}}"#,
    );
    let (out, st) = feed(StreamFormat::AnthropicMessages, input.as_bytes(), &[]);
    let evs = sse_json(&out);
    assert_eq!(evs[1]["content_block"]["input"]["id"], "q\"b\\s\nc\u{1}é日");
    assert_eq!(st.resolved, 1);
    // Events that are not JSON are unmasked as text; the stream goes on.
    let input = format!(
        "event: weird\ndata: not json AWS_EC2_001\n\n{}",
        anthropic_stream(&[(AKind::Text, vec!["AWS_EC2_001"])])
    );
    let (out, _) = feed_all_ways(StreamFormat::AnthropicMessages, input.as_bytes());
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with(&format!("event: weird\ndata: not json {VM}\n\n")));
    assert_eq!(anthropic_blocks(out.as_bytes())[&0], VM);
}

#[test]
fn anthropic_flush_fallbacks() {
    // No content_block_stop: held text goes out before message_delta.
    let input = anthropic_stream(&[(AKind::Text, vec!["see AWS_EC2_001"])]);
    let stop = sse("content_block_stop", r#"{"type":"content_block_stop","index":0}"#);
    let input = input.replace(&stop, "");
    let (out, _) = feed_all_ways(StreamFormat::AnthropicMessages, input.as_bytes());
    let out = String::from_utf8(out).unwrap();
    let flush = out.find(VM).unwrap();
    assert!(flush < out.find("message_delta").unwrap());
    // The stream ends early: held text goes out at the end.
    let cut = input.find("event: message_delta").unwrap();
    let (out, _) = feed(StreamFormat::AnthropicMessages, &input.as_bytes()[..cut], &[]);
    let out = String::from_utf8(out).unwrap();
    assert!(out.ends_with(&format!("\"text\":\"{VM}\"}}}}\n\n")), "{out}");
    // Cut inside the last event: held text first, then the partial event as it was.
    let cut = input.find("event: message_delta").unwrap() + 30;
    let (out, _) = feed(StreamFormat::AnthropicMessages, &input.as_bytes()[..cut], &[]);
    let out = String::from_utf8(out).unwrap();
    assert!(out.ends_with(&input[input.find("event: message_delta").unwrap()..cut]));
    assert!(out.contains(VM));
}

#[test]
fn anthropic_large_event_flush() {
    // Events too large to keep as a template get a minimal flush event, with the same event name.
    let big = "x".repeat(70_000) + " AWS_EC2_001";
    let input = anthropic_stream(&[(AKind::Text, vec![&big])]);
    let (out, st) = feed(StreamFormat::AnthropicMessages, input.as_bytes(), &[1000, 50_000]);
    let out = String::from_utf8(out).unwrap();
    let flush = format!(
        "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{VM}\"}}}}\n\nevent: content_block_stop\n"
    );
    assert!(out.contains(&flush));
    assert_eq!(anthropic_blocks(out.as_bytes())[&0], big.replace("AWS_EC2_001", VM));
    assert_eq!(st.resolved, 1);
}

// ---------------------------------------------------------------- OpenAI Chat Completions

const CHUNK_HEAD: &str = r#""id":"chatcmpl-7QyqpwdfhqwajicIEznoc6Q47XAyW","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_44709d6fcb""#;

fn chat_chunk(choices: &str) -> String {
    format!("data: {{{CHUNK_HEAD},\"choices\":[{choices}]}}\n\n")
}

/// Two choices streaming content alternately; choice 0 then calls a tool.
fn chat_stream(c0: &[&str], c1: &[&str], args: &[&str]) -> String {
    let mut s = chat_chunk(
        r#"{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null},{"index":1,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}"#,
    );
    for i in 0..c0.len().max(c1.len()) {
        if let Some(p) = c0.get(i) {
            s += &chat_chunk(&format!(
                r#"{{"index":0,"delta":{{"content":{}}},"logprobs":null,"finish_reason":null}}"#,
                lit(p)
            ));
        }
        if let Some(p) = c1.get(i) {
            s += &chat_chunk(&format!(
                r#"{{"index":1,"delta":{{"content":{}}},"logprobs":null,"finish_reason":null}}"#,
                lit(p)
            ));
        }
    }
    s += &chat_chunk(r#"{"index":1,"delta":{},"logprobs":null,"finish_reason":"stop"}"#);
    s += &chat_chunk(
        r#"{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_DdmO9pD3xa9XTPNJ32zg2hcA","type":"function","function":{"name":"describe_instances","arguments":""}}]},"logprobs":null,"finish_reason":null}"#,
    );
    for p in args {
        s += &chat_chunk(&format!(
            r#"{{"index":0,"delta":{{"tool_calls":[{{"index":0,"function":{{"arguments":{}}}}}]}},"logprobs":null,"finish_reason":null}}"#,
            lit(p)
        ));
    }
    s += &chat_chunk(r#"{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}"#);
    s += &format!(
        "data: {{{CHUNK_HEAD},\"choices\":[],\"usage\":{{\"prompt_tokens\":19,\"completion_tokens\":10,\"total_tokens\":29}}}}\n\n"
    );
    s += "data: [DONE]\n\n";
    s
}

/// (content of choice 0, content of choice 1, arguments of choice 0's tool call 0), checking that no delta of a
/// choice follows its finish_reason and that [DONE] is last.
fn chat_texts(out: &[u8]) -> (String, String, String) {
    let evs = sse_events(out);
    assert_eq!(evs.last().unwrap(), b"data: [DONE]\n\n");
    let mut content: BTreeMap<u64, String> = BTreeMap::new();
    let mut args = String::new();
    let mut finished: Vec<u64> = Vec::new();
    for v in sse_json(out) {
        for c in v["choices"].as_array().unwrap() {
            let i = c["index"].as_u64().unwrap();
            assert!(!finished.contains(&i), "delta after finish_reason");
            if let Some(t) = c["delta"]["content"].as_str() {
                content.entry(i).or_default().push_str(t);
            }
            if let Some(tc) = c["delta"]["tool_calls"].as_array() {
                assert_eq!(tc[0]["index"], 0);
                if let Some(a) = tc[0]["function"]["arguments"].as_str() {
                    args.push_str(a);
                }
            }
            if c["finish_reason"].is_string() {
                finished.push(i);
            }
        }
    }
    (
        content.remove(&0).unwrap_or_default(),
        content.remove(&1).unwrap_or_default(),
        args,
    )
}

#[test]
fn chat_split_everywhere() {
    let t0 = "Instance AWS_EC2_001 is up; role AWS_IAM_ROLE_003.";
    let t1 = "Bucket AWS_S3_BUCKET_010 and AWS_EC2_009";
    let args = r#"{"InstanceIds": ["AWS_EC2_001", "AWS_EC2_1000"], "q": "AWS_ODD_002"}"#;
    let (w0, s0) = text_of(t0);
    let (w1, s1) = text_of(t1);
    let (wa, sa) = json_of(args);
    let want_stats = add(add(s0, s1), sa);
    for a in (0..=t0.len()).filter(|&i| t0.is_char_boundary(i)) {
        let b = (a * 3) % (t1.len() + 1);
        let c = (a * 5) % (args.len() + 1);
        let input = chat_stream(
            &[&t0[..a], &t0[a..]],
            &[&t1[..b], &t1[b..]],
            &[
                &args[..c],
                &args[c..c + (args.len() - c) / 2],
                &args[c + (args.len() - c) / 2..],
            ],
        );
        let (out, st) = feed(StreamFormat::OpenAiChat, input.as_bytes(), &[a, a * 11]);
        let (g0, g1, ga) = chat_texts(&out);
        assert_eq!(
            (g0.as_str(), g1.as_str(), ga.as_str()),
            (w0.as_str(), w1.as_str(), wa.as_str())
        );
        assert_eq!(st, want_stats);
    }
    let v: Value = serde_json::from_str(&wa).unwrap();
    assert_eq!(v["InstanceIds"][0], VM);
    assert_eq!(v["q"], "q\"b\\s\nc\u{1}é日");
}

#[test]
fn chat_exact_flush_before_finish() {
    let input = chat_stream(&["vm AWS_EC2_001"], &["x"], &[r#"{"id":"AWS_EC2_00"#, r#"1"}"#]);
    let (out, _) = feed_all_ways(StreamFormat::OpenAiChat, input.as_bytes());
    let out = String::from_utf8(out).unwrap();
    // Choice 0's content is held until its finish chunk, and goes out as its own chunk just before it.
    let flush = chat_chunk(&format!(
        r#"{{"index":0,"delta":{{"content":"{VM}"}},"finish_reason":null}}"#
    ));
    let finish0 = chat_chunk(r#"{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}"#);
    assert!(out.contains(&(flush + &finish0)), "{out}");
    let args = chat_chunk(&format!(
        r#"{{"index":0,"delta":{{"tool_calls":[{{"index":0,"function":{{"arguments":{}}}}}]}},"logprobs":null,"finish_reason":null}}"#,
        lit(&format!(r#"{VM}"}}"#))
    ));
    assert!(out.contains(&args), "{out}");
    // Everything else is untouched.
    let (g0, g1, ga) = chat_texts(out.as_bytes());
    assert_eq!(g0, format!("vm {VM}"));
    assert_eq!(g1, "x");
    assert_eq!(ga, format!(r#"{{"id":"{VM}"}}"#));
}

#[test]
fn chat_finish_in_same_chunk_and_done() {
    // Some servers send the last content together with finish_reason: the held text goes into that chunk.
    let input = chat_chunk(r#"{"index":0,"delta":{"content":"a AWS_EC2_0"},"finish_reason":null}"#)
        + &chat_chunk(r#"{"index":0,"delta":{"content":"01"},"finish_reason":"stop"}"#)
        + &chat_chunk(r#"{"index":1,"delta":{"refusal":"no AWS_EC2_001"},"finish_reason":null}"#)
        + "data: [DONE]\n\n";
    let (out, st) = feed_all_ways(StreamFormat::OpenAiChat, input.as_bytes());
    let evs = sse_json(&out);
    assert_eq!(evs[0]["choices"][0]["delta"]["content"], "a ");
    assert_eq!(evs[1]["choices"][0]["delta"]["content"], VM);
    assert_eq!(evs[2]["choices"][0]["delta"]["refusal"], "no ");
    assert_eq!(evs[3]["choices"][0]["delta"]["refusal"], VM);
    assert_eq!(evs[3]["choices"][0]["index"], 1);
    assert_eq!(evs[3]["id"], "chatcmpl-7QyqpwdfhqwajicIEznoc6Q47XAyW");
    assert_eq!(evs.len(), 4);
    assert!(out.ends_with(b"data: [DONE]\n\n"));
    assert_eq!(st.resolved, 2);
}

// ---------------------------------------------------------------- OpenAI Responses

fn resp_stream(text: &[&str], args: &[&str], reasoning: &[&str]) -> String {
    let full: String = text.concat();
    let full_args: String = args.concat();
    let full_r: String = reasoning.concat();
    let mut seq = 0;
    let mut s = String::new();
    let mut ev = |ty: &str, body: String| {
        s += &format!(
            "event: {ty}\ndata: {{\"type\":\"{ty}\",\"sequence_number\":{seq}{}{body}}}\n\n",
            if body.is_empty() { "" } else { "," }
        );
        seq += 1;
    };
    ev(
        "response.created",
        r#""response":{"id":"resp_67c9fdcecf488190bdd9a0409de3a1ec","object":"response","created_at":1741290958,"status":"in_progress","model":"gpt-4.1-2025-04-14","output":[]}"#.into(),
    );
    ev(
        "response.in_progress",
        r#""response":{"id":"resp_67c9fdcecf488190bdd9a0409de3a1ec","status":"in_progress"}"#.into(),
    );
    // Reasoning summary.
    ev(
        "response.output_item.added",
        r#""output_index":0,"item":{"id":"rs_1","type":"reasoning","summary":[]}"#.into(),
    );
    for p in reasoning {
        ev(
            "response.reasoning_summary_text.delta",
            format!(
                r#""item_id":"rs_1","output_index":0,"summary_index":0,"delta":{},"obfuscation":"xYz""#,
                lit(p)
            ),
        );
    }
    ev(
        "response.reasoning_summary_text.done",
        format!(
            r#""item_id":"rs_1","output_index":0,"summary_index":0,"text":{}"#,
            lit(&full_r)
        ),
    );
    ev(
        "response.output_item.done",
        format!(
            r#""output_index":0,"item":{{"id":"rs_1","type":"reasoning","summary":[{{"type":"summary_text","text":{}}}]}}"#,
            lit(&full_r)
        ),
    );
    // Message.
    ev(
        "response.output_item.added",
        r#""output_index":1,"item":{"id":"msg_67c9fdcf37fc8190ba82116e33fb28c5","type":"message","status":"in_progress","role":"assistant","content":[]}"#.into(),
    );
    ev(
        "response.content_part.added",
        r#""item_id":"msg_67c9fdcf37fc8190ba82116e33fb28c5","output_index":1,"content_index":0,"part":{"type":"output_text","text":"","annotations":[]}"#.into(),
    );
    for p in text {
        ev(
            "response.output_text.delta",
            format!(
                r#""item_id":"msg_67c9fdcf37fc8190ba82116e33fb28c5","output_index":1,"content_index":0,"delta":{},"logprobs":[]"#,
                lit(p)
            ),
        );
    }
    ev(
        "response.output_text.done",
        format!(
            r#""item_id":"msg_67c9fdcf37fc8190ba82116e33fb28c5","output_index":1,"content_index":0,"text":{},"logprobs":[]"#,
            lit(&full)
        ),
    );
    ev(
        "response.content_part.done",
        format!(
            r#""item_id":"msg_67c9fdcf37fc8190ba82116e33fb28c5","output_index":1,"content_index":0,"part":{{"type":"output_text","text":{},"annotations":[]}}"#,
            lit(&full)
        ),
    );
    let msg = format!(
        r#"{{"id":"msg_67c9fdcf37fc8190ba82116e33fb28c5","type":"message","status":"completed","role":"assistant","content":[{{"type":"output_text","text":{},"annotations":[]}}]}}"#,
        lit(&full)
    );
    ev("response.output_item.done", format!(r#""output_index":1,"item":{msg}"#));
    // Function call.
    ev(
        "response.output_item.added",
        r#""output_index":2,"item":{"id":"fc_12345xyz","type":"function_call","status":"in_progress","arguments":"","call_id":"call_12345xyz","name":"describe_instances"}"#.into(),
    );
    for p in args {
        ev(
            "response.function_call_arguments.delta",
            format!(r#""item_id":"fc_12345xyz","output_index":2,"delta":{}"#, lit(p)),
        );
    }
    ev(
        "response.function_call_arguments.done",
        format!(
            r#""item_id":"fc_12345xyz","output_index":2,"arguments":{}"#,
            lit(&full_args)
        ),
    );
    let fc = format!(
        r#"{{"id":"fc_12345xyz","type":"function_call","status":"completed","arguments":{},"call_id":"call_12345xyz","name":"describe_instances"}}"#,
        lit(&full_args)
    );
    ev("response.output_item.done", format!(r#""output_index":2,"item":{fc}"#));
    ev(
        "response.completed",
        format!(
            r#""response":{{"id":"resp_67c9fdcecf488190bdd9a0409de3a1ec","object":"response","status":"completed","output":[{msg},{fc}],"usage":{{"input_tokens":37,"output_tokens":11,"total_tokens":48}}}}"#
        ),
    );
    s
}

/// Accumulated deltas per (item, prefix), checked against the text of the matching `.done` event; no delta may
/// follow its `.done`. Returns (reasoning, text, arguments) and the final `response.completed` output.
fn resp_texts(out: &[u8]) -> (String, String, String, Value) {
    let mut acc: BTreeMap<String, String> = BTreeMap::new();
    let mut done: Vec<String> = Vec::new();
    let mut completed = Value::Null;
    for v in sse_json(out) {
        let ty = v["type"].as_str().unwrap();
        let item = v["item_id"].as_str().unwrap_or("").to_owned();
        if let Some(prefix) = ty.strip_suffix(".delta") {
            let key = format!("{item}/{prefix}");
            assert!(!done.contains(&key), "delta after done: {key}");
            acc.entry(key).or_default().push_str(v["delta"].as_str().unwrap());
        } else if let Some(prefix) = ty.strip_suffix(".done") {
            let key = format!("{item}/{prefix}");
            let full = v["text"].as_str().or(v["arguments"].as_str());
            if let Some(full) = full {
                assert_eq!(acc.get(&key).map(String::as_str).unwrap_or(""), full, "{key}");
            }
            done.push(key);
        } else if ty == "response.completed" {
            completed = v["response"]["output"].clone();
        }
    }
    let get = |k: &str| acc.get(k).cloned().unwrap_or_default();
    (
        get("rs_1/response.reasoning_summary_text"),
        get("msg_67c9fdcf37fc8190ba82116e33fb28c5/response.output_text"),
        get("fc_12345xyz/response.function_call_arguments"),
        completed,
    )
}

#[test]
fn responses_split_everywhere() {
    let text = "Your instance AWS_EC2_001 runs as AWS_IAM_ROLE_003 (AWS_EC2_009).";
    let args = r#"{"InstanceIds":["AWS_EC2_001"],"Filter":"AWS_ODD_002"}"#;
    let reasoning = "Looking up AWS_EC2_001";
    let (wt, s1) = text_of(text);
    let (wa, s2) = json_of(args);
    let (wr, s3) = text_of(reasoning);
    for a in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
        let b = (a * 7) % (args.len() + 1);
        let c = (a * 3) % (reasoning.len() + 1);
        let input = resp_stream(
            &[&text[..a / 2], &text[a / 2..a], &text[a..]],
            &[&args[..b], &args[b..]],
            &[&reasoning[..c], &reasoning[c..]],
        );
        let (out, st) = feed(StreamFormat::OpenAiResponses, input.as_bytes(), &[a * 13]);
        let (gr, gt, ga, completed) = resp_texts(&out);
        assert_eq!(gt, wt, "split {a}");
        assert_eq!(ga, wa);
        assert_eq!(gr, wr);
        assert_eq!(completed[0]["content"][0]["text"], wt.as_str());
        assert_eq!(completed[1]["arguments"], wa.as_str());
        // Each of the three texts is unmasked once per event carrying it: deltas, then the `.done`-type events
        // carrying the full text whole (done, content_part.done, output_item.done, completed).
        let per = |s: UnmaskStats, n: u64| UnmaskStats {
            resolved: s.resolved * n,
            misses: s.misses * n,
        };
        assert_eq!(st, add(add(per(s1, 5), per(s2, 4)), per(s3, 3)));
    }
}

#[test]
fn responses_flush_before_done() {
    let input = resp_stream(&["id AWS_EC2_001"], &["{\"a\":\"AWS_EC2_001\"}"], &["AWS_EC2_001"]);
    let (out, _) = feed_all_ways(StreamFormat::OpenAiResponses, input.as_bytes());
    let out = String::from_utf8(out).unwrap();
    let flush = format!(
        "event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"sequence_number\":8,\"item_id\":\"msg_67c9fdcf37fc8190ba82116e33fb28c5\",\"output_index\":1,\"content_index\":0,\"delta\":\"{VM}\",\"logprobs\":[]}}\n\nevent: response.output_text.done\n"
    );
    assert!(out.contains(&flush), "{out}");
    // The reasoning summary delta carried "obfuscation"; its flush does not.
    assert!(out.contains(&format!(
        "\"summary_index\":0,\"delta\":\"{VM}\"}}\n\nevent: response.reasoning_summary_text.done\n"
    )));
    let (gr, gt, ga, _) = resp_texts(out.as_bytes());
    assert_eq!((gr, gt), (VM.to_owned(), format!("id {VM}")));
    assert_eq!(ga, format!("{{\"a\":\"{VM}\"}}"));
    // Audio deltas (base64) pass untouched.
    let audio = "event: response.audio.delta\ndata: {\"type\":\"response.audio.delta\",\"response_id\":\"r\",\"item_id\":\"i\",\"output_index\":0,\"content_index\":0,\"delta\":\"AWS_EC2_001\"}\n\n";
    let (out, st) = feed(StreamFormat::OpenAiResponses, audio.as_bytes(), &[]);
    assert_eq!(out, audio.as_bytes());
    assert_eq!(st, UnmaskStats::default());
}

// ---------------------------------------------------------------- Gemini

fn gemini_chunk(parts: &str, finish: bool) -> String {
    format!(
        r#"{{"candidates": [{{"content": {{"parts": [{parts}],"role": "model"}}{}"index": 0}}],"usageMetadata": {{"promptTokenCount": 9,"candidatesTokenCount": 12,"totalTokenCount": 21}},"modelVersion": "gemini-2.5-flash","responseId": "l0z0aPbUCfGe1MkP2YiZiQU"}}"#,
        if finish { r#","finishReason": "STOP","# } else { "," }
    )
}

/// Chunks: thought pieces, then answer pieces (the last with finishReason), and a function call in between.
fn gemini_chunks(thought: &[&str], text: &[&str]) -> Vec<String> {
    let mut v = Vec::new();
    for p in thought {
        v.push(gemini_chunk(
            &format!(r#"{{"text": {},"thought": true}}"#, lit(p)),
            false,
        ));
    }
    v.push(gemini_chunk(
        r#"{"functionCall": {"name": "describe_instances","args": {"InstanceIds": ["AWS_EC2_001"],"note": "AWS_ODD_002"}},"thoughtSignature": "CiQB0e2Kb8tWzA=="}"#,
        false,
    ));
    for (i, p) in text.iter().enumerate() {
        v.push(gemini_chunk(&format!(r#"{{"text": {}}}"#, lit(p)), i + 1 == text.len()));
    }
    v
}

fn gemini_sse(chunks: &[String]) -> String {
    chunks.iter().map(|c| format!("data: {c}\r\n\r\n")).collect()
}

fn gemini_array(chunks: &[String]) -> String {
    let pretty: Vec<String> = chunks
        .iter()
        .map(|c| serde_json::to_string_pretty(&serde_json::from_str::<Value>(c).unwrap()).unwrap())
        .collect();
    format!("[{}]", pretty.join(",\r\n"))
}

/// (thought text, answer text, function call args) from the output chunks.
fn gemini_texts(chunks: &[Value]) -> (String, String, Value) {
    let (mut th, mut tx, mut args) = (String::new(), String::new(), Value::Null);
    let mut finished = false;
    for v in chunks {
        for c in v["candidates"].as_array().unwrap() {
            assert!(!finished, "text after finishReason");
            for p in c["content"]["parts"].as_array().unwrap() {
                if let Some(t) = p["text"].as_str() {
                    if p["thought"] == true {
                        th.push_str(t)
                    } else {
                        tx.push_str(t)
                    }
                }
                if p["functionCall"].is_object() {
                    args = p["functionCall"]["args"].clone();
                    assert_eq!(p["thoughtSignature"], "CiQB0e2Kb8tWzA==");
                }
            }
            finished |= c["finishReason"].is_string();
        }
    }
    (th, tx, args)
}

#[test]
fn gemini_split_everywhere() {
    let thought = "Check AWS_EC2_001";
    let text = "It is AWS_EC2_001, role AWS_IAM_ROLE_003, AWS_EC2_009.";
    let (wth, s1) = text_of(thought);
    let (wtx, s2) = text_of(text);
    for a in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
        let b = a % (thought.len() + 1);
        let chunks = gemini_chunks(&[&thought[..b], &thought[b..]], &[&text[..a], &text[a..]]);
        for format in [StreamFormat::GeminiSse, StreamFormat::GeminiJsonArray] {
            let input = if format == StreamFormat::GeminiSse {
                gemini_sse(&chunks)
            } else {
                gemini_array(&chunks)
            };
            let (out, st) = feed(format, input.as_bytes(), &[a * 17, a * 3]);
            let vals = if format == StreamFormat::GeminiSse {
                sse_json(&out)
            } else {
                let v: Value = serde_json::from_slice(&out).expect("valid JSON array");
                v.as_array().unwrap().clone()
            };
            let (gth, gtx, args) = gemini_texts(&vals);
            assert_eq!((&gth, &gtx), (&wth, &wtx), "{format:?} split {a}");
            assert_eq!(args["InstanceIds"][0], VM);
            assert_eq!(args["note"], "q\"b\\s\nc\u{1}é日");
            let mut want = add(s1, s2);
            want.resolved += 2;
            assert_eq!(st, want);
        }
    }
}

#[test]
fn gemini_exact_and_framing() {
    // A thought ending in a possible placeholder prefix is flushed, as a thought, before the answer starts.
    let chunks = gemini_chunks(&["think AWS_EC2_001"], &["answer"]);
    let input = gemini_sse(&chunks);
    let (out, _) = feed_all_ways(StreamFormat::GeminiSse, input.as_bytes());
    let out = String::from_utf8(out).unwrap();
    let flush = format!(
        r#"data: {{"candidates":[{{"content":{{"parts":[{{"text":"{VM}","thought":true}}],"role":"model"}},"index":0}}],"modelVersion":"gemini-2.5-flash","responseId":"l0z0aPbUCfGe1MkP2YiZiQU"}}"#
    );
    assert!(out.contains(&format!("\r\n\r\n{flush}\r\n\r\ndata: ")), "{out}");
    // The function call chunk follows the flush.
    assert!(out.find(&flush).unwrap() < out.find("functionCall").unwrap());
    // Unchanged chunks pass through byte for byte.
    let chunks = gemini_chunks(&["plain thought"], &["plain", " answer"]).split_off(1);
    let chunks: Vec<String> = chunks.iter().map(|c| c.replace("AWS_", "aws_")).collect();
    for (format, input) in [
        (StreamFormat::GeminiSse, gemini_sse(&chunks)),
        (StreamFormat::GeminiJsonArray, gemini_array(&chunks)),
    ] {
        let (out, st) = feed_all_ways(format, input.as_bytes());
        assert_eq!(String::from_utf8(out).unwrap(), input);
        assert_eq!(st, UnmaskStats::default());
    }
}

#[test]
fn gemini_array_flush_positions() {
    // Held text at the end of the array goes in a last element before `]`.
    let chunks = vec![gemini_chunk(r#"{"text": "see AWS_EC2_001"}"#, false)];
    let input = gemini_array(&chunks);
    let (out, _) = feed_all_ways(StreamFormat::GeminiJsonArray, input.as_bytes());
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["candidates"][0]["content"]["parts"][0]["text"], "see ");
    assert_eq!(v[1]["candidates"][0]["content"]["parts"][0]["text"], VM);
    assert!(out.ends_with(b"}]"));
    // Before a later element (a thought turning into an answer).
    let chunks = gemini_chunks(&["x AWS_EC2_001"], &["done"]);
    let (out, _) = feed_all_ways(StreamFormat::GeminiJsonArray, gemini_array(&chunks).as_bytes());
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 4);
    assert_eq!(v[1]["candidates"][0]["content"]["parts"][0]["text"], VM);
    assert_eq!(v[1]["candidates"][0]["content"]["parts"][0]["thought"], true);
    // Not an array: unmasked as JSON text.
    let (out, st) = feed(
        StreamFormat::GeminiJsonArray,
        br#"{"error": {"message": "bad AWS_ODD_002"}}"#,
        &[3, 20, 29],
    );
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["error"]["message"], "bad q\"b\\s\nc\u{1}é日");
    assert_eq!(st.resolved, 1);
}

// ---------------------------------------------------------------- Generic SSE, detection, limits

#[test]
fn generic_sse() {
    let input = "event: log\ndata: started AWS_EC2_001\n\n: ping\n\nid: 9\ndata: {\"v\": \"AWS_ODD_002\", \"n\": 1}\n\ndata: AWS_EC\ndata: 2_001 AWS_EC2_009\n\n";
    let (out, st) = feed_all_ways(StreamFormat::GenericSse, input.as_bytes());
    let out = String::from_utf8(out).unwrap();
    assert_eq!(
        out,
        format!(
            "event: log\ndata: started {VM}\n\n: ping\n\nid: 9\ndata: {{\"v\": \"q\\\"b\\\\s\\nc\\u0001é日\", \"n\": 1}}\n\ndata: AWS_EC\ndata: 2_001 AWS_EC2_009\n\n"
        )
    );
    assert_eq!(st, UnmaskStats { resolved: 2, misses: 1 });
}

#[test]
fn detect() {
    use StreamFormat::*;
    let es = "text/event-stream; charset=utf-8";
    assert_eq!(
        StreamFormat::detect(es, "api.anthropic.com", "/v1/messages?beta=true"),
        Some(AnthropicMessages)
    );
    assert_eq!(
        StreamFormat::detect(es, "proxy.local:8080", "/v1/messages"),
        Some(AnthropicMessages)
    );
    assert_eq!(
        StreamFormat::detect(es, "api.openai.com", "/v1/chat/completions"),
        Some(OpenAiChat)
    );
    assert_eq!(
        StreamFormat::detect(
            es,
            "x.openai.azure.com",
            "/openai/deployments/d/chat/completions?api-version=2024-10-21"
        ),
        Some(OpenAiChat)
    );
    assert_eq!(
        StreamFormat::detect(es, "api.openai.com", "/v1/responses"),
        Some(OpenAiResponses)
    );
    assert_eq!(
        StreamFormat::detect(es, "api.openai.com", "/v1/responses/resp_123?stream=true"),
        Some(OpenAiResponses)
    );
    let g = "/v1beta/models/gemini-2.5-flash:streamGenerateContent";
    assert_eq!(
        StreamFormat::detect(
            "text/event-stream",
            "generativelanguage.googleapis.com",
            &format!("{g}?alt=sse")
        ),
        Some(GeminiSse)
    );
    assert_eq!(
        StreamFormat::detect(
            "application/json; charset=UTF-8",
            "generativelanguage.googleapis.com",
            g
        ),
        Some(GeminiJsonArray)
    );
    assert_eq!(
        StreamFormat::detect("TEXT/EVENT-STREAM", "example.com", "/events"),
        Some(GenericSse)
    );
    assert_eq!(
        StreamFormat::detect("application/json", "api.openai.com", "/v1/chat/completions"),
        None
    );
}

#[test]
fn event_limit() {
    let m = map();
    let mut s = StreamUnmasker::with_max_event(StreamFormat::AnthropicMessages, &m, 64);
    let mut out = Vec::new();
    let big = format!("data: {}\n\n", "x".repeat(100));
    assert!(matches!(
        s.feed(big.as_bytes(), &mut out),
        Err(StreamError::EventTooLarge { limit: 64 })
    ));
    assert!(s.feed(b"data: x\n\n", &mut out).is_err());
    let mut s = StreamUnmasker::with_max_event(StreamFormat::GeminiJsonArray, &m, 64);
    let mut out = Vec::new();
    s.feed(b"[{\"a\": \"", &mut out).unwrap();
    let mut err = false;
    for _ in 0..10 {
        err |= s.feed(&[b'x'; 16], &mut out).is_err();
    }
    assert!(err);
}

#[test]
fn resolvers() {
    // Any Resolver works: owned, borrowed, shared, boxed, dynamic.
    let m = map();
    let arc = std::sync::Arc::new(map());
    let boxed: Box<dyn Resolver> = Box::new(map());
    let input = b"data: AWS_EC2_001\n\n";
    let mut out = Vec::new();
    StreamUnmasker::new(StreamFormat::GenericSse, m.clone())
        .feed(input, &mut out)
        .unwrap();
    StreamUnmasker::new(StreamFormat::GenericSse, &m)
        .feed(input, &mut out)
        .unwrap();
    StreamUnmasker::new(StreamFormat::GenericSse, arc)
        .feed(input, &mut out)
        .unwrap();
    StreamUnmasker::new(StreamFormat::GenericSse, boxed)
        .feed(input, &mut out)
        .unwrap();
    assert_eq!(out, format!("data: {VM}\n\n").repeat(4).as_bytes());
    let _ = RequestMap::new();
    let _ = ROLE;
}

// ---------------------------------------------------------------- properties

fn cut_list() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0usize..100_000, 0..12)
}

proptest! {

    /// Streaming equals buffered: for random text cut into random deltas and a random chunking of the bytes,
    /// the concatenated delta text equals `unmask_text` of the whole text, with the same stats.
    #[test]
    fn prop_anthropic(text in arb_text(), args in arb_text(), pieces in cut_list(), cuts in cut_list()) {
        let doc = serde_json::to_string(&serde_json::json!({ "q": args })).unwrap();
        let input = anthropic_stream(&[
            (AKind::Text, split_chars(&text, &pieces)),
            (AKind::Tool, split_chars(&doc, &pieces)),
        ]);
        let (out, st) = feed(StreamFormat::AnthropicMessages, input.as_bytes(), &cuts);
        let blocks = anthropic_blocks(&out);
        let (wt, s1) = text_of(&text);
        let (wa, s2) = json_of(&doc);
        prop_assert_eq!(blocks.get(&0).cloned().unwrap_or_default(), wt);
        prop_assert_eq!(blocks.get(&1).cloned().unwrap_or_default(), wa);
        prop_assert_eq!(st, add(s1, s2));
    }

    #[test]
    fn prop_chat(t0 in arb_text(), t1 in arb_text(), args in arb_text(), pieces in cut_list(), cuts in cut_list()) {
        let doc = serde_json::to_string(&serde_json::json!({ "q": args })).unwrap();
        let input = chat_stream(&split_chars(&t0, &pieces), &split_chars(&t1, &pieces[pieces.len() / 2..]), &split_chars(&doc, &pieces));
        let (out, st) = feed(StreamFormat::OpenAiChat, input.as_bytes(), &cuts);
        let (g0, g1, ga) = chat_texts(&out);
        let (w0, s0) = text_of(&t0);
        let (w1, s1) = text_of(&t1);
        let (wa, sa) = json_of(&doc);
        prop_assert_eq!((g0, g1, ga), (w0, w1, wa));
        prop_assert_eq!(st, add(add(s0, s1), sa));
    }

    #[test]
    fn prop_responses(text in arb_text(), pieces in cut_list(), cuts in cut_list()) {
        let input = resp_stream(&split_chars(&text, &pieces), &["{}"], &split_chars(&text, &pieces[pieces.len() / 2..]));
        let (out, _) = feed(StreamFormat::OpenAiResponses, input.as_bytes(), &cuts);
        let (gr, gt, _, completed) = resp_texts(&out);
        let (wt, _) = text_of(&text);
        prop_assert_eq!(&gt, &wt);
        prop_assert_eq!(&gr, &wt);
        prop_assert_eq!(completed[0]["content"][0]["text"].as_str().unwrap(), wt.as_str());
    }

    #[test]
    fn prop_gemini(thought in arb_text(), text in arb_text(), pieces in cut_list(), cuts in cut_list(), array in any::<bool>()) {
        let th = split_chars(&thought, &pieces);
        let mut tx = split_chars(&text, &pieces[pieces.len() / 2..]);
        if tx.is_empty() {
            tx.push("");
        }
        let chunks = gemini_chunks(&th, &tx);
        let (format, input) = if array {
            (StreamFormat::GeminiJsonArray, gemini_array(&chunks))
        } else {
            (StreamFormat::GeminiSse, gemini_sse(&chunks))
        };
        let (out, _) = feed(format, input.as_bytes(), &cuts);
        let vals = if array {
            let v: Value = serde_json::from_slice(&out).expect("valid JSON array");
            v.as_array().unwrap().clone()
        } else {
            sse_json(&out)
        };
        let (gth, gtx, _) = gemini_texts(&vals);
        prop_assert_eq!(gth, text_of(&thought).0);
        prop_assert_eq!(gtx, text_of(&text).0);
    }

    /// Streams without placeholder-like text pass through byte for byte, however they are cut.
    #[test]
    fn prop_passthrough(text in "[a-zé日 \\n\"\\\\{}:,]{0,40}", pieces in cut_list(), cuts in cut_list(), crlf in any::<bool>()) {
        let p = split_chars(&text, &pieces);
        let mut inputs = vec![
            (StreamFormat::AnthropicMessages, anthropic_stream(&[(AKind::Text, p.clone()), (AKind::Tool, p.clone())])),
            (StreamFormat::OpenAiChat, chat_stream(&p, &p, &p)),
            (StreamFormat::OpenAiResponses, resp_stream(&p, &p, &p)),
            (StreamFormat::GenericSse, anthropic_stream(&[(AKind::Text, p.clone())])),
        ];
        if crlf {
            for i in &mut inputs {
                i.1 = i.1.replace('\n', "\r\n");
            }
        }
        for (format, input) in inputs {
            let (out, _) = feed(format, input.as_bytes(), &cuts);
            prop_assert_eq!(String::from_utf8(out).unwrap(), input);
        }
    }

    /// Garbage never panics, and with nothing to unmask nothing is lost.
    #[test]
    fn prop_garbage(bytes in proptest::collection::vec(prop_oneof![
        Just(b'{'), Just(b'}'), Just(b'['), Just(b']'), Just(b'"'), Just(b'\\'), Just(b'\n'), Just(b'\r'),
        Just(b':'), Just(b','), Just(b'd'), Just(b'a'), Just(b' '), Just(0xe6), Just(0x97), Just(b'x'),
    ], 0..200), cuts in cut_list()) {
        let mut input = b"data: ".to_vec();
        input.extend_from_slice(&bytes);
        for format in [
            StreamFormat::AnthropicMessages, StreamFormat::OpenAiChat, StreamFormat::OpenAiResponses,
            StreamFormat::GeminiSse, StreamFormat::GeminiJsonArray, StreamFormat::GenericSse,
        ] {
            let (out, st) = feed(format, &input, &cuts);
            prop_assert_eq!(&out, &input);
            prop_assert_eq!(st, UnmaskStats::default());
            let (out, _) = feed(format, &bytes, &cuts);
            prop_assert_eq!(&out, &bytes);
        }
    }
}
