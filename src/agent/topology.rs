//! Turning a validated [`AgentConfig`] into running components.
//!
//! [`build_channels`], [`build_sink_runners`] and [`build_sources`] construct components from
//! their contexts, collecting **every** construction error (each with file, line and key)
//! instead of stopping at the first, so `sluicegate check` and a failed start list all problems
//! at once. Nothing is started here; see [`super::lifecycle`]. A source or sink whose channel
//! failed is still constructed, on a stand-in memory channel, so its own errors are reported
//! next to the channel's; it is then dropped, never returned.
//!
//! Building a component is also what records which of its keys it reads (see
//! [`super::conf`], "Unknown keys"): [`built_filter`] tells
//! [`AgentConfig::unknown_keys`](super::conf::AgentConfig::unknown_keys) which components were
//! built.
//!
//! Each built component carries a [`Fingerprint`] of everything its behaviour depends on (its
//! own settings and, transitively, the settings of the channels it is wired to), which is how a
//! configuration reload decides what to restart.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::runtime::Handle;

use super::conf::{AgentConfig, ChannelConfig, SinkConfig, SinkGroupConfig, SourceConfig};
use crate::channel::file::{FileChannel, FileChannelConfig};
use crate::channel::memory::{MemoryChannel, MemoryChannelConfig};
use crate::channel::Channel;
use crate::component::{ChannelType, SinkType, SourceType};
use crate::config::{ConfigError, Context, SystemProps};
use crate::metrics::{CounterGroup, SinkCounter};
use crate::sink::file_roll::FileRollSink;
use crate::sink::logger::LoggerSink;
use crate::sink::null::NullSink;
use crate::sink::processor::{build_sink_processor, DefaultSinkProcessor};
use crate::sink::runner::SinkRunner;
use crate::sink::Sink;
use crate::source::exec::ExecSource;
use crate::source::interceptor::build_interceptor;
use crate::source::netcat::NetcatSource;
use crate::source::selector::ChannelSelector;
use crate::source::seq::SeqSource;
use crate::source::{ChannelProcessor, Source};

/// What a component's behaviour depends on: its type and settings, plus those of its channels.
pub type Fingerprint = Vec<(String, String)>;

fn context_fingerprint(tag: &str, ctx: &Context) -> Fingerprint {
    let mut fp = vec![("@component".to_string(), tag.to_string())];
    fp.extend(ctx.fingerprint());
    fp
}

/// How construction is being done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildMode {
    /// For real: durable channels are opened (and recovered).
    Run,
    /// Validation only (`sluicegate check`): settings are parsed and components constructed,
    /// but durable channels are not opened and nothing binds or starts.
    Check,
}

/// Shared inputs of construction.
pub struct BuildEnv<'a> {
    /// `-D` properties (TLS globals, monitoring).
    pub props: &'a SystemProps,
    /// The runtime async components run on.
    pub runtime: Handle,
    /// Run or check.
    pub mode: BuildMode,
}

/// A constructed channel.
pub struct BuiltChannel {
    /// The channel.
    pub channel: Arc<dyn Channel>,
    /// What it depends on.
    pub fingerprint: Fingerprint,
}

/// A constructed sink runner (one per sink group, or per sink outside any group).
pub struct BuiltRunner {
    /// The runner, not yet started.
    pub runner: SinkRunner,
    /// The sinks it drives.
    pub sinks: Vec<String>,
    /// Their counters, for the metrics registry.
    pub counters: Vec<Arc<SinkCounter>>,
    /// What it depends on.
    pub fingerprint: Fingerprint,
}

/// A constructed source.
pub struct BuiltSource {
    /// The source, not yet started.
    pub source: Box<dyn Source>,
    /// What it depends on.
    pub fingerprint: Fingerprint,
}

/// A stand-in for a channel that failed to build (or to validate), so the sources and sinks
/// wired to it are still constructed and their own errors reported ("every problem at once").
/// Whatever is built on a stand-in is never returned, so it never runs.
fn stand_in(name: &str) -> Arc<dyn Channel> {
    Arc::new(MemoryChannel::new(name, MemoryChannelConfig::default()))
}

fn build_channel(cfg: &ChannelConfig, env: &BuildEnv<'_>) -> Result<Arc<dyn Channel>, ConfigError> {
    let ctx = &cfg.context;
    let ch: Arc<dyn Channel> = match cfg.channel_type {
        ChannelType::Memory => Arc::new(MemoryChannel::new(
            &cfg.name,
            MemoryChannelConfig::from_context(ctx)?,
        )),
        ChannelType::File => {
            let fc = FileChannelConfig::from_context(ctx)?;
            match env.mode {
                BuildMode::Check => {
                    // Validate only: stand a small memory channel in its place for wiring.
                    let mc = MemoryChannelConfig {
                        transaction_capacity: fc.transaction_capacity,
                        capacity: fc.capacity,
                        ..Default::default()
                    };
                    Arc::new(MemoryChannel::new(&cfg.name, mc))
                }
                BuildMode::Run => Arc::new(FileChannel::open(&cfg.name, fc).map_err(|e| {
                    ctx.error(
                        "type",
                        &format!("the file channel could not be opened: {e}"),
                    )
                })?),
            }
        }
    };
    Ok(ch)
}

/// Builds every channel; returns those that could be built and every error.
pub fn build_channels(
    agent: &AgentConfig,
    env: &BuildEnv<'_>,
    only: Option<&dyn Fn(&str) -> bool>,
) -> (BTreeMap<String, BuiltChannel>, Vec<ConfigError>) {
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    for cfg in &agent.channels {
        if only.is_some_and(|f| !f(&cfg.name)) {
            continue;
        }
        match build_channel(cfg, env) {
            Ok(channel) => {
                let fingerprint =
                    context_fingerprint(&format!("channel {}", cfg.name), &cfg.context);
                out.insert(
                    cfg.name.clone(),
                    BuiltChannel {
                        channel,
                        fingerprint,
                    },
                );
            }
            Err(e) => errors.push(e),
        }
    }
    (out, errors)
}

/// The fingerprint of a channel by name from a set of channel fingerprints.
fn channel_fp(channels: &BTreeMap<String, Fingerprint>, name: &str) -> Fingerprint {
    let mut fp = vec![("@channel".to_string(), name.to_string())];
    if let Some(c) = channels.get(name) {
        fp.extend(c.iter().cloned());
    }
    fp
}

/// Fingerprints of the channels as configured (independent of whether they were built).
pub fn channel_fingerprints(agent: &AgentConfig) -> BTreeMap<String, Fingerprint> {
    agent
        .channels
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                context_fingerprint(&format!("channel {}", c.name), &c.context),
            )
        })
        .collect()
}

fn build_sink(
    cfg: &SinkConfig,
    channel: Arc<dyn Channel>,
    env: &BuildEnv<'_>,
) -> Result<Box<dyn Sink>, ConfigError> {
    let ctx = &cfg.context;
    let sink: Box<dyn Sink> = match cfg.sink_type {
        SinkType::Null => Box::new(NullSink::from_context(&cfg.name, ctx, channel)?),
        SinkType::Logger => Box::new(LoggerSink::from_context(&cfg.name, ctx, channel)?),
        SinkType::FileRoll => Box::new(FileRollSink::from_context(&cfg.name, ctx, channel)?),
        SinkType::Avro => Box::new(crate::sink::avro::AvroSink::from_context(
            &cfg.name,
            ctx,
            env.props,
            channel,
            env.runtime.clone(),
        )?),
    };
    Ok(sink)
}

/// The sink groups to run: the configured groups, then one implicit group per ungrouped sink.
fn runner_plan(agent: &AgentConfig) -> Vec<(String, Option<&SinkGroupConfig>, Vec<&SinkConfig>)> {
    let mut plan = Vec::new();
    for g in &agent.sinkgroups {
        let sinks = g.sinks.iter().filter_map(|s| agent.sink(s)).collect();
        plan.push((g.name.clone(), Some(g), sinks));
    }
    for s in agent.ungrouped_sinks() {
        plan.push((s.name.clone(), None, vec![s]));
    }
    plan
}

/// Fingerprints of every runner as configured.
pub fn runner_fingerprints(agent: &AgentConfig) -> BTreeMap<String, Fingerprint> {
    let chans = channel_fingerprints(agent);
    runner_plan(agent)
        .into_iter()
        .map(|(name, group, sinks)| {
            let mut fp = match group {
                Some(g) => context_fingerprint(&format!("sinkgroup {}", g.name), &g.context),
                None => vec![("@runner".to_string(), name.clone())],
            };
            for s in sinks {
                fp.extend(context_fingerprint(&format!("sink {}", s.name), &s.context));
                fp.extend(channel_fp(&chans, &s.channel));
            }
            (name, fp)
        })
        .collect()
}

/// Builds the sink runners whose name `only` accepts (all when `None`).
pub fn build_sink_runners(
    agent: &AgentConfig,
    channels: &BTreeMap<String, Arc<dyn Channel>>,
    env: &BuildEnv<'_>,
    only: Option<&dyn Fn(&str) -> bool>,
) -> (BTreeMap<String, BuiltRunner>, Vec<ConfigError>) {
    let fps = runner_fingerprints(agent);
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    for (name, group, sink_cfgs) in runner_plan(agent) {
        if only.is_some_and(|f| !f(&name)) {
            continue;
        }
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        let mut counters = Vec::new();
        let mut ok = true;
        for s in &sink_cfgs {
            let ch = match channels.get(&s.channel) {
                Some(ch) => ch.clone(),
                None => {
                    ok = false; // the channel failed; its error is already reported
                    stand_in(&s.channel)
                }
            };
            match build_sink(s, ch, env) {
                Ok(sink) => {
                    counters.push(sink.counter());
                    sinks.push(sink);
                }
                Err(e) => {
                    ok = false;
                    errors.push(e);
                }
            }
        }
        if !ok {
            continue;
        }
        let processor = match group {
            Some(g) => match build_sink_processor(
                &g.name,
                g.processor.processor_type,
                &g.processor.context,
                sinks,
            ) {
                Ok(p) => p,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            },
            None => match sinks.pop() {
                Some(sink) => Box::new(DefaultSinkProcessor::new(sink)),
                None => continue,
            },
        };
        let fingerprint = fps.get(&name).cloned().unwrap_or_default();
        out.insert(
            name.clone(),
            BuiltRunner {
                runner: SinkRunner::new(name.clone(), processor),
                sinks: sink_cfgs.iter().map(|s| s.name.clone()).collect(),
                counters,
                fingerprint,
            },
        );
    }
    (out, errors)
}

/// Fingerprints of every source as configured.
pub fn source_fingerprints(agent: &AgentConfig) -> BTreeMap<String, Fingerprint> {
    let chans = channel_fingerprints(agent);
    agent
        .sources
        .iter()
        .map(|s| {
            let mut fp = context_fingerprint(&format!("source {}", s.name), &s.context);
            for c in &s.channels {
                fp.extend(channel_fp(&chans, c));
            }
            (s.name.clone(), fp)
        })
        .collect()
}

fn build_source(
    cfg: &SourceConfig,
    channels: &BTreeMap<String, Arc<dyn Channel>>,
    env: &BuildEnv<'_>,
) -> Result<Option<Box<dyn Source>>, ConfigError> {
    let ctx = &cfg.context;
    let mut chans = Vec::with_capacity(cfg.channels.len());
    let mut complete = true;
    for c in &cfg.channels {
        match channels.get(c) {
            Some(ch) => chans.push(ch.clone()),
            None => {
                complete = false; // the channel failed; its error is already reported
                chans.push(stand_in(c));
            }
        }
    }
    // Types were resolved once, by the validator; build from them.
    let sel = &cfg.selector;
    let selector = ChannelSelector::build(sel.selector_type, &sel.context, chans)?;
    let interceptors = cfg
        .interceptors
        .iter()
        .map(|i| build_interceptor(&i.name, i.interceptor_type, &i.context))
        .collect::<Result<Vec<_>, _>>()?;
    let processor = ChannelProcessor::new(selector, interceptors);
    let source: Box<dyn Source> = match cfg.source_type {
        SourceType::Seq => Box::new(SeqSource::from_context(&cfg.name, ctx, processor)?),
        SourceType::Netcat => Box::new(NetcatSource::from_context(&cfg.name, ctx, processor)?),
        SourceType::Exec => Box::new(ExecSource::from_context(&cfg.name, ctx, processor)?),
        SourceType::Avro => Box::new(crate::source::avro::AvroSource::from_context(
            &cfg.name,
            ctx,
            env.props,
            processor,
            env.runtime.clone(),
        )?),
    };
    // Built on a stand-in only to find its own errors: never returned.
    Ok(complete.then_some(source))
}

/// Builds the sources whose name `only` accepts (all when `None`).
pub fn build_sources(
    agent: &AgentConfig,
    channels: &BTreeMap<String, Arc<dyn Channel>>,
    env: &BuildEnv<'_>,
    only: Option<&dyn Fn(&str) -> bool>,
) -> (BTreeMap<String, BuiltSource>, Vec<ConfigError>) {
    let fps = source_fingerprints(agent);
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    for cfg in &agent.sources {
        if only.is_some_and(|f| !f(&cfg.name)) {
            continue;
        }
        match build_source(cfg, channels, env) {
            Ok(Some(source)) => {
                let fingerprint = fps.get(&cfg.name).cloned().unwrap_or_default();
                out.insert(
                    cfg.name.clone(),
                    BuiltSource {
                        source,
                        fingerprint,
                    },
                );
            }
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    (out, errors)
}

/// Which components were built, as [`AgentConfig::unknown_keys`] asks: `kind` is `channel`,
/// `source`, `sink` or `sinkgroup` (a runner's sinks and its group count as built with it).
pub fn built_filter<'a>(
    channels: &'a BTreeMap<String, BuiltChannel>,
    runners: &'a BTreeMap<String, BuiltRunner>,
    sources: &'a BTreeMap<String, BuiltSource>,
) -> impl Fn(&str, &str) -> bool + 'a {
    move |kind, name| match kind {
        "channel" => channels.contains_key(name),
        "source" => sources.contains_key(name),
        "sink" => runners.values().any(|r| r.sinks.iter().any(|s| s == name)),
        "sinkgroup" => runners.contains_key(name),
        _ => false,
    }
}

/// Registers a counter group, replacing any previous group of the same kind and name.
pub fn register(registry: &crate::metrics::MetricsRegistry, group: Arc<dyn CounterGroup>) {
    registry.unregister(group.kind(), group.name());
    registry.register(group);
}
