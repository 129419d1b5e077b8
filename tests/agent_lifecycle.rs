//! The agent's lifecycle: ordered start, graceful stop, reload restarting only what changed,
//! and every construction problem reported at once.

use std::path::Path;
use std::time::{Duration, Instant};

use sluicegate::agent::lifecycle::{check, Agent, AgentError};
use sluicegate::config::SystemProps;
use sluicegate::metrics::MetricsRegistry;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn lines_in(dir: &Path) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn wait_for_lines(dir: &Path, n: usize) -> Vec<String> {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let l = lines_in(dir);
        if l.len() >= n || Instant::now() > end {
            return l;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn conf(dir: &Path, total: u64, capacity: u64) -> String {
    format!(
        "a1.sources = r1\n\
         a1.channels = c1\n\
         a1.sinks = k1\n\
         a1.sources.r1.type = seq\n\
         a1.sources.r1.totalEvents = {total}\n\
         a1.sources.r1.batchSize = 50\n\
         a1.sources.r1.channels = c1\n\
         a1.channels.c1.type = file\n\
         a1.channels.c1.capacity = {capacity}\n\
         a1.channels.c1.checkpointDir = {d}/cp\n\
         a1.channels.c1.dataDirs = {d}/data\n\
         a1.channels.c1.minimumRequiredSpace = 1048576\n\
         a1.sinks.k1.type = file_roll\n\
         a1.sinks.k1.sink.directory = {d}/out\n\
         a1.sinks.k1.sink.rollInterval = 0\n\
         a1.sinks.k1.channel = c1\n",
        d = dir.display()
    )
}

#[test]
fn a_seq_to_file_channel_to_file_roll_agent_delivers_everything_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    let path = dir.path().join("flume.conf");
    std::fs::write(&path, conf(dir.path(), 1000, 10_000)).unwrap();
    let rt = runtime();
    let registry = MetricsRegistry::new();
    let mut agent = Agent::start(
        &path,
        "a1",
        SystemProps::new(),
        rt.handle().clone(),
        registry.clone(),
    )
    .unwrap();
    let lines = wait_for_lines(&dir.path().join("out"), 1000);
    agent.stop();
    let expected: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
    assert_eq!(lines, expected);
    let kinds: Vec<String> = registry
        .groups()
        .iter()
        .map(|g| format!("{}.{}", g.kind(), g.name()))
        .collect();
    for k in ["SOURCE.r1", "CHANNEL.c1", "SINK.k1"] {
        assert!(kinds.contains(&k.to_string()), "{k} missing from {kinds:?}");
    }
}

#[test]
fn reload_restarts_only_what_changed_and_keeps_the_durable_channel_contents() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    let path = dir.path().join("flume.conf");
    std::fs::write(&path, conf(dir.path(), 300, 10_000)).unwrap();
    let rt = runtime();
    let mut agent = Agent::start(
        &path,
        "a1",
        SystemProps::new(),
        rt.handle().clone(),
        MetricsRegistry::new(),
    )
    .unwrap();
    assert_eq!(wait_for_lines(&dir.path().join("out"), 300).len(), 300);

    // Unchanged file: nothing restarts.
    let s = agent.reload().unwrap();
    assert!(s.stopped.is_empty() && s.started.is_empty(), "{s}");

    // A sink-only change restarts only the sink runner.
    let changed = conf(dir.path(), 300, 10_000).replace(
        "rollInterval = 0",
        "rollInterval = 0\na1.sinks.k1.batchSize = 7",
    );
    std::fs::write(&path, changed).unwrap();
    let s = agent.reload().unwrap();
    assert_eq!(s.stopped, vec!["sinkrunner k1".to_string()]);
    assert_eq!(s.started, vec!["sinkrunner k1".to_string()]);

    // A channel change restarts the channel and everything wired to it.
    let changed = conf(dir.path(), 300, 20_000).replace(
        "rollInterval = 0",
        "rollInterval = 0\na1.sinks.k1.batchSize = 7",
    );
    std::fs::write(&path, changed).unwrap();
    let s = agent.reload().unwrap();
    assert_eq!(s.stopped, vec!["source r1", "sinkrunner k1", "channel c1"]);
    // Started in order: channel, then sources, then sink runners (see lifecycle.rs).
    assert_eq!(s.started, vec!["channel c1", "source r1", "sinkrunner k1"]);
    // The seq source restarted from 0: 300 more events arrive, none lost.
    let lines = wait_for_lines(&dir.path().join("out"), 600);
    assert_eq!(lines.len(), 600);

    // A broken file is refused and the agent keeps running as it was.
    std::fs::write(&path, "a1.sources = r1\na1.sources.r1.type = nosuch\n").unwrap();
    let err = agent.reload().unwrap_err();
    assert!(matches!(err, AgentError::Config(_)), "{err}");
    assert_eq!(agent.running().len(), 3);
    agent.stop();
}

#[test]
fn check_reports_every_construction_problem_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.conf");
    std::fs::write(
        &path,
        "a1.sources = r1\n\
         a1.channels = c1 c2\n\
         a1.sinks = k1\n\
         a1.sources.r1.type = seq\n\
         a1.sources.r1.batchSize = many\n\
         a1.sources.r1.channels = c1\n\
         a1.channels.c1.type = memory\n\
         a1.channels.c1.capacity = 0\n\
         a1.channels.c2.type = memory\n\
         a1.channels.c2.transactionCapacity = lots\n\
         a1.sinks.k1.type = null\n\
         a1.sinks.k1.channel = c2\n",
    )
    .unwrap();
    let err = check(&path, "a1", &SystemProps::new()).unwrap_err();
    let text = err.to_string();
    let lines: Vec<&str> = text.lines().collect();
    // Every problem at once: the channels failing does not hide the source's own problem.
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].starts_with(&format!("{}:5: a1.sources.r1.batchSize:", path.display())),
        "{text}"
    );
    assert!(
        lines[1].starts_with(&format!("{}:8: a1.channels.c1.capacity:", path.display())),
        "{text}"
    );
    assert!(
        lines[2].starts_with(&format!(
            "{}:10: a1.channels.c2.transactionCapacity:",
            path.display()
        )),
        "{text}"
    );
}
