//! The seam to `maskgate-engine`: masking comes from the engine; response unmasking (`unmask`, `stream`) is a
//! TEMPORARY stand-in with the engine's announced signatures (byte-level replacement with a held-back tail), to be
//! replaced by re-exports of `maskgate_engine::unmask` and `maskgate_engine::stream` when they land.

use std::borrow::Cow;

use maskgate_engine::placeholder;
pub use maskgate_engine::{
    ConfigError, CustomPattern, MaskError, Masked, Masker, MaskerConfig, Plan, PlanEntry, RequestMap, Resolver,
    UnmaskStats,
};

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

pub use maskgate_engine::placeholder::is_placeholder;
