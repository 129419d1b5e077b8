//! The sequence generator source (`type = seq`, Flume's `SequenceGeneratorSource`): emits events
//! whose bodies are the decimal text of a counter starting at 0 (`0`, `1`, `2`, ...), no headers.
//!
//! Settings: `batchSize` (default 1), `totalEvents` (default `Long.MAX_VALUE`), and the pollable
//! source runner's `backoffSleepIncrement` (default 1000 ms) / `maxBackoffSleep` (default
//! 5000 ms), used once every event has been sent.
//!
//! As in Flume, a batch the channels refuse is retried with the same numbers (so the sequence
//! has no gaps); `ChannelWriteFail` counts refusals. Counters: batch size 1 adds to
//! `EventAcceptedCount`; larger batches add `AppendBatchAcceptedCount` and `EventAcceptedCount`.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::{ChannelProcessor, Source, SourceError};
use crate::config::{ConfigError, Context};
use crate::event::Event;
use crate::metrics::SourceCounter;

/// Settings of a `seq` source.
#[derive(Debug, Clone)]
pub struct SeqSourceConfig {
    /// `batchSize`, default 1.
    pub batch_size: usize,
    /// `totalEvents`, default `i64::MAX`.
    pub total_events: u64,
    /// `backoffSleepIncrement`, default 1000 ms.
    pub backoff_increment: Duration,
    /// `maxBackoffSleep`, default 5000 ms.
    pub max_backoff: Duration,
}

impl SeqSourceConfig {
    /// Reads the settings with Flume's defaults.
    pub fn from_context(ctx: &Context) -> Result<Self, ConfigError> {
        let batch_size = ctx.get_positive_int("batchSize", 1)?;
        let total_events = ctx.get_u64("totalEvents", i64::MAX as u64)?;
        Ok(SeqSourceConfig {
            batch_size,
            total_events,
            backoff_increment: ctx.get_millis("backoffSleepIncrement", 1000)?,
            max_backoff: ctx.get_millis("maxBackoffSleep", 5000)?,
        })
    }
}

/// The sequence generator source.
pub struct SeqSource {
    name: String,
    cfg: SeqSourceConfig,
    processor: ChannelProcessor,
    counter: Arc<SourceCounter>,
    stop_tx: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl SeqSource {
    /// Builds the source from its context.
    pub fn from_context(
        name: &str,
        ctx: &Context,
        processor: ChannelProcessor,
    ) -> Result<SeqSource, ConfigError> {
        Ok(SeqSource::new(
            name,
            SeqSourceConfig::from_context(ctx)?,
            processor,
        ))
    }

    /// Builds the source from explicit settings.
    pub fn new(name: &str, cfg: SeqSourceConfig, processor: ChannelProcessor) -> SeqSource {
        SeqSource {
            name: name.to_string(),
            cfg,
            processor,
            counter: Arc::new(SourceCounter::new(name)),
            stop_tx: None,
            thread: None,
        }
    }
}

/// Sleeps `d` unless stop is signalled (the sender dropped); returns true when stopping.
pub(crate) fn sleep_or_stop(stop: &Receiver<()>, d: Duration) -> bool {
    !matches!(stop.recv_timeout(d), Err(RecvTimeoutError::Timeout))
}

fn run(
    name: String,
    cfg: SeqSourceConfig,
    processor: ChannelProcessor,
    counter: Arc<SourceCounter>,
    stop: Receiver<()>,
) {
    let mut sent: u64 = 0;
    let mut consecutive_backoffs: u32 = 0;
    // Back-pressure (a full channel) is normal flow control: reported once at INFO per episode.
    let mut blocked = false;
    let mut batch: Vec<Event> = Vec::with_capacity(cfg.batch_size);
    let mut text = String::new();
    loop {
        if !matches!(stop.try_recv(), Err(crossbeam_channel::TryRecvError::Empty)) {
            return;
        }
        batch.clear();
        let mut next = sent;
        while batch.len() < cfg.batch_size && next < cfg.total_events {
            use std::fmt::Write as _;
            text.clear();
            let _ = write!(text, "{next}");
            batch.push(Event::from_body(text.as_bytes()));
            next += 1;
        }
        if batch.is_empty() {
            consecutive_backoffs = consecutive_backoffs.saturating_add(1);
            let d = cfg
                .backoff_increment
                .saturating_mul(consecutive_backoffs)
                .min(cfg.max_backoff);
            if sleep_or_stop(&stop, d) {
                return;
            }
            continue;
        }
        consecutive_backoffs = 0;
        match processor.process_batch(&batch) {
            Ok(()) => {
                if blocked {
                    blocked = false;
                    tracing::debug!(source = %name, "channel has room again; generating");
                }
                sent = next;
                if cfg.batch_size > 1 {
                    SourceCounter::add(&counter.append_batch_accepted, 1);
                }
                SourceCounter::add(&counter.events_accepted, batch.len() as u64);
            }
            Err(e @ crate::channel::ChannelError::Full { .. }) => {
                SourceCounter::add(&counter.channel_write_fail, 1);
                if !blocked {
                    blocked = true;
                    tracing::info!(source = %name, cause = %e,
                        "back-pressure: the channel is full, so the source waits for its sinks to drain it (reported once until it clears)");
                }
            }
            Err(e) => {
                SourceCounter::add(&counter.channel_write_fail, 1);
                tracing::error!(source = %name, error = %e, "source could not write to channel");
                // Flume retries at once (its channel put already waited keep-alive); a short
                // pause keeps an instantly failing channel from spinning a core.
                if sleep_or_stop(&stop, Duration::from_millis(100)) {
                    return;
                }
            }
        }
    }
}

impl Source for SeqSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn start(&mut self) -> Result<(), SourceError> {
        if self.thread.is_some() {
            return Ok(());
        }
        self.counter.start();
        let (tx, rx) = crossbeam_channel::bounded(0);
        let (name, cfg, processor, counter) = (
            self.name.clone(),
            self.cfg.clone(),
            self.processor.clone(),
            self.counter.clone(),
        );
        let thread = std::thread::Builder::new()
            .name(format!("seq-source-{}", self.name))
            .spawn(move || run(name, cfg, processor, counter, rx))
            .map_err(|error| SourceError::Io {
                source_name: self.name.clone(),
                what: "spawning the generator thread".into(),
                error,
            })?;
        self.stop_tx = Some(tx);
        self.thread = Some(thread);
        Ok(())
    }

    fn stop(&mut self) {
        self.stop_tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
            self.counter.stop();
        }
    }

    fn counter(&self) -> Arc<SourceCounter> {
        self.counter.clone()
    }
}

impl Drop for SeqSource {
    fn drop(&mut self) {
        self.stop();
    }
}
