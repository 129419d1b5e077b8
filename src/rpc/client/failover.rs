//! [`FailoverClient`] (`client.type = default_failover`), Flume's `FailoverRpcClient`
//! (spec §4.5).
//!
//! * `hosts` is a priority list. One connection is kept; while it works every batch goes to it.
//! * When a batch fails, the connection is closed and the batch is retried on the next host that
//!   accepts a connection, going round the list **cyclically starting after the host last used**
//!   (so after a failover the client does not jump back to the first host by itself; a new client
//!   — e.g. the sink's after it gives up — starts at the first host again).
//! * At most `max-attempts` (default: the number of hosts) sends per batch; then
//!   "Failed to send batch. Exceeded maximum number of attempts". If no host accepts a connection
//!   at all: "No active client found".

use super::config::RpcClientConfig;
use super::netty::NettyAvroClient;
use super::RpcClientError;
use crate::event::Event;

/// Sends to one host at a time, failing over in priority order; see the module docs.
#[derive(Debug)]
pub struct FailoverClient {
    cfg: RpcClientConfig,
    active: Option<(usize, NettyAvroClient)>,
    /// Index of the host last connected to (`None` = Java's `-1`).
    last_checked: Option<usize>,
    open: bool,
}

impl FailoverClient {
    /// A client over `cfg.hosts`; nothing is connected yet.
    pub fn new(cfg: RpcClientConfig) -> Result<FailoverClient, RpcClientError> {
        if cfg.hosts.is_empty() {
            return Err(RpcClientError::NoHosts);
        }
        Ok(FailoverClient {
            cfg,
            active: None,
            last_checked: None,
            open: true,
        })
    }

    /// Most events per RPC.
    pub fn batch_size(&self) -> usize {
        self.cfg.batch_size
    }

    /// True until closed (as Flume's).
    pub fn is_active(&self) -> bool {
        self.open
    }

    /// The alias of the host currently connected, if any.
    pub fn current_host(&self) -> Option<&str> {
        self.active
            .as_ref()
            .map(|(i, _)| self.cfg.hosts[*i].alias.as_str())
    }

    async fn next_client(&mut self) -> Result<(), RpcClientError> {
        let n = self.cfg.hosts.len();
        let start = match self.last_checked {
            Some(i) if i + 1 < n => i + 1,
            _ => 0,
        };
        let mut last = None;
        for k in 0..n {
            let i = (start + k) % n;
            let cfg = self.cfg.for_host(&self.cfg.hosts[i]);
            match NettyAvroClient::connect(&cfg).await {
                Ok(c) => {
                    self.last_checked = Some(i);
                    self.active = Some((i, c));
                    return Ok(());
                }
                Err(e) => {
                    tracing::info!(host = %self.cfg.hosts[i], error = %e, "could not connect");
                    last = Some(Box::new(e));
                }
            }
        }
        self.last_checked = None;
        Err(RpcClientError::NoActiveHost { last })
    }

    /// Sends the batch, failing over as described in the module docs.
    pub async fn append_batch(&mut self, events: &[Event]) -> Result<(), RpcClientError> {
        let mut last = None;
        for _ in 0..self.cfg.max_attempts.max(1) {
            if !self.active.as_ref().is_some_and(|(_, c)| c.is_active()) {
                if let Some((_, c)) = self.active.take() {
                    c.close().await;
                }
                self.next_client().await?;
            }
            let Some((i, c)) = &self.active else {
                continue;
            };
            match c.append_batch(events).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!(host = %self.cfg.hosts[*i], error = %e, "client failed; failing over");
                    if let Some((_, c)) = self.active.take() {
                        c.close().await;
                    }
                    last = Some(Box::new(e));
                }
            }
        }
        Err(RpcClientError::FailoverExhausted {
            attempts: self.cfg.max_attempts.max(1),
            last,
        })
    }

    /// Closes the connection.
    pub async fn close(&mut self) {
        self.open = false;
        if let Some((_, c)) = self.active.take() {
            c.close().await;
        }
    }
}
