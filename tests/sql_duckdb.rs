//! Differential test of the streaming-SQL front end against DuckDB (an independent engine).
//!
//! A corpus of queries in sluicegate's dialect (per-batch group-bys, filters, the UNNEST word
//! count, every aggregate, HAVING, top-K) plus randomly generated combinations run over random
//! event sets: through sluicegate (a memory channel, a manual clock, one micro-batch of all the
//! events) and through DuckDB (PyPI `duckdb`, installed by `compat-tests/setup_duckdb.sh` into
//! `compat-tests/.venv-duckdb`) over the same rows written as JSON Lines, with each query
//! translated into DuckDB SQL by the generator. The results must be equal (doubles within
//! 1e-9 relative; row order compared only where the query's ORDER BY fixes it).
//!
//! If DuckDB cannot be installed the test fails with the reason (it never passes silently).
//! Windowed queries (TUMBLE, HOP, SESSION, processing-time TUMBLE) run as several batches of
//! out-of-order events (disorder within the watermark) and compare their FINAL window results
//! with DuckDB, which buckets the same rows with floor division (tumble), one row per covering
//! window (hop: `range`), or gap logic with `lag` (sessions), and ranks per window with
//! `row_number()` for the per-window top-K.

use std::path::{Path, PathBuf};
use std::process::Command;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value as J;

use sluicegate::event::Event;
use sluicegate::pipeline::sql::{EmitMode, Row, SqlOptions, SqlQuery, Value};

/// Runs each SQL text of `sqls` through DuckDB (`compat-tests/duckdb_runner.py`) over the events
/// in `events_path`; returns its results keyed by query index (`"0"`, `"1"`, ...), with files
/// `<stem>.queries.json` and `<stem>.results.json` beside.
fn duckdb_results<'a>(
    python: &Path,
    stem: &Path,
    events_path: &Path,
    sqls: impl Iterator<Item = &'a str>,
) -> J {
    let list: Vec<J> = sqls
        .enumerate()
        .map(|(i, sql)| serde_json::json!({"id": i.to_string(), "sql": sql}))
        .collect();
    let qpath = stem.with_extension("queries.json");
    let opath = stem.with_extension("results.json");
    std::fs::write(&qpath, J::Array(list).to_string()).unwrap();
    let out = Command::new(python)
        .arg(compat_dir().join("duckdb_runner.py"))
        .arg(events_path)
        .arg(&qpath)
        .arg(&opath)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "duckdb runner failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(&opath).unwrap()).unwrap()
}

/// The rows DuckDB gave query `i` of a `duckdb_results` answer; panics with DuckDB's error
/// when it rejected the translation `duck`.
fn duck_rows(results: &J, i: usize, duck: &str) -> Vec<Vec<J>> {
    let r = &results[i.to_string()];
    if let Some(e) = r.get("error") {
        panic!("DuckDB rejected the translation of query {i} ({duck}): {e}");
    }
    r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row.as_array().unwrap().clone())
        .collect()
}

fn compat_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("compat-tests")
}

fn duckdb_python() -> PathBuf {
    let out = Command::new("bash")
        .arg(compat_dir().join("setup_duckdb.sh"))
        .output()
        .expect("running compat-tests/setup_duckdb.sh");
    assert!(
        out.status.success(),
        "DuckDB (PyPI duckdb) could not be installed, so the differential test cannot run: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    compat_dir().join(".venv-duckdb/bin/python")
}

/// One random event: the row both engines see.
#[derive(Debug, Clone)]
struct Rec {
    body: String,
    host: Option<String>,
    status: Option<String>,
    lat: Option<String>,
    ts: Option<String>,
}

const VOCAB: &[&str] = &[
    "a", "b", "c", "err", "ok", "Foo", "bar", "x1", "GET", "ERROR",
];

fn random_events(rng: &mut StdRng, n: usize) -> Vec<Rec> {
    (0..n)
        .map(|_| {
            let words = rng.gen_range(1..7);
            let mut body = String::new();
            for i in 0..words {
                if i > 0 {
                    body.push(' ');
                    if rng.gen_bool(0.05) {
                        body.push(' '); // an empty token, as SQL split yields it
                    }
                }
                body.push_str(VOCAB.choose(rng).unwrap());
            }
            let pick = |rng: &mut StdRng, opts: &[&str], p_none: f64| {
                if rng.gen_bool(p_none) {
                    None
                } else {
                    Some(opts.choose(rng).unwrap().to_string())
                }
            };
            let lat = if rng.gen_bool(0.1) {
                None
            } else if rng.gen_bool(0.05) {
                Some("bad".to_string())
            } else {
                Some(rng.gen_range(0..1000).to_string())
            };
            Rec {
                body,
                host: pick(rng, &["h1", "h2", "h3", "web-1"], 0.1),
                status: pick(rng, &["200", "404", "500", "503"], 0.05),
                lat,
                ts: Some((1_700_000_000_000i64 + rng.gen_range(0..100_000)).to_string())
                    .filter(|_| !rng.gen_bool(0.05)),
            }
        })
        .collect()
}

fn to_event(r: &Rec) -> Event {
    let mut hs: Vec<(&str, &str)> = Vec::new();
    for (k, v) in [
        ("host", &r.host),
        ("status", &r.status),
        ("lat", &r.lat),
        ("timestamp", &r.ts),
    ] {
        if let Some(v) = v {
            hs.push((k, v));
        }
    }
    Event::new(hs, r.body.as_bytes())
}

/// A query in both dialects.
#[derive(Debug, Clone)]
struct Q {
    ours: String,
    duck: String,
    /// True when ORDER BY fixes the whole row order.
    ordered: bool,
}

fn q(ours: &str, duck: &str, ordered: bool) -> Q {
    Q {
        ours: ours.into(),
        duck: duck.into(),
        ordered,
    }
}

const UNNEST_OURS: &str = "CROSS JOIN UNNEST(split(body, ' ')) AS t(word)";
const UNNEST_DUCK: &str = "CROSS JOIN UNNEST(string_split(body, ' ')) AS t(word)";

fn corpus() -> Vec<Q> {
    vec![
        q(
            &format!("SELECT word, count(*) AS n FROM events {UNNEST_OURS} GROUP BY word"),
            &format!("SELECT word, count(*) AS n FROM events {UNNEST_DUCK} GROUP BY word"),
            false,
        ),
        q(
            &format!("SELECT lower(word) AS w, count(*) AS n FROM events {UNNEST_OURS} WHERE word <> '' GROUP BY lower(word) HAVING count(*) > 3 ORDER BY n DESC, w LIMIT 5"),
            &format!("SELECT lower(word) AS w, count(*) AS n FROM events {UNNEST_DUCK} WHERE word <> '' GROUP BY lower(word) HAVING count(*) > 3 ORDER BY n DESC, w LIMIT 5"),
            true,
        ),
        q(
            "SELECT header('host') AS host, headers['status'] AS status, count(*) AS n FROM events GROUP BY header('host'), headers['status']",
            "SELECT host, status, count(*) AS n FROM events GROUP BY host, status",
            false,
        ),
        q(
            "SELECT header('host') AS host, count(*) AS errors FROM events WHERE body LIKE '%ERROR%' GROUP BY header('host') HAVING count(*) >= 2",
            "SELECT host, count(*) AS errors FROM events WHERE body LIKE '%ERROR%' GROUP BY host HAVING count(*) >= 2",
            false,
        ),
        q(
            "SELECT count(*) AS n, count(header('lat')) AS c, count(DISTINCT header('host')) AS hosts, sum(CAST(header('lat') AS BIGINT)) AS s, min(CAST(header('lat') AS BIGINT)) AS lo, max(CAST(header('lat') AS BIGINT)) AS hi, avg(CAST(header('lat') AS BIGINT)) AS mean, min(body) AS first_body, max(header('host')) AS last_host FROM events",
            "SELECT count(*) AS n, count(lat) AS c, count(DISTINCT host) AS hosts, sum(TRY_CAST(lat AS BIGINT)) AS s, min(TRY_CAST(lat AS BIGINT)) AS lo, max(TRY_CAST(lat AS BIGINT)) AS hi, avg(TRY_CAST(lat AS BIGINT)) AS mean, min(body) AS first_body, max(host) AS last_host FROM events",
            true,
        ),
        q(
            "SELECT CASE WHEN CAST(header('lat') AS BIGINT) >= 500 THEN 'slow' WHEN CAST(header('lat') AS BIGINT) < 500 THEN 'fast' ELSE 'unknown' END AS speed, count(*) AS n, avg(CAST(header('lat') AS BIGINT)) AS mean FROM events GROUP BY 1",
            "SELECT CASE WHEN TRY_CAST(lat AS BIGINT) >= 500 THEN 'slow' WHEN TRY_CAST(lat AS BIGINT) < 500 THEN 'fast' ELSE 'unknown' END AS speed, count(*) AS n, avg(TRY_CAST(lat AS BIGINT)) AS mean FROM events GROUP BY 1",
            false,
        ),
        q(
            "SELECT headers['status'] AS status, count(DISTINCT header('host')) AS hosts, sum(length(body)) AS chars FROM events WHERE headers['status'] IN ('500', '503') OR regexp_like(body, '^(a|b) ') GROUP BY headers['status'] ORDER BY chars DESC, status NULLS LAST LIMIT 2",
            "SELECT status, count(DISTINCT host) AS hosts, sum(length(body)) AS chars FROM events WHERE status IN ('500', '503') OR regexp_matches(body, '^(a|b) ') GROUP BY status ORDER BY chars DESC, status NULLS LAST LIMIT 2",
            true,
        ),
        q(
            "SELECT regexp_extract(body, '^(\\w+) (\\w+)', 2) AS second, count(*) AS n FROM events GROUP BY regexp_extract(body, '^(\\w+) (\\w+)', 2)",
            "SELECT regexp_extract(body, '^(\\w+) (\\w+)', 2) AS second, count(*) AS n FROM events GROUP BY regexp_extract(body, '^(\\w+) (\\w+)', 2)",
            false,
        ),
        q(
            &format!("SELECT header('host') AS host, count(DISTINCT word) AS vocab, count(*) AS words FROM events {UNNEST_OURS} WHERE length(word) > 1 AND header('host') IS NOT NULL GROUP BY header('host') ORDER BY vocab DESC, host LIMIT 3"),
            &format!("SELECT host, count(DISTINCT word) AS vocab, count(*) AS words FROM events {UNNEST_DUCK} WHERE length(word) > 1 AND host IS NOT NULL GROUP BY host ORDER BY vocab DESC, host LIMIT 3"),
            true,
        ),
        q(
            "SELECT upper(substr(body, 1, 3)) AS k, concat(header('host'), '/', headers['status']) AS hs, coalesce(header('lat'), 'none') AS lat FROM events WHERE event_time % 7 = 0 ORDER BY event_time, body, hs NULLS LAST, lat",
            "SELECT upper(substr(body, 1, 3)) AS k, concat(host, '/', status) AS hs, coalesce(lat, 'none') AS lat FROM events WHERE TRY_CAST(ts AS BIGINT) % 7 = 0 ORDER BY TRY_CAST(ts AS BIGINT), body, hs NULLS LAST, lat",
            true,
        ),
        q(
            "SELECT count(*) AS n FROM events WHERE body NOT LIKE 'a%' AND NOT (header('host') = 'h1') AND event_time BETWEEN 1700000020000 AND 1700000070000",
            "SELECT count(*) AS n FROM events WHERE body NOT LIKE 'a%' AND NOT (host = 'h1') AND TRY_CAST(ts AS BIGINT) BETWEEN 1700000020000 AND 1700000070000",
            true,
        ),
    ]
}

/// A random expression pair over the row scope.
struct Gen<'r> {
    rng: &'r mut StdRng,
    unnest: bool,
}

impl Gen<'_> {
    fn key(&mut self) -> (String, String) {
        let mut opts: Vec<(String, String)> = vec![
            ("header('host')".into(), "host".into()),
            ("headers['status']".into(), "status".into()),
            ("substr(body, 1, 2)".into(), "substr(body, 1, 2)".into()),
            ("length(body) % 3".into(), "length(body) % 3".into()),
            (
                "lower(regexp_extract(body, '(\\w+)$', 1))".into(),
                "lower(regexp_extract(body, '(\\w+)$', 1))".into(),
            ),
            (
                "CASE WHEN CAST(header('lat') AS BIGINT) > 500 THEN 'hi' ELSE 'lo' END".into(),
                "CASE WHEN TRY_CAST(lat AS BIGINT) > 500 THEN 'hi' ELSE 'lo' END".into(),
            ),
            (
                "coalesce(header('host'), 'none')".into(),
                "coalesce(host, 'none')".into(),
            ),
        ];
        if self.unnest {
            opts.push(("word".into(), "word".into()));
            opts.push(("upper(word)".into(), "upper(word)".into()));
        }
        opts.swap_remove(self.rng.gen_range(0..opts.len()))
    }

    fn pred(&mut self, depth: u32) -> (String, String) {
        let lat_o = "CAST(header('lat') AS BIGINT)";
        let lat_d = "TRY_CAST(lat AS BIGINT)";
        let n = self.rng.gen_range(0..1000);
        let w = *VOCAB.choose(self.rng).unwrap();
        let mut atoms: Vec<(String, String)> = vec![
            (format!("body LIKE '%{w}%'"), format!("body LIKE '%{w}%'")),
            (
                "header('host') IN ('h1', 'web-1')".into(),
                "host IN ('h1', 'web-1')".into(),
            ),
            (format!("{lat_o} > {n}"), format!("{lat_d} > {n}")),
            (
                "headers['status'] IS NOT NULL".into(),
                "status IS NOT NULL".into(),
            ),
            (
                "regexp_like(body, '^(a|b|c) ')".into(),
                "regexp_matches(body, '^(a|b|c) ')".into(),
            ),
            (
                format!("{lat_o} BETWEEN {} AND {}", n / 2, n),
                format!("{lat_d} BETWEEN {} AND {}", n / 2, n),
            ),
            ("length(body) < 12".into(), "length(body) < 12".into()),
            ("header('lat') IS NULL".into(), "lat IS NULL".into()),
        ];
        if self.unnest {
            atoms.push((format!("word = '{w}'"), format!("word = '{w}'")));
            atoms.push(("word <> ''".into(), "word <> ''".into()));
        }
        let a = atoms.swap_remove(self.rng.gen_range(0..atoms.len()));
        if depth == 0 || self.rng.gen_bool(0.5) {
            return a;
        }
        let b = self.pred(depth - 1);
        match self.rng.gen_range(0..3) {
            0 => (
                format!("({} AND {})", a.0, b.0),
                format!("({} AND {})", a.1, b.1),
            ),
            1 => (
                format!("({} OR {})", a.0, b.0),
                format!("({} OR {})", a.1, b.1),
            ),
            _ => (format!("NOT ({})", a.0), format!("NOT ({})", a.1)),
        }
    }

    fn agg(&mut self) -> (String, String) {
        let lat_o = "CAST(header('lat') AS BIGINT)";
        let lat_d = "TRY_CAST(lat AS BIGINT)";
        let mut opts: Vec<(String, String)> = vec![
            ("count(*)".into(), "count(*)".into()),
            ("count(header('host'))".into(), "count(host)".into()),
            (
                "count(DISTINCT headers['status'])".into(),
                "count(DISTINCT status)".into(),
            ),
            (format!("sum({lat_o})"), format!("sum({lat_d})")),
            (format!("min({lat_o})"), format!("min({lat_d})")),
            (format!("max({lat_o})"), format!("max({lat_d})")),
            (format!("avg({lat_o})"), format!("avg({lat_d})")),
            ("max(body)".into(), "max(body)".into()),
            ("min(header('host'))".into(), "min(host)".into()),
            ("count(DISTINCT body)".into(), "count(DISTINCT body)".into()),
        ];
        if self.unnest {
            opts.push(("count(DISTINCT word)".into(), "count(DISTINCT word)".into()));
            opts.push(("max(length(word))".into(), "max(length(word))".into()));
        }
        opts.swap_remove(self.rng.gen_range(0..opts.len()))
    }

    fn query(&mut self) -> Q {
        self.unnest = self.rng.gen_bool(0.35);
        let nkeys = self.rng.gen_range(0..3);
        let mut keys: Vec<(String, String)> = Vec::new();
        while keys.len() < nkeys {
            let k = self.key();
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        let naggs = self.rng.gen_range(1..4);
        let mut aggs: Vec<(String, String)> = Vec::new();
        while aggs.len() < naggs {
            let a = self.agg();
            if !aggs.contains(&a) {
                aggs.push(a);
            }
        }
        let mut sel_o = Vec::new();
        let mut sel_d = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            sel_o.push(format!("{} AS k{i}", k.0));
            sel_d.push(format!("{} AS k{i}", k.1));
        }
        for (i, a) in aggs.iter().enumerate() {
            sel_o.push(format!("{} AS a{i}", a.0));
            sel_d.push(format!("{} AS a{i}", a.1));
        }
        let (from_o, from_d) = if self.unnest {
            (
                format!("events {UNNEST_OURS}"),
                format!("events {UNNEST_DUCK}"),
            )
        } else {
            ("events".to_string(), "events".to_string())
        };
        let mut o = format!("SELECT {} FROM {from_o}", sel_o.join(", "));
        let mut d = format!("SELECT {} FROM {from_d}", sel_d.join(", "));
        if self.rng.gen_bool(0.6) {
            let p = self.pred(2);
            o += &format!(" WHERE {}", p.0);
            d += &format!(" WHERE {}", p.1);
        }
        if !keys.is_empty() {
            o += &format!(
                " GROUP BY {}",
                keys.iter()
                    .map(|k| k.0.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            d += &format!(
                " GROUP BY {}",
                keys.iter()
                    .map(|k| k.1.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if self.rng.gen_bool(0.3) {
                let n = self.rng.gen_range(1..5);
                o += &format!(" HAVING count(*) > {n}");
                d += &format!(" HAVING count(*) > {n}");
            }
        }
        let mut ordered = keys.is_empty();
        if !keys.is_empty() && self.rng.gen_bool(0.5) {
            // Top-K: by the first aggregate, ties broken by every key (a total order).
            let mut ob = vec![format!("a0 DESC NULLS LAST")];
            for i in 0..keys.len() {
                ob.push(format!("k{i} NULLS LAST"));
            }
            let n = self.rng.gen_range(1..6);
            let tail = format!(" ORDER BY {} LIMIT {n}", ob.join(", "));
            o += &tail;
            d += &tail;
            ordered = true;
        }
        Q {
            ours: o,
            duck: d,
            ordered,
        }
    }
}

/// Runs `q` through sluicegate over `recs` as one micro-batch.
fn run_ours(q: &SqlQuery, recs: &[Rec]) -> Vec<Row> {
    let evs: Vec<Event> = recs.iter().map(to_event).collect();
    q.run_batch(&evs).unwrap()
}

fn to_json(v: &Value) -> J {
    match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(J::Number)
            .unwrap_or(J::Null),
        Value::Str(s) => J::String(s.to_string()),
    }
}

fn same(a: &J, b: &J) -> bool {
    match (a, b) {
        (J::Number(x), J::Number(y)) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
        }
        _ => a == b,
    }
}

fn sort_rows(rows: &mut [Vec<J>]) {
    rows.sort_by_key(|r| serde_json::to_string(r).unwrap_or_default());
}

fn rows_equal(ours: &[Vec<J>], duck: &[Vec<J>]) -> bool {
    ours.len() == duck.len()
        && ours
            .iter()
            .zip(duck)
            .all(|(a, b)| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y)))
}

#[test]
fn sql_results_equal_duckdb_on_random_events() {
    let python = duckdb_python();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(0x5EED_5A1E);
    let mut checked = 0;
    let mut failures = Vec::new();
    for round in 0..4 {
        let n = [0usize, 40, 400, 2500][round];
        let recs = random_events(&mut rng, n);
        let events_path = dir.path().join(format!("events-{round}.jsonl"));
        let mut text = String::new();
        for r in &recs {
            let o = serde_json::json!({"body": r.body, "host": r.host, "status": r.status, "lat": r.lat, "ts": r.ts});
            text.push_str(&o.to_string());
            text.push('\n');
        }
        std::fs::write(&events_path, text).unwrap();
        let mut qs = corpus();
        let mut g = Gen {
            rng: &mut rng,
            unnest: false,
        };
        for _ in 0..40 {
            qs.push(g.query());
        }
        let results = duckdb_results(
            &python,
            &dir.path().join(format!("round-{round}")),
            &events_path,
            qs.iter().map(|q| q.duck.as_str()),
        );
        for (i, q) in qs.iter().enumerate() {
            let mut duck = duck_rows(&results, i, &q.duck);
            let compiled = SqlQuery::compile(&q.ours, SqlOptions::default())
                .unwrap_or_else(|e| panic!("sluicegate rejected {}: {e}", q.ours));
            let mut ours: Vec<Vec<J>> = run_ours(&compiled, &recs)
                .iter()
                .map(|row| row.values.iter().map(to_json).collect())
                .collect();
            if !q.ordered {
                sort_rows(&mut ours);
                sort_rows(&mut duck);
            }
            if !rows_equal(&ours, &duck) {
                failures.push(format!(
                    "round {round} ({n} events), query {i}:\n  ours: {}\n  duck: {}\n  sluicegate: {:?}\n  duckdb:     {:?}",
                    q.ours,
                    q.duck,
                    ours.iter().take(8).collect::<Vec<_>>(),
                    duck.iter().take(8).collect::<Vec<_>>()
                ));
            }
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} queries differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(checked, 4 * (corpus().len() + 40));
}

// ---- windowed GROUP BY: final window results against DuckDB ------------------------------

/// The event-time disorder bound of the windowed runs, and their watermark delay.
const WATERMARK_MS: i64 = 5_000;
const T0: i64 = 1_700_000_000_000;

/// Random events whose event times are out of order, but never by more than the watermark:
/// event `i` has time `T0 + i·span/n + jitter` with `jitter < WATERMARK_MS`, so it is later
/// than (largest time before it − watermark) and no event is late. About 5% have no
/// timestamp (dropped and counted by event-time windows). Split in order into batches.
fn random_timed_batches(rng: &mut StdRng, n: usize, span_ms: i64) -> Vec<Vec<Rec>> {
    let mut recs = random_events(rng, n);
    for (i, r) in recs.iter_mut().enumerate() {
        if r.ts.is_some() {
            let base = T0 + i as i64 * span_ms / n.max(1) as i64;
            r.ts = Some((base + rng.gen_range(0..WATERMARK_MS)).to_string());
        }
    }
    let mut batches = Vec::new();
    let mut it = recs.into_iter().peekable();
    while it.peek().is_some() {
        let k = rng.gen_range(1..=(n / 8).max(2));
        batches.push(it.by_ref().take(k).collect::<Vec<_>>());
    }
    batches
}

/// A window in both dialects: ours, and DuckDB's source of (ws, we)-tagged rows.
#[derive(Debug, Clone, Copy)]
enum Win {
    Tumble(i64),
    Hop(i64, i64),
    Session(i64),
    ProcTumble(i64),
}

impl Win {
    fn ours(&self) -> String {
        let iv = |ms: i64| {
            if ms % 60_000 == 0 {
                format!("INTERVAL '{}' MINUTE", ms / 60_000)
            } else if ms % 1000 == 0 {
                format!("INTERVAL '{}' SECOND", ms / 1000)
            } else {
                format!("INTERVAL '{ms} milliseconds'")
            }
        };
        match *self {
            Win::Tumble(s) => format!("TUMBLE(event_time, {})", iv(s)),
            Win::Hop(p, s) => format!("HOP(event_time, {}, {})", iv(p), iv(s)),
            Win::Session(g) => format!("SESSION(event_time, {})", iv(g)),
            Win::ProcTumble(s) => format!("TUMBLE(proc_time, {})", iv(s)),
        }
    }
    /// Longest time after the last event until every window has closed (for idle batches).
    fn reach_ms(&self) -> i64 {
        match *self {
            Win::Tumble(s) | Win::Hop(_, s) | Win::ProcTumble(s) => s,
            Win::Session(g) => g,
        }
    }
}

const ET: &str = "(SELECT *, CAST(ts AS BIGINT) AS et FROM events WHERE ts IS NOT NULL)";

/// The DuckDB form of `SELECT window_start AS ws, window_end AS we, <keys>, <aggs> FROM events
/// [UNNEST] [WHERE] GROUP BY <win>, <keys> [HAVING] [per-window top-K]`.
fn duck_windowed(
    win: Win,
    unnest: bool,
    keys: &[String],
    aggs: &[String],
    pred: Option<&str>,
    having: Option<&str>,
    top: Option<(&str, usize)>,
) -> String {
    let un = if unnest {
        format!(" {UNNEST_DUCK}")
    } else {
        String::new()
    };
    let wh = pred.map(|p| format!(" WHERE {p}")).unwrap_or_default();
    let hv = having.map(|h| format!(" HAVING {h}")).unwrap_or_default();
    let mut sel = vec!["ws".to_string(), "we".to_string()];
    for (i, _) in keys.iter().enumerate() {
        sel.push(format!("k{i}"));
    }
    for (i, a) in aggs.iter().enumerate() {
        sel.push(format!("{a} AS a{i}"));
    }
    let kcols: Vec<String> = (0..keys.len()).map(|i| format!("k{i}")).collect();
    let kdefs: String = keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!(", {k} AS k{i}"))
        .collect();
    let grouped = match win {
        Win::Tumble(_) | Win::Hop(..) | Win::ProcTumble(_) => {
            let src = match win {
                Win::Tumble(s) => format!("(SELECT *, (et // {s}) * {s} AS ws, (et // {s}) * {s} + {s} AS we FROM {ET})"),
                Win::ProcTumble(s) => format!("(SELECT *, (bt // {s}) * {s} AS ws, (bt // {s}) * {s} + {s} AS we FROM events)"),
                Win::Hop(p, s) => format!(
                    "(SELECT *, (et // {p}) * {p} - hk * {p} AS ws, (et // {p}) * {p} - hk * {p} + {s} AS we FROM {ET} CROSS JOIN range(0, {}) AS h(hk))",
                    s / p
                ),
                Win::Session(_) => unreachable!(),
            };
            let mut gb = vec!["ws".to_string(), "we".to_string()];
            gb.extend(kcols.iter().cloned());
            format!(
                "SELECT {} FROM (SELECT *{kdefs} FROM {src} e{un}{wh}) r GROUP BY {}{hv}",
                sel.join(", "),
                gb.join(", ")
            )
        }
        Win::Session(g) => {
            // Rows of one event (UNNEST) share its time: the session id must be the same for
            // all rows of equal time, hence the RANGE frame (a ROWS frame would split ties).
            let part = if kcols.is_empty() {
                String::new()
            } else {
                format!("PARTITION BY {} ", kcols.join(", "))
            };
            let mut gb = kcols.clone();
            gb.push("sid".into());
            format!(
                "SELECT {} FROM (SELECT *, min(et) OVER (PARTITION BY {}) AS ws, max(et) OVER (PARTITION BY {}) + {g} AS we FROM \
                 (SELECT *, sum(nw) OVER ({part}ORDER BY et RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS sid FROM \
                 (SELECT *, CASE WHEN et - lag(et) OVER ({part}ORDER BY et) <= {g} THEN 0 ELSE 1 END AS nw FROM \
                 (SELECT *{kdefs} FROM {ET} e{un}{wh}) r1) r2) r3) r GROUP BY {}, ws, we{hv}",
                sel.join(", "),
                gb.join(", "),
                gb.join(", "),
                gb.join(", ")
            )
        }
    };
    match top {
        None => grouped,
        Some((order, n)) => format!(
            "SELECT * EXCLUDE (rn) FROM (SELECT *, row_number() OVER (PARTITION BY ws, we ORDER BY {order}) AS rn FROM ({grouped}) g) WHERE rn <= {n}"
        ),
    }
}

/// A windowed query in both dialects (always selecting window_start, window_end first).
struct WQ {
    ours: String,
    duck: String,
    win: Win,
}

#[allow(clippy::too_many_arguments)]
fn wq(
    win: Win,
    unnest: bool,
    keys: &[(String, String)],
    aggs: &[(String, String)],
    pred: Option<(String, String)>,
    having: Option<String>,
    top: Option<(String, usize)>,
) -> WQ {
    let mut sel = vec![
        "window_start AS ws".to_string(),
        "window_end AS we".to_string(),
    ];
    for (i, k) in keys.iter().enumerate() {
        sel.push(format!("{} AS k{i}", k.0));
    }
    for (i, a) in aggs.iter().enumerate() {
        sel.push(format!("{} AS a{i}", a.0));
    }
    let mut o = format!("SELECT {} FROM events", sel.join(", "));
    if unnest {
        o += &format!(" {UNNEST_OURS}");
    }
    if let Some(p) = &pred {
        o += &format!(" WHERE {}", p.0);
    }
    let mut gb = vec![win.ours()];
    gb.extend(keys.iter().map(|k| k.0.clone()));
    o += &format!(" GROUP BY {}", gb.join(", "));
    if let Some(h) = &having {
        o += &format!(" HAVING {h}");
    }
    if let Some((ob, n)) = &top {
        o += &format!(" ORDER BY {ob} LIMIT {n}");
    }
    let dk: Vec<String> = keys.iter().map(|k| k.1.clone()).collect();
    let da: Vec<String> = aggs.iter().map(|a| a.1.clone()).collect();
    let duck = duck_windowed(
        win,
        unnest,
        &dk,
        &da,
        pred.as_ref().map(|p| p.1.as_str()),
        having.as_deref(),
        top.as_ref().map(|(ob, n)| (ob.as_str(), *n)),
    );
    WQ { ours: o, duck, win }
}

fn s2(o: &str, d: &str) -> (String, String) {
    (o.to_string(), d.to_string())
}

fn windowed_corpus() -> Vec<WQ> {
    vec![
        // Trending: top-10 words over the last 10 s, every 1 s.
        wq(
            Win::Hop(1_000, 10_000),
            true,
            &[s2("word", "word")],
            &[s2("count(*)", "count(*)")],
            Some(s2("word <> ''", "word <> ''")),
            None,
            Some(("a0 DESC, k0".into(), 10)),
        ),
        // Alerts: hosts with more than 2 ERROR lines per minute.
        wq(
            Win::Tumble(60_000),
            false,
            &[s2("header('host')", "host")],
            &[s2("count(*)", "count(*)")],
            Some(s2("body LIKE '%ERROR%'", "body LIKE '%ERROR%'")),
            Some("count(*) > 2".into()),
            None,
        ),
        // Per-minute requests and 5xx per status (access-log style), distinct hosts exact.
        wq(
            Win::Tumble(60_000),
            false,
            &[s2("headers['status']", "status")],
            &[
                s2("count(*)", "count(*)"),
                s2(
                    "sum(CASE WHEN headers['status'] LIKE '5%' THEN 1 ELSE 0 END)",
                    "sum(CASE WHEN status LIKE '5%' THEN 1 ELSE 0 END)",
                ),
                s2("count(DISTINCT header('host'))", "count(DISTINCT host)"),
            ],
            None,
            None,
            None,
        ),
        // Sessions of activity per host.
        wq(
            Win::Session(2_000),
            false,
            &[s2("header('host')", "host")],
            &[
                s2("count(*)", "count(*)"),
                s2(
                    "max(CAST(header('lat') AS BIGINT))",
                    "max(TRY_CAST(lat AS BIGINT))",
                ),
            ],
            None,
            None,
            None,
        ),
        // Processing-time windows count events without a timestamp too.
        wq(
            Win::ProcTumble(3_000),
            false,
            &[],
            &[
                s2("count(*)", "count(*)"),
                s2("count(header('timestamp'))", "count(ts)"),
            ],
            None,
            None,
            None,
        ),
    ]
}

impl Gen<'_> {
    fn windowed_query(&mut self) -> WQ {
        let win = match self.rng.gen_range(0..10) {
            0 => Win::Tumble(1_000),
            1 | 2 => Win::Tumble(10_000),
            3 => Win::Tumble(60_000),
            4 => Win::Hop(1_000, 5_000),
            5 => Win::Hop(2_000, 10_000),
            6 => Win::Hop(5_000, 10_000),
            7 => Win::Session(500),
            8 => Win::Session(3_000),
            _ => Win::Session(1_500),
        };
        self.unnest = self.rng.gen_bool(0.35);
        let nkeys = self.rng.gen_range(0..3);
        let mut keys: Vec<(String, String)> = Vec::new();
        while keys.len() < nkeys {
            let k = self.key();
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        let naggs = self.rng.gen_range(1..4);
        let mut aggs: Vec<(String, String)> = Vec::new();
        while aggs.len() < naggs {
            let a = self.agg();
            if !aggs.contains(&a) {
                aggs.push(a);
            }
        }
        let pred = self.rng.gen_bool(0.6).then(|| self.pred(2));
        let having = self
            .rng
            .gen_bool(0.3)
            .then(|| format!("count(*) > {}", self.rng.gen_range(1..4)));
        let top = (!keys.is_empty() && self.rng.gen_bool(0.4)).then(|| {
            let mut ob = vec!["a0 DESC NULLS LAST".to_string()];
            for i in 0..keys.len() {
                ob.push(format!("k{i} NULLS LAST"));
            }
            (ob.join(", "), self.rng.gen_range(1..4))
        });
        wq(win, self.unnest, &keys, &aggs, pred, having, top)
    }
}

#[test]
fn windowed_final_results_equal_duckdb_on_out_of_order_events() {
    let python = duckdb_python();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(0x0071_7ED0_5EED);
    let mut checked = 0;
    let mut total_rows = 0;
    let mut failures = Vec::new();
    for round in 0..3 {
        let (n, span) = [(60usize, 30_000i64), (600, 120_000), (3000, 240_000)][round];
        let batches = random_timed_batches(&mut rng, n, span);
        let missing_ts = batches.iter().flatten().filter(|r| r.ts.is_none()).count() as u64;
        let events_path = dir.path().join(format!("wevents-{round}.jsonl"));
        let mut text = String::new();
        for (b, recs) in batches.iter().enumerate() {
            for r in recs {
                // Batch N runs at N s (SqlQuery::run_batches): proc_time.
                let o = serde_json::json!({"body": r.body, "host": r.host, "status": r.status, "lat": r.lat, "ts": r.ts, "bt": (b as i64 + 1) * 1000});
                text.push_str(&o.to_string());
                text.push('\n');
            }
        }
        std::fs::write(&events_path, text).unwrap();
        let mut qs = windowed_corpus();
        let mut g = Gen {
            rng: &mut rng,
            unnest: false,
        };
        for _ in 0..30 {
            qs.push(g.windowed_query());
        }
        let results = duckdb_results(
            &python,
            &dir.path().join(format!("wround-{round}")),
            &events_path,
            qs.iter().map(|q| q.duck.as_str()),
        );
        let events: Vec<Vec<Event>> = batches
            .iter()
            .map(|b| b.iter().map(to_event).collect())
            .collect();
        for (i, q) in qs.iter().enumerate() {
            let mut duck = duck_rows(&results, i, &q.duck);
            let opts = SqlOptions {
                emit: EmitMode::Final,
                watermark: std::time::Duration::from_millis(WATERMARK_MS as u64),
                idle_timeout: Some(std::time::Duration::from_secs(1)),
                ..SqlOptions::default()
            };
            let compiled = SqlQuery::compile(&q.ours, opts)
                .unwrap_or_else(|e| panic!("sluicegate rejected {}: {e}", q.ours));
            assert!(compiled.is_windowed());
            let idle = ((q.win.reach_ms() + WATERMARK_MS) / 1000 + 3) as usize;
            let run = compiled.run_batches(&events, idle).unwrap();
            assert_eq!(
                run.late_events, 0,
                "no event is beyond the watermark: {}",
                q.ours
            );
            let want_bad = if matches!(q.win, Win::ProcTumble(_)) {
                0
            } else {
                missing_ts
            };
            assert_eq!(run.bad_timestamps, want_bad, "{}", q.ours);
            let mut ours: Vec<Vec<J>> = run
                .rows()
                .iter()
                .map(|row| row.values.iter().map(to_json).collect())
                .collect();
            sort_rows(&mut ours);
            sort_rows(&mut duck);
            if i < windowed_corpus().len() && n >= 600 {
                assert!(
                    !ours.is_empty(),
                    "the corpus query yields windows: {}",
                    q.ours
                );
            }
            total_rows += ours.len();
            if !rows_equal(&ours, &duck) {
                failures.push(format!(
                    "round {round} ({n} events), windowed query {i}:\n  ours: {}\n  duck: {}\n  sluicegate ({} rows): {:?}\n  duckdb     ({} rows): {:?}",
                    q.ours,
                    q.duck,
                    ours.len(),
                    ours.iter().take(6).collect::<Vec<_>>(),
                    duck.len(),
                    duck.iter().take(6).collect::<Vec<_>>()
                ));
            }
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} windowed queries differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(checked, 3 * (windowed_corpus().len() + 30));
    assert!(total_rows > 5_000, "only {total_rows} window rows compared");
}
