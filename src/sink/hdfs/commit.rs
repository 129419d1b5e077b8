//! Commit-behind (`hdfs.commitBehind = true`, a sluicegate extension, off by default): the take
//! of one transaction is committed on a helper thread while the sink writes the next one.
//!
//! # Why
//!
//! A transaction costs two disk flushes in a row: the bucket files' `fdatasync` (the data), then
//! the channel's commit (a file channel writes and `fdatasync`s its ACK record). With small
//! batches (`hdfs.batchSize` 100 or 1000) that latency, not CPU, bounds the sink. Commit-behind
//! overlaps the commit of batch `n` with the take, write and `fdatasync` of batch `n + 1`.
//!
//! # What stays the same
//!
//! A take is handed to the committer only after its events are durable in their files (and
//! failed buckets' events were put back), exactly where the synchronous sink commits: a
//! committed event is on disk, at-least-once as before. At most one commit is in flight, and
//! commits happen in transaction order: before handing over batch `n + 1` the sink waits for
//! batch `n`'s. `EventDrainSuccessCount` counts an event when its commit returned. An idle
//! `process` call (empty take) and `stop` wait for the commit in flight, so nothing is left
//! pending when the sink stops.
//!
//! # Faults
//!
//! A failed commit rolls its take back (the channel puts the events back, as a synchronous
//! failure does) and is reported by the next `process` call, which then drops (rolls back) its
//! own take, already written: those events are written again later (duplicates, never loss).

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::channel::{ChannelError, TakeBatch};
use crate::metrics::SinkCounter;
use crate::sink::SinkError;

/// The helper thread and its queue (depth one).
pub struct Committer {
    jobs: Option<Sender<(TakeBatch, u64)>>,
    done: Receiver<Result<(), ChannelError>>,
    thread: Option<JoinHandle<()>>,
    in_flight: bool,
    sink: String,
}

impl Committer {
    /// Starts the helper thread of sink `sink`; it counts `EventDrainSuccess` in `counter`.
    pub fn spawn(sink: &str, counter: Arc<SinkCounter>) -> Result<Committer, SinkError> {
        let (jobs, rx) = crossbeam_channel::bounded::<(TakeBatch, u64)>(1);
        let (tx, done) = crossbeam_channel::bounded(1);
        let thread = std::thread::Builder::new()
            .name(format!("hdfs-commit-{sink}"))
            .spawn(move || {
                for (take, ok) in rx {
                    let r = take.commit();
                    match &r {
                        Ok(()) => SinkCounter::add(&counter.event_drain_success, ok),
                        Err(_) => SinkCounter::add(&counter.channel_read_fail, 1),
                    }
                    if tx.send(r).is_err() {
                        break;
                    }
                }
            })
            .map_err(|error| SinkError::Io {
                sink: sink.to_string(),
                what: "starting the commit-behind thread (hdfs.commitBehind)".into(),
                error,
            })?;
        Ok(Committer {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
            in_flight: false,
            sink: sink.to_string(),
        })
    }

    /// Waits for the commit in flight, if any, and returns its outcome.
    pub fn wait(&mut self) -> Result<(), SinkError> {
        if !std::mem::replace(&mut self.in_flight, false) {
            return Ok(());
        }
        match self.done.recv() {
            Ok(r) => r.map_err(SinkError::from),
            Err(_) => Err(self.gone()),
        }
    }

    /// Hands `take` over for commit (`ok`: its events written, counted on success). The
    /// previous commit must have been [`Committer::wait`]ed for.
    pub fn submit(&mut self, take: TakeBatch, ok: u64) -> Result<(), SinkError> {
        debug_assert!(!self.in_flight, "one commit in flight at most");
        let Some(jobs) = &self.jobs else {
            return Err(self.gone());
        };
        // A send error hands the take back inside the error; dropping it rolls it back.
        jobs.send((take, ok)).map_err(|_| self.gone())?;
        self.in_flight = true;
        Ok(())
    }

    fn gone(&self) -> SinkError {
        SinkError::Delivery {
            sink: self.sink.clone(),
            message: "the commit-behind thread is gone; the batch was rolled back".into(),
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        if let Err(e) = self.wait() {
            tracing::error!(sink = %self.sink, error = %e, "the last commit-behind failed; its events stay in the channel");
        }
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
