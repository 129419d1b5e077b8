//! Sources: where events enter an agent.
//!
//! * [`processor`]: Flume's `ChannelProcessor` — interceptors, the channel selector, and one put
//!   transaction per channel.
//! * [`avro`]: the Avro RPC source (`type = avro`).

pub mod avro;
pub mod processor;

pub use processor::ChannelProcessor;
