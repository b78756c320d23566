//! Two `maskgate gateway` processes sharing one real `redis-server` (started on a free port), driven concurrently
//! with overlapping identifiers: identical placeholders for identical originals, no duplicates, dense numbering,
//! and a rate limit shared by both processes. The provider stand-in runs in the test and records what it got.

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use maskgate_gateway::mock::MockProvider;
use maskgate_vault::testing::{free_port, RedisServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: &str = "c0ffee00112233445566778899aabbccddeeff00112233445566778899aabbcc";

struct Gateway {
    child: Child,
    proxy: u16,
    admin: u16,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_gateway(dir: &std::path::Path, name: &str, redis_url: &str, mock_port: u16) -> Gateway {
    let (proxy, admin) = (free_port(), free_port());
    let cfg = format!(
        r#"
[gateway]
listen = "127.0.0.1:{proxy}"
admin_listen = "127.0.0.1:{admin}"

[vault]
backend = "redis"
url = "{redis_url}"
timeout = "500ms"

[[routes]]
host = "api.anthropic.com"
path_prefix = "/anthropic"
upstream = "http://api.anthropic.com"
connect_address = "127.0.0.1:{mock_port}"
keep_client_credentials = true

[[routes]]
host = "api.openai.com"
path_prefix = "/openai"
upstream = "http://api.openai.com"
connect_address = "127.0.0.1:{mock_port}"
keep_client_credentials = true
[routes.rate_limit]
hour = 4
limit_by = "header"
header_name = "x-team"
policy = "redis"
"#
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, cfg).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_maskgate"))
        .args(["gateway", "--config"])
        .arg(&path)
        .env("MASKGATE_VAULT_KEY", KEY)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("maskgate gateway starts");
    Gateway { child, proxy, admin }
}

/// One HTTP/1.1 request with `Connection: close`; returns (status, headers text, body).
async fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
        .await
        .expect("answered in time")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

async fn wait_ready(g: &Gateway) {
    let t = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", g.admin)).await.is_ok() {
            let (status, _, body) = http(g.admin, "GET", "/health/ready", &[], "").await;
            if status == 200 {
                assert!(body.contains("\"redis\""), "{body}");
                return;
            }
        }
        assert!(t.elapsed() < Duration::from_secs(20), "gateway not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn chat(text: &str) -> String {
    serde_json::json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": text}]}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_two_gateway_processes_share_one_redis() {
    let Some(server) = RedisServer::start() else { return };
    let mock = MockProvider::start().await.unwrap();
    let dir = std::env::temp_dir().join(format!("maskgate-procs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gws = [
        spawn_gateway(&dir, "a", &server.url(), mock.addr.port()),
        spawn_gateway(&dir, "b", &server.url(), mock.addr.port()),
    ];
    for g in &gws {
        wait_ready(g).await;
    }
    let ports = [gws[0].proxy, gws[1].proxy];
    let ids: Vec<String> = (0..24).map(|i| format!("i-{:017x}", 0x5eed00 + i)).collect();
    let subnets: Vec<String> = (0..8).map(|i| format!("subnet-{:08x}", 0xabc0 + i)).collect();
    let mut tasks = Vec::new();
    for t in 0..6usize {
        let ids = ids.clone();
        let subnets = subnets.clone();
        tasks.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            for round in 0..6usize {
                let start = (t * 5 + round * 3) % 20;
                let mut originals: Vec<String> = ids[start..start + 4].to_vec();
                originals.push(subnets[(t * 2 + round) % 8].clone());
                let tag = format!("req-{t}-{round}");
                let text = format!("{tag} {}", originals.join(" "));
                let port = ports[(t + round) % 2];
                let (status, _, body) = http(port, "POST", "/anthropic/v1/messages", &[], &chat(&text)).await;
                assert_eq!(status, 200, "{body}");
                for o in &originals {
                    assert!(body.contains(o.as_str()), "the client gets its originals back: {body}");
                }
                sent.push((tag, originals));
            }
            sent
        }));
    }
    let mut sent: HashMap<String, Vec<String>> = HashMap::new();
    for t in tasks {
        sent.extend(t.await.unwrap());
    }
    let mut by_original: HashMap<String, String> = HashMap::new();
    let mut by_placeholder: HashMap<String, String> = HashMap::new();
    let records = mock.records();
    assert_eq!(records.len(), sent.len());
    for rec in &records {
        let body = rec.body_str();
        for o in ids.iter().chain(&subnets) {
            assert!(!body.contains(o.as_str()), "the provider saw an original: {body}");
        }
        let content = rec.json()["messages"][0]["content"].as_str().unwrap().to_string();
        let mut words = content.split_whitespace();
        let originals = &sent[words.next().unwrap()];
        let placeholders: Vec<&str> = words.collect();
        assert_eq!(placeholders.len(), originals.len(), "{content}");
        for (o, p) in originals.iter().zip(placeholders) {
            if let Some(prev) = by_original.insert(o.clone(), p.to_string()) {
                assert_eq!(prev, p, "one original, two placeholders across processes");
            }
            if let Some(prev) = by_placeholder.insert(p.to_string(), o.clone()) {
                assert_eq!(&prev, o, "one placeholder, two originals across processes");
            }
        }
    }
    let mut nums: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for p in by_placeholder.keys() {
        let (kind, n) = p.rsplit_once('_').unwrap();
        nums.entry(kind.to_string()).or_default().push(n.parse().unwrap());
    }
    assert_eq!(nums.len(), 2, "{nums:?}");
    for (kind, mut n) in nums {
        n.sort();
        assert_eq!(n, (1..=n.len() as u64).collect::<Vec<_>>(), "{kind}: not dense");
    }

    // A rate limit shared by both processes (hour = 4 per x-team; clear of an hour boundary).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if now % 3600 > 3590 {
        tokio::time::sleep(Duration::from_secs(3600 - now % 3600 + 1)).await;
    }
    let mut statuses = Vec::new();
    for i in 0..8usize {
        let (status, head, _) = http(
            ports[i % 2],
            "POST",
            "/openai/v1/chat/completions",
            &[("x-team", "green")],
            &chat("hello"),
        )
        .await;
        assert!(head.contains("x-ratelimit-limit-hour: 4"), "{head}");
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429, 429, 429]);
    drop(gws);
    let _ = std::fs::remove_dir_all(&dir);
}
