//! The seed's transparent flow, end to end, in network namespaces (needs root, `ip`, `iptables`, `curl`,
//! `setpriv` and the SDK venv of `scripts/setup-test-env.sh`; skipped with a message when not root).
//!
//! - namespace `mga<pid>` ("app"): `maskgate iptables install`, the sidecar as UID 1337, curl and the official
//!   Python SDKs with their default base URLs; names from `/etc/netns/<app>/hosts`;
//! - namespace `mgp<pid>` ("provider"): the gateway and a provider stand-in serving TLS for api.anthropic.com and
//!   api.openai.com with a test CA (run in-process on a thread that entered the namespace), a TCP echo server.
//! - IPv4 and IPv6 on the link (ip6tables capture, IP6T_SO_ORIGINAL_DST); the sidecar reaches the gateway first
//!   over plain HTTP with the shared token, then over TLS with a client certificate (mTLS) and no token.

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maskgate_gateway::mock::MockProvider;

const BIN: &str = env!("CARGO_BIN_EXE_maskgate");
const PROV_IP: &str = "10.213.0.2";
const APP_IP: &str = "10.213.0.1";
const PROV_IP6: &str = "fd00:213::2";
const APP_IP6: &str = "fd00:213::1";
const TOKEN: &str = "e2e-sidecar-token-0123456789";
const ANTHROPIC_KEY: &str = "sk-ant-e2e-provider-key";
const OPENAI_KEY: &str = "sk-openai-e2e-provider-key";
const ORIGINALS: [&str; 7] = [
    "i-0123456789abcdef0",
    "vpc-0a1b2c3d4e5f67890",
    "arn:aws:iam::123456789012:role/DeployRole",
    "sg-0123456789abcdef0",
    "10.0.1.25",
    "AKIAIOSFODNN7EXAMPLE",
    "subnet-0abc1234",
];

fn sample_text() -> String {
    format!(
        "Why can {} in {} not assume {}? SG {} at {} with key {} in {}.",
        ORIGINALS[0], ORIGINALS[1], ORIGINALS[2], ORIGINALS[3], ORIGINALS[4], ORIGINALS[5], ORIGINALS[6]
    )
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn have(bin: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn venv_python() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = std::env::var_os("MASKGATE_SDK_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv-sdk"));
    let py = venv.join("bin/python");
    py.exists().then_some(py)
}

/// The directory holding the Node `openai` and `undici` packages (`scripts/setup-test-env.sh`), when usable.
/// They need Node >= 20.18; without such a Node the Node part is skipped (also in CI, with a message), but with
/// one, CI insists on the packages.
fn node_sdk() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::var_os("MASKGATE_NODE_SDK")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".node-sdk"));
    let version = Command::new("node")
        .args(["-p", "process.versions.node"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let recent = version.as_deref().is_some_and(|v| {
        let n: Vec<u32> = v.split('.').filter_map(|x| x.parse().ok()).collect();
        n.len() >= 2 && (n[0], n[1]) >= (20, 18)
    });
    if !recent {
        eprintln!("Node SDK part skipped: Node >= 20.18 needed, found {version:?}");
        return None;
    }
    let ok =
        dir.join("node_modules/openai/package.json").exists() && dir.join("node_modules/undici/package.json").exists();
    if !ok && ci() {
        panic!("CI: no Node SDK in {} (run scripts/setup-test-env.sh)", dir.display());
    }
    ok.then(|| fs::canonicalize(dir).unwrap())
}

/// Why the test cannot run here, if it cannot.
fn unavailable() -> Option<String> {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (network namespaces and iptables need root; CI runs as root)".into());
    }
    let missing: Vec<&str> = ["ip", "iptables", "ip6tables", "iptables-save", "curl", "setpriv"]
        .into_iter()
        .filter(|b| !have(b))
        .collect();
    let why = if !missing.is_empty() {
        format!("missing {missing:?} (scripts/setup-test-env.sh installs iptables and iproute2)")
    } else if venv_python().is_none() {
        "no SDK venv (run scripts/setup-test-env.sh)".into()
    } else {
        return None;
    };
    if ci() {
        panic!("CI: {why}");
    }
    Some(why)
}

fn run(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    o
}

fn ok(cmd: &mut Command) -> String {
    let o = run(cmd);
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

struct Lab {
    app: String,
    prov: String,
    dir: PathBuf,
    sidecar: Option<Child>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut c) = self.sidecar.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = Command::new("ip").args(["netns", "del", &self.app]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.prov]).output();
        let _ = fs::remove_dir_all(format!("/etc/netns/{}", self.app));
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Lab {
    fn app(&self) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.app]);
        c
    }
    fn app_as_proxy(&self) -> Command {
        let mut c = self.app();
        c.args(["setpriv", "--reuid=1337", "--regid=1337", "--clear-groups"]);
        c
    }
    fn metrics(&self) -> String {
        ok(self.app().args(["curl", "-sS", "http://127.0.0.1:15000/metrics"]))
    }
    fn metric(&self, line: &str) -> u64 {
        let m = self.metrics();
        m.lines()
            .find_map(|l| l.strip_prefix(line).map(|v| v.trim().parse().unwrap()))
            .unwrap_or_else(|| panic!("{line} not in {m}"))
    }

    /// `hop`: the `[sidecar]` lines that say how to reach the gateway (and authenticate to it).
    fn start_sidecar(&mut self, hop: &str, egress_extra: &str) {
        let cfg = self.dir.join("sidecar.toml");
        fs::write(
            &cfg,
            format!(
                r#"[sidecar]
{hop}
ca_cert = "{ca}/ca.crt"
ca_key = "{ca}/ca.key"
tenant = "team-e2e"
shutdown_grace_secs = 5

[egress]
default = "deny"
{egress_extra}
"#,
                ca = self.dir.join("ca").display()
            ),
        )
        .unwrap();
        let log = File::create(
            self.dir
                .join(format!("sidecar-{}.log", Instant::now().elapsed().as_nanos())),
        )
        .unwrap();
        let child = self
            .app_as_proxy()
            .args([BIN, "sidecar", "--config"])
            .arg(&cfg)
            .env("MG_E2E_SIDECAR_TOKEN", TOKEN)
            .env("MASKGATE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.sidecar = Some(child);
        let t = Instant::now();
        loop {
            let o = run(self.app().args(["curl", "-sf", "http://127.0.0.1:15000/health/ready"]));
            if o.status.success() {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(15),
                "sidecar not ready: {}",
                self.sidecar_logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then the exit status must be success (graceful shutdown).
    fn stop_sidecar(&mut self) {
        let mut c = self.sidecar.take().unwrap();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let t = Instant::now();
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                assert!(st.success(), "sidecar exit {st:?}: {}", self.sidecar_logs());
                return;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "sidecar did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn sidecar_logs(&self) -> String {
        let mut out = String::new();
        for e in fs::read_dir(&self.dir).unwrap().flatten() {
            if e.file_name().to_string_lossy().starts_with("sidecar-") {
                out.push_str(&fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        out
    }
}

fn tls_identity(dir: &Path) -> maskgate_gateway::mock::TlsIdentity {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(rcgen::DnType::CommonName, "provider test CA");
    let ca = p.self_signed(&ca_key).unwrap();
    fs::write(dir.join("provider-ca.crt"), ca.pem()).unwrap();
    let issuer = Issuer::new(p, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["api.anthropic.com".into(), "api.openai.com".into()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    (
        vec![leaf.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
}

fn gateway_toml(dir: &Path, mock_port: u16) -> String {
    format!(
        r#"
[gateway]
listen = "{PROV_IP}:8000"
admin_listen = "127.0.0.1:0"
upstream_ca_file = "{ca}"
sidecar_token_env = "MG_E2E_SIDECAR_TOKEN"
[gateway.tls]
listen = "{PROV_IP}:8443"
cert = "{mesh}/server.crt"
key = "{mesh}/server.key"
client_ca = "{mesh}/ca.crt"

[[routes]]
host = "api.anthropic.com"
upstream = "https://api.anthropic.com"
connect_address = "127.0.0.1:{mock_port}"
[routes.credential]
header = "x-api-key"
env = "MG_E2E_ANTHROPIC_KEY"

[[routes]]
host = "api.openai.com"
upstream = "https://api.openai.com"
connect_address = "127.0.0.1:{mock_port}"
[routes.credential]
header = "authorization"
prefix = "Bearer "
env = "MG_E2E_OPENAI_KEY"
"#,
        ca = dir.join("provider-ca.crt").display(),
        mesh = dir.join("mesh").display()
    )
}

/// Gateway, provider stand-in (TLS) and a TCP echo server (port 7000), in the provider namespace.
fn start_provider(lab: &mut Lab) -> Arc<MockProvider> {
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    lab.stop = Some(stop_tx);
    let ns = format!("/run/netns/{}", lab.prov);
    let dir = lab.dir.clone();
    std::thread::spawn(move || {
        let f = File::open(&ns).unwrap();
        // SAFETY: moves this thread (and the runtime it builds) into the provider namespace.
        assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mock = Arc::new(MockProvider::start_tls(tls_identity(&dir)).await.unwrap());
            let cfg = maskgate_gateway::Config::from_toml(&gateway_toml(&dir, mock.addr.port())).unwrap();
            let gw = maskgate_gateway::start(cfg, None).await.unwrap();
            // Dual-stack: IPv4 and IPv6 clients.
            let echo = tokio::net::TcpListener::bind("[::]:7000").await.unwrap();
            tokio::spawn(async move {
                while let Ok((mut s, _)) = echo.accept().await {
                    tokio::spawn(async move {
                        let (mut r, mut w) = s.split();
                        let _ = tokio::io::copy(&mut r, &mut w).await;
                    });
                }
            });
            tx.send(mock).unwrap();
            let _ = stop_rx.await;
            drop(gw);
        });
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("provider namespace started")
}

fn setup() -> Lab {
    let pid = std::process::id();
    let dir = PathBuf::from(format!("/tmp/mg-e2e-{pid}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let lab = Lab {
        app: format!("mga{pid}"),
        prov: format!("mgp{pid}"),
        dir,
        sidecar: None,
        stop: None,
    };
    let (va, vp) = (format!("va{pid}"), format!("vp{pid}"));
    ok(Command::new("ip").args(["netns", "add", &lab.app]));
    ok(Command::new("ip").args(["netns", "add", &lab.prov]));
    ok(Command::new("ip").args([
        "link", "add", &va, "netns", &lab.app, "type", "veth", "peer", "name", &vp, "netns", &lab.prov,
    ]));
    for (ns, dev, ip, ip6) in [(&lab.app, &va, APP_IP, APP_IP6), (&lab.prov, &vp, PROV_IP, PROV_IP6)] {
        ok(Command::new("ip").args(["-n", ns, "addr", "add", &format!("{ip}/24"), "dev", dev]));
        ok(Command::new("ip").args(["-n", ns, "-6", "addr", "add", &format!("{ip6}/64"), "dev", dev, "nodad"]));
        ok(Command::new("ip").args(["-n", ns, "link", "set", dev, "up"]));
        ok(Command::new("ip").args(["-n", ns, "link", "set", "lo", "up"]));
    }
    let etc = format!("/etc/netns/{}", lab.app);
    fs::create_dir_all(&etc).unwrap();
    fs::write(
        format!("{etc}/hosts"),
        format!("127.0.0.1 localhost\n{PROV_IP} api.anthropic.com api.openai.com offlist.test\n"),
    )
    .unwrap();
    lab
}

/// The app's `curl` call of the Messages API at its real URL, with `extra` arguments: the answer's body.
fn curl_messages(c: &mut Command, extra: &[&str], stream: bool) -> String {
    let body = message_json(stream);
    let mut args = vec!["curl", "-sS", "--fail-with-body"];
    args.extend_from_slice(extra);
    args.extend([
        "https://api.anthropic.com/v1/messages",
        "-H",
        "content-type: application/json",
        "-H",
        "anthropic-version: 2023-06-01",
        "-d",
        &body,
    ]);
    ok(c.args(args))
}

fn message_json(stream: bool) -> String {
    serde_json::json!({"model": "claude-test", "max_tokens": 50, "stream": stream,
        "messages": [{"role": "user", "content": sample_text()}]})
    .to_string()
}

fn assert_all_originals(what: &str, text: &str) {
    for o in ORIGINALS {
        assert!(text.contains(o), "{what} lacks {o}: {text}");
    }
    assert!(!text.contains("AWS_EC2_"), "{what} still has placeholders: {text}");
}

fn assert_masked(mock: &MockProvider, from: usize) {
    let recs = mock.records();
    assert!(recs.len() > from, "the provider received nothing");
    for rec in &recs[from..] {
        let body = rec.body_str();
        for o in ORIGINALS {
            assert!(!body.contains(o), "provider saw an original: {body}");
        }
        assert!(body.contains("AWS_EC2_"), "no placeholder at the provider: {body}");
        for h in ["x-maskgate-tenant", "x-maskgate-sidecar-token", "x-original-host"] {
            assert!(rec.headers.get(h).is_none(), "{h} reached the provider");
        }
        let key = rec
            .headers
            .get("x-api-key")
            .or(rec.headers.get("authorization"))
            .unwrap();
        let key = key.to_str().unwrap();
        assert!(
            key == ANTHROPIC_KEY || key == format!("Bearer {OPENAI_KEY}"),
            "provider key: {key}"
        );
    }
}

/// Sends `ping` over TCP from the app namespace to offlist.test:7000; true when it echoes.
fn tcp_echo(cmd: &mut Command) -> bool {
    tcp_echo_to(cmd, "offlist.test")
}

/// Sends `ping` over TCP from the app namespace to `host`:7000 (a name or an IPv4/IPv6 literal).
fn tcp_echo_to(cmd: &mut Command, host: &str) -> bool {
    let py = format!("import socket,sys\ntry:\n s=socket.create_connection(('{host}',7000),timeout=3); s.sendall(b'ping'); s.settimeout(3); d=s.recv(10)\nexcept Exception as e:\n d=b''\nprint('ECHO' if d==b'ping' else 'NONE')");
    let out = ok(cmd.args([venv_python().unwrap().to_str().unwrap(), "-c", &py]));
    out.contains("ECHO")
}

#[test]
fn transparent_flow_in_network_namespaces() {
    if let Some(why) = unavailable() {
        eprintln!("SKIPPED transparent_flow_in_network_namespaces: {why}");
        return;
    }
    std::env::set_var("MG_E2E_SIDECAR_TOKEN", TOKEN);
    std::env::set_var("MG_E2E_ANTHROPIC_KEY", ANTHROPIC_KEY);
    std::env::set_var("MG_E2E_OPENAI_KEY", OPENAI_KEY);
    let mut lab = setup();
    // The gateway's TLS listener and the sidecar's client certificate (mTLS), from a CA of their own.
    let mesh = lab.dir.join("mesh");
    ok(Command::new(BIN).args(["ca", "init", "--dir"]).arg(&mesh));
    ok(Command::new(BIN)
        .args(["ca", "issue", "--name", PROV_IP, "--dir"])
        .arg(&mesh));
    ok(Command::new(BIN)
        .args(["ca", "issue", "--client", "--name", "sidecar-e2e", "--dir"])
        .arg(&mesh));
    ok(Command::new("chown").args(["-R", "1337:1337"]).arg(&mesh));
    let mock = start_provider(&mut lab);

    // The CA, as a user would make it; the sidecar's UID must read the key.
    let ca = lab.dir.join("ca");
    ok(Command::new(BIN).args(["ca", "init", "--dir"]).arg(&ca));
    assert_eq!(
        fs::metadata(ca.join("ca.key")).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let env_out = ok(Command::new(BIN).args(["ca", "env", "--dir"]).arg(&ca));
    let envs: Vec<(String, String)> = env_out
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for v in [
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
        "CURL_CA_BUNDLE",
    ] {
        assert!(envs.iter().any(|(k, _)| k == v), "{v} missing from {env_out}");
    }
    ok(Command::new("chown").args(["-R", "1337:1337"]).arg(&ca));

    // First the plain hop with the shared token; later the TLS hop with mTLS.
    let plain_hop = format!("gateway = \"http://{PROV_IP}:8000\"\ntoken_env = \"MG_E2E_SIDECAR_TOKEN\"");
    let tls_hop = format!(
        "gateway = \"https://{PROV_IP}:8443\"\ngateway_ca = \"{m}/ca.crt\"\ngateway_client_cert = \"{m}/client.crt\"\ngateway_client_key = \"{m}/client.key\"",
        m = mesh.display()
    );
    lab.start_sidecar(&plain_hop, "");

    // Capture: install twice (idempotent).
    ok(lab.app().args([BIN, "iptables", "install", "--drop-quic"]));
    let save = || {
        ok(lab.app().args(["iptables-save", "-t", "nat"]))
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with(':'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let first = save();
    ok(lab.app().args([BIN, "iptables", "install", "--drop-quic"]));
    assert_eq!(first, save(), "install is not idempotent");
    assert_eq!(first.matches("-j MASKGATE_OUTPUT").count(), 1, "{first}");
    assert!(first.contains("--to-ports 15001"), "{first}");

    // curl with the default URL, trusting the CA through CURL_CA_BUNDLE: not streamed, then streamed.
    let with_env = |c: &mut Command| {
        for (k, v) in &envs {
            c.env(k, v);
        }
    };
    for stream in [false, true] {
        let from = mock.records().len();
        let mut c = lab.app();
        with_env(&mut c);
        let extra = [
            "-H",
            "x-api-key: app-own-key",
            "-H",
            "x-mock-chunk: 10000",
            "-H",
            "x-maskgate-tenant: forged",
        ];
        let out = curl_messages(&mut c, &extra, stream);
        assert_all_originals(if stream { "curl streamed" } else { "curl" }, &out);
        if stream {
            assert!(out.contains("event: content_block_delta"), "{out}");
        }
        assert_masked(&mock, from);
    }
    assert!(lab.metric("maskgate_sidecar_certificates_minted_total") >= 1);

    // IPv6: the same call to the provider host's IPv6 address is captured by ip6tables (nothing listens on
    // [PROV_IP6]:443, so an answer means the sidecar took it).
    let from = mock.records().len();
    let mut c = lab.app();
    with_env(&mut c);
    let out = curl_messages(
        &mut c,
        &["--resolve", &format!("api.anthropic.com:443:[{PROV_IP6}]")],
        false,
    );
    assert_all_originals("curl over IPv6", &out);
    assert_masked(&mock, from);

    // The official Python SDKs, default base URLs, CA trusted through SSL_CERT_FILE.
    let py = venv_python().unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../gateway/tests/sdk/sdk_check.py");
    let sdk = |c: &mut Command, what: &str| {
        let from = mock.records().len();
        with_env(c);
        c.arg(&py)
            .arg(&script)
            .env("SDK_TEXT", sample_text())
            .env("SDK_ORIGINALS", serde_json::to_string(&ORIGINALS).unwrap())
            .env("CLIENT_KEY", "app-own-key")
            .env_remove("GATEWAY")
            .env_remove("ANTHROPIC_BASE_URL")
            .env_remove("OPENAI_BASE_URL")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy");
        let out = ok(c);
        assert!(out.contains("SDK OK"), "{what}: {out}");
        assert_eq!(
            mock.records().len() - from,
            7,
            "{what}: one provider request per SDK call"
        );
        assert_masked(&mock, from);
    };
    sdk(&mut lab.app(), "transparent");

    // The official Node `openai` SDK, default base URL, the CA through NODE_EXTRA_CA_CERTS.
    let node_dir = node_sdk();
    let node_script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../gateway/tests/sdk/openai_check.mjs");
    let node = |c: &mut Command, what: &str| {
        let Some(dir) = &node_dir else {
            eprintln!("Node SDK part skipped ({what}): no node or no .node-sdk (scripts/setup-test-env.sh)");
            return;
        };
        let from = mock.records().len();
        with_env(c);
        c.arg("node")
            .arg(&node_script)
            .env("NODE_SDK_DIR", dir)
            .env("SDK_TEXT", sample_text())
            .env("SDK_ORIGINALS", serde_json::to_string(&ORIGINALS).unwrap())
            .env("CLIENT_KEY", "app-own-key")
            .env_remove("OPENAI_BASE_URL")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy");
        let out = ok(c);
        assert!(out.contains("NODE SDK OK"), "{what}: {out}");
        assert_eq!(mock.records().len() - from, 4, "{what}: one provider request per call");
        assert_masked(&mock, from);
    };
    node(&mut lab.app(), "Node transparent");

    // Off-list HTTPS: refused before any handshake completes.
    let denied = lab.metric("maskgate_sidecar_connections_total{action=\"deny\"}");
    let mut c = lab.app();
    with_env(&mut c);
    let o = run(c.args(["curl", "-sS", "--max-time", "10", "https://offlist.test/"]));
    assert!(!o.status.success(), "off-list HTTPS went through");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !err.contains("certificate"),
        "a handshake got as far as certificates: {err}"
    );
    assert_eq!(
        lab.metric("maskgate_sidecar_connections_total{action=\"deny\"}"),
        denied + 1
    );

    // Plain TCP to another port: denied by default; the sidecar's own UID is never captured.
    assert!(!tcp_echo(&mut lab.app()), "plain TCP passed under default deny");
    assert!(
        !tcp_echo_to(&mut lab.app(), PROV_IP6),
        "plain TCP over IPv6 passed under default deny"
    );
    assert!(tcp_echo(&mut lab.app_as_proxy()), "the proxy UID was captured");
    // No original in the sidecar's logs.
    let logs = lab.sidecar_logs();
    for o in ORIGINALS {
        assert!(!logs.contains(o), "sidecar log holds {o}");
    }
    assert!(!logs.contains("offlist.test"), "an off-list host was logged");

    // Graceful restart: now the TLS hop to the gateway (mTLS, no token), and a passthrough rule for the port.
    lab.stop_sidecar();
    lab.start_sidecar(&tls_hop, "passthrough_ports = [7000]");
    assert!(tcp_echo(&mut lab.app()), "passthrough by port");
    // The IPv6 original destination (IP6T_SO_ORIGINAL_DST) is where the tunnel goes.
    assert!(tcp_echo_to(&mut lab.app(), PROV_IP6), "passthrough by port over IPv6");
    assert_eq!(
        lab.metric("maskgate_sidecar_connections_total{action=\"passthrough\"}"),
        2
    );
    // The route's own tenant ("default") gets another EC2 id first, from a client that is no sidecar: had the
    // gateway ignored the mTLS sidecar's tenant below, its first id would become AWS_EC2_002 there.
    let o = ok(lab.app_as_proxy().args([
        "curl",
        "-sS",
        "--fail-with-body",
        &format!("http://{PROV_IP}:8000/v1/messages"),
        "-H",
        "host: api.anthropic.com",
        "-H",
        "content-type: application/json",
        "-H",
        "x-maskgate-tenant: team-e2e",
        "-d",
        r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"check i-0fedcba9876543210"}]}"#,
    ]));
    assert!(o.contains("i-0fedcba9876543210"), "{o}");
    assert!(mock.last().unwrap().body_str().contains("AWS_EC2_001"));

    // Uninstall leaves no rule behind.
    ok(lab.app().args([BIN, "iptables", "uninstall"]));
    for t in ["iptables-save", "ip6tables-save"] {
        let all = ok(lab.app().arg(t));
        assert!(!all.to_lowercase().contains("maskgate"), "{t} after uninstall:\n{all}");
    }

    // Explicit proxy without iptables: the same SDK calls and curl through HTTPS_PROXY.
    let mut c = lab.app();
    c.env("HTTPS_PROXY", "http://127.0.0.1:15001");
    sdk(&mut c, "explicit proxy");
    // Node through the proxy: its fetch ignores HTTPS_PROXY (Node < 24), so the script passes an undici
    // ProxyAgent, the workaround the README gives.
    let mut c = lab.app();
    c.env("PROXY_URL", "http://127.0.0.1:15001");
    node(&mut c, "Node explicit proxy");
    let mut c = lab.app();
    with_env(&mut c);
    let out = ok(c.env("HTTPS_PROXY", "http://127.0.0.1:15001").args([
        "curl",
        "-sS",
        "--fail-with-body",
        "https://api.openai.com/v1/chat/completions",
        "-H",
        "content-type: application/json",
        "-H",
        "authorization: Bearer app-own-key",
        "-d",
        &serde_json::json!({"model": "gpt-test", "messages": [{"role": "user", "content": sample_text()}]}).to_string(),
    ]));
    assert_all_originals("curl via HTTPS_PROXY", &out);
    // Over the TLS hop the sidecar sent no token: its tenant (team-e2e, where the first id is AWS_EC2_001 since
    // the first request of this test) was trusted for its client certificate.
    let body = mock.last().unwrap().body_str();
    assert!(
        body.contains("AWS_EC2_001") && !body.contains("AWS_EC2_002"),
        "the mTLS sidecar's tenant was not honoured: {body}"
    );
    // Off-list CONNECT is refused with 403.
    let o = run(lab
        .app()
        .env("HTTPS_PROXY", "http://127.0.0.1:15001")
        .args(["curl", "-sS", "https://offlist.test/"]));
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("403"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    lab.stop_sidecar();
}
