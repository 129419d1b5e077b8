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
//! | [`config`] | a component's settings ([`config::Context`]) with file/line for every error; the `-D` system properties ([`config::SystemProps`]) |
//! | [`metrics`] | Flume's counters, `/metrics` JSON, Prometheus text |
//! | [`channel`] | the [`channel::Channel`] trait, memory channel, durable file channel |
//! | [`rpc`] | tokio transport: the server the source runs on, the client the sink uses |
//! | [`source`] | sources and the channel processor |
//! | [`sink`] | sinks and sink processors |
//! | [`pipeline`] | the micro-batch stream processor |
//! | [`agent`] | `flume.conf` loading, topology wiring, lifecycle, reload |
//! | [`tools`] | the CLI's tools as functions: `avro-client`, `bench`, the verified relay |
//! | [`tools`] | the `avro-client` and `bench` command-line tools as functions |

// Every `unsafe` block (the file channel's mmaps, the libc calls of rpc::ipfilter) must say why
// it is sound.
#![warn(clippy::undocumented_unsafe_blocks)]

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
