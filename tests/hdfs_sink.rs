//! The HDFS sink's behaviour beyond the Flume fixtures: faults (nothing lost, other buckets keep
//! flowing), recovery of in-use files, `maxOpenFiles`, `rollInterval`, metrics.

mod support;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sluicegate::channel::memory::MemoryChannel;
use sluicegate::channel::Channel;
use sluicegate::clock::ManualClock;
use sluicegate::config::Context;
use sluicegate::event::Event;
use sluicegate::metrics::SinkCounter;
use sluicegate::sink::hdfs::fs::{HdfsFileSystem, LocalFs, OutFile};
use sluicegate::sink::hdfs::HdfsSink;
use sluicegate::sink::{Sink, SinkError, SinkStatus};

fn mem() -> Arc<MemoryChannel> {
    support::memory_channel(10_000, 1000)
}

fn sink(pairs: &[(&str, &str)], ch: Arc<MemoryChannel>, clock: &ManualClock) -> HdfsSink {
    let ctx = Context::from_pairs("a1.sinks.k1", pairs.iter().copied());
    HdfsSink::from_context("k1", &ctx, ch)
        .unwrap()
        .with_clock(clock.clock())
        .with_wall_clock(Arc::new(|| 1_000_000))
}

fn ev(topic: &str, body: &str) -> Event {
    Event::new([("topic", topic), ("timestamp", "1700000000000")], body)
}

/// All lines of all final (not in-use) files under `dir`, sorted.
fn lines(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if !p.to_string_lossy().ends_with(".tmp") {
                let s = std::fs::read_to_string(&p).unwrap();
                out.extend(s.lines().map(str::to_string));
            }
        }
    }
    out.sort();
    out
}

fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

const TEXT: [(&str, &str); 5] = [
    ("hdfs.fileType", "DataStream"),
    ("hdfs.rollInterval", "0"),
    ("hdfs.rollSize", "0"),
    ("hdfs.rollCount", "0"),
    ("hdfs.timeZone", "UTC"),
];

fn with(extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut v: Vec<(&'static str, String)> =
        TEXT.iter().map(|(k, v)| (*k, v.to_string())).collect();
    v.extend(extra.iter().cloned());
    v
}

fn pairs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    v.iter().map(|(k, s)| (*k, s.as_str())).collect()
}

#[test]
fn a_missing_timestamp_parks_only_that_event_and_the_error_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = with(&[(
        "hdfs.path",
        format!("{}/%Y/%{{topic}}", dir.path().display()),
    )]);
    let ch = mem();
    let clock = ManualClock::new();
    let mut s = sink(&pairs(&cfg), ch.clone(), &clock);
    s.start().unwrap();
    ch.put_batch(&[
        ev("a", "one"),
        Event::new([("topic", "a")], "no time"),
        ev("b", "two"),
    ])
    .unwrap();
    assert_eq!(s.process().unwrap(), SinkStatus::Ready);
    // The bad event went back; the others are committed and on disk.
    assert_eq!(ch.size(), 1);
    let c = s.counter();
    assert_eq!(SinkCounter::get(&c.event_drain_success), 2);
    // Alone, it makes the call fail with the reason (the runner backs off); still not lost.
    let err = s.process().unwrap_err();
    assert!(matches!(err, SinkError::Delivery { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("no 'timestamp' header") && msg.contains("hdfs.path"),
        "{msg}"
    );
    assert_eq!(ch.size(), 1);
    s.stop();
    assert_eq!(lines(dir.path()), ["one", "two"]);
    assert_eq!(
        files(dir.path()),
        ["2023/a/FlumeData.1000001", "2023/b/FlumeData.1000001"]
    );
}

#[test]
fn an_unwritable_bucket_waits_while_others_flow_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the bucket's directory should be: creating it fails, even for root.
    std::fs::write(dir.path().join("bad"), b"in the way").unwrap();
    let cfg = with(&[
        (
            "hdfs.path",
            format!("file://{}/%{{topic}}", dir.path().display()),
        ),
        ("hdfs.batchSize", "10".into()),
    ]);
    let ch = mem();
    let clock = ManualClock::new();
    let mut s = sink(&pairs(&cfg), ch.clone(), &clock);
    s.start().unwrap();
    ch.put_batch(&[
        ev("good", "g1"),
        ev("bad", "b1"),
        ev("good", "g2"),
        ev("bad", "b2"),
    ])
    .unwrap();
    assert_eq!(s.process().unwrap(), SinkStatus::Ready);
    assert_eq!(
        ch.size(),
        2,
        "the bad bucket's events are back in the channel"
    );
    // More traffic: good events flow, bad ones wait (parked) without retrying the directory.
    ch.put_batch(&[ev("good", "g3"), ev("bad", "b3")]).unwrap();
    s.process().unwrap();
    assert_eq!(ch.size(), 3);
    let c = s.counter();
    assert_eq!(
        SinkCounter::get(&c.connection_failed),
        1,
        "tried once, then parked"
    );
    // While parked and alone, the bucket's events make the call fail (the runner backs off).
    let e = s.process().unwrap_err().to_string();
    assert!(e.contains("no event of the batch could be written"), "{e}");
    // The fault goes away; after the backoff the events arrive, in order.
    std::fs::remove_file(dir.path().join("bad")).unwrap();
    clock.advance(Duration::from_secs(1));
    assert_eq!(s.process().unwrap(), SinkStatus::Ready);
    assert_eq!(ch.size(), 0);
    s.stop();
    let bad = std::fs::read_to_string(dir.path().join("bad/FlumeData.1000001")).unwrap();
    assert_eq!(bad, "b1\nb2\nb3\n");
    let good = std::fs::read_to_string(dir.path().join("good/FlumeData.1000001")).unwrap();
    assert_eq!(good, "g1\ng2\ng3\n");
}

#[test]
fn the_error_for_an_unwritable_bucket_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad"), b"x").unwrap();
    let cfg = with(&[("hdfs.path", format!("{}/bad/sub", dir.path().display()))]);
    let ch = mem();
    let clock = ManualClock::new();
    let mut s = sink(&pairs(&cfg), ch.clone(), &clock);
    s.start().unwrap();
    ch.put_batch(&[ev("t", "x")]).unwrap();
    let e = s.process().unwrap_err().to_string();
    let want = format!(
        "creating {}/bad/sub/FlumeData.1000001.tmp",
        dir.path().display()
    );
    assert!(e.contains(&want), "{e}");
    assert_eq!(ch.size(), 1);
}

/// A local filesystem whose writes and flushes fail while `full` is set (a full disk).
struct FullDisk {
    full: Arc<AtomicBool>,
}

struct FullFile {
    inner: Box<dyn OutFile>,
    full: Arc<AtomicBool>,
}

fn enospc() -> io::Error {
    io::Error::from_raw_os_error(28)
}

impl Write for FullFile {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.full.load(Ordering::SeqCst) {
            return Err(enospc());
        }
        self.inner.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl OutFile for FullFile {
    fn hflush(&mut self) -> io::Result<()> {
        if self.full.load(Ordering::SeqCst) {
            return Err(enospc());
        }
        self.inner.hflush()
    }
}

impl HdfsFileSystem for FullDisk {
    fn create(&self, path: &Path) -> io::Result<Box<dyn OutFile>> {
        Ok(Box::new(FullFile {
            inner: LocalFs.create(path)?,
            full: self.full.clone(),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        LocalFs.rename(from, to)
    }
    fn exists(&self, path: &Path) -> bool {
        LocalFs.exists(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<(PathBuf, bool)>> {
        LocalFs.list(dir)
    }
}

#[test]
fn a_full_disk_rolls_the_events_back_and_they_are_written_once_it_has_room() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = with(&[("hdfs.path", format!("{}/out", dir.path().display()))]);
    let ch = mem();
    let clock = ManualClock::new();
    let full = Arc::new(AtomicBool::new(false));
    let mut s =
        sink(&pairs(&cfg), ch.clone(), &clock).with_fs(Arc::new(FullDisk { full: full.clone() }));
    s.start().unwrap();
    ch.put_batch(&[ev("t", "1"), ev("t", "2")]).unwrap();
    s.process().unwrap();
    full.store(true, Ordering::SeqCst);
    ch.put_batch(&[ev("t", "3"), ev("t", "4")]).unwrap();
    let e = s.process().unwrap_err().to_string();
    assert!(e.contains("No space left on device"), "{e}");
    assert!(
        e.contains(&format!(
            "{}/out/FlumeData.1000001.tmp",
            dir.path().display()
        )),
        "{e}"
    );
    assert_eq!(ch.size(), 2);
    let c = s.counter();
    assert_eq!(SinkCounter::get(&c.event_drain_success), 2);
    assert!(SinkCounter::get(&c.event_write_fail) >= 1);
    // The failed file was closed and renamed: it holds what was committed before.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/FlumeData.1000001")).unwrap(),
        "1\n2\n"
    );
    full.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(1));
    assert_eq!(s.process().unwrap(), SinkStatus::Ready);
    s.stop();
    // The retry made a new writer; the wall clock stood still, so its first name was taken and
    // the counter moved on rather than replace the committed file.
    assert_eq!(
        files(&dir.path().join("out")),
        ["FlumeData.1000001", "FlumeData.1000002"]
    );
    assert_eq!(lines(&dir.path().join("out")), ["1", "2", "3", "4"]);
}

#[test]
fn in_use_files_left_by_a_crash_are_renamed_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("a/2023")).unwrap();
    std::fs::write(root.join("a/2023/_ev.17.log.tmp"), b"x\n").unwrap();
    std::fs::write(root.join("a/2023/_other.17.log.tmp"), b"y\n").unwrap();
    std::fs::write(root.join("a/2023/_ev.18.log.tmp"), b"z\n").unwrap();
    std::fs::write(root.join("a/2023/ev.18.log"), b"exists\n").unwrap();
    let cfg = with(&[
        ("hdfs.path", format!("{}/%{{topic}}/%Y", root.display())),
        ("hdfs.filePrefix", "ev".into()),
        ("hdfs.fileSuffix", ".log".into()),
        ("hdfs.inUsePrefix", "_".into()),
    ]);
    let ch = mem();
    let clock = ManualClock::new();
    let mut s = sink(&pairs(&cfg), ch, &clock);
    s.start().unwrap();
    assert_eq!(
        files(root),
        [
            "a/2023/_ev.18.log.tmp",    // its final name exists: left alone
            "a/2023/_other.17.log.tmp", // not this sink's prefix
            "a/2023/ev.17.log",
            "a/2023/ev.18.log",
        ]
    );
    s.stop();
}

#[test]
fn max_open_files_closes_the_least_recently_used() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = with(&[
        ("hdfs.path", format!("{}/%{{topic}}", dir.path().display())),
        ("hdfs.maxOpenFiles", "2".into()),
    ]);
    let ch = mem();
    let clock = ManualClock::new();
    let mut s = sink(&pairs(&cfg), ch.clone(), &clock);
    s.start().unwrap();
    ch.put_batch(&[ev("a", "1"), ev("b", "2"), ev("a", "3"), ev("c", "4")])
        .unwrap();
    s.process().unwrap();
    // b was least recently used when c opened.
    assert_eq!(
        files(dir.path()),
        [
            "a/FlumeData.1000001.tmp",
            "b/FlumeData.1000001",
            "c/FlumeData.1000001.tmp"
        ]
    );
    s.stop();
    assert_eq!(
        files(dir.path()),
        [
            "a/FlumeData.1000001",
            "b/FlumeData.1000001",
            "c/FlumeData.1000001"
        ]
    );
}

#[test]
fn roll_interval_closes_the_file_and_the_next_event_gets_a_new_writer() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = with(&[("hdfs.path", format!("{}", dir.path().display()))]);
    cfg.retain(|(k, _)| *k != "hdfs.rollInterval");
    cfg.push(("hdfs.rollInterval", "30".into()));
    let ch = mem();
    let clock = ManualClock::new();
    let wall = Arc::new(std::sync::atomic::AtomicI64::new(5_000));
    let w = wall.clone();
    let ctx = Context::from_pairs("a1.sinks.k1", pairs(&cfg));
    let mut s = HdfsSink::from_context("k1", &ctx, ch.clone())
        .unwrap()
        .with_clock(clock.clock())
        .with_wall_clock(Arc::new(move || w.load(Ordering::SeqCst)));
    s.start().unwrap();
    ch.put_batch(&[ev("t", "1")]).unwrap();
    s.process().unwrap();
    clock.advance(Duration::from_secs(29));
    s.process().unwrap();
    assert_eq!(files(dir.path()), ["FlumeData.5001.tmp"]);
    clock.advance(Duration::from_secs(1));
    s.process().unwrap();
    assert_eq!(files(dir.path()), ["FlumeData.5001"]);
    wall.store(9_000, Ordering::SeqCst);
    ch.put_batch(&[ev("t", "2")]).unwrap();
    s.process().unwrap();
    s.stop();
    assert_eq!(files(dir.path()), ["FlumeData.5001", "FlumeData.9001"]);
    assert_eq!(lines(dir.path()), ["1", "2"]);
}

#[test]
fn the_sink_reports_when_its_soonest_timer_fires() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = with(&[
        ("hdfs.path", format!("{}/%{{topic}}", dir.path().display())),
        ("hdfs.idleTimeout", "2".into()),
    ]);
    cfg.retain(|(k, _)| *k != "hdfs.rollInterval");
    cfg.push(("hdfs.rollInterval", "5".into()));
    let ch = mem();
    let clock = ManualClock::new();
    let mut s = sink(&pairs(&cfg), ch.clone(), &clock);
    s.start().unwrap();
    assert_eq!(s.wake_in(), None, "no open file, nothing timed");
    ch.put_batch(&[ev("a", "1")]).unwrap();
    s.process().unwrap();
    // Idle close armed at the flush (2 s), roll at the open (5 s): the idle one is sooner.
    assert_eq!(s.wake_in(), Some(Duration::from_secs(2)));
    clock.advance(Duration::from_millis(1500));
    ch.put_batch(&[ev("b", "2")]).unwrap();
    s.process().unwrap();
    // Bucket a is idle in 0.5 s, bucket b in 2 s.
    assert_eq!(s.wake_in(), Some(Duration::from_millis(500)));
    clock.advance(Duration::from_millis(700));
    assert_eq!(s.wake_in(), Some(Duration::ZERO), "overdue");
    assert_eq!(s.process().unwrap(), SinkStatus::Backoff);
    assert_eq!(
        files(dir.path()),
        ["a/FlumeData.1000001", "b/FlumeData.1000001.tmp"]
    );
    assert_eq!(s.wake_in(), Some(Duration::from_millis(1300)));
    // The next batch's flush re-arms b's idle timer (2 s), sooner than its roll (4.3 s).
    ch.put_batch(&[ev("b", "3")]).unwrap();
    s.process().unwrap();
    assert_eq!(s.wake_in(), Some(Duration::from_secs(2)));
    clock.advance(Duration::from_secs(2));
    s.process().unwrap();
    assert_eq!(s.wake_in(), None);
    s.stop();
    assert_eq!(lines(dir.path()), ["1", "2", "3"]);
}

/// On an idle channel the runner would sleep its whole backoff (here 10 minutes) between
/// `process` calls; the sink's timer ends that sleep, so the idle file is closed and renamed as
/// soon as its deadline (on the injected clock) has passed.
#[test]
fn an_idle_channel_closes_the_file_at_its_deadline_not_a_backoff_later() {
    use sluicegate::sink::processor::DefaultSinkProcessor;
    use sluicegate::sink::runner::SinkRunner;
    let dir = tempfile::tempdir().unwrap();
    let cfg = with(&[
        ("hdfs.path", format!("{}", dir.path().display())),
        ("hdfs.idleTimeout", "1".into()),
    ]);
    let ch = mem();
    let clock = ManualClock::new();
    let s = sink(&pairs(&cfg), ch.clone(), &clock);
    let counter = s.counter();
    ch.put_batch(&[ev("a", "one"), ev("a", "two")]).unwrap();
    let mut runner = SinkRunner::new("k1", Box::new(DefaultSinkProcessor::new(Box::new(s))))
        .with_backoff(Duration::from_secs(600), Duration::from_secs(600));
    runner.start().unwrap();
    let wait = |what: &str, cond: &dyn Fn() -> bool| {
        let start = std::time::Instant::now();
        while !cond() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait("the batch to commit", &|| {
        SinkCounter::get(&counter.event_drain_success) == 2
    });
    assert_eq!(files(dir.path()), ["FlumeData.1000001.tmp"]);
    clock.advance(Duration::from_secs(1));
    wait("the idle close", &|| {
        files(dir.path()) == ["FlumeData.1000001"]
    });
    assert_eq!(SinkCounter::get(&counter.connection_closed), 1);
    runner.stop();
    assert_eq!(lines(dir.path()), ["one", "two"]);
}

/// Files get the codec's extension, as Flume appends `getDefaultExtension()`; a bzip2 stream
/// holds one bzip2 stream per flush, a codec'd SequenceFile names the codec in its header.
#[test]
fn codec_files_are_named_by_the_codec_and_hold_its_streams() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = with(&[
        ("hdfs.path", format!("{}/bz", dir.path().display())),
        ("hdfs.codeC", "bzip2".into()),
        ("hdfs.batchSize", "2".into()),
    ]);
    cfg.retain(|(k, _)| *k != "hdfs.fileType");
    cfg.push(("hdfs.fileType", "CompressedStream".into()));
    let ch = mem();
    let clock = ManualClock::new();
    let mut s = sink(&pairs(&cfg), ch.clone(), &clock);
    s.start().unwrap();
    ch.put_batch(&[ev("a", "1"), ev("a", "2"), ev("a", "3")])
        .unwrap();
    while s.process().unwrap() == SinkStatus::Ready {}
    s.stop();
    assert_eq!(files(dir.path()), ["bz/FlumeData.1000001.bz2"]);
    let bytes = std::fs::read(dir.path().join("bz/FlumeData.1000001.bz2")).unwrap();
    // Two takes (batchSize 2), two flushes with data: two bzip2 streams.
    assert_eq!(bytes.windows(4).filter(|w| w == b"BZh9").count(), 2);
    let mut text = String::new();
    bzip2::read::MultiBzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "1\n2\n3\n");

    let mut cfg = with(&[
        ("hdfs.path", format!("{}/seq", dir.path().display())),
        ("hdfs.codeC", "SnappyCodec".into()),
    ]);
    cfg.retain(|(k, _)| *k != "hdfs.fileType");
    let mut s = sink(&pairs(&cfg), ch.clone(), &clock);
    s.start().unwrap();
    ch.put_batch(&[ev("a", "x")]).unwrap();
    s.process().unwrap();
    s.stop();
    let f = dir.path().join("seq/FlumeData.1000001.snappy");
    let b = std::fs::read(&f).unwrap();
    let class = b"org.apache.hadoop.io.compress.SnappyCodec";
    let at = 4 + 34 + 35;
    assert_eq!(&b[at..at + 3], &[1, 1, class.len() as u8]);
    assert_eq!(&b[at + 3..at + 3 + class.len()], class);
}

#[test]
fn the_agent_builds_the_sink_from_flumes_class_name() {
    use sluicegate::component::{ComponentType, SinkType};
    assert_eq!(
        SinkType::from_config("org.apache.flume.sink.hdfs.HDFSEventSink"),
        Some(SinkType::Hdfs)
    );
    assert_eq!(SinkType::from_config("HDFS"), Some(SinkType::Hdfs));
}

#[test]
fn an_agent_with_an_hdfs_sink_delivers_everything_and_closes_its_file_at_stop() {
    use sluicegate::agent::lifecycle::Agent;
    use sluicegate::config::SystemProps;
    use sluicegate::metrics::MetricsRegistry;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("flume.conf");
    std::fs::write(
        &conf,
        format!(
            "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
             a1.sources.r1.type = seq\na1.sources.r1.totalEvents = 1000\na1.sources.r1.channels = c1\n\
             a1.channels.c1.type = memory\na1.channels.c1.capacity = 10000\n\
             a1.sinks.k1.type = org.apache.flume.sink.hdfs.HDFSEventSink\na1.sinks.k1.channel = c1\n\
             a1.sinks.k1.hdfs.path = file://{}/out\n\
             a1.sinks.k1.hdfs.fileType = DataStream\n\
             a1.sinks.k1.hdfs.filePrefix = events\na1.sinks.k1.hdfs.fileSuffix = .log\n\
             a1.sinks.k1.hdfs.rollInterval = 0\na1.sinks.k1.hdfs.rollSize = 0\na1.sinks.k1.hdfs.rollCount = 0\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let registry = MetricsRegistry::new();
    let mut agent = Agent::start(
        &conf,
        "a1",
        SystemProps::new(),
        rt.handle().clone(),
        registry,
    )
    .unwrap();
    let out = dir.path().join("out");
    // Committed events are on disk (fdatasync before commit), in the in-use file.
    let end = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let n = std::fs::read_dir(&out)
            .map(|d| {
                d.map(|e| {
                    std::fs::read_to_string(e.unwrap().path())
                        .unwrap_or_default()
                        .lines()
                        .count()
                })
                .sum::<usize>()
            })
            .unwrap_or(0);
        if n >= 1000 {
            break;
        }
        assert!(
            std::time::Instant::now() < end,
            "only {n} of 1000 lines arrived"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let open = files(&out);
    assert_eq!(open.len(), 1);
    assert!(
        open[0].starts_with("events.") && open[0].ends_with(".log.tmp"),
        "{open:?}"
    );
    agent.stop();
    let closed = files(&out);
    assert_eq!(closed, [open[0].trim_end_matches(".tmp").to_string()]);
    let expected: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
    let got: Vec<String> = std::fs::read_to_string(out.join(&closed[0]))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn commit_behind_commits_in_order_after_the_data_and_finishes_when_idle_and_at_stop() {
    let dir = tempfile::tempdir().unwrap();
    let ch = mem();
    let clock = ManualClock::new();
    let path = format!("file://{}/out", dir.path().display());
    let cfg = with(&[
        ("hdfs.path", path),
        ("hdfs.batchSize", "10".into()),
        ("hdfs.commitBehind", "true".into()),
    ]);
    let mut s = sink(&pairs(&cfg), ch.clone(), &clock);
    s.start().unwrap();
    let evs: Vec<Event> = (0..25).map(|i| ev("t", &format!("e{i:02}"))).collect();
    ch.put_batch(&evs).unwrap();
    let drained = |s: &HdfsSink| SinkCounter::get(&s.counter().event_drain_success);
    let in_use_lines = |s: &HdfsSink| {
        let f = s.open_files();
        assert_eq!(f.len(), 1);
        std::fs::read_to_string(&f[0]).unwrap().lines().count() as u64
    };
    // Each call writes and flushes its batch before returning; its commit may still be in
    // flight, but the previous one has finished.
    assert_eq!(s.process().unwrap(), SinkStatus::Ready);
    assert_eq!(in_use_lines(&s), 10);
    assert!(drained(&s) <= 10);
    assert_eq!(s.process().unwrap(), SinkStatus::Ready);
    assert_eq!(in_use_lines(&s), 20);
    assert!((10..=20).contains(&drained(&s)), "{}", drained(&s));
    assert_eq!(s.process().unwrap(), SinkStatus::Ready);
    assert!((20..=25).contains(&drained(&s)), "{}", drained(&s));
    // An idle call waits for the last commit.
    assert_eq!(s.process().unwrap(), SinkStatus::Backoff);
    assert_eq!(drained(&s), 25);
    s.stop();
    let want: Vec<String> = (0..25).map(|i| format!("e{i:02}")).collect();
    assert_eq!(lines(&dir.path().join("out")), want);
    assert_eq!(ch.take_batch(100, Duration::ZERO).unwrap().len(), 0);
}

#[test]
fn commit_behind_a_failed_commit_surfaces_on_the_next_call_and_loses_nothing() {
    use sluicegate::channel::file::{FileChannel, FileChannelConfig};
    use sluicegate::channel::ChannelError;
    let dir = tempfile::tempdir().unwrap();
    let mut fc = FileChannelConfig::in_dir(&dir.path().join("ch"));
    fc.minimum_required_space = 1 << 20;
    let ch = Arc::new(FileChannel::open("c1", fc.clone()).unwrap());
    let want: Vec<String> = (0..20).map(|i| format!("e{i:02}")).collect();
    let evs: Vec<Event> = want.iter().map(|b| ev("t", b)).collect();
    ch.put_batch(&evs).unwrap();
    let out = dir.path().join("out");
    let cfg = with(&[
        ("hdfs.path", format!("file://{}", out.display())),
        ("hdfs.batchSize", "10".into()),
        ("hdfs.commitBehind", "true".into()),
    ]);
    let ctx = Context::from_pairs("a1.sinks.k1", pairs(&cfg));
    let clock = ManualClock::new();
    let mut s = HdfsSink::from_context("k1", &ctx, ch.clone())
        .unwrap()
        .with_clock(clock.clock())
        .with_wall_clock(Arc::new(|| 1_000_000));
    s.start().unwrap();
    // The first take's commit (its ACK's fdatasync) fails, after the batch is in its file.
    ch.inject_sync_failure();
    assert_eq!(s.process().unwrap(), SinkStatus::Ready);
    let err = s.process().expect_err("the failed commit must surface");
    assert!(
        matches!(err, SinkError::Channel(ChannelError::Unhealthy { .. })),
        "{err}"
    );
    assert_eq!(SinkCounter::get(&s.counter().event_drain_success), 0);
    s.stop();
    drop(s);
    drop(ch);
    // After a restart every event is in a final file or back in the channel: at least once.
    let written = lines(&out);
    assert!(
        want[..10].iter().all(|w| written.contains(w)),
        "the first batch was durable before its commit: {written:?}"
    );
    let ch = FileChannel::open("c1", fc).unwrap();
    let mut got = written;
    loop {
        let t = ch.take_batch(100, Duration::ZERO).unwrap();
        if t.is_empty() {
            break;
        }
        got.extend(
            t.events()
                .iter()
                .map(|e| String::from_utf8(e.body().to_vec()).unwrap()),
        );
        t.commit().unwrap();
    }
    got.sort();
    got.dedup();
    assert_eq!(got, want);
}
