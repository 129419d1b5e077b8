//! The `pipeline` sink: a streaming-SQL pipeline declared in `flume.conf` (issue 10).
//!
//! ```text
//! a1.sinks.wc.type = pipeline
//! a1.sinks.wc.channel = c1
//! a1.sinks.wc.batchInterval = 1 s
//! a1.sinks.wc.query = SELECT word, count(*) AS n \
//!                     FROM events CROSS JOIN UNNEST(split(body, ' ')) AS t(word) \
//!                     GROUP BY word
//! a1.sinks.wc.output.type = print
//! ```
//!
//! A pipeline sink is not a [`Sink`](crate::sink::Sink) driven by a sink runner: it is a
//! [`StreamingContext`] over its channel (the pipeline takes every batch from the channel in
//! one transaction and commits it only after the batch's outputs are durable), built from the
//! compiled [`SqlQuery`] and one output, and run by
//! [`Agent::run_pipeline`](super::lifecycle::Agent::run_pipeline), so its `PIPELINE.<name>`
//! counters join the agent's `/metrics`. Several pipeline sinks may run in one agent, each over
//! its own channel.
//!
//! ## Keys (relative to `<agent>.sinks.<name>.`)
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `channel` | required | the channel it reads (no other sink should read it) |
//! | `query` | required | one `SELECT` over `events` (`crate::pipeline::sql`); backslash continuation for several lines |
//! | `batchInterval` | `1 s` | micro-batch interval: `<integer> <unit>`, unit `ms`, `s`, `min` or `h` |
//! | `watermark` | `0 s` | bounded out-of-orderness of `event_time` (windowed queries) |
//! | `emit` | `update` | `update` or `final` (windowed queries) |
//! | `idleTimeout` | unset | windowed queries: with no events for this long (batch time), the watermark advances by processing time so a quiet stream's last windows close |
//! | `timestampHeader` | `timestamp` | the header holding `event_time` (ms since the epoch) |
//! | `checkpointDir` | `~/.flume/pipeline/<agent>.<name>` | plan and state snapshots (exactly-once recovery) |
//! | `discardStateOnChange` | `false` | start over when the stored definition (query, outputs) differs |
//! | `workers` | `0` | worker threads for keyed work; 0 = one per core |
//! | `output.type` | required | `print`, `text`, `jsonl`, `channel`, `postgres` (alias `postgresql`) or `hdfs` |
//! | `output.limit` | `10` | `print`: rows shown per batch (Spark's `DStream.print(n)`) |
//! | `output.dir` | required for `text`, `jsonl` | directory of the batch files |
//! | `output.prefix` | the sink name | `text`: Spark's `saveAsTextFiles` prefix |
//! | `output.suffix` | empty | `text`: Spark's `saveAsTextFiles` suffix |
//! | `output.channel` | required for `channel` | another channel of the agent receiving the rows |
//! | `output.hdfs.*`, `output.serializer`, `output.serializer.*` | see [`super::pipeline_hdfs`] | `hdfs`: the HDFS sink's keys (`output.hdfs.path` required) |
//! | `output.url`, `output.host`, `output.port`, `output.user`, `output.password`, `output.database`, `output.table`, `output.keys`, `output.accumulate`, `output.createTable`, `output.progressTable`, `output.connectTimeout` | see [`crate::pipeline::postgres`] | `postgres`: the server, the table (required) and how rows land |
//!
//! Every problem of a pipeline sink is reported at load (so by `sluicegate check` too) as
//! `file:line: key: message`; a query that does not compile is reported on the line of its
//! `query` key, with the position inside the query (`query 1:45:`; continuation lines are
//! joined, their leading blanks dropped, as Java's properties loader does) and what is supported
//! instead. Keys no code reads are reported as for any component (with a suggestion).
//!
//! ## Outputs
//!
//! * `print`: `(v1,v2,...)` per row under Spark's `Time: <batch ms> ms` banner, on stdout.
//! * `text`: Spark's `saveAsTextFiles` layout, `<dir>/<prefix>-<batch ms>[.<suffix>]/part-00000`
//!   (rows as tuples) and `_SUCCESS`, written atomically.
//! * `jsonl`: `<dir>/batch-<batch ms>-<batch id>.jsonl`, one object
//!   `{"batch_time":<ms>,"<col>":<value>,...}` per row (the Spark hand-off directory).
//! * `channel`: one event per row into `output.channel`: the body is the same JSON object; the
//!   headers are the row's group-key columns (`<col>=<value>`, a `NULL` key is left out), plus
//!   `sluicegate.batch = <pipeline>-<batch id>` and `timestamp = <batch ms>` (unless a key column
//!   has that name). The group-key columns are the `SELECT` items with no aggregate call, when the
//!   query groups (has `GROUP BY` or an aggregate); a non-grouping query's events have no key
//!   headers. The rows of a batch go in in chunks of the target's `transactionCapacity`; a batch
//!   whose put fails is retried, so after a partial failure the target may see a batch's first
//!   chunks twice (at-least-once), as with any Flume sink.
//! * `postgres`: the rows upserted into a PostgreSQL table keyed by `output.keys` (plus
//!   `window_start`/`window_end` when selected), `output.accumulate` columns added up across
//!   batches, one database transaction per batch that also records the batch id in
//!   `output.progressTable`: exactly once across crashes, because a pipeline sink always has a
//!   `checkpointDir` ([`crate::pipeline::postgres`]). The settings are checked against the
//!   query's columns at load (so by `sluicegate check`, which does not connect); the pipeline
//!   connects when it writes its first batch, and a server that is down fails the batch, which
//!   is rolled back into the channel and retried with backoff.
//! * `hdfs`: each row as the `channel` output's event (JSON body, group keys as headers,
//!   `timestamp` = `window_start` or the batch time) written with the HDFS sink's file types and
//!   serializers under `output.hdfs.path` (its escapes bucket the rows): one file per bucket per
//!   batch, named by the batch, renamed into place when the batch is written — exactly once
//!   ([`super::pipeline_hdfs`]).

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::pipeline_hdfs::HdfsOutput;
pub use super::row_events::row_events;
use crate::channel::Channel;
use crate::config::{ConfigError, Context};
use crate::pipeline::postgres::{PostgresConfig, PostgresOutput};
use crate::pipeline::sql::{EmitMode, Row, SqlOptions, SqlQuery};
use crate::pipeline::{PipelineConfig, StreamingContext};

/// Default `output.limit` (Spark's `DStream.print()` shows 10).
pub const DEFAULT_PRINT_LIMIT: usize = 10;

/// Where a pipeline sink's rows go.
#[derive(Debug, Clone)]
pub enum PipelineOutput {
    /// `print`: the first `limit` rows of every batch on stdout.
    Print {
        /// `output.limit`.
        limit: usize,
    },
    /// `text`: Spark's `saveAsTextFiles(dir/prefix, suffix)`.
    Text {
        /// `output.dir`.
        dir: PathBuf,
        /// `output.prefix`.
        prefix: String,
        /// `output.suffix`.
        suffix: String,
    },
    /// `jsonl`: JSON Lines per batch into `dir`.
    Jsonl {
        /// `output.dir`.
        dir: PathBuf,
    },
    /// `channel`: events into another channel of the agent.
    Channel {
        /// `output.channel`.
        channel: String,
    },
    /// `postgres`: rows upserted into a PostgreSQL table, one transaction per batch
    /// ([`crate::pipeline::postgres`]), checked against the query at load.
    Postgres(Box<PostgresOutput>),
    /// `hdfs`: rows as events in files written by the HDFS sink's formats, one file per bucket
    /// per batch, exactly once ([`super::pipeline_hdfs`]).
    Hdfs(Box<HdfsOutput>),
}

impl PipelineOutput {
    /// Where the rows go, for the agent's start-up lines.
    pub fn describe(&self) -> String {
        match self {
            PipelineOutput::Print { limit } => format!("prints up to {limit} rows per batch"),
            PipelineOutput::Text {
                dir,
                prefix,
                suffix,
            } => {
                let suffix = if suffix.is_empty() {
                    String::new()
                } else {
                    format!(".{suffix}")
                };
                format!(
                    "writes text batches to {}/{prefix}-<batch ms>{suffix}/part-00000",
                    dir.display()
                )
            }
            PipelineOutput::Jsonl { dir } => {
                format!("writes JSON Lines batches to {}", dir.display())
            }
            PipelineOutput::Channel { channel } => {
                format!("puts result events into channel {channel}")
            }
            PipelineOutput::Hdfs(out) => out.describe(),
            PipelineOutput::Postgres(out) => {
                let cfg = out.config();
                let how = if out.keys().is_empty() {
                    "appends rows".to_string()
                } else if cfg.accumulate.is_empty() {
                    format!("upserts rows keyed by ({})", out.keys().join(", "))
                } else {
                    format!(
                        "upserts rows keyed by ({}), adding up ({}),",
                        out.keys().join(", "),
                        cfg.accumulate.join(", ")
                    )
                };
                format!(
                    "{how} into PostgreSQL table {} (database {} at {}, progress in {})",
                    cfg.table,
                    cfg.connection
                        .get_dbname()
                        .or(cfg.connection.get_user())
                        .unwrap_or("?"),
                    out.server(),
                    cfg.progress_table
                )
            }
        }
    }
}

/// A validated `pipeline` sink (see the module docs).
#[derive(Debug, Clone)]
pub struct PipelineSinkConfig {
    /// The sink name (`wc`); also the pipeline's name (`PIPELINE.wc` in the metrics).
    pub name: String,
    /// The channel it reads.
    pub channel: String,
    /// `batchInterval`.
    pub batch_interval: Duration,
    /// The compiled `query` (with `watermark`, `emit`, `timestampHeader`).
    pub query: SqlQuery,
    /// Indexes of the query's group-key columns (headers of `channel` output events).
    pub key_columns: Vec<usize>,
    /// The output.
    pub output: PipelineOutput,
    /// `checkpointDir`.
    pub checkpoint_dir: PathBuf,
    /// `discardStateOnChange`.
    pub discard_state_on_change: bool,
    /// `workers` (0 = one per core).
    pub workers: usize,
    /// All its settings (prefix `a1.sinks.wc`).
    pub context: Context,
}

impl PipelineSinkConfig {
    /// The pipeline settings (the real clock, processing-time batches).
    pub fn pipeline_config(&self) -> PipelineConfig {
        PipelineConfig {
            batch_interval: self.batch_interval,
            workers: self.workers,
            checkpoint_dir: Some(self.checkpoint_dir.clone()),
            discard_state_on_change: self.discard_state_on_change,
            ..Default::default()
        }
    }

    /// Adds the query and its output to `ctx`. `output_channel` is the running channel named by
    /// `output.channel` (only used by the `channel` output).
    pub fn attach(&self, ctx: &StreamingContext, output_channel: Option<Arc<dyn Channel>>) {
        let rows = self.query.attach(ctx);
        match &self.output {
            PipelineOutput::Print { limit } => {
                rows.print_to(*limit, Arc::new(Mutex::new(LockedStdout)));
            }
            PipelineOutput::Text {
                dir,
                prefix,
                suffix,
            } => {
                rows.save_as_text_files(dir.join(prefix), suffix);
            }
            PipelineOutput::Jsonl { dir } => {
                rows.to_jsonl(dir.clone());
            }
            PipelineOutput::Postgres(out) => {
                rows.to_postgres((**out).clone());
            }
            PipelineOutput::Hdfs(out) => {
                out.attach(&rows, &self.key_columns, &self.name);
            }
            PipelineOutput::Channel { channel } => {
                let Some(target) = output_channel else {
                    // The agent checks this before building; a missing channel fails every
                    // batch (and says why) rather than dropping rows.
                    let missing = channel.clone();
                    rows.foreach_batch(move |_: &[Row], _| {
                        Err(format!("output channel {missing} is not running"))
                    });
                    return;
                };
                let keys = self.key_columns.clone();
                let pipeline = self.name.clone();
                rows.foreach_batch(move |batch: &[Row], cx| {
                    let events =
                        row_events(batch, &keys, &pipeline, cx.batch_id(), cx.batch_time_ms());
                    for chunk in events.chunks(target.transaction_capacity().max(1)) {
                        target
                            .put_batch(chunk)
                            .map_err(|e| format!("output channel {}: {e}", target.name()))?;
                    }
                    Ok::<(), String>(())
                });
            }
        }
    }
}

/// stdout, locked per write (so a batch's banner and rows stay together).
struct LockedStdout;

impl Write for LockedStdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stdout().lock().write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        std::io::stdout().lock().write_all(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().lock().flush()
    }
}

/// Parses a duration such as `1 s`, `500 ms`, `1 min`, `2h` (an integer and a unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim());
    let form = "expected an integer and a unit, such as '1 s', '500 ms', '1 min' or '1 h'";
    if num.is_empty() {
        return Err(format!("{form}, got '{t}'"));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{form}, got '{t}' (number out of range)"))?;
    let ms_per = match unit.to_ascii_lowercase().as_str() {
        "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "" => return Err(format!("{form}, got '{t}' (no unit)")),
        _ => return Err(format!("{form}, got '{t}' (unknown unit '{unit}')")),
    };
    n.checked_mul(ms_per)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{form}, got '{t}' (too long)"))
}

/// The `SELECT` items that are group keys (see the module docs), by output column index.
/// Parses `sql` again (it compiled already); a query this cannot analyse gets no key headers.
pub fn key_columns(sql: &str, columns: usize) -> Vec<usize> {
    use sqlparser::ast::{GroupByExpr, SelectItem, SetExpr, Statement};
    let dialect = sqlparser::dialect::GenericDialect {};
    let Ok(stmts) = sqlparser::parser::Parser::parse_sql(&dialect, sql) else {
        return Vec::new();
    };
    let Some(Statement::Query(q)) = stmts.first() else {
        return Vec::new();
    };
    let SetExpr::Select(sel) = q.body.as_ref() else {
        return Vec::new();
    };
    if sel.projection.len() != columns {
        return Vec::new();
    }
    let grouped = match &sel.group_by {
        GroupByExpr::All(_) => true,
        GroupByExpr::Expressions(e, _) => !e.is_empty(),
    };
    let aggregated: Vec<bool> = sel
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                has_aggregate(&e.to_string())
            }
            _ => false,
        })
        .collect();
    if !grouped && !aggregated.iter().any(|a| *a) {
        return Vec::new();
    }
    (0..columns).filter(|&i| !aggregated[i]).collect()
}

/// True when `expr` (SQL text) calls an aggregate function (`count`, `sum`, `min`, `max`, `avg`
/// followed by `(`); string literals and quoted names are tokens of their own, never matched.
fn has_aggregate(expr: &str) -> bool {
    use sqlparser::tokenizer::{Token, Tokenizer};
    let dialect = sqlparser::dialect::GenericDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, expr).tokenize() else {
        return false;
    };
    let tokens: Vec<&Token> = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    tokens.windows(2).any(|w| match (w[0], w[1]) {
        (Token::Word(word), Token::LParen) => {
            word.quote_style.is_none()
                && ["count", "sum", "min", "max", "avg"]
                    .iter()
                    .any(|a| word.value.eq_ignore_ascii_case(a))
        }
        _ => false,
    })
}

/// The default `checkpointDir`: `~/.flume/pipeline/<agent>.<name>` (next to Flume's default
/// `~/.flume/file-channel`).
pub fn default_checkpoint_dir(agent: &str, name: &str) -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".flume")
        .join("pipeline")
        .join(format!("{agent}.{name}"))
}

/// Validates the settings of pipeline sink `name` of agent `agent` reading `channel`;
/// `channels` are the agent's channels. Every problem is returned (each `file:line: key:
/// message`), not only the first.
pub fn from_context(
    agent: &str,
    name: &str,
    channel: &str,
    ctx: &Context,
    channels: &[String],
) -> Result<PipelineSinkConfig, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut duration = |key: &str, default: Duration| -> Duration {
        match ctx.get(key) {
            None => default,
            Some(v) => match parse_duration(v) {
                Ok(d) => d,
                Err(m) => {
                    errors.push(ctx.error(key, &m));
                    default
                }
            },
        }
    };
    let batch_interval = duration("batchInterval", Duration::from_secs(1));
    let watermark = duration("watermark", Duration::ZERO);
    let idle_timeout = ctx
        .get("idleTimeout")
        .map(|_| duration("idleTimeout", Duration::ZERO));
    if batch_interval.is_zero() {
        errors.push(ctx.error("batchInterval", "must be longer than 0 ms"));
    }
    let mut options = SqlOptions {
        watermark,
        idle_timeout,
        ..SqlOptions::default()
    };
    if let Some(v) = ctx.get("emit") {
        match v.parse::<EmitMode>() {
            Ok(m) => options.emit = m,
            Err(_) => {
                errors.push(ctx.error("emit", &format!("expected update or final, got '{v}'")))
            }
        }
    }
    if let Some(h) = ctx.get("timestampHeader") {
        options.timestamp_header = h.trim().to_string();
    }
    let workers = match ctx.parse::<usize>("workers", "a non-negative integer (0 = one per core)") {
        Ok(w) => w.unwrap_or(0),
        Err(e) => {
            errors.push(e);
            0
        }
    };
    let discard_state_on_change = ctx.get_bool("discardStateOnChange", false);
    let checkpoint_dir = ctx
        .get("checkpointDir")
        .map(|d| PathBuf::from(d.trim()))
        .unwrap_or_else(|| default_checkpoint_dir(agent, name));

    let query = match ctx.require("query") {
        Err(e) => {
            let mut e = e;
            if ctx.get("query").is_none() {
                e.message = format!(
                    "is not set: pipeline sink '{name}' needs one SELECT over the stream `events`, \
                     e.g. SELECT word, count(*) AS n FROM events CROSS JOIN \
                     UNNEST(split(body, ' ')) AS t(word) GROUP BY word{}",
                    e.message
                        .strip_prefix("is required but not set")
                        .unwrap_or_default()
                );
            }
            errors.push(e);
            None
        }
        Ok(sql) => match SqlQuery::compile(sql, options) {
            Ok(q) => Some(q),
            Err(e) => {
                errors.push(ctx.error("query", &e.to_string()));
                None
            }
        },
    };

    let output = output(name, channel, ctx, channels, query.as_ref(), &mut errors);
    match (query, output) {
        (Some(query), Some(output)) if errors.is_empty() => {
            let key_columns = key_columns(query_text(ctx), query.columns().len());
            Ok(PipelineSinkConfig {
                name: name.to_string(),
                channel: channel.to_string(),
                batch_interval,
                query,
                key_columns,
                output,
                checkpoint_dir,
                discard_state_on_change,
                workers,
                context: ctx.clone(),
            })
        }
        _ => Err(errors),
    }
}

fn query_text(ctx: &Context) -> &str {
    ctx.get("query").unwrap_or_default()
}

const OUTPUT_TYPES: &str = "print, text, jsonl, channel, postgres, hdfs";

/// `output.*`. `query` is the compiled query (`None` when it did not compile: the outputs that
/// check their settings against its columns check what they can without it).
fn output(
    name: &str,
    channel: &str,
    ctx: &Context,
    channels: &[String],
    query: Option<&SqlQuery>,
    errors: &mut Vec<ConfigError>,
) -> Option<PipelineOutput> {
    let o = ctx.sub("output");
    let Some(t) = o.get("type").map(str::trim) else {
        errors.push(o.error(
            "type",
            &format!("is not set: pipeline sink '{name}' needs an output (one of {OUTPUT_TYPES})"),
        ));
        return None;
    };
    let dir = |errors: &mut Vec<ConfigError>| match o.get("dir") {
        Some(d) => Some(PathBuf::from(d.trim())),
        None => {
            let mut e = o.error(
                "dir",
                &format!("is not set: output.type {t} writes its batch files into a directory"),
            );
            e.line = o.origin("type").line; // the line that asked for a directory
            errors.push(e);
            None
        }
    };
    match t.to_ascii_lowercase().as_str() {
        "print" => match o.get_positive_int("limit", DEFAULT_PRINT_LIMIT as u64) {
            Ok(limit) => Some(PipelineOutput::Print { limit }),
            Err(e) => {
                errors.push(e);
                None
            }
        },
        "text" => {
            let prefix = o.get("prefix").map(|p| p.trim().to_string());
            let suffix = o.get("suffix").map(|s| s.trim().to_string());
            let dir = dir(errors)?;
            let prefix = prefix.unwrap_or_else(|| name.to_string());
            if prefix.contains('/') {
                errors.push(o.error(
                    "prefix",
                    "must be a file name prefix, not a path (put the directory in output.dir)",
                ));
                return None;
            }
            Some(PipelineOutput::Text {
                dir,
                prefix,
                suffix: suffix.unwrap_or_default(),
            })
        }
        "jsonl" => Some(PipelineOutput::Jsonl { dir: dir(errors)? }),
        "channel" => {
            let Some(target) = o.get("channel").map(str::trim) else {
                let line = o.origin("type").line;
                errors.push(o.error(
                    "channel",
                    &format!(
                        "is not set: output.type channel needs the channel receiving the rows \
                         (defined: {})",
                        channels.join(", ")
                    ),
                ));
                if let Some(e) = errors.last_mut() {
                    e.line = line;
                }
                return None;
            };
            if target == channel {
                errors.push(o.error(
                    "channel",
                    &format!(
                        "is the channel pipeline sink '{name}' reads; its rows would be read \
                         back as input — use another channel"
                    ),
                ));
                return None;
            }
            if !channels.iter().any(|c| c == target) {
                errors.push(o.error(
                    "channel",
                    &format!(
                        "channel '{target}' is not a channel of this agent (defined: {})",
                        channels.join(", ")
                    ),
                ));
                return None;
            }
            Some(PipelineOutput::Channel {
                channel: target.to_string(),
            })
        }
        "postgres" | "postgresql" => {
            if !o.contains("table") {
                // Named on the line that asked for a table (with a typo's place, if any).
                let mut e = ctx.error(
                    "output.table",
                    &format!(
                        "is not set: output.type {t} writes the rows into a table (name or \
                         schema.name)"
                    ),
                );
                e.line = o.origin("type").line;
                e.file = o.origin("type").file;
                errors.push(e);
                return None;
            }
            // Only the settings are checked here (no connection: `sluicegate check` must not
            // need the server); the pipeline connects when its first batch is written.
            let checked = match query {
                Some(q) => PostgresOutput::from_context(ctx, q).map(Some),
                None => PostgresConfig::from_context(ctx).map(|_| None),
            };
            match checked {
                Ok(out) => out.map(|o| PipelineOutput::Postgres(Box::new(o))),
                Err(e) => {
                    errors.push(e);
                    None
                }
            }
        }
        "hdfs" => match HdfsOutput::from_context(name, ctx, query) {
            Ok(out) => Some(PipelineOutput::Hdfs(Box::new(out))),
            Err(e) => {
                errors.push(e);
                None
            }
        },
        _ => {
            errors.push(o.error(
                "type",
                &format!("unknown output type '{t}'; supported output types: {OUTPUT_TYPES}"),
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::sql::Value;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("1 s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("500 ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1 min"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration(" 10 Seconds "), Ok(Duration::from_secs(10)));
        assert!(parse_duration("1000").unwrap_err().contains("no unit"));
        assert!(parse_duration("1.5 s")
            .unwrap_err()
            .contains("unknown unit '.5 s'"));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("99999999999999999999 ms").is_err());
    }

    #[test]
    fn group_key_columns_are_the_items_without_aggregates() {
        let wc = "SELECT word, count(*) AS n FROM events CROSS JOIN UNNEST(split(body, ' ')) \
                  AS t(word) GROUP BY word";
        assert_eq!(key_columns(wc, 2), vec![0]);
        let q = "SELECT 'count(' AS label, headers['host'] AS host, COUNT(*) * 2 AS n, \
                 max(length(body)) FROM events GROUP BY headers['host']";
        assert_eq!(key_columns(q, 4), vec![0, 1]);
        assert_eq!(
            key_columns("SELECT count(*) FROM events", 1),
            Vec::<usize>::new()
        );
        assert_eq!(
            key_columns("SELECT body, lower(body) FROM events", 2),
            Vec::<usize>::new()
        );
        assert_eq!(
            key_columns("SELECT \"count\"(x) FROM events GROUP BY x", 1),
            vec![0]
        );
    }

    fn sink_ctx(pairs: &[(&str, &str)]) -> Context {
        Context::from_pairs("a1.sinks.wc", pairs.iter().copied())
    }

    #[test]
    fn postgres_output_is_checked_against_the_query_at_load() {
        let wc = "SELECT word, count(*) AS n FROM events CROSS JOIN UNNEST(split(body, ' ')) \
                  AS t(word) GROUP BY word";
        let base = [
            ("channel", "c1"),
            ("query", wc),
            ("output.type", "postgres"),
            ("output.url", "postgres://flume:secret@127.0.0.1:1/metrics"),
            ("output.table", "wc"),
            ("output.keys", "word"),
            ("output.accumulate", "n"),
        ];
        let chans = ["c1".to_string()];
        let ctx = sink_ctx(&base);
        let p = from_context("a1", "wc", "c1", &ctx, &chans).unwrap();
        let PipelineOutput::Postgres(out) = &p.output else {
            panic!("{:?}", p.output)
        };
        assert_eq!(out.keys(), ["word"]);
        let d = p.output.describe();
        assert_eq!(
            d,
            "upserts rows keyed by (word), adding up (n), into PostgreSQL table wc (database \
             metrics at 127.0.0.1:1, progress in sluicegate_batches)"
        );
        assert!(!d.contains("secret"));
        // Every output key is read (no "not used by" warning); `channel` is the validator's.
        assert_eq!(ctx.unused_keys(), ["channel"]);

        // A key that is not a column, with the query compiled.
        let mut bad = base;
        bad[5] = ("output.keys", "wrod");
        let e = from_context("a1", "wc", "c1", &sink_ctx(&bad), &chans).unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].key, "a1.sinks.wc.output.keys");
        assert!(
            e[0].message.starts_with("'wrod' is not a column"),
            "{}",
            e[0]
        );

        // A query that does not compile: the connection keys are still checked.
        let mut bad = base;
        bad[1] = ("query", "SELECT nope(body) FROM events");
        bad[3] = ("output.url", "postgres://x@h/db?sslmode=require");
        let e = from_context("a1", "wc", "c1", &sink_ctx(&bad), &chans).unwrap_err();
        let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["a1.sinks.wc.query", "a1.sinks.wc.output.url"]);
    }

    #[test]
    fn channel_events_carry_keys_as_headers() {
        let names: Arc<[String]> = vec!["host".to_string(), "n".to_string()].into();
        let rows = vec![
            Row {
                names: names.clone(),
                values: vec![Value::Str("web1".into()), Value::Int(7)],
            },
            Row {
                names,
                values: vec![Value::Null, Value::Int(1)],
            },
        ];
        let ev = row_events(&rows, &[0], "alerts", 3, 60_000);
        assert_eq!(
            ev[0].header_map(),
            vec![
                ("host".to_string(), "web1".to_string()),
                ("sluicegate.batch".to_string(), "alerts-3".to_string()),
                ("timestamp".to_string(), "60000".to_string()),
            ]
        );
        assert_eq!(
            ev[0].body(),
            br#"{"batch_time":60000,"host":"web1","n":7}"#.as_slice()
        );
        assert_eq!(ev[1].header("host"), None);
        assert_eq!(
            ev[1].body(),
            br#"{"batch_time":60000,"host":null,"n":1}"#.as_slice()
        );
    }
}
