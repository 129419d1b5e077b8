//! Running a compiled [`Plan`] on the pipeline's operators.
//!
//! * **Fused path** — a grouping query whose only aggregate is `count(*)` or `count(x)` and that
//!   does not read `proc_time` (the word count, "requests per status", "errors per host") runs
//!   as the hand-written pipeline does: one [`EventFn`] per event (filter, `UNNEST`, group key)
//!   started with [`Events::apply`], then [`Fused::reduce_by_key`] — sharded, map-side combined,
//!   with [`Value`] keys (strings inline up to 22 bytes: a word allocates nothing). `HAVING`,
//!   the `SELECT` list, `ORDER BY` and `LIMIT` then run once per group.
//!   The plain word count — `count(*)` alone, grouped by the bare `UNNEST` column of
//!   `UNNEST(split(body, d))` with `d` one ASCII byte, no `WHERE` — goes one step further: it
//!   runs on the hand-written word count's own table (`Events::count_pieces`, the packed-`u64`
//!   `WordCounts` of `words.rs`), which counts `split`'s pieces — empty ones included, as SQL's
//!   `split` yields them — straight from the body, with no [`Value`] per word. Its result,
//!   `(word, count)` sorted by word, is exactly what `reduce_by_key` over `Value::Str` keys
//!   gives (one string type, so `Value` order is string order), and a non-UTF-8 body is skipped
//!   and reported as `non_utf8` the same way.
//! * **Windowed path** — a windowed `GROUP BY`: the events (paired with their batch time, for
//!   `proc_time`) go into [`DStream::event_time_window_fold`] with key = the group keys
//!   ([`Keys`]) and value = one accumulator per aggregate: each row updates the accumulators of
//!   its (pane, group) in place, so a row allocates nothing (no key vector, no accumulator
//!   vector, no one-element distinct set — the accumulators of a group are made once per batch
//!   chunk and pane). When every aggregate has a fixed-size state (`count`, `sum`, `avg`,
//!   `min`/`max` of a `BIGINT`) the accumulators are one inline [`Flat`] (typed slots in the
//!   map entry, no heap, a precompiled slot per aggregate; the snapshot bytes stay those of
//!   `Vec<Acc>`), and a single group key is a bare [`Value`] ([`Key1`]); a value a typed slot
//!   cannot hold turns that group generic. The window results of a batch are then finished
//!   per window (`HAVING`, `SELECT`, `ORDER BY ... LIMIT` per window). A query whose only aggregate is a count
//!   (trending words, errors per host per minute) uses a plain `u64` value and a [`Value`] key
//!   for one group key, as a hand-written window count would.
//! * **General path** — everything else: the batch's events (cheap handles on the take) go
//!   through one [`DStream::transform`], which shards them over the pipeline's workers; each
//!   worker folds its contiguous chunk into a hash map of group key ([`Keys`]) → accumulators
//!   (mutated in place), the chunk maps are merged in chunk order, and the groups finished as
//!   above.
//!
//! Per row on the accumulator paths: group keys are [`Keys`] — inline up to three values,
//! strings inline up to 22 bytes — so building and probing a key allocates nothing;
//! `count(DISTINCT x)` probes its set with the borrowed value ([`AsVal`]) and makes an owned
//! copy only for a value the set does not hold yet; `min`/`max` copy only a new extreme; and,
//! under `UNNEST`, an aggregate argument that does not read the `UNNEST` column (the host of a
//! line's words) is evaluated once per event ([`Hoist`]). `approx_count_distinct` keeps a
//! HyperLogLog sketch (`hll.rs`).
//!
//! Both paths count a body that is not UTF-8 under a query reading `body` as bad input
//! (`non_utf8`) and skip the event; the fused path also sends it to the side output.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use crate::event::Event;
use crate::pipeline::fused::EventFn;
use crate::pipeline::metrics::ErrorReason;
use crate::pipeline::{DStream, FastMap, Key, StageContext, StreamingContext};

use super::compile::{AggKind, AggSpec, Cx, Ex, Plan, Shape};
use super::func::split_each;
use super::hll::Hll;
use super::value::{AsVal, Row, Val, Value};
use super::{EmitMode, SqlOptions};
use crate::pipeline::event_time::{parse_timestamp, Emit, EventTime, Timed, Windows};
use crate::pipeline::{Persist, SnapshotError, SnapshotReader};

/// Calls `f` with every row the event yields (after `WHERE` and `UNNEST`). Returns false if
/// the event is bad input (non-UTF-8 body under a query reading `body`).
#[inline]
pub(crate) fn for_each_row(
    plan: &Plan,
    ev: &Event,
    batch_ms: i64,
    f: &mut dyn FnMut(&Cx<'_>),
) -> bool {
    for_each_row_ev(plan, ev, batch_ms, &mut |_, cx| f(cx))
}

/// [`for_each_row`], also passing the event's own scope (no `UNNEST` column) with each row:
/// what an expression that does not read the `UNNEST` column can be evaluated on once per
/// event (see [`Hoist`]).
#[inline]
pub(crate) fn for_each_row_ev<'e>(
    plan: &Plan,
    ev: &'e Event,
    batch_ms: i64,
    f: &mut dyn FnMut(&Cx<'e>, &Cx<'_>),
) -> bool {
    let body = if plan.uses.body {
        match std::str::from_utf8(ev.body()) {
            Ok(s) => s,
            Err(_) => return false,
        }
    } else {
        ""
    };
    let cx = Cx {
        ev: Some(ev),
        body,
        word: None,
        batch_ms,
        cols: &[],
    };
    if let Some(p) = &plan.pre_filter {
        if !p.test(&cx) {
            return true;
        }
    }
    match &plan.unnest {
        None => f(&cx, &cx),
        Some(u) => {
            if let Val::Str(s) = u.src.eval(&cx) {
                split_each(&s, &u.delim, |w| {
                    let cx2 = Cx {
                        ev: Some(ev),
                        body,
                        word: Some(w),
                        batch_ms,
                        cols: &[],
                    };
                    if plan.post_filter.as_ref().is_none_or(|p| p.test(&cx2)) {
                        f(&cx, &cx2)
                    }
                });
            }
        }
    }
    true
}

/// A grouping-key type for the fused path.
pub(crate) trait GroupKey: Key {
    fn make(keys: &[Ex], cx: &Cx<'_>) -> Self;
    fn push_into(self, out: &mut Vec<Value>);
}
impl GroupKey for Value {
    #[inline]
    fn make(keys: &[Ex], cx: &Cx<'_>) -> Value {
        keys[0].eval(cx).to_value()
    }
    fn push_into(self, out: &mut Vec<Value>) {
        out.push(self)
    }
}
impl GroupKey for Keys {
    #[inline]
    fn make(keys: &[Ex], cx: &Cx<'_>) -> Keys {
        let v = |i: usize| keys[i].eval(cx).to_value();
        match keys.len() {
            1 => Keys::One(v(0)),
            2 => Keys::Two(v(0), v(1)),
            3 => Keys::Three(v(0), v(1), v(2)),
            _ => Keys::Many(keys.iter().map(|k| k.eval(cx).to_value()).collect()),
        }
    }
    fn push_into(self, out: &mut Vec<Value>) {
        match self {
            Keys::One(a) => out.push(a),
            Keys::Two(a, b) => out.extend([a, b]),
            Keys::Three(a, b, c) => out.extend([a, b, c]),
            Keys::Many(v) => out.extend(v),
        }
    }
}

/// The group keys of a row, inline up to three (no `Vec` per row; a string of up to 22 bytes
/// is inline in its [`Value`] too). One query's keys all have the same arity, so the derived
/// order is the keys' lexicographic order. Snapshot encoding: that of `Vec<Value>` (`u64` count,
/// then the values), as before this type existed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Keys {
    One(Value),
    Two(Value, Value),
    Three(Value, Value, Value),
    /// Four or more keys, or none (a global aggregate: an empty box allocates nothing).
    Many(Box<[Value]>),
}

impl Keys {
    fn from_vec(mut v: Vec<Value>) -> Keys {
        match v.len() {
            1 => Keys::One(v.pop().expect("one")),
            2 | 3 => {
                let c = if v.len() == 3 { v.pop() } else { None };
                let b = v.pop().expect("two");
                let a = v.pop().expect("two");
                match c {
                    Some(c) => Keys::Three(a, b, c),
                    None => Keys::Two(a, b),
                }
            }
            _ => Keys::Many(v.into_boxed_slice()),
        }
    }
    fn len(&self) -> usize {
        match self {
            Keys::One(_) => 1,
            Keys::Two(..) => 2,
            Keys::Three(..) => 3,
            Keys::Many(v) => v.len(),
        }
    }
    fn each(&self, mut f: impl FnMut(&Value)) {
        match self {
            Keys::One(a) => f(a),
            Keys::Two(a, b) => {
                f(a);
                f(b)
            }
            Keys::Three(a, b, c) => {
                f(a);
                f(b);
                f(c)
            }
            Keys::Many(v) => v.iter().for_each(f),
        }
    }
}

impl Persist for Keys {
    fn persist(&self, out: &mut Vec<u8>) {
        (self.len() as u64).persist(out);
        self.each(|v| v.persist(out));
    }
    fn restore(r: &mut SnapshotReader<'_>) -> Result<Self, SnapshotError> {
        Ok(Keys::from_vec(r.read()?))
    }
}

/// A single group key on the windowed accumulator path: just the [`Value`] (a third of
/// [`Keys`]' size in the window map's entries). Snapshot encoding: that of [`Keys::One`], so
/// a checkpoint restores whichever of the two wrote it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Key1(Value);

impl GroupKey for Key1 {
    #[inline]
    fn make(keys: &[Ex], cx: &Cx<'_>) -> Key1 {
        Key1(keys[0].eval(cx).to_value())
    }
    fn push_into(self, out: &mut Vec<Value>) {
        out.push(self.0)
    }
}

impl Persist for Key1 {
    fn persist(&self, out: &mut Vec<u8>) {
        1u64.persist(out);
        self.0.persist(out);
    }
    fn restore(r: &mut SnapshotReader<'_>) -> Result<Self, SnapshotError> {
        match Keys::restore(r)? {
            Keys::One(v) => Ok(Key1(v)),
            k => Err(r.invalid(format!("{} group keys, expected 1", k.len()))),
        }
    }
}

/// The fused path's per-event step: emits `(group key, 1)` per row (`0` for `count(x)` with a
/// null `x`, so the group still exists).
pub(crate) struct SqlStep<K> {
    plan: Arc<Plan>,
    _k: std::marker::PhantomData<fn() -> K>,
}

impl<K: GroupKey> EventFn for SqlStep<K> {
    type Out = (K, u64);
    #[inline]
    fn run<E: FnMut((K, u64))>(&self, ev: &Event, bad: &mut Option<ErrorReason>, emit: &mut E) {
        let Shape::Aggregate { keys, aggs, .. } = &self.plan.shape else {
            return;
        };
        let arg = aggs[0].arg.as_ref();
        // proc_time is not read on this path (checked by `fusable`).
        let ok = for_each_row(&self.plan, ev, 0, &mut |cx| {
            let n = match arg {
                None => 1,
                Some(a) => !a.eval(cx).is_null() as u64,
            };
            emit((K::make(keys, cx), n))
        });
        if !ok {
            *bad = Some(ErrorReason::NonUtf8);
        }
    }
}

/// True when the plan runs on the fused path (see the module docs).
pub(crate) fn fusable(plan: &Plan) -> bool {
    match &plan.shape {
        Shape::Aggregate { keys, aggs, .. } => {
            !keys.is_empty()
                && aggs.len() == 1
                && matches!(aggs[0].kind, AggKind::CountStar | AggKind::Count)
                && !plan.uses.proc_time
                && plan.window.is_none()
        }
        Shape::Project { .. } => false,
    }
}

/// The delimiter when the plan is the plain SQL word count and runs on the hand-written word
/// count's table (see the module docs): `count(*)` as the only aggregate, the bare `UNNEST`
/// column as the only group key, `UNNEST(split(body, d))` with `d` one ASCII byte, no `WHERE`,
/// no window. `HAVING`, the `SELECT` list, `ORDER BY` and `LIMIT` are free (they run per group).
pub(crate) fn word_table_delim(plan: &Plan) -> Option<u8> {
    let Shape::Aggregate { keys, aggs, .. } = &plan.shape else {
        return None;
    };
    let u = plan.unnest.as_ref()?;
    let ok = fusable(plan)
        && keys.len() == 1
        && plan.key_is_unnest_col
        && aggs.len() == 1
        && aggs[0].kind == AggKind::CountStar
        && plan.pre_filter.is_none()
        && plan.post_filter.is_none()
        && u.src_is_body
        && u.delim.len() == 1
        && u.delim.as_bytes()[0].is_ascii();
    ok.then(|| u.delim.as_bytes()[0])
}

/// Builds the plan's result stream on `ctx`.
pub(crate) fn attach(
    plan: Arc<Plan>,
    opts: &SqlOptions,
    ctx: &StreamingContext,
    label: &str,
) -> DStream<Row> {
    let out = if plan.window.is_some() {
        windowed(plan, opts, ctx)
    } else if let Some(d) = word_table_delim(&plan) {
        // Same fingerprint entry as the `fused` path below (`events.sql.reduce_by_key`).
        let p = plan.clone();
        ctx.events()
            .count_pieces("sql", "reduce_by_key", d)
            .transform(move |groups, cx| {
                let batch_ms = cx.batch_time_ms();
                let rows = groups
                    .iter()
                    .filter_map(|(w, n)| {
                        group_row(
                            &p,
                            &[Value::Str(w.clone()), Value::Int(*n as i64)],
                            batch_ms,
                        )
                    })
                    .collect();
                finish(&p, rows)
            })
    } else if fusable(&plan) {
        let Shape::Aggregate { keys, .. } = &plan.shape else {
            unreachable!("fusable")
        };
        if keys.len() == 1 {
            fused::<Value>(plan, ctx)
        } else {
            fused::<Keys>(plan, ctx)
        }
    } else {
        let p = plan.clone();
        ctx.events()
            .stream()
            .transform(move |events, cx| general(&p, events, cx))
    };
    out.named(label)
}

fn fused<K: GroupKey>(plan: Arc<Plan>, ctx: &StreamingContext) -> DStream<Row> {
    let step = SqlStep::<K> {
        plan: plan.clone(),
        _k: std::marker::PhantomData,
    };
    ctx.events()
        .apply("sql", step)
        .reduce_by_key(|a, b| a + b)
        .transform(move |groups, cx| {
            let mut rows = Vec::with_capacity(groups.len());
            for (k, n) in groups {
                let mut cols = Vec::with_capacity(4);
                k.clone().push_into(&mut cols);
                cols.push(Value::Int(*n as i64));
                if let Some(r) = group_row(&plan, &cols, cx.batch_time_ms()) {
                    rows.push(r);
                }
            }
            finish(&plan, rows)
        })
}

/// HAVING and the SELECT list of one group (`cols` = keys ++ aggregates).
fn group_row(plan: &Plan, cols: &[Value], batch_ms: i64) -> Option<Vec<Value>> {
    let Shape::Aggregate {
        having, cols: out, ..
    } = &plan.shape
    else {
        return None;
    };
    let cx = Cx {
        ev: None,
        body: "",
        word: None,
        batch_ms,
        cols,
    };
    if let Some(h) = having {
        if !h.test(&cx) {
            return None;
        }
    }
    Some(out.iter().map(|e| e.eval(&cx).to_value()).collect())
}

/// ORDER BY, LIMIT, hidden sort columns dropped, rows named.
fn finish(plan: &Plan, mut rows: Vec<Vec<Value>>) -> Vec<Row> {
    if !plan.order.is_empty() {
        rows.sort_by(|a, b| {
            for k in &plan.order {
                let (x, y) = (&a[k.col], &b[k.col]);
                let o = match (x.is_null(), y.is_null()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) => {
                        if k.nulls_first {
                            std::cmp::Ordering::Less
                        } else {
                            std::cmp::Ordering::Greater
                        }
                    }
                    (false, true) => {
                        if k.nulls_first {
                            std::cmp::Ordering::Greater
                        } else {
                            std::cmp::Ordering::Less
                        }
                    }
                    (false, false) => {
                        let o = x.cmp(y);
                        if k.desc {
                            o.reverse()
                        } else {
                            o
                        }
                    }
                };
                if o.is_ne() {
                    return o;
                }
            }
            std::cmp::Ordering::Equal
        });
    }
    if let Some(n) = plan.limit {
        rows.truncate(n);
    }
    let visible = plan.names.len();
    rows.into_iter()
        .map(|mut v| {
            v.truncate(visible);
            Row {
                names: plan.names.clone(),
                values: v,
            }
        })
        .collect()
}

/// An aggregate's running state.
#[derive(Debug, Clone)]
pub(crate) enum Acc {
    Count(u64),
    Distinct(std::collections::HashSet<Value, crate::pipeline::FastBuildHasher>),
    /// `approx_count_distinct` (boxed: the other states are small).
    Approx(Box<Hll>),
    SumInt(i128, bool),
    SumFloat(f64, bool),
    Min(Option<Value>),
    Max(Option<Value>),
    Avg(f64, u64),
}

impl Acc {
    pub(crate) fn new(spec: &AggSpec) -> Acc {
        Acc::of(spec.kind, spec.arg_ty)
    }

    /// Fresh state of an aggregate of `kind` over an argument of type `arg_ty`.
    pub(crate) fn of(kind: AggKind, arg_ty: super::value::SqlType) -> Acc {
        match kind {
            AggKind::CountStar | AggKind::Count => Acc::Count(0),
            AggKind::CountDistinct => Acc::Distinct(Default::default()),
            AggKind::ApproxDistinct => Acc::Approx(Box::default()),
            AggKind::Sum => {
                if arg_ty == super::value::SqlType::Float {
                    Acc::SumFloat(0.0, false)
                } else {
                    Acc::SumInt(0, false)
                }
            }
            AggKind::Min => Acc::Min(None),
            AggKind::Max => Acc::Max(None),
            AggKind::Avg => Acc::Avg(0.0, 0),
        }
    }

    #[inline]
    pub(crate) fn update(&mut self, v: Option<Val<'_>>) {
        let v = match v {
            None => {
                // count(*)
                if let Acc::Count(n) = self {
                    *n += 1;
                }
                return;
            }
            Some(Val::Null) => return,
            Some(v) => v,
        };
        match self {
            Acc::Count(n) => *n += 1,
            Acc::Distinct(s) => {
                // Probe with the borrowed value: no owned copy when it is already there.
                if !s.contains(&v as &dyn AsVal) {
                    s.insert(v.to_value());
                }
            }
            Acc::Approx(h) => h.insert(&v),
            Acc::SumInt(s, any) => {
                if let Val::Int(i) = v {
                    *s += i as i128;
                    *any = true;
                }
            }
            Acc::SumFloat(s, any) => {
                if let Some(x) = v.as_f64() {
                    *s += x;
                    *any = true;
                }
            }
            Acc::Min(m) => {
                if m.as_ref().is_none_or(|cur| {
                    super::value::cmp_val(&v, &cur.as_val()).is_some_and(|o| o.is_lt())
                }) {
                    *m = Some(v.to_value());
                }
            }
            Acc::Max(m) => {
                if m.as_ref().is_none_or(|cur| {
                    super::value::cmp_val(&v, &cur.as_val()).is_some_and(|o| o.is_gt())
                }) {
                    *m = Some(v.to_value());
                }
            }
            Acc::Avg(s, n) => {
                if let Some(x) = v.as_f64() {
                    *s += x;
                    *n += 1;
                }
            }
        }
    }

    pub(crate) fn merge(&mut self, other: Acc) {
        match (self, other) {
            (Acc::Count(a), Acc::Count(b)) => *a += b,
            (Acc::Distinct(a), Acc::Distinct(b)) => {
                if a.len() < b.len() {
                    let small = std::mem::replace(a, b);
                    a.extend(small);
                } else {
                    a.extend(b)
                }
            }
            (Acc::Approx(a), Acc::Approx(b)) => a.merge(&b),
            (Acc::SumInt(a, x), Acc::SumInt(b, y)) => {
                *a += b;
                *x |= y;
            }
            (Acc::SumFloat(a, x), Acc::SumFloat(b, y)) => {
                *a += b;
                *x |= y;
            }
            (Acc::Min(a), Acc::Min(Some(b))) if a.as_ref().is_none_or(|x| b < *x) => *a = Some(b),
            (Acc::Max(a), Acc::Max(Some(b))) if a.as_ref().is_none_or(|x| b > *x) => *a = Some(b),
            (Acc::Avg(a, n), Acc::Avg(b, m)) => {
                *a += b;
                *n += m;
            }
            _ => {}
        }
    }

    /// The SQL result: `NULL` for sum/min/max/avg of no values, and for an integer sum
    /// beyond BIGINT (see the dialect docs).
    pub(crate) fn finish(self) -> Value {
        match self {
            Acc::Min(m) | Acc::Max(m) => m.unwrap_or(Value::Null),
            other => other.value(),
        }
    }

    /// The SQL result without consuming the state (see [`Acc::finish`]).
    pub(crate) fn value(&self) -> Value {
        match self {
            Acc::Count(n) => Value::Int(*n as i64),
            Acc::Distinct(s) => Value::Int(s.len() as i64),
            Acc::Approx(h) => Value::Int(h.estimate()),
            Acc::SumInt(s, any) => {
                if !any {
                    Value::Null
                } else {
                    i64::try_from(*s).map(Value::Int).unwrap_or(Value::Null)
                }
            }
            Acc::SumFloat(s, any) => {
                if *any {
                    Value::Float(*s)
                } else {
                    Value::Null
                }
            }
            Acc::Min(m) | Acc::Max(m) => m.clone().unwrap_or(Value::Null),
            Acc::Avg(s, n) => {
                if *n == 0 {
                    Value::Null
                } else {
                    Value::Float(s / *n as f64)
                }
            }
        }
    }
}

/// Fresh accumulators for a group.
fn new_accs(aggs: &[AggSpec]) -> Vec<Acc> {
    aggs.iter().map(Acc::new).collect()
}

/// A windowed group's accumulators (the value of [`window_accs`]'s window operator): inline
/// and typed when every aggregate has a fixed-size state (`count`, `sum`, `min`/`max` of a
/// `BIGINT`, `avg` — [`Flat`]), else one [`Acc`] per aggregate. Its snapshot bytes are those of
/// `Vec<Acc>` either way, so a checkpoint written before the flat layout restores unchanged.
#[derive(Debug, Clone)]
pub(crate) enum Accs {
    Flat(Flat),
    Gen(Vec<Acc>),
}

/// Storage kind of one [`Flat`] aggregate (4 bits of [`Flat::kinds`]; 0 ends the list).
const F_COUNT: u32 = 1;
const F_SUM_INT: u32 = 2;
const F_SUM_FLOAT: u32 = 3;
const F_MIN_INT: u32 = 4;
const F_MAX_INT: u32 = 5;
const F_AVG: u32 = 6;

/// Fixed-size accumulators inline in the window map's entry (64 bytes, no heap): `kinds` holds
/// up to [`Flat::MAX`] storage kinds, 4 bits each from the low end, so the state describes
/// itself (its snapshot needs no plan); slot `s` holds the aggregates' states in order — a
/// count (`u64`), an integer sum (`i128`, two slots), a float sum (`f64` bits), an integer
/// min/max (`i64`), an average (`f64` bits, then the `u64` count); bit `i` of `set` is the
/// `any` flag of sum `i`, or whether min/max `i` has a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Flat {
    s: [u64; Flat::SLOTS],
    kinds: NonZeroU32,
    set: u8,
}

/// One aggregate of a [`Flat`] layout: its storage kind and first slot.
#[derive(Debug, Clone, Copy)]
struct FlatOp {
    kind: u32,
    at: usize,
}

impl Flat {
    const SLOTS: usize = 7;
    const MAX: usize = 8;

    fn width(kind: u32) -> usize {
        if kind == F_SUM_INT || kind == F_AVG {
            2
        } else {
            1
        }
    }

    /// The layout of a query's aggregates, or `None` if one has no fixed-size state (a
    /// distinct set, a sketch, a min/max over a non-`BIGINT`) or they do not fit.
    fn layout(aggs: &[AggSpec]) -> Option<(NonZeroU32, Vec<FlatOp>)> {
        use super::value::SqlType;
        if aggs.len() > Flat::MAX {
            return None;
        }
        let (mut kinds, mut at, mut ops) = (0u32, 0usize, Vec::new());
        for (i, a) in aggs.iter().enumerate() {
            let kind = match a.kind {
                AggKind::CountStar | AggKind::Count => F_COUNT,
                AggKind::Sum if a.arg_ty == SqlType::Float => F_SUM_FLOAT,
                AggKind::Sum => F_SUM_INT,
                AggKind::Min if a.arg_ty == SqlType::Int => F_MIN_INT,
                AggKind::Max if a.arg_ty == SqlType::Int => F_MAX_INT,
                AggKind::Avg => F_AVG,
                _ => return None,
            };
            ops.push(FlatOp { kind, at });
            kinds |= kind << (4 * i);
            at += Flat::width(kind);
            if at > Flat::SLOTS {
                return None;
            }
        }
        NonZeroU32::new(kinds).map(|k| (k, ops))
    }

    fn new(kinds: NonZeroU32) -> Flat {
        Flat {
            s: [0; Flat::SLOTS],
            kinds,
            set: 0,
        }
    }

    /// (storage kind, first slot) of each aggregate, from `kinds`.
    fn each(kinds: u32) -> impl Iterator<Item = (usize, u32, usize)> {
        let mut at = 0;
        (0..Flat::MAX)
            .map(move |i| (i, kinds >> (4 * i) & 0xf))
            .take_while(|(_, k)| *k != 0)
            .map(move |(i, k)| {
                let a = at;
                at += Flat::width(k);
                (i, k, a)
            })
    }

    fn i128_at(&self, at: usize) -> i128 {
        ((self.s[at + 1] as u128) << 64 | self.s[at] as u128) as i128
    }

    fn set_i128(&mut self, at: usize, v: i128) {
        self.s[at] = v as u128 as u64;
        self.s[at + 1] = ((v as u128) >> 64) as u64;
    }

    fn has(&self, i: usize) -> bool {
        self.set >> i & 1 == 1
    }

    /// Folds aggregate `i`'s argument value in, as [`Acc::update`] does; false (nothing
    /// changed) for a value the typed slot cannot hold (the caller then goes generic).
    #[inline]
    fn update(&mut self, i: usize, op: FlatOp, v: &Option<Val<'_>>) -> bool {
        let at = op.at;
        let v = match v {
            None => {
                if op.kind == F_COUNT {
                    self.s[at] += 1;
                }
                return true;
            }
            Some(Val::Null) => return true,
            Some(v) => v,
        };
        match op.kind {
            F_COUNT => self.s[at] += 1,
            F_SUM_INT => {
                if let Val::Int(x) = v {
                    let s = self.i128_at(at) + *x as i128;
                    self.set_i128(at, s);
                    self.set |= 1 << i;
                }
            }
            F_SUM_FLOAT => {
                if let Some(x) = v.as_f64() {
                    self.s[at] = (f64::from_bits(self.s[at]) + x).to_bits();
                    self.set |= 1 << i;
                }
            }
            F_MIN_INT | F_MAX_INT => {
                let Val::Int(x) = *v else { return false };
                let cur = self.s[at] as i64;
                let better = if op.kind == F_MIN_INT {
                    x < cur
                } else {
                    x > cur
                };
                if !self.has(i) || better {
                    self.s[at] = x as u64;
                    self.set |= 1 << i;
                }
            }
            _ => {
                // F_AVG
                if let Some(x) = v.as_f64() {
                    self.s[at] = (f64::from_bits(self.s[at]) + x).to_bits();
                    self.s[at + 1] += 1;
                }
            }
        }
        true
    }

    /// `other` (same layout) folded in, as [`Acc::merge`] does.
    fn merge(&mut self, o: &Flat) {
        for (i, k, at) in Flat::each(self.kinds.get()) {
            match k {
                F_COUNT => self.s[at] += o.s[at],
                F_SUM_INT => {
                    let s = self.i128_at(at) + o.i128_at(at);
                    self.set_i128(at, s);
                    self.set |= o.set & (1 << i);
                }
                F_SUM_FLOAT => {
                    self.s[at] = (f64::from_bits(self.s[at]) + f64::from_bits(o.s[at])).to_bits();
                    self.set |= o.set & (1 << i);
                }
                F_MIN_INT | F_MAX_INT => {
                    if o.has(i) {
                        let (a, b) = (self.s[at] as i64, o.s[at] as i64);
                        let better = if k == F_MIN_INT { b < a } else { b > a };
                        if !self.has(i) || better {
                            self.s[at] = o.s[at];
                            self.set |= 1 << i;
                        }
                    }
                }
                _ => {
                    self.s[at] = (f64::from_bits(self.s[at]) + f64::from_bits(o.s[at])).to_bits();
                    self.s[at + 1] += o.s[at + 1];
                }
            }
        }
    }

    /// The same states as generic accumulators.
    fn accs(&self) -> Vec<Acc> {
        Flat::each(self.kinds.get())
            .map(|(i, k, at)| match k {
                F_COUNT => Acc::Count(self.s[at]),
                F_SUM_INT => Acc::SumInt(self.i128_at(at), self.has(i)),
                F_SUM_FLOAT => Acc::SumFloat(f64::from_bits(self.s[at]), self.has(i)),
                F_MIN_INT | F_MAX_INT => {
                    let m = self.has(i).then_some(Value::Int(self.s[at] as i64));
                    if k == F_MIN_INT {
                        Acc::Min(m)
                    } else {
                        Acc::Max(m)
                    }
                }
                _ => Acc::Avg(f64::from_bits(self.s[at]), self.s[at + 1]),
            })
            .collect()
    }

    /// Generic accumulators as a [`Flat`], if every state fits one (a restored snapshot).
    fn from_accs(accs: &[Acc]) -> Option<Flat> {
        if accs.len() > Flat::MAX {
            return None;
        }
        let mut kinds = 0u32;
        for (i, a) in accs.iter().enumerate() {
            let k = match a {
                Acc::Count(_) => F_COUNT,
                Acc::SumInt(..) => F_SUM_INT,
                Acc::SumFloat(..) => F_SUM_FLOAT,
                Acc::Min(None | Some(Value::Int(_))) => F_MIN_INT,
                Acc::Max(None | Some(Value::Int(_))) => F_MAX_INT,
                Acc::Avg(..) => F_AVG,
                _ => return None,
            };
            kinds |= k << (4 * i);
        }
        if Flat::each(kinds)
            .map(|(_, k, _)| Flat::width(k))
            .sum::<usize>()
            > Flat::SLOTS
        {
            return None;
        }
        let mut f = Flat::new(NonZeroU32::new(kinds)?);
        for ((i, _, at), a) in Flat::each(kinds).zip(accs) {
            match a {
                Acc::Count(n) => f.s[at] = *n,
                Acc::SumInt(s, any) => {
                    f.set_i128(at, *s);
                    f.set |= (*any as u8) << i;
                }
                Acc::SumFloat(s, any) => {
                    f.s[at] = s.to_bits();
                    f.set |= (*any as u8) << i;
                }
                Acc::Min(m) | Acc::Max(m) => {
                    if let Some(Value::Int(x)) = m {
                        f.s[at] = *x as u64;
                        f.set |= 1 << i;
                    }
                }
                Acc::Avg(s, n) => {
                    f.s[at] = s.to_bits();
                    f.s[at + 1] = *n;
                }
                _ => return None,
            }
        }
        Some(f)
    }
}

impl Accs {
    /// Generic accumulators, whatever the representation.
    fn gen(&mut self) -> &mut Vec<Acc> {
        if let Accs::Flat(f) = self {
            *self = Accs::Gen(f.accs());
        }
        match self {
            Accs::Gen(g) => g,
            Accs::Flat(_) => unreachable!("just made generic"),
        }
    }

    fn merge(&mut self, other: Accs) {
        match (&mut *self, other) {
            (Accs::Flat(a), Accs::Flat(b)) if a.kinds == b.kinds => a.merge(&b),
            (_, other) => {
                let b = match other {
                    Accs::Flat(f) => f.accs(),
                    Accs::Gen(g) => g,
                };
                for (x, y) in self.gen().iter_mut().zip(b) {
                    x.merge(y)
                }
            }
        }
    }

    fn values(&self, cols: &mut Vec<Value>) {
        match self {
            Accs::Flat(f) => cols.extend(f.accs().into_iter().map(Acc::finish)),
            Accs::Gen(g) => cols.extend(g.iter().map(Acc::value)),
        }
    }
}

/// The snapshot bytes of the `Vec<Acc>` it stands for (see [`Accs`]).
impl Persist for Accs {
    fn persist(&self, out: &mut Vec<u8>) {
        match self {
            Accs::Flat(f) => f.accs().persist(out),
            Accs::Gen(g) => g.persist(out),
        }
    }

    fn restore(r: &mut SnapshotReader<'_>) -> Result<Self, SnapshotError> {
        let g: Vec<Acc> = r.read()?;
        Ok(Flat::from_accs(&g).map_or(Accs::Gen(g), Accs::Flat))
    }
}

/// Folds one row into a windowed group's accumulators: [`update_accs`] on the typed slots of a
/// [`Flat`] of the query's layout (`flat`: its kinds and ops), else on generic accumulators (a
/// value a typed slot cannot hold turns the group generic first).
#[inline]
fn update_group<'c>(
    st: &mut Accs,
    flat: Option<(NonZeroU32, &[FlatOp])>,
    aggs: &[AggSpec],
    cx: &Cx<'c>,
    hoist: Hoist,
    hoisted: &Option<[Option<Val<'_>>; Hoist::MAX]>,
) {
    let ops = match (flat, &*st) {
        (Some((kinds, ops)), Accs::Flat(f)) if f.kinds == kinds => ops,
        _ => return update_accs(st.gen(), aggs, cx, hoist, hoisted),
    };
    let mut last: Option<(usize, Val<'c>)> = None;
    for (i, (op, spec)) in ops.iter().zip(aggs).enumerate() {
        let v = match (&spec.arg, hoisted) {
            (None, _) => None,
            (Some(_), Some(h)) if i < Hoist::MAX && hoist.0 >> i & 1 == 1 => {
                Some(h[i].as_ref().map_or(Val::Null, AsVal::val))
            }
            (Some(x), _) => {
                let src = spec.same_arg_as;
                if last.as_ref().is_none_or(|(j, _)| *j != src) {
                    last = Some((src, x.eval(cx)));
                }
                last.as_ref().map(|(_, v)| v.val())
            }
        };
        match st {
            Accs::Flat(f) => {
                if !f.update(i, *op, &v) {
                    st.gen()[i].update(v)
                }
            }
            Accs::Gen(g) => g[i].update(v),
        }
    }
}

/// Which aggregate arguments are evaluated once per event rather than once per row: with
/// `UNNEST`, those that do not read its column (`count(DISTINCT header('host'))` over the words
/// of a line looks the header up once per line, not once per word). Bit `i` = aggregate `i`
/// (the first [`Hoist::MAX`]).
#[derive(Clone, Copy)]
struct Hoist(u32);

impl Hoist {
    const MAX: usize = 8;

    fn of(plan: &Plan, aggs: &[AggSpec]) -> Hoist {
        if plan.unnest.is_none() {
            return Hoist(0);
        }
        let mut m = 0;
        for (i, a) in aggs.iter().enumerate().take(Hoist::MAX) {
            if a.arg.as_ref().is_some_and(|x| !x.uses.word) {
                m |= 1 << i;
            }
        }
        Hoist(m)
    }

    /// Per event: the hoisted arguments' values, evaluated on the first row.
    #[inline]
    fn fill<'e>(
        self,
        vals: &mut Option<[Option<Val<'e>>; Hoist::MAX]>,
        aggs: &[AggSpec],
        ecx: &Cx<'e>,
    ) {
        if self.0 == 0 || vals.is_some() {
            return;
        }
        let mut v: [Option<Val<'e>>; Hoist::MAX] = Default::default();
        for (i, a) in aggs.iter().enumerate().take(Hoist::MAX) {
            if self.0 >> i & 1 == 1 {
                v[i] = a.arg.as_ref().map(|x| x.eval(ecx));
            }
        }
        *vals = Some(v);
    }
}

/// Folds one row into a group's accumulators, in place (`hoisted`: see [`Hoist`]). An
/// argument written like the previous aggregate's (`sum(length(w)), max(length(w))`) is
/// evaluated once.
#[inline]
fn update_accs<'c>(
    accs: &mut [Acc],
    aggs: &[AggSpec],
    cx: &Cx<'c>,
    hoist: Hoist,
    hoisted: &Option<[Option<Val<'_>>; Hoist::MAX]>,
) {
    let mut last: Option<(usize, Val<'c>)> = None;
    for (i, (a, spec)) in accs.iter_mut().zip(aggs).enumerate() {
        let v = match (&spec.arg, hoisted) {
            (None, _) => None,
            (Some(_), Some(h)) if i < Hoist::MAX && hoist.0 >> i & 1 == 1 => {
                Some(h[i].as_ref().map_or(Val::Null, AsVal::val))
            }
            (Some(x), _) => {
                let src = spec.same_arg_as;
                if last.as_ref().is_none_or(|(j, _)| *j != src) {
                    last = Some((src, x.eval(cx)));
                }
                last.as_ref().map(|(_, v)| v.val())
            }
        };
        a.update(v);
    }
}

/// The general path over one batch (see the module docs).
fn general(plan: &Plan, events: &[Event], cx: &StageContext<'_>) -> Vec<Row> {
    let batch_ms = cx.batch_time_ms();
    let workers = if events.len() < 1024 {
        crate::pipeline::Workers::new(1)
    } else {
        cx.workers()
    };
    match &plan.shape {
        Shape::Project { cols } => {
            let parts = workers.run(|i| {
                let mut rows: Vec<Vec<Value>> = Vec::new();
                let mut bad = 0u64;
                for ev in workers.chunk(events, i) {
                    if !for_each_row(plan, ev, batch_ms, &mut |rcx| {
                        rows.push(cols.iter().map(|c| c.eval(rcx).to_value()).collect())
                    }) {
                        bad += 1;
                    }
                }
                (rows, bad)
            });
            let mut rows = Vec::new();
            for (r, bad) in parts {
                if bad > 0 {
                    cx.error(ErrorReason::NonUtf8, bad);
                }
                rows.extend(r);
            }
            finish(plan, rows)
        }
        Shape::Aggregate { keys, aggs, .. } => {
            let hoist = Hoist::of(plan, aggs);
            let parts = workers.run(|i| {
                let mut m: FastMap<Keys, Vec<Acc>> = FastMap::default();
                let mut bad = 0u64;
                for ev in workers.chunk(events, i) {
                    let mut hv = None;
                    let ok = for_each_row_ev(plan, ev, batch_ms, &mut |ecx, rcx| {
                        hoist.fill(&mut hv, aggs, ecx);
                        let accs = m
                            .entry(Keys::make(keys, rcx))
                            .or_insert_with(|| new_accs(aggs));
                        update_accs(accs, aggs, rcx, hoist, &hv);
                    });
                    if !ok {
                        bad += 1;
                    }
                }
                (m, bad)
            });
            let mut merged: FastMap<Keys, Vec<Acc>> = FastMap::default();
            for (m, bad) in parts {
                if bad > 0 {
                    cx.error(ErrorReason::NonUtf8, bad);
                }
                if merged.is_empty() {
                    merged = m;
                    continue;
                }
                for (k, accs) in m {
                    match merged.entry(k) {
                        std::collections::hash_map::Entry::Occupied(mut e) => {
                            for (a, b) in e.get_mut().iter_mut().zip(accs) {
                                a.merge(b);
                            }
                        }
                        std::collections::hash_map::Entry::Vacant(e) => {
                            e.insert(accs);
                        }
                    }
                }
            }
            if keys.is_empty() && merged.is_empty() {
                // A global aggregate yields one row, also over no input.
                merged.insert(Keys::Many(Box::new([])), new_accs(aggs));
            }
            let mut groups: Vec<(Keys, Vec<Acc>)> = merged.into_iter().collect();
            groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            let mut rows = Vec::with_capacity(groups.len());
            for (k, accs) in groups {
                let mut cols = Vec::with_capacity(k.len() + accs.len() + 2);
                k.push_into(&mut cols);
                cols.extend(accs.into_iter().map(Acc::finish));
                if let Some(r) = group_row(plan, &cols, batch_ms) {
                    rows.push(r);
                }
            }
            finish(plan, rows)
        }
    }
}

/// Snapshot encoding of an accumulator: `u8 tag` then the state (a distinct set as its values
/// in ascending order, so equal states give equal bytes).
impl Persist for Acc {
    fn persist(&self, out: &mut Vec<u8>) {
        match self {
            Acc::Count(n) => {
                0u8.persist(out);
                n.persist(out)
            }
            Acc::Distinct(set) => {
                1u8.persist(out);
                let mut v: Vec<&Value> = set.iter().collect();
                v.sort_unstable();
                (v.len() as u64).persist(out);
                for x in v {
                    x.persist(out)
                }
            }
            Acc::SumInt(s, any) => {
                2u8.persist(out);
                s.persist(out);
                any.persist(out)
            }
            Acc::SumFloat(s, any) => {
                3u8.persist(out);
                s.persist(out);
                any.persist(out)
            }
            Acc::Min(m) => {
                4u8.persist(out);
                m.persist(out)
            }
            Acc::Max(m) => {
                5u8.persist(out);
                m.persist(out)
            }
            Acc::Avg(s, n) => {
                6u8.persist(out);
                s.persist(out);
                n.persist(out)
            }
            Acc::Approx(h) => {
                7u8.persist(out);
                h.persist(out)
            }
        }
    }

    fn restore(r: &mut SnapshotReader<'_>) -> Result<Self, SnapshotError> {
        let tag: u8 = r.read()?;
        Ok(match tag {
            0 => Acc::Count(r.read()?),
            1 => {
                let v: Vec<Value> = r.read()?;
                Acc::Distinct(v.into_iter().collect())
            }
            2 => Acc::SumInt(r.read()?, r.read()?),
            3 => Acc::SumFloat(r.read()?, r.read()?),
            4 => Acc::Min(r.read()?),
            5 => Acc::Max(r.read()?),
            6 => Acc::Avg(r.read()?, r.read()?),
            7 => Acc::Approx(Box::new(r.read()?)),
            t => return Err(r.invalid(format!("SQL accumulator tag {t}"))),
        })
    }
}

/// An event with its batch time (`proc_time`), the input of the window operator.
type Item = (i64, Event);

/// The windowed path: the pipeline's event-time window operator
/// ([`DStream::event_time_window_in_place`]) with group key = the `GROUP BY` keys and value =
/// the aggregates' accumulators; each window's groups then go through `HAVING`, the `SELECT`
/// list and `ORDER BY ... LIMIT` (per window).
fn windowed(plan: Arc<Plan>, opts: &SqlOptions, ctx: &StreamingContext) -> DStream<Row> {
    let spec = plan.window.expect("windowed plan");
    let p = plan.clone();
    // Events with their batch time; a non-UTF-8 body under a query reading `body` is bad input.
    let items = ctx.events().stream().transform(move |events, cx| {
        let bt = cx.batch_time_ms();
        let mut bad = 0u64;
        let out: Vec<Item> = events
            .iter()
            .filter(|e| {
                let ok = !p.uses.body || std::str::from_utf8(e.body()).is_ok();
                bad += !ok as u64;
                ok
            })
            .map(|e| (bt, e.clone()))
            .collect();
        if bad > 0 {
            cx.error(ErrorReason::NonUtf8, bad);
        }
        out
    });
    let time = if spec.proc_time {
        // Processing time is in order: the watermark is the batch time.
        EventTime::from_fn("proc_time", |x: &Item| Some(x.0)).idle_timeout(Duration::ZERO)
    } else {
        let h = opts.timestamp_header.clone();
        let mut t = EventTime::from_fn(&format!("header={h}"), move |x: &Item| {
            x.1.header(&h).and_then(|v| parse_timestamp(&v))
        })
        .lateness(opts.watermark);
        if let Some(d) = opts.idle_timeout {
            t = t.idle_timeout(d);
        }
        t
    };
    let time = time.emit(match opts.emit {
        EmitMode::Final => Emit::Final,
        EmitMode::Update => Emit::Update,
    });
    let Shape::Aggregate { keys, aggs, .. } = &plan.shape else {
        unreachable!("a windowed plan aggregates")
    };
    let count_only = aggs.len() == 1 && matches!(aggs[0].kind, AggKind::CountStar | AggKind::Count);
    match (count_only, keys.len()) {
        (true, 1) => window_counts::<Value>(plan, items, time, spec.windows),
        (true, _) => window_counts::<Keys>(plan, items, time, spec.windows),
        (false, 1) => window_accs::<Key1>(plan, items, time, spec.windows),
        _ => window_accs::<Keys>(plan, items, time, spec.windows),
    }
}

/// A windowed query whose only aggregate is `count(*)` / `count(x)` (the trending word count,
/// errors per host per minute): key `K`, value a plain `u64` — no accumulator vector per row.
fn window_counts<K: GroupKey + Persist>(
    plan: Arc<Plan>,
    items: DStream<Item>,
    time: EventTime<Item>,
    windows: Windows,
) -> DStream<Row> {
    let p = plan.clone();
    let pairs = move |x: &Item, emit: &mut dyn FnMut(K, u64)| {
        let Shape::Aggregate { keys, aggs, .. } = &p.shape else {
            return;
        };
        let arg = aggs[0].arg.as_ref();
        for_each_row(&p, &x.1, x.0, &mut |cx| {
            let n = match arg {
                None => 1,
                Some(a) => !a.eval(cx).is_null() as u64,
            };
            emit(K::make(keys, cx), n)
        });
    };
    items
        .event_time_window_in_place(time, windows, pairs, |a: &mut u64, b: u64| *a += b)
        .transform(move |out: &[Timed<K, u64, Item>], cx| {
            finish_windows(&plan, out, cx.batch_time_ms(), |k, n, cols| {
                k.clone().push_into(cols);
                cols.push(Value::Int(*n as i64));
            })
        })
}

/// What [`window_accs`]'s rows function calls per row: (group keys, update of the group's
/// accumulators).
type RowEmit<'a, K> = dyn FnMut(K, &mut dyn FnMut(&mut Accs)) + 'a;

/// Any other windowed query: key = the group keys ([`Keys`], inline), value = the aggregates'
/// accumulators ([`Accs`]: inline typed slots when every aggregate has a fixed-size state),
/// which each row updates in place ([`DStream::event_time_window_fold`]): the accumulators of
/// a (pane, group) are made once per batch chunk, not per row.
fn window_accs<K: GroupKey + Persist>(
    plan: Arc<Plan>,
    items: DStream<Item>,
    time: EventTime<Item>,
    windows: Windows,
) -> DStream<Row> {
    let Shape::Aggregate { aggs, .. } = &plan.shape else {
        unreachable!("a windowed plan aggregates")
    };
    let layout = Flat::layout(aggs);
    let kinds = layout.as_ref().map(|(k, _)| *k);
    let specs: Vec<AggKind> = aggs.iter().map(|a| a.kind).collect();
    let arg_tys: Vec<super::value::SqlType> = aggs.iter().map(|a| a.arg_ty).collect();
    let init = move || match kinds {
        Some(k) => Accs::Flat(Flat::new(k)),
        None => Accs::Gen(
            specs
                .iter()
                .zip(&arg_tys)
                .map(|(k, t)| Acc::of(*k, *t))
                .collect(),
        ),
    };
    let hoist = Hoist::of(&plan, aggs);
    let p = plan.clone();
    let rows = move |x: &Item, emit: &mut RowEmit<'_, K>| {
        let Shape::Aggregate { keys, aggs, .. } = &p.shape else {
            return;
        };
        let flat = layout.as_ref().map(|(k, ops)| (*k, ops.as_slice()));
        // The body was checked to be UTF-8 above.
        let mut hv = None;
        for_each_row_ev(&p, &x.1, x.0, &mut |ecx, cx| {
            hoist.fill(&mut hv, aggs, ecx);
            emit(K::make(keys, cx), &mut |st: &mut Accs| {
                update_group(st, flat, aggs, cx, hoist, &hv)
            })
        });
    };
    items
        .event_time_window_fold(time, windows, init, rows, |a: &mut Accs, b: Accs| {
            a.merge(b)
        })
        .transform(move |out: &[Timed<K, Accs, Item>], cx| {
            finish_windows(&plan, out, cx.batch_time_ms(), |k, accs, cols| {
                k.clone().push_into(cols);
                accs.values(cols);
            })
        })
}

/// One batch's window results → rows: per window (results come sorted by start, end, key),
/// the group scope `window_start, window_end ++ keys ++ aggregates` through `HAVING` and the
/// `SELECT` list, then `ORDER BY ... LIMIT` within the window.
fn finish_windows<K, V>(
    plan: &Plan,
    out: &[Timed<K, V, Item>],
    bt: i64,
    cols_of: impl Fn(&K, &V, &mut Vec<Value>),
) -> Vec<Row> {
    let results: Vec<_> = out
        .iter()
        .filter_map(|t| match t {
            Timed::Window(w) => Some(w),
            _ => None,
        })
        .collect();
    let mut rows = Vec::new();
    for w in results.chunk_by(|a, b| (a.start_ms, a.end_ms) == (b.start_ms, b.end_ms)) {
        let mut wrows = Vec::with_capacity(w.len());
        for r in w {
            let mut cols = Vec::with_capacity(8);
            cols.push(Value::Int(r.start_ms));
            cols.push(Value::Int(r.end_ms));
            cols_of(&r.key, &r.value, &mut cols);
            if let Some(row) = group_row(plan, &cols, bt) {
                wrows.push(row);
            }
        }
        rows.extend(finish(plan, wrows));
    }
    rows
}

#[cfg(test)]
mod flat_tests {
    use super::*;

    /// The flat and the generic states of the aggregates `kinds`, and the flat layout.
    fn both(kinds: &[u32]) -> (Accs, Vec<Acc>, Vec<FlatOp>) {
        let packed = kinds
            .iter()
            .enumerate()
            .fold(0u32, |m, (i, k)| m | k << (4 * i));
        let ops: Vec<FlatOp> = Flat::each(packed)
            .map(|(_, kind, at)| FlatOp { kind, at })
            .collect();
        let gen = kinds
            .iter()
            .map(|k| match *k {
                F_COUNT => Acc::Count(0),
                F_SUM_INT => Acc::SumInt(0, false),
                F_SUM_FLOAT => Acc::SumFloat(0.0, false),
                F_MIN_INT => Acc::Min(None),
                F_MAX_INT => Acc::Max(None),
                _ => Acc::Avg(0.0, 0),
            })
            .collect();
        let packed = NonZeroU32::new(packed).expect("kinds");
        (Accs::Flat(Flat::new(packed)), gen, ops)
    }

    fn feed(st: &mut Accs, gen: &mut [Acc], ops: &[FlatOp], v: Option<Val<'_>>) {
        for (i, (op, g)) in ops.iter().zip(gen.iter_mut()).enumerate() {
            match st {
                Accs::Flat(f) => assert!(f.update(i, *op, &v)),
                Accs::Gen(_) => unreachable!("ints and nulls stay flat"),
            }
            g.update(v.clone());
        }
    }

    fn bytes<T: Persist>(x: &T) -> Vec<u8> {
        let mut out = Vec::new();
        x.persist(&mut out);
        out
    }

    fn values(st: &Accs) -> Vec<Value> {
        let mut cols = Vec::new();
        st.values(&mut cols);
        cols
    }

    #[test]
    fn flat_states_equal_generic_ones_in_values_merge_and_snapshot_bytes() {
        let layouts: [&[u32]; 2] = [
            &[F_COUNT, F_SUM_INT, F_MIN_INT, F_MAX_INT, F_AVG],
            &[F_SUM_FLOAT, F_COUNT, F_MAX_INT, F_SUM_INT, F_MIN_INT],
        ];
        for kinds in layouts {
            let (mut a, mut ga, ops) = both(kinds);
            let (mut b, mut gb, _) = both(kinds);
            // Nothing folded yet: NULL sums/min/max/avg, count 0, same bytes.
            assert_eq!(values(&a), ga.iter().map(Acc::value).collect::<Vec<_>>());
            assert_eq!(bytes(&a), bytes(&ga));
            let xs = [
                Some(3),
                None,
                Some(i64::MAX),
                Some(-7),
                Some(i64::MAX),
                Some(i64::MIN),
            ];
            for x in xs {
                feed(&mut a, &mut ga, &ops, Some(x.map_or(Val::Null, Val::Int)));
            }
            for x in [Some(-2), Some(40)] {
                feed(&mut b, &mut gb, &ops, Some(x.map_or(Val::Null, Val::Int)));
            }
            feed(&mut b, &mut gb, &ops, None);
            a.merge(b);
            for (x, y) in ga.iter_mut().zip(gb) {
                x.merge(y)
            }
            let cols = values(&a);
            assert_eq!(cols, ga.iter().map(Acc::value).collect::<Vec<_>>());
            let at = |k| kinds.iter().position(|x| *x == k).expect("kind");
            assert_eq!(
                cols[at(F_COUNT)],
                Value::Int(8),
                "non-null values and count(*)"
            );
            assert_eq!(cols[at(F_MIN_INT)], Value::Int(i64::MIN));
            assert_eq!(cols[at(F_MAX_INT)], Value::Int(i64::MAX));
            // Same snapshot bytes as the generic accumulators, and restored flat.
            let snap = bytes(&a);
            assert_eq!(snap, bytes(&ga));
            let back = Accs::restore(&mut SnapshotReader::new(&snap)).expect("restore");
            assert!(matches!((&back, &a), (Accs::Flat(x), Accs::Flat(y)) if x == y));
        }
    }

    #[test]
    fn a_value_a_typed_slot_cannot_hold_turns_the_group_generic() {
        let (mut st, mut gen, ops) = both(&[F_COUNT, F_SUM_INT, F_MIN_INT, F_MAX_INT, F_AVG]);
        let Accs::Flat(f) = &mut st else {
            unreachable!()
        };
        assert!(!f.update(2, ops[2], &Some(Val::Float(1.5))));
        // Merging a generic state into a flat one goes generic, with equal results.
        let mut g2 = gen.clone();
        g2[2].update(Some(Val::Float(1.5)));
        st.merge(Accs::Gen(g2.clone()));
        assert!(matches!(st, Accs::Gen(_)));
        for (x, y) in gen.iter_mut().zip(g2) {
            x.merge(y)
        }
        let cols = values(&st);
        assert_eq!(cols, gen.iter().map(Acc::value).collect::<Vec<_>>());
        assert_eq!(cols[2], Value::Float(1.5));
    }

    #[test]
    fn one_group_key_snapshots_as_keys_one() {
        let k = Key1(Value::Int(42));
        assert_eq!(bytes(&k), bytes(&Keys::One(Value::Int(42))));
        let back = Key1::restore(&mut SnapshotReader::new(&bytes(&k))).expect("restore");
        assert_eq!(back, k);
        let two = bytes(&Keys::Two(Value::Int(1), Value::Int(2)));
        assert!(Key1::restore(&mut SnapshotReader::new(&two)).is_err());
    }

    #[test]
    fn flat_accumulators_stay_small() {
        // One cache line: 7 slots, the kinds (whose zero niche tags the generic variant), the
        // set bits.
        assert_eq!(std::mem::size_of::<Accs>(), 64);
    }
}
