//! The Avro sink (`type = avro`): Flume's `AvroSink` / `AbstractRpcSink` (spec §4.2) over
//! [`crate::rpc::client`].
//!
//! Each [`process`](Sink::process) call, on the sink runner's thread:
//! 1. makes sure a client exists (connecting if needed — see *Reconnecting* below) and closes and
//!    recreates it when `reset-connection-interval` has passed since it was created;
//! 2. takes up to `batch-size` events in one channel take transaction; none →
//!    `BatchEmptyCount`, `Ok(Backoff)`, no RPC; fewer than `batch-size` → `BatchUnderflowCount`,
//!    exactly → `BatchCompleteCount`; `EventDrainAttemptCount += n`;
//! 3. sends them (`appendBatch`, blocking on the tokio runtime handle it was given) and
//!    **commits only when every RPC returned Status OK** (`EventDrainSuccessCount += n` once the
//!    commit is done; see *Commit behind* below);
//! 4. on a `FAILED`/`UNKNOWN` status, a system error, a timeout or any connection problem:
//!    rolls the transaction back (the events return to the front of the channel, in order),
//!    `EventWriteFail += 1`, closes the client (`ConnectionClosedCount += 1`) and returns
//!    `Err(SinkError::Delivery)` so the runner backs off. The next `process` opens a new
//!    connection (new handshake) and retries the same events first. Nothing is ever dropped:
//!    delivery is **at least once** (a batch the source stored but whose reply was lost is sent
//!    again).
//!
//! Channel errors on take count `ChannelReadFail` and return `Ok(Backoff)`, as Flume does.
//!
//! # Commit behind
//! A durable channel's take commit waits for an `fdatasync` that it shares with the puts being
//! committed at the same time, so under load it lasts about as long as the RPC itself. The sink
//! does not wait for it: once batch *N* is answered `OK`, its commit runs on the runtime's
//! blocking pool while `process` returns and the next call takes and sends batch *N+1*. At most
//! [`COMMITS_IN_FLIGHT`] commits run at once (a further delivery first waits for the oldest), a
//! failed commit (the channel refusing work) is returned by the next `process` that collects it,
//! and an empty take, a failed delivery or [`Sink::stop`] waits for all of them.
//!
//! What does not change: the wire carries one call at a time, in channel order, as Flume's sink
//! does. Pipelining the RPCs themselves would be faster still, but Flume >= 1.10 runs the calls of
//! one connection concurrently (spec §1.5) and could store two in-flight batches out of order.
//! Delivery stays at least once: a crash before a commit is durable redelivers that batch,
//! exactly as a crash between Flume's `OK` and its commit does. Only `EventDrainSuccessCount`
//! moves later, when the commit is done.
//!
//! # Reconnecting
//! A failed connection attempt counts `ConnectionFailedCount` and returns `Err`. Further attempts
//! wait an exponentially growing delay — `reconnect-backoff-initial` (default 500 ms), doubled
//! after each consecutive failure up to `reconnect-backoff-max` (default 30000 ms) — on top of the
//! runner's own backoff; `process` calls inside that window fail at once without touching the
//! network or the channel. A successful connection resets the delay. (Flume has no such delay and
//! retries every runner backoff; the extra cap keeps a dead downstream from being hammered.)
//!
//! Must not be called from inside a tokio runtime thread (it uses `Handle::block_on`); the
//! [`SinkRunner`](super::runner::SinkRunner) thread is the intended caller.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::channel::{Channel, ChannelError, TakeBatch};
use crate::clock::Clock;
use crate::config::{ConfigError, Context, SystemProps};
use crate::metrics::SinkCounter;
use crate::rpc::client::{RpcClient, RpcClientConfig, RpcClientError};

use super::{Sink, SinkError, SinkStatus};

/// Default `reconnect-backoff-initial`.
pub const DEFAULT_RECONNECT_BACKOFF_INITIAL: Duration = Duration::from_millis(500);
/// Default `reconnect-backoff-max`.
pub const DEFAULT_RECONNECT_BACKOFF_MAX: Duration = Duration::from_millis(30_000);

/// Take commits a sink lets run behind its deliveries (see *Commit behind*). On a quiet disk a
/// commit finishes within one or two of the sink's cycles and fewer would do; on a busy disk
/// (the relay benchmark with a competing `dd … conv=fdatasync` loop) throughput rose with every
/// doubling: 1 → 105 k, 2 → 130 k, 4 → 160 k, 8 → 178 k events/s. The bound is also how many
/// delivered batches a crash can send again. Each holds one take transaction open.
pub const COMMITS_IN_FLIGHT: usize = 8;

/// Settings of an Avro sink beyond the RPC client's.
#[derive(Debug, Clone)]
pub struct AvroSinkConfig {
    /// The RPC client settings (hosts set from `hostname`/`port` unless `hosts` is given).
    pub client: RpcClientConfig,
    /// `batch-size` (events per take transaction; also the RPC batch size).
    pub batch_size: usize,
    /// `reset-connection-interval` (seconds; `None` = never).
    pub reset_connection_interval: Option<Duration>,
    /// `reconnect-backoff-initial` (ms).
    pub reconnect_backoff_initial: Duration,
    /// `reconnect-backoff-max` (ms).
    pub reconnect_backoff_max: Duration,
}

impl AvroSinkConfig {
    /// Reads `hostname`, `port` (both required unless `hosts` is set), `batch-size`,
    /// `reset-connection-interval`, `reconnect-backoff-*` and every RPC client key
    /// ([`RpcClientConfig::from_context`]). As in Flume's `AbstractRpcSink`, `hosts = h1`,
    /// `hosts.h1 = hostname:port` are set first and every sink key is passed to the client, so
    /// `client.type`, `hosts`, `hosts.*` in the sink's settings win.
    pub fn from_context(ctx: &Context, props: &SystemProps) -> Result<AvroSinkConfig, ConfigError> {
        let mut cctx = ctx.clone();
        if !ctx.contains("hosts") {
            let host = ctx.require("hostname")?.trim().to_string();
            let port: u16 = ctx
                .parse::<u16>("port", "a port number (1-65535)")?
                .ok_or_else(|| ctx.error("port", "is required but not set"))?;
            if port == 0 {
                return Err(ctx.error("port", "must be 1-65535"));
            }
            let origin = ctx.origin("hostname");
            cctx.insert("hosts", "h1", origin.clone());
            let hp = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            cctx.insert("hosts.h1", hp, origin);
        } else {
            // Read (and so mark used) hostname/port even when hosts wins, as Flume reads them.
            let _ = (ctx.get("hostname"), ctx.get("port"));
        }
        let client = RpcClientConfig::from_context(&cctx, props)?;
        let reset = ctx.get_u64("reset-connection-interval", 0)?;
        let initial = ctx.get_millis(
            "reconnect-backoff-initial",
            DEFAULT_RECONNECT_BACKOFF_INITIAL.as_millis() as u64,
        )?;
        let max = ctx.get_millis(
            "reconnect-backoff-max",
            DEFAULT_RECONNECT_BACKOFF_MAX.as_millis() as u64,
        )?;
        Ok(AvroSinkConfig {
            batch_size: client.batch_size,
            client,
            reset_connection_interval: (reset > 0).then(|| Duration::from_secs(reset)),
            reconnect_backoff_initial: initial,
            reconnect_backoff_max: max.max(initial),
        })
    }
}

/// Flume's Avro sink; see the module docs.
pub struct AvroSink {
    name: String,
    cfg: AvroSinkConfig,
    channel: Arc<dyn Channel>,
    runtime: tokio::runtime::Handle,
    counter: Arc<SinkCounter>,
    client: Option<RpcClient>,
    /// Where `reset-connection-interval` and the reconnect backoff read the time (and the
    /// load-balancing client its host backoff).
    clock: Clock,
    connected_at: Instant,
    /// Consecutive failed connection attempts.
    connect_failures: u32,
    next_connect: Option<Instant>,
    last_connect_error: Option<String>,
    /// When `start` ran: connection failures before the first success within
    /// [`FIRST_CONNECT_GRACE`] of it are logged at DEBUG only.
    started_at: Instant,
    /// A connection has succeeded since start.
    ever_connected: bool,
    /// Delivered batches whose take commits are still running, oldest first (see *Commit
    /// behind*).
    committing: std::collections::VecDeque<PendingCommit>,
}

/// How long after `start` connection failures stay quiet (DEBUG, and `process` backs off
/// instead of failing) while no connection has succeeded yet: the downstream may be starting at
/// the same moment. A target still down after this is reported at WARN/ERROR as usual.
pub const FIRST_CONNECT_GRACE: Duration = Duration::from_secs(10);

/// A delivered batch's take commit, running on the runtime's blocking pool.
struct PendingCommit {
    events: u64,
    done: tokio::task::JoinHandle<Result<(), ChannelError>>,
}

impl std::fmt::Debug for AvroSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroSink")
            .field("name", &self.name)
            .field("hosts", &self.cfg.client.hosts)
            .field("connected", &self.client.is_some())
            .finish()
    }
}

impl AvroSink {
    /// Builds the sink from its settings (see [`AvroSinkConfig::from_context`]). `runtime` runs
    /// the connections; `process` blocks on it from the caller's (non-runtime) thread.
    pub fn from_context(
        name: &str,
        ctx: &Context,
        props: &SystemProps,
        channel: Arc<dyn Channel>,
        runtime: tokio::runtime::Handle,
    ) -> Result<AvroSink, ConfigError> {
        let cfg = AvroSinkConfig::from_context(ctx, props)?;
        Ok(AvroSink::new(name, cfg, channel, runtime))
    }

    /// Builds the sink from a ready configuration.
    pub fn new(
        name: &str,
        cfg: AvroSinkConfig,
        channel: Arc<dyn Channel>,
        runtime: tokio::runtime::Handle,
    ) -> AvroSink {
        AvroSink {
            name: name.to_string(),
            cfg,
            channel,
            runtime,
            counter: Arc::new(SinkCounter::new(name)),
            client: None,
            clock: Clock::system(),
            connected_at: Instant::now(),
            connect_failures: 0,
            next_connect: None,
            last_connect_error: None,
            started_at: Instant::now(),
            ever_connected: false,
            committing: std::collections::VecDeque::new(),
        }
    }

    /// Reads `reset-connection-interval`, the reconnect backoff and the load-balancing client's
    /// host backoff from `clock` instead of the system's monotonic clock (call before `start`).
    pub fn with_clock(mut self, clock: Clock) -> AvroSink {
        self.connected_at = clock.now();
        self.clock = clock;
        self
    }

    /// The settings in force.
    pub fn config(&self) -> &AvroSinkConfig {
        &self.cfg
    }

    /// True while a client is held (it may still turn out dead on the next call).
    pub fn is_connected(&self) -> bool {
        self.client.as_ref().is_some_and(RpcClient::is_active)
    }

    /// True while connection failures are expected and kept quiet: no connection has
    /// succeeded yet and [`FIRST_CONNECT_GRACE`] has not passed since start (the target may be
    /// an agent starting at the same time).
    fn in_first_connect_grace(&self) -> bool {
        !self.ever_connected && self.started_at.elapsed() < FIRST_CONNECT_GRACE
    }

    fn delivery(&self, message: String) -> SinkError {
        SinkError::Delivery {
            sink: self.name.clone(),
            message,
        }
    }

    /// Starts committing a delivered batch in the background, first waiting for the oldest
    /// commit in flight when [`COMMITS_IN_FLIGHT`] are already running.
    fn commit_behind(&mut self, batch: TakeBatch) -> Result<(), SinkError> {
        let mut result = self.reap_commits(false);
        if self.committing.len() >= COMMITS_IN_FLIGHT {
            result = result.and(self.finish_oldest_commit());
        }
        let events = batch.len() as u64;
        let done = self.runtime.spawn_blocking(move || batch.commit());
        self.committing.push_back(PendingCommit { events, done });
        result
    }

    /// Collects the commits that have finished (all of them, waiting, when `wait`); returns the
    /// first failure.
    fn reap_commits(&mut self, wait: bool) -> Result<(), SinkError> {
        let mut result = Ok(());
        while self
            .committing
            .front()
            .is_some_and(|p| wait || p.done.is_finished())
        {
            result = result.and(self.finish_oldest_commit());
        }
        result
    }

    /// Waits for all commits in flight.
    fn finish_commit(&mut self) -> Result<(), SinkError> {
        self.reap_commits(true)
    }

    /// Waits for the oldest commit in flight; counts its events as drained once committed.
    fn finish_oldest_commit(&mut self) -> Result<(), SinkError> {
        let Some(p) = self.committing.pop_front() else {
            return Ok(());
        };
        match self.runtime.block_on(p.done) {
            Ok(Ok(())) => {
                SinkCounter::add(&self.counter.event_drain_success, p.events);
                Ok(())
            }
            Ok(Err(e)) => {
                tracing::error!(sink = %self.name, error = %e, "take commit failed after delivery; the events stay in the channel and will be sent again");
                Err(e.into())
            }
            // The blocking task did not run to the end (runtime shutting down): its batch was
            // dropped, i.e. rolled back, so the events are delivered again later.
            Err(e) => Err(self.delivery(format!("take commit did not finish: {e}"))),
        }
    }

    fn destroy_connection(&mut self) {
        if let Some(mut c) = self.client.take() {
            self.runtime.block_on(c.close());
            SinkCounter::add(&self.counter.connection_closed, 1);
            tracing::debug!(sink = %self.name, "RPC connection closed");
        }
    }

    /// Creates the client if there is none (or it is dead, or due for a reset), honouring the
    /// reconnect backoff.
    fn verify_connection(&mut self) -> Result<(), SinkError> {
        if let (Some(_), Some(every)) = (&self.client, self.cfg.reset_connection_interval) {
            if self.clock.now().duration_since(self.connected_at) >= every {
                tracing::debug!(sink = %self.name, "reset-connection-interval reached; reconnecting");
                self.destroy_connection();
            }
        }
        if self.client.as_ref().is_some_and(|c| !c.is_active()) {
            self.destroy_connection();
        }
        if self.client.is_some() {
            return Ok(());
        }
        if let Some(at) = self.next_connect {
            let now = self.clock.now();
            if now < at {
                return Err(self.delivery(format!(
                    "not connected; next connection attempt in {} ms (last error: {})",
                    (at - now).as_millis(),
                    self.last_connect_error.as_deref().unwrap_or("none")
                )));
            }
        }
        let cfg = self.cfg.client.clone();
        match self.runtime.block_on(RpcClient::connect(&cfg)) {
            Ok(c) => {
                self.client = Some(c.with_clock(self.clock.clone()));
                self.connected_at = self.clock.now();
                self.connect_failures = 0;
                self.next_connect = None;
                self.last_connect_error = None;
                self.ever_connected = true;
                SinkCounter::add(&self.counter.connection_created, 1);
                tracing::info!(sink = %self.name, hosts = %self.hosts_text(), "RPC connection created");
                Ok(())
            }
            Err(e) => {
                SinkCounter::add(&self.counter.connection_failed, 1);
                let wait = self
                    .cfg
                    .reconnect_backoff_initial
                    .saturating_mul(1u32 << self.connect_failures.min(20))
                    .min(self.cfg.reconnect_backoff_max);
                self.connect_failures = self.connect_failures.saturating_add(1);
                self.next_connect = Some(self.clock.now() + wait);
                self.last_connect_error = Some(e.to_string());
                if self.in_first_connect_grace() {
                    tracing::debug!(sink = %self.name, error = %e, retry_in_ms = wait.as_millis() as u64, "RPC connection failed (first-connect grace)");
                } else {
                    tracing::warn!(sink = %self.name, error = %e, retry_in_ms = wait.as_millis() as u64, "RPC connection failed");
                }
                Err(self.delivery(e.to_string()))
            }
        }
    }

    fn hosts_text(&self) -> String {
        self.cfg
            .client
            .hosts
            .iter()
            .map(|h| h.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn send(&mut self, events: &[crate::Event]) -> Result<(), RpcClientError> {
        let Some(client) = self.client.as_mut() else {
            return Err(RpcClientError::NoHosts);
        };
        self.runtime.block_on(client.append_batch(events))
    }
}

impl Sink for AvroSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn start(&mut self) -> Result<(), SinkError> {
        self.counter.start();
        // As Flume: try to connect at start, but a downstream that is not up yet is no error
        // (verify_connection has logged the failure; during the grace at DEBUG).
        self.started_at = Instant::now();
        self.ever_connected = false;
        let _ = self.verify_connection();
        Ok(())
    }

    fn process(&mut self) -> Result<SinkStatus, SinkError> {
        if let Err(e) = self.verify_connection() {
            self.finish_commit()?;
            if self.in_first_connect_grace() {
                // Not yet an error: the runner backs off quietly and the next call retries.
                return Ok(SinkStatus::Backoff);
            }
            return Err(e);
        }
        // Wait briefly on the channel for the first event rather than reporting Backoff at
        // once: a Backoff puts the runner to sleep for a second or more, which would stall a
        // hop whose channel is only momentarily empty.
        let batch = match self
            .channel
            .take_batch(self.cfg.batch_size, super::batch::TAKE_WAIT)
        {
            Ok(b) => b,
            Err(e) => {
                self.finish_commit()?;
                SinkCounter::add(&self.counter.channel_read_fail, 1);
                tracing::error!(sink = %self.name, error = %e, "unable to take events from the channel");
                return Ok(SinkStatus::Backoff);
            }
        };
        let n = batch.len();
        if n == 0 {
            self.finish_commit()?;
            SinkCounter::add(&self.counter.batch_empty, 1);
            return Ok(SinkStatus::Backoff);
        }
        if n < self.cfg.batch_size {
            SinkCounter::add(&self.counter.batch_underflow, 1);
        } else {
            SinkCounter::add(&self.counter.batch_complete, 1);
        }
        SinkCounter::add(&self.counter.event_drain_attempt, n as u64);
        match self.send(batch.events()) {
            Ok(()) => {
                self.commit_behind(batch)?;
                Ok(SinkStatus::Ready)
            }
            Err(e) => {
                batch.rollback();
                SinkCounter::add(&self.counter.event_write_fail, 1);
                self.destroy_connection();
                self.finish_commit()?;
                Err(self.delivery(format!("failed to send {n} events: {e}")))
            }
        }
    }

    fn stop(&mut self) {
        if let Err(e) = self.finish_commit() {
            tracing::warn!(sink = %self.name, error = %e, "last take commit failed at stop");
        }
        self.destroy_connection();
        self.counter.stop();
    }

    fn counter(&self) -> Arc<SinkCounter> {
        self.counter.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::memory::{MemoryChannel, MemoryChannelConfig};

    /// The connect error names the target and the OS cause exactly once, in the error the
    /// runner logs and in the "not connected" message of the next attempt.
    #[test]
    fn connect_error_prints_each_cause_once() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        }; // closed again: connecting is refused
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let channel = Arc::new(MemoryChannel::new("c", MemoryChannelConfig::default()));
        let p = port.to_string();
        let ctx = Context::from_pairs("a.sinks.k", [("hostname", "127.0.0.1"), ("port", &p)]);
        let mut sink =
            AvroSink::from_context("k", &ctx, &SystemProps::new(), channel, rt.handle().clone())
                .unwrap();
        let target = format!("127.0.0.1:{port}");
        let text = sink.verify_connection().unwrap_err().to_string();
        assert_eq!(text.matches(&target).count(), 1, "{text}");
        assert_eq!(text.matches("cannot connect").count(), 1, "{text}");
        assert!(
            text.starts_with(&format!(
                "sink k: delivery failed: cannot connect to {target}: "
            )),
            "{text}"
        );
        let again = sink.verify_connection().unwrap_err().to_string();
        assert_eq!(again.matches("cannot connect").count(), 1, "{again}");
        assert!(again.contains("next connection attempt"), "{again}");
        assert_eq!(again.matches(&target).count(), 1, "{again}");
        // Within the first-connect grace, process backs off instead of failing.
        assert!(matches!(sink.process(), Ok(SinkStatus::Backoff)));
        sink.ever_connected = true;
        assert!(sink.process().is_err());
    }
}
