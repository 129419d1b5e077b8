//! Unit tests of the SQL front end: rejected queries (message and position), every function
//! with its null behaviour, and whole queries through a pipeline.

use super::compile::{compile, Cx, Shape};
use super::exec::for_each_row;
use super::*;
use crate::event::Event;
use crate::pipeline::output::{format_print, JsonRecord};
use crate::pipeline::Text;

fn opts() -> SqlOptions {
    SqlOptions::default()
}

/// Evaluates the single SELECT column of `SELECT <expr> AS v FROM events` on one event.
fn eval_on(expr: &str, body: &str, headers: &[(&str, &str)]) -> Value {
    let plan = compile(&format!("SELECT {expr} AS v FROM events"), &opts())
        .unwrap_or_else(|e| panic!("{expr}: {e}"));
    let ev = Event::new(headers.iter().copied(), body.as_bytes());
    let Shape::Project { cols } = &plan.shape else {
        panic!("not a projection")
    };
    let mut out = Vec::new();
    for_each_row(&plan, &ev, 5_000, &mut |cx: &Cx<'_>| {
        out.push(cols[0].eval(cx).to_value())
    });
    assert_eq!(out.len(), 1, "{expr}");
    out.pop().unwrap_or(Value::Null)
}

fn ev(expr: &str) -> Value {
    eval_on(
        expr,
        "Hello World",
        &[("host", "h1"), ("timestamp", "1234")],
    )
}

fn s(x: &str) -> Value {
    Value::Str(Text::new(x))
}

#[test]
fn scalar_functions_and_their_nulls() {
    use Value::{Bool as B, Float as F, Int as I, Null as N};
    let cases: Vec<(&str, Value)> = vec![
        ("lower(body)", s("hello world")),
        ("upper(body)", s("HELLO WORLD")),
        ("lower(NULL)", N),
        ("trim('  a b  ')", s("a b")),
        ("trim(NULL)", N),
        ("length('héllo')", I(5)),
        ("octet_length('héllo')", I(6)),
        ("length(NULL)", N),
        ("substr(body, 7)", s("World")),
        ("substr(body, 1, 5)", s("Hello")),
        ("substring(body FROM 7 FOR 3)", s("Wor")),
        ("substr(body, NULL)", N),
        ("substr(body, 1, -1)", N),
        ("concat('a', NULL, 1, 2.5, TRUE)", s("a12.5true")),
        ("concat(NULL)", s("")),
        ("'a' || 'b'", s("ab")),
        ("'a' || NULL", N),
        ("regexp_extract(body, 'W(o)r', 1)", s("o")),
        ("regexp_extract(body, 'xyz')", s("")),
        ("regexp_extract(NULL, 'x')", N),
        ("regexp_like(body, '^Hel+o')", B(true)),
        ("regexp_like(body, 'bye')", B(false)),
        ("regexp_like(NULL, 'x')", N),
        ("json_value('{\"a\":{\"b\":7}}', '$.a.b')", s("7")),
        ("json_value('nope', '$.a')", N),
        ("json_value(NULL, '$.a')", N),
        ("parse_timestamp('1970-01-01T00:00:01Z')", I(1000)),
        (
            "parse_timestamp('10/Oct/2000:13:55:36 -0700', '%d/%b/%Y:%H:%M:%S %z')",
            I(971_211_336_000),
        ),
        ("parse_timestamp('garbage')", N),
        ("parse_timestamp(NULL)", N),
        ("CAST('42' AS BIGINT)", I(42)),
        ("CAST('x' AS BIGINT)", N),
        ("CAST(2.5 AS BIGINT)", I(3)),
        ("CAST(7 AS VARCHAR)", s("7")),
        ("CAST(1.0 AS VARCHAR)", s("1.0")),
        ("CAST('1.5' AS DOUBLE)", F(1.5)),
        ("CAST('yes' AS BOOLEAN)", B(true)),
        ("CAST(NULL AS BIGINT)", N),
        ("'3'::BIGINT + 1", I(4)),
        ("coalesce(NULL, header('nope'), 'x')", s("x")),
        ("coalesce(NULL, 1, 2.5)", F(1.0)),
        ("coalesce(NULL, NULL)", N),
        ("CASE WHEN body LIKE 'H%' THEN 'h' ELSE 'other' END", s("h")),
        ("CASE WHEN NULL THEN 1 END", N),
        (
            "CASE header('host') WHEN 'h1' THEN 1 WHEN 'h2' THEN 2 ELSE 0 END",
            I(1),
        ),
        ("CASE 1 WHEN 2 THEN 'x' END", N),
        ("body LIKE '%World'", B(true)),
        ("body NOT LIKE '%World'", B(false)),
        ("body LIKE 'hello%'", B(false)),
        ("body ILIKE 'hello%'", B(true)),
        ("NULL LIKE 'a'", N),
        ("header('host') IN ('h0', 'h1')", B(true)),
        ("header('host') NOT IN ('h0', 'h1')", B(false)),
        ("header('host') IN ('h0', NULL)", N),
        ("header('nope') IN ('h0')", N),
        ("3 BETWEEN 1 AND 5", B(true)),
        ("3 NOT BETWEEN 1 AND 5", B(false)),
        ("NULL BETWEEN 1 AND 5", N),
        ("1 < 2 AND 2 < 3", B(true)),
        ("NULL AND FALSE", B(false)),
        ("NULL AND TRUE", N),
        ("NULL OR TRUE", B(true)),
        ("NULL OR FALSE", N),
        ("NOT NULL", N),
        ("NOT (1 = 2)", B(true)),
        ("1 = NULL", N),
        ("'a' < 'b'", B(true)),
        ("1 = 1.0", B(true)),
        ("7 % 3", I(1)),
        ("7 / 2", F(3.5)),
        ("1 / 0", N),
        ("9223372036854775807 + 1", N),
        ("-(2)", I(-2)),
        ("headers['host']", s("h1")),
        ("header('absent')", N),
        ("event_time", I(1234)),
        ("proc_time", I(5_000)),
        ("body_hex()", s("48656c6c6f20576f726c64")),
        ("header('host') IS NULL", B(false)),
        ("header('x') IS NULL", B(true)),
        ("header('x') IS NOT NULL", B(false)),
    ];
    for (expr, want) in cases {
        let got = ev(expr);
        assert_eq!(got, want, "{expr}: got {got:?}, want {want:?}");
    }
    // event_time: missing or unparsable header → NULL; the header name is an option.
    assert_eq!(eval_on("event_time", "", &[]), Value::Null);
    assert_eq!(
        eval_on("event_time", "", &[("timestamp", "soon")]),
        Value::Null
    );
    let plan = compile(
        "SELECT event_time FROM events",
        &SqlOptions {
            timestamp_header: "ts".into(),
            ..opts()
        },
    )
    .unwrap();
    let e = Event::new([("ts", "77")], b"x");
    let Shape::Project { cols } = &plan.shape else {
        panic!()
    };
    let mut got = None;
    for_each_row(&plan, &e, 0, &mut |cx: &Cx<'_>| {
        got = Some(cols[0].eval(cx).to_value())
    });
    assert_eq!(got, Some(Value::Int(77)));
}

#[test]
fn unnest_and_where_split_rows() {
    let plan = compile(
        "SELECT w FROM events CROSS JOIN UNNEST(split(body, ' ')) AS t(w) WHERE w <> 'b' AND length(body) > 2",
        &opts(),
    )
    .unwrap();
    assert!(plan.pre_filter.is_some() && plan.post_filter.is_some());
    let Shape::Project { cols } = &plan.shape else {
        panic!()
    };
    let mut rows = Vec::new();
    for body in ["a b  c", "b", "x"] {
        let e = Event::from_body(body);
        for_each_row(&plan, &e, 0, &mut |cx: &Cx<'_>| {
            rows.push(cols[0].eval(cx).to_value())
        });
    }
    assert_eq!(rows, vec![s("a"), s(""), s("c")]);
    // A non-UTF-8 body under a query reading body is bad input.
    let e = Event::from_body([0xffu8, 0xfe]);
    assert!(!for_each_row(&plan, &e, 0, &mut |_: &Cx<'_>| panic!(
        "no rows"
    )));
}

/// (query, kind, position, part of the message, found)
#[test]
fn bad_queries_are_rejected_with_position_and_alternative() {
    use SqlErrorKind::*;
    let table: &[(&str, SqlErrorKind, &str, &str, &str)] = &[
        ("SELEC word FROM events", Syntax, "1:1", "syntax error: expected an SQL statement", "SELEC"),
        ("SELECT word FROM events WHERE", Syntax, "1:30", "syntax error: expected an expression", "EOF"),
        ("SELECT count(* FROM events", Syntax, "1:16", "syntax error: expected", "FROM"),
        ("SELECT body FROM events;\nSELECT body FROM events", Unsupported, "2:1", "exactly one SELECT", "SELECT body FROM events"),
        ("INSERT INTO t VALUES (1)", Unsupported, "1:1", "only SELECT queries", "INSERT"),
        ("SELECT body FROM logs", Unknown, "1:18", "unknown table: a pipeline query reads FROM events", "logs"),
        ("SELECT body", Semantic, "1:1", "missing FROM events", "SELECT"),
        ("SELECT * FROM events", Unsupported, "1:8", "SELECT * is not supported", "*"),
        ("SELECT bdy FROM events", Unknown, "1:8", "unknown column; columns are body, event_time", "bdy"),
        ("SELECT lowr(body) FROM events", Unknown, "1:8", "unknown function; supported: lower, upper", "lowr"),
        ("SELECT lower(1) FROM events", Type, "1:14", "lower needs a VARCHAR here, found BIGINT", "1"),
        ("SELECT substr(body) FROM events", Type, "1:15", "wrong number of arguments: substr(string, start[, length])", "SUBSTR(body)"),
        ("SELECT body FROM events WHERE length(body)", Type, "1:31", "WHERE needs a BOOLEAN condition, found BIGINT", "length(body)"),
        ("SELECT body FROM events WHERE body = 1", Type, "1:31", "cannot compare VARCHAR with BIGINT", "body = 1"),
        ("SELECT body, count(*) FROM events GROUP BY header('h')", Semantic, "1:8", "must appear in GROUP BY or be used inside an aggregate", "body"),
        ("SELECT body FROM events WHERE count(*) > 1", Semantic, "1:31", "aggregates are not allowed in WHERE; use HAVING", "count(*) > 1"),
        ("SELECT count(count(*)) FROM events", Semantic, "1:14", "aggregates cannot be nested", "count(*)"),
        ("SELECT sum(body) FROM events", Type, "1:12", "sum needs a number, found VARCHAR", "body"),
        ("SELECT sum(DISTINCT event_time) FROM events", Unsupported, "1:8", "DISTINCT is only supported in count(DISTINCT x)", "sum(DISTINCT event_time)"),
        ("SELECT w, count(*) FROM events CROSS JOIN UNNEST(split(body, '')) AS t(w) GROUP BY w", Type, "1:62", "the split delimiter must not be empty", "''"),
        ("SELECT w FROM events CROSS JOIN UNNEST(split(body, ' '))", Semantic, "1:40", "name the UNNEST column", "UNNEST(split(body, ' '))"),
        ("SELECT body FROM events JOIN other ON true", Unsupported, "1:30", "joins are not supported", "other"),
        ("SELECT split(body, ' ') FROM events", Type, "1:8", "split returns an array", "split(body, ' ')"),
        ("SELECT count(*) FROM events GROUP BY TUMBLE(event_time, 10)", Unsupported, "1:57", "a window length must be an INTERVAL; write a window length as INTERVAL '<n>' <unit>", "10"),
        ("SELECT count(*) FROM events GROUP BY TUMBLE(event_time, INTERVAL '1' MONTH)", Unsupported, "1:66", "unit MONTH is not supported", "INTERVAL '1' MONTH"),
        ("SELECT count(*) FROM events GROUP BY TUMBLE(event_time, INTERVAL '1.5' SECOND)", Unsupported, "1:66", "`1.5` is not a whole number", "INTERVAL '1.5' SECOND"),
        ("SELECT count(*) FROM events GROUP BY TUMBLE(event_time, INTERVAL '0' SECOND)", Unsupported, "1:66", "must be positive", "INTERVAL '0' SECOND"),
        ("SELECT count(*) FROM events GROUP BY TUMBLE(event_time, INTERVAL '5 fortnights')", Unsupported, "1:66", "unit `fortnights` is not supported", "INTERVAL '5 fortnights'"),
        ("SELECT count(*) FROM events GROUP BY TUMBLE(header('ts'), INTERVAL '1' SECOND)", Unsupported, "1:45", "the time of a window must be the column event_time (header `timestamp`", "header('ts')"),
        ("SELECT count(*) FROM events GROUP BY TUMBLE(event_time)", Type, "1:38", "wrong number of arguments: TUMBLE(event_time, INTERVAL '10' SECOND)", "TUMBLE(event_time)"),
        ("SELECT count(*) FROM events GROUP BY HOP(event_time, INTERVAL '3' SECOND, INTERVAL '10' SECOND)", Unsupported, "1:84", "the HOP size (10000 ms) must be a whole multiple of the slide (3000 ms)", "INTERVAL '10' SECOND"),
        ("SELECT count(*) FROM events GROUP BY SESSION(event_time, INTERVAL '1' SECOND), TUMBLE(event_time, INTERVAL '1' SECOND)", Unsupported, "1:80", "at most one window", "TUMBLE(event_time"),
        ("SELECT count(*) FROM events GROUP BY TUMBLE_START(event_time, INTERVAL '1' SECOND)", Unsupported, "1:38", "tumble_start is not a window; supported windows (in GROUP BY): TUMBLE(", "TUMBLE_START("),
        ("SELECT TUMBLE_END(event_time, INTERVAL '1' SECOND), count(*) FROM events GROUP BY TUMBLE(event_time, INTERVAL '1' SECOND)", Unsupported, "1:8", "tumble_end is not supported: select window_start / window_end", "TUMBLE_END("),
        ("SELECT TUMBLE(event_time, INTERVAL '1' SECOND), count(*) FROM events GROUP BY TUMBLE(event_time, INTERVAL '1' SECOND)", Unsupported, "1:8", "only allowed as a GROUP BY item; select its bounds as window_start / window_end", "TUMBLE("),
        ("SELECT window_end FROM events", Semantic, "1:8", "window_end needs a windowed GROUP BY; supported windows", "window_end"),
        ("SELECT count(*) FROM events WHERE window_start > 0 GROUP BY TUMBLE(event_time, INTERVAL '1' SECOND)", Semantic, "1:35", "window_start is known only per window", "window_start"),
        ("SELECT max(window_end) FROM events GROUP BY TUMBLE(event_time, INTERVAL '1' SECOND)", Semantic, "1:12", "window_end is known only per window", "window_end"),
        ("SELECT body FROM events WHERE event_time > INTERVAL '1' SECOND", Unsupported, "1:53", "INTERVAL is only allowed as a window length in GROUP BY", "INTERVAL '1' SECOND"),
        ("SELECT word, count(*) AS n FROM events CROSS JOIN UNNEST(split(body, ' ')) AS t(word) GROUP BY HOP(event_time, INTERVAL '1' SECOND, INTERVAL '10' SECOND), word ORDER BY n DESC LIMIT 10", Semantic, "1:183", "with emit = update a batch outputs only the groups it changed: set emit = final", "LIMIT 10"),
        ("SELECT body FROM events ORDER BY body LIMIT -1", Type, "1:46", "LIMIT needs a non-negative integer literal", "-1"),
        ("SELECT body FROM events LIMIT 5 OFFSET 2", Unsupported, "1:40", "OFFSET is not supported", "2"),
        ("SELECT body FROM events WHERE body LIKE body", Type, "1:41", "the LIKE pattern must be a string literal", "body"),
        ("SELECT regexp_like(body, '(') FROM events", Type, "1:26", "bad regular expression", "'('"),
        ("SELECT regexp_extract(body, '(a)', 2) FROM events", Type, "1:36", "the group must be an integer literal from 0 to 1", "2"),
        ("SELECT json_value(body, 'a.b') FROM events", Type, "1:25", "a JSON path starts with `$`", "'a.b'"),
        ("SELECT parse_timestamp(body, '%Q') FROM events", Type, "1:30", "unsupported directive %Q", "'%Q'"),
        ("SELECT CAST(body AS DATE) FROM events", Unsupported, "1:13", "unsupported CAST target", "DATE"),
        ("SELECT headers FROM events", Type, "1:8", "headers is a map", "headers"),
        ("SELECT headers[1] FROM events", Type, "1:16", "a header name must be a string literal", "1"),
        ("SELECT body AS batch_time FROM events", Semantic, "1:8", "batch_time is reserved", "batch_time"),
        ("SELECT body AS x, event_time AS x FROM events", Semantic, "1:19", "two output columns are named `x`", "x"),
        ("SELECT DISTINCT body FROM events", Unsupported, "1:1", "SELECT DISTINCT is not supported; use GROUP BY", "DISTINCT"),
        ("SELECT body FROM events UNION SELECT body FROM events", Unsupported, "1:1", "set operations", "SELECT body FROM events UNION"),
        ("SELECT body FROM (SELECT body FROM events)", Unsupported, "1:19", "the query must read FROM events", "(SELECT body FROM events)"),
        ("SELECT count(*) FROM events GROUP BY 3", Semantic, "1:38", "GROUP BY position 3 is not in the select list (1..1)", "3"),
        ("SELECT body FROM events ORDER BY 2", Semantic, "1:34", "ORDER BY position 2 is not in the select list (1..1)", "2"),
        ("SELECT count(*) FROM events HAVING body = 'x'", Semantic, "1:36", "must appear in GROUP BY", "body"),
        ("SELECT body FROM events WHERE body IN (SELECT body FROM events)", Unsupported, "1:31", "subqueries are not supported", "body IN (SELECT"),
        ("SELECT row_number() OVER () FROM events", Unsupported, "1:8", "OVER (window functions)", "row_number() OVER ()"),
        ("SELECT body FROM events WHERE body = \"x\"", Unknown, "1:38", "unknown column", "\"x\""),
    ];
    let mut failures = Vec::new();
    for (q, kind, pos, msg, found) in table {
        match SqlQuery::compile(q, opts()) {
            Ok(_) => failures.push(format!("{q}: accepted")),
            Err(e) => {
                let ok = e.kind == *kind
                    && e.pos.to_string() == *pos
                    && e.message.contains(msg)
                    && e.found.starts_with(found);
                if !ok {
                    failures.push(format!("{q}:\n   got  {:?} {} found `{}`: {}\n   want {kind:?} {pos} found `{found}`: ..{msg}..", e.kind, e.pos, e.found, e.message));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn errors_render_with_position_and_optional_context() {
    let e = SqlQuery::compile("SELECT bdy FROM events", opts()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "query 1:8: found `bdy`: unknown column; columns are body, event_time, proc_time, \
         headers['k'] (or header('k')) and the UNNEST column"
    );
    let e = e.with_context("flume.conf:12: a1.sinks.wc.query");
    assert!(e
        .to_string()
        .starts_with("flume.conf:12: a1.sinks.wc.query: query 1:8: found `bdy`"));
    assert!("sometimes".parse::<EmitMode>().is_err());
    assert_eq!("FINAL".parse::<EmitMode>().unwrap(), EmitMode::Final);
}

#[test]
fn no_panic_on_odd_inputs() {
    for q in [
        "",
        ";",
        "SELECT",
        "SELECT 1",
        "SELECT 1 FROM events",
        "SELECT (((((((((((1))))))))))) FROM events",
        "SELECT body FROM events e, UNNEST(split(body, ' ')) AS t(w), UNNEST(split(body, ' ')) AS u(x)",
        "SELECT count(*) FROM events GROUP BY ALL",
        "SELECT e.body, t.w FROM events e CROSS JOIN UNNEST(split(e.body, ',')) AS t(w)",
        "WITH x AS (SELECT 1) SELECT body FROM events",
        "SELECT CASE WHEN 1 THEN 2 END FROM events",
        "SELECT 'a' + 1 FROM events",
        "SELECT coalesce(1, 'a') FROM events",
        "SELECT INTERVAL '1' SECOND FROM events",
    ] {
        let _ = SqlQuery::compile(q, opts());
    }
    // Recursion: deeply nested parentheses are a positioned error, not a stack overflow.
    let deep = format!("SELECT {}1{} FROM events", "(".repeat(500), ")".repeat(500));
    assert!(SqlQuery::compile(&deep, opts()).is_err());
}

/// Runs `sql` over `events` as one micro-batch at batch time 1000 ms.
fn run_batch(sql: &str, events: &[Event]) -> Vec<Row> {
    let q = SqlQuery::compile(sql, opts()).unwrap_or_else(|e| panic!("{sql}: {e}"));
    q.run_batch(events).unwrap()
}

fn vals(rows: &[Row]) -> Vec<Vec<Value>> {
    rows.iter().map(|r| r.values.clone()).collect()
}

#[test]
fn word_count_runs_fused_and_matches_a_reference() {
    let sql = "SELECT word, count(*) AS n FROM events CROSS JOIN UNNEST(split(body, ' ')) AS t(word) GROUP BY word";
    assert!(SqlQuery::compile(sql, opts()).unwrap().is_fused());
    let mut evs = Vec::new();
    let mut want: std::collections::BTreeMap<String, i64> = Default::default();
    for i in 0..3000 {
        let body = format!("w{} w{} x", i % 7, i % 13);
        for w in body.split(' ') {
            *want.entry(w.to_string()).or_default() += 1;
        }
        evs.push(Event::from_body(body));
    }
    evs.push(Event::from_body([0xffu8, b' ', b'a']));
    let rows = run_batch(sql, &evs);
    let got: Vec<(String, i64)> = rows
        .iter()
        .map(|r| match (&r.values[0], &r.values[1]) {
            (Value::Str(w), Value::Int(n)) => (w.to_string(), *n),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(got, want.into_iter().collect::<Vec<_>>());
    assert_eq!(&*rows[0].names, &["word".to_string(), "n".to_string()]);
}

#[test]
fn plain_word_count_runs_on_the_word_table_with_the_same_rows() {
    let on_table = |sql: &str| {
        let plan = compile(sql, &opts()).unwrap_or_else(|e| panic!("{sql}: {e}"));
        super::exec::word_table_delim(&plan)
    };
    let from = "FROM events CROSS JOIN UNNEST(split(body, ' ')) AS t(word)";
    for sql in [
        format!("SELECT word, count(*) AS n {from} GROUP BY word"),
        format!("SELECT count(*) AS n {from} GROUP BY word"),
        format!("SELECT t.word AS w, count(*) AS n {from} GROUP BY 1 ORDER BY n DESC, w LIMIT 3"),
        format!("SELECT word, count(*) AS n {from} GROUP BY word HAVING count(*) > 1"),
        "SELECT body, count(*) FROM events e CROSS JOIN UNNEST(split(e.body, ',')) AS t(body) GROUP BY body".into(),
    ] {
        assert!(on_table(&sql).is_some(), "{sql}");
    }
    for sql in [
        format!("SELECT word, count(*) AS n {from} WHERE word <> 'a' GROUP BY word"),
        format!("SELECT word, count(*) AS n {from} WHERE length(body) > 0 GROUP BY word"),
        format!("SELECT lower(word), count(*) AS n {from} GROUP BY lower(word)"),
        format!("SELECT word, count(word) AS n {from} GROUP BY word"),
        format!("SELECT word, count(DISTINCT body) AS n {from} GROUP BY word"),
        format!("SELECT word, header('h'), count(*) AS n {from} GROUP BY word, header('h')"),
        "SELECT word, count(*) FROM events CROSS JOIN UNNEST(split(lower(body), ' ')) AS t(word) GROUP BY word".into(),
        "SELECT word, count(*) FROM events CROSS JOIN UNNEST(split(body, '::')) AS t(word) GROUP BY word".into(),
        "SELECT word, count(*) FROM events CROSS JOIN UNNEST(split(body, '\u{e9}')) AS t(word) GROUP BY word".into(),
        // `body` here is the UNNEST column, not the event's body.
        "SELECT body, count(*) FROM events CROSS JOIN UNNEST(split(header('x'), ' ')) AS t(body) GROUP BY body".into(),
    ] {
        assert!(on_table(&sql).is_none(), "{sql}");
    }
    // Against the fused `reduce_by_key` path (the same query behind a WHERE that keeps every
    // event) and `str::split`: double, leading and trailing spaces (empty words), tabs (not a
    // delimiter), empty bodies, long and non-ASCII words, NUL, and non-UTF-8 bodies.
    let pieces = [
        "a",
        "",
        "bb",
        "a\tb",
        "\u{e9}t\u{e9}",
        "longer-than-eight",
        "x\u{0}",
        "a",
    ];
    let mut evs = Vec::new();
    let mut want: std::collections::BTreeMap<String, i64> = Default::default();
    for i in 0..2500usize {
        let n = i % 6;
        let body: Vec<&str> = (0..n)
            .map(|j| pieces[(i * 7 + j * 3) % pieces.len()])
            .collect();
        let body = body.join(" ");
        for w in body.split(' ') {
            *want.entry(w.to_string()).or_default() += 1;
        }
        evs.push(Event::from_body(body));
        if i % 500 == 0 {
            evs.push(Event::from_body([b'a', b' ', 0xff]));
        }
    }
    let sql = format!("SELECT word, count(*) AS n {from} GROUP BY word");
    let fast = run_batch(&sql, &evs);
    let slow = run_batch(
        &format!("SELECT word, count(*) AS n {from} WHERE length(body) >= 0 GROUP BY word"),
        &evs,
    );
    assert_eq!(vals(&fast), vals(&slow));
    let got: Vec<(String, i64)> = fast
        .iter()
        .map(|r| match (&r.values[0], &r.values[1]) {
            (Value::Str(w), Value::Int(n)) => (w.to_string(), *n),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(got, want.into_iter().collect::<Vec<_>>());
    // HAVING, ORDER BY and LIMIT still apply per group.
    let top = run_batch(
        &format!("SELECT count(*) AS n, word {from} GROUP BY word HAVING count(*) > 1 ORDER BY n DESC, word LIMIT 2"),
        &evs,
    );
    let top_slow = run_batch(
        &format!("SELECT count(*) AS n, word {from} WHERE true GROUP BY word HAVING count(*) > 1 ORDER BY n DESC, word LIMIT 2"),
        &evs,
    );
    assert_eq!(top.len(), 2);
    assert_eq!(vals(&top), vals(&top_slow));
}

#[test]
fn general_path_aggregates_having_and_top_k() {
    let mut evs = Vec::new();
    for i in 0..2000i64 {
        let host = format!("h{}", i % 5);
        let lat = (i * 37 % 101).to_string();
        let mut hs = vec![("host", host.as_str()), ("lat", lat.as_str())];
        if i % 10 == 0 {
            hs.pop();
        }
        evs.push(Event::new(hs, format!("u{} GET", i % 3)));
    }
    let sql = "SELECT header('host') AS host, count(*) AS n, count(header('lat')) AS with_lat, \
               count(DISTINCT substr(body, 1, 2)) AS users, sum(CAST(header('lat') AS BIGINT)) AS total, \
               min(CAST(header('lat') AS BIGINT)) AS lo, max(header('lat')) AS hi_text, \
               avg(CAST(header('lat') AS DOUBLE)) AS mean \
               FROM events GROUP BY header('host') HAVING count(*) > 0 ORDER BY total DESC, host LIMIT 3";
    assert!(!SqlQuery::compile(sql, opts()).unwrap().is_fused());
    let rows = run_batch(sql, &evs);
    // Reference, computed directly.
    let mut refs = Vec::new();
    for h in 0..5i64 {
        let mine: Vec<i64> = (0..2000i64).filter(|i| i % 5 == h).collect();
        let lats: Vec<i64> = mine
            .iter()
            .filter(|i| *i % 10 != 0)
            .map(|i| i * 37 % 101)
            .collect();
        let users: std::collections::BTreeSet<i64> = mine.iter().map(|i| i % 3).collect();
        let total: i64 = lats.iter().sum();
        let hi = lats.iter().map(|l| l.to_string()).max().unwrap();
        refs.push(vec![
            s(&format!("h{h}")),
            Value::Int(mine.len() as i64),
            Value::Int(lats.len() as i64),
            Value::Int(users.len() as i64),
            Value::Int(total),
            Value::Int(*lats.iter().min().unwrap()),
            s(&hi),
            Value::Float(total as f64 / lats.len() as f64),
        ]);
    }
    refs.sort_by(|a, b| b[4].cmp(&a[4]).then(a[0].cmp(&b[0])));
    refs.truncate(3);
    let got = vals(&rows);
    assert_eq!(got.len(), 3);
    for (g, w) in got.iter().zip(&refs) {
        assert_eq!(g[..7], w[..7]);
        let (Value::Float(a), Value::Float(b)) = (&g[7], &w[7]) else {
            panic!("{g:?}")
        };
        assert!((a - b).abs() < 1e-9);
    }
}

#[test]
fn global_aggregate_yields_one_row_even_when_empty() {
    let rows = run_batch(
        "SELECT count(*) AS n, sum(event_time) AS s, max(body) AS m FROM events",
        &[],
    );
    assert_eq!(
        vals(&rows),
        vec![vec![Value::Int(0), Value::Null, Value::Null]]
    );
    let rows = run_batch(
        "SELECT count(*) AS n FROM events WHERE body LIKE '%x%'",
        &[Event::from_body("axb"), Event::from_body("b")],
    );
    assert_eq!(vals(&rows), vec![vec![Value::Int(1)]]);
}

#[test]
fn projection_keeps_event_order_and_orders_by_hidden_keys() {
    let evs: Vec<Event> = ["b 2", "a 10", "c 1"]
        .iter()
        .map(|b| Event::from_body(*b))
        .collect();
    let rows = run_batch(
        "SELECT upper(substr(body, 1, 1)) AS k, proc_time AS t FROM events",
        &evs,
    );
    assert_eq!(
        vals(&rows),
        vec![
            vec![s("B"), Value::Int(1000)],
            vec![s("A"), Value::Int(1000)],
            vec![s("C"), Value::Int(1000)]
        ]
    );
    let rows = run_batch(
        "SELECT body FROM events ORDER BY CAST(substr(body, 3) AS BIGINT) DESC LIMIT 2",
        &evs,
    );
    assert_eq!(vals(&rows), vec![vec![s("a 10")], vec![s("b 2")]]);
}

#[test]
fn rows_print_as_tuples_and_write_json_objects() {
    let evs: Vec<Event> = ["to be or not to be"]
        .iter()
        .map(|b| Event::from_body(*b))
        .collect();
    let rows = run_batch(
        "SELECT word, count(*) AS n FROM events CROSS JOIN UNNEST(split(body, ' ')) AS t(word) GROUP BY word ORDER BY n DESC, word LIMIT 3",
        &evs,
    );
    assert_eq!(
        format_print(&rows, 10, 1000),
        "-------------------------------------------\nTime: 1000 ms\n\
         -------------------------------------------\n(be,2)\n(to,2)\n(not,1)\n\n"
    );
    let mut line = String::new();
    rows[0].json_record(1000, &mut line);
    assert_eq!(line, r#"{"batch_time":1000,"word":"be","n":2}"#);
    let r = Row {
        names: vec!["a".to_string(), "b".into(), "c".into()].into(),
        values: vec![Value::Null, Value::Float(0.5), Value::Bool(true)],
    };
    let mut line = String::new();
    r.json_record(7, &mut line);
    assert_eq!(line, r#"{"batch_time":7,"a":null,"b":0.5,"c":true}"#);
    let mut p = String::new();
    crate::pipeline::Render::render(&r, &mut p);
    assert_eq!(p, "(null,0.5,true)");
}

// ---- windowed GROUP BY --------------------------------------------------------------------

fn tev(ts: i64, body: &str, host: &str) -> Event {
    let t = ts.to_string();
    Event::new([("timestamp", t.as_str()), ("host", host)], body.as_bytes())
}

fn wopts(emit: EmitMode, watermark_ms: u64, idle_ms: Option<u64>) -> SqlOptions {
    SqlOptions {
        emit,
        watermark: std::time::Duration::from_millis(watermark_ms),
        idle_timeout: idle_ms.map(std::time::Duration::from_millis),
        ..SqlOptions::default()
    }
}

/// (batch time, rows) of every batch that output something.
fn nonempty(run: &BatchRun) -> Vec<(i64, Vec<Vec<Value>>)> {
    run.batches
        .iter()
        .filter(|(_, r)| !r.is_empty())
        .map(|(t, r)| (*t, vals(r)))
        .collect()
}

#[test]
fn tumble_final_fires_once_when_the_watermark_passes_the_end() {
    use Value::Int as I;
    let q = SqlQuery::compile(
        "SELECT window_start, window_end, header('host') AS host, count(*) AS n \
         FROM events GROUP BY TUMBLE(event_time, INTERVAL '10' SECOND), header('host')",
        wopts(EmitMode::Final, 2_000, Some(1_000)),
    )
    .unwrap();
    assert!(q.is_windowed() && !q.is_fused());
    assert_eq!(q.column_types()[0], SqlType::Int);
    let batches = vec![
        vec![
            tev(1_000, "a", "h1"),
            tev(9_999, "b", "h2"),
            tev(4_000, "c", "h1"),
        ],
        // max 11 s, watermark 9 s: [0, 10 s) still open; 8 s is in time.
        vec![tev(11_000, "d", "h1"), tev(8_000, "e", "h2")],
        // max 12.5 s, watermark 10.5 s: [0, 10 s) fires.
        vec![tev(12_500, "f", "h1")],
        // no timestamp: counted, dropped.
        vec![Event::new([("host", "h1")], &b"g"[..])],
    ];
    let run = q.run_batches(&batches, 0).unwrap();
    assert_eq!(
        nonempty(&run),
        vec![(
            3_000,
            vec![
                vec![I(0), I(10_000), s("h1"), I(2)],
                vec![I(0), I(10_000), s("h2"), I(2)],
            ]
        )]
    );
    assert_eq!((run.late_events, run.bad_timestamps), (0, 1));
    // Idle batches move the watermark past 20 s: [10 s, 20 s) fires too.
    let run = q.run_batches(&batches, 12).unwrap();
    let all = nonempty(&run);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[1].1, vec![vec![I(10_000), I(20_000), s("h1"), I(2)]]);
}

#[test]
fn update_mode_outputs_changed_windows_every_batch_and_late_events_are_counted() {
    use Value::Int as I;
    let q = SqlQuery::compile(
        "SELECT window_start AS ws, count(*) AS n, count(DISTINCT header('host')) AS hosts \
         FROM events GROUP BY TUMBLE(event_time, INTERVAL '10' SECOND)",
        wopts(EmitMode::Update, 1_000, None),
    )
    .unwrap();
    let batches = vec![
        vec![tev(1_000, "a", "h1"), tev(2_000, "b", "h1")],
        vec![tev(3_000, "c", "h2"), tev(15_000, "d", "h1")],
        // watermark before this batch: 14 s, so [0, 10 s) has closed: 5 s is late.
        vec![tev(5_000, "e", "h3"), tev(16_000, "f", "h2")],
    ];
    let run = q.run_batches(&batches, 0).unwrap();
    assert_eq!(
        nonempty(&run),
        vec![
            (1_000, vec![vec![I(0), I(2), I(1)]]),
            (
                2_000,
                vec![vec![I(0), I(3), I(2)], vec![I(10_000), I(1), I(1)]]
            ),
            (3_000, vec![vec![I(10_000), I(2), I(2)]]),
        ]
    );
    assert_eq!(run.late_events, 1);
}

#[test]
fn hop_top_k_applies_per_window_and_count_distinct_is_exact_across_panes() {
    use Value::Int as I;
    let q = SqlQuery::compile(
        "SELECT window_end, word, count(*) AS n, count(DISTINCT header('host')) AS hosts \
         FROM events CROSS JOIN UNNEST(split(body, ' ')) AS t(word) \
         GROUP BY HOP(event_time, INTERVAL '1' SECOND, INTERVAL '2' SECOND), word \
         HAVING count(*) > 1 ORDER BY n DESC, word LIMIT 2",
        wopts(EmitMode::Final, 0, Some(1_000)),
    )
    .unwrap();
    let batches = vec![vec![
        tev(100, "x y y", "h1"),
        tev(900, "z z z", "h1"),
        tev(1_100, "x x y", "h2"),
        tev(1_500, "w", "h2"),
    ]];
    let run = q.run_batches(&batches, 5).unwrap();
    let rows: Vec<Vec<Value>> = run.rows().iter().map(|r| r.values.clone()).collect();
    assert_eq!(
        rows,
        vec![
            // [-1 s, 1 s): x1 y2 z3
            vec![I(1_000), s("z"), I(3), I(1)],
            vec![I(1_000), s("y"), I(2), I(1)],
            // [0, 2 s): x3 y3 z3 w1: ties broken by word; hosts exact over both panes
            vec![I(2_000), s("x"), I(3), I(2)],
            vec![I(2_000), s("y"), I(3), I(2)],
            // [1 s, 3 s): x2 y1 w1
            vec![I(3_000), s("x"), I(2), I(1)],
        ]
    );
}

#[test]
fn session_windows_per_key_and_processing_time_windows() {
    use Value::Int as I;
    let q = SqlQuery::compile(
        "SELECT header('host') AS host, window_start, window_end, count(*) AS n \
         FROM events GROUP BY SESSION(event_time, INTERVAL '3' SECOND), header('host') \
         ORDER BY host",
        wopts(EmitMode::Final, 0, Some(1_000)),
    )
    .unwrap();
    let batches = vec![vec![
        tev(1_000, "a", "h1"),
        tev(4_000, "a", "h1"), // touches [1 s, 4 s): merged
        tev(8_000, "a", "h1"),
        tev(2_000, "a", "h2"),
    ]];
    let run = q.run_batches(&batches, 15).unwrap();
    let mut rows: Vec<Vec<Value>> = run.rows().iter().map(|r| r.values.clone()).collect();
    rows.sort();
    assert_eq!(
        rows,
        vec![
            vec![s("h1"), I(1_000), I(7_000), I(2)],
            vec![s("h1"), I(8_000), I(11_000), I(1)],
            vec![s("h2"), I(2_000), I(5_000), I(1)],
        ]
    );

    // proc_time: batch N runs at N s; a 2 s window closes when the batch time reaches its end.
    let q = SqlQuery::compile(
        "SELECT window_start, count(*) AS n, max(proc_time) AS last FROM events \
         GROUP BY TUMBLE(proc_time, INTERVAL '2' SECOND)",
        wopts(EmitMode::Final, 60_000, None),
    )
    .unwrap();
    let one = |b: &str| Event::new([("host", "h")], b.as_bytes());
    let batches = vec![
        vec![one("a"), one("b")],
        vec![one("c")],
        vec![one("d")],
        vec![],
    ];
    let run = q.run_batches(&batches, 0).unwrap();
    assert_eq!(
        nonempty(&run),
        vec![
            (2_000, vec![vec![I(0), I(2), I(1_000)]]),
            (4_000, vec![vec![I(2_000), I(2), I(3_000)]]),
        ]
    );
    assert_eq!(run.bad_timestamps, 0);
}

#[test]
fn window_state_survives_the_snapshot_encoding() {
    use super::exec::Acc;
    use crate::pipeline::{Persist, SnapshotReader};
    let vals = vec![
        Value::Null,
        Value::Bool(true),
        Value::Int(-7),
        Value::Float(2.5),
        s("a string longer than twenty-two bytes"),
    ];
    let mut distinct: std::collections::HashSet<Value, crate::pipeline::FastBuildHasher> =
        Default::default();
    distinct.extend(vals.iter().cloned());
    let accs = vec![
        Acc::Count(3),
        Acc::Distinct(distinct),
        Acc::SumInt(-5, true),
        Acc::SumFloat(1.5, false),
        Acc::Min(Some(s("m"))),
        Acc::Max(None),
        Acc::Avg(3.0, 2),
    ];
    let mut buf = Vec::new();
    (vals.clone(), accs.clone()).persist(&mut buf);
    let (v2, a2): (Vec<Value>, Vec<Acc>) = SnapshotReader::new(&buf).read().unwrap();
    assert_eq!(v2, vals);
    assert_eq!(
        a2.iter().map(Acc::value).collect::<Vec<_>>(),
        accs.iter().map(Acc::value).collect::<Vec<_>>()
    );
    let mut again = Vec::new();
    (v2, a2).persist(&mut again);
    assert_eq!(again, buf, "equal states give equal bytes");
}

#[test]
fn approx_count_distinct_is_within_its_bound_and_the_same_on_one_or_four_workers() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    // 3 batches of 20,000 events; users from 60,000 (so groups see ~4,000 to ~18,000 distinct
    // users); 3 groups; event times within the batch's 2-s span.
    let mut rng = StdRng::seed_from_u64(5);
    let batches: Vec<Vec<Event>> = (0..3i64)
        .map(|b| {
            (0..20_000)
                .map(|_| {
                    let ts = (b * 2_000 + rng.gen_range(0..2_000)).to_string();
                    let user = format!("user-{}", rng.gen_range(0..60_000));
                    let g = ["a", "b", "c"][rng.gen_range(0..3)];
                    Event::new([("timestamp", ts.as_str()), ("user", user.as_str())], g)
                })
                .collect()
        })
        .collect();
    // 4 standard errors of p = 14 (1.04 / 128), plus 1 for rounding.
    let bound = |exact: i64| 4.0 * 1.04 / 128.0 * exact as f64 + 1.0;
    for sql in [
        "SELECT body AS g, count(DISTINCT header('user')) AS exact, \
         approx_count_distinct(header('user')) AS approx FROM events GROUP BY body",
        "SELECT window_start, body AS g, count(DISTINCT header('user')) AS exact, \
         approx_count_distinct(header('user')) AS approx, count(*) AS n FROM events \
         GROUP BY HOP(event_time, INTERVAL '1' SECOND, INTERVAL '2' SECOND), body",
        "SELECT window_start, approx_count_distinct(header('user')) AS approx, \
         count(DISTINCT header('user')) AS exact FROM events \
         GROUP BY SESSION(event_time, INTERVAL '500' MILLISECOND)",
    ] {
        let q = SqlQuery::compile(sql, wopts(EmitMode::Final, 0, Some(1_000))).unwrap();
        let one = q.run_batches_on(&batches, 3, 1).unwrap().rows();
        let four = q.run_batches_on(&batches, 3, 4).unwrap().rows();
        assert!(!one.is_empty(), "{sql}");
        assert_eq!(vals(&one), vals(&four), "{sql}: 1 worker vs 4");
        for r in &one {
            let (Some(Value::Int(e)), Some(Value::Int(a))) = (r.get("exact"), r.get("approx"))
            else {
                panic!("{sql}: {r:?}")
            };
            assert!(*e > 1_000, "{sql}: the test needs large sets ({e})");
            assert!(
                ((a - e) as f64).abs() <= bound(*e),
                "{sql}: approx {a}, exact {e}"
            );
        }
    }
    // NULLs are not counted; no rows: 0, as count(DISTINCT).
    let q = SqlQuery::compile(
        "SELECT approx_count_distinct(header('none')) AS a, count(DISTINCT header('none')) AS e \
         FROM events",
        opts(),
    )
    .unwrap();
    let rows = q.run_batch(&batches[0][..10]).unwrap();
    assert_eq!(vals(&rows), vec![vec![Value::Int(0), Value::Int(0)]]);
}
