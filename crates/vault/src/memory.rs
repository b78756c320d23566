//! The embedded vault: in memory, bounded, with a sliding TTL.
//!
//! State is sharded by tenant; each shard is one mutex, held for the whole of one `assign` call so that a request's
//! values are allocated atomically. Counters only grow: an evicted original that comes back gets a fresh number,
//! so a number is never reused for a different original.

use std::collections::VecDeque;

use foldhash::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{BoxFuture, Entry, Vault, VaultError};

const SHARDS: usize = 16;

#[derive(Debug, Clone)]
pub struct MemoryVaultConfig {
    /// Mappings kept at most (over all tenants). The least recently used are dropped first.
    pub max_entries: usize,
    /// A mapping not used for this long is forgotten (sliding: every use renews it).
    pub ttl: Duration,
}

impl Default for MemoryVaultConfig {
    fn default() -> Self {
        Self {
            max_entries: 1_000_000,
            ttl: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

pub struct MemoryVault {
    shards: Vec<Mutex<Shard>>,
    config: MemoryVaultConfig,
    clock: Clock,
}

#[derive(Default)]
struct Shard {
    /// key(tenant, prefix, original) -> slot
    forward: HashMap<Arc<[u8]>, Slot>,
    /// key(tenant, placeholder) -> the forward key of its original
    reverse: HashMap<Box<[u8]>, Arc<[u8]>>,
    /// key(tenant, prefix) -> last number handed out
    counters: HashMap<Box<[u8]>, u64>,
    /// Touch order, oldest first, with the stamp and time of the touch; stale pairs (stamp no longer the slot's)
    /// are skipped.
    lru: VecDeque<(Arc<[u8]>, u64, Instant)>,
    stamp: u64,
}

struct Slot {
    /// The map key it is stored under (shared, for the touch queue).
    key: Arc<[u8]>,
    placeholder: Box<str>,
    last_used: Instant,
    stamp: u64,
}

/// Map keys are byte strings `len(tenant) tenant [len(prefix) prefix] rest` (lengths as 4 bytes, so no two
/// tuples share a key): a lookup builds its key in a reused buffer and allocates nothing.
fn key_into(buf: &mut Vec<u8>, tenant: &str, prefix: Option<&str>, rest: &str) {
    buf.clear();
    buf.extend_from_slice(&(tenant.len() as u32).to_le_bytes());
    buf.extend_from_slice(tenant.as_bytes());
    if let Some(p) = prefix {
        buf.extend_from_slice(&(p.len() as u32).to_le_bytes());
        buf.extend_from_slice(p.as_bytes());
    }
    buf.extend_from_slice(rest.as_bytes());
}

/// A length-prefixed field at the start of a key, and the bytes after it.
fn field(key: &[u8]) -> (&str, &[u8]) {
    let n = u32::from_le_bytes(key[..4].try_into().expect("4 bytes")) as usize;
    let s = std::str::from_utf8(&key[4..4 + n]).expect("keys are built from strings");
    (s, &key[4 + n..])
}

/// The tenant and the original of a forward key.
fn tenant_and_original(key: &[u8]) -> (&str, &str) {
    let (tenant, rest) = field(key);
    let (_prefix, original) = field(rest);
    (
        tenant,
        std::str::from_utf8(original).expect("keys are built from strings"),
    )
}

impl MemoryVault {
    pub fn new(config: MemoryVaultConfig) -> Self {
        Self::with_clock(config, Arc::new(Instant::now))
    }

    /// For tests: a vault whose notion of "now" comes from `clock`.
    pub fn with_clock(config: MemoryVaultConfig, clock: Clock) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            config,
            clock,
        }
    }

    /// Number of live mappings (over all tenants).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).forward.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, tenant: &str) -> &Mutex<Shard> {
        // FNV-1a: stable, cheap, and tenants are not attacker-chosen keys of a shared table.
        let mut h: u64 = 0xcbf29ce484222325;
        for b in tenant.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100000001b3);
        }
        &self.shards[(h as usize) % SHARDS]
    }

    fn per_shard_cap(&self) -> usize {
        (self.config.max_entries / SHARDS).max(1)
    }

    /// Synchronous form of [`Vault::assign`].
    pub fn assign_now(&self, tenant: &str, entries: &[Entry<'_>]) -> Result<Vec<String>, VaultError> {
        let mut checked: Option<&str> = None;
        for e in entries {
            if checked != Some(e.prefix) {
                if !maskgate_engine::placeholder::is_valid_prefix(e.prefix) {
                    return Err(VaultError::Invalid(
                        "placeholder prefix is not of the form AWS_KIND".into(),
                    ));
                }
                checked = Some(e.prefix);
            }
        }
        let now = (self.clock)();
        let cap = self.per_shard_cap();
        let ttl = self.config.ttl;
        let mut shard = lock(self.shard(tenant));
        let shard = &mut *shard;
        let mut out = Vec::with_capacity(entries.len());
        let (mut key, mut ckey) = (Vec::new(), Vec::new());
        for e in entries {
            key_into(&mut key, tenant, Some(e.prefix), e.original);
            shard.stamp += 1;
            let stamp = shard.stamp;
            let (placeholder, held) = match shard.forward.get_mut(key.as_slice()) {
                Some(slot) if now.duration_since(slot.last_used) < ttl => {
                    slot.last_used = now;
                    slot.stamp = stamp;
                    (String::from(&*slot.placeholder), slot.key.clone())
                }
                found => {
                    let expired = found.is_some();
                    if expired {
                        shard.remove(&key);
                    }
                    shard.make_room(cap, now, ttl);
                    key_into(&mut ckey, tenant, None, e.prefix);
                    let counter = match shard.counters.get_mut(ckey.as_slice()) {
                        Some(c) => c,
                        None => shard.counters.entry(ckey.as_slice().into()).or_insert(0),
                    };
                    *counter += 1;
                    let p = maskgate_engine::placeholder::format(e.prefix, *counter);
                    let k: Arc<[u8]> = Arc::from(key.as_slice());
                    let mut rkey = Vec::with_capacity(4 + tenant.len() + p.len());
                    key_into(&mut rkey, tenant, None, &p);
                    shard.reverse.insert(rkey.into_boxed_slice(), k.clone());
                    shard.forward.insert(
                        k.clone(),
                        Slot {
                            key: k.clone(),
                            placeholder: p.as_str().into(),
                            last_used: now,
                            stamp,
                        },
                    );
                    (p, k)
                }
            };
            shard.lru.push_back((held, stamp, now));
            out.push(placeholder);
        }
        shard.compact();
        Ok(out)
    }

    /// Synchronous form of [`Vault::resolve`].
    pub fn resolve_now(&self, tenant: &str, placeholders: &[&str]) -> Vec<Option<String>> {
        let now = (self.clock)();
        let shard = lock(self.shard(tenant));
        let mut key = Vec::new();
        placeholders
            .iter()
            .map(|p| {
                key_into(&mut key, tenant, None, p);
                let fkey = shard.reverse.get(key.as_slice())?;
                let slot = shard.forward.get(fkey)?;
                if now.duration_since(slot.last_used) >= self.config.ttl {
                    return None;
                }
                Some(tenant_and_original(fkey).1.to_string())
            })
            .collect()
    }
}

impl Shard {
    fn remove(&mut self, key: &[u8]) {
        if let Some(slot) = self.forward.remove(key) {
            let mut rkey = Vec::new();
            key_into(&mut rkey, tenant_and_original(key).0, None, &slot.placeholder);
            self.reverse.remove(rkey.as_slice());
        }
    }

    /// Drops expired mappings from the old end, then the least recently used until one more fits. The time
    /// recorded with a touch is never later than the slot's last use, so while the oldest touch is live and the
    /// shard is not full, nothing needs looking up.
    fn make_room(&mut self, cap: usize, now: Instant, ttl: Duration) {
        while let Some((key, stamp, touched)) = self.lru.front() {
            if self.forward.len() < cap && now.duration_since(*touched) < ttl {
                break;
            }
            let (key, stamp) = (key.clone(), *stamp);
            self.lru.pop_front();
            // `None`: a stale touch (the slot was used again later, or is gone).
            let current = self.forward.get(&key).filter(|s| s.stamp == stamp).map(|s| s.last_used);
            match current {
                Some(last_used) if self.forward.len() >= cap || now.duration_since(last_used) >= ttl => {
                    self.remove(&key)
                }
                // Live, not full, not expired: it stays the oldest.
                Some(last_used) => {
                    self.lru.push_front((key, stamp, last_used));
                    break;
                }
                None => {}
            }
        }
    }

    /// Keeps the touch queue proportional to the live set.
    fn compact(&mut self) {
        if self.lru.len() > 64 && self.lru.len() > 4 * self.forward.len() {
            let forward = &self.forward;
            self.lru
                .retain(|(k, stamp, _)| forward.get(k).is_some_and(|s| s.stamp == *stamp));
        }
    }
}

fn lock(m: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    // A panic while holding the lock cannot leave the maps inconsistent in a way that matters more than
    // refusing all further traffic would, so keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Vault for MemoryVault {
    fn assign<'a>(
        &'a self,
        tenant: &'a str,
        entries: &'a [Entry<'a>],
    ) -> BoxFuture<'a, Result<Vec<String>, VaultError>> {
        Box::pin(std::future::ready(self.assign_now(tenant, entries)))
    }

    fn resolve<'a>(
        &'a self,
        tenant: &'a str,
        placeholders: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Option<String>>, VaultError>> {
        Box::pin(std::future::ready(Ok(self.resolve_now(tenant, placeholders))))
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), VaultError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn backend(&self) -> &'static str {
        "embedded"
    }

    fn assigns_when_called(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block_on_ready;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn e<'a>(prefix: &'a str, original: &'a str) -> Entry<'a> {
        Entry { prefix, original }
    }

    #[test]
    fn same_original_same_placeholder_per_tenant() {
        let v = MemoryVault::new(MemoryVaultConfig::default());
        let a = v
            .assign_now("t1", &[e("AWS_EC2", "i-1"), e("AWS_EC2", "i-2"), e("AWS_EC2", "i-1")])
            .unwrap();
        assert_eq!(a, ["AWS_EC2_001", "AWS_EC2_002", "AWS_EC2_001"]);
        let b = v
            .assign_now("t1", &[e("AWS_VPC", "vpc-1"), e("AWS_EC2", "i-2")])
            .unwrap();
        assert_eq!(b, ["AWS_VPC_001", "AWS_EC2_002"]);
        // Another tenant has its own numbering and cannot resolve t1's placeholders.
        let c = v.assign_now("t2", &[e("AWS_EC2", "i-9")]).unwrap();
        assert_eq!(c, ["AWS_EC2_001"]);
        assert_eq!(
            v.resolve_now("t2", &["AWS_EC2_001", "AWS_EC2_002"]),
            [Some("i-9".into()), None]
        );
        assert_eq!(v.resolve_now("t1", &["AWS_EC2_002"]), [Some("i-2".into())]);
        let via_trait = block_on_ready(Vault::assign(&v, "t1", &[e("AWS_EC2", "i-1")])).unwrap();
        assert_eq!(via_trait, ["AWS_EC2_001"]);
    }

    #[test]
    fn counter_grows_past_999() {
        let v = MemoryVault::new(MemoryVaultConfig::default());
        let originals: Vec<String> = (0..1001).map(|i| format!("i-{i}")).collect();
        let entries: Vec<Entry> = originals.iter().map(|o| e("AWS_EC2", o)).collect();
        let out = v.assign_now("t", &entries).unwrap();
        assert_eq!(out[998], "AWS_EC2_999");
        assert_eq!(out[999], "AWS_EC2_1000");
        assert_eq!(out[1000], "AWS_EC2_1001");
    }

    #[test]
    fn sliding_ttl_and_no_number_reuse() {
        let t = Arc::new(AtomicU64::new(0));
        let base = Instant::now();
        let t2 = t.clone();
        let v = MemoryVault::with_clock(
            MemoryVaultConfig {
                max_entries: 100,
                ttl: Duration::from_secs(10),
            },
            Arc::new(move || base + Duration::from_secs(t2.load(Ordering::SeqCst))),
        );
        assert_eq!(v.assign_now("t", &[e("AWS_EC2", "a")]).unwrap(), ["AWS_EC2_001"]);
        t.store(8, Ordering::SeqCst);
        assert_eq!(v.assign_now("t", &[e("AWS_EC2", "a")]).unwrap(), ["AWS_EC2_001"]); // renewed
        t.store(16, Ordering::SeqCst);
        assert_eq!(v.resolve_now("t", &["AWS_EC2_001"]), [Some("a".into())]);
        t.store(30, Ordering::SeqCst);
        assert_eq!(v.resolve_now("t", &["AWS_EC2_001"]), [None]);
        assert_eq!(v.assign_now("t", &[e("AWS_EC2", "a")]).unwrap(), ["AWS_EC2_002"]);
    }

    #[test]
    fn bounded() {
        let v = MemoryVault::new(MemoryVaultConfig {
            max_entries: SHARDS * 4,
            ttl: Duration::from_secs(60),
        });
        let originals: Vec<String> = (0..50).map(|i| format!("i-{i}")).collect();
        for o in &originals {
            v.assign_now("t", &[e("AWS_EC2", o)]).unwrap();
        }
        assert!(v.len() <= 4, "len {}", v.len());
        // The most recent survive.
        assert_eq!(v.assign_now("t", &[e("AWS_EC2", "i-49")]).unwrap(), ["AWS_EC2_050"]);
    }

    #[test]
    fn rejects_bad_prefix() {
        let v = MemoryVault::new(MemoryVaultConfig::default());
        assert!(matches!(
            v.assign_now("t", &[e("ec2", "x")]),
            Err(VaultError::Invalid(_))
        ));
    }
}
