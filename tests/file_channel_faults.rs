//! The file channel under faults that say nothing about the data: a segment that cannot be
//! opened, read or mapped at recovery (EPERM, EMFILE, EIO, ENOMEM...) stops recovery with an
//! error naming the file and leaves every byte on disk; only a segment that provably holds
//! nothing (every byte zero: a creation cut short) is removed. And a panic while a channel lock
//! is held turns the channel Unhealthy until a restart, which recovers every committed event.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sluicegate::channel::file::{Faults, FileChannel, FileChannelConfig, FileOp};
use sluicegate::channel::{Channel, ChannelError};
use sluicegate::Event;

fn cfg(dir: &Path) -> FileChannelConfig {
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

/// Every file in the data directory with its contents.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir.join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sgseg"))
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    snapshot(dir)
        .into_keys()
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("log-"))
        .collect()
}

/// A channel holding events 30..500 across several segments (30 taken and committed), closed.
/// Returns the events it holds.
fn filled(dir: &Path) -> Vec<Event> {
    let c = FileChannel::open("c1", cfg(dir)).unwrap();
    for i in 0..25 {
        c.put_batch(&evs(i * 20..i * 20 + 20)).unwrap();
    }
    let t = c.take_batch(30, Duration::ZERO).unwrap();
    assert_eq!(t.events(), &evs(0..30)[..]);
    t.commit().unwrap();
    c.close().unwrap();
    drop(c);
    assert!(segments(dir).len() >= 3, "{:?}", segments(dir));
    evs(30..500)
}

/// Open fails with an I/O error carrying `errno` and naming `file`.
fn assert_io_error(e: &ChannelError, errno: i32, file: &Path) {
    match e {
        ChannelError::Io { source, .. } => assert_eq!(source.raw_os_error(), Some(errno), "{e}"),
        other => panic!("expected an I/O error, got {other}"),
    }
    let msg = e.to_string();
    assert!(msg.contains(&file.display().to_string()), "{msg}");
    assert!(msg.contains("nothing was removed"), "{msg}");
}

#[test]
fn a_newest_segment_that_cannot_be_opened_read_or_mapped_is_kept_and_recovery_stops() {
    let cases = [
        (FileOp::Open, libc::EPERM),
        (FileOp::Open, libc::EMFILE),
        (FileOp::Open, libc::EACCES),
        (FileOp::Read, libc::EIO),
        (FileOp::Stat, libc::EIO),
        (FileOp::Map, libc::ENOMEM),
    ];
    for (op, errno) in cases {
        let dir = tempfile::tempdir().unwrap();
        let expected = filled(dir.path());
        // The reproduction: the ledger is lost, so there is no checkpoint, and the
        // newest segment (the one a cut-short creation would have left) fails to open.
        std::fs::remove_dir_all(dir.path().join("checkpoint")).unwrap();
        let newest = segments(dir.path()).pop().unwrap();
        let before = snapshot(dir.path());
        let faults = Faults::new();
        faults.fail(op, &newest, errno);
        for _ in 0..2 {
            let e = FileChannel::open_with_faults("c1", cfg(dir.path()), &faults).unwrap_err();
            assert_io_error(&e, errno, &newest);
            assert_eq!(
                snapshot(dir.path()),
                before,
                "{op:?}: every byte stays on disk"
            );
        }
        // The fault is gone: everything is back.
        faults.clear();
        let c = FileChannel::open_with_faults("c1", cfg(dir.path()), &faults).unwrap();
        assert_eq!(drain(&c), expected, "{op:?}");
    }
}

#[test]
fn an_older_segment_that_cannot_be_opened_stops_recovery_too() {
    let dir = tempfile::tempdir().unwrap();
    let expected = filled(dir.path());
    let first = segments(dir.path()).remove(0);
    let before = snapshot(dir.path());
    let faults = Faults::new();
    faults.fail(FileOp::Map, &first, libc::ENOMEM);
    let e = FileChannel::open_with_faults("c1", cfg(dir.path()), &faults).unwrap_err();
    assert_io_error(&e, libc::ENOMEM, &first);
    assert_eq!(snapshot(dir.path()), before);
    let c = FileChannel::open("c1", cfg(dir.path())).unwrap();
    assert_eq!(drain(&c), expected);
}

/// The next segment file after the newest one.
fn next_segment_path(dir: &Path) -> PathBuf {
    let newest = segments(dir).pop().unwrap();
    let name = newest.file_name().unwrap().to_str().unwrap();
    let id: u64 = name["log-".len()..name.len() - ".sgseg".len()]
        .parse()
        .unwrap();
    dir.join("data").join(format!("log-{:020}.sgseg", id + 1))
}

#[test]
fn a_segment_whose_creation_was_cut_short_is_removed() {
    // What a crash inside segment creation can leave: an empty file (before `fallocate`), or
    // the preallocated length of zeros (before the header reached the disk).
    for (len, lose_ledger) in [(0u64, false), (8192, false), (8192, true), (40, true)] {
        let dir = tempfile::tempdir().unwrap();
        let expected = filled(dir.path());
        if lose_ledger {
            std::fs::remove_dir_all(dir.path().join("checkpoint")).unwrap();
        }
        let cut = next_segment_path(dir.path());
        std::fs::File::create(&cut).unwrap().set_len(len).unwrap();
        let c = FileChannel::open("c1", cfg(dir.path())).unwrap();
        assert!(!cut.exists(), "len {len}: removed");
        assert_eq!(drain(&c), expected, "len {len}");
        // And the channel goes on appending after it.
        c.put_batch(&evs(500..520)).unwrap();
        drop(c);
        let c = FileChannel::open("c1", cfg(dir.path())).unwrap();
        assert_eq!(drain(&c), evs(500..520));
    }
}

#[test]
fn the_only_segment_cut_short_at_first_start_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let cut = dir.path().join("data").join(format!("log-{:020}.sgseg", 1));
    std::fs::File::create(&cut).unwrap().set_len(8192).unwrap();
    let c = FileChannel::open("c1", cfg(dir.path())).unwrap();
    c.put_batch(&evs(0..5)).unwrap();
    drop(c);
    let c = FileChannel::open("c1", cfg(dir.path())).unwrap();
    assert_eq!(drain(&c), evs(0..5));
}

#[test]
fn a_zeroed_header_over_written_data_is_not_mistaken_for_a_cut_short_creation() {
    let dir = tempfile::tempdir().unwrap();
    let expected = filled(dir.path());
    std::fs::remove_dir_all(dir.path().join("checkpoint")).unwrap();
    let newest = segments(dir.path()).pop().unwrap();
    let original = std::fs::read(&newest).unwrap();
    let mut wiped = original.clone();
    wiped[..64].fill(0);
    std::fs::write(&newest, &wiped).unwrap();
    let before = snapshot(dir.path());
    let e = FileChannel::open("c1", cfg(dir.path())).unwrap_err();
    assert!(matches!(e, ChannelError::Corrupt { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&newest.display().to_string()), "{msg}");
    assert!(
        msg.contains("header is all zeros but the file holds data"),
        "{msg}"
    );
    assert_eq!(snapshot(dir.path()), before, "nothing removed");
    // Repaired by hand: everything is there.
    std::fs::write(&newest, &original).unwrap();
    let c = FileChannel::open("c1", cfg(dir.path())).unwrap();
    assert_eq!(drain(&c), expected);
}

#[test]
fn a_blank_segment_the_checkpoint_refers_to_stops_recovery() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path());
    // The ledger names the newest segment as its write position; a blank file there is not a
    // cut-short creation but lost data.
    let newest = segments(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&newest).unwrap().len();
    std::fs::write(&newest, vec![0u8; len as usize]).unwrap();
    let e = FileChannel::open("c1", cfg(dir.path())).unwrap_err();
    assert!(matches!(e, ChannelError::Corrupt { .. }), "{e}");
    assert!(
        e.to_string().contains("no header and nothing written"),
        "{e}"
    );
    assert!(newest.exists());
}

fn assert_refused(r: Result<(), ChannelError>, what: &str) {
    match r {
        Err(e @ ChannelError::Unhealthy { .. }) => {
            assert!(e.to_string().contains("restart"), "{what}: {e}");
        }
        Err(other) => panic!("{what}: expected Unhealthy, got {other}"),
        Ok(()) => panic!("{what}: expected Unhealthy, got Ok"),
    }
}

#[test]
fn a_panic_while_holding_a_channel_lock_makes_the_channel_unhealthy_until_restart() {
    for lock in ["log", "queue", "ledger", "segments"] {
        let dir = tempfile::tempdir().unwrap();
        let c = FileChannel::open("c1", cfg(dir.path())).unwrap();
        c.put_batch(&evs(0..50)).unwrap();
        let t = c.take_batch(10, Duration::ZERO).unwrap();
        t.commit().unwrap();
        let open_take = c.take_batch(10, Duration::ZERO).unwrap();
        assert_eq!(open_take.events(), &evs(10..20)[..]);

        c.inject_panic_holding(lock);

        assert_refused(c.put_batch(&evs(50..55)), lock);
        assert_refused(c.take_batch(5, Duration::ZERO).map(|_| ()), lock);
        assert_refused(open_take.commit(), lock);
        assert_refused(c.checkpoint(), lock);
        assert_eq!(
            c.health()
                .unhealthy
                .load(std::sync::atomic::Ordering::Relaxed),
            1,
            "{lock}"
        );
        drop(c);

        // A restart rebuilds the state from disk: every committed put, minus committed takes;
        // the take whose commit was refused comes back.
        let c = FileChannel::open("c1", cfg(dir.path())).unwrap();
        assert_eq!(drain(&c), evs(10..50), "{lock}");
    }
}
