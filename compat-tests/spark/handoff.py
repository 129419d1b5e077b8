#!/usr/bin/env python3
"""Spark Structured Streaming side of the sluicegate -> Spark hand-off test (spark_handoff.rs).

A streaming query with the file source reads the JSON Lines directory a sluicegate pipeline
writes (`batch-<batch_time_ms>-<batch_id:010>.jsonl`, renamed in from hidden `.batch-*.tmp`
names, which Spark's file listing skips), with an explicit schema and `maxFilesPerTrigger`, and
`foreachBatch` appends every micro-batch's rows to --out, each tagged with the source file
(`input_file_name()`), Spark's batch id and this run's id, followed by one `{"done": ...}` line.
Each micro-batch is written with one write() and fsynced, so a batch either appears with its
`done` line or not at all.

Phases, every one bounded by --timeout:
  1. a processing-time query (trigger every --trigger-ms) runs while the pipeline writes;
  2. once --stop-file exists and the query is idle (no trigger active, no new data), it is
     stopped and the same checkpoint is drained with an `availableNow` query, which ends itself.
A batch id Spark re-executes (after a stop mid-batch) appears twice with the same rows; the
reader keeps one copy per batch id and checks that they agree.

stdout: one JSON line per event: {"event": "started"}, {"event": "draining"},
{"event": "finished", "batches": n, "rows": m}. Errors go to stderr, exit status 1.
"""
import argparse
import json
import os
import sys
import time
import urllib.parse
import uuid

ap = argparse.ArgumentParser()
ap.add_argument("--input-dir", required=True)
ap.add_argument("--out", required=True, help="JSONL of every row Spark saw (appended)")
ap.add_argument("--checkpoint", required=True)
ap.add_argument("--stop-file", required=True, help="created by the test when the pipeline is done")
ap.add_argument("--timeout", type=float, default=180.0, help="s, whole run")
ap.add_argument("--max-files-per-trigger", type=int, default=2)
ap.add_argument("--trigger-ms", type=int, default=500)
a = ap.parse_args()

deadline = time.monotonic() + a.timeout
run_id = uuid.uuid4().hex[:12]


def say(**kv):
    print(json.dumps(kv), flush=True)


def fail(msg):
    print(f"handoff.py: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql.functions import input_file_name  # noqa: E402
from pyspark.sql.types import LongType, StringType, StructField, StructType  # noqa: E402

spark = (
    SparkSession.builder.master("local[2]")
    .appName("sluicegate-handoff")
    .config("spark.ui.enabled", "false")
    .config("spark.driver.host", "127.0.0.1")
    .config("spark.driver.bindAddress", "127.0.0.1")
    .config("spark.sql.shuffle.partitions", "2")
    .config("spark.driver.memory", "512m")
    .getOrCreate()
)
spark.sparkContext.setLogLevel("WARN")

# The pipeline's pair-stream record: {"batch_time": <ms>, "key": <key>, "value": <value>}.
schema = StructType(
    [
        StructField("batch_time", LongType(), False),
        StructField("key", StringType(), True),
        StructField("value", LongType(), True),
    ]
)

out = open(a.out, "ab")


def write_batch(df, batch_id):
    rows = df.collect()
    lines = []
    for r in rows:
        path = urllib.parse.unquote(urllib.parse.urlparse(r["file"]).path)
        lines.append(
            json.dumps(
                {
                    "run": run_id,
                    "spark_batch": batch_id,
                    "file": os.path.basename(path),
                    "batch_time": r["batch_time"],
                    "key": r["key"],
                    "value": r["value"],
                }
            )
        )
    lines.append(
        json.dumps(
            {"run": run_id, "spark_batch": batch_id, "done": len(rows), "wall_ms": int(time.time() * 1000)}
        )
    )
    out.write(("\n".join(lines) + "\n").encode())
    out.flush()
    os.fsync(out.fileno())


def start(**trigger):
    return (
        spark.readStream.format("json")
        .schema(schema)
        .option("maxFilesPerTrigger", a.max_files_per_trigger)
        .option("mode", "FAILFAST")
        .load(a.input_dir)
        .withColumn("file", input_file_name())
        .writeStream.foreachBatch(write_batch)
        .option("checkpointLocation", a.checkpoint)
        .trigger(**trigger)
        .start()
    )


def left():
    return deadline - time.monotonic()


try:
    q = start(processingTime=f"{a.trigger_ms} milliseconds")
    say(event="started", run=run_id)
    while True:
        if q.awaitTermination(0.2):
            fail(f"the streaming query ended by itself: {q.exception()}")
        if os.path.exists(a.stop_file):
            st = q.status
            if not st["isTriggerActive"] and not st["isDataAvailable"]:
                break
        if left() <= 0:
            fail(f"timed out after {a.timeout} s before the stop file appeared; status {q.status}")
    q.stop()
    say(event="draining")
    q = start(availableNow=True)
    if not q.awaitTermination(max(left(), 1.0)):
        q.stop()
        fail(f"the availableNow drain did not finish within the {a.timeout} s bound")
    if q.exception() is not None:
        fail(f"the availableNow drain failed: {q.exception()}")
except Exception as e:  # StreamingQueryException, Py4J errors: report and fail
    fail(f"{type(e).__name__}: {e}")
finally:
    out.close()

say(event="finished", run=run_id)
spark.stop()
