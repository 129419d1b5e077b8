//! The micro-batch driver: one batch = one take transaction; plan → run → outputs durable →
//! state persisted → take committed (see the module docs of [`crate::pipeline`] for the
//! exactly-once argument). [`Pipeline::step`] runs one batch (tests drive it directly with a
//! [`ManualClock`](super::ManualClock)); [`Pipeline::start`] runs the loop on a thread, with
//! retries and backoff, until [`PipelineHandle::stop`].

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::channel::{Channel, TakeBatch};
use crate::event::Event;

use super::checkpoint::{fingerprint_hash, BatchMark, Checkpoint, Snapshot};
use super::clock::{ClockMode, StopSignal};
use super::context::{BatchEnv, Clearable, OutputOp, StatefulHandle, StreamingContext};
use super::metrics::{ErrorReason, PipelineCounter};
use super::stage::Workers;
use super::PipelineError;

/// What one completed batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchReport {
    /// Batch id (1, 2, ...).
    pub batch_id: u64,
    /// Batch time, ms.
    pub batch_time_ms: i64,
    /// Events taken.
    pub events: u64,
    /// Take → commit, ms.
    pub processing_ms: u64,
    /// Start minus batch time, ms (processing-time mode).
    pub scheduling_delay_ms: i64,
    /// Elements written by all outputs.
    pub output_records: u64,
    /// True when this batch replayed a persisted plan (after a failure or a restart).
    pub replayed: bool,
}

/// Where [`Pipeline::inject_crash`] stops a batch (crash tests).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// After the plan is persisted, before any output.
    BeforeOutputs,
    /// After every output is durable, before the snapshot.
    AfterOutputs,
    /// After the snapshot is persisted, before the take commit.
    AfterSnapshot,
}

/// A built pipeline, ready to run batches.
pub struct Pipeline {
    ctx: StreamingContext,
    channel: Arc<dyn Channel>,
    counter: Arc<PipelineCounter>,
    outputs: Vec<(String, Box<dyn OutputOp>)>,
    stateful: Vec<Arc<dyn StatefulHandle>>,
    memos: Vec<Arc<dyn Clearable>>,
    fingerprint: String,
    ckpt: Option<Checkpoint>,
    last: Option<BatchMark>,
    pending: Option<BatchMark>,
    skip_check: bool,
    restarted: bool,
    /// The clock when the pipeline was opened (processing mode: the first batch time is the
    /// latest boundary passed since then, or the next one).
    opened_ms: i64,
    partial_since: Option<i64>,
    stop: Arc<StopSignal>,
    workers: Workers,
    max_events: usize,
    crash: Option<CrashPoint>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("name", &self.ctx.name())
            .field("last", &self.last)
            .field("pending", &self.pending)
            .finish()
    }
}

impl Pipeline {
    pub(crate) fn open(ctx: StreamingContext) -> Result<Pipeline, PipelineError> {
        let name = ctx.name().to_string();
        let (outputs, stateful, memos, fingerprint) = {
            let mut g = ctx.graph();
            (
                std::mem::take(&mut g.outputs),
                g.stateful.clone(),
                g.memos.clone(),
                g.fingerprint.join("\n"),
            )
        };
        if outputs.is_empty() {
            return Err(PipelineError::NoOutput { pipeline: name });
        }
        let cfg = ctx.config().clone();
        let channel = ctx.inner.channel.clone();
        let counter = ctx.counter();
        let mut p = Pipeline {
            max_events: cfg
                .max_batch_events
                .unwrap_or(usize::MAX)
                .min(channel.transaction_capacity())
                .max(1),
            workers: Workers::new(cfg.worker_count()),
            ctx,
            channel,
            counter,
            outputs,
            stateful,
            memos,
            fingerprint,
            ckpt: None,
            last: None,
            pending: None,
            skip_check: false,
            restarted: false,
            opened_ms: cfg.clock.now_ms(),
            partial_since: None,
            stop: Arc::new(StopSignal::new()),
            crash: None,
        };
        for s in &p.stateful {
            s.restore(&[]).map_err(|e| PipelineError::Restore {
                pipeline: name.clone(),
                stage: s.id().to_string(),
                source: e,
            })?;
        }
        if let Some(dir) = &cfg.checkpoint_dir {
            let (ck, snap, plan) =
                Checkpoint::open(dir, &name, &p.fingerprint, cfg.discard_state_on_change)?;
            if let Some(s) = snap {
                for h in &p.stateful {
                    let blob = s
                        .stages
                        .iter()
                        .find(|(id, _)| id == h.id())
                        .map(|(_, b)| b.as_slice())
                        .unwrap_or(&[]);
                    h.restore(blob).map_err(|e| PipelineError::Restore {
                        pipeline: name.clone(),
                        stage: h.id().to_string(),
                        source: e,
                    })?;
                }
                p.last = Some(s.mark);
                p.skip_check = s.mark.seqs_known && s.mark.count > 0;
                p.restarted = true;
            }
            let done = p.last.map(|m| m.batch_id).unwrap_or(0);
            p.pending = plan.filter(|pl| pl.batch_id > done);
            if let Some(pl) = &p.pending {
                tracing::info!(pipeline = %name, batch_id = pl.batch_id, events = pl.count, "replaying the planned batch interrupted by the last stop");
            }
            p.ckpt = Some(ck);
        }
        p.counter.start();
        Ok(p)
    }

    /// The metrics group.
    pub fn counter(&self) -> Arc<PipelineCounter> {
        self.counter.clone()
    }

    /// The pipeline's name.
    pub fn name(&self) -> &str {
        self.ctx.name()
    }

    /// Makes the next batch stop at `at` as if the process died there: the step returns
    /// [`PipelineError::InjectedCrash`] and the take is abandoned uncommitted. Drop the
    /// pipeline (and reopen the channel) afterwards, as after a real crash.
    #[doc(hidden)]
    pub fn inject_crash(&mut self, at: CrashPoint) {
        self.crash = Some(at);
    }

    fn crash_at(&mut self, at: CrashPoint) -> Result<(), PipelineError> {
        if self.crash == Some(at) {
            self.crash = None;
            return Err(PipelineError::InjectedCrash(format!("{at:?}")));
        }
        Ok(())
    }

    /// The id of the last completed batch (0 before the first).
    pub fn last_batch_id(&self) -> u64 {
        self.last.map(|m| m.batch_id).unwrap_or(0)
    }

    /// The stop signal the driver's waits observe (raise it to make a waiting `step` return).
    pub fn stop_signal(&self) -> Arc<StopSignal> {
        self.stop.clone()
    }

    /// Points a stopped pipeline (from [`PipelineHandle::stop`]) at `channel`, which replaced
    /// the one it read (an agent reload reopened it), and readies it for [`Pipeline::start`]:
    /// a fresh stop signal, the metrics restarted. Its state, batch ids and any pending plan
    /// carry over; a pending plan is retaken from `channel` (the same events when it reopens
    /// the same durable directories).
    pub fn rebind_channel(&mut self, channel: Arc<dyn Channel>) {
        let cap = self.ctx.config().max_batch_events.unwrap_or(usize::MAX);
        self.max_events = cap.min(channel.transaction_capacity()).max(1);
        self.channel = channel;
        self.stop = Arc::new(StopSignal::new());
        self.counter.start();
    }

    fn interval_ms(&self) -> i64 {
        (self.ctx.config().batch_interval.as_millis() as i64).max(1)
    }

    fn channel_err(&self, e: crate::channel::ChannelError) -> PipelineError {
        PipelineError::Channel {
            pipeline: self.name().to_string(),
            source: e,
        }
    }

    /// Commits, without processing, the events at the channel front that belong to the last
    /// completed batch (its take commit was lost in a crash).
    fn skip_completed(&mut self) -> Result<(), PipelineError> {
        let Some(last) = self.last else {
            return Ok(());
        };
        if !last.seqs_known || last.count == 0 {
            return Ok(());
        }
        let take = self
            .channel
            .take_batch(last.count as usize, Duration::from_millis(200))
            .map_err(|e| self.channel_err(e))?;
        let Some(seqs) = take.seqs() else {
            take.rollback();
            return Ok(());
        };
        let done = seqs
            .iter()
            .take_while(|&&s| s >= last.first_seq && s <= last.last_seq)
            .count();
        if done == 0 {
            take.rollback();
            return Ok(());
        }
        let take = if done < take.len() {
            take.rollback();
            self.channel
                .take_batch(done, Duration::from_millis(200))
                .map_err(|e| self.channel_err(e))?
        } else {
            take
        };
        let n = take.len() as u64;
        take.commit().map_err(|e| self.channel_err(e))?;
        self.counter
            .skipped_on_recovery
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(pipeline = %self.name(), batch_id = last.batch_id, events = n, "committed the take of a batch completed before the restart");
        Ok(())
    }

    /// Takes exactly the events a persisted plan names.
    fn retake(&self, plan: &BatchMark) -> Result<TakeBatch, PipelineError> {
        if plan.count == 0 {
            return Ok(TakeBatch::empty());
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let take = self
                .channel
                .take_batch(plan.count as usize, Duration::from_millis(100))
                .map_err(|e| self.channel_err(e))?;
            let found = |t: &TakeBatch| match t.seqs() {
                Some(s) if !s.is_empty() => {
                    format!("{} events, seqs {}..={}", s.len(), s[0], s[s.len() - 1])
                }
                _ => format!("{} events", t.len()),
            };
            if take.len() as u64 == plan.count {
                if let (true, Some(s)) = (plan.seqs_known, take.seqs()) {
                    if s[0] != plan.first_seq || s[s.len() - 1] != plan.last_seq {
                        let f = found(&take);
                        take.rollback();
                        return Err(self.mismatch(plan, f));
                    }
                }
                return Ok(take);
            }
            if Instant::now() >= deadline || self.stop.is_stopped() {
                let f = found(&take);
                take.rollback();
                return Err(self.mismatch(plan, f));
            }
            take.rollback();
        }
    }

    fn mismatch(&self, plan: &BatchMark, found: String) -> PipelineError {
        PipelineError::ReplayMismatch {
            pipeline: self.name().to_string(),
            batch_id: plan.batch_id,
            first: plan.first_seq,
            last: plan.last_seq,
            count: plan.count,
            found,
        }
    }

    /// Waits for and opens the next batch's take; `None` when stopped or (logical mode) not
    /// enough input yet.
    fn next_batch(&mut self) -> Result<Option<(BatchMark, TakeBatch)>, PipelineError> {
        let cfg = self.ctx.config().clone();
        let interval = self.interval_ms();
        let batch_id = self.last_batch_id() + 1;
        let (batch_time, take) = match &cfg.mode {
            ClockMode::Processing => {
                let now = cfg.clock.now_ms();
                // On the interval grid: the latest boundary the clock passed since the pipeline
                // was opened is due at once; with none passed yet, the first boundary at or
                // after `now` (waited for).
                let passed = now.div_euclid(interval) * interval;
                let due = if passed > self.opened_ms {
                    passed
                } else {
                    (now + interval - 1).div_euclid(interval) * interval
                };
                let t = match self.last {
                    Some(l) if !self.restarted => l.batch_time + interval,
                    Some(l) => (l.batch_time + interval).max(due),
                    None => due,
                };
                if !cfg.clock.wait_until(t, &self.stop) {
                    return Ok(None);
                }
                let take = self
                    .channel
                    .take_batch(self.max_events, Duration::ZERO)
                    .map_err(|e| self.channel_err(e))?;
                (t, take)
            }
            ClockMode::Logical {
                start_ms,
                events_per_batch,
                flush_after_ms,
            } => {
                let want = (*events_per_batch).min(self.max_events).max(1);
                let take = self
                    .channel
                    .take_batch(want, Duration::from_millis(50))
                    .map_err(|e| self.channel_err(e))?;
                if take.is_empty() {
                    return Ok(None);
                }
                if take.len() < want {
                    let now = cfg.clock.now_ms();
                    let since = *self.partial_since.get_or_insert(now);
                    if now - since < *flush_after_ms {
                        take.rollback();
                        return Ok(None);
                    }
                }
                (start_ms + batch_id as i64 * interval, take)
            }
        };
        self.partial_since = None;
        self.restarted = false;
        let seqs = take.seqs().filter(|s| !s.is_empty());
        let mark = BatchMark {
            batch_id,
            batch_time,
            seqs_known: seqs.is_some(),
            first_seq: seqs.map(|s| s[0]).unwrap_or(0),
            last_seq: seqs.map(|s| s[s.len() - 1]).unwrap_or(0),
            count: take.len() as u64,
        };
        Ok(Some((mark, take)))
    }

    fn clear(&self) {
        for m in &self.memos {
            m.clear();
        }
    }

    fn restore_all(&self) {
        for h in &self.stateful {
            if let Err(e) = h.restore_last_good() {
                tracing::error!(pipeline = %self.name(), stage = %h.id(), error = %e, "cannot restore the stage's last snapshot");
            }
        }
    }

    /// Runs one batch: waits for its time (processing mode), takes, runs, writes outputs,
    /// persists the state, commits. `Ok(None)`: stopped, or (logical mode) no batch ready.
    /// On an output error the batch is rolled back and the same plan is retried by the next
    /// call.
    pub fn step(&mut self) -> Result<Option<BatchReport>, PipelineError> {
        if self.skip_check {
            self.skip_completed()?;
            self.skip_check = false;
        }
        let cfg = self.ctx.config().clone();
        let (mark, take, replayed) = match self.pending {
            Some(plan) => (plan, self.retake(&plan)?, true),
            None => {
                let Some((mark, take)) = self.next_batch()? else {
                    return Ok(None);
                };
                if let Some(ck) = &self.ckpt {
                    if let Err(e) = ck.write_plan(&mark) {
                        take.rollback();
                        return Err(e);
                    }
                }
                self.pending = Some(mark);
                (mark, take, false)
            }
        };
        if let Err(e) = self.crash_at(CrashPoint::BeforeOutputs) {
            std::mem::forget(take);
            return Err(e);
        }
        let started_ms = cfg.clock.now_ms();
        let t0 = Instant::now();
        let sched = if matches!(cfg.mode, ClockMode::Processing) {
            started_ms - mark.batch_time
        } else {
            0
        };
        self.counter
            .scheduling_delay_ms
            .store(sched, std::sync::atomic::Ordering::Relaxed);
        let env = BatchEnv {
            batch_id: mark.batch_id,
            batch_time_ms: mark.batch_time,
            interval_ms: self.interval_ms(),
            events: take.events(),
            take: Some(&take),
            workers: self.workers,
            counter: &self.counter,
            bad: Mutex::new(Vec::new()),
        };
        let mut records = 0u64;
        let mut failure: Option<(String, String)> = None;
        for (id, op) in &self.outputs {
            match catch_unwind(AssertUnwindSafe(|| op.run(&env))) {
                Ok(Ok(n)) => records += n,
                Ok(Err(e)) => {
                    failure = Some((id.clone(), e));
                    break;
                }
                Err(_) => {
                    failure = Some((id.clone(), "the output panicked".into()));
                    break;
                }
            }
        }
        if failure.is_none() {
            if let Err(e) = self.side_output(&env) {
                failure = Some(("side_output".into(), e));
            }
        }
        drop(env);
        self.clear();
        if let Some((output, reason)) = failure {
            take.rollback();
            self.restore_all();
            self.counter.add_error(ErrorReason::Output, 1);
            self.counter
                .batches_retried
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let err = PipelineError::Output {
                pipeline: self.name().to_string(),
                output,
                batch_id: mark.batch_id,
                reason,
            };
            tracing::error!(error = %err, "batch failed");
            return Err(err);
        }
        if let Err(e) = self.crash_at(CrashPoint::AfterOutputs) {
            std::mem::forget(take);
            return Err(e);
        }
        let stages: Vec<(String, Vec<u8>)> = self
            .stateful
            .iter()
            .map(|h| (h.id().to_string(), h.snapshot()))
            .collect();
        if let Some(ck) = &self.ckpt {
            let snap = Snapshot {
                mark,
                fingerprint: fingerprint_hash(&self.fingerprint),
                stages,
            };
            if let Err(e) = ck.write_snapshot(&snap) {
                take.rollback();
                self.restore_all();
                return Err(e);
            }
        }
        if let Err(e) = self.crash_at(CrashPoint::AfterSnapshot) {
            std::mem::forget(take);
            return Err(e);
        }
        let n = take.len() as u64;
        self.last = Some(mark);
        self.pending = None;
        if let Err(e) = take.commit() {
            // The batch is complete (its snapshot is durable); its events went back to the
            // channel and are committed unprocessed by the next step.
            self.skip_check = true;
            tracing::error!(pipeline = %self.name(), batch_id = mark.batch_id, error = %e, "the take commit failed after the batch completed; its events will be skipped on the next batch");
        }
        let took = t0.elapsed().as_millis() as u64;
        self.counter
            .batch_done(mark.batch_id, mark.batch_time, n, took);
        self.counter
            .output_records
            .fetch_add(records, std::sync::atomic::Ordering::Relaxed);
        let keys: u64 = self.stateful.iter().map(|h| h.state_keys()).sum();
        self.counter
            .state_keys
            .store(keys, std::sync::atomic::Ordering::Relaxed);
        let wm = self.stateful.iter().filter_map(|h| h.watermark_ms()).min();
        self.counter.watermark_lag_ms.store(
            wm.map(|w| (mark.batch_time - w).max(0)).unwrap_or(0),
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(Some(BatchReport {
            batch_id: mark.batch_id,
            batch_time_ms: mark.batch_time,
            events: n,
            processing_ms: took,
            scheduling_delay_ms: sched,
            output_records: records,
            replayed,
        }))
    }

    /// Puts the batch's bad events into the side output, if configured.
    fn side_output(&self, env: &BatchEnv<'_>) -> Result<(), String> {
        let Some(side) = &self.ctx.config().side_output else {
            return Ok(());
        };
        let mut bad = std::mem::take(&mut *env.bad.lock().unwrap_or_else(|e| e.into_inner()));
        if bad.is_empty() {
            return Ok(());
        }
        bad.sort_by_key(|(i, _)| *i);
        bad.dedup_by_key(|(i, _)| *i);
        let tag = format!("{}-{}", self.name(), env.batch_id);
        let events: Vec<Event> = bad
            .iter()
            .map(|(i, r)| {
                let e = &env.events[*i];
                let mut h = e.header_map();
                h.push(("sluicegate.error".into(), r.as_str().into()));
                h.push(("sluicegate.batch".into(), tag.clone()));
                e.with_headers(h)
            })
            .collect();
        for chunk in events.chunks(side.transaction_capacity().max(1)) {
            side.put_batch(chunk).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Runs batches on a thread until stopped, retrying failed batches with backoff.
    pub fn start(self) -> PipelineHandle {
        let stop = self.stop.clone();
        let counter = self.counter.clone();
        let name = self.name().to_string();
        let thread = std::thread::Builder::new()
            .name(format!("pipeline-{name}"))
            .spawn(move || run_loop(self))
            .ok();
        PipelineHandle {
            name,
            stop,
            counter,
            thread,
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.counter.stop();
    }
}

fn run_loop(mut p: Pipeline) -> Pipeline {
    let cfg = p.ctx.config().clone();
    let mut delay = cfg.retry_initial;
    while !p.stop.is_stopped() {
        match p.step() {
            Ok(_) => delay = cfg.retry_initial,
            Err(e) => {
                tracing::warn!(pipeline = %p.name(), error = %e, retry_in = ?delay, "retrying the batch");
                let until = cfg.clock.now_ms() + delay.as_millis() as i64;
                if !cfg.clock.wait_until(until, &p.stop) {
                    break;
                }
                delay = (delay * 2).min(cfg.retry_max);
            }
        }
    }
    p.counter.stop();
    p
}

/// A pipeline running on its own thread.
pub struct PipelineHandle {
    name: String,
    stop: Arc<StopSignal>,
    counter: Arc<PipelineCounter>,
    thread: Option<JoinHandle<Pipeline>>,
}

impl std::fmt::Debug for PipelineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineHandle")
            .field("name", &self.name)
            .finish()
    }
}

impl PipelineHandle {
    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The metrics group.
    pub fn counter(&self) -> Arc<PipelineCounter> {
        self.counter.clone()
    }

    /// Stops after the batch in progress (if any) and returns the pipeline.
    pub fn stop(mut self) -> Option<Pipeline> {
        self.stop.stop();
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl Drop for PipelineHandle {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
