//! Windows over batch (processing) time, with DStream semantics: [`DStream::window`],
//! [`DStream::reduce_by_key_and_window`] (and its incremental form with an inverse function,
//! [`DStream::reduce_by_key_and_window_inv`]), [`DStream::count_by_window`] and
//! [`DStream::count_by_value_and_window`] — each a [`StatefulStage`].
//!
//! # Which batches a window holds, and when it is output
//!
//! Window length `len` and slide `slide` are positive multiples of the batch interval `i`
//! (checked when the stream is built; a wrong value panics there, as Spark throws). The stage
//! records its *zero time* `z` = (time of the first batch it sees) − `i`, as Spark's `zeroTime`,
//! and keeps it across restarts. At batch time `t`:
//!
//! * the stage outputs only when `(t − z)` is a multiple of `slide` (other batches output
//!   nothing);
//! * the window at `t` holds the batches whose time lies in `(t − len, t]` — fewer than
//!   `len / i` batches at the start, and fewer after a stop of the pipeline (batch times are
//!   wall-clock multiples, so a restart after a pause skips times; windows are defined on times,
//!   not on batch counts).
//!
//! # State: a ring of per-batch partials
//!
//! Every batch is reduced once, on arrival, to a *partial*: a key-sorted `Vec<(K, V)>` (for
//! `reduce_by_key_and_window`, sharded over the workers with the same combiner as
//! `reduce_by_key`), a count, or the elements themselves (for `window`). The partials of the
//! batches still needed live in a ring `VecDeque<(batch time, partial)>`, oldest first.
//!
//! * **Without an inverse** the output at `t` reduces the partials in `(t − len, t]` in time order
//!   (cost ∝ window length × keys); after every batch the partials at or before `t − len` are
//!   dropped.
//! * **With an inverse** (Spark's `ReducedWindowedDStream`) the stage also keeps `current`, the
//!   window value per key at the last output time `p`. At output time `t`, for each key:
//!   `current = inverse(current, leaving)` for the partials in `(p − len, min(p, t − len)]` and
//!   `current = f(current, entering)` for those in `(max(p, t − len), t]`, then the *keep* filter
//!   (Spark's `filterFunc`) removes the keys it rejects — e.g. `|_, c| *c != 0` for counts. As in
//!   Spark, **without such a filter a key stays in the state with the "zero" value forever**
//!   once it was seen; the filter should reject only values all of whose contributions have left
//!   the window (a leaving partial of a key no longer in `current` is ignored). Cost ∝ keys of
//!   the entering and leaving batches only.
//!
//! Output elements of the keyed windows are sorted by key.
//!
//! # Snapshot (the `Persist` encoding, deterministic bytes)
//!
//! ```text
//! u8 version (1) · Option<i64> zero time · Option<i64> last output time
//! · u64 n · n × (i64 batch time, partial)            the ring, oldest first
//! · map<K, V> current (keys ascending; empty without an inverse)
//! ```
//!
//! A partial is `Vec<(K, V)>` (keys ascending), `u64` (count) or `Vec<T>` (window elements;
//! an [`Event`] is written as its Avro encoding).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::event::Event;

use super::fused::{EventFn, Fused};
use super::stage::{
    Key, Persist, SnapshotError, SnapshotReader, StageContext, StatefulStage, Workers,
};
use super::stream::DStream;
use super::text::FastMap;

const VERSION: u8 = 1;

/// Items per worker below which a per-batch reduction stays on one thread.
const MIN_PARALLEL: usize = 4096;

pub(crate) type Reducer<V> = Arc<dyn Fn(V, V) -> V + Send + Sync>;
type Keep<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;
type PartialFn<In, K, V> = Box<dyn Fn(&[In], Workers) -> Vec<(K, V)> + Send>;

/// The workers worth using for `n` items.
pub(crate) fn workers_for(w: Workers, n: usize) -> Workers {
    if n < MIN_PARALLEL {
        Workers::new(1)
    } else {
        w
    }
}

/// `d` in ms, checked to be a positive multiple of the batch interval.
pub(crate) fn interval_multiple(ctx_interval: Duration, d: Duration, what: &str, op: &str) -> i64 {
    let i = ctx_interval.as_millis() as i64;
    let v = d.as_millis() as i64;
    assert!(
        v > 0 && i > 0 && v % i == 0,
        "{op}: the {what} ({v} ms) must be a positive multiple of the batch interval ({i} ms)"
    );
    v
}

/// Folds `v` into the entry of `k`.
fn combine<K: Key, V: Clone>(m: &mut FastMap<K, V>, k: K, v: V, f: &dyn Fn(V, V) -> V) {
    match m.get_mut(&k) {
        Some(slot) => *slot = f(slot.clone(), v),
        None => {
            m.insert(k, v);
        }
    }
}

/// Merges per-chunk partial maps in chunk order; sorted by key.
fn merge_keyed<K: Key, V: Clone>(parts: Vec<FastMap<K, V>>, f: &dyn Fn(V, V) -> V) -> Vec<(K, V)> {
    let mut it = parts.into_iter();
    let mut first = it.next().unwrap_or_default();
    for m in it {
        for (k, v) in m {
            combine(&mut first, k, v, f);
        }
    }
    let mut out: Vec<(K, V)> = first.into_iter().collect();
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Reduces `items` by key over the workers; sorted by key.
pub(crate) fn reduce_partial<K: Key, V: Clone + Send + Sync>(
    items: &[(K, V)],
    w: Workers,
    f: &(dyn Fn(V, V) -> V + Send + Sync),
) -> Vec<(K, V)> {
    let w = workers_for(w, items.len());
    let parts = w.run(|i| {
        let mut m: FastMap<K, V> = FastMap::default();
        for (k, v) in w.chunk(items, i) {
            match m.get_mut(k) {
                Some(slot) => *slot = f(slot.clone(), v.clone()),
                None => {
                    m.insert(k.clone(), v.clone());
                }
            }
        }
        m
    });
    merge_keyed(parts, &|a, b| f(a, b))
}

/// Counts `items` by value over the workers; sorted by value.
fn count_partial<T: Key>(items: &[T], w: Workers) -> Vec<(T, u64)> {
    let w = workers_for(w, items.len());
    let parts = w.run(|i| {
        let mut m: FastMap<T, u64> = FastMap::default();
        for x in w.chunk(items, i) {
            match m.get_mut(x) {
                Some(c) => *c += 1,
                None => {
                    m.insert(x.clone(), 1);
                }
            }
        }
        m
    });
    merge_keyed(parts, &|a, b| a + b)
}

/// Window timing shared by the stages of this module.
#[derive(Debug, Clone, Copy)]
struct Timing {
    len: i64,
    slide: i64,
    zero: Option<i64>,
}

impl Timing {
    fn new(len: i64, slide: i64) -> Timing {
        Timing {
            len,
            slide,
            zero: None,
        }
    }
    /// Records the zero time on the first batch; true when `t` is an output batch.
    fn arrive(&mut self, cx: &StageContext<'_>) -> bool {
        let t = cx.batch_time_ms();
        let zero = *self.zero.get_or_insert(t - cx.interval_ms());
        (t - zero).rem_euclid(self.slide) == 0
    }
    fn in_window(&self, bt: i64, t: i64) -> bool {
        bt > t - self.len && bt <= t
    }
}

fn drop_before<P>(ring: &mut VecDeque<(i64, P)>, limit: i64) {
    while ring.front().is_some_and(|(bt, _)| *bt <= limit) {
        ring.pop_front();
    }
}

fn persist_ring<P: Persist>(ring: &VecDeque<(i64, P)>, out: &mut Vec<u8>) {
    (ring.len() as u64).persist(out);
    for (bt, p) in ring {
        bt.persist(out);
        p.persist(out);
    }
}

/// The snapshot of a stage whose state is its timing's zero and its ring (`window`,
/// `count_by_window`): the version, the zero, the ring.
fn snapshot_ring<P: Persist>(timing: &Timing, ring: &VecDeque<(i64, P)>, out: &mut Vec<u8>) {
    VERSION.persist(out);
    timing.zero.persist(out);
    persist_ring(ring, out);
}

/// Restores what [`snapshot_ring`] wrote; empty `bytes` is the initial state.
fn restore_ring<P: Persist>(
    timing: &mut Timing,
    ring: &mut VecDeque<(i64, P)>,
    bytes: &[u8],
) -> Result<(), SnapshotError> {
    ring.clear();
    timing.zero = None;
    if bytes.is_empty() {
        return Ok(());
    }
    let mut r = SnapshotReader::new(bytes);
    check_version(&mut r)?;
    timing.zero = r.read()?;
    *ring = r.read()?;
    check_end(&r)
}

fn check_version(r: &mut SnapshotReader<'_>) -> Result<(), SnapshotError> {
    let v: u8 = r.read()?;
    if v != VERSION {
        return Err(r.invalid(format!("window snapshot version {v}, expected {VERSION}")));
    }
    Ok(())
}

fn check_end(r: &SnapshotReader<'_>) -> Result<(), SnapshotError> {
    if !r.is_at_end() {
        return Err(r.invalid("trailing bytes after the window state"));
    }
    Ok(())
}

/// The keyed window stage behind `reduce_by_key_and_window[_inv]` and
/// `count_by_value_and_window` (see the module docs).
struct KeyedWindow<In, K, V> {
    desc: String,
    timing: Timing,
    partial: PartialFn<In, K, V>,
    f: Reducer<V>,
    inverse: Option<(Reducer<V>, Keep<K, V>)>,
    ring: VecDeque<(i64, Vec<(K, V)>)>,
    current: FastMap<K, V>,
    last_out: Option<i64>,
}

impl<In, K, V> StatefulStage for KeyedWindow<In, K, V>
where
    In: Send + Sync + 'static,
    K: Key + Persist,
    V: Clone + Send + Sync + Persist + 'static,
{
    type In = In;
    type Out = (K, V);

    fn describe(&self) -> String {
        self.desc.clone()
    }

    fn process(&mut self, input: &[In], out: &mut Vec<(K, V)>, cx: &StageContext<'_>) {
        let t = cx.batch_time_ms();
        let emit = self.timing.arrive(cx);
        let part = (self.partial)(input, cx.workers());
        self.ring.push_back((t, part));
        let len = self.timing.len;
        if emit {
            let mut res: Vec<(K, V)>;
            match &self.inverse {
                None => {
                    let mut m: FastMap<K, V> = FastMap::default();
                    for (bt, p) in &self.ring {
                        if self.timing.in_window(*bt, t) {
                            for (k, v) in p {
                                combine(&mut m, k.clone(), v.clone(), &|a, b| (self.f)(a, b));
                            }
                        }
                    }
                    res = m.into_iter().collect();
                }
                Some((inv, keep)) => {
                    let lo = t - len;
                    if let Some(p) = self.last_out {
                        let hi = p.min(lo);
                        for (bt, part) in &self.ring {
                            if *bt > p - len && *bt <= hi {
                                for (k, v) in part {
                                    if let Some(c) = self.current.get_mut(k) {
                                        *c = inv(c.clone(), v.clone());
                                    }
                                }
                            }
                        }
                    }
                    let enter_lo = self.last_out.map_or(lo, |p| p.max(lo));
                    for (bt, part) in &self.ring {
                        if *bt > enter_lo && *bt <= t {
                            for (k, v) in part {
                                combine(&mut self.current, k.clone(), v.clone(), &|a, b| {
                                    (self.f)(a, b)
                                });
                            }
                        }
                    }
                    self.current.retain(|k, v| keep(k, v));
                    res = self
                        .current
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                }
            }
            res.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            out.append(&mut res);
            self.last_out = Some(t);
            drop_before(&mut self.ring, t - len);
        } else if self.inverse.is_none() {
            drop_before(&mut self.ring, t - len);
        }
    }

    fn snapshot(&self, out: &mut Vec<u8>) {
        VERSION.persist(out);
        self.timing.zero.persist(out);
        self.last_out.persist(out);
        persist_ring(&self.ring, out);
        self.current.persist(out);
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.ring.clear();
        self.current.clear();
        self.last_out = None;
        self.timing.zero = None;
        if bytes.is_empty() {
            return Ok(());
        }
        let mut r = SnapshotReader::new(bytes);
        check_version(&mut r)?;
        self.timing.zero = r.read()?;
        self.last_out = r.read()?;
        self.ring = r.read()?;
        self.current = r.read()?;
        check_end(&r)
    }

    fn state_keys(&self) -> u64 {
        (self.current.len() + self.ring.iter().map(|(_, p)| p.len()).sum::<usize>()) as u64
    }
}

/// `window(len, slide)`: the elements of the batches in the window.
struct ElementWindow<T> {
    desc: String,
    timing: Timing,
    ring: VecDeque<(i64, Vec<T>)>,
}

impl<T: Clone + Send + Sync + Persist + 'static> StatefulStage for ElementWindow<T> {
    type In = T;
    type Out = T;
    fn describe(&self) -> String {
        self.desc.clone()
    }
    fn process(&mut self, input: &[T], out: &mut Vec<T>, cx: &StageContext<'_>) {
        let t = cx.batch_time_ms();
        let emit = self.timing.arrive(cx);
        self.ring.push_back((t, input.to_vec()));
        if emit {
            for (bt, p) in &self.ring {
                if self.timing.in_window(*bt, t) {
                    out.extend(p.iter().cloned());
                }
            }
        }
        drop_before(&mut self.ring, t - self.timing.len);
    }
    fn snapshot(&self, out: &mut Vec<u8>) {
        snapshot_ring(&self.timing, &self.ring, out);
    }
    fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        restore_ring(&mut self.timing, &mut self.ring, bytes)
    }
    fn state_keys(&self) -> u64 {
        self.ring.iter().map(|(_, p)| p.len() as u64).sum()
    }
}

/// `count_by_window(len, slide)`: one count per output batch.
struct CountWindow<T> {
    desc: String,
    timing: Timing,
    ring: VecDeque<(i64, u64)>,
    _t: std::marker::PhantomData<fn(&T)>,
}

impl<T: Send + Sync + 'static> StatefulStage for CountWindow<T> {
    type In = T;
    type Out = u64;
    fn describe(&self) -> String {
        self.desc.clone()
    }
    fn process(&mut self, input: &[T], out: &mut Vec<u64>, cx: &StageContext<'_>) {
        let t = cx.batch_time_ms();
        let emit = self.timing.arrive(cx);
        self.ring.push_back((t, input.len() as u64));
        if emit {
            let n = self
                .ring
                .iter()
                .filter(|(bt, _)| self.timing.in_window(*bt, t))
                .map(|(_, c)| *c)
                .sum();
            out.push(n);
        }
        drop_before(&mut self.ring, t - self.timing.len);
    }
    fn snapshot(&self, out: &mut Vec<u8>) {
        snapshot_ring(&self.timing, &self.ring, out);
    }
    fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        restore_ring(&mut self.timing, &mut self.ring, bytes)
    }
}

/// An [`Event`] persists as its Avro encoding (so `window` works on `DStream<Event>`).
impl Persist for Event {
    fn persist(&self, out: &mut Vec<u8>) {
        let raw = self.encoded();
        (raw.len() as u64).persist(out);
        out.extend_from_slice(raw);
    }
    fn restore(r: &mut SnapshotReader<'_>) -> Result<Self, SnapshotError> {
        let n: u64 = r.read()?;
        let b = r.bytes(usize::try_from(n).map_err(|_| r.invalid("event length"))?)?;
        Event::from_encoded(Bytes::copy_from_slice(b))
            .map_err(|e| r.invalid(format!("event does not decode: {e}")))
    }
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

impl<T: Send + Sync + 'static> DStream<T> {
    /// The elements of the batches of the last `len`, output every `slide` (Spark's
    /// `window`): on output batches, the window's batches' elements in batch order, on other
    /// batches nothing. See the module docs.
    ///
    /// # Panics
    /// When `len` or `slide` is not a positive multiple of the batch interval.
    pub fn window(&self, len: Duration, slide: Duration) -> DStream<T>
    where
        T: Clone + Persist,
    {
        let iv = self.ctx.config().batch_interval;
        let (l, s) = (
            interval_multiple(iv, len, "window length", "window"),
            interval_multiple(iv, slide, "slide", "window"),
        );
        self.stateful(ElementWindow {
            desc: format!("window({}ms,{}ms)", ms(len), ms(slide)),
            timing: Timing::new(l, s),
            ring: VecDeque::new(),
        })
    }

    /// The number of elements in the window, one element per output batch (also when 0; Spark
    /// emits nothing until the first element). See the module docs.
    ///
    /// # Panics
    /// When `len` or `slide` is not a positive multiple of the batch interval.
    pub fn count_by_window(&self, len: Duration, slide: Duration) -> DStream<u64> {
        let iv = self.ctx.config().batch_interval;
        let (l, s) = (
            interval_multiple(iv, len, "window length", "count_by_window"),
            interval_multiple(iv, slide, "slide", "count_by_window"),
        );
        self.stateful(CountWindow::<T> {
            desc: format!("count_by_window({}ms,{}ms)", ms(len), ms(slide)),
            timing: Timing::new(l, s),
            ring: VecDeque::new(),
            _t: std::marker::PhantomData,
        })
    }
}

impl<T: Key + Persist> DStream<T> {
    /// `(element, occurrences in the window)`, sorted, output every `slide`; incremental
    /// (counts of entering batches added, of leaving ones subtracted, zero counts dropped) as
    /// Spark's `countByValueAndWindow`.
    ///
    /// # Panics
    /// When `len` or `slide` is not a positive multiple of the batch interval.
    pub fn count_by_value_and_window(&self, len: Duration, slide: Duration) -> DStream<(T, u64)> {
        let iv = self.ctx.config().batch_interval;
        let (l, s) = (
            interval_multiple(iv, len, "window length", "count_by_value_and_window"),
            interval_multiple(iv, slide, "slide", "count_by_value_and_window"),
        );
        let add: Reducer<u64> = Arc::new(|a, b| a + b);
        let sub: Reducer<u64> = Arc::new(|a, b| a - b);
        self.stateful(KeyedWindow::<T, T, u64> {
            desc: format!("count_by_value_and_window({}ms,{}ms)", ms(len), ms(slide)),
            timing: Timing::new(l, s),
            partial: Box::new(|items: &[T], w: Workers| count_partial(items, w)),
            f: add,
            inverse: Some((sub, Arc::new(|_: &T, c: &u64| *c != 0))),
            ring: VecDeque::new(),
            current: FastMap::default(),
            last_out: None,
        })
    }
}

impl<K: Key + Persist, V: Clone + Send + Sync + Persist + 'static> DStream<(K, V)> {
    /// Combines the values of each key over the window with `f` (associative and
    /// commutative), output every `slide`, sorted by key (Spark's `reduceByKeyAndWindow`
    /// without an inverse: each output reduces the window's per-batch partials).
    ///
    /// # Panics
    /// When `len` or `slide` is not a positive multiple of the batch interval.
    pub fn reduce_by_key_and_window(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        len: Duration,
        slide: Duration,
    ) -> DStream<(K, V)> {
        self.keyed_window(Arc::new(f), None, len, slide)
    }

    /// The incremental form: `inverse(a, b)` undoes `f(a, b)` (`-` for `+`), so each output
    /// only adds the entering batches and subtracts the leaving ones; `keep(k, v)` false drops a
    /// key from the state (Spark's `filterFunc`; use `|_, v| *v != 0` for counts, `|_, _| true`
    /// for none — then keys stay forever with the zero value, as in Spark). See the module docs.
    ///
    /// # Panics
    /// When `len` or `slide` is not a positive multiple of the batch interval.
    pub fn reduce_by_key_and_window_inv(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        inverse: impl Fn(V, V) -> V + Send + Sync + 'static,
        len: Duration,
        slide: Duration,
        keep: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> DStream<(K, V)> {
        self.keyed_window(
            Arc::new(f),
            Some((Arc::new(inverse), Arc::new(keep))),
            len,
            slide,
        )
    }

    fn keyed_window(
        &self,
        f: Reducer<V>,
        inverse: Option<(Reducer<V>, Keep<K, V>)>,
        len: Duration,
        slide: Duration,
    ) -> DStream<(K, V)> {
        let op = "reduce_by_key_and_window";
        let iv = self.ctx.config().batch_interval;
        let (l, s) = (
            interval_multiple(iv, len, "window length", op),
            interval_multiple(iv, slide, "slide", op),
        );
        let pf = f.clone();
        self.stateful(KeyedWindow::<(K, V), K, V> {
            desc: format!(
                "{op}({}ms,{}ms{})",
                ms(len),
                ms(slide),
                if inverse.is_some() { ",inverse" } else { "" }
            ),
            timing: Timing::new(l, s),
            partial: Box::new(move |items: &[(K, V)], w: Workers| reduce_partial(items, w, &*pf)),
            f,
            inverse,
            ring: VecDeque::new(),
            current: FastMap::default(),
            last_out: None,
        })
    }
}

impl<P, K, V> Fused<P>
where
    P: EventFn<Out = (K, V)>,
    K: Key + Persist,
    V: Clone + Send + Sync + Persist + 'static,
{
    /// `reduce_by_key(f)` per batch (fused, sharded), then
    /// [`DStream::reduce_by_key_and_window`].
    pub fn reduce_by_key_and_window<F>(
        &self,
        f: F,
        len: Duration,
        slide: Duration,
    ) -> DStream<(K, V)>
    where
        F: Fn(V, V) -> V + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        let g = f.clone();
        self.reduce_by_key(move |a, b| g(a, b))
            .reduce_by_key_and_window(move |a, b| f(a, b), len, slide)
    }

    /// `reduce_by_key(f)` per batch (fused, sharded), then
    /// [`DStream::reduce_by_key_and_window_inv`] — the fast windowed word count.
    pub fn reduce_by_key_and_window_inv<F, I, Kp>(
        &self,
        f: F,
        inverse: I,
        len: Duration,
        slide: Duration,
        keep: Kp,
    ) -> DStream<(K, V)>
    where
        F: Fn(V, V) -> V + Send + Sync + 'static,
        I: Fn(V, V) -> V + Send + Sync + 'static,
        Kp: Fn(&K, &V) -> bool + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        let g = f.clone();
        self.reduce_by_key(move |a, b| g(a, b))
            .reduce_by_key_and_window_inv(move |a, b| f(a, b), inverse, len, slide, keep)
    }
}

impl<P> Fused<P>
where
    P: EventFn,
    P::Out: Key + Persist,
{
    /// `count_by_value()` per batch (fused, sharded), then an incremental window of the counts
    /// (same result as [`DStream::count_by_value_and_window`]).
    pub fn count_by_value_and_window(
        &self,
        len: Duration,
        slide: Duration,
    ) -> DStream<(P::Out, u64)> {
        self.count_by_value().reduce_by_key_and_window_inv(
            |a, b| a + b,
            |a, b| a - b,
            len,
            slide,
            |_, c| *c != 0,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::PipelineCounter;

    fn run_stage<S: StatefulStage>(
        s: &mut S,
        batches: &[Vec<S::In>],
        interval: i64,
    ) -> Vec<Vec<S::Out>> {
        let c = PipelineCounter::new("t");
        batches
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let cx = StageContext::detached(
                    i as u64 + 1,
                    interval * (i as i64 + 1),
                    interval,
                    1,
                    &c,
                );
                let mut out = Vec::new();
                s.process(b, &mut out, &cx);
                out
            })
            .collect()
    }

    #[test]
    fn incremental_counts_follow_spark_semantics_and_snapshots_round_trip() {
        let mk = || KeyedWindow::<(u32, u64), u32, u64> {
            desc: "t".into(),
            timing: Timing::new(3000, 2000),
            partial: Box::new(|items: &[(u32, u64)], w: Workers| {
                reduce_partial(items, w, &|a: u64, b: u64| a + b)
            }),
            f: Arc::new(|a, b| a + b),
            inverse: Some((Arc::new(|a, b| a - b), Arc::new(|_: &u32, c: &u64| *c != 0))),
            ring: VecDeque::new(),
            current: FastMap::default(),
            last_out: None,
        };
        let batches = vec![
            vec![(1, 1), (2, 1)],
            vec![(1, 1)],
            vec![],
            vec![(3, 1)],
            vec![],
            vec![],
        ];
        let mut s = mk();
        let out = run_stage(&mut s, &batches, 1000);
        // zero = 0; outputs at 2000, 4000, 6000; windows (t-3000, t].
        assert_eq!(out[0], vec![]);
        assert_eq!(out[1], vec![(1, 2), (2, 1)]);
        assert_eq!(out[2], vec![]);
        assert_eq!(out[3], vec![(1, 1), (3, 1)]);
        assert_eq!(out[5], vec![(3, 1)]);
        let mut snap = Vec::new();
        s.snapshot(&mut snap);
        let mut t = mk();
        t.restore(&snap).unwrap();
        let mut again = Vec::new();
        t.snapshot(&mut again);
        assert_eq!(snap, again);
        assert!(t.restore(&snap[..snap.len() - 1]).is_err());
        t.restore(&[]).unwrap();
        assert_eq!(t.state_keys(), 0);
    }

    #[test]
    fn events_persist_as_their_encoding() {
        let e = Event::new([("timestamp", "12")], b"body");
        let mut b = Vec::new();
        e.persist(&mut b);
        let back = Event::restore(&mut SnapshotReader::new(&b)).unwrap();
        assert_eq!(back, e);
    }
}
