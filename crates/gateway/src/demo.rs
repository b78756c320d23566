//! `maskgate demo`: the whole flow offline. Starts the gateway and the built-in mock provider on free ports,
//! sends a sample conversation with AWS identifiers through it (streamed and not), and prints what the app sent,
//! what the provider received and what the app got back. Fails when the provider saw an original or the app did
//! not get every original back.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use crate::config::Config;
use crate::mock::{last_message_text, MockProvider};

const USER_TEXT: &str = "Our web tier runs on i-0a1b2c3d4e5f67890 in vpc-0123456789abcdef0 (account 123456789012). \
The role arn:aws:iam::123456789012:role/WebTier cannot read s3://acme-prod-logs from 10.20.30.40. Why?";

const ORIGINALS: [&str; 6] = [
    "i-0a1b2c3d4e5f67890",
    "vpc-0123456789abcdef0",
    "arn:aws:iam::123456789012:role/WebTier",
    "acme-prod-logs",
    "10.20.30.40",
    "123456789012",
];

pub fn run() -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(demo())
}

/// `maskgate mock-provider`: the mock provider alone, until interrupted.
pub fn run_mock(listen: std::net::SocketAddr) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let mock = MockProvider::start_on(listen)
            .await
            .map_err(|e| format!("{listen}: {e}"))?;
        println!("mock provider on http://{}", mock.addr);
        let _ = tokio::signal::ctrl_c().await;
        Ok(())
    })
}

/// Text pieces of a streamed answer, in order (what an SDK assembles), then the tool-call arguments.
pub fn stream_text(body: &str) -> String {
    fn walk(v: &Value, text: &mut String, args: &mut String) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    match (k.as_str(), x) {
                        ("partial_json" | "arguments", Value::String(s)) => args.push_str(s),
                        ("text" | "content" | "delta", Value::String(s)) => text.push_str(s),
                        ("response" | "item" | "part" | "message", Value::Object(_)) => {}
                        _ => walk(x, text, args),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, text, args)),
            _ => {}
        }
    }
    let (mut text, mut args) = (String::new(), String::new());
    for line in body.lines() {
        if let Some(d) = line.strip_prefix("data: ") {
            if let Ok(v) = serde_json::from_str::<Value>(d) {
                walk(&v, &mut text, &mut args);
            }
        }
    }
    if !args.is_empty() {
        text.push_str(" [tool call arguments: ");
        text.push_str(&args);
        text.push(']');
    }
    text
}

fn wrap(s: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in s.split_whitespace() {
        if !cur.is_empty() && cur.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

fn show(label: &str, text: &str) {
    let width = 86;
    for (i, l) in wrap(text, width).iter().enumerate() {
        let lab = if i == 0 { label } else { "" };
        println!("  {lab:<18}│ {l}");
    }
}

async fn demo() -> Result<(), String> {
    let mock = MockProvider::start().await.map_err(|e| e.to_string())?;
    let port = mock.addr.port();
    let toml = format!(
        r#"
[gateway]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[[routes]]
host = "api.anthropic.com"
path_prefix = "/anthropic"
upstream = "http://api.anthropic.com"
connect_address = "127.0.0.1:{port}"
[routes.credential]
header = "x-api-key"
file = "{key}"
[[routes]]
host = "api.openai.com"
path_prefix = "/openai"
upstream = "http://api.openai.com"
connect_address = "127.0.0.1:{port}"
[routes.credential]
header = "authorization"
prefix = "Bearer "
file = "{key}"
"#,
        key = demo_key_file()?.display()
    );
    let config = Config::from_toml(&toml).map_err(|e| e.to_string())?;
    let gw = crate::server::start(config, None).await?;
    let base = format!("http://{}", gw.proxy_addr);
    println!(
        "maskgate demo: gateway on {base} (admin {}), mock provider on {}",
        gw.admin_addr, mock.addr
    );
    println!("The app sends a conversation with AWS identifiers; the provider must only see placeholders.\n");

    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let steps: [(&str, &str, Value); 3] = [
        (
            "Anthropic Messages, not streamed",
            "/anthropic/v1/messages",
            json!({"model": "claude-demo", "max_tokens": 200, "messages": [{"role": "user", "content": USER_TEXT}]}),
        ),
        (
            "Anthropic Messages, streamed (placeholders split across events)",
            "/anthropic/v1/messages",
            json!({"model": "claude-demo", "max_tokens": 200, "stream": true,
                "messages": [{"role": "user", "content": USER_TEXT}]}),
        ),
        (
            "OpenAI Chat Completions, streamed, with a tool call",
            "/openai/v1/chat/completions",
            json!({"model": "gpt-demo", "stream": true,
                "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
                "messages": [{"role": "user", "content": USER_TEXT}]}),
        ),
    ];
    let mut ok = true;
    let mut seen_placeholders: Vec<String> = Vec::new();
    for (i, (title, path, body)) in steps.iter().enumerate() {
        let req = http::Request::post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .header("x-mock-chunk", "3")
            .header("x-mock-delay-ms", "5")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(Duration::from_secs(20), client.request(req))
            .await
            .map_err(|_| "the gateway did not answer".to_string())?
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let got = if body["stream"] == json!(true) {
            stream_text(&text)
        } else {
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            v["content"][0]["text"].as_str().unwrap_or(&text).to_string()
        };
        let rec = mock.last().ok_or("the provider received nothing")?;
        let received = last_message_text(&rec.json());
        println!("── {}. {title} ({path} → HTTP {})", i + 1, status.as_u16());
        show("app sent", USER_TEXT);
        show("provider received", &received);
        show("app got back", &got);
        let leaked: Vec<&str> = ORIGINALS
            .iter()
            .copied()
            .filter(|o| rec.body_str().contains(o))
            .collect();
        let missing: Vec<&str> = ORIGINALS.iter().copied().filter(|o| !got.contains(o)).collect();
        if !leaked.is_empty() || !missing.is_empty() || !status.is_success() {
            ok = false;
            println!(
                "  !! provider saw {} original(s); app missed {}",
                leaked.len(),
                missing.len()
            );
        }
        let placeholders: Vec<String> = received
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| crate::engine::is_placeholder(w))
            .map(str::to_string)
            .collect();
        if !seen_placeholders.is_empty() && placeholders != seen_placeholders {
            ok = false;
            println!("  !! placeholders changed between requests");
        }
        seen_placeholders = placeholders;
        println!();
    }
    let metrics = client
        .request(
            http::Request::get(format!("http://{}/metrics", gw.admin_addr))
                .body(Full::new(Bytes::new()))
                .map_err(|e| e.to_string())?,
        )
        .await
        .map_err(|e| e.to_string())?
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let metrics = String::from_utf8_lossy(&metrics);
    println!("Metrics (admin /metrics, excerpt):");
    for l in metrics
        .lines()
        .filter(|l| l.starts_with("maskgate_entities_masked_total") || l.starts_with("maskgate_requests_total"))
    {
        println!("  {l}");
    }
    gw.shutdown().await;
    use std::io::Write;
    let _ = std::io::stdout().flush();
    if ok {
        println!(
            "\nOK: the provider never saw an original, the app got every original back, and the placeholders \
             were the same in every request."
        );
        Ok(())
    } else {
        Err("the demo found a problem (see !! above)".into())
    }
}

fn demo_key_file() -> Result<std::path::PathBuf, String> {
    let p = std::env::temp_dir().join(format!("maskgate-demo-key-{}", std::process::id()));
    std::fs::write(&p, "demo-provider-key\n").map_err(|e| e.to_string())?;
    Ok(p)
}
