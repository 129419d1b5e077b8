"""Runs DuckDB queries for the streaming-SQL differential test.

Usage: python duckdb_runner.py <events.jsonl> <queries.json> <out.json>
Loads the events (one JSON object per line: body, host, status, lat, ts — all strings or null)
into the table `events`, runs every query {"id", "sql"} and writes {"<id>": {"rows": [...]} or
{"error": "..."}}. Values are written as JSON (HUGEINT sums as ints, doubles as floats).
"""
import json
import sys

import duckdb


def main():
    events, queries, out = sys.argv[1:4]
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE events AS SELECT * FROM read_json(?, format='newline_delimited', "
        "columns={'body': 'VARCHAR', 'host': 'VARCHAR', 'status': 'VARCHAR', "
        "'lat': 'VARCHAR', 'ts': 'VARCHAR'})",
        [events],
    )
    results = {}
    with open(queries) as f:
        qs = json.load(f)
    for q in qs:
        try:
            rows = con.execute(q["sql"]).fetchall()
            conv = []
            for r in rows:
                conv.append([v if (v is None or isinstance(v, (str, bool, float))) else int(v) for v in r])
            results[q["id"]] = {"rows": conv}
        except Exception as e:  # reported per query by the Rust side
            results[q["id"]] = {"error": str(e)}
    with open(out, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
