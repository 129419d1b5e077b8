//! Misconfigured files through the binary: `sluicegate check` and `check --strict` must print
//! every diagnostic (errors first, then warnings, each `file:line: key: message`, sorted by
//! line), with the suggested key where one is close, and exit 1 exactly when there are errors.
//! Unknown keys are warnings, and errors under `--strict` (as under
//! `-Dsluicegate.config.strict=true` for the agent, also tested here).

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sluicegate");

/// How a diagnostic is reported.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Sev {
    /// An error with and without `--strict`.
    E,
    /// A warning with and without `--strict` (something Flume accepts silently).
    W,
    /// An unknown key: a warning, an error under `--strict`.
    U,
}
use Sev::{E, U, W};

struct Case {
    name: &'static str,
    conf: &'static str,
    /// `(severity, "LINE: key: message")`, in line order; the file name is prefixed.
    diags: &'static [(Sev, &'static str)],
}

const CASES: &[Case] = &[
    Case {
        name: "pipeline sinks: a query error on the query key's line with its position, every problem at once",
        conf: "\
a1.sources = r1
a1.channels = c1 c2
a1.sinks = wc st
a1.sources.r1.type = seq
a1.sources.r1.channels = c1 c2
a1.channels.c1.type = memory
a1.channels.c2.type = memory
a1.sinks.wc.type = pipeline
a1.sinks.wc.channel = c1
a1.sinks.wc.batchInterval = 1000
a1.sinks.wc.query = SELECT lowr(word) AS w, count(*) AS n \\
    FROM events CROSS JOIN UNNEST(split(body, ' ')) AS t(word) \\
    GROUP BY word
a1.sinks.wc.output.type = print
a1.sinks.st.type = pipeline
a1.sinks.st.channel = c2
a1.sinks.st.query = SELECT body FROM events
a1.sinks.st.output.type = jsonl
",
        diags: &[
            (E, "10: a1.sinks.wc.batchInterval: expected an integer and a unit, such as '1 s', '500 ms', '1 min' or '1 h', got '1000' (no unit)"),
            (E, "11: a1.sinks.wc.query: query 1:8: found `lowr`: unknown function; supported: lower, upper, trim, length, octet_length, substr, concat, split (in UNNEST), regexp_extract, regexp_like, json_value, parse_timestamp, coalesce, header, body_hex, CAST, CASE; aggregates count, sum, min, max, avg, approx_count_distinct"),
            (E, "18: a1.sinks.st.output.dir: is not set: output.type jsonl writes its batch files into a directory"),
        ],
    },
    Case {
        name: "pipeline sinks: unknown keys with suggestions, a shared channel, no sink groups",
        conf: "\
a1.sources = r1
a1.channels = c1
a1.sinks = wc k1
a1.sinkgroups = g1
a1.sources.r1.type = seq
a1.sources.r1.channels = c1
a1.channels.c1.type = memory
a1.sinks.wc.type = pipeline
a1.sinks.wc.channel = c1
a1.sinks.wc.query = SELECT body FROM events
a1.sinks.wc.output.type = print
a1.sinks.wc.output.limt = 5
a1.sinks.wc.watermrk = 5 s
a1.sinks.k1.type = null
a1.sinks.k1.channel = c1
a1.sinkgroups.g1.sinks = wc k1
a1.sinkgroups.g1.processor.type = failover
",
        diags: &[
            (W, "9: a1.sinks.wc.channel: channel 'c1' is also read by sink 'k1'; they take events from it in turn, so pipeline sink 'wc' sees only part of the stream (give each pipeline its own channel, filled by a replicating source)"),
            (U, "12: a1.sinks.wc.output.limt: not used by pipeline sink wc; did you mean 'output.limit'?"),
            (U, "13: a1.sinks.wc.watermrk: not used by pipeline sink wc; did you mean 'watermark'?"),
            (E, "16: a1.sinkgroups.g1.sinks: sink 'wc' is a pipeline sink; a pipeline reads its channel on its own and cannot be in a sink group"),
        ],
    },
    Case {
        name: "pipeline sinks: a typo hiding the query, the channel output, bad values",
        conf: "\
a1.sources = r1
a1.channels = c1 out
a1.sinks = p
a1.sources.r1.type = seq
a1.sources.r1.channels = c1
a1.channels.c1.type = memory
a1.channels.out.type = memory
a1.sinks.p.type = pipeline
a1.sinks.p.channel = c1
a1.sinks.p.qurey = SELECT body FROM events
a1.sinks.p.output.type = channel
a1.sinks.p.output.channel = c1
a1.sinks.p.workers = many
a1.sinks.p.emit = sometimes
a1.sinks.p.output.limit = 3
",
        diags: &[
            (E, "8: a1.sinks.p.query: is not set: pipeline sink 'p' needs one SELECT over the stream `events`, e.g. SELECT word, count(*) AS n FROM events CROSS JOIN UNNEST(split(body, ' ')) AS t(word) GROUP BY word (did you mean 'query'? found 'qurey' at {f}:10)"),
            (E, "12: a1.sinks.p.output.channel: is the channel pipeline sink 'p' reads; its rows would be read back as input — use another channel"),
            (E, "13: a1.sinks.p.workers: expected a non-negative integer (0 = one per core), got 'many'"),
            (E, "14: a1.sinks.p.emit: expected update or final, got 'sometimes'"),
            (W, "2: a1.channels: channel 'out' is connected to no source or sink; Flume removes such channels"),
        ],
    },
    Case {
        name: "pipeline sinks: output types; postgres settings checked against the query without connecting",
        conf: "\
a1.sources = r1
a1.channels = c1 c2 c3 c4 c5
a1.sinks = a b c d e
a1.sources.r1.type = seq
a1.sources.r1.channels = c1 c2 c3 c4 c5
a1.channels.c1.type = memory
a1.channels.c2.type = memory
a1.channels.c3.type = memory
a1.channels.c4.type = memory
a1.channels.c5.type = memory
a1.sinks.a.type = pipeline
a1.sinks.a.channel = c1
a1.sinks.a.query = SELECT body, count(*) AS n FROM events GROUP BY body
a1.sinks.a.output.type = postgres
a1.sinks.a.output.table = counts
a1.sinks.a.output.keys = bdy
a1.sinks.b.type = pipeline
a1.sinks.b.channel = c2
a1.sinks.b.query = SELECT body FROM events
a1.sinks.b.output.type = kafka
a1.sinks.c.type = pipeline
a1.sinks.c.channel = c3
a1.sinks.c.query = SELECT body FROM events
a1.sinks.c.output.type = postgresql
a1.sinks.c.output.tabel = t
a1.sinks.d.type = pipeline
a1.sinks.d.channel = c4
a1.sinks.d.query = SELECT body, count(*) AS n FROM events GROUP BY body
a1.sinks.d.output.type = postgres
a1.sinks.d.output.url = postgres://u@127.0.0.1:1/db
a1.sinks.d.output.table = counts
a1.sinks.d.output.keys = body
a1.sinks.d.output.acumulate = n
a1.sinks.d.output.createTable = true
a1.sinks.e.type = pipeline
a1.sinks.e.channel = c5
a1.sinks.e.query = SELECT body, count(*) AS n FROM events GROUP BY body
a1.sinks.e.output.type = postgres
a1.sinks.e.output.host = 127.0.0.1
a1.sinks.e.output.port = 99999
a1.sinks.e.output.table = counts
",
        diags: &[
            (E, "16: a1.sinks.a.output.keys: 'bdy' is not a column of the query; its columns are body, n"),
            (E, "20: a1.sinks.b.output.type: unknown output type 'kafka'; supported output types: print, text, jsonl, channel, postgres, hdfs"),
            (E, "24: a1.sinks.c.output.table: is not set: output.type postgresql writes the rows into a table (name or schema.name) (did you mean 'output.table'? found 'output.tabel' at {f}:25)"),
            (E, "40: a1.sinks.e.output.port: expected a port number (1-65535), got '99999'"),
            (U, "33: a1.sinks.d.output.acumulate: not used by pipeline sink d; did you mean 'output.accumulate'?"),
        ],
    },
    Case {
        name: "a valid postgres pipeline sink: every output key is known; check needs no server (port 1)",
        conf: "\
a1.sources = r1
a1.channels = c1
a1.sinks = wc
a1.sources.r1.type = seq
a1.sources.r1.channels = c1
a1.channels.c1.type = memory
a1.sinks.wc.type = pipeline
a1.sinks.wc.channel = c1
a1.sinks.wc.query = SELECT word, count(*) AS n FROM events \\
    CROSS JOIN UNNEST(split(body, ' ')) AS t(word) GROUP BY word
a1.sinks.wc.output.type = postgres
a1.sinks.wc.output.host = 127.0.0.1
a1.sinks.wc.output.port = 1
a1.sinks.wc.output.user = flume
a1.sinks.wc.output.password = secret
a1.sinks.wc.output.database = metrics
a1.sinks.wc.output.table = public.word_counts
a1.sinks.wc.output.keys = word
a1.sinks.wc.output.accumulate = n
a1.sinks.wc.output.createTable = true
a1.sinks.wc.output.progressTable = public.sluicegate_batches
a1.sinks.wc.output.connectTimeout = 5
",
        diags: &[],
    },
    Case {
        name: "typos in three components, one of them hiding a required key",
        conf: "\
a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = netcat
a1.sources.r1.bind = 127.0.0.1
a1.sources.r1.prot = 4444
a1.sources.r1.channels = c1
a1.channels.c1.type = memory
a1.channels.c1.transactionCapacty = 10
a1.sinks.k1.type = avro
a1.sinks.k1.channel = c1
a1.sinks.k1.hostname = localhost
a1.sinks.k1.port = 4545
a1.sinks.k1.batchSize = 10
",
        diags: &[
            (E, "4: a1.sources.r1.port: is required but not set (did you mean 'port'? found 'prot' at {f}:6)"),
            (U, "9: a1.channels.c1.transactionCapacty: not used by memory channel c1; did you mean 'transactionCapacity'?"),
            (U, "14: a1.sinks.k1.batchSize: not used by avro sink k1; did you mean 'batch-size'?"),
        ],
    },
    Case {
        name: "a bad source port, channel transactionCapacity and sink port are all reported",
        conf: "\
a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = avro
a1.sources.r1.bind = 127.0.0.1
a1.sources.r1.port = 99999
a1.sources.r1.channels = c1
a1.channels.c1.type = memory
a1.channels.c1.transactionCapacity = lots
a1.sinks.k1.type = avro
a1.sinks.k1.channel = c1
a1.sinks.k1.hostname = localhost
a1.sinks.k1.port = 0
",
        diags: &[
            (E, "6: a1.sources.r1.port: expected a TCP port (0-65535), got '99999'"),
            (E, "9: a1.channels.c1.transactionCapacity: expected a non-negative integer, got 'lots'"),
            (E, "13: a1.sinks.k1.port: must be 1-65535"),
        ],
    },
    Case {
        name: "topology errors do not hide component errors or unknown keys",
        conf: "\
a1.sources = r1 r2
a1.channels = c1
a1.sinks = k1 k2
a1.sources.r1.type = seq
a1.sources.r1.channels = c9
a1.sources.r2.type = seq
a1.sources.r2.channels = c1
a1.sources.r2.batchSize = many
a1.channels.c1.type = memory
a1.channels.c1.capacity = 100
a1.channels.c1.capcity = 100
a1.sinks.k1.type = hbase
a1.sinks.k1.channel = c1
a1.sinks.k2.type = null
a1.sinks.k2.channel = c1
a1.sinks.k2.batchSize = 0
",
        diags: &[
            (E, "5: a1.sources.r1.channels: channel 'c9' is not listed in a1.channels (defined: c1)"),
            (E, "8: a1.sources.r2.batchSize: expected a non-negative integer, got 'many'"),
            (U, "11: a1.channels.c1.capcity: not used by memory channel c1; did you mean 'capacity'?"),
            (E, "12: a1.sinks.k1.type: sink type 'hbase' is a Flume type that sluicegate does not implement; supported sink types: avro, logger, file_roll, null, hdfs, pipeline (or their Flume class names)"),
            (E, "16: a1.sinks.k2.batchSize: must be a positive integer"),
        ],
    },
    Case {
        name: "keys of interceptors, selectors and sink processors, and keys with no near match",
        conf: "\
a1.sources = r1
a1.channels = c1 c2
a1.sinks = k1 k2 k3
a1.sinkgroups = g1
a1.sources.r1.type = seq
a1.sources.r1.channels = c1 c2
a1.sources.r1.selector.type = multiplexing
a1.sources.r1.selector.heder = h
a1.sources.r1.selector.mapping.a = c2
a1.sources.r1.selector.default = c1
a1.sources.r1.interceptors = i1
a1.sources.r1.interceptors.i1.type = timestamp
a1.sources.r1.interceptors.i1.hederName = ts
a1.sources.r1.interceptor = i1
a1.channels.c1.type = memory
a1.channels.c2.type = memory
a1.sinks.k1.type = null
a1.sinks.k1.channel = c1
a1.sinks.k1.colour = red
a1.sinks.k2.type = null
a1.sinks.k2.channel = c2
a1.sinks.k3.type = file_roll
a1.sinks.k3.channel = c2
a1.sinks.k3.sink.directory = /nonexistent/sluicegate-check-test
a1.sinks.k3.batchSize = 10
a1.sinkgroups.g1.sinks = k1 k2
a1.sinkgroups.g1.processor.type = failover
a1.sinkgroups.g1.processor.maxPenalty = 1000
a1.sinkgroups.g1.procesor.priority.k1 = 1
",
        diags: &[
            (U, "8: a1.sources.r1.selector.heder: not used by multiplexing selector of source r1; did you mean 'header'?"),
            (U, "13: a1.sources.r1.interceptors.i1.hederName: not used by timestamp interceptor i1 of source r1; did you mean 'headerName'?"),
            (U, "14: a1.sources.r1.interceptor: not used by seq source r1; did you mean 'interceptors'?"),
            (U, "19: a1.sinks.k1.colour: not used by null sink k1"),
            (U, "25: a1.sinks.k3.batchSize: not used by file_roll sink k3; did you mean 'sink.batchSize'?"),
            (U, "28: a1.sinkgroups.g1.processor.maxPenalty: not used by failover processor of sink group g1; did you mean 'maxpenalty'?"),
            (U, "29: a1.sinkgroups.g1.procesor.priority.k1: not used by sink group g1; did you mean 'processor.priority.k1'?"),
        ],
    },
    Case {
        name: "Flume keys sluicegate ignores are not unknown: their notes and other warnings share the format",
        conf: "\
a1.sources = r1
a1.channels = c1
a1.sinks = k1
a1.sources.r1.type = avro
a1.sources.r1.bind = 0.0.0.0
a1.sources.r1.port = 4141
a1.sources.r1.threads = 4
a1.sources.r1.channels = c1
a1.sources.r1.ssl = false
a1.sources.r1.keystore = /nonexistent.jks
a1.sources.r1.ipFilterRules = allow:ip:*
a1.sources.r1.interceptors.i9.type = host
a1.channels.c1.type = file
a1.channels.c1.checkpointDir = /nonexistent/sluicegate-check/ck
a1.channels.c1.dataDirs = /nonexistent/sluicegate-check/data
a1.channels.c1.useDualCheckpoints = false
a1.channels.c1.use-fast-replay = false
a1.channels.c1.encryption.activeKey = key-0
a1.sinks.k1.type = avro
a1.sinks.k1.channel = c1
a1.sinks.k1.hostname = localhost
a1.sinks.k1.port = 4545
a1.sinks.k1.maxIoWorkers = 4
a1.sinks.k1.batch-size = 10
a1.sinks.k1.batch-size = 20
",
        diags: &[
            (W, "12: a1.sources.r1.interceptors.i9: interceptor 'i9' is configured but not listed in a1.sources.r1.interceptors; it is ignored (as Flume does)"),
            (W, "16: a1.channels.c1.useDualCheckpoints: ignored: the sluicegate file channel has no equivalent (see docs/file-channel.md)"),
            (W, "17: a1.channels.c1.use-fast-replay: ignored: the sluicegate file channel has no equivalent (see docs/file-channel.md)"),
            (W, "18: a1.channels.c1.encryption.activeKey: encryption.* is not supported and is ignored: events are stored unencrypted"),
            (W, "23: a1.sinks.k1.maxIoWorkers: maxIoWorkers is no longer supported and is ignored (as in Flume >= 1.10)"),
            (W, "24: a1.sinks.k1.batch-size: set again on line 25; the last value wins (as in Flume), this one is ignored"),
        ],
    },
    Case {
        name: "a sink given 'channels' gets one hint, not two",
        conf: "\
a1.channels = c1
a1.sinks = k1
a1.channels.c1.type = memory
a1.sinks.k1.type = null
a1.sinks.k1.channels = c1
",
        diags: &[
            (E, "4: a1.sinks.k1.channel: is not set: sink 'k1' must read one channel (sinks use 'channel', singular; 'channels' is for sources) (defined: c1)"),
            (W, "1: a1.channels: channel 'c1' is connected to no source or sink; Flume removes such channels"),
        ],
    },
];

fn run_check(conf: &Path, strict: bool) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("check");
    if strict {
        cmd.arg("--strict");
    }
    let out = cmd
        .args(["-n", "a1", "-f"])
        .arg(conf)
        .env_remove("SLUICEGATE_LOG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn line_of(d: &str) -> usize {
    d.split(':').next().unwrap().parse().unwrap()
}

/// The diagnostic lines of `stderr`: those starting with the file name, except the summary.
fn diagnostics(stderr: &str, file: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.starts_with(&format!("{file}:")))
        .map(str::to_string)
        .collect()
}

#[test]
fn check_reports_every_diagnostic_with_lines_and_suggestions() {
    let dir = tempfile::tempdir().unwrap();
    for case in CASES {
        let conf = dir.path().join("flume.conf");
        std::fs::write(&conf, case.conf).unwrap();
        let f = conf.display().to_string();
        let text = |d: &str| format!("{f}:{}", d.replace("{f}", &f));
        for strict in [false, true] {
            let is_error = |s: Sev| s == E || (strict && s == U);
            let mut errors: Vec<&str> = Vec::new();
            let mut warnings: Vec<&str> = Vec::new();
            for (s, d) in case.diags {
                if is_error(*s) {
                    errors.push(d);
                } else {
                    warnings.push(d);
                }
            }
            errors.sort_by_key(|d| line_of(d));
            warnings.sort_by_key(|d| line_of(d));
            let mut expected: Vec<String> = errors.iter().map(|d| text(d)).collect();
            expected.extend(warnings.iter().map(|d| text(d)));
            let (code, stdout, stderr) = run_check(&conf, strict);
            let summary = format!("{} error(s), {} warning(s)", errors.len(), warnings.len());
            let what = format!("{} (strict: {strict})\n{stderr}{stdout}", case.name);
            let mut got = diagnostics(&stderr, &f);
            let last = got.pop().unwrap_or_default();
            if errors.is_empty() {
                if !last.is_empty() {
                    got.push(last); // a valid file's summary goes to stdout
                }
                assert_eq!(code, 0, "{what}");
                assert!(
                    stdout.contains("is valid") && stdout.contains(&summary),
                    "{what}"
                );
            } else {
                assert_eq!(code, 1, "{what}");
                assert_eq!(
                    last,
                    format!("{f}: agent a1 is not valid: {summary}"),
                    "{what}"
                );
            }
            assert_eq!(got, expected, "{what}");
            // Nothing else is printed: no log lines, no repeats.
            let printed = stderr.lines().count();
            assert_eq!(
                printed,
                expected.len() + usize::from(!errors.is_empty()),
                "{what}"
            );
        }
    }
}

#[test]
fn check_opens_no_file_and_binds_no_port() {
    // The cases name directories that do not exist: check must not create them.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("flume.conf");
    let data = dir.path().join("data");
    let out = dir.path().join("out");
    std::fs::write(
        &conf,
        format!(
            "a1.channels = c1\na1.sinks = k1\na1.channels.c1.type = file\n\
             a1.channels.c1.checkpointDir = {ck}\na1.channels.c1.dataDirs = {data}\n\
             a1.sinks.k1.type = file_roll\na1.sinks.k1.channel = c1\n\
             a1.sinks.k1.sink.directory = {out}\n",
            ck = dir.path().join("ck").display(),
            data = data.display(),
            out = out.display()
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = run_check(&conf, true);
    assert_eq!(code, 0, "{stderr}{stdout}");
    assert!(!data.exists() && !out.exists() && !dir.path().join("ck").exists());
}

#[test]
fn the_agent_warns_about_unknown_keys_and_refuses_them_when_strict() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("flume.conf");
    // A sink-only agent: nothing binds a port. The null sink drains an empty channel.
    std::fs::write(
        &conf,
        "a1.channels = c1\na1.sinks = k1\na1.channels.c1.type = memory\n\
         a1.sinks.k1.type = null\na1.sinks.k1.channel = c1\na1.sinks.k1.batchsize = 5\n",
    )
    .unwrap();
    let f = conf.display().to_string();
    let expected = format!(
        "{f}:6: a1.sinks.k1.batchsize: not used by null sink k1; did you mean 'batchSize'?"
    );
    // Strict: the start fails and names the key.
    let out = Command::new(BIN)
        .args([
            "agent",
            "-n",
            "a1",
            "--no-reload-conf",
            "-Dsluicegate.config.strict=true",
            "-f",
        ])
        .arg(&conf)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.lines().any(|l| l == expected), "{err}");
    // Not strict: the agent starts and logs the same text as a warning. Stop it once it has.
    let mut child = Command::new(BIN)
        .args(["agent", "-n", "a1", "--no-reload-conf", "-f"])
        .arg(&conf)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = Vec::new();
    let found = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                let hit = l.contains("WARN") && l.ends_with(&expected);
                seen.push(l);
                if hit {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(found, "{}", seen.join("\n"));
}
