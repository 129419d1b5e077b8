//! The agent's lifecycle: ordered start, graceful stop, reload restarting only what changed,
//! and every construction problem reported at once.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluicegate::agent::lifecycle::{check, Agent, AgentError};
use sluicegate::config::SystemProps;
use sluicegate::event::Event;
use sluicegate::metrics::MetricsRegistry;
use sluicegate::pipeline::{PipelineConfig, StageContext};

mod support;
use support::{lines_in, wait_until};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Starts agent `a1` of `path` on `rt`, its metrics in `registry`.
fn start(path: &Path, rt: &tokio::runtime::Runtime, registry: &MetricsRegistry) -> Agent {
    Agent::start(
        path,
        "a1",
        SystemProps::new(),
        rt.handle().clone(),
        registry.clone(),
    )
    .unwrap()
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
    let mut agent = start(&path, &rt, &registry);
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
    let mut agent = start(&path, &rt, &MetricsRegistry::new());
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

/// Two durable channels: `c1` for a pipeline built in Rust (`Agent::run_pipeline`), `c2` read
/// by a `type = pipeline` sink counting its events into JSON Lines under `out`; `with_c1 =
/// false` drops `c1`.
fn pipeline_conf(dir: &Path, capacity: u64, with_c1: bool) -> String {
    let file_channel = |c: &str| {
        format!(
            "a1.channels.{c}.type = file\n\
             a1.channels.{c}.capacity = {capacity}\n\
             a1.channels.{c}.checkpointDir = {d}/{c}/cp\n\
             a1.channels.{c}.dataDirs = {d}/{c}/data\n\
             a1.channels.{c}.minimumRequiredSpace = 1048576\n",
            d = dir.display()
        )
    };
    let channels = if with_c1 { "c1 c2" } else { "c2" };
    let mut c = format!(
        "a1.sources = r1\n\
         a1.channels = {channels}\n\
         a1.sinks = p\n\
         a1.sources.r1.type = avro\n\
         a1.sources.r1.bind = 127.0.0.1\n\
         a1.sources.r1.port = 0\n\
         a1.sources.r1.channels = {channels}\n\
         a1.sinks.p.type = pipeline\n\
         a1.sinks.p.channel = c2\n\
         a1.sinks.p.batchInterval = 50 ms\n\
         a1.sinks.p.query = SELECT count(*) AS n FROM events\n\
         a1.sinks.p.output.type = jsonl\n\
         a1.sinks.p.output.dir = {d}/out\n\
         a1.sinks.p.checkpointDir = {d}/state\n",
        d = dir.display()
    );
    if with_c1 {
        c.push_str(&file_channel("c1"));
    }
    c.push_str(&file_channel("c2"));
    c
}

fn put_numbers(agent: &Agent, channel: &str, range: std::ops::Range<u32>) {
    let ch = agent.channel(channel).unwrap();
    let events: Vec<Event> = range.map(|i| Event::from_body(i.to_string())).collect();
    for chunk in events.chunks(100) {
        ch.put_batch(chunk).unwrap();
    }
}

/// The `n` values of every JSON line in `dir` (the `type = pipeline` sink's counts).
fn counted_rows(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().ends_with(".jsonl") {
            for l in std::fs::read_to_string(e.path()).unwrap().lines() {
                let j: serde_json::Value = serde_json::from_str(l).unwrap();
                n += j["n"].as_u64().unwrap();
            }
        }
    }
    n
}

#[test]
fn pipelines_follow_a_reload_that_restarts_their_channel_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = d.join("flume.conf");
    std::fs::write(&path, pipeline_conf(d, 10_000, true)).unwrap();
    let rt = runtime();
    let registry = MetricsRegistry::new();
    let mut agent = start(&path, &rt, &registry);
    // A pipeline built in Rust: every body it takes, in order of taking.
    let seen: Arc<Mutex<Vec<u32>>> = Arc::default();
    let s = seen.clone();
    agent
        .run_pipeline(
            "c1",
            "rp",
            PipelineConfig::with_interval(Duration::from_millis(50)),
            move |ctx| {
                ctx.events()
                    .map(|e| {
                        std::str::from_utf8(e.body())
                            .unwrap()
                            .parse::<u32>()
                            .unwrap()
                    })
                    .stream()
                    .foreach_batch(move |items: &[u32], _: &StageContext<'_>| {
                        s.lock().unwrap().extend_from_slice(items);
                        Ok::<(), String>(())
                    });
            },
        )
        .unwrap();
    let seen_sorted = || {
        let mut v = seen.lock().unwrap().clone();
        v.sort_unstable();
        v
    };

    // Events before the reload; the reload follows at once, with batches in flight.
    put_numbers(&agent, "c1", 0..500);
    put_numbers(&agent, "c2", 0..500);
    std::fs::write(&path, pipeline_conf(d, 20_000, true)).unwrap();
    let s = agent.reload().unwrap();
    assert_eq!(
        s.stopped,
        [
            "source r1",
            "pipeline p",
            "pipeline rp",
            "channel c1",
            "channel c2"
        ]
    );
    assert_eq!(
        s.started,
        [
            "channel c1",
            "channel c2",
            "source r1",
            "pipeline p",
            "pipeline rp"
        ]
    );
    assert!(agent.running().contains(&"pipeline rp".to_string()));

    // Events after the reload go into the new channels; both pipelines count every event
    // exactly once.
    put_numbers(&agent, "c1", 500..1000);
    put_numbers(&agent, "c2", 500..1000);
    wait_until("the Rust pipeline to take 1000 events", || {
        seen.lock().unwrap().len() >= 1000
    });
    assert_eq!(seen_sorted(), (0..1000).collect::<Vec<u32>>());
    wait_until("the pipeline sink to count 1000 events", || {
        counted_rows(&d.join("out")) >= 1000
    });
    assert_eq!(counted_rows(&d.join("out")), 1000);

    // A reload that removes the channel stops the Rust pipeline for good.
    std::fs::write(&path, pipeline_conf(d, 20_000, false)).unwrap();
    let s = agent.reload().unwrap();
    assert!(s.stopped.contains(&"pipeline rp".to_string()), "{s}");
    assert!(!s.started.contains(&"pipeline rp".to_string()), "{s}");
    assert!(!agent.running().contains(&"pipeline rp".to_string()));
    assert!(!registry
        .groups()
        .iter()
        .any(|g| g.kind() == "PIPELINE" && g.name() == "rp"));
    assert_eq!(seen_sorted(), (0..1000).collect::<Vec<u32>>());
    agent.stop();
}
