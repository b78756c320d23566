//! The gateway's TOML configuration: parsing, defaults, validation (errors name the key) and the redacted view
//! served by the admin API. Secrets are never part of this structure: only where to find them (env var or file).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::engine::{Masker, MaskerConfig};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub gateway: GatewaySection,
    #[serde(default)]
    pub vault: VaultSection,
    /// Masking options (`disabled_kinds`, `custom_patterns`, `allowlist`, `skip_paths`); checked by the engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masking: Option<toml::Table>,
    /// A rate limit applied to every request (each route may add its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    #[serde(default = "default_routes")]
    pub routes: Vec<Route>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            gateway: GatewaySection::default(),
            vault: VaultSection::default(),
            masking: None,
            rate_limit: None,
            routes: default_routes(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    /// Bearer token required by the admin API (except the health probes), read from this env var ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token_env: Option<String>,
    /// ... or from this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token_file: Option<PathBuf>,
    /// Shared token of trusted sidecars (header `x-maskgate-sidecar-token`), read from this env var ...
    /// Only a request carrying it may choose its tenant with `x-maskgate-tenant`; from anyone else that header
    /// is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sidecar_token_env: Option<String>,
    /// ... or from this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sidecar_token_file: Option<PathBuf>,
    /// What authenticates a sidecar: its shared token, a client certificate verified against `tls.client_ca`
    /// (mTLS), or either.
    #[serde(default)]
    pub sidecar_auth: SidecarAuth,
    /// A second proxy listener speaking TLS (h2 and HTTP/1.1 by ALPN), for sidecars and apps that reach the
    /// gateway over the network. Needs a restart to change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsListener>,
    /// Largest request body accepted, in bytes, before and after decompression (413 above). Below 4 GiB.
    #[serde(default = "default_body_limit")]
    pub max_request_body: u64,
    /// Largest buffered (non-streamed) response body, in bytes.
    #[serde(default = "default_response_limit")]
    pub max_response_body: u64,
    #[serde(default = "d_connect", with = "dur")]
    pub connect_timeout: Duration,
    /// From the request sent upstream to the response headers.
    #[serde(default = "d_first_byte", with = "dur")]
    pub first_byte_timeout: Duration,
    /// Longest silence while reading an upstream body (streams may last much longer in total).
    #[serde(default = "d_idle", with = "dur")]
    pub idle_timeout: Duration,
    /// Time allowed for the client to send the whole request body.
    #[serde(default = "d_client_body", with = "dur")]
    pub client_body_timeout: Duration,
    /// Pooled upstream connections unused for this long are closed.
    #[serde(default = "d_pool_idle", with = "dur")]
    pub pool_idle_timeout: Duration,
    /// Longest wait for the vault before a request is refused (503 VAULT_UNAVAILABLE).
    #[serde(default = "d_vault", with = "dur")]
    pub vault_timeout: Duration,
    /// How long shutdown waits for in-flight requests and streams.
    #[serde(default = "d_grace", with = "dur")]
    pub shutdown_grace: Duration,
    /// Extra PEM CA certificates trusted for upstream TLS, on top of the webpki roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_ca_file: Option<PathBuf>,
}

impl Default for GatewaySection {
    fn default() -> Self {
        toml::from_str("").expect("defaults")
    }
}

/// Which proof makes a request come from a trusted sidecar (and so lets it choose its tenant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SidecarAuth {
    /// The shared token (`x-maskgate-sidecar-token`).
    Token,
    /// A client certificate verified against `gateway.tls.client_ca`, on the TLS listener.
    Mtls,
    /// Whichever of the two is configured and presented.
    #[default]
    Either,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsListener {
    /// Address of the TLS listener (the plain `listen` keeps serving).
    pub listen: SocketAddr,
    /// PEM certificate chain (leaf first) and private key (PKCS#8, PKCS#1 or SEC1).
    pub cert: PathBuf,
    pub key: PathBuf,
    /// PEM CA certificates: clients presenting a certificate that chains to one of them are trusted sidecars
    /// (mTLS). A client certificate is asked for, not required: without one (or with one that does not verify)
    /// the connection is served as any other client's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum VaultBackend {
    #[default]
    Embedded,
    /// Several replicas share one Redis (see `crates/vault/README-redis.md`).
    Redis,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSection {
    #[serde(default)]
    pub backend: VaultBackend,
    /// Embedded vault: mappings kept at most.
    #[serde(default = "d_vault_entries")]
    pub max_entries: usize,
    /// Sliding time to live of a mapping.
    #[serde(default = "d_ttl", with = "dur")]
    pub ttl: Duration,
    /// Redis: `redis://[user@]host[:port][/db]` or `rediss://…` (TLS). Shown redacted by the admin API.
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "ser_url")]
    pub url: Option<String>,
    /// Redis Cluster: seed nodes (instead of `url`), e.g. `["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"]`.
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "ser_urls")]
    pub cluster: Option<Vec<String>>,
    /// Redis ACL user (instead of one in the URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Redis password from this env var ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// ... or from this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// Redis: vault key(s), 64 hex characters each, first current (else env `MASKGATE_VAULT_KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// Redis: PEM CA certificates for `rediss://` (instead of the system roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Redis: client certificate chain (PEM) for `rediss://` servers that require one (`tls-auth-clients`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_file: Option<PathBuf>,
    /// Redis: the client certificate's private key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_file: Option<PathBuf>,
    /// Redis: first part of every key name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    /// Redis: longest wait for one call (default 500ms).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_dur")]
    pub timeout: Option<Duration>,
    /// Redis: longest wait for a connection (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_dur")]
    pub connect_timeout: Option<Duration>,
    /// Redis: consecutive failures that open the circuit breaker (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker_failures: Option<u32>,
    /// Redis: how long an open breaker answers 503 at once before one probe (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_dur")]
    pub breaker_cooldown: Option<Duration>,
    /// Redis: entries of the local cache for tenant-wide resolution (default 10000; 0 = none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolve_cache_entries: Option<usize>,
}

fn ser_url<S: Serializer>(u: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match u {
        Some(u) => s.serialize_str(&maskgate_vault::redis_vault::redact_url(u)),
        None => s.serialize_none(),
    }
}

fn ser_urls<S: Serializer>(u: &Option<Vec<String>>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    match u {
        Some(u) => {
            let mut seq = s.serialize_seq(Some(u.len()))?;
            for x in u {
                seq.serialize_element(&maskgate_vault::redis_vault::redact_url(x))?;
            }
            seq.end()
        }
        None => s.serialize_none(),
    }
}

impl VaultSection {
    /// `url`, or the first cluster node: decides plain or TLS.
    fn first_url(&self) -> &str {
        match (&self.url, &self.cluster) {
            (Some(u), _) => u,
            (None, Some(c)) => c.first().map(String::as_str).unwrap_or(""),
            (None, None) => "",
        }
    }

    /// The Redis backend's settings (secrets read from env or files), for `backend = "redis"`.
    pub fn redis_config(&self) -> Result<maskgate_vault::RedisVaultConfig, ConfigError> {
        let d = maskgate_vault::RedisVaultConfig::default();
        let password = match (&self.password_env, &self.password_file) {
            (None, None) => None,
            (env, file) => Some(
                read_secret(env.as_deref(), file.as_deref())
                    .map_err(|e| ConfigError(format!("vault.password: {e}")))?,
            ),
        };
        let ca_pem = match &self.ca_file {
            Some(f) => {
                load_ca_file(f).map_err(|e| ConfigError(format!("vault.ca_file: {e}")))?;
                Some(std::fs::read(f).map_err(|e| ConfigError(format!("vault.ca_file: {e}")))?)
            }
            None => None,
        };
        let (client_cert_pem, client_key_pem) = match (&self.client_cert_file, &self.client_key_file) {
            (Some(c), Some(k)) => {
                load_ca_file(c).map_err(|e| ConfigError(format!("vault.client_cert_file: {e}")))?;
                let cert = std::fs::read(c).map_err(|e| ConfigError(format!("vault.client_cert_file: {e}")))?;
                let key = load_private_key(k).map_err(|e| ConfigError(format!("vault.client_key_file: {e}")))?;
                (Some(cert), Some(key))
            }
            _ => (None, None),
        };
        Ok(maskgate_vault::RedisVaultConfig {
            url: self.url.clone().unwrap_or(d.url),
            cluster: self.cluster.clone().unwrap_or_default(),
            username: self.username.clone(),
            password,
            ca_pem,
            client_cert_pem,
            client_key_pem,
            key_prefix: self.key_prefix.clone().unwrap_or(d.key_prefix),
            ttl: self.ttl,
            timeout: self.timeout.unwrap_or(d.timeout),
            connect_timeout: self.connect_timeout.unwrap_or(d.connect_timeout),
            breaker_failures: self.breaker_failures.unwrap_or(d.breaker_failures),
            breaker_cooldown: self.breaker_cooldown.unwrap_or(d.breaker_cooldown),
            cache_entries: self.resolve_cache_entries.unwrap_or(d.cache_entries),
            cache_ttl: d.cache_ttl,
        })
    }

    /// The vault key ring (Redis backend): `key_file`, else env `MASKGATE_VAULT_KEY`.
    pub fn keyring(&self) -> Result<maskgate_vault::Keyring, ConfigError> {
        maskgate_vault::Keyring::load(self.key_file.as_deref()).map_err(|e| ConfigError(format!("vault.key: {e}")))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let err = |k: &str, m: &str| Err(ConfigError(format!("vault.{k}: {m}")));
        if self.ttl < Duration::from_secs(1) {
            return err("ttl", "at least 1s");
        }
        match self.backend {
            VaultBackend::Embedded => {
                let redis_only = [
                    ("url", self.url.is_some()),
                    ("cluster", self.cluster.is_some()),
                    ("username", self.username.is_some()),
                    ("password_env", self.password_env.is_some()),
                    ("password_file", self.password_file.is_some()),
                    ("key_file", self.key_file.is_some()),
                    ("ca_file", self.ca_file.is_some()),
                    ("client_cert_file", self.client_cert_file.is_some()),
                    ("client_key_file", self.client_key_file.is_some()),
                    ("key_prefix", self.key_prefix.is_some()),
                    ("timeout", self.timeout.is_some()),
                    ("connect_timeout", self.connect_timeout.is_some()),
                    ("breaker_failures", self.breaker_failures.is_some()),
                    ("breaker_cooldown", self.breaker_cooldown.is_some()),
                    ("resolve_cache_entries", self.resolve_cache_entries.is_some()),
                ];
                if let Some((k, _)) = redis_only.iter().find(|(_, set)| *set) {
                    return err(k, "only used with backend = \"redis\"");
                }
            }
            VaultBackend::Redis => {
                match (&self.url, &self.cluster) {
                    (None, None) => {
                        return err(
                            "url",
                            "required with backend = \"redis\" (redis:// or rediss://; or cluster = [urls])",
                        )
                    }
                    (Some(_), Some(_)) => return err("cluster", "set either url or cluster"),
                    (Some(u), None) => {
                        maskgate_vault::redis_vault::check_url(u).map_err(|e| ConfigError(format!("vault.url: {e}")))?
                    }
                    (None, Some(nodes)) => {
                        if nodes.is_empty() {
                            return err("cluster", "at least one seed node");
                        }
                        for (i, u) in nodes.iter().enumerate() {
                            maskgate_vault::redis_vault::check_url(u)
                                .map_err(|e| ConfigError(format!("vault.cluster[{i}]: {e}")))?;
                        }
                        let tls = nodes[0].starts_with("rediss://");
                        if nodes.iter().any(|u| u.starts_with("rediss://") != tls) {
                            return err("cluster", "all redis:// or all rediss://");
                        }
                    }
                }
                if let Some(p) = &self.key_prefix {
                    maskgate_vault::redis_vault::check_key_prefix(p)
                        .map_err(|e| ConfigError(format!("vault.key_prefix: {e}")))?;
                }
                if self.password_env.is_some() && self.password_file.is_some() {
                    return err("password_env", "set either password_env or password_file");
                }
                if matches!(&self.password_env, Some(e) if e.is_empty()) {
                    return err("password_env", "must not be empty");
                }
                for (k, d) in [
                    ("timeout", self.timeout),
                    ("connect_timeout", self.connect_timeout),
                    ("breaker_cooldown", self.breaker_cooldown),
                ] {
                    if d.is_some_and(|d| d.is_zero()) {
                        return err(k, "must be greater than 0");
                    }
                }
                if self.breaker_failures == Some(0) {
                    return err("breaker_failures", "must be greater than 0");
                }
                if let Some(f) = &self.ca_file {
                    if !self.first_url().starts_with("rediss://") {
                        return err("ca_file", "only used with a rediss:// url");
                    }
                    load_ca_file(f).map_err(|e| ConfigError(format!("vault.ca_file: {e}")))?;
                }
                match (&self.client_cert_file, &self.client_key_file) {
                    (None, None) => {}
                    (Some(_), None) => return err("client_key_file", "required with client_cert_file"),
                    (None, Some(_)) => return err("client_cert_file", "required with client_key_file"),
                    (Some(c), Some(_)) => {
                        if !self.first_url().starts_with("rediss://") {
                            return err("client_cert_file", "only used with a rediss:// url");
                        }
                        // The key is a secret that may be mounted later or readable only by the gateway's
                        // user: checked when the gateway starts (a warning in check-config).
                        load_ca_file(c).map_err(|e| ConfigError(format!("vault.client_cert_file: {e}")))?;
                    }
                }
                // A key file that exists must hold valid keys (a missing one is a warning: it may be mounted
                // later; the gateway itself refuses to start without a key).
                if let Some(f) = &self.key_file {
                    if f.exists() {
                        self.keyring()?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// `Option<Duration>` in the same notation as `dur`.
mod opt_dur {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => dur::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        dur::deserialize(d).map(Some)
    }
}

impl Default for VaultSection {
    fn default() -> Self {
        toml::from_str("").expect("defaults")
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Destination host this route serves (matched against `x-original-host`, then `Host`).
    pub host: String,
    /// Base-URL mode: requests whose path starts with this prefix take this route; the prefix is stripped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// `https://host[:port][/base]` (or `http://` for local stand-ins).
    pub upstream: String,
    /// Connect here instead of resolving the upstream host (TLS still verifies the upstream host name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_address: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<Credential>,
    /// Forward the client's own credential headers and `key` query parameter.
    #[serde(default)]
    pub keep_client_credentials: bool,
    /// Tenant whose mappings this route uses (default `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Forward request bodies that cannot be masked (not JSON or text) instead of refusing them.
    #[serde(default)]
    pub passthrough_unmaskable: bool,
    /// Which placeholders a response may resolve: `request` (default) only those inserted into the request it
    /// answers; `tenant` any placeholder of the tenant, looked up in the vault as it appears (for stateful APIs
    /// such as OpenAI Responses with `previous_response_id`, whose answers refer to earlier requests).
    #[serde(default, skip_serializing_if = "ResolveScope::is_request")]
    pub resolve: ResolveScope,
    /// Masking options for this route, replacing the global `[masking]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masking: Option<toml::Table>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
}

/// See [`Route::resolve`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResolveScope {
    #[default]
    Request,
    Tenant,
}

impl ResolveScope {
    fn is_request(&self) -> bool {
        *self == ResolveScope::Request
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// Header set on the upstream request (`x-api-key`, `authorization`, `x-goog-api-key`, `api-key`).
    pub header: String,
    /// Put before the secret (e.g. `"Bearer "`).
    #[serde(default)]
    pub prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LimitBy {
    #[default]
    Ip,
    Header,
    Tenant,
    /// The client's credential (`x-api-key`, `authorization`, `x-goog-api-key`, `api-key` or `key` parameter),
    /// kept only as a hash; falls back to the client IP.
    Credential,
}

/// Kong's `rate-limiting` plugin, `local` policy: counts per fixed window.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hour: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<u64>,
    #[serde(default)]
    pub limit_by: LimitBy,
    /// With `limit_by = "header"`: the header whose value is the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_name: Option<String>,
    /// `local` (per process) or `redis` (shared by every replica; needs `[vault] backend = "redis"`).
    #[serde(default = "d_policy")]
    pub policy: String,
    /// `redis` policy: when Redis cannot be asked, let the request through (true, Kong's default; counted in
    /// `maskgate_rate_limit_errors`) or refuse it with 503 `RATE_LIMIT_UNAVAILABLE` (false).
    #[serde(default = "d_true")]
    pub fault_tolerant: bool,
}

fn d_true() -> bool {
    true
}

fn d_policy() -> String {
    "local".into()
}

fn default_listen() -> SocketAddr {
    "0.0.0.0:8000".parse().unwrap()
}
fn default_admin_listen() -> SocketAddr {
    "127.0.0.1:8001".parse().unwrap()
}
fn default_body_limit() -> u64 {
    32 * 1024 * 1024
}
fn default_response_limit() -> u64 {
    256 * 1024 * 1024
}
fn d_connect() -> Duration {
    Duration::from_secs(10)
}
fn d_first_byte() -> Duration {
    Duration::from_secs(600)
}
fn d_idle() -> Duration {
    Duration::from_secs(300)
}
fn d_client_body() -> Duration {
    Duration::from_secs(60)
}
fn d_pool_idle() -> Duration {
    Duration::from_secs(90)
}
fn d_vault() -> Duration {
    Duration::from_secs(2)
}
fn d_grace() -> Duration {
    Duration::from_secs(30)
}
fn d_vault_entries() -> usize {
    1_000_000
}
fn d_ttl() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

fn default_routes() -> Vec<Route> {
    let r = |host: &str, prefix: &str, header: &str, pfx: &str, env: &str| Route {
        host: host.into(),
        path_prefix: Some(prefix.into()),
        upstream: format!("https://{host}"),
        connect_address: None,
        credential: Some(Credential {
            header: header.into(),
            prefix: pfx.into(),
            env: Some(env.into()),
            file: None,
        }),
        // Without a configured key the client's own key is used.
        keep_client_credentials: true,
        tenant: None,
        passthrough_unmaskable: false,
        resolve: ResolveScope::Request,
        masking: None,
        rate_limit: None,
    };
    vec![
        r("api.anthropic.com", "/anthropic", "x-api-key", "", "ANTHROPIC_API_KEY"),
        r(
            "api.openai.com",
            "/openai",
            "authorization",
            "Bearer ",
            "OPENAI_API_KEY",
        ),
        r(
            "generativelanguage.googleapis.com",
            "/gemini",
            "x-goog-api-key",
            "",
            "GEMINI_API_KEY",
        ),
    ]
}

/// Durations as `"500ms"`, `"30s"`, `"10m"`, `"2h"`, `"7d"` (or a bare number of seconds).
mod dur {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        let ms = d.as_millis();
        if ms.is_multiple_of(1000) {
            s.serialize_str(&format!("{}s", ms / 1000))
        } else {
            s.serialize_str(&format!("{ms}ms"))
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Duration::from_secs(n)),
            Raw::S(s) => parse_duration(&s).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "invalid duration {s:?}: use a number with ms, s, m, h or d (e.g. \"30s\")"
                ))
            }),
        }
    }
}

pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let ms = match unit.trim() {
        "ms" => n,
        "s" => n.checked_mul(1000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

/// A configuration error; the message names the key.
#[derive(Debug, Clone)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for ConfigError {}

/// A non-fatal finding (e.g. a credential that cannot be read right now).
pub type Warnings = Vec<String>;

impl Config {
    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError(describe_toml_error(text, &e)))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
        Config::from_toml(&text)
    }

    /// Masker options for a route (its own, else the global ones), as the engine reads them.
    pub fn masker_config(&self, route: Option<&Route>) -> Result<MaskerConfig, ConfigError> {
        let (key, table) = match route.and_then(|r| r.masking.as_ref().map(|m| (r, m))) {
            Some((r, m)) => (format!("routes[{}].masking", self.route_index(r)), Some(m)),
            None => ("masking".to_string(), self.masking.as_ref()),
        };
        match table {
            None => Ok(MaskerConfig::default()),
            Some(t) => MaskerConfig::deserialize(toml::Value::Table(t.clone()))
                .map_err(|e| ConfigError(format!("{key}: {}", e.to_string().trim()))),
        }
    }

    fn route_index(&self, r: &Route) -> usize {
        self.routes.iter().position(|x| std::ptr::eq(x, r)).unwrap_or(0)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |k: String, m: &str| Err(ConfigError(format!("{k}: {m}")));
        if self.gateway.max_request_body == 0 {
            return err("gateway.max_request_body".into(), "must be greater than 0");
        }
        // The engine keeps a JSON body's offsets in 32 bits (`json::MAX_BODY`): a larger limit would admit bodies
        // it refuses anyway.
        if self.gateway.max_request_body > crate::engine::json::MAX_BODY as u64 {
            return err("gateway.max_request_body".into(), "must be below 4 GiB");
        }
        for (k, d) in [
            ("gateway.connect_timeout", self.gateway.connect_timeout),
            ("gateway.first_byte_timeout", self.gateway.first_byte_timeout),
            ("gateway.idle_timeout", self.gateway.idle_timeout),
            ("gateway.client_body_timeout", self.gateway.client_body_timeout),
            ("gateway.vault_timeout", self.gateway.vault_timeout),
        ] {
            if d.is_zero() {
                return err(k.into(), "must be greater than 0");
            }
        }
        if let Some(f) = &self.gateway.upstream_ca_file {
            load_ca_file(f).map_err(|e| ConfigError(format!("gateway.upstream_ca_file: {e}")))?;
        }
        if self.gateway.admin_token_env.is_some() && self.gateway.admin_token_file.is_some() {
            return err(
                "gateway.admin_token_env".into(),
                "set either admin_token_env or admin_token_file",
            );
        }
        if self.gateway.sidecar_token_env.is_some() && self.gateway.sidecar_token_file.is_some() {
            return err(
                "gateway.sidecar_token_env".into(),
                "set either sidecar_token_env or sidecar_token_file",
            );
        }
        if let Some(t) = &self.gateway.tls {
            crate::tls::server_config(t).map_err(ConfigError)?;
        }
        let has_token = self.gateway.sidecar_token_env.is_some() || self.gateway.sidecar_token_file.is_some();
        let has_ca = self.gateway.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
        match self.gateway.sidecar_auth {
            SidecarAuth::Token if !has_token => {
                return err(
                    "gateway.sidecar_auth".into(),
                    "\"token\" needs sidecar_token_env or sidecar_token_file",
                )
            }
            SidecarAuth::Mtls if !has_ca => {
                return err("gateway.sidecar_auth".into(), "\"mtls\" needs gateway.tls.client_ca")
            }
            _ => {}
        }
        if self.routes.is_empty() {
            return err("routes".into(), "at least one route is needed");
        }
        let masker_check = |key: String, route: Option<&Route>| -> Result<(), ConfigError> {
            let mc = self.masker_config(route)?;
            Masker::new(&mc).map_err(|e| ConfigError(format!("{key}: {e}")))?;
            Ok(())
        };
        masker_check("masking".into(), None)?;
        self.vault.validate()?;
        if let Some(rl) = &self.rate_limit {
            rl.validate("rate_limit", self.vault.backend)?;
        }
        let mut hosts = HashSet::new();
        let mut prefixes = HashSet::new();
        for (i, r) in self.routes.iter().enumerate() {
            let k = |f: &str| format!("routes[{i}].{f}");
            let host = r.host.trim().to_ascii_lowercase();
            if host.is_empty() || host.contains('/') || host.contains(' ') || host.contains(':') {
                return err(k("host"), "must be a bare host name (no scheme, port or path)");
            }
            if !hosts.insert(host) {
                return err(k("host"), "duplicate host");
            }
            if let Some(p) = &r.path_prefix {
                if !p.starts_with('/') || p.len() < 2 || p.ends_with('/') || p.contains('?') {
                    return err(
                        k("path_prefix"),
                        "must start with '/', not end with '/', e.g. \"/anthropic\"",
                    );
                }
                if !prefixes.insert(p.clone()) {
                    return err(k("path_prefix"), "duplicate path_prefix");
                }
            }
            parse_upstream(&r.upstream).map_err(|e| ConfigError(format!("{}: {e}", k("upstream"))))?;
            if let Some(c) = &r.credential {
                if http::HeaderName::from_bytes(c.header.as_bytes()).is_err() {
                    return err(k("credential.header"), "not a valid header name");
                }
                if http::HeaderValue::from_str(&c.prefix).is_err() {
                    return err(k("credential.prefix"), "not a valid header value");
                }
                match (&c.env, &c.file) {
                    (Some(_), Some(_)) => return err(k("credential"), "set either env or file, not both"),
                    (None, None) => return err(k("credential"), "set env or file"),
                    (Some(e), None) if e.is_empty() => return err(k("credential.env"), "must not be empty"),
                    _ => {}
                }
            }
            if let Some(t) = &r.tenant {
                if t.is_empty() || t.len() > 128 || !t.bytes().all(|b| b.is_ascii_graphic()) {
                    return err(k("tenant"), "1 to 128 visible ASCII characters");
                }
            }
            if r.masking.is_some() {
                masker_check(k("masking"), Some(r))?;
            }
            if let Some(rl) = &r.rate_limit {
                rl.validate(&k("rate_limit"), self.vault.backend)?;
            }
        }
        Ok(())
    }

    /// Warnings that do not stop the gateway (credentials not readable now: requests on that route get 503).
    pub fn warnings(&self) -> Warnings {
        let mut w = Vec::new();
        if self.vault.backend == VaultBackend::Redis {
            if let Err(e) = self.vault.keyring() {
                w.push(format!("{e} (the gateway refuses to start without it)"));
            }
            if let Err(e) = self.vault.redis_config() {
                w.push(e.0);
            }
            let nodes = self.vault.cluster.iter().flatten();
            if self.vault.url.iter().chain(nodes).any(|u| u.contains('@')) {
                w.push("vault.url: credentials in the URL; prefer username with password_env or password_file".into());
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            if let Some(c) = &r.credential {
                if let Err(e) = read_secret(c.env.as_deref(), c.file.as_deref()) {
                    w.push(format!("routes[{i}].credential: {e}"));
                }
            }
        }
        w
    }

    /// JSON view for `GET /config`: secret values are never held here; only their sources are shown.
    pub fn redacted(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

impl RateLimit {
    fn validate(&self, key: &str, backend: VaultBackend) -> Result<(), ConfigError> {
        if self.second.is_none() && self.minute.is_none() && self.hour.is_none() && self.day.is_none() {
            return Err(ConfigError(format!(
                "{key}: set at least one of second, minute, hour, day"
            )));
        }
        for (n, v) in [
            ("second", self.second),
            ("minute", self.minute),
            ("hour", self.hour),
            ("day", self.day),
        ] {
            if v == Some(0) {
                return Err(ConfigError(format!("{key}.{n}: must be greater than 0")));
            }
        }
        if self.limit_by == LimitBy::Header {
            match &self.header_name {
                Some(h) if http::HeaderName::from_bytes(h.as_bytes()).is_ok() => {}
                _ => {
                    return Err(ConfigError(format!(
                        "{key}.header_name: a valid header name is required with limit_by = \"header\""
                    )))
                }
            }
        }
        match self.policy.as_str() {
            "local" => {}
            "redis" if backend == VaultBackend::Redis => {}
            "redis" => {
                return Err(ConfigError(format!(
                    "{key}.policy: \"redis\" uses the vault's Redis: set [vault] backend = \"redis\""
                )))
            }
            _ => return Err(ConfigError(format!("{key}.policy: \"local\" or \"redis\""))),
        }
        Ok(())
    }
}

/// Scheme, authority and base path of an upstream URL.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub scheme: http::uri::Scheme,
    pub authority: http::uri::Authority,
    pub base_path: String,
}

pub fn parse_upstream(s: &str) -> Result<Upstream, String> {
    let uri: http::Uri = s.parse().map_err(|e| format!("not a URL: {e}"))?;
    let scheme = uri.scheme().cloned().ok_or("must start with https:// or http://")?;
    if scheme != http::uri::Scheme::HTTPS && scheme != http::uri::Scheme::HTTP {
        return Err("must start with https:// or http://".into());
    }
    let authority = uri.authority().cloned().ok_or("host missing")?;
    if authority.as_str().contains('@') {
        return Err("must not contain user info".into());
    }
    if uri.query().is_some() {
        return Err("must not contain a query".into());
    }
    let base_path = uri.path().trim_end_matches('/').to_string();
    Ok(Upstream {
        scheme,
        authority,
        base_path,
    })
}

/// Reads a secret from an env var or a file (trailing newline trimmed). Errors never contain the value.
pub fn read_secret(env: Option<&str>, file: Option<&Path>) -> Result<String, String> {
    let v = match (env, file) {
        (Some(e), _) => std::env::var(e).map_err(|_| format!("environment variable {e} is not set"))?,
        (None, Some(f)) => std::fs::read_to_string(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?,
        (None, None) => return Err("no source".into()),
    };
    let v = v.trim_end_matches(['\r', '\n']).to_string();
    if v.is_empty() {
        return Err("the secret is empty".into());
    }
    Ok(v)
}

pub fn load_ca_file(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs: Result<Vec<_>, _> = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .collect();
    let certs = certs.map_err(|e| format!("invalid PEM in {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", path.display()));
    }
    Ok(certs)
}

/// A PEM private key (PKCS#8, PKCS#1 or SEC1), returned as the file's bytes once it parses. The error names
/// the file, never its content.
pub fn load_private_key(path: &Path) -> Result<Vec<u8>, String> {
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    rustls::pki_types::PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|_| format!("no valid PEM private key in {}", path.display()))?;
    Ok(pem)
}

/// Names the key of a TOML error: the `[table]` in force and the key on the line the error points at.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().replace('\n', " ");
    let Some(span) = e.span() else { return msg };
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_no = text[..start].matches('\n').count() + 1;
    let line = text[line_start..].lines().next().unwrap_or("");
    let mut table = String::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for l in text[..line_start].lines() {
        let t = l.trim();
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_string();
            let n = index.entry(name.clone()).and_modify(|n| *n += 1).or_insert(0);
            table = format!("{name}[{n}]");
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            let name = name.trim();
            // `[routes.credential]` inside the current `[[routes]]` element.
            table = match name.split_once('.') {
                Some((head, rest)) if index.contains_key(head) => format!("{head}[{}].{rest}", index[head]),
                _ => name.to_string(),
            };
        }
    }
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    let path = match (table.is_empty(), key) {
        (true, Some(k)) => k,
        (false, Some(k)) => format!("{table}.{k}"),
        (false, None) => table,
        (true, None) => String::new(),
    };
    if path.is_empty() {
        format!("line {line_no}: {msg}")
    } else {
        format!("{path}: {msg} (line {line_no})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_with_no_file() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.gateway.listen.to_string(), "0.0.0.0:8000");
        assert_eq!(c.gateway.admin_listen.to_string(), "127.0.0.1:8001");
        assert_eq!(c.routes.len(), 3);
        assert_eq!(c.vault.backend, VaultBackend::Embedded);
        assert_eq!(c.gateway.max_request_body, 32 * 1024 * 1024);
    }

    #[test]
    fn issue_example() {
        let c = Config::from_toml(
            r#"
[gateway]
listen = "127.0.0.1:8000"
admin_listen = "127.0.0.1:8001"
[vault]
backend = "embedded"
[[routes]]
host = "api.anthropic.com"             # matched against x-original-host, then Host
path_prefix = "/anthropic"             # optional (base-URL mode): matched, then stripped
upstream = "https://api.anthropic.com" # http:// allowed for local stand-ins
[routes.credential]
header = "x-api-key"                   # header set on the upstream request
prefix = ""                            # e.g. "Bearer "
env = "ANTHROPIC_API_KEY"              # or: file = "/run/secrets/anthropic"
"#,
        )
        .unwrap();
        assert_eq!(c.routes.len(), 1);
        assert_eq!(
            c.routes[0].credential.as_ref().unwrap().env.as_deref(),
            Some("ANTHROPIC_API_KEY")
        );
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::from_toml("[gateway]\nlisten = \"127.0.0.1:8000\"\nlisen = 1\n").unwrap_err();
        assert!(e.0.contains("lisen"), "{e}");
        let e = Config::from_toml("[gateway]\nlisten = \"nope\"\n").unwrap_err();
        assert!(e.0.starts_with("gateway.listen:"), "{e}");
        let e = Config::from_toml("[[routes]]\nhost = \"a\"\nupstream = \"http://x\"\n[[routes]]\nhost = \"b\"\nupstream = \"http://y\"\n[routes.credential]\nheader = \"x\"\nenv = 5\n").unwrap_err();
        assert!(e.0.starts_with("routes[1].credential.env:"), "{e}");
        let e = Config::from_toml("[gateway]\nidle_timeout = \"5 parsecs\"\n").unwrap_err();
        assert!(e.0.contains("idle_timeout"), "{e}");
        let e = Config::from_toml("[vault]\nbackend = \"cassandra\"\n").unwrap_err();
        assert!(e.0.contains("backend"), "{e}");
        let e = Config::from_toml("[[routes]]\nhost = \"a\"\nupstream = \"ftp://x\"\n").unwrap_err();
        assert!(e.0.contains("routes[0].upstream"), "{e}");
        let e = Config::from_toml(
            "[[routes]]\nhost = \"a\"\nupstream = \"http://x\"\n[routes.credential]\nheader = \"x\"\n",
        )
        .unwrap_err();
        assert!(e.0.contains("routes[0].credential"), "{e}");
        let e = Config::from_toml("[[routes]]\nhost = \"a\"\nupstream = \"http://x\"\nbogus = 1\n").unwrap_err();
        assert!(e.0.contains("bogus"), "{e}");
        let e = Config::from_toml("[masking]\nnope = 1\n").unwrap_err();
        assert!(e.0.contains("masking") && e.0.contains("nope"), "{e}");
        let e = Config::from_toml("[rate_limit]\nlimit_by = \"header\"\nminute = 3\n").unwrap_err();
        assert!(e.0.contains("rate_limit.header_name"), "{e}");
        let e = Config::from_toml("[gateway]\nmax_request_body = 5000000000\n").unwrap_err();
        assert!(e.0.starts_with("gateway.max_request_body:"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("5"), None);
    }
}
