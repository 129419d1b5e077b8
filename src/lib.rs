//! # sluicegate
//!
//! A wire-compatible, crash-safe Rust replacement for an Apache Flume Avro hop: real Flume
//! `avro` sinks push into sluicegate's Avro source unchanged, events wait in a durable file
//! channel, and sluicegate's Avro sink pushes them on to any Avro source.
//!
//! ## Layout
//!
//! Events flow `wire → rpc → source → channel → sink`; imports only point down
//! (`tools`/`agent` → `source`/`sink`/`pipeline` → `rpc`/`channel` → `wire`/`metrics`/`config`/`event`).
//!
//! | module | job |
//! |---|---|
//! | [`wire`] | pure codecs: Netty frames, Avro primitives, the IPC handshake, Flume's messages |
//! | [`event`] | the [`Event`] type, kept in its Avro encoding end to end |
//! | [`config`] | a component's settings ([`config::Context`]) with file/line for every error |
//! | [`metrics`] | Flume's counters, `/metrics` JSON, Prometheus text |
//! | [`channel`] | the [`channel::Channel`] trait, memory channel, durable file channel |
//! | [`rpc`] | tokio transport: the server the source runs on, the client the sink uses |
//! | [`source`] | sources and the channel processor |
//! | [`sink`] | sinks and sink processors |
//! | [`pipeline`] | the micro-batch stream processor |
//! | [`agent`] | `flume.conf` loading, topology wiring, lifecycle, reload |
//! | [`tools`] | the CLI's tools as functions: `avro-client`, `bench`, the verified relay |
//!
//! ## Errors: each cause printed once
//!
//! Errors are `thiserror` enums. One convention holds everywhere so that a message never repeats
//! its context (`cannot connect to h:p: cannot connect to h:p: refused`):
//!
//! * An error's `Display` is the **whole** message: it includes its cause's `Display` inline
//!   (`"reading {path}: {source}"`). Logs (`error = %e`) and the CLI print `Display` only and
//!   never walk [`std::error::Error::source`] (the chain stays available to programs).
//! * A wrapper adds only context its cause does not already carry. When the cause names the
//!   target, path or component itself, the wrapper prints it alone (`#[error("{source}")]` or
//!   `#[error(transparent)]`): `RpcClientError::Connect` prints the transport error, which names
//!   the host; `AgentError::Start` prints the component's error, which names the component.
//! * A message that embeds an earlier error's text (a "last error" hint) does not repeat the
//!   context that text already has.

pub mod agent;
pub mod channel;
pub mod config;
pub mod event;
pub mod metrics;
pub mod pipeline;
pub mod rpc;
pub mod sink;
pub mod source;
pub mod tools;
pub mod wire;

pub use event::Event;
