//! The null sink (`type = null`, Flume's `NullSink`): takes events and discards them.
//!
//! Settings: `batchSize` (default 100), `logEveryNEvents` (default 10000: an INFO line each time
//! the running total crosses a multiple). Each [`Sink::process`] call is one take transaction
//! of up to `batchSize` events, committed at once.

use std::sync::Arc;

use super::batch::{commit_counted, take_counted};
use super::{Sink, SinkError, SinkStatus};
use crate::channel::Channel;
use crate::config::{ConfigError, Context};
use crate::metrics::SinkCounter;

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
        let batch_size = ctx.get_positive_int("batchSize", 100)?;
        let log_every = ctx.get_positive_int("logEveryNEvents", 10_000)? as u64;
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
