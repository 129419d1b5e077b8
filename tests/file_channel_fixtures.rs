//! Golden on-disk fixtures in `tests/fixtures/file_channel/`, pinning format version 1 and the
//! recovery behaviour on damaged files.
//!
//! The fixtures were generated once by the ignored test below and committed:
//!
//! ```text
//! cargo test --test file_channel_fixtures -- --ignored generate_fixtures
//! ```
//!
//! Never regenerate them to make a test pass: a difference means the on-disk format changed,
//! which needs a new `FORMAT_VERSION` and a migration story.
//!
//! * `valid/`            12 events put in 3 transactions, the first 5 taken and committed.
//! * `torn_tail/`        `valid` plus a put torn after 50 bytes followed by 16 garbage bytes.
//! * `flipped_bit/`      12 events in 3 records, 2 taken; one bit flipped in the 2nd record.
//! * `truncated_ledger/` `valid` with the ledger cut to 60 bytes (both slots unreadable).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sluicegate::channel::file::{inspect, FileChannel, FileChannelConfig};
use sluicegate::channel::Channel;
use sluicegate::Event;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/file_channel")
}

fn cfg(dir: &Path) -> FileChannelConfig {
    FileChannelConfig {
        capacity: 100,
        transaction_capacity: 10,
        segment_size: 4096,
        minimum_required_space: 1 << 20,
        ..FileChannelConfig::in_dir(dir)
    }
}

fn ev(i: u32) -> Event {
    Event::new(
        [("id", i.to_string()), ("host", "fixture".into())],
        format!("event number {i}"),
    )
}

fn evs(r: std::ops::Range<u32>) -> Vec<Event> {
    r.map(ev).collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), t).unwrap();
        }
    }
}

fn recover(name: &str) -> (Vec<Event>, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join(name), tmp.path());
    let c = FileChannel::open("fx", cfg(tmp.path())).unwrap();
    let mut out = Vec::new();
    loop {
        let t = c.take_batch(10, Duration::ZERO).unwrap();
        if t.is_empty() {
            break;
        }
        out.extend_from_slice(t.events());
        t.rollback_or_keep(&mut ());
    }
    // Taken-but-uncommitted events still count; corruption found on the way no longer does.
    assert_eq!(
        c.size() as usize,
        out.len(),
        "{name}: size disagrees with what was taken"
    );
    (out, tmp)
}

trait Keep {
    fn rollback_or_keep(self, _: &mut ());
}
impl Keep for sluicegate::channel::TakeBatch {
    fn rollback_or_keep(self, _: &mut ()) {
        std::mem::forget(self); // keep them taken so the loop moves on
    }
}

#[test]
fn valid_fixture_recovers_exactly() {
    let (got, _t) = recover("valid");
    assert_eq!(got, evs(5..12));
    let r = inspect(&fixtures().join("valid")).unwrap();
    assert!(r.is_clean(), "{r}");
}

#[test]
fn torn_tail_is_truncated() {
    let r = inspect(&fixtures().join("torn_tail")).unwrap();
    assert!(
        !r.is_clean(),
        "the fixture must contain the torn bytes:\n{r}"
    );
    let (got, tmp) = recover("torn_tail");
    assert_eq!(got, evs(5..12));
    // After recovery the debris is gone.
    let r = inspect(tmp.path()).unwrap();
    assert!(r.segments.iter().all(|s| s.bad.is_empty()), "{r}");
}

#[test]
fn flipped_bit_loses_only_its_record() {
    let r = inspect(&fixtures().join("flipped_bit")).unwrap();
    let bad: Vec<_> = r.segments.iter().flat_map(|s| s.bad.clone()).collect();
    assert_eq!(bad.len(), 1, "{r}");
    assert_eq!(bad[0].reason, "checksum mismatch");
    let (got, _t) = recover("flipped_bit");
    assert_eq!(got, [evs(2..4), evs(8..12)].concat());
}

#[test]
fn truncated_ledger_falls_back_to_an_exact_full_replay() {
    let r = inspect(&fixtures().join("truncated_ledger")).unwrap();
    assert!(r.checkpoint.is_none(), "{r}");
    let (got, _t) = recover("truncated_ledger");
    assert_eq!(got, evs(5..12));
}

#[test]
fn segment_bytes_are_what_this_build_writes() {
    // Guards the format: the same operations must produce byte-identical segments.
    let tmp = tempfile::tempdir().unwrap();
    build_valid(tmp.path());
    let ours = std::fs::read(tmp.path().join("data/log-00000000000000000001.sgseg")).unwrap();
    let golden =
        std::fs::read(fixtures().join("valid/data/log-00000000000000000001.sgseg")).unwrap();
    assert!(
        ours == golden,
        "segment layout changed: bump FORMAT_VERSION"
    );
}

fn build_valid(dir: &Path) -> FileChannel {
    let c = FileChannel::open("fx", cfg(dir)).unwrap();
    c.put_batch(&evs(0..4)).unwrap();
    c.put_batch(&evs(4..8)).unwrap();
    c.put_batch(&evs(8..12)).unwrap();
    let t = c.take_batch(5, Duration::ZERO).unwrap();
    assert_eq!(t.events(), &evs(0..5)[..]);
    t.commit().unwrap();
    c.checkpoint().unwrap();
    c
}

fn strip_locks(dir: &Path) {
    for sub in ["checkpoint", "data"] {
        let _ = std::fs::remove_file(dir.join(sub).join("in_use.lock"));
    }
}

#[test]
#[ignore = "generator: run once by hand, then commit tests/fixtures/file_channel"]
fn generate_fixtures() {
    let root = fixtures();
    let _ = std::fs::remove_dir_all(&root);
    // valid
    let d = root.join("valid");
    build_valid(&d).close().unwrap();
    strip_locks(&d);
    // truncated_ledger
    let d2 = root.join("truncated_ledger");
    copy_dir(&d, &d2);
    let l = d2.join("checkpoint/ledger");
    let b = std::fs::read(&l).unwrap();
    std::fs::write(&l, &b[..60]).unwrap();
    // torn_tail
    let d = root.join("torn_tail");
    let c = build_valid(&d);
    assert!(!c.crash_with_torn_put(&evs(100..103), 50, &[0xAB; 16]));
    strip_locks(&d);
    // flipped_bit
    let d = root.join("flipped_bit");
    let c = FileChannel::open("fx", cfg(&d)).unwrap();
    c.put_batch(&evs(0..4)).unwrap();
    c.put_batch(&evs(4..8)).unwrap();
    c.put_batch(&evs(8..12)).unwrap();
    c.take_batch(2, Duration::ZERO).unwrap().commit().unwrap();
    c.close().unwrap();
    drop(c);
    strip_locks(&d);
    let seg = d.join("data/log-00000000000000000001.sgseg");
    let mut b = std::fs::read(&seg).unwrap();
    let len1 = u32::from_le_bytes(b[64..68].try_into().unwrap()) as usize;
    let second = 64 + (24 + len1).div_ceil(8) * 8;
    b[second + 24 + 10] ^= 0x04;
    std::fs::write(&seg, b).unwrap();
}
