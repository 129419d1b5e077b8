//! Wall-clock time as Flume reports it: milliseconds since the Unix epoch.
//!
//! One function, at the bottom of the crate (it imports nothing from it), so that counters
//! (`StartTime`/`StopTime`), interceptors (the `timestamp` header) and sinks (`file_roll`'s file
//! names) read the same clock without depending on each other. A clock before 1970 reads as 0
//! rather than failing: these values label data, they never order it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (Java's `System.currentTimeMillis()`); 0 if the system
/// clock is set before 1970.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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
}
