//! Disk-full behaviour on a real 4 MiB tmpfs: puts fail with `DiskSpace` (never a crash, never
//! damage to what is committed), consumers can still drain, and puts resume by themselves once
//! space returns. Mounting needs root (CAP_SYS_ADMIN) on Linux, so the test is `#[ignore]`d: the
//! runner's summary counts it as ignored, and `.ci/run` runs it with `--ignored` when it is root.
//! Run with `--ignored` where tmpfs cannot be mounted, it fails and says why.
//!
//! ```sh
//! sudo -E cargo test --release --test file_channel_diskfull -- --ignored
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sluicegate::channel::file::{FileChannel, FileChannelConfig};
use sluicegate::channel::{Channel, ChannelError};
use sluicegate::Event;

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount_tmpfs(dir: &Path) -> Result<Mount, String> {
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "mount -t tmpfs failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(Mount(dir.to_path_buf()))
}

fn ev(i: u32) -> Event {
    Event::new([("id", i.to_string())], vec![(i % 251) as u8; 1000])
}

#[test]
#[ignore = "needs root to mount a 4 MiB tmpfs: run with --ignored as root (.ci/run does)"]
fn full_disk_fails_puts_cleanly_and_recovers_when_space_returns() {
    let base = tempfile::tempdir().unwrap();
    let mnt = base.path().join("tmpfs");
    std::fs::create_dir_all(&mnt).unwrap();
    let _mount = mount_tmpfs(&mnt).unwrap_or_else(|why| {
        panic!("this test needs root (CAP_SYS_ADMIN) to mount a 4 MiB tmpfs: {why}")
    });
    let cfg = FileChannelConfig {
        segment_size: 256 * 1024,
        minimum_required_space: 1 << 20,
        transaction_capacity: 100,
        keep_alive: Duration::from_millis(10),
        ..FileChannelConfig::in_dir(&mnt)
    };
    let c = FileChannel::open("full", cfg.clone()).unwrap();
    let mut committed = Vec::new();
    let mut next = 0u32;
    let err = loop {
        let batch: Vec<Event> = (next..next + 50).map(ev).collect();
        match c.put_batch(&batch) {
            Ok(()) => {
                committed.extend(batch);
                next += 50;
            }
            Err(e) => break e,
        }
        assert!(next < 10_000, "the 4 MiB disk never filled up");
    };
    assert!(matches!(err, ChannelError::DiskSpace { .. }), "{err}");
    assert!(!committed.is_empty());
    // Another process eats the rest of the space: still a clean DiskSpace error.
    let filler = mnt.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 4 << 20]);
    let err = c.put_batch(&[ev(99_999)]).unwrap_err();
    assert!(matches!(err, ChannelError::DiskSpace { .. }), "{err}");
    std::fs::remove_file(&filler).unwrap();

    // Nothing committed was damaged: drain half of it, in order.
    let half = committed.len() / 2;
    let mut got = Vec::new();
    while got.len() < half {
        let t = c
            .take_batch(100.min(half - got.len()), Duration::ZERO)
            .unwrap();
        got.extend_from_slice(t.events());
        t.commit().unwrap();
    }
    assert_eq!(got, committed[..half]);
    // Taken events are slices of the segment maps; a deleted segment's space returns once the
    // last slice of it is dropped.
    drop(got);

    // Puts resume by themselves once consumed segments are gone (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(20);
    let extra: Vec<Event> = (50_000..50_050).map(ev).collect();
    loop {
        match c.put_batch(&extra) {
            Ok(()) => break,
            Err(ChannelError::DiskSpace { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("puts did not resume: {e} (segments {})", c.segment_count()),
        }
    }
    committed.extend(extra);
    c.close().unwrap();
    drop(c);

    // And a restart sees exactly the rest, in order.
    let c = FileChannel::open("full", cfg).unwrap();
    let mut rest = Vec::new();
    loop {
        let t = c.take_batch(100, Duration::ZERO).unwrap();
        if t.is_empty() {
            break;
        }
        rest.extend_from_slice(t.events());
        t.commit().unwrap();
    }
    assert_eq!(rest, committed[half..]);
    c.close().unwrap();
}
