//! Engine benchmarks (criterion): detector scan throughput on sparse-id text, masking a 1 MB Anthropic Messages
//! request (and 2 MB of Korean turns escaped as `\\uXXXX`), streaming unmask per SSE event, buffered unmask of a
//! 1 MB JSON response.
//!
//! `cargo bench -p maskgate-engine --bench engine -- --warm-up-time 1 --measurement-time 3`
//!
//! All inputs are generated deterministically (a fixed-seed PRNG), like `scripts/gen-mixed.py`: mixed prose,
//! log and code lines with about one AWS identifier per 2 KB.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use maskgate_engine::{
    placeholder, unmask_json, KeyContext, Masker, MaskerConfig, Plan, RequestMap, StreamFormat, StreamUnmasker,
    UnmaskStats,
};
use serde_json::json;

/// SplitMix64: small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const PROSE: &[&str] = &[
    "The quick review of the deployment pipeline showed that most of the latency came from cold starts.",
    "We should revisit the caching strategy before the next release; the hit rate dropped to 71 percent.",
    "Please summarise the incident report and list the follow-up actions with their owners and due dates.",
    "Kubernetes schedules the pods onto nodes, and the autoscaler adds capacity when requests queue up.",
    "이 문서는 배포 절차를 설명합니다. 모든 단계는 검토 후에 진행됩니다.",
    "The migration to version 3.11.4 finished on 2024-06-15 without data loss; rollback was not needed.",
];
const LOG: &[&str] = &[
    "2024-06-15T10:30:45.123Z INFO  [http-nio-8080-exec-7] c.e.api.OrderController - GET /api/orders/18273 200 34ms",
    "2024-06-15T10:30:46.001Z WARN  [scheduler-2] c.e.jobs.Cleanup - retrying batch 42 after timeout (attempt 3/5)",
    "Jun 15 10:30:47 web-3 nginx[1234]: 127.0.0.1 - - \"POST /v1/messages HTTP/1.1\" 200 5123 \"-\" \"curl/8.5.0\"",
    "2024-06-15 10:30:48,551 DEBUG urllib3.connectionpool Starting new HTTPS connection (1): example.com:443",
];
const CODE: &[&str] = &[
    "    let mut map: HashMap<String, Vec<u64>> = HashMap::with_capacity(1024);",
    "def handler(event, context):\n    return {\"statusCode\": 200, \"body\": json.dumps(event)}",
    "    for (i, item) in items.iter().enumerate() { total += item.price * item.qty; }",
    "const client = new S3Client({ region: process.env.AWS_REGION, maxAttempts: 3 });",
    "use std::collections::BTreeMap; // sha 3f786850e387550fdab836ed7e6dc881de23001b",
];

fn id(r: &mut Rng) -> String {
    match r.below(6) {
        0 => format!("i-{:017x}", r.next() >> 4),
        1 => format!("vpc-{:08x}", r.next() as u32),
        2 => format!(
            "arn:aws:iam::{:012}:role/app-{}",
            r.below(1_000_000_000_000),
            r.below(100)
        ),
        3 => format!("10.{}.{}.{}", r.below(256), r.below(256), 1 + r.below(254)),
        4 => format!("s3://bucket-{}-logs/key", r.below(1000)),
        _ => format!("sg-{:017x}", r.next() >> 4),
    }
}

/// About `bytes` of mixed lines, one identifier per ~2 KB (as `scripts/gen-mixed.py`).
fn mixed(seed: u64, bytes: usize) -> String {
    let mut r = Rng(seed);
    let mut out = String::with_capacity(bytes + 256);
    let mut since_id = 0;
    while out.len() < bytes {
        let group = [PROSE, LOG, CODE][r.below(3) as usize];
        let mut line = r.pick(group).to_string();
        if since_id > 2048 {
            let mut words: Vec<&str> = line.split(' ').collect();
            let v = id(&mut r);
            let at = r.below(words.len() as u64 + 1) as usize;
            words.insert(at, &v);
            line = words.join(" ");
            since_id = 0;
        }
        line.push('\n');
        since_id += line.len();
        out.push_str(&line);
    }
    out
}

/// About `bytes` of Korean prose (an operator writing in Korean, the seed project's language), one identifier per
/// ~2 KB.
fn korean(seed: u64, bytes: usize) -> String {
    const WORDS: &[&str] = &[
        "인스턴스",
        "서버",
        "로그",
        "오류",
        "배포",
        "요청",
        "사용자",
        "계정",
        "버킷",
        "네트워크",
        "보안",
        "그룹",
        "설정",
        "확인",
        "실패",
        "재시도",
        "시간",
        "초과",
        "데이터베이스",
        "연결",
        "응답",
        "지연",
    ];
    let mut r = Rng(seed);
    let mut out = String::with_capacity(bytes + 256);
    let mut since_id = 0;
    while out.len() < bytes {
        let mut line: Vec<String> = (0..12).map(|_| r.pick(WORDS).to_string()).collect();
        if since_id > 2048 {
            line.push(id(&mut r));
            since_id = 0;
        }
        let line = line.join(" ") + "\n";
        since_id += line.len();
        out.push_str(&line);
    }
    out
}

/// `json` with every non-ASCII character escaped as `\\uXXXX`, as Python's `json.dumps` writes by default (and so
/// the Python SDKs send): one escape per character of Korean text.
fn ascii_escaped(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() * 2);
    for ch in std::str::from_utf8(json).expect("UTF-8").chars() {
        if ch.is_ascii() {
            out.push(ch as u8);
        } else {
            let mut units = [0u16; 2];
            for u in ch.encode_utf16(&mut units) {
                out.extend_from_slice(format!("\\u{u:04x}").as_bytes());
            }
        }
    }
    out
}

/// Placeholders as a fresh vault gives them: `prefix_001`, `prefix_002`, ... per prefix.
fn placeholders(plan: &Plan) -> Vec<String> {
    let mut next: HashMap<&str, u64> = HashMap::new();
    plan.entries()
        .iter()
        .map(|e| {
            let n = next.entry(e.prefix).or_insert(0);
            *n += 1;
            placeholder::format(e.prefix, *n)
        })
        .collect()
}

/// A ~1 MB Anthropic Messages request: system prompt, tools, alternating turns of mixed text (one identifier per
/// ~2 KB), a tool result with JSON, and a 64 KB base64 image (skipped by the masker).
fn anthropic_request() -> Vec<u8> {
    let mut messages = Vec::new();
    let mut seed = 1;
    let mut size = 0;
    while size < 1_000_000 {
        let text = mixed(seed, 16 * 1024);
        seed += 1;
        size += text.len();
        let role = if messages.len() % 2 == 0 { "user" } else { "assistant" };
        messages.push(json!({"role": role, "content": [{"type": "text", "text": text}]}));
    }
    let image: String = (0..64 * 1024).map(|i| (b'A' + (i % 26) as u8) as char).collect();
    messages.push(json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_01", "content": "{\"InstanceId\": \"i-0abc123def4567890\", \"OwnerId\": \"123456789012\"}"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": image}},
        {"type": "text", "text": "What failed, and on which instance?"}
    ]}));
    let body = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "stream": true,
        "system": "You are an SRE assistant. Answer with the affected resource ids.",
        "tools": [{"name": "describe_instances", "description": "EC2 DescribeInstances",
                   "input_schema": {"type": "object", "properties": {"InstanceIds": {"type": "array"}}}}],
        "messages": messages,
    });
    serde_json::to_vec(&body).expect("JSON")
}

fn bench_detect(c: &mut Criterion) {
    let text = mixed(42, 4 << 20);
    let masker = Masker::new(&MaskerConfig::default()).expect("masker");
    let d = masker.detector();
    let mut out = Vec::new();
    d.find(text.as_bytes(), KeyContext::default(), &mut out);
    assert!(out.len() > 1000, "{} identifiers found", out.len());
    let mut g = c.benchmark_group("detect");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("scan_sparse_4mb", |b| {
        b.iter(|| {
            out.clear();
            d.find(black_box(text.as_bytes()), KeyContext::default(), &mut out);
            out.len()
        })
    });
    g.finish();
}

/// Masking of one JSON request body (plan, placeholders as a fresh vault gives them, finish with the leak check),
/// checked first to hold at least `values` values.
fn request(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    masker: &Masker,
    name: &str,
    body: &[u8],
    values: usize,
) {
    let plan = masker.plan_json(body).expect("valid");
    let n = plan.entries().len();
    assert!(n >= values, "{name}: {n} values to mask");
    let ph = placeholders(&plan);
    plan.finish(&ph).expect("masked");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function(name, |b| {
        b.iter(|| {
            let plan = masker.plan_json(black_box(body)).expect("valid");
            let ph = placeholders(&plan);
            plan.finish(&ph).expect("masked").body.len()
        })
    });
}

fn bench_mask(c: &mut Criterion) {
    let masker = Masker::new(&MaskerConfig::default()).expect("masker");
    let body = anthropic_request();
    let mut g = c.benchmark_group("mask");
    request(&mut g, &masker, "anthropic_request_1mb", &body, 200);
    // Korean turns, escaped as a Python client sends them.
    let turns: Vec<_> = (0..64)
        .map(|k| json!({"role": if k % 2 == 0 { "user" } else { "assistant" }, "content": korean(k, 16 * 1024)}))
        .collect();
    let escaped = ascii_escaped(
        &serde_json::to_vec(&json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": turns}))
            .expect("JSON"),
    );
    request(&mut g, &masker, "anthropic_request_korean_escaped_2mb", &escaped, 200);
    // AWS API output handed to a model: a `tool_use` input of 100 described instances (36 KB, ~2,700 short
    // strings, 500 ids), the case the product exists for.
    let mut r = Rng(9);
    let instances: Vec<_> = (0..100)
        .map(|k| {
            json!({
                "InstanceId": format!("i-{:017x}", r.next() >> 4), "InstanceType": "m5.large",
                "State": {"Name": "running", "Code": 16},
                "PrivateIpAddress": format!("10.{}.{}.{}", r.below(256), r.below(256), 1 + r.below(254)),
                "SubnetId": format!("subnet-{:017x}", r.next() >> 4), "VpcId": format!("vpc-{:08x}", r.next() as u32),
                "OwnerId": format!("{:012}", r.below(1_000_000_000_000)), "LaunchTime": "2024-06-15T10:30:45.000Z",
                "Tags": [{"Key": "Name", "Value": format!("web-{k}")}, {"Key": "env", "Value": "prod"}],
            })
        })
        .collect();
    let aws = serde_json::to_vec(&json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [
        {"role": "user", "content": "Summarise these instances."},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01", "name": "describe_instances",
            "input": {"Reservations": [{"Instances": instances}]}}]}]}))
    .expect("JSON");
    request(&mut g, &masker, "aws_output_100_instances", &aws, 500);
    // A small request (one turn, 2 KB, a few identifiers): the fixed cost per request.
    let small = serde_json::to_vec(&json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [
        {"role": "user", "content": format!("{} instance i-0abc123def4567890 in account 123456789012, \
            role arn:aws:iam::123456789012:role/Admin, vpc-0a1b2c3d", mixed(5, 2000))}]}))
    .expect("JSON");
    request(&mut g, &masker, "anthropic_request_2kb", &small, 3);
    g.finish();
}

/// An Anthropic SSE stream of `n` `content_block_delta` text events (plus the events around them), one chunk per
/// event. Deltas are 20 to 60 bytes; one in four holds a placeholder, one in twenty has a placeholder cut
/// across two events.
fn anthropic_stream(n: usize, map: &RequestMap) -> Vec<Vec<u8>> {
    let ph: Vec<&str> = {
        let mut v: Vec<&str> = map.iter().map(|(p, _)| p).collect();
        v.sort_unstable();
        v
    };
    let mut r = Rng(7);
    let mut deltas: Vec<String> = Vec::with_capacity(n);
    while deltas.len() < n {
        let words = r.pick(PROSE);
        let start = r.below(words.len().saturating_sub(60).max(1) as u64) as usize;
        let mut end = (start + 20 + r.below(40) as usize).min(words.len());
        let mut start = start;
        while !words.is_char_boundary(start) {
            start += 1;
        }
        while !words.is_char_boundary(end) {
            end -= 1;
        }
        let mut d = words[start..end].to_string();
        match r.below(20) {
            0 => {
                let p = ph[r.below(ph.len() as u64) as usize];
                let cut = 5 + r.below(p.len() as u64 - 6) as usize;
                d.push(' ');
                d.push_str(&p[..cut]);
                deltas.push(d);
                d = format!("{} ok", &p[cut..]);
            }
            1..=4 => {
                d.push(' ');
                d.push_str(ph[r.below(ph.len() as u64) as usize]);
                d.push(' ');
            }
            _ => {}
        }
        deltas.push(d);
    }
    deltas.truncate(n);
    let sse = |name: &str, data: serde_json::Value| format!("event: {name}\ndata: {data}\n\n").into_bytes();
    let mut evs = vec![
        sse(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_01", "type": "message", "role": "assistant",
                "content": [], "model": "claude-sonnet-4-5", "usage": {"input_tokens": 12, "output_tokens": 1}}}),
        ),
        sse(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
    ];
    for d in deltas {
        evs.push(sse(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": d}}),
        ));
    }
    evs.push(sse(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    evs.push(sse(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 900}}),
    ));
    evs.push(sse("message_stop", json!({"type": "message_stop"})));
    evs
}

fn bench_stream(c: &mut Criterion) {
    // The map of a request that masked 200 values.
    let mut map = RequestMap::new();
    let mut r = Rng(3);
    for i in 1..=200 {
        map.insert(&placeholder::format("AWS_EC2", i), &id(&mut r));
    }
    const N: usize = 1000;
    let events = anthropic_stream(N, &map);
    let bytes: usize = events.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(2 * bytes);
    let run = |out: &mut Vec<u8>| {
        out.clear();
        let mut s = StreamUnmasker::new(StreamFormat::AnthropicMessages, &map);
        for e in &events {
            s.feed(black_box(e), out).expect("stream");
        }
        s.finish(out).expect("stream");
        s.stats()
    };
    let st = run(&mut out);
    assert!(st.resolved > 200 && st.misses == 0, "{st:?}");
    let mut g = c.benchmark_group("stream_unmask");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("anthropic_sse_per_event", |b| b.iter(|| run(&mut out)));
    g.finish();
}

fn bench_unmask_json(c: &mut Criterion) {
    // A 1 MB Messages response whose text and tool input hold the placeholders of a masked request.
    let masker = Masker::new(&MaskerConfig::default()).expect("masker");
    let text = mixed(9, 1 << 20);
    let plan = masker.plan_text(&text);
    let ph = placeholders(&plan);
    let masked = plan.finish(&ph).expect("masked");
    let masked_text = String::from_utf8(masked.body).expect("UTF-8");
    let body = serde_json::to_vec(&json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [
            {"type": "text", "text": masked_text},
            {"type": "tool_use", "id": "toolu_01", "name": "describe_instances",
             "input": {"InstanceIds": ph.iter().take(20).collect::<Vec<_>>()}}
        ],
        "stop_reason": "tool_use", "usage": {"input_tokens": 250000, "output_tokens": 260000}
    }))
    .expect("JSON");
    let mut st = UnmaskStats::default();
    unmask_json(&body, &masked.map, &mut st).expect("unmasked");
    assert!(st.resolved > 400 && st.misses == 0, "{st:?}");
    let mut g = c.benchmark_group("unmask");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("json_response_1mb", |b| {
        b.iter(|| {
            let mut st = UnmaskStats::default();
            unmask_json(black_box(&body), &masked.map, &mut st)
                .expect("unmasked")
                .len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench_detect, bench_mask, bench_stream, bench_unmask_json);
criterion_main!(benches);
