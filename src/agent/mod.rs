//! The agent: `flume.conf` loading, topology wiring, lifecycle.
//!
//! * [`properties`]: the Java `.properties` reader (`java.util.Properties.load` semantics, with
//!   line numbers).
//! * [`conf`]: Flume's `<agent>.sources|channels|sinks|sinkgroups` naming scheme turned into a
//!   validated [`conf::AgentConfig`]; every problem reported at once.
//! * [`cli`]: `-Dkey=value` system properties and the log level they select.
//! * [`pipeline_sink`]: the `pipeline` sink type: a streaming-SQL pipeline declared in
//!   `flume.conf`, its keys and outputs.
//! * [`pipeline_hdfs`]: that sink's `hdfs` output: result rows through the HDFS sink's file
//!   formats, one file per bucket per batch, exactly once.
//! * [`row_events`]: result rows as events (JSON body, group keys as headers), for both outputs.
//! * [`topology`]: constructing components from a validated config, all errors at once.
//! * [`lifecycle`]: the running [`lifecycle::Agent`]: ordered start/stop, reload.
//! * [`run`]: `sluicegate agent` — signals, metrics server, reload polling, the periodic summary.
//! * [`summary`]: the one-line-per-flow summary a running agent logs.
//!
//! The supported component types and their Flume aliases / class names live in
//! [`crate::component`] (re-exported here), below the sources and sinks that use them too.

pub mod cli;
pub mod conf;
pub mod lifecycle;
pub mod pipeline_hdfs;
pub mod pipeline_sink;
pub mod properties;
pub mod row_events;
pub mod run;
pub mod summary;
pub mod topology;

pub use crate::component::{
    ChannelType, ComponentType, InterceptorType, SelectorType, SinkProcessorType, SinkType,
    SourceType,
};
pub use conf::{
    load_file, load_str, AgentConfig, ChannelConfig, ChannelSelection, ConfigErrors, ConfigWarning,
    InterceptorConfig, ProcessorConfig, SelectorConfig, SinkConfig, SinkGroupConfig, SourceConfig,
};
pub use properties::{Properties, PropertyEntry};
