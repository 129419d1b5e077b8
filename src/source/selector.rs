//! Channel selectors: which of a source's channels each event goes to, and which of those are
//! required (a failure fails the batch) or optional (a failure is logged and ignored).
//!
//! * `replicating` (default): every event to every channel; channels named in
//!   `selector.optional` (space-separated) are optional, the rest required.
//! * `multiplexing`: the value of header `selector.header` (default `flume.selector.header`)
//!   picks the required channels from `selector.mapping.<value>` (space-separated); a missing,
//!   blank or unmapped value uses `selector.default`. `selector.optional.<value>` adds optional
//!   channels for that value (channels already required for it are left out).
//!
//! Channels are referred to by their index in the source's channel list, so the channel
//! processor can group a batch per channel without hashing channels.

use std::collections::HashMap;
use std::sync::Arc;

use crate::channel::Channel;
use crate::component::{ComponentType, SelectorType};
use crate::config::{ConfigError, Context};
use crate::event::Event;

/// Flume's default multiplexing header.
pub const DEFAULT_MULTIPLEX_HEADER: &str = "flume.selector.header";

#[derive(Debug, Clone)]
enum Kind {
    Replicating {
        required: Vec<usize>,
        optional: Vec<usize>,
    },
    Multiplexing {
        header: String,
        mapping: HashMap<String, Vec<usize>>,
        optional: HashMap<String, Vec<usize>>,
        default: Vec<usize>,
    },
}

/// Picks the required and optional channels of each event.
#[derive(Clone)]
pub struct ChannelSelector {
    channels: Vec<Arc<dyn Channel>>,
    kind: Kind,
}

impl std::fmt::Debug for ChannelSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.channels.iter().map(|c| c.name()).collect();
        f.debug_struct("ChannelSelector")
            .field("channels", &names)
            .field("kind", &self.kind)
            .finish()
    }
}

impl ChannelSelector {
    /// A replicating selector with every channel required.
    pub fn replicating(channels: Vec<Arc<dyn Channel>>) -> ChannelSelector {
        let required = (0..channels.len()).collect();
        ChannelSelector {
            channels,
            kind: Kind::Replicating {
                required,
                optional: Vec::new(),
            },
        }
    }

    /// Builds the selector from the **source's** context (keys `selector.type`,
    /// `selector.optional`, `selector.header`, `selector.mapping.*`, `selector.default`, ...).
    /// `channels` is the source's channel list, in configuration order. `selector.type` is
    /// resolved through the registry in [`crate::component`] (default `replicating`).
    pub fn from_context(
        source_ctx: &Context,
        channels: Vec<Arc<dyn Channel>>,
    ) -> Result<ChannelSelector, ConfigError> {
        let ctx = source_ctx.sub("selector");
        let kind = SelectorType::from_context_or(&ctx, SelectorType::Replicating)?;
        Self::build(kind, &ctx, channels)
    }

    /// Builds a selector of an already resolved `kind` from its own context (the keys under
    /// `selector.`).
    pub fn build(
        kind: SelectorType,
        selector_ctx: &Context,
        channels: Vec<Arc<dyn Channel>>,
    ) -> Result<ChannelSelector, ConfigError> {
        match kind {
            SelectorType::Replicating => Self::replicating_from(selector_ctx, channels),
            SelectorType::Multiplexing => Self::multiplexing_from(selector_ctx, channels),
        }
    }

    fn resolve(
        ctx: &Context,
        key: &str,
        names: &str,
        channels: &[Arc<dyn Channel>],
    ) -> Result<Vec<usize>, ConfigError> {
        let mut out = Vec::new();
        for n in names.split_whitespace() {
            match channels.iter().position(|c| c.name() == n) {
                Some(i) => {
                    if !out.contains(&i) {
                        out.push(i)
                    }
                }
                None => {
                    let known: Vec<&str> = channels.iter().map(|c| c.name()).collect();
                    return Err(ctx.error(
                        key,
                        &format!(
                            "channel '{n}' is not one of this source's channels ({})",
                            known.join(" ")
                        ),
                    ));
                }
            }
        }
        Ok(out)
    }

    fn replicating_from(
        ctx: &Context,
        channels: Vec<Arc<dyn Channel>>,
    ) -> Result<ChannelSelector, ConfigError> {
        let optional = match ctx.get("optional") {
            Some(list) => Self::resolve(ctx, "optional", list, &channels)?,
            None => Vec::new(),
        };
        let required = (0..channels.len())
            .filter(|i| !optional.contains(i))
            .collect();
        Ok(ChannelSelector {
            channels,
            kind: Kind::Replicating { required, optional },
        })
    }

    fn multiplexing_from(
        ctx: &Context,
        channels: Vec<Arc<dyn Channel>>,
    ) -> Result<ChannelSelector, ConfigError> {
        let header = ctx.get_or("header", DEFAULT_MULTIPLEX_HEADER).to_string();
        let default = match ctx.get("default") {
            Some(list) => Self::resolve(ctx, "default", list, &channels)?,
            None => Vec::new(),
        };
        let mapping_ctx = ctx.sub("mapping");
        let mut mapping = HashMap::new();
        for (value, list) in mapping_ctx.iter() {
            let chans = Self::resolve(&mapping_ctx, value, list, &channels)?;
            if chans.is_empty() {
                return Err(mapping_ctx.error(
                    value,
                    &format!("no channel configured for header value '{value}'"),
                ));
            }
            mapping.insert(value.to_string(), chans);
        }
        let optional_ctx = ctx.sub("optional");
        let mut optional = HashMap::new();
        for (value, list) in optional_ctx.iter() {
            let mut chans = Self::resolve(&optional_ctx, value, list, &channels)?;
            let required = mapping
                .get(value)
                .filter(|r: &&Vec<usize>| !r.is_empty())
                .unwrap_or(&default);
            chans.retain(|c| !required.contains(c));
            optional.insert(value.to_string(), chans);
        }
        Ok(ChannelSelector {
            channels,
            kind: Kind::Multiplexing {
                header,
                mapping,
                optional,
                default,
            },
        })
    }

    /// All channels, in configuration order (indices refer to this list).
    pub fn channels(&self) -> &[Arc<dyn Channel>] {
        &self.channels
    }

    /// True when every event goes to the same channels (replicating), so a batch needs no
    /// per-event grouping.
    pub fn is_uniform(&self) -> bool {
        matches!(self.kind, Kind::Replicating { .. })
    }

    /// Indices of the channels `event` must be committed to.
    pub fn required(&self, event: &Event) -> &[usize] {
        match &self.kind {
            Kind::Replicating { required, .. } => required,
            Kind::Multiplexing {
                header,
                mapping,
                default,
                ..
            } => match event.header(header) {
                Some(v) if !v.trim().is_empty() => mapping.get(v.as_ref()).unwrap_or(default),
                _ => default,
            },
        }
    }

    /// Indices of the channels `event` is offered to without failing the batch.
    pub fn optional(&self, event: &Event) -> &[usize] {
        match &self.kind {
            Kind::Replicating { optional, .. } => optional,
            Kind::Multiplexing {
                header, optional, ..
            } => match event.header(header) {
                Some(v) => optional.get(v.as_ref()).map(Vec::as_slice).unwrap_or(&[]),
                None => &[],
            },
        }
    }
}
