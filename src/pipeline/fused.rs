//! The first stage: events borrowed from the take, and the fused stateless chain that runs on
//! them.
//!
//! [`Events`] is the stream of a batch's events. Its operators ([`Events::map`],
//! [`Events::flat_map`], [`Events::words`], ...) see each event as `&Event` — the body a slice of
//! the channel's mmap — and start a [`Fused`] chain. Every operator on a `Fused` (`map`,
//! `flat_map`, `filter`, `key_by`, `map_values`, ...) wraps the previous one in a generic
//! adaptor, so the whole chain from `&Event` to the terminal (a keyed combiner for
//! [`Fused::reduce_by_key`] / [`Fused::count_by_value`], a counter for [`Fused::count`], a vector
//! for [`Fused::stream`]) is **one monomorphised function per event**, with no boxing, no
//! dynamic call and no intermediate collection per element. With [`Text`] keys (inline up to
//! 22 bytes) a word count allocates nothing per word.
//!
//! # Sharding
//!
//! A terminal splits the batch's events into one contiguous chunk per worker. Each worker runs
//! the chain over its chunk into its own accumulator (for keyed terminals a [`Combiner`]: the
//! combiner, Spark's map-side combine). Keyed partials are then merged by key hash partition, one
//! partition per worker, and the result is sorted by key. Because chunks are contiguous and
//! merged in chunk order, and the reduce function is applied to values in event order within a
//! chunk, the result equals a single-threaded run whenever the function is associative (Spark
//! asks associative and commutative). Each worker releases the mapped pages of the events it has
//! passed every `RELEASE_STEP` (4 MiB) bytes and at the end of its chunk (`Releaser`; see
//! "Bounded resources" in the [module docs](super)), so the batch is never resident at once.
//!
//! Two terminals take a faster table for text keys (decided by a type test at build time, same
//! results): `words()` / `split_body` / `text` (and the SQL word count's `split` pieces, empty
//! ones included) straight into [`Fused::count_by_value`] count
//! in a `WordCounts` (a word of at most 8 bytes packed into a `u64` from the body, no `Text`
//! per word), and [`Fused::reduce_by_key`] with [`Text`] keys folds into a `TextTable`; see
//! `words.rs`.
//!
//! # Bad input and panics
//!
//! Text operators skip (and report as `non_utf8`) an event whose body is not UTF-8. If the
//! chain panics on a chunk, the chunk's accumulator is discarded and the chunk re-run one event
//! at a time under `catch_unwind`, each event's outputs buffered and folded only when it
//! completes; the events that panic are skipped and reported as `panic`. Reported events go to
//! the side output when one is configured.

use std::any::{Any, TypeId};
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::event::Event;

use super::context::{BatchEnv, Node, Releaser, StreamingContext};
use super::metrics::ErrorReason;
use super::stage::{Key, Workers};
use super::stream::DStream;
use super::text::{for_each_split_span, for_each_token, for_each_word, Combiner, Text};
use super::words::{TextTable, WordCounts};

/// One step of a fused chain: from an event, emit zero or more values (see the module docs).
/// Implemented by the adaptors of this module; implement it yourself for a custom first stage
/// and start a chain with [`Events::apply`].
pub trait EventFn: Send + Sync + 'static {
    /// What it emits.
    type Out: Send + 'static;
    /// Emits the values for `ev`; sets `*bad` to skip-and-report the event.
    fn run<E: FnMut(Self::Out)>(&self, ev: &Event, bad: &mut Option<ErrorReason>, emit: &mut E);
}

/// A predicate on events (the `filter` of [`Events`]).
pub trait EventPred: Send + Sync + 'static {
    /// Keeps the event when true.
    fn test(&self, ev: &Event) -> bool;
}

/// Keeps every event.
#[derive(Clone, Copy, Debug, Default)]
pub struct AllEvents;
impl EventPred for AllEvents {
    #[inline]
    fn test(&self, _: &Event) -> bool {
        true
    }
}

/// Both predicates.
pub struct And<A, B>(A, B);
impl<A: EventPred, B: EventPred> EventPred for And<A, B> {
    #[inline]
    fn test(&self, ev: &Event) -> bool {
        self.0.test(ev) && self.1.test(ev)
    }
}

/// A closure predicate.
pub struct PredFn<F>(F);
impl<F: Fn(&Event) -> bool + Send + Sync + 'static> EventPred for PredFn<F> {
    #[inline]
    fn test(&self, ev: &Event) -> bool {
        (self.0)(ev)
    }
}

/// The events of each batch (see the module docs).
#[derive(Clone)]
pub struct Events<Fl = AllEvents> {
    ctx: StreamingContext,
    pred: Arc<Fl>,
    desc: Vec<String>,
}

/// A filter in front of a root step.
pub struct Root<Fl, R> {
    pred: Arc<Fl>,
    step: R,
}
impl<Fl: EventPred, R: EventFn> EventFn for Root<Fl, R> {
    type Out = R::Out;
    #[inline]
    fn run<E: FnMut(R::Out)>(&self, ev: &Event, bad: &mut Option<ErrorReason>, emit: &mut E) {
        if self.pred.test(ev) {
            self.step.run(ev, bad, emit)
        }
    }
}

/// `Events::map`.
pub struct MapEv<F>(F);
impl<T: Send + 'static, F: Fn(&Event) -> T + Send + Sync + 'static> EventFn for MapEv<F> {
    type Out = T;
    #[inline]
    fn run<E: FnMut(T)>(&self, ev: &Event, _: &mut Option<ErrorReason>, emit: &mut E) {
        emit((self.0)(ev))
    }
}

/// `Events::flat_map`.
pub struct FlatMapEv<F>(F);
impl<I, F> EventFn for FlatMapEv<F>
where
    I: IntoIterator,
    I::Item: Send + 'static,
    F: Fn(&Event) -> I + Send + Sync + 'static,
{
    type Out = I::Item;
    #[inline]
    fn run<E: FnMut(I::Item)>(&self, ev: &Event, _: &mut Option<ErrorReason>, emit: &mut E) {
        for x in (self.0)(ev) {
            emit(x)
        }
    }
}

/// `Events::flat_map_with`.
pub struct FlatMapWith<F, T>(F, PhantomData<fn() -> T>);
impl<T, F> EventFn for FlatMapWith<F, T>
where
    T: Send + 'static,
    F: Fn(&Event, &mut dyn FnMut(T)) + Send + Sync + 'static,
{
    type Out = T;
    #[inline]
    fn run<E: FnMut(T)>(&self, ev: &Event, _: &mut Option<ErrorReason>, emit: &mut E) {
        (self.0)(ev, emit)
    }
}

/// How a text operator cuts a body.
#[derive(Clone, Copy, Debug)]
pub enum Split {
    /// Runs of non-ASCII-whitespace.
    Words,
    /// Non-empty tokens between occurrences of an ASCII byte.
    On(u8),
    /// Every piece between occurrences of an ASCII byte, empty ones included (SQL's
    /// `split(body, d)` unnested: `"a  b"` gives `a`, ``, `b`; an empty body one ``).
    Pieces(u8),
    /// The whole body.
    Whole,
}

/// `Events::words`, `Events::split_body`, `Events::text`: UTF-8 text keys.
pub struct TextEv(Split);
impl EventFn for TextEv {
    type Out = Text;
    #[inline]
    fn run<E: FnMut(Text)>(&self, ev: &Event, bad: &mut Option<ErrorReason>, emit: &mut E) {
        let Ok(s) = std::str::from_utf8(ev.body()) else {
            *bad = Some(ErrorReason::NonUtf8);
            return;
        };
        match self.0 {
            Split::Words => for_each_word(s, |w| emit(Text::new(w))),
            Split::On(d) => for_each_token(s, d, |w| emit(Text::new(w))),
            Split::Pieces(d) => for_each_split_span(s.as_bytes(), d, |a, b| {
                // SAFETY: cut at the ASCII byte `d`, so on character boundaries of `s`.
                emit(Text::new(unsafe { s.get_unchecked(a..b) }))
            }),
            Split::Whole => emit(Text::new(s)),
        }
    }
}

impl Events<AllEvents> {
    pub(crate) fn new(ctx: StreamingContext) -> Events<AllEvents> {
        Events {
            ctx,
            pred: Arc::new(AllEvents),
            desc: vec!["events".into()],
        }
    }
}

impl Events<AllEvents> {
    /// `count_by_value` of every piece of every body between `delim` bytes (ASCII), empty
    /// pieces included, in the word table — the SQL word count
    /// `CROSS JOIN UNNEST(split(body, d)) ... GROUP BY <that column>` with only `count(*)`.
    /// Registered as `events.<root>.<terminal>`, so the SQL front end keeps its pipeline
    /// fingerprint whichever path runs the query.
    pub(crate) fn count_pieces(
        &self,
        root: &str,
        terminal: &str,
        delim: u8,
    ) -> DStream<(Text, u64)> {
        debug_assert!(delim.is_ascii());
        self.root(root, TextEv(Split::Pieces(delim)))
            .count_text(terminal, Split::Pieces(delim))
    }
}

impl<Fl: EventPred> Events<Fl> {
    fn root<R: EventFn>(&self, desc: &str, step: R) -> Fused<Root<Fl, R>> {
        let mut d = self.desc.clone();
        d.push(desc.to_string());
        Fused {
            ctx: self.ctx.clone(),
            p: Arc::new(Root {
                pred: self.pred.clone(),
                step,
            }),
            desc: d,
        }
    }

    /// Keeps the events for which `f` is true.
    pub fn filter<F: Fn(&Event) -> bool + Send + Sync + 'static>(
        &self,
        f: F,
    ) -> Events<And<Fl, PredFn<F>>>
    where
        Fl: Clone,
    {
        let mut desc = self.desc.clone();
        desc.push("filter".into());
        Events {
            ctx: self.ctx.clone(),
            pred: Arc::new(And((*self.pred).clone(), PredFn(f))),
            desc,
        }
    }

    /// One value per event.
    pub fn map<T, F>(&self, f: F) -> Fused<Root<Fl, MapEv<F>>>
    where
        T: Send + 'static,
        F: Fn(&Event) -> T + Send + Sync + 'static,
    {
        self.root("map", MapEv(f))
    }

    /// Any number of owned values per event (an iterator that does not borrow the event; to
    /// emit values cut from the body use [`flat_map_with`](Self::flat_map_with) or the text
    /// operators).
    pub fn flat_map<I, F>(&self, f: F) -> Fused<Root<Fl, FlatMapEv<F>>>
    where
        I: IntoIterator,
        I::Item: Send + 'static,
        F: Fn(&Event) -> I + Send + Sync + 'static,
    {
        self.root("flat_map", FlatMapEv(f))
    }

    /// Any number of values per event, pushed through `emit` (may borrow from the event while
    /// computing them; no allocation).
    pub fn flat_map_with<T, F>(&self, f: F) -> Fused<Root<Fl, FlatMapWith<F, T>>>
    where
        T: Send + 'static,
        F: Fn(&Event, &mut dyn FnMut(T)) + Send + Sync + 'static,
    {
        self.root("flat_map_with", FlatMapWith(f, PhantomData))
    }

    /// The body's words (runs of non-whitespace) as [`Text`]; non-UTF-8 bodies are bad input.
    pub fn words(&self) -> Fused<Root<Fl, TextEv>> {
        self.root("words", TextEv(Split::Words))
    }

    /// The body's non-empty tokens between `delim` bytes (ASCII) as [`Text`].
    ///
    /// # Panics
    /// If `delim` is not ASCII.
    pub fn split_body(&self, delim: u8) -> Fused<Root<Fl, TextEv>> {
        assert!(delim.is_ascii(), "split_body: the delimiter must be ASCII");
        self.root(&format!("split_body({delim})"), TextEv(Split::On(delim)))
    }

    /// The whole body as [`Text`].
    pub fn text(&self) -> Fused<Root<Fl, TextEv>> {
        self.root("text", TextEv(Split::Whole))
    }

    /// A custom first step.
    pub fn apply<R: EventFn>(&self, desc: &str, step: R) -> Fused<Root<Fl, R>> {
        self.root(desc, step)
    }

    /// The number of (kept) events of each batch.
    pub fn count(&self) -> DStream<u64> {
        self.map(|_: &Event| ()).count()
    }

    /// The events themselves as a materialised stream (each a cheap handle on the take's
    /// bytes), e.g. for a stateful stage that reads headers.
    pub fn stream(&self) -> DStream<Event> {
        self.map(|e: &Event| e.clone()).stream()
    }
}

/// A fused stateless chain from `&Event` (see the module docs).
pub struct Fused<P> {
    ctx: StreamingContext,
    p: Arc<P>,
    desc: Vec<String>,
}

impl<P> Clone for Fused<P> {
    fn clone(&self) -> Self {
        Fused {
            ctx: self.ctx.clone(),
            p: self.p.clone(),
            desc: self.desc.clone(),
        }
    }
}

macro_rules! adaptor {
    ($name:ident) => {
        #[doc = concat!("Fused adaptor `", stringify!($name), "`.")]
        pub struct $name<P, F> {
            p: Arc<P>,
            f: F,
        }
    };
}
adaptor!(Map);
adaptor!(FlatMap);
adaptor!(Filter);
adaptor!(FilterMap);
adaptor!(MapValues);

impl<P: EventFn, U: Send + 'static, F: Fn(P::Out) -> U + Send + Sync + 'static> EventFn
    for Map<P, F>
{
    type Out = U;
    #[inline]
    fn run<E: FnMut(U)>(&self, ev: &Event, bad: &mut Option<ErrorReason>, emit: &mut E) {
        self.p.run(ev, bad, &mut |x| emit((self.f)(x)))
    }
}

impl<P, I, F> EventFn for FlatMap<P, F>
where
    P: EventFn,
    I: IntoIterator,
    I::Item: Send + 'static,
    F: Fn(P::Out) -> I + Send + Sync + 'static,
{
    type Out = I::Item;
    #[inline]
    fn run<E: FnMut(I::Item)>(&self, ev: &Event, bad: &mut Option<ErrorReason>, emit: &mut E) {
        self.p.run(ev, bad, &mut |x| {
            for y in (self.f)(x) {
                emit(y)
            }
        })
    }
}

impl<P: EventFn, F: Fn(&P::Out) -> bool + Send + Sync + 'static> EventFn for Filter<P, F> {
    type Out = P::Out;
    #[inline]
    fn run<E: FnMut(P::Out)>(&self, ev: &Event, bad: &mut Option<ErrorReason>, emit: &mut E) {
        self.p.run(ev, bad, &mut |x| {
            if (self.f)(&x) {
                emit(x)
            }
        })
    }
}

impl<P: EventFn, U: Send + 'static, F: Fn(P::Out) -> Option<U> + Send + Sync + 'static> EventFn
    for FilterMap<P, F>
{
    type Out = U;
    #[inline]
    fn run<E: FnMut(U)>(&self, ev: &Event, bad: &mut Option<ErrorReason>, emit: &mut E) {
        self.p.run(ev, bad, &mut |x| {
            if let Some(y) = (self.f)(x) {
                emit(y)
            }
        })
    }
}

impl<P, K, V, U, F> EventFn for MapValues<P, F>
where
    P: EventFn<Out = (K, V)>,
    K: Send + 'static,
    U: Send + 'static,
    F: Fn(V) -> U + Send + Sync + 'static,
{
    type Out = (K, U);
    #[inline]
    fn run<E: FnMut((K, U))>(&self, ev: &Event, bad: &mut Option<ErrorReason>, emit: &mut E) {
        self.p.run(ev, bad, &mut |(k, v)| emit((k, (self.f)(v))))
    }
}

/// Runs `p` over the batch's events, one contiguous chunk per worker, folding into one
/// accumulator per chunk (in chunk order). Bad and panicking events are reported to `env`.
pub(crate) fn run_chunks<P, A, I, G>(env: &BatchEnv<'_>, p: &P, init: I, fold: G) -> Vec<A>
where
    P: EventFn,
    A: Send,
    I: Fn() -> A + Sync,
    G: Fn(&mut A, P::Out) + Sync,
{
    let events = env.events;
    let workers = env.workers.for_items(events.len());
    let results = workers.run(|i| {
        let offset = events.len() * i / workers.count();
        let chunk = workers.chunk(events, i);
        let mut bads: Vec<(usize, ErrorReason)> = Vec::new();
        let fast = catch_unwind(AssertUnwindSafe(|| {
            let mut acc = init();
            let mut bads = Vec::new();
            let mut rel = Releaser::new(env, offset);
            for (j, ev) in chunk.iter().enumerate() {
                let mut bad = None;
                p.run(ev, &mut bad, &mut |x| fold(&mut acc, x));
                if let Some(r) = bad {
                    bads.push((offset + j, r));
                }
                rel.passed(offset + j, ev.encoded_len());
            }
            rel.finish(offset + chunk.len());
            (acc, bads)
        }));
        let acc = match fast {
            Ok((acc, b)) => {
                bads = b;
                acc
            }
            Err(_) => {
                let mut acc = init();
                let mut buf: Vec<P::Out> = Vec::new();
                for (j, ev) in chunk.iter().enumerate() {
                    buf.clear();
                    let mut bad = None;
                    let r = catch_unwind(AssertUnwindSafe(|| {
                        p.run(ev, &mut bad, &mut |x| buf.push(x));
                    }));
                    match r {
                        Ok(()) => {
                            for x in buf.drain(..) {
                                fold(&mut acc, x);
                            }
                            if let Some(r) = bad {
                                bads.push((offset + j, r));
                            }
                        }
                        Err(_) => {
                            buf.clear();
                            bads.push((offset + j, ErrorReason::Panic));
                        }
                    }
                }
                acc
            }
        };
        (acc, bads)
    });
    let mut out = Vec::with_capacity(results.len());
    for (acc, bads) in results {
        if !bads.is_empty() {
            env.mark_bad(bads);
        }
        out.push(acc);
    }
    out
}

/// Merges per-chunk keyed partials (in chunk order) by hash partition, one per worker, and
/// returns the entries sorted by key.
pub(crate) fn merge_keyed<K, V, F>(
    workers: Workers,
    partials: Vec<Combiner<K, V>>,
    f: &F,
) -> Vec<(K, V)>
where
    K: Key,
    V: Clone + Send + Sync,
    F: Fn(V, V) -> V + Sync,
{
    let mut out: Vec<(K, V)>;
    if partials.len() == 1 {
        out = partials
            .into_iter()
            .next()
            .map(Combiner::into_entries)
            .unwrap_or_default();
    } else {
        let n = workers.count();
        // Route every entry to its partition, keeping chunk order within a partition.
        let mut parts: Vec<Vec<(K, V)>> = (0..n).map(|_| Vec::new()).collect();
        for m in partials {
            for (h, kv) in m.into_hashed() {
                parts[((h >> 7) % n as u64) as usize].push(kv);
            }
        }
        let parts: Vec<std::sync::Mutex<Vec<(K, V)>>> =
            parts.into_iter().map(std::sync::Mutex::new).collect();
        let merged = workers.run(|i| {
            let entries = std::mem::take(&mut *parts[i].lock().unwrap_or_else(|e| e.into_inner()));
            let mut m: Combiner<K, V> = Combiner::with_capacity(entries.len());
            for (k, v) in entries {
                combine(&mut m, k, v, f);
            }
            m
        });
        out = Vec::with_capacity(merged.iter().map(|m| m.len()).sum());
        for m in merged {
            out.extend(m.into_entries());
        }
    }
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Folds `v` into the entry of `k`. The old value is cloned rather than moved out so that a
/// panicking `f` leaves the table intact (the chunk is then re-run; see `run_chunks`); for the
/// numbers most reductions combine, the clone is a copy.
#[inline(always)]
pub(crate) fn combine<K: Key, V: Clone, F: Fn(V, V) -> V>(
    m: &mut Combiner<K, V>,
    k: K,
    v: V,
    f: &F,
) {
    m.upsert(k, v, |slot, v| *slot = f(slot.clone(), v));
}

impl<P: EventFn> Fused<P> {
    fn then<Q: EventFn>(&self, desc: &str, q: Q) -> Fused<Q> {
        let mut d = self.desc.clone();
        d.push(desc.to_string());
        Fused {
            ctx: self.ctx.clone(),
            p: Arc::new(q),
            desc: d,
        }
    }

    fn register(&self, terminal: &str) -> String {
        self.ctx
            .describe(format!("{}.{terminal}", self.desc.join(".")))
    }

    /// One value per value.
    pub fn map<U: Send + 'static, F: Fn(P::Out) -> U + Send + Sync + 'static>(
        &self,
        f: F,
    ) -> Fused<Map<P, F>> {
        self.then(
            "map",
            Map {
                p: self.p.clone(),
                f,
            },
        )
    }

    /// Any number of values per value.
    pub fn flat_map<I, F>(&self, f: F) -> Fused<FlatMap<P, F>>
    where
        I: IntoIterator,
        I::Item: Send + 'static,
        F: Fn(P::Out) -> I + Send + Sync + 'static,
    {
        self.then(
            "flat_map",
            FlatMap {
                p: self.p.clone(),
                f,
            },
        )
    }

    /// Keeps the values for which `f` is true.
    pub fn filter<F: Fn(&P::Out) -> bool + Send + Sync + 'static>(
        &self,
        f: F,
    ) -> Fused<Filter<P, F>> {
        self.then(
            "filter",
            Filter {
                p: self.p.clone(),
                f,
            },
        )
    }

    /// Maps and keeps the `Some`s.
    pub fn filter_map<U: Send + 'static, F: Fn(P::Out) -> Option<U> + Send + Sync + 'static>(
        &self,
        f: F,
    ) -> Fused<FilterMap<P, F>> {
        self.then(
            "filter_map",
            FilterMap {
                p: self.p.clone(),
                f,
            },
        )
    }

    /// Pairs every value with the key `f` computes.
    #[allow(clippy::type_complexity)]
    pub fn key_by<K, F>(&self, f: F) -> Fused<Map<P, impl Fn(P::Out) -> (K, P::Out) + Send + Sync>>
    where
        K: Send + 'static,
        F: Fn(&P::Out) -> K + Send + Sync + 'static,
    {
        self.then(
            "key_by",
            Map {
                p: self.p.clone(),
                f: move |x| (f(&x), x),
            },
        )
    }

    /// Counts the values of each batch (one element per batch, also when 0).
    pub fn count(&self) -> DStream<u64> {
        let id = self.register("count");
        let p = self.p.clone();
        let node = Node::new(move |env: &BatchEnv<'_>| {
            let parts = run_chunks(env, &*p, || 0u64, |n, _| *n += 1);
            Arc::new(vec![parts.iter().sum()])
        });
        DStream::from_node(&self.ctx, self.ctx.add_node(node), id)
    }

    /// Folds the batch's values with `f` (associative); no element for an empty batch.
    pub fn reduce<F>(&self, f: F) -> DStream<P::Out>
    where
        P::Out: Sync,
        F: Fn(P::Out, P::Out) -> P::Out + Send + Sync + 'static,
    {
        let id = self.register("reduce");
        let p = self.p.clone();
        let f = Arc::new(f);
        let node = Node::new(move |env: &BatchEnv<'_>| {
            let parts = run_chunks(
                env,
                &*p,
                || None::<P::Out>,
                |acc, x| {
                    *acc = Some(match acc.take() {
                        Some(a) => f(a, x),
                        None => x,
                    })
                },
            );
            let mut total: Option<P::Out> = None;
            for x in parts.into_iter().flatten() {
                total = Some(match total.take() {
                    Some(a) => f(a, x),
                    None => x,
                });
            }
            Arc::new(total.into_iter().collect())
        });
        DStream::from_node(&self.ctx, self.ctx.add_node(node), id)
    }

    /// Materialises the values of each batch, in event order.
    pub fn stream(&self) -> DStream<P::Out>
    where
        P::Out: Sync,
    {
        let id = self.register("stream");
        let p = self.p.clone();
        let node = Node::new(move |env: &BatchEnv<'_>| {
            let parts = run_chunks(env, &*p, Vec::new, |v: &mut Vec<P::Out>, x| v.push(x));
            let mut out = Vec::with_capacity(parts.iter().map(|v| v.len()).sum());
            for v in parts {
                out.extend(v);
            }
            Arc::new(out)
        });
        DStream::from_node(&self.ctx, self.ctx.add_node(node), id)
    }
}

impl<P: EventFn> Fused<P>
where
    P::Out: Key,
{
    /// `(value, occurrences)` per distinct value of the batch, sorted by value.
    pub fn count_by_value(&self) -> DStream<(P::Out, u64)> {
        // `events.words()` / `split_body` / `text` straight into the count: the word table
        // (no `Text` per word; see `words.rs`). The type test is decided at compile time.
        if let Some(root) = (&*self.p as &dyn Any).downcast_ref::<Root<AllEvents, TextEv>>() {
            let counted: Box<dyn Any> = Box::new(self.count_text("count_by_value", root.step.0));
            if let Ok(d) = counted.downcast::<DStream<(P::Out, u64)>>() {
                return *d;
            }
        }
        let id = self.register("count_by_value");
        let p = self.p.clone();
        let workers = self.ctx.inner.config.worker_count();
        let node = Node::new(move |env: &BatchEnv<'_>| {
            let parts = run_chunks(env, &*p, Combiner::<P::Out, u64>::default, |m, k| {
                *m.entry_or_insert_with(k, || 0) += 1
            });
            Arc::new(merge_keyed(Workers::new(workers), parts, &|a, b| a + b))
        });
        DStream::from_node(&self.ctx, self.ctx.add_node(node), id)
    }
}

impl<P: EventFn> Fused<P> {
    /// `count_by_value` of a text root over every event, counted in [`WordCounts`].
    fn count_text(&self, terminal: &str, split: Split) -> DStream<(Text, u64)> {
        let id = self.register(terminal);
        let hint = AtomicUsize::new(0);
        let node = Node::new(move |env: &BatchEnv<'_>| {
            let events = env.events;
            let workers = env.workers.for_items(events.len());
            // Size the tables for the previous batch's distinct words (no growth when the
            // vocabulary is steady).
            let cap = hint.load(Ordering::Relaxed);
            let parts = workers.run(|i| {
                let offset = events.len() * i / workers.count();
                let mut counts = WordCounts::with_capacity(cap);
                let mut bads = Vec::new();
                let chunk = workers.chunk(events, i);
                let mut rel = Releaser::new(env, offset);
                for (j, ev) in chunk.iter().enumerate() {
                    match std::str::from_utf8(ev.body()) {
                        Ok(s) => match split {
                            Split::Words => counts.add_words(s),
                            Split::On(d) => counts.add_tokens(s, d),
                            Split::Pieces(d) => counts.add_split(s, d),
                            Split::Whole => counts.add(s),
                        },
                        Err(_) => bads.push((offset + j, ErrorReason::NonUtf8)),
                    }
                    rel.passed(offset + j, ev.encoded_len());
                }
                rel.finish(offset + chunk.len());
                (counts, bads)
            });
            let mut all: Option<WordCounts> = None;
            let mut most = 0;
            for (counts, bads) in parts {
                if !bads.is_empty() {
                    env.mark_bad(bads);
                }
                most = most.max(counts.len());
                match &mut all {
                    None => all = Some(counts),
                    Some(a) => a.merge(counts),
                }
            }
            hint.store(most, Ordering::Relaxed);
            Arc::new(all.map(WordCounts::into_sorted).unwrap_or_default())
        });
        DStream::from_node(&self.ctx, self.ctx.add_node(node), id)
    }
}

impl<P, K, V> Fused<P>
where
    P: EventFn<Out = (K, V)>,
    K: Key,
    V: Clone + Send + Sync + 'static,
{
    /// Applies `f` to every value, keeping keys.
    pub fn map_values<U: Send + 'static, F: Fn(V) -> U + Send + Sync + 'static>(
        &self,
        f: F,
    ) -> Fused<MapValues<P, F>> {
        self.then(
            "map_values",
            MapValues {
                p: self.p.clone(),
                f,
            },
        )
    }

    /// Combines the values of each key with `f` (associative), sharded (see the module docs);
    /// the result is sorted by key.
    pub fn reduce_by_key<F>(&self, f: F) -> DStream<(K, V)>
    where
        F: Fn(V, V) -> V + Send + Sync + 'static,
    {
        if TypeId::of::<K>() == TypeId::of::<Text>() {
            let counted: Box<dyn Any> = Box::new(self.reduce_text_keys(f));
            if let Ok(d) = counted.downcast::<DStream<(K, V)>>() {
                return *d;
            }
            unreachable!("K is Text");
        }
        let id = self.register("reduce_by_key");
        let p = self.p.clone();
        let f = Arc::new(f);
        let workers = self.ctx.inner.config.worker_count();
        let node = Node::new(move |env: &BatchEnv<'_>| {
            let parts = run_chunks(env, &*p, Combiner::<K, V>::default, |m, (k, v)| {
                combine(m, k, v, &*f)
            });
            Arc::new(merge_keyed(Workers::new(workers), parts, &*f))
        });
        DStream::from_node(&self.ctx, self.ctx.add_node(node), id)
    }

    /// `reduce_by_key` when `K` is [`Text`]: the same chunks, fold order and panic handling
    /// (`run_chunks`), folded into a [`TextTable`] (short keys packed into one `u64`).
    fn reduce_text_keys<F>(&self, f: F) -> DStream<(Text, V)>
    where
        F: Fn(V, V) -> V + Send + Sync + 'static,
    {
        let id = self.register("reduce_by_key");
        let p = self.p.clone();
        let hint = AtomicUsize::new(0);
        let node = Node::new(move |env: &BatchEnv<'_>| {
            let cap = hint.load(Ordering::Relaxed);
            let parts = run_chunks(
                env,
                &*p,
                || TextTable::<V>::with_capacity(cap),
                |m, (k, v)| {
                    // Decided at compile time: this function only runs when `K` is `Text`.
                    if let Some(k) = (&k as &dyn Any).downcast_ref::<Text>() {
                        m.fold(k, v, &f)
                    }
                },
            );
            let mut all: Option<TextTable<V>> = None;
            let mut most = 0;
            for part in parts {
                most = most.max(part.len());
                match &mut all {
                    None => all = Some(part),
                    Some(a) => a.merge(part, &f),
                }
            }
            hint.store(most, Ordering::Relaxed);
            Arc::new(all.map(TextTable::into_sorted).unwrap_or_default())
        });
        DStream::from_node(&self.ctx, self.ctx.add_node(node), id)
    }
}
