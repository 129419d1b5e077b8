//! Sinks: where events leave an agent.
//!
//! A [`Sink`] is driven like Flume's: a runner thread calls [`Sink::process`] in a loop; each
//! call takes up to one batch from the sink's channel inside a take transaction, delivers it, and
//! commits only when delivery succeeded (otherwise it rolls back, so nothing is lost).
//! `Ok(SinkStatus::Backoff)` means "nothing to do, sleep a little"; an `Err` means delivery
//! failed (the runner backs off and the events stay in the channel). A sink with timed work
//! (the HDFS sink's idle and roll-interval closes) reports it through [`Sink::wake_in`], and the
//! runner's backoff sleep ends by then.

pub mod avro;
pub mod batch;
pub mod file_roll;
pub mod hdfs;
pub mod logger;
pub mod null;
pub mod processor;
pub mod runner;

use std::sync::Arc;

use crate::channel::ChannelError;
use crate::config::ConfigError;
use crate::metrics::SinkCounter;

/// What one `process` call achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkStatus {
    /// Work was done; call again at once.
    Ready,
    /// Nothing to do (empty channel); back off before calling again.
    Backoff,
}

/// Why a sink failed to deliver or to start.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Bad settings.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The channel failed (Flume's `ChannelException`).
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// Delivery failed (Flume's `EventDeliveryException`); the batch was rolled back.
    #[error("sink {sink}: delivery failed: {message}")]
    Delivery {
        /// The sink's name from the configuration (`k1`).
        sink: String,
        /// What went wrong downstream, in words (the peer's error, a timeout, a closed connection).
        message: String,
    },
    /// An I/O failure, with what was being done.
    #[error("sink {sink}: {what}: {error}")]
    Io {
        /// The sink's name from the configuration (`k1`).
        sink: String,
        /// What was being done when it failed, with the path or address where one applies.
        what: String,
        /// The operating system's error.
        #[source]
        error: std::io::Error,
    },
}

/// A consumer of one channel.
pub trait Sink: Send + 'static {
    /// The component name (`k1`).
    fn name(&self) -> &str;
    /// Prepares the sink (open files, connect lazily, ...).
    fn start(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    /// Takes one batch from the channel and delivers it (one take transaction).
    fn process(&mut self) -> Result<SinkStatus, SinkError>;
    /// Releases resources. Events not yet committed stay in the channel.
    fn stop(&mut self) {}
    /// The sink's Flume counters.
    fn counter(&self) -> Arc<SinkCounter>;
    /// How soon the sink has timed work even with an empty channel (an HDFS file's
    /// `idleTimeout`/`rollInterval` close): the runner calls `process` by then instead of
    /// sleeping out its whole backoff. `None`: nothing timed.
    fn wake_in(&self) -> Option<std::time::Duration> {
        None
    }
}
