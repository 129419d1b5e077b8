//! The HDFS sink on `hdfs://` (the native client, cargo feature `hdfs`).
//!
//! Without an HDFS (always run): a NameNode address nobody listens on, and one that accepts
//! connections but never answers (`hdfs.callTimeout`): the transaction's events stay in the
//! channel, the error names the NameNode's URL and the failure, the bucket backs off. And the
//! SequenceFile comparison the HDFS tests use, checked on two local runs.
//!
//! Against a real HDFS (`#[ignore]`d unless run by hand): set `HDFS_URL=hdfs://host:port` (a
//! NameNode whose DataNodes this machine can reach, writable by `HADOOP_USER_NAME` or the login
//! name; a test directory `/sluicegate-test/<unique>` is made under it and deleted) and run
//!
//! ```text
//! HDFS_URL=hdfs://namenode:8020 cargo test --release --test hdfs_native -- --ignored
//! ```
//!
//! These write DataStream TEXT and SequenceFile (Writable and Text) through the sink to HDFS and
//! to `file://` with the same settings, events and clocks, and compare the file trees and bytes
//! (SequenceFile sync markers are random per file and are masked); and check that a file left
//! in use by a dead writer is renamed to its final name, lease recovered, data intact, by the
//! next sink's `start`. Run without `HDFS_URL`, they fail with that reason instead of passing.
#![cfg(feature = "hdfs")]

mod support;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluicegate::channel::memory::MemoryChannel;
use sluicegate::channel::Channel;
use sluicegate::clock::ManualClock;
use sluicegate::config::Context;
use sluicegate::event::Event;
use sluicegate::metrics::SinkCounter;
use sluicegate::sink::hdfs::config::{CallSettings, HdfsAuthority};
use sluicegate::sink::hdfs::hdfs_fs::HdfsFs;
use sluicegate::sink::hdfs::HdfsSink;
use sluicegate::sink::{Sink, SinkError};

fn mem() -> Arc<MemoryChannel> {
    support::memory_channel(10_000, 1000)
}

fn sink(pairs: &[(&str, &str)], ch: Arc<MemoryChannel>, clock: &ManualClock) -> HdfsSink {
    let ctx = Context::from_pairs("a1.sinks.k1", pairs.iter().copied());
    HdfsSink::from_context("k1", &ctx, ch)
        .unwrap()
        .with_clock(clock.clock())
        .with_wall_clock(Arc::new(|| 1_700_000_000_000))
}

fn events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            Event::new(
                [
                    ("topic", if i % 3 == 0 { "a" } else { "b" }),
                    ("timestamp", &format!("{}", 1_700_000_000_000u64 + i as u64)),
                ],
                format!("event {i:05} {}", "x".repeat(i % 40)),
            )
        })
        .collect()
}

fn delivery_message(r: Result<sluicegate::sink::SinkStatus, SinkError>) -> String {
    match r {
        Err(e @ SinkError::Delivery { .. }) => e.to_string(),
        other => panic!("expected a delivery error, got {other:?}"),
    }
}

#[test]
fn a_namenode_nobody_listens_on_keeps_every_event_and_the_error_names_it() {
    // A port that was just free: bound, read back, released.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("hdfs://127.0.0.1:{port}");
    let path = format!("{url}/flume/%{{topic}}");
    let cfg = [
        ("hdfs.path", path.as_str()),
        ("hdfs.fileType", "DataStream"),
        ("hdfs.callTimeout", "20000"),
        ("hdfs.timeZone", "UTC"),
    ];
    let ch = mem();
    let clock = ManualClock::new();
    let mut s = sink(&cfg, ch.clone(), &clock);
    // Recovery at start cannot list the directory: logged, not fatal.
    s.start().unwrap();
    ch.put_batch(&events(7)).unwrap();
    let started = Instant::now();
    let msg = delivery_message(s.process());
    assert!(msg.contains(&format!("NameNode {url}")), "{msg}");
    assert!(msg.contains("/flume/"), "{msg}");
    assert!(msg.to_lowercase().contains("refused"), "{msg}");
    // Refused at once: the client's own fail-over retries are off for a single NameNode.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(ch.size(), 7, "every event is back in the channel");
    let c = s.counter();
    assert_eq!(SinkCounter::get(&c.event_drain_success), 0);
    assert!(SinkCounter::get(&c.connection_failed) >= 1);
    assert!(s.open_files().is_empty());
    // The buckets are parked: the next call puts the events back again without a connection.
    let msg = delivery_message(s.process());
    assert!(
        msg.contains("no event of the batch could be written"),
        "{msg}"
    );
    assert_eq!(ch.size(), 7);
    // After the backoff the sink tries again, and still loses nothing.
    clock.advance(Duration::from_secs(2));
    let msg = delivery_message(s.process());
    assert!(msg.contains(&url), "{msg}");
    assert_eq!(ch.size(), 7);
    s.stop();
    assert_eq!(ch.size(), 7);
}

/// A "NameNode" that accepts connections and never answers, until dropped.
struct Silent {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Silent {
    fn start() -> Silent {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((sock, _)) => held.push(sock),
                    Err(_) => std::thread::park_timeout(Duration::from_millis(5)),
                }
            }
        });
        Silent {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

#[test]
fn a_namenode_that_never_answers_times_out_per_call_and_keeps_every_event() {
    let nn = Silent::start();
    let url = format!("hdfs://127.0.0.1:{}", nn.port);
    let path = format!("{url}/flume");
    let cfg = [
        ("hdfs.path", path.as_str()),
        ("hdfs.fileType", "DataStream"),
        ("hdfs.callTimeout", "300"),
    ];
    let ch = mem();
    let clock = ManualClock::new();
    let mut s = sink(&cfg, ch.clone(), &clock);
    s.start().unwrap();
    ch.put_batch(&events(4)).unwrap();
    let msg = delivery_message(s.process());
    assert!(
        msg.contains(&format!(
            "on NameNode {url}: no answer within hdfs.callTimeout = 300 ms"
        )),
        "{msg}"
    );
    assert_eq!(ch.size(), 4);
    assert_eq!(SinkCounter::get(&s.counter().event_drain_success), 0);
    s.stop();
    assert_eq!(ch.size(), 4);
}

// ------------------------------------------------------------------ against a real HDFS

/// Files under a root: relative path -> bytes.
type Tree = BTreeMap<String, Vec<u8>>;

/// `HDFS_URL`, split into the filesystem and a fresh test directory under its path.
struct Remote {
    url: String,
    dir: String,
    fs: HdfsFs,
}

impl Remote {
    fn new(tag: &str) -> Remote {
        let raw = std::env::var("HDFS_URL").unwrap_or_else(|_| {
            panic!(
                "set HDFS_URL=hdfs://host:port (a NameNode this machine reaches) to run this test"
            )
        });
        let rest = raw
            .strip_prefix("hdfs://")
            .unwrap_or_else(|| panic!("HDFS_URL={raw} is not an hdfs:// URL"));
        let (auth, base) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let authority = HdfsAuthority::parse(auth).unwrap();
        let unique = format!(
            "{}-{}-{tag}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let dir = format!("{base}/sluicegate-test/{unique}");
        Remote {
            url: authority.url(),
            dir,
            fs: HdfsFs::new(authority, CallSettings::default(), "test"),
        }
    }

    /// Every file under the test directory: path relative to it -> bytes.
    fn tree(&self) -> Tree {
        let root = self.dir.clone();
        let listing = self
            .fs
            .call("list", &root, |c| {
                let root = root.clone();
                async move { c.list_status(&root, true).await }
            })
            .unwrap();
        let mut out = BTreeMap::new();
        for st in listing.into_iter().filter(|s| !s.isdir) {
            let rel = st.path[self.dir.len() + 1..].to_string();
            out.insert(rel, self.read(&st.path));
        }
        out
    }

    fn read(&self, path: &str) -> Vec<u8> {
        let p = path.to_string();
        self.fs
            .call("read", path, |c| async move {
                let r = c.read(&p).await?;
                let len = r.file_length();
                r.read_range(0, len).await
            })
            .unwrap()
            .to_vec()
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        let d = self.dir.clone();
        let _ = self.fs.call(
            "delete",
            &self.dir,
            |c| async move { c.delete(&d, true).await },
        );
    }
}

fn local_tree(dir: &Path) -> Tree {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Hadoop's `WritableUtils.readVLong` at `b[*at..]`.
fn read_vlong(b: &[u8], at: &mut usize) -> i64 {
    let first = b[*at] as i8;
    *at += 1;
    if first >= -112 {
        return first as i64;
    }
    let (neg, len) = if first < -120 {
        (true, (-119 - first as i64) as usize)
    } else {
        (false, (-111 - first as i64) as usize)
    };
    let mut v: i64 = 0;
    for _ in 0..len - 1 {
        v = (v << 8) | b[*at] as i64;
        *at += 1;
    }
    if neg {
        !v
    } else {
        v
    }
}

/// A SequenceFile with its sync marker (header and every sync entry) zeroed: the marker is
/// random per file, the rest must match byte for byte.
fn mask_sync(mut b: Vec<u8>) -> Vec<u8> {
    assert_eq!(&b[..3], b"SEQ", "not a SequenceFile");
    let mut at = 4;
    for _ in 0..2 {
        let n = read_vlong(&b, &mut at) as usize; // key / value class names
        at += n;
    }
    at += 2; // compressed, block-compressed
    let meta = u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) as usize;
    at += 4;
    for _ in 0..meta * 2 {
        let n = read_vlong(&b, &mut at) as usize;
        at += n;
    }
    let sync: Vec<u8> = b[at..at + 16].to_vec();
    let mut i = 0;
    while i + 16 <= b.len() {
        if b[i..i + 16] == sync[..] {
            b[i..i + 16].fill(0);
            i += 16;
        } else {
            i += 1;
        }
    }
    b
}

/// Runs the same events through a sink on `hdfs://` and one on `file://`, stops both, returns
/// both trees.
fn write_both(extra: &[(&str, &str)], tag: &str) -> (Tree, Tree, Remote) {
    let remote = Remote::new(tag);
    let local = tempfile::tempdir().unwrap();
    let evs = events(250);
    let mut trees = Vec::new();
    for root in [
        format!("{}{}", remote.url, remote.dir),
        format!("file://{}", local.path().display()),
    ] {
        let path = format!("{root}/%{{topic}}/%Y-%m-%d");
        let mut cfg: Vec<(&str, &str)> = vec![
            ("hdfs.path", path.as_str()),
            ("hdfs.rollInterval", "0"),
            ("hdfs.rollSize", "0"),
            ("hdfs.rollCount", "60"),
            ("hdfs.batchSize", "25"),
            ("hdfs.timeZone", "UTC"),
        ];
        cfg.extend_from_slice(extra);
        let ch = mem();
        let clock = ManualClock::new();
        let mut s = sink(&cfg, ch.clone(), &clock);
        s.start().unwrap();
        for chunk in evs.chunks(40) {
            ch.put_batch(chunk).unwrap();
            s.process().unwrap();
            assert_eq!(ch.size(), 0, "{root}: every event written and committed");
        }
        s.stop();
        trees.push(if root.starts_with("file://") {
            local_tree(local.path())
        } else {
            remote.tree()
        });
    }
    let local_t = trees.pop().unwrap();
    let remote_t = trees.pop().unwrap();
    (remote_t, local_t, remote)
}

#[test]
#[ignore = "needs a real HDFS: set HDFS_URL=hdfs://host:port"]
fn datastream_text_on_hdfs_is_byte_for_byte_what_file_gets() {
    let (remote, local, _r) = write_both(
        &[("hdfs.fileType", "DataStream"), ("serializer", "TEXT")],
        "text",
    );
    assert!(local.len() >= 5, "{:?}", local.keys());
    assert_eq!(
        remote.keys().collect::<Vec<_>>(),
        local.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &local {
        assert!(!name.ends_with(".tmp"), "{name} left in use");
        assert_eq!(&remote[name], bytes, "{name}");
    }
}

#[test]
#[ignore = "needs a real HDFS: set HDFS_URL=hdfs://host:port"]
fn sequence_files_on_hdfs_match_what_file_gets_but_for_sync_markers() {
    for wf in ["Writable", "Text"] {
        let (remote, local, _r) = write_both(
            &[("hdfs.fileType", "SequenceFile"), ("hdfs.writeFormat", wf)],
            wf,
        );
        assert!(local.len() >= 5, "{wf}: {:?}", local.keys());
        assert_eq!(
            remote.keys().collect::<Vec<_>>(),
            local.keys().collect::<Vec<_>>(),
            "{wf}"
        );
        for (name, bytes) in local {
            assert_eq!(
                mask_sync(remote[&name].clone()),
                mask_sync(bytes),
                "{wf}: {name}"
            );
        }
    }
}

#[test]
#[ignore = "needs a real HDFS: set HDFS_URL=hdfs://host:port"]
fn a_file_left_in_use_by_a_dead_writer_is_recovered_on_start() {
    let r = Remote::new("recovery");
    let in_use = format!("{}/logs/FlumeData.1699999999999.tmp", r.dir);
    let data = b"committed line 1\ncommitted line 2\n".to_vec();
    // A writer that flushed and died: its file is never closed.
    {
        let (p, d) = (in_use.clone(), data.clone());
        r.fs.call("create", &in_use, |c| async move {
            let mut w = c.create(&p, hdfs_native_write_options()).await?;
            w.write_bytes(d.into()).await?;
            w.hsync().await?;
            drop(w); // no close: the file stays under construction
            Ok(())
        })
        .unwrap();
    }
    let path = format!("{}{}/logs", r.url, r.dir);
    let cfg = [
        ("hdfs.path", path.as_str()),
        ("hdfs.fileType", "DataStream"),
    ];
    let ch = mem();
    let clock = ManualClock::new();
    let mut s = sink(&cfg, ch.clone(), &clock);
    s.start().unwrap();
    let target = format!("{}/logs/FlumeData.1699999999999", r.dir);
    let tree = r.tree();
    assert!(
        !tree.contains_key("logs/FlumeData.1699999999999.tmp"),
        "{:?}",
        tree.keys()
    );
    // The lease recovery closes the file at the synced length (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let t = target.clone();
        let closed =
            r.fs.call("recoverLease", &target, |c| async move {
                c.recover_lease(&t).await
            })
            .unwrap();
        if closed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{target} was not closed by lease recovery"
        );
        std::thread::park_timeout(Duration::from_millis(200));
    }
    assert_eq!(r.read(&target), data);
    s.stop();
}

fn hdfs_native_write_options() -> hdfs_native::WriteOptions {
    hdfs_native::WriteOptions::default().overwrite(true)
}

/// The comparison the HDFS tests rely on, checked on two local runs: SequenceFiles of the same
/// events differ only in their random sync markers, which `mask_sync` zeroes.
#[test]
fn sequence_files_of_two_runs_differ_only_in_the_masked_sync_markers() {
    let mut trees = Vec::new();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    for d in &dirs {
        let path = format!("file://{}/%{{topic}}", d.path().display());
        let cfg = [
            ("hdfs.path", path.as_str()),
            ("hdfs.rollInterval", "0"),
            ("hdfs.rollSize", "0"),
            ("hdfs.rollCount", "60"),
            ("hdfs.batchSize", "25"),
        ];
        let ch = mem();
        let clock = ManualClock::new();
        let mut s = sink(&cfg, ch.clone(), &clock);
        s.start().unwrap();
        ch.put_batch(&events(100)).unwrap();
        s.process().unwrap();
        s.stop();
        trees.push(local_tree(d.path()));
    }
    assert_eq!(
        trees[0].keys().collect::<Vec<_>>(),
        trees[1].keys().collect::<Vec<_>>()
    );
    assert!(trees[0].len() >= 2, "{:?}", trees[0].keys());
    for (name, a) in &trees[0] {
        let b = &trees[1][name];
        assert_ne!(a, b, "{name}: two runs, two random sync markers");
        let (ma, mb) = (mask_sync(a.clone()), mask_sync(b.clone()));
        assert_eq!(ma, mb, "{name}");
        let zeroed = a.iter().zip(&ma).filter(|(x, y)| x != y).count();
        assert!(
            (1..=32 * a.len() / 100).contains(&zeroed),
            "{name}: {zeroed}"
        );
    }
}
