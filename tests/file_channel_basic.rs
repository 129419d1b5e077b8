//! Behaviour of the file channel through the `Channel` trait: transactions, restart, locks,
//! capacity, poisoning, counters, inspect.

use std::time::{Duration, Instant};

use sluicegate::channel::file::{inspect, FileChannel, FileChannelConfig};
use sluicegate::channel::{Channel, ChannelError};
use sluicegate::metrics::ChannelCounter;
use sluicegate::Event;

fn cfg(dir: &std::path::Path) -> FileChannelConfig {
    FileChannelConfig {
        capacity: 1000,
        transaction_capacity: 100,
        segment_size: 8192,
        minimum_required_space: 1 << 20,
        keep_alive: Duration::from_millis(20),
        ..FileChannelConfig::in_dir(dir)
    }
}

fn ev(i: u32) -> Event {
    Event::new([("seq", i.to_string())], format!("body-{i}").repeat(3))
}

fn evs(r: std::ops::Range<u32>) -> Vec<Event> {
    r.map(ev).collect()
}

fn drain(c: &FileChannel) -> Vec<Event> {
    let mut out = Vec::new();
    loop {
        let t = c.take_batch(100, Duration::ZERO).unwrap();
        if t.is_empty() {
            return out;
        }
        out.extend_from_slice(t.events());
        t.commit().unwrap();
    }
}

#[test]
fn put_take_commit_rollback_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let c = FileChannel::open("c1", cfg(dir.path())).unwrap();
    c.put_batch(&evs(0..10)).unwrap();
    c.put_batch(&evs(10..20)).unwrap();
    assert_eq!(c.size(), 20);
    let t = c.take_batch(5, Duration::ZERO).unwrap();
    assert_eq!(t.events(), &evs(0..5)[..]);
    t.commit().unwrap();
    let t = c.take_batch(5, Duration::ZERO).unwrap();
    assert_eq!(t.events(), &evs(5..10)[..]);
    t.rollback();
    let t = c.take_batch(7, Duration::ZERO).unwrap();
    assert_eq!(t.events(), &evs(5..12)[..]);
    // Uncommitted at close: must come back after restart.
    drop(t);
    let t = c.take_batch(3, Duration::ZERO).unwrap();
    std::mem::forget(t); // never committed nor rolled back
    c.close().unwrap();
    drop(c);
    let c = FileChannel::open("c1", cfg(dir.path())).unwrap();
    assert_eq!(c.size(), 15);
    assert_eq!(drain(&c), evs(5..20));
    assert_eq!(c.size(), 0);
    drop(c);
    let c = FileChannel::open("c1", cfg(dir.path())).unwrap();
    assert_eq!(c.size(), 0);
    assert!(drain(&c).is_empty());
}

#[test]
fn competing_consumers_commit_out_of_order_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let c = FileChannel::open("c1", cfg(dir.path())).unwrap();
    c.put_batch(&evs(0..30)).unwrap();
    let a = c.take_batch(10, Duration::ZERO).unwrap();
    let b = c.take_batch(10, Duration::ZERO).unwrap();
    let d = c.take_batch(5, Duration::ZERO).unwrap();
    assert_eq!(b.events(), &evs(10..20)[..]);
    b.commit().unwrap();
    d.rollback();
    assert_eq!(c.size(), 20);
    drop(a); // rolled back
    assert_eq!(
        c.take_batch(100, Duration::ZERO).unwrap().events().to_vec(),
        [evs(0..10), evs(20..30)].concat()
    );
    // Reopen without a clean close of the takes: only b's commit is durable.
    c.close().unwrap();
    drop(c);
    let c = FileChannel::open("c1", cfg(dir.path())).unwrap();
    assert_eq!(drain(&c), [evs(0..10), evs(20..30)].concat());
}

#[test]
fn rollover_and_segment_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let c = FileChannel::open("c1", cfg(dir.path())).unwrap();
    for i in 0..60 {
        c.put_batch(&evs(i * 10..i * 10 + 10)).unwrap();
    }
    assert!(c.segment_count() > 3, "segments: {}", c.segment_count());
    // A transaction larger than a segment is split across segments and stays atomic.
    let big = evs(1000..1100);
    c.put_batch(&big).unwrap();
    let all = drain(&c);
    assert_eq!(all.len(), 700);
    assert_eq!(&all[..600], &evs(0..600)[..]);
    assert_eq!(&all[600..], &big[..]);
    c.checkpoint().unwrap();
    assert_eq!(c.segment_count(), 1);
    assert_eq!(
        files_named(dir.path(), "log-"),
        1,
        "consumed segments left the log"
    );
    drop(all);
}

fn files_named(dir: &std::path::Path, prefix: &str) -> usize {
    std::fs::read_dir(dir.join("data"))
        .unwrap()
        .filter(|e| {
            let n = e.as_ref().unwrap().file_name();
            let n = n.to_string_lossy();
            n.starts_with(prefix) && n.ends_with(".sgseg")
        })
        .count()
}

/// Whether the filesystem under `dir` can zero a range in place (tmpfs cannot; then consumed
/// segments are deleted instead of kept as spares).
fn zero_range_works(dir: &std::path::Path) -> bool {
    let f = std::fs::File::create(dir.join("probe")).unwrap();
    f.set_len(8192).unwrap();
    let ok = rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::ZERO_RANGE, 0, 4096).is_ok();
    std::fs::remove_file(dir.join("probe")).unwrap();
    ok
}

#[test]
fn consumed_segments_are_reused_as_spares_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let c = FileChannel::open("c1", cfg(dir.path())).unwrap();
    for i in 0..60 {
        c.put_batch(&evs(i * 10..i * 10 + 10)).unwrap();
    }
    let created = files_named(dir.path(), "log-");
    assert!(created >= 4, "segments: {created}");
    // Take and commit everything, dropping the events (nothing maps the segments any more).
    assert_eq!(drain(&c).len(), 600);
    c.checkpoint().unwrap();
    assert_eq!(files_named(dir.path(), "log-"), 1);
    // Up to two consumed segments are kept (zeroed), the rest deleted. Where the filesystem
    // cannot zero a range (tmpfs), none is kept: every consumed segment is deleted.
    let kept = if zero_range_works(dir.path()) { 2 } else { 0 };
    // One the maintenance thread retired while the drained events were still alive is released
    // on a later tick, or by a checkpoint.
    let end = Instant::now() + Duration::from_secs(30);
    while files_named(dir.path(), "spare-") != kept {
        assert!(
            Instant::now() < end,
            "spares: {} (want {kept})",
            files_named(dir.path(), "spare-")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The spare files may still include one waiting for its last reader (the drained events,
    // dropped by now): a checkpoint releases it into the pool (or deletes it).
    c.checkpoint().unwrap();
    assert_eq!(files_named(dir.path(), "spare-"), kept);

    // New segments come from the spares first.
    for i in 60..100 {
        c.put_batch(&evs(i * 10..i * 10 + 10)).unwrap();
    }
    assert_eq!(files_named(dir.path(), "spare-"), 0, "every spare reused");
    assert!(files_named(dir.path(), "log-") >= 3);
    c.close().unwrap();
    drop(c);

    // A reused file holds exactly its new contents: nothing stale comes back after restart.
    let c = FileChannel::open("c1", cfg(dir.path())).unwrap();
    let back = drain(&c);
    assert_eq!(back, evs(600..1000));
    c.close().unwrap();
    let report = inspect(dir.path()).unwrap();
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn second_channel_on_same_dirs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _c = FileChannel::open("c1", cfg(dir.path())).unwrap();
    let err = FileChannel::open("c2", cfg(dir.path())).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("in use by another file channel"), "{msg}");
}

#[test]
fn full_and_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let c = FileChannel::open(
        "c1",
        FileChannelConfig {
            capacity: 15,
            transaction_capacity: 10,
            ..cfg(dir.path())
        },
    )
    .unwrap();
    c.put_batch(&evs(0..10)).unwrap();
    let e = c.put_batch(&evs(10..16)).unwrap_err();
    assert!(matches!(e, ChannelError::Full { .. }), "{e}");
    let e = c.put_batch(&evs(0..11)).unwrap_err();
    assert!(matches!(e, ChannelError::TransactionTooLarge { .. }), "{e}");
    let huge = Event::from_body(vec![7u8; 9000]);
    let e = c.put_batch(&[huge]).unwrap_err();
    assert!(matches!(e, ChannelError::EventTooLarge { .. }), "{e}");
    assert_eq!(c.size(), 10);
    let k = c.counter();
    assert_eq!(ChannelCounter::get(&k.put_success), 10);
    assert_eq!(ChannelCounter::get(&k.put_error), 18);
    assert_eq!(ChannelCounter::get(&k.capacity), 15);
    assert_eq!(ChannelCounter::get(&k.channel_size), 10);
    c.take_batch(10, Duration::ZERO).unwrap().commit().unwrap();
    assert_eq!(ChannelCounter::get(&k.take_success), 10);
    assert_eq!(ChannelCounter::get(&k.channel_size), 0);
    c.put_batch(&evs(10..16)).unwrap();
}

#[test]
fn failed_fsync_poisons_the_channel() {
    let dir = tempfile::tempdir().unwrap();
    let c = FileChannel::open("c1", cfg(dir.path())).unwrap();
    c.put_batch(&evs(0..5)).unwrap();
    c.inject_sync_failure();
    let e = c.put_batch(&evs(5..10)).unwrap_err();
    assert!(matches!(e, ChannelError::Unhealthy { .. }), "{e}");
    assert_eq!(
        c.health()
            .unhealthy
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let e = c.take_batch(5, Duration::ZERO).unwrap_err();
    assert!(matches!(e, ChannelError::Unhealthy { .. }), "{e}");
    drop(c);
    // A restart re-reads what is on disk; the first batch is intact.
    let c = FileChannel::open("c1", cfg(dir.path())).unwrap();
    let got = drain(&c);
    assert_eq!(&got[..5], &evs(0..5)[..]);
}

#[test]
fn waiting_put_succeeds_when_room_appears_and_takes_wait_for_puts() {
    let dir = tempfile::tempdir().unwrap();
    let c = std::sync::Arc::new(
        FileChannel::open(
            "c1",
            FileChannelConfig {
                capacity: 5,
                transaction_capacity: 5,
                // Longer than the bounded wait below: the put cannot time out first.
                keep_alive: Duration::from_secs(60),
                ..cfg(dir.path())
            },
        )
        .unwrap(),
    );
    c.put_batch(&evs(0..5)).unwrap();
    assert_eq!(c.puts_waiting(), 0);
    let c2 = c.clone();
    let h = std::thread::spawn(move || c2.put_batch(&evs(5..7)));
    // Proof that the put took the blocking path: it is parked waiting for room.
    let end = Instant::now() + Duration::from_secs(30);
    while c.puts_waiting() != 1 {
        assert!(
            Instant::now() < end && !h.is_finished(),
            "the put never parked waiting for room"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(c.size(), 5, "nothing of the waiting put is in yet");
    c.take_batch(5, Duration::ZERO).unwrap().commit().unwrap();
    h.join().unwrap().unwrap();
    assert_eq!(c.puts_waiting(), 0);
    let t = c.take_batch(5, Duration::from_secs(5)).unwrap();
    assert_eq!(t.events(), &evs(5..7)[..]);
}

#[test]
fn inspect_reports_segments_and_verifies_crcs() {
    let dir = tempfile::tempdir().unwrap();
    let c = FileChannel::open("c1", cfg(dir.path())).unwrap();
    for i in 0..6 {
        c.put_batch(&evs(i * 10..i * 10 + 10)).unwrap();
    }
    c.take_batch(10, Duration::ZERO).unwrap().commit().unwrap();
    c.close().unwrap();
    drop(c);
    let r = inspect(dir.path()).unwrap();
    assert!(r.is_clean(), "{r}");
    assert_eq!(r.checkpointed_events(), Some(50));
    let total: u64 = r.segments.iter().map(|s| s.events).sum();
    assert!(total >= 50);
    let text = r.to_string();
    assert!(text.contains("all checks passed"), "{text}");
    // Flip a byte inside the first record's payload: inspect names the offset.
    let seg = &r.segments.last().unwrap().path;
    let mut b = std::fs::read(seg).unwrap();
    b[64 + 40] ^= 0x55;
    std::fs::write(seg, b).unwrap();
    let r = inspect(dir.path()).unwrap();
    assert!(!r.is_clean());
    assert!(r.to_string().contains("BAD RECORD at offset 64"), "{r}");
}

#[test]
fn corrupt_record_after_the_checkpoint_is_reported_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let c = FileChannel::open("c1", cfg(dir.path())).unwrap();
    c.put_batch(&evs(0..3)).unwrap();
    c.put_batch(&evs(3..6)).unwrap();
    c.put_batch(&evs(6..9)).unwrap();
    // Stop without a checkpoint: recovery has to replay (and validate) these records.
    c.crash_with_torn_put(&[], 0, &[]);
    let seg = dir.path().join("data/log-00000000000000000001.sgseg");
    let mut b = std::fs::read(&seg).unwrap();
    let len1 = u32::from_le_bytes(b[64..68].try_into().unwrap()) as usize;
    let second = 64 + (24 + len1).div_ceil(8) * 8;
    b[second + 30] ^= 0x10;
    std::fs::write(&seg, b).unwrap();
    let c = FileChannel::open("c1", cfg(dir.path())).unwrap();
    assert_eq!(c.size(), 6);
    assert_eq!(drain(&c), [evs(0..3), evs(6..9)].concat());
    // New puts continue after the intact tail.
    c.put_batch(&evs(9..10)).unwrap();
    assert_eq!(drain(&c), evs(9..10));
}

#[test]
fn relaxed_mode_commits_without_waiting_for_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let relaxed = FileChannelConfig {
        fsync_per_transaction: false,
        fsync_interval: Duration::from_secs(1),
        ..cfg(dir.path())
    };
    let c = FileChannel::open("c1", relaxed.clone()).unwrap();
    c.put_batch(&evs(0..10)).unwrap();
    // Visible at once, before any sync.
    assert_eq!(
        c.take_batch(3, Duration::ZERO).unwrap().events(),
        &evs(0..3)[..]
    );
    c.close().unwrap();
    drop(c);
    let c = FileChannel::open("c1", relaxed).unwrap();
    assert_eq!(drain(&c), evs(0..10));
}

/// Resident kB of this process's mappings of files under `dir` (from `/proc/self/smaps`).
fn mapped_rss_kb(dir: &std::path::Path) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let dir = dir.to_string_lossy();
    let mut total = 0;
    let mut inside = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            // A mapping's header line: "start-end perms offset dev inode [path]".
            inside = line
                .split_whitespace()
                .nth(5)
                .is_some_and(|p| p.starts_with(&*dir));
        } else if inside && first == "Rss:" {
            total += line
                .split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<u64>()
                .unwrap();
        }
    }
    total
}

fn big_ev(i: u32) -> Event {
    Event::new(
        [("seq", i.to_string())],
        format!("{i:08}:").repeat(100 + (i % 7) as usize),
    )
}

#[test]
fn released_pages_read_back_byte_equal_and_leave_the_resident_set() {
    let dir = tempfile::tempdir().unwrap();
    let c = FileChannel::open(
        "c1",
        FileChannelConfig {
            capacity: 100_000,
            transaction_capacity: 40_000,
            segment_size: 64 << 20,
            ..cfg(dir.path())
        },
    )
    .unwrap();
    // ~24 MB of events: the take's own scan drops pages behind itself (every 4 MiB), and
    // more than one put record.
    let n = 24_000u32;
    for lo in (0..n).step_by(4_000) {
        let batch: Vec<Event> = (lo..lo + 4_000).map(big_ev).collect();
        c.put_batch(&batch).unwrap();
    }
    let want: Vec<Event> = (0..n).map(big_ev).collect();
    let bytes: usize = want.iter().map(|e| e.encoded_len()).sum();
    assert!(bytes > 20 << 20, "{bytes}");

    let t = c.take_batch(n as usize, Duration::ZERO).unwrap();
    assert_eq!(t.len(), n as usize);
    // The take scanned every event, yet not all of it stayed resident.
    let after_take = mapped_rss_kb(dir.path());
    assert!(
        after_take * 1024 < bytes as u64 / 2,
        "after the take {after_take} kB of the map are resident for {bytes} bytes taken"
    );
    // Reading every body faults the pages back in, with the same bytes.
    assert_eq!(t.events(), &want[..]);
    let touched = mapped_rss_kb(dir.path());
    assert!(touched * 1024 > bytes as u64 * 3 / 4, "{touched} kB");
    // Release in pieces, odd boundaries included, then everything (and out-of-range clamps).
    t.release_pages(0..1);
    t.release_pages(5..5);
    t.release_pages(1..7_777);
    t.release_pages(7_777..n as usize + 1_000);
    let released = mapped_rss_kb(dir.path());
    assert!(
        released * 1024 < bytes as u64 / 8,
        "after release_pages {released} kB of the map are still resident (were {touched} kB)"
    );
    for (i, (got, want)) in t.events().iter().zip(&want).enumerate() {
        assert_eq!(got.body(), want.body(), "event {i} after release");
        assert_eq!(
            got.header("seq"),
            want.header("seq"),
            "event {i} after release"
        );
    }
    // A released take rolls back and is taken again unchanged; commit works as before.
    t.release_pages(0..n as usize);
    t.rollback();
    let t = c.take_batch(n as usize, Duration::ZERO).unwrap();
    t.release_pages(0..n as usize);
    assert_eq!(t.events(), &want[..]);
    t.release_pages(0..n as usize);
    t.commit().unwrap();
    assert_eq!(c.size(), 0);
    c.close().unwrap();
    drop(c);
    let c = FileChannel::open("c1", cfg(dir.path())).unwrap();
    assert_eq!(c.size(), 0);
}

#[test]
fn release_pages_on_a_memory_take_changes_nothing() {
    use sluicegate::channel::memory::{MemoryChannel, MemoryChannelConfig};
    let c = MemoryChannel::new(
        "m",
        MemoryChannelConfig {
            capacity: 500,
            transaction_capacity: 500,
            ..MemoryChannelConfig::default()
        },
    );
    let want: Vec<Event> = (0..500).map(big_ev).collect();
    c.put_batch(&want).unwrap();
    let t = c.take_batch(500, Duration::ZERO).unwrap();
    t.release_pages(0..500);
    assert_eq!(t.events(), &want[..]);
}
