//! Time, injected: the driver never reads the system clock or sleeps directly.
//!
//! * [`RealClock`]: wall-clock milliseconds since the epoch; waits on a condition variable so a
//!   stop request wakes it at once.
//! * [`ManualClock`]: a clock tests move by hand ([`ManualClock::advance`], [`ManualClock::set`]);
//!   a waiting driver wakes when the time passes its target. No test sleeps.
//!
//! [`ClockMode`] says how batch times are assigned:
//!
//! * [`ClockMode::Processing`] (Spark's DStream default): batch times are multiples of the batch
//!   interval on the clock; the driver waits for each, and when it falls behind the next batch
//!   starts at once (its scheduling delay — start minus batch time — grows, visibly). The first
//!   batch time is the latest multiple the clock has passed since the pipeline was built (due
//!   at once: a `ManualClock` advanced past a boundary runs the batch without waiting), or,
//!   when none has passed yet, the first multiple at or after the clock's time (waited for).
//! * [`ClockMode::Logical`]: batch `N` (counting from 1) has time `start_ms + N × interval`, the
//!   driver never waits for the clock, and a batch is cut by count: it takes
//!   `events_per_batch` events once that many are in the channel (or whatever is there after
//!   `flush_after_ms` of clock time without growth). Two runs over the same input cut the same
//!   batches with the same times — what the crash tests compare.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A stop request the driver's waits observe.
#[derive(Debug, Default)]
pub struct StopSignal {
    stopped: Mutex<bool>,
    cv: Condvar,
}

impl StopSignal {
    /// A signal not yet raised.
    pub fn new() -> StopSignal {
        StopSignal::default()
    }
    /// Raises the signal and wakes every waiter.
    pub fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
    }
    /// True once raised.
    pub fn is_stopped(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// Waits up to `d` or until raised; returns whether it is raised.
    pub fn wait(&self, d: Duration) -> bool {
        let g = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        if *g {
            return true;
        }
        let (g, _) = self
            .cv
            .wait_timeout(g, d)
            .unwrap_or_else(|e| e.into_inner());
        *g
    }
}

/// A source of time for the driver (see the module docs).
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch (or since any fixed origin, for a manual clock).
    fn now_ms(&self) -> i64;
    /// Blocks until `now_ms() >= t_ms` (returns `true`) or `stop` is raised (returns `false`).
    fn wait_until(&self, t_ms: i64, stop: &StopSignal) -> bool;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealClock;

impl Clock for RealClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    fn wait_until(&self, t_ms: i64, stop: &StopSignal) -> bool {
        loop {
            let now = self.now_ms();
            if now >= t_ms {
                return !stop.is_stopped();
            }
            if stop.wait(Duration::from_millis((t_ms - now) as u64)) {
                return false;
            }
        }
    }
}

/// A clock moved by hand (tests).
#[derive(Debug, Default)]
pub struct ManualClock {
    now: Mutex<i64>,
    cv: Condvar,
}

impl ManualClock {
    /// A clock showing `start_ms`.
    pub fn new(start_ms: i64) -> ManualClock {
        ManualClock {
            now: Mutex::new(start_ms),
            cv: Condvar::new(),
        }
    }
    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: i64) {
        let mut g = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *g += ms;
        self.cv.notify_all();
    }
    /// Sets the clock.
    pub fn set(&self, ms: i64) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = ms;
        self.cv.notify_all();
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait_until(&self, t_ms: i64, stop: &StopSignal) -> bool {
        let mut g = self.now.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if stop.is_stopped() {
                return false;
            }
            if *g >= t_ms {
                return true;
            }
            // The stop signal has its own condvar; poll it at a coarse bound while waiting for
            // the clock to move.
            g = self
                .cv
                .wait_timeout(g, Duration::from_millis(20))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// How batch times are assigned (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClockMode {
    /// Batch times are multiples of the interval on the clock.
    Processing,
    /// Batch `N`'s time is `start_ms + N × interval`; batches are cut by count.
    Logical {
        /// Time origin.
        start_ms: i64,
        /// Events per batch (also bounded by `transactionCapacity`).
        events_per_batch: usize,
        /// A partial batch is cut after the channel stayed below `events_per_batch` for this
        /// long on the clock.
        flush_after_ms: i64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn manual_clock_wakes_a_waiter_when_advanced_and_stop_wins() {
        let c = Arc::new(ManualClock::new(1_000));
        let stop = Arc::new(StopSignal::new());
        let t = {
            let (c, stop) = (c.clone(), stop.clone());
            std::thread::spawn(move || c.wait_until(1_500, &stop))
        };
        c.advance(600);
        assert!(t.join().unwrap());
        let t = {
            let (c, stop) = (c.clone(), stop.clone());
            std::thread::spawn(move || c.wait_until(10_000, &stop))
        };
        stop.stop();
        assert!(!t.join().unwrap());
        assert_eq!(c.now_ms(), 1_600);
    }
}
