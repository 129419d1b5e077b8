//! The streaming context: configuration, the graph the typed API builds, its fingerprint.
//!
//! Streams are lazy: building one registers a node; nothing runs until
//! [`StreamingContext::build`] turns the context into a [`Pipeline`] and the driver runs
//! batches. Each batch, every output pulls its input stream, which is computed at most once
//! per batch (memoised) however many consumers it has, and released after the batch.
//!
//! The **fingerprint** is the list of operator descriptions in registration order
//! (`#4 reduce_by_key`, `#7 to_jsonl(dir=/out)`, ...); closures cannot be compared, so a
//! changed closure body with the same operator chain is not detected (say so in a stage's
//! `describe` when it matters, e.g. `"map(v2)"` via [`DStream::named`](super::DStream::named)).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::channel::{Channel, TakeBatch};
use crate::event::Event;

use super::clock::{Clock, ClockMode, RealClock};
use super::driver::Pipeline;
use super::fused::Events;
use super::metrics::{ErrorReason, PipelineCounter};
use super::stage::{SnapshotError, StageContext, Workers};
use super::PipelineError;

/// How a pipeline runs.
#[derive(Clone)]
pub struct PipelineConfig {
    /// The batch interval (Spark's `batchDuration`). Default 1 s.
    pub batch_interval: Duration,
    /// Worker threads for keyed work; 0 = one per core. Default 0.
    pub workers: usize,
    /// Where the plan and state snapshots live. `None`: no checkpoint (state is lost on a
    /// restart, and a crash may repeat a batch's outputs).
    pub checkpoint_dir: Option<PathBuf>,
    /// The clock (default: the system clock).
    pub clock: Arc<dyn Clock>,
    /// How batch times are assigned (default: processing time).
    pub mode: ClockMode,
    /// Cap on events per batch below the channel's `transactionCapacity`.
    pub max_batch_events: Option<usize>,
    /// Start over (delete the old state) when the stored definition differs.
    pub discard_state_on_change: bool,
    /// Where bad events (non-UTF-8 under a text operator, user-function panics) go, with the
    /// header `sluicegate.error = <reason>`; `None`: they are only counted and skipped.
    pub side_output: Option<Arc<dyn Channel>>,
    /// First retry delay after an output error (doubles per attempt). Default 100 ms.
    pub retry_initial: Duration,
    /// Longest retry delay. Default 30 s.
    pub retry_max: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            batch_interval: Duration::from_secs(1),
            workers: 0,
            checkpoint_dir: None,
            clock: Arc::new(RealClock),
            mode: ClockMode::Processing,
            max_batch_events: None,
            discard_state_on_change: false,
            side_output: None,
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for PipelineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineConfig")
            .field("batch_interval", &self.batch_interval)
            .field("workers", &self.workers)
            .field("checkpoint_dir", &self.checkpoint_dir)
            .field("mode", &self.mode)
            .field("max_batch_events", &self.max_batch_events)
            .field("discard_state_on_change", &self.discard_state_on_change)
            .finish()
    }
}

impl PipelineConfig {
    /// Default settings with `interval`.
    pub fn with_interval(interval: Duration) -> PipelineConfig {
        PipelineConfig {
            batch_interval: interval,
            ..Default::default()
        }
    }

    pub(crate) fn worker_count(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }
    }
}

/// Everything one batch evaluation sees (internal).
/// Bytes of events a batch scan reads between two [`BatchEnv::release`] hints.
pub(crate) const RELEASE_STEP: usize = 4 << 20;

/// Follows a scan over a contiguous run of a batch's events and releases the pages it has passed
/// every [`RELEASE_STEP`] bytes ([`BatchEnv::release`]).
pub(crate) struct Releaser<'e, 'a> {
    env: &'e BatchEnv<'a>,
    from: usize,
    bytes: usize,
}

impl<'e, 'a> Releaser<'e, 'a> {
    /// A releaser for a scan starting at event index `from`.
    pub fn new(env: &'e BatchEnv<'a>, from: usize) -> Self {
        Releaser {
            env,
            from,
            bytes: 0,
        }
    }

    /// The scan has finished with the event at index `at` (of `len` encoded bytes).
    #[inline]
    pub fn passed(&mut self, at: usize, len: usize) {
        self.bytes += len;
        if self.bytes >= RELEASE_STEP {
            self.env.release(self.from..at + 1);
            self.from = at + 1;
            self.bytes = 0;
        }
    }

    /// The scan has finished with every event before index `end`.
    pub fn finish(self, end: usize) {
        if end > self.from {
            self.env.release(self.from..end);
        }
    }
}

pub(crate) struct BatchEnv<'a> {
    pub batch_id: u64,
    pub batch_time_ms: i64,
    pub interval_ms: i64,
    pub events: &'a [Event],
    /// The take holding `events`, for [`BatchEnv::release`] (`None`: not over a take).
    pub take: Option<&'a TakeBatch>,
    pub workers: Workers,
    pub counter: &'a PipelineCounter,
    /// Indices of bad events and why (deduplicated when the side output is written).
    pub bad: Mutex<Vec<(usize, ErrorReason)>>,
}

impl<'a> BatchEnv<'a> {
    pub fn stage_ctx(&self) -> StageContext<'a> {
        StageContext {
            batch_id: self.batch_id,
            batch_time_ms: self.batch_time_ms,
            interval_ms: self.interval_ms,
            workers: self.workers,
            counter: self.counter,
        }
    }

    /// Tells the channel that a scan has passed `events[range]` (see
    /// [`TakeBatch::release_pages`]: the file channel drops their mapped pages from the resident
    /// set; reading them again stays correct). A scan over the whole batch calls this every
    /// [`RELEASE_STEP`] bytes behind itself, so a large batch is never resident at once.
    pub fn release(&self, range: std::ops::Range<usize>) {
        if let Some(t) = self.take {
            t.release_pages(range);
        }
    }

    pub fn mark_bad(&self, items: impl IntoIterator<Item = (usize, ErrorReason)>) {
        let mut g = self.bad.lock().unwrap_or_else(|e| e.into_inner());
        for (i, r) in items {
            self.counter.add_error(r, 1);
            g.push((i, r));
        }
    }
}

type Compute<T> = Box<dyn Fn(&BatchEnv<'_>) -> Arc<Vec<T>> + Send + Sync>;

/// A per-batch computed stream node, memoised for the batch.
pub(crate) struct Node<T> {
    compute: Compute<T>,
    memo: Mutex<Option<Arc<Vec<T>>>>,
}

impl<T: Send + Sync + 'static> Node<T> {
    pub fn new(f: impl Fn(&BatchEnv<'_>) -> Arc<Vec<T>> + Send + Sync + 'static) -> Node<T> {
        Node {
            compute: Box::new(f),
            memo: Mutex::new(None),
        }
    }

    /// The batch's value, computed on first use.
    pub fn get(&self, env: &BatchEnv<'_>) -> Arc<Vec<T>> {
        let mut g = self.memo.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = &*g {
            return v.clone();
        }
        let v = (self.compute)(env);
        *g = Some(v.clone());
        v
    }
}

/// Something holding per-batch memory to drop after a batch.
pub(crate) trait Clearable: Send + Sync {
    fn clear(&self);
}

impl<T: Send + Sync> Clearable for Node<T> {
    fn clear(&self) {
        *self.memo.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// An output operation (internal side of print, files, channels...).
pub(crate) trait OutputOp: Send + Sync {
    /// Computes its input and makes its effect durable; returns the records written.
    fn run(&self, env: &BatchEnv<'_>) -> Result<u64, String>;
}

/// The type-erased handle of a stateful node (snapshot/restore plumbing).
pub(crate) trait StatefulHandle: Send + Sync {
    fn id(&self) -> &str;
    fn snapshot(&self) -> Vec<u8>;
    fn restore(&self, bytes: &[u8]) -> Result<(), SnapshotError>;
    /// Restores the bytes of the last persisted (or restored) snapshot.
    fn restore_last_good(&self) -> Result<(), SnapshotError>;
    fn state_keys(&self) -> u64;
    fn watermark_ms(&self) -> Option<i64>;
}

pub(crate) struct Graph {
    pub fingerprint: Vec<String>,
    pub outputs: Vec<(String, Box<dyn OutputOp>)>,
    pub stateful: Vec<Arc<dyn StatefulHandle>>,
    pub memos: Vec<Arc<dyn Clearable>>,
}

pub(crate) struct CtxInner {
    pub name: String,
    pub channel: Arc<dyn Channel>,
    pub config: PipelineConfig,
    pub counter: Arc<PipelineCounter>,
    pub graph: Mutex<Graph>,
}

/// A pipeline under construction: a name, a channel, a batch interval, and the streams built on
/// it. Cheap to clone (shared).
#[derive(Clone)]
pub struct StreamingContext {
    pub(crate) inner: Arc<CtxInner>,
}

impl StreamingContext {
    /// A context named `name` (the metrics group is `PIPELINE.<name>`, channel outputs tag
    /// batches with it) reading `channel`.
    pub fn new(
        name: impl Into<String>,
        channel: Arc<dyn Channel>,
        config: PipelineConfig,
    ) -> StreamingContext {
        let name = name.into();
        StreamingContext {
            inner: Arc::new(CtxInner {
                counter: Arc::new(PipelineCounter::new(name.clone())),
                name,
                channel,
                config,
                graph: Mutex::new(Graph {
                    fingerprint: Vec::new(),
                    outputs: Vec::new(),
                    stateful: Vec::new(),
                    memos: Vec::new(),
                }),
            }),
        }
    }

    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The configuration.
    pub fn config(&self) -> &PipelineConfig {
        &self.inner.config
    }

    /// The metrics group (register it with the agent's registry).
    pub fn counter(&self) -> Arc<PipelineCounter> {
        self.inner.counter.clone()
    }

    /// The events of each batch, borrowed from the take transaction.
    pub fn events(&self) -> Events {
        Events::new(self.clone())
    }

    /// Checks the graph and opens the checkpoint (recovering from it) — see [`Pipeline`].
    pub fn build(self) -> Result<Pipeline, PipelineError> {
        Pipeline::open(self)
    }

    pub(crate) fn graph(&self) -> MutexGuard<'_, Graph> {
        self.inner.graph.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an operator in the fingerprint; returns its id (`#n desc`).
    pub(crate) fn describe(&self, desc: impl Into<String>) -> String {
        let mut g = self.graph();
        let id = format!("#{} {}", g.fingerprint.len() + 1, desc.into());
        g.fingerprint.push(id.clone());
        id
    }

    pub(crate) fn add_node<T: Send + Sync + 'static>(&self, node: Node<T>) -> Arc<Node<T>> {
        let n = Arc::new(node);
        self.graph().memos.push(n.clone());
        n
    }

    pub(crate) fn add_output(&self, desc: String, op: Box<dyn OutputOp>) {
        let id = self.describe(desc);
        self.graph().outputs.push((id, op));
    }

    pub(crate) fn add_stateful(&self, h: Arc<dyn StatefulHandle>) {
        self.graph().stateful.push(h);
    }
}
