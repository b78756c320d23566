//! The sidecar: capture listener (transparent and explicit proxy), TLS interception, egress policy, forwarding
//! to the gateway, admin listener, graceful shutdown.

use std::collections::HashSet;
use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::ca::Minter;
use crate::clienthello::{self, Parse};
use crate::config::{read_secret, Config};
use crate::policy::{Action, Matcher, Reason};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type RespBody = BoxBody<Bytes, BoxError>;

pub const X_TENANT: &str = "x-maskgate-tenant";
pub const X_SIDECAR_TOKEN: &str = "x-maskgate-sidecar-token";
/// Largest HTTP/1 request head read while sniffing.
const MAX_HEAD: usize = 64 * 1024;

#[derive(Default)]
pub struct Metrics {
    pub intercepted: AtomicU64,
    pub passthrough: AtomicU64,
    pub denied: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub handshake_failures: AtomicU64,
    pub requests: AtomicU64,
    pub gateway_errors: AtomicU64,
    pub active: AtomicU64,
}

struct Sidecar {
    cfg: Config,
    matcher: Matcher,
    minter: Minter,
    intercept: HashSet<String>,
    client: Client<HttpsConnector<HttpConnector>, Incoming>,
    gw_scheme: http::uri::Scheme,
    gw_authority: http::uri::Authority,
    token: Option<HeaderValue>,
    tenant: Option<HeaderValue>,
    metrics: Metrics,
    graceful: Mutex<Option<GracefulShutdown>>,
    listen: SocketAddr,
}

pub struct SidecarHandle {
    pub listen_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    done: tokio::task::JoinHandle<()>,
    state: Arc<Sidecar>,
}

impl SidecarHandle {
    /// Stops accepting, lets in-flight requests and tunnels finish (up to the grace period), then returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.done.await;
    }
    pub fn metrics_text(&self) -> String {
        metrics_text(&self.state)
    }
}

/// Binds the listeners and starts serving on the current tokio runtime.
pub async fn start(cfg: Config) -> Result<SidecarHandle, String> {
    cfg.validate()?;
    let s = &cfg.sidecar;
    let minter = Minter::load(&s.ca_cert, &s.ca_key, Duration::from_secs(s.leaf_validity_secs))
        .map_err(|e| format!("sidecar CA: {e}"))?;
    let token = read_secret(s.token_env.as_deref(), s.token_file.as_deref())
        .map_err(|e| format!("sidecar token: {e}"))?
        .map(|t| {
            let mut v = HeaderValue::from_str(&t).map_err(|_| "sidecar token: not a valid header value".to_string())?;
            v.set_sensitive(true);
            Ok::<_, String>(v)
        })
        .transpose()?;
    let tenant = s
        .tenant
        .as_deref()
        .map(|t| HeaderValue::from_str(t).expect("validated"));
    let gw: http::Uri = s.gateway.parse().expect("validated");
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(s.first_byte_timeout_secs)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(gateway_tls(&cfg)?)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);
    let mut b = Client::builder(TokioExecutor::new());
    b.pool_idle_timeout(Duration::from_secs(60))
        .pool_timer(TokioTimer::new());
    if s.gateway_http2 {
        b.http2_only(true);
    }
    let client = b.build(https);
    let intercept = cfg.resolve_intercept().await?;
    info!(hosts = intercept.len(), "intercept list");
    let listener = bind_capture(s.listen).map_err(|e| format!("sidecar.listen {}: {e}", s.listen))?;
    let admin = TcpListener::bind(s.admin_listen)
        .await
        .map_err(|e| format!("sidecar.admin_listen {}: {e}", s.admin_listen))?;
    let listen_addr = listener.local_addr().map_err(|e| e.to_string())?;
    let admin_addr = admin.local_addr().map_err(|e| e.to_string())?;
    let state = Arc::new(Sidecar {
        matcher: Matcher::new(&cfg.egress)?,
        intercept: intercept
            .iter()
            .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
            .collect(),
        minter,
        client,
        gw_scheme: gw.scheme().cloned().expect("validated"),
        gw_authority: gw.authority().cloned().expect("validated"),
        token,
        tenant,
        metrics: Metrics::default(),
        graceful: Mutex::new(Some(GracefulShutdown::new())),
        listen: listen_addr,
        cfg,
    });
    let (tx, mut rx) = watch::channel(false);
    let st = state.clone();
    let mut admin_rx = rx.clone();
    let admin_state = state.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = admin_rx.changed() => break,
                r = admin.accept() => if let Ok((tcp, _)) = r {
                    let s = admin_state.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| admin_handle(s.clone(), req));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tcp), svc)
                            .await;
                    });
                }
            }
        }
    });
    let done = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = rx.changed() => break,
                r = listener.accept() => match r {
                    Ok((tcp, peer)) => {
                        let peer = canonical(peer);
                        let s = st.clone();
                        s.metrics.active.fetch_add(1, Relaxed);
                        tokio::spawn(async move {
                            handle_conn(s.clone(), tcp, peer).await;
                            s.metrics.active.fetch_sub(1, Relaxed);
                        });
                    }
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
        drop(listener);
        let grace = Duration::from_secs(st.cfg.sidecar.shutdown_grace_secs);
        let g = st.graceful.lock().unwrap().take();
        let wait = async {
            if let Some(g) = g {
                g.shutdown().await;
            }
            while st.metrics.active.load(Relaxed) > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        if tokio::time::timeout(grace, wait).await.is_err() {
            warn!("shutdown grace period over; closing the remaining connections");
        }
    });
    info!(listen = %listen_addr, admin = %admin_addr, "sidecar ready");
    Ok(SidecarHandle {
        listen_addr,
        admin_addr,
        shutdown: tx,
        done,
        state,
    })
}

/// TLS towards the gateway: `gateway_ca` (else the WebPKI roots), an optional client certificate (mTLS).
fn gateway_tls(cfg: &Config) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let s = &cfg.sidecar;
    let mut roots = rustls::RootCertStore::empty();
    match &s.gateway_ca {
        Some(f) => {
            let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(f)
                .map_err(|e| format!("sidecar.gateway_ca: {}: {e}", f.display()))?
                .collect();
            let certs = certs.map_err(|e| format!("sidecar.gateway_ca: {}: {e}", f.display()))?;
            if certs.is_empty() {
                return Err(format!("sidecar.gateway_ca: no certificate in {}", f.display()));
            }
            for c in certs {
                roots.add(c).map_err(|e| format!("sidecar.gateway_ca: {e}"))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    match (&s.gateway_client_cert, &s.gateway_client_key) {
        (Some(c), Some(k)) => {
            let chain: Result<Vec<_>, _> = CertificateDer::pem_file_iter(c)
                .map_err(|e| format!("sidecar.gateway_client_cert: {}: {e}", c.display()))?
                .collect();
            let chain = chain.map_err(|e| format!("sidecar.gateway_client_cert: {}: {e}", c.display()))?;
            let key = PrivateKeyDer::from_pem_file(k)
                .map_err(|e| format!("sidecar.gateway_client_key: {}: {e}", k.display()))?;
            b.with_client_auth_cert(chain, key)
                .map_err(|e| format!("sidecar.gateway_client_key: {e}"))
        }
        _ => Ok(b.with_no_client_auth()),
    }
}

/// Runs the sidecar until SIGINT/SIGTERM. `gateway_config` (from `--gateway-config`) replaces the file's
/// `sidecar.gateway_config`.
pub fn run(path: Option<std::path::PathBuf>, gateway_config: Option<std::path::PathBuf>) -> Result<(), String> {
    let mut cfg = Config::load(path.as_deref())?;
    if gateway_config.is_some() {
        cfg.sidecar.gateway_config = gateway_config;
        cfg.validate()?;
    }
    init_logging();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let h = start(cfg).await?;
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|e| e.to_string())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        info!("shutting down");
        h.shutdown().await;
        Ok(())
    })
}

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MASKGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .try_init();
}

/// Binds the capture listener. An IPv6 wildcard (`[::]`, the default) is dual-stack: it also takes IPv4
/// connections (as v4-mapped addresses), so one port serves what iptables and ip6tables redirect. Where the
/// host has no IPv6 at all, `[::]` falls back to `0.0.0.0` on the same port.
fn bind_capture(addr: SocketAddr) -> io::Result<TcpListener> {
    fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
        let sock = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        if addr.is_ipv6() {
            sock.set_only_v6(false)?;
        }
        sock.set_reuse_address(true)?;
        sock.set_nonblocking(true)?;
        sock.bind(&addr.into())?;
        sock.listen(1024)?;
        TcpListener::from_std(sock.into())
    }
    match bind(addr) {
        Err(e) if addr.ip() == IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED) && e.kind() != io::ErrorKind::AddrInUse => {
            warn!(error = %e, "no IPv6 here: the capture listener takes IPv4 only");
            bind(SocketAddr::new(
                IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                addr.port(),
            ))
        }
        r => r,
    }
}

/// v4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a dual-stack socket reports for IPv4 peers) as IPv4.
fn canonical(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => a,
        },
        v4 => v4,
    }
}

/// The destination the connection had before iptables redirected it; `None` for a direct connection.
///
/// IPv4 connections (also those a dual-stack socket reports as v4-mapped) ask `SO_ORIGINAL_DST` on `SOL_IP`;
/// IPv6 ones ask `IP6T_SO_ORIGINAL_DST` (80) on `SOL_IPV6`, which the kernel answers from the IPv6 conntrack
/// entry that ip6tables' REDIRECT created.
fn original_dst(tcp: &TcpStream, listen: SocketAddr) -> Option<SocketAddr> {
    let sock = socket2::SockRef::from(tcp);
    let local = canonical(tcp.local_addr().ok()?);
    let r = if local.is_ipv4() {
        sock.original_dst_v4()
    } else {
        sock.original_dst_v6()
    };
    let dst = canonical(r.ok()?.as_socket()?);
    // Without a NAT entry Linux answers with the local address itself.
    if dst == local || (dst.port() == listen.port() && (dst.ip().is_loopback() || dst.ip() == local.ip())) {
        return None;
    }
    Some(dst)
}

/// A stream that first replays the bytes already read while sniffing, and counts bytes.
struct Rewind<S> {
    pre: Bytes,
    inner: S,
    side: Arc<Sidecar>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.pre.is_empty() {
            let n = self.pre.len().min(buf.remaining());
            let b = self.pre.split_to(n);
            buf.put_slice(&b);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.side.metrics.bytes_in.fetch_add(n as u64, Relaxed);
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.side.metrics.bytes_out.fetch_add(*n as u64, Relaxed);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What the first bytes of a connection are.
enum Sniff {
    Tls(clienthello::ClientHello),
    /// TLS that could not be read (malformed, no ClientHello).
    BadTls,
    Http(Head),
    Opaque,
}

struct Head {
    method: String,
    target: String,
    host: Option<String>,
    /// Length of the head including the blank line.
    len: usize,
}

/// Reads more bytes into `buf`; `Ok(false)` at EOF.
async fn read_more<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>, limit: Duration) -> io::Result<bool> {
    let mut tmp = [0u8; 4096];
    match tokio::time::timeout(limit, s.read(&mut tmp)).await {
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
        Ok(Ok(0)) => Ok(false),
        Ok(Ok(n)) => {
            buf.extend_from_slice(&tmp[..n]);
            Ok(true)
        }
        Ok(Err(e)) => Err(e),
    }
}

fn looks_like_http(buf: &[u8]) -> bool {
    let end = buf.iter().position(|&b| b == b' ').unwrap_or(buf.len());
    let m = &buf[..end];
    (end < buf.len() || buf.len() < 8) && !m.is_empty() && m.len() <= 7 && m.iter().all(|b| b.is_ascii_uppercase())
}

fn parse_head(buf: &[u8]) -> Option<Result<Head, ()>> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let text = match std::str::from_utf8(&buf[..end]) {
        Ok(t) => t,
        Err(_) => return Some(Err(())),
    };
    let mut lines = text.split("\r\n");
    let mut rl = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(ver), None) = (rl.next(), rl.next(), rl.next(), rl.next()) else {
        return Some(Err(()));
    };
    if !ver.starts_with("HTTP/1.") {
        return Some(Err(()));
    }
    let host = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.trim().to_string());
    Some(Ok(Head {
        method: method.into(),
        target: target.into(),
        host,
        len: end + 4,
    }))
}

/// Host without port, validated and lower-cased; `None` when not a DNS name or IP literal.
fn host_of(authority: &str) -> Option<(String, Option<u16>)> {
    let a: http::uri::Authority = authority.parse().ok()?;
    let h = a.host().trim_start_matches('[').trim_end_matches(']');
    let host = if h.parse::<IpAddr>().is_ok() {
        h.to_string()
    } else {
        clienthello::valid_host(h.as_bytes())?
    };
    Some((host, a.port_u16()))
}

async fn sniff<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>, limit: Duration) -> io::Result<Sniff> {
    if buf.is_empty() && !read_more(s, buf, limit).await? {
        return Ok(Sniff::Opaque);
    }
    if clienthello::looks_like_tls(buf) {
        loop {
            match clienthello::parse(buf) {
                Parse::Done(ch) => return Ok(Sniff::Tls(ch)),
                Parse::Invalid(_) => return Ok(Sniff::BadTls),
                Parse::Incomplete => {
                    if !read_more(s, buf, limit).await? {
                        return Ok(Sniff::BadTls);
                    }
                }
            }
        }
    }
    if looks_like_http(buf) {
        loop {
            match parse_head(buf) {
                Some(Ok(h)) => return Ok(Sniff::Http(h)),
                Some(Err(())) => return Ok(Sniff::Opaque),
                None if buf.len() > MAX_HEAD => return Ok(Sniff::Opaque),
                None => {
                    if !read_more(s, buf, limit).await? {
                        return Ok(Sniff::Opaque);
                    }
                }
            }
        }
    }
    Ok(Sniff::Opaque)
}

fn reason_str(r: Reason) -> &'static str {
    match r {
        Reason::Host => "host",
        Reason::Cidr => "cidr",
        Reason::Port => "port",
        Reason::Default => "default",
    }
}

async fn handle_conn(s: Arc<Sidecar>, mut tcp: TcpStream, peer: SocketAddr) {
    let _ = tcp.set_nodelay(true);
    let orig = original_dst(&tcp, s.listen);
    let limit = Duration::from_secs(s.cfg.sidecar.sniff_timeout_secs);
    let mut buf = Vec::with_capacity(2048);
    // A captured connection whose client stays silent (server-speaks-first protocols) is decided by the policy
    // after a short wait.
    let first_wait = if orig.is_some() {
        Duration::from_millis(800)
    } else {
        limit
    };
    match read_more(&mut tcp, &mut buf, first_wait).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) if e.kind() == io::ErrorKind::TimedOut && orig.is_some() => {}
        Err(_) => return,
    }
    let kind = if buf.is_empty() {
        Sniff::Opaque
    } else {
        match sniff(&mut tcp, &mut buf, limit).await {
            Ok(k) => k,
            Err(_) => return,
        }
    };
    match (kind, orig) {
        (Sniff::Tls(ch), Some(dst)) => match ch.sni {
            Some(h) if s.intercept.contains(&h) => intercept_tls(s, tcp, buf, h, peer).await,
            sni => egress(s, tcp, buf, sni.as_deref(), dst).await,
        },
        (Sniff::BadTls | Sniff::Opaque, Some(dst)) => egress(s, tcp, buf, None, dst).await,
        (Sniff::Http(h), Some(dst)) if !h.target.starts_with('/') || h.method == "CONNECT" => {
            // A proxy request sent to a captured destination: treat it as explicit.
            explicit(s, tcp, buf, h, peer, Some(dst)).await
        }
        (Sniff::Http(h), Some(dst)) => match h.host.as_deref().and_then(host_of) {
            Some((host, _)) if s.intercept.contains(&host) => serve_http(s, tcp, buf, host, peer).await,
            Some((host, _)) => egress_http(s, tcp, buf, Some(&host), dst).await,
            None => egress_http(s, tcp, buf, None, dst).await,
        },
        (Sniff::Http(h), None) => explicit(s, tcp, buf, h, peer, None).await,
        (_, None) => {
            // Direct TLS or an unknown protocol to the proxy port: nothing to route by.
            s.metrics.denied.fetch_add(1, Relaxed);
            warn!(action = "deny", reason = "not_a_proxy_request", "connection refused");
        }
    }
}

/// Egress policy for a captured connection the sidecar does not intercept.
async fn egress(s: Arc<Sidecar>, tcp: TcpStream, buf: Vec<u8>, host: Option<&str>, dst: SocketAddr) {
    let (action, reason) = s.matcher.decide(host, Some(dst.ip()), Some(dst.port()));
    match action {
        Action::Deny => {
            s.metrics.denied.fetch_add(1, Relaxed);
            // Neither the host nor the address is logged: either may itself be an identifier.
            warn!(
                action = "deny",
                reason = reason_str(reason),
                port = dst.port(),
                sni = host.is_some(),
                "egress denied"
            );
            // Dropped without a byte: no handshake completes.
            let _ = socket2::SockRef::from(&tcp).set_linger(Some(Duration::ZERO));
            drop(tcp);
        }
        Action::Passthrough => {
            s.metrics.passthrough.fetch_add(1, Relaxed);
            info!(
                action = "passthrough",
                reason = reason_str(reason),
                port = dst.port(),
                "egress passthrough"
            );
            tunnel(s, tcp, buf, dst).await;
        }
    }
}

/// Like [`egress`] for plain HTTP: a denied request gets a 403 answer.
async fn egress_http(s: Arc<Sidecar>, mut tcp: TcpStream, buf: Vec<u8>, host: Option<&str>, dst: SocketAddr) {
    let (action, _) = s.matcher.decide(host, Some(dst.ip()), Some(dst.port()));
    if action == Action::Deny {
        let _ = tcp.write_all(&plain_403()).await;
        let _ = tcp.shutdown().await;
    }
    egress(s, tcp, buf, host, dst).await
}

fn plain_403() -> Vec<u8> {
    let body = "{\"error\":{\"type\":\"egress_denied\",\"message\":\"Destination not allowed by the maskgate egress policy\"}}";
    format!(
        "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn tunnel(s: Arc<Sidecar>, tcp: TcpStream, buf: Vec<u8>, dst: SocketAddr) {
    let up = match tokio::time::timeout(
        Duration::from_secs(s.cfg.sidecar.first_byte_timeout_secs),
        TcpStream::connect(dst),
    )
    .await
    {
        Ok(Ok(u)) => u,
        _ => {
            warn!(port = dst.port(), "passthrough: destination unreachable");
            return;
        }
    };
    tunnel_to(s, tcp, buf, up).await
}

async fn tunnel_to(s: Arc<Sidecar>, tcp: TcpStream, buf: Vec<u8>, mut up: TcpStream) {
    let _ = up.set_nodelay(true);
    if !buf.is_empty() && up.write_all(&buf).await.is_err() {
        return;
    }
    let mut client = Rewind {
        pre: Bytes::new(),
        inner: tcp,
        side: s.clone(),
    };
    let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
}

/// Terminates TLS with a leaf for `host` and serves the requests inside.
async fn intercept_tls<S>(s: Arc<Sidecar>, tcp: S, buf: Vec<u8>, host: String, peer: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    s.metrics.intercepted.fetch_add(1, Relaxed);
    let cfg = match s.minter.config_for(&host) {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "minting a certificate failed");
            return;
        }
    };
    let stream = Rewind {
        pre: Bytes::from(buf),
        inner: tcp,
        side: s.clone(),
    };
    let limit = Duration::from_secs(s.cfg.sidecar.sniff_timeout_secs);
    let acc = tokio_rustls::TlsAcceptor::from(cfg);
    let tls = match tokio::time::timeout(limit, acc.accept(stream)).await {
        Ok(Ok(t)) => t,
        _ => {
            s.metrics.handshake_failures.fetch_add(1, Relaxed);
            // Typically the app does not trust the CA yet.
            warn!("TLS handshake with the app failed (does it trust the maskgate CA?)");
            return;
        }
    };
    serve(s, tls, host, peer).await
}

async fn serve_http(s: Arc<Sidecar>, tcp: TcpStream, buf: Vec<u8>, host: String, peer: SocketAddr) {
    s.metrics.intercepted.fetch_add(1, Relaxed);
    let stream = Rewind {
        pre: Bytes::from(buf),
        inner: tcp,
        side: s.clone(),
    };
    serve(s, stream, host, peer).await
}

async fn serve<S>(s: Arc<Sidecar>, io: S, host: String, peer: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let st = s.clone();
    let svc = service_fn(move |req| forward(st.clone(), req, host.clone(), peer.ip()));
    let mut b = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(60));
    let conn = b.serve_connection(TokioIo::new(io), svc);
    let watcher = s.graceful.lock().unwrap().as_ref().map(|g| g.watcher());
    let _ = match watcher {
        Some(w) => w.watch(conn).await,
        None => conn.await,
    };
}

/// Explicit proxy: `CONNECT host:port` and absolute-form requests.
async fn explicit(
    s: Arc<Sidecar>,
    mut tcp: TcpStream,
    buf: Vec<u8>,
    head: Head,
    peer: SocketAddr,
    _orig: Option<SocketAddr>,
) {
    let target = if head.method == "CONNECT" {
        host_of(&head.target)
    } else if let Some(rest) = head.target.strip_prefix("http://") {
        host_of(rest.split(['/', '?']).next().unwrap_or("")).map(|(h, p)| (h, Some(p.unwrap_or(80))))
    } else {
        None
    };
    let Some((host, port)) = target else {
        s.metrics.denied.fetch_add(1, Relaxed);
        let body = "{\"error\":{\"type\":\"bad_request\",\"message\":\"maskgate sidecar: send CONNECT host:port or an absolute-form http:// request\"}}";
        let _ = tcp
            .write_all(
                format!(
                    "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .await;
        return;
    };
    let port = port.unwrap_or(443);
    let intercepted = s.intercept.contains(&host);
    if head.method == "CONNECT" {
        let rest = buf[head.len..].to_vec();
        if intercepted {
            if tcp
                .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                .await
                .is_err()
            {
                return;
            }
            let mut inner = rest;
            let limit = Duration::from_secs(s.cfg.sidecar.sniff_timeout_secs);
            match sniff(&mut tcp, &mut inner, limit).await {
                Ok(Sniff::Tls(ch)) => {
                    // The SNI, when sent, must name the host the tunnel was opened for.
                    if ch.sni.as_deref().is_some_and(|sni| sni != host) {
                        s.metrics.denied.fetch_add(1, Relaxed);
                        warn!(action = "deny", reason = "sni_mismatch", "CONNECT tunnel refused");
                        return;
                    }
                    intercept_tls(s, tcp, inner, host, peer).await
                }
                Ok(Sniff::Http(_)) => serve_http(s, tcp, inner, host, peer).await,
                _ => {
                    s.metrics.denied.fetch_add(1, Relaxed);
                }
            }
            return;
        }
        let ip = host.parse::<IpAddr>().ok();
        let (action, reason) = s.matcher.decide(Some(&host), ip, Some(port));
        if action == Action::Deny {
            s.metrics.denied.fetch_add(1, Relaxed);
            warn!(action = "deny", reason = reason_str(reason), port, "CONNECT denied");
            let _ = tcp.write_all(&plain_403()).await;
            return;
        }
        let up = match tokio::time::timeout(
            Duration::from_secs(s.cfg.sidecar.first_byte_timeout_secs),
            TcpStream::connect((host.as_str(), port)),
        )
        .await
        {
            Ok(Ok(u)) => u,
            _ => {
                let _ = tcp
                    .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
                return;
            }
        };
        s.metrics.passthrough.fetch_add(1, Relaxed);
        info!(
            action = "passthrough",
            reason = reason_str(reason),
            port,
            "CONNECT passthrough"
        );
        if tcp
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
        return tunnel_to(s, tcp, rest, up).await;
    }
    // Absolute-form plain HTTP.
    if intercepted {
        return serve_http(s, tcp, buf, host, peer).await;
    }
    let ip = host.parse::<IpAddr>().ok();
    let (action, reason) = s.matcher.decide(Some(&host), ip, Some(port));
    if action == Action::Deny {
        s.metrics.denied.fetch_add(1, Relaxed);
        warn!(
            action = "deny",
            reason = reason_str(reason),
            port,
            "proxy request denied"
        );
        let _ = tcp.write_all(&plain_403()).await;
        return;
    }
    match TcpStream::connect((host.as_str(), port)).await {
        Ok(up) => {
            s.metrics.passthrough.fetch_add(1, Relaxed);
            tunnel_to(s, tcp, buf, up).await
        }
        Err(_) => {
            let _ = tcp
                .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
        }
    }
}

fn request_id() -> String {
    let mut b = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).expect("system randomness");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn error_response(status: StatusCode, kind: &str, msg: &str) -> Response<RespBody> {
    let body = format!("{{\"error\":{{\"type\":\"{kind}\",\"message\":\"{msg}\"}}}}");
    let mut r = Response::new(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Sends one intercepted request to the gateway; path and query untouched.
async fn forward(
    s: Arc<Sidecar>,
    mut req: Request<Incoming>,
    host: String,
    peer: IpAddr,
) -> Result<Response<RespBody>, Infallible> {
    s.metrics.requests.fetch_add(1, Relaxed);
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let Ok(uri) = http::Uri::builder()
        .scheme(s.gw_scheme.clone())
        .authority(s.gw_authority.clone())
        .path_and_query(pq)
        .build()
    else {
        return Ok(error_response(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Invalid request path",
        ));
    };
    *req.uri_mut() = uri;
    *req.version_mut() = if s.cfg.sidecar.gateway_http2 {
        http::Version::HTTP_2
    } else {
        http::Version::HTTP_11
    };
    let h = req.headers_mut();
    // A workload never chooses its own tenant or claims to be a sidecar.
    h.remove(X_TENANT);
    h.remove(X_SIDECAR_TOKEN);
    h.remove("proxy-authorization");
    h.remove("proxy-connection");
    let hv = HeaderValue::from_str(&host).expect("validated host");
    h.insert(header::HOST, hv.clone());
    h.insert("x-original-host", hv);
    let xff = match h.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {peer}"),
        None => peer.to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        h.insert("x-forwarded-for", v);
    }
    if !h.contains_key("x-request-id") {
        h.insert("x-request-id", HeaderValue::from_str(&request_id()).expect("hex"));
    }
    if let Some(t) = &s.tenant {
        h.insert(X_TENANT, t.clone());
    }
    if let Some(t) = &s.token {
        h.insert(X_SIDECAR_TOKEN, t.clone());
    }
    let limit = Duration::from_secs(s.cfg.sidecar.first_byte_timeout_secs);
    match tokio::time::timeout(limit, s.client.request(req)).await {
        Ok(Ok(resp)) => Ok(resp.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed())),
        Ok(Err(e)) => {
            s.metrics.gateway_errors.fetch_add(1, Relaxed);
            warn!(error = %e, "gateway request failed");
            Ok(error_response(
                StatusCode::BAD_GATEWAY,
                "gateway_unavailable",
                "The maskgate gateway is unreachable",
            ))
        }
        Err(_) => {
            s.metrics.gateway_errors.fetch_add(1, Relaxed);
            Ok(error_response(
                StatusCode::GATEWAY_TIMEOUT,
                "gateway_timeout",
                "The maskgate gateway did not answer in time",
            ))
        }
    }
}

fn metrics_text(s: &Sidecar) -> String {
    let m = &s.metrics;
    let g = |a: &AtomicU64| a.load(Relaxed);
    format!(
        "# TYPE maskgate_sidecar_connections_total counter\n\
maskgate_sidecar_connections_total{{action=\"intercept\"}} {}\n\
maskgate_sidecar_connections_total{{action=\"passthrough\"}} {}\n\
maskgate_sidecar_connections_total{{action=\"deny\"}} {}\n\
# TYPE maskgate_sidecar_bytes_total counter\n\
maskgate_sidecar_bytes_total{{direction=\"from_app\"}} {}\n\
maskgate_sidecar_bytes_total{{direction=\"to_app\"}} {}\n\
# TYPE maskgate_sidecar_certificates_minted_total counter\n\
maskgate_sidecar_certificates_minted_total {}\n\
# TYPE maskgate_sidecar_handshake_failures_total counter\n\
maskgate_sidecar_handshake_failures_total {}\n\
# TYPE maskgate_sidecar_requests_total counter\n\
maskgate_sidecar_requests_total {}\n\
# TYPE maskgate_sidecar_gateway_errors_total counter\n\
maskgate_sidecar_gateway_errors_total {}\n\
# TYPE maskgate_sidecar_active_connections gauge\n\
maskgate_sidecar_active_connections {}\n",
        g(&m.intercepted),
        g(&m.passthrough),
        g(&m.denied),
        g(&m.bytes_in),
        g(&m.bytes_out),
        s.minter.minted.load(Relaxed),
        g(&m.handshake_failures),
        g(&m.requests),
        g(&m.gateway_errors),
        g(&m.active),
    )
}

async fn admin_handle(s: Arc<Sidecar>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body, ct) = match req.uri().path() {
        "/metrics" => (StatusCode::OK, metrics_text(&s), "text/plain; version=0.0.4"),
        "/health/live" => (StatusCode::OK, "{\"status\":\"live\"}".into(), "application/json"),
        "/health/ready" => {
            if s.graceful.lock().unwrap().is_some() {
                (StatusCode::OK, "{\"status\":\"ready\"}".into(), "application/json")
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "{\"status\":\"shutting_down\"}".into(),
                    "application/json",
                )
            }
        }
        _ => (
            StatusCode::NOT_FOUND,
            "{\"error\":\"not found\"}".into(),
            "application/json",
        ),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_helpers() {
        assert!(looks_like_http(b"GET / HTTP/1.1\r\n"));
        assert!(looks_like_http(b"CONNECT api.openai.com:443 HTTP/1.1\r\n"));
        assert!(!looks_like_http(b"\x16\x03\x01"));
        assert!(!looks_like_http(b"SSH-2.0-OpenSSH"));
        let h = parse_head(b"CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n\r\nxx")
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.method.as_str(), h.target.as_str(), h.len),
            ("CONNECT", "api.openai.com:443", 65)
        );
        assert_eq!(
            host_of("API.openai.com:443"),
            Some(("api.openai.com".into(), Some(443)))
        );
        assert_eq!(host_of("[::1]:80"), Some(("::1".into(), Some(80))));
        assert_eq!(host_of("bad host"), None);
    }
}
