//! The placeholder vault: maps `(tenant, kind, original)` to a placeholder and back.
//!
//! One request's values go in one call ([`Vault::assign`]), so a networked backend (Redis, in its own issue) can
//! serve a request in one round trip. Allocation is atomic per `(tenant, kind prefix)`: the same original always
//! gets the same placeholder within a tenant while the mapping lives (sliding TTL), and two concurrent requests
//! never get the same number for different originals.
//!
//! Backends: [`MemoryVault`] (embedded, one process) and, with the `redis` feature, [`RedisVault`] (several
//! replicas share one Redis; see `redis_vault`).

use std::future::Future;
use std::pin::Pin;

pub mod memory;

pub use memory::{MemoryVault, MemoryVaultConfig};

#[cfg(feature = "redis")]
pub mod breaker;
#[cfg(feature = "redis")]
pub mod keys;
#[cfg(feature = "redis")]
pub mod redis_vault;
#[cfg(feature = "redis")]
#[doc(hidden)]
pub mod testing;

/// The `redis` client crate, for callers (and tests) that talk to the same server.
#[cfg(feature = "redis")]
pub use ::redis as redis_client;
#[cfg(feature = "redis")]
pub use keys::Keyring;
#[cfg(feature = "redis")]
pub use redis_vault::{RedisVault, RedisVaultConfig};

/// A boxed future, so the trait is object safe (`Arc<dyn Vault>`) without an async-trait macro.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One value to assign: the kind's placeholder prefix (e.g. `AWS_EC2`) and the original text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Entry<'a> {
    pub prefix: &'a str,
    pub original: &'a str,
}

impl<'a> From<&'a maskgate_engine::PlanEntry<'_>> for Entry<'a> {
    /// A value the masker planned: what to ask the vault for.
    fn from(e: &'a maskgate_engine::PlanEntry<'_>) -> Self {
        Entry {
            prefix: e.prefix,
            original: &e.original,
        }
    }
}

/// Why a vault call failed. Never carries an original value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultError {
    /// The backend cannot be reached or did not answer in time: refuse the request (503 `VAULT_UNAVAILABLE`).
    Unavailable(String),
    /// The backend is full and cannot evict (embedded vault with every entry still live).
    Full,
    /// Invalid input (e.g. a prefix that is not a valid placeholder prefix).
    Invalid(String),
}

impl std::fmt::Display for VaultError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VaultError::Unavailable(why) => write!(f, "vault unavailable: {why}"),
            VaultError::Full => write!(f, "vault full"),
            VaultError::Invalid(why) => write!(f, "invalid vault request: {why}"),
        }
    }
}

impl std::error::Error for VaultError {}

pub trait Vault: Send + Sync + 'static {
    /// Returns the placeholder of each entry, in order, allocating new ones atomically where needed, and
    /// refreshes the TTL of those that exist. Duplicate entries get the same placeholder.
    fn assign<'a>(
        &'a self,
        tenant: &'a str,
        entries: &'a [Entry<'a>],
    ) -> BoxFuture<'a, Result<Vec<String>, VaultError>>;

    /// Looks placeholders up within one tenant (for routes that opt in to tenant-wide resolution).
    /// `None` for placeholders the tenant does not have.
    fn resolve<'a>(
        &'a self,
        tenant: &'a str,
        placeholders: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Option<String>>, VaultError>>;

    /// Cheap reachability check for readiness probes.
    fn ping(&self) -> BoxFuture<'_, Result<(), VaultError>>;

    /// Backend name for logs and metrics (`embedded`, `redis`).
    fn backend(&self) -> &'static str;

    /// Whether `assign` does its work when called, before its future is polled (the embedded vault: thousands
    /// of values are milliseconds of CPU, worth running off an async worker), rather than waiting on I/O.
    fn assigns_when_called(&self) -> bool {
        false
    }
}

/// Drives a future that completes without waiting on I/O (the embedded vault's) on the current thread.
/// For offline tools that have no async runtime. Panics if the future ever returns `Pending`.
pub fn block_on_ready<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("block_on_ready: the future is not ready (use an async runtime)"),
    }
}
