//! The `flume.conf` loader: Flume's naming scheme (`FlumeConfiguration`) on top of the
//! properties file, turned into a typed, fully validated [`AgentConfig`].
//!
//! ```text
//! a1.sources  = r1              a1.sources.r1.type = avro          (+ any r1 settings)
//! a1.channels = c1              a1.sources.r1.channels = c1        (space-separated)
//! a1.sinks    = k1              a1.sources.r1.selector.type = multiplexing   (+ selector.*)
//! a1.sinkgroups = g1            a1.sources.r1.interceptors = i1    (+ interceptors.i1.type, .*)
//!                               a1.sinks.k1.channel = c1
//!                               a1.sinkgroups.g1.sinks = k1 k2     a1.sinkgroups.g1.processor.type
//! ```
//!
//! Flume reads the same things but **silently drops** whatever is invalid — a sink pointing at a
//! misspelt channel simply never runs. sluicegate refuses to start instead: every problem in the
//! file is collected and reported at once ([`ConfigErrors`], one `file:line: key: message` per
//! line) before anything is started. Things Flume ignores without harm (a component configured
//! but not listed, a key set twice, an empty value) become [`ConfigWarning`]s with their line.
//!
//! Flume semantics kept: keys and values are trimmed; a key set twice keeps its last value;
//! an empty value is ignored as if unset; type names are matched as in [`crate::component`];
//! lists are split on whitespace.
//!
//! ## Unknown keys
//!
//! Flume ignores a key no component reads (`batchSize` on a sink that reads `batch-size`);
//! sluicegate reports it as `file:line: key: not used by avro sink k1; did you mean
//! 'batch-size'?` ([`AgentConfig::unknown_keys`]). "Read" is decided by the components
//! themselves: building one (for real, or for `sluicegate check`, which opens no file and binds
//! no port) records every key its code asks for in its [`Context`], and whatever is set but was
//! never asked for is unknown. That is exact by construction — a key is reported exactly when
//! no code looks at it — and needs no key list to keep in step with the code; Flume keys
//! sluicegate accepts and ignores are read (and logged as ignored) by their component for this
//! reason. The suggestion is the nearest key the component asked for
//! ([`crate::config::suggest`]). Only components that built are looked at: one that failed
//! stopped reading at its first error, and its error (which names a typo that left a required
//! key unset) comes first. Unknown keys are warnings; with `-Dsluicegate.config.strict=true`
//! ([`strict`]; `check --strict`) they are errors.
//!
//! Validation is one validator per kind of component (`ChannelValidator`, `SourceValidator`,
//! `SinkValidator`, `SinkGroupValidator`, each a `Validator`), run in that order so each can
//! check references to the kinds before it (sources and sinks name channels, sink groups name
//! sinks). Every `type` is resolved here, once, through [`crate::component`], and the
//! resolved enum travels in the typed config down to the components. A new kind (such as the
//! stream processor's `pipelines`) is one new validator plus its place in `KINDS`.
//!
//! ## Pipeline sinks
//!
//! A sink of type `pipeline` (issue 10) is a streaming-SQL pipeline over its channel, not a
//! Flume sink: `SinkValidator` checks its type and channel like any sink's and hands it to the
//! `PipelineSinkValidator`, which compiles its query and reads every setting
//! ([`super::pipeline_sink`]; every problem at once, a query error on the `query` key's line).
//! Valid pipeline sinks go to [`AgentConfig::pipelines`], not [`AgentConfig::sinks`]: no sink
//! runner drives them and they cannot be in a sink group (an error). Another sink reading the
//! same channel is a warning: the two would split the events, so neither sees them all.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::pipeline_sink::{self, PipelineOutput, PipelineSinkConfig};
use super::properties::{Properties, PropertiesError, TextEncoding};
use crate::component::{
    ChannelType, ComponentType, InterceptorType, SelectorType, SinkProcessorType, SinkType,
    SourceType,
};
use crate::config::suggest::suggest;
use crate::config::{ConfigError, Context, Origin, SystemProps};

/// Something Flume would silently accept or ignore, worth telling the user about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// File the key came from.
    pub file: Option<Arc<PathBuf>>,
    /// 1-based line (0 when not tied to a line).
    pub line: usize,
    /// The full key.
    pub key: String,
    /// What is odd and what Flume would do.
    pub message: String,
}

impl ConfigWarning {
    /// The same finding as an error (`-Dsluicegate.config.strict=true`).
    pub fn into_error(self) -> ConfigError {
        ConfigError {
            file: self.file,
            line: self.line,
            key: self.key,
            message: self.message,
        }
    }
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let as_error = ConfigError {
            file: self.file.clone(),
            line: self.line,
            key: self.key.clone(),
            message: self.message.clone(),
        };
        as_error.fmt(f)
    }
}

/// Every problem found in a configuration; `Display` prints one `file:line: key: message` per
/// line, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    /// The errors, sorted by line.
    pub errors: Vec<ConfigError>,
    /// Warnings found along the way (also worth logging when the load fails).
    pub warnings: Vec<ConfigWarning>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// One agent's validated configuration.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The agent name (`-n a1`).
    pub name: String,
    /// The file it was read from.
    pub file: Option<Arc<PathBuf>>,
    /// Sources, in the order of `<agent>.sources`.
    pub sources: Vec<SourceConfig>,
    /// Channels, in the order of `<agent>.channels`.
    pub channels: Vec<ChannelConfig>,
    /// Sinks, in the order of `<agent>.sinks`.
    pub sinks: Vec<SinkConfig>,
    /// Sink groups, in the order of `<agent>.sinkgroups`.
    pub sinkgroups: Vec<SinkGroupConfig>,
    /// Sinks of type `pipeline` (streaming SQL), in the order of `<agent>.sinks`; they are not
    /// in `sinks`.
    pub pipelines: Vec<PipelineSinkConfig>,
    /// Things Flume would accept silently; log them at start-up.
    pub warnings: Vec<ConfigWarning>,
}

impl AgentConfig {
    /// The source named `name`.
    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// The channel named `name`.
    pub fn channel(&self, name: &str) -> Option<&ChannelConfig> {
        self.channels.iter().find(|c| c.name == name)
    }

    /// The sink named `name`.
    pub fn sink(&self, name: &str) -> Option<&SinkConfig> {
        self.sinks.iter().find(|s| s.name == name)
    }

    /// The pipeline sink named `name`.
    pub fn pipeline(&self, name: &str) -> Option<&PipelineSinkConfig> {
        self.pipelines.iter().find(|p| p.name == name)
    }

    /// The sink group named `name`.
    pub fn sinkgroup(&self, name: &str) -> Option<&SinkGroupConfig> {
        self.sinkgroups.iter().find(|g| g.name == name)
    }

    /// The group a sink belongs to, if any.
    pub fn group_of_sink(&self, sink: &str) -> Option<&SinkGroupConfig> {
        self.sinkgroups
            .iter()
            .find(|g| g.sinks.iter().any(|s| s == sink))
    }

    /// Sinks in no group: Flume runs each under its own default processor.
    pub fn ungrouped_sinks(&self) -> impl Iterator<Item = &SinkConfig> {
        self.sinks
            .iter()
            .filter(|s| self.group_of_sink(&s.name).is_none())
    }

    /// Keys set on a component that no code read, as `not used by avro sink k1; did you mean
    /// 'batch-size'?` (see the module docs). Only components `built(kind, name)` accepts are
    /// looked at (`kind` is `channel`, `source`, `sink`, `sinkgroup` or `pipeline`): their keys were read
    /// by building them. Sorted by line.
    pub fn unknown_keys(&self, built: &dyn Fn(&str, &str) -> bool) -> Vec<ConfigWarning> {
        let mut out = Vec::new();
        for c in self.channels.iter().filter(|c| built("channel", &c.name)) {
            let who = format!("{} channel {}", c.channel_type, c.name);
            unknown_in(&mut out, &c.context, &[], &who);
        }
        for s in self.sources.iter().filter(|s| built("source", &s.name)) {
            let mut inner = vec!["selector.".to_string()];
            for i in &s.interceptors {
                let who = format!(
                    "{} interceptor {} of source {}",
                    i.interceptor_type, i.name, s.name
                );
                if !inner.contains(&format!("interceptors.{}.", i.name)) {
                    unknown_in(&mut out, &i.context, &[], &who);
                    inner.push(format!("interceptors.{}.", i.name));
                }
            }
            let who = format!("{} selector of source {}", s.selector.selector_type, s.name);
            unknown_in(&mut out, &s.selector.context, &[], &who);
            let who = format!("{} source {}", s.source_type, s.name);
            unknown_in(&mut out, &s.context, &inner, &who);
        }
        for k in self.sinks.iter().filter(|k| built("sink", &k.name)) {
            let who = format!("{} sink {}", k.sink_type, k.name);
            unknown_in(&mut out, &k.context, &[], &who);
        }
        for p in self.pipelines.iter().filter(|p| built("pipeline", &p.name)) {
            let who = format!("pipeline sink {}", p.name);
            unknown_in(&mut out, &p.context, &[], &who);
        }
        for g in self
            .sinkgroups
            .iter()
            .filter(|g| built("sinkgroup", &g.name))
        {
            let who = format!(
                "{} processor of sink group {}",
                g.processor.processor_type, g.name
            );
            unknown_in(&mut out, &g.processor.context, &[], &who);
            let who = format!("sink group {}", g.name);
            unknown_in(&mut out, &g.context, &["processor.".to_string()], &who);
        }
        out.sort_by_key(|w| w.line);
        out
    }

    /// Every component's own settings as `(kind, name, context)`, `kind` as
    /// [`unknown_keys`](Self::unknown_keys)' `built` takes it.
    fn component_contexts(&self) -> impl Iterator<Item = (&'static str, &str, &Context)> {
        let channels = self
            .channels
            .iter()
            .map(|c| ("channel", &c.name, &c.context));
        let sources = self.sources.iter().map(|s| ("source", &s.name, &s.context));
        let sinks = self.sinks.iter().map(|k| ("sink", &k.name, &k.context));
        let pipelines = self
            .pipelines
            .iter()
            .map(|p| ("pipeline", &p.name, &p.context));
        let groups = self
            .sinkgroups
            .iter()
            .map(|g| ("sinkgroup", &g.name, &g.context));
        channels
            .chain(sources)
            .chain(sinks)
            .chain(pipelines)
            .chain(groups)
            .map(|(kind, name, c)| (kind, name.as_str(), c))
    }

    /// The warnings components gave while they were built ([`Context::warn`]: a value replaced
    /// by a default, a Flume key sluicegate ignores), of the components `built` accepts (see
    /// [`AgentConfig::unknown_keys`]). Sorted by line.
    pub fn build_notes(&self, built: &dyn Fn(&str, &str) -> bool) -> Vec<ConfigWarning> {
        let mut out: Vec<ConfigWarning> = self
            .component_contexts()
            .filter(|(kind, name, _)| built(kind, name))
            .flat_map(|(_, _, c)| c.notes())
            .map(|e| ConfigWarning {
                file: e.file,
                line: e.line,
                key: e.key,
                message: e.message,
            })
            .collect();
        out.sort_by_key(|w| w.line);
        out.dedup();
        out
    }
}

/// Unknown keys of `ctx` (except those under the `inner` prefixes, reported by their own
/// component), each `not used by {who}` with the nearest key the component asked for.
fn unknown_in(out: &mut Vec<ConfigWarning>, ctx: &Context, inner: &[String], who: &str) {
    let unused = ctx.unused_keys();
    if unused.is_empty() {
        return;
    }
    let known = ctx.read_keys();
    for k in unused {
        if inner.iter().any(|p| k.starts_with(p.as_str())) {
            continue;
        }
        let mut message = format!("not used by {who}");
        if let Some(s) = suggest(&k, known.iter().map(String::as_str)) {
            message.push_str(&format!("; did you mean '{s}'?"));
        }
        let o = ctx.origin(&k);
        out.push(ConfigWarning {
            file: o.file,
            line: o.line,
            key: ctx.full_key(&k),
            message,
        });
    }
}

/// A source: `<agent>.sources.<name>.*`.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Component name (`r1`).
    pub name: String,
    /// Its type.
    pub source_type: SourceType,
    /// The channels it writes to, in configured order, each listed in `<agent>.channels`.
    pub channels: Vec<String>,
    /// Its channel selector.
    pub selector: SelectorConfig,
    /// Its interceptors, in the order of `interceptors`.
    pub interceptors: Vec<InterceptorConfig>,
    /// All its settings (prefix `a1.sources.r1`), including `type`, `channels`, `selector.*`.
    pub context: Context,
}

/// A channel: `<agent>.channels.<name>.*`.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    /// Component name (`c1`).
    pub name: String,
    /// Its type.
    pub channel_type: ChannelType,
    /// All its settings (prefix `a1.channels.c1`).
    pub context: Context,
}

/// A sink: `<agent>.sinks.<name>.*`.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Component name (`k1`).
    pub name: String,
    /// Its type.
    pub sink_type: SinkType,
    /// The channel it reads, listed in `<agent>.channels`.
    pub channel: String,
    /// All its settings (prefix `a1.sinks.k1`).
    pub context: Context,
}

/// A sink group: `<agent>.sinkgroups.<name>.*`.
#[derive(Debug, Clone)]
pub struct SinkGroupConfig {
    /// Group name (`g1`).
    pub name: String,
    /// Its sinks in configured order (for `failover` without priorities this order matters).
    pub sinks: Vec<String>,
    /// Its sink processor.
    pub processor: ProcessorConfig,
    /// All its settings (prefix `a1.sinkgroups.g1`).
    pub context: Context,
}

/// A sink group's processor: `<agent>.sinkgroups.<g>.processor.*`.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// `processor.type` (default `default`).
    pub processor_type: SinkProcessorType,
    /// Settings under `processor.` (prefix `a1.sinkgroups.g1.processor`; keys `type`,
    /// `priority.k1`, `maxpenalty`, `backoff`, `selector`, ...).
    pub context: Context,
}

/// One interceptor of a source: `<agent>.sources.<s>.interceptors.<name>.*`.
#[derive(Debug, Clone)]
pub struct InterceptorConfig {
    /// Interceptor name (`i1`).
    pub name: String,
    /// Its type.
    pub interceptor_type: InterceptorType,
    /// Its settings (prefix `a1.sources.r1.interceptors.i1`; keys `type`, `key`, ...).
    pub context: Context,
}

/// A source's channel selector: `<agent>.sources.<s>.selector.*`.
#[derive(Debug, Clone)]
pub struct SelectorConfig {
    /// `selector.type` (default `replicating`).
    pub selector_type: SelectorType,
    /// The routing, channel names already checked against the source's channels.
    pub selection: ChannelSelection,
    /// Settings under `selector.` (prefix `a1.sources.r1.selector`).
    pub context: Context,
}

/// How a selector routes events, as Flume's selectors read their settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelSelection {
    /// Every event to all the source's channels; `optional` ones may fail without failing
    /// the batch (`selector.optional`).
    Replicating {
        /// Optional channels.
        optional: Vec<String>,
    },
    /// Channels chosen by the value of a header.
    Multiplexing {
        /// `selector.header` (default `flume.selector.header`).
        header: String,
        /// `selector.mapping.<value> = channels`, sorted by value.
        mapping: Vec<(String, Vec<String>)>,
        /// `selector.default`: channels for unmatched values (may be empty).
        default: Vec<String>,
        /// `selector.optional.<value> = channels`, sorted by value.
        optional: Vec<(String, Vec<String>)>,
    },
}

/// Flume's default multiplexing header.
pub const DEFAULT_MULTIPLEX_HEADER: &str = "flume.selector.header";

/// The system property that turns unknown-key warnings into errors.
pub const STRICT_PROPERTY: &str = "sluicegate.config.strict";

/// True when `-Dsluicegate.config.strict=true` (any case): unknown keys are errors.
pub fn strict(props: &SystemProps) -> bool {
    props
        .get(STRICT_PROPERTY)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Reads `path` and returns the configuration of agent `agent`.
pub fn load_file(path: &Path, agent: &str) -> Result<AgentConfig, ConfigErrors> {
    into_result(load_file_partial(path, agent))
}

/// A load that keeps going past errors: the components that validated, and every problem.
#[derive(Debug, Clone)]
pub struct PartialConfig {
    /// The agent with only the components that validated (`None` when the file could not be
    /// read or parsed, or configures no such agent). Its `warnings` are empty: see `warnings`.
    pub config: Option<AgentConfig>,
    /// Every error, sorted by line.
    pub errors: Vec<ConfigError>,
    /// Every warning, sorted by line.
    pub warnings: Vec<ConfigWarning>,
}

fn into_result(p: PartialConfig) -> Result<AgentConfig, ConfigErrors> {
    match p.config {
        Some(mut c) if p.errors.is_empty() => {
            c.warnings = p.warnings;
            Ok(c)
        }
        _ => Err(ConfigErrors {
            errors: p.errors,
            warnings: p.warnings,
        }),
    }
}

/// Like [`load_file`], but returns the valid part of the configuration next to the errors, so
/// `sluicegate check` can still build the components that validated and report their problems
/// too: a topology error does not hide a component's.
pub fn load_file_partial(path: &Path, agent: &str) -> PartialConfig {
    let file = Some(Arc::new(path.to_path_buf()));
    let failed = |e: ConfigErrors| PartialConfig {
        config: None,
        errors: e.errors,
        warnings: e.warnings,
    };
    match Properties::load(path) {
        Ok(props) => load_properties_partial(&props, file, agent),
        Err(PropertiesError::Io { source, .. }) => failed(ConfigErrors {
            errors: vec![ConfigError {
                file,
                line: 0,
                key: "-f".into(),
                message: format!("cannot read the configuration file: {source}"),
            }],
            warnings: vec![],
        }),
        Err(PropertiesError::Syntax(errs)) => failed(syntax_errors(file, errs)),
    }
}

/// Parses `text` (named `file` in messages) and returns the configuration of agent `agent`.
pub fn load_str(text: &str, file: Option<&Path>, agent: &str) -> Result<AgentConfig, ConfigErrors> {
    let file = file.map(|p| Arc::new(p.to_path_buf()));
    match Properties::parse(text) {
        Ok(props) => load_properties(&props, file, agent),
        Err(errs) => Err(syntax_errors(file, errs)),
    }
}

fn syntax_errors(
    file: Option<Arc<PathBuf>>,
    errs: Vec<super::properties::PropertiesSyntaxError>,
) -> ConfigErrors {
    ConfigErrors {
        errors: errs
            .into_iter()
            .map(|e| ConfigError {
                file: file.clone(),
                line: e.line,
                key: e.key.unwrap_or_else(|| "(syntax)".into()),
                message: e.message,
            })
            .collect(),
        warnings: vec![],
    }
}

/// The agent names a properties file configures (the part before the first `.` of every key),
/// sorted.
pub fn agent_names(props: &Properties) -> Vec<String> {
    let set: BTreeSet<String> = props
        .all_entries()
        .iter()
        .filter_map(|e| {
            let k = e.key.trim();
            k.split_once('.')
                .map(|(a, _)| a.to_string())
                .filter(|a| !a.is_empty())
        })
        .collect();
    set.into_iter().collect()
}

/// Builds and validates agent `agent` from parsed properties.
pub fn load_properties(
    props: &Properties,
    file: Option<Arc<PathBuf>>,
    agent: &str,
) -> Result<AgentConfig, ConfigErrors> {
    into_result(load_properties_partial(props, file, agent))
}

/// [`load_properties`] keeping the valid part (see [`load_file_partial`]).
pub fn load_properties_partial(
    props: &Properties,
    file: Option<Arc<PathBuf>>,
    agent: &str,
) -> PartialConfig {
    let mut b = Builder::new(agent, file);
    if props.encoding() == TextEncoding::Latin1 {
        b.warn(
            0,
            "(encoding)".into(),
            "the file is not valid UTF-8; it was read as ISO-8859-1 (as Flume 1.11 reads it)"
                .into(),
        );
    }
    b.collect(props);
    if !b.agent_seen {
        let names = agent_names(props);
        let found = if names.is_empty() {
            "the file configures no agents".to_string()
        } else {
            format!("agents in this file: {}", names.join(", "))
        };
        b.error(
            0,
            agent.to_string(),
            format!("no agent named '{agent}' in the configuration ({found}); check -n/--name"),
        );
        let e = b.finish_err();
        return PartialConfig {
            config: None,
            errors: e.errors,
            warnings: e.warnings,
        };
    }
    b.build()
}

/// A `<agent>.<list>` value: its names in order and the line it was set on.
#[derive(Debug, Clone, Default)]
struct NameList {
    names: Vec<String>,
    line: usize,
    set: bool,
}

/// Raw settings of one component before validation.
#[derive(Debug)]
struct Raw {
    ctx: Context,
    first_line: usize,
}

struct Builder {
    agent: String,
    file: Option<Arc<PathBuf>>,
    agent_seen: bool,
    lists: BTreeMap<&'static str, NameList>,
    raw: BTreeMap<&'static str, BTreeMap<String, Raw>>,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigWarning>,
}

const SOURCES: &str = "sources";
const CHANNELS: &str = "channels";
const SINKS: &str = "sinks";
const SINKGROUPS: &str = "sinkgroups";

/// One kind of component: `<agent>.<list> = names`, `<agent>.<list>.<name>.<key> = value`.
struct Kind {
    /// The list key (`sources`).
    list: &'static str,
    /// The kind in messages (`source`).
    singular: &'static str,
    /// What a listed component must set at least (`type`; `sinks` for a sink group).
    needs: &'static str,
}

/// Every kind, in validation order: a kind's validator may look at the kinds before it.
const KINDS: [&Kind; 4] = [
    &ChannelValidator::KIND,
    &SourceValidator::KIND,
    &SinkValidator::KIND,
    &SinkGroupValidator::KIND,
];

fn split_list(value: &str) -> Vec<String> {
    value.split_whitespace().map(str::to_string).collect()
}

impl Builder {
    fn new(agent: &str, file: Option<Arc<PathBuf>>) -> Builder {
        Builder {
            agent: agent.to_string(),
            file,
            agent_seen: false,
            lists: BTreeMap::new(),
            raw: KINDS.iter().map(|k| (k.list, BTreeMap::new())).collect(),
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn origin(&self, line: usize) -> Origin {
        Origin {
            file: self.file.clone(),
            line,
        }
    }

    fn error(&mut self, line: usize, key: String, message: String) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line,
            key,
            message,
        });
    }

    fn ctx_error(&mut self, ctx: &Context, key: &str, message: String) {
        let mut e = ctx.error(key, &message);
        e.message = message;
        self.errors.push(e);
    }

    fn warn(&mut self, line: usize, key: String, message: String) {
        self.warnings.push(ConfigWarning {
            file: self.file.clone(),
            line,
            key,
            message,
        });
    }

    fn full(&self, rest: &str) -> String {
        format!("{}.{}", self.agent, rest)
    }

    /// Sorts findings into lists and per-component contexts (Flume's `addRawProperty`).
    fn collect(&mut self, props: &Properties) {
        let prefix = format!("{}.", self.agent);
        for dup in props.duplicates() {
            let last = dup[dup.len() - 1];
            if !last.key.trim().starts_with(&prefix) {
                continue;
            }
            for e in &dup[..dup.len() - 1] {
                self.warn(
                    e.line,
                    e.key.trim().to_string(),
                    format!(
                        "set again on line {}; the last value wins (as in Flume), this one is \
                         ignored",
                        last.line
                    ),
                );
            }
        }
        for e in props.effective() {
            let key = e.key.trim();
            let Some(rest) = key.strip_prefix(&prefix) else {
                continue;
            };
            self.agent_seen = true;
            let value = e.value.trim();
            if rest.is_empty() {
                self.warn(
                    e.line,
                    key.to_string(),
                    "has no key after the agent name; Flume ignores it".into(),
                );
                continue;
            }
            if value.is_empty() {
                self.warn(
                    e.line,
                    key.to_string(),
                    "has an empty value; Flume ignores the key as if it were not set".into(),
                );
                continue;
            }
            if value.contains("${") {
                self.warn(
                    e.line,
                    key.to_string(),
                    "contains '${...}': Flume 1.11 would substitute it (environment/system \
                     property lookups); sluicegate does not and uses the text as written"
                        .into(),
                );
            }
            if let Some(kind) = KINDS.iter().find(|k| k.list == rest) {
                self.lists.insert(
                    kind.list,
                    NameList {
                        names: split_list(value),
                        line: e.line,
                        set: true,
                    },
                );
                continue;
            }
            if rest == "configfilters" || rest.starts_with("configfilters.") {
                self.error(
                    e.line,
                    key.to_string(),
                    "config filters (Flume 1.10+ `configfilters`) are not supported by \
                     sluicegate; put the values in the file directly"
                        .into(),
                );
                continue;
            }
            let mut placed = false;
            for kind in KINDS.map(|k| k.list) {
                let Some(after) = rest.strip_prefix(kind).and_then(|r| r.strip_prefix('.')) else {
                    continue;
                };
                // Flume's parseConfigKey: the name is non-empty and followed by `.<key>`.
                let Some(dot) = after.get(1..).and_then(|s| s.find('.')).map(|i| i + 1) else {
                    break;
                };
                let (name, sub) = (&after[..dot], &after[dot + 1..]);
                if name.trim().is_empty() || sub.is_empty() {
                    break;
                }
                let name = name.trim().to_string();
                let prefix = format!("{}.{}.{}", self.agent, kind, name);
                let origin = self.origin(e.line);
                let map = self.raw.get_mut(kind).expect("all kinds present");
                let raw = map.entry(name).or_insert_with(|| {
                    let mut ctx = Context::new(prefix);
                    ctx.set_declared_at(origin.clone());
                    ctx.collect_notes(); // reported with the other diagnostics
                    Raw {
                        ctx,
                        first_line: e.line,
                    }
                });
                raw.ctx.insert(sub, value, origin);
                placed = true;
                break;
            }
            if !placed {
                self.warn(
                    e.line,
                    key.to_string(),
                    format!(
                        "is not a Flume agent key (expected {a}.sources|channels|sinks|sinkgroups \
                         = names, or {a}.<sources|channels|sinks|sinkgroups>.<name>.<key>); Flume \
                         ignores it",
                        a = self.agent
                    ),
                );
            }
        }
    }

    /// Names of one list, warning about repeats.
    fn list(&mut self, kind: &'static str) -> NameList {
        let mut l = self.lists.get(kind).cloned().unwrap_or_default();
        let mut seen = BTreeSet::new();
        let mut names = Vec::new();
        for n in std::mem::take(&mut l.names) {
            if seen.insert(n.clone()) {
                names.push(n);
            } else {
                let key = self.full(kind);
                self.warn(
                    l.line,
                    key,
                    format!("lists '{n}' more than once; it is used once"),
                );
            }
        }
        l.names = names;
        l
    }

    /// The context of a listed component, or an error when it has no settings.
    fn take_raw(&mut self, kind: &Kind, name: &str, list_line: usize) -> Option<Context> {
        match self.raw.get_mut(kind.list).and_then(|m| m.remove(name)) {
            Some(r) => Some(r.ctx),
            None => {
                let needed = kind.needs;
                let key = format!("{}.{}.{}.{needed}", self.agent, kind.list, name);
                let listed = self.full(kind.list);
                self.error(
                    list_line,
                    key,
                    format!(
                        "{} '{name}' is listed in {listed} but has no settings; set its {needed}",
                        kind.singular
                    ),
                );
                None
            }
        }
    }

    /// Resolves `type` of a component (through the registry, [`crate::component`]).
    fn component_type<T: ComponentType>(&mut self, ctx: &Context, what: &str) -> Option<T> {
        self.ok(T::from_context(ctx, what))
    }

    /// The value, or `None` with the error recorded.
    fn ok<T>(&mut self, r: Result<T, ConfigError>) -> Option<T> {
        r.map_err(|e| self.errors.push(e)).ok()
    }

    /// Validates every listed component, kind by kind (see [`KINDS`] and [`Validator`]), then
    /// warns about what is configured but unused.
    fn build(mut self) -> PartialConfig {
        let lists = KINDS
            .map(|k| (k.list, self.list(k.list)))
            .into_iter()
            .collect();
        let mut scope = Scope {
            lists,
            used_channels: BTreeSet::new(),
            pipeline_sinks: BTreeSet::new(),
        };
        if !scope.list(CHANNELS).set || scope.names(CHANNELS).is_empty() {
            let key = self.full(CHANNELS);
            self.error(
                0,
                key,
                "is not set: the agent needs at least one channel (space-separated names)".into(),
            );
        }
        if scope.names(SOURCES).is_empty() && scope.names(SINKS).is_empty() {
            let (k1, k2) = (self.full(SOURCES), self.full(SINKS));
            self.error(
                0,
                format!("{k1}, {k2}"),
                "are both unset: the agent needs at least one source or sink".into(),
            );
        }

        let channels = self.validate_all(&mut scope, &mut ChannelValidator);
        let sources = self.validate_all(&mut scope, &mut SourceValidator);
        let mut sink_validator = SinkValidator::default();
        let sinks = self.validate_all(&mut scope, &mut sink_validator);
        let pipelines = sink_validator.pipelines.pipelines;
        self.competing_readers(&sinks, &pipelines);
        let sinkgroups = self.validate_all(&mut scope, &mut SinkGroupValidator::default());

        for c in scope.names(CHANNELS) {
            if !scope.used_channels.contains(c) {
                let key = self.full(CHANNELS);
                self.warn(
                    scope.list(CHANNELS).line,
                    key,
                    format!(
                        "channel '{c}' is connected to no source or sink; Flume removes such \
                         channels"
                    ),
                );
            }
        }

        // Configured but never listed: Flume ignores them silently.
        for kind in KINDS {
            let leftovers: Vec<(String, usize)> = self
                .raw
                .get(kind.list)
                .map(|m| m.iter().map(|(n, r)| (n.clone(), r.first_line)).collect())
                .unwrap_or_default();
            for (name, line) in leftovers {
                let key = format!("{}.{}.{}", self.agent, kind.list, name);
                let list = self.full(kind.list);
                self.warn(
                    line,
                    key,
                    format!(
                        "{} '{name}' is configured but not listed in {list}; it is ignored (as \
                         Flume does)",
                        kind.singular
                    ),
                );
            }
        }

        let config = AgentConfig {
            name: self.agent.clone(),
            file: self.file.clone(),
            sources,
            channels,
            sinks,
            sinkgroups,
            pipelines,
            warnings: Vec::new(),
        };
        let e = self.finish_err();
        PartialConfig {
            config: Some(config),
            errors: e.errors,
            warnings: e.warnings,
        }
    }

    /// Warns about a pipeline sink sharing its channel with another sink or pipeline: they
    /// would split the events between them.
    fn competing_readers(&mut self, sinks: &[SinkConfig], pipelines: &[PipelineSinkConfig]) {
        for p in pipelines {
            let others: Vec<String> = sinks
                .iter()
                .filter(|s| s.channel == p.channel)
                .map(|s| format!("sink '{}'", s.name))
                .chain(
                    pipelines
                        .iter()
                        .filter(|q| q.channel == p.channel && q.name != p.name)
                        .map(|q| format!("pipeline sink '{}'", q.name)),
                )
                .collect();
            if others.is_empty() {
                continue;
            }
            let key = p.context.full_key("channel");
            let line = p.context.origin("channel").line;
            self.warn(
                line,
                key,
                format!(
                    "channel '{}' is also read by {}; they take events from it in turn, so \
                     pipeline sink '{}' sees only part of the stream (give each pipeline its own \
                     channel, filled by a replicating source)",
                    p.channel,
                    others.join(", "),
                    p.name
                ),
            );
        }
    }

    /// `selector.*` of a source; `chans` are its (valid) channels.
    fn selector(
        &mut self,
        ctx: &Context,
        source: &str,
        chans: &[String],
    ) -> Option<SelectorConfig> {
        let sctx = ctx.sub("selector");
        let t = self.ok(SelectorType::from_context_or(
            &sctx,
            SelectorType::Replicating,
        ))?;
        let mut ok = true;
        let mut names = |this: &mut Builder, key: &str, required: bool| -> Vec<String> {
            let list = sctx.get(key).map(split_list).unwrap_or_default();
            if required && list.is_empty() {
                this.ctx_error(&sctx, key, "names no channel".into());
                ok = false;
            }
            for c in &list {
                if !chans.contains(c) {
                    let msg = format!(
                        "channel '{c}' is not among the channels of source '{source}' ({})",
                        chans.join(", ")
                    );
                    this.ctx_error(&sctx, key, msg);
                    ok = false;
                }
            }
            list
        };
        let selection = match t {
            SelectorType::Replicating => ChannelSelection::Replicating {
                optional: names(self, "optional", false),
            },
            SelectorType::Multiplexing => {
                let header = sctx
                    .get("header")
                    .map(|h| h.trim().to_string())
                    .unwrap_or_else(|| DEFAULT_MULTIPLEX_HEADER.to_string());
                let default = names(self, "default", false);
                let keys: Vec<String> = sctx.keys().map(str::to_string).collect();
                let mut mapping = Vec::new();
                let mut optional = Vec::new();
                for k in &keys {
                    if let Some(v) = k.strip_prefix("mapping.") {
                        mapping.push((v.to_string(), names(self, k, true)));
                    } else if let Some(v) = k.strip_prefix("optional.") {
                        optional.push((v.to_string(), names(self, k, false)));
                    }
                }
                ChannelSelection::Multiplexing {
                    header,
                    mapping,
                    default,
                    optional,
                }
            }
        };
        ok.then_some(SelectorConfig {
            selector_type: t,
            selection,
            context: sctx,
        })
    }

    /// `interceptors` + `interceptors.<i>.*` of a source.
    fn interceptors(&mut self, ctx: &Context) -> Option<Vec<InterceptorConfig>> {
        let listed = ctx.get("interceptors").map(split_list).unwrap_or_default();
        let all = ctx.sub("interceptors");
        let mut out = Vec::new();
        let mut ok = true;
        for name in &listed {
            if let Some(same) = out.iter().find(|i: &&InterceptorConfig| &i.name == name) {
                // Listed twice: Flume builds and runs it twice (its chain is the split list).
                out.push(same.clone());
                continue;
            }
            let ictx = all.sub(name);
            let what = format!("interceptor '{name}'");
            match self.component_type::<InterceptorType>(&ictx, &what) {
                Some(t) => out.push(InterceptorConfig {
                    name: name.clone(),
                    interceptor_type: t,
                    context: ictx,
                }),
                None => ok = false,
            }
        }
        let mut stray: BTreeMap<String, usize> = BTreeMap::new();
        for k in all.keys() {
            let n = k.split('.').next().unwrap_or(k);
            if !listed.iter().any(|l| l == n) {
                all.mark_read(k); // the warning below names it
                let line = all.origin(k).line;
                let e = stray.entry(n.to_string()).or_insert(line);
                *e = (*e).min(line);
            }
        }
        for (n, line) in stray {
            let key = all.full_key(&n);
            let list = ctx.full_key("interceptors");
            self.warn(
                line,
                key,
                format!(
                    "interceptor '{n}' is configured but not listed in {list}; it is ignored (as \
                     Flume does)"
                ),
            );
        }
        ok.then_some(out)
    }

    fn finish_err(mut self) -> ConfigErrors {
        self.errors.sort_by_key(|e| e.line);
        self.warnings.sort_by_key(|w| w.line);
        ConfigErrors {
            errors: self.errors,
            warnings: self.warnings,
        }
    }
}

/// The agent's lists, which validators check references against, and what validators tell
/// each other.
struct Scope {
    /// Every kind's list (`<agent>.sources = …`), repeats removed.
    lists: BTreeMap<&'static str, NameList>,
    /// Channels a valid source or sink uses; the others get a warning.
    used_channels: BTreeSet<String>,
    /// Sinks of type `pipeline` (valid or not): never in a sink group.
    pipeline_sinks: BTreeSet<String>,
}

impl Scope {
    fn list(&self, kind: &str) -> &NameList {
        &self.lists[kind]
    }

    fn names(&self, kind: &str) -> &[String] {
        &self.lists[kind].names
    }

    fn has(&self, kind: &str, name: &str) -> bool {
        self.names(kind).iter().any(|n| n == name)
    }

    /// `defined: c1, c2` or `none are defined`, for messages about a bad reference.
    fn defined(&self, kind: &str) -> String {
        let names = self.names(kind);
        if names.is_empty() {
            "none are defined".to_string()
        } else {
            format!("defined: {}", names.join(", "))
        }
    }
}

/// Validates the components of one [`Kind`]. Adding a kind (the streaming-SQL `pipelines`, say)
/// is one more implementation: list its `KIND` in [`KINDS`] (after the kinds it refers to), call
/// [`Builder::validate_all`] with it in [`Builder::build`] and keep the result in
/// [`AgentConfig`].
trait Validator {
    /// Which kind it validates.
    const KIND: Kind;
    /// The validated form of one component.
    type Config;

    /// Checks a listed name before its settings are looked at (`line` is the list's line).
    fn check_name(&mut self, _b: &mut Builder, _scope: &Scope, _name: &str, _line: usize) {}

    /// Validates one listed component with settings `ctx`: the typed config, or `None` with
    /// every problem recorded in `b`.
    fn validate(
        &mut self,
        b: &mut Builder,
        scope: &mut Scope,
        name: &str,
        ctx: Context,
    ) -> Option<Self::Config>;
}

impl Builder {
    /// Runs `v` over every listed component of its kind, in list order.
    fn validate_all<V: Validator>(&mut self, scope: &mut Scope, v: &mut V) -> Vec<V::Config> {
        let list = scope.list(V::KIND.list).clone();
        let mut out = Vec::new();
        for name in &list.names {
            v.check_name(self, scope, name, list.line);
            let Some(ctx) = self.take_raw(&V::KIND, name, list.line) else {
                continue;
            };
            out.extend(v.validate(self, scope, name, ctx));
        }
        out
    }
}

/// `<agent>.channels`: a type.
struct ChannelValidator;

impl Validator for ChannelValidator {
    const KIND: Kind = Kind {
        list: CHANNELS,
        singular: "channel",
        needs: "type",
    };
    type Config = ChannelConfig;

    fn validate(
        &mut self,
        b: &mut Builder,
        _scope: &mut Scope,
        name: &str,
        ctx: Context,
    ) -> Option<ChannelConfig> {
        let what = format!("channel '{name}'");
        let t = b.component_type::<ChannelType>(&ctx, &what)?;
        Some(ChannelConfig {
            name: name.to_string(),
            channel_type: t,
            context: ctx,
        })
    }
}

/// `<agent>.sources`: a type, listed channels, a channel selector, interceptors.
struct SourceValidator;

impl Validator for SourceValidator {
    const KIND: Kind = Kind {
        list: SOURCES,
        singular: "source",
        needs: "type",
    };
    type Config = SourceConfig;

    fn validate(
        &mut self,
        b: &mut Builder,
        scope: &mut Scope,
        name: &str,
        ctx: Context,
    ) -> Option<SourceConfig> {
        let what = format!("source '{name}'");
        let t = b.component_type::<SourceType>(&ctx, &what);
        let mut ok = t.is_some();
        let channels_defined = scope.defined(CHANNELS);
        let chans = match ctx.get("channels") {
            None => {
                b.ctx_error(
                    &ctx,
                    "channels",
                    format!(
                        "is not set: source '{name}' must write to at least one channel \
                         ({channels_defined})"
                    ),
                );
                ok = false;
                Vec::new()
            }
            Some(v) => {
                let mut list = Vec::new();
                for c in split_list(v) {
                    if !scope.has(CHANNELS, &c) {
                        b.ctx_error(
                            &ctx,
                            "channels",
                            format!(
                                "channel '{c}' is not listed in {} ({channels_defined})",
                                b.full(CHANNELS)
                            ),
                        );
                        ok = false;
                    } else if !list.contains(&c) {
                        list.push(c);
                    }
                }
                list
            }
        };
        scope.used_channels.extend(chans.iter().cloned());
        let selector = b.selector(&ctx, name, &chans);
        let interceptors = b.interceptors(&ctx);
        let (true, Some(t), Some(selector), Some(interceptors)) = (ok, t, selector, interceptors)
        else {
            return None;
        };
        Some(SourceConfig {
            name: name.to_string(),
            source_type: t,
            channels: chans,
            selector,
            interceptors,
            context: ctx,
        })
    }
}

/// `<agent>.sinks`: a type and exactly one listed channel; sinks of type `pipeline` go on to
/// the [`PipelineSinkValidator`].
#[derive(Default)]
struct SinkValidator {
    /// Validates (and keeps) the pipeline sinks.
    pipelines: PipelineSinkValidator,
}

impl Validator for SinkValidator {
    const KIND: Kind = Kind {
        list: SINKS,
        singular: "sink",
        needs: "type",
    };
    type Config = SinkConfig;

    fn validate(
        &mut self,
        b: &mut Builder,
        scope: &mut Scope,
        name: &str,
        ctx: Context,
    ) -> Option<SinkConfig> {
        let what = format!("sink '{name}'");
        let t = b.component_type::<SinkType>(&ctx, &what);
        let channels_defined = scope.defined(CHANNELS);
        let channel = match ctx.get("channel").map(split_list) {
            None => {
                let hint = if ctx.contains("channels") {
                    ctx.mark_read("channels"); // named by this hint
                    " (sinks use 'channel', singular; 'channels' is for sources)"
                } else {
                    ""
                };
                b.ctx_error(
                    &ctx,
                    "channel",
                    format!(
                        "is not set: sink '{name}' must read one channel{hint} \
                         ({channels_defined})"
                    ),
                );
                None
            }
            Some(list) if list.len() != 1 => {
                b.ctx_error(
                    &ctx,
                    "channel",
                    format!(
                        "a sink reads exactly one channel, got {} ('{}')",
                        list.len(),
                        list.join(" ")
                    ),
                );
                None
            }
            Some(list) => {
                let c = list.into_iter().next().unwrap_or_default();
                if scope.has(CHANNELS, &c) {
                    scope.used_channels.insert(c.clone());
                    Some(c)
                } else {
                    b.ctx_error(
                        &ctx,
                        "channel",
                        format!(
                            "channel '{c}' is not listed in {} ({channels_defined})",
                            b.full(CHANNELS)
                        ),
                    );
                    None
                }
            }
        };
        if t == Some(SinkType::Pipeline) {
            scope.pipeline_sinks.insert(name.to_string());
            channel?;
            let p = self.pipelines.validate(b, scope, name, ctx)?;
            self.pipelines.pipelines.push(p);
            return None; // kept in `pipelines`, not a sink run by a sink runner
        }
        Some(SinkConfig {
            name: name.to_string(),
            sink_type: t?,
            channel: channel?,
            context: ctx,
        })
    }
}

/// A sink of type `pipeline` whose type and channel the [`SinkValidator`] checked: its query,
/// batch interval, output and state settings ([`pipeline_sink::from_context`]).
#[derive(Default)]
struct PipelineSinkValidator {
    /// The valid pipeline sinks so far.
    pipelines: Vec<PipelineSinkConfig>,
}

impl Validator for PipelineSinkValidator {
    const KIND: Kind = Kind {
        list: SINKS,
        singular: "pipeline sink",
        needs: "type",
    };
    type Config = PipelineSinkConfig;

    fn validate(
        &mut self,
        b: &mut Builder,
        scope: &mut Scope,
        name: &str,
        ctx: Context,
    ) -> Option<PipelineSinkConfig> {
        let channel = ctx
            .get("channel")
            .map(split_list)
            .and_then(|l| l.into_iter().next())?;
        let channels = scope.names(CHANNELS).to_vec();
        match pipeline_sink::from_context(&b.agent, name, &channel, &ctx, &channels) {
            Ok(p) => {
                if let PipelineOutput::Channel { channel } = &p.output {
                    scope.used_channels.insert(channel.clone());
                }
                Some(p)
            }
            Err(errors) => {
                b.errors.extend(errors);
                None
            }
        }
    }
}

/// `<agent>.sinkgroups`: listed sinks (each in one group at most) and a sink processor.
#[derive(Default)]
struct SinkGroupValidator {
    /// Sink → the group it already belongs to.
    grouped: BTreeMap<String, String>,
}

impl Validator for SinkGroupValidator {
    const KIND: Kind = Kind {
        list: SINKGROUPS,
        singular: "sink group",
        needs: "sinks",
    };
    type Config = SinkGroupConfig;

    fn check_name(&mut self, b: &mut Builder, scope: &Scope, name: &str, line: usize) {
        if scope.has(SINKS, name) {
            let key = b.full(SINKGROUPS);
            b.error(
                line,
                key,
                format!(
                    "sink group '{name}' has the same name as a sink; Flume runs sink groups \
                     and lone sinks under one set of names, so one of them would never run — \
                     rename one"
                ),
            );
        }
    }

    fn validate(
        &mut self,
        b: &mut Builder,
        scope: &mut Scope,
        name: &str,
        ctx: Context,
    ) -> Option<SinkGroupConfig> {
        let sinks_defined = scope.defined(SINKS);
        let mut ok = true;
        let mut members = Vec::new();
        match ctx.get("sinks") {
            None => {
                b.ctx_error(
                    &ctx,
                    "sinks",
                    format!(
                        "is not set: sink group '{name}' needs its sinks (space-separated; \
                         {sinks_defined})"
                    ),
                );
                ok = false;
            }
            Some(v) => {
                for s in split_list(v) {
                    if members.contains(&s) {
                        let key = ctx.full_key("sinks");
                        let line = ctx.origin("sinks").line;
                        b.warn(line, key, format!("lists '{s}' more than once"));
                        continue;
                    }
                    if scope.pipeline_sinks.contains(&s) {
                        b.ctx_error(
                            &ctx,
                            "sinks",
                            format!(
                                "sink '{s}' is a pipeline sink; a pipeline reads its channel on \
                                 its own and cannot be in a sink group"
                            ),
                        );
                        ok = false;
                    } else if !scope.has(SINKS, &s) {
                        b.ctx_error(
                            &ctx,
                            "sinks",
                            format!(
                                "sink '{s}' is not listed in {} ({sinks_defined})",
                                b.full(SINKS)
                            ),
                        );
                        ok = false;
                    } else if let Some(other) = self.grouped.get(&s) {
                        let msg = format!(
                            "sink '{s}' is already in sink group '{other}'; a sink can belong \
                             to only one group"
                        );
                        b.ctx_error(&ctx, "sinks", msg);
                        ok = false;
                    } else {
                        self.grouped.insert(s.clone(), name.to_string());
                    }
                    members.push(s);
                }
            }
        }
        let pctx = ctx.sub("processor");
        let ptype = b.ok(SinkProcessorType::from_context_or(
            &pctx,
            SinkProcessorType::Default,
        ));
        if ptype == Some(SinkProcessorType::Default) && members.len() > 1 {
            let msg = format!(
                "the default sink processor takes exactly one sink, but group '{name}' has {}; \
                 use processor.type = failover or load_balance",
                members.len()
            );
            if pctx.contains("type") {
                b.ctx_error(&pctx, "type", msg);
            } else {
                b.ctx_error(&ctx, "sinks", msg);
            }
            ok = false;
        }
        if ptype == Some(SinkProcessorType::Failover) {
            let stray: Vec<(String, usize)> = pctx
                .keys()
                .filter_map(|k| k.strip_prefix("priority."))
                .filter(|s| !members.iter().any(|m| m == s))
                .map(|s| (s.to_string(), pctx.origin(&format!("priority.{s}")).line))
                .collect();
            for (s, line) in stray {
                pctx.mark_read(&format!("priority.{s}")); // the warning names it
                let key = pctx.full_key(&format!("priority.{s}"));
                b.warn(
                    line,
                    key,
                    format!("sets a priority for '{s}', which is not in sink group '{name}'"),
                );
            }
        }
        let (true, Some(t)) = (ok, ptype) else {
            return None;
        };
        Some(SinkGroupConfig {
            name: name.to_string(),
            sinks: members,
            processor: ProcessorConfig {
                processor_type: t,
                context: pctx,
            },
            context: ctx,
        })
    }
}
