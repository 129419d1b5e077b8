//! [`DStream`]: a materialised stream — for each batch, a vector of elements computed once and
//! shared by every consumer (outputs, joins, unions, stages).
//!
//! Operators receive elements **by reference** (`&T`), since one batch's vector may feed several
//! consumers. Per-element operators (`map`, `flat_map`, `filter`, `filter_map`) run sharded over
//! the workers for large batches, in contiguous chunks concatenated in order; keyed ones
//! (`reduce_by_key`, `count_by_value`) use the same combiner and partitioned merge as the fused
//! chain and return elements **sorted by key**; `join` / `left_outer_join` return elements
//! sorted by key, then in the left stream's order, then the right stream's. So a batch's output
//! order depends only on its input: file outputs are reproducible.
//!
//! A panic in a user function skips the element (counted as `panic`); a panicking stateful stage
//! keeps its pre-batch state and outputs nothing for that batch (counted).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use super::context::{BatchEnv, Node, StatefulHandle, StreamingContext};
use super::fused::{combine, merge_keyed};
use super::metrics::ErrorReason;
use super::stage::{Key, SnapshotError, Stage, StageContext, StatefulStage};
use super::text::{Combiner, FastMap};

/// A materialised stream (see the module docs).
pub struct DStream<T> {
    pub(crate) ctx: StreamingContext,
    pub(crate) node: Arc<Node<T>>,
    pub(crate) id: String,
}

impl<T> Clone for DStream<T> {
    fn clone(&self) -> Self {
        DStream {
            ctx: self.ctx.clone(),
            node: self.node.clone(),
            id: self.id.clone(),
        }
    }
}

/// Runs `f` over `items` (sharded for large inputs), skipping elements whose `f` panics.
fn guarded<T: Sync, U: Send>(
    env: &BatchEnv<'_>,
    items: &[T],
    f: &(dyn Fn(&T, &mut Vec<U>) + Sync),
) -> Vec<U> {
    let workers = env.workers.for_items(items.len());
    let parts = workers.run(|i| {
        let chunk = workers.chunk(items, i);
        let fast = catch_unwind(AssertUnwindSafe(|| {
            let mut out = Vec::with_capacity(chunk.len());
            for x in chunk {
                f(x, &mut out);
            }
            out
        }));
        match fast {
            Ok(out) => out,
            Err(_) => {
                let mut out = Vec::with_capacity(chunk.len());
                for x in chunk {
                    let mut one = Vec::new();
                    match catch_unwind(AssertUnwindSafe(|| f(x, &mut one))) {
                        Ok(()) => out.append(&mut one),
                        Err(_) => env.counter.add_error(ErrorReason::Panic, 1),
                    }
                }
                out
            }
        }
    });
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        out.extend(p);
    }
    out
}

impl<T: Send + Sync + 'static> DStream<T> {
    pub(crate) fn from_node(ctx: &StreamingContext, node: Arc<Node<T>>, id: String) -> DStream<T> {
        DStream {
            ctx: ctx.clone(),
            node,
            id,
        }
    }

    /// The context this stream belongs to.
    pub fn context(&self) -> &StreamingContext {
        &self.ctx
    }

    /// The batch's elements (internal: outputs and stages pull through this).
    pub(crate) fn get(&self, env: &BatchEnv<'_>) -> Arc<Vec<T>> {
        self.node.get(env)
    }

    fn derive<U: Send + Sync + 'static>(
        &self,
        desc: &str,
        f: impl Fn(&BatchEnv<'_>, &[T]) -> Vec<U> + Send + Sync + 'static,
    ) -> DStream<U> {
        let id = self.ctx.describe(format!("{desc}({})", short(&self.id)));
        let parent = self.node.clone();
        let node = Node::new(move |env: &BatchEnv<'_>| {
            let input = parent.get(env);
            Arc::new(f(env, &input))
        });
        DStream::from_node(&self.ctx, self.ctx.add_node(node), id)
    }

    /// Adds `label` to the pipeline fingerprint (so changing it, e.g. when a closure's meaning
    /// changes, makes a restart on the old checkpoint refuse).
    pub fn named(&self, label: &str) -> DStream<T> {
        self.ctx.describe(format!("label({label})"));
        self.clone()
    }

    /// One element per element.
    pub fn map<U: Send + Sync + 'static>(
        &self,
        f: impl Fn(&T) -> U + Send + Sync + 'static,
    ) -> DStream<U> {
        self.derive("map", move |env, items| {
            guarded(env, items, &|x: &T, out: &mut Vec<U>| out.push(f(x)))
        })
    }

    /// Any number of elements per element.
    pub fn flat_map<U, I>(&self, f: impl Fn(&T) -> I + Send + Sync + 'static) -> DStream<U>
    where
        U: Send + Sync + 'static,
        I: IntoIterator<Item = U>,
    {
        self.derive("flat_map", move |env, items| {
            guarded(env, items, &|x: &T, out: &mut Vec<U>| out.extend(f(x)))
        })
    }

    /// Keeps the elements for which `f` is true.
    pub fn filter(&self, f: impl Fn(&T) -> bool + Send + Sync + 'static) -> DStream<T>
    where
        T: Clone,
    {
        self.derive("filter", move |env, items| {
            guarded(env, items, &|x: &T, out: &mut Vec<T>| {
                if f(x) {
                    out.push(x.clone())
                }
            })
        })
    }

    /// Maps and keeps the `Some`s (also how a stage's enum output is split into streams).
    pub fn filter_map<U: Send + Sync + 'static>(
        &self,
        f: impl Fn(&T) -> Option<U> + Send + Sync + 'static,
    ) -> DStream<U> {
        self.derive("filter_map", move |env, items| {
            guarded(env, items, &|x: &T, out: &mut Vec<U>| out.extend(f(x)))
        })
    }

    /// Pairs every element with the key `f` computes.
    pub fn key_by<K: Send + Sync + 'static>(
        &self,
        f: impl Fn(&T) -> K + Send + Sync + 'static,
    ) -> DStream<(K, T)>
    where
        T: Clone,
    {
        self.derive("key_by", move |env, items| {
            guarded(env, items, &|x: &T, out: &mut Vec<(K, T)>| {
                out.push((f(x), x.clone()))
            })
        })
    }

    /// The number of elements (one element per batch, also when 0).
    pub fn count(&self) -> DStream<u64> {
        self.derive("count", |_, items| vec![items.len() as u64])
    }

    /// Folds the batch's elements in order with `f`; no element for an empty batch.
    pub fn reduce(&self, f: impl Fn(T, T) -> T + Send + Sync + 'static) -> DStream<T>
    where
        T: Clone,
    {
        self.derive("reduce", move |env, items| {
            let r = catch_unwind(AssertUnwindSafe(|| items.iter().cloned().reduce(&f)));
            match r {
                Ok(v) => v.into_iter().collect(),
                Err(_) => {
                    env.counter.add_error(ErrorReason::Panic, 1);
                    Vec::new()
                }
            }
        })
    }

    /// The elements of `self`, then those of `other`.
    pub fn union(&self, other: &DStream<T>) -> DStream<T>
    where
        T: Clone,
    {
        let id = self
            .ctx
            .describe(format!("union({},{})", short(&self.id), short(&other.id)));
        let (a, b) = (self.node.clone(), other.node.clone());
        let node = Node::new(move |env: &BatchEnv<'_>| {
            let (x, y) = (a.get(env), b.get(env));
            let mut out = Vec::with_capacity(x.len() + y.len());
            out.extend(x.iter().cloned());
            out.extend(y.iter().cloned());
            Arc::new(out)
        });
        DStream::from_node(&self.ctx, self.ctx.add_node(node), id)
    }

    /// Any batch-to-batch function (Spark's `transform`).
    pub fn transform<U: Send + Sync + 'static>(
        &self,
        f: impl Fn(&[T], &StageContext<'_>) -> Vec<U> + Send + Sync + 'static,
    ) -> DStream<U> {
        self.derive("transform", move |env, items| {
            let cx = env.stage_ctx();
            match catch_unwind(AssertUnwindSafe(|| f(items, &cx))) {
                Ok(v) => v,
                Err(_) => {
                    env.counter.add_error(ErrorReason::Panic, 1);
                    Vec::new()
                }
            }
        })
    }

    /// Plugs in a stateless user stage.
    pub fn stage<S: Stage<In = T>>(&self, stage: S) -> DStream<S::Out> {
        let desc = format!("stage[{}]", stage.describe());
        self.derive(&desc, move |env, items| {
            let cx = env.stage_ctx();
            let mut out = Vec::new();
            match catch_unwind(AssertUnwindSafe(|| stage.process(items, &mut out, &cx))) {
                Ok(()) => out,
                Err(_) => {
                    env.counter.add_error(ErrorReason::Panic, 1);
                    Vec::new()
                }
            }
        })
    }

    /// Plugs in a stateful stage: its state is snapshotted with every batch and restored after
    /// a failed batch or a restart (see [`StatefulStage`]).
    pub fn stateful<S: StatefulStage<In = T>>(&self, stage: S) -> DStream<S::Out> {
        let id = self.ctx.describe(format!(
            "stateful[{}]({})",
            stage.describe(),
            short(&self.id)
        ));
        let handle = Arc::new(StatefulNode {
            id: id.clone(),
            stage: Mutex::new(stage),
            last_good: Mutex::new(Vec::new()),
        });
        self.ctx.add_stateful(handle.clone());
        let parent = self.node.clone();
        let node = Node::new(move |env: &BatchEnv<'_>| {
            let input = parent.get(env);
            let cx = env.stage_ctx();
            let mut out = Vec::new();
            let mut s = handle.stage.lock().unwrap_or_else(|e| e.into_inner());
            let r = catch_unwind(AssertUnwindSafe(|| s.process(&input, &mut out, &cx)));
            if r.is_err() {
                env.counter.add_error(ErrorReason::Panic, 1);
                let good = handle.last_good.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = s.restore(&good) {
                    tracing::error!(stage = %handle.id, error = %e, "a panicking stage could not restore its last snapshot; its state restarts empty");
                    let _ = s.restore(&[]);
                }
                out.clear();
            }
            Arc::new(out)
        });
        DStream::from_node(&self.ctx, self.ctx.add_node(node), id)
    }
}

pub(crate) struct StatefulNode<S> {
    id: String,
    stage: Mutex<S>,
    /// The bytes of the last persisted snapshot (restored after a failed batch).
    last_good: Mutex<Vec<u8>>,
}

impl<S: StatefulStage> StatefulHandle for StatefulNode<S> {
    fn id(&self) -> &str {
        &self.id
    }
    fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.stage
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .snapshot(&mut out);
        *self.last_good.lock().unwrap_or_else(|e| e.into_inner()) = out.clone();
        out
    }
    fn restore(&self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.stage
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .restore(bytes)?;
        *self.last_good.lock().unwrap_or_else(|e| e.into_inner()) = bytes.to_vec();
        Ok(())
    }
    fn restore_last_good(&self) -> Result<(), SnapshotError> {
        let good = self
            .last_good
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        self.stage
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .restore(&good)
    }
    fn state_keys(&self) -> u64 {
        self.stage
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .state_keys()
    }
    fn watermark_ms(&self) -> Option<i64> {
        self.stage
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .watermark_ms()
    }
}

/// `#12 words.map.reduce_by_key` → `#12` (keeps fingerprints short).
fn short(id: &str) -> &str {
    id.split(' ').next().unwrap_or(id)
}

impl<T: Key> DStream<T> {
    /// `(element, occurrences)` per distinct element, sorted.
    pub fn count_by_value(&self) -> DStream<(T, u64)> {
        self.derive("count_by_value", |env, items| {
            let workers = env.workers.for_items(items.len());
            let parts = workers.run(|i| {
                let mut m: Combiner<T, u64> = Combiner::default();
                for x in workers.chunk(items, i) {
                    *m.entry_or_insert_with(x.clone(), || 0) += 1;
                }
                m
            });
            merge_keyed(workers, parts, &|a, b| a + b)
        })
    }
}

impl<K: Key, V: Clone + Send + Sync + 'static> DStream<(K, V)> {
    /// Applies `f` to every value, keeping keys.
    pub fn map_values<U: Send + Sync + 'static>(
        &self,
        f: impl Fn(&V) -> U + Send + Sync + 'static,
    ) -> DStream<(K, U)> {
        self.derive("map_values", move |env, items| {
            guarded(env, items, &|(k, v): &(K, V), out: &mut Vec<(K, U)>| {
                out.push((k.clone(), f(v)))
            })
        })
    }

    /// Combines the values of each key with `f` (associative); sorted by key.
    pub fn reduce_by_key(&self, f: impl Fn(V, V) -> V + Send + Sync + 'static) -> DStream<(K, V)> {
        self.derive("reduce_by_key", move |env, items| {
            let workers = env.workers.for_items(items.len());
            let r = catch_unwind(AssertUnwindSafe(|| {
                let parts = workers.run(|i| {
                    let mut m: Combiner<K, V> = Combiner::default();
                    for (k, v) in workers.chunk(items, i) {
                        combine(&mut m, k.clone(), v.clone(), &f);
                    }
                    m
                });
                merge_keyed(workers, parts, &f)
            }));
            r.unwrap_or_else(|_| {
                env.counter.add_error(ErrorReason::Panic, 1);
                Vec::new()
            })
        })
    }

    /// Per-batch inner join: `(k, (v, w))` for every pair of equal keys; sorted by key, then
    /// left order, then right order.
    pub fn join<W: Clone + Send + Sync + 'static>(
        &self,
        other: &DStream<(K, W)>,
    ) -> DStream<(K, (V, W))> {
        self.join_impl(other, "join", |v, ws, out, k| {
            for w in ws {
                out.push((k.clone(), (v.clone(), (*w).clone())));
            }
        })
    }

    /// Per-batch left outer join: `(k, (v, Some(w)))` per match, `(k, (v, None))` for a left
    /// element without one; same order as [`join`](Self::join).
    pub fn left_outer_join<W: Clone + Send + Sync + 'static>(
        &self,
        other: &DStream<(K, W)>,
    ) -> DStream<(K, (V, Option<W>))> {
        self.join_impl(other, "left_outer_join", |v, ws, out, k| {
            if ws.is_empty() {
                out.push((k.clone(), (v.clone(), None)));
            }
            for w in ws {
                out.push((k.clone(), (v.clone(), Some((*w).clone()))));
            }
        })
    }

    fn join_impl<W, U>(
        &self,
        other: &DStream<(K, W)>,
        name: &str,
        emit: impl Fn(&V, &[&W], &mut Vec<(K, U)>, &K) + Send + Sync + 'static,
    ) -> DStream<(K, U)>
    where
        W: Clone + Send + Sync + 'static,
        U: Send + Sync + 'static,
    {
        let id = self
            .ctx
            .describe(format!("{name}({},{})", short(&self.id), short(&other.id)));
        let (a, b) = (self.node.clone(), other.node.clone());
        let node = Node::new(move |env: &BatchEnv<'_>| {
            let (left, right) = (a.get(env), b.get(env));
            let mut index: FastMap<&K, Vec<&W>> = FastMap::default();
            for (k, w) in right.iter() {
                index.entry(k).or_default().push(w);
            }
            let mut order: Vec<usize> = (0..left.len()).collect();
            order.sort_by(|&i, &j| left[i].0.cmp(&left[j].0));
            let mut out = Vec::new();
            for i in order {
                let (k, v) = &left[i];
                let ws = index.get(k).map(|v| v.as_slice()).unwrap_or(&[]);
                emit(v, ws, &mut out, k);
            }
            Arc::new(out)
        });
        DStream::from_node(&self.ctx, self.ctx.add_node(node), id)
    }
}
