//! Rate limiting like Kong's `rate-limiting` plugin: fixed windows per second/minute/hour/day, keyed by client
//! IP, a header or the tenant. Policy `local` counts in this process ([`Limiter`]); policy `redis` counts in the
//! vault's Redis, shared by every replica (one script call per check, [`maskgate_vault::RedisVault::rate_limit`]).
//! Both produce the same [`Decision`] from the same counts, so the headers are the same.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::RateLimit;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    Second,
    Minute,
    Hour,
    Day,
}

impl Window {
    pub fn secs(self) -> u64 {
        match self {
            Window::Second => 1,
            Window::Minute => 60,
            Window::Hour => 3600,
            Window::Day => 86400,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Window::Second => "Second",
            Window::Minute => "Minute",
            Window::Hour => "Hour",
            Window::Day => "Day",
        }
    }
}

pub fn windows(rl: &RateLimit) -> Vec<(Window, u64)> {
    [
        (Window::Second, rl.second),
        (Window::Minute, rl.minute),
        (Window::Hour, rl.hour),
        (Window::Day, rl.day),
    ]
    .into_iter()
    .filter_map(|(w, l)| l.map(|l| (w, l)))
    .collect()
}

/// What a check decided, with what the response headers need.
#[derive(Debug, Clone)]
pub struct Decision {
    pub allowed: bool,
    /// (window, limit, remaining)
    pub windows: Vec<(Window, u64, u64)>,
    /// Seconds until the relevant window resets.
    pub reset: u64,
}

impl Decision {
    pub fn headers(&self, h: &mut http::HeaderMap) {
        for (w, limit, remaining) in &self.windows {
            if let (Ok(n1), Ok(n2)) = (
                http::HeaderName::from_bytes(format!("x-ratelimit-limit-{}", w.name().to_ascii_lowercase()).as_bytes()),
                http::HeaderName::from_bytes(
                    format!("x-ratelimit-remaining-{}", w.name().to_ascii_lowercase()).as_bytes(),
                ),
            ) {
                h.insert(n1, (*limit).into());
                h.insert(n2, (*remaining).into());
            }
        }
        // RateLimit-Limit/Remaining describe the most constrained window, as Kong does.
        if let Some((_, limit, remaining)) = self.windows.iter().min_by_key(|(_, _, r)| *r) {
            h.insert("ratelimit-limit", (*limit).into());
            h.insert("ratelimit-remaining", (*remaining).into());
        }
        h.insert("ratelimit-reset", self.reset.into());
        if !self.allowed {
            h.insert(http::header::RETRY_AFTER, self.reset.into());
        }
    }
}

/// Per window (second, minute, hour, day): (window start, count).
type Slots = [(u64, u64); 4];

#[derive(Default)]
pub struct Limiter {
    // (scope, key) -> per window: (window start, count)
    counters: Mutex<HashMap<(String, String), Slots>>,
}

fn idx(w: Window) -> usize {
    match w {
        Window::Second => 0,
        Window::Minute => 1,
        Window::Hour => 2,
        Window::Day => 3,
    }
}

const MAX_KEYS: usize = 100_000;

impl Limiter {
    pub fn check(&self, scope: &str, key: &str, rl: &RateLimit) -> Decision {
        self.check_at(scope, key, rl, now_secs())
    }

    pub fn check_at(&self, scope: &str, key: &str, rl: &RateLimit, now: u64) -> Decision {
        let ws = windows(rl);
        let mut map = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_KEYS {
            // Drop keys whose every window has ended.
            map.retain(|_, c| {
                c.iter()
                    .enumerate()
                    .any(|(i, (start, n))| *n > 0 && start + [1, 60, 3600, 86400][i] > now)
            });
        }
        let entry = map.entry((scope.to_string(), key.to_string())).or_insert([(0, 0); 4]);
        let mut allowed = true;
        for (w, limit) in &ws {
            let start = now - now % w.secs();
            let slot = &mut entry[idx(*w)];
            if slot.0 != start {
                *slot = (start, 0);
            }
            if slot.1 >= *limit {
                allowed = false;
            }
        }
        if allowed {
            for (w, _) in &ws {
                entry[idx(*w)].1 += 1;
            }
        }
        let counts: Vec<u64> = ws.iter().map(|(w, _)| entry[idx(*w)].1).collect();
        decide(&ws, allowed, &counts, now)
    }
}

/// The decision for windows `ws` given whether the request was counted and each window's count after it.
pub fn decide(ws: &[(Window, u64)], allowed: bool, counts: &[u64], now: u64) -> Decision {
    let mut reset = 0;
    if !allowed {
        // Seconds until every full window has room again.
        for ((w, limit), c) in ws.iter().zip(counts) {
            if c >= limit {
                let start = now - now % w.secs();
                reset = reset.max(start + w.secs() - now);
            }
        }
    }
    let windows: Vec<(Window, u64, u64)> = ws
        .iter()
        .zip(counts)
        .map(|((w, limit), c)| (*w, *limit, limit.saturating_sub(*c)))
        .collect();
    if allowed {
        // Reset of the most constrained window.
        if let Some((w, _, _)) = windows.iter().min_by_key(|(_, _, r)| *r) {
            let start = now - now % w.secs();
            reset = start + w.secs() - now;
        }
    }
    Decision {
        allowed,
        windows,
        reset: reset.max(1),
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rl(second: Option<u64>, minute: Option<u64>) -> RateLimit {
        RateLimit {
            second,
            minute,
            hour: None,
            day: None,
            limit_by: Default::default(),
            header_name: None,
            policy: "local".into(),
            fault_tolerant: true,
        }
    }

    #[test]
    fn fixed_windows() {
        let l = Limiter::default();
        let r = rl(Some(2), Some(3));
        let t = 1_000_040; // 20 s into a minute
        assert!(l.check_at("s", "k", &r, t).allowed);
        let d = l.check_at("s", "k", &r, t);
        assert!(d.allowed);
        assert_eq!(d.windows[0], (Window::Second, 2, 0));
        let d = l.check_at("s", "k", &r, t);
        assert!(!d.allowed);
        assert_eq!(d.reset, 1);
        assert!(l.check_at("s", "other", &r, t).allowed);
        let d = l.check_at("s", "k", &r, t + 1);
        assert!(d.allowed);
        let d = l.check_at("s", "k", &r, t + 2);
        assert!(!d.allowed);
        assert_eq!(d.reset, 60 - 22);
        let mut h = http::HeaderMap::new();
        d.headers(&mut h);
        assert_eq!(h["x-ratelimit-limit-minute"], "3");
        assert_eq!(h["x-ratelimit-remaining-minute"], "0");
        assert_eq!(h["retry-after"], "38");
    }
}
