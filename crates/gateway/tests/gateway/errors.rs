//! Every refusal: status, JSON body `{"message","code"}`, and nothing forwarded.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use maskgate_vault::{BoxFuture, Entry, Vault, VaultError};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

fn msg() -> serde_json::Value {
    json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": sample_text()}]})
}

fn assert_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r.json();
    assert_eq!(v["code"], code, "{}", r.text());
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert_no_original("error body", &r.text());
}

async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn routing_errors() {
    let env = env().await;
    // Off-list x-original-host: the seed's body plus a code.
    let r = env
        .post_json("/v1/messages", &[("x-original-host", "evil.example.com")], &msg())
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.text(),
        r#"{"message":"Unauthorized external API","host":"evil.example.com","code":"UNAUTHORIZED_HOST"}"#
    );
    assert_eq!(
        r.json(),
        json!({"message": "Unauthorized external API", "host": "evil.example.com", "code": "UNAUTHORIZED_HOST"})
    );
    // Host not on the list, no prefix.
    let r = env.post_json("/v1/messages", &[], &msg()).await;
    assert_error(&r, 403, "UNAUTHORIZED_HOST");
    assert_eq!(r.json()["host"], "127.0.0.1");
    // x-original-host wins over the path prefix; Host routes too.
    let r = env
        .post_json(
            "/anthropic/v1/messages",
            &[("x-original-host", "api.openai.com")],
            &msg(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        env.last().path,
        "/anthropic/v1/messages",
        "x-original-host routes; the path is kept"
    );
    assert_eq!(
        env.last().headers["authorization"],
        format!("Bearer {OPENAI_KEY}").as_str()
    );
    assert!(env.last().headers.get("x-original-host").is_none());
    let r = env
        .post_json("/v1/messages", &[("host", "API.Anthropic.com:443")], &msg())
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // No host at all (HTTP/1.0 without Host).
    let out = raw(env.gw.proxy_addr, b"GET /v1/models HTTP/1.0\r\n\r\n").await;
    assert!(
        out.starts_with("HTTP/1.0 400") || out.starts_with("HTTP/1.1 400"),
        "{out}"
    );
    assert!(out.contains("\"code\":\"MISSING_HOST\""), "{out}");
    let n = env.mock.records().len();
    assert_eq!(n, 2, "refused requests reached the provider");
}

#[tokio::test]
async fn body_errors() {
    use maskgate_gateway::body::{encode, Coding};
    let env = env_with("max_request_body = 4096", "").await;
    let big = json!({"messages": [{"role": "user", "content": "x".repeat(5000)}]});
    let r = env.post_json("/anthropic/v1/messages", &[], &big).await;
    assert_error(&r, 413, "BODY_TOO_LARGE");
    // Chunked (no Content-Length) and over the limit.
    let mut req = b"POST /anthropic/v1/messages HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for _ in 0..10 {
        req.extend_from_slice(format!("3e8\r\n{}\r\n", " ".repeat(1000)).as_bytes());
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let out = raw(env.gw.proxy_addr, &req).await;
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    assert!(out.contains("BODY_TOO_LARGE"), "{out}");
    // A small gzip that decodes to more than the limit.
    let bomb = encode(
        Coding::Gzip,
        format!("{{\"a\":\"{}\"}}", " ".repeat(100_000)).as_bytes(),
    );
    assert!(bomb.len() < 4096);
    let r = env
        .send(
            http::Request::post(env.url("/anthropic/v1/messages"))
                .header("content-type", "application/json")
                .header("content-encoding", "gzip")
                .body(Full::new(Bytes::from(bomb)))
                .unwrap(),
        )
        .await;
    assert_error(&r, 413, "BODY_TOO_LARGE");
    // Malformed JSON: 400; binary: 415; unknown coding: 415; broken gzip: 400.
    let send = |ct: &'static str, ce: Option<&'static str>, body: &'static [u8]| {
        let mut b = http::Request::post(env.url("/anthropic/v1/messages")).header("content-type", ct);
        if let Some(ce) = ce {
            b = b.header("content-encoding", ce);
        }
        env.send(b.body(Full::new(Bytes::from_static(body))).unwrap())
    };
    assert_error(
        &send("application/json", None, b"{\"a\": i-0123456789abcdef0").await,
        400,
        "UNSUPPORTED_BODY",
    );
    assert_error(
        &send("application/octet-stream", None, b"\x00\x01i-0123456789abcdef0").await,
        415,
        "UNSUPPORTED_BODY",
    );
    assert_error(
        &send("multipart/form-data; boundary=x", None, b"--x\r\n").await,
        415,
        "UNSUPPORTED_BODY",
    );
    assert_error(
        &send("application/json", Some("compress"), b"{}").await,
        415,
        "UNSUPPORTED_BODY",
    );
    assert_error(
        &send("application/json", Some("gzip"), b"not gzip").await,
        400,
        "UNSUPPORTED_BODY",
    );
    assert_error(
        &send("text/plain", None, b"\xff\xfe i-0123456789abcdef0").await,
        400,
        "UNSUPPORTED_BODY",
    );
    assert!(env.mock.records().is_empty(), "a refused body reached the provider");
    // Text bodies are masked as text.
    let r = send("text/plain", None, b"look at i-0123456789abcdef0 please").await;
    assert_eq!(r.status, 200);
    assert_masked(&env.last());
}

#[tokio::test]
async fn passthrough_route_forwards_unmaskable_bodies() {
    let env = env_with(
        "",
        r#"
[[routes]]
host = "uploads.test"
upstream = "http://uploads.test"
connect_address = "127.0.0.1:1"
passthrough_unmaskable = true
"#,
    )
    .await;
    // The route is allowed to forward binary: it gets past masking and fails to connect (port 1).
    let r = env
        .send(
            http::Request::post(env.url("/upload"))
                .header("host", "uploads.test")
                .header("content-type", "application/octet-stream")
                .body(Full::new(Bytes::from_static(b"\x00\x01\x02")))
                .unwrap(),
        )
        .await;
    assert_error(&r, 502, "UPSTREAM_UNREACHABLE");
}

#[tokio::test]
async fn rate_limited_by_client_credential() {
    let env = env_with("", "[rate_limit]\nday = 1\nlimit_by = \"credential\"\n").await;
    let a = [("x-api-key", "app-key-a")];
    let b = [("authorization", "Bearer app-key-b")];
    assert_eq!(env.post_json("/anthropic/v1/messages", &a, &msg()).await.status, 200);
    assert_eq!(env.post_json("/anthropic/v1/messages", &a, &msg()).await.status, 429);
    assert_eq!(env.post_json("/anthropic/v1/messages", &b, &msg()).await.status, 200);
    assert_eq!(env.mock.records().len(), 2);
}

#[tokio::test]
async fn rate_limited() {
    let env = env_with(
        "",
        r#"
[rate_limit]
hour = 3
limit_by = "header"
header_name = "x-team"
"#,
    )
    .await;
    for i in 0..3 {
        let r = env
            .post_json("/anthropic/v1/messages", &[("x-team", "a")], &msg())
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.headers["x-ratelimit-limit-hour"], "3");
        assert_eq!(r.headers["x-ratelimit-remaining-hour"], (2 - i).to_string().as_str());
    }
    let r = env
        .post_json("/anthropic/v1/messages", &[("x-team", "a")], &msg())
        .await;
    assert_eq!(r.status, 429);
    assert_eq!(
        r.json(),
        json!({"message": "API rate limit exceeded", "code": "RATE_LIMITED"})
    );
    assert_eq!(r.headers["x-ratelimit-remaining-hour"], "0");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry));
    assert_eq!(r.headers["ratelimit-reset"], r.headers["retry-after"]);
    // Another key has its own budget.
    let r = env
        .post_json("/anthropic/v1/messages", &[("x-team", "b")], &msg())
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(env.mock.records().len(), 4);
}

/// A vault that fails, hangs, or returns garbage.
struct BadVault(&'static str);

impl Vault for BadVault {
    fn assign<'a>(&'a self, _t: &'a str, entries: &'a [Entry<'a>]) -> BoxFuture<'a, Result<Vec<String>, VaultError>> {
        let n = entries.len();
        Box::pin(async move {
            match self.0 {
                "down" => Err(VaultError::Unavailable("connection refused".into())),
                "hang" => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    unreachable!()
                }
                _ => Ok(vec!["not-a-placeholder".to_string(); n]),
            }
        })
    }
    fn resolve<'a>(&'a self, _t: &'a str, _p: &'a [&'a str]) -> BoxFuture<'a, Result<Vec<Option<String>>, VaultError>> {
        Box::pin(async { Err(VaultError::Unavailable("down".into())) })
    }
    fn ping(&self) -> BoxFuture<'_, Result<(), VaultError>> {
        Box::pin(async { Err(VaultError::Unavailable("down".into())) })
    }
    fn backend(&self) -> &'static str {
        "test"
    }
}

#[tokio::test]
async fn vault_failures_fail_closed() {
    init();
    for (mode, status, code) in [
        ("down", 503, "VAULT_UNAVAILABLE"),
        ("hang", 503, "VAULT_UNAVAILABLE"),
        ("garbage", 500, "MASKING_FAILED"),
    ] {
        let mock = MockProvider::start().await.unwrap();
        let cfg = maskgate_gateway::Config::from_toml(&config_toml(mock.addr.port(), "vault_timeout = \"300ms\"", ""))
            .unwrap();
        let gw = maskgate_gateway::server::start_with_vault(cfg, None, Arc::new(BadVault(mode)))
            .await
            .unwrap();
        let env = Env {
            gw,
            mock,
            client: client(),
        };
        let t = std::time::Instant::now();
        let r = env.post_json("/anthropic/v1/messages", &[], &msg()).await;
        assert_error(&r, status, code);
        assert!(t.elapsed() < Duration::from_secs(3), "{mode}: not bounded");
        assert!(env.mock.records().is_empty(), "{mode}: forwarded");
        // Nothing to mask: no vault needed.
        let r = env
            .post_json(
                "/anthropic/v1/messages",
                &[],
                &json!({"messages": [{"role": "user", "content": "hi"}]}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let ready = env.get(&env.admin("/health/ready"), &[]).await;
        assert_error(&ready, 503, "VAULT_UNAVAILABLE");
    }
}

#[tokio::test]
async fn upstream_errors() {
    let env = env_with(
        "first_byte_timeout = \"400ms\"\nconnect_timeout = \"300ms\"",
        r#"
[[routes]]
host = "closed.test"
upstream = "http://closed.test"
connect_address = "127.0.0.1:1"

[[routes]]
host = "nokey.test"
upstream = "http://nokey.test"
connect_address = "127.0.0.1:1"
[routes.credential]
header = "x-api-key"
env = "MG_TEST_KEY_THAT_IS_NOT_SET"
"#,
    )
    .await;
    let r = env
        .post_json("/v1/messages", &[("x-original-host", "closed.test")], &msg())
        .await;
    assert_error(&r, 502, "UPSTREAM_UNREACHABLE");
    let r = env
        .post_json("/anthropic/v1/messages", &[("x-mock-sleep-ms", "3000")], &msg())
        .await;
    assert_error(&r, 504, "UPSTREAM_TIMEOUT");
    let r = env
        .post_json("/v1/messages", &[("x-original-host", "nokey.test")], &msg())
        .await;
    assert_error(&r, 503, "CREDENTIAL_UNAVAILABLE");
    assert!(!r.text().contains("MG_TEST_KEY"), "{}", r.text());
    // The upstream's own errors pass through, unmasked.
    let r = env
        .post_json("/anthropic/v1/messages", &[("x-mock-status", "400")], &msg())
        .await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains(ORIGINALS[0]), "{}", r.text());
}
