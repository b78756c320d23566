//! A circuit breaker, so that a dead backend answers "unavailable" at once instead of costing every request a
//! timeout.
//!
//! Closed: calls pass; `failures` consecutive failures open it. Open: calls are refused without touching the
//! backend until `cooldown` has passed; then exactly one call (the probe) is let through (half-open) while the
//! others are still refused. The probe's success closes the breaker; its failure (or its cancellation) opens it
//! for another cooldown.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

#[derive(Debug)]
pub struct Breaker {
    state: Mutex<State>,
    threshold: u32,
    cooldown: Duration,
    /// Times the breaker opened from closed (a failed probe re-opening it is not a new trip).
    trips: AtomicU64,
    /// Calls refused without touching the backend.
    refused: AtomicU64,
}

/// What a caller holds while its call runs; dropping it without [`Permit::success`] or [`Permit::failure`] counts
/// as a failure (a cancelled probe must not leave the breaker half-open for ever).
#[must_use]
pub struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    done: bool,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            state: Mutex::new(State::Closed { failures: 0 }),
            threshold: threshold.max(1),
            cooldown,
            trips: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Some(permit)` when the call may go to the backend, `None` when it must be refused now.
    pub fn try_acquire(&self) -> Option<Permit<'_>> {
        let mut s = self.lock();
        match *s {
            State::Closed { .. } => Some(Permit {
                breaker: self,
                probe: false,
                done: false,
            }),
            State::Open { until } if Instant::now() >= until => {
                *s = State::HalfOpen;
                Some(Permit {
                    breaker: self,
                    probe: true,
                    done: false,
                })
            }
            State::Open { .. } | State::HalfOpen => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Times the breaker opened after consecutive failures (closed -> open).
    pub fn trips(&self) -> u64 {
        self.trips.load(Ordering::Relaxed)
    }

    /// Calls refused at once because the breaker was open.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// True while calls are being refused (open, or half-open with a probe in flight).
    pub fn is_open(&self) -> bool {
        !matches!(*self.lock(), State::Closed { .. })
    }

    fn record(&self, ok: bool, probe: bool) {
        let mut s = self.lock();
        if ok {
            *s = State::Closed { failures: 0 };
            return;
        }
        let open = State::Open {
            until: Instant::now() + self.cooldown,
        };
        *s = match *s {
            _ if probe => open,
            State::Closed { failures } if failures + 1 >= self.threshold => {
                self.trips.fetch_add(1, Ordering::Relaxed);
                open
            }
            State::Closed { failures } => State::Closed { failures: failures + 1 },
            // A late failure of a call started before the breaker opened: keep the state.
            other => other,
        };
    }
}

impl Permit<'_> {
    pub fn success(mut self) {
        self.done = true;
        self.breaker.record(true, self.probe);
    }
    pub fn failure(mut self) {
        self.done = true;
        self.breaker.record(false, self.probe);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.record(false, self.probe);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_probes_after_cooldown() {
        let b = Breaker::new(3, Duration::from_millis(50));
        for _ in 0..2 {
            b.try_acquire().unwrap().failure();
        }
        assert!(!b.is_open());
        b.try_acquire().unwrap().success(); // a success resets the count
        assert_eq!(b.trips(), 0);
        for _ in 0..3 {
            b.try_acquire().unwrap().failure();
        }
        assert!(b.is_open());
        assert_eq!(b.trips(), 1);
        assert!(b.try_acquire().is_none(), "open: refused at once");
        assert_eq!(b.refused(), 1);
        std::thread::sleep(Duration::from_millis(60));
        let probe = b.try_acquire().expect("one probe after the cooldown");
        assert!(b.try_acquire().is_none(), "only one probe at a time");
        probe.failure();
        assert!(b.try_acquire().is_none(), "failed probe: open again");
        std::thread::sleep(Duration::from_millis(60));
        let probe = b.try_acquire().unwrap();
        drop(probe); // cancelled probe counts as a failure
        assert!(b.is_open());
        std::thread::sleep(Duration::from_millis(60));
        b.try_acquire().unwrap().success();
        assert!(!b.is_open());
        assert!(b.try_acquire().is_some());
        assert_eq!(b.trips(), 1, "failed probes re-open; they are not new trips");
    }
}
