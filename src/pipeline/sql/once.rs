//! One query over a fixed set of events, as one micro-batch: what tests, the DuckDB
//! differential test and a "try this query" tool need without wiring a channel themselves.
//!
//! The events go into a private memory channel and run through a real pipeline (the same
//! compiled plan, fused path and outputs as a running agent), as batch 1 at batch time 1000 ms
//! on two workers. A logical clock cuts the batch by count. An empty channel never yields a
//! logical batch, so an empty input runs in processing mode instead, on a manual clock that a
//! helper thread advances (bounded: at most 6,000 steps of 5 ms) until the batch has run.
//!
//! [`SqlQuery::run_batches`] runs several batches (a windowed query keeps state across them):
//! processing mode on a manual clock that is set to batch `N`'s time (`N × 1000` ms) before
//! batch `N` is stepped, after its events were put into the channel — so batch `N` holds
//! exactly the `N`-th list of events, and `proc_time` is `N × 1000`. Trailing empty batches let
//! an idle timeout ([`SqlOptions::idle_timeout`](super::SqlOptions)) move the watermark past
//! the last windows.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::channel::memory::{MemoryChannel, MemoryChannelConfig};
use crate::channel::Channel;
use crate::event::Event;
use crate::pipeline::{
    ClockMode, ErrorReason, ManualClock, PipelineConfig, PipelineError, StreamingContext,
};

use super::{Row, SqlQuery};

impl SqlQuery {
    /// Runs the query over `events` as one micro-batch (see the module docs) and returns the
    /// rows it produced, in output order.
    pub fn run_batch(&self, events: &[Event]) -> Result<Vec<Row>, PipelineError> {
        let cap = events.len().max(1);
        let ch = Arc::new(MemoryChannel::new(
            "sql-once",
            MemoryChannelConfig {
                capacity: cap as u64,
                transaction_capacity: cap,
                ..Default::default()
            },
        ));
        for c in events.chunks(1000) {
            ch.put_batch(c).map_err(|source| PipelineError::Channel {
                pipeline: "sql-once".into(),
                source,
            })?;
        }
        let clock = Arc::new(ManualClock::new(0));
        let n = events.len();
        let mode = if n > 0 {
            ClockMode::Logical {
                start_ms: 0,
                events_per_batch: n,
                flush_after_ms: 0,
            }
        } else {
            ClockMode::Processing
        };
        let ctx = StreamingContext::new(
            "sql-once",
            ch as Arc<dyn Channel>,
            PipelineConfig {
                batch_interval: Duration::from_secs(1),
                clock: clock.clone(),
                mode,
                workers: 2,
                ..Default::default()
            },
        );
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        self.attach(&ctx).foreach_batch(move |rows: &[Row], _| {
            // Poison: only this closure writes, and a panic here fails the batch anyway.
            g.lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(rows);
            Ok::<(), String>(())
        });
        let mut p = ctx.build()?;
        let done = Arc::new(AtomicBool::new(false));
        let mover = (n == 0).then(|| {
            let (clock, done) = (clock.clone(), done.clone());
            std::thread::spawn(move || {
                for _ in 0..6000 {
                    if done.load(Ordering::SeqCst) {
                        break;
                    }
                    clock.advance(500);
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        });
        let report = p.step();
        done.store(true, Ordering::SeqCst);
        if let Some(m) = mover {
            let _ = m.join();
        }
        report?;
        let rows = std::mem::take(&mut *got.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(rows)
    }
}

/// One batch's time (ms) and rows.
type BatchRows = (i64, Vec<Row>);

/// What [`SqlQuery::run_batches`] returns.
#[derive(Debug, Clone, Default)]
pub struct BatchRun {
    /// Per batch: its time (ms) and the rows it output, in output order.
    pub batches: Vec<(i64, Vec<Row>)>,
    /// Events behind the watermark (windowed queries), counted and dropped.
    pub late_events: u64,
    /// Events without a usable timestamp (event-time windows), counted and dropped.
    pub bad_timestamps: u64,
    /// Events whose body is not UTF-8 under a query that reads `body`.
    pub non_utf8: u64,
}

impl BatchRun {
    /// All rows of all batches, in output order.
    pub fn rows(&self) -> Vec<Row> {
        self.batches
            .iter()
            .flat_map(|(_, r)| r.iter().cloned())
            .collect()
    }
}

impl SqlQuery {
    /// Runs the query over `batches` (batch `N` = the `N`-th list, at time `N × 1000` ms),
    /// then `idle_batches` empty batches (see the module docs).
    pub fn run_batches(
        &self,
        batches: &[Vec<Event>],
        idle_batches: usize,
    ) -> Result<BatchRun, PipelineError> {
        self.run_batches_on(batches, idle_batches, 2)
    }

    /// [`SqlQuery::run_batches`] on `workers` worker threads (tests compare 1 with many).
    pub(crate) fn run_batches_on(
        &self,
        batches: &[Vec<Event>],
        idle_batches: usize,
        workers: usize,
    ) -> Result<BatchRun, PipelineError> {
        let cap = batches.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let ch = Arc::new(MemoryChannel::new(
            "sql-once",
            MemoryChannelConfig {
                capacity: cap as u64,
                transaction_capacity: cap,
                ..Default::default()
            },
        ));
        let clock = Arc::new(ManualClock::new(0));
        let ctx = StreamingContext::new(
            "sql-once",
            ch.clone() as Arc<dyn Channel>,
            PipelineConfig {
                batch_interval: Duration::from_secs(1),
                clock: clock.clone(),
                mode: ClockMode::Processing,
                max_batch_events: Some(cap),
                workers,
                ..Default::default()
            },
        );
        let got: Arc<Mutex<Vec<BatchRows>>> = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        self.attach(&ctx).foreach_batch(move |rows: &[Row], cx| {
            // Poison: only this closure writes, and a panic here fails the batch anyway.
            g.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((cx.batch_time_ms(), rows.to_vec()));
            Ok::<(), String>(())
        });
        let mut p = ctx.build()?;
        let counter = p.counter();
        let empty: Vec<Event> = Vec::new();
        let all = batches
            .iter()
            .chain(std::iter::repeat_n(&empty, idle_batches));
        for (i, evs) in all.enumerate() {
            for c in evs.chunks(1000) {
                ch.put_batch(c).map_err(|source| PipelineError::Channel {
                    pipeline: "sql-once".into(),
                    source,
                })?;
            }
            clock.set((i as i64 + 1) * 1000);
            p.step()?;
        }
        let batches = std::mem::take(&mut *got.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(BatchRun {
            batches,
            late_events: counter
                .late_events
                .load(std::sync::atomic::Ordering::Relaxed),
            bad_timestamps: counter.errors(ErrorReason::BadTimestamp),
            non_utf8: counter.errors(ErrorReason::NonUtf8),
        })
    }
}
