//! Independent readers of the HDFS sink's files: every event written comes back exactly.
//!
//! * SequenceFiles (`writeFormat = Writable`: `LongWritable`/`BytesWritable`, and `Text`) are
//!   read by real Spark (`sc.sequenceFile`, pyspark from `compat-tests/setup_spark.sh`), one
//!   `local[1]` job over all files. Spark missing is a failure, not a skip.
//! * gzip `CompressedStream` is read by Python's `gzip` module (multi-member), `avro_event`
//!   DataStream by the PyPI `avro` package (`compat-tests/setup.sh`'s `.venv`).
//!
//! Keys (the `timestamp` header), bodies and, for Avro, headers are compared with what went in.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluicegate::channel::memory::{MemoryChannel, MemoryChannelConfig};
use sluicegate::channel::Channel;
use sluicegate::config::Context;
use sluicegate::event::Event;
use sluicegate::sink::hdfs::HdfsSink;
use sluicegate::sink::{Sink, SinkStatus};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Writes `events` through an HDFS sink into `dir` with the extra `keys`; rolls every 7 events
/// and flushes every 3, so files hold several syncs/members/blocks.
fn write(dir: &Path, keys: &[(&str, &str)], events: &[Event]) {
    let path = format!("file://{}", dir.display());
    let mut pairs: Vec<(&str, &str)> = vec![
        ("hdfs.path", &path),
        ("hdfs.rollInterval", "0"),
        ("hdfs.rollSize", "0"),
        ("hdfs.rollCount", "7"),
        ("hdfs.batchSize", "3"),
    ];
    pairs.extend_from_slice(keys);
    let ctx = Context::from_pairs("a1.sinks.k1", pairs);
    let channel = Arc::new(MemoryChannel::new(
        "c1",
        MemoryChannelConfig {
            capacity: 10_000,
            transaction_capacity: 1000,
            byte_capacity: None,
            keep_alive: Duration::from_millis(10),
        },
    ));
    let mut sink = HdfsSink::from_context("k1", &ctx, channel.clone()).unwrap();
    sink.start().unwrap();
    for chunk in events.chunks(10) {
        channel.put_batch(chunk).unwrap();
        while sink.process().unwrap() == SinkStatus::Ready {}
    }
    assert_eq!(channel.size(), 0);
    sink.stop();
    let n = std::fs::read_dir(dir).unwrap().count();
    assert!(n >= 3, "{}: {n} files", dir.display());
}

fn events(n: usize, text: bool) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let body: Vec<u8> = if text {
                format!(
                    "event {i} ünïcode, commas, \"quotes\" {}",
                    "x".repeat(i * 37)
                )
                .into_bytes()
            } else {
                (0..(i * 13) % 300)
                    .map(|j| ((i * 7 + j) % 256) as u8)
                    .collect()
            };
            let ts = (1_700_000_000_000i64 + i as i64 * 1001).to_string();
            Event::new([("timestamp", ts.as_str()), ("k", &format!("v{i}"))], body)
        })
        .collect()
}

/// `(key, body)` per event, sorted, as the readers print them: `key hexbody`.
fn expected(evs: &[Event]) -> Vec<String> {
    let mut v: Vec<String> = evs
        .iter()
        .map(|e| format!("{} {}", e.header("timestamp").unwrap(), hex(e.body())))
        .collect();
    v.sort();
    v
}

/// Bound on one reader run (Spark's JVM start-up is slow on a loaded 2-core machine).
const RUN_BOUND: Duration = Duration::from_secs(300);

/// Runs `python -c script args...` with output to files (no pipe can fill), bounded.
fn run(python: &Path, script: &str, args: &[&Path]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let (out_p, err_p) = (tmp.path().join("out"), tmp.path().join("err"));
    let mut child = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_p).unwrap())
        .stderr(std::fs::File::create(&err_p).unwrap())
        .spawn()
        .expect("running python");
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > RUN_BOUND {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} did not finish within {RUN_BOUND:?}:\n{}",
                python.display(),
                std::fs::read_to_string(&err_p).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.success(),
        "{} failed ({status}):\n{}",
        python.display(),
        std::fs::read_to_string(&err_p).unwrap_or_default()
    );
    std::fs::read_to_string(&out_p).unwrap()
}

/// Lines starting with `tag `, without the tag, sorted.
fn tagged(out: &str, tag: &str) -> Vec<String> {
    let p = format!("{tag} ");
    let mut v: Vec<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix(&p))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

const SPARK: &str = r#"
import sys
from pyspark import SparkConf, SparkContext
conf = SparkConf().setMaster("local[1]").setAppName("sluicegate-seq").set("spark.ui.enabled", "false")
sc = SparkContext(conf=conf)
sc.setLogLevel("ERROR")
for tag, d in (("writable", sys.argv[1]), ("text", sys.argv[2])):
    for k, v in sc.sequenceFile(d + "/*").collect():
        b = bytes(v) if isinstance(v, (bytes, bytearray)) else v.encode("utf-8")
        print(tag, k, b.hex())
sc.stop()
"#;

const PY: &str = r#"
import sys, os, gzip
from avro.datafile import DataFileReader
from avro.io import DatumReader
for f in sorted(os.listdir(sys.argv[1])):
    with gzip.open(os.path.join(sys.argv[1], f), "rb") as g:
        for line in g.read().split(b"\n")[:-1]:
            print("gzip", line.hex())
for f in sorted(os.listdir(sys.argv[2])):
    with DataFileReader(open(os.path.join(sys.argv[2], f), "rb"), DatumReader()) as r:
        for rec in r:
            h = rec["headers"]
            print("avro", h["timestamp"], rec["body"].hex(), h["k"], len(h))
"#;

fn spark_python() -> PathBuf {
    let dir = common::compat_dir();
    let out = Command::new("bash")
        .arg(dir.join("setup_spark.sh"))
        .stdin(Stdio::null())
        .output()
        .expect("running compat-tests/setup_spark.sh (needs bash and python3)");
    assert!(
        out.status.success(),
        "Spark is not available, so the SequenceFiles cannot be read by it: \
         compat-tests/setup_spark.sh failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join(".venv-spark/bin/python")
}

#[test]
fn spark_reads_sequence_files_back_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let (w, t) = (tmp.path().join("writable"), tmp.path().join("text"));
    let bin = events(40, false);
    let txt = events(40, true);
    write(&w, &[("hdfs.fileType", "SequenceFile")], &bin);
    write(
        &t,
        &[
            ("hdfs.fileType", "SequenceFile"),
            ("hdfs.writeFormat", "Text"),
        ],
        &txt,
    );
    let out = run(&spark_python(), SPARK, &[&w, &t]);
    assert_eq!(tagged(&out, "writable"), expected(&bin));
    assert_eq!(tagged(&out, "text"), expected(&txt));
}

#[test]
fn python_reads_gzip_and_avro_event_back_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let (g, a) = (tmp.path().join("gzip"), tmp.path().join("avro"));
    let txt = events(40, true);
    write(
        &g,
        &[
            ("hdfs.fileType", "CompressedStream"),
            ("hdfs.codeC", "gzip"),
        ],
        &txt,
    );
    let bin = events(40, false);
    write(
        &a,
        &[
            ("hdfs.fileType", "DataStream"),
            ("serializer", "avro_event"),
        ],
        &bin,
    );
    let out = run(&common::ensure_peers().python, PY, &[&g, &a]);
    let mut want_gzip: Vec<String> = txt.iter().map(|e| hex(e.body())).collect();
    want_gzip.sort();
    assert_eq!(tagged(&out, "gzip"), want_gzip);
    let mut want_avro: Vec<String> = bin
        .iter()
        .map(|e| {
            format!(
                "{} {} {} 2",
                e.header("timestamp").unwrap(),
                hex(e.body()),
                e.header("k").unwrap()
            )
        })
        .collect();
    want_avro.sort();
    assert_eq!(tagged(&out, "avro"), want_avro);
}
