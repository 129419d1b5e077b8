//! Sinks: where events leave an agent. Filled in by the sink work.
