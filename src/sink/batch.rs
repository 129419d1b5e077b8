//! The take side every sink shares: one counted take transaction per [`super::Sink::process`].
//!
//! [`take_counted`] takes up to a batch from the sink's channel, waiting at most [`TAKE_WAIT`]
//! for the first event, and counts the outcome the way Flume's sinks do (`BatchEmpty`,
//! `BatchUnderflow`, `BatchComplete`, `EventDrainAttempt`, `ChannelReadFail`);
//! [`commit_counted`] commits it and counts `EventDrainSuccess`. A sink delivers between the
//! two, and on failure drops the [`TakeBatch`] uncommitted, which rolls it back: nothing is lost.

use std::time::Duration;

use super::SinkError;
use crate::channel::{Channel, ChannelError, TakeBatch};
use crate::metrics::SinkCounter;

/// How long a sink's take waits for the first event before reporting an empty batch.
pub const TAKE_WAIT: Duration = Duration::from_millis(100);

/// Takes up to `max` events from `channel`, counting a channel failure as `ChannelReadFail`
/// and the outcome as `BatchEmpty`/`BatchUnderflow`/`BatchComplete` + `EventDrainAttempt`.
pub fn take_counted(
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
pub fn commit_counted(take: TakeBatch, counter: &SinkCounter) -> Result<(), SinkError> {
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
