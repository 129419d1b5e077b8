//! Flume's counter groups (`SourceCounter`, `ChannelCounter`, `SinkCounter`, ...), with the
//! exact attribute names Flume's JMX beans and `/metrics` JSON publish. Counters are plain
//! relaxed atomics: incrementing one is a single uncontended `fetch_add`.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::now_millis;

/// A named group of counters that the metrics endpoints can render.
pub trait CounterGroup: Send + Sync {
    /// Flume's component type as it appears in `/metrics` keys: `SOURCE`, `CHANNEL`, `SINK`.
    fn kind(&self) -> &'static str;
    /// The component name (`r1`).
    fn name(&self) -> &str;
    /// Every attribute, by Flume's JMX name, as the string Flume's JSON shows.
    fn attributes(&self) -> Vec<(&'static str, String)>;
}

macro_rules! counter_group {
    (
        $(#[$meta:meta])*
        $ty:ident, $kind:literal {
            $( $(#[$fmeta:meta])* $field:ident => $jmx:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug)]
        pub struct $ty {
            name: String,
            start_time: AtomicU64,
            stop_time: AtomicU64,
            /// Health flags published with the counters (set by channels that have them).
            health: std::sync::OnceLock<std::sync::Arc<ChannelHealth>>,
            $( $(#[$fmeta])* pub $field: AtomicU64, )*
        }

        impl $ty {
            /// A zeroed counter group for component `name`.
            pub fn new(name: impl Into<String>) -> Self {
                Self {
                    name: name.into(),
                    start_time: AtomicU64::new(0),
                    stop_time: AtomicU64::new(0),
                    health: std::sync::OnceLock::new(),
                    $( $field: AtomicU64::new(0), )*
                }
            }

            /// Records the start of the component (Flume's `StartTime`), clearing `StopTime`.
            pub fn start(&self) {
                self.start_time.store(now_millis(), Ordering::Relaxed);
                self.stop_time.store(0, Ordering::Relaxed);
            }

            /// Publishes health flags with the counters (FileChannel's `Open`, `Closed`,
            /// `Unhealthy`). Later calls are ignored.
            pub fn attach_health(&self, health: std::sync::Arc<ChannelHealth>) {
                let _ = self.health.set(health);
            }

            /// Records the stop of the component (Flume's `StopTime`).
            pub fn stop(&self) {
                self.stop_time.store(now_millis(), Ordering::Relaxed);
            }

            /// Adds `n` to a counter.
            #[inline]
            pub fn add(counter: &AtomicU64, n: u64) {
                counter.fetch_add(n, Ordering::Relaxed);
            }

            /// Reads a counter.
            #[inline]
            pub fn get(counter: &AtomicU64) -> u64 {
                counter.load(Ordering::Relaxed)
            }

            fn base_attributes(&self) -> Vec<(&'static str, String)> {
                let mut v = vec![
                    ("StartTime", self.start_time.load(Ordering::Relaxed).to_string()),
                    ("StopTime", self.stop_time.load(Ordering::Relaxed).to_string()),
                    ("Type", $kind.to_string()),
                ];
                $( v.push(($jmx, self.$field.load(Ordering::Relaxed).to_string())); )*
                if let Some(h) = self.health.get() {
                    let open = h.open.load(Ordering::Relaxed) == 1;
                    v.push(("Open", open.to_string()));
                    v.push(("Closed", if open { "0" } else { "1" }.to_string()));
                    let unhealthy = h.unhealthy.load(Ordering::Relaxed) != 0;
                    v.push(("Unhealthy", if unhealthy { "1" } else { "0" }.to_string()));
                }
                v
            }
        }
    };
}

counter_group! {
    /// Flume's `SourceCounter`.
    SourceCounter, "SOURCE" {
        /// Events received from senders, counted before they are offered to the channels.
        events_received => "EventReceivedCount",
        /// Events committed to every required channel (the sender was told they are safe).
        events_accepted => "EventAcceptedCount",
        /// Single-event `append` calls received.
        append_received => "AppendReceivedCount",
        /// Single-event `append` calls whose event was committed.
        append_accepted => "AppendAcceptedCount",
        /// `appendBatch` calls received (one per call, whatever its size).
        append_batch_received => "AppendBatchReceivedCount",
        /// `appendBatch` calls whose whole batch was committed.
        append_batch_accepted => "AppendBatchAcceptedCount",
        /// Gauge: client connections open right now (up on accept, down on close).
        open_connections => "OpenConnectionCount",
        /// Events or frames that could not be read or decoded (bad framing, bad Avro, oversized line); each is dropped and counted once.
        event_read_fail => "EventReadFail",
        /// Puts the channel processor could not commit (channel full, unhealthy, I/O); the sender gets an error and may retry.
        channel_write_fail => "ChannelWriteFail",
        /// Failures that fit no other counter (kept for Flume's JSON; nothing increments it yet).
        generic_processing_fail => "GenericProcessingFail",
    }
}

counter_group! {
    /// Flume's `ChannelCounter` plus the `FileChannelCounter` extras.
    ChannelCounter, "CHANNEL" {
        /// Gauge: events in the channel now, committed puts not yet committed by a take.
        channel_size => "ChannelSize",
        /// The configured `capacity` in events (set once at start).
        capacity => "ChannelCapacity",
        /// Events offered to `put`, whether or not the put then committed.
        put_attempt => "EventPutAttemptCount",
        /// Events whose put transaction committed.
        put_success => "EventPutSuccessCount",
        /// Take attempts: one per event handed out, or one for a take that found nothing.
        take_attempt => "EventTakeAttemptCount",
        /// Events whose take transaction committed (they left the channel for good).
        take_success => "EventTakeSuccessCount",
        /// Events whose put failed (full, too large, unhealthy, I/O); none of them entered the channel.
        put_error => "EventPutErrorCount",
        /// Events whose take commit failed; they stay in the channel (or on disk, for a restart) to be taken again.
        take_error => "EventTakeErrorCount",
        /// Checkpoint (ledger) writes that failed; each one makes a file channel Unhealthy.
        checkpoint_write_error => "CheckpointWriteErrorCount",
        /// Backup-checkpoint writes that failed (kept for Flume's JSON; sluicegate keeps no backup checkpoint, so it stays 0).
        checkpoint_backup_write_error => "CheckpointBackupWriteErrorCount",
    }
}

counter_group! {
    /// Flume's `SinkCounter`.
    SinkCounter, "SINK" {
        /// Connections (or output files) the sink opened successfully.
        connection_created => "ConnectionCreatedCount",
        /// Connections (or output files) the sink closed, cleanly or after an error.
        connection_closed => "ConnectionClosedCount",
        /// Attempts to open or use a connection (or output file) that failed.
        connection_failed => "ConnectionFailedCount",
        /// Takes that found the channel empty.
        batch_empty => "BatchEmptyCount",
        /// Takes that returned some events but fewer than `batch-size`.
        batch_underflow => "BatchUnderflowCount",
        /// Takes that returned a full `batch-size` of events.
        batch_complete => "BatchCompleteCount",
        /// Events taken from the channel for delivery (delivered or not).
        event_drain_attempt => "EventDrainAttemptCount",
        /// Events delivered and whose take committed (they left the channel).
        event_drain_success => "EventDrainSuccessCount",
        /// Deliveries that failed downstream (the batch was rolled back and is retried).
        event_write_fail => "EventWriteFail",
        /// Takes or take-commits the channel refused (unhealthy, I/O).
        channel_read_fail => "ChannelReadFail",
    }
}

impl CounterGroup for SourceCounter {
    fn kind(&self) -> &'static str {
        "SOURCE"
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn attributes(&self) -> Vec<(&'static str, String)> {
        self.base_attributes()
    }
}

impl CounterGroup for SinkCounter {
    fn kind(&self) -> &'static str {
        "SINK"
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn attributes(&self) -> Vec<(&'static str, String)> {
        self.base_attributes()
    }
}

/// Extra state a channel reports beside its counters (file channel: `Open`, `Unhealthy`).
#[derive(Debug, Default)]
pub struct ChannelHealth {
    /// 1 while open (FileChannel's `Open`), 0 after close.
    pub open: AtomicU64,
    /// 1 once the channel refuses work after an unrecoverable error.
    pub unhealthy: AtomicU64,
}

impl ChannelCounter {
    /// `ChannelFillPercentage` as Flume computes it (size / capacity × 100; capacity 0 → `Double.MAX_VALUE`).
    pub fn fill_percentage(&self) -> f64 {
        let cap = self.capacity.load(Ordering::Relaxed);
        if cap == 0 {
            return f64::MAX;
        }
        (self.channel_size.load(Ordering::Relaxed) as f64 * 100.0) / cap as f64
    }
}

impl CounterGroup for ChannelCounter {
    fn kind(&self) -> &'static str {
        "CHANNEL"
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn attributes(&self) -> Vec<(&'static str, String)> {
        let mut v = self.base_attributes();
        v.push(("ChannelFillPercentage", java_double(self.fill_percentage())));
        v
    }
}

/// Formats an `f64` the way Java's `Double.toString` does for the values metrics produce
/// (`0.0`, `2.0E-4`, `12.5`, `1.7976931348623157E308`).
pub fn java_double(x: f64) -> String {
    if x == 0.0 {
        return "0.0".to_string();
    }
    if !x.is_finite() {
        return if x.is_nan() {
            "NaN".into()
        } else if x > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let a = x.abs();
    if (1e-3..1e7).contains(&a) {
        let s = format!("{x}");
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        // Scientific: shortest round-trip mantissa, Java style `d.dddE±n`.
        let s = format!("{x:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let mant = if mant.contains('.') {
            mant.to_string()
        } else {
            format!("{mant}.0")
        };
        format!("{mant}E{exp}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_double_matches_java_formatting() {
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(2.0e-4), "2.0E-4");
        assert_eq!(java_double(12.5), "12.5");
        assert_eq!(java_double(100.0), "100.0");
        assert_eq!(java_double(f64::MAX), "1.7976931348623157E308");
    }

    #[test]
    fn channel_attributes_carry_flume_names() {
        let c = ChannelCounter::new("c1");
        ChannelCounter::add(&c.capacity, 1_000_000);
        ChannelCounter::add(&c.channel_size, 2);
        let attrs = c.attributes();
        let get = |k: &str| attrs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        assert_eq!(get("ChannelFillPercentage").as_deref(), Some("2.0E-4"));
        assert_eq!(get("Type").as_deref(), Some("CHANNEL"));
        assert_eq!(get("ChannelCapacity").as_deref(), Some("1000000"));
    }
}
