//! The micro-batch stream processor: Spark-Streaming-style DStreams over a [`Channel`], in
//! process, exactly once across crashes.
//!
//! # What one micro-batch is
//!
//! A pipeline is a [`StreamingContext`] with a batch interval over one `Arc<dyn Channel>`, plus
//! a graph of streams built on it with the typed API ([`Events`] → [`Fused`] → [`DStream`]) and
//! at least one output. Every batch interval (timed by an injected [`Clock`]) the driver runs
//! **one micro-batch**, which is exactly **one take transaction** of at most
//! `transactionCapacity` events:
//!
//! 1. **plan** — open a take (`take_batch(max, 0)`), and persist a *plan* record naming the batch
//!    id, its batch time and the taken events' channel seqs (first, last, count);
//! 2. **run** — evaluate the graph over the taken events, which operators see *borrowed*
//!    (`&Event`, bodies as `&[u8]`/`&str` slices of the channel's mmap);
//! 3. **outputs durable** — every output op of the batch runs in registration order and
//!    returns only once its effect is durable (files: temp + fsync + rename + dir fsync;
//!    channels: put committed);
//! 4. **state persisted** — the snapshot of every stateful stage (windows, keyed state,
//!    watermarks) together with the batch id and the last seq is written to the checkpoint;
//! 5. **take committed** — only now do the events leave the channel.
//!
//! If step 3 fails, the take is rolled back (the events return to the channel front), every
//! stateful stage is restored from the last persisted snapshot, the error is logged with what to
//! do, and the *same* batch (same plan: same events, same batch time) is retried with
//! exponential backoff (100 ms doubling to 30 s). Nothing is lost or skipped.
//!
//! # On-disk layout of the checkpoint (`checkpoint_dir`, all integers little-endian)
//!
//! ```text
//! <checkpoint_dir>/
//!   in_use.lock                      flock'ed while a pipeline runs on the directory
//!   definition                       the pipeline fingerprint, text, one operator per line
//!   plan                             the newest plan (replaced by temp + fsync + rename + dir fsync)
//!   state-<batch id:020>.snap        snapshot after that batch (same atomic replace); the newest
//!                                    two are kept, older ones deleted after a newer one is durable
//! ```
//!
//! `plan` (64 bytes):
//!
//! ```text
//!  0  8  magic "SGPLAN\0\0"      8  4  format version (1)     12  4  flags (bit 0: seqs known)
//! 16  8  batch id               24  8  batch time (ms since the epoch, i64)
//! 32  8  first seq              40  8  last seq              48  8  event count
//! 56  4  zero                   60  4  CRC32C of bytes 0..60
//! ```
//!
//! `state-*.snap`:
//!
//! ```text
//!  0  8  magic "SGSNAP\0\0"      8  4  format version (1)     12  4  flags (bit 0: seqs known)
//! 16  8  batch id               24  8  batch time            32  8  first seq
//! 40  8  last seq               48  8  event count           56  8  fingerprint hash (FNV-1a 64)
//! 64  4  n stages, then n × (u32 name length, name, u64 blob length, blob bytes)
//!  …  4  CRC32C of everything before it
//! ```
//!
//! A stage's blob is whatever its [`StatefulStage::snapshot`] wrote (the [`Persist`] codec helps).
//! Stages are matched by their position-and-description id (`#3 reduce_by_key_and_window(..)`).
//!
//! # Exactly once, case by case
//!
//! Let the last persisted snapshot be batch `S` (last seq `s`), and the persisted plan `P`.
//! A crash may happen at any point of batch `N = S + 1`:
//!
//! * **before the plan is persisted**: nothing of `N` exists anywhere; the take was not committed,
//!   so its events are still in the channel. Restart runs a fresh batch `N`.
//! * **after the plan, during the run or the outputs**: some output files of `N` may exist
//!   (complete — an output is renamed into place only whole — or as hidden temp files). Restart
//!   finds `P.batch_id == S + 1`, takes exactly `P.count` events (the same ones: the take was
//!   not committed, so they are at the channel front in seq order; their seqs are checked against
//!   the plan) and reuses `P`'s batch time, so the outputs are byte-identical and overwrite the
//!   same names. Temp files are overwritten or ignored. Channel outputs may be put twice; every
//!   event carries the header `sluicegate.batch = <pipeline>-<batch id>` for deduplication
//!   (at least once).
//! * **after the outputs, before the snapshot is durable**: as above (the replay rewrites
//!   identical files); a torn snapshot is a temp file, ignored.
//! * **after the snapshot, before the take commit is durable**: restart restores `S = N`; the
//!   channel still holds `N`'s events at its front. Their seqs are `<= s`, so the driver takes
//!   exactly those and commits them without processing.
//! * **after the take commit**: nothing to do; the next batch is `N + 1`.
//!
//! Only the file channel gives seqs (durable and stable across restarts); over the memory
//! channel a crash loses the channel's contents anyway, and the pipeline is at most once for
//! them (documented, not hidden). A restart whose graph fingerprint (operator names and
//! parameters, output specs) differs from the stored `definition` is refused with
//! [`PipelineError::DefinitionChanged`] unless [`PipelineConfig::discard_state_on_change`] is set.
//!
//! With [`ClockMode::Logical`] batch `N`'s time is `start + N × interval` and batches are cut by
//! event count, so a crash test can compare outputs with an uninterrupted run byte for byte.
//!
//! # Bounded resources
//!
//! * A batch never holds more than `transactionCapacity` events (`max_batch_events` may lower it):
//!   the channel bounds the pipeline's input memory. When processing takes longer than the
//!   interval, the next batch starts at once and the scheduling delay (batch start − batch time)
//!   grows visibly in the metrics; events accumulate in the durable channel, which fills and then
//!   back-pressures the source (its puts fail with `ChannelFull`, the sender retries). No queue in
//!   the pipeline grows without bound.
//! * A batch's events are not resident all at once: over the file channel they are slices of
//!   its segment maps, and both the take's own scan and each worker's scan of its chunk (the
//!   fused terminals: `run_chunks`, the word table) release the mapped pages behind them every
//!   4 MiB ([`TakeBatch::release_pages`]). A one-batch word count of 1,000,000 lines (~270 MB)
//!   thus keeps a few MiB of the map resident per worker instead of the whole batch. A second pass over the
//!   same batch (another output) faults the pages back in from the page cache and releases them
//!   again; results never change. What stays per event is its descriptor in the take (an
//!   [`Event`](crate::event::Event) handle, 40 bytes, plus its 8-byte seq).
//! * Intermediate results live for one batch; keyed combiners hold at most one entry per distinct
//!   key per worker. Keyed state (windows, `update_state_by_key`) is bounded by the stage's key
//!   limit and TTL (their module docs).
//!
//! # Bad input (counted per reason in the metrics, the pipeline keeps running)
//!
//! * **`non_utf8`** — a body that is not UTF-8 reaching a text operator ([`Events::words`],
//!   [`Events::split_body`], [`Events::text`]): the event is skipped by that operator and sent to
//!   the side output if one is configured.
//! * **`panic`** — a user function panics: the stateless chain for that worker's chunk is re-run
//!   event by event, each under `catch_unwind`; events whose processing panics are skipped (and
//!   sent to the side output), the others count normally. In a materialised stream operator the
//!   element is skipped. A panicking stateful stage keeps its pre-batch state and its input of
//!   that batch is dropped (counted).
//!
//! # Layering
//!
//! `pipeline` uses `channel`, `event`, `config` and `metrics` only; `agent` wires it into a
//! running topology. Module map:
//!
//! | file | what |
//! |---|---|
//! | `text.rs` | [`Text`] (inline small string), the fast hasher, body splitting |
//! | `fused.rs` | [`Events`], [`Fused`]: the monomorphised stateless chain from `&Event`, sharded |
//! | `stream.rs` | [`DStream`]: materialised per-batch streams and their operators |
//! | `stage.rs` | the pluggable [`Stage`] / [`StatefulStage`] traits, [`StageContext`], [`Persist`] |
//! | `output.rs` | print, text files, JSON Lines, `foreach_batch`, channel output |
//! | `postgres.rs` | SQL result rows upserted into PostgreSQL, one transaction per batch, exactly once |
//! | `context.rs` | [`StreamingContext`], [`PipelineConfig`], the graph and its fingerprint |
//! | `driver.rs` | [`Pipeline`]: the batch loop, recovery, retries; [`PipelineHandle`] |
//! | `checkpoint.rs` | the plan and snapshot files |
//! | `clock.rs` | [`Clock`], [`RealClock`], [`ManualClock`], [`ClockMode`] |
//! | `metrics.rs` | [`PipelineCounter`], the `PIPELINE.<name>` group |
//! | `window.rs`, `state.rs`, `event_time.rs` | windows, keyed state, event time (stateful stages) |
//! | `bench.rs` | the spark-anchor input generator and a one-batch word count, for benchmarks |
//! | `sql/` | the streaming-SQL front end: a `SELECT` compiled onto these operators |
//!
//! [`Channel`]: crate::channel::Channel
//! [`TakeBatch::release_pages`]: crate::channel::TakeBatch::release_pages

pub mod bench;
mod checkpoint;
mod clock;
mod context;
mod driver;
pub mod event_time;
mod fused;
mod metrics;
mod output;
pub mod postgres;
pub mod sql;
mod stage;
pub mod state;
mod stream;
mod text;
pub mod window;
mod words;

pub use clock::{Clock, ClockMode, ManualClock, RealClock, StopSignal};
pub use context::{PipelineConfig, StreamingContext};
pub use driver::{BatchReport, CrashPoint, Pipeline, PipelineHandle};
pub use fused::{EventFn, Events, Fused};
pub use metrics::{ErrorReason, PipelineCounter};
pub use output::{JsonRecord, Render, ToJson};
pub use stage::{
    Key, Persist, SnapshotError, SnapshotReader, Stage, StageContext, StatefulStage, Workers,
};
pub use stream::DStream;
pub use text::{Combiner, FastBuildHasher, FastHasher, FastMap, Text};

/// Why a pipeline could not start, or why a batch failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The graph has no output: nothing would ever be computed.
    #[error("pipeline {pipeline} has no output operation (add print, save_as_text_files, to_jsonl, foreach_batch or to_channel)")]
    NoOutput {
        /// The pipeline's name.
        pipeline: String,
    },
    /// The stored definition differs from this graph.
    #[error(
        "pipeline {pipeline}: the checkpoint in {dir} was written by a different pipeline definition \
         (stored: {stored:?}, now: {now:?}); restore the old definition, point checkpoint_dir \
         elsewhere, or set discard_state_on_change to drop the old state"
    )]
    DefinitionChanged {
        /// The pipeline's name.
        pipeline: String,
        /// The checkpoint directory holding the stored definition.
        dir: String,
        /// The definition text stored in `dir/definition` by the run that wrote the checkpoint.
        stored: String,
        /// The definition text of the graph being started.
        now: String,
    },
    /// The checkpoint directory is in use by another pipeline.
    #[error("pipeline {pipeline}: checkpoint directory {dir} is in use by another process")]
    Locked {
        /// The pipeline's name.
        pipeline: String,
        /// The checkpoint directory whose lock is held.
        dir: String,
    },
    /// A checkpoint file failed validation.
    #[error("pipeline {pipeline}: corrupt checkpoint file {file}: {reason} (move it aside to start from the previous snapshot)")]
    CorruptCheckpoint {
        /// The pipeline's name.
        pipeline: String,
        /// The checkpoint file that failed validation.
        file: String,
        /// What failed to check out, in words.
        reason: String,
    },
    /// A snapshot blob could not be restored by its stage.
    #[error("pipeline {pipeline}: stage {stage} cannot restore its snapshot: {source}")]
    Restore {
        /// The pipeline's name.
        pipeline: String,
        /// The stage whose snapshot blob does not decode.
        stage: String,
        /// Where and why decoding stopped.
        #[source]
        source: SnapshotError,
    },
    /// Checkpoint I/O failed.
    #[error("pipeline {pipeline}: {what}: {source}")]
    Io {
        /// The pipeline's name.
        pipeline: String,
        /// What was being done, with the path.
        what: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The channel refused a take or a commit.
    #[error("pipeline {pipeline}: channel: {source}")]
    Channel {
        /// The pipeline's name.
        pipeline: String,
        /// The channel's own error.
        #[source]
        source: crate::channel::ChannelError,
    },
    /// An output failed; the batch was rolled back and will be retried.
    #[error("pipeline {pipeline}: output {output} failed for batch {batch_id}: {reason} (the batch was rolled back and is retried with backoff; fix the output's target)")]
    Output {
        /// The pipeline's name.
        pipeline: String,
        /// The output operation that failed (its name in the graph).
        output: String,
        /// The failed batch's id, as its checkpoint batch mark records it.
        batch_id: u64,
        /// The output's error, in words.
        reason: String,
    },
    /// A crash injected by a test ([`Pipeline::inject_crash`]).
    #[doc(hidden)]
    #[error("injected crash at {0}")]
    InjectedCrash(String),
    /// After a restart the channel front does not hold the events the plan names.
    #[error("pipeline {pipeline}: replay of batch {batch_id} expected seqs {first}..={last} ({count} events) at the channel front, found {found} (another consumer took from the channel?)")]
    ReplayMismatch {
        /// The pipeline's name.
        pipeline: String,
        /// The batch being replayed, as the checkpoint's plan names it.
        batch_id: u64,
        /// Channel sequence number of the batch's first event.
        first: u64,
        /// Channel sequence number of the batch's last event (inclusive).
        last: u64,
        /// Events the plan says the batch holds.
        count: u64,
        /// What the channel front held instead, described.
        found: String,
    },
}
