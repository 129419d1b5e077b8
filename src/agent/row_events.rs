//! Result rows as Flume events: the shape the `pipeline` sink's `channel` and `hdfs` outputs
//! share ([`super::pipeline_sink`], [`super::pipeline_hdfs`]).
//!
//! One event per row. The body is the row as one JSON object,
//! `{"batch_time":<ms>,"<col>":<value>,...}`. The headers are the row's group-key columns
//! (`<col>=<value>`, the value rendered as `print` shows it; a `NULL` key is left out), then
//! `sluicegate.batch = <pipeline>-<batch id>` and `timestamp` (unless a key column has that
//! name): the batch time, or with [`row_events_at`] the row's time column (`window_start`) when
//! it holds a number.

use crate::event::Event;
use crate::pipeline::sql::{Row, Value};
use crate::pipeline::{JsonRecord, Render};

/// The events of the `channel` output for one batch (see the module docs).
pub fn row_events(
    rows: &[Row],
    key_columns: &[usize],
    pipeline: &str,
    batch_id: u64,
    batch_time_ms: i64,
) -> Vec<Event> {
    row_events_at(rows, key_columns, pipeline, batch_id, batch_time_ms, None)
}

/// [`row_events`] whose `timestamp` header is the row's column `time_column` when it holds a
/// number (the `hdfs` output passes `window_start`), else the batch time.
pub fn row_events_at(
    rows: &[Row],
    key_columns: &[usize],
    pipeline: &str,
    batch_id: u64,
    batch_time_ms: i64,
    time_column: Option<usize>,
) -> Vec<Event> {
    let tag = format!("{pipeline}-{batch_id}");
    let batch_ts = batch_time_ms.to_string();
    let mut body = String::new();
    rows.iter()
        .map(|row| {
            let ts = match time_column.and_then(|i| row.values.get(i)) {
                Some(Value::Int(ms)) => ms.to_string(),
                _ => batch_ts.clone(),
            };
            body.clear();
            row.json_record(batch_time_ms, &mut body);
            let mut headers: Vec<(String, String)> = Vec::with_capacity(key_columns.len() + 2);
            for &i in key_columns {
                let (Some(name), Some(v)) = (row.names.get(i), row.values.get(i)) else {
                    continue;
                };
                if matches!(v, Value::Null) {
                    continue;
                }
                let mut s = String::new();
                v.render(&mut s);
                headers.push((name.clone(), s));
            }
            for (k, v) in [("sluicegate.batch", &tag), ("timestamp", &ts)] {
                if !headers.iter().any(|(n, _)| n == k) {
                    headers.push((k.to_string(), v.clone()));
                }
            }
            Event::new(headers, body.as_bytes())
        })
        .collect()
}
