//! Windows, keyed state and event time against naive reference implementations on random
//! input, batch by batch with a manual clock (no sleeps): random batch splits, out-of-order,
//! late and bad-timestamp event-time data, random worker counts (sharded runs must equal the
//! single-thread run, down to the snapshot bytes), and a restart from the checkpoint at a random
//! batch that must give the same outputs as an uninterrupted run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use sluicegate::channel::memory::{MemoryChannel, MemoryChannelConfig};
use sluicegate::channel::Channel;
use sluicegate::pipeline::event_time::{Emit, EventTime, Timed, WindowResult, Windows};
use sluicegate::pipeline::state::StateSpec;
use sluicegate::pipeline::{
    DStream, ErrorReason, ManualClock, PipelineConfig, PipelineCounter, StageContext,
    StreamingContext, Text,
};
use sluicegate::Event;

const IV: i64 = 1000;

struct RunOut<T> {
    batches: Vec<Vec<T>>,
    counter: Arc<PipelineCounter>,
    last_snapshot: Option<Vec<u8>>,
}

fn newest_snapshot(dir: &Path) -> Option<Vec<u8>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("state-") && n.ends_with(".snap"))
        .collect();
    names.sort();
    std::fs::read(dir.join(names.last()?)).ok()
}

/// Runs `build`'s stream over `batches` (one batch each, batch `i` at time `1000 × i`) with
/// `workers` workers and a checkpoint; with `restart_after = Some(k)` the pipeline is dropped
/// after batch `k` and rebuilt from the checkpoint (a clean restart).
fn run<T, B>(
    workers: usize,
    batches: &[Vec<Event>],
    restart_after: Option<usize>,
    build: B,
) -> RunOut<T>
where
    T: Clone + Send + Sync + 'static,
    B: Fn(&StreamingContext) -> DStream<T>,
{
    let dir = tempfile::tempdir().unwrap();
    let ch = Arc::new(MemoryChannel::new(
        "c",
        MemoryChannelConfig {
            capacity: 1 << 20,
            transaction_capacity: 1 << 16,
            ..Default::default()
        },
    ));
    let clock = Arc::new(ManualClock::new(0));
    let out: Arc<Mutex<Vec<Vec<T>>>> = Arc::new(Mutex::new(Vec::new()));
    let counter = Arc::new(PipelineCounter::new("unused"));
    let mut counters = vec![counter];
    let open = |counters: &mut Vec<Arc<PipelineCounter>>| {
        let ctx = StreamingContext::new(
            "t",
            ch.clone() as Arc<dyn Channel>,
            PipelineConfig {
                workers,
                clock: clock.clone(),
                batch_interval: Duration::from_millis(IV as u64),
                checkpoint_dir: Some(dir.path().to_path_buf()),
                ..Default::default()
            },
        );
        let o = out.clone();
        build(&ctx).foreach_batch(move |items: &[T], _cx: &StageContext<'_>| {
            o.lock().unwrap().push(items.to_vec());
            Ok::<(), String>(())
        });
        counters.push(ctx.counter());
        ctx.build().unwrap()
    };
    let mut p = open(&mut counters);
    for (i, b) in batches.iter().enumerate() {
        if !b.is_empty() {
            ch.put_batch(b).unwrap();
        }
        clock.advance(IV);
        let r = p.step().unwrap().expect("a batch");
        assert_eq!(r.batch_time_ms, IV * (i as i64 + 1));
        if restart_after == Some(i + 1) {
            drop(p);
            p = open(&mut counters);
        }
    }
    drop(p);
    assert_eq!(ch.size(), 0, "every batch committed");
    // Sum the counters of both incarnations into one.
    let total = Arc::new(PipelineCounter::new("t"));
    for c in &counters {
        total.add_late(c.late_events.load(std::sync::atomic::Ordering::Relaxed));
        for r in [
            ErrorReason::BadTimestamp,
            ErrorReason::StateLimit,
            ErrorReason::Panic,
        ] {
            total.add_error(r, c.errors(r));
        }
    }
    let batches = out.lock().unwrap().clone();
    RunOut {
        batches,
        counter: total,
        last_snapshot: newest_snapshot(dir.path()),
    }
}

// ---------------------------------------------------------------- inputs

const VOCAB: [&str; 6] = ["a", "b", "c", "d", "e", "a-much-longer-word-over-22-bytes"];

fn words_body() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(VOCAB.to_vec()), 0..5)
        .prop_map(|v| v.join(" "))
}

fn word_batches() -> impl Strategy<Value = Vec<Vec<Event>>> {
    proptest::collection::vec(
        proptest::collection::vec(words_body().prop_map(Event::from_body), 0..25),
        1..12,
    )
}

fn words_of(e: &Event) -> Vec<String> {
    std::str::from_utf8(e.body())
        .unwrap()
        .split_ascii_whitespace()
        .map(str::to_string)
        .collect()
}

/// Batch `j` (1-based) is in the window at output batch `i` when `j·iv ∈ (i·iv − len, i·iv]`.
fn window_batches(i: usize, len: i64) -> impl Iterator<Item = usize> {
    let t = IV * i as i64;
    (1..=i).filter(move |&j| IV * j as i64 > t - len)
}

fn is_output(i: usize, slide: i64) -> bool {
    (IV * i as i64) % slide == 0
}

fn naive_counts(batches: &[Vec<Event>], i: usize, len: i64) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for j in window_batches(i, len) {
        for e in &batches[j - 1] {
            for w in words_of(e) {
                *m.entry(w).or_insert(0) += 1;
            }
        }
    }
    m
}

fn owned(v: &[(Text, u64)]) -> Vec<(String, u64)> {
    v.iter().map(|(k, c)| (k.to_string(), *c)).collect()
}

fn params() -> impl Strategy<Value = (i64, i64)> {
    (1i64..=5, 1i64..=3).prop_map(|(l, s)| (l * IV, s * IV))
}

// ---------------------------------------------------------------- processing-time windows

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn keyed_windows_match_the_naive_reference(
        batches in word_batches(),
        (len, slide) in params(),
        workers in 1usize..=4,
        restart in proptest::option::of(1usize..12),
        variant in 0usize..4,
    ) {
        let (l, s) = (Duration::from_millis(len as u64), Duration::from_millis(slide as u64));
        let build = move |ctx: &StreamingContext| -> DStream<(Text, u64)> {
            let pairs = ctx.events().words().map(|w| (w, 1u64));
            match variant {
                0 => pairs.stream().reduce_by_key_and_window(|a, b| a + b, l, s),
                1 => pairs.reduce_by_key_and_window_inv(|a, b| a + b, |a, b| a - b, l, s, |_, c| *c != 0),
                2 => pairs.stream().reduce_by_key_and_window_inv(|a, b| a + b, |a, b| a - b, l, s, |_, _| true),
                _ => ctx.events().words().stream().count_by_value_and_window(l, s),
            }
        };
        let one = run(1, &batches, None, build);
        let many = run(workers, &batches, restart.filter(|r| *r < batches.len()), build);
        prop_assert_eq!(&one.batches, &many.batches);
        if restart.is_none() {
            prop_assert_eq!(&one.last_snapshot, &many.last_snapshot);
        }
        let mut seen: BTreeSet<String> = BTreeSet::new();
        for (i0, got) in one.batches.iter().enumerate() {
            let i = i0 + 1;
            if !is_output(i, slide) {
                prop_assert!(got.is_empty(), "batch {} is not an output batch", i);
                continue;
            }
            // A key enters the state when a computed window covers it (with a window shorter
            // than its slide, some batches are never covered, and their keys never enter).
            for j in window_batches(i, len) {
                for e in &batches[j - 1] {
                    seen.extend(words_of(e));
                }
            }
            let mut want = naive_counts(&batches, i, len);
            if variant == 2 {
                // Spark semantics without a filter: every key a window ever held stays, at 0.
                for k in &seen {
                    want.entry(k.clone()).or_insert(0);
                }
            }
            prop_assert_eq!(owned(got), want.into_iter().collect::<Vec<_>>(), "batch {}", i);
        }
    }

    #[test]
    fn window_and_count_by_window_match_the_naive_reference(
        batches in word_batches(),
        (len, slide) in params(),
        workers in 1usize..=4,
        restart in proptest::option::of(1usize..12),
    ) {
        let (l, s) = (Duration::from_millis(len as u64), Duration::from_millis(slide as u64));
        let restart = restart.filter(|r| *r < batches.len());
        let win = run(workers, &batches, restart, move |ctx| ctx.events().words().stream().window(l, s));
        let cnt = run(workers, &batches, restart, move |ctx| ctx.events().stream().count_by_window(l, s));
        let evs = run(workers, &batches, restart, move |ctx| ctx.events().stream().window(l, s));
        for i in 1..=batches.len() {
            if !is_output(i, slide) {
                prop_assert!(win.batches[i - 1].is_empty() && cnt.batches[i - 1].is_empty());
                continue;
            }
            let want: Vec<String> = window_batches(i, len).flat_map(|j| batches[j - 1].iter().flat_map(words_of)).collect();
            let got: Vec<String> = win.batches[i - 1].iter().map(|t| t.to_string()).collect();
            prop_assert_eq!(got, want);
            let n: usize = window_batches(i, len).map(|j| batches[j - 1].len()).sum();
            prop_assert_eq!(&cnt.batches[i - 1], &vec![n as u64]);
            let want_ev: Vec<Event> = window_batches(i, len).flat_map(|j| batches[j - 1].clone()).collect();
            prop_assert_eq!(&evs.batches[i - 1], &want_ev);
        }
    }
}

#[test]
#[should_panic(expected = "must be a positive multiple of the batch interval")]
fn a_window_that_is_not_a_multiple_of_the_interval_is_refused() {
    let ch = Arc::new(MemoryChannel::new("c", MemoryChannelConfig::default()));
    let ctx = StreamingContext::new("t", ch as Arc<dyn Channel>, PipelineConfig::default());
    let _ = ctx
        .events()
        .stream()
        .count_by_window(Duration::from_millis(1500), Duration::from_secs(1));
}

// ---------------------------------------------------------------- keyed state

fn word_pairs(ctx: &StreamingContext) -> DStream<(Text, u64)> {
    ctx.events().words().map(|w| (w, 1u64)).stream()
}

/// (count, batches without a record); dropped after 2 idle batches.
type St = (u64, u64);

fn update(_: &Text, vs: &[&u64], old: Option<St>) -> Option<St> {
    let (c, idle) = old.unwrap_or((0, 0));
    if vs.is_empty() {
        (idle < 1).then_some((c, idle + 1))
    } else {
        Some((c + vs.iter().copied().sum::<u64>(), 0))
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn update_state_by_key_matches_the_reference(
        batches in word_batches(),
        workers in 1usize..=4,
        restart in proptest::option::of(1usize..12),
        max_keys in proptest::option::of(1usize..5),
    ) {
        let spec = move || {
            let s = StateSpec::new().initial_state(vec![(Text::new("z"), (7u64, 0u64))]);
            match max_keys { Some(n) => s.max_keys(n), None => s }
        };
        let build = move |ctx: &StreamingContext| word_pairs(ctx).update_state_by_key_with(spec(), update);
        let one = run(1, &batches, None, build);
        let many = run(workers, &batches, restart.filter(|r| *r < batches.len()), build);
        prop_assert_eq!(&one.batches, &many.batches);
        if restart.is_none() {
            prop_assert_eq!(&one.last_snapshot, &many.last_snapshot);
        }
        // Reference.
        let mut state: BTreeMap<String, St> = BTreeMap::new();
        state.insert("z".into(), (7, 0));
        let mut rejected = 0u64;
        for (i, b) in batches.iter().enumerate() {
            let words: Vec<String> = b.iter().flat_map(words_of).collect();
            let mut groups: BTreeMap<String, Vec<u64>> = BTreeMap::new();
            let mut order: Vec<String> = Vec::new();
            for w in &words {
                if !groups.contains_key(w) { order.push(w.clone()); }
                groups.entry(w.clone()).or_default().push(1);
            }
            let mut admitted: BTreeSet<String> = BTreeSet::new();
            let mut budget = max_keys.map(|m| m.saturating_sub(state.len())).unwrap_or(usize::MAX);
            for w in &order {
                if !state.contains_key(w) {
                    if budget > 0 { budget -= 1; admitted.insert(w.clone()); } else { rejected += groups[w].len() as u64; }
                }
            }
            let keys: BTreeSet<String> = state.keys().cloned().chain(admitted.iter().cloned()).collect();
            let mut next = BTreeMap::new();
            for k in keys {
                let vs: Vec<u64> = groups.get(&k).cloned().unwrap_or_default();
                let refs: Vec<&u64> = vs.iter().collect();
                if let Some(s) = update(&Text::new(&k), &refs, state.get(&k).copied()) {
                    next.insert(k, s);
                }
            }
            state = next;
            let got: Vec<(String, St)> = one.batches[i].iter().map(|(k, s)| (k.to_string(), *s)).collect();
            prop_assert_eq!(got, state.clone().into_iter().collect::<Vec<_>>(), "batch {}", i + 1);
        }
        prop_assert_eq!(one.counter.errors(ErrorReason::StateLimit), rejected);
    }

    #[test]
    fn map_with_state_matches_the_reference(
        batches in word_batches(),
        workers in 1usize..=4,
        restart in proptest::option::of(1usize..12),
        timeout_batches in 1i64..4,
    ) {
        let build = move |ctx: &StreamingContext| {
            let spec = StateSpec::new()
                .initial_state(vec![(Text::new("z"), 100u64)])
                .timeout(Duration::from_millis((timeout_batches * IV) as u64));
            word_pairs(ctx).map_with_state(spec, |k: &Text, v: Option<&u64>, st| {
                if st.is_timing_out() {
                    return (k.to_string(), st.get().copied().unwrap_or(0), true);
                }
                let n = st.get().copied().unwrap_or(0) + v.copied().unwrap_or(0);
                // A running count; a key reaching 5 is removed (and restarts).
                if n >= 5 { st.remove() } else { st.update(n) }
                (k.to_string(), n, false)
            })
        };
        let one = run(1, &batches, None, build);
        let many = run(workers, &batches, restart.filter(|r| *r < batches.len()), build);
        prop_assert_eq!(&one.batches, &many.batches);
        // Reference: (state, last batch time).
        let mut state: BTreeMap<String, (u64, i64)> = BTreeMap::new();
        state.insert("z".into(), (100, IV));
        for (i, b) in batches.iter().enumerate() {
            let t = IV * (i as i64 + 1);
            let mut want: Vec<(String, u64, bool)> = Vec::new();
            let words: Vec<String> = b.iter().flat_map(words_of).collect();
            let keys: BTreeSet<String> = words.iter().cloned().chain(state.keys().cloned()).collect();
            for k in keys {
                let n_rec = words.iter().filter(|w| **w == k).count();
                if n_rec == 0 {
                    let (s, last) = state[&k];
                    if last < t - timeout_batches * IV {
                        want.push((k.clone(), s, true));
                        state.remove(&k);
                    }
                    continue;
                }
                let mut cur = state.get(&k).map(|x| x.0);
                for _ in 0..n_rec {
                    let n = cur.unwrap_or(0) + 1;
                    cur = if n >= 5 { None } else { Some(n) };
                    want.push((k.clone(), n, false));
                }
                match cur { Some(s) => { state.insert(k.clone(), (s, t)); } None => { state.remove(&k); } }
            }
            prop_assert_eq!(&one.batches[i], &want, "batch {}", i + 1);
        }
    }
}

#[test]
fn state_ttl_drops_idle_keys_and_the_limit_is_counted() {
    let b = |s: &str| vec![Event::from_body(s)];
    let batches = vec![b("a b"), b("c"), vec![], vec![], b("d e f")];
    let out = run(2, &batches, None, |ctx| {
        word_pairs(ctx).update_state_by_key_with(
            StateSpec::new()
                .ttl(Duration::from_millis(2000))
                .max_keys(2),
            |_: &Text, vs: &[&u64], old: Option<u64>| Some(old.unwrap_or(0) + vs.len() as u64),
        )
    });
    let keys =
        |i: usize| -> Vec<String> { out.batches[i].iter().map(|(k, _)| k.to_string()).collect() };
    assert_eq!(keys(0), vec!["a", "b"]);
    assert_eq!(keys(1), vec!["a", "b"], "c is over the limit");
    assert_eq!(
        keys(3),
        Vec::<String>::new(),
        "a and b idle for 3000 ms > ttl"
    );
    assert_eq!(keys(4), vec!["d", "e"]);
    assert_eq!(out.counter.errors(ErrorReason::StateLimit), 2);
}

// ---------------------------------------------------------------- event time

#[derive(Debug, Clone)]
struct EtCase {
    batches: Vec<Vec<Event>>,
    windows: Windows,
    lateness: i64,
    idle: Option<i64>,
    emit: Emit,
}

fn et_event(batch: usize) -> impl Strategy<Value = Event> {
    // Timestamps on a 250 ms grid, so window ends, session gaps and watermarks often coincide
    // (the boundary cases).
    (0u8..20, -24i64..12, words_body()).prop_map(move |(kind, jitter, body)| {
        let ts = batch as i64 * IV + jitter * 250;
        match kind {
            0 => Event::from_body(body),
            1 => Event::new([("timestamp", "12x")], body),
            _ => Event::new([("timestamp", ts.to_string())], body),
        }
    })
}

fn et_case() -> impl Strategy<Value = EtCase> {
    let batches = proptest::collection::vec((0usize..20, proptest::bool::weighted(0.25)), 1..12)
        .prop_flat_map(|spec| {
            spec.into_iter()
                .enumerate()
                .map(|(i, (n, empty))| {
                    proptest::collection::vec(et_event(i + 1), if empty { 0 } else { n })
                })
                .collect::<Vec<_>>()
        });
    let windows = prop_oneof![
        (1i64..4).prop_map(|l| Windows::tumbling(Duration::from_millis((l * 1000) as u64))),
        (1i64..4, 1i64..3).prop_map(|(l, s)| Windows::sliding(
            Duration::from_millis((l * s * 500) as u64),
            Duration::from_millis((s * 500) as u64)
        )),
        (1i64..4).prop_map(|g| Windows::session(Duration::from_millis((g * 700) as u64))),
    ];
    (
        batches,
        windows,
        prop_oneof![Just(0i64), Just(1000), Just(2500)],
        proptest::option::of(prop_oneof![Just(1000i64), Just(2000)]),
        prop_oneof![Just(Emit::Final), Just(Emit::Update)],
    )
        .prop_map(|(batches, windows, lateness, idle, emit)| EtCase {
            batches,
            windows,
            lateness,
            idle,
            emit,
        })
}

type EtOut = Timed<Text, u64, Event>;

fn et_build(c: &EtCase) -> impl Fn(&StreamingContext) -> DStream<EtOut> + Clone {
    let c = c.clone();
    move |ctx: &StreamingContext| {
        let mut time = EventTime::header("timestamp")
            .lateness(Duration::from_millis(c.lateness as u64))
            .emit(c.emit)
            .side_output(true);
        if let Some(d) = c.idle {
            time = time.idle_timeout(Duration::from_millis(d as u64));
        }
        ctx.events().stream().event_time_window(
            time,
            c.windows,
            |e: &Event, emit: &mut dyn FnMut(Text, u64)| {
                for w in std::str::from_utf8(e.body())
                    .unwrap_or("")
                    .split_ascii_whitespace()
                {
                    emit(Text::new(w), 1)
                }
            },
            |a, b| a + b,
        )
    }
}

fn ts_of(e: &Event) -> Option<i64> {
    e.header("timestamp")?.parse().ok()
}

/// The naive model: all accepted elements kept, windows recomputed from them.
fn et_reference(c: &EtCase) -> (Vec<Vec<EtOut>>, u64, u64) {
    let (mut wm, mut max_ts, mut last_ev): (Option<i64>, Option<i64>, Option<i64>) =
        (None, None, None);
    // Accepted (ts, key) elements (value 1 each); for sessions the still-open ones per key.
    let mut acc: Vec<(i64, String)> = Vec::new();
    let mut open: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let (mut late_n, mut bad_n) = (0, 0);
    let mut outs = Vec::new();
    for (i, b) in c.batches.iter().enumerate() {
        let t = IV * (i as i64 + 1);
        let wm0 = wm;
        let mut out: Vec<EtOut> = Vec::new();
        let mut this: Vec<(i64, String)> = Vec::new();
        for e in b {
            let Some(ts) = ts_of(e) else {
                bad_n += 1;
                out.push(Timed::BadTimestamp(e.clone()));
                continue;
            };
            max_ts = Some(max_ts.map_or(ts, |m: i64| m.max(ts)));
            last_ev = Some(t);
            let last_end = match c.windows {
                Windows::Sliding { len_ms, slide_ms } => {
                    ts.div_euclid(slide_ms) * slide_ms + len_ms
                }
                Windows::Session { gap_ms } => ts + gap_ms,
            };
            if wm0.is_some_and(|w| last_end <= w) {
                late_n += 1;
                out.push(Timed::Late(e.clone()));
                continue;
            }
            for w in words_of(e) {
                this.push((ts, w));
            }
        }
        if let Some(m) = max_ts {
            let mut w = m - c.lateness;
            if let (Some(d), Some(l)) = (c.idle, last_ev) {
                if t - l >= d {
                    w = w.max(m + (t - l) - c.lateness);
                }
            }
            wm = Some(wm.map_or(w, |x: i64| x.max(w)));
        }
        let lo = wm0.unwrap_or(i64::MIN);
        let hi = wm.unwrap_or(i64::MIN);
        let mut res: Vec<WindowResult<Text, u64>> = Vec::new();
        match c.windows {
            Windows::Sliding { len_ms, slide_ms } => {
                acc.extend(this.iter().cloned());
                let starts_of = |ts: i64| {
                    let last = ts.div_euclid(slide_ms) * slide_ms;
                    (0..len_ms / slide_ms).map(move |j| last - j * slide_ms)
                };
                let value = |ws: i64, k: &str| {
                    acc.iter()
                        .filter(|(ts, w)| w == k && *ts >= ws && *ts < ws + len_ms)
                        .count() as u64
                };
                let mut cands: BTreeSet<(i64, String)> = BTreeSet::new();
                match c.emit {
                    Emit::Final => {
                        for (ts, k) in &acc {
                            for ws in starts_of(*ts) {
                                if ws + len_ms > lo && ws + len_ms <= hi {
                                    cands.insert((ws, k.clone()));
                                }
                            }
                        }
                    }
                    Emit::Update => {
                        for (ts, k) in &this {
                            for ws in starts_of(*ts) {
                                if ws + len_ms > lo {
                                    cands.insert((ws, k.clone()));
                                }
                            }
                        }
                    }
                }
                for (ws, k) in cands {
                    res.push(WindowResult {
                        start_ms: ws,
                        end_ms: ws + len_ms,
                        value: value(ws, &k),
                        key: Text::new(&k),
                    });
                }
            }
            Windows::Session { gap_ms } => {
                for (ts, k) in &this {
                    open.entry(k.clone()).or_default().push(*ts);
                }
                let changed: BTreeSet<&String> = this.iter().map(|(_, k)| k).collect();
                let mut next: BTreeMap<String, Vec<i64>> = BTreeMap::new();
                for (k, tss) in &open {
                    let mut tss = tss.clone();
                    tss.sort();
                    // Sessions: maximal runs where the next ts ≤ the running end.
                    let mut sessions: Vec<(i64, i64, Vec<i64>)> = Vec::new();
                    for ts in tss {
                        match sessions.last_mut() {
                            Some((_, end, members)) if ts <= *end => {
                                *end = (*end).max(ts + gap_ms);
                                members.push(ts);
                            }
                            _ => sessions.push((ts, ts + gap_ms, vec![ts])),
                        }
                    }
                    for (s, e, members) in sessions {
                        let r = WindowResult {
                            start_ms: s,
                            end_ms: e,
                            key: Text::new(k),
                            value: members.len() as u64,
                        };
                        if c.emit == Emit::Update && changed.contains(k) {
                            res.push(r.clone());
                        }
                        if e <= hi {
                            if c.emit == Emit::Final {
                                res.push(r);
                            }
                        } else {
                            next.entry(k.clone()).or_default().extend(members);
                        }
                    }
                }
                open = next;
            }
        }
        res.sort();
        out.extend(res.into_iter().map(Timed::Window));
        outs.push(out);
    }
    (outs, late_n, bad_n)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn event_time_windows_match_the_naive_reference(
        c in et_case(),
        workers in 1usize..=4,
        restart in proptest::option::of(1usize..12),
    ) {
        let build = et_build(&c);
        let one = run(1, &c.batches, None, build.clone());
        let many = run(workers, &c.batches, restart.filter(|r| *r < c.batches.len()), build);
        prop_assert_eq!(&one.batches, &many.batches);
        if restart.is_none() {
            prop_assert_eq!(&one.last_snapshot, &many.last_snapshot);
        }
        let (want, late, bad) = et_reference(&c);
        for (i, w) in want.iter().enumerate() {
            prop_assert_eq!(&one.batches[i], w, "batch {}", i + 1);
        }
        prop_assert_eq!(one.counter.late_events.load(std::sync::atomic::Ordering::Relaxed), late);
        prop_assert_eq!(one.counter.errors(ErrorReason::BadTimestamp), bad);
    }
}

#[test]
fn an_idle_stream_closes_its_last_window_by_batch_time() {
    let ev = |ts: i64, body: &str| Event::new([("timestamp", ts.to_string())], body);
    // One event at 1500 (window [1000, 2000)), then silence.
    let batches = vec![vec![ev(1500, "x")], vec![], vec![], vec![], vec![]];
    let build = |idle: Option<u64>| {
        move |ctx: &StreamingContext| {
            let mut time = EventTime::header("timestamp").lateness(Duration::from_millis(1000));
            if let Some(d) = idle {
                time = time.idle_timeout(Duration::from_millis(d));
            }
            ctx.events()
                .stream()
                .event_time_window(
                    time,
                    Windows::tumbling(Duration::from_secs(1)),
                    |_: &Event, emit: &mut dyn FnMut(Text, u64)| emit(Text::new("x"), 1),
                    |a, b| a + b,
                )
                .filter_map(Timed::window)
        }
    };
    let quiet = run(1, &batches, None, build(None));
    assert!(
        quiet.batches.iter().all(|b| b.is_empty()),
        "no watermark advance without idle timeout"
    );
    let idle = run(1, &batches, None, build(Some(2000)));
    // Event at batch 1000; idle from batch 3000 on: W = 1500 + 2000 − 1000 = 2500 ≥ 2000.
    let fired: Vec<usize> = idle
        .batches
        .iter()
        .enumerate()
        .filter(|(_, b)| !b.is_empty())
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(fired, vec![3]);
    assert_eq!(
        idle.batches[2],
        vec![WindowResult {
            start_ms: 1000,
            end_ms: 2000,
            key: Text::new("x"),
            value: 1
        }]
    );
}
