//! # sluicegate
//!
//! A wire-compatible, crash-safe Rust replacement for an Apache Flume Avro hop: real Flume
//! `avro` sinks push into sluicegate's Avro source unchanged, events wait in a durable file
//! channel, and sluicegate's Avro sink pushes them on to any Avro source.
//!
//! ## Layout
//!
//! Events flow `wire → rpc → source → channel → sink`. Modules sit on numbered layers, and a
//! module imports only from modules on a **strictly lower** layer: never upward, never
//! sideways (`source` and `sink` do not import each other, nor `rpc` and `channel`), so there
//! are no cycles. `tests/layering.rs` checks this on every `crate::`/`super::` path in `src/`,
//! `#[cfg(test)]` modules included, and also that the files of one folder do not import each
//! other in a cycle. `main.rs` (the binary) sits on top and may use anything.
//!
//! | layer | module | job |
//! |---|---|---|
//! | 5 | [`agent`] | `flume.conf` loading and validation, topology wiring, lifecycle, reload |
//! | 5 | [`tools`] | the CLI's tools as functions: `avro-client`, `bench`, the verified relay |
//! | 4 | [`source`] | sources, interceptors, channel selectors and the channel processor |
//! | 4 | [`sink`] | sinks, sink processors and the sink runner |
//! | 4 | [`pipeline`] | the micro-batch stream processor; may use only `channel`, `event`, `config`, `metrics`, `clock` |
//! | 3 | [`rpc`] | tokio transport: the server the source runs on, the client the sink uses |
//! | 3 | [`channel`] | the [`channel::Channel`] trait, memory channel, durable file channel |
//! | 2 | [`wire`] | pure codecs: Netty frames, the IPC handshake, Flume's messages |
//! | 1 | [`event`] | the [`Event`] type, kept in its Avro encoding end to end |
//! | 1 | [`component`] | the one registry of component type names (`avro`, `org.apache.flume.…`) |
//! | 1 | [`metrics`] | Flume's counters, `/metrics` JSON, Prometheus text |
//! | 0 | [`avro`] | Avro binary primitives (varints, bytes, strings, blocks) |
//! | 0 | [`config`] | a component's settings ([`config::Context`]) with file/line for every error; the `-D` system properties ([`config::SystemProps`]) |
//! | 0 | [`clock`] | time sources: wall-clock milliseconds as Flume reports them; the monotonic clock timers read, and a manual one tests advance |
//!
//! To add a module, give it a layer here and in `LAYERS` in `tests/layering.rs`.
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

// Every `unsafe` block (the file channel's mmaps, the libc calls of rpc::ipfilter) must say why
// it is sound.
#![warn(clippy::undocumented_unsafe_blocks)]
// Every public item says what it is; library code never panics on a `None`/`Err` it could
// report (tests may unwrap).
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod agent;
pub mod avro;
pub mod channel;
pub mod clock;
pub mod component;
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
