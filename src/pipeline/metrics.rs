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
//!
//! In Prometheus the last-batch figures, the timings, `StateKeys`, `WatermarkLagMs` and the
//! start/stop/last-batch times are `gauge`s; the totals and error counts are `counter`s.
//!
//! Besides the flat attributes the group keeps each output's **latest results** for the status
//! page (`/pipelines`, see [`crate::metrics::status`]): per output (`print(10)`,
//! `to_jsonl(out)`), of the latest batch that gave it any element (an empty batch leaves the
//! previous results in place, so an idle pipeline still shows what it last computed), the
//! batch id and time, how many elements the batch gave it, and its first
//! [`LATEST_ROWS`] elements as rows of cells (a pair is `[key, value]`), each cell cut to
//! [`LATEST_CELL_BYTES`]. The output records them after writing; the cost is rendering those
//! few rows once per batch. `foreach_batch` outputs record the count only (their elements need
//! not be printable).

use std::collections::{BTreeMap, VecDeque};
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

/// Rows of each output's latest batch kept for the status page.
pub const LATEST_ROWS: usize = 20;
/// Longest cell kept (longer ones are cut at a character boundary and end in `…`).
pub const LATEST_CELL_BYTES: usize = 200;

/// One output's latest results (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestResults {
    /// The batch they come from.
    pub batch_id: u64,
    /// Its batch time (ms since the epoch).
    pub batch_time: i64,
    /// Elements the batch gave the output.
    pub total: u64,
    /// The first [`LATEST_ROWS`] elements, as cells.
    pub rows: Vec<Vec<String>>,
}

fn cut(mut cell: String) -> String {
    if cell.len() > LATEST_CELL_BYTES {
        let mut end = LATEST_CELL_BYTES;
        while !cell.is_char_boundary(end) {
            end -= 1;
        }
        cell.truncate(end);
        cell.push('…');
    }
    cell
}

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
    latest: Mutex<BTreeMap<String, LatestResults>>,
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
            latest: Mutex::new(BTreeMap::new()),
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

    /// Records `output`'s results for a batch: `total` elements in all, `rows` the first of
    /// them as cells (kept: the first [`LATEST_ROWS`], each cell cut to [`LATEST_CELL_BYTES`]).
    pub(crate) fn record_latest(
        &self,
        output: &str,
        batch_id: u64,
        batch_time: i64,
        total: u64,
        rows: impl IntoIterator<Item = Vec<String>>,
    ) {
        // Poison: a map of plain values, whole after any insert.
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        if total == 0 && latest.contains_key(output) {
            return;
        }
        let rows: Vec<Vec<String>> = rows
            .into_iter()
            .take(LATEST_ROWS)
            .map(|r| r.into_iter().map(cut).collect())
            .collect();
        latest.insert(
            output.to_string(),
            LatestResults {
                batch_id,
                batch_time,
                total,
                rows,
            },
        );
    }

    /// Each output's latest results, by output.
    pub fn latest(&self) -> BTreeMap<String, LatestResults> {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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

    fn gauges(&self) -> &'static [&'static str] {
        &[
            "StartTime",
            "StopTime",
            "InputEventsLastBatch",
            "ProcessingTimeLastMs",
            "ProcessingTimeP50Ms",
            "ProcessingTimeP99Ms",
            "SchedulingDelayLastMs",
            "StateKeys",
            "WatermarkLagMs",
            "LastBatchTime",
            "LastBatchId",
        ]
    }

    fn details(&self) -> Option<serde_json::Value> {
        let latest: Vec<serde_json::Value> = self
            .latest()
            .into_iter()
            .map(|(output, l)| {
                serde_json::json!({
                    "output": output,
                    "batch_id": l.batch_id,
                    "batch_time": l.batch_time,
                    "total": l.total,
                    "rows": l.rows,
                })
            })
            .collect();
        Some(serde_json::json!({ "latest": latest }))
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

    #[test]
    fn latest_results_are_bounded_and_served_at_pipelines() {
        let c = std::sync::Arc::new(PipelineCounter::new("wc"));
        let reg = MetricsRegistry::new();
        reg.register(c.clone());
        let v: serde_json::Value =
            serde_json::from_str(&crate::metrics::status::render_pipelines(&reg)).unwrap();
        assert_eq!(v["wc"]["latest"], serde_json::json!([]));
        let long = "é".repeat(LATEST_CELL_BYTES);
        let rows = (0..100).map(|i| vec![format!("w{i}"), i.to_string()]);
        c.record_latest("print(10)", 3, 3000, 100, rows);
        c.record_latest("to_jsonl(out)", 3, 3000, 1, [vec![long.clone()]]);
        c.record_latest("print(10)", 4, 4000, 2, [vec!["a".into(), "1".into()]]);
        let latest = c.latest();
        assert_eq!(latest["print(10)"].batch_id, 4);
        assert_eq!(latest["print(10)"].rows, vec![vec!["a", "1"]]);
        // An empty batch keeps the last results; the first one of an output is recorded.
        c.record_latest("print(10)", 5, 5000, 0, std::iter::empty());
        assert_eq!(c.latest()["print(10)"].batch_id, 4);
        c.record_latest("idle", 5, 5000, 0, std::iter::empty());
        assert_eq!(c.latest()["idle"].rows, Vec::<Vec<String>>::new());
        let cell = &latest["to_jsonl(out)"].rows[0][0];
        assert!(cell.len() <= LATEST_CELL_BYTES + '…'.len_utf8() && cell.ends_with('…'));
        c.record_latest("many", 5, 5000, 100, (0..100).map(|i| vec![i.to_string()]));
        assert_eq!(c.latest()["many"].rows.len(), LATEST_ROWS);
        let v: serde_json::Value =
            serde_json::from_str(&crate::metrics::status::render_pipelines(&reg)).unwrap();
        let outputs = v["wc"]["latest"].as_array().unwrap();
        assert_eq!(outputs.len(), 4);
        assert_eq!(outputs[2]["output"], "print(10)");
        assert_eq!(outputs[2]["total"], 2);
        assert_eq!(outputs[2]["rows"], serde_json::json!([["a", "1"]]));
    }
}
