//! Shared helpers for the fuzz targets: a byte reader that turns the fuzz input into choices, the default
//! masker, generated placeholders, a small tenant vault, and a resolver that records what it resolved.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::LazyLock;

use maskgate_engine::placeholder;
use maskgate_engine::{MaskError, Masked, Masker, MaskerConfig, Plan, PlanEntry, RequestMap, Resolver};

/// The masker with the default configuration (built once: compiling the detectors is the expensive part).
pub static MASKER: LazyLock<Masker> =
    LazyLock::new(|| Masker::new(&MaskerConfig::default()).expect("default masker configuration"));

/// Reads choices off the fuzz input, front to back; an exhausted reader yields zeros.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }
    pub fn u16(&mut self) -> u16 {
        u16::from(self.u8()) << 8 | u16::from(self.u8())
    }
    /// Up to `n` bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a
    }
    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// Cut points `0 = c0 <= c1 <= ... <= len` for `n` cuts chosen by `r`.
pub fn cuts(r: &mut Reader<'_>, len: usize, n: usize) -> Vec<usize> {
    let mut at: Vec<usize> = (0..n).map(|_| usize::from(r.u16()) % (len + 1)).collect();
    at.push(0);
    at.push(len);
    at.sort_unstable();
    at
}

/// Placeholders for a plan as a fresh vault would give them: `prefix_001`, `prefix_002`, ... per prefix.
pub fn fresh_placeholders(plan: &Plan) -> Vec<String> {
    let mut next: HashMap<&str, u64> = HashMap::new();
    plan.entries()
        .iter()
        .map(|e| {
            let n = next.entry(e.prefix).or_insert(0);
            *n += 1;
            placeholder::format(e.prefix, *n)
        })
        .collect()
}

/// One tenant's vault: get-or-allocate per `(prefix, original)`, counters per prefix that only grow.
#[derive(Default, Clone)]
pub struct TenantVault {
    by_value: HashMap<(String, String), String>,
    counters: HashMap<String, u64>,
}

impl TenantVault {
    pub fn assign(&mut self, plan: &Plan) -> Vec<String> {
        plan.entries()
            .iter()
            .map(|e| {
                let key = (e.prefix.to_string(), e.original.to_string());
                if let Some(p) = self.by_value.get(&key) {
                    return p.clone();
                }
                let n = self.counters.entry(e.prefix.to_string()).or_insert(0);
                *n += 1;
                let p = placeholder::format(e.prefix, *n);
                self.by_value.insert(key, p.clone());
                p
            })
            .collect()
    }

    /// Masks `plan` with this vault's placeholders.
    pub fn finish(&mut self, plan: Plan) -> Result<Masked, MaskError> {
        let ph = self.assign(&plan);
        plan.finish(&ph)
    }
}

/// A resolver that records every value it resolved.
pub struct Recording<'a> {
    pub map: &'a RequestMap,
    pub resolved: RefCell<Vec<String>>,
}

impl<'a> Recording<'a> {
    pub fn new(map: &'a RequestMap) -> Self {
        Recording {
            map,
            resolved: RefCell::new(Vec::new()),
        }
    }
}

impl Resolver for Recording<'_> {
    fn resolve(&self, p: &str) -> Option<&str> {
        let o = self.map.resolve(p)?;
        self.resolved.borrow_mut().push(o.to_string());
        Some(o)
    }
}

/// Kind prefixes used to build placeholder-shaped text.
pub const PREFIXES: &[&str] = &[
    "AWS_EC2",
    "AWS_VPC",
    "AWS_SUBNET",
    "AWS_IAM_ROLE",
    "AWS_ACCOUNT",
    "AWS_ACCESS_KEY",
    "AWS_S3_BUCKET",
    "AWS_LITERAL",
    "AWS_SG",
    "AWS_ARN",
];

/// A placeholder-shaped string chosen by two bytes: a prefix and a counter (3 or 4 digits).
pub fn placeholder_like(r: &mut Reader<'_>) -> String {
    let p = PREFIXES[usize::from(r.u8()) % PREFIXES.len()];
    let c = r.u8();
    let n = if c >= 250 {
        1000 + u64::from(c)
    } else {
        u64::from(c % 8) + 1
    };
    placeholder::format(p, n)
}

/// Where masking promises that an original is gone from the output: the documented reach rule (ARCHITECTURE.md,
/// "Where a value reaches"; `Reach` in the engine's mask.rs), which the engine's leak check follows too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Distinctive values (8+ bytes): nowhere, also not inside a larger word.
    Anywhere,
    /// Short values: nowhere as a word of their own. Inside a larger word (`buc` in `dbucet`) they stay, or every
    /// word holding those letters would be destroyed.
    Word,
    /// Plain-word names (`--username admin`): only where they were found; `admin` elsewhere stays.
    Found,
}

/// The reach of a planned value (default configuration: the kind is one of the masker's).
pub fn reach(e: &PlanEntry) -> Reach {
    let named = MASKER
        .detector()
        .kinds()
        .iter()
        .find(|k| k.name == e.kind)
        .is_some_and(|k| k.customer_named());
    if named && !maskgate_engine::detect::looks_like_id(e.original.as_bytes()) {
        Reach::Found
    } else if e.original.len() >= 8 {
        Reach::Anywhere
    } else {
        Reach::Word
    }
}

/// True when an occurrence of an original at `hay[at..end]` breaks the promise of `reach`.
pub fn within_reach(reach: Reach, hay: &[u8], at: usize, end: usize) -> bool {
    match reach {
        Reach::Anywhere => true,
        Reach::Word => {
            (at == 0 || !placeholder::is_word_byte(hay[at - 1]))
                && (end == hay.len() || !placeholder::is_word_byte(hay[end]))
        }
        Reach::Found => false,
    }
}

/// Every start of `needle` in `hay`, overlapping ones too.
pub fn find_all<'a>(hay: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    (0..hay.len().saturating_sub(needle.len().max(1) - 1)).filter(move |&i| hay[i..].starts_with(needle))
}
