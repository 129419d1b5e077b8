//! HTTP metrics server (Flume JSON `/metrics` and Prometheus text). Filled in by the agent work.
