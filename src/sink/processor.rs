//! Sink processors (Flume's `SinkProcessor`s): how a sink group's sinks share the work.
//!
//! * `default` — one sink, driven directly (`DefaultSinkProcessor`).
//! * `failover` — the live sink with the highest `processor.priority.<sink>` does the work; a
//!   sink whose `process` fails goes to a penalty list and is retried after
//!   `min(processor.maxpenalty, 1000 ms · 2^failures)` (default cap 30000 ms). A retried sink that
//!   returns `Ready` is live again (and active if it has the highest priority); one that fails
//!   again waits twice as long. Sinks without a priority get -1, -2, ... in list order; a
//!   duplicate priority leaves the later sink out with a warning (Flume's behaviour).
//! * `load_balance` — each `process` goes to the sinks in `processor.selector` order
//!   (`round_robin`, default, or `random`), falling through to the next sink on failure. With
//!   `processor.backoff = true` a failed sink is skipped for `min(processor.selector.maxTimeOut
//!   (30000 ms), 1000 ms · 2^failures)` (Flume's `OrderSelector`).
//!
//! [`sink_processor_from_context`] reads the **sink group's** context (keys `processor.type`,
//! `processor.priority.k1`, ...). Every processor owns its sinks: `start` starts them all, `stop`
//! stops them all.

use std::time::{Duration, Instant};

use rand::seq::SliceRandom;

use super::{Sink, SinkError, SinkStatus};
use crate::clock::Clock;
use crate::component::{ComponentType, SinkProcessorType};
use crate::config::{ConfigError, Context};

/// Drives one or more sinks; what a [`SinkRunner`](super::runner::SinkRunner) calls.
pub trait SinkProcessor: Send + 'static {
    /// Starts every sink.
    fn start(&mut self) -> Result<(), SinkError>;
    /// One round of work (one `process` call on the chosen sink).
    fn process(&mut self) -> Result<SinkStatus, SinkError>;
    /// Stops every sink.
    fn stop(&mut self);
    /// The sinks, in configuration order.
    fn sinks(&self) -> Vec<&dyn Sink>;
    /// The soonest [`Sink::wake_in`] of the sinks: the runner's backoff sleep ends by then.
    fn wake_in(&self) -> Option<std::time::Duration> {
        self.sinks().iter().filter_map(|s| s.wake_in()).min()
    }
}

/// Builds a processor from a sink group's context (`processor.type` = `default`, `failover` or
/// `load_balance`, default `default`, resolved through the registry in [`crate::component`])
/// and the group's sinks in configuration order.
pub fn sink_processor_from_context(
    group: &str,
    group_ctx: &Context,
    sinks: Vec<Box<dyn Sink>>,
) -> Result<Box<dyn SinkProcessor>, ConfigError> {
    let ctx = group_ctx.sub("processor");
    let kind = SinkProcessorType::from_context_or(&ctx, SinkProcessorType::Default)?;
    build_sink_processor(group, kind, &ctx, sinks)
}

/// Builds a processor of an already resolved `kind` from its own context (the keys under
/// `processor.`) and the group's sinks in configuration order.
pub fn build_sink_processor(
    group: &str,
    kind: SinkProcessorType,
    processor_ctx: &Context,
    sinks: Vec<Box<dyn Sink>>,
) -> Result<Box<dyn SinkProcessor>, ConfigError> {
    let ctx = processor_ctx;
    Ok(match kind {
        SinkProcessorType::Default => {
            Box::new(DefaultSinkProcessor::from_context(group, ctx, sinks)?)
        }
        SinkProcessorType::Failover => {
            Box::new(FailoverSinkProcessor::from_context(group, ctx, sinks)?)
        }
        SinkProcessorType::LoadBalance => {
            Box::new(LoadBalancingSinkProcessor::from_context(group, ctx, sinks)?)
        }
    })
}

fn start_all(sinks: &mut [Box<dyn Sink>]) -> Result<(), SinkError> {
    for s in sinks.iter_mut() {
        s.start()?;
    }
    Ok(())
}

fn stop_all(sinks: &mut [Box<dyn Sink>]) {
    for s in sinks.iter_mut() {
        s.stop();
    }
}

/// `default`: exactly one sink.
pub struct DefaultSinkProcessor {
    sink: Box<dyn Sink>,
}

impl DefaultSinkProcessor {
    /// Wraps one sink.
    pub fn new(sink: Box<dyn Sink>) -> DefaultSinkProcessor {
        DefaultSinkProcessor { sink }
    }

    /// Checks there is exactly one sink (`ctx` is the `processor.*` context).
    pub fn from_context(
        group: &str,
        ctx: &Context,
        mut sinks: Vec<Box<dyn Sink>>,
    ) -> Result<DefaultSinkProcessor, ConfigError> {
        if sinks.len() != 1 {
            return Err(ctx.error(
                "type",
                &format!(
                    "sink group {group}: the default processor takes exactly one sink, got {}",
                    sinks.len()
                ),
            ));
        }
        Ok(DefaultSinkProcessor::new(sinks.remove(0)))
    }
}

impl SinkProcessor for DefaultSinkProcessor {
    fn start(&mut self) -> Result<(), SinkError> {
        self.sink.start()
    }
    fn process(&mut self) -> Result<SinkStatus, SinkError> {
        self.sink.process()
    }
    fn stop(&mut self) {
        self.sink.stop()
    }
    fn sinks(&self) -> Vec<&dyn Sink> {
        vec![&*self.sink]
    }
}

const FAILURE_PENALTY: Duration = Duration::from_millis(1000);

struct FailedSink {
    idx: usize,
    refresh: Instant,
    failures: u32,
}

/// `failover`: the highest-priority live sink works; failed sinks are retried after a penalty.
pub struct FailoverSinkProcessor {
    group: String,
    sinks: Vec<Box<dyn Sink>>,
    /// Per sink index: its priority (None = left out).
    priority: Vec<Option<i64>>,
    /// Live sink indices, sorted by priority, highest first.
    live: Vec<usize>,
    failed: Vec<FailedSink>,
    max_penalty: Duration,
    /// What penalties are timed with.
    clock: Clock,
}

impl FailoverSinkProcessor {
    /// Reads `priority.<sink>` and `maxpenalty` (ms) from the `processor.*` context.
    pub fn from_context(
        group: &str,
        ctx: &Context,
        sinks: Vec<Box<dyn Sink>>,
    ) -> Result<FailoverSinkProcessor, ConfigError> {
        if sinks.is_empty() {
            return Err(ctx.error("type", &format!("sink group {group} has no sinks")));
        }
        let max_penalty = ctx.get_millis("maxpenalty", 30_000)?;
        let mut next_auto = 0i64;
        let mut priority = Vec::with_capacity(sinks.len());
        let mut taken: Vec<i64> = Vec::new();
        for s in &sinks {
            let key = format!("priority.{}", s.name());
            let p = match ctx.parse::<i64>(&key, "an integer priority")? {
                Some(p) => p,
                None => {
                    next_auto -= 1;
                    next_auto
                }
            };
            if taken.contains(&p) {
                tracing::warn!(
                    group, sink = s.name(), priority = p,
                    "sink not added to the failover processor: its priority duplicates another sink's"
                );
                priority.push(None);
            } else {
                taken.push(p);
                priority.push(Some(p));
            }
        }
        let mut p = FailoverSinkProcessor {
            group: group.to_string(),
            sinks,
            priority,
            live: Vec::new(),
            failed: Vec::new(),
            max_penalty,
            clock: Clock::system(),
        };
        p.live = (0..p.sinks.len())
            .filter(|&i| p.priority[i].is_some())
            .collect();
        p.sort_live();
        Ok(p)
    }

    /// Times penalties with `clock` instead of the system clock (tests step it).
    pub fn with_clock(mut self, clock: Clock) -> FailoverSinkProcessor {
        self.clock = clock;
        self
    }

    fn sort_live(&mut self) {
        let pr = &self.priority;
        self.live.sort_by(|a, b| pr[*b].cmp(&pr[*a]));
    }

    fn penalty(&self, failures: u32) -> Duration {
        let backoff =
            FAILURE_PENALTY.saturating_mul(1u32.checked_shl(failures).unwrap_or(u32::MAX));
        backoff.min(self.max_penalty)
    }

    /// The name of the sink currently doing the work, if any is live.
    pub fn active_sink(&self) -> Option<&str> {
        self.live.first().map(|&i| self.sinks[i].name())
    }
}

impl SinkProcessor for FailoverSinkProcessor {
    fn start(&mut self) -> Result<(), SinkError> {
        start_all(&mut self.sinks)
    }

    fn process(&mut self) -> Result<SinkStatus, SinkError> {
        // Retry failed sinks whose penalty has passed (earliest refresh first).
        let now = self.clock.now();
        loop {
            let due = self
                .failed
                .iter()
                .enumerate()
                .filter(|(_, f)| f.refresh <= now)
                .min_by_key(|(_, f)| f.refresh)
                .map(|(pos, _)| pos);
            let Some(pos) = due else { break };
            let mut cur = self.failed.swap_remove(pos);
            match self.sinks[cur.idx].process() {
                Ok(SinkStatus::Ready) => {
                    tracing::info!(group = %self.group, sink = self.sinks[cur.idx].name(), "sink recovered from the failover list");
                    self.live.push(cur.idx);
                    self.sort_live();
                    return Ok(SinkStatus::Ready);
                }
                Ok(SinkStatus::Backoff) => {
                    // A backoff is not a failure: keep waiting, no extra penalty.
                    self.failed.push(cur);
                    return Ok(SinkStatus::Backoff);
                }
                Err(e) => {
                    cur.failures = cur.failures.saturating_add(1);
                    cur.refresh = self.clock.now() + self.penalty(cur.failures);
                    tracing::debug!(group = %self.group, sink = self.sinks[cur.idx].name(), error = %e, "sink failed again");
                    self.failed.push(cur);
                }
            }
        }
        while let Some(&idx) = self.live.first() {
            match self.sinks[idx].process() {
                Ok(s) => return Ok(s),
                Err(e) => {
                    tracing::warn!(
                        group = %self.group, sink = self.sinks[idx].name(), error = %e,
                        "sink failed and has been sent to the failover list"
                    );
                    self.live.remove(0);
                    self.failed.push(FailedSink {
                        idx,
                        refresh: self.clock.now() + self.penalty(1),
                        failures: 1,
                    });
                }
            }
        }
        Err(SinkError::Delivery {
            sink: self.group.clone(),
            message: "all sinks failed to process, nothing left to failover to".into(),
        })
    }

    fn stop(&mut self) {
        stop_all(&mut self.sinks)
    }

    fn sinks(&self) -> Vec<&dyn Sink> {
        self.sinks.iter().map(|s| &**s).collect()
    }
}

/// How `load_balance` orders the sinks for each `process`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbSelector {
    /// Rotate the starting sink each call.
    RoundRobin,
    /// A fresh random order each call.
    Random,
}

#[derive(Clone, Copy)]
struct FailureState {
    last_fail: Option<Instant>,
    restore: Option<Instant>,
    sequential: u32,
}

/// `load_balance`: spreads `process` calls over the sinks, falling through on failure.
pub struct LoadBalancingSinkProcessor {
    group: String,
    sinks: Vec<Box<dyn Sink>>,
    selector: LbSelector,
    backoff: bool,
    max_timeout: Duration,
    state: Vec<FailureState>,
    next_head: usize,
}

/// Flume's `OrderSelector.EXP_BACKOFF_COUNTER_LIMIT`.
const EXP_BACKOFF_LIMIT: u32 = 16;
/// Flume's `OrderSelector.CONSIDER_SEQUENTIAL_RANGE`.
const SEQUENTIAL_RANGE: Duration = Duration::from_secs(3600);

impl LoadBalancingSinkProcessor {
    /// Reads `selector`, `backoff`, `selector.maxTimeOut` from the `processor.*` context.
    pub fn from_context(
        group: &str,
        ctx: &Context,
        sinks: Vec<Box<dyn Sink>>,
    ) -> Result<LoadBalancingSinkProcessor, ConfigError> {
        if sinks.len() < 2 {
            return Err(ctx.error(
                "type",
                &format!(
                    "sink group {group}: load_balance needs more than one sink, got {}",
                    sinks.len()
                ),
            ));
        }
        let sel = ctx
            .get_or("selector", "round_robin")
            .trim()
            .to_ascii_lowercase();
        let selector = match sel.as_str() {
            "round_robin" => LbSelector::RoundRobin,
            "random" => LbSelector::Random,
            other => {
                return Err(ctx.error(
                    "selector",
                    &format!("unsupported sink selector '{other}' (use round_robin or random)"),
                ))
            }
        };
        let backoff = ctx.get_bool("backoff", false);
        // Flume: 0 (or unset) keeps the built-in 30 s cap.
        let mut max_timeout = ctx.get_millis("selector.maxTimeOut", 30_000)?;
        if max_timeout.is_zero() {
            max_timeout = Duration::from_millis(30_000);
        }
        let n = sinks.len();
        Ok(LoadBalancingSinkProcessor {
            group: group.to_string(),
            sinks,
            selector,
            backoff,
            max_timeout,
            state: vec![
                FailureState {
                    last_fail: None,
                    restore: None,
                    sequential: 0,
                };
                n
            ],
            next_head: 0,
        })
    }

    fn order(&mut self) -> Vec<usize> {
        let now = Instant::now();
        let active: Vec<usize> = (0..self.sinks.len())
            .filter(|&i| !self.backoff || self.state[i].restore.is_none_or(|r| r < now))
            .collect();
        if active.is_empty() {
            return active;
        }
        match self.selector {
            LbSelector::RoundRobin => {
                let size = active.len();
                if self.next_head >= size {
                    self.next_head = 0;
                }
                let begin = self.next_head;
                self.next_head = (self.next_head + 1) % size;
                (0..size).map(|i| active[(begin + i) % size]).collect()
            }
            LbSelector::Random => {
                let mut v = active;
                v.shuffle(&mut rand::thread_rng());
                v
            }
        }
    }

    fn inform_failure(&mut self, idx: usize) {
        if !self.backoff {
            return;
        }
        let now = Instant::now();
        let max = self.max_timeout;
        let st = &mut self.state[idx];
        let last_len = FAILURE_PENALTY
            .saturating_mul(1u32 << st.sequential.min(EXP_BACKOFF_LIMIT))
            .min(max);
        let sequential = st
            .last_fail
            .is_some_and(|lf| now.duration_since(lf) < last_len + SEQUENTIAL_RANGE);
        if sequential {
            if st.sequential < EXP_BACKOFF_LIMIT {
                st.sequential += 1;
            }
        } else {
            st.sequential = 1;
        }
        st.last_fail = Some(now);
        st.restore = Some(
            now + FAILURE_PENALTY
                .saturating_mul(1u32 << st.sequential)
                .min(max),
        );
    }
}

impl SinkProcessor for LoadBalancingSinkProcessor {
    fn start(&mut self) -> Result<(), SinkError> {
        start_all(&mut self.sinks)
    }

    fn process(&mut self) -> Result<SinkStatus, SinkError> {
        for idx in self.order() {
            match self.sinks[idx].process() {
                Ok(s) => return Ok(s),
                Err(e) => {
                    tracing::warn!(
                        group = %self.group, sink = self.sinks[idx].name(), error = %e,
                        "sink failed to consume events; trying the next sink if available"
                    );
                    self.inform_failure(idx);
                }
            }
        }
        Err(SinkError::Delivery {
            sink: self.group.clone(),
            message: "all configured sinks have failed".into(),
        })
    }

    fn stop(&mut self) {
        stop_all(&mut self.sinks)
    }

    fn sinks(&self) -> Vec<&dyn Sink> {
        self.sinks.iter().map(|s| &**s).collect()
    }
}
