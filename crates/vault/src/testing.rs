//! Test support: a real `redis-server` on a free port, killed on drop. Used by this crate's tests and the
//! gateway's. Not part of the product.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child process: `--save '' --appendonly no`, bound to 127.0.0.1 on a free port.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    /// TLS only (`--port 0 --tls-port PORT`), certificate files in `dir`.
    tls: bool,
    /// With TLS: clients must present a certificate signed by the CA (`--tls-auth-clients yes`).
    tls_auth_clients: bool,
}

/// What `redis-server` logs once it listens (Redis 6 and 7).
const READY: &str = "Ready to accept connections";

/// The binary, if installed (`REDIS_SERVER` overrides the path).
fn binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("REDIS_SERVER") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join("redis-server"))
        .find(|p| p.is_file())
}

/// A loopback port free right now (for servers started by tests and benchmarks), never one this process was given
/// before: the kernel may hand the same port to two binds of port 0 in a row once the first socket is closed, and
/// a test that asks for five ports then started two servers on one (the second failed with "address in use",
/// and the first answered the readiness probe meant for it).
pub fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = l.local_addr().expect("local addr").port();
        if first_time(port) {
            return port;
        }
    }
}

/// True the first time `port` is asked about in this process.
fn first_time(port: u16) -> bool {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port)
}

/// The first port of the kernel's ephemeral range (Linux's default, 32768, when it cannot be read).
pub fn ephemeral_ports_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768)
}

/// A loopback port free right now and below the kernel's ephemeral range, for a server that a test stops and
/// starts again on the same port. A port from the ephemeral range ([`free_port`]) can be handed, while that
/// server is down, to any socket of the parallel suite that binds port 0 or connects out; the restarted server
/// then cannot listen. Ports below the range are only ever taken by servers that ask for them by number.
pub fn free_port_below_ephemeral() -> u16 {
    let low = ephemeral_ports_start();
    let span = 12_000u16.min(low.saturating_sub(1024));
    // Where to start looking: differs between the processes of a parallel run and between calls.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        ^ std::process::id().wrapping_mul(2_654_435_761);
    for i in 0..u32::from(span) {
        let port = low - 1 - ((seed.wrapping_add(i.wrapping_mul(7919))) % u32::from(span)) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() && first_time(port) {
            return port;
        }
    }
    panic!("no free loopback port in {}..{low}", low - span);
}

impl RedisServer {
    /// Starts a server, or returns `None` after a loud message when `redis-server` is not installed locally.
    /// Under CI (`CI` set) a missing binary is a failure, not a skip: `scripts/setup-test-env.sh` installs it.
    pub fn start() -> Option<RedisServer> {
        Self::start_with(&[])
    }

    /// Same, with extra `redis-server` arguments (e.g. `["--requirepass", "x"]`).
    pub fn start_with(extra: &[&str]) -> Option<RedisServer> {
        let mut s = Self::prepare(extra)?;
        s.spawn();
        Some(s)
    }

    fn prepare(extra: &[&str]) -> Option<RedisServer> {
        if binary().is_none() {
            let msg = "redis-server is not installed: Redis tests SKIPPED (apt-get install -y redis-server, or run \
                       scripts/setup-test-env.sh)";
            if std::env::var_os("CI").is_some() {
                panic!("{msg}; under CI this is a failure");
            }
            eprintln!("\n!!!!!!!!!! {msg} !!!!!!!!!!\n");
            return None;
        }
        let port = free_port_below_ephemeral();
        let dir = std::env::temp_dir().join(format!("maskgate-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let s = RedisServer {
            child: None,
            port,
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            tls: false,
            tls_auth_clients: false,
        };
        Some(s)
    }

    /// A TLS-only server (`--port 0 --tls-port PORT`, so `rediss://localhost:PORT`) with this certificate, key
    /// and CA (PEM). With `auth_clients`, clients must present a certificate signed by that CA (mTLS); otherwise
    /// they are not asked for one.
    pub fn start_tls(cert_pem: &str, key_pem: &str, ca_pem: &str, auth_clients: bool) -> Option<RedisServer> {
        let mut s = Self::prepare(&[])?;
        std::fs::write(s.dir.join("cert.pem"), cert_pem).expect("write cert");
        std::fs::write(s.dir.join("key.pem"), key_pem).expect("write key");
        std::fs::write(s.dir.join("ca.pem"), ca_pem).expect("write ca");
        s.tls = true;
        s.tls_auth_clients = auth_clients;
        s.spawn();
        Some(s)
    }

    fn spawn(&mut self) {
        let bin = binary().expect("redis-server present");
        // The log is appended to across restarts: this start is ready at one more line than now.
        let ready_before = self.log().matches(READY).count() + 1;
        let mut cmd = Command::new(bin);
        if self.tls {
            // Plain TCP off: a client that forgot TLS must fail, not silently talk in clear.
            cmd.args(["--port", "0", "--tls-port"]).arg(self.port.to_string());
            cmd.arg("--tls-cert-file").arg(self.dir.join("cert.pem"));
            cmd.arg("--tls-key-file").arg(self.dir.join("key.pem"));
            cmd.arg("--tls-ca-cert-file").arg(self.dir.join("ca.pem"));
            cmd.args(["--tls-auth-clients", if self.tls_auth_clients { "yes" } else { "no" }]);
        } else {
            cmd.arg("--port").arg(self.port.to_string());
        }
        let child = cmd
            .args([
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.join("redis.log"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        // Ready when this server says so in its log and accepts connections. Accepting alone could be another
        // process on the port (this server then exits: caught below, with its log).
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.log().matches(READY).count() < ready_before
            || TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err()
        {
            // Exited (bad option, a build without TLS, port taken): say why instead of waiting.
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("redis-server exited ({status}) before listening:\n{}", self.log());
            }
            if Instant::now() > deadline {
                panic!(
                    "redis-server did not listen on port {} within 10 s:\n{}",
                    self.port,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True for a TLS-only server.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    pub fn url(&self) -> String {
        if self.tls {
            format!("rediss://localhost:{}", self.port)
        } else {
            format!("redis://127.0.0.1:{}", self.port)
        }
    }

    /// Kills the server (SIGKILL: like a crash); its data is gone.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (empty).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// What the server printed (for failing tests).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

/// A Redis Cluster of `n` primaries (no replicas), each a [`RedisServer`] with `--cluster-enabled yes`, joined
/// with `redis-cli --cluster create` and waited for until `cluster_state:ok`.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// `None` (after a loud message) when redis-server is not installed, like [`RedisServer::start`].
    pub fn start(n: usize) -> Option<RedisCluster> {
        let mut nodes = Vec::new();
        for _ in 0..n {
            // The cluster bus port must be free too: pick it explicitly (`cluster-port`, Redis 7).
            let bus = free_port().to_string();
            let node = RedisServer::start_with(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
                "--cluster-port",
                &bus,
            ])?;
            nodes.push(node);
        }
        let cli = binary()?.with_file_name("redis-cli");
        let addrs: Vec<String> = nodes.iter().map(|s| format!("127.0.0.1:{}", s.port)).collect();
        let out = Command::new(&cli)
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &nodes {
            loop {
                let info = Command::new(&cli)
                    .args(["-p", &node.port.to_string(), "cluster", "info"])
                    .output()
                    .expect("redis-cli cluster info");
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "cluster not ok within 20 s");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Some(RedisCluster { nodes })
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every port handed out is recorded, so the kernel's answer is refused if it comes again; and a process is
    /// never given the same port twice, whichever function it asks.
    #[test]
    fn ports_are_never_given_twice() {
        let p = free_port();
        assert!(!first_time(p), "free_port records {p}");
        let q = free_port_below_ephemeral();
        assert!(!first_time(q), "free_port_below_ephemeral records {q}");
        let mut ports: Vec<u16> = (0..300).map(|_| free_port()).collect();
        ports.extend((0..20).map(|_| free_port_below_ephemeral()));
        ports.extend([p, q]);
        let n = ports.len();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), n);
    }
}
