//! Assign latency, embedded vs Redis: `cargo run -p maskgate-vault --features redis --example assign_latency`.
//! Starts its own `redis-server` on a free port (loopback). Each request assigns 6 values (4 already mapped,
//! 2 new), like a chat turn that repeats earlier identifiers and adds a few. Prints p50/p99/max per backend,
//! sequential and with 16 concurrent callers. Fails (exit 1) if any call fails.

use std::sync::Arc;
use std::time::{Duration, Instant};

use maskgate_vault::testing::RedisServer;
use maskgate_vault::{Entry, Keyring, MemoryVault, MemoryVaultConfig, RedisVault, RedisVaultConfig, Vault};

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn run(name: &'static str, v: Arc<dyn Vault>, requests: usize, concurrency: usize) {
    let per_task = requests / concurrency;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let v = v.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_task);
            for i in 0..per_task {
                let n = t * per_task + i;
                let o: Vec<String> = (0..4)
                    .map(|k| format!("i-{:017x}", (n + k) % 500))
                    .chain((0..2).map(|k| format!("vpc-{:017x}", n * 2 + k)))
                    .collect();
                let entries: Vec<Entry> = o
                    .iter()
                    .map(|x| Entry {
                        prefix: if x.starts_with("i-") { "AWS_EC2" } else { "AWS_VPC" },
                        original: x,
                    })
                    .collect();
                let s = Instant::now();
                let r = v.assign("bench", &entries).await;
                lat.push(s.elapsed());
                if r.map(|p| p.len()) != Ok(6) {
                    eprintln!("{name}: assign failed");
                    std::process::exit(1);
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let wall = started.elapsed();
    let n = all.len();
    println!(
        "| {name} | {concurrency} | {n} | {:.0} | {:?} | {:?} | {:?} |",
        n as f64 / wall.as_secs_f64(),
        pct(&mut all, 0.50),
        pct(&mut all, 0.99),
        pct(&mut all, 1.0),
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(server) = RedisServer::start() else {
        std::process::exit(1)
    };
    let embedded: Arc<dyn Vault> = Arc::new(MemoryVault::new(MemoryVaultConfig::default()));
    let redis: Arc<dyn Vault> = Arc::new(
        RedisVault::new(
            RedisVaultConfig {
                url: server.url(),
                ..Default::default()
            },
            Arc::new(Keyring::parse(KEY).unwrap()),
        )
        .unwrap(),
    );
    // Warm up (connection, script load).
    run("warm-up", redis.clone(), 200, 1).await;
    println!("| backend | concurrent callers | assigns | assigns/s | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|---|");
    for c in [1, 16] {
        run("embedded", embedded.clone(), 20_000, c).await;
        run("redis", redis.clone(), 20_000, c).await;
    }
    drop(server);
}
