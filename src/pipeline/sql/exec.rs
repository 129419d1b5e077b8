//! Running a compiled [`Plan`] on the pipeline's operators.
//!
//! * **Fused path** — a grouping query whose only aggregate is `count(*)` or `count(x)` and that
//!   does not read `proc_time` (the word count, "requests per status", "errors per host") runs
//!   as the hand-written pipeline does: one [`EventFn`] per event (filter, `UNNEST`, group key)
//!   started with [`Events::apply`], then [`Fused::reduce_by_key`] — sharded, map-side combined,
//!   with [`Value`] keys (strings inline up to 22 bytes: a word allocates nothing). `HAVING`,
//!   the `SELECT` list, `ORDER BY` and `LIMIT` then run once per group.
//! * **General path** — everything else: the batch's events (cheap handles on the take) go
//!   through one [`DStream::transform`], which shards them over the pipeline's workers; each
//!   worker folds its contiguous chunk into a hash map of group key → accumulators (mutated in
//!   place), the chunk maps are merged in chunk order, and the groups finished as above.
//!
//! Both paths count a body that is not UTF-8 under a query reading `body` as bad input
//! (`non_utf8`) and skip the event; the fused path also sends it to the side output.

use std::sync::Arc;

use crate::event::Event;
use crate::pipeline::fused::EventFn;
use crate::pipeline::metrics::ErrorReason;
use crate::pipeline::{DStream, FastMap, Key, StageContext, StreamingContext};

use super::compile::{AggKind, AggSpec, Cx, Ex, Plan, Shape};
use super::func::split_each;
use super::value::{Row, Val, Value};

/// Calls `f` with every row the event yields (after `WHERE` and `UNNEST`). Returns false if
/// the event is bad input (non-UTF-8 body under a query reading `body`).
#[inline]
pub(crate) fn for_each_row(
    plan: &Plan,
    ev: &Event,
    batch_ms: i64,
    f: &mut dyn FnMut(&Cx<'_>),
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
        None => f(&cx),
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
                        f(&cx2)
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
impl GroupKey for Vec<Value> {
    #[inline]
    fn make(keys: &[Ex], cx: &Cx<'_>) -> Vec<Value> {
        keys.iter().map(|k| k.eval(cx).to_value()).collect()
    }
    fn push_into(self, out: &mut Vec<Value>) {
        out.extend(self)
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
        }
        Shape::Project { .. } => false,
    }
}

/// Builds the plan's result stream on `ctx`.
pub(crate) fn attach(plan: Arc<Plan>, ctx: &StreamingContext, label: &str) -> DStream<Row> {
    let out = if fusable(&plan) {
        let Shape::Aggregate { keys, .. } = &plan.shape else {
            unreachable!("fusable")
        };
        if keys.len() == 1 {
            fused::<Value>(plan, ctx)
        } else {
            fused::<Vec<Value>>(plan, ctx)
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
    SumInt(i128, bool),
    SumFloat(f64, bool),
    Min(Option<Value>),
    Max(Option<Value>),
    Avg(f64, u64),
}

impl Acc {
    pub(crate) fn new(spec: &AggSpec) -> Acc {
        match spec.kind {
            AggKind::CountStar | AggKind::Count => Acc::Count(0),
            AggKind::CountDistinct => Acc::Distinct(Default::default()),
            AggKind::Sum => {
                if spec.arg_ty == super::value::SqlType::Float {
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
                s.insert(v.to_value());
            }
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
            (Acc::Distinct(a), Acc::Distinct(b)) => a.extend(b),
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
            Acc::Count(n) => Value::Int(n as i64),
            Acc::Distinct(s) => Value::Int(s.len() as i64),
            Acc::SumInt(s, any) => {
                if !any {
                    Value::Null
                } else {
                    i64::try_from(s).map(Value::Int).unwrap_or(Value::Null)
                }
            }
            Acc::SumFloat(s, any) => {
                if any {
                    Value::Float(s)
                } else {
                    Value::Null
                }
            }
            Acc::Min(m) | Acc::Max(m) => m.unwrap_or(Value::Null),
            Acc::Avg(s, n) => {
                if n == 0 {
                    Value::Null
                } else {
                    Value::Float(s / n as f64)
                }
            }
        }
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
            let parts = workers.run(|i| {
                let mut m: FastMap<Vec<Value>, Vec<Acc>> = FastMap::default();
                let mut bad = 0u64;
                for ev in workers.chunk(events, i) {
                    let ok = for_each_row(plan, ev, batch_ms, &mut |rcx| {
                        let k: Vec<Value> = keys.iter().map(|k| k.eval(rcx).to_value()).collect();
                        let accs = m
                            .entry(k)
                            .or_insert_with(|| aggs.iter().map(Acc::new).collect());
                        for (a, spec) in accs.iter_mut().zip(aggs) {
                            a.update(spec.arg.as_ref().map(|x| x.eval(rcx)));
                        }
                    });
                    if !ok {
                        bad += 1;
                    }
                }
                (m, bad)
            });
            let mut merged: FastMap<Vec<Value>, Vec<Acc>> = FastMap::default();
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
                merged.insert(Vec::new(), aggs.iter().map(Acc::new).collect());
            }
            let mut groups: Vec<(Vec<Value>, Vec<Acc>)> = merged.into_iter().collect();
            groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            let mut rows = Vec::with_capacity(groups.len());
            for (k, accs) in groups {
                let mut cols = k;
                cols.extend(accs.into_iter().map(Acc::finish));
                if let Some(r) = group_row(plan, &cols, batch_ms) {
                    rows.push(r);
                }
            }
            finish(plan, rows)
        }
    }
}
