//! Sources: where events enter an agent.
//!
//! * [`processor`]: Flume's `ChannelProcessor` — interceptors, the channel selector, and one put
//!   transaction per channel.
//! * [`avro`]: the Avro RPC source (`type = avro`).
//!
//! A source is built with the [`ChannelProcessor`] it delivers to; [`Source::start`] returns at
//! once (the source runs on its own threads or tokio tasks) and [`Source::stop`] returns only
//! when the source has stopped accepting input and every in-flight batch has been answered.

pub mod avro;
pub mod exec;
pub mod interceptor;
pub mod netcat;
pub mod processor;
pub mod selector;
pub mod seq;

use std::sync::Arc;

pub use processor::ChannelProcessor;

use crate::config::ConfigError;
use crate::metrics::SourceCounter;

/// Why a source could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Bad settings.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An I/O failure (bind, spawn, read), with what was being done.
    #[error("source {source_name}: {what}: {error}")]
    Io {
        /// The source's name from the configuration (`r1`).
        source_name: String,
        /// What was being done when it failed (`cannot listen on 0.0.0.0:41414 ...`, `spawning the
        /// runner thread`).
        what: String,
        /// The operating system's error.
        #[source]
        error: std::io::Error,
    },
    /// Anything else, said plainly.
    #[error("source {source_name}: {message}")]
    Other {
        /// The source's name from the configuration (`r1`).
        source_name: String,
        /// What went wrong, in words.
        message: String,
    },
}

/// A running producer of events.
pub trait Source: Send + 'static {
    /// The component name (`r1`).
    fn name(&self) -> &str;
    /// Starts producing; returns at once.
    fn start(&mut self) -> Result<(), SourceError>;
    /// Stops accepting input, finishes in-flight batches, then returns.
    fn stop(&mut self);
    /// The source's Flume counters.
    fn counter(&self) -> Arc<SourceCounter>;
}
