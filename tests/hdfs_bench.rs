//! `bench --hdfs` end to end, small: Avro clients → Avro source → file channel → HDFS sink, and
//! the files read back hold every event exactly once. No timing is asserted (speed is the
//! benchmark's job, docs/performance.md).

use sluicegate::tools::hdfs_bench::{run, HdfsBenchOptions};

fn bench(
    events: u64,
    settings: &[(&str, &str)],
    staged: bool,
) -> sluicegate::tools::hdfs_bench::HdfsBenchReport {
    let dir = tempfile::tempdir().unwrap();
    let mut o = HdfsBenchOptions::new(dir.path().join("run"));
    o.events = events;
    o.call_size = 500;
    o.connections = 3;
    o.staged = staged;
    o.sink_settings = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let r = run(&o).unwrap();
    assert_eq!(r.sent, events, "{r}");
    assert!(r.verified(), "{r}");
    assert_eq!((r.records, r.distinct), (events, events), "{r}");
    assert_eq!(r.to_json()["verified"], true);
    r
}

#[test]
fn datastream_text_holds_every_event_once() {
    let r = bench(20_000, &[("hdfs.batchSize", "1000")], false);
    assert_eq!(r.files, 1, "{r}");
    assert_eq!(r.file_bytes, 20_000 * 257, "{r}");
}

#[test]
fn datastream_at_flumes_default_batch_size_with_count_rolls() {
    // hdfs.batchSize 100 (Flume's default) and a roll every 3000 events: 7 files.
    let r = bench(20_000, &[("hdfs.rollCount", "3000")], false);
    assert_eq!(r.files, 7, "{r}");
}

#[test]
fn sequence_files_writable_and_text_hold_every_event_once() {
    for wf in ["Writable", "Text"] {
        bench(
            20_000,
            &[
                ("hdfs.fileType", "SequenceFile"),
                ("hdfs.writeFormat", wf),
                ("hdfs.batchSize", "1000"),
                // Several files: the size roll checks the body bytes.
                ("hdfs.rollSize", "2000000"),
            ],
            false,
        );
    }
}

#[test]
fn gzip_compressed_stream_staged_holds_every_event_once() {
    let r = bench(
        20_000,
        &[
            ("hdfs.fileType", "CompressedStream"),
            ("hdfs.codeC", "gzip"),
            ("hdfs.batchSize", "1000"),
        ],
        true,
    );
    assert!(
        r.file_bytes < 20_000 * 257 / 10,
        "gzip of repetitive bodies is small: {r}"
    );
}

#[test]
fn time_bucketed_paths_are_read_back_from_every_directory() {
    let r = bench(
        20_000,
        &[
            ("hdfs.path", "%Y-%m-%d/%H"),
            ("hdfs.filePrefix", "ev-%{host}"),
            ("hdfs.batchSize", "1000"),
        ],
        false,
    );
    assert_eq!(r.files, 1, "{r}");
}

#[test]
fn commit_behind_holds_every_event_once() {
    for ft in ["DataStream", "SequenceFile"] {
        bench(
            20_000,
            &[("hdfs.fileType", ft), ("hdfs.commitBehind", "true")],
            false,
        );
    }
}

#[test]
fn the_command_prints_a_verified_json_report_and_refuses_a_non_empty_dir() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluicegate"))
        .args(["bench", "--hdfs", "--events", "5000", "--connections", "2"])
        .args([
            "--file-type",
            "SequenceFile",
            "--hdfs-batch-size",
            "1000",
            "--json",
        ])
        .arg("--dir")
        .arg(&run_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(v["records"], 5000, "{v}");
    assert_eq!(v["sink"]["hdfs.fileType"], "SequenceFile", "{v}");
    // The directory now holds the run: a second run there is refused.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_sluicegate"))
        .args(["bench", "--hdfs", "--events", "10", "--dir"])
        .arg(&run_dir)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
}
