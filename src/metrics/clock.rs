//! A monotonic clock that components read their timers from, so tests can move time instead of
//! sleeping through it.
//!
//! [`Clock::system`] (the default) is [`Instant::now`]. [`ManualClock`] is a clock that stands
//! still until [`ManualClock::advance`] moves it; every [`Clock`] made from it with
//! [`ManualClock::clock`] reads the same time. Components that keep deadlines (the failover
//! sink processor's penalties, `file_roll`'s roll interval) take a `Clock` through a
//! `with_clock` builder, so a test can step exactly across a deadline, on any machine, however
//! slow.
//!
//! Invariant: a clock never goes backwards (`advance` only adds), so `Instant` arithmetic on its
//! readings behaves as it does on the system clock.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where a component reads "now" from.
#[derive(Debug, Clone, Default)]
pub struct Clock(Option<Arc<Mutex<Instant>>>);

impl Clock {
    /// The system's monotonic clock.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// The current time.
    pub fn now(&self) -> Instant {
        match &self.0 {
            None => Instant::now(),
            Some(t) => *t.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }
}

/// A clock that only moves when told to (for tests).
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<Instant>>);

impl ManualClock {
    /// A clock standing at the current system time.
    pub fn new() -> ManualClock {
        ManualClock(Arc::new(Mutex::new(Instant::now())))
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) += by;
    }

    /// A [`Clock`] reading this manual clock's time.
    pub fn clock(&self) -> Clock {
        Clock(Some(self.0.clone()))
    }
}

impl Default for ManualClock {
    fn default() -> ManualClock {
        ManualClock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_all_its_readers_agree() {
        let m = ManualClock::new();
        let (a, b) = (m.clock(), m.clock());
        let t0 = a.now();
        assert_eq!(b.now(), t0);
        m.advance(Duration::from_millis(1500));
        assert_eq!(a.now() - t0, Duration::from_millis(1500));
        assert_eq!(b.now(), a.now());
    }

    #[test]
    fn the_system_clock_follows_instant_now() {
        let before = Instant::now();
        let now = Clock::system().now();
        assert!(before <= now && now <= Instant::now());
    }
}
