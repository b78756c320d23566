//! The Redis backend: several gateway replicas share one Redis and agree on every placeholder.
//!
//! **One round trip per request.** [`Vault::assign`] runs one Lua script (EVALSHA, loaded again on NOSCRIPT)
//! that, for every entry, returns the existing placeholder (renewing both directions' TTL) or allocates the next
//! number for (tenant, kind) with INCR and writes both directions, atomically. [`Vault::resolve`] is one MGET,
//! behind a bounded local cache.
//!
//! **Layout** (Redis Cluster compatible: every key of a tenant carries the tenant's hash tag, so a script only
//! touches one slot):
//! ```text
//! <prefix>:{t:<tenant tag>}:n:<KIND PREFIX>          counter (INCR), never expires
//! <prefix>:{t:<tenant tag>}:f:<key id>:<hmac>         forward: placeholder, sliding TTL
//! <prefix>:{t:<tenant tag>}:r:<placeholder>           reverse: AES-256-GCM(original), sliding TTL
//! <prefix>:{rl:<hmac>}:<window secs>:<window start>   rate-limit counter (policy = "redis")
//! ```
//! `<tenant tag>` is the first 16 bytes of SHA-256 of the tenant name, hex (tenant names are configuration, not
//! masked values; hashing keeps them out of the hash-tag syntax). `<hmac>` is HMAC-SHA256 over
//! `(tenant, kind prefix, original)` with the index key of a vault key: no key name holds an original or
//! anything reversible. The reverse value is `1 | key id | nonce | AES-256-GCM(original) | tag`, its associated
//! data the tenant and kind, so a value copied to another tenant does not decrypt.
//!
//! **Rotation.** Keys are a list, the first current. The script gets one forward-key candidate per key; a mapping
//! found under an older key is moved to the current key and its original re-encrypted with it (the request
//! carries the new ciphertext), so mappings in use migrate by themselves and the others expire with the TTL,
//! after which the old key can leave the list.
//!
//! **Fail closed.** Every call is bounded by the configured timeout and goes through a circuit breaker: after
//! `breaker_failures` consecutive failures calls are refused at once (`VaultError::Unavailable`) for
//! `breaker_cooldown`, then one probe decides. The connection manager reconnects by itself.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, Script, Value};
use ring::digest;

use crate::breaker::Breaker;
use crate::keys::{hex, Keyring};
use crate::{BoxFuture, Entry, Vault, VaultError};

/// Everything but the secrets' values is plain configuration.
#[derive(Clone)]
pub struct RedisVaultConfig {
    /// `redis://[user[:password]@]host[:port][/db]` or `rediss://…` (TLS, rustls with the ring provider).
    pub url: String,
    /// Redis Cluster: seed nodes (`redis://` or `rediss://`, all the same scheme); when not empty, `url` is not
    /// used. Every key of a tenant carries the tenant's hash tag, so each script call touches one slot.
    pub cluster: Vec<String>,
    /// ACL user name (overrides one in the URL).
    pub username: Option<String>,
    /// Password (overrides one in the URL); read from env or a file by the caller.
    pub password: Option<String>,
    /// PEM CA certificates trusted for `rediss://` instead of the system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// `rediss://` with a client certificate (mTLS, `tls-auth-clients yes`): the PEM chain, leaf first.
    pub client_cert_pem: Option<Vec<u8>>,
    /// The client certificate's PEM private key (a secret: never printed).
    pub client_key_pem: Option<Vec<u8>>,
    /// First part of every key name (no `{`, `}`, `:` or spaces).
    pub key_prefix: String,
    /// Sliding time to live of a mapping.
    pub ttl: Duration,
    /// Longest wait for one Redis call (and for a new connection's handshake).
    pub timeout: Duration,
    /// Longest wait for a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Consecutive failures that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker refuses calls before one probe.
    pub breaker_cooldown: Duration,
    /// Entries of the local `resolve` cache (0: no cache).
    pub cache_entries: usize,
    /// How long a cached resolution is trusted.
    pub cache_ttl: Duration,
}

impl Default for RedisVaultConfig {
    fn default() -> Self {
        RedisVaultConfig {
            url: "redis://127.0.0.1:6379".into(),
            cluster: Vec::new(),
            username: None,
            password: None,
            ca_pem: None,
            client_cert_pem: None,
            client_key_pem: None,
            key_prefix: "maskgate".into(),
            ttl: Duration::from_secs(7 * 24 * 3600),
            timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(1),
            breaker_failures: 3,
            breaker_cooldown: Duration::from_secs(1),
            cache_entries: 10_000,
            cache_ttl: Duration::from_secs(300),
        }
    }
}

impl std::fmt::Debug for RedisVaultConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisVaultConfig")
            .field("url", &redact_url(&self.url))
            .field(
                "cluster",
                &self.cluster.iter().map(|u| redact_url(u)).collect::<Vec<_>>(),
            )
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_pem", &self.ca_pem.is_some())
            .field("client_cert", &self.client_cert_pem.is_some())
            .field("key_prefix", &self.key_prefix)
            .field("ttl", &self.ttl)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The URL with any password replaced by `<redacted>` (for logs and the admin API).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            if userinfo.contains(':') {
                format!("{scheme}://{user}:<redacted>@{host}{tail}")
            } else {
                format!("{scheme}://<redacted>@{host}{tail}")
            }
        }
        None => url.to_string(),
    }
}

/// Checks a URL and a key prefix without connecting; the error never repeats a password.
pub fn check_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err("must start with redis:// or rediss://".into());
    }
    url.into_connection_info()
        .map(|_| ())
        .map_err(|e| format!("invalid Redis URL ({})", e.kind_str()))
}

pub fn check_key_prefix(p: &str) -> Result<(), String> {
    if p.is_empty() || p.len() > 64 || !p.bytes().all(|b| b.is_ascii_graphic() && !b"{}:".contains(&b)) {
        return Err("1 to 64 visible ASCII characters, without '{', '}' or ':'".into());
    }
    Ok(())
}

trait KindStr {
    fn kind_str(&self) -> String;
}

impl KindStr for RedisError {
    /// A description of the error that can never contain data: no key names, no values, no server text.
    fn kind_str(&self) -> String {
        if self.is_timeout() {
            "timeout".into()
        } else if self.is_connection_refusal() {
            "connection refused".into()
        } else if self.is_connection_dropped() {
            "connection dropped".into()
        } else if self.is_io_error() {
            tls_reason(&self.to_string()).unwrap_or_else(|| "i/o error".into())
        } else if let Some(code) = self.code() {
            format!("server error {}", code.chars().take(32).collect::<String>())
        } else {
            format!("{:?}", self.kind()).chars().take(64).collect()
        }
    }
}

/// A TLS failure named by the first words of rustls' message only (`UnknownIssuer`, `CertificateRequired`,
/// `certificate not valid for name`, ...): an operator must see that the CA, the name or the client certificate
/// is wrong, but nothing after the first punctuation (names, times) is repeated.
fn tls_reason(text: &str) -> Option<String> {
    let word = |rest: &str| -> String {
        rest.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == ' ')
            .take(48)
            .collect::<String>()
            .trim_end()
            .to_string()
    };
    if let Some(i) = text.find("invalid peer certificate:") {
        let w = word(&text[i + "invalid peer certificate:".len()..]);
        return Some(format!("tls: server certificate refused ({w})"));
    }
    if let Some(i) = text.find("received fatal alert:") {
        let w = word(&text[i + "received fatal alert:".len()..]);
        return Some(format!("tls: the server refused the handshake ({w})"));
    }
    None
}

const ASSIGN_LUA: &str = r#"
-- KEYS: for entry i, C forward-key candidates (current key first): KEYS[(i-1)*C + j].
-- ARGV: ttl seconds, C, key base "<prefix>:{t:<tag>}:", then per entry: kind prefix, ciphertext (current key).
local ttl = tonumber(ARGV[1])
local c = tonumber(ARGV[2])
local base = ARGV[3]
local n = (#ARGV - 3) / 2
local out = {}
for i = 1, n do
  local prefix = ARGV[2 + 2 * i]
  local ct = ARGV[3 + 2 * i]
  local k0 = (i - 1) * c
  local fwd = KEYS[k0 + 1]
  local p = false
  for j = 1, c do
    local fk = KEYS[k0 + j]
    local cand = redis.call('GET', fk)
    if cand then
      local rk = base .. 'r:' .. cand
      if redis.call('EXISTS', rk) == 1 then
        p = cand
        if j == 1 then
          redis.call('EXPIRE', fk, ttl)
          redis.call('EXPIRE', rk, ttl)
        else
          -- Found under an older key: move the mapping to the current key, re-encrypted with it.
          redis.call('SET', fwd, p, 'EX', ttl)
          redis.call('SET', rk, ct, 'EX', ttl)
          redis.call('DEL', fk)
        end
        break
      else
        -- The reverse direction is gone (expired or evicted): this forward entry is dead.
        redis.call('DEL', fk)
      end
    end
  end
  if not p then
    local ck = base .. 'n:' .. prefix
    local rk
    repeat
      local num = redis.call('INCR', ck)
      p = string.format('%s_%03d', prefix, num)
      rk = base .. 'r:' .. p
      -- A lost counter (flushed, evicted) must never hand out a number that is still mapped.
    until redis.call('EXISTS', rk) == 0
    redis.call('SET', fwd, p, 'EX', ttl)
    redis.call('SET', rk, ct, 'EX', ttl)
  end
  out[i] = p
end
return out
"#;

const RATE_LUA: &str = r#"
-- KEYS[i]: counter of window i. ARGV[i]: its limit; ARGV[n + i]: its expiry in seconds.
-- Counts only when every window has room (like the local policy). Returns {allowed, count_1, ..., count_n}.
local n = #KEYS
local counts = {}
local allowed = 1
for i = 1, n do
  local v = tonumber(redis.call('GET', KEYS[i]) or '0')
  counts[i] = v
  if v >= tonumber(ARGV[i]) then allowed = 0 end
end
if allowed == 1 then
  for i = 1, n do
    counts[i] = redis.call('INCR', KEYS[i])
    if counts[i] == 1 then redis.call('EXPIRE', KEYS[i], ARGV[n + i]) end
  end
end
table.insert(counts, 1, allowed)
return counts
"#;

/// A bounded map in two generations: inserts go to `young`; when it is full, `old` is dropped and `young`
/// becomes `old`. Hits in `old` are promoted. At most `2 * half` entries, no per-entry bookkeeping.
struct Cache {
    half: usize,
    ttl: Duration,
    young: HashMap<(Arc<str>, String), (String, Instant)>,
    old: HashMap<(Arc<str>, String), (String, Instant)>,
}

impl Cache {
    fn get(&mut self, tenant: &Arc<str>, placeholder: &str) -> Option<String> {
        if self.half == 0 {
            return None;
        }
        let k = (tenant.clone(), placeholder.to_string());
        if let Some((o, t)) = self.young.get(&k) {
            return (t.elapsed() < self.ttl).then(|| o.clone());
        }
        let (o, t) = self.old.remove(&k)?;
        if t.elapsed() >= self.ttl {
            return None;
        }
        self.insert_at(k, o.clone(), t);
        Some(o)
    }

    fn insert(&mut self, tenant: &Arc<str>, placeholder: &str, original: &str) {
        if self.half == 0 {
            return;
        }
        self.insert_at(
            (tenant.clone(), placeholder.to_string()),
            original.to_string(),
            Instant::now(),
        );
    }

    fn insert_at(&mut self, k: (Arc<str>, String), o: String, t: Instant) {
        if self.young.len() >= self.half && !self.young.contains_key(&k) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(k, (o, t));
    }

    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

/// One Redis server (a connection manager that reconnects by itself) or a Redis Cluster (a cluster connection
/// that follows the slot map and reconnects by itself). Both are cheap to clone (handles to one multiplexed
/// connection per node).
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The Redis backend of [`Vault`]. Cheap to share behind an `Arc`; safe to use from many tasks at once (one
/// multiplexed connection).
pub struct RedisVault {
    conn: Conn,
    keys: Arc<Keyring>,
    breaker: Breaker,
    config: RedisVaultConfig,
    assign_script: Script,
    rate_script: Script,
    cache: Mutex<Cache>,
    ttl_secs: u64,
    undecryptable: AtomicU64,
}

impl std::fmt::Debug for RedisVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisVault")
            .field("config", &self.config)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

fn unavailable(why: impl Into<String>) -> VaultError {
    VaultError::Unavailable(why.into())
}

impl RedisVault {
    /// Builds the client without connecting (the first call connects): a gateway can start while Redis is
    /// down, answer 503 and report not ready, and recover by itself. Must be called inside a Tokio runtime.
    pub fn new(config: RedisVaultConfig, keys: Arc<Keyring>) -> Result<RedisVault, String> {
        if config.cluster.is_empty() {
            check_url(&config.url)?;
        }
        for u in &config.cluster {
            check_url(u).map_err(|e| format!("cluster node: {e}"))?;
        }
        check_key_prefix(&config.key_prefix).map_err(|e| format!("key prefix: {e}"))?;
        if config.ttl < Duration::from_secs(1) {
            return Err("ttl: at least one second".into());
        }
        let client_tls = match (&config.client_cert_pem, &config.client_key_pem) {
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
            (None, None) => None,
            _ => return Err("a client certificate needs both its certificate and its key".into()),
        };
        let custom_tls = config.ca_pem.is_some() || client_tls.is_some();
        let conn = if config.cluster.is_empty() {
            Conn::Single(Self::single(&config, client_tls, custom_tls)?)
        } else {
            Conn::Cluster(Self::cluster(&config, client_tls, custom_tls)?)
        };
        Ok(RedisVault {
            conn,
            keys,
            breaker: Breaker::new(config.breaker_failures, config.breaker_cooldown),
            cache: Mutex::new(Cache {
                half: config.cache_entries / 2 + usize::from(config.cache_entries % 2 == 1),
                ttl: config.cache_ttl,
                young: HashMap::new(),
                old: HashMap::new(),
            }),
            ttl_secs: config.ttl.as_secs().max(1),
            undecryptable: AtomicU64::new(0),
            config,
            assign_script: Script::new(ASSIGN_LUA),
            rate_script: Script::new(RATE_LUA),
        })
    }

    fn single(
        config: &RedisVaultConfig,
        client_tls: Option<redis::ClientTlsConfig>,
        custom_tls: bool,
    ) -> Result<ConnectionManager, String> {
        let mut info = config
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| format!("invalid Redis URL ({})", e.kind_str()))?;
        let mut settings = info.redis_settings().clone();
        if let Some(u) = &config.username {
            settings = settings.set_username(u);
        }
        if let Some(p) = &config.password {
            settings = settings.set_password(p);
        }
        info = info.set_redis_settings(settings);
        let tls = matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. });
        if tls {
            // rustls needs a process-wide provider; ring is the only one in this build (never aws-lc-rs).
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        if custom_tls && !tls {
            return Err("a CA file or client certificate is only used with rediss:// URLs".into());
        }
        let client = if custom_tls {
            redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls,
                    root_cert: config.ca_pem.clone(),
                },
            )
        } else {
            redis::Client::open(info)
        }
        .map_err(|e| format!("Redis client ({})", e.kind_str()))?;
        let mgr_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(250));
        ConnectionManager::new_lazy_with_config(client, mgr_config)
            .map_err(|e| format!("Redis connection manager ({})", e.kind_str()))
    }

    /// A Redis Cluster connection that connects in the background: like the single-server manager, a gateway
    /// can start while the cluster is down and answer 503 until it is up.
    fn cluster(
        config: &RedisVaultConfig,
        client_tls: Option<redis::ClientTlsConfig>,
        custom_tls: bool,
    ) -> Result<ClusterConnection, String> {
        let tls = config.cluster[0].starts_with("rediss://");
        if config.cluster.iter().any(|u| u.starts_with("rediss://") != tls) {
            return Err("cluster nodes: all redis:// or all rediss://".into());
        }
        if tls {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        if custom_tls && !tls {
            return Err("a CA file or client certificate is only used with rediss:// URLs".into());
        }
        let mut b = redis::cluster::ClusterClientBuilder::new(config.cluster.iter().map(String::as_str))
            .connection_timeout(config.connect_timeout)
            .response_timeout(config.timeout)
            // Our own timeout and breaker bound every call; the client's retries (for MOVED, ASK, a node
            // failing over) stay within them.
            .retries(2)
            .min_retry_wait(20)
            .max_retry_wait(200);
        if let Some(u) = &config.username {
            b = b.username(u);
        }
        if let Some(p) = &config.password {
            b = b.password(p);
        }
        if custom_tls {
            b = b.certs(redis::TlsCertificates {
                client_tls,
                root_cert: config.ca_pem.clone(),
            });
        }
        let client = b
            .build()
            .map_err(|e| format!("Redis cluster client ({})", e.kind_str()))?;
        Ok(client.get_pending_async_connection_with_config(redis::cluster::ClusterConfig::new()))
    }

    pub fn config(&self) -> &RedisVaultConfig {
        &self.config
    }

    /// True while the circuit breaker refuses calls (Redis considered down).
    pub fn breaker_open(&self) -> bool {
        self.breaker.is_open()
    }

    /// Times the circuit breaker opened after consecutive failures.
    pub fn breaker_trips(&self) -> u64 {
        self.breaker.trips()
    }

    /// Calls refused at once by the open circuit breaker.
    pub fn breaker_refused(&self) -> u64 {
        self.breaker.refused()
    }

    /// Stored originals that no key of the ring could decrypt (key removed too early, or altered data).
    pub fn undecryptable(&self) -> u64 {
        self.undecryptable.load(Ordering::Relaxed)
    }

    /// Entries in the local resolve cache.
    pub fn cache_len(&self) -> usize {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// `<prefix>:{t:<tag>}:` for a tenant.
    pub fn tenant_base(&self, tenant: &str) -> String {
        let d = digest::digest(&digest::SHA256, format!("maskgate tenant\0{tenant}").as_bytes());
        format!("{}:{{t:{}}}:", self.config.key_prefix, hex(&d.as_ref()[..16]))
    }

    fn aad(tenant: &str, prefix: &str) -> Vec<u8> {
        let mut a = Vec::with_capacity(16 + tenant.len() + prefix.len());
        a.extend_from_slice(b"maskgate v1\0");
        a.extend_from_slice(&(tenant.len() as u64).to_be_bytes());
        a.extend_from_slice(tenant.as_bytes());
        a.extend_from_slice(prefix.as_bytes());
        a
    }

    /// Runs one Redis call under the breaker and the timeout.
    async fn call<T, F>(&self, fut: F) -> Result<T, VaultError>
    where
        F: std::future::Future<Output = Result<T, RedisError>>,
    {
        let Some(permit) = self.breaker.try_acquire() else {
            return Err(unavailable("redis: circuit open"));
        };
        match tokio::time::timeout(self.config.timeout, fut).await {
            Ok(Ok(v)) => {
                permit.success();
                Ok(v)
            }
            Ok(Err(e)) => {
                permit.failure();
                Err(unavailable(format!("redis: {}", e.kind_str())))
            }
            Err(_) => {
                permit.failure();
                Err(unavailable("redis: timeout"))
            }
        }
    }

    async fn assign_impl(&self, tenant: &str, entries: &[Entry<'_>]) -> Result<Vec<String>, VaultError> {
        for e in entries {
            if !maskgate_engine::placeholder::is_valid_prefix(e.prefix) {
                return Err(VaultError::Invalid(
                    "placeholder prefix is not of the form AWS_KIND".into(),
                ));
            }
        }
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let base = self.tenant_base(tenant);
        let c = self.keys.len();
        let mut inv = self.assign_script.prepare_invoke();
        inv.arg(self.ttl_secs).arg(c).arg(&base);
        for e in entries {
            for i in 0..c {
                let h = self
                    .keys
                    .index(i, &[tenant.as_bytes(), e.prefix.as_bytes(), e.original.as_bytes()]);
                inv.key(format!("{base}f:{}:{h}", self.keys.key_id(i)));
            }
            let ct = self
                .keys
                .encrypt(&Self::aad(tenant, e.prefix), e.original.as_bytes())
                .map_err(unavailable)?;
            inv.arg(e.prefix).arg(ct);
        }
        let mut conn = self.conn.clone();
        let out: Vec<String> = self.call(inv.invoke_async(&mut conn)).await?;
        if out.len() != entries.len() {
            return Err(unavailable("redis: unexpected reply to assign"));
        }
        for (p, e) in out.iter().zip(entries) {
            let ok = p.len() > e.prefix.len() + 1
                && p.starts_with(e.prefix)
                && p.as_bytes()[e.prefix.len()] == b'_'
                && maskgate_engine::placeholder::match_at(p.as_bytes()) == Some(p.len());
            if !ok {
                return Err(unavailable("redis: unexpected reply to assign"));
            }
        }
        if self.config.cache_entries > 0 {
            let t: Arc<str> = Arc::from(tenant);
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            for (p, e) in out.iter().zip(entries) {
                cache.insert(&t, p, e.original);
            }
        }
        Ok(out)
    }

    async fn resolve_impl(&self, tenant: &str, placeholders: &[&str]) -> Result<Vec<Option<String>>, VaultError> {
        let t: Arc<str> = Arc::from(tenant);
        let mut out: Vec<Option<String>> = vec![None; placeholders.len()];
        let mut missing: Vec<usize> = Vec::new();
        {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            for (i, p) in placeholders.iter().enumerate() {
                // Only well-formed placeholders become key names.
                if maskgate_engine::placeholder::match_at(p.as_bytes()) != Some(p.len()) {
                    continue;
                }
                match cache.get(&t, p) {
                    Some(o) => out[i] = Some(o),
                    None => missing.push(i),
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let base = self.tenant_base(tenant);
        let mut cmd = redis::cmd("MGET");
        for &i in &missing {
            cmd.arg(format!("{base}r:{}", placeholders[i]));
        }
        let mut conn = self.conn.clone();
        let values: Vec<Option<Vec<u8>>> = self.call(cmd.query_async(&mut conn)).await?;
        if values.len() != missing.len() {
            return Err(unavailable("redis: unexpected reply to resolve"));
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        for (&i, v) in missing.iter().zip(values) {
            let Some(blob) = v else { continue };
            let p = placeholders[i];
            let prefix = p.trim_end_matches(|c: char| c.is_ascii_digit()).trim_end_matches('_');
            let plain = self
                .keys
                .decrypt(&Self::aad(tenant, prefix), &blob)
                .and_then(|b| String::from_utf8(b).ok());
            if let Some(o) = plain {
                cache.insert(&t, p, &o);
                out[i] = Some(o);
            } else {
                // Unknown key id (removed from the list too early) or altered data: unresolved, never guessed.
                self.undecryptable.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(out)
    }

    /// Fixed-window rate limiting shared by every replica, one round trip: `windows` are (length in seconds,
    /// limit). `key` is hashed (HMAC) before it becomes part of a key name. Returns whether the request is
    /// allowed and each window's count after it.
    pub async fn rate_limit(
        &self,
        key: &str,
        windows: &[(u64, u64)],
        now: u64,
    ) -> Result<(bool, Vec<u64>), VaultError> {
        if windows.is_empty() {
            return Ok((true, Vec::new()));
        }
        let h = self.keys.index(0, &[b"rate limit", key.as_bytes()]);
        let mut inv = self.rate_script.prepare_invoke();
        for (secs, _) in windows {
            let secs = (*secs).max(1);
            let start = now - now % secs;
            inv.key(format!("{}:{{rl:{}}}:{secs}:{start}", self.config.key_prefix, &h[..32]));
        }
        for (_, limit) in windows {
            inv.arg(*limit);
        }
        for (secs, _) in windows {
            // A little longer than the window, so a slow clock on another replica still finds its count.
            inv.arg(secs + 60);
        }
        let mut conn = self.conn.clone();
        let r: Vec<i64> = self.call(inv.invoke_async(&mut conn)).await?;
        if r.len() != windows.len() + 1 {
            return Err(unavailable("redis: unexpected reply to rate limit"));
        }
        Ok((r[0] == 1, r[1..].iter().map(|&v| v.max(0) as u64).collect()))
    }

    /// Warnings about the server's configuration (eviction policy), best effort: managed services often refuse
    /// `CONFIG GET`, which is not an error.
    pub async fn server_warnings(&self) -> Vec<String> {
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("GET").arg("maxmemory-policy");
        let r: Result<Vec<String>, VaultError> = self.call(cmd.query_async(&mut conn)).await;
        match r {
            Ok(v) => match v.get(1).map(String::as_str) {
                Some(p) if p.starts_with("allkeys") => vec![format!(
                    "Redis maxmemory-policy is {p}: it may evict the per-tenant counters; use noeviction or a \
                     volatile-* policy (mappings have a TTL, counters do not)"
                )],
                _ => Vec::new(),
            },
            Err(_) => Vec::new(),
        }
    }
}

impl Vault for RedisVault {
    fn assign<'a>(
        &'a self,
        tenant: &'a str,
        entries: &'a [Entry<'a>],
    ) -> BoxFuture<'a, Result<Vec<String>, VaultError>> {
        Box::pin(self.assign_impl(tenant, entries))
    }

    fn resolve<'a>(
        &'a self,
        tenant: &'a str,
        placeholders: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Option<String>>, VaultError>> {
        Box::pin(self.resolve_impl(tenant, placeholders))
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), VaultError>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let pong: String = self.call(redis::cmd("PING").query_async(&mut conn)).await?;
            if pong == "PONG" {
                Ok(())
            } else {
                Err(unavailable("redis: unexpected reply to PING"))
            }
        })
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted_and_checked() {
        assert_eq!(
            redact_url("redis://user:s3cret@host:6379/0"),
            "redis://user:<redacted>@host:6379/0"
        );
        assert_eq!(redact_url("rediss://s3cret@host"), "rediss://<redacted>@host");
        assert_eq!(redact_url("redis://host:1/2"), "redis://host:1/2");
        assert!(check_url("redis://127.0.0.1:6379/0").is_ok());
        assert!(check_url("rediss://example.com").is_ok());
        assert!(check_url("http://x").is_err());
        let e = check_url("redis://user:s3cret@:notaport").unwrap_err();
        assert!(!e.contains("s3cret"), "{e}");
        assert!(check_key_prefix("maskgate").is_ok());
        assert!(check_key_prefix("a{b").is_err());
        assert!(check_key_prefix("").is_err());
    }

    #[test]
    fn tls_reasons_name_the_variant_only() {
        assert_eq!(
            tls_reason("invalid peer certificate: UnknownIssuer").as_deref(),
            Some("tls: server certificate refused (UnknownIssuer)")
        );
        assert_eq!(
            tls_reason("received fatal alert: CertificateRequired").as_deref(),
            Some("tls: the server refused the handshake (CertificateRequired)")
        );
        assert_eq!(
            tls_reason(
                "invalid peer certificate: certificate not valid for name \"x\"; certificate is only valid for y"
            )
            .as_deref(),
            Some("tls: server certificate refused (certificate not valid for name)")
        );
        assert_eq!(tls_reason("broken pipe"), None);
    }

    #[test]
    fn cache_is_bounded_and_per_tenant() {
        let mut c = Cache {
            half: 2,
            ttl: Duration::from_secs(60),
            young: HashMap::new(),
            old: HashMap::new(),
        };
        let a: Arc<str> = Arc::from("a");
        let b: Arc<str> = Arc::from("b");
        for i in 0..10 {
            c.insert(&a, &format!("AWS_EC2_{i:03}"), "x");
            assert!(c.len() <= 4);
        }
        assert_eq!(c.get(&a, "AWS_EC2_009").as_deref(), Some("x"));
        assert_eq!(c.get(&b, "AWS_EC2_009"), None);
        assert_eq!(c.get(&a, "AWS_EC2_000"), None);
    }
}
