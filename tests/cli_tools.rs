//! `sluicegate bench` and `sluicegate channel inspect` through the binary, as users run them:
//! bad values are refused with a clear message, `--set` options reach the in-process source,
//! `--json`/the table carry the figures, and inspect finds (or asks for) the ledger.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use sluicegate::channel::file::{FileChannel, FileChannelConfig};
use sluicegate::channel::Channel;
use sluicegate::Event;

const BIN: &str = env!("CARGO_BIN_EXE_sluicegate");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn bench_refuses_zero_batch_size_connections_and_events() {
    for (flag, value) in [
        ("--batch-size", "0"),
        ("--connections", "0"),
        ("--events", "0"),
        ("--rate", "0"),
        ("--rate", "-5"),
    ] {
        let arg = format!("{flag}={value}");
        let out = run(&["bench", &arg]);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{flag} {value} accepted");
        assert!(err.contains(flag), "{flag} {value}: {err}");
        assert!(
            err.contains("must be at least 1") || err.contains("must be a positive number"),
            "{flag} {value}: {err}"
        );
        assert!(out.stdout.is_empty(), "nothing measured for {flag} {value}");
    }
}

#[test]
fn bench_applies_compression_to_the_in_process_source_and_prints_json() {
    let out = run(&[
        "bench",
        "--events",
        "3000",
        "--batch-size",
        "100",
        "--connections",
        "2",
        "--set",
        "compression-type=deflate",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["events"], 3000);
    assert_eq!(j["calls"], 30);
    assert_eq!(j["errors"], 0);
    assert!(j["events_per_sec"].as_f64().unwrap() > 0.0);
    let lat = &j["latency_us"];
    assert!(lat["p50"].as_u64().unwrap() <= lat["p99.9"].as_u64().unwrap());
    assert!(lat["p99.9"].as_u64().unwrap() <= lat["max"].as_u64().unwrap());
}

#[test]
fn bench_refuses_client_settings_the_in_process_source_cannot_match() {
    let out = run(&["bench", "--events", "100", "--set", "ssl=true"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("ssl=true") && err.contains("--target"),
        "{err}"
    );
    let out = run(&["bench", "--events", "100", "--set", "nonsense"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("expected KEY=VALUE"));
}

#[test]
fn bench_open_loop_keeps_the_schedule_and_prints_the_table() {
    // 2,000 events in calls of 100 at 10,000 events/s: call k is due at k × 10 ms, so the
    // last of the 20 calls cannot start before 190 ms, however fast the target answers.
    let out = run(&[
        "bench",
        "--events",
        "2000",
        "--batch-size",
        "100",
        "--connections",
        "2",
        "--rate",
        "10000",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    for row in [
        "events ",
        "events/s",
        "MB/s (body)",
        "offered events/s",
        "latency p50",
        "latency p90",
        "latency p99 ",
        "latency p99.9",
        "latency max",
        "errors",
    ] {
        assert!(table.contains(row), "{row} missing:\n{table}");
    }
    let elapsed: f64 = table
        .lines()
        .find(|l| l.starts_with("elapsed"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(
        elapsed >= 0.19,
        "open loop finished in {elapsed} s:\n{table}"
    );
}

fn make_channel(ck: &Path, data: &Path) {
    let cfg = FileChannelConfig {
        checkpoint_dir: ck.to_path_buf(),
        data_dirs: vec![data.to_path_buf()],
        minimum_required_space: 1 << 20,
        keep_alive: Duration::from_millis(20),
        ..FileChannelConfig::default()
    };
    let c = FileChannel::open("c1", cfg).unwrap();
    let evs: Vec<Event> = (0..20)
        .map(|i| Event::from_body(format!("e{i}").as_bytes()))
        .collect();
    c.put_batch(&evs).unwrap();
    c.close().unwrap();
}

#[test]
fn inspect_finds_the_sibling_checkpoint_directory_and_ends_with_a_newline() {
    let dir = tempfile::tempdir().unwrap();
    let (ck, data) = (dir.path().join("checkpoint"), dir.path().join("data"));
    make_channel(&ck, &data);
    let out = run(&["channel", "inspect", data.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("events held at the checkpoint: 20"),
        "{stdout}"
    );
    assert!(stdout.contains("1 segment(s)"), "{stdout}");
    assert!(stdout.ends_with("all checks passed\n"), "{stdout:?}");
}

#[test]
fn inspect_of_a_checkpoint_directory_says_what_to_pass() {
    let dir = tempfile::tempdir().unwrap();
    let (ck, data) = (dir.path().join("checkpoint"), dir.path().join("data"));
    make_channel(&ck, &data);
    let out = run(&["channel", "inspect", ck.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no report: {}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("is a checkpoint directory"), "{err}");
    let data_abs = data.canonicalize().unwrap();
    let hint = format!(
        "sluicegate channel inspect {} --checkpoint-dir {}",
        data_abs.display(),
        ck.display()
    );
    assert!(err.contains(&hint), "{err}\nwanted: {hint}");
    assert!(err.ends_with('\n'));
}

#[test]
fn inspect_of_segments_without_a_findable_ledger_asks_for_the_checkpoint_dir() {
    let dir = tempfile::tempdir().unwrap();
    // Unusual layout: the ledger is not a sibling of the data directory.
    let (ck, data) = (dir.path().join("a/ck"), dir.path().join("b/logs"));
    make_channel(&ck, &data);
    let out = run(&["channel", "inspect", data.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("no ledger") && err.contains("--checkpoint-dir"),
        "{err}"
    );
    // With the flag it works.
    let out = run(&[
        "channel",
        "inspect",
        data.to_str().unwrap(),
        "--checkpoint-dir",
        ck.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stdout).ends_with("all checks passed\n"));
}

#[test]
fn agent_and_check_say_what_is_missing_and_refuse_a_bad_summary_interval() {
    let out = run(&["check", "-n", "a1"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("-f/--conf-file and -n/--name are required"));
    let out = run(&["agent", "-f", "examples/hop.conf"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("-n/--name is required with -f"));
    let out = run(&["agent", "-n", "b1"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("the built-in demo's agent is a1"));
    let out = run(&[
        "agent",
        "-n",
        "a1",
        "-f",
        "examples/hop.conf",
        "-Dsluicegate.summary.interval=fast",
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("sluicegate.summary.interval=fast"), "{err}");
}
