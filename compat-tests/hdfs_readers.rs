//! Independent readers of the HDFS sink's files: every event written comes back exactly.
//!
//! * SequenceFiles (`writeFormat = Writable`: `LongWritable`/`BytesWritable`, and `Text`;
//!   uncompressed and block-compressed with every codec: bzip2, snappy, lz4, deflate, gzip) are
//!   read by real Spark (`sc.sequenceFile`, pyspark from `compat-tests/setup_spark.sh`, whose
//!   Hadoop 3.3.4 client reads snappy and lz4 through snappy-java and lz4-java, no native
//!   libraries), and so are the `CompressedStream` files of those codecs (`sc.textFile`, which
//!   picks Hadoop's codec by the file's extension: `.bz2`, `.snappy`, `.lz4`, `.deflate`), one
//!   `local[1]` job over all of them. Spark missing is a failure, not a skip.
//! * gzip `CompressedStream` is read by Python's `gzip` module (multi-member), bzip2 by `bz2`
//!   (multi-stream), deflate by `zlib` (one zlib stream after another), snappy and lz4 by a
//!   reader of Hadoop's block framing written here on PyPI `cramjam`'s raw snappy and raw LZ4
//!   block decoders, `avro_event` DataStream by the PyPI `avro` package (`compat-tests/setup.sh`'s
//!   `.venv`).
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

/// Arguments `tag=kind=dir`: kind `seq` reads SequenceFiles, `text` lines (any codec).
const SPARK: &str = r#"
import sys
from pyspark import SparkConf, SparkContext
conf = SparkConf().setMaster("local[1]").setAppName("sluicegate-seq").set("spark.ui.enabled", "false")
sc = SparkContext(conf=conf)
sc.setLogLevel("ERROR")
for arg in sys.argv[1:]:
    tag, kind, d = arg.split("=", 2)
    if kind == "seq":
        for k, v in sc.sequenceFile(d + "/*").collect():
            b = bytes(v) if isinstance(v, (bytes, bytearray)) else v.encode("utf-8")
            print(tag, k, b.hex())
    else:
        for line in sc.textFile(d + "/*").collect():
            print(tag, line.encode("utf-8").hex())
sc.stop()
"#;

const PY: &str = r#"
import sys, os, gzip, bz2, zlib, struct
import cramjam
from avro.datafile import DataFileReader
from avro.io import DatumReader
def lines(tag, data):
    for line in data.split(b"\n")[:-1]:
        print(tag, line.hex())
def hadoop_blocks(data, raw):
    # Hadoop's BlockCompressorStream: int32 BE total, then int32 BE length + chunk until total.
    out, i = bytearray(), 0
    while i < len(data):
        (total,) = struct.unpack_from(">I", data, i); i += 4
        assert total > 0, "an empty block ends the file for Hadoop's reader"
        got = 0
        while got < total:
            (n,) = struct.unpack_from(">I", data, i); i += 4
            chunk = raw(data[i:i + n], total - got); i += n
            got += len(chunk)
            out += chunk
        assert got == total
    return bytes(out)
def zlib_streams(data):
    out = b""
    while data:
        d = zlib.decompressobj()
        out += d.decompress(data)
        assert d.eof
        data = d.unused_data
    return out
snappy = lambda c, n: bytes(cramjam.snappy.decompress_raw(c))
# cramjam's LZ4 block decoder needs the exact output size: every chunk but a block's last holds
# Hadoop's LZ4 MAX_INPUT (256 KiB buffer - 256 KiB / 255 - 16) bytes.
lz4 = lambda c, n: bytes(cramjam.lz4.decompress_block(c, output_len=min(n, 262144 - 262144 // 255 - 16)))
for tag, d, ext, read in (
    ("gzip", sys.argv[1], ".gz", lambda b: gzip.decompress(b)),
    ("bzip2", sys.argv[3], ".bz2", lambda b: bz2.decompress(b)),
    ("snappy", sys.argv[4], ".snappy", lambda b: hadoop_blocks(b, snappy)),
    ("lz4", sys.argv[5], ".lz4", lambda b: hadoop_blocks(b, lz4)),
    ("deflate", sys.argv[6], ".deflate", zlib_streams),
):
    for f in sorted(os.listdir(d)):
        assert f.endswith(ext), f
        with open(os.path.join(d, f), "rb") as g:
            lines(tag, read(g.read()))
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

/// The codecs Spark's Hadoop client reads without native libraries.
const CODECS: [&str; 5] = ["bzip2", "snappy", "lz4", "deflate", "gzip"];

#[test]
fn spark_reads_sequence_files_and_compressed_streams_back_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = events(40, false);
    let txt = events(40, true);
    // (tag, kind, dir, events)
    let mut jobs: Vec<(String, &str, PathBuf, &[Event])> = Vec::new();
    let w = tmp.path().join("writable");
    write(&w, &[("hdfs.fileType", "SequenceFile")], &bin);
    jobs.push(("writable".into(), "seq", w, &bin));
    let t = tmp.path().join("text");
    write(
        &t,
        &[
            ("hdfs.fileType", "SequenceFile"),
            ("hdfs.writeFormat", "Text"),
        ],
        &txt,
    );
    jobs.push(("text".into(), "seq", t, &txt));
    for codec in CODECS {
        // Block-compressed SequenceFiles, Writable and Text values.
        let d = tmp.path().join(format!("seq-{codec}"));
        write(&d, &[("hdfs.codeC", codec)], &bin);
        jobs.push((format!("seq-{codec}"), "seq", d, &bin));
        let d = tmp.path().join(format!("seqtext-{codec}"));
        write(
            &d,
            &[("hdfs.codeC", codec), ("hdfs.writeFormat", "Text")],
            &txt,
        );
        jobs.push((format!("seqtext-{codec}"), "seq", d, &txt));
        if codec != "gzip" {
            // CompressedStream (gzip's is read by Python below).
            let d = tmp.path().join(format!("stream-{codec}"));
            write(
                &d,
                &[("hdfs.fileType", "CompressedStream"), ("hdfs.codeC", codec)],
                &txt,
            );
            jobs.push((format!("stream-{codec}"), "text", d, &txt));
        }
    }
    let args: Vec<String> = jobs
        .iter()
        .map(|(tag, kind, d, _)| format!("{tag}={kind}={}", d.display()))
        .collect();
    let arg_paths: Vec<&Path> = args.iter().map(Path::new).collect();
    let out = run(&spark_python(), SPARK, &arg_paths);
    for (tag, kind, _, evs) in &jobs {
        let want = if *kind == "seq" {
            expected(evs)
        } else {
            let mut v: Vec<String> = evs.iter().map(|e| hex(e.body())).collect();
            v.sort();
            v
        };
        assert_eq!(tagged(&out, tag), want, "{tag}");
    }
}

#[test]
fn python_reads_compressed_streams_and_avro_event_back_exactly() {
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
    let mut dirs = vec![g, a];
    // Two bodies larger than a snappy/LZ4 block's input (218422 / 261100 bytes): blocks of
    // several chunks.
    let mut big = txt.clone();
    for (i, n) in [(0usize, 300_000usize), (1, 700_000)] {
        let ts = (1_800_000_000_000i64 + i as i64).to_string();
        let body = format!("big {i} {}", "y".repeat(n));
        big.push(Event::new([("timestamp", ts.as_str())], body));
    }
    for codec in ["bzip2", "snappy", "lz4", "deflate"] {
        let d = tmp.path().join(codec);
        write(
            &d,
            &[("hdfs.fileType", "CompressedStream"), ("hdfs.codeC", codec)],
            &big,
        );
        dirs.push(d);
    }
    let dir_refs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    let out = run(&common::ensure_peers().python, PY, &dir_refs);
    let want = |evs: &[Event]| {
        let mut v: Vec<String> = evs.iter().map(|e| hex(e.body())).collect();
        v.sort();
        v
    };
    assert_eq!(tagged(&out, "gzip"), want(&txt));
    for tag in ["bzip2", "snappy", "lz4", "deflate"] {
        assert_eq!(tagged(&out, tag), want(&big), "{tag}");
    }
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
