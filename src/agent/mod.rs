//! The agent: `flume.conf` loading, topology wiring, lifecycle. Filled in by the agent work.
