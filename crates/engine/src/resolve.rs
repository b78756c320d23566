//! Looking placeholders up on the way back.

use foldhash::HashMap;

/// Resolves a placeholder to its original. The gateway passes the map of the request being answered
/// ([`RequestMap`]); routes that opt in to tenant-wide resolution pass their own implementation.
pub trait Resolver {
    fn resolve(&self, placeholder: &str) -> Option<&str>;
}

/// The placeholders inserted into one request, and their originals. A response may only resolve these. (foldhash,
/// seeded per process: the keys are placeholders this gateway wrote, so SipHash's defence against chosen keys buys
/// nothing, and it cost ~9 % of masking a request of AWS API output with thousands of ids.)
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RequestMap {
    by_placeholder: HashMap<String, String>,
}

impl RequestMap {
    pub fn new() -> Self {
        Self::default()
    }
    /// Room for `n` more pairs.
    pub fn reserve(&mut self, n: usize) {
        self.by_placeholder.reserve(n);
    }
    pub fn insert(&mut self, placeholder: String, original: String) {
        self.by_placeholder.insert(placeholder, original);
    }
    pub fn len(&self) -> usize {
        self.by_placeholder.len()
    }
    pub fn is_empty(&self) -> bool {
        self.by_placeholder.is_empty()
    }
    /// `(placeholder, original)` pairs, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.by_placeholder.iter().map(|(p, o)| (p.as_str(), o.as_str()))
    }
    /// Adds every pair of `other`.
    pub fn extend(&mut self, other: RequestMap) {
        self.by_placeholder.extend(other.by_placeholder);
    }
}

impl Resolver for RequestMap {
    fn resolve(&self, placeholder: &str) -> Option<&str> {
        self.by_placeholder.get(placeholder).map(String::as_str)
    }
}

impl<R: Resolver + ?Sized> Resolver for &R {
    fn resolve(&self, placeholder: &str) -> Option<&str> {
        (**self).resolve(placeholder)
    }
}

impl<R: Resolver + ?Sized> Resolver for std::sync::Arc<R> {
    fn resolve(&self, placeholder: &str) -> Option<&str> {
        (**self).resolve(placeholder)
    }
}

impl<R: Resolver + ?Sized> Resolver for Box<R> {
    fn resolve(&self, placeholder: &str) -> Option<&str> {
        (**self).resolve(placeholder)
    }
}

/// Counts of what unmasking did, for metrics and access logs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UnmaskStats {
    /// Placeholders replaced by their original.
    pub resolved: u64,
    /// Placeholder-shaped text that did not resolve and was left as it was.
    pub misses: u64,
}

impl UnmaskStats {
    pub fn add(&mut self, other: UnmaskStats) {
        self.resolved += other.resolved;
        self.misses += other.misses;
    }
}
