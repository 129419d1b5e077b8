//! The windowed SQL word count against the hand-written event-time window pipeline.
//!
//! Lines as in `sql_word_count` (40 words from a 10,000-word Zipf(1) vocabulary, fixed seed),
//! each with a `timestamp` header spread over 60 s (slightly out of order). One batch holds all
//! lines; both pipelines count words per 10 s tumbling event-time window in emit mode `final`
//! (all windows but the last fire in that batch, watermark 0). The figures are the CPU time
//! (user + system, all threads, `getrusage`) and the driver's wall processing time of the
//! batch, medians of the rounds (variants alternate within a round). Besides the count, three
//! SQL queries with several aggregates per (window, word) take the accumulator path:
//!
//! * `aggs`: `count(*)`, `sum`, `min`, `max`, `avg` (of `length(word)`);
//! * `distinct`: `count(*)`, `count(DISTINCT header('host'))` (20 hosts), `max(length(word))`;
//! * `approx`: the same with `approx_count_distinct(header('host'))`.
//!
//! Each has a hand-written counterpart computing the same per (window, word) with the best the
//! Rust API offers (`event_time_window_fold`, accumulators updated in place, the host header
//! read once per line): `(count, sum, min, max)` of the word lengths (the mean is sum/count),
//! and `(count, set of hosts, max)` with the set a `BTreeMap<Text, ()>` (a value type must be
//! `Persist`). The ratios of the SQL variants are to their counterpart.
//!
//! `cargo build --release --bench sql_windowed && target/release/deps/sql_windowed-<hash>
//! [LINES ROUNDS]` (or `cargo bench --bench sql_windowed [-- LINES ROUNDS]`) prints the times
//! and the ratios to the hand-written pipeline.

use std::collections::BTreeMap;
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

/// CPU seconds (user + system, all threads) used by this process so far.
fn cpu_s() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Which {
    Hand,
    Sql,
    HandAggs,
    SqlAggs,
    HandDistinct,
    SqlDistinct,
    SqlApprox,
}

/// (variant, name, index of the hand-written counterpart in this list).
const ALL: [(Which, &str, usize); 7] = [
    (Which::Hand, "hand-written count", 0),
    (Which::Sql, "SQL count", 0),
    (Which::HandAggs, "hand-written count/sum/min/max", 2),
    (Which::SqlAggs, "SQL count/sum/min/max/avg", 2),
    (Which::HandDistinct, "hand-written count+hosts+max", 4),
    (Which::SqlDistinct, "SQL count(DISTINCT)+max", 4),
    (Which::SqlApprox, "SQL approx_count_distinct+max", 4),
];

type Aggs = ((u64, i64), i64, i64);
type Hosts = (u64, BTreeMap<Text, ()>, i64);
type EmitAggs<'a> = dyn FnMut(Text, &mut dyn FnMut(&mut Aggs)) + 'a;
type EmitHosts<'a> = dyn FnMut(Text, &mut dyn FnMut(&mut Hosts)) + 'a;

/// (CPU ms of the batch, wall processing ms, rows).
fn run(events: &[Event], which: Which) -> (f64, u64, usize) {
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
        Which::HandAggs => {
            ctx.events()
                .stream()
                .event_time_window_fold(
                    EventTime::header("timestamp").emit(Emit::Final),
                    Windows::tumbling(Duration::from_secs(10)),
                    || ((0, 0), i64::MAX, i64::MIN),
                    |e: &Event, emit: &mut EmitAggs<'_>| {
                        if let Ok(s) = std::str::from_utf8(e.body()) {
                            for w in s.split(' ') {
                                let len = w.chars().count() as i64;
                                emit(Text::new(w), &mut |a: &mut Aggs| {
                                    a.0 .0 += 1;
                                    a.0 .1 += len;
                                    a.1 = a.1.min(len);
                                    a.2 = a.2.max(len);
                                })
                            }
                        }
                    },
                    |a: &mut Aggs, b: Aggs| {
                        a.0 .0 += b.0 .0;
                        a.0 .1 += b.0 .1;
                        a.1 = a.1.min(b.1);
                        a.2 = a.2.max(b.2);
                    },
                )
                .foreach_batch(move |out: &[Timed<Text, Aggs, Event>], _| {
                    g.store(out.len(), Ordering::Relaxed);
                    Ok::<(), String>(())
                });
        }
        Which::HandDistinct => {
            ctx.events()
                .stream()
                .event_time_window_fold(
                    EventTime::header("timestamp").emit(Emit::Final),
                    Windows::tumbling(Duration::from_secs(10)),
                    || (0, BTreeMap::new(), i64::MIN),
                    |e: &Event, emit: &mut EmitHosts<'_>| {
                        let host = e.header("host").map(|h| Text::new(&h));
                        if let Ok(s) = std::str::from_utf8(e.body()) {
                            for w in s.split(' ') {
                                let len = w.chars().count() as i64;
                                emit(Text::new(w), &mut |a: &mut Hosts| {
                                    a.0 += 1;
                                    if let Some(h) = &host {
                                        if !a.1.contains_key(h) {
                                            a.1.insert(h.clone(), ());
                                        }
                                    }
                                    a.2 = a.2.max(len);
                                })
                            }
                        }
                    },
                    |a: &mut Hosts, b: Hosts| {
                        a.0 += b.0;
                        a.1.extend(b.1);
                        a.2 = a.2.max(b.2);
                    },
                )
                .foreach_batch(move |out: &[Timed<Text, Hosts, Event>], _| {
                    g.store(out.len(), Ordering::Relaxed);
                    Ok::<(), String>(())
                });
        }
        _ => {
            let aggs = match which {
                Which::Sql => "count(*) AS n",
                Which::SqlAggs => {
                    "count(*) AS n, sum(length(word)) AS s, min(length(word)) AS lo, \
                     max(length(word)) AS hi, avg(length(word)) AS mean"
                }
                Which::SqlDistinct => {
                    "count(*) AS n, count(DISTINCT header('host')) AS hosts, \
                     max(length(word)) AS len"
                }
                _ => {
                    "count(*) AS n, approx_count_distinct(header('host')) AS hosts, \
                     max(length(word)) AS len"
                }
            };
            let sql = format!(
                "SELECT window_start, word, {aggs} FROM events \
                 CROSS JOIN UNNEST(split(body, ' ')) AS t(word) \
                 GROUP BY TUMBLE(event_time, INTERVAL '10' SECOND), word"
            );
            let sql = sql.as_str();
            let q = SqlQuery::compile(sql, opts).expect("query");
            q.attach(&ctx).foreach_batch(move |out: &[Row], _| {
                g.store(out.len(), Ordering::Relaxed);
                Ok::<(), String>(())
            });
        }
    }
    let mut p = ctx.build().expect("build");
    let c0 = cpu_s();
    let r = p.step().expect("step").expect("a batch");
    let cpu_ms = (cpu_s() - c0) * 1000.0;
    assert_eq!(r.events as usize, events.len());
    (cpu_ms, r.processing_ms, rows.load(Ordering::Relaxed))
}

fn median<T: Copy + PartialOrd>(v: &mut [T]) -> T {
    v.sort_unstable_by(|a, b| a.partial_cmp(b).expect("no NaN"));
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
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); ALL.len()];
    let mut wall: Vec<Vec<u64>> = vec![Vec::new(); ALL.len()];
    let _ = run(&events, Which::Hand); // warm-up
    for _ in 0..rounds {
        let mut line = String::from("round:");
        let mut first_rows = None;
        for (i, (which, name, _)) in ALL.iter().enumerate() {
            let (c, w, r) = run(&events, *which);
            assert_eq!(
                *first_rows.get_or_insert(r),
                r,
                "{which:?}: every variant outputs the same (window, word) rows"
            );
            cpu[i].push(c);
            wall[i].push(w);
            line.push_str(&format!(" {name} {c:.0} ms CPU / {w} ms wall;"));
        }
        println!("{line} ({} rows)", first_rows.unwrap_or(0));
    }
    let c: Vec<f64> = cpu.iter_mut().map(|v| median(v)).collect();
    let w: Vec<u64> = wall.iter_mut().map(|v| median(v)).collect();
    println!(
        "windowed word count, {n} lines x 40 words, one batch, 10 s tumbling windows (final), median of {rounds}:"
    );
    for (i, (_, name, h)) in ALL.iter().enumerate() {
        println!(
            "  {name:<31} {:>7.0} ms CPU ({:.2}x its hand-written) {:>6} ms wall ({:.2}x); {:.2}x the hand-written count (CPU)",
            c[i],
            c[i] / c[*h].max(1.0),
            w[i],
            w[i] as f64 / w[*h].max(1) as f64,
            c[i] / c[0].max(1.0)
        );
    }
}
