//! The Avro source (`type = avro`, Flume's `AvroSource`): real Flume `avro` sinks and the Flume
//! SDK's `NettyAvroRpcClient` push `append`/`appendBatch` calls into it unchanged.
//!
//! It is the [`RpcServer`] with a handler that runs
//! [`ChannelProcessor::process_batch`] on tokio's blocking pool and answers **`OK` only after
//! every required channel committed** the batch, **`FAILED` when a channel refused it** (full,
//! transaction too large, byte capacity, disk space, closed, unhealthy…) — exactly as Flume's
//! `AvroSource.appendBatch`/`append` do. Requests that cannot be decoded get an Avro system error
//! from the server layer (see [`crate::rpc::server`] for the full table, and
//! `docs/avro-source.md`). AvroSource adds no headers; events are stored in the exact encoding
//! they arrived in.
//!
//! Settings (Flume's): `bind`, `port` (required; port 0 picks a free port, see
//! [`AvroSource::local_addr`]), `threads` (accepted and unused, as in Flume ≥ 1.10),
//! `compression-type` (`none`|`deflate`, any case), `ssl`, `keystore`, `keystore-password`,
//! `keystore-type`, `exclude-protocols`, `include-protocols`, `exclude-cipher-suites`,
//! `include-cipher-suites`, `ipFilter`, `ipFilterRules`. sluicegate extras:
//! `compression-level`, `compression-layer-order`, `keystore-key`, `max-connections`,
//! `idle-timeout`, `read-timeout`, `max-frame-bytes`, `max-batch-events`, `shutdown-timeout`.
//!
//! `compression-layer-order` defaults to `auto` here: with `ssl` and deflate both on, each
//! connection's first bytes decide whether TLS (Flume ≤ 1.9) or zlib (Flume ≥ 1.10) is outside,
//! so both families share one port ([`crate::rpc::transport`] has the rules); `tls-outside` /
//! `zlib-outside` pin one order. The Avro sink cannot detect and keeps its explicit setting.
//!
//! Counters (Flume's names): `AppendReceivedCount`/`AppendBatchReceivedCount` and
//! `EventReceivedCount` when a call is decoded; `AppendAcceptedCount`/`AppendBatchAcceptedCount`
//! and `EventAcceptedCount` after the channels committed; `ChannelWriteFail` for every `FAILED`;
//! `OpenConnectionCount` live (Flume refreshes it every 60 s); `EventReadFail` for every request
//! answered with a system error or dropped as unreadable (a sluicegate addition: Flume counts
//! nothing there).

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;

use super::{ChannelProcessor, Source, SourceError};
use crate::config::{ConfigError, Context, SystemProps};
use crate::metrics::SourceCounter;
use crate::rpc::server::{
    HandlerFuture, Outcome, Request, RequestHandler, RpcServer, ServerConfig, ServerHandle,
};
use crate::rpc::ServerTransport;
use crate::wire::{FlumeMessage, Status};

/// The settings of an Avro source that are not transport (TLS/zlib/IP filter) settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvroSourceConfig {
    /// `bind`: host name or address to listen on.
    pub bind: String,
    /// `port` (0 = any free port).
    pub port: u16,
    /// `threads`: parsed for compatibility, unused (Flume ≥ 1.10 ignores it too).
    pub threads: Option<u64>,
    /// Limits and timeouts (the sluicegate extras).
    pub server: ServerConfig,
}

impl AvroSourceConfig {
    /// Reads `bind`, `port`, `threads` and the server extras.
    pub fn from_context(name: &str, ctx: &Context) -> Result<AvroSourceConfig, ConfigError> {
        let bind = ctx.require("bind")?.trim().to_string();
        if bind.is_empty() {
            return Err(ctx.error("bind", "must name an address or host (e.g. 0.0.0.0)"));
        }
        ctx.require("port")?;
        let port = ctx
            .parse::<u16>("port", "a TCP port (0-65535)")?
            .unwrap_or(0);
        let threads = ctx.parse::<i64>("threads", "an integer")?;
        if threads.is_some() {
            tracing::debug!(
                key = %ctx.full_key("threads"),
                "threads is accepted for compatibility and not used (as in Flume >= 1.10)"
            );
        }
        Ok(AvroSourceConfig {
            bind,
            port,
            threads: threads.map(|t| t.max(0) as u64),
            server: ServerConfig::from_context(name, ctx)?,
        })
    }
}

/// The handler: Flume's `AvroSource.append`/`appendBatch`.
struct DeliverToChannels {
    name: Arc<str>,
    processor: ChannelProcessor,
    counter: Arc<SourceCounter>,
    /// A full channel is back-pressure, not a fault: reported once at INFO until a call is
    /// stored again.
    blocked: Arc<std::sync::atomic::AtomicBool>,
}

impl RequestHandler for DeliverToChannels {
    fn handle(&self, request: Request) -> HandlerFuture {
        let counter = self.counter.clone();
        let processor = self.processor.clone();
        let name = self.name.clone();
        let blocked = self.blocked.clone();
        let n = request.events.len() as u64;
        let message = request.message;
        match message {
            FlumeMessage::Append => SourceCounter::add(&counter.append_received, 1),
            FlumeMessage::AppendBatch => SourceCounter::add(&counter.append_batch_received, 1),
        }
        SourceCounter::add(&counter.events_received, n);
        let events = request.events;
        let peer = request.peer;
        Box::pin(async move {
            let stored =
                tokio::task::spawn_blocking(move || processor.process_batch(&events)).await;
            match stored {
                Ok(Ok(())) => {
                    match message {
                        FlumeMessage::Append => SourceCounter::add(&counter.append_accepted, 1),
                        FlumeMessage::AppendBatch => {
                            SourceCounter::add(&counter.append_batch_accepted, 1)
                        }
                    }
                    SourceCounter::add(&counter.events_accepted, n);
                    blocked.store(false, std::sync::atomic::Ordering::Relaxed);
                    Outcome::Status(Status::Ok)
                }
                Ok(Err(e @ crate::channel::ChannelError::Full { .. })) => {
                    SourceCounter::add(&counter.channel_write_fail, 1);
                    if !blocked.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        tracing::info!(
                            source = %name,
                            %peer,
                            cause = %e,
                            "back-pressure: the channel is full, so calls are answered FAILED and \
                             the senders retry (reported once until a call is stored again)"
                        );
                    }
                    Outcome::Status(Status::Failed)
                }
                Ok(Err(e)) => {
                    SourceCounter::add(&counter.channel_write_fail, 1);
                    tracing::warn!(
                        source = %name,
                        %peer,
                        events = n,
                        "Avro source could not store a {message} call; answering FAILED (the \
                         sender retries): {e}"
                    );
                    Outcome::Status(Status::Failed)
                }
                Err(join) => {
                    // A panic in an interceptor or channel: Flume's appendBatch catches any
                    // Throwable (FAILED); its append lets non-channel exceptions through as an
                    // Avro system error.
                    SourceCounter::add(&counter.channel_write_fail, 1);
                    tracing::error!(source = %name, %peer, "delivering a {message} call panicked: {join}");
                    match message {
                        FlumeMessage::AppendBatch => Outcome::Status(Status::Failed),
                        FlumeMessage::Append => Outcome::SystemError(format!(
                            "org.apache.flume.FlumeException: delivering the event failed: {join}"
                        )),
                    }
                }
            }
        })
    }
}

/// Flume's Avro source. Build with [`AvroSource::from_context`], then [`Source::start`].
pub struct AvroSource {
    name: String,
    config: AvroSourceConfig,
    transport: ServerTransport,
    processor: ChannelProcessor,
    runtime: Handle,
    counter: Arc<SourceCounter>,
    server: Option<ServerHandle>,
}

impl std::fmt::Debug for AvroSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroSource")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("transport", &self.transport)
            .field("local_addr", &self.local_addr())
            .finish()
    }
}

impl AvroSource {
    /// Reads the source's settings (see the module docs); TLS keystores are loaded here so a bad
    /// keystore is a configuration error. `runtime` runs the server's tasks.
    pub fn from_context(
        name: &str,
        ctx: &Context,
        props: &SystemProps,
        processor: ChannelProcessor,
        runtime: Handle,
    ) -> Result<AvroSource, ConfigError> {
        let config = AvroSourceConfig::from_context(name, ctx)?;
        let transport = ServerTransport::from_context(ctx, props)?;
        Ok(AvroSource::new(name, config, transport, processor, runtime))
    }

    /// A source from already parsed parts.
    pub fn new(
        name: &str,
        config: AvroSourceConfig,
        transport: ServerTransport,
        processor: ChannelProcessor,
        runtime: Handle,
    ) -> AvroSource {
        AvroSource {
            name: name.to_string(),
            config,
            transport,
            processor,
            runtime,
            counter: Arc::new(SourceCounter::new(name)),
            server: None,
        }
    }

    /// The bound address while running (the real port when `port = 0`).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().map(ServerHandle::local_addr)
    }

    /// The parsed settings.
    pub fn config(&self) -> &AvroSourceConfig {
        &self.config
    }

    /// Connections open right now (`None` when stopped).
    pub fn open_connections(&self) -> Option<usize> {
        self.server.as_ref().map(ServerHandle::open_connections)
    }

    fn io_error(&self, what: String, error: std::io::Error) -> SourceError {
        SourceError::Io {
            source_name: self.name.clone(),
            what,
            error,
        }
    }
}

impl Source for AvroSource {
    fn name(&self) -> &str {
        &self.name
    }

    /// Binds `bind:port` and starts serving on the runtime; returns at once. A bind failure
    /// (address in use, not local, unresolvable) is a [`SourceError::Io`] naming the address.
    fn start(&mut self) -> Result<(), SourceError> {
        if self.server.is_some() {
            return Ok(());
        }
        let target = format!("{}:{}", self.config.bind, self.config.port);
        let addr = (self.config.bind.as_str(), self.config.port)
            .to_socket_addrs()
            .map_err(|e| self.io_error(format!("cannot resolve bind address {target}"), e))?
            .next()
            .ok_or_else(|| {
                self.io_error(
                    format!("cannot resolve bind address {target}"),
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no address found"),
                )
            })?;
        let handler = Arc::new(DeliverToChannels {
            name: self.name.as_str().into(),
            processor: self.processor.clone(),
            counter: self.counter.clone(),
            blocked: Arc::default(),
        });
        let _enter = self.runtime.enter();
        let server = RpcServer::bind(
            addr,
            self.transport.clone(),
            self.config.server.clone(),
            handler,
            self.counter.clone(),
        )
        .map_err(|e| self.io_error(format!("cannot listen on {target} ({addr})"), e))?;
        tracing::info!(source = %self.name, addr = %server.local_addr(), "Avro source started");
        self.counter.start();
        self.server = Some(server);
        Ok(())
    }

    /// Stops accepting, lets in-flight batches finish and be answered, closes connections, and
    /// returns when done (bounded by `shutdown-timeout`).
    fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            let limit = self.config.server.shutdown_timeout + Duration::from_secs(5);
            if !server.shutdown_blocking(limit) {
                tracing::warn!(source = %self.name, "Avro source did not stop within {limit:?}");
            }
            tracing::info!(source = %self.name, "Avro source stopped");
            self.counter.stop();
        }
    }

    fn counter(&self) -> Arc<SourceCounter> {
        self.counter.clone()
    }
}

impl Drop for AvroSource {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.begin_shutdown();
        }
    }
}
