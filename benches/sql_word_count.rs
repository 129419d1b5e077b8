//! The SQL word count against the hand-written pipeline on one 1,000,000-line micro-batch.
//!
//! Data as in `../shared/spark-anchor`'s generator in spirit: each line is 40 words drawn from
//! a 10,000-word Zipf(1) vocabulary (fixed seed), about 256 bytes. Both pipelines read the same
//! events from a memory channel (so neither pays ingest or fsync) in one batch; the figure is
//! the driver's processing time (take → outputs → commit) of that batch, median of the rounds.
//!
//! `cargo bench --bench sql_word_count [-- LINES ROUNDS]` prints both and the ratio.

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use sluicegate::channel::memory::{MemoryChannel, MemoryChannelConfig};
use sluicegate::channel::Channel;
use sluicegate::event::Event;
use sluicegate::pipeline::sql::{Row, SqlOptions, SqlQuery};
use sluicegate::pipeline::{ClockMode, ManualClock, PipelineConfig, StreamingContext, Text};

fn lines(n: usize) -> Vec<Event> {
    let mut rng = StdRng::seed_from_u64(42);
    let vocab: Vec<String> = (0..10_000)
        .map(|_| {
            let len = rng.gen_range(2..10);
            (0..len)
                .map(|_| rng.gen_range(b'a'..=b'z') as char)
                .collect()
        })
        .collect();
    let mut cum = Vec::with_capacity(vocab.len());
    let mut total = 0.0;
    for i in 0..vocab.len() {
        total += 1.0 / (i + 1) as f64;
        cum.push(total);
    }
    (0..n)
        .map(|_| {
            let mut line = String::with_capacity(300);
            for j in 0..40 {
                if j > 0 {
                    line.push(' ');
                }
                let x = rng.gen::<f64>() * total;
                let i = cum.partition_point(|c| *c < x).min(vocab.len() - 1);
                line.push_str(&vocab[i]);
            }
            Event::from_body(line)
        })
        .collect()
}

fn run(events: &[Event], sql: bool) -> (u64, usize) {
    let ch = Arc::new(MemoryChannel::new(
        "c1",
        MemoryChannelConfig {
            capacity: events.len() as u64 + 1,
            transaction_capacity: events.len() + 1,
            ..Default::default()
        },
    ));
    for c in events.chunks(10_000) {
        ch.put_batch(c).expect("put");
    }
    let clock = Arc::new(ManualClock::new(0));
    let ctx = StreamingContext::new(
        "bench",
        ch as Arc<dyn Channel>,
        PipelineConfig {
            batch_interval: Duration::from_secs(1),
            clock: clock.clone(),
            mode: ClockMode::Logical {
                start_ms: 0,
                events_per_batch: events.len(),
                flush_after_ms: 0,
            },
            ..Default::default()
        },
    );
    let groups = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let g = groups.clone();
    if sql {
        let q = SqlQuery::compile(
            "SELECT word, count(*) AS n FROM events CROSS JOIN UNNEST(split(body, ' ')) AS t(word) GROUP BY word",
            SqlOptions::default(),
        )
        .expect("query");
        assert!(q.is_fused());
        q.attach(&ctx).foreach_batch(move |rows: &[Row], _| {
            g.store(rows.len(), std::sync::atomic::Ordering::Relaxed);
            Ok::<(), String>(())
        });
    } else {
        ctx.events()
            .split_body(b' ')
            .map(|w: Text| (w, 1u64))
            .reduce_by_key(|a, b| a + b)
            .foreach_batch(move |rows: &[(Text, u64)], _| {
                g.store(rows.len(), std::sync::atomic::Ordering::Relaxed);
                Ok::<(), String>(())
            });
    }
    let mut p = ctx.build().expect("build");
    let r = p.step().expect("step").expect("a batch");
    assert_eq!(r.events as usize, events.len());
    (
        r.processing_ms,
        groups.load(std::sync::atomic::Ordering::Relaxed),
    )
}

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(1_000_000);
    let rounds = args.get(1).copied().unwrap_or(5);
    let events = lines(n);
    let (mut hand, mut sql) = (Vec::new(), Vec::new());
    let _ = run(&events, false); // warm-up
    for _ in 0..rounds {
        let (h, gh) = run(&events, false);
        let (s, gs) = run(&events, true);
        assert_eq!(gh, gs, "both count the same distinct words");
        hand.push(h);
        sql.push(s);
        println!("round: hand-written {h} ms, SQL {s} ms ({gs} distinct words)");
    }
    let (h, s) = (median(&mut hand), median(&mut sql));
    println!(
        "word count, {n} lines x 40 words, one batch, {} workers: hand-written {h} ms, SQL {s} ms (median of {rounds}); SQL/hand = {:.2}",
        std::thread::available_parallelism().map(|x| x.get()).unwrap_or(1),
        s as f64 / h.max(1) as f64
    );
}
