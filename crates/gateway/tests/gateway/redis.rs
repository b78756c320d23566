//! The gateway on the Redis vault, against a real `redis-server` started by each test on a free port: two
//! gateways sharing one Redis, Redis dying under load, shared rate limits, start-up without a key.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maskgate_gateway::{Config, GatewayHandle};
use maskgate_vault::testing::RedisServer;
use serde_json::json;

use crate::common::*;

const KEY: &str = "5a0f3c9e1b2d4f6a8c0e2b4d6f8a0c2e4b6d8f0a2c4e6b8d0f2a4c6e8b0d2f4a";

fn key_file() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("maskgate-gw-redis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("vault.key");
    std::fs::write(&f, format!("{KEY}\n")).unwrap();
    f
}

fn redis_vault_toml(url: &str, extra: &str) -> String {
    format!(
        "\n[vault]\nbackend = \"redis\"\nurl = \"{url}\"\nkey_file = \"{}\"\ntimeout = \"300ms\"\nconnect_timeout = \
         \"300ms\"\nbreaker_failures = 2\nbreaker_cooldown = \"300ms\"\n{extra}\n",
        key_file().display()
    )
}

async fn gateway(mock_port: u16, url: &str, extra: &str) -> GatewayHandle {
    init();
    let toml = config_toml(mock_port, "vault_timeout = \"1s\"", &redis_vault_toml(url, extra));
    let cfg = Config::from_toml(&toml).unwrap();
    maskgate_gateway::start(cfg, None).await.unwrap()
}

fn body(text: &str) -> serde_json::Value {
    json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": text}]})
}

struct Two {
    a: GatewayHandle,
    b: GatewayHandle,
    mock: MockProvider,
}

impl Two {
    fn url(&self, which: usize, path: &str) -> String {
        let gw = if which.is_multiple_of(2) { &self.a } else { &self.b };
        format!("http://{}{}", gw.proxy_addr, path)
    }
}

async fn post(url: &str, v: &serde_json::Value) -> Resp {
    post_h(url, &[], v).await
}

async fn post_h(url: &str, headers: &[(&str, &str)], v: &serde_json::Value) -> Resp {
    let mut b = http::Request::post(url).header("content-type", "application/json");
    for (k, val) in headers {
        b = b.header(*k, *val);
    }
    let req = b
        .body(http_body_util::Full::new(bytes::Bytes::from(v.to_string())))
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(20), client().request(req))
        .await
        .expect("answered in time")
        .expect("sent");
    collect(r).await
}

fn instance_ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("i-{:017x}", 0xabc000 + i)).collect()
}
fn vpc_ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("vpc-{:017x}", 0xdef000 + i)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_two_gateways_agree() {
    let Some(server) = RedisServer::start() else { return };
    let mock = MockProvider::start().await.unwrap();
    let two = Arc::new(Two {
        a: gateway(mock.addr.port(), &server.url(), "").await,
        b: gateway(mock.addr.port(), &server.url(), "").await,
        mock,
    });
    let ids = Arc::new(instance_ids(30));
    let vpcs = Arc::new(vpc_ids(10));
    let mut tasks = Vec::new();
    for t in 0..8usize {
        let (two, ids, vpcs) = (two.clone(), ids.clone(), vpcs.clone());
        tasks.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            for round in 0..6usize {
                let n = t * 100 + round;
                let start = (t * 3 + round * 4) % 25;
                let mut originals: Vec<String> = ids[start..start + 5].to_vec();
                originals.push(vpcs[(t + round) % 10].clone());
                let text = format!("req-{n} {}", originals.join(" "));
                let r = post(&two.url(t + round, "/anthropic/v1/messages"), &body(&text)).await;
                assert_eq!(r.status, 200, "{}", r.text());
                // The client gets its originals back.
                for o in &originals {
                    assert!(r.text().contains(o.as_str()), "{}", r.text());
                }
                sent.push((n, originals));
            }
            sent
        }));
    }
    let mut sent: HashMap<String, Vec<String>> = HashMap::new();
    for t in tasks {
        for (n, o) in t.await.unwrap() {
            sent.insert(format!("req-{n}"), o);
        }
    }
    // What the provider saw: placeholders in the same positions as the originals sent.
    let mut by_original: HashMap<String, String> = HashMap::new();
    let mut by_placeholder: HashMap<String, String> = HashMap::new();
    let records = two.mock.records();
    assert_eq!(records.len(), sent.len());
    for rec in &records {
        let body = rec.body_str();
        for o in ids.iter().chain(vpcs.iter()) {
            assert!(!body.contains(o.as_str()), "the provider saw an original: {body}");
        }
        let content = rec.json()["messages"][0]["content"].as_str().unwrap().to_string();
        let mut words = content.split_whitespace();
        let tag = words.next().unwrap();
        let originals = &sent[tag];
        let placeholders: Vec<&str> = words.collect();
        assert_eq!(placeholders.len(), originals.len(), "{content}");
        for (o, p) in originals.iter().zip(placeholders) {
            if let Some(prev) = by_original.insert(o.clone(), p.to_string()) {
                assert_eq!(prev, p, "one original, two placeholders");
            }
            if let Some(prev) = by_placeholder.insert(p.to_string(), o.clone()) {
                assert_eq!(&prev, o, "one placeholder, two originals");
            }
        }
    }
    let mut nums: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for p in by_placeholder.keys() {
        let (kind, n) = p.rsplit_once('_').unwrap();
        nums.entry(kind.to_string()).or_default().push(n.parse().unwrap());
    }
    assert_eq!(nums.keys().collect::<Vec<_>>(), ["AWS_EC2", "AWS_VPC"]);
    for (kind, mut n) in nums {
        n.sort();
        assert_eq!(
            n,
            (1..=n.len() as u64).collect::<Vec<_>>(),
            "{kind}: numbering not dense"
        );
    }
    // Ready on both, backend named.
    for gw in [&two.a, &two.b] {
        let r = get(&format!("http://{}/health/ready", gw.admin_addr)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["vault"], "redis");
    }
    assert_no_original("logs", &logs());
}

async fn get(url: &str) -> Resp {
    let req = http::Request::get(url)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    collect(client().request(req).await.unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_under_load_only_503_then_recovers() {
    let Some(mut server) = RedisServer::start() else { return };
    let mock = MockProvider::start().await.unwrap();
    let gw = Arc::new(gateway(mock.addr.port(), &server.url(), "").await);
    let proxy = gw.proxy_addr;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let slowest = Arc::new(std::sync::Mutex::new(Duration::ZERO));
    let mut load = Vec::new();
    for t in 0..4usize {
        let (stop, ok, refused, slowest) = (stop.clone(), ok.clone(), refused.clone(), slowest.clone());
        load.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && i < 5000 {
                i += 1;
                let text = format!(
                    "load {} in {} and {}",
                    ORIGINALS[0],
                    ORIGINALS[1],
                    instance_ids(40)[(t * 7 + i) % 40]
                );
                let started = Instant::now();
                let r = post(&format!("http://{proxy}/anthropic/v1/messages"), &body(&text)).await;
                let took = started.elapsed();
                match r.status {
                    200 => {
                        assert!(r.text().contains(ORIGINALS[0]), "{}", r.text());
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    503 => {
                        assert_eq!(r.json()["code"], "VAULT_UNAVAILABLE", "{}", r.text());
                        assert_no_original("503 body", &r.text());
                        refused.fetch_add(1, Ordering::Relaxed);
                        let mut s = slowest.lock().unwrap();
                        *s = (*s).max(took);
                    }
                    s => panic!("only 200 or 503 expected, got {s}: {}", r.text()),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ok_before = ok.load(Ordering::Relaxed);
    assert!(ok_before > 0, "no successful request before the outage");
    server.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let admin = gw.admin_addr;
    let ready = get(&format!("http://{admin}/health/ready")).await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert_eq!(ready.json()["code"], "VAULT_UNAVAILABLE");
    assert!(refused.load(Ordering::Relaxed) > 0, "no refusal while Redis was down");
    let m = get(&format!("http://{admin}/metrics")).await.text();
    assert_eq!(metric(&m, "maskgate_vault_breaker_open"), 1.0, "{m}");
    assert!(metric(&m, "maskgate_vault_breaker_trips_total") >= 1.0, "{m}");
    assert!(metric(&m, "maskgate_vault_breaker_refused_total") >= 1.0, "{m}");
    // Nothing to mask: served even while the vault is down.
    let r = post(&format!("http://{proxy}/anthropic/v1/messages"), &body("hello there")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let ok_during = ok.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        ok.load(Ordering::Relaxed),
        ok_during,
        "a masked request succeeded with Redis down"
    );
    server.restart();
    let back = Instant::now();
    loop {
        let r = post(
            &format!("http://{proxy}/anthropic/v1/messages"),
            &body(&format!("probe {}", ORIGINALS[0])),
        )
        .await;
        if r.status == 200 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "not recovered within 5 s of Redis coming back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovered = back.elapsed();
    let ready = get(&format!("http://{admin}/health/ready")).await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    assert!(ok.load(Ordering::Relaxed) > ok_during, "load did not resume");
    // The provider never received an original, before, during or after.
    for rec in mock.records() {
        assert_no_original("what the provider received", &rec.body_str());
    }
    let slowest = *slowest.lock().unwrap();
    assert!(slowest < Duration::from_millis(1500), "a refusal took {slowest:?}");
    eprintln!(
        "ok {} refused {} slowest refusal {slowest:?} recovered in {recovered:?}",
        ok.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed)
    );
    let metrics = get(&format!("http://{admin}/metrics")).await.text();
    assert!(
        metrics.contains("maskgate_vault_operations_total{op=\"assign\",result=\"error\"}"),
        "{metrics}"
    );
    // Recovered: the breaker is closed again; the trips stay counted; every assign's latency was observed.
    assert_eq!(metric(&metrics, "maskgate_vault_breaker_open"), 0.0, "{metrics}");
    assert!(
        metric(&metrics, "maskgate_vault_breaker_trips_total") >= 1.0,
        "{metrics}"
    );
    let assigns: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("maskgate_vault_operations_total{op=\"assign\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(
        metric(&metrics, "maskgate_vault_duration_seconds_count{op=\"assign\"}"),
        assigns,
        "{metrics}"
    );
    assert!(
        metrics.contains("maskgate_vault_duration_seconds_bucket{le=\"0.00032\",op=\"assign\"}"),
        "{metrics}"
    );
    assert_no_original("metrics", &metrics);
}

/// The value of one sample (`name` or `name{labels}`) in Prometheus text; panics when absent.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {name} in metrics:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_rate_limits_shared_across_gateways() {
    let Some(mut server) = RedisServer::start() else { return };
    // Stay clear of an hour boundary (fixed windows).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if now % 3600 > 3590 {
        tokio::time::sleep(Duration::from_secs(3600 - now % 3600 + 1)).await;
    }
    let mock = MockProvider::start().await.unwrap();
    let limit = "[rate_limit]\nhour = 5\nlimit_by = \"header\"\nheader_name = \"x-team\"\npolicy = \"redis\"\n";
    let extra = format!("{}\n{limit}", redis_vault_toml(&server.url(), ""));
    let cfg = |extra: &str| Config::from_toml(&config_toml(mock.addr.port(), "", extra)).unwrap();
    init();
    let a = maskgate_gateway::start(cfg(&extra), None).await.unwrap();
    let b = maskgate_gateway::start(cfg(&extra), None).await.unwrap();
    let mut statuses = Vec::new();
    for i in 0..10 {
        let gw = if i % 2 == 0 { &a } else { &b };
        let r = post_h(
            &format!("http://{}/anthropic/v1/messages", gw.proxy_addr),
            &[("x-team", "red")],
            &body("hi"),
        )
        .await;
        statuses.push(r.status);
        assert_eq!(r.headers["x-ratelimit-limit-hour"], "5");
        let remaining: u64 = r.headers["x-ratelimit-remaining-hour"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        if r.status == 200 {
            assert_eq!(remaining, 4 - i as u64, "remaining counts both gateways");
        } else {
            assert_eq!(r.status, 429, "{}", r.text());
            assert_eq!(remaining, 0);
            assert_eq!(r.json()["message"], "API rate limit exceeded");
            assert!(r.headers.contains_key("retry-after"));
            assert!(r.headers.contains_key("ratelimit-reset"));
        }
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429, 429, 429]);
    // Another key has its own budget.
    let r = post_h(
        &format!("http://{}/anthropic/v1/messages", b.proxy_addr),
        &[("x-team", "blue")],
        &body("hi"),
    )
    .await;
    assert_eq!(r.status, 200);
    // The header value never becomes a key name.
    let mut c = maskgate_vault::redis_client::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = maskgate_vault::redis_client::cmd("KEYS")
        .arg("*")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        !keys.is_empty() && keys.iter().all(|k| !k.contains("red") && !k.contains("blue")),
        "{keys:?}"
    );
    // Redis down: fault_tolerant (default) lets requests without identifiers through, counted.
    server.stop();
    let r = post_h(
        &format!("http://{}/anthropic/v1/messages", a.proxy_addr),
        &[("x-team", "red")],
        &body("hi"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let m = get(&format!("http://{}/metrics", a.admin_addr)).await.text();
    assert!(m.contains("maskgate_rate_limit_errors_total 1"), "{m}");
    // fault_tolerant = false: refused, JSON.
    let strict = format!(
        "{}\n{limit}fault_tolerant = false\n",
        redis_vault_toml(&server.url(), "")
    );
    let c = maskgate_gateway::start(cfg(&strict), None).await.unwrap();
    let r = post_h(
        &format!("http://{}/anthropic/v1/messages", c.proxy_addr),
        &[("x-team", "red")],
        &body("hi"),
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["code"], "RATE_LIMIT_UNAVAILABLE");
}

#[tokio::test]
async fn redis_config_errors_and_missing_key() {
    init();
    let mock_port = 9;
    // No key: refuses to start, saying what is missing.
    let toml = config_toml(
        mock_port,
        "",
        "[vault]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:1\"\nkey_file = \"/nonexistent/maskgate.key\"\n",
    );
    let cfg = Config::from_toml(&toml).unwrap();
    assert!(
        cfg.warnings().iter().any(|w| w.contains("vault.key")),
        "{:?}",
        cfg.warnings()
    );
    let e = maskgate_gateway::start(cfg, None).await.err().expect("refused");
    assert!(e.contains("vault.key") && e.contains("maskgate.key"), "{e}");
    // A malformed key file is an error at validation, without the key's text.
    let bad = std::env::temp_dir().join(format!("maskgate-bad-key-{}", std::process::id()));
    std::fs::write(&bad, "not-a-key-0123\n").unwrap();
    let e = Config::from_toml(&config_toml(
        mock_port,
        "",
        &format!(
            "[vault]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:1\"\nkey_file = \"{}\"\n",
            bad.display()
        ),
    ))
    .unwrap_err();
    assert!(e.0.starts_with("vault.key"), "{e}");
    assert!(!e.0.contains("not-a-key-0123"), "{e}");
    for (extra, key) in [
        ("[vault]\nbackend = \"redis\"\n", "vault.url"),
        ("[vault]\nbackend = \"redis\"\nurl = \"http://x\"\n", "vault.url"),
        (
            "[vault]\nbackend = \"redis\"\nurl = \"redis://x\"\nkey_prefix = \"a{b\"\n",
            "vault.key_prefix",
        ),
        ("[vault]\nbackend = \"redis\"\nurl = \"redis://x\"\nurll = 1\n", "urll"),
        ("[vault]\nurl = \"redis://x\"\n", "vault.url"),
        (
            "[vault]\nbackend = \"redis\"\nurl = \"redis://x\"\ntimeout = \"0s\"\n",
            "vault.timeout",
        ),
        (
            "[vault]\nbackend = \"redis\"\nurl = \"redis://x\"\nbreaker_failures = 0\n",
            "vault.breaker_failures",
        ),
        (
            "[vault]\nbackend = \"redis\"\nurl = \"rediss://x\"\nclient_cert_file = \"/c.pem\"\n",
            "vault.client_key_file",
        ),
        (
            "[vault]\nbackend = \"redis\"\nurl = \"rediss://x\"\nclient_key_file = \"/c.key\"\n",
            "vault.client_cert_file",
        ),
        (
            "[vault]\nbackend = \"redis\"\nurl = \"redis://x\"\nclient_cert_file = \"/c.pem\"\nclient_key_file = \"/k\"\n",
            "vault.client_cert_file",
        ),
        (
            "[vault]\nclient_cert_file = \"/c.pem\"\n",
            "vault.client_cert_file",
        ),
        (
            "[vault]\nbackend = \"redis\"\nurl = \"redis://x\"\ncluster = [\"redis://y\"]\n",
            "vault.cluster",
        ),
        ("[vault]\nbackend = \"redis\"\ncluster = []\n", "vault.cluster"),
        (
            "[vault]\nbackend = \"redis\"\ncluster = [\"redis://a\", \"rediss://b\"]\n",
            "vault.cluster",
        ),
        ("[vault]\nbackend = \"redis\"\ncluster = [\"http://a\"]\n", "vault.cluster[0]"),
        ("[vault]\ncluster = [\"redis://a\"]\n", "vault.cluster"),
        ("[rate_limit]\nminute = 1\npolicy = \"redis\"\n", "rate_limit.policy"),
        ("[rate_limit]\nminute = 1\npolicy = \"cluster\"\n", "rate_limit.policy"),
    ] {
        let e = Config::from_toml(&config_toml(mock_port, "", extra)).unwrap_err();
        assert!(e.0.contains(key), "{extra}: {e}");
    }
    // The admin API never shows a password from the URL.
    let toml = config_toml(
        mock_port,
        "",
        "[vault]\nbackend = \"redis\"\nurl = \"redis://app:hunter2-secret@127.0.0.1:1/0\"\n",
    );
    let cfg = Config::from_toml(&toml).unwrap();
    let shown = cfg.redacted().to_string();
    assert!(
        !shown.contains("hunter2-secret") && shown.contains("<redacted>"),
        "{shown}"
    );
}

/// PEM files of a CA, a Redis server certificate for localhost and a client certificate, in a fresh directory.
struct TlsFiles {
    dir: PathBuf,
    ca: String,
    server_cert: String,
    server_key: String,
}

fn tls_files() -> TlsFiles {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "maskgate redis CA");
    let ca = ca_params.clone().self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = rcgen::KeyPair::generate().unwrap();
    let mut client_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params.signed_by(&client_key, &issuer).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "maskgate-gw-redis-tls-{}-{}",
        std::process::id(),
        CALLS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("client.pem"), client.pem()).unwrap();
    std::fs::write(dir.join("client.key"), client_key.serialize_pem()).unwrap();
    TlsFiles {
        dir,
        ca: ca.pem(),
        server_cert: server.pem(),
        server_key: server_key.serialize_pem(),
    }
}

static CALLS: AtomicUsize = AtomicUsize::new(0);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_over_tls_with_private_ca_and_client_certificate() {
    let f = tls_files();
    // TLS only (no plain port), client certificates required.
    let Some(server) = RedisServer::start_tls(&f.server_cert, &f.server_key, &f.ca, true) else {
        return;
    };
    assert!(server.url().starts_with("rediss://localhost:"));
    let mock = MockProvider::start().await.unwrap();
    let tls = format!(
        "ca_file = \"{0}/ca.pem\"\nclient_cert_file = \"{0}/client.pem\"\nclient_key_file = \"{0}/client.key\"\n",
        f.dir.display()
    );
    let gw = gateway(mock.addr.port(), &server.url(), &tls).await;
    let r = post(
        &format!("http://{}/anthropic/v1/messages", gw.proxy_addr),
        &body(&sample_text()),
    )
    .await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), server.log());
    assert_all_originals("response", &r.text());
    let recs = mock.records();
    assert_eq!(recs.len(), 1);
    assert_masked(&recs[0]);
    let ready = get(&format!("http://{}/health/ready", gw.admin_addr)).await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    let m = get(&format!("http://{}/metrics", gw.admin_addr)).await.text();
    assert_eq!(metric(&m, "maskgate_vault_breaker_open"), 0.0, "{m}");
    assert_eq!(metric(&m, "maskgate_vault_breaker_trips_total"), 0.0, "{m}");
    // The mappings are in the TLS server (a second gateway on it gets the same placeholders).
    let gw2 = gateway(mock.addr.port(), &server.url(), &tls).await;
    let r2 = post(
        &format!("http://{}/anthropic/v1/messages", gw2.proxy_addr),
        &body(&sample_text()),
    )
    .await;
    assert_eq!(r2.status, 200, "{}", r2.text());
    assert_eq!(mock.records()[1].body_str(), recs[0].body_str());

    // Without the client certificate the server refuses the handshake: 503 in time, not ready, nothing sent.
    let no_cert = gateway(
        mock.addr.port(),
        &server.url(),
        &format!("ca_file = \"{}/ca.pem\"\n", f.dir.display()),
    )
    .await;
    let t = Instant::now();
    let r = post(
        &format!("http://{}/anthropic/v1/messages", no_cert.proxy_addr),
        &body(&sample_text()),
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["code"], "VAULT_UNAVAILABLE");
    assert!(t.elapsed() < Duration::from_millis(1500), "took {:?}", t.elapsed());
    let ready = get(&format!("http://{}/health/ready", no_cert.admin_addr)).await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert_eq!(mock.records().len(), 2);
    // The refusal is logged with its TLS reason, and no original.
    assert!(logs().contains("CertificateRequired"), "{}", logs());
    assert_no_original("logs", &logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_two_gateways() {
    let Some(cluster) = maskgate_vault::testing::RedisCluster::start(3) else {
        return;
    };
    let nodes: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let mock = MockProvider::start().await.unwrap();
    let toml = |seed: &str| {
        config_toml(
            mock.addr.port(),
            "vault_timeout = \"1s\"",
            &format!(
                "\n[vault]\nbackend = \"redis\"\ncluster = [{seed}]\nkey_file = \"{}\"\n",
                key_file().display()
            ),
        )
    };
    init();
    // One gateway knows every node, the other only one seed.
    let a = maskgate_gateway::start(Config::from_toml(&toml(&nodes.join(", "))).unwrap(), None)
        .await
        .unwrap();
    let b = maskgate_gateway::start(Config::from_toml(&toml(&nodes[2])).unwrap(), None)
        .await
        .unwrap();
    // Several tenants (sidecar-less: the tenant comes from the route default), and both gateways.
    for gw in [&a, &b, &a] {
        let r = post(
            &format!("http://{}/anthropic/v1/messages", gw.proxy_addr),
            &body(&sample_text()),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_all_originals("response", &r.text());
        let ready = get(&format!("http://{}/health/ready", gw.admin_addr)).await;
        assert_eq!(ready.status, 200, "{}", ready.text());
    }
    let recs = mock.records();
    assert_eq!(recs.len(), 3);
    for rec in &recs {
        assert_masked(rec);
        assert_eq!(
            rec.body_str(),
            recs[0].body_str(),
            "same placeholders from both gateways"
        );
    }
    let shown = get(&format!("http://{}/config", a.admin_addr)).await.text();
    assert!(shown.contains("cluster"), "{shown}");
}

/// A tenant-wide route on the Redis vault: a follow-up's answer quotes placeholders of an earlier request,
/// looked up in Redis while the stream runs. With Redis gone, the stream still completes, those placeholders
/// left in place (counted as misses), and the provider never sees an original.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_tenant_wide_stream_resolves_and_survives_redis_dying() {
    let Some(mut server) = RedisServer::start() else { return };
    let mock = MockProvider::start().await.unwrap();
    let route = format!(
        "\n[[routes]]\nhost = \"stateful.openai.test\"\npath_prefix = \"/stateful\"\nupstream = \
         \"http://api.openai.com\"\nconnect_address = \"127.0.0.1:{}\"\nresolve = \"tenant\"\n",
        mock.addr.port()
    );
    // The earlier requests go through another gateway: the follow-ups' gateway has nothing cached and must ask
    // Redis.
    let gw = gateway(mock.addr.port(), &server.url(), &route).await;
    let earlier = gateway(mock.addr.port(), &server.url(), &route).await;
    let url = format!("http://{}/stateful/v1/responses", gw.proxy_addr);
    let first_url = format!("http://{}/stateful/v1/responses", earlier.proxy_addr);
    let first = |id: &str| json!({"model": "m", "stream": true, "input": format!("first {id}")});
    let follow = json!({"model": "m", "stream": true, "input": "and now?", "previous_response_id": "resp_1"});
    let chunked = [("x-mock-chunk", "3")];

    let r = post_h(&first_url, &chunked, &first(ORIGINALS[0])).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post_h(&url, &chunked, &follow).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = stream_text(&r.text());
    assert!(
        text.starts_with(&format!("Earlier you said: first {}", ORIGINALS[0])),
        "{text}"
    );

    // A new identifier, then Redis dies while the follow-up streams (slowly): it completes unresolved.
    let r = post_h(&first_url, &chunked, &first(ORIGINALS[3])).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let slow = [("x-mock-chunk", "3"), ("x-mock-delay-ms", "40")];
    let started = Instant::now();
    let pending = tokio::spawn({
        let url = url.clone();
        let follow = follow.clone();
        async move { post_h(&url, &slow, &follow).await }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    server.stop();
    let r = pending.await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let body = r.text();
    assert!(
        body.contains("response.completed"),
        "the stream did not complete: {body}"
    );
    let text = stream_text(&body);
    assert!(text.starts_with("Earlier you said: first AWS_SG_"), "{text}");
    assert_no_original("unresolved follow-up", &text);
    for rec in gw_records(&mock) {
        assert_no_original("provider", &rec);
    }
    let metrics = get(&format!("http://{}/metrics", gw.admin_addr)).await.text();
    assert!(metric(&metrics, "maskgate_unmask_misses_total") >= 1.0, "{metrics}");
}

fn gw_records(mock: &MockProvider) -> Vec<String> {
    mock.records().iter().map(|r| r.body_str()).collect()
}
