//! Every pipeline operator against a naive reference on random input, batch by batch, with a
//! manual clock; sharded runs (4 workers) must equal single-threaded ones.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use sluicegate::channel::memory::{MemoryChannel, MemoryChannelConfig};
use sluicegate::channel::Channel;
use sluicegate::pipeline::{
    DStream, ManualClock, PipelineConfig, StageContext, StreamingContext, Text,
};
use sluicegate::Event;

type Collected<T> = Arc<Mutex<Vec<Vec<T>>>>;

/// Runs `build`'s stream over `batches` (one batch each) with `workers` workers and returns what
/// each batch produced, plus the pipeline's counter.
fn run<T, B>(
    workers: usize,
    batches: &[Vec<Event>],
    build: B,
) -> (Vec<Vec<T>>, Arc<sluicegate::pipeline::PipelineCounter>)
where
    T: Clone + Send + Sync + 'static,
    B: Fn(&StreamingContext) -> DStream<T>,
{
    let ch = Arc::new(MemoryChannel::new(
        "c",
        MemoryChannelConfig {
            capacity: 1 << 20,
            transaction_capacity: 1 << 16,
            ..Default::default()
        },
    ));
    let clock = Arc::new(ManualClock::new(0));
    let ctx = StreamingContext::new(
        "t",
        ch.clone() as Arc<dyn Channel>,
        PipelineConfig {
            workers,
            clock: clock.clone(),
            batch_interval: Duration::from_secs(1),
            ..Default::default()
        },
    );
    let out: Collected<T> = Arc::new(Mutex::new(Vec::new()));
    let o = out.clone();
    build(&ctx).foreach_batch(move |items: &[T], _cx: &StageContext<'_>| {
        o.lock().unwrap().push(items.to_vec());
        Ok::<(), String>(())
    });
    let counter = ctx.counter();
    let mut p = ctx.build().unwrap();
    for (i, b) in batches.iter().enumerate() {
        if !b.is_empty() {
            ch.put_batch(b).unwrap();
        }
        clock.advance(1000);
        let r = p.step().unwrap().expect("a batch");
        assert_eq!(r.batch_id, i as u64 + 1);
        assert_eq!(r.batch_time_ms, 1000 * (i as i64 + 1));
        assert_eq!(r.events, b.len() as u64);
    }
    assert_eq!(ch.size(), 0, "every batch committed");
    let v = out.lock().unwrap().clone();
    (v, counter)
}

fn body_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => proptest::collection::vec(
            prop_oneof![Just("a"), Just("bb"), Just("ccc"), Just("é"), Just("a-much-longer-word-over-22-bytes"), Just(" "), Just("  "), Just("\t")],
            0..12
        ).prop_map(|v| v.concat().into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..20),
    ]
}

fn batches_strategy() -> impl Strategy<Value = Vec<Vec<Event>>> {
    proptest::collection::vec(
        proptest::collection::vec(body_strategy().prop_map(Event::from_body), 0..150),
        1..4,
    )
}

fn words_ref(b: &[Event]) -> (BTreeMap<String, u64>, u64) {
    let mut m = BTreeMap::new();
    let mut bad = 0;
    for e in b {
        match std::str::from_utf8(e.body()) {
            Ok(s) => {
                for w in s.split_ascii_whitespace() {
                    *m.entry(w.to_string()).or_insert(0) += 1;
                }
            }
            Err(_) => bad += 1,
        }
    }
    (m, bad)
}

fn owned(v: &[(Text, u64)]) -> Vec<(String, u64)> {
    v.iter().map(|(k, c)| (k.to_string(), *c)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn words_count_by_value_and_reduce_by_key_match_the_reference(batches in batches_strategy()) {
        for workers in [1, 4] {
            let (got, counter) = run(workers, &batches, |ctx| ctx.events().words().count_by_value());
            let (got2, _) = run(workers, &batches, |ctx| {
                ctx.events().words().map(|w| (w, 1u64)).reduce_by_key(|a, b| a + b)
            });
            let mut bad_total = 0;
            for (i, b) in batches.iter().enumerate() {
                let (want, bad) = words_ref(b);
                bad_total += bad;
                let want: Vec<(String, u64)> = want.into_iter().collect();
                prop_assert_eq!(&owned(&got[i]), &want);
                prop_assert_eq!(&owned(&got2[i]), &want);
            }
            prop_assert_eq!(counter.errors(sluicegate::pipeline::ErrorReason::NonUtf8), bad_total);
        }
    }

    #[test]
    fn fused_chain_preserves_event_order_and_matches_iterators(batches in batches_strategy()) {
        let build = |ctx: &StreamingContext| {
            ctx.events()
                .filter(|e| e.body().len() % 3 != 1)
                .split_body(b' ')
                .filter(|w| w.len() != 2)
                .flat_map(|w| vec![w.clone(); if w.starts_with('a') { 2 } else { 1 }])
                .key_by(|w| w.len() as u64)
                .map_values(|w| w.to_uppercase())
                .filter_map(|(k, v)| (k != 3).then_some((k, v)))
                .stream()
        };
        let (one, _) = run(1, &batches, build);
        let (four, _) = run(4, &batches, build);
        prop_assert_eq!(&one, &four);
        for (i, b) in batches.iter().enumerate() {
            let mut want = Vec::new();
            for e in b.iter().filter(|e| e.body().len() % 3 != 1) {
                let Ok(s) = std::str::from_utf8(e.body()) else { continue };
                for w in s.split(' ').filter(|w| !w.is_empty() && w.len() != 2) {
                    let n = if w.starts_with('a') { 2 } else { 1 };
                    for _ in 0..n {
                        let k = w.len() as u64;
                        if k != 3 {
                            want.push((k, w.to_uppercase()));
                        }
                    }
                }
            }
            prop_assert_eq!(&one[i], &want);
        }
    }

    #[test]
    fn count_and_reduce(batches in batches_strategy()) {
        for workers in [1, 4] {
            let (c, _) = run(workers, &batches, |ctx| ctx.events().map(|e| e.body().len() as u64).count());
            let (r, _) = run(workers, &batches, |ctx| ctx.events().map(|e| e.body().len() as u64).reduce(|a, b| a + b));
            let (dc, _) = run(workers, &batches, |ctx| ctx.events().map(|e| e.body().len() as u64).stream().count());
            let (dr, _) = run(workers, &batches, |ctx| ctx.events().map(|e| e.body().len() as u64).stream().reduce(|a, b| a.max(b)));
            for (i, b) in batches.iter().enumerate() {
                prop_assert_eq!(&c[i], &vec![b.len() as u64]);
                prop_assert_eq!(&dc[i], &vec![b.len() as u64]);
                let sum: u64 = b.iter().map(|e| e.body().len() as u64).sum();
                let max = b.iter().map(|e| e.body().len() as u64).max();
                prop_assert_eq!(&r[i], &if b.is_empty() { vec![] } else { vec![sum] });
                prop_assert_eq!(&dr[i], &max.into_iter().collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn dstream_operators_match_the_reference(batches in batches_strategy()) {
        // Elements: (body length mod 7, first byte) pairs, materialised.
        let pairs = |ctx: &StreamingContext| {
            ctx.events().map(|e| ((e.body().len() % 7) as u64, e.body().first().copied().unwrap_or(0) as u64)).stream()
        };
        for workers in [1, 4] {
            let (rbk, _) = run(workers, &batches, |ctx| pairs(ctx).map_values(|v| v + 1).reduce_by_key(|a, b| a + b));
            let (cbv, _) = run(workers, &batches, |ctx| pairs(ctx).map(|(k, _)| *k).count_by_value());
            let (uni, _) = run(workers, &batches, |ctx| {
                let p = pairs(ctx);
                p.filter(|(k, _)| k % 2 == 0).union(&p.flat_map(|(k, v)| vec![(*k, *v); (*k as usize) % 3]))
            });
            let (join, _) = run(workers, &batches, |ctx| {
                let p = pairs(ctx);
                let right = p.filter_map(|(k, v)| (v % 2 == 0).then_some((*k, *v * 10)));
                p.join(&right)
            });
            let (loj, _) = run(workers, &batches, |ctx| {
                let p = pairs(ctx);
                let right = p.filter_map(|(k, v)| (*k < 3).then_some((*k, *v)));
                p.left_outer_join(&right)
            });
            let (tr, _) = run(workers, &batches, |ctx| {
                pairs(ctx).transform(|items, cx| vec![(cx.batch_id(), items.len() as u64)])
            });
            for (i, b) in batches.iter().enumerate() {
                let ps: Vec<(u64, u64)> = b.iter().map(|e| ((e.body().len() % 7) as u64, e.body().first().copied().unwrap_or(0) as u64)).collect();
                let mut m: BTreeMap<u64, u64> = BTreeMap::new();
                for (k, v) in &ps { *m.entry(*k).or_insert(0) += v + 1; }
                prop_assert_eq!(&rbk[i], &m.into_iter().collect::<Vec<_>>());
                let mut c: BTreeMap<u64, u64> = BTreeMap::new();
                for (k, _) in &ps { *c.entry(*k).or_insert(0) += 1; }
                prop_assert_eq!(&cbv[i], &c.into_iter().collect::<Vec<_>>());
                let mut u: Vec<(u64, u64)> = ps.iter().filter(|(k, _)| k % 2 == 0).copied().collect();
                for (k, v) in &ps { for _ in 0..(*k as usize) % 3 { u.push((*k, *v)); } }
                prop_assert_eq!(&uni[i], &u);
                // join: sorted by key (stable: left order), then right order.
                let right: Vec<(u64, u64)> = ps.iter().filter(|(_, v)| v % 2 == 0).map(|(k, v)| (*k, v * 10)).collect();
                let mut left_sorted = ps.clone();
                left_sorted.sort_by_key(|(k, _)| *k);
                let mut j = Vec::new();
                let mut l = Vec::new();
                let right3: Vec<(u64, u64)> = ps.iter().filter(|(k, _)| *k < 3).copied().collect();
                for (k, v) in &left_sorted {
                    for (rk, w) in &right { if rk == k { j.push((*k, (*v, *w))); } }
                    let ms: Vec<u64> = right3.iter().filter(|(rk, _)| rk == k).map(|(_, w)| *w).collect();
                    if ms.is_empty() { l.push((*k, (*v, None))); }
                    for w in ms { l.push((*k, (*v, Some(w)))); }
                }
                prop_assert_eq!(&join[i], &j);
                prop_assert_eq!(&loj[i], &l);
                prop_assert_eq!(&tr[i], &vec![(i as u64 + 1, ps.len() as u64)]);
            }
        }
    }
}

#[test]
fn a_panicking_user_function_skips_only_its_events() {
    let batches: Vec<Vec<Event>> = vec![(0..200)
        .map(|i| Event::from_body(format!("w{} x", i % 10)))
        .collect()];
    for workers in [1, 2] {
        let (got, counter) = run(workers, &batches, |ctx| {
            ctx.events()
                .words()
                .map(|w| {
                    assert!(w.as_str() != "w3", "user bug");
                    (w, 1u64)
                })
                .reduce_by_key(|a, b| a + b)
        });
        let m: HashMap<String, u64> = got[0].iter().map(|(k, v)| (k.to_string(), *v)).collect();
        assert_eq!(m.get("w3"), None);
        // The 20 events holding w3 are skipped whole (their "x" too).
        assert_eq!(m["x"], 180);
        assert_eq!(m["w4"], 20);
        assert_eq!(counter.errors(sluicegate::pipeline::ErrorReason::Panic), 20);
    }
}
