//! The streaming-SQL front end: one `SELECT` over the stream `events`, compiled onto the
//! pipeline's operators.
//!
//! # The dialect in one paragraph
//!
//! A query reads the micro-batch's events as rows of `events(body VARCHAR, event_time BIGINT,
//! proc_time BIGINT)` plus `headers['k']` / `header('k')` (VARCHAR, `NULL` when absent),
//! optionally flattened with `CROSS JOIN UNNEST(split(<string>, '<delim>')) AS t(<col>)` (the
//! DStream `flatMap`), filtered with `WHERE`, grouped **per micro-batch** with `GROUP BY` (the
//! DStream `reduceByKey`: every batch yields the groups of that batch), filtered with `HAVING`,
//! and cut to a top-K per batch with `ORDER BY ... LIMIT n`. Timestamps are BIGINT milliseconds
//! since the epoch. The full reference, with types, null behaviour and every deviation from
//! standard SQL, is `docs/pipelines.md`.
//!
//! # Windows
//!
//! A `GROUP BY` item `TUMBLE(t, size)`, `HOP(t, slide, size)` or `SESSION(t, gap)` (`t` is
//! `event_time` or `proc_time`, lengths are `INTERVAL`s) makes the query windowed: it runs on
//! the pipeline's event-time window operator
//! ([`DStream::event_time_window_in_place`](crate::pipeline::DStream::event_time_window_in_place))
//! with key = the other group keys and value = the aggregates' accumulators (so state and
//! watermark are checkpointed like any stateful stage). The group scope then starts with
//! `window_start, window_end` (BIGINT ms). `HAVING`, the `SELECT` list and `ORDER BY ... LIMIT`
//! apply per window. Late events (behind the watermark) and events without a timestamp are
//! counted by the operator and dropped. A per-window top-K needs emit mode `final`: in `update`
//! mode a batch sees only the groups it changed, so `LIMIT` is rejected there at compile time.
//!
//! # Compile once, run closures
//!
//! [`SqlQuery::compile`] parses with `sqlparser`'s `GenericDialect`, checks names and types,
//! and compiles every expression into a boxed closure (regular expressions, `LIKE` patterns,
//! JSON paths and formats parsed once); the per-event path never looks at the AST. Values borrow
//! from the event while they are evaluated (a word of the body is a `&str` slice of the
//! channel's mmap) and become owned only as group keys or output, where strings of up to 22
//! bytes stay inline ([`Text`](crate::pipeline::Text)). Grouping queries whose only aggregate is a
//! count run on the same fused `Events::apply → reduce_by_key` path as a hand-written word count
//! (see `exec.rs`); everything else runs as one sharded `transform` per batch.
//!
//! # Results and outputs
//!
//! [`SqlQuery::attach`] returns a `DStream<`[`Row`]`>`; a row is a typed tuple (column names
//! shared per query). Rows plug into the pipeline's existing outputs: `print(n)` shows
//! `(v1,v2,...)` under Spark's `Time: <ms> ms` banner, `to_jsonl` / `to_channel` write one JSON
//! object per row `{"batch_time":<ms>,"<col>":<value>,...}`, `save_as_text_files` writes the
//! tuples. Groups of one batch come out sorted by group key unless `ORDER BY` says otherwise.
//!
//! # Errors
//!
//! Every rejection is a [`SqlError`] with the position inside the query (`line:column`), what
//! was found there and what is supported instead; no query makes compilation panic, and no
//! unsupported construct is silently ignored. [`SqlError::with_context`] lets the conf loader
//! prefix `flume.conf:12: a1.sinks.wc.query`. At run time nothing fails per event: functions
//! return `NULL` on bad input (documented per function), and a body that is not UTF-8 under a
//! query that reads `body` is counted as `non_utf8` and skipped.
//!
//! # Options (future sink keys)
//!
//! [`SqlOptions`]: the header holding the event time (`timestamp`, Flume's timestamp
//! interceptor), the emit mode (`update`: every batch, the changed windows' current values;
//! `final`: once, when the watermark passes the window's end), the watermark delay and an idle
//! timeout. For per-batch grouping both emit modes give the same rows (a batch's groups are final
//! when the batch ends).

mod compile;
mod error;
mod exec;
pub mod func;
mod hll;
mod once;
mod value;

use std::sync::Arc;
use std::time::Duration;

pub use error::{Pos, SqlError, SqlErrorKind};
pub use once::BatchRun;
pub use value::{Row, SqlType, Value};

use super::{DStream, StreamingContext};

/// When a windowed query emits a window's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmitMode {
    /// Every batch, the current value of every window that changed (DStream behaviour).
    #[default]
    Update,
    /// Once, when the watermark passes the window's end.
    Final,
}

impl std::str::FromStr for EmitMode {
    type Err = SqlError;
    fn from_str(s: &str) -> Result<EmitMode, SqlError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "update" => Ok(EmitMode::Update),
            "final" => Ok(EmitMode::Final),
            _ => Err(SqlError::new(
                SqlErrorKind::Option,
                Pos::default(),
                s,
                "emit mode must be `update` or `final`",
            )),
        }
    }
}

/// Settings that travel with a query (they become sink keys in `flume.conf`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlOptions {
    /// The header holding `event_time` (ms since the epoch). Default `timestamp`.
    pub timestamp_header: String,
    /// Emit mode of windowed queries. Default `update`.
    pub emit: EmitMode,
    /// Bounded out-of-orderness of event time (windowed queries): the watermark trails the
    /// largest `event_time` seen by this much. Default 0. (Sink key `watermark`.)
    pub watermark: Duration,
    /// Event-time windows: once no event with a timestamp has arrived for this long of batch
    /// time, event time is taken to move with batch time, so a quiet stream still closes its
    /// last windows. `None` (default): the watermark moves only with new events.
    /// (Sink key `idleTimeout`.)
    pub idle_timeout: Option<Duration>,
}

impl Default for SqlOptions {
    fn default() -> Self {
        SqlOptions {
            timestamp_header: "timestamp".into(),
            emit: EmitMode::Update,
            watermark: Duration::ZERO,
            idle_timeout: None,
        }
    }
}

/// A compiled query (see the module docs).
#[derive(Clone)]
pub struct SqlQuery {
    text: String,
    options: SqlOptions,
    plan: Arc<compile::Plan>,
}

impl std::fmt::Debug for SqlQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlQuery")
            .field("text", &self.text)
            .field("columns", &self.plan.names)
            .field("fused", &self.is_fused())
            .finish()
    }
}

impl SqlQuery {
    /// Parses, checks and compiles `sql`.
    pub fn compile(sql: &str, options: SqlOptions) -> Result<SqlQuery, SqlError> {
        if options.timestamp_header.is_empty() {
            return Err(SqlError::new(
                SqlErrorKind::Option,
                Pos::default(),
                "",
                "the timestamp header name must not be empty",
            ));
        }
        let plan = compile::compile(sql, &options)?;
        Ok(SqlQuery {
            text: sql.to_string(),
            options,
            plan: Arc::new(plan),
        })
    }

    /// The output column names.
    pub fn columns(&self) -> &[String] {
        &self.plan.names
    }

    /// The output column types (`NULL` for a column that is always null).
    pub fn column_types(&self) -> &[SqlType] {
        &self.plan.types[..self.plan.names.len()]
    }

    /// The options it was compiled with.
    pub fn options(&self) -> &SqlOptions {
        &self.options
    }

    /// True for a windowed `GROUP BY` (`TUMBLE`, `HOP`, `SESSION`): the query runs on the
    /// pipeline's event-time window operator and keeps state across batches.
    pub fn is_windowed(&self) -> bool {
        self.plan.window.is_some()
    }

    /// True when the query runs on the fused `reduce_by_key` path (see the module docs).
    pub fn is_fused(&self) -> bool {
        exec::fusable(&self.plan)
    }

    /// Adds the query to `ctx`: the stream of result rows of every batch. The query text is
    /// part of the pipeline's fingerprint (a changed query refuses an old checkpoint).
    pub fn attach(&self, ctx: &StreamingContext) -> DStream<Row> {
        let canon: String = self.text.split_whitespace().collect::<Vec<_>>().join(" ");
        exec::attach(
            self.plan.clone(),
            &self.options,
            ctx,
            &format!("sql({canon})"),
        )
    }
}

#[cfg(test)]
mod tests;
