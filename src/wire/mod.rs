//! The wire layer: pure encoders/decoders for Flume's Avro RPC. No I/O, no tokio types in its
//! core, so it can be fuzzed. Filled in by the wire work.
//!
//! * [`avro`]: Avro binary primitives.

pub mod avro;
