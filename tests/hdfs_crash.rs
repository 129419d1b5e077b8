//! Crash test of the HDFS sink: a child process (this test binary re-executed in the child role,
//! an `#[ignore]`d test run with `--exact hdfs_crash_child_role --ignored`) drains a file channel
//! into an HDFS sink (`file://`, DataStream TEXT, two buckets by `%{b}`, rolls every 50 events)
//! and is SIGKILLed at a random moment, 12 rounds. Before each round the parent puts new events
//! into the channel; after each kill it starts a sink on the same settings (its `start` recovers
//! files left in use) and checks:
//!
//! * no file is left under an in-use name;
//! * every event that left the channel (its take committed) is in a final file — duplicates are
//!   allowed (at-least-once), losses are not;
//!
//! and at the end, after a clean run drains the channel, that every event put is in a final file.
//! Bodies are fixed-width with an end mark, so a line cut by the kill (the tail of an uncommitted
//! batch) can never be mistaken for another event.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use sluicegate::channel::file::{FileChannel, FileChannelConfig};
use sluicegate::channel::Channel;
use sluicegate::config::Context;
use sluicegate::sink::hdfs::HdfsSink;
use sluicegate::sink::{Sink, SinkStatus};
use sluicegate::Event;

const ROUNDS: usize = 12;
const PER_ROUND: usize = 1500;

fn channel_cfg(dir: &Path) -> FileChannelConfig {
    FileChannelConfig {
        capacity: 100_000,
        transaction_capacity: 1_000,
        minimum_required_space: 1 << 20,
        keep_alive: Duration::from_millis(20),
        ..FileChannelConfig::in_dir(&dir.join("channel"))
    }
}

fn sink(dir: &Path, channel: Arc<dyn Channel>) -> HdfsSink {
    let path = format!("file://{}/out/%{{b}}", dir.display());
    let ctx = Context::from_pairs(
        "a1.sinks.k1",
        [
            ("hdfs.path", path.as_str()),
            ("hdfs.fileType", "DataStream"),
            ("hdfs.rollInterval", "0"),
            ("hdfs.rollSize", "0"),
            ("hdfs.rollCount", "50"),
            ("hdfs.batchSize", "20"),
        ],
    );
    HdfsSink::from_context("k1", &ctx, channel).unwrap()
}

fn body(round: usize, n: usize) -> String {
    format!("ev-{round:03}-{n:06}-end")
}

/// The child role: drains the channel until killed. The parent test re-executes this binary
/// with `--exact hdfs_crash_child_role --ignored` and `HDFS_CRASH_DIR` set; run by hand without
/// it, it fails instead of passing having tested nothing.
#[test]
#[ignore = "child-process role, run by sigkill_during_writes_loses_no_committed_event"]
fn hdfs_crash_child_role() {
    let Ok(dir) = std::env::var("HDFS_CRASH_DIR") else {
        panic!(
            "hdfs_crash_child_role is the child process of \
             sigkill_during_writes_loses_no_committed_event (which sets HDFS_CRASH_DIR); it \
             tests nothing on its own"
        );
    };
    let dir = PathBuf::from(dir);
    let ch: Arc<dyn Channel> = Arc::new(FileChannel::open("c1", channel_cfg(&dir)).unwrap());
    let mut s = sink(&dir, ch);
    s.start().unwrap();
    println!("READY");
    loop {
        if s.process().unwrap() == SinkStatus::Backoff {
            // The runner's idle backoff; the parent kills this process at a random moment.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Every full event line in final files, and the in-use files left.
fn scan(out: &Path) -> (HashSet<String>, Vec<PathBuf>) {
    let mut found = HashSet::new();
    let mut in_use = Vec::new();
    let mut stack = vec![out.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".tmp") {
                in_use.push(p);
            } else {
                let text = std::fs::read(&p).unwrap();
                for line in text.split(|&b| b == b'\n') {
                    let l = String::from_utf8_lossy(line);
                    if l.len() == 17 && l.starts_with("ev-") && l.ends_with("-end") {
                        found.insert(l.into_owned());
                    }
                }
            }
        }
    }
    (found, in_use)
}

/// The bodies still in the channel (taken and rolled back).
fn in_channel(ch: &FileChannel) -> HashSet<String> {
    let mut present = HashSet::new();
    let mut open = Vec::new();
    loop {
        let t = ch.take_batch(1_000, Duration::ZERO).unwrap();
        if t.is_empty() {
            break;
        }
        present.extend(
            t.events()
                .iter()
                .map(|e| String::from_utf8_lossy(e.body()).into_owned()),
        );
        open.push(t);
    }
    drop(open);
    present
}

#[test]
fn sigkill_during_writes_loses_no_committed_event() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::thread_rng();
    let mut put: HashSet<String> = HashSet::new();
    for round in 0..ROUNDS {
        {
            let ch = FileChannel::open("c1", channel_cfg(dir)).unwrap();
            let evs: Vec<Event> = (0..PER_ROUND)
                .map(|n| Event::new([("b", format!("b{}", n % 2))], body(round, n)))
                .collect();
            for chunk in evs.chunks(500) {
                ch.put_batch(chunk).unwrap();
            }
            put.extend((0..PER_ROUND).map(|n| body(round, n)));
            ch.close().unwrap();
        }
        let mut child = Command::new(&exe)
            .args([
                "hdfs_crash_child_role",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("HDFS_CRASH_DIR", dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.ends_with("READY") {
                    let _ = ready_tx.send(());
                }
            }
        });
        if ready_rx.recv_timeout(Duration::from_secs(30)).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("round {round}: the child never reported READY");
        }
        // The random delay picks the kill point; it synchronises nothing.
        std::thread::sleep(Duration::from_millis(rng.gen_range(20..250)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();

        // Restart: the events still in the channel, then a sink start recovers in-use files.
        let ch = Arc::new(FileChannel::open("c1", channel_cfg(dir)).unwrap());
        let left = in_channel(&ch);
        let (_, in_use_before) = scan(&dir.join("out"));
        let mut s = sink(dir, ch.clone());
        s.start().unwrap();
        s.stop();
        ch.close().unwrap();
        let (found, in_use) = scan(&dir.join("out"));
        assert!(
            in_use.is_empty(),
            "round {round}: in-use files not recovered: {in_use:?}"
        );
        let lost: Vec<&String> = put
            .iter()
            .filter(|b| !left.contains(*b) && !found.contains(*b))
            .take(5)
            .collect();
        assert!(
            lost.is_empty(),
            "round {round}: committed events in no final file: {lost:?}"
        );
        eprintln!(
            "round {round}: {} events in the channel, {} distinct in final files, {} in-use files recovered",
            left.len(),
            found.len(),
            in_use_before.len()
        );
    }
    // A clean run drains the rest: every event ever put is in a final file.
    let ch = Arc::new(FileChannel::open("c1", channel_cfg(dir)).unwrap());
    let mut s = sink(dir, ch.clone());
    s.start().unwrap();
    for _ in 0..100_000 {
        if s.process().unwrap() == SinkStatus::Backoff && ch.size() == 0 {
            break;
        }
    }
    s.stop();
    assert_eq!(ch.size(), 0);
    ch.close().unwrap();
    let (found, in_use) = scan(&dir.join("out"));
    assert!(in_use.is_empty(), "{in_use:?}");
    let missing = put.iter().filter(|b| !found.contains(*b)).count();
    assert_eq!(missing, 0, "events put but in no final file");
}
