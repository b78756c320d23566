//! The upstream client: hyper-util's pooled client over rustls (ring provider, webpki roots plus an optional CA
//! file), HTTP/1.1 and h2 by ALPN, with a connect-address override per host for tests and local stand-ins.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::{load_ca_file, Config};

pub type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector<OverrideResolver>>, Full<Bytes>>;

/// Resolves configured hosts to fixed addresses, everything else through getaddrinfo.
#[derive(Clone)]
pub struct OverrideResolver {
    overrides: Arc<HashMap<String, SocketAddr>>,
    gai: GaiResolver,
}

impl tower_service::Service<Name> for OverrideResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        if let Some(a) = self.overrides.get(&name.as_str().to_ascii_lowercase()) {
            let a = *a;
            return Box::pin(std::future::ready(Ok(vec![a].into_iter())));
        }
        let mut gai = self.gai.clone();
        Box::pin(async move {
            let addrs = tower_service::Service::call(&mut gai, name).await?;
            Ok(addrs.collect::<Vec<_>>().into_iter())
        })
    }
}

pub fn tls_config(cfg: &Config) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(f) = &cfg.gateway.upstream_ca_file {
        for c in load_ca_file(f)? {
            roots.add(c).map_err(|e| format!("gateway.upstream_ca_file: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tls)
}

pub fn build_client(cfg: &Config) -> Result<HttpsClient, String> {
    let mut overrides = HashMap::new();
    for r in &cfg.routes {
        if let (Some(a), Ok(u)) = (r.connect_address, crate::config::parse_upstream(&r.upstream)) {
            overrides.insert(u.authority.host().to_ascii_lowercase(), a);
        }
    }
    let resolver = OverrideResolver {
        overrides: Arc::new(overrides),
        gai: GaiResolver::new(),
    };
    let mut http = HttpConnector::new_with_resolver(resolver);
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(cfg.gateway.connect_timeout));
    http.set_keepalive(Some(std::time::Duration::from_secs(60)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config(cfg)?)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(cfg.gateway.pool_idle_timeout)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(https);
    Ok(client)
}

/// True when the error chain holds a timeout (connect timeout).
pub fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        let s = err.to_string();
        if s.contains("timed out") || s.contains("timeout") {
            return true;
        }
        cur = err.source();
    }
    false
}
