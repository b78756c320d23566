//! A mock LLM provider for the demo and the tests: a plain hyper server (HTTP/1.1 and h2, optional TLS) that
//! records every request it receives and answers in the Anthropic Messages, OpenAI Chat Completions, OpenAI
//! Responses and Gemini formats, streamed or not. The reply echoes the text of the last message (so whatever the
//! provider saw comes back), and adds a tool call carrying the same text when the request offers tools.
//!
//! Per-request controls (request headers): `x-mock-chunk` (bytes per streamed delta, default 4),
//! `x-mock-delay-ms` (pause between events), `x-mock-encoding` (gzip/deflate/br/zstd response),
//! `x-mock-break-after` (abort the stream after N events), `x-mock-status` (error status with the text echoed),
//! `x-mock-sleep-ms` (wait before answering). A request with `previous_response_id` gets an answer that also quotes
//! the text of the request received before it (as a stateful provider would).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::body::{encode, BoxError, Coding, RespBody};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub version: http::Version,
}

impl Recorded {
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Requests kept (oldest dropped first), so a long-running mock stays bounded: at most this many, and bodies of
/// at most [`MAX_RECORDED_BYTES`] together (benchmarks send thousands of 1 MB requests). The newest is always kept.
const MAX_RECORDS: usize = 10_000;
const MAX_RECORDED_BYTES: usize = 256 << 20;

#[derive(Default)]
pub struct MockState {
    records: Mutex<Records>,
    /// Streams whose reader went away before the end.
    pub cancelled: AtomicU64,
    /// Streams completed.
    pub completed: AtomicU64,
}

pub struct MockProvider {
    pub addr: SocketAddr,
    pub state: Arc<MockState>,
    stop: watch::Sender<bool>,
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

pub type TlsIdentity = (
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
);

impl MockProvider {
    /// Plain HTTP (HTTP/1.1 and h2c) on 127.0.0.1, a free port.
    pub async fn start() -> std::io::Result<MockProvider> {
        Self::start_inner(None).await
    }

    /// TLS with ALPN h2 and http/1.1.
    pub async fn start_tls(identity: TlsIdentity) -> std::io::Result<MockProvider> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(identity.0, identity.1)
            .map_err(std::io::Error::other)?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Self::start_inner(Some(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))).await
    }

    /// Plain HTTP on a given address (for `maskgate mock-provider` and benchmarks).
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<MockProvider> {
        Self::start_inner_on(addr, None).await
    }

    async fn start_inner(tls: Option<tokio_rustls::TlsAcceptor>) -> std::io::Result<MockProvider> {
        Self::start_inner_on("127.0.0.1:0".parse().unwrap(), tls).await
    }

    async fn start_inner_on(addr: SocketAddr, tls: Option<tokio_rustls::TlsAcceptor>) -> std::io::Result<MockProvider> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(MockState::default());
        let (stop, mut stop_rx) = watch::channel(false);
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                    _ = stop_rx.changed() => return,
                };
                let st = st.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| answer(st.clone(), req));
                    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match tls {
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                        }
                        Some(acc) => {
                            if let Ok(s) = acc.accept(stream).await {
                                let _ = builder.serve_connection(TokioIo::new(s), svc).await;
                            }
                        }
                    }
                });
            }
        });
        Ok(MockProvider { addr, state, stop })
    }

    pub fn records(&self) -> Vec<Recorded> {
        self.state.records.lock().unwrap().list.iter().cloned().collect()
    }

    pub fn last(&self) -> Option<Recorded> {
        self.state.records.lock().unwrap().list.back().cloned()
    }

    pub fn clear(&self) {
        *self.state.records.lock().unwrap() = Records::default();
    }
}

/// A body fed from a channel; an `Err` item aborts the response (the connection is dropped).
struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(b))) => Poll::Ready(Some(Ok(Frame::data(b)))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

fn hnum(h: &HeaderMap, name: &str) -> Option<u64> {
    h.get(name)?.to_str().ok()?.parse().ok()
}

/// All text of the last message (strings under `text`/`content`, or a plain string).
pub fn last_message_text(req: &Value) -> String {
    fn collect(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
            Value::Object(o) => {
                for (k, x) in o {
                    if matches!(k.as_str(), "text" | "content" | "parts" | "output" | "input") {
                        collect(x, out)
                    }
                }
            }
            _ => {}
        }
    }
    let last = ["messages", "input", "contents"]
        .iter()
        .find_map(|k| req.get(*k))
        .map(|v| match v {
            Value::Array(a) => a.last().cloned().unwrap_or(Value::Null),
            other => other.clone(),
        })
        .unwrap_or(Value::Null);
    let mut out = Vec::new();
    collect(&last, &mut out);
    out.join(" ")
}

fn chunks(s: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in s.chars() {
        cur.push(c);
        if cur.len() >= n.max(1) {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn sse(event: Option<&str>, data: &Value) -> String {
    match event {
        Some(e) => format!("event: {e}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    Anthropic,
    Chat,
    Responses,
    Gemini { stream: bool, sse: bool },
}

/// The requests received, oldest first, and the bytes of their bodies.
#[derive(Default)]
struct Records {
    list: VecDeque<Recorded>,
    bytes: usize,
}

impl Records {
    /// Appends `new`, dropping the oldest until at most `max.0` records with at most `max.1` body bytes remain;
    /// the newest stays whatever its size.
    fn push(&mut self, new: Recorded, max: (usize, usize)) {
        self.bytes += new.body.len();
        self.list.push_back(new);
        while self.list.len() > max.0 || (self.bytes > max.1 && self.list.len() > 1) {
            self.bytes -= self.list.pop_front().map_or(0, |r| r.body.len());
        }
    }
}

async fn answer(st: Arc<MockState>, req: Request<Incoming>) -> Result<Response<RespBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    {
        st.records.lock().unwrap().push(
            Recorded {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                query: parts.uri.query().map(str::to_string),
                headers: parts.headers.clone(),
                body: body.clone(),
                version: parts.version,
            },
            (MAX_RECORDS, MAX_RECORDED_BYTES),
        );
    }
    let h = &parts.headers;
    if let Some(ms) = hnum(h, "x-mock-sleep-ms") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or("");
    let api = if path.ends_with("/messages") {
        Api::Anthropic
    } else if path.ends_with("/chat/completions") {
        Api::Chat
    } else if path.ends_with("/responses") {
        Api::Responses
    } else if path.contains(":streamGenerateContent") {
        Api::Gemini {
            stream: true,
            sse: query.split('&').any(|kv| kv == "alt=sse"),
        }
    } else if path.contains(":generateContent") {
        Api::Gemini {
            stream: false,
            sse: false,
        }
    } else {
        let mut r = Response::new(crate::body::full(r#"{"error":{"message":"mock: unknown path"}}"#));
        *r.status_mut() = StatusCode::NOT_FOUND;
        return Ok(r);
    };
    let req_json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let text = last_message_text(&req_json);
    let mut reply = format!("I looked at: {text}");
    // A stateful API (OpenAI Responses with `previous_response_id`): the provider remembers the conversation, so
    // the answer may quote what an earlier request said (here: the request received before this one).
    if req_json.get("previous_response_id").is_some_and(Value::is_string) {
        let records = st.records.lock().unwrap();
        if let Some(prev) = records.list.iter().rev().nth(1) {
            let prev: Value = serde_json::from_slice(&prev.body).unwrap_or(Value::Null);
            reply = format!("Earlier you said: {} Now: {reply}", last_message_text(&prev));
        }
    }
    let tool = req_json
        .get("tools")
        .and_then(|t| t.as_array())
        .is_some_and(|a| !a.is_empty());
    let model = req_json
        .get("model")
        .and_then(|m| m.as_str())
        .unwrap_or("mock-model")
        .to_string();
    let encoding = h
        .get("x-mock-encoding")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Coding::parse(v).ok().flatten());
    if let Some(status) = hnum(h, "x-mock-status") {
        let b = json!({"type": "error", "error": {"type": "invalid_request_error", "message": reply}});
        let mut r = Response::new(crate::body::full(b.to_string()));
        *r.status_mut() = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::BAD_REQUEST);
        r.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        return Ok(r);
    }
    let stream = match api {
        Api::Gemini { stream, .. } => stream,
        _ => req_json.get("stream").and_then(|s| s.as_bool()).unwrap_or(false),
    };
    let args = json!({"target": text}).to_string();
    if !stream {
        let v = whole(api, &model, &reply, tool.then_some(args.as_str()));
        let mut bytes = serde_json::to_vec(&v).unwrap();
        let mut r = Response::builder().header("content-type", "application/json");
        if let Some(c) = encoding {
            bytes = encode(c, &bytes);
            r = r.header("content-encoding", c.name());
        }
        return Ok(r.body(crate::body::full(bytes)).unwrap());
    }
    let n = hnum(h, "x-mock-chunk").unwrap_or(4) as usize;
    let events = stream_events(api, &model, &reply, tool.then_some(args.as_str()), n);
    let delay = hnum(h, "x-mock-delay-ms").unwrap_or(0);
    let break_after = hnum(h, "x-mock-break-after");
    let ct = match api {
        Api::Gemini { sse: false, .. } => "application/json",
        _ => "text/event-stream",
    };
    // Compressed streams: compress the whole stream, send it in pieces.
    let pieces: Vec<Bytes> = match encoding {
        Some(c) => encode(c, events.concat().as_bytes())
            .chunks(16)
            .map(Bytes::copy_from_slice)
            .collect(),
        None => events.into_iter().map(Bytes::from).collect(),
    };
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        for (i, p) in pieces.into_iter().enumerate() {
            if break_after == Some(i as u64) {
                let _ = tx.send(Err(std::io::Error::other("mock: stream broken"))).await;
                return;
            }
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            if tx.send(Ok(p)).await.is_err() {
                st.cancelled.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
        drop(tx);
        st.completed.fetch_add(1, Ordering::SeqCst);
    });
    let mut r = Response::builder()
        .header("content-type", ct)
        .header("cache-control", "no-cache");
    if let Some(c) = encoding {
        r = r.header("content-encoding", c.name());
    }
    Ok(r.body(ChannelBody { rx }.boxed_unsync()).unwrap())
}

fn whole(api: Api, model: &str, reply: &str, tool: Option<&str>) -> Value {
    match api {
        Api::Anthropic => {
            let mut content = vec![json!({"type": "text", "text": reply})];
            if let Some(a) = tool {
                content.push(json!({"type": "tool_use", "id": "toolu_mock", "name": "lookup",
                    "input": serde_json::from_str::<Value>(a).unwrap()}));
            }
            json!({"id": "msg_mock", "type": "message", "role": "assistant", "model": model, "content": content,
                "stop_reason": if tool.is_some() {"tool_use"} else {"end_turn"}, "stop_sequence": null,
                "usage": {"input_tokens": 10, "output_tokens": 15}})
        }
        Api::Chat => {
            let mut message = json!({"role": "assistant", "content": reply});
            if let Some(a) = tool {
                message["tool_calls"] = json!([{"id": "call_mock", "type": "function",
                    "function": {"name": "lookup", "arguments": a}}]);
            }
            json!({"id": "chatcmpl-mock", "object": "chat.completion", "created": 1700000000, "model": model,
                "choices": [{"index": 0, "message": message, "logprobs": null,
                    "finish_reason": if tool.is_some() {"tool_calls"} else {"stop"}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 15, "total_tokens": 25}})
        }
        Api::Responses => responses_object(model, reply, tool, "completed"),
        Api::Gemini { .. } => {
            let mut parts = vec![json!({"text": reply})];
            if let Some(a) = tool {
                parts.push(
                    json!({"functionCall": {"name": "lookup", "args": serde_json::from_str::<Value>(a).unwrap()}}),
                );
            }
            json!({"candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 15, "totalTokenCount": 25},
                "modelVersion": model})
        }
    }
}

fn responses_message(reply: &str, status: &str) -> Value {
    json!({"type": "message", "id": "msg_mock", "status": status, "role": "assistant",
        "content": [{"type": "output_text", "text": reply, "annotations": []}]})
}

fn responses_call(args: &str, status: &str) -> Value {
    json!({"type": "function_call", "id": "fc_mock", "call_id": "call_mock", "name": "lookup",
        "arguments": args, "status": status})
}

fn responses_object(model: &str, reply: &str, tool: Option<&str>, status: &str) -> Value {
    let mut output = vec![responses_message(reply, "completed")];
    if let Some(a) = tool {
        output.push(responses_call(a, "completed"));
    }
    if status != "completed" {
        output.clear();
    }
    json!({"id": "resp_mock", "object": "response", "created_at": 1700000000, "status": status, "model": model,
        "output": output, "parallel_tool_calls": true, "tool_choice": "auto", "tools": [], "error": null,
        "incomplete_details": null, "instructions": null, "metadata": {}, "temperature": 1.0, "top_p": 1.0,
        "text": {"format": {"type": "text"}},
        "usage": {"input_tokens": 10, "output_tokens": 15, "total_tokens": 25,
            "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}})
}

fn stream_events(api: Api, model: &str, reply: &str, tool: Option<&str>, n: usize) -> Vec<String> {
    let mut ev = Vec::new();
    match api {
        Api::Anthropic => {
            ev.push(sse(
                Some("message_start"),
                &json!({"type": "message_start", "message": {"id": "msg_mock",
                "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null,
                "stop_sequence": null, "usage": {"input_tokens": 10, "output_tokens": 1}}}),
            ));
            ev.push(sse(
                Some("content_block_start"),
                &json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}),
            ));
            for c in chunks(reply, n) {
                ev.push(sse(
                    Some("content_block_delta"),
                    &json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": c}}),
                ));
            }
            ev.push(sse(
                Some("content_block_stop"),
                &json!({"type": "content_block_stop", "index": 0}),
            ));
            if let Some(a) = tool {
                ev.push(sse(
                    Some("content_block_start"),
                    &json!({"type": "content_block_start", "index": 1,
                    "content_block": {"type": "tool_use", "id": "toolu_mock", "name": "lookup", "input": {}}}),
                ));
                for c in chunks(a, n) {
                    ev.push(sse(
                        Some("content_block_delta"),
                        &json!({"type": "content_block_delta", "index": 1,
                        "delta": {"type": "input_json_delta", "partial_json": c}}),
                    ));
                }
                ev.push(sse(
                    Some("content_block_stop"),
                    &json!({"type": "content_block_stop", "index": 1}),
                ));
            }
            ev.push(sse(
                Some("message_delta"),
                &json!({"type": "message_delta",
                "delta": {"stop_reason": if tool.is_some() {"tool_use"} else {"end_turn"}, "stop_sequence": null},
                "usage": {"output_tokens": 15}}),
            ));
            ev.push(sse(Some("message_stop"), &json!({"type": "message_stop"})));
        }
        Api::Chat => {
            let chunk = |delta: Value, finish: Value| {
                sse(
                    None,
                    &json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1700000000,
                    "model": model, "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]}),
                )
            };
            ev.push(chunk(json!({"role": "assistant", "content": ""}), Value::Null));
            for c in chunks(reply, n) {
                ev.push(chunk(json!({"content": c}), Value::Null));
            }
            if let Some(a) = tool {
                ev.push(chunk(
                    json!({"tool_calls": [{"index": 0, "id": "call_mock", "type": "function",
                    "function": {"name": "lookup", "arguments": ""}}]}),
                    Value::Null,
                ));
                for c in chunks(a, n) {
                    ev.push(chunk(
                        json!({"tool_calls": [{"index": 0, "function": {"arguments": c}}]}),
                        Value::Null,
                    ));
                }
            }
            ev.push(chunk(
                json!({}),
                json!(if tool.is_some() { "tool_calls" } else { "stop" }),
            ));
            ev.push("data: [DONE]\n\n".to_string());
        }
        Api::Responses => {
            let mut seq = 0;
            let mut e = |name: &str, mut v: Value| {
                v["type"] = json!(name);
                v["sequence_number"] = json!(seq);
                seq += 1;
                ev.push(sse(Some(name), &v));
            };
            e(
                "response.created",
                json!({"response": responses_object(model, reply, tool, "in_progress")}),
            );
            e(
                "response.in_progress",
                json!({"response": responses_object(model, reply, tool, "in_progress")}),
            );
            e(
                "response.output_item.added",
                json!({"output_index": 0, "item": {"type": "message", "id": "msg_mock",
                "status": "in_progress", "role": "assistant", "content": []}}),
            );
            e(
                "response.content_part.added",
                json!({"item_id": "msg_mock", "output_index": 0, "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": []}}),
            );
            for c in chunks(reply, n) {
                e(
                    "response.output_text.delta",
                    json!({"item_id": "msg_mock", "output_index": 0,
                    "content_index": 0, "delta": c, "logprobs": []}),
                );
            }
            e(
                "response.output_text.done",
                json!({"item_id": "msg_mock", "output_index": 0, "content_index": 0,
                "text": reply, "logprobs": []}),
            );
            e(
                "response.content_part.done",
                json!({"item_id": "msg_mock", "output_index": 0, "content_index": 0,
                "part": {"type": "output_text", "text": reply, "annotations": []}}),
            );
            e(
                "response.output_item.done",
                json!({"output_index": 0, "item": responses_message(reply, "completed")}),
            );
            if let Some(a) = tool {
                e(
                    "response.output_item.added",
                    json!({"output_index": 1, "item": responses_call("", "in_progress")}),
                );
                for c in chunks(a, n) {
                    e(
                        "response.function_call_arguments.delta",
                        json!({"item_id": "fc_mock", "output_index": 1,
                        "delta": c}),
                    );
                }
                e(
                    "response.function_call_arguments.done",
                    json!({"item_id": "fc_mock", "output_index": 1,
                    "arguments": a}),
                );
                e(
                    "response.output_item.done",
                    json!({"output_index": 1, "item": responses_call(a, "completed")}),
                );
            }
            e(
                "response.completed",
                json!({"response": responses_object(model, reply, tool, "completed")}),
            );
        }
        Api::Gemini { sse: is_sse, .. } => {
            let pieces = chunks(reply, n);
            let count = pieces.len();
            let mut objs: Vec<Value> = pieces
                .into_iter()
                .enumerate()
                .map(|(i, c)| {
                    let mut cand = json!({"content": {"parts": [{"text": c}], "role": "model"}, "index": 0});
                    if i + 1 == count && tool.is_none() {
                        cand["finishReason"] = json!("STOP");
                    }
                    json!({"candidates": [cand], "modelVersion": model})
                })
                .collect();
            if let Some(a) = tool {
                objs.push(
                    json!({"candidates": [{"content": {"parts": [{"functionCall": {"name": "lookup",
                    "args": serde_json::from_str::<Value>(a).unwrap()}}], "role": "model"}, "finishReason": "STOP",
                    "index": 0}], "modelVersion": model}),
                );
            }
            if let Some(last) = objs.last_mut() {
                last["usageMetadata"] =
                    json!({"promptTokenCount": 10, "candidatesTokenCount": 15, "totalTokenCount": 25});
            }
            if is_sse {
                for o in objs {
                    ev.push(format!("data: {o}\r\n\r\n"));
                }
            } else {
                let k = objs.len();
                for (i, o) in objs.into_iter().enumerate() {
                    let pre = if i == 0 { "[" } else { "" };
                    let post = if i + 1 == k { "]" } else { ",\r\n" };
                    ev.push(format!("{pre}{o}{post}"));
                }
            }
        }
    }
    ev
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_bounded_by_count_and_bytes() {
        let rec = |n: usize| Recorded {
            method: "POST".into(),
            path: format!("/{n}"),
            query: None,
            headers: HeaderMap::new(),
            body: Bytes::from(vec![b'x'; n]),
            version: http::Version::HTTP_11,
        };
        let mut records = Records::default();
        for n in [10, 20, 30] {
            records.push(rec(n), (2, 1000));
        }
        let paths: Vec<&str> = records.list.iter().map(|r| r.path.as_str()).collect();
        assert_eq!((paths, records.bytes), (vec!["/20", "/30"], 50), "at most two");
        records.push(rec(975), (2, 1000));
        let paths: Vec<&str> = records.list.iter().map(|r| r.path.as_str()).collect();
        assert_eq!((paths, records.bytes), (vec!["/975"], 975), "at most 1000 bytes");
        records.push(rec(5000), (2, 1000));
        assert_eq!(
            (records.list.len(), records.bytes),
            (1, 5000),
            "the newest stays, however large"
        );
    }
}
