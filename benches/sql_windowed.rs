//! The windowed SQL word count against the hand-written event-time window pipeline.
//!
//! Lines as in `sql_word_count` (40 words from a 10,000-word Zipf(1) vocabulary, fixed seed),
//! each with a `timestamp` header spread over 60 s (slightly out of order). One batch holds all
//! lines; both pipelines count words per 10 s tumbling event-time window in emit mode `final`
//! (all windows but the last fire in that batch, watermark 0). The figure is the driver's
//! processing time of the batch, median of the rounds. A second SQL query with more aggregates
//! (`count(*)`, `count(DISTINCT host)`, `max(length(word))`) shows the general windowed path.
//!
//! `cargo bench --bench sql_windowed [-- LINES ROUNDS]` prints the times and the ratios.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use sluicegate::channel::memory::{MemoryChannel, MemoryChannelConfig};
use sluicegate::channel::Channel;
use sluicegate::event::Event;
use sluicegate::pipeline::event_time::{Emit, EventTime, Timed, Windows};
use sluicegate::pipeline::sql::{EmitMode, Row, SqlOptions, SqlQuery};
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
        .map(|i| {
            let mut line = String::with_capacity(300);
            for j in 0..40 {
                if j > 0 {
                    line.push(' ');
                }
                let x = rng.gen::<f64>() * total;
                let k = cum.partition_point(|c| *c < x).min(vocab.len() - 1);
                line.push_str(&vocab[k]);
            }
            let ts = (i as i64 * 60_000 / n as i64 + rng.gen_range(0..500)).to_string();
            let host = format!("h{}", rng.gen_range(0..20));
            Event::new([("timestamp", ts.as_str()), ("host", host.as_str())], line)
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Which {
    Hand,
    Sql,
    SqlGeneral,
}

fn run(events: &[Event], which: Which) -> (u64, usize) {
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
    let ctx = StreamingContext::new(
        "bench",
        ch as Arc<dyn Channel>,
        PipelineConfig {
            batch_interval: Duration::from_secs(1),
            clock: Arc::new(ManualClock::new(0)),
            mode: ClockMode::Logical {
                start_ms: 0,
                events_per_batch: events.len(),
                flush_after_ms: 0,
            },
            ..Default::default()
        },
    );
    let rows = Arc::new(AtomicUsize::new(0));
    let g = rows.clone();
    let opts = SqlOptions {
        emit: EmitMode::Final,
        ..SqlOptions::default()
    };
    match which {
        Which::Hand => {
            ctx.events()
                .stream()
                .event_time_window(
                    EventTime::header("timestamp").emit(Emit::Final),
                    Windows::tumbling(Duration::from_secs(10)),
                    |e: &Event, emit: &mut dyn FnMut(Text, u64)| {
                        if let Ok(s) = std::str::from_utf8(e.body()) {
                            for w in s.split(' ') {
                                emit(Text::new(w), 1)
                            }
                        }
                    },
                    |a, b| a + b,
                )
                .foreach_batch(move |out: &[Timed<Text, u64, Event>], _| {
                    g.store(out.len(), Ordering::Relaxed);
                    Ok::<(), String>(())
                });
        }
        Which::Sql | Which::SqlGeneral => {
            let sql = if which == Which::Sql {
                "SELECT window_start, word, count(*) AS n FROM events \
                 CROSS JOIN UNNEST(split(body, ' ')) AS t(word) \
                 GROUP BY TUMBLE(event_time, INTERVAL '10' SECOND), word"
            } else {
                "SELECT window_start, word, count(*) AS n, count(DISTINCT header('host')) AS hosts, \
                 max(length(word)) AS len FROM events \
                 CROSS JOIN UNNEST(split(body, ' ')) AS t(word) \
                 GROUP BY TUMBLE(event_time, INTERVAL '10' SECOND), word"
            };
            let q = SqlQuery::compile(sql, opts).expect("query");
            q.attach(&ctx).foreach_batch(move |out: &[Row], _| {
                g.store(out.len(), Ordering::Relaxed);
                Ok::<(), String>(())
            });
        }
    }
    let mut p = ctx.build().expect("build");
    let r = p.step().expect("step").expect("a batch");
    assert_eq!(r.events as usize, events.len());
    (r.processing_ms, rows.load(Ordering::Relaxed))
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
    let n = args.first().copied().unwrap_or(500_000);
    let rounds = args.get(1).copied().unwrap_or(3);
    let events = lines(n);
    let (mut hand, mut sql, mut gen) = (Vec::new(), Vec::new(), Vec::new());
    let _ = run(&events, Which::Hand); // warm-up
    for _ in 0..rounds {
        let (h, rh) = run(&events, Which::Hand);
        let (s, rs) = run(&events, Which::Sql);
        let (x, rx) = run(&events, Which::SqlGeneral);
        assert_eq!(rh, rs, "both output the same (window, word) rows");
        assert_eq!(rs, rx);
        hand.push(h);
        sql.push(s);
        gen.push(x);
        println!(
            "round: hand-written {h} ms, SQL count {s} ms, SQL 3 aggregates {x} ms ({rs} rows)"
        );
    }
    let (h, s, x) = (median(&mut hand), median(&mut sql), median(&mut gen));
    println!(
        "windowed word count, {n} lines x 40 words, one batch, 10 s tumbling windows (final): hand-written {h} ms, SQL {s} ms (SQL/hand = {:.2}), SQL with count(DISTINCT) and max {x} ms ({:.2}); median of {rounds}",
        s as f64 / h.max(1) as f64,
        x as f64 / h.max(1) as f64
    );
}
