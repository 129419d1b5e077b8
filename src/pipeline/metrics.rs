//! The `PIPELINE.<name>` counter group (the pipeline's `StreamingListener`), rendered in
//! `/metrics` JSON and Prometheus (`flume_pipeline_<attribute>`) like the Flume groups.
//!
//! | attribute | meaning |
//! |---|---|
//! | `BatchesCompleted` | batches whose take was committed |
//! | `BatchesRetried` | batch attempts rolled back after an output error |
//! | `InputEventsLastBatch`, `InputEventsTotal` | events taken by completed batches |
//! | `ProcessingTimeLastMs`, `ProcessingTimeP50Ms`, `ProcessingTimeP99Ms` | take → commit, over the last 1,000 batches |
//! | `SchedulingDelayLastMs` | start of the last batch minus its batch time (grows when behind) |
//! | `OutputRecords` | elements written by all outputs |
//! | `LateEvents` | events behind the event-time watermark |
//! | `ErrorsNonUtf8`, `ErrorsPanic`, `ErrorsBadTimestamp`, `ErrorsOutput`, `ErrorsStateLimit` | bad input / failures by reason |
//! | `SkippedOnRecovery` | events whose batch had completed before a crash lost their take commit |
//! | `StateKeys` | keys held by all stateful stages |
//! | `WatermarkLagMs` | batch time minus the lowest stage watermark (0 without event time) |
//! | `LastBatchTime`, `LastBatchId` | the last completed batch |

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::clock::now_millis;
use crate::metrics::counters::CounterGroup;

/// Why an input was skipped or a batch failed (the `Errors*` attributes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorReason {
    /// A body that is not UTF-8 under a text operator.
    NonUtf8,
    /// A user function panicked.
    Panic,
    /// A missing or unparsable event-time timestamp.
    BadTimestamp,
    /// An output failed (the batch was retried).
    Output,
    /// A stateful stage hit its key limit.
    StateLimit,
}

impl ErrorReason {
    /// The reason's name in logs and side-output headers.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorReason::NonUtf8 => "non_utf8",
            ErrorReason::Panic => "panic",
            ErrorReason::BadTimestamp => "bad_timestamp",
            ErrorReason::Output => "output",
            ErrorReason::StateLimit => "state_limit",
        }
    }
}

const WINDOW: usize = 1000;

/// The pipeline's counters (see the module docs).
#[derive(Debug)]
pub struct PipelineCounter {
    name: String,
    start_time: AtomicU64,
    stop_time: AtomicU64,
    /// Batches completed.
    pub batches_completed: AtomicU64,
    /// Batch attempts rolled back.
    pub batches_retried: AtomicU64,
    /// Events in the last completed batch.
    pub input_last: AtomicU64,
    /// Events in all completed batches.
    pub input_total: AtomicU64,
    /// Processing time of the last batch.
    pub processing_last_ms: AtomicU64,
    /// Scheduling delay of the last batch.
    pub scheduling_delay_ms: AtomicI64,
    /// Output elements.
    pub output_records: AtomicU64,
    /// Late events.
    pub late_events: AtomicU64,
    errors: [AtomicU64; 5],
    /// Events committed without processing after a restart.
    pub skipped_on_recovery: AtomicU64,
    /// Keys held by stateful stages.
    pub state_keys: AtomicU64,
    /// Watermark lag.
    pub watermark_lag_ms: AtomicI64,
    /// Last completed batch time.
    pub last_batch_time: AtomicI64,
    /// Last completed batch id.
    pub last_batch_id: AtomicU64,
    times: Mutex<VecDeque<u64>>,
}

impl PipelineCounter {
    /// A zeroed group for pipeline `name`.
    pub fn new(name: impl Into<String>) -> PipelineCounter {
        PipelineCounter {
            name: name.into(),
            start_time: AtomicU64::new(0),
            stop_time: AtomicU64::new(0),
            batches_completed: AtomicU64::new(0),
            batches_retried: AtomicU64::new(0),
            input_last: AtomicU64::new(0),
            input_total: AtomicU64::new(0),
            processing_last_ms: AtomicU64::new(0),
            scheduling_delay_ms: AtomicI64::new(0),
            output_records: AtomicU64::new(0),
            late_events: AtomicU64::new(0),
            errors: Default::default(),
            skipped_on_recovery: AtomicU64::new(0),
            state_keys: AtomicU64::new(0),
            watermark_lag_ms: AtomicI64::new(0),
            last_batch_time: AtomicI64::new(0),
            last_batch_id: AtomicU64::new(0),
            times: Mutex::new(VecDeque::with_capacity(WINDOW)),
        }
    }

    /// Records the start (`StartTime`).
    pub fn start(&self) {
        self.start_time.store(now_millis(), Ordering::Relaxed);
        self.stop_time.store(0, Ordering::Relaxed);
    }

    /// Records the stop (`StopTime`).
    pub fn stop(&self) {
        self.stop_time.store(now_millis(), Ordering::Relaxed);
    }

    /// Counts `n` late events.
    pub fn add_late(&self, n: u64) {
        self.late_events.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` errors of `reason`.
    pub fn add_error(&self, reason: ErrorReason, n: u64) {
        self.errors[reason as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Errors counted for `reason`.
    pub fn errors(&self, reason: ErrorReason) -> u64 {
        self.errors[reason as usize].load(Ordering::Relaxed)
    }

    /// Records a completed batch.
    pub(crate) fn batch_done(&self, batch_id: u64, batch_time: i64, events: u64, took_ms: u64) {
        self.batches_completed.fetch_add(1, Ordering::Relaxed);
        self.input_last.store(events, Ordering::Relaxed);
        self.input_total.fetch_add(events, Ordering::Relaxed);
        self.processing_last_ms.store(took_ms, Ordering::Relaxed);
        self.last_batch_time.store(batch_time, Ordering::Relaxed);
        self.last_batch_id.store(batch_id, Ordering::Relaxed);
        let mut t = self.times.lock().unwrap_or_else(|e| e.into_inner());
        if t.len() == WINDOW {
            t.pop_front();
        }
        t.push_back(took_ms);
    }

    /// Processing-time percentile `p` (0..=100) over the last 1,000 batches (0 when none).
    pub fn processing_percentile(&self, p: f64) -> u64 {
        let mut v: Vec<u64> = self
            .times
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect();
        if v.is_empty() {
            return 0;
        }
        v.sort_unstable();
        let idx = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
        v[idx.min(v.len() - 1)]
    }
}

impl CounterGroup for PipelineCounter {
    fn kind(&self) -> &'static str {
        "PIPELINE"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn attributes(&self) -> Vec<(&'static str, String)> {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        let gi = |a: &AtomicI64| a.load(Ordering::Relaxed).to_string();
        vec![
            ("StartTime", g(&self.start_time)),
            ("StopTime", g(&self.stop_time)),
            ("Type", "PIPELINE".to_string()),
            ("BatchesCompleted", g(&self.batches_completed)),
            ("BatchesRetried", g(&self.batches_retried)),
            ("InputEventsLastBatch", g(&self.input_last)),
            ("InputEventsTotal", g(&self.input_total)),
            ("ProcessingTimeLastMs", g(&self.processing_last_ms)),
            (
                "ProcessingTimeP50Ms",
                self.processing_percentile(50.0).to_string(),
            ),
            (
                "ProcessingTimeP99Ms",
                self.processing_percentile(99.0).to_string(),
            ),
            ("SchedulingDelayLastMs", gi(&self.scheduling_delay_ms)),
            ("OutputRecords", g(&self.output_records)),
            ("LateEvents", g(&self.late_events)),
            (
                "ErrorsNonUtf8",
                g(&self.errors[ErrorReason::NonUtf8 as usize]),
            ),
            ("ErrorsPanic", g(&self.errors[ErrorReason::Panic as usize])),
            (
                "ErrorsBadTimestamp",
                g(&self.errors[ErrorReason::BadTimestamp as usize]),
            ),
            (
                "ErrorsOutput",
                g(&self.errors[ErrorReason::Output as usize]),
            ),
            (
                "ErrorsStateLimit",
                g(&self.errors[ErrorReason::StateLimit as usize]),
            ),
            ("SkippedOnRecovery", g(&self.skipped_on_recovery)),
            ("StateKeys", g(&self.state_keys)),
            ("WatermarkLagMs", gi(&self.watermark_lag_ms)),
            ("LastBatchTime", gi(&self.last_batch_time)),
            ("LastBatchId", g(&self.last_batch_id)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::MetricsRegistry;

    #[test]
    fn group_renders_in_json_and_prometheus_with_percentiles() {
        let c = std::sync::Arc::new(PipelineCounter::new("wc"));
        for (i, ms) in (1..=100u64).enumerate() {
            c.batch_done(i as u64 + 1, 1000 * i as i64, 10, ms);
        }
        c.add_error(ErrorReason::NonUtf8, 3);
        assert_eq!(c.processing_percentile(50.0), 51);
        assert_eq!(c.processing_percentile(99.0), 99);
        let reg = MetricsRegistry::new();
        reg.register(c.clone());
        let json = crate::metrics::http::render_json(&reg);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["PIPELINE.wc"]["BatchesCompleted"], "100");
        assert_eq!(v["PIPELINE.wc"]["ErrorsNonUtf8"], "3");
        let prom = crate::metrics::prometheus::render(&reg);
        assert!(prom.contains("flume_pipeline_batches_completed{component=\"wc\"} 100"));
        assert!(prom.contains("flume_pipeline_processing_time_p99_ms{component=\"wc\"} 99"));
    }
}
