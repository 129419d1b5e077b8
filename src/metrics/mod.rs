//! Metrics: Flume's counter groups, and the registry the `/metrics` JSON and Prometheus
//! endpoints render.
//!
//! * [`counters`]: `SourceCounter`, `ChannelCounter`, `SinkCounter` with Flume's names.
//! * [`registry`]: the set of live counter groups, rendered as Flume JSON or Prometheus text.
//! * [`http`]: the HTTP server (`-Dflume.monitoring.type=http`).
//! * [`prometheus`]: the Prometheus text rendering served at `/metrics/prometheus`.
//! * [`status`]: the live status page at `/`, and its `/topology` and `/pipelines` JSON.
//! * [`topology`]: the agent's wiring as plain data (handed in by the agent).

pub mod counters;
pub mod http;
pub mod prometheus;
pub mod registry;
pub mod status;
pub mod topology;

pub use counters::{ChannelCounter, ChannelHealth, CounterGroup, SinkCounter, SourceCounter};
pub use registry::MetricsRegistry;
pub use topology::Topology;
