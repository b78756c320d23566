//! The seam to `maskgate-engine`'s masking API (`Masker`, `Plan`, `unmask`, `stream`).
//!
//! TEMPORARY: until request masking and response unmasking land in `maskgate-engine`, this module carries a
//! minimal stand-in with the same signatures (EC2 instance ids only, byte-level stream unmasking) so that the
//! gateway builds and its tests run. It is replaced by re-exports of the engine when those land.

use std::borrow::Cow;

use maskgate_engine::placeholder;
pub use maskgate_engine::{RequestMap, Resolver, UnmaskStats};
use serde::Deserialize;

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct MaskerConfig {
    #[serde(default)]
    pub disabled_kinds: Vec<String>,
    #[serde(default)]
    pub custom_patterns: Vec<CustomPattern>,
    #[serde(default)]
    pub allowlist: Vec<String>,
    #[serde(default)]
    pub skip_paths: Option<Vec<String>>,
}

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct CustomPattern {
    pub name: String,
    pub regex: String,
    pub prefix: String,
}

#[derive(Debug)]
pub struct ConfigError(String);
impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug)]
pub enum MaskError {
    InvalidJson(String),
    Leak,
    Placeholders,
}
impl std::fmt::Display for MaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaskError::InvalidJson(e) => write!(f, "invalid JSON: {e}"),
            MaskError::Leak => f.write_str("leak check failed"),
            MaskError::Placeholders => f.write_str("wrong number of placeholders"),
        }
    }
}

pub struct Masker {
    allow: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct PlanEntry {
    pub kind: String,
    pub prefix: String,
    pub original: String,
}

enum Body {
    Text(String),
    Json(serde_json::Value),
}

pub struct Plan {
    entries: Vec<PlanEntry>,
    body: Body,
}

pub struct Masked {
    pub body: Vec<u8>,
    pub map: RequestMap,
    pub counts: Vec<(String, u64)>,
}

impl Masker {
    pub fn new(cfg: &MaskerConfig) -> Result<Masker, ConfigError> {
        for (i, p) in cfg.custom_patterns.iter().enumerate() {
            if !placeholder::is_valid_prefix(&p.prefix) {
                return Err(ConfigError(format!(
                    "custom_patterns[{i}].prefix: not of the form AWS_KIND"
                )));
            }
        }
        Ok(Masker {
            allow: cfg.allowlist.clone(),
        })
    }

    fn scan(&self, text: &str, out: &mut Vec<PlanEntry>) {
        let b = text.as_bytes();
        let mut i = 0;
        while i + 2 < b.len() {
            if b[i] == b'i' && b[i + 1] == b'-' && (i == 0 || !placeholder::is_word_byte(b[i - 1])) {
                let mut j = i + 2;
                while j < b.len() && (b[j].is_ascii_digit() || (b'a'..=b'f').contains(&b[j])) {
                    j += 1;
                }
                let n = j - i - 2;
                if (n == 8 || n == 17) && (j == b.len() || !placeholder::is_word_byte(b[j])) {
                    let o = &text[i..j];
                    if !self.allow.iter().any(|a| a == o) {
                        out.push(PlanEntry {
                            kind: "ec2_instance".into(),
                            prefix: "AWS_EC2".into(),
                            original: o.to_string(),
                        });
                    }
                    i = j;
                    continue;
                }
            }
            i += 1;
        }
    }

    pub fn plan_text(&self, text: &str) -> Plan {
        let mut entries = Vec::new();
        self.scan(text, &mut entries);
        Plan {
            entries,
            body: Body::Text(text.to_string()),
        }
    }

    pub fn plan_json(&self, body: &[u8]) -> Result<Plan, MaskError> {
        let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| MaskError::InvalidJson(e.to_string()))?;
        let mut entries = Vec::new();
        walk(&v, &mut |s| self.scan(s, &mut entries));
        Ok(Plan {
            entries,
            body: Body::Json(v),
        })
    }
}

fn walk(v: &serde_json::Value, f: &mut dyn FnMut(&str)) {
    match v {
        serde_json::Value::String(s) => f(s),
        serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, f)),
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                f(k);
                if k != "model" {
                    walk(x, f)
                }
            }
        }
        _ => {}
    }
}

fn replace_all(s: &str, pairs: &[(String, String)]) -> String {
    let mut s = s.to_string();
    for (o, p) in pairs {
        s = s.replace(o.as_str(), p);
    }
    s
}

fn rewrite(v: &mut serde_json::Value, pairs: &[(String, String)]) {
    match v {
        serde_json::Value::String(s) => *s = replace_all(s, pairs),
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| rewrite(x, pairs)),
        serde_json::Value::Object(o) => {
            let old = std::mem::take(o);
            for (k, mut x) in old {
                if k != "model" {
                    rewrite(&mut x, pairs);
                }
                o.insert(replace_all(&k, pairs), x);
            }
        }
        _ => {}
    }
}

impl Plan {
    pub fn entries(&self) -> &[PlanEntry] {
        &self.entries
    }

    pub fn finish(self, placeholders: &[String]) -> Result<Masked, MaskError> {
        if placeholders.len() != self.entries.len() {
            return Err(MaskError::Placeholders);
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut map = RequestMap::new();
        let mut counts: Vec<(String, u64)> = Vec::new();
        for (e, p) in self.entries.iter().zip(placeholders) {
            map.insert(p.clone(), e.original.clone());
            pairs.push((e.original.clone(), p.clone()));
            match counts.iter_mut().find(|(k, _)| *k == e.kind) {
                Some(c) => c.1 += 1,
                None => counts.push((e.kind.clone(), 1)),
            }
        }
        pairs.sort_by_key(|(o, _)| std::cmp::Reverse(o.len()));
        let body = match self.body {
            Body::Text(t) => replace_all(&t, &pairs).into_bytes(),
            Body::Json(mut v) => {
                rewrite(&mut v, &pairs);
                serde_json::to_vec(&v).map_err(|e| MaskError::InvalidJson(e.to_string()))?
            }
        };
        let text = String::from_utf8_lossy(&body);
        if pairs.iter().any(|(o, _)| text.contains(o.as_str())) {
            return Err(MaskError::Leak);
        }
        Ok(Masked { body, map, counts })
    }
}

pub mod unmask {
    use super::*;

    #[derive(Debug)]
    pub struct UnmaskError(pub String);
    impl std::fmt::Display for UnmaskError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }

    pub(crate) fn replace(text: &[u8], r: &impl Resolver, stats: &mut UnmaskStats, json: bool) -> Option<Vec<u8>> {
        let mut out: Option<Vec<u8>> = None;
        let mut last = 0;
        for (a, b) in placeholder::find_all(text) {
            let p = std::str::from_utf8(&text[a..b]).unwrap_or_default();
            match r.resolve(p) {
                Some(o) => {
                    stats.resolved += 1;
                    let o2 = out.get_or_insert_with(Vec::new);
                    o2.extend_from_slice(&text[last..a]);
                    if json {
                        let q = serde_json::to_string(o).unwrap_or_default();
                        o2.extend_from_slice(&q.as_bytes()[1..q.len() - 1]);
                    } else {
                        o2.extend_from_slice(o.as_bytes());
                    }
                    last = b;
                }
                None => stats.misses += 1,
            }
        }
        out.map(|mut o| {
            o.extend_from_slice(&text[last..]);
            o
        })
    }

    pub fn unmask_text<'a>(text: &'a str, r: &impl Resolver, stats: &mut UnmaskStats) -> Cow<'a, str> {
        match replace(text.as_bytes(), r, stats, false) {
            Some(v) => Cow::Owned(String::from_utf8(v).unwrap_or_default()),
            None => Cow::Borrowed(text),
        }
    }

    pub fn unmask_json(body: &[u8], r: &impl Resolver, stats: &mut UnmaskStats) -> Result<Vec<u8>, UnmaskError> {
        serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(|e| UnmaskError(e.to_string()))?;
        Ok(replace(body, r, stats, true).unwrap_or_else(|| body.to_vec()))
    }
}

pub mod stream {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum StreamFormat {
        Sse,
        JsonArray,
    }

    impl StreamFormat {
        pub fn detect(content_type: &str, _host: &str, path: &str) -> Option<StreamFormat> {
            let ct = content_type.to_ascii_lowercase();
            if ct.starts_with("text/event-stream") {
                Some(StreamFormat::Sse)
            } else if ct.starts_with("application/json") && path.contains(":streamGenerateContent") {
                Some(StreamFormat::JsonArray)
            } else {
                None
            }
        }
    }

    #[derive(Debug)]
    pub struct StreamError(pub String);
    impl std::fmt::Display for StreamError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }

    pub struct StreamUnmasker<R: Resolver> {
        resolver: R,
        held: Vec<u8>,
        stats: UnmaskStats,
    }

    impl<R: Resolver> StreamUnmasker<R> {
        pub fn new(_format: StreamFormat, resolver: R) -> Self {
            Self {
                resolver,
                held: Vec::new(),
                stats: UnmaskStats::default(),
            }
        }
        pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), StreamError> {
            self.held.extend_from_slice(chunk);
            let keep = placeholder::holdback_len(&self.held);
            let n = self.held.len() - keep;
            let ready: Vec<u8> = self.held.drain(..n).collect();
            match unmask::replace(&ready, &self.resolver, &mut self.stats, true) {
                Some(v) => out.extend_from_slice(&v),
                None => out.extend_from_slice(&ready),
            }
            Ok(())
        }
        pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), StreamError> {
            let rest = std::mem::take(&mut self.held);
            match unmask::replace(&rest, &self.resolver, &mut self.stats, true) {
                Some(v) => out.extend_from_slice(&v),
                None => out.extend_from_slice(&rest),
            }
            Ok(())
        }
        pub fn stats(&self) -> UnmaskStats {
            self.stats
        }
    }
}
