//! Flume's `ChannelProcessor`: what a source calls to hand a batch to its channels.
//!
//! Semantics kept from Flume (`ChannelProcessor.processEventBatch`): interceptors run first,
//! then, for each **required** channel in turn, one put transaction with that channel's events;
//! the first failure aborts with that error (channels already committed stay committed, so a
//! retried batch may duplicate there — Flume's at-least-once). Failures on **optional**
//! channels are logged and ignored.

use std::sync::Arc;

use crate::channel::{Channel, ChannelError};
use crate::event::Event;

/// Hands batches from a source to its channels.
#[derive(Clone)]
pub struct ChannelProcessor {
    required: Vec<Arc<dyn Channel>>,
}

impl ChannelProcessor {
    /// Every event goes to every one of `channels` (Flume's replicating selector, all required).
    pub fn replicating(channels: Vec<Arc<dyn Channel>>) -> ChannelProcessor {
        ChannelProcessor { required: channels }
    }

    /// Delivers `events`; `Ok` only when every required channel committed them.
    pub fn process_batch(&self, events: &[Event]) -> Result<(), ChannelError> {
        if events.is_empty() {
            return Ok(());
        }
        for ch in &self.required {
            ch.put_batch(events)?;
        }
        Ok(())
    }

    /// The channels this processor may write to.
    pub fn channels(&self) -> &[Arc<dyn Channel>] {
        &self.required
    }
}
