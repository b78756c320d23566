//! The Redis backend against a real `redis-server` started on a free port by each test.
#![cfg(feature = "redis")]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maskgate_vault::redis_client::{self, AsyncCommands};
use maskgate_vault::testing::RedisServer;
use maskgate_vault::{Entry, Keyring, RedisVault, RedisVaultConfig, Vault, VaultError};

const K1: &str = "8f2a0c1b3d4e5f60718293a4b5c6d7e8f9011223344556677889aabbccddeeff";
const K2: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn vault(url: &str, keys: &str, tweak: impl FnOnce(&mut RedisVaultConfig)) -> RedisVault {
    let mut c = RedisVaultConfig {
        url: url.into(),
        ..Default::default()
    };
    tweak(&mut c);
    RedisVault::new(c, Arc::new(Keyring::parse(keys).unwrap())).unwrap()
}

fn e<'a>(prefix: &'a str, original: &'a str) -> Entry<'a> {
    Entry { prefix, original }
}

async fn raw(url: &str) -> redis_client::aio::MultiplexedConnection {
    redis_client::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Every key and every value (strings) in the server.
async fn dump(url: &str) -> Vec<(String, Vec<u8>)> {
    let mut c = raw(url).await;
    let keys: Vec<String> = redis_client::cmd("KEYS").arg("*").query_async(&mut c).await.unwrap();
    let mut out = Vec::new();
    for k in keys {
        let v: Option<Vec<u8>> = c.get(&k).await.unwrap();
        out.push((k, v.unwrap_or_default()));
    }
    out.sort();
    out
}

async fn command_calls(url: &str, cmd: &str) -> u64 {
    let mut c = raw(url).await;
    let info: String = redis_client::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut c)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn num(p: &str) -> u64 {
    p.rsplit('_').next().unwrap().parse().unwrap()
}

/// Encodings of a value that must never appear in Redis: itself, hex (both cases), base64 (standard and URL-safe,
/// with and without padding).
fn encodings(o: &str) -> Vec<String> {
    let hex: String = o.bytes().map(|b| format!("{b:02x}")).collect();
    let b64 = |alphabet: &[u8; 64], pad: bool| {
        let b = o.as_bytes();
        let mut s = String::new();
        for chunk in b.chunks(3) {
            let n = chunk.len();
            let v = (chunk[0] as u32) << 16
                | (*chunk.get(1).unwrap_or(&0) as u32) << 8
                | *chunk.get(2).unwrap_or(&0) as u32;
            for i in 0..4 {
                if i <= n {
                    s.push(alphabet[((v >> (18 - 6 * i)) & 63) as usize] as char);
                } else if pad {
                    s.push('=');
                }
            }
        }
        s
    };
    let std = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let url = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut v = vec![
        o.to_string(),
        hex.clone(),
        hex.to_uppercase(),
        b64(std, true),
        b64(std, false),
        b64(url, false),
    ];
    // Base64 of the value at any alignment inside a longer blob: the middle of the encoding is stable.
    for shift in 1..3 {
        let padded = format!("{}{o}", "\0".repeat(shift));
        let enc = {
            let b = padded.as_bytes();
            let mut s = String::new();
            for chunk in b.chunks(3) {
                let v = (chunk[0] as u32) << 16
                    | (*chunk.get(1).unwrap_or(&0) as u32) << 8
                    | *chunk.get(2).unwrap_or(&0) as u32;
                for i in 0..=chunk.len() {
                    s.push(std[((v >> (18 - 6 * i)) & 63) as usize] as char);
                }
            }
            s
        };
        if enc.len() > 8 {
            v.push(enc[4..enc.len() - 4].to_string());
        }
    }
    v
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_concurrent_vaults_agree_dense_no_duplicates() {
    let Some(server) = RedisServer::start() else { return };
    let url = server.url();
    let v1 = Arc::new(vault(&url, K1, |_| {}));
    let v2 = Arc::new(vault(&url, K1, |_| {}));
    let originals: Vec<String> = (0..60).map(|i| format!("i-{i:017x}")).collect();
    let vpcs: Vec<String> = (0..20).map(|i| format!("vpc-{i:017x}")).collect();
    let originals = Arc::new(originals);
    let vpcs = Arc::new(vpcs);
    // Load the script once per server (the first EVALSHA meets NOSCRIPT), in a tenant of its own.
    v1.assign("warm-up", &[e("AWS_EC2", "i-ffffffffffffffff0")])
        .await
        .unwrap();
    v2.assign("warm-up", &[e("AWS_EC2", "i-ffffffffffffffff0")])
        .await
        .unwrap();
    let before = command_calls(&url, "evalsha").await;
    let mut tasks = Vec::new();
    for t in 0..16usize {
        let v = if t % 2 == 0 { v1.clone() } else { v2.clone() };
        let (originals, vpcs) = (originals.clone(), vpcs.clone());
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for round in 0..8usize {
                // Overlapping windows of originals, in different orders, with duplicates inside a request.
                let start = (t * 7 + round * 5) % 50;
                let mut entries: Vec<Entry> = originals[start..start + 10].iter().map(|o| e("AWS_EC2", o)).collect();
                entries.push(e("AWS_VPC", &vpcs[(t + round) % 20]));
                entries.push(entries[0]);
                if t % 3 == 0 {
                    entries.reverse();
                }
                let out = v.assign("tenant-a", &entries).await.unwrap();
                assert_eq!(out.len(), entries.len());
                for (en, p) in entries.iter().zip(out) {
                    seen.push((en.prefix.to_string(), en.original.to_string(), p));
                }
            }
            seen
        }));
    }
    let mut by_original: HashMap<(String, String), String> = HashMap::new();
    let mut by_placeholder: HashMap<String, (String, String)> = HashMap::new();
    for t in tasks {
        for (prefix, o, p) in t.await.unwrap() {
            assert!(p.starts_with(&format!("{prefix}_")), "{p}");
            if let Some(prev) = by_original.insert((prefix.clone(), o.clone()), p.clone()) {
                assert_eq!(prev, p, "one original, two placeholders");
            }
            if let Some(prev) = by_placeholder.insert(p.clone(), (prefix.clone(), o.clone())) {
                assert_eq!(prev, (prefix, o), "one placeholder, two originals");
            }
        }
    }
    // Dense numbering per kind: 1..=N with no gap.
    let mut nums: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for p in by_placeholder.keys() {
        let prefix = p[..p.rfind('_').unwrap()].to_string();
        nums.entry(prefix).or_default().push(num(p));
    }
    for (prefix, mut n) in nums {
        n.sort();
        let expect: Vec<u64> = (1..=n.len() as u64).collect();
        assert_eq!(n, expect, "{prefix} numbering is not dense");
    }
    // One round trip (one EVALSHA) per assign call.
    let after = command_calls(&url, "evalsha").await;
    assert_eq!(after - before, 16 * 8, "one script call per assign");
    // Both vaults resolve each other's placeholders.
    let (p, (_, o)) = by_placeholder.iter().next().unwrap();
    assert_eq!(
        v2.resolve("tenant-a", &[p.as_str()]).await.unwrap(),
        vec![Some(o.clone())]
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_tenants_are_separate() {
    let Some(server) = RedisServer::start() else { return };
    let v = vault(&server.url(), K1, |c| c.cache_entries = 0);
    let a = v.assign("a", &[e("AWS_EC2", "i-aaaaaaaaaaaaaaaaa")]).await.unwrap();
    let b = v.assign("b", &[e("AWS_EC2", "i-bbbbbbbbbbbbbbbbb")]).await.unwrap();
    assert_eq!(a, ["AWS_EC2_001"]);
    assert_eq!(b, ["AWS_EC2_001"], "own numbering per tenant");
    assert_eq!(
        v.resolve("a", &["AWS_EC2_001"]).await.unwrap(),
        [Some("i-aaaaaaaaaaaaaaaaa".to_string())]
    );
    assert_eq!(
        v.resolve("b", &["AWS_EC2_001"]).await.unwrap(),
        [Some("i-bbbbbbbbbbbbbbbbb".to_string())]
    );
    assert_eq!(v.resolve("c", &["AWS_EC2_001"]).await.unwrap(), [None]);
    // The same original in another tenant is a new mapping there.
    let b2 = v.assign("b", &[e("AWS_EC2", "i-aaaaaaaaaaaaaaaaa")]).await.unwrap();
    assert_eq!(b2, ["AWS_EC2_002"]);
    // Copying tenant a's ciphertext into tenant b's reverse key does not make it resolvable there.
    let mut c = raw(&server.url()).await;
    let ka = format!("{}r:AWS_EC2_001", v.tenant_base("a"));
    let kb = format!("{}r:AWS_EC2_001", v.tenant_base("b"));
    let blob: Vec<u8> = c.get(&ka).await.unwrap();
    let _: () = c.set(&kb, blob).await.unwrap();
    assert_eq!(v.resolve("b", &["AWS_EC2_001"]).await.unwrap(), [None]);
    // Keys of each tenant share one hash tag (one Cluster slot), different per tenant.
    let keys = dump(&server.url()).await;
    let tags: HashSet<String> = keys
        .iter()
        .map(|(k, _)| k[k.find('{').unwrap()..=k.find('}').unwrap()].to_string())
        .collect();
    assert_eq!(tags.len(), 2, "{tags:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_scan_shows_no_original() {
    let Some(server) = RedisServer::start() else { return };
    let v = vault(&server.url(), K1, |_| {});
    let originals = [
        "i-0123456789abcdef0",
        "arn:aws:iam::123456789012:role/DeployRole",
        "10.0.1.25",
        "AKIAIOSFODNN7EXAMPLE",
        "123456789012",
        "my-very-private-bucket-name",
    ];
    let prefixes = [
        "AWS_EC2",
        "AWS_IAM_ROLE",
        "AWS_PRIVATE_IP",
        "AWS_ACCESS_KEY",
        "AWS_ACCOUNT",
        "AWS_S3_BUCKET",
    ];
    let entries: Vec<Entry> = prefixes.iter().zip(originals).map(|(p, o)| e(p, o)).collect();
    v.assign("tenant-with-secrets", &entries).await.unwrap();
    v.assign("other", &entries).await.unwrap();
    let mut c = raw(&server.url()).await;
    let _: () = v
        .rate_limit("10.0.1.25", &[(60, 10)], 1_000_000)
        .await
        .map(|_| ())
        .unwrap();
    let all = dump(&server.url()).await;
    assert!(all.len() > 2 * (2 * originals.len()), "{}", all.len());
    for (k, val) in &all {
        for o in originals {
            for enc in encodings(o) {
                assert!(!k.contains(&enc), "key {k} holds {o} ({enc})");
                assert!(!contains(val, enc.as_bytes()), "value of {k} holds {o} ({enc})");
            }
        }
        assert!(!k.contains("tenant-with-secrets"), "tenant names are hashed: {k}");
    }
    // And SCAN agrees with KEYS (the layout has nothing hidden elsewhere).
    let mut it: redis_client::AsyncIter<String> = c.scan().await.unwrap();
    let mut n = 0;
    while let Some(k) = it.next_item().await {
        k.unwrap();
        n += 1;
    }
    assert_eq!(n, all.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_key_rotation() {
    let Some(server) = RedisServer::start() else { return };
    let url = server.url();
    let old = vault(&url, K1, |c| c.cache_entries = 0);
    let a = old
        .assign(
            "t",
            &[e("AWS_EC2", "i-0000000000000000a"), e("AWS_EC2", "i-0000000000000000b")],
        )
        .await
        .unwrap();
    assert_eq!(a, ["AWS_EC2_001", "AWS_EC2_002"]);
    // Rotate: the new key first, the old one still listed.
    let rotated = vault(&url, &format!("{K2},{K1}"), |c| c.cache_entries = 0);
    let ring = Keyring::parse(&format!("{K2},{K1}")).unwrap();
    // Not yet used since the rotation: still resolves (old key decrypts).
    assert_eq!(
        rotated.resolve("t", &["AWS_EC2_002"]).await.unwrap(),
        [Some("i-0000000000000000b".to_string())]
    );
    // Used again: same placeholder, mapping moved to the new key.
    let r = rotated
        .assign("t", &[e("AWS_EC2", "i-0000000000000000a")])
        .await
        .unwrap();
    assert_eq!(r, ["AWS_EC2_001"]);
    let mut c = raw(&url).await;
    let base = rotated.tenant_base("t");
    let blob1: Vec<u8> = c.get(format!("{base}r:AWS_EC2_001")).await.unwrap();
    let blob2: Vec<u8> = c.get(format!("{base}r:AWS_EC2_002")).await.unwrap();
    assert_eq!(ring.blob_key(&blob1), Some(0), "re-encrypted with the current key");
    assert_eq!(
        ring.blob_key(&blob2),
        Some(1),
        "untouched mapping keeps the old key until used"
    );
    let fwd: Vec<String> = redis_client::cmd("KEYS")
        .arg(format!("{base}f:*"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(fwd.len(), 2, "{fwd:?}");
    assert_eq!(fwd.iter().filter(|k| k.contains(&ring.key_id(0))).count(), 1);
    // New values get new numbers as before.
    let n = rotated
        .assign("t", &[e("AWS_EC2", "i-0000000000000000c")])
        .await
        .unwrap();
    assert_eq!(n, ["AWS_EC2_003"]);
    // Once every mapping moved (here: by using it), the old key can go.
    rotated
        .assign("t", &[e("AWS_EC2", "i-0000000000000000b")])
        .await
        .unwrap();
    let only_new = vault(&url, K2, |c| c.cache_entries = 0);
    assert_eq!(
        only_new
            .resolve("t", &["AWS_EC2_001", "AWS_EC2_002", "AWS_EC2_003"])
            .await
            .unwrap(),
        [
            Some("i-0000000000000000a".to_string()),
            Some("i-0000000000000000b".to_string()),
            Some("i-0000000000000000c".to_string())
        ]
    );
    assert_eq!(
        only_new
            .assign("t", &[e("AWS_EC2", "i-0000000000000000b")])
            .await
            .unwrap(),
        ["AWS_EC2_002"]
    );
    // The old key alone cannot read what the new key wrote.
    assert_eq!(old.resolve("t", &["AWS_EC2_003"]).await.unwrap(), [None]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sliding_ttl_expiry() {
    let Some(server) = RedisServer::start() else { return };
    let v = vault(&server.url(), K1, |c| {
        c.ttl = Duration::from_secs(2);
        c.cache_entries = 0;
    });
    let o = "i-0000000000000dead";
    assert_eq!(v.assign("t", &[e("AWS_EC2", o)]).await.unwrap(), ["AWS_EC2_001"]);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    // Renewed by use.
    assert_eq!(v.assign("t", &[e("AWS_EC2", o)]).await.unwrap(), ["AWS_EC2_001"]);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(v.resolve("t", &["AWS_EC2_001"]).await.unwrap(), [Some(o.to_string())]);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(v.resolve("t", &["AWS_EC2_001"]).await.unwrap(), [None], "expired");
    // A number is never reused: the original comes back with a new one.
    assert_eq!(v.assign("t", &[e("AWS_EC2", o)]).await.unwrap(), ["AWS_EC2_002"]);
    // Mapping keys carry a TTL; the counter does not (so numbers are never reused).
    let mut c = raw(&server.url()).await;
    let base = v.tenant_base("t");
    let ttl: i64 = c.ttl(format!("{base}r:AWS_EC2_002")).await.unwrap();
    assert!((1..=2).contains(&ttl), "{ttl}");
    let ttl: i64 = c.ttl(format!("{base}n:AWS_EC2")).await.unwrap();
    assert_eq!(ttl, -1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lost_counter_never_reissues_a_live_number() {
    let Some(server) = RedisServer::start() else { return };
    let v = vault(&server.url(), K1, |c| c.cache_entries = 0);
    v.assign(
        "t",
        &[e("AWS_EC2", "i-1111111111111111a"), e("AWS_EC2", "i-1111111111111111b")],
    )
    .await
    .unwrap();
    let mut c = raw(&server.url()).await;
    let _: () = c.del(format!("{}n:AWS_EC2", v.tenant_base("t"))).await.unwrap();
    let p = v.assign("t", &[e("AWS_EC2", "i-1111111111111111c")]).await.unwrap();
    assert_eq!(p, ["AWS_EC2_003"]);
    assert_eq!(
        v.resolve("t", &["AWS_EC2_001"]).await.unwrap(),
        [Some("i-1111111111111111a".to_string())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_resolve_one_round_trip_and_cache() {
    let Some(server) = RedisServer::start() else { return };
    let url = server.url();
    let writer = vault(&url, K1, |_| {});
    let originals: Vec<String> = (0..50).map(|i| format!("i-{i:017x}")).collect();
    let entries: Vec<Entry> = originals.iter().map(|o| e("AWS_EC2", o)).collect();
    let ps = writer.assign("t", &entries).await.unwrap();
    let reader = vault(&url, K1, |c| c.cache_entries = 20);
    let mut asked: Vec<&str> = ps.iter().map(String::as_str).collect();
    asked.push("AWS_EC2_999");
    asked.push("not a placeholder");
    let before = command_calls(&url, "mget").await;
    let got = reader.resolve("t", &asked).await.unwrap();
    assert_eq!(command_calls(&url, "mget").await - before, 1, "one MGET for all");
    for (i, o) in originals.iter().enumerate() {
        assert_eq!(got[i].as_deref(), Some(o.as_str()));
    }
    assert_eq!(got[50], None);
    assert_eq!(got[51], None);
    assert!(reader.cache_len() <= 20, "bounded: {}", reader.cache_len());
    // Recently resolved ones come from the cache: no round trip.
    let before = command_calls(&url, "mget").await;
    let again = reader.resolve("t", &[ps[49].as_str()]).await.unwrap();
    assert_eq!(again, [Some(originals[49].clone())]);
    assert_eq!(command_calls(&url, "mget").await, before);
    // The writer's own assignments are cached too.
    let before = command_calls(&url, "mget").await;
    assert_eq!(
        writer.resolve("t", &[ps[0].as_str()]).await.unwrap(),
        [Some(originals[0].clone())]
    );
    assert_eq!(command_calls(&url, "mget").await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_closed_fast_and_recovers() {
    let Some(mut server) = RedisServer::start() else { return };
    let v = vault(&server.url(), K1, |c| {
        c.timeout = Duration::from_millis(300);
        c.connect_timeout = Duration::from_millis(300);
        c.breaker_failures = 2;
        c.breaker_cooldown = Duration::from_millis(500);
    });
    assert_eq!(
        v.assign("t", &[e("AWS_EC2", "i-2222222222222222a")]).await.unwrap(),
        ["AWS_EC2_001"]
    );
    v.ping().await.unwrap();
    server.stop();
    for _ in 0..2 {
        let t = Instant::now();
        let r = v.assign("t", &[e("AWS_EC2", "i-2222222222222222b")]).await;
        assert!(matches!(r, Err(VaultError::Unavailable(_))), "{r:?}");
        assert!(t.elapsed() < Duration::from_millis(1000), "{:?}", t.elapsed());
        if let Err(VaultError::Unavailable(why)) = r {
            assert!(!why.contains("i-2222"), "{why}");
        }
    }
    assert!(v.breaker_open());
    let t = Instant::now();
    assert!(v.assign("t", &[e("AWS_EC2", "i-2222222222222222b")]).await.is_err());
    assert!(v.ping().await.is_err());
    assert!(
        t.elapsed() < Duration::from_millis(200),
        "open breaker answers at once: {:?}",
        t.elapsed()
    );
    server.restart();
    let back = Instant::now();
    loop {
        if v.ping().await.is_ok() {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(5), "not recovered within 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!v.breaker_open());
    // The restarted server is empty: allocation starts again, and works.
    assert_eq!(
        v.assign("t", &[e("AWS_EC2", "i-2222222222222222b")]).await.unwrap(),
        ["AWS_EC2_001"]
    );
    eprintln!("recovered in {:?}", back.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_start_then_up() {
    let Some(mut server) = RedisServer::start() else { return };
    server.stop();
    let v = vault(&server.url(), K1, |c| c.breaker_cooldown = Duration::from_millis(200));
    assert!(v.ping().await.is_err());
    server.restart();
    let t = Instant::now();
    while v.ping().await.is_err() {
        assert!(t.elapsed() < Duration::from_secs(5), "not recovered within 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        v.assign("t", &[e("AWS_EC2", "i-3333333333333333a")]).await.unwrap(),
        ["AWS_EC2_001"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_password_auth() {
    let pw = "correct-horse-battery-staple";
    let Some(server) = RedisServer::start_with(&["--requirepass", pw]) else {
        return;
    };
    let ok = vault(&server.url(), K1, |c| c.password = Some(pw.into()));
    ok.ping().await.unwrap();
    let bad = vault(&server.url(), K1, |c| c.password = Some("wrong-password-value".into()));
    match bad.ping().await {
        Err(VaultError::Unavailable(why)) => assert!(!why.contains("wrong-password-value"), "{why}"),
        r => panic!("{r:?}"),
    }
    let none = vault(&server.url(), K1, |_| {});
    assert!(none.assign("t", &[e("AWS_EC2", "i-4444444444444444a")]).await.is_err());
    // Password in the URL works too, and Debug never shows it.
    let in_url = vault(&format!("redis://:{pw}@127.0.0.1:{}", server.port), K1, |_| {});
    in_url.ping().await.unwrap();
    assert!(!format!("{in_url:?}").contains(pw));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_rate_limit_shared() {
    let Some(server) = RedisServer::start() else { return };
    let v1 = vault(&server.url(), K1, |_| {});
    let v2 = vault(&server.url(), K1, |_| {});
    let now = 1_000_040; // 20 s into a minute
    let mut allowed = 0;
    for i in 0..10 {
        let v = if i % 2 == 0 { &v1 } else { &v2 };
        let (ok, counts) = v.rate_limit("client-1", &[(1, 100), (60, 5)], now).await.unwrap();
        if ok {
            allowed += 1;
            assert_eq!(counts[1], allowed);
        } else {
            assert_eq!(counts[1], 5);
        }
    }
    assert_eq!(allowed, 5, "one shared budget across both");
    let (ok, _) = v1.rate_limit("client-2", &[(60, 5)], now).await.unwrap();
    assert!(ok, "another key has its own budget");
    let (ok, counts) = v2.rate_limit("client-1", &[(60, 5)], now + 40).await.unwrap();
    assert!(ok && counts == [1], "the next window starts afresh");
}

/// A CA and leaves signed by it (PEM): the server's for `names`, and a client's.
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn pki(name: &str, names: &[&str]) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, name);
    let ca = ca_params.clone().self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let server_key = rcgen::KeyPair::generate().unwrap();
    // "127.0.0.1" becomes an IP address SAN (rustls checks an IP URL against those, not DNS names).
    let server = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = rcgen::KeyPair::generate().unwrap();
    let mut client_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "maskgate gateway");
    client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params.signed_by(&client_key, &issuer).unwrap();
    Pki {
        ca: ca.pem(),
        server_cert: server.pem(),
        server_key: server_key.serialize_pem(),
        client_cert: client.pem(),
        client_key: client_key.serialize_pem(),
    }
}

/// Short timeouts, so a failure shows as a quick `Unavailable` (and a hang as a test failure).
fn tls_vault(url: &str, tweak: impl FnOnce(&mut RedisVaultConfig)) -> RedisVault {
    vault(url, K1, |c| {
        c.timeout = Duration::from_millis(500);
        c.connect_timeout = Duration::from_millis(500);
        c.breaker_failures = 100;
        tweak(c);
    })
}

/// Calls that must fail: `Unavailable`, within the configured timeout (plus scheduling slack), never a hang.
async fn fails_in_time(v: &RedisVault, what: &str, reason: &str) {
    let t = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        v.assign("t", &[e("AWS_EC2", "i-5555555555555555f")]),
    )
    .await
    .unwrap_or_else(|_| panic!("{what}: hung (> 5 s)"));
    assert!(matches!(r, Err(VaultError::Unavailable(_))), "{what}: {r:?}");
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{what}: took {:?}",
        t.elapsed()
    );
    if let Err(VaultError::Unavailable(why)) = r {
        assert!(!why.contains("i-5555"), "{why}");
        assert!(why.contains(reason), "{what}: {why}");
        eprintln!("{what}: refused in {:?} ({why})", t.elapsed());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_tls_with_private_ca() {
    let p = pki("maskgate redis test CA", &["localhost", "127.0.0.1"]);
    let Some(server) = RedisServer::start_tls(&p.server_cert, &p.server_key, &p.ca, false) else {
        return;
    };
    assert!(server.url().starts_with("rediss://localhost:"));
    let ca = Some(p.ca.clone().into_bytes());
    // By name and by IP (the certificate has both SANs); the whole vault works over TLS.
    for url in [server.url(), format!("rediss://127.0.0.1:{}", server.port)] {
        let v = tls_vault(&url, |c| c.ca_pem = ca.clone());
        v.ping()
            .await
            .unwrap_or_else(|err| panic!("{url}: {err:?}\n{}", server.log()));
        let ps = v
            .assign(
                "t",
                &[e("AWS_EC2", "i-5555555555555555a"), e("AWS_ACCOUNT", "555555555555")],
            )
            .await
            .unwrap();
        let fresh = tls_vault(&url, |c| c.ca_pem = ca.clone());
        assert_eq!(
            fresh.resolve("t", &[ps[0].as_str(), ps[1].as_str()]).await.unwrap(),
            [
                Some("i-5555555555555555a".to_string()),
                Some("555555555555".to_string())
            ]
        );
    }
    // The server's certificate is checked: system roots only, or another CA, refuse it, in time.
    fails_in_time(&tls_vault(&server.url(), |_| {}), "system roots", "UnknownIssuer").await;
    let other = pki("another CA", &["localhost"]);
    fails_in_time(
        &tls_vault(&server.url(), |c| c.ca_pem = Some(other.ca.into_bytes())),
        "another CA",
        "UnknownIssuer",
    )
    .await;
    // Plain TCP is off on a TLS-only server; a plain client fails in time too.
    fails_in_time(
        &tls_vault(&format!("redis://127.0.0.1:{}", server.port), |_| {}),
        "plain to TLS",
        "redis:",
    )
    .await;
    // And TLS to a plain server (it never answers a ClientHello): bounded by the timeouts, not a hang.
    let Some(plain) = RedisServer::start() else { return };
    fails_in_time(
        &tls_vault(&format!("rediss://localhost:{}", plain.port), |c| c.ca_pem = ca.clone()),
        "TLS to plain",
        "timeout",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_mtls_client_certificate() {
    let p = pki("maskgate redis mTLS CA", &["localhost"]);
    let Some(server) = RedisServer::start_tls(&p.server_cert, &p.server_key, &p.ca, true) else {
        return;
    };
    let ca = Some(p.ca.clone().into_bytes());
    fails_in_time(
        &tls_vault(&server.url(), |c| c.ca_pem = ca.clone()),
        "no client certificate",
        "CertificateRequired",
    )
    .await;
    let v = tls_vault(&server.url(), |c| {
        c.ca_pem = ca.clone();
        c.client_cert_pem = Some(p.client_cert.clone().into_bytes());
        c.client_key_pem = Some(p.client_key.clone().into_bytes());
    });
    v.ping().await.unwrap_or_else(|err| panic!("{err:?}\n{}", server.log()));
    assert_eq!(
        v.assign("t", &[e("AWS_EC2", "i-5555555555555555b")]).await.unwrap(),
        ["AWS_EC2_001"]
    );
    assert!(!format!("{:?}", v.config()).contains("PRIVATE KEY"));
    // This server's certificate names only localhost: by IP, the name check refuses it.
    let by_ip = tls_vault(&format!("rediss://127.0.0.1:{}", server.port), |c| {
        c.ca_pem = ca.clone();
        c.client_cert_pem = Some(p.client_cert.clone().into_bytes());
        c.client_key_pem = Some(p.client_key.clone().into_bytes());
    });
    fails_in_time(&by_ip, "name not in the certificate", "not valid for name").await;
    // A certificate from another CA is refused by the server.
    let other = pki("another CA", &["localhost"]);
    let stranger = tls_vault(&server.url(), |c| {
        c.ca_pem = ca.clone();
        c.client_cert_pem = Some(other.client_cert.into_bytes());
        c.client_key_pem = Some(other.client_key.into_bytes());
    });
    fails_in_time(&stranger, "client certificate of another CA", "UnknownCA").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_three_primaries() {
    let Some(cluster) = maskgate_vault::testing::RedisCluster::start(3) else {
        return;
    };
    let nodes = cluster.urls();
    // Seeded with one node only: the client discovers the others from the slot map.
    let a = vault("redis://unused", K1, |c| c.cluster = vec![nodes[1].clone()]);
    let b = vault("redis://unused", K1, |c| c.cluster = nodes.clone());
    a.ping().await.unwrap();
    // Many tenants, so their hash tags land on every node; two vaults (replicas) interleaved.
    let tenants: Vec<String> = (0..24).map(|i| format!("tenant-{i}")).collect();
    let mut first: HashMap<(String, String), String> = HashMap::new();
    for round in 0..3 {
        for (i, t) in tenants.iter().enumerate() {
            let v = if (i + round) % 2 == 0 { &a } else { &b };
            let originals: Vec<String> = (0..4).map(|k| format!("i-{:017x}", 0x5000 + k + round)).collect();
            let entries: Vec<Entry> = originals.iter().map(|o| e("AWS_EC2", o)).collect();
            let ps = v.assign(t, &entries).await.unwrap();
            for (o, p) in originals.iter().zip(&ps) {
                if let Some(prev) = first.insert((t.clone(), o.clone()), p.clone()) {
                    assert_eq!(&prev, p, "{t}: {o} got two placeholders");
                }
            }
        }
    }
    // Dense per tenant: rounds overlap (0x5000+round ..): 6 distinct originals per tenant -> 001..006.
    for t in &tenants {
        let mut nums: Vec<u64> = first
            .iter()
            .filter(|((tt, _), _)| tt == t)
            .map(|(_, p)| num(p))
            .collect();
        nums.sort();
        assert_eq!(nums, (1..=6).collect::<Vec<_>>(), "{t}");
    }
    // Resolution from the other replica, and shared rate limits.
    let (t, o) = first.keys().next().unwrap().clone();
    let p = first[&(t.clone(), o.clone())].clone();
    assert_eq!(b.resolve(&t, &[p.as_str()]).await.unwrap(), [Some(o.clone())]);
    assert_eq!(a.resolve(&t, &[p.as_str()]).await.unwrap(), [Some(o)]);
    let (ok1, _) = a.rate_limit("k", &[(60, 1)], 1_000_020).await.unwrap();
    let (ok2, _) = b.rate_limit("k", &[(60, 1)], 1_000_020).await.unwrap();
    assert!(ok1 && !ok2, "one budget across both replicas");
    // Keys are spread over the nodes, each tenant's keys on one node only (one hash tag, one slot).
    let mut nodes_with_keys = 0;
    let mut tag_node: HashMap<String, usize> = HashMap::new();
    for (n, url) in nodes.iter().enumerate() {
        let keys = dump(url).await;
        if !keys.is_empty() {
            nodes_with_keys += 1;
        }
        for (k, v) in keys {
            for o in first.keys().map(|(_, o)| o) {
                assert!(!contains(k.as_bytes(), o.as_bytes()) && !contains(&v, o.as_bytes()));
            }
            let tag = k[k.find('{').unwrap()..=k.find('}').unwrap()].to_string();
            if let Some(prev) = tag_node.insert(tag.clone(), n) {
                assert_eq!(prev, n, "keys of {tag} on two nodes");
            }
        }
    }
    assert!(nodes_with_keys >= 2, "24 tenants all on one node?");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_node_down_fails_closed_then_recovers() {
    let Some(mut cluster) = maskgate_vault::testing::RedisCluster::start(3) else {
        return;
    };
    let v = vault("redis://unused", K1, |c| {
        c.cluster = cluster.urls();
        c.timeout = Duration::from_millis(400);
        c.connect_timeout = Duration::from_millis(300);
        c.breaker_failures = 3;
        c.breaker_cooldown = Duration::from_millis(300);
    });
    let tenants: Vec<String> = (0..12).map(|i| format!("tenant-{i}")).collect();
    for t in &tenants {
        v.assign(t, &[e("AWS_EC2", "i-6666666666666666a")]).await.unwrap();
    }
    cluster.nodes[0].stop();
    // Every call ends in time: placeholders or Unavailable, never a hang, never an original in the error. Once
    // the cluster notices (node timeout 2 s, full coverage required), every tenant is refused.
    let t0 = Instant::now();
    let mut refused = 0;
    while t0.elapsed() < Duration::from_secs(4) {
        for t in &tenants {
            let started = Instant::now();
            let r = v.assign(t, &[e("AWS_EC2", "i-6666666666666666b")]).await;
            assert!(
                started.elapsed() < Duration::from_millis(1500),
                "took {:?}",
                started.elapsed()
            );
            if let Err(err) = r {
                assert!(matches!(err, VaultError::Unavailable(_)), "{err:?}");
                assert!(!format!("{err:?}").contains("i-6666"), "{err:?}");
                refused += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused > 0, "a dead primary went unnoticed");
    cluster.nodes[0].restart();
    let back = Instant::now();
    loop {
        let mut ok = 0;
        for t in &tenants {
            if v.assign(t, &[e("AWS_EC2", "i-6666666666666666c")]).await.is_ok() {
                ok += 1;
            }
        }
        if ok == tenants.len() {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(15),
            "cluster not back within 15 s ({ok} ok)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("refused {refused}, recovered in {:?}", back.elapsed());
}

/// The harness behind the restart tests: a restarted server's port is below the ephemeral range (no socket of the
/// parallel suite is handed it while the server is down), and a restart onto a port that something else took
/// fails loudly instead of passing for a server that never came back.
#[test]
fn redis_restart_onto_a_taken_port_fails_loudly() {
    let Some(mut server) = RedisServer::start() else { return };
    let low = maskgate_vault::testing::ephemeral_ports_start();
    assert!(server.port < low, "port {} is in the ephemeral range", server.port);
    server.stop();
    let thief = std::net::TcpListener::bind(("127.0.0.1", server.port)).expect("the freed port");
    let restarted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server.restart()));
    let why = *restarted
        .expect_err("restart onto a taken port")
        .downcast::<String>()
        .unwrap();
    assert!(
        why.contains("exited") && why.contains("Address already in use"),
        "{why}"
    );
    drop(thief);
}
