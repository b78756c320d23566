//! Listeners (proxy and admin), graceful shutdown, SIGHUP reload, and the CLI entry points.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::RespBody;
use crate::config::Config;
use crate::state::{make_vault, Shared};

/// Longest TLS handshake on the TLS listener.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct GatewayHandle {
    pub shared: Arc<Shared>,
    pub proxy_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The TLS proxy listener (`[gateway.tls]`), if configured.
    pub tls_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl GatewayHandle {
    /// Stops accepting, then waits (up to `shutdown_grace`) for in-flight requests and streams.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Binds both listeners and serves in the background.
pub async fn start(config: Config, config_path: Option<PathBuf>) -> Result<GatewayHandle, String> {
    for w in config.warnings() {
        tracing::warn!(warning = %w, "config");
    }
    let (vault, redis) = make_vault(&config).map_err(|e| e.to_string())?;
    if let Some(r) = &redis {
        // Best effort, in the background: start-up never waits on Redis.
        let r = r.clone();
        tokio::spawn(async move {
            for w in r.server_warnings().await {
                tracing::warn!(warning = %w, "redis");
            }
        });
    }
    start_with_vaults(config, config_path, vault, redis).await
}

pub async fn start_with_vault(
    config: Config,
    config_path: Option<PathBuf>,
    vault: Arc<dyn maskgate_vault::Vault>,
) -> Result<GatewayHandle, String> {
    start_with_vaults(config, config_path, vault, None).await
}

/// `redis`: the Redis backend, for `policy = "redis"` rate limits (usually the same object as `vault`).
pub async fn start_with_vaults(
    config: Config,
    config_path: Option<PathBuf>,
    vault: Arc<dyn maskgate_vault::Vault>,
    redis: Option<Arc<maskgate_vault::RedisVault>>,
) -> Result<GatewayHandle, String> {
    let proxy_l = TcpListener::bind(config.gateway.listen)
        .await
        .map_err(|e| format!("gateway.listen {}: {e}", config.gateway.listen))?;
    let admin_l = TcpListener::bind(config.gateway.admin_listen)
        .await
        .map_err(|e| format!("gateway.admin_listen {}: {e}", config.gateway.admin_listen))?;
    let tls = match &config.gateway.tls {
        None => None,
        Some(t) => {
            let server = Arc::new(crate::tls::server_config(t)?);
            let l = TcpListener::bind(t.listen)
                .await
                .map_err(|e| format!("gateway.tls.listen {}: {e}", t.listen))?;
            Some((l, server))
        }
    };
    let grace = config.gateway.shutdown_grace;
    let shared = Arc::new(Shared::with_redis(config, config_path, vault, redis).map_err(|e| e.to_string())?);
    let (stop, stop_rx) = watch::channel(false);
    let proxy_addr = proxy_l.local_addr().map_err(|e| e.to_string())?;
    let admin_addr = admin_l.local_addr().map_err(|e| e.to_string())?;
    let s1 = shared.clone();
    let t1 = tokio::spawn(serve(proxy_l, None, stop_rx.clone(), grace, move |peer, req| {
        crate::proxy::handle(s1.clone(), peer, req)
    }));
    let s2 = shared.clone();
    let t2 = tokio::spawn(serve(admin_l, None, stop_rx.clone(), grace, move |_peer, req| {
        crate::admin::handle(s2.clone(), req)
    }));
    let mut tasks = vec![t1, t2];
    let mut tls_addr = None;
    if let Some((l, server)) = tls {
        tls_addr = Some(l.local_addr().map_err(|e| e.to_string())?);
        let s3 = shared.clone();
        tasks.push(tokio::spawn(serve(
            l,
            Some(server),
            stop_rx,
            grace,
            move |peer, req| crate::proxy::handle(s3.clone(), peer, req),
        )));
    }
    tracing::info!(proxy = %proxy_addr, tls = ?tls_addr, admin = %admin_addr, vault = shared.vault.backend(), "gateway listening");
    Ok(GatewayHandle {
        shared,
        proxy_addr,
        admin_addr,
        tls_addr,
        stop,
        tasks,
    })
}

/// Accepts connections (TLS ones when `tls` is set: the handshake runs in the connection's task, bounded by
/// [`TLS_HANDSHAKE_TIMEOUT`]) and serves HTTP/1.1 and h2 on them until `stop`, then drains for `grace`.
async fn serve<F, Fut>(
    listener: TcpListener,
    tls: Option<Arc<crate::tls::TlsServer>>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
    handler: F,
) where
    F: Fn(SocketAddr, Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<RespBody>, std::convert::Infallible>> + Send + 'static,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    loop {
        tokio::select! {
            r = listener.accept() => {
                let (stream, peer) = match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let h = handler.clone();
                let Some(tls) = tls.clone() else {
                    let svc = service_fn(move |req| h(peer, req));
                    let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    continue;
                };
                let watcher = graceful.watcher();
                let builder = builder.clone();
                tokio::spawn(async move {
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
                    let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let conn = stream.get_ref().1;
                    let verified = tls.client_verified(conn);
                    if !verified && crate::tls::TlsServer::client_presented(conn) {
                        tracing::warn!("client certificate not signed by gateway.tls.client_ca: sidecar headers ignored");
                    }
                    let svc = service_fn(move |mut req: Request<Incoming>| {
                        if verified {
                            req.extensions_mut().insert(crate::tls::VerifiedClientCert);
                        }
                        h(peer, req)
                    });
                    let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                    let _ = watcher.watch(conn).await;
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(grace) => tracing::warn!("shutdown grace period over; closing remaining connections"),
    }
}

/// `maskgate check-config FILE`: Ok(warnings) or the error naming the key.
pub fn check_config(path: &Path) -> Result<Vec<String>, String> {
    let c = Config::load(path).map_err(|e| e.to_string())?;
    crate::upstream::tls_config(&c)?;
    Ok(c.warnings())
}

/// Has glibc's allocator keep up to 32 MiB of freed memory per arena instead of giving it back to the kernel as
/// soon as 128 KiB are free at the top of a heap (and allocate up to 32 MiB from its heaps rather than by
/// `mmap`). With the defaults, what a 1 MB request had allocated went back to the kernel after it and came back
/// as 2,200-4,400 page faults (9-18 MB) in the next: 49 ms of CPU a request, 38 ms
/// with this (BENCHMARKS.md, "Allocator"). Memory that stays is what a burst of large requests used at most.
/// `GLIBC_TUNABLES` with `glibc.malloc` settings wins: then nothing is changed.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if !std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc.")) {
        const KEEP: libc::c_int = 32 << 20;
        // SAFETY: mallopt only sets allocator parameters; it is thread-safe and the values are in range.
        unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, KEEP);
            libc::mallopt(libc::M_MMAP_THRESHOLD, KEEP);
        }
    }
}

/// `maskgate gateway [--config FILE]`: runs until SIGINT/SIGTERM; SIGHUP reloads the config.
pub fn run(config_path: Option<PathBuf>) -> Result<(), String> {
    crate::init_logging();
    keep_freed_memory();
    let config = match &config_path {
        Some(p) => Config::load(p).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let handle = start(config, config_path).await?;
        let shared = handle.shared.clone();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
            let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
            loop {
                tokio::select! {
                    _ = hup.recv() => { let _ = shared.reload(); }
                    _ = term.recv() => break,
                    _ = tokio::signal::ctrl_c() => break,
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down: draining in-flight requests");
        handle.shutdown().await;
        Ok(())
    })
}
