//! Flume's `ChannelProcessor`: what a source calls to hand a batch to its channels.
//!
//! Semantics kept from Flume (`ChannelProcessor.processEventBatch`): interceptors run first,
//! then the [`ChannelSelector`] groups the events per channel, then, for each **required**
//! channel in turn (in order of first use), one put transaction with that channel's events;
//! the first failure aborts with that error (channels already committed stay committed, so a
//! retried batch may duplicate there — Flume's at-least-once). Then each **optional** channel
//! gets one put transaction; failures there are logged and ignored.
//!
//! The common case (replicating selector, no interceptors) passes the caller's slice straight to
//! each channel: no copy, no grouping.

use std::sync::Arc;

use super::interceptor::{interceptors_from_context, Interceptor};
use super::selector::ChannelSelector;
use crate::channel::{Channel, ChannelError};
use crate::config::{ConfigError, Context};
use crate::event::Event;

/// Hands batches from a source to its channels.
#[derive(Clone)]
pub struct ChannelProcessor {
    selector: Arc<ChannelSelector>,
    interceptors: Arc<[Arc<dyn Interceptor>]>,
}

impl std::fmt::Debug for ChannelProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelProcessor")
            .field("selector", &self.selector)
            .field("interceptors", &self.interceptors.len())
            .finish()
    }
}

impl ChannelProcessor {
    /// Every event goes to every one of `channels` (Flume's replicating selector, all required).
    pub fn replicating(channels: Vec<Arc<dyn Channel>>) -> ChannelProcessor {
        ChannelProcessor::new(ChannelSelector::replicating(channels), Vec::new())
    }

    /// A processor with an explicit selector and interceptor chain (run in order).
    pub fn new(
        selector: ChannelSelector,
        interceptors: Vec<Arc<dyn Interceptor>>,
    ) -> ChannelProcessor {
        ChannelProcessor {
            selector: Arc::new(selector),
            interceptors: interceptors.into(),
        }
    }

    /// Builds the selector (`selector.*`) and interceptor chain (`interceptors`,
    /// `interceptors.<name>.*`) from the **source's** context. `channels` is the source's
    /// `channels` list in order.
    pub fn from_context(
        source_ctx: &Context,
        channels: Vec<Arc<dyn Channel>>,
    ) -> Result<ChannelProcessor, ConfigError> {
        let selector = ChannelSelector::from_context(source_ctx, channels)?;
        let interceptors = interceptors_from_context(source_ctx)?;
        Ok(ChannelProcessor::new(selector, interceptors))
    }

    /// Runs the interceptor chain only (what a batch becomes before selection).
    pub fn intercept(&self, mut events: Vec<Event>) -> Vec<Event> {
        for i in self.interceptors.iter() {
            if events.is_empty() {
                break;
            }
            events = i.intercept(events);
        }
        events
    }

    /// Delivers `events`; `Ok` only when every required channel committed its share.
    pub fn process_batch(&self, events: &[Event]) -> Result<(), ChannelError> {
        if events.is_empty() {
            return Ok(());
        }
        if self.interceptors.is_empty() {
            self.dispatch(events)
        } else {
            let events = self.intercept(events.to_vec());
            self.dispatch(&events)
        }
    }

    /// Delivers one event (Flume's `processEvent`).
    pub fn process_event(&self, event: Event) -> Result<(), ChannelError> {
        if self.interceptors.is_empty() {
            self.dispatch(std::slice::from_ref(&event))
        } else {
            let events = self.intercept(vec![event]);
            self.dispatch(&events)
        }
    }

    fn dispatch(&self, events: &[Event]) -> Result<(), ChannelError> {
        if events.is_empty() {
            return Ok(());
        }
        let channels = self.selector.channels();
        if self.selector.is_uniform() {
            let first = &events[0];
            for &i in self.selector.required(first) {
                channels[i].put_batch(events)?;
            }
            for &i in self.selector.optional(first) {
                put_optional(&*channels[i], events);
            }
            return Ok(());
        }
        // Group per channel, channels in order of first use (as Flume's LinkedHashMap).
        let mut req: Vec<Option<Vec<Event>>> = vec![None; channels.len()];
        let mut opt: Vec<Option<Vec<Event>>> = vec![None; channels.len()];
        let mut req_order = Vec::new();
        let mut opt_order = Vec::new();
        for ev in events {
            for &i in self.selector.required(ev) {
                req[i]
                    .get_or_insert_with(|| {
                        req_order.push(i);
                        Vec::new()
                    })
                    .push(ev.clone());
            }
            for &i in self.selector.optional(ev) {
                opt[i]
                    .get_or_insert_with(|| {
                        opt_order.push(i);
                        Vec::new()
                    })
                    .push(ev.clone());
            }
        }
        for i in req_order {
            if let Some(batch) = &req[i] {
                channels[i].put_batch(batch)?;
            }
        }
        for i in opt_order {
            if let Some(batch) = &opt[i] {
                put_optional(&*channels[i], batch);
            }
        }
        Ok(())
    }

    /// The channels this processor may write to, in configuration order.
    pub fn channels(&self) -> &[Arc<dyn Channel>] {
        self.selector.channels()
    }

    /// The channel selector.
    pub fn selector(&self) -> &ChannelSelector {
        &self.selector
    }
}

fn put_optional(ch: &dyn Channel, events: &[Event]) {
    if let Err(e) = ch.put_batch(events) {
        tracing::error!(
            channel = ch.name(),
            events = events.len(),
            error = %e,
            "unable to put batch on optional channel (ignored)"
        );
    }
}
