//! The Avro RPC client the Avro sink (and the `avro-client`/`bench` tools) use: the Rust
//! counterpart of the Flume SDK's `RpcClient` family (spec §4.3–§4.5).
//!
//! | type | `client.type` | Flume class |
//! |---|---|---|
//! | [`NettyAvroClient`] | `default` | `NettyAvroRpcClient` |
//! | [`LoadBalancingClient`] | `default_loadbalance` | `LoadBalancingRpcClient` |
//! | [`FailoverClient`] | `default_failover` | `FailoverRpcClient` |
//!
//! [`RpcClient`] is the one type a sink holds: build it with [`RpcClient::connect`] from an
//! [`RpcClientConfig`] (`RpcClientConfig::from_context(&ctx, &props)`), call
//! [`RpcClient::append_batch`], and when a call fails or [`RpcClient::is_active`] is false,
//! [`RpcClient::close`] it and connect a new one — exactly Flume's contract.
//!
//! Every error is an [`RpcClientError`] that names the host and what went wrong; its texts follow
//! Flume's (`Avro RPC call returned Status: FAILED`, `Unable to send batch to any host`, ...).

pub mod config;
pub mod failover;
pub mod loadbalance;
pub mod netty;

use std::time::Duration;

pub use config::{ClientType, HostInfo, HostSelector, RpcClientConfig};
pub use failover::FailoverClient;
pub use loadbalance::LoadBalancingClient;
pub use netty::NettyAvroClient;

use crate::clock::Clock;
use crate::event::Event;
use crate::rpc::transport::TransportError;
use crate::wire::{Status, WireError};

/// Why an RPC failed. After any of these the client that returned it is dead
/// ([`RpcClient::is_active`] may still be true for the multi-host clients, which manage their
/// own connections).
#[derive(Debug, thiserror::Error)]
pub enum RpcClientError {
    /// No usable host was configured.
    #[error("no hosts configured (set hosts and hosts.<alias> = host:port)")]
    NoHosts,
    /// TCP connect, TLS handshake or name resolution failed. The transport error already
    /// names the target, so it is printed alone.
    #[error("{source}")]
    Connect {
        /// `host:port`.
        target: String,
        /// Cause.
        source: TransportError,
    },
    /// The first call (carrying the Avro handshake) got no reply within `connect-timeout`.
    #[error("{target}: Handshake timed out after {after:?} (connect-timeout)")]
    HandshakeTimeout {
        /// `host:port`.
        target: String,
        /// The limit.
        after: Duration,
    },
    /// A call got no reply within `request-timeout`.
    #[error("{target}: RPC request timed out after {after:?} (request-timeout)")]
    RequestTimeout {
        /// `host:port`.
        target: String,
        /// The limit.
        after: Duration,
    },
    /// The source answered with a status other than OK (e.g. its channel is full).
    #[error("{target}: Avro RPC call returned Status: {status}")]
    Status {
        /// `host:port`.
        target: String,
        /// `FAILED` or `UNKNOWN`.
        status: Status,
    },
    /// The source answered with an Avro system error (an exception in its handler).
    #[error("{target}: exception thrown from remote handler: {message}")]
    Remote {
        /// `host:port`.
        target: String,
        /// The error text (Java: `"<class>: <message>"`).
        message: String,
    },
    /// The reply could not be understood (not Flume's protocol, corrupt data).
    #[error("{target}: unusable reply: {source}")]
    Protocol {
        /// `host:port`.
        target: String,
        /// What was wrong.
        source: WireError,
    },
    /// Writing the request failed.
    #[error("{target}: I/O error: {source}")]
    Io {
        /// `host:port`.
        target: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The connection closed (or broke) while the call waited for its reply.
    #[error("{target}: connection lost: {reason}")]
    Closed {
        /// `host:port`.
        target: String,
        /// What happened.
        reason: String,
    },
    /// The client is dead after an earlier failure; close it and connect a new one.
    #[error("{target}: client is no longer active ({reason}); it must be recreated")]
    Inactive {
        /// `host:port`.
        target: String,
        /// Why it died.
        reason: String,
    },
    /// Load balancing: every host failed (or all are backed off).
    #[error("Unable to send batch to any host ({tried} tried{})", last_suffix(.last))]
    AllHostsFailed {
        /// Hosts tried (0 when all were backed off).
        tried: usize,
        /// The last host's error.
        last: Option<Box<RpcClientError>>,
    },
    /// Failover: `max-attempts` sends failed.
    #[error("Failed to send batch. Exceeded maximum number of attempts ({attempts}){}", last_suffix(.last))]
    FailoverExhausted {
        /// `max-attempts`.
        attempts: usize,
        /// The last error.
        last: Option<Box<RpcClientError>>,
    },
    /// Failover: no host accepted a connection.
    #[error("No active client found: no host accepted a connection{}", last_suffix(.last))]
    NoActiveHost {
        /// The last connection error.
        last: Option<Box<RpcClientError>>,
    },
}

fn last_suffix(last: &Option<Box<RpcClientError>>) -> String {
    match last {
        Some(e) => format!("; last error: {e}"),
        None => String::new(),
    }
}

impl RpcClientError {
    /// True for the connection-establishment failures (nothing was sent).
    pub fn is_connect(&self) -> bool {
        match self {
            RpcClientError::Connect { .. } | RpcClientError::NoActiveHost { .. } => true,
            RpcClientError::AllHostsFailed { last, .. } => {
                last.as_ref().is_some_and(|e| e.is_connect())
            }
            _ => false,
        }
    }

    /// True when a reply did not arrive in time.
    pub fn is_timeout(&self) -> bool {
        match self {
            RpcClientError::HandshakeTimeout { .. } | RpcClientError::RequestTimeout { .. } => true,
            RpcClientError::AllHostsFailed { last, .. }
            | RpcClientError::FailoverExhausted { last, .. } => {
                last.as_ref().is_some_and(|e| e.is_timeout())
            }
            _ => false,
        }
    }
}

/// One of the three clients, chosen by `client.type`.
#[derive(Debug)]
pub enum RpcClient {
    /// `default`.
    Default(NettyAvroClient),
    /// `default_loadbalance`.
    LoadBalance(LoadBalancingClient),
    /// `default_failover`.
    Failover(FailoverClient),
}

impl RpcClient {
    /// Builds the client `cfg.client_type` names. The `default` client connects at once (TCP, TLS
    /// within `connect-timeout`), like Flume's; the multi-host clients connect lazily per host.
    pub async fn connect(cfg: &RpcClientConfig) -> Result<RpcClient, RpcClientError> {
        Ok(match cfg.client_type {
            ClientType::Default => RpcClient::Default(NettyAvroClient::connect(cfg).await?),
            ClientType::LoadBalance => {
                RpcClient::LoadBalance(LoadBalancingClient::new(cfg.clone())?)
            }
            ClientType::Failover => RpcClient::Failover(FailoverClient::new(cfg.clone())?),
        })
    }

    /// Reads the load-balancing client's backoff deadlines from `clock` (the other clients keep
    /// no timers of their own; their timeouts run on the tokio runtime).
    pub fn with_clock(self, clock: Clock) -> RpcClient {
        match self {
            RpcClient::LoadBalance(c) => RpcClient::LoadBalance(c.with_clock(clock)),
            other => other,
        }
    }

    /// Delivers `events` (split into `batch-size` RPCs). `Ok` means every event was accepted with
    /// Status OK.
    pub async fn append_batch(&mut self, events: &[Event]) -> Result<(), RpcClientError> {
        match self {
            RpcClient::Default(c) => c.append_batch(events).await,
            RpcClient::LoadBalance(c) => c.append_batch(events).await,
            RpcClient::Failover(c) => c.append_batch(events).await,
        }
    }

    /// Delivers one event with an `append` RPC (the multi-host clients send a batch of one).
    pub async fn append(&mut self, event: &Event) -> Result<(), RpcClientError> {
        match self {
            RpcClient::Default(c) => c.append(event).await,
            RpcClient::LoadBalance(c) => c.append_batch(std::slice::from_ref(event)).await,
            RpcClient::Failover(c) => c.append_batch(std::slice::from_ref(event)).await,
        }
    }

    /// Flume's `isActive`: false once the `default` client failed, or after `close`.
    pub fn is_active(&self) -> bool {
        match self {
            RpcClient::Default(c) => c.is_active(),
            RpcClient::LoadBalance(c) => c.is_active(),
            RpcClient::Failover(c) => c.is_active(),
        }
    }

    /// Most events per RPC.
    pub fn batch_size(&self) -> usize {
        match self {
            RpcClient::Default(c) => c.batch_size(),
            RpcClient::LoadBalance(c) => c.batch_size(),
            RpcClient::Failover(c) => c.batch_size(),
        }
    }

    /// Closes every connection.
    pub async fn close(&mut self) {
        match self {
            RpcClient::Default(c) => c.close().await,
            RpcClient::LoadBalance(c) => c.close().await,
            RpcClient::Failover(c) => c.close().await,
        }
    }
}
