//! null / logger / file_roll sinks, the failover and load_balance processors, the sink runner.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluicegate::channel::memory::{MemoryChannel, MemoryChannelConfig};
use sluicegate::channel::Channel;
use sluicegate::clock::ManualClock;
use sluicegate::config::Context;
use sluicegate::event::Event;
use sluicegate::metrics::SinkCounter;
use sluicegate::sink::file_roll::FileRollSink;
use sluicegate::sink::logger::{dump_event, LoggerSink};
use sluicegate::sink::null::NullSink;
use sluicegate::sink::processor::{
    sink_processor_from_context, DefaultSinkProcessor, FailoverSinkProcessor,
    LoadBalancingSinkProcessor, SinkProcessor,
};
use sluicegate::sink::runner::SinkRunner;
use sluicegate::sink::{Sink, SinkError, SinkStatus};

mod support;
use support::wait_until;

fn mem(cap: u64) -> Arc<MemoryChannel> {
    Arc::new(MemoryChannel::new(
        "c1",
        MemoryChannelConfig {
            capacity: cap,
            transaction_capacity: cap as usize,
            byte_capacity: None,
            keep_alive: Duration::from_millis(10),
        },
    ))
}

fn fill(c: &MemoryChannel, n: usize) {
    let evs: Vec<Event> = (0..n).map(|i| Event::from_body(i.to_string())).collect();
    c.put_batch(&evs).unwrap();
}

fn get(c: &std::sync::atomic::AtomicU64) -> u64 {
    SinkCounter::get(c)
}

// ---------------------------------------------------------------- null sink

#[test]
fn null_sink_takes_in_batches_and_counts() {
    let c = mem(1000);
    fill(&c, 250);
    let ctx = Context::from_pairs("a1.sinks.k1", [("batchSize", "100")]);
    let mut s = NullSink::from_context("k1", &ctx, c.clone()).unwrap();
    s.start().unwrap();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(s.process().unwrap());
    }
    assert_eq!(
        statuses,
        [
            SinkStatus::Ready,
            SinkStatus::Ready,
            SinkStatus::Ready,
            SinkStatus::Backoff
        ]
    );
    assert_eq!(c.size(), 0);
    let k = s.counter();
    assert_eq!(get(&k.batch_complete), 2);
    assert_eq!(get(&k.batch_underflow), 1);
    assert_eq!(get(&k.batch_empty), 1);
    assert_eq!(get(&k.event_drain_attempt), 250);
    assert_eq!(get(&k.event_drain_success), 250);
    let bad = Context::from_pairs("a1.sinks.k1", [("batchSize", "0")]);
    assert_eq!(
        NullSink::from_context("k1", &bad, c.clone())
            .err()
            .unwrap()
            .key,
        "a1.sinks.k1.batchSize"
    );
}

// ---------------------------------------------------------------- logger sink

#[test]
fn dump_event_matches_flume_format() {
    let e = Event::new([("k", "v"), ("a", "1")], b"Hello world!\r");
    assert_eq!(
        dump_event(&e, 16),
        "{ headers:{k=v, a=1} body: 48 65 6C 6C 6F 20 77 6F 72 6C 64 21 0D          Hello world!. }"
    );
    assert_eq!(
        dump_event(&Event::from_body(b"abcdef"), 2),
        "{ headers:{} body: 61 62                                           ab }"
    );
    assert_eq!(
        dump_event(&Event::from_body(b""), 16),
        "{ headers:{} body: }"
    );
    let long: Vec<u8> = (b'a'..b'a' + 18).collect();
    assert_eq!(
        dump_event(&Event::from_body(&long), 100),
        "{ headers:{} body: 61 62 63 64 65 66 67 68 69 6A 6B 6C 6D 6E 6F 70 abcdefghijklmnop\n\
         00000010 71 72                                           qr }"
    );
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn logger_sink_logs_one_event_per_transaction() {
    let c = mem(10);
    c.put_batch(&[
        Event::new([("h", "1")], "hi"),
        Event::from_body(b"\x00\x01xyz-more-than-four"),
    ])
    .unwrap();
    let ctx = Context::from_pairs("a1.sinks.k1", [("maxBytesToLog", "4")]);
    let mut s = LoggerSink::from_context("k1", &ctx, c.clone()).unwrap();
    let out = Captured::default();
    let w = out.clone();
    let sub = tracing_subscriber::fmt()
        .with_writer(move || w.clone())
        .with_ansi(false)
        .without_time()
        .finish();
    let statuses: Vec<SinkStatus> =
        tracing::subscriber::with_default(sub, || (0..3).map(|_| s.process().unwrap()).collect());
    assert_eq!(
        statuses,
        [SinkStatus::Ready, SinkStatus::Ready, SinkStatus::Backoff]
    );
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("INFO"), "{text}");
    assert!(
        lines[0].ends_with(
            "Event: { headers:{h=1} body: 68 69                                           hi }"
        ),
        "{text}"
    );
    assert!(
        lines[1].ends_with(
            "Event: { headers:{} body: 00 01 78 79                                     ..xy }"
        ),
        "{text}"
    );
    assert_eq!(c.size(), 0);
    assert_eq!(get(&s.counter().event_drain_success), 2);
}

// ---------------------------------------------------------------- file_roll sink

fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort_by_key(|p| {
        let n = p.file_name().unwrap().to_string_lossy().into_owned();
        let idx: u64 = n.rsplit('-').next().unwrap().parse().unwrap();
        idx
    });
    v
}

#[test]
fn file_roll_text_writes_bodies_with_newlines_and_flume_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("out");
    let c = mem(100);
    c.put_batch(&[
        Event::from_body("a"),
        Event::new([("h", "x")], "b"),
        Event::from_body("c"),
    ])
    .unwrap();
    let ctx = Context::from_pairs(
        "a1.sinks.k1",
        [
            ("sink.directory", d.to_str().unwrap()),
            ("sink.batchSize", "2"),
        ],
    );
    let mut s = FileRollSink::from_context("k1", &ctx, c.clone()).unwrap();
    s.start().unwrap();
    assert_eq!(s.process().unwrap(), SinkStatus::Ready);
    // Committed means on disk already.
    let f = files(&d);
    assert_eq!(f.len(), 1);
    assert_eq!(std::fs::read(&f[0]).unwrap(), b"a\nb\n");
    assert_eq!(s.process().unwrap(), SinkStatus::Ready);
    assert_eq!(s.process().unwrap(), SinkStatus::Backoff);
    s.stop();
    assert_eq!(std::fs::read(&f[0]).unwrap(), b"a\nb\nc\n");
    let name = f[0].file_name().unwrap().to_string_lossy().into_owned();
    let (millis, n) = name.split_once('-').unwrap();
    assert!(millis.parse::<u64>().unwrap() > 1_600_000_000_000, "{name}");
    assert_eq!(n, "1");
    let k = s.counter();
    assert_eq!(get(&k.event_drain_success), 3);
    assert_eq!(get(&k.connection_created), 1);
    assert_eq!(get(&k.connection_closed), 1);

    let missing = Context::from_pairs("a1.sinks.k1", [("sink.rollInterval", "0")]);
    assert_eq!(
        FileRollSink::from_context("k1", &missing, c.clone())
            .err()
            .unwrap()
            .key,
        "a1.sinks.k1.sink.directory"
    );
}

#[test]
fn file_roll_text_without_newline_and_never_rolling() {
    let dir = tempfile::tempdir().unwrap();
    let c = mem(100);
    let ctx = Context::from_pairs(
        "a1.sinks.k1",
        [
            ("sink.directory", dir.path().to_str().unwrap()),
            ("sink.rollInterval", "0"),
            ("sink.serializer", "text"),
            ("sink.serializer.appendNewline", "false"),
            ("sink.pathManager.prefix", "ev-"),
            ("sink.pathManager.extension", "log"),
        ],
    );
    let mut s = FileRollSink::from_context("k1", &ctx, c.clone()).unwrap();
    s.start().unwrap();
    c.put_batch(&[Event::from_body("x"), Event::from_body("y")])
        .unwrap();
    s.process().unwrap();
    c.put_batch(&[Event::from_body("z")]).unwrap();
    s.process().unwrap();
    let path = s.current_file().unwrap().to_path_buf();
    s.stop();
    let all: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(all.len(), 1);
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("ev-") && name.ends_with("-1.log"),
        "{name}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"xyz");
}

/// Sorted headers and body of one Avro `Event` record.
type Record = (Vec<(String, String)>, Vec<u8>);

#[test]
fn file_roll_avro_event_reads_back_with_apache_avro() {
    use apache_avro::types::Value;
    let dir = tempfile::tempdir().unwrap();
    let c = mem(100);
    let evs = vec![
        Event::new([("host", "h1"), ("n", "1")], b"\x00\xffbin"),
        Event::from_body("plain"),
    ];
    c.put_batch(&evs).unwrap();
    let ctx = Context::from_pairs(
        "a1.sinks.k1",
        [
            ("sink.directory", dir.path().to_str().unwrap()),
            ("sink.serializer", "avro_event"),
        ],
    );
    let mut s = FileRollSink::from_context("k1", &ctx, c.clone()).unwrap();
    s.start().unwrap();
    assert_eq!(s.process().unwrap(), SinkStatus::Ready);
    let path = s.current_file().unwrap().to_path_buf();

    let read = |path: &std::path::Path| -> Vec<Record> {
        let f = std::fs::File::open(path).unwrap();
        let r = apache_avro::Reader::new(f).unwrap();
        match r.writer_schema() {
            apache_avro::Schema::Record(rec) => assert_eq!(rec.name.name, "Event"),
            other => panic!("unexpected schema {other:?}"),
        }
        r.map(|v| match v.unwrap() {
            Value::Record(fields) => {
                let mut headers = Vec::new();
                let mut body = Vec::new();
                for (name, val) in fields {
                    match (name.as_str(), val) {
                        ("headers", Value::Map(m)) => {
                            for (k, v) in m {
                                match v {
                                    Value::String(s) => headers.push((k, s)),
                                    other => panic!("header value {other:?}"),
                                }
                            }
                        }
                        ("body", Value::Bytes(b)) => body = b,
                        other => panic!("unexpected field {other:?}"),
                    }
                }
                headers.sort();
                (headers, body)
            }
            other => panic!("not a record: {other:?}"),
        })
        .collect()
    };
    // Readable before stop: the committed batch is flushed and synced.
    let want = vec![
        (
            vec![
                ("host".to_string(), "h1".to_string()),
                ("n".to_string(), "1".to_string()),
            ],
            b"\x00\xffbin".to_vec(),
        ),
        (vec![], b"plain".to_vec()),
    ];
    assert_eq!(read(&path), want);
    c.put_batch(&[Event::from_body("third")]).unwrap();
    s.process().unwrap();
    s.stop();
    let got = read(&path);
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].1, b"third");

    let bad = Context::from_pairs(
        "a1.sinks.k1",
        [
            ("sink.directory", "/tmp"),
            ("sink.serializer", "avro_event"),
            ("sink.serializer.compressionCodec", "lzo"),
        ],
    );
    assert!(FileRollSink::from_context("k1", &bad, c.clone()).is_err());
}

#[test]
fn file_roll_rolls_by_interval() {
    let dir = tempfile::tempdir().unwrap();
    let c = mem(100);
    let ctx = Context::from_pairs(
        "a1.sinks.k1",
        [
            ("sink.directory", dir.path().to_str().unwrap()),
            ("sink.rollInterval", "1"),
        ],
    );
    // The interval is timed with a manual clock: the test steps exactly to the deadline, so
    // neither a slow machine nor a fast one changes what it sees.
    let clock = ManualClock::new();
    let mut s = FileRollSink::from_context("k1", &ctx, c.clone())
        .unwrap()
        .with_clock(clock.clock());
    s.start().unwrap();
    c.put_batch(&[Event::from_body("first")]).unwrap();
    s.process().unwrap();
    let first = s.current_file().unwrap().to_path_buf();
    // Just before the interval is over: same file.
    clock.advance(Duration::from_millis(999));
    c.put_batch(&[Event::from_body("more")]).unwrap();
    s.process().unwrap();
    assert_eq!(s.current_file().unwrap(), first, "no roll before 1 s");
    // At the interval: the next process rolls.
    clock.advance(Duration::from_millis(1));
    c.put_batch(&[Event::from_body("second")]).unwrap();
    s.process().unwrap();
    let second = s.current_file().unwrap().to_path_buf();
    s.stop();
    assert_ne!(first, second);
    let f = files(dir.path());
    assert_eq!(f, vec![first.clone(), second.clone()]);
    assert!(second.to_string_lossy().ends_with("-2"));
    assert_eq!(std::fs::read(&first).unwrap(), b"first\nmore\n");
    assert_eq!(std::fs::read(&second).unwrap(), b"second\n");
    assert_eq!(get(&s.counter().connection_closed), 2);
}

// ---------------------------------------------------------------- sink processors

/// A sink that succeeds or fails on command and records its calls.
struct Probe {
    name: String,
    fail: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
    log: Arc<Mutex<Vec<String>>>,
    counter: Arc<SinkCounter>,
}

struct ProbeHandle {
    fail: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

fn probe(name: &str, log: &Arc<Mutex<Vec<String>>>) -> (Box<dyn Sink>, ProbeHandle) {
    let fail = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    (
        Box::new(Probe {
            name: name.into(),
            fail: fail.clone(),
            calls: calls.clone(),
            log: log.clone(),
            counter: Arc::new(SinkCounter::new(name)),
        }),
        ProbeHandle { fail, calls },
    )
}

impl Sink for Probe {
    fn name(&self) -> &str {
        &self.name
    }
    fn process(&mut self) -> Result<SinkStatus, SinkError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.log.lock().unwrap().push(self.name.clone());
        if self.fail.load(Ordering::SeqCst) {
            Err(SinkError::Delivery {
                sink: self.name.clone(),
                message: "probe told to fail".into(),
            })
        } else {
            Ok(SinkStatus::Ready)
        }
    }
    fn counter(&self) -> Arc<SinkCounter> {
        self.counter.clone()
    }
}

fn take_log(log: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[test]
fn failover_switches_on_failure_and_returns_after_penalty() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (k1, h1) = probe("k1", &log);
    let (k2, h2) = probe("k2", &log);
    let (k3, _h3) = probe("k3", &log);
    let ctx = Context::from_pairs(
        "a1.sinkgroups.g1.processor",
        [
            ("priority.k1", "10"),
            ("priority.k2", "5"),
            ("maxpenalty", "40"),
        ],
    );
    // Penalties are timed with a manual clock: "k1 sits out its penalty" holds however slow
    // the machine is, and the retry happens exactly when the penalty is over.
    let clock = ManualClock::new();
    let mut p = FailoverSinkProcessor::from_context("g1", &ctx, vec![k2, k1, k3])
        .unwrap()
        .with_clock(clock.clock());
    p.start().unwrap();
    assert_eq!(p.active_sink(), Some("k1"));
    p.process().unwrap();
    assert_eq!(take_log(&log), ["k1"]);

    h1.fail.store(true, Ordering::SeqCst);
    assert_eq!(p.process().unwrap(), SinkStatus::Ready);
    assert_eq!(take_log(&log), ["k1", "k2"]);
    assert_eq!(p.active_sink(), Some("k2"));
    // k1 sits out its penalty (maxpenalty = 40 ms caps Flume's 2 s).
    p.process().unwrap();
    assert_eq!(take_log(&log), ["k2"]);
    clock.advance(Duration::from_millis(39));
    p.process().unwrap();
    assert_eq!(take_log(&log), ["k2"], "1 ms of penalty left");

    // Still failing after the penalty: retried, penalized again, k2 keeps working.
    clock.advance(Duration::from_millis(1));
    p.process().unwrap();
    assert_eq!(take_log(&log), ["k1", "k2"]);
    clock.advance(Duration::from_millis(39));
    p.process().unwrap();
    assert_eq!(take_log(&log), ["k2"], "penalized again");

    h1.fail.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_millis(1));
    assert_eq!(p.process().unwrap(), SinkStatus::Ready);
    assert_eq!(take_log(&log), ["k1"]);
    assert_eq!(p.active_sink(), Some("k1"));
    p.process().unwrap();
    assert_eq!(take_log(&log), ["k1"]);
    assert!(h2.calls.load(Ordering::SeqCst) >= 2);
}

#[test]
fn failover_penalty_doubles_per_failure_up_to_maxpenalty() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (k1, h1) = probe("k1", &log);
    let (k2, _h2) = probe("k2", &log);
    let ctx = Context::from_pairs(
        "a1.sinkgroups.g1.processor",
        [
            ("priority.k1", "10"),
            ("priority.k2", "5"),
            ("maxpenalty", "5000"),
        ],
    );
    let clock = ManualClock::new();
    let mut p = FailoverSinkProcessor::from_context("g1", &ctx, vec![k1, k2])
        .unwrap()
        .with_clock(clock.clock());
    h1.fail.store(true, Ordering::SeqCst);
    p.process().unwrap();
    assert_eq!(take_log(&log), ["k1", "k2"]);
    // 1000 ms · 2^failures: 2 s, then 4 s, then capped at maxpenalty = 5 s.
    for penalty in [2000, 4000, 5000, 5000] {
        clock.advance(Duration::from_millis(penalty - 1));
        p.process().unwrap();
        assert_eq!(take_log(&log), ["k2"], "{penalty} ms penalty not over");
        clock.advance(Duration::from_millis(1));
        p.process().unwrap();
        assert_eq!(take_log(&log), ["k1", "k2"], "retried after {penalty} ms");
    }
    h1.fail.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_millis(5000));
    p.process().unwrap();
    assert_eq!(take_log(&log), ["k1"]);
    assert_eq!(p.active_sink(), Some("k1"));
}

#[test]
fn failover_fails_when_every_sink_fails() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (k1, h1) = probe("k1", &log);
    let (k2, h2) = probe("k2", &log);
    h1.fail.store(true, Ordering::SeqCst);
    h2.fail.store(true, Ordering::SeqCst);
    let ctx = Context::from_pairs("a1.sinkgroups.g1", [("processor.type", "failover")]);
    let mut p = sink_processor_from_context("g1", &ctx, vec![k1, k2]).unwrap();
    let err = p.process().unwrap_err();
    assert!(
        err.to_string().contains("nothing left to failover"),
        "{err}"
    );
    // Unset priorities: list order wins (k1 = -1 > k2 = -2).
    assert_eq!(take_log(&log), ["k1", "k2"]);

    let bad = Context::from_pairs(
        "a1.sinkgroups.g1",
        [
            ("processor.type", "failover"),
            ("processor.priority.k1", "hi"),
        ],
    );
    let (k1, _) = probe("k1", &log);
    let err = sink_processor_from_context("g1", &bad, vec![k1])
        .err()
        .unwrap();
    assert_eq!(err.key, "a1.sinkgroups.g1.processor.priority.k1");
}

#[test]
fn load_balance_round_robin_distributes_and_falls_through() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (k1, _h1) = probe("k1", &log);
    let (k2, h2) = probe("k2", &log);
    let (k3, _h3) = probe("k3", &log);
    let ctx = Context::from_pairs("a1.sinkgroups.g1", [("processor.type", "load_balance")]);
    let mut p = sink_processor_from_context("g1", &ctx, vec![k1, k2, k3]).unwrap();
    p.start().unwrap();
    for _ in 0..6 {
        p.process().unwrap();
    }
    assert_eq!(take_log(&log), ["k1", "k2", "k3", "k1", "k2", "k3"]);

    // Without backoff a failing sink is tried on its turn and the next one takes over.
    h2.fail.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        p.process().unwrap();
    }
    assert_eq!(take_log(&log), ["k1", "k2", "k3", "k3"]);
    p.stop();
}

#[test]
fn load_balance_backoff_skips_failed_sinks_and_random_covers_all() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (k1, h1) = probe("k1", &log);
    let (k2, h2) = probe("k2", &log);
    let ctx = Context::from_pairs(
        "a1.sinkgroups.g1.processor",
        [("backoff", "true"), ("selector.maxTimeOut", "10000")],
    );
    let mut p = LoadBalancingSinkProcessor::from_context("g1", &ctx, vec![k1, k2]).unwrap();
    h1.fail.store(true, Ordering::SeqCst);
    for _ in 0..4 {
        p.process().unwrap();
    }
    // k1 fails once, then is skipped while backed off.
    assert_eq!(take_log(&log), ["k1", "k2", "k2", "k2", "k2"]);
    h2.fail.store(true, Ordering::SeqCst);
    assert!(p.process().is_err());

    let (a, ha) = probe("a", &log);
    let (b, hb) = probe("b", &log);
    let (c, hc) = probe("c", &log);
    let ctx = Context::from_pairs("a1.sinkgroups.g2.processor", [("selector", "random")]);
    let mut p = LoadBalancingSinkProcessor::from_context("g2", &ctx, vec![a, b, c]).unwrap();
    for _ in 0..60 {
        p.process().unwrap();
    }
    let calls = [&ha, &hb, &hc].map(|h| h.calls.load(Ordering::SeqCst));
    assert_eq!(calls.iter().sum::<usize>(), 60);
    assert!(calls.iter().all(|&n| n > 0), "{calls:?}");

    let (one, _) = probe("one", &log);
    let ctx = Context::from_pairs("a1.sinkgroups.g3", [("processor.type", "load_balance")]);
    assert!(sink_processor_from_context("g3", &ctx, vec![one]).is_err());
}

// ---------------------------------------------------------------- runner

#[test]
fn runner_drains_the_channel_and_stops() {
    let c = mem(1000);
    fill(&c, 500);
    let ctx = Context::from_pairs("a1.sinks.k1", [("batchSize", "50")]);
    let sink = NullSink::from_context("k1", &ctx, c.clone()).unwrap();
    let counter = sink.counter();
    let mut r = SinkRunner::new("k1", Box::new(DefaultSinkProcessor::new(Box::new(sink))))
        .with_backoff(Duration::from_millis(5), Duration::from_millis(20));
    r.start().unwrap();
    assert!(r.is_running());
    wait_until("drained", || c.size() == 0);
    // More events while idle-backing-off are picked up too.
    fill(&c, 10);
    wait_until("drained again", || c.size() == 0);
    r.stop();
    assert!(!r.is_running());
    assert_eq!(get(&counter.event_drain_success), 510);
    assert!(r.stats().backoffs >= 1);
}

#[test]
fn runner_stop_interrupts_a_long_backoff_sleep() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (k1, h1) = probe("k1", &log);
    h1.fail.store(true, Ordering::SeqCst);
    let mut r = SinkRunner::new("k1", Box::new(DefaultSinkProcessor::new(k1)))
        .with_backoff(Duration::from_secs(60), Duration::from_secs(600));
    r.start().unwrap();
    wait_until("first failure", || h1.calls.load(Ordering::SeqCst) == 1);
    let t = Instant::now();
    r.stop();
    // The runner was in a 600 s error sleep; stop must not wait it out.
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert_eq!(h1.calls.load(Ordering::SeqCst), 1);
    assert_eq!(r.stats().errors, 1);
}
