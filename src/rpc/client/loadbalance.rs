//! [`LoadBalancingClient`] (`client.type = default_loadbalance`), Flume's
//! `LoadBalancingRpcClient` with its `OrderSelector` (spec §4.4).
//!
//! * One [`NettyAvroClient`] per host, created lazily and recreated when dead.
//! * Each batch tries the hosts in the selector's order (`round_robin`: one further on each
//!   batch; `random`: shuffled) until one accepts it; every failure is reported to the selector;
//!   if all fail: "Unable to send batch to any host".
//! * `backoff = true`: a failed host is skipped until `now + min(maxBackoff, 1000 ms × 2^n)`, where
//!   `n` counts sequential failures (incremented when the previous failure was less than the last
//!   backoff + 1 hour ago, capped at 16; otherwise reset to 1 — so the first backoff is 2 s).
//!   When every host is backed off, the batch fails at once without a connection attempt.
//!   Backoff deadlines are read from a [`Clock`] (the system's monotonic clock unless
//!   [`LoadBalancingClient::with_clock`] says otherwise), so tests step across them.

use std::time::{Duration, Instant};

use rand::seq::SliceRandom;

use super::config::{HostSelector, RpcClientConfig};
use super::netty::NettyAvroClient;
use super::RpcClientError;
use crate::clock::Clock;
use crate::event::Event;

/// `OrderSelector.EXP_BACKOFF_COUNTER_LIMIT`.
const EXP_BACKOFF_COUNTER_LIMIT: u32 = 16;
/// `OrderSelector.CONSIDER_SEQUENTIAL_RANGE` (1 hour).
const CONSIDER_SEQUENTIAL_RANGE: Duration = Duration::from_secs(3600);

#[derive(Debug, Default, Clone, Copy)]
struct FailureState {
    last_fail: Option<Instant>,
    restore_time: Option<Instant>,
    sequential_fails: u32,
}

fn backoff_for(max: Duration, fails: u32) -> Duration {
    Duration::from_millis(1000u64 << fails.min(EXP_BACKOFF_COUNTER_LIMIT)).min(max)
}

/// Spreads batches over several hosts; see the module docs.
#[derive(Debug)]
pub struct LoadBalancingClient {
    cfg: RpcClientConfig,
    clients: Vec<Option<NettyAvroClient>>,
    states: Vec<FailureState>,
    next_head: usize,
    open: bool,
    /// Where backoff deadlines are read from.
    clock: Clock,
}

impl LoadBalancingClient {
    /// A client over `cfg.hosts` (at least two); nothing is connected yet.
    pub fn new(cfg: RpcClientConfig) -> Result<LoadBalancingClient, RpcClientError> {
        if cfg.hosts.len() < 2 {
            return Err(RpcClientError::NoHosts);
        }
        let n = cfg.hosts.len();
        Ok(LoadBalancingClient {
            cfg,
            clients: (0..n).map(|_| None).collect(),
            states: vec![FailureState::default(); n],
            next_head: 0,
            open: true,
            clock: Clock::system(),
        })
    }

    /// Reads backoff deadlines from `clock` instead of the system's monotonic clock.
    pub fn with_clock(mut self, clock: Clock) -> LoadBalancingClient {
        self.clock = clock;
        self
    }

    /// Most events per RPC.
    pub fn batch_size(&self) -> usize {
        self.cfg.batch_size
    }

    /// True until closed (as Flume's).
    pub fn is_active(&self) -> bool {
        self.open
    }

    /// The host indices to try for the next batch, in order (Flume's `createHostIterator`).
    fn order(&mut self) -> Vec<usize> {
        let now = self.clock.now();
        let active: Vec<usize> = (0..self.cfg.hosts.len())
            .filter(|&i| !self.cfg.backoff || self.states[i].restore_time.is_none_or(|t| t < now))
            .collect();
        match self.cfg.selector {
            HostSelector::RoundRobin => {
                let size = active.len();
                if size == 0 {
                    return active;
                }
                if self.next_head >= size {
                    self.next_head = 0;
                }
                let begin = self.next_head;
                self.next_head = (self.next_head + 1) % size;
                (0..size).map(|i| active[(begin + i) % size]).collect()
            }
            HostSelector::Random => {
                let mut a = active;
                a.shuffle(&mut rand::thread_rng());
                a
            }
        }
    }

    fn inform_failure(&mut self, i: usize) {
        if !self.cfg.backoff {
            return;
        }
        let now = self.clock.now();
        let max = self.cfg.max_backoff;
        let s = &mut self.states[i];
        let last_backoff = backoff_for(max, s.sequential_fails);
        let sequential = s
            .last_fail
            .is_some_and(|lf| now.duration_since(lf) < last_backoff + CONSIDER_SEQUENTIAL_RANGE);
        if sequential {
            if s.sequential_fails < EXP_BACKOFF_COUNTER_LIMIT {
                s.sequential_fails += 1;
            }
        } else {
            s.sequential_fails = 1;
        }
        s.last_fail = Some(now);
        let wait = backoff_for(max, s.sequential_fails);
        s.restore_time = Some(now + wait);
        tracing::info!(host = %self.cfg.hosts[i], backoff_ms = wait.as_millis() as u64, "host backed off");
    }

    async fn client(&mut self, i: usize) -> Result<&NettyAvroClient, RpcClientError> {
        if let Some(c) = &self.clients[i] {
            if !c.is_active() {
                c.close().await;
                self.clients[i] = None;
            }
        }
        if self.clients[i].is_none() {
            let cfg = self.cfg.for_host(&self.cfg.hosts[i]);
            self.clients[i] = Some(NettyAvroClient::connect(&cfg).await?);
        }
        self.clients[i].as_ref().ok_or(RpcClientError::NoHosts)
    }

    /// Sends the batch to the first host (in selector order) that accepts it.
    pub async fn append_batch(&mut self, events: &[Event]) -> Result<(), RpcClientError> {
        let order = self.order();
        let mut tried = 0;
        let mut last = None;
        for i in order {
            tried += 1;
            let res = match self.client(i).await {
                Ok(c) => c.append_batch(events).await,
                Err(e) => Err(e),
            };
            match res {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!(host = %self.cfg.hosts[i], error = %e, "failed to send batch to host");
                    self.inform_failure(i);
                    last = Some(Box::new(e));
                }
            }
        }
        Err(RpcClientError::AllHostsFailed { tried, last })
    }

    /// Closes every connection.
    pub async fn close(&mut self) {
        self.open = false;
        for c in self.clients.iter_mut() {
            if let Some(c) = c.take() {
                c.close().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_formula_is_flumes() {
        let max = Duration::from_millis(30_000);
        assert_eq!(backoff_for(max, 1), Duration::from_millis(2000));
        assert_eq!(backoff_for(max, 2), Duration::from_millis(4000));
        assert_eq!(backoff_for(max, 4), Duration::from_millis(16000));
        assert_eq!(backoff_for(max, 5), max);
        assert_eq!(backoff_for(max, 40), max);
        assert_eq!(
            backoff_for(Duration::from_millis(500), 1),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn round_robin_and_backoff_skip() {
        let mut cfg = RpcClientConfig::single("127.0.0.1", 1);
        cfg.hosts = (0..3)
            .map(|i| super::super::config::HostInfo::new(format!("h{i}"), "127.0.0.1", 1 + i))
            .collect();
        cfg.backoff = true;
        let time = crate::clock::ManualClock::new();
        let mut lb = LoadBalancingClient::new(cfg)
            .unwrap()
            .with_clock(time.clock());
        assert_eq!(lb.order(), vec![0, 1, 2]);
        assert_eq!(lb.order(), vec![1, 2, 0]);
        assert_eq!(lb.order(), vec![2, 0, 1]);
        lb.inform_failure(1);
        assert_eq!(lb.states[1].sequential_fails, 1);
        let o = lb.order();
        assert_eq!(o.len(), 2);
        assert!(!o.contains(&1));
        // The first backoff is 2 s: still skipped just before it ends, back just after.
        time.advance(Duration::from_millis(1999));
        assert!(!lb.order().contains(&1));
        time.advance(Duration::from_millis(2));
        assert!(lb.order().contains(&1));
        // A failure within backoff + 1 h of the last one counts as sequential: 4 s this time.
        lb.inform_failure(1);
        assert_eq!(lb.states[1].sequential_fails, 2);
        time.advance(Duration::from_millis(3999));
        assert!(!lb.order().contains(&1));
        time.advance(Duration::from_millis(2));
        assert!(lb.order().contains(&1));
        // More than backoff + 1 h later, the count starts over.
        time.advance(Duration::from_secs(3600 + 5));
        lb.inform_failure(1);
        assert_eq!(lb.states[1].sequential_fails, 1);
        lb.inform_failure(1);
        assert_eq!(lb.states[1].sequential_fails, 2);
        lb.inform_failure(0);
        lb.inform_failure(2);
        assert!(lb.order().is_empty());
    }
}
