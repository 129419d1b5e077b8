//! Keyed state across batches: [`DStream::update_state_by_key`] and
//! [`DStream::map_with_state`], both [`StatefulStage`]s configured by a [`StateSpec`]
//! (initial state, per-key timeout, key limit, TTL).
//!
//! # Semantics (Spark's, with bounds)
//!
//! * **`update_state_by_key(f)`** — every batch, `f(key, values, old state)` is called for every
//!   key that has a state *or* values in the batch (values in input order, `&[]` for a key
//!   without any), and its result replaces the state; `None` drops the key. The output is the
//!   whole state, `(key, state)` sorted by key, every batch.
//! * **`map_with_state(spec, f)`** — `f(key, Some(value), &mut KeyState)` is called once per
//!   input record, in input order per key; the [`KeyState`] can be read, updated or removed, and
//!   `f`'s result is the output record. Output records are sorted by key, in input order within a
//!   key. With a **timeout** `d`, a key whose last record arrived at batch time `l` with
//!   `l < t − d` at batch `t` gets one final call `f(key, None, state)` with
//!   [`KeyState::is_timing_out`] true (an `update` there is ignored), and is then dropped. Keys
//!   of the initial state count as arriving at the first batch.
//!
//! # Bounds: key limit and TTL
//!
//! * **TTL** (`StateSpec::ttl`): at the start of batch `t`, a key whose last record arrived at
//!   `l` with `t − l > ttl` is dropped without a call (before the timeout calls, so a TTL
//!   shorter than the timeout pre-empts them).
//! * **Key limit** (`StateSpec::max_keys`): a batch may add at most `max_keys − held` new keys,
//!   where `held` is the number of keys held at its start (after the TTL). New keys are admitted
//!   in the order of their first record in the batch; the records of the keys not admitted are
//!   dropped and counted as `ErrorsStateLimit` (one per record), and the stage logs one WARN
//!   (once per stage instance). Keys dropped during a batch make room from the next batch on.
//!   State memory is thus bounded by the limit, never an OOM.
//!
//! # Sharding
//!
//! The state lives in 32 shards by key hash (independent of the worker count, so a snapshot
//! restores under any worker count). Each batch, the input is partitioned by shard (in parallel
//! chunks, keeping input order), and the workers own shards round-robin: grouping, TTL, the
//! user function and the output of a shard run on its worker. The admission of new keys is
//! decided between the two parallel phases from the keys' first-record positions, and the
//! output is sorted by key (stable), so the result equals a single-threaded run.
//!
//! # Snapshot (the `Persist` encoding, deterministic bytes)
//!
//! ```text
//! u8 version (1) · u64 n · n × (K key, S state, i64 last-record batch time)   keys ascending
//! ```
//!
//! The batch time `i64::MIN` marks initial-state keys not yet touched by a batch.

use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::metrics::ErrorReason;
use super::stage::{
    Key, Persist, SnapshotError, SnapshotReader, StageContext, StatefulStage, Workers,
};
use super::stream::DStream;
use super::text::{fast_hash, FastMap};
use super::window::workers_for;

const VERSION: u8 = 1;

/// Number of state shards (see the module docs).
pub const SHARDS: usize = 32;

/// Batch time of an initial-state key not yet seen by a batch.
const UNTOUCHED: i64 = i64::MIN;

/// The shard of `k` (high hash bits, so the shard's own hash map uses all of its buckets).
pub(crate) fn shard_of<K: Hash + ?Sized>(k: &K) -> usize {
    ((fast_hash(k) >> 40) % SHARDS as u64) as usize
}

/// How a keyed-state stage starts and what bounds it (see the module docs).
#[derive(Clone)]
pub struct StateSpec<K, S> {
    initial: Vec<(K, S)>,
    timeout: Option<Duration>,
    max_keys: Option<usize>,
    ttl: Option<Duration>,
}

impl<K, S> Default for StateSpec<K, S> {
    fn default() -> Self {
        StateSpec {
            initial: Vec::new(),
            timeout: None,
            max_keys: None,
            ttl: None,
        }
    }
}

impl<K, S> std::fmt::Debug for StateSpec<K, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateSpec")
            .field("initial_keys", &self.initial.len())
            .field("timeout", &self.timeout)
            .field("max_keys", &self.max_keys)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl<K, S> StateSpec<K, S> {
    /// No initial state, no timeout, no limit, no TTL.
    pub fn new() -> Self {
        Self::default()
    }
    /// The state every key starts with (a later duplicate of a key wins).
    pub fn initial_state(mut self, initial: Vec<(K, S)>) -> Self {
        self.initial = initial;
        self
    }
    /// `map_with_state`: idle time after which a key gets its timing-out call and is dropped.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }
    /// The most keys the stage holds.
    pub fn max_keys(mut self, n: usize) -> Self {
        self.max_keys = Some(n);
        self
    }
    /// Idle time after which a key is dropped silently.
    pub fn ttl(mut self, d: Duration) -> Self {
        self.ttl = Some(d);
        self
    }
    fn describe(&self) -> String {
        let mut s = format!("initial={}", self.initial.len());
        if let Some(t) = self.timeout {
            s += &format!(",timeout={}ms", t.as_millis());
        }
        if let Some(n) = self.max_keys {
            s += &format!(",max_keys={n}");
        }
        if let Some(t) = self.ttl {
            s += &format!(",ttl={}ms", t.as_millis());
        }
        s
    }
}

/// A key's state as the `map_with_state` function sees it.
#[derive(Debug)]
pub struct KeyState<'a, S> {
    slot: &'a mut Option<S>,
    timing_out: bool,
}

impl<S> KeyState<'_, S> {
    /// True when the key has a state.
    pub fn exists(&self) -> bool {
        self.slot.is_some()
    }
    /// The state, if any.
    pub fn get(&self) -> Option<&S> {
        self.slot.as_ref()
    }
    /// Mutable access to the state, if any.
    pub fn get_mut(&mut self) -> Option<&mut S> {
        self.slot.as_mut()
    }
    /// Sets the state (ignored in the timing-out call: the key is dropped anyway).
    pub fn update(&mut self, s: S) {
        if !self.timing_out {
            *self.slot = Some(s);
        }
    }
    /// Removes the state (the key is dropped after this call).
    pub fn remove(&mut self) {
        *self.slot = None;
    }
    /// True in the final call of a key that timed out.
    pub fn is_timing_out(&self) -> bool {
        self.timing_out
    }
}

struct Slot<S> {
    state: Option<S>,
    /// Batch time of the key's last record.
    last: i64,
}

type Shard<K, S> = FastMap<K, Slot<S>>;

/// One shard's share of a batch: its records grouped by key, in first-appearance order.
struct Plan<'a, K, V> {
    groups: Vec<Group<'a, K, V>>,
    index: FastMap<&'a K, usize>,
}

struct Group<'a, K, V> {
    key: &'a K,
    first: usize,
    values: Vec<&'a V>,
    new: bool,
}

/// The sharded store shared by both operators.
struct Store<K, S> {
    shards: Vec<Mutex<Shard<K, S>>>,
    spec: StateSpec<K, S>,
    desc: String,
    warned: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<K: Key + Persist, S: Clone + Send + Sync + Persist + 'static> Store<K, S> {
    fn new(spec: StateSpec<K, S>, desc: String) -> Self {
        let mut s = Store {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(FastMap::default()))
                .collect(),
            spec,
            desc,
            warned: false,
        };
        s.reset();
        s
    }

    fn reset(&mut self) {
        for sh in &self.shards {
            lock(sh).clear();
        }
        for (k, s) in &self.spec.initial {
            lock(&self.shards[shard_of(k)]).insert(
                k.clone(),
                Slot {
                    state: Some(s.clone()),
                    last: UNTOUCHED,
                },
            );
        }
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// Runs `f(shard index, shard)` for every shard, shards owned round-robin by the workers;
    /// results in shard order.
    fn for_shards<R: Send>(
        &self,
        w: Workers,
        f: impl Fn(usize, &mut Shard<K, S>) -> R + Sync,
    ) -> Vec<R> {
        let n = w.count();
        let parts = w.run(|wi| {
            (wi..SHARDS)
                .step_by(n)
                .map(|s| (s, f(s, &mut lock(&self.shards[s]))))
                .collect::<Vec<_>>()
        });
        let mut all: Vec<(usize, R)> = parts.into_iter().flatten().collect();
        all.sort_unstable_by_key(|(s, _)| *s);
        all.into_iter().map(|(_, r)| r).collect()
    }

    /// Phase A: partitions and groups the input, applies the TTL, decides admission. Returns
    /// the per-shard plans and the first-record position from which new keys are rejected.
    fn plan<'a, V: Sync>(
        &mut self,
        input: &'a [(K, V)],
        w: Workers,
        cx: &StageContext<'_>,
    ) -> (Vec<Plan<'a, K, V>>, usize) {
        let t = cx.batch_time_ms();
        let pw = workers_for(w, input.len());
        // Partition record indices by shard, in parallel contiguous chunks.
        let parts: Vec<Vec<Vec<usize>>> = pw.run(|i| {
            let start = input.len() * i / pw.count();
            let mut by: Vec<Vec<usize>> = vec![Vec::new(); SHARDS];
            for (j, (k, _)) in pw.chunk(input, i).iter().enumerate() {
                by[shard_of(k)].push(start + j);
            }
            by
        });
        let ttl = self.spec.ttl.map(|d| d.as_millis() as i64);
        let plans = self.for_shards(w, |s, shard| {
            for slot in shard.values_mut() {
                if slot.last == UNTOUCHED {
                    slot.last = t;
                }
            }
            if let Some(ttl) = ttl {
                shard.retain(|_, slot| t - slot.last <= ttl);
            }
            let mut plan = Plan {
                groups: Vec::new(),
                index: FastMap::default(),
            };
            for p in &parts {
                for &i in &p[s] {
                    let (k, v) = &input[i];
                    match plan.index.get(k) {
                        Some(&g) => plan.groups[g].values.push(v),
                        None => {
                            plan.index.insert(k, plan.groups.len());
                            plan.groups.push(Group {
                                key: k,
                                first: i,
                                values: vec![v],
                                new: !shard.contains_key(k),
                            });
                        }
                    }
                }
            }
            plan
        });
        let mut cutoff = usize::MAX;
        if let Some(max) = self.spec.max_keys {
            let held = self.len();
            let mut firsts: Vec<usize> = plans
                .iter()
                .flat_map(|p| p.groups.iter().filter(|g| g.new).map(|g| g.first))
                .collect();
            let budget = max.saturating_sub(held);
            if firsts.len() > budget {
                firsts.sort_unstable();
                cutoff = firsts[budget];
                let dropped: usize = plans
                    .iter()
                    .flat_map(|p| p.groups.iter())
                    .filter(|g| g.new && g.first >= cutoff)
                    .map(|g| g.values.len())
                    .sum();
                cx.error(ErrorReason::StateLimit, dropped as u64);
                if !self.warned {
                    self.warned = true;
                    tracing::warn!(
                        stage = %self.desc,
                        max_keys = max,
                        dropped_records = dropped,
                        "keyed state reached its key limit; records of new keys are dropped \
                         (counted as ErrorsStateLimit); raise max_keys, set a ttl or a timeout, \
                         or drop keys in the state function"
                    );
                }
            }
        }
        (plans, cutoff)
    }

    fn snapshot(&self, out: &mut Vec<u8>) {
        VERSION.persist(out);
        let guards: Vec<_> = self.shards.iter().map(|s| lock(s)).collect();
        let mut all: Vec<(&K, &Slot<S>)> = guards.iter().flat_map(|g| g.iter()).collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        (all.len() as u64).persist(out);
        for (k, slot) in all {
            k.persist(out);
            slot.state.persist(out);
            slot.last.persist(out);
        }
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        if bytes.is_empty() {
            self.reset();
            return Ok(());
        }
        for sh in &self.shards {
            lock(sh).clear();
        }
        let mut r = SnapshotReader::new(bytes);
        let v: u8 = r.read()?;
        if v != VERSION {
            return Err(r.invalid(format!(
                "keyed state snapshot version {v}, expected {VERSION}"
            )));
        }
        let n: u64 = r.read()?;
        for _ in 0..n {
            let k: K = r.read()?;
            let state: Option<S> = r.read()?;
            let last: i64 = r.read()?;
            lock(&self.shards[shard_of(&k)]).insert(k, Slot { state, last });
        }
        if !r.is_at_end() {
            return Err(r.invalid("trailing bytes after the keyed state"));
        }
        Ok(())
    }
}

fn sort_by_key<K: Ord, U>(parts: Vec<Vec<(K, U)>>) -> Vec<(K, U)> {
    let mut all: Vec<(K, U)> = parts.into_iter().flatten().collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

type UpdateFn<K, V, S> = Arc<dyn Fn(&K, &[&V], Option<S>) -> Option<S> + Send + Sync>;

struct UpdateState<K, V, S> {
    store: Store<K, S>,
    f: UpdateFn<K, V, S>,
}

impl<K, V, S> StatefulStage for UpdateState<K, V, S>
where
    K: Key + Persist,
    V: Send + Sync + 'static,
    S: Clone + Send + Sync + Persist + 'static,
{
    type In = (K, V);
    type Out = (K, S);

    fn describe(&self) -> String {
        self.store.desc.clone()
    }

    fn process(&mut self, input: &[(K, V)], out: &mut Vec<(K, S)>, cx: &StageContext<'_>) {
        let t = cx.batch_time_ms();
        let w = workers_for(cx.workers(), input.len() + self.store.len());
        let (plans, cutoff) = self.store.plan(input, w, cx);
        let f = &self.f;
        let parts = self.store.for_shards(w, |s, shard| {
            let plan = &plans[s];
            shard.retain(|k, slot| {
                let (vals, touched): (&[&V], bool) = match plan.index.get(k) {
                    Some(&g) => (&plan.groups[g].values, true),
                    None => (&[], false),
                };
                slot.state = f(k, vals, slot.state.take());
                if touched {
                    slot.last = t;
                }
                slot.state.is_some()
            });
            for g in &plan.groups {
                if g.new && g.first < cutoff {
                    if let Some(st) = f(g.key, &g.values, None) {
                        shard.insert(
                            g.key.clone(),
                            Slot {
                                state: Some(st),
                                last: t,
                            },
                        );
                    }
                }
            }
            shard
                .iter()
                .filter_map(|(k, slot)| slot.state.as_ref().map(|s| (k.clone(), s.clone())))
                .collect::<Vec<_>>()
        });
        out.append(&mut sort_by_key(parts));
    }

    fn snapshot(&self, out: &mut Vec<u8>) {
        self.store.snapshot(out)
    }
    fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.store.restore(bytes)
    }
    fn state_keys(&self) -> u64 {
        self.store.len() as u64
    }
}

type MapFn<K, V, S, U> = Arc<dyn Fn(&K, Option<&V>, &mut KeyState<'_, S>) -> U + Send + Sync>;

struct MapWithState<K, V, S, U> {
    store: Store<K, S>,
    f: MapFn<K, V, S, U>,
}

impl<K, V, S, U> StatefulStage for MapWithState<K, V, S, U>
where
    K: Key + Persist,
    V: Send + Sync + 'static,
    S: Clone + Send + Sync + Persist + 'static,
    U: Send + Sync + 'static,
{
    type In = (K, V);
    type Out = U;

    fn describe(&self) -> String {
        self.store.desc.clone()
    }

    fn process(&mut self, input: &[(K, V)], out: &mut Vec<U>, cx: &StageContext<'_>) {
        let t = cx.batch_time_ms();
        let w = workers_for(cx.workers(), input.len() + self.store.len());
        let (plans, cutoff) = self.store.plan(input, w, cx);
        let timeout = self.store.spec.timeout.map(|d| d.as_millis() as i64);
        let f = &self.f;
        let parts = self.store.for_shards(w, |s, shard| {
            let plan = &plans[s];
            let mut res: Vec<(K, U)> = Vec::new();
            for g in &plan.groups {
                if g.new && g.first >= cutoff {
                    continue;
                }
                let mut st = shard.remove(g.key).and_then(|slot| slot.state);
                for v in &g.values {
                    let mut ks = KeyState {
                        slot: &mut st,
                        timing_out: false,
                    };
                    res.push((g.key.clone(), f(g.key, Some(v), &mut ks)));
                }
                if st.is_some() {
                    shard.insert(g.key.clone(), Slot { state: st, last: t });
                }
            }
            if let Some(d) = timeout {
                shard.retain(|k, slot| {
                    if slot.last >= t - d || plan.index.contains_key(k) {
                        return true;
                    }
                    let mut ks = KeyState {
                        slot: &mut slot.state,
                        timing_out: true,
                    };
                    res.push((k.clone(), f(k, None, &mut ks)));
                    false
                });
            }
            res
        });
        out.extend(sort_by_key(parts).into_iter().map(|(_, u)| u));
    }

    fn snapshot(&self, out: &mut Vec<u8>) {
        self.store.snapshot(out)
    }
    fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.store.restore(bytes)
    }
    fn state_keys(&self) -> u64 {
        self.store.len() as u64
    }
}

impl<K: Key + Persist, V: Send + Sync + 'static> DStream<(K, V)> {
    /// Spark's `updateStateByKey` (see the module docs): `f(key, values, old)` for every key
    /// with a state or values; `None` drops the key; outputs the whole state each batch.
    pub fn update_state_by_key<S, F>(&self, f: F) -> DStream<(K, S)>
    where
        S: Clone + Send + Sync + Persist + 'static,
        F: Fn(&K, &[&V], Option<S>) -> Option<S> + Send + Sync + 'static,
    {
        self.update_state_by_key_with(StateSpec::new(), f)
    }

    /// [`update_state_by_key`](Self::update_state_by_key) with an initial state, a key limit
    /// and a TTL (the spec's timeout is not used here).
    pub fn update_state_by_key_with<S, F>(&self, spec: StateSpec<K, S>, f: F) -> DStream<(K, S)>
    where
        S: Clone + Send + Sync + Persist + 'static,
        F: Fn(&K, &[&V], Option<S>) -> Option<S> + Send + Sync + 'static,
    {
        let desc = format!("update_state_by_key({})", spec.describe());
        self.stateful(UpdateState {
            store: Store::new(spec, desc),
            f: Arc::new(f),
        })
    }

    /// Spark's `mapWithState` (see the module docs): `f(key, Some(value), state)` per record,
    /// `f(key, None, state)` once when a key times out; outputs `f`'s results sorted by key.
    pub fn map_with_state<S, U, F>(&self, spec: StateSpec<K, S>, f: F) -> DStream<U>
    where
        S: Clone + Send + Sync + Persist + 'static,
        U: Send + Sync + 'static,
        F: Fn(&K, Option<&V>, &mut KeyState<'_, S>) -> U + Send + Sync + 'static,
    {
        let desc = format!("map_with_state({})", spec.describe());
        self.stateful(MapWithState {
            store: Store::new(spec, desc),
            f: Arc::new(f),
        })
    }
}
