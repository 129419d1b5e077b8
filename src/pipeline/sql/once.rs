//! One query over a fixed set of events, as one micro-batch: what tests, the DuckDB
//! differential test and a "try this query" tool need without wiring a channel themselves.
//!
//! The events go into a private memory channel and run through a real pipeline (the same
//! compiled plan, fused path and outputs as a running agent), as batch 1 at batch time 1000 ms
//! on two workers. A logical clock cuts the batch by count. An empty channel never yields a
//! logical batch, so an empty input runs in processing mode instead, on a manual clock that a
//! helper thread advances (bounded: at most 6,000 steps of 5 ms) until the batch has run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::channel::memory::{MemoryChannel, MemoryChannelConfig};
use crate::channel::Channel;
use crate::event::Event;
use crate::pipeline::{ClockMode, ManualClock, PipelineConfig, PipelineError, StreamingContext};

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
