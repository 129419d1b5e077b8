//! The `sluicegate` binary as users run it: `agent` with a flume.conf, SIGTERM, restart.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluicegate::channel::file::inspect_dirs;

mod support;
use support::{lines_in, BIN};

fn channel_and_sink(d: &Path) -> String {
    format!(
        "a1.channels = c1\n\
         a1.sinks = k1\n\
         a1.channels.c1.type = file\n\
         a1.channels.c1.checkpointDir = {d}/cp\n\
         a1.channels.c1.dataDirs = {d}/data\n\
         a1.channels.c1.transactionCapacity = 1000\n\
         a1.channels.c1.minimumRequiredSpace = 1048576\n\
         a1.sinks.k1.type = file_roll\n\
         a1.sinks.k1.sink.directory = {d}/out\n\
         a1.sinks.k1.sink.rollInterval = 0\n\
         a1.sinks.k1.sink.batchSize = 37\n\
         a1.sinks.k1.channel = c1\n",
        d = d.display()
    )
}

fn wait_exit(child: &mut std::process::Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    None
}

#[test]
fn sigterm_mid_stream_loses_no_committed_event_and_a_restart_drains_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("out")).unwrap();
    let conf = d.join("flume.conf");
    std::fs::write(
        &conf,
        format!(
            "a1.sources = r1\n\
             a1.sources.r1.type = seq\n\
             a1.sources.r1.batchSize = 500\n\
             a1.sources.r1.channels = c1\n{}",
            channel_and_sink(d)
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["agent", "-n", "a1", "-f"])
        .arg(&conf)
        .arg("--no-reload-conf")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Let events flow for a while, then ask for a graceful stop.
    let end = Instant::now() + Duration::from_secs(20);
    while lines_in(&d.join("out")).len() < 5000 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status =
        wait_exit(&mut child, Duration::from_secs(20)).expect("the agent must exit after SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    let first_run = lines_in(&d.join("out")).len();
    assert!(
        first_run >= 5000,
        "only {first_run} events were delivered before SIGTERM"
    );

    // What the channel still holds after the graceful stop (its closing checkpoint says).
    let held = |what: &str| {
        inspect_dirs(&d.join("cp"), &d.join("data"))
            .unwrap()
            .checkpointed_events()
            .unwrap_or_else(|| panic!("{what}: the channel left no checkpoint"))
    };
    let left = held("after the first run") as usize;

    // Restart without the source: the sink drains exactly what the channel still holds.
    std::fs::write(&conf, channel_and_sink(d)).unwrap();
    let mut child = Command::new(BIN)
        .args(["agent", "-n", "a1", "-f"])
        .arg(&conf)
        .arg("--no-reload-conf")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    while lines_in(&d.join("out")).len() < first_run + left {
        assert!(
            Instant::now() < end,
            "the restart delivered {} of the {left} events left",
            lines_in(&d.join("out")).len() - first_run
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    );
    assert!(wait_exit(&mut child, Duration::from_secs(20)).is_some_and(|s| s.success()));
    assert_eq!(held("after the restart"), 0, "the channel is drained");
    assert_eq!(lines_in(&d.join("out")).len(), first_run + left);

    // Every event the source committed is there exactly once: 0..K with no gap, no duplicate.
    let mut seen: Vec<u64> = lines_in(&d.join("out"))
        .iter()
        .map(|l| l.parse().unwrap())
        .collect();
    let total = seen.len();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), total, "duplicates were delivered");
    let k = seen.len() as u64;
    assert_eq!(
        seen,
        (0..k).collect::<Vec<_>>(),
        "a committed event is missing"
    );
    assert_eq!(
        k % 500,
        0,
        "seq commits batches of 500: a partial batch leaked ({k})"
    );
}

#[test]
fn check_and_agent_print_every_config_problem_and_fail() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("bad.conf");
    std::fs::write(&conf, "a1.sources = r1\na1.sources.r1.type = avro\na1.sources.r1.channels = c9\na1.sinks = k1\na1.sinks.k1.type = hbase\n").unwrap();
    for sub in ["check", "agent"] {
        let out = Command::new(BIN)
            .args([sub, "-n", "a1", "-f"])
            .arg(&conf)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("bad.conf:3: a1.sources.r1.channels"),
            "{sub}: {err}"
        );
        assert!(err.contains("bad.conf:5: a1.sinks.k1.type"), "{sub}: {err}");
    }
    let out = Command::new(BIN)
        .args(["check", "-n", "nosuch", "-f"])
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("a1"),
        "the agents that exist are named"
    );
}

#[test]
fn help_explains_the_commands() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["agent", "check", "channel"] {
        assert!(text.contains(cmd), "--help lists {cmd}: {text}");
    }
    let out = Command::new(BIN)
        .args(["agent", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--name",
        "--conf-file",
        "--conf",
        "-D",
        "flume.monitoring.port",
    ] {
        assert!(text.contains(flag), "agent --help mentions {flag}");
    }
}
