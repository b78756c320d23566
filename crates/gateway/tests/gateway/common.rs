//! Shared set-up: a gateway in front of the mock provider, a plain HTTP client, captured logs.

#![allow(dead_code)]

use std::io::Write;
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
pub use maskgate_gateway::mock::{MockProvider, Recorded};
use maskgate_gateway::{Config, GatewayHandle};
use serde_json::Value;

pub const ANTHROPIC_KEY: &str = "sk-ant-gateway-test-key";
pub const OPENAI_KEY: &str = "sk-openai-gateway-test-key";
pub const GEMINI_KEY: &str = "gemini-gateway-test-key";
pub const CLIENT_KEY: &str = "client-own-key-must-not-leave";

/// Identifiers the tests send; none may reach the provider, a log line or a metric.
pub const ORIGINALS: [&str; 7] = [
    "i-0123456789abcdef0",
    "vpc-0a1b2c3d4e5f67890",
    "arn:aws:iam::123456789012:role/DeployRole",
    "sg-0123456789abcdef0",
    "10.0.1.25",
    "AKIAIOSFODNN7EXAMPLE",
    "subnet-0abc1234",
];

pub fn sample_text() -> String {
    format!(
        "Why can {} in {} not assume {}? SG {} at {} with key {} in {}.",
        ORIGINALS[0], ORIGINALS[1], ORIGINALS[2], ORIGINALS[3], ORIGINALS[4], ORIGINALS[5], ORIGINALS[6]
    )
}

/// Every log line of this test binary.
pub fn logs() -> String {
    String::from_utf8_lossy(&LOGS.get_or_init(Default::default).lock().unwrap()).into_owned()
}

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct LogWriter(Arc<Mutex<Vec<u8>>>);
impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var("MG_TEST_ANTHROPIC_KEY", ANTHROPIC_KEY);
        std::env::set_var("MG_TEST_OPENAI_KEY", OPENAI_KEY);
        std::env::set_var("MG_TEST_GEMINI_KEY", GEMINI_KEY);
        let buf = LOGS.get_or_init(Default::default).clone();
        let _ = tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "debug,h2=info,hyper=info,rustls=info",
            ))
            .with_writer(move || LogWriter(buf.clone()))
            .try_init();
    });
}

/// A test config: the three providers routed to the mock (by connect-address override).
pub fn config_toml(mock_port: u16, gateway_extra: &str, extra: &str) -> String {
    format!(
        r#"
[gateway]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
{gateway_extra}

[[routes]]
host = "api.anthropic.com"
path_prefix = "/anthropic"
upstream = "http://api.anthropic.com"
connect_address = "127.0.0.1:{mock_port}"
[routes.credential]
header = "x-api-key"
env = "MG_TEST_ANTHROPIC_KEY"

[[routes]]
host = "api.openai.com"
path_prefix = "/openai"
upstream = "http://api.openai.com"
connect_address = "127.0.0.1:{mock_port}"
[routes.credential]
header = "authorization"
prefix = "Bearer "
env = "MG_TEST_OPENAI_KEY"

[[routes]]
host = "generativelanguage.googleapis.com"
path_prefix = "/gemini"
upstream = "http://generativelanguage.googleapis.com"
connect_address = "127.0.0.1:{mock_port}"
[routes.credential]
header = "x-goog-api-key"
env = "MG_TEST_GEMINI_KEY"
{extra}
"#
    )
}

pub struct Env {
    pub gw: GatewayHandle,
    pub mock: MockProvider,
    pub client: Client<HttpConnector, Full<Bytes>>,
}

pub async fn env() -> Env {
    env_with("", "").await
}

pub async fn env_with(gateway_extra: &str, extra: &str) -> Env {
    init();
    let mock = MockProvider::start().await.unwrap();
    let cfg = Config::from_toml(&config_toml(mock.addr.port(), gateway_extra, extra)).unwrap();
    let gw = maskgate_gateway::start(cfg, None).await.unwrap();
    Env {
        gw,
        mock,
        client: client(),
    }
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

impl Env {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.gw.proxy_addr, path)
    }
    pub fn admin(&self, path: &str) -> String {
        format!("http://{}{}", self.gw.admin_addr, path)
    }

    pub async fn send(&self, req: Request<Full<Bytes>>) -> Resp {
        let r = tokio::time::timeout(Duration::from_secs(20), self.client.request(req))
            .await
            .expect("gateway answered in time")
            .expect("request sent");
        collect(r).await
    }

    pub async fn post_json(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> Resp {
        let mut b = Request::post(self.url(path)).header("content-type", "application/json");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(Full::new(Bytes::from(body.to_string()))).unwrap())
            .await
    }

    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Resp {
        let mut b = Request::get(url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(Full::new(Bytes::new())).unwrap()).await
    }

    pub fn last(&self) -> Recorded {
        self.mock.last().expect("the provider received a request")
    }
}

pub async fn collect(r: Response<Incoming>) -> Resp {
    let (parts, body) = r.into_parts();
    let body = tokio::time::timeout(Duration::from_secs(20), body.collect())
        .await
        .expect("body in time")
        .expect("body complete")
        .to_bytes();
    Resp {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// What the provider received holds no original, and is valid JSON when it was JSON.
pub fn assert_masked(rec: &Recorded) {
    let body = rec.body_str();
    for o in ORIGINALS {
        assert!(!body.contains(o), "provider saw an original: {body}");
        if let Some(q) = &rec.query {
            assert!(!q.contains(o), "provider saw an original in the query: {q}");
        }
    }
    assert!(
        body.contains("AWS_EC2_"),
        "no placeholder in what the provider saw: {body}"
    );
}

pub fn assert_no_original(what: &str, text: &str) {
    for o in ORIGINALS {
        if let Some(line) = text.lines().find(|l| l.contains(o)) {
            panic!("{what} holds an original ({o}) in: {line}");
        }
    }
}

pub fn assert_all_originals(what: &str, text: &str) {
    for o in ORIGINALS {
        assert!(text.contains(o), "{what} lacks {o}: {text}");
    }
    assert!(!text.contains("AWS_EC2_"), "{what} still has placeholders: {text}");
}

/// Concatenation, in order, of the streamed text pieces of an SSE or JSON-array stream (delta texts, partial JSON,
/// arguments), unescaped: what an SDK would assemble.
pub fn stream_text(body: &str) -> String {
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    match (k.as_str(), x) {
                        ("text" | "partial_json" | "arguments" | "content" | "delta", Value::String(s)) => {
                            out.push_str(s)
                        }
                        // Whole objects in `*.done` / `response.completed` would repeat the text.
                        ("response" | "item" | "part", _) => {}
                        _ => walk(x, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = String::new();
    let trimmed = body.trim_start();
    if trimmed.starts_with('[') {
        let v: Value = serde_json::from_str(trimmed).unwrap_or_else(|e| panic!("bad JSON array stream {e}: {body}"));
        walk(&v, &mut out);
        return out;
    }
    for line in body.lines() {
        if let Some(d) = line.strip_prefix("data: ") {
            if d.trim() == "[DONE]" {
                continue;
            }
            let v: Value = serde_json::from_str(d).unwrap_or_else(|e| panic!("bad event {e}: {d}"));
            // Skip `.done` events that repeat the whole text.
            if v.get("type")
                .and_then(|t| t.as_str())
                .is_some_and(|t| t.ends_with(".done"))
            {
                continue;
            }
            walk(&v, &mut out);
        }
    }
    out
}
