//! The SQL word count against the hand-written pipeline on one 1,000,000-line micro-batch.
//!
//! Data: the pipeline benchmark's input ([`zipf_lines`], the spark-anchor shape: 40 words per
//! line from a 10,000-word Zipf(1) vocabulary, single spaces, about 258 bytes per line). Every
//! variant reads the same events from a memory channel (so none pays ingest or fsync) in one
//! batch. Three variants, run alternately each round:
//!
//! * `words` — the hand-written word count of `benches/pipeline_wordcount.rs`,
//!   `events.words().count_by_value()`;
//! * `reduce` — `events.split_body(b' ').map(|w| (w, 1)).reduce_by_key(+)`;
//! * `sql` — `SELECT word, count(*) AS n FROM events CROSS JOIN UNNEST(split(body, ' ')) AS
//!   t(word) GROUP BY word` (runs on the word table of `words()`, see `pipeline/sql/exec.rs`);
//! * `sql+where` — the same with `WHERE true`, which keeps it off the word table: the generic
//!   fused SQL path (`Events::apply` of the compiled row closures → `reduce_by_key` over
//!   `Value` keys), i.e. what every SQL word count ran on before.
//!
//! Each figure is the CPU time (user + system, all threads, `getrusage`) of the batch's
//! `step()` (take → outputs → commit) — robust on a loaded machine where wall time is not — and
//! the wall processing time the driver reports; medians of the rounds.
//!
//! `cargo bench --bench sql_word_count [-- LINES ROUNDS]` prints them and SQL/hand-written
//! (or `cargo build --release --bench sql_word_count` and run `target/release/deps/sql_word_count-*`).

use std::sync::Arc;
use std::time::Duration;

use sluicegate::channel::memory::{MemoryChannel, MemoryChannelConfig};
use sluicegate::channel::Channel;
use sluicegate::event::Event;
use sluicegate::pipeline::bench::zipf_lines;
use sluicegate::pipeline::sql::{Row, SqlOptions, SqlQuery};
use sluicegate::pipeline::{ClockMode, ManualClock, PipelineConfig, StreamingContext, Text};

/// CPU seconds (user + system, all threads) used by this process so far.
fn cpu_s() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Words,
    Reduce,
    Sql,
    SqlWhere,
}

/// One batch of `v`: (CPU ms of the step, wall processing ms, distinct words).
fn run(events: &[Event], v: Variant) -> (f64, u64, usize) {
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
    match v {
        Variant::Sql | Variant::SqlWhere => {
            let q = SqlQuery::compile(
                if v == Variant::Sql {
                    "SELECT word, count(*) AS n FROM events CROSS JOIN UNNEST(split(body, ' ')) AS t(word) GROUP BY word"
                } else {
                    "SELECT word, count(*) AS n FROM events CROSS JOIN UNNEST(split(body, ' ')) AS t(word) WHERE true GROUP BY word"
                },
                SqlOptions::default(),
            )
            .expect("query");
            assert!(q.is_fused());
            q.attach(&ctx).foreach_batch(move |rows: &[Row], _| {
                g.store(rows.len(), std::sync::atomic::Ordering::Relaxed);
                Ok::<(), String>(())
            });
        }
        Variant::Reduce => {
            ctx.events()
                .split_body(b' ')
                .map(|w: Text| (w, 1u64))
                .reduce_by_key(|a, b| a + b)
                .foreach_batch(move |rows: &[(Text, u64)], _| {
                    g.store(rows.len(), std::sync::atomic::Ordering::Relaxed);
                    Ok::<(), String>(())
                });
        }
        Variant::Words => {
            ctx.events()
                .words()
                .count_by_value()
                .foreach_batch(move |rows: &[(Text, u64)], _| {
                    g.store(rows.len(), std::sync::atomic::Ordering::Relaxed);
                    Ok::<(), String>(())
                });
        }
    }
    let mut p = ctx.build().expect("build");
    let c0 = cpu_s();
    let r = p.step().expect("step").expect("a batch");
    let cpu_ms = (cpu_s() - c0) * 1000.0;
    assert_eq!(r.events as usize, events.len());
    (
        cpu_ms,
        r.processing_ms,
        groups.load(std::sync::atomic::Ordering::Relaxed),
    )
}

fn median<T: PartialOrd + Copy>(v: &mut [T]) -> T {
    v.sort_unstable_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(1_000_000);
    let rounds = args.get(1).copied().unwrap_or(5);
    let events = zipf_lines(n, 42);
    let variants = [
        ("words", Variant::Words),
        ("reduce", Variant::Reduce),
        ("sql", Variant::Sql),
        ("sql+where", Variant::SqlWhere),
    ];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); 4];
    let mut wall: Vec<Vec<u64>> = vec![Vec::new(); 4];
    let _ = run(&events, Variant::Words); // warm-up
    for _ in 0..rounds {
        let mut line = String::from("round:");
        let mut groups = None;
        for (i, (name, v)) in variants.iter().enumerate() {
            let (c, w, g) = run(&events, *v);
            assert!(
                groups.is_none_or(|x| x == g),
                "every variant counts the same distinct words"
            );
            groups = Some(g);
            cpu[i].push(c);
            wall[i].push(w);
            line.push_str(&format!(" {name} {c:.0} ms CPU / {w} ms wall;"));
        }
        println!("{line} {} distinct words", groups.unwrap_or(0));
    }
    let c: Vec<f64> = cpu.iter_mut().map(|v| median(v)).collect();
    let w: Vec<u64> = wall.iter_mut().map(|v| median(v)).collect();
    println!(
        "word count, {n} lines x 40 words, one batch, {} workers, medians of {rounds}: \
         CPU words {:.0} ms, reduce {:.0} ms, SQL {:.0} ms, SQL+WHERE {:.0} ms; \
         wall words {} ms, reduce {} ms, SQL {} ms, SQL+WHERE {} ms",
        std::thread::available_parallelism()
            .map(|x| x.get())
            .unwrap_or(1),
        c[0],
        c[1],
        c[2],
        c[3],
        w[0],
        w[1],
        w[2],
        w[3]
    );
    println!(
        "SQL/hand-written (CPU): {:.2} vs words().count_by_value(), {:.2} vs split_body reduce_by_key",
        c[2] / c[0].max(1e-9),
        c[2] / c[1].max(1e-9)
    );
    println!(
        "SQL+WHERE (generic fused SQL path)/words (CPU): {:.2}",
        c[3] / c[0].max(1e-9)
    );
}
