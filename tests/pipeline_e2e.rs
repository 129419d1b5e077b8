//! End to end: an agent runs a real `flume.conf` topology (Avro source → file channel), a
//! word-count pipeline runs over its channel through `Agent::run_pipeline`, and
//! `sluicegate avro-client` pushes lines; the counts printed (Spark's `print()` format) and
//! written as JSON Lines equal a reference computed here.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluicegate::agent::lifecycle::Agent;
use sluicegate::metrics::MetricsRegistry;
use sluicegate::pipeline::{PipelineConfig, StageContext, Text};

mod support;
use support::{free_port, BIN};

#[test]
fn avro_client_lines_are_counted_exactly_by_a_pipeline_in_a_running_agent() {
    let d = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = d.path().join("flume.conf");
    std::fs::write(
        &conf,
        format!(
            "a1.sources = r1\na1.channels = c1\n\
             a1.sources.r1.type = avro\na1.sources.r1.bind = 127.0.0.1\n\
             a1.sources.r1.port = {port}\na1.sources.r1.channels = c1\n\
             a1.channels.c1.type = file\na1.channels.c1.checkpointDir = {0}/ck\n\
             a1.channels.c1.dataDirs = {0}/data\na1.channels.c1.transactionCapacity = 100000\n",
            d.path().display()
        ),
    )
    .unwrap();

    // Input: 3,000 lines over a small vocabulary, with repeats and uneven spacing.
    let vocab = [
        "flume", "spark", "rust", "stream", "batch", "window", "état",
    ];
    let mut text = String::new();
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..3000usize {
        let n = 1 + i % 9;
        let words: Vec<&str> = (0..n)
            .map(|j| vocab[(i * 31 + j * 7) % vocab.len()])
            .collect();
        for w in &words {
            *want.entry(w.to_string()).or_insert(0) += 1;
        }
        text.push_str(&words.join(if i % 5 == 0 { "  " } else { " " }));
        text.push('\n');
    }
    let input = d.path().join("lines.txt");
    std::fs::write(&input, &text).unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let registry = MetricsRegistry::new();
    let mut agent = Agent::start(
        &conf,
        "a1",
        sluicegate::agent::cli::parse_defines(std::iter::empty()),
        rt.handle().clone(),
        registry.clone(),
    )
    .unwrap();

    let got: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let printed: Arc<Mutex<Vec<u8>>> = Arc::default();
    let jsonl = d.path().join("jsonl");
    let (g, pr, j) = (got.clone(), printed.clone(), jsonl.clone());
    agent
        .run_pipeline(
            "c1",
            "wc",
            PipelineConfig {
                batch_interval: Duration::from_millis(100),
                checkpoint_dir: Some(d.path().join("pipeline")),
                ..Default::default()
            },
            move |ctx| {
                let counts = ctx.events().words().count_by_value();
                counts.print_to(100, pr);
                counts.to_jsonl(j);
                counts.foreach_batch(move |items: &[(Text, u64)], _: &StageContext<'_>| {
                    let mut m = g.lock().unwrap();
                    for (w, c) in items {
                        *m.entry(w.to_string()).or_insert(0) += c;
                    }
                    Ok::<(), String>(())
                });
            },
        )
        .unwrap();

    let status = Command::new(BIN)
        .args([
            "avro-client",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-F",
        ])
        .arg(&input)
        .status()
        .unwrap();
    assert!(status.success());

    let total: u64 = want.values().sum();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n: u64 = got.lock().unwrap().values().sum();
        if n >= total || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(*got.lock().unwrap(), want);

    // The metrics group is in the agent's registry.
    let json = sluicegate::metrics::http::render_json(&registry);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(
        v["PIPELINE.wc"]["BatchesCompleted"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    agent.stop();

    // print(): every non-empty batch block parses back to the same totals.
    let out = String::from_utf8(printed.lock().unwrap().clone()).unwrap();
    let mut from_print: BTreeMap<String, u64> = BTreeMap::new();
    for block in out
        .split("-------------------------------------------\nTime: ")
        .skip(1)
    {
        let (head, rest) = block.split_once('\n').unwrap();
        assert!(head.ends_with(" ms"), "{head}");
        let rest = rest
            .strip_prefix("-------------------------------------------\n")
            .unwrap();
        assert!(rest.ends_with("\n\n") || rest == "\n", "{rest:?}");
        for l in rest.lines().filter(|l| !l.is_empty()) {
            let (w, c) = l
                .strip_prefix('(')
                .and_then(|l| l.strip_suffix(')'))
                .and_then(|l| l.rsplit_once(','))
                .unwrap();
            *from_print.entry(w.to_string()).or_insert(0) += c.parse::<u64>().unwrap();
        }
    }
    assert_eq!(from_print, want);

    // JSON Lines: complete files only, names as specified, totals equal.
    let mut from_jsonl: BTreeMap<String, u64> = BTreeMap::new();
    for e in std::fs::read_dir(&jsonl).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(
            name.starts_with("batch-") && name.ends_with(".jsonl"),
            "{name}"
        );
        let id = name.trim_end_matches(".jsonl").rsplit('-').next().unwrap();
        assert_eq!(id.len(), 10, "{name}");
        for l in std::fs::read_to_string(e.path()).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            *from_jsonl
                .entry(v["key"].as_str().unwrap().to_string())
                .or_insert(0) += v["value"].as_u64().unwrap();
        }
    }
    assert_eq!(from_jsonl, want);
}
