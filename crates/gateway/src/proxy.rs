//! The proxy handler: route, rate-limit, read and mask the request, forward it, unmask the response.

use std::cell::RefCell;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame, Incoming};
use maskgate_vault::Entry;

use crate::body::{decode_all, full, parse_codings, BoxError, Decoder, RespBody};
use crate::config::{LimitBy, ResolveScope};
use crate::engine::stream::{StreamFormat, StreamUnmasker};
use crate::engine::unmask::{unmask_json, unmask_text};
use crate::engine::{Masker, RequestMap, Resolver, UnmaskStats};
use crate::error::ApiError;
use crate::metrics::{CodeLabel, HostLabel, HostStatus, KindLabel, OpLabel, VaultOp};
use crate::ratelimit::Decision;
use crate::state::{RouteRt, Runtime, Shared};

/// Client credential headers removed unless the route keeps them.
pub const CREDENTIAL_HEADERS: [&str; 4] = ["x-api-key", "authorization", "x-goog-api-key", "api-key"];

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus ones the gateway sets itself.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Internal headers never forwarded upstream.
pub const X_ORIGINAL_HOST: &str = "x-original-host";
/// Tenant chosen by an authenticated sidecar.
pub const X_TENANT: &str = "x-maskgate-tenant";
/// Shared token that authenticates a sidecar.
pub const X_SIDECAR_TOKEN: &str = "x-maskgate-sidecar-token";

/// The placeholders a response may resolve: those inserted into the request it answers and, on routes with
/// `resolve = "tenant"`, those of the tenant looked up in the vault as they appear.
#[derive(Clone, Default)]
pub struct AnswerMap {
    request: Arc<RequestMap>,
    /// Looked up in the vault: `None` when the tenant has no such placeholder or the lookup failed (left as is).
    tenant: Arc<HashMap<String, Option<String>>>,
    /// Set on a probe copy: the placeholders it met that are neither in the request nor looked up yet.
    record: Option<RefCell<Vec<String>>>,
}

/// Bodies from this size up are masked, unmasked and decoded off the async worker (see [`cpu_bound`]). Masking
/// runs at ~40 MB/s (AWS API output) to ~300 MB/s (prose), so 16 KiB is ~0.05-0.4 ms of work, about what a
/// task may hold a worker without delaying its neighbours noticeably; below it, handing the worker over costs
/// more than it saves.
const OFF_WORKER_BYTES: usize = 16 * 1024;

/// What assigning one value costs the embedded vault, in [`cpu_bound`]'s unit (bytes masked in the same time).
const VAULT_VALUE_COST: usize = 16;

/// Runs CPU-bound work over `len` bytes. From [`OFF_WORKER_BYTES`] up, on the multi-threaded runtime, through
/// `block_in_place`: the worker's other tasks (other connections) move to another thread while this one works,
/// instead of waiting behind it — masking a 1 MB body takes tens of milliseconds, and four of those a second
/// put ~30 ms into the p99 of small requests served by the same gateway (BENCHMARKS.md).
fn cpu_bound<R>(len: usize, f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let off = len >= OFF_WORKER_BYTES
        && Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    if off {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// Most placeholders one response looks up tenant-wide; beyond that they stay as they are (and are counted).
const MAX_TENANT_LOOKUPS: usize = 10_000;

impl AnswerMap {
    pub fn new(request: Arc<RequestMap>) -> Self {
        AnswerMap {
            request,
            ..Default::default()
        }
    }

    /// A copy that records what it cannot resolve.
    fn probe(&self) -> AnswerMap {
        AnswerMap {
            request: self.request.clone(),
            tenant: self.tenant.clone(),
            record: Some(RefCell::new(Vec::new())),
        }
    }

    /// What a probe met and could not resolve, each once, within the lookup bound.
    fn recorded(&self) -> Vec<String> {
        let mut asked = self.record.as_ref().map(|r| r.take()).unwrap_or_default();
        asked.sort_unstable();
        asked.dedup();
        asked.truncate(MAX_TENANT_LOOKUPS.saturating_sub(self.tenant.len()));
        asked
    }

    fn learn(&mut self, found: Vec<(String, Option<String>)>) {
        Arc::make_mut(&mut self.tenant).extend(found);
    }
}

impl Resolver for AnswerMap {
    fn resolve(&self, placeholder: &str) -> Option<&str> {
        if let Some(o) = self.request.resolve(placeholder) {
            return Some(o);
        }
        match self.tenant.get(placeholder) {
            Some(o) => o.as_deref(),
            None => {
                if let Some(r) = &self.record {
                    r.borrow_mut().push(placeholder.to_string());
                }
                None
            }
        }
    }
}

/// Looks placeholders up tenant-wide: one vault call, bounded by the vault timeout. A failure leaves them
/// unresolved (counted as misses, logged without values); the response goes on.
type Lookup = Pin<Box<dyn Future<Output = Vec<(String, Option<String>)>> + Send>>;

fn look_up(shared: Arc<Shared>, tenant: String, timeout: Duration, asked: Vec<String>) -> Lookup {
    Box::pin(async move {
        let refs: Vec<&str> = asked.iter().map(String::as_str).collect();
        let call = shared.vault.resolve(&tenant, &refs);
        let found = match vault_call(&shared, "resolve", timeout, refs.len(), call).await {
            Ok(found) => found,
            Err(why) => {
                tracing::warn!(error = %why, placeholders = asked.len(), "tenant-wide lookup failed: left in place");
                vec![None; asked.len()]
            }
        };
        asked.into_iter().zip(found).collect()
    })
}

/// One vault call, bounded by `timeout` and counted in the vault metrics (latency by op, calls by op and
/// result). An answer without one item per each of the `n` asked is an error. Errors never hold an original.
async fn vault_call<T>(
    shared: &Shared,
    op: &str,
    timeout: Duration,
    n: usize,
    call: impl Future<Output = Result<Vec<T>, maskgate_vault::VaultError>>,
) -> Result<Vec<T>, String> {
    let t = Instant::now();
    let r = tokio::time::timeout(timeout, call).await;
    let m = &shared.metrics;
    m.vault_latency
        .get_or_create(&OpLabel { op: op.into() })
        .observe(t.elapsed().as_secs_f64());
    let (result, out) = match r {
        Ok(Ok(v)) if v.len() == n => ("ok", Ok(v)),
        Ok(Ok(_)) => (
            "error",
            Err("the vault answered for another number of values".to_string()),
        ),
        Ok(Err(e)) => ("error", Err(e.to_string())),
        Err(_) => ("timeout", Err("timed out".to_string())),
    };
    m.vault_ops
        .get_or_create(&VaultOp {
            op: op.into(),
            result: result.into(),
        })
        .inc();
    out
}

/// Unmasks a whole response body: JSON strings, else text; bytes that are neither pass unchanged.
fn unmask_body<R: Resolver>(decoded: &[u8], is_json: bool, r: &R, stats: &mut UnmaskStats) -> Option<Vec<u8>> {
    if is_json {
        if let Ok(v) = unmask_json(decoded, r, stats) {
            return Some(v);
        }
    }
    let s = std::str::from_utf8(decoded).ok()?;
    Some(unmask_text(s, r, stats).into_owned().into_bytes())
}

/// One access-log line, written when the response ends (or the client goes away).
pub struct AccessLog {
    shared: Arc<Shared>,
    pub request_id: String,
    pub tenant: String,
    /// Route host (configured) or the redacted requested host.
    pub host: String,
    pub metric_host: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub start: Instant,
    pub upstream: Duration,
    pub masked: Vec<(String, u64)>,
    pub unmask: UnmaskStats,
    pub code: Option<&'static str>,
    pub streamed: bool,
    pub outcome: &'static str,
    emitted: bool,
}

impl Drop for AccessLog {
    /// The request was dropped before its response was complete: the client went away (the upstream call, if
    /// any, is cancelled with it).
    fn drop(&mut self) {
        if !self.emitted {
            if self.status == 0 {
                self.status = 499;
            }
            self.outcome = "client_gone";
            self.emit();
        }
    }
}

impl AccessLog {
    fn emit(&mut self) {
        if std::mem::replace(&mut self.emitted, true) {
            return;
        }
        let total = self.start.elapsed();
        let m = &self.shared.metrics;
        m.requests
            .get_or_create(&HostStatus {
                host: self.metric_host.clone(),
                status: self.status,
            })
            .inc();
        m.duration
            .get_or_create(&HostLabel {
                host: self.metric_host.clone(),
            })
            .observe(total.as_secs_f64());
        m.unmasked.inc_by(self.unmask.resolved);
        m.unmask_misses.inc_by(self.unmask.misses);
        let masked: serde_json::Map<String, serde_json::Value> =
            self.masked.iter().map(|(k, n)| (k.clone(), (*n).into())).collect();
        let masked = serde_json::Value::Object(masked).to_string();
        tracing::info!(
            target: "maskgate::access",
            request_id = %self.request_id,
            tenant = %self.tenant,
            host = %self.host,
            method = %self.method,
            path = %self.path,
            status = self.status,
            code = self.code.unwrap_or(""),
            bytes_in = self.bytes_in,
            bytes_out = self.bytes_out,
            duration_ms = total.as_secs_f64() * 1000.0,
            upstream_ms = self.upstream.as_secs_f64() * 1000.0,
            masked = %masked,
            unmasked = self.unmask.resolved,
            unmask_misses = self.unmask.misses,
            streamed = self.streamed,
            outcome = self.outcome,
            "request"
        );
    }
}

/// Replaces every identifier the masker finds in `s` by `[kind]`: for log fields that come from the client.
pub fn redact(masker: &Masker, s: &str) -> String {
    let plan = masker.plan_text(s);
    let mut out = s.to_string();
    let mut entries: Vec<_> = plan.entries().iter().collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.original.len()));
    for e in entries {
        out = out.replace(e.original.as_ref(), &format!("[{}]", e.prefix));
    }
    out
}

fn request_id(headers: &HeaderMap) -> String {
    if let Some(v) = headers.get("x-request-id").and_then(|v| v.to_str().ok()) {
        if !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()) {
            return v.to_string();
        }
    }
    let mut b = [0u8; 16];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn host_only(h: &str) -> String {
    let h = h.trim();
    let h = if let Some(rest) = h.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        h.rsplit_once(':')
            .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
            .map(|(a, _)| a)
            .unwrap_or(h)
    };
    h.trim_end_matches('.').to_ascii_lowercase()
}

/// The route and the path to forward (prefix stripped in base-URL mode).
fn route<'a>(rt: &'a Runtime, req: &Request<Incoming>) -> Result<(&'a RouteRt, String), (ApiError, Option<String>)> {
    let path = req.uri().path();
    if let Some(h) = req.headers().get(X_ORIGINAL_HOST) {
        let host = host_only(h.to_str().unwrap_or(""));
        if host.is_empty() {
            return Err((ApiError::missing_host(), None));
        }
        return match rt.route_by_host(&host) {
            Some(r) => Ok((r, path.to_string())),
            None => Err((ApiError::unauthorized_host(&host), Some(host))),
        };
    }
    let mut best: Option<(&RouteRt, usize)> = None;
    for r in &rt.routes {
        if let Some(p) = &r.cfg.path_prefix {
            let matches = path == p || (path.starts_with(p.as_str()) && path.as_bytes().get(p.len()) == Some(&b'/'));
            if matches && best.is_none_or(|(_, l)| p.len() > l) {
                best = Some((r, p.len()));
            }
        }
    }
    if let Some((r, l)) = best {
        let rest = &path[l..];
        return Ok((r, if rest.is_empty() { "/".into() } else { rest.to_string() }));
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().host().map(str::to_string))
        .map(|h| host_only(&h))
        .unwrap_or_default();
    if host.is_empty() {
        return Err((ApiError::missing_host(), None));
    }
    match rt.route_by_host(&host) {
        Some(r) => Ok((r, path.to_string())),
        None => Err((ApiError::unauthorized_host(&host), Some(host))),
    }
}

/// A `policy = "redis"` check: one script call in the vault's Redis, bounded by the vault's timeout and breaker.
async fn redis_limit(
    shared: &Shared,
    scope: &str,
    key: &str,
    rl: &crate::config::RateLimit,
) -> Result<Decision, String> {
    let Some(redis) = &shared.redis else {
        return Err("the running vault is not Redis (backend changes need a restart)".into());
    };
    let ws = crate::ratelimit::windows(rl);
    let spec: Vec<(u64, u64)> = ws.iter().map(|(w, l)| (w.secs(), *l)).collect();
    let now = crate::ratelimit::now_secs();
    // The limit's identity: scope, what it counts by, and its windows (two limits never share counters).
    let id = format!("{scope}\0{:?}\0{spec:?}\0{key}", rl.limit_by);
    let (allowed, counts) = redis.rate_limit(&id, &spec, now).await.map_err(|e| e.to_string())?;
    Ok(crate::ratelimit::decide(&ws, allowed, &counts, now))
}

/// The tenant of a request.
///
/// `x-maskgate-tenant` is honoured only from an authenticated sidecar: one that presents the configured shared
/// token (`x-maskgate-sidecar-token`, compared in constant time) or, on the TLS listener, a client certificate
/// that chains to `gateway.tls.client_ca` — whichever `gateway.sidecar_auth` accepts. From anyone else it is
/// ignored and the route's tenant (else `default`) applies. The tenant must be 1 to 128 visible ASCII characters.
fn tenant_for(rt: &Runtime, route: &RouteRt, req: &Request<Incoming>) -> String {
    if !from_trusted_sidecar(rt, req) {
        return route.tenant.clone();
    }
    match req.headers().get(X_TENANT).and_then(|v| v.to_str().ok()) {
        Some(t) if !t.is_empty() && t.len() <= 128 && t.bytes().all(|b| b.is_ascii_graphic()) => t.to_string(),
        _ => route.tenant.clone(),
    }
}

/// True when the request comes from a sidecar authenticated the way `gateway.sidecar_auth` asks.
pub fn from_trusted_sidecar(rt: &Runtime, req: &Request<Incoming>) -> bool {
    use crate::config::SidecarAuth;
    let auth = rt.config.gateway.sidecar_auth;
    let by_token = || {
        rt.sidecar_token.as_ref().is_some_and(|token| {
            req.headers()
                .get(X_SIDECAR_TOKEN)
                .is_some_and(|v| crate::admin::ct_eq(v.as_bytes(), token.as_bytes()))
        })
    };
    let by_cert = || req.extensions().get::<crate::tls::VerifiedClientCert>().is_some();
    match auth {
        SidecarAuth::Token => by_token(),
        SidecarAuth::Mtls => by_cert(),
        SidecarAuth::Either => by_cert() || by_token(),
    }
}

pub async fn handle(
    shared: Arc<Shared>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, Infallible> {
    let start = Instant::now();
    let rt = shared.runtime();
    let rid = request_id(req.headers());
    let mut log = Some(AccessLog {
        shared: shared.clone(),
        request_id: redact(&rt.masker, &rid),
        tenant: String::new(),
        host: String::new(),
        metric_host: "unrouted".into(),
        method: req.method().to_string(),
        path: redact(&rt.masker, req.uri().path()),
        status: 0,
        bytes_in: 0,
        bytes_out: 0,
        start,
        upstream: Duration::ZERO,
        masked: Vec::new(),
        unmask: UnmaskStats::default(),
        code: None,
        streamed: false,
        outcome: "ok",
        emitted: false,
    });
    let mut limits: Vec<Decision> = Vec::new();
    let res = proxy(&shared, &rt, peer, req, &mut log, &mut limits).await;
    let mut resp = match res {
        Ok(r) => r,
        Err(e) => {
            if let Some(l) = log.as_mut() {
                l.code = Some(e.code);
            }
            shared
                .metrics
                .denied
                .get_or_create(&CodeLabel { code: e.code.into() })
                .inc();
            e.response()
        }
    };
    for d in &limits {
        d.headers(resp.headers_mut());
    }
    if let Ok(v) = HeaderValue::from_str(&rid) {
        resp.headers_mut().insert("x-request-id", v);
    }
    if let Some(mut l) = log {
        // Not streamed: the response is complete now.
        let upstream = l.upstream;
        shared
            .metrics
            .overhead
            .observe(start.elapsed().saturating_sub(upstream).as_secs_f64());
        l.status = resp.status().as_u16();
        l.bytes_out = resp.body().size_hint().exact().unwrap_or(0);
        l.emit();
    }
    Ok(resp)
}

enum BodyKind {
    Json,
    Text,
    Other,
}

fn body_kind(headers: &HeaderMap, body: &[u8]) -> BodyKind {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    match ct.as_deref() {
        None | Some("") => {
            let first = body.iter().find(|b| !b.is_ascii_whitespace());
            if matches!(first, Some(b'{') | Some(b'[')) {
                BodyKind::Json
            } else {
                BodyKind::Text
            }
        }
        Some(ct) if ct == "application/json" || ct.ends_with("+json") => BodyKind::Json,
        Some(ct)
            if ct.starts_with("text/")
                || ct == "application/x-www-form-urlencoded"
                || ct == "application/x-ndjson"
                || ct == "application/jsonl"
                || ct == "application/xml"
                || ct.ends_with("+xml") =>
        {
            BodyKind::Text
        }
        _ => BodyKind::Other,
    }
}

fn is_credential(name: &HeaderName) -> bool {
    CREDENTIAL_HEADERS.contains(&name.as_str())
}

/// Hop-by-hop headers and those named in `Connection`.
fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in HOP_BY_HOP {
        h.remove(n);
    }
}

/// The client's Accept-Encoding reduced to the codings the gateway can decode.
fn accept_encoding(h: &HeaderMap) -> Option<HeaderValue> {
    let mut out: Vec<&str> = Vec::new();
    for v in h
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        for part in v.split(',') {
            let mut it = part.split(';');
            let name = it.next().unwrap_or("").trim().to_ascii_lowercase();
            let zero = it.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            if zero {
                continue;
            }
            for c in ["gzip", "deflate", "br", "zstd"] {
                if name == c && !out.contains(&c) {
                    out.push(c);
                }
            }
        }
    }
    if out.is_empty() {
        None
    } else {
        HeaderValue::from_str(&out.join(", ")).ok()
    }
}

/// A hash of the client's own credential, as a rate-limit key (the secret itself is never kept).
fn client_credential_key(req: &Request<Incoming>) -> Option<String> {
    let from_header = CREDENTIAL_HEADERS
        .iter()
        .find_map(|h| req.headers().get(*h))
        .map(|v| v.as_bytes().to_vec());
    let from_query = || {
        req.uri()
            .query()?
            .split('&')
            .find_map(|kv| kv.strip_prefix("key="))
            .map(|v| v.as_bytes().to_vec())
    };
    let secret = from_header.or_else(from_query)?;
    let d = ring::digest::digest(&ring::digest::SHA256, &secret);
    Some(format!(
        "c:{}",
        d.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

fn strip_key_param(query: &str) -> String {
    query
        .split('&')
        .filter(|kv| {
            let name = kv.split('=').next().unwrap_or("");
            name != "key"
        })
        .collect::<Vec<_>>()
        .join("&")
}

async fn proxy(
    shared: &Arc<Shared>,
    rt: &Arc<Runtime>,
    peer: SocketAddr,
    req: Request<Incoming>,
    log: &mut Option<AccessLog>,
    limits: &mut Vec<Decision>,
) -> Result<Response<RespBody>, ApiError> {
    let cfg = &rt.config.gateway;
    let l = log.as_mut().expect("log present until streamed");
    let (route, path) = match route(rt, &req) {
        Ok(x) => x,
        Err((e, host)) => {
            // A host off the list is client data that may itself be an identifier: never logged.
            if host.is_some() {
                l.host = "<unlisted>".into();
            }
            return Err(e);
        }
    };
    l.host = route.host.clone();
    l.metric_host = route.host.clone();
    let tenant = tenant_for(rt, route, &req);
    l.tenant = tenant.clone();

    // Rate limits: global, then the route's.
    for (scope, rl) in [
        ("*", rt.config.rate_limit.as_ref()),
        (route.host.as_str(), route.cfg.rate_limit.as_ref()),
    ] {
        let Some(rl) = rl else { continue };
        let key = match rl.limit_by {
            LimitBy::Ip => peer.ip().to_string(),
            LimitBy::Tenant => tenant.clone(),
            LimitBy::Credential => client_credential_key(&req).unwrap_or_else(|| peer.ip().to_string()),
            LimitBy::Header => rl
                .header_name
                .as_deref()
                .and_then(|h| req.headers().get(h))
                .and_then(|v| v.to_str().ok())
                .map(|v| format!("h:{v}"))
                .unwrap_or_else(|| peer.ip().to_string()),
        };
        let d = if rl.policy == "redis" {
            match redis_limit(shared, scope, &key, rl).await {
                Ok(d) => d,
                Err(why) => {
                    shared.metrics.rate_limit_errors.inc();
                    if rl.fault_tolerant {
                        // Fail open (Kong's `fault_tolerant`): masking still fails closed on its own.
                        tracing::warn!(reason = %why, "shared rate limit unavailable; request allowed");
                        continue;
                    }
                    tracing::warn!(reason = %why, "shared rate limit unavailable; request refused");
                    return Err(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "RATE_LIMIT_UNAVAILABLE",
                        "Rate limit store unavailable; request not forwarded",
                    ));
                }
            }
        } else {
            shared.limiter.check(scope, &key, rl)
        };
        let allowed = d.allowed;
        limits.push(d);
        if !allowed {
            shared
                .metrics
                .rate_limited
                .get_or_create(&HostLabel {
                    host: route.host.clone(),
                })
                .inc();
            return Err(ApiError::rate_limited());
        }
    }

    // Credential first: no point reading a body we cannot forward.
    let credential = match &route.credential {
        None => None,
        Some((name, Ok(v))) => Some((name.clone(), v.clone())),
        Some((_, Err(why))) if !route.cfg.keep_client_credentials => {
            tracing::warn!(route = %route.host, reason = %why, "route credential unavailable");
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "CREDENTIAL_UNAVAILABLE",
                "The gateway has no credential for this upstream",
            ));
        }
        Some((_, Err(_))) => None,
    };

    let (parts, body) = req.into_parts();
    let limit = cfg.max_request_body;
    if let Some(cl) = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if cl > limit {
            return Err(ApiError::body_too_large(limit));
        }
    }
    let raw = match tokio::time::timeout(cfg.client_body_timeout, Limited::new(body, limit as usize).collect()).await {
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "REQUEST_TIMEOUT",
                "The request body was not received in time",
            ))
        }
        Ok(Err(e)) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                return Err(ApiError::body_too_large(limit));
            }
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "Could not read the request body",
            ));
        }
        Ok(Ok(c)) => c.to_bytes(),
    };
    l.bytes_in = raw.len() as u64;
    let codings = parse_codings(&parts.headers).map_err(ApiError::unsupported)?;
    let decoded: Bytes = if codings.is_empty() {
        raw
    } else {
        match cpu_bound(raw.len(), || decode_all(&codings, &raw, limit)) {
            Ok(b) => b.into(),
            Err(true) => return Err(ApiError::body_too_large(limit)),
            Err(false) => {
                return Err(ApiError::bad_body(
                    "The request body could not be decoded (Content-Encoding)",
                ))
            }
        }
    };

    // Plan the body and the query string, assign all placeholders in one vault call.
    let masker = &route.masker;
    let keep = route.cfg.keep_client_credentials;
    let query = parts
        .uri
        .query()
        .map(|q| if keep { q.to_string() } else { strip_key_param(q) });
    let passthrough = route.cfg.passthrough_unmaskable;
    let body_plan = if decoded.is_empty() {
        None
    } else {
        let text_plan = || std::str::from_utf8(&decoded).ok().map(|s| masker.plan_text(s));
        let kind = body_kind(&parts.headers, &decoded);
        cpu_bound(decoded.len(), || match kind {
            BodyKind::Json => match masker.plan_json(&decoded) {
                Ok(p) => Ok(Some(p)),
                Err(e) => {
                    if passthrough {
                        Ok(text_plan())
                    } else {
                        tracing::debug!(error = %e, "request body refused");
                        Err(ApiError::bad_body("The request body is not valid JSON"))
                    }
                }
            },
            BodyKind::Text => match text_plan() {
                Some(p) => Ok(Some(p)),
                None if passthrough => Ok(None),
                None => Err(ApiError::bad_body("The request body is not valid UTF-8 text")),
            },
            BodyKind::Other if passthrough => Ok(None),
            BodyKind::Other => Err(ApiError::unsupported(
                "Only JSON and text request bodies can be masked; this route does not forward others",
            )),
        })?
    };
    let query_plan = query.as_deref().filter(|q| !q.is_empty()).map(|q| masker.plan_text(q));
    let n_body = body_plan.as_ref().map_or(0, |p| p.entries().len());
    let entries: Vec<Entry<'_>> = body_plan
        .iter()
        .chain(query_plan.iter())
        .flat_map(|p| p.entries())
        .map(Entry::from)
        .collect();
    let placeholders: Vec<String> = if entries.is_empty() {
        Vec::new()
    } else {
        // The embedded vault does its work when called (~0.3 µs a value, under its shard's lock): thousands of
        // values are work enough to leave the worker for. (Redis only builds its future here.)
        let work = if shared.vault.assigns_when_called() {
            entries.len() * VAULT_VALUE_COST
        } else {
            0
        };
        let call = cpu_bound(work, || shared.vault.assign(&tenant, &entries));
        match vault_call(shared, "assign", cfg.vault_timeout, entries.len(), call).await {
            Ok(p) => p,
            Err(why) => {
                tracing::warn!(error = %why, "vault assign failed");
                return Err(ApiError::vault_unavailable());
            }
        }
    };
    drop(entries);
    let mut map = RequestMap::new();
    let mut masked_counts: Vec<(String, u64)> = Vec::new();
    let mut add_counts = |counts: Vec<(String, u64)>| {
        for (k, n) in counts {
            match masked_counts.iter_mut().find(|(x, _)| *x == k) {
                Some(c) => c.1 += n,
                None => masked_counts.push((k, n)),
            }
        }
    };
    let out_body: Bytes = match body_plan {
        Some(p) => {
            let m = cpu_bound(decoded.len(), || p.finish(&placeholders[..n_body])).map_err(|e| {
                tracing::error!(error = %e, "masking failed; request not forwarded");
                ApiError::masking_failed()
            })?;
            map.extend(m.map);
            add_counts(m.counts);
            m.body.into()
        }
        None => decoded,
    };
    let out_query = match (query_plan, query.as_deref()) {
        (Some(p), _) => {
            let m = p
                .finish(&placeholders[n_body..])
                .map_err(|_| ApiError::masking_failed())?;
            map.extend(m.map);
            add_counts(m.counts);
            Some(String::from_utf8(m.body).map_err(|_| ApiError::masking_failed())?)
        }
        (None, q) => q.map(str::to_string),
    };
    for (k, n) in &masked_counts {
        shared
            .metrics
            .masked
            .get_or_create(&KindLabel { kind: k.clone() })
            .inc_by(*n);
    }
    l.masked = masked_counts;

    // The upstream request.
    let up = &route.upstream;
    let mut pq = format!("{}{}", up.base_path, path);
    if let Some(q) = out_query.filter(|q| !q.is_empty()) {
        pq.push('?');
        pq.push_str(&q);
    }
    let uri = http::Uri::builder()
        .scheme(up.scheme.clone())
        .authority(up.authority.clone())
        .path_and_query(pq)
        .build()
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", "Invalid request path"))?;
    let client_headers = parts.headers;
    let mut headers = client_headers.clone();
    strip_hop_by_hop(&mut headers);
    for h in [
        header::HOST,
        header::CONTENT_LENGTH,
        header::CONTENT_ENCODING,
        header::EXPECT,
        header::ACCEPT_ENCODING,
        HeaderName::from_static(X_ORIGINAL_HOST),
        HeaderName::from_static(X_TENANT),
        HeaderName::from_static(X_SIDECAR_TOKEN),
    ] {
        headers.remove(h);
    }
    if let Some(ae) = accept_encoding(&client_headers) {
        headers.insert(header::ACCEPT_ENCODING, ae);
    }
    if !keep {
        let creds: Vec<HeaderName> = headers.keys().filter(|k| is_credential(k)).cloned().collect();
        for c in creds {
            headers.remove(c);
        }
    }
    if let Some((name, value)) = credential {
        headers.insert(name, value);
    }
    let method = parts.method.clone();
    let has_body = !out_body.is_empty() || matches!(method, Method::POST | Method::PUT | Method::PATCH);
    if has_body {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(out_body.len()));
    }
    let build = || {
        let mut r = Request::new(Full::new(out_body.clone()));
        *r.method_mut() = method.clone();
        *r.uri_mut() = uri.clone();
        *r.headers_mut() = headers.clone();
        r
    };

    let t_up = Instant::now();
    let send = async {
        let mut attempt = 0;
        loop {
            match rt.client.request(build()).await {
                // Nothing was sent on a failed connect: one retry is safe.
                Err(e) if e.is_connect() && attempt == 0 && !crate::upstream::is_timeout(&e) => attempt += 1,
                r => return r,
            }
        }
    };
    let resp = match tokio::time::timeout(cfg.first_byte_timeout, send).await {
        Err(_) => return Err(ApiError::upstream_timeout()),
        Ok(Err(e)) => {
            let timeout = crate::upstream::is_timeout(&e);
            tracing::warn!(route = %route.host, error = %e, "upstream request failed");
            return Err(if timeout {
                ApiError::upstream_timeout()
            } else {
                ApiError::unreachable()
            });
        }
        Ok(Ok(r)) => r,
    };
    l.upstream = t_up.elapsed();
    shared
        .metrics
        .upstream
        .get_or_create(&HostLabel {
            host: route.host.clone(),
        })
        .observe(l.upstream.as_secs_f64());

    // The response.
    let (mut rparts, rbody) = resp.into_parts();
    strip_hop_by_hop(&mut rparts.headers);
    let no_body = method == Method::HEAD
        || rparts.status == StatusCode::NO_CONTENT
        || rparts.status == StatusCode::NOT_MODIFIED
        || rparts.status.is_informational();
    let map = Arc::new(map);
    let tenant_wide = route.cfg.resolve == ResolveScope::Tenant;
    if no_body || (map.is_empty() && !tenant_wide) {
        // Nothing of ours can be in it: pass it through as it is (with the idle timeout).
        return Ok(stream_response(rparts, rbody, None, None, cfg.idle_timeout, log, false));
    }
    let ct = rparts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let codings = match parse_codings(&rparts.headers) {
        Ok(c) => c,
        Err(_) => {
            tracing::warn!(route = %route.host, "unknown response Content-Encoding: not unmasked");
            return Ok(stream_response(rparts, rbody, None, None, cfg.idle_timeout, log, false));
        }
    };
    if let Some(fmt) = StreamFormat::detect(&ct, &route.host, &path) {
        let decoder = Decoder::new(&codings, u64::MAX).map_err(|_| ApiError::unreachable())?;
        rparts.headers.remove(header::CONTENT_LENGTH);
        rparts.headers.remove(header::CONTENT_ENCODING);
        let unmasker = StreamUnmasker::new(fmt, AnswerMap::new(map));
        let lookup = tenant_wide.then(|| TenantLookup {
            shared: shared.clone(),
            tenant: tenant.clone(),
            timeout: cfg.vault_timeout,
        });
        return Ok(stream_response(
            rparts,
            rbody,
            Some(decoder),
            Some((unmasker, lookup)),
            cfg.idle_timeout,
            log,
            true,
        ));
    }
    let ct_main = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let is_json = ct_main == "application/json" || ct_main.ends_with("+json");
    let is_text = ct_main.is_empty() || ct_main.starts_with("text/");
    if !is_json && !is_text {
        return Ok(stream_response(rparts, rbody, None, None, cfg.idle_timeout, log, false));
    }
    let t_body = Instant::now();
    let collected = tokio::time::timeout(
        cfg.idle_timeout,
        Limited::new(rbody, cfg.max_response_body as usize).collect(),
    )
    .await;
    l.upstream += t_body.elapsed();
    let raw = match collected {
        Err(_) => return Err(ApiError::upstream_timeout()),
        Ok(Err(e)) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                return Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "RESPONSE_TOO_LARGE",
                    "Upstream response too large",
                ));
            }
            return Err(ApiError::unreachable());
        }
        Ok(Ok(c)) => c.to_bytes(),
    };
    let decoded = match cpu_bound(raw.len(), || decode_all(&codings, &raw, cfg.max_response_body)) {
        Ok(d) => d,
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "UPSTREAM_UNREACHABLE",
                "Upstream response could not be decoded",
            ))
        }
    };
    let mut resolver = AnswerMap::new(map);
    if tenant_wide {
        // A first pass finds the placeholders that are not the request's; one vault call looks them up.
        let probe = resolver.probe();
        cpu_bound(decoded.len(), || {
            unmask_body(&decoded, is_json, &probe, &mut UnmaskStats::default())
        });
        let asked = probe.recorded();
        if !asked.is_empty() {
            let found = look_up(shared.clone(), tenant.clone(), cfg.vault_timeout, asked).await;
            resolver.learn(found);
        }
    }
    let mut stats = UnmaskStats::default();
    let out = cpu_bound(decoded.len(), || unmask_body(&decoded, is_json, &resolver, &mut stats)).unwrap_or(decoded);
    l.unmask = stats;
    rparts.headers.remove(header::CONTENT_ENCODING);
    rparts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
    Ok(Response::from_parts(rparts, full(out)))
}

fn stream_response(
    mut parts: http::response::Parts,
    body: Incoming,
    decoder: Option<Decoder>,
    unmasker: Option<(StreamUnmasker<AnswerMap>, Option<TenantLookup>)>,
    idle: Duration,
    log: &mut Option<AccessLog>,
    unmasking: bool,
) -> Response<RespBody> {
    let (unmasker, lookup) = match unmasker {
        Some((u, l)) => (Some(u), l),
        None => (None, None),
    };
    let mut l = log.take().expect("log present");
    l.status = parts.status.as_u16();
    l.streamed = true;
    l.shared
        .metrics
        .overhead
        .observe(l.start.elapsed().saturating_sub(l.upstream).as_secs_f64());
    if unmasking {
        parts.headers.remove(header::CONTENT_LENGTH);
    }
    let b = GatewayBody {
        inner: body,
        decoder,
        unmasker,
        idle,
        sleep: Box::pin(tokio::time::sleep(idle)),
        done: false,
        log: Some(l),
        out: Vec::new(),
        lookup,
        pending: None,
    };
    Response::from_parts(parts, http_body_util::BodyExt::boxed_unsync(b))
}

/// A response body read from the upstream frame by frame: decoded and unmasked when asked, with an idle timeout;
/// writes the access log when it ends or is dropped (client gone).
struct GatewayBody {
    inner: Incoming,
    decoder: Option<Decoder>,
    unmasker: Option<StreamUnmasker<AnswerMap>>,
    idle: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    done: bool,
    log: Option<AccessLog>,
    out: Vec<u8>,
    /// Tenant-wide routes: where to look up placeholders that are not the request's.
    lookup: Option<TenantLookup>,
    /// A decoded chunk (and whether it is the last) waiting for its placeholders to be looked up.
    pending: Option<(Lookup, Bytes, bool)>,
}

/// What `poll_frame` answers.
type FramePoll = Poll<Option<Result<Frame<Bytes>, BoxError>>>;

/// What a streamed response of a tenant-wide route needs to look placeholders up.
struct TenantLookup {
    shared: Arc<Shared>,
    tenant: String,
    timeout: Duration,
}

impl GatewayBody {
    fn finish_log(&mut self, outcome: &'static str) {
        if let Some(mut l) = self.log.take() {
            if let Some(u) = &self.unmasker {
                l.unmask = u.stats();
            }
            l.outcome = outcome;
            l.emit();
        }
    }

    /// The chunk decoded (the frame itself, not a copy, when the body is not compressed).
    fn decode(&mut self, data: Bytes, last: bool) -> Result<Bytes, BoxError> {
        match self.decoder.as_mut() {
            Some(d) if !d.is_identity() => {
                let mut decoded = Vec::new();
                d.feed(&data, &mut decoded)?;
                if last {
                    d.finish(&mut decoded)?;
                }
                Ok(decoded.into())
            }
            _ => Ok(data),
        }
    }

    /// On a tenant-wide route, starts looking up the placeholders in `input` that are neither the request's nor
    /// looked up already (found by feeding it to a copy of the unmasker). Gives `input` back when there are none.
    fn start_lookup(&mut self, input: Bytes, last: bool) -> Result<(), Bytes> {
        let (Some(lookup), Some(u)) = (self.lookup.as_ref(), self.unmasker.as_ref()) else {
            return Err(input);
        };
        let mut probe = u.clone();
        *probe.resolver_mut() = u.resolver().probe();
        let mut scratch = Vec::new();
        // Errors show in the real pass.
        let _ = probe.feed(&input, &mut scratch);
        if last {
            let _ = probe.finish(&mut scratch);
        }
        let asked = probe.resolver().recorded();
        if asked.is_empty() {
            return Err(input);
        }
        let fut = look_up(lookup.shared.clone(), lookup.tenant.clone(), lookup.timeout, asked);
        self.pending = Some((fut, input, last));
        Ok(())
    }

    fn emit(&mut self, input: Bytes, last: bool) -> Result<Bytes, BoxError> {
        let Some(u) = self.unmasker.as_mut() else {
            return Ok(input);
        };
        self.out.clear();
        u.feed(&input, &mut self.out)
            .map_err(|e| -> BoxError { e.to_string().into() })?;
        if last {
            u.finish(&mut self.out)
                .map_err(|e| -> BoxError { e.to_string().into() })?;
        }
        Ok(Bytes::from(std::mem::take(&mut self.out)))
    }

    /// The frame for the unmasked bytes of a chunk (the last one ends the response).
    fn frame(&mut self, r: Result<Bytes, BoxError>, last: bool) -> Option<FramePoll> {
        match r {
            Ok(b) => {
                if let Some(l) = self.log.as_mut() {
                    l.bytes_out += b.len() as u64;
                }
                if last {
                    self.done = true;
                    self.finish_log("ok");
                    if b.is_empty() {
                        return Some(Poll::Ready(None));
                    }
                } else if b.is_empty() {
                    return None;
                }
                Some(Poll::Ready(Some(Ok(Frame::data(b)))))
            }
            Err(e) => {
                self.done = true;
                self.finish_log("stream_error");
                Some(Poll::Ready(Some(Err(e))))
            }
        }
    }

    /// Decodes a chunk and unmasks it, unless it waits for a tenant-wide lookup first.
    fn chunk(&mut self, data: Bytes, last: bool) -> Option<FramePoll> {
        let input = match self.decode(data, last) {
            Ok(i) => i,
            Err(e) => return self.frame(Err(e), last),
        };
        let input = match self.start_lookup(input, last) {
            Ok(()) => return None,
            Err(input) => input,
        };
        let r = self.emit(input, last);
        self.frame(r, last)
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if let Some((fut, _, _)) = this.pending.as_mut() {
                // Bounded by the vault timeout.
                let Poll::Ready(found) = fut.as_mut().poll(cx) else {
                    return Poll::Pending;
                };
                let (_, input, last) = this.pending.take().expect("pending");
                if let Some(u) = this.unmasker.as_mut() {
                    u.resolver_mut().learn(found);
                }
                let r = this.emit(input, last);
                match this.frame(r, last) {
                    Some(p) => return p,
                    None => continue,
                }
            }
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => {
                    if this.sleep.as_mut().poll(cx).is_ready() {
                        this.done = true;
                        this.finish_log("upstream_idle_timeout");
                        return Poll::Ready(Some(Err("upstream idle timeout".into())));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Some(Ok(frame))) => {
                    let deadline = tokio::time::Instant::now() + this.idle;
                    this.sleep.as_mut().reset(deadline);
                    let Ok(data) = frame.into_data() else { continue };
                    if let Some(p) = this.chunk(data, false) {
                        return p;
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    tracing::warn!(error = %e, "upstream body failed mid-stream");
                    this.finish_log("upstream_error");
                    return Poll::Ready(Some(Err(Box::new(e))));
                }
                Poll::Ready(None) => {
                    // `done` is set once the last chunk went out (after a lookup, if it needs one).
                    if let Some(p) = this.chunk(Bytes::new(), true) {
                        return p;
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

impl Drop for GatewayBody {
    fn drop(&mut self) {
        if !self.done {
            self.finish_log("client_gone");
        }
    }
}
