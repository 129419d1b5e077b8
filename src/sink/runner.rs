//! The sink runner (Flume's `SinkRunner` / `PollingRunner`): one dedicated thread per sink
//! processor calling [`SinkProcessor::process`] in a loop.
//!
//! Backoff is Flume's: after a `Backoff` status the thread sleeps
//! `min(consecutive_backoffs × backoff_increment, max_backoff)` (defaults 1000 ms and 5000 ms);
//! a `Ready` resets the count; an error is logged and followed by a `max_backoff` sleep. A
//! backoff sleep (not the one after an error) ends early when the processor's
//! [`SinkProcessor::wake_in`] comes sooner, so timed work (an HDFS file's idle close) is done on
//! time on an idle channel, not up to `max_backoff` late.
//! [`SinkRunner::stop`] wakes any sleep at once, waits for the `process` call in flight to
//! finish, joins the thread and then stops the processor (and so its sinks).

use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};

use super::processor::SinkProcessor;
use super::{SinkError, SinkStatus};

/// Flume's `SinkRunner.backoffSleepIncrement`.
pub const DEFAULT_BACKOFF_INCREMENT: Duration = Duration::from_millis(1000);
/// Flume's `SinkRunner.maxBackoffSleep`.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_millis(5000);

/// Loop statistics (Flume's `runner.*` counters).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunnerStats {
    /// `process` calls that returned `Backoff`.
    pub backoffs: u64,
    /// `process` calls that failed.
    pub errors: u64,
}

/// What the polling thread hands back: the processor and its loop statistics.
type Finished = (Box<dyn SinkProcessor>, RunnerStats);

/// Runs a sink processor on its own thread.
pub struct SinkRunner {
    name: String,
    processor: Option<Box<dyn SinkProcessor>>,
    backoff_increment: Duration,
    max_backoff: Duration,
    stop_tx: Option<Sender<()>>,
    thread: Option<JoinHandle<Option<Finished>>>,
    stats: RunnerStats,
}

impl SinkRunner {
    /// A runner for `processor`; `name` labels the thread and logs (e.g. the sink or group name).
    pub fn new(name: impl Into<String>, processor: Box<dyn SinkProcessor>) -> SinkRunner {
        SinkRunner {
            name: name.into(),
            processor: Some(processor),
            backoff_increment: DEFAULT_BACKOFF_INCREMENT,
            max_backoff: DEFAULT_MAX_BACKOFF,
            stop_tx: None,
            thread: None,
            stats: RunnerStats::default(),
        }
    }

    /// Overrides the backoff sleeps (Flume hard-codes 1000 ms / 5000 ms).
    pub fn with_backoff(mut self, increment: Duration, max: Duration) -> SinkRunner {
        self.backoff_increment = increment;
        self.max_backoff = max.max(increment);
        self
    }

    /// Starts the processor (and its sinks), then the polling thread.
    pub fn start(&mut self) -> Result<(), SinkError> {
        let Some(mut processor) = self.processor.take() else {
            return Ok(()); // already running
        };
        if let Err(e) = processor.start() {
            processor.stop();
            self.processor = Some(processor);
            return Err(e);
        }
        let (tx, rx) = crossbeam_channel::bounded::<()>(0);
        let (inc, max, name) = (self.backoff_increment, self.max_backoff, self.name.clone());
        // The processor is moved into the thread and handed back when it ends.
        let (ptx, prx) = crossbeam_channel::bounded::<Box<dyn SinkProcessor>>(1);
        let spawned = std::thread::Builder::new()
            .name(format!("sink-runner-{}", self.name))
            .spawn(move || {
                let p = prx.recv().ok()?;
                Some(poll(name, p, inc, max, rx))
            });
        match spawned {
            Ok(t) => {
                let _ = ptx.send(processor);
                self.stop_tx = Some(tx);
                self.thread = Some(t);
                Ok(())
            }
            Err(error) => {
                processor.stop();
                self.processor = Some(processor);
                Err(SinkError::Io {
                    sink: self.name.clone(),
                    what: "spawning the sink runner thread".into(),
                    error,
                })
            }
        }
    }

    /// True while the polling thread runs.
    pub fn is_running(&self) -> bool {
        self.thread.is_some()
    }

    /// Signals the thread, waits for the `process` call in flight, joins it and stops the
    /// processor. Returns at once when not running.
    pub fn stop(&mut self) {
        self.stop_tx.take();
        if let Some(t) = self.thread.take() {
            match t.join() {
                Ok(Some((mut p, stats))) => {
                    p.stop();
                    self.stats = stats;
                    self.processor = Some(p);
                }
                Ok(None) => {}
                Err(_) => {
                    tracing::error!(runner = %self.name, "sink runner thread panicked");
                }
            }
        }
    }

    /// Loop statistics of the last run (filled in by [`stop`](SinkRunner::stop)).
    pub fn stats(&self) -> RunnerStats {
        self.stats
    }

    /// The processor, when not running.
    pub fn processor(&self) -> Option<&dyn SinkProcessor> {
        self.processor.as_deref()
    }
}

impl Drop for SinkRunner {
    fn drop(&mut self) {
        self.stop();
    }
}

fn poll(
    name: String,
    mut p: Box<dyn SinkProcessor>,
    inc: Duration,
    max: Duration,
    stop: Receiver<()>,
) -> (Box<dyn SinkProcessor>, RunnerStats) {
    let mut stats = RunnerStats::default();
    let mut consecutive: u32 = 0;
    let sleep = |d: Duration| -> bool {
        // True when stop was signalled.
        !matches!(stop.recv_timeout(d), Err(RecvTimeoutError::Timeout))
    };
    loop {
        if !matches!(stop.try_recv(), Err(TryRecvError::Empty)) {
            break;
        }
        match p.process() {
            Ok(SinkStatus::Ready) => consecutive = 0,
            Ok(SinkStatus::Backoff) => {
                stats.backoffs += 1;
                consecutive = consecutive.saturating_add(1);
                let mut d = inc.saturating_mul(consecutive).min(max);
                if let Some(wake) = p.wake_in() {
                    d = d.min(wake);
                }
                if sleep(d) {
                    break;
                }
            }
            Err(e) => {
                stats.errors += 1;
                tracing::error!(runner = %name, error = %e, "unable to deliver event");
                if sleep(max) {
                    break;
                }
            }
        }
    }
    tracing::debug!(runner = %name, ?stats, "sink runner exiting");
    (p, stats)
}
