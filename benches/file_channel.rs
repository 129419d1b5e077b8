//! File channel benchmarks: durable put+commit (256-byte bodies, batch 1,000, 1 and 4
//! producers sharing group commits), take+commit, commit latency percentiles, and reopen time
//! with a backlog. Keep runs short on shared machines:
//!
//! ```text
//! cargo bench --bench file_channel -- --warm-up-time 1 --measurement-time 3
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluicegate::channel::file::{FileChannel, FileChannelConfig};
use sluicegate::channel::Channel;
use sluicegate::Event;

const BATCH: usize = 1000;

fn cfg(dir: &std::path::Path) -> FileChannelConfig {
    FileChannelConfig {
        capacity: 50_000_000,
        transaction_capacity: BATCH,
        segment_size: 128 << 20,
        ..FileChannelConfig::in_dir(dir)
    }
}

fn batch(seed: u64) -> Vec<Event> {
    (0..BATCH as u64)
        .map(|i| {
            Event::new(
                [
                    ("host", "web-17.example.com"),
                    ("seq", &(seed * 1000 + i).to_string()[..]),
                ],
                [b'a' + (i % 26) as u8; 256],
            )
        })
        .collect()
}

fn put_commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("file_channel_put_commit_256B_batch1000");
    g.sample_size(10);
    for producers in [1usize, 4] {
        g.throughput(Throughput::Elements((BATCH * producers) as u64));
        g.bench_with_input(
            BenchmarkId::new("producers", producers),
            &producers,
            |b, &p| {
                let dir = tempfile::tempdir().unwrap();
                let ch = Arc::new(FileChannel::open("bench", cfg(dir.path())).unwrap());
                let batches: Arc<Vec<Vec<Event>>> = Arc::new((0..p as u64).map(batch).collect());
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    std::thread::scope(|s| {
                        for t in 0..p {
                            let ch = ch.clone();
                            let batches = batches.clone();
                            s.spawn(move || {
                                for _ in 0..iters {
                                    ch.put_batch(&batches[t]).unwrap();
                                }
                            });
                        }
                    });
                    let el = start.elapsed();
                    // Drain so the channel never fills and disk use stays bounded.
                    loop {
                        let t = ch.take_batch(BATCH, Duration::ZERO).unwrap();
                        if t.is_empty() {
                            break;
                        }
                        t.commit().unwrap();
                    }
                    el
                });
            },
        );
    }
    g.finish();
}

fn take_commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("file_channel_take_commit_batch1000");
    g.sample_size(10);
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("take_commit", |b| {
        let dir = tempfile::tempdir().unwrap();
        let ch = FileChannel::open("bench", cfg(dir.path())).unwrap();
        let ev = batch(1);
        b.iter_custom(|iters| {
            for _ in 0..iters {
                ch.put_batch(&ev).unwrap();
            }
            let start = Instant::now();
            for _ in 0..iters {
                ch.take_batch(BATCH, Duration::ZERO)
                    .unwrap()
                    .commit()
                    .unwrap();
            }
            start.elapsed()
        });
    });
    g.finish();
}

/// Not a criterion measurement: prints p50/p99/max of individual durable commits (4 producers,
/// batch 1,000) so the latency tail is visible.
fn commit_latency(_c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let ch = Arc::new(FileChannel::open("bench", cfg(dir.path())).unwrap());
    let mut all: Vec<Duration> = Vec::new();
    let start = Instant::now();
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..4u64)
            .map(|t| {
                let ch = ch.clone();
                s.spawn(move || {
                    let ev = batch(t);
                    let mut lat = Vec::new();
                    for _ in 0..100 {
                        let t0 = Instant::now();
                        ch.put_batch(&ev).unwrap();
                        lat.push(t0.elapsed());
                    }
                    lat
                })
            })
            .collect();
        for h in hs {
            all.extend(h.join().unwrap());
        }
    });
    let el = start.elapsed();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "commit latency (4 producers x 100 durable commits of 1,000 x 256 B): p50 {:?} p99 {:?} max {:?}; {:.0} events/s",
        pct(0.50),
        pct(0.99),
        all[all.len() - 1],
        (all.len() * BATCH) as f64 / el.as_secs_f64()
    );
}

fn reopen(c: &mut Criterion) {
    let mut g = c.benchmark_group("file_channel_reopen");
    g.sample_size(10);
    let sizes_mb: Vec<u64> = std::env::var("FC_BENCH_BACKLOG_MB")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![200]);
    for mb in sizes_mb {
        let dir = tempfile::tempdir().unwrap();
        {
            let ch = FileChannel::open("bench", cfg(dir.path())).unwrap();
            let ev = batch(7);
            let per_batch = ev.iter().map(|e| e.encoded_len() as u64 + 4).sum::<u64>();
            for _ in 0..(mb << 20) / per_batch {
                ch.put_batch(&ev).unwrap();
            }
            ch.close().unwrap();
        }
        g.bench_with_input(BenchmarkId::new("backlog_MB", mb), &mb, |b, _| {
            b.iter(|| {
                let ch = FileChannel::open("bench", cfg(dir.path())).unwrap();
                assert!(ch.size() > 0);
                // Unclean stop, like kill -9 after the open: no close-time checkpoint.
                ch.crash_with_torn_put(&[], 0, &[]);
            });
        });
    }
    g.finish();
}

criterion_group!(benches, put_commit, take_commit, commit_latency, reopen);
criterion_main!(benches);
