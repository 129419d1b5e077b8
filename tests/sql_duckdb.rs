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
//! Windowed queries are not part of the corpus: windowed GROUP BY is not supported yet.

use std::path::{Path, PathBuf};
use std::process::Command;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value as J;

use sluicegate::event::Event;
use sluicegate::pipeline::sql::{Row, SqlOptions, SqlQuery, Value};

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
        let list: Vec<J> = qs
            .iter()
            .enumerate()
            .map(|(i, q)| serde_json::json!({"id": i.to_string(), "sql": q.duck}))
            .collect();
        let qpath = dir.path().join(format!("queries-{round}.json"));
        let opath = dir.path().join(format!("results-{round}.json"));
        std::fs::write(&qpath, J::Array(list).to_string()).unwrap();
        let out = Command::new(&python)
            .arg(compat_dir().join("duckdb_runner.py"))
            .args([&events_path, &qpath, &opath])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "duckdb runner failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let results: J = serde_json::from_slice(&std::fs::read(&opath).unwrap()).unwrap();
        for (i, q) in qs.iter().enumerate() {
            let r = &results[i.to_string()];
            if let Some(e) = r.get("error") {
                panic!(
                    "DuckDB rejected the translation of query {i} ({}): {e}",
                    q.duck
                );
            }
            let mut duck: Vec<Vec<J>> = r["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|row| row.as_array().unwrap().clone())
                .collect();
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
