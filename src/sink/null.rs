//! The null sink (`type = null`, Flume's `NullSink`): takes events and discards them.
//!
//! Settings: `batchSize` (default 100), `logEveryNEvents` (default 10000: an INFO line each time
//! the running total crosses a multiple). Each [`Sink::process`] call is one take transaction
//! of up to `batchSize` events, committed at once.

use std::sync::Arc;
use std::time::Duration;

use super::{Sink, SinkError, SinkStatus};
use crate::channel::{Channel, ChannelError, TakeBatch};
use crate::config::{ConfigError, Context};
use crate::metrics::SinkCounter;

/// How long a sink's take waits for the first event before reporting an empty batch.
pub const TAKE_WAIT: Duration = Duration::from_millis(100);

/// Takes up to `max` events for sink `sink`, counting a channel failure as `ChannelReadFail`
/// and the outcome as `BatchEmpty`/`BatchUnderflow`/`BatchComplete` + `EventDrainAttempt`.
pub(crate) fn take_counted(
    channel: &dyn Channel,
    counter: &SinkCounter,
    max: usize,
) -> Result<TakeBatch, ChannelError> {
    let take = match channel.take_batch(max, TAKE_WAIT) {
        Ok(t) => t,
        Err(e) => {
            SinkCounter::add(&counter.channel_read_fail, 1);
            return Err(e);
        }
    };
    let n = take.len();
    if n == 0 {
        SinkCounter::add(&counter.batch_empty, 1);
    } else {
        if n < max {
            SinkCounter::add(&counter.batch_underflow, 1);
        } else {
            SinkCounter::add(&counter.batch_complete, 1);
        }
        SinkCounter::add(&counter.event_drain_attempt, n as u64);
    }
    Ok(take)
}

/// Commits `take` (of `n` delivered events), counting `EventDrainSuccess`.
pub(crate) fn commit_counted(take: TakeBatch, counter: &SinkCounter) -> Result<(), SinkError> {
    let n = take.len() as u64;
    match take.commit() {
        Ok(()) => {
            SinkCounter::add(&counter.event_drain_success, n);
            Ok(())
        }
        Err(e) => {
            SinkCounter::add(&counter.channel_read_fail, 1);
            Err(e.into())
        }
    }
}

/// Reads a positive `i32`-range integer setting.
pub(crate) fn positive(ctx: &Context, key: &str, default: u64) -> Result<usize, ConfigError> {
    let v = ctx.get_u64(key, default)?;
    if v == 0 || v > i32::MAX as u64 {
        return Err(ctx.error(key, "must be a positive integer"));
    }
    Ok(v as usize)
}

/// The null sink.
pub struct NullSink {
    name: String,
    channel: Arc<dyn Channel>,
    batch_size: usize,
    log_every: u64,
    total: u64,
    counter: Arc<SinkCounter>,
}

impl NullSink {
    /// Builds the sink from its context; it drains `channel`.
    pub fn from_context(
        name: &str,
        ctx: &Context,
        channel: Arc<dyn Channel>,
    ) -> Result<NullSink, ConfigError> {
        let batch_size = positive(ctx, "batchSize", 100)?;
        let log_every = positive(ctx, "logEveryNEvents", 10_000)? as u64;
        Ok(NullSink {
            name: name.to_string(),
            channel,
            batch_size,
            log_every,
            total: 0,
            counter: Arc::new(SinkCounter::new(name)),
        })
    }
}

impl Sink for NullSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn start(&mut self) -> Result<(), SinkError> {
        self.counter.start();
        Ok(())
    }

    fn process(&mut self) -> Result<SinkStatus, SinkError> {
        let take = take_counted(&*self.channel, &self.counter, self.batch_size)?;
        let n = take.len() as u64;
        if n == 0 {
            return Ok(SinkStatus::Backoff);
        }
        commit_counted(take, &self.counter)?;
        let before = self.total;
        self.total += n;
        if self.total / self.log_every != before / self.log_every {
            tracing::info!(sink = %self.name, events = self.total, "null sink successfully processed events");
        }
        Ok(SinkStatus::Ready)
    }

    fn stop(&mut self) {
        self.counter.stop();
    }

    fn counter(&self) -> Arc<SinkCounter> {
        self.counter.clone()
    }
}
