//! Process state: the reloadable runtime (config, routes, maskers, upstream client) and what outlives reloads
//! (vault, metrics, rate-limit counters).

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime};

use http::HeaderValue;
use maskgate_vault::{MemoryVault, MemoryVaultConfig, RedisVault, Vault};

use crate::config::{parse_upstream, read_secret, Config, ConfigError, Route, Upstream, VaultBackend};
use crate::engine::Masker;
use crate::metrics::Metrics;
use crate::ratelimit::Limiter;
use crate::upstream::{build_client, HttpsClient};

pub struct RouteRt {
    pub cfg: Route,
    /// Lower-case host.
    pub host: String,
    pub upstream: Upstream,
    /// `None`: the route sets no credential. `Some(Err(why))`: configured but not readable now.
    pub credential: Option<(http::HeaderName, Result<HeaderValue, String>)>,
    pub masker: Arc<Masker>,
    pub tenant: String,
}

pub struct Runtime {
    pub config: Config,
    pub routes: Vec<RouteRt>,
    pub client: HttpsClient,
    pub admin_token: Option<String>,
    /// Token that authenticates a sidecar (`x-maskgate-sidecar-token`).
    pub sidecar_token: Option<String>,
    pub loaded_at: SystemTime,
    /// Masker of the global `[masking]` section (also used to redact log fields).
    pub masker: Arc<Masker>,
}

impl Runtime {
    pub fn build(config: Config) -> Result<Runtime, ConfigError> {
        config.validate()?;
        let global =
            Arc::new(Masker::new(&config.masker_config(None)?).map_err(|e| ConfigError(format!("masking: {e}")))?);
        let mut routes = Vec::new();
        for (i, r) in config.routes.iter().enumerate() {
            let masker = if r.masking.is_some() {
                Arc::new(
                    Masker::new(&config.masker_config(Some(r))?)
                        .map_err(|e| ConfigError(format!("routes[{i}].masking: {e}")))?,
                )
            } else {
                global.clone()
            };
            let credential = r.credential.as_ref().map(|c| {
                let name = http::HeaderName::from_bytes(c.header.as_bytes()).expect("validated");
                let value = read_secret(c.env.as_deref(), c.file.as_deref()).and_then(|s| {
                    let mut v = HeaderValue::from_str(&format!("{}{}", c.prefix, s))
                        .map_err(|_| "the secret is not a valid header value".to_string())?;
                    v.set_sensitive(true);
                    Ok(v)
                });
                (name, value)
            });
            routes.push(RouteRt {
                host: r.host.trim().to_ascii_lowercase(),
                upstream: parse_upstream(&r.upstream).map_err(|e| ConfigError(format!("routes[{i}].upstream: {e}")))?,
                credential,
                masker,
                tenant: r.tenant.clone().unwrap_or_else(|| "default".into()),
                cfg: r.clone(),
            });
        }
        let admin_token = match (&config.gateway.admin_token_env, &config.gateway.admin_token_file) {
            (None, None) => None,
            (env, file) => Some(
                read_secret(env.as_deref(), file.as_deref())
                    .map_err(|e| ConfigError(format!("gateway.admin_token: {e}")))?,
            ),
        };
        let sidecar_token = match (&config.gateway.sidecar_token_env, &config.gateway.sidecar_token_file) {
            (None, None) => None,
            (env, file) => Some(
                read_secret(env.as_deref(), file.as_deref())
                    .map_err(|e| ConfigError(format!("gateway.sidecar_token: {e}")))?,
            ),
        };
        let client = build_client(&config).map_err(ConfigError)?;
        Ok(Runtime {
            config,
            routes,
            client,
            admin_token,
            sidecar_token,
            loaded_at: SystemTime::now(),
            masker: global,
        })
    }

    pub fn route_by_host(&self, host: &str) -> Option<&RouteRt> {
        self.routes.iter().find(|r| r.host == host)
    }
}

pub struct Shared {
    runtime: RwLock<Arc<Runtime>>,
    pub vault: Arc<dyn Vault>,
    /// The Redis backend when `[vault] backend = "redis"` (also serves `policy = "redis"` rate limits).
    pub redis: Option<Arc<RedisVault>>,
    pub metrics: Metrics,
    pub limiter: Limiter,
    pub config_path: Option<PathBuf>,
    pub started: Instant,
}

/// The vault, and the same object as a Redis backend when it is one (for shared rate limits).
pub type Vaults = (Arc<dyn Vault>, Option<Arc<RedisVault>>);

/// The vault the configuration asks for. The Redis backend needs its key (env `MASKGATE_VAULT_KEY` or
/// `[vault] key_file`): without it the gateway refuses to start. It does not need Redis to be up (requests get
/// 503 `VAULT_UNAVAILABLE` and `/health/ready` fails until it is). Call inside a Tokio runtime.
pub fn make_vault(config: &Config) -> Result<Vaults, ConfigError> {
    match config.vault.backend {
        VaultBackend::Embedded => Ok((
            Arc::new(MemoryVault::new(MemoryVaultConfig {
                max_entries: config.vault.max_entries,
                ttl: config.vault.ttl,
            })),
            None,
        )),
        VaultBackend::Redis => {
            let keys = config.vault.keyring()?;
            let rc = config.vault.redis_config()?;
            let url = if rc.cluster.is_empty() {
                maskgate_vault::redis_vault::redact_url(&rc.url)
            } else {
                let nodes: Vec<String> = rc
                    .cluster
                    .iter()
                    .map(|u| maskgate_vault::redis_vault::redact_url(u))
                    .collect();
                format!("cluster {}", nodes.join(","))
            };
            let ids = keys.key_ids();
            let v = Arc::new(RedisVault::new(rc, Arc::new(keys)).map_err(|e| ConfigError(format!("vault: {e}")))?);
            tracing::info!(url = %url, key_ids = ?ids, "Redis vault configured");
            Ok((v.clone(), Some(v)))
        }
    }
}

impl Shared {
    pub fn new(config: Config, config_path: Option<PathBuf>, vault: Arc<dyn Vault>) -> Result<Shared, ConfigError> {
        Self::with_redis(config, config_path, vault, None)
    }

    pub fn with_redis(
        config: Config,
        config_path: Option<PathBuf>,
        vault: Arc<dyn Vault>,
        redis: Option<Arc<RedisVault>>,
    ) -> Result<Shared, ConfigError> {
        let rt = Runtime::build(config)?;
        let mut metrics = Metrics::new();
        if let Some(r) = &redis {
            metrics.watch_redis(r.clone());
        }
        Ok(Shared {
            runtime: RwLock::new(Arc::new(rt)),
            vault,
            redis,
            metrics,
            limiter: Limiter::default(),
            config_path,
            started: Instant::now(),
        })
    }

    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Re-reads the config file (or the defaults) and swaps it in; in-flight requests keep the old one.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let res = (|| {
            let config = match &self.config_path {
                Some(p) => Config::load(p)?,
                None => Config::default(),
            };
            let old = self.runtime();
            if config.gateway.listen != old.config.gateway.listen
                || config.gateway.admin_listen != old.config.gateway.admin_listen
            {
                tracing::warn!("listen addresses changed: they take effect at the next restart");
            }
            if config.vault.backend != old.config.vault.backend {
                tracing::warn!("vault backend changed: it takes effect at the next restart");
            }
            for w in config.warnings() {
                tracing::warn!(warning = %w, "config");
            }
            let rt = Runtime::build(config)?;
            *self.runtime.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rt);
            Ok(())
        })();
        let result = if res.is_ok() { "ok" } else { "error" };
        self.metrics
            .reloads
            .get_or_create(&crate::metrics::VaultOp {
                op: "reload".into(),
                result: result.into(),
            })
            .inc();
        match &res {
            Ok(()) => tracing::info!("configuration reloaded"),
            Err(e) => tracing::error!(error = %e, "configuration reload failed; keeping the previous one"),
        }
        res
    }
}
