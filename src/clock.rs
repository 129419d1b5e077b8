//! Time sources, at the bottom of the crate (they import nothing from it).
//!
//! # Wall clock
//!
//! Wall-clock time as Flume reports it: milliseconds since the Unix epoch.
//!
//! [`now_millis`] is one function, so that counters
//! (`StartTime`/`StopTime`), interceptors (the `timestamp` header) and sinks (`file_roll`'s file
//! names) read the same clock without depending on each other. A clock before 1970 reads as 0
//! rather than failing: these values label data, they never order it.
//!
//! # Monotonic clock
//!
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
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (Java's `System.currentTimeMillis()`); 0 if the system
/// clock is set before 1970.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

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
    fn reads_the_system_clock_in_millis() {
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let now = now_millis();
        let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        assert!(before.as_millis() as u64 <= now && now <= after.as_millis() as u64);
    }

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
