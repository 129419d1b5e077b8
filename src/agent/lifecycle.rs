//! Starting, stopping and reloading an agent.
//!
//! Start order: channels first (a durable channel recovers before anything can write to it),
//! then sources, then sink runners. Flume starts sink runners before sources; sluicegate starts
//! the sources first so that a sink whose target is a source of the same agent (an Avro hop
//! inside one agent, as `examples/hop.conf`) finds it listening instead of logging a refused
//! connection. Nothing is lost either way: what a source accepts before its sinks run waits in
//! the (already open) channel. Stopping is the reverse of Flume's start — sources stop accepting and
//! answer their in-flight batches, sink runners finish their current transaction, channels are
//! closed last (a file channel syncs and releases its lock). Nothing committed to a durable
//! channel is lost across a stop, a crash or a reload.
//!
//! A reload re-reads the configuration file and restarts only the components whose
//! [fingerprint](super::topology::Fingerprint) changed — and whatever is wired to a changed
//! channel. A configuration that does not validate is reported in full and the running agent is
//! left as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::runtime::Handle;

use super::conf::{load_file, load_file_partial, strict, AgentConfig, ConfigErrors, ConfigWarning};
use super::pipeline_sink::{PipelineOutput, PipelineSinkConfig};
use super::topology::{
    build_channels, build_sink_runners, build_sources, built_filter, channel_fingerprints,
    pipeline_fingerprints, register, runner_fingerprints, source_fingerprints, BuildEnv, BuildMode,
    BuiltChannel, BuiltRunner, BuiltSource,
};
use crate::channel::Channel;
use crate::config::{ConfigError, SystemProps};
use crate::metrics::topology::{
    Topology, TopologyChannel, TopologyPipeline, TopologySink, TopologySource,
};
use crate::metrics::{CounterGroup, MetricsRegistry};

/// Why an agent could not start (or reload).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The configuration file has problems (all of them are listed).
    #[error("{0}")]
    Config(ConfigErrors),
    /// Components could not be constructed (all problems are listed).
    #[error("{}", list(.0))]
    Build(Vec<ConfigError>),
    /// A component failed to start. `message` is the component's own error, which already
    /// names it (`source r1: binding ...`), so `kind` and `name` are not printed again.
    #[error("failed to start {message}")]
    Start {
        /// What failed to start: `agent`, `source` or `sink runner`.
        kind: &'static str,
        /// The component's name from the configuration.
        name: String,
        /// The component's own error, in words.
        message: String,
    },
}

fn list(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a reload did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Components stopped for good or restarted, as `kind name`.
    pub stopped: Vec<String>,
    /// Components started (new or restarted), as `kind name`.
    pub started: Vec<String>,
}

impl fmt::Display for ReloadSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.stopped.is_empty() && self.started.is_empty() {
            return write!(f, "nothing changed");
        }
        write!(
            f,
            "stopped [{}], started [{}]",
            self.stopped.join(", "),
            self.started.join(", ")
        )
    }
}

/// A running agent.
pub struct Agent {
    conf_path: PathBuf,
    props: SystemProps,
    runtime: Handle,
    registry: MetricsRegistry,
    config: AgentConfig,
    channels: BTreeMap<String, BuiltChannel>,
    runners: BTreeMap<String, BuiltRunner>,
    sources: BTreeMap<String, BuiltSource>,
    pipelines: BTreeMap<String, crate::pipeline::PipelineHandle>,
    /// The channel each pipeline takes from (for the status page's topology).
    pipeline_channels: BTreeMap<String, String>,
}

fn log_warnings(cfg_warnings: &[super::conf::ConfigWarning]) {
    for w in cfg_warnings {
        tracing::warn!("{w}");
    }
}

/// Loads and validates `path` for agent `name`, logging the warnings.
pub fn load(path: &Path, name: &str) -> Result<AgentConfig, AgentError> {
    match load_file(path, name) {
        Ok(cfg) => {
            log_warnings(&cfg.warnings);
            Ok(cfg)
        }
        Err(e) => {
            log_warnings(&e.warnings);
            Err(AgentError::Config(e))
        }
    }
}

/// What `sluicegate check` found: every error and warning, each `file:line: key: message`.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// The configuration, when the file validated (errors from building may still be listed).
    pub config: Option<AgentConfig>,
    /// Every error, sorted by line.
    pub errors: Vec<ConfigError>,
    /// Every warning (unknown keys among them unless strict), sorted by line.
    pub warnings: Vec<ConfigWarning>,
}

/// Validates a configuration completely without opening durable channels, binding ports or
/// starting anything: the configuration is loaded and every component that validated is
/// constructed (a topology error does not hide a component's errors), and the keys no
/// component read are reported ([`AgentConfig::unknown_keys`]) — as errors when
/// [`super::conf::strict`].
pub fn check_report(path: &Path, name: &str, props: &SystemProps) -> CheckReport {
    let loaded = load_file_partial(path, name);
    let mut errors = loaded.errors;
    let mut warnings = loaded.warnings;
    let Some(cfg) = loaded.config else {
        return CheckReport {
            config: None,
            errors,
            warnings,
        };
    };
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Err(e) => errors.push(ConfigError {
            file: cfg.file.clone(),
            line: 0,
            key: name.to_string(),
            message: format!("agent {name}: the I/O runtime: {e}"),
        }),
        Ok(rt) => {
            let env = BuildEnv {
                props,
                runtime: rt.handle().clone(),
                mode: BuildMode::Check,
            };
            let (channels, e1) = build_channels(&cfg, &env, None);
            let arcs = channel_arcs(&channels);
            let (runners, e2) = build_sink_runners(&cfg, &arcs, &env, None);
            let (sources, e3) = build_sources(&cfg, &arcs, &env, None);
            errors.extend(e1.into_iter().chain(e2).chain(e3));
            let built = built_filter(&channels, &runners, &sources);
            let unknown = cfg.unknown_keys(&built);
            if strict(props) {
                errors.extend(unknown.into_iter().map(ConfigWarning::into_error));
            } else {
                warnings.extend(unknown);
            }
            warnings.extend(cfg.build_notes(&built));
        }
    }
    errors.sort_by_key(|e| e.line);
    warnings.sort_by_key(|w| w.line);
    let ok = errors.is_empty();
    CheckReport {
        config: ok.then(|| {
            let mut c = cfg;
            c.warnings = warnings.clone();
            c
        }),
        errors,
        warnings,
    }
}

/// [`check_report`] as a result: the configuration, or every error.
pub fn check(path: &Path, name: &str, props: &SystemProps) -> Result<AgentConfig, AgentError> {
    let report = check_report(path, name, props);
    match report.config {
        Some(cfg) if report.errors.is_empty() => Ok(cfg),
        _ => Err(AgentError::Build(report.errors)),
    }
}

fn channel_arcs(channels: &BTreeMap<String, BuiltChannel>) -> BTreeMap<String, Arc<dyn Channel>> {
    channels
        .iter()
        .map(|(k, v)| (k.clone(), v.channel.clone()))
        .collect()
}

impl Agent {
    /// Loads `conf_path`, builds agent `name` and starts it. On any error nothing is left
    /// running and every problem is in the error.
    pub fn start(
        conf_path: &Path,
        name: &str,
        props: SystemProps,
        runtime: Handle,
        registry: MetricsRegistry,
    ) -> Result<Agent, AgentError> {
        let config = load(conf_path, name)?;
        let mut agent = Agent {
            conf_path: conf_path.to_path_buf(),
            props,
            runtime,
            registry,
            config: config.clone(),
            channels: BTreeMap::new(),
            runners: BTreeMap::new(),
            sources: BTreeMap::new(),
            pipelines: BTreeMap::new(),
            pipeline_channels: BTreeMap::new(),
        };
        if let Err(e) = agent.bring_up(&config, None) {
            agent.stop();
            return Err(e);
        }
        agent.publish_topology();
        tracing::info!(
            agent = %name,
            sources = agent.sources.len(),
            channels = agent.channels.len(),
            sink_runners = agent.runners.len(),
            pipelines = agent.pipelines.len(),
            "agent started"
        );
        Ok(agent)
    }

    /// Builds and starts the components `only` selects (all when `None`): channels, sources,
    /// then sink runners.
    fn bring_up(
        &mut self,
        cfg: &AgentConfig,
        only: Option<&BTreeSet<String>>,
    ) -> Result<Vec<String>, AgentError> {
        let env = BuildEnv {
            props: &self.props,
            runtime: self.runtime.clone(),
            mode: BuildMode::Run,
        };
        let pick = |kind: &'static str| {
            move |n: &str| only.is_none_or(|set| set.contains(&format!("{kind} {n}")))
        };
        let pick_ch = pick("channel");
        let pick_run = pick("sinkrunner");
        let pick_src = pick("source");
        let pick_pipe = pick("pipeline");
        let mut started = Vec::new();

        let (channels, mut errors) = build_channels(cfg, &env, Some(&pick_ch));
        for (name, built) in channels {
            built.channel.counter().start();
            register(
                &self.registry,
                built.channel.counter().clone() as Arc<dyn CounterGroup>,
            );
            started.push(format!("channel {name}"));
            self.channels.insert(name, built);
        }
        let arcs = channel_arcs(&self.channels);
        let (runners, e2) = build_sink_runners(cfg, &arcs, &env, Some(&pick_run));
        let (sources, e3) = build_sources(cfg, &arcs, &env, Some(&pick_src));
        errors.extend(e2);
        errors.extend(e3);
        // Keys no component read, of the components built just now (see conf, "Unknown keys").
        {
            let no_channels: BTreeMap<String, BuiltChannel> = BTreeMap::new();
            let others = built_filter(&no_channels, &runners, &sources);
            let built = |kind: &str, name: &str| {
                (kind == "channel" && pick_ch(name) && self.channels.contains_key(name))
                    || others(kind, name)
            };
            let unknown = cfg.unknown_keys(&built);
            if strict(&self.props) {
                errors.extend(unknown.into_iter().map(ConfigWarning::into_error));
            } else {
                log_warnings(&unknown);
            }
            log_warnings(&cfg.build_notes(&built));
        }
        if !errors.is_empty() {
            errors.sort_by_key(|e| e.line);
            return Err(AgentError::Build(errors));
        }
        for (name, mut built) in sources {
            let counter = built.source.counter();
            counter.start();
            register(&self.registry, counter as Arc<dyn CounterGroup>);
            built.source.start().map_err(|e| AgentError::Start {
                kind: "source",
                name: name.clone(),
                message: e.to_string(),
            })?;
            started.push(format!("source {name}"));
            self.sources.insert(name, built);
        }
        for (name, mut built) in runners {
            for c in &built.counters {
                c.start();
                register(&self.registry, c.clone() as Arc<dyn CounterGroup>);
            }
            built.runner.start().map_err(|e| AgentError::Start {
                kind: "sink runner",
                name: name.clone(),
                message: e.to_string(),
            })?;
            started.push(format!("sinkrunner {name}"));
            self.runners.insert(name, built);
        }
        for p in cfg.pipelines.iter().filter(|p| pick_pipe(&p.name)) {
            self.start_pipeline_sink(p)?;
            started.push(format!("pipeline {}", p.name));
        }
        Ok(started)
    }

    /// Starts a `pipeline` sink (see [`super::pipeline_sink`]) with [`Agent::run_pipeline`].
    fn start_pipeline_sink(&mut self, p: &PipelineSinkConfig) -> Result<(), AgentError> {
        let target = match &p.output {
            PipelineOutput::Channel { channel } => {
                Some(self.channel(channel).ok_or_else(|| AgentError::Start {
                    kind: "pipeline",
                    name: p.name.clone(),
                    message: format!(
                        "pipeline {}: output channel {channel} is not running",
                        p.name
                    ),
                })?)
            }
            _ => None,
        };
        self.run_pipeline(&p.channel, &p.name, p.pipeline_config(), |ctx| {
            p.attach(ctx, target)
        })
        .map_err(|e| match e {
            AgentError::Start {
                kind,
                name,
                message,
            } if message.contains("different pipeline definition") => AgentError::Start {
                kind,
                name,
                message: format!(
                    "{message} (in the configuration: {} = true, or another {})",
                    p.context.full_key("discardStateOnChange"),
                    p.context.full_key("checkpointDir")
                ),
            },
            e => e,
        })?;
        tracing::info!(
            pipeline = %p.name,
            "pipeline sink {} reads channel {} every {:?} and {}",
            p.name,
            p.channel,
            p.batch_interval,
            p.output.describe()
        );
        Ok(())
    }

    fn stop_pipeline(&mut self, name: &str) {
        self.pipeline_channels.remove(name);
        if let Some(p) = self.pipelines.remove(name) {
            p.stop();
            tracing::info!(pipeline = %name, "pipeline stopped");
        }
    }

    fn stop_source(&mut self, name: &str) {
        if let Some(mut s) = self.sources.remove(name) {
            s.source.stop();
            s.source.counter().stop();
            tracing::info!(source = %name, "source stopped");
        }
    }

    fn stop_runner(&mut self, name: &str) {
        if let Some(mut r) = self.runners.remove(name) {
            r.runner.stop();
            for c in &r.counters {
                c.stop();
            }
            tracing::info!(sink_runner = %name, "sink runner stopped");
        }
    }

    fn close_channel(&mut self, name: &str) {
        if let Some(c) = self.channels.remove(name) {
            if let Err(e) = c.channel.close() {
                tracing::error!(channel = %name, error = %e, "closing the channel failed");
            }
            c.channel.counter().stop();
            tracing::info!(channel = %name, "channel closed");
        }
    }

    /// Runs a stream-processing pipeline named `name` over channel `channel` of this agent:
    /// `build` adds the streams and outputs to the context (see [`crate::pipeline`]). The
    /// pipeline's `PIPELINE.<name>` metrics join the agent's registry; it stops with the agent
    /// (after the sources, before the channels). The channel should have no sink of its own
    /// (a sink would compete for its events).
    ///
    /// A [reload](Agent::reload) that restarts the channel (its settings changed) stops the
    /// pipeline after its batch in progress, before the old channel closes, and resumes the
    /// same pipeline — its state, batch ids and outputs — on the new channel: a durable
    /// channel's events are all taken, once; a memory channel's contents go with the old
    /// channel as they do for sinks. Only the input channel is followed: channels `build`
    /// captured itself (a `to_channel` output, [`side_output`](crate::pipeline::PipelineConfig::side_output))
    /// keep pointing at the closed one, so run such pipelines over channels reloads leave
    /// alone. A reload that removes the channel stops the pipeline for good, with a warning.
    /// A pipeline the configuration defines with the same name replaces it.
    pub fn run_pipeline(
        &mut self,
        channel: &str,
        name: &str,
        config: crate::pipeline::PipelineConfig,
        build: impl FnOnce(&crate::pipeline::StreamingContext),
    ) -> Result<(), AgentError> {
        let start_err = |message: String| AgentError::Start {
            kind: "pipeline",
            name: name.to_string(),
            message,
        };
        if self.pipelines.contains_key(name) {
            return Err(start_err(
                "a pipeline of this name is already running".into(),
            ));
        }
        let ch = self
            .channel(channel)
            .ok_or_else(|| start_err(format!("the agent has no channel {channel}")))?;
        let ctx = crate::pipeline::StreamingContext::new(name, ch, config);
        build(&ctx);
        let pipeline = ctx.build().map_err(|e| start_err(e.to_string()))?;
        register(&self.registry, pipeline.counter() as Arc<dyn CounterGroup>);
        self.pipelines.insert(name.to_string(), pipeline.start());
        self.pipeline_channels
            .insert(name.to_string(), channel.to_string());
        self.publish_topology();
        tracing::info!(pipeline = %name, channel = %channel, "pipeline started");
        Ok(())
    }

    /// Restarts the Rust-built pipelines a reload stopped on the channels that replaced
    /// theirs; returns them as `pipeline name`. One whose channel is gone (removed from the
    /// configuration, or it failed to start) stays stopped and leaves the metrics, with a
    /// warning.
    fn resume_pipelines(
        &mut self,
        parked: Vec<(String, String, crate::pipeline::Pipeline)>,
    ) -> Vec<String> {
        let mut resumed = Vec::new();
        for (name, channel, mut p) in parked {
            let Some(ch) = self.channel(&channel) else {
                drop(p);
                self.registry.unregister("PIPELINE", &name);
                tracing::warn!(
                    pipeline = %name,
                    channel = %channel,
                    "pipeline {name} stopped for good: the reload left no channel {channel} to read (run it again with Agent::run_pipeline)"
                );
                continue;
            };
            p.rebind_channel(ch);
            self.pipelines.insert(name.clone(), p.start());
            self.pipeline_channels.insert(name.clone(), channel.clone());
            tracing::info!(pipeline = %name, channel = %channel, "pipeline resumed on the restarted channel");
            resumed.push(format!("pipeline {name}"));
        }
        resumed
    }

    /// Stops everything: sources, then pipelines, then sink runners, then channels.
    pub fn stop(&mut self) {
        let names: Vec<String> = self.sources.keys().cloned().collect();
        for n in names {
            self.stop_source(&n);
        }
        let names: Vec<String> = self.pipelines.keys().cloned().collect();
        for n in names {
            self.stop_pipeline(&n);
        }
        let names: Vec<String> = self.runners.keys().cloned().collect();
        for n in names {
            self.stop_runner(&n);
        }
        let names: Vec<String> = self.channels.keys().cloned().collect();
        for n in names {
            self.close_channel(&n);
        }
    }

    /// Re-reads the configuration file and restarts what changed. On an invalid configuration
    /// the agent keeps running unchanged and the error lists every problem.
    pub fn reload(&mut self) -> Result<ReloadSummary, AgentError> {
        let new = load(&self.conf_path, &self.config.name)?;
        let old = std::mem::replace(&mut self.config, new.clone());
        let diff = |a: BTreeMap<String, super::topology::Fingerprint>,
                    b: &BTreeMap<String, super::topology::Fingerprint>| {
            let mut changed: BTreeSet<String> = a
                .iter()
                .filter(|(k, v)| b.get(*k) != Some(v))
                .map(|(k, _)| k.clone())
                .collect();
            changed.extend(b.keys().filter(|k| !a.contains_key(*k)).cloned());
            changed
        };
        let ch = diff(channel_fingerprints(&old), &channel_fingerprints(&new));
        let run = diff(runner_fingerprints(&old), &runner_fingerprints(&new));
        let src = diff(source_fingerprints(&old), &source_fingerprints(&new));
        let pipes = diff(pipeline_fingerprints(&old), &pipeline_fingerprints(&new));
        let mut summary = ReloadSummary::default();
        for n in &src {
            if self.sources.contains_key(n) {
                self.stop_source(n);
                summary.stopped.push(format!("source {n}"));
            }
        }
        for n in &pipes {
            if self.pipelines.contains_key(n) {
                self.stop_pipeline(n);
                summary.stopped.push(format!("pipeline {n}"));
            }
        }
        // Pipelines built in Rust (`run_pipeline`, not in the configuration) over a channel
        // that restarts: stopped now, resumed on the new channel below.
        let mut parked = Vec::new();
        let followers: Vec<(String, String)> = self
            .pipeline_channels
            .iter()
            .filter(|(n, c)| {
                ch.contains(*c) && !pipes.contains(*n) && old.pipeline(n.as_str()).is_none()
            })
            .map(|(n, c)| (n.clone(), c.clone()))
            .collect();
        for (n, c) in followers {
            self.pipeline_channels.remove(&n);
            match self.pipelines.remove(&n).and_then(|h| h.stop()) {
                Some(p) => parked.push((n.clone(), c, p)),
                None => {
                    tracing::error!(pipeline = %n, "the pipeline's thread had died; it is not resumed")
                }
            }
            summary.stopped.push(format!("pipeline {n}"));
        }
        for n in &run {
            if self.runners.contains_key(n) {
                self.stop_runner(n);
                summary.stopped.push(format!("sinkrunner {n}"));
            }
        }
        for n in &ch {
            if self.channels.contains_key(n) {
                self.close_channel(n);
                self.registry.unregister("CHANNEL", n);
                summary.stopped.push(format!("channel {n}"));
            }
        }
        // Components that no longer exist leave the metrics.
        for s in old.sources.iter().filter(|s| new.source(&s.name).is_none()) {
            self.registry.unregister("SOURCE", &s.name);
        }
        for s in old.sinks.iter().filter(|s| new.sink(&s.name).is_none()) {
            self.registry.unregister("SINK", &s.name);
        }
        for p in old
            .pipelines
            .iter()
            .filter(|p| new.pipeline(&p.name).is_none())
        {
            self.registry.unregister("PIPELINE", &p.name);
        }
        let mut wanted: BTreeSet<String> = BTreeSet::new();
        wanted.extend(
            ch.iter()
                .filter(|n| new.channel(n).is_some())
                .map(|n| format!("channel {n}")),
        );
        wanted.extend(run.iter().map(|n| format!("sinkrunner {n}")));
        wanted.extend(
            src.iter()
                .filter(|n| new.source(n).is_some())
                .map(|n| format!("source {n}")),
        );
        wanted.extend(
            pipes
                .iter()
                .filter(|n| new.pipeline(n).is_some())
                .map(|n| format!("pipeline {n}")),
        );
        let started = self.bring_up(&new, Some(&wanted));
        let resumed = self.resume_pipelines(parked);
        self.publish_topology();
        summary.started = started?;
        summary.started.extend(resumed);
        tracing::info!(%summary, "configuration reloaded");
        Ok(summary)
    }

    /// What the agent runs and how it is wired (the configuration in force plus the
    /// pipelines), as the status page's `/topology` shows it.
    pub fn topology(&self) -> Topology {
        let cfg = &self.config;
        let group_of = |sink: &str| {
            cfg.sinkgroups
                .iter()
                .find(|g| g.sinks.iter().any(|s| s == sink))
                .map(|g| g.name.clone())
        };
        Topology {
            agent: cfg.name.clone(),
            sources: cfg
                .sources
                .iter()
                .map(|s| TopologySource {
                    name: s.name.clone(),
                    type_name: s.source_type.to_string(),
                    channels: s.channels.clone(),
                })
                .collect(),
            channels: cfg
                .channels
                .iter()
                .map(|c| TopologyChannel {
                    name: c.name.clone(),
                    type_name: c.channel_type.to_string(),
                })
                .collect(),
            sinks: cfg
                .sinks
                .iter()
                .map(|k| TopologySink {
                    name: k.name.clone(),
                    type_name: k.sink_type.to_string(),
                    channel: k.channel.clone(),
                    group: group_of(&k.name),
                })
                .collect(),
            pipelines: self
                .pipeline_channels
                .iter()
                .map(|(name, channel)| TopologyPipeline {
                    name: name.clone(),
                    channel: channel.clone(),
                })
                .collect(),
        }
    }

    /// Hands the topology to the metrics registry (served at `/topology`).
    fn publish_topology(&self) {
        self.registry.set_topology(self.topology());
    }

    /// The configuration in force.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// The running channel `name`.
    pub fn channel(&self, name: &str) -> Option<Arc<dyn Channel>> {
        self.channels.get(name).map(|c| c.channel.clone())
    }

    /// Names of running components, as `kind name`.
    pub fn running(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .channels
            .keys()
            .map(|n| format!("channel {n}"))
            .collect();
        v.extend(self.runners.keys().map(|n| format!("sinkrunner {n}")));
        v.extend(self.sources.keys().map(|n| format!("source {n}")));
        v.extend(self.pipelines.keys().map(|n| format!("pipeline {n}")));
        v
    }

    /// The metrics registry.
    pub fn registry(&self) -> &MetricsRegistry {
        &self.registry
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
    }
}
