//! Pluggable stages: how a user (or another module of this crate) adds an operator without
//! touching the crate.
//!
//! * [`Stage`] — stateless, batch to batch: `process(&self, input, out, cx)`. Plug it in with
//!   [`DStream::stage`](super::DStream::stage).
//! * [`StatefulStage`] — keeps state across batches (`&mut self`), and can write it to bytes and
//!   read it back ([`snapshot`](StatefulStage::snapshot) / [`restore`](StatefulStage::restore)).
//!   Plug it in with [`DStream::stateful`](super::DStream::stateful). Windows, keyed state and
//!   event-time operators are stateful stages.
//!
//! # The stateful contract
//!
//! For batch `N` the driver calls `process` once, with the stage's input of batch `N` (in a
//! deterministic order), and the stage appends its output. After every output of the batch is
//! durable the driver calls `snapshot` and persists the bytes with the batch id. If the batch
//! fails (an output error) or the process crashes, the driver calls `restore` with the bytes
//! of the last persisted snapshot and runs the batch again with the same input and the same
//! [`StageContext::batch_time_ms`], so a stage whose `process` is a deterministic function of
//! (state, input, batch time) yields identical outputs. A stage must therefore not read the
//! wall clock; time comes from the context. `restore` of an empty slice means "no snapshot yet:
//! reset to the initial state".
//!
//! The bytes are the stage's own business; [`Persist`] (implemented for numbers, strings,
//! [`Text`], `Vec`, `Option`, tuples and maps) writes and reads them compactly, and a stage may
//! prefix a version number of its own.
//!
//! # What a stage can report
//!
//! Through the [`StageContext`]: late events (`late`), errors by reason (`error`), and, through
//! the trait, the number of keys it holds (`state_keys`) and its watermark (`watermark_ms`),
//! which the driver publishes in the `PIPELINE.<name>` metrics group. Side outputs (late
//! records, say) are ordinary outputs of an enum type split with
//! [`DStream::filter_map`](super::DStream::filter_map).

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash};

use super::metrics::{ErrorReason, PipelineCounter};
use super::text::Text;

/// What keyed operators need of a key: hashable (sharding, combining), ordered (deterministic
/// output order), clonable and sendable between workers.
pub trait Key: Hash + Eq + Ord + Clone + Send + Sync + 'static {}
impl<T: Hash + Eq + Ord + Clone + Send + Sync + 'static> Key for T {}

/// See [`Workers::for_items`].
pub const MIN_ITEMS_PER_WORKER: usize = 16;

/// The worker threads of a pipeline, for sharded work inside a batch.
#[derive(Debug, Clone, Copy)]
pub struct Workers {
    n: usize,
}

impl Workers {
    /// `n` workers (at least 1).
    pub fn new(n: usize) -> Workers {
        Workers { n: n.max(1) }
    }

    /// The workers worth using for `len` items: all of them once every worker gets at least
    /// `MIN_ITEMS_PER_WORKER` (16) items, fewer below that (thread start-up would dominate).
    pub fn for_items(&self, len: usize) -> Workers {
        Workers::new(self.n.min(len / MIN_ITEMS_PER_WORKER))
    }

    /// Number of workers.
    pub fn count(&self) -> usize {
        self.n
    }

    /// Runs `f(0) .. f(n-1)` in parallel (`f(0)` on the calling thread) and returns the results
    /// in index order.
    pub fn run<R: Send, F: Fn(usize) -> R + Sync>(&self, f: F) -> Vec<R> {
        if self.n == 1 {
            return vec![f(0)];
        }
        std::thread::scope(|s| {
            let handles: Vec<_> = (1..self.n)
                .map(|i| {
                    let f = &f;
                    s.spawn(move || f(i))
                })
                .collect();
            let mut out = Vec::with_capacity(self.n);
            out.push(f(0));
            for h in handles {
                match h.join() {
                    Ok(r) => out.push(r),
                    Err(p) => std::panic::resume_unwind(p),
                }
            }
            out
        })
    }

    /// The `i`-th of `n` nearly equal contiguous chunks of `items`.
    pub fn chunk<'a, T>(&self, items: &'a [T], i: usize) -> &'a [T] {
        let len = items.len();
        let (start, end) = (len * i / self.n, len * (i + 1) / self.n);
        &items[start..end]
    }
}

/// What a stage sees of the batch being run, and how it reports.
pub struct StageContext<'a> {
    pub(crate) batch_id: u64,
    pub(crate) batch_time_ms: i64,
    pub(crate) interval_ms: i64,
    pub(crate) workers: Workers,
    pub(crate) counter: &'a PipelineCounter,
}

impl<'a> StageContext<'a> {
    /// A context for running a stage outside a pipeline (tests, benchmarks).
    pub fn detached(
        batch_id: u64,
        batch_time_ms: i64,
        interval_ms: i64,
        workers: usize,
        counter: &'a PipelineCounter,
    ) -> StageContext<'a> {
        StageContext {
            batch_id,
            batch_time_ms,
            interval_ms,
            workers: Workers::new(workers),
            counter,
        }
    }

    /// The batch id (1, 2, ...; stable across retries and restarts).
    pub fn batch_id(&self) -> u64 {
        self.batch_id
    }
    /// The batch time, ms since the epoch (stable across retries and restarts).
    pub fn batch_time_ms(&self) -> i64 {
        self.batch_time_ms
    }
    /// The batch interval in ms.
    pub fn interval_ms(&self) -> i64 {
        self.interval_ms
    }
    /// The pipeline's worker threads.
    pub fn workers(&self) -> Workers {
        self.workers
    }
    /// Counts `n` late events (event time behind the watermark).
    pub fn late(&self, n: u64) {
        self.counter.add_late(n);
    }
    /// Counts `n` bad inputs of `reason`.
    pub fn error(&self, reason: ErrorReason, n: u64) {
        self.counter.add_error(reason, n);
    }
    /// The pipeline's counters.
    pub fn counter(&self) -> &PipelineCounter {
        self.counter
    }
}

/// A stateless user stage (see the module docs).
pub trait Stage: Send + Sync + 'static {
    /// Input element.
    type In: Send + Sync + 'static;
    /// Output element.
    type Out: Send + Sync + 'static;
    /// Name and parameters, for the pipeline fingerprint (`"dedup(field=id)"`).
    fn describe(&self) -> String;
    /// Appends the output for one batch's input to `out`.
    fn process(&self, input: &[Self::In], out: &mut Vec<Self::Out>, cx: &StageContext<'_>);
}

/// A stateful stage (see the module docs for the contract).
pub trait StatefulStage: Send + 'static {
    /// Input element.
    type In: Send + Sync + 'static;
    /// Output element.
    type Out: Send + Sync + 'static;
    /// Name and parameters, for the pipeline fingerprint and the snapshot's stage id
    /// (`"reduce_by_key_and_window(10000ms,1000ms,inverse)"`).
    fn describe(&self) -> String;
    /// Runs one batch: updates the state, appends the output to `out`.
    fn process(&mut self, input: &[Self::In], out: &mut Vec<Self::Out>, cx: &StageContext<'_>);
    /// Writes the whole state to `out`.
    fn snapshot(&self, out: &mut Vec<u8>);
    /// Replaces the state with the one in `bytes` (empty: the initial state).
    fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError>;
    /// Keys currently held (published as `StateKeys`).
    fn state_keys(&self) -> u64 {
        0
    }
    /// The stage's event-time watermark, if it has one (published as `WatermarkLagMs`).
    fn watermark_ms(&self) -> Option<i64> {
        None
    }
}

/// A snapshot blob that does not decode.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Ran out of bytes.
    #[error("snapshot truncated at byte {at} (wanted {wanted} more)")]
    Truncated {
        /// Byte offset into the snapshot where the read started.
        at: usize,
        /// Bytes the value needed beyond the end.
        wanted: usize,
    },
    /// A value is not what its type allows.
    #[error("snapshot invalid at byte {at}: {reason}")]
    Invalid {
        /// Byte offset into the snapshot of the bad value.
        at: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// Reads values written by [`Persist::persist`].
#[derive(Debug)]
pub struct SnapshotReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> SnapshotReader<'a> {
    /// Reads from the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        SnapshotReader { buf, pos: 0 }
    }
    /// True when every byte was read.
    pub fn is_at_end(&self) -> bool {
        self.pos == self.buf.len()
    }
    /// Takes the next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        if self.buf.len() - self.pos < n {
            return Err(SnapshotError::Truncated {
                at: self.pos,
                wanted: n - (self.buf.len() - self.pos),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    /// Reads a value.
    pub fn read<T: Persist>(&mut self) -> Result<T, SnapshotError> {
        T::restore(self)
    }
    /// An `Invalid` error at the current position.
    pub fn invalid(&self, reason: impl Into<String>) -> SnapshotError {
        SnapshotError::Invalid {
            at: self.pos,
            reason: reason.into(),
        }
    }
    fn len(&mut self) -> Result<usize, SnapshotError> {
        let n = u64::restore(self)?;
        if n > (self.buf.len() - self.pos) as u64 * 8 + 1024 {
            return Err(self.invalid(format!("length {n} exceeds the snapshot")));
        }
        Ok(n as usize)
    }
}

/// A compact, versionless binary codec for snapshot contents (little-endian fixed-width
/// numbers, length-prefixed strings and collections). Maps are written in key order, so equal
/// states give equal bytes.
pub trait Persist: Sized {
    /// Appends the encoding of `self`.
    fn persist(&self, out: &mut Vec<u8>);
    /// Reads a value back.
    fn restore(r: &mut SnapshotReader<'_>) -> Result<Self, SnapshotError>;
}

macro_rules! persist_num {
    ($($t:ty),*) => {$(
        impl Persist for $t {
            fn persist(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn restore(r: &mut SnapshotReader<'_>) -> Result<Self, SnapshotError> {
                let b = r.bytes(std::mem::size_of::<$t>())?;
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(b);
                Ok(<$t>::from_le_bytes(a))
            }
        }
    )*};
}
persist_num!(u8, u16, u32, u64, i8, i16, i32, i64, f32, f64, u128, i128);

impl Persist for usize {
    fn persist(&self, out: &mut Vec<u8>) {
        (*self as u64).persist(out)
    }
    fn restore(r: &mut SnapshotReader<'_>) -> Result<Self, SnapshotError> {
        Ok(u64::restore(r)? as usize)
    }
}

impl Persist for bool {
    fn persist(&self, out: &mut Vec<u8>) {
        out.push(*self as u8)
    }
    fn restore(r: &mut SnapshotReader<'_>) -> Result<Self, SnapshotError> {
        match r.bytes(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(r.invalid(format!("bool byte {b}"))),
        }
    }
}

impl Persist for () {
    fn persist(&self, _: &mut Vec<u8>) {}
    fn restore(_: &mut SnapshotReader<'_>) -> Result<Self, SnapshotError> {
        Ok(())
    }
}

impl Persist for String {
    fn persist(&self, out: &mut Vec<u8>) {
        (self.len() as u64).persist(out);
        out.extend_from_slice(self.as_bytes());
    }
    fn restore(r: &mut SnapshotReader<'_>) -> Result<Self, SnapshotError> {
        let n = r.len()?;
        let b = r.bytes(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| r.invalid("string is not UTF-8"))
    }
}

impl Persist for Text {
    fn persist(&self, out: &mut Vec<u8>) {
        (self.len() as u64).persist(out);
        out.extend_from_slice(self.as_bytes());
    }
    fn restore(r: &mut SnapshotReader<'_>) -> Result<Self, SnapshotError> {
        let n = r.len()?;
        let b = r.bytes(n)?;
        Text::from_utf8(b).map_err(|_| r.invalid("text is not UTF-8"))
    }
}

impl<T: Persist> Persist for Option<T> {
    fn persist(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.persist(out);
            }
        }
    }
    fn restore(r: &mut SnapshotReader<'_>) -> Result<Self, SnapshotError> {
        match r.bytes(1)?[0] {
            0 => Ok(None),
            1 => Ok(Some(T::restore(r)?)),
            b => Err(r.invalid(format!("option tag {b}"))),
        }
    }
}

impl<T: Persist> Persist for Vec<T> {
    fn persist(&self, out: &mut Vec<u8>) {
        (self.len() as u64).persist(out);
        for v in self {
            v.persist(out);
        }
    }
    fn restore(r: &mut SnapshotReader<'_>) -> Result<Self, SnapshotError> {
        let n = r.len()?;
        let mut v = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            v.push(T::restore(r)?);
        }
        Ok(v)
    }
}

impl<T: Persist> Persist for std::collections::VecDeque<T> {
    fn persist(&self, out: &mut Vec<u8>) {
        (self.len() as u64).persist(out);
        for v in self {
            v.persist(out);
        }
    }
    fn restore(r: &mut SnapshotReader<'_>) -> Result<Self, SnapshotError> {
        Ok(Vec::<T>::restore(r)?.into())
    }
}

impl<A: Persist, B: Persist> Persist for (A, B) {
    fn persist(&self, out: &mut Vec<u8>) {
        self.0.persist(out);
        self.1.persist(out);
    }
    fn restore(r: &mut SnapshotReader<'_>) -> Result<Self, SnapshotError> {
        Ok((A::restore(r)?, B::restore(r)?))
    }
}

impl<A: Persist, B: Persist, C: Persist> Persist for (A, B, C) {
    fn persist(&self, out: &mut Vec<u8>) {
        self.0.persist(out);
        self.1.persist(out);
        self.2.persist(out);
    }
    fn restore(r: &mut SnapshotReader<'_>) -> Result<Self, SnapshotError> {
        Ok((A::restore(r)?, B::restore(r)?, C::restore(r)?))
    }
}

impl<K: Persist + Ord, V: Persist> Persist for BTreeMap<K, V> {
    fn persist(&self, out: &mut Vec<u8>) {
        (self.len() as u64).persist(out);
        for (k, v) in self {
            k.persist(out);
            v.persist(out);
        }
    }
    fn restore(r: &mut SnapshotReader<'_>) -> Result<Self, SnapshotError> {
        let n = r.len()?;
        let mut m = BTreeMap::new();
        for _ in 0..n {
            let k = K::restore(r)?;
            m.insert(k, V::restore(r)?);
        }
        Ok(m)
    }
}

impl<K: Persist + Ord + Hash + Eq, V: Persist, S: BuildHasher + Default> Persist
    for HashMap<K, V, S>
{
    fn persist(&self, out: &mut Vec<u8>) {
        let mut entries: Vec<(&K, &V)> = self.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        (entries.len() as u64).persist(out);
        for (k, v) in entries {
            k.persist(out);
            v.persist(out);
        }
    }
    fn restore(r: &mut SnapshotReader<'_>) -> Result<Self, SnapshotError> {
        let n = r.len()?;
        let mut m = HashMap::with_capacity_and_hasher(n.min(1 << 20), S::default());
        for _ in 0..n {
            let k = K::restore(r)?;
            m.insert(k, V::restore(r)?);
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::FastMap;

    #[test]
    fn persist_round_trips_and_maps_are_canonical() {
        let mut m: FastMap<Text, (u64, Option<i64>)> = FastMap::default();
        for (i, w) in ["b", "a", "c", "a-long-word-longer-than-22-bytes"]
            .iter()
            .enumerate()
        {
            m.insert(
                Text::new(w),
                (i as u64, (i % 2 == 0).then_some(-(i as i64))),
            );
        }
        let mut out = Vec::new();
        m.persist(&mut out);
        let mut r = SnapshotReader::new(&out);
        let back: FastMap<Text, (u64, Option<i64>)> = r.read().unwrap();
        assert!(r.is_at_end());
        assert_eq!(back, m);
        let mut again = Vec::new();
        back.persist(&mut again);
        assert_eq!(again, out, "equal maps give equal bytes");
        assert!(matches!(
            FastMap::<Text, (u64, Option<i64>)>::restore(&mut SnapshotReader::new(
                &out[..out.len() - 1]
            )),
            Err(SnapshotError::Truncated { .. })
        ));
    }

    #[test]
    fn workers_run_every_index_and_chunks_cover_the_input() {
        let w = Workers::new(3);
        assert_eq!(w.run(|i| i * 10), vec![0, 10, 20]);
        let items: Vec<u32> = (0..10).collect();
        let joined: Vec<u32> = (0..3).flat_map(|i| w.chunk(&items, i).to_vec()).collect();
        assert_eq!(joined, items);
    }
}
