//! Event time: windows on a timestamp carried by each element — the `timestamp` header (ms
//! since the epoch, as Flume's timestamp interceptor sets it) or a user function — closed by a
//! bounded-out-of-orderness **watermark**; tumbling, sliding (hop) and session windows; late
//! elements counted and optionally sent to a side output. The operator is
//! [`DStream::event_time_window`], a [`StatefulStage`].
//!
//! # Time, watermark, firing
//!
//! * **Timestamp**: [`EventTime::header`] parses the header's value (trimmed) as a decimal
//!   `i64`; [`EventTime::from_fn`] calls a function. A missing or unparsable timestamp is
//!   counted as `ErrorsBadTimestamp`; the element goes to the side output as
//!   [`Timed::BadTimestamp`] when the side output is on, and is skipped otherwise.
//! * **Watermark** `W`: after a batch, `W = max(W, M − lateness)` where `M` is the largest
//!   timestamp seen so far (Flink's bounded out-of-orderness; Spark's `withWatermark`). The
//!   watermark never goes back. `W` is undefined until the first timestamped element.
//! * **Idle stream**: with an idle timeout `d`, once no timestamped element has arrived for
//!   `d` of batch time (the batch time of the last one `l`, now `t`, `t − l ≥ d`), the stream's
//!   event time is taken to move with processing time: `W = max(W, M + (t − l) − lateness)`. So
//!   a stream that goes quiet still closes its last windows, about `lateness` after their end
//!   in processing time. Batch time is [`StageContext::batch_time_ms`] (never the wall clock).
//! * **Windows**: tumbling `[k·len, (k+1)·len)`; sliding `[k·slide, k·slide + len)` (aligned to
//!   the epoch, `len` a multiple of `slide`); sessions per key: an element at `ts` opens
//!   `[ts, ts + gap)`, and sessions of a key that overlap or touch merge.
//! * **Firing** (emit mode [`Emit::Final`]): a window is output once, in the batch whose new
//!   watermark reaches its end (`end ≤ W`), then its state is dropped. In [`Emit::Update`] mode
//!   every batch outputs the current value of each (window, key) the batch changed, and state is
//!   dropped silently when the watermark passes the window's end (Spark's update mode).
//! * **Late**: within a batch, elements are judged against the watermark *before* the batch
//!   (`W₀`). An element is late when every window it belongs to has ended by `W₀` — tumbling:
//!   its window's end `≤ W₀`; sliding: the end of the last window containing it `≤ W₀`;
//!   session: `ts + gap ≤ W₀` (even if it would touch a session still open: simple and
//!   independent of the key). Late elements are counted (`LateEvents`, via
//!   [`StageContext::late`]), go to the side output as [`Timed::Late`] when it is on, and are
//!   otherwise dropped. An element of a sliding window that is only partly late contributes to
//!   its windows still open.
//!
//! Output order per batch: side-output elements in input order, then window results sorted by
//! (start, end, key). Reduce functions must be associative and commutative (as Spark asks): the
//! state is sharded and pre-aggregated in parallel.
//!
//! # State, sharding
//!
//! Tumbling and sliding windows keep **panes** of `slide` ms (one per window for tumbling):
//! per pane start, a map key → value; a window's value is the reduction of its `len / slide`
//! panes when it fires, so an element is folded once however many windows hold it. A pane is
//! dropped when the last window containing it has fired. Sessions keep, per key, the open
//! sessions `(start, end, value)` sorted by start. Both are split into 32 shards by key hash;
//! each batch the input is exploded and pre-aggregated in parallel chunks, merged into the
//! shards by their owning workers (round-robin), and results are sorted — the same result as
//! one thread. A key is moved into the chunk's map (no clone per element), and a chunk's
//! partials are moved into the shards (no clone per group). With
//! [`DStream::event_time_window_fold`] an element's rows update the (pane, key)'s accumulator
//! in place instead of building a value each (an accumulator is made once per chunk and pane
//! and key; per element for sessions, whose merging happens in the shards).
//!
//! # Snapshot (the `Persist` encoding, deterministic bytes)
//!
//! ```text
//! u8 version (1) · Option<i64> watermark · Option<i64> max timestamp
//! · Option<i64> batch time of the last timestamped element
//! · u8 kind (0 panes, 1 sessions)
//! panes:    u64 n · n × (i64 pane start, K, V)              ordered by (pane, key)
//! sessions: u64 n · n × (K, i64 start, i64 end, V)          ordered by (key, start)
//! ```

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::event::Event;

use super::metrics::ErrorReason;
use super::output::Render;
use super::stage::{
    Key, Persist, SnapshotError, SnapshotReader, StageContext, StatefulStage, Workers,
};
use super::state::{shard_of, SHARDS};
use super::stream::DStream;
use super::text::FastMap;
use super::window::workers_for;

const VERSION: u8 = 1;

type TsFn<T> = Arc<dyn Fn(&T) -> Option<i64> + Send + Sync>;

/// Where the event time comes from, and how the watermark moves (see the module docs).
pub struct EventTime<T> {
    ts: TsFn<T>,
    source: String,
    lateness_ms: i64,
    idle_timeout_ms: Option<i64>,
    emit: Emit,
    side_output: bool,
}

impl<T> Clone for EventTime<T> {
    fn clone(&self) -> Self {
        EventTime {
            ts: self.ts.clone(),
            source: self.source.clone(),
            lateness_ms: self.lateness_ms,
            idle_timeout_ms: self.idle_timeout_ms,
            emit: self.emit,
            side_output: self.side_output,
        }
    }
}

impl<T> std::fmt::Debug for EventTime<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// When window results are output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    /// Once per window and key, when the watermark passes the window's end.
    Final,
    /// Every batch, for the windows and keys the batch changed.
    Update,
}

/// Parses a Flume `timestamp` header value (ms since the epoch).
pub fn parse_timestamp(v: &str) -> Option<i64> {
    v.trim().parse::<i64>().ok()
}

impl EventTime<Event> {
    /// The time in header `name` (Flume's timestamp interceptor writes `timestamp`).
    pub fn header(name: &str) -> EventTime<Event> {
        let n = name.to_string();
        EventTime::new(
            format!("header={name}"),
            Arc::new(move |e: &Event| e.header(&n).and_then(|v| parse_timestamp(&v))),
        )
    }
}

impl<T> EventTime<T> {
    fn new(source: String, ts: TsFn<T>) -> EventTime<T> {
        EventTime {
            ts,
            source,
            lateness_ms: 0,
            idle_timeout_ms: None,
            emit: Emit::Final,
            side_output: false,
        }
    }

    /// The time computed by `f` (`None`: a bad timestamp). `name` goes into the pipeline
    /// fingerprint.
    pub fn from_fn(name: &str, f: impl Fn(&T) -> Option<i64> + Send + Sync + 'static) -> Self {
        EventTime::new(format!("fn={name}"), Arc::new(f))
    }
    /// Allowed out-of-orderness: the watermark trails the largest timestamp by this.
    pub fn lateness(mut self, d: Duration) -> Self {
        self.lateness_ms = d.as_millis() as i64;
        self
    }
    /// Advance the watermark by batch time after this long without a timestamped element.
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout_ms = Some(d.as_millis() as i64);
        self
    }
    /// The emit mode (default [`Emit::Final`]).
    pub fn emit(mut self, e: Emit) -> Self {
        self.emit = e;
        self
    }
    /// Output late and bad-timestamp elements as [`Timed::Late`] / [`Timed::BadTimestamp`]
    /// (default off: counted and dropped).
    pub fn side_output(mut self, on: bool) -> Self {
        self.side_output = on;
        self
    }
    fn describe(&self) -> String {
        format!(
            "{},lateness={}ms,idle={},emit={:?},side={}",
            self.source,
            self.lateness_ms,
            self.idle_timeout_ms
                .map_or("none".to_string(), |d| format!("{d}ms")),
            self.emit,
            self.side_output
        )
    }
}

/// The window shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Windows {
    /// Sliding windows `[k·slide, k·slide + len)`; tumbling when `slide == len`.
    Sliding {
        /// Window length, ms.
        len_ms: i64,
        /// Slide, ms (divides `len_ms`).
        slide_ms: i64,
    },
    /// Session windows per key, closed after `gap_ms` without an element.
    Session {
        /// Inactivity gap, ms.
        gap_ms: i64,
    },
}

impl Windows {
    /// Tumbling windows of `len`.
    pub fn tumbling(len: Duration) -> Windows {
        let l = len.as_millis() as i64;
        Windows::Sliding {
            len_ms: l,
            slide_ms: l,
        }
    }
    /// Sliding (hop) windows of `len` every `slide`.
    pub fn sliding(len: Duration, slide: Duration) -> Windows {
        Windows::Sliding {
            len_ms: len.as_millis() as i64,
            slide_ms: slide.as_millis() as i64,
        }
    }
    /// Session windows with inactivity gap `gap`.
    pub fn session(gap: Duration) -> Windows {
        Windows::Session {
            gap_ms: gap.as_millis() as i64,
        }
    }
    fn check(&self) {
        match *self {
            Windows::Sliding { len_ms, slide_ms } => assert!(
                slide_ms > 0 && len_ms > 0 && len_ms % slide_ms == 0,
                "event_time_window: the window length ({len_ms} ms) must be a positive multiple of the slide ({slide_ms} ms)"
            ),
            Windows::Session { gap_ms } => assert!(
                gap_ms > 0,
                "event_time_window: the session gap ({gap_ms} ms) must be positive"
            ),
        }
    }
    /// End of the last window containing `ts`.
    fn last_end(&self, ts: i64) -> i64 {
        match *self {
            Windows::Sliding { len_ms, slide_ms } => ts.div_euclid(slide_ms) * slide_ms + len_ms,
            Windows::Session { gap_ms } => ts.saturating_add(gap_ms),
        }
    }
}

/// One window's result for one key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WindowResult<K, V> {
    /// Window start, ms (inclusive).
    pub start_ms: i64,
    /// Window end, ms (exclusive).
    pub end_ms: i64,
    /// The key.
    pub key: K,
    /// The reduced value.
    pub value: V,
}

impl<K: Render, V: Render> Render for WindowResult<K, V> {
    fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = write!(out, "([{},{}),", self.start_ms, self.end_ms);
        self.key.render(out);
        out.push(',');
        self.value.render(out);
        out.push(')');
    }
}

/// An output element of [`DStream::event_time_window`]: a result or a side-output element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timed<K, V, T> {
    /// A window result.
    Window(WindowResult<K, V>),
    /// An element behind the watermark (side output).
    Late(T),
    /// An element without a usable timestamp (side output).
    BadTimestamp(T),
}

impl<K: Clone, V: Clone, T: Clone> Timed<K, V, T> {
    /// The window result, if this is one (for `filter_map`).
    pub fn window(&self) -> Option<WindowResult<K, V>> {
        match self {
            Timed::Window(w) => Some(w.clone()),
            _ => None,
        }
    }
    /// The late element, if this is one.
    pub fn late(&self) -> Option<T> {
        match self {
            Timed::Late(t) => Some(t.clone()),
            _ => None,
        }
    }
    /// The bad-timestamp element, if this is one.
    pub fn bad_timestamp(&self) -> Option<T> {
        match self {
            Timed::BadTimestamp(t) => Some(t.clone()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Session<V> {
    start: i64,
    end: i64,
    value: V,
}

type PaneShard<K, V> = BTreeMap<i64, FastMap<K, V>>;
type SessionShard<K, V> = FastMap<K, Vec<Session<V>>>;

enum Shards<K, V> {
    Panes(Vec<Mutex<PaneShard<K, V>>>),
    Sessions(Vec<Mutex<SessionShard<K, V>>>),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

type PairsFn<T, K, V> = Arc<dyn Fn(&T, &mut dyn FnMut(K, V)) + Send + Sync>;
/// Emits an element's rows as `(key, fold)`: `fold` updates the (pane, key)'s accumulator.
type RowsFn<T, K, V> = Arc<dyn Fn(&T, &mut dyn FnMut(K, &mut dyn FnMut(&mut V))) + Send + Sync>;

/// How an element reaches the state: `(key, value)` pairs merged into it, or rows folded into
/// it in place (an accumulator is made with `init` the first time a chunk sees a (pane, key)).
enum Ingest<T, K, V> {
    Pairs(PairsFn<T, K, V>),
    Fold {
        rows: RowsFn<T, K, V>,
        init: Arc<dyn Fn() -> V + Send + Sync>,
    },
}
/// Folds a value into an accumulated one in place (no clone of the accumulator).
type MergeFn<V> = Arc<dyn Fn(&mut V, V) + Send + Sync>;

/// What one input chunk yields.
struct ChunkOut<K, V> {
    /// (input index, late?) of side-output elements; late = true, bad timestamp = false.
    side: Vec<(usize, bool)>,
    bad: u64,
    late: u64,
    max_ts: Option<i64>,
    /// Panes: per shard, pre-aggregated ((pane, key) → value). Sessions: per shard, (key, ts,
    /// value) in input order.
    /// (In a mutex so that the shard owning them moves them out instead of cloning.)
    panes: Vec<Mutex<FastMap<(i64, K), V>>>,
    elems: Vec<Mutex<Vec<(K, i64, V)>>>,
}

struct EventTimeStage<T, K, V> {
    desc: String,
    time: EventTime<T>,
    windows: Windows,
    ingest: Ingest<T, K, V>,
    f: MergeFn<V>,
    wm: Option<i64>,
    max_ts: Option<i64>,
    last_event_batch: Option<i64>,
    shards: Shards<K, V>,
}

fn run_shards<S: Send, R: Send>(
    shards: &[Mutex<S>],
    w: Workers,
    f: impl Fn(usize, &mut S) -> R + Sync,
) -> Vec<R> {
    let n = w.count();
    let parts = w.run(|wi| {
        (wi..shards.len())
            .step_by(n)
            .map(|s| (s, f(s, &mut lock(&shards[s]))))
            .collect::<Vec<_>>()
    });
    let mut all: Vec<(usize, R)> = parts.into_iter().flatten().collect();
    all.sort_unstable_by_key(|(s, _)| *s);
    all.into_iter().map(|(_, r)| r).collect()
}

impl<T, K, V> EventTimeStage<T, K, V>
where
    T: Clone + Send + Sync + 'static,
    K: Key + Persist,
    V: Clone + Send + Sync + Persist + 'static,
{
    fn empty_shards(windows: &Windows) -> Shards<K, V> {
        match windows {
            Windows::Sliding { .. } => {
                Shards::Panes((0..SHARDS).map(|_| Mutex::new(BTreeMap::new())).collect())
            }
            Windows::Session { .. } => Shards::Sessions(
                (0..SHARDS)
                    .map(|_| Mutex::new(FastMap::default()))
                    .collect(),
            ),
        }
    }

    fn ingest_chunk(&self, items: &[T], offset: usize, wm0: Option<i64>) -> ChunkOut<K, V> {
        let sessions = matches!(self.windows, Windows::Session { .. });
        let mut o: ChunkOut<K, V> = ChunkOut {
            side: Vec::new(),
            bad: 0,
            late: 0,
            max_ts: None,
            panes: Vec::new(),
            elems: Vec::new(),
        };
        let mut panes: Vec<FastMap<(i64, K), V>> = if sessions {
            Vec::new()
        } else {
            (0..SHARDS).map(|_| FastMap::default()).collect()
        };
        let mut elems: Vec<Vec<(K, i64, V)>> = if sessions {
            (0..SHARDS).map(|_| Vec::new()).collect()
        } else {
            Vec::new()
        };
        let f = &*self.f;
        for (j, x) in items.iter().enumerate() {
            let Some(ts) = (self.time.ts)(x) else {
                o.bad += 1;
                if self.time.side_output {
                    o.side.push((offset + j, false));
                }
                continue;
            };
            o.max_ts = Some(o.max_ts.map_or(ts, |m| m.max(ts)));
            if wm0.is_some_and(|w| self.windows.last_end(ts) <= w) {
                o.late += 1;
                if self.time.side_output {
                    o.side.push((offset + j, true));
                }
                continue;
            }
            // The key is moved into the map (no clone per row).
            match (self.windows, &self.ingest) {
                (Windows::Sliding { slide_ms, .. }, Ingest::Pairs(pairs)) => {
                    let pane = ts.div_euclid(slide_ms) * slide_ms;
                    pairs(
                        x,
                        &mut |k: K, v: V| match panes[shard_of(&k)].entry((pane, k)) {
                            Entry::Occupied(mut e) => f(e.get_mut(), v),
                            Entry::Vacant(e) => {
                                e.insert(v);
                            }
                        },
                    );
                }
                (Windows::Sliding { slide_ms, .. }, Ingest::Fold { rows, init }) => {
                    let pane = ts.div_euclid(slide_ms) * slide_ms;
                    rows(
                        x,
                        &mut |k: K, fold: &mut dyn FnMut(&mut V)| match panes[shard_of(&k)]
                            .entry((pane, k))
                        {
                            Entry::Occupied(mut e) => fold(e.get_mut()),
                            Entry::Vacant(e) => fold(e.insert(init())),
                        },
                    );
                }
                (Windows::Session { .. }, Ingest::Pairs(pairs)) => {
                    pairs(x, &mut |k: K, v: V| {
                        elems[shard_of(&k)].push((k, ts, v));
                    });
                }
                (Windows::Session { .. }, Ingest::Fold { rows, init }) => {
                    rows(x, &mut |k: K, fold: &mut dyn FnMut(&mut V)| {
                        let mut v = init();
                        fold(&mut v);
                        elems[shard_of(&k)].push((k, ts, v));
                    });
                }
            }
        }
        o.panes = panes.into_iter().map(Mutex::new).collect();
        o.elems = elems.into_iter().map(Mutex::new).collect();
        o
    }
}

/// Merges `[ts, ts + gap)` carrying `v` into a key's sorted, disjoint sessions.
fn add_to_sessions<V: Clone>(
    list: &mut Vec<Session<V>>,
    ts: i64,
    gap: i64,
    v: V,
    f: &dyn Fn(&mut V, V),
) {
    let mut s = Session {
        start: ts,
        end: ts.saturating_add(gap),
        value: v,
    };
    let mut i = 0;
    while i < list.len() {
        let o = &list[i];
        if o.start <= s.end && s.start <= o.end {
            let o = list.remove(i);
            s.start = s.start.min(o.start);
            s.end = s.end.max(o.end);
            let mut acc = o.value;
            f(&mut acc, s.value);
            s.value = acc;
        } else {
            i += 1;
        }
    }
    let pos = list.partition_point(|o| o.start < s.start);
    list.insert(pos, s);
}

impl<T, K, V> StatefulStage for EventTimeStage<T, K, V>
where
    T: Clone + Send + Sync + 'static,
    K: Key + Persist,
    V: Clone + Send + Sync + Persist + 'static,
{
    type In = T;
    type Out = Timed<K, V, T>;

    fn describe(&self) -> String {
        self.desc.clone()
    }

    fn process(&mut self, input: &[T], out: &mut Vec<Timed<K, V, T>>, cx: &StageContext<'_>) {
        let t = cx.batch_time_ms();
        let wm0 = self.wm;
        let iw = workers_for(cx.workers(), input.len());
        let chunks: Vec<ChunkOut<K, V>> = iw.run(|i| {
            let offset = input.len() * i / iw.count();
            self.ingest_chunk(iw.chunk(input, i), offset, wm0)
        });
        // Side outputs and counters, in input order (chunks are contiguous and in order).
        let (mut bad, mut late, mut max_ts) = (0u64, 0u64, None::<i64>);
        for c in &chunks {
            bad += c.bad;
            late += c.late;
            if let Some(m) = c.max_ts {
                max_ts = Some(max_ts.map_or(m, |x: i64| x.max(m)));
            }
            for &(i, is_late) in &c.side {
                let x = input[i].clone();
                out.push(if is_late {
                    Timed::Late(x)
                } else {
                    Timed::BadTimestamp(x)
                });
            }
        }
        if bad > 0 {
            cx.error(ErrorReason::BadTimestamp, bad);
        }
        if late > 0 {
            cx.late(late);
        }
        // The watermark after this batch.
        if let Some(m) = max_ts {
            self.max_ts = Some(self.max_ts.map_or(m, |x| x.max(m)));
            self.last_event_batch = Some(t);
        }
        if let Some(m) = self.max_ts {
            let mut w = m.saturating_sub(self.time.lateness_ms);
            if let (Some(d), Some(l)) = (self.time.idle_timeout_ms, self.last_event_batch) {
                if t - l >= d {
                    w = w.max(
                        m.saturating_add(t - l)
                            .saturating_sub(self.time.lateness_ms),
                    );
                }
            }
            self.wm = Some(self.wm.map_or(w, |x| x.max(w)));
        }
        let wm1 = self.wm;
        let lo = wm0.unwrap_or(i64::MIN);
        let hi = wm1.unwrap_or(i64::MIN);
        let emit = self.time.emit;
        let f = &*self.f;
        let sw = cx.workers();
        let chunks = &chunks;
        let mut results: Vec<WindowResult<K, V>> = match (&self.shards, self.windows) {
            (Shards::Panes(shards), Windows::Sliding { len_ms, slide_ms }) => {
                let parts = run_shards(shards, sw, |s, shard: &mut PaneShard<K, V>| {
                    let mut changed: Vec<(i64, K)> = Vec::new();
                    for c in chunks {
                        let part = std::mem::take(&mut *lock(&c.panes[s]));
                        for ((pane, k), v) in part {
                            if emit == Emit::Update {
                                changed.push((pane, k.clone()));
                            }
                            match shard.entry(pane).or_default().entry(k) {
                                Entry::Occupied(mut e) => f(e.get_mut(), v),
                                Entry::Vacant(e) => {
                                    e.insert(v);
                                }
                            }
                        }
                    }
                    let mut res = Vec::new();
                    let value_of = |shard: &PaneShard<K, V>, ws: i64, k: &K| -> Option<V> {
                        let mut acc: Option<V> = None;
                        for (_, m) in shard.range(ws..ws + len_ms) {
                            if let Some(v) = m.get(k) {
                                match &mut acc {
                                    None => acc = Some(v.clone()),
                                    Some(a) => f(a, v.clone()),
                                }
                            }
                        }
                        acc
                    };
                    match emit {
                        Emit::Final => {
                            // Windows ending in (lo, hi].
                            let mut starts = BTreeSet::new();
                            for &pane in shard.keys() {
                                let mut ws = pane - len_ms + slide_ms;
                                while ws <= pane {
                                    let end = ws + len_ms;
                                    if end > lo && end <= hi {
                                        starts.insert(ws);
                                    }
                                    ws += slide_ms;
                                }
                            }
                            for ws in starts {
                                let mut acc: FastMap<&K, V> = FastMap::default();
                                for (_, m) in shard.range(ws..ws + len_ms) {
                                    for (k, v) in m {
                                        match acc.get_mut(k) {
                                            Some(a) => f(a, v.clone()),
                                            None => {
                                                acc.insert(k, v.clone());
                                            }
                                        }
                                    }
                                }
                                res.extend(acc.into_iter().map(|(k, v)| WindowResult {
                                    start_ms: ws,
                                    end_ms: ws + len_ms,
                                    key: k.clone(),
                                    value: v,
                                }));
                            }
                        }
                        Emit::Update => {
                            let mut seen = BTreeSet::new();
                            for (pane, k) in changed {
                                let mut ws = pane - len_ms + slide_ms;
                                while ws <= pane {
                                    if ws + len_ms > lo && seen.insert((ws, k.clone())) {
                                        if let Some(v) = value_of(shard, ws, &k) {
                                            res.push(WindowResult {
                                                start_ms: ws,
                                                end_ms: ws + len_ms,
                                                key: k.clone(),
                                                value: v,
                                            });
                                        }
                                    }
                                    ws += slide_ms;
                                }
                            }
                        }
                    }
                    // Panes whose last window has ended.
                    while shard
                        .first_key_value()
                        .is_some_and(|(p, _)| p + len_ms <= hi)
                    {
                        shard.pop_first();
                    }
                    res
                });
                parts.into_iter().flatten().collect()
            }
            (Shards::Sessions(shards), Windows::Session { gap_ms }) => {
                let parts = run_shards(shards, sw, |s, shard: &mut SessionShard<K, V>| {
                    let mut changed: Vec<K> = Vec::new();
                    for c in chunks {
                        let part = std::mem::take(&mut *lock(&c.elems[s]));
                        for (k, ts, v) in part {
                            if emit == Emit::Update {
                                changed.push(k.clone());
                            }
                            let list = match shard.get_mut(&k) {
                                Some(l) => l,
                                None => shard.entry(k).or_default(),
                            };
                            add_to_sessions(list, ts, gap_ms, v, f);
                        }
                    }
                    let mut res = Vec::new();
                    if emit == Emit::Update {
                        changed.sort();
                        changed.dedup();
                        for k in changed {
                            if let Some(list) = shard.get(&k) {
                                // Sessions of `k` that received an element this batch can be
                                // any open one; output all open sessions of a changed key.
                                for ss in list.iter().filter(|ss| ss.end > lo) {
                                    res.push(WindowResult {
                                        start_ms: ss.start,
                                        end_ms: ss.end,
                                        key: k.clone(),
                                        value: ss.value.clone(),
                                    });
                                }
                            }
                        }
                    }
                    shard.retain(|k, list| {
                        list.retain(|ss| {
                            if ss.end <= hi {
                                if emit == Emit::Final {
                                    res.push(WindowResult {
                                        start_ms: ss.start,
                                        end_ms: ss.end,
                                        key: k.clone(),
                                        value: ss.value.clone(),
                                    });
                                }
                                false
                            } else {
                                true
                            }
                        });
                        !list.is_empty()
                    });
                    res
                });
                parts.into_iter().flatten().collect()
            }
            _ => unreachable!("shards match the window kind"),
        };
        results.sort_by(|a, b| (a.start_ms, a.end_ms, &a.key).cmp(&(b.start_ms, b.end_ms, &b.key)));
        out.extend(results.into_iter().map(Timed::Window));
    }

    fn snapshot(&self, out: &mut Vec<u8>) {
        VERSION.persist(out);
        self.wm.persist(out);
        self.max_ts.persist(out);
        self.last_event_batch.persist(out);
        match &self.shards {
            Shards::Panes(shards) => {
                0u8.persist(out);
                let guards: Vec<_> = shards.iter().map(|s| lock(s)).collect();
                let mut all: Vec<(i64, &K, &V)> = guards
                    .iter()
                    .flat_map(|g| {
                        g.iter()
                            .flat_map(|(p, m)| m.iter().map(move |(k, v)| (*p, k, v)))
                    })
                    .collect();
                all.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
                (all.len() as u64).persist(out);
                for (p, k, v) in all {
                    p.persist(out);
                    k.persist(out);
                    v.persist(out);
                }
            }
            Shards::Sessions(shards) => {
                1u8.persist(out);
                let guards: Vec<_> = shards.iter().map(|s| lock(s)).collect();
                let mut all: Vec<(&K, &Session<V>)> = guards
                    .iter()
                    .flat_map(|g| g.iter().flat_map(|(k, l)| l.iter().map(move |s| (k, s))))
                    .collect();
                all.sort_unstable_by(|a, b| (a.0, a.1.start).cmp(&(b.0, b.1.start)));
                (all.len() as u64).persist(out);
                for (k, s) in all {
                    k.persist(out);
                    s.start.persist(out);
                    s.end.persist(out);
                    s.value.persist(out);
                }
            }
        }
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.shards = Self::empty_shards(&self.windows);
        self.wm = None;
        self.max_ts = None;
        self.last_event_batch = None;
        if bytes.is_empty() {
            return Ok(());
        }
        let mut r = SnapshotReader::new(bytes);
        let v: u8 = r.read()?;
        if v != VERSION {
            return Err(r.invalid(format!(
                "event-time snapshot version {v}, expected {VERSION}"
            )));
        }
        self.wm = r.read()?;
        self.max_ts = r.read()?;
        self.last_event_batch = r.read()?;
        let kind: u8 = r.read()?;
        let n: u64 = r.read()?;
        match (&mut self.shards, kind) {
            (Shards::Panes(shards), 0) => {
                for _ in 0..n {
                    let p: i64 = r.read()?;
                    let k: K = r.read()?;
                    let v: V = r.read()?;
                    lock(&shards[shard_of(&k)])
                        .entry(p)
                        .or_default()
                        .insert(k, v);
                }
            }
            (Shards::Sessions(shards), 1) => {
                for _ in 0..n {
                    let k: K = r.read()?;
                    let start: i64 = r.read()?;
                    let end: i64 = r.read()?;
                    let value: V = r.read()?;
                    lock(&shards[shard_of(&k)])
                        .entry(k)
                        .or_default()
                        .push(Session { start, end, value });
                }
            }
            _ => return Err(r.invalid(format!("window kind {kind} does not match this stage"))),
        }
        if !r.is_at_end() {
            return Err(r.invalid("trailing bytes after the event-time state"));
        }
        Ok(())
    }

    fn state_keys(&self) -> u64 {
        match &self.shards {
            Shards::Panes(s) => s
                .iter()
                .map(|m| lock(m).values().map(|p| p.len() as u64).sum::<u64>())
                .sum(),
            Shards::Sessions(s) => s
                .iter()
                .map(|m| lock(m).values().map(|l| l.len() as u64).sum::<u64>())
                .sum(),
        }
    }

    fn watermark_ms(&self) -> Option<i64> {
        self.wm
    }
}

impl<T: Clone + Send + Sync + 'static> DStream<T> {
    /// Event-time windows (see the module docs): each element's timestamp comes from `time`;
    /// `pairs(element, emit)` emits its `(key, value)`s (e.g. one per word of a line), which are
    /// reduced per window and key with `f` (associative, commutative). The output holds window
    /// results and, when `time.side_output(true)`, late and bad-timestamp elements; split it
    /// with `filter_map(Timed::window)` / `filter_map(Timed::late)`.
    ///
    /// # Panics
    /// When the window length is not a positive multiple of the slide, or the gap is not
    /// positive.
    pub fn event_time_window<K, V>(
        &self,
        time: EventTime<T>,
        windows: Windows,
        pairs: impl Fn(&T, &mut dyn FnMut(K, V)) + Send + Sync + 'static,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> DStream<Timed<K, V, T>>
    where
        K: Key + Persist,
        V: Clone + Send + Sync + Persist + 'static,
    {
        self.event_time_window_in_place(time, windows, pairs, move |acc: &mut V, v: V| {
            *acc = f(acc.clone(), v)
        })
    }

    /// [`DStream::event_time_window`] with an in-place fold `merge(&mut acc, v)` instead of a
    /// reduce function: for values that are costly to clone (sets, vectors of accumulators),
    /// since the state is updated once per element. `merge` must be associative and
    /// commutative in effect, as `f` is.
    ///
    /// # Panics
    /// As [`DStream::event_time_window`].
    pub fn event_time_window_in_place<K, V>(
        &self,
        time: EventTime<T>,
        windows: Windows,
        pairs: impl Fn(&T, &mut dyn FnMut(K, V)) + Send + Sync + 'static,
        merge: impl Fn(&mut V, V) + Send + Sync + 'static,
    ) -> DStream<Timed<K, V, T>>
    where
        K: Key + Persist,
        V: Clone + Send + Sync + Persist + 'static,
    {
        self.event_time_stage(
            time,
            windows,
            Ingest::Pairs(Arc::new(pairs)),
            Arc::new(merge),
        )
    }

    /// [`DStream::event_time_window_in_place`] without a value per element: `rows(element,
    /// emit)` calls `emit(key, fold)` per row, and the operator calls `fold(&mut acc)` on that
    /// (pane, key)'s accumulator — made with `init()` the first time a chunk of the batch sees
    /// the (pane, key), or per element for session windows. So an element with several
    /// aggregates updates them in place, allocating nothing per row (the SQL front end's
    /// windowed `GROUP BY`). `merge` folds the accumulators of chunks, panes and sessions; the
    /// result must not depend on how the elements were split (e.g. `init()` is the identity
    /// of `merge`). Same semantics, output and snapshot encoding as the other forms.
    ///
    /// # Panics
    /// As [`DStream::event_time_window`].
    pub fn event_time_window_fold<K, V>(
        &self,
        time: EventTime<T>,
        windows: Windows,
        init: impl Fn() -> V + Send + Sync + 'static,
        rows: impl Fn(&T, &mut dyn FnMut(K, &mut dyn FnMut(&mut V))) + Send + Sync + 'static,
        merge: impl Fn(&mut V, V) + Send + Sync + 'static,
    ) -> DStream<Timed<K, V, T>>
    where
        K: Key + Persist,
        V: Clone + Send + Sync + Persist + 'static,
    {
        self.event_time_stage(
            time,
            windows,
            Ingest::Fold {
                rows: Arc::new(rows),
                init: Arc::new(init),
            },
            Arc::new(merge),
        )
    }

    fn event_time_stage<K, V>(
        &self,
        time: EventTime<T>,
        windows: Windows,
        ingest: Ingest<T, K, V>,
        merge: MergeFn<V>,
    ) -> DStream<Timed<K, V, T>>
    where
        K: Key + Persist,
        V: Clone + Send + Sync + Persist + 'static,
    {
        windows.check();
        let desc = format!("event_time_window({},{windows:?})", time.describe());
        self.stateful(EventTimeStage {
            desc,
            shards: EventTimeStage::<T, K, V>::empty_shards(&windows),
            time,
            windows,
            ingest,
            f: merge,
            wm: None,
            max_ts: None,
            last_event_batch: None,
        })
    }
}
