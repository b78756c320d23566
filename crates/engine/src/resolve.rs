//! Looking placeholders up on the way back.

use std::hash::BuildHasher;

/// Resolves a placeholder to its original. The gateway passes the map of the request being answered
/// ([`RequestMap`]); routes that opt in to tenant-wide resolution pass their own implementation.
pub trait Resolver {
    fn resolve(&self, placeholder: &str) -> Option<&str>;
}

/// The placeholders inserted into one request, and their originals. A response may only resolve these.
///
/// One string holds every pair, one after another, and a table their spans: a request of AWS API output inserts
/// thousands of placeholders, and two allocations a pair cost more than the rest of recording them. (foldhash,
/// seeded per process: the keys are placeholders this gateway wrote, so SipHash's defence against chosen keys buys
/// nothing, and it cost ~9 % of masking a request of AWS API output with thousands of ids.)
#[derive(Clone, Default)]
pub struct RequestMap {
    /// Placeholder, original, placeholder, original, …
    text: String,
    /// `(start of the placeholder in text, its end = the start of the original, the original's end)`.
    pairs: hashbrown::HashTable<(usize, usize, usize)>,
    hasher: foldhash::fast::RandomState,
}

impl RequestMap {
    pub fn new() -> Self {
        Self::default()
    }
    /// Room for `n` more pairs of `bytes` bytes in all (placeholders and originals).
    pub fn reserve(&mut self, n: usize, bytes: usize) {
        let hasher = &self.hasher;
        let text = &self.text;
        self.pairs.reserve(n, |&(a, b, _)| hasher.hash_one(&text[a..b]));
        self.text.reserve(bytes);
    }
    /// Maps `placeholder` to `original` (in place of what it was mapped to).
    pub fn insert(&mut self, placeholder: &str, original: &str) {
        let a = self.text.len();
        self.text.push_str(placeholder);
        let b = self.text.len();
        self.text.push_str(original);
        let pair = (a, b, self.text.len());
        let text = &self.text;
        let hasher = &self.hasher;
        let hash = hasher.hash_one(placeholder);
        match self.pairs.entry(
            hash,
            |&(a, b, _)| &text[a..b] == placeholder,
            |&(a, b, _)| hasher.hash_one(&text[a..b]),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut o) => *o.get_mut() = pair,
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(pair);
            }
        }
    }
    pub fn len(&self) -> usize {
        self.pairs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
    /// `(placeholder, original)` pairs, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|&(a, b, c)| (&self.text[a..b], &self.text[b..c]))
    }
    /// Adds every pair of `other`.
    pub fn extend(&mut self, other: RequestMap) {
        if self.is_empty() {
            *self = other;
            return;
        }
        self.reserve(other.len(), other.text.len());
        for (p, o) in other.iter() {
            self.insert(p, o);
        }
    }
}

impl std::fmt::Debug for RequestMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// The same pairs, whatever the order they were inserted in.
impl PartialEq for RequestMap {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(p, o)| other.resolve(p) == Some(o))
    }
}

impl Eq for RequestMap {}

impl Resolver for RequestMap {
    fn resolve(&self, placeholder: &str) -> Option<&str> {
        let hash = self.hasher.hash_one(placeholder);
        self.pairs
            .find(hash, |&(a, b, _)| &self.text[a..b] == placeholder)
            .map(|&(_, b, c)| &self.text[b..c])
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
