//! The PostgreSQL output: the result rows of a SQL pipeline upserted into a table, exactly once.
//!
//! # What a batch does
//!
//! Every micro-batch becomes **one database transaction** on one connection (opened lazily,
//! reopened after any connection error):
//!
//! ```text
//! BEGIN;
//! INSERT INTO sluicegate_batches (pipeline, target, batch_id, batch_time_ms)
//!        VALUES ($pipeline, $table, 0, 0) ON CONFLICT DO NOTHING;
//! SELECT batch_id, batch_time_ms FROM sluicegate_batches
//!        WHERE pipeline = $pipeline AND target = $table FOR UPDATE;
//!   -- the batch was applied already (same id, same batch time): COMMIT, write nothing
//! INSERT INTO <table> (<columns>) VALUES (...), (...) ...          -- up to 500 rows a statement
//!        ON CONFLICT (<keys>) DO UPDATE SET <col> = EXCLUDED.<col>, ...;
//! UPDATE sluicegate_batches SET batch_id = $id, batch_time_ms = $time, updated_at = now()
//!        WHERE pipeline = $pipeline AND target = $table;
//! COMMIT;
//! ```
//!
//! The output returns (and the driver goes on to persist the pipeline state and commit the
//! take, see [`crate::pipeline`]) only after `COMMIT` succeeded. Any error before that —
//! connection refused, the server gone mid-batch, a constraint violation — leaves the
//! transaction rolled back, the output returns the error (with what to do), the driver rolls the
//! take back, counts `ErrorsOutput` and retries the **same** batch (same events, same batch
//! time) with exponential backoff. Nothing is lost.
//!
//! # Exactly once
//!
//! The progress row `(pipeline, target) → (batch_id, batch_time_ms)` commits in the same
//! transaction as the rows, so the database always knows which batch it holds. The pipeline's
//! checkpoint persists a batch only after its outputs are durable, so after a crash the database
//! is at most one batch ahead of the checkpoint, and the driver replays exactly that batch (same
//! id, same batch time: the persisted plan). Hence, for a batch `N` at time `T` against a
//! recorded `(R, RT)`:
//!
//! | case | meaning | action |
//! |---|---|---|
//! | no row yet, or `N > R` | a new batch | apply, record `(N, T)` |
//! | `N == R` and `T == RT` | the replay of a batch whose commit reached the database before a crash (or whose `COMMIT` acknowledgement was lost) | skip: commit nothing |
//! | `N < R`, or `N == R` with `T != RT` | the checkpoint is behind the database: it was deleted or reset (`discard_state_on_change`), or two pipelines share a name and table | refuse the batch with an error saying how to resolve it; nothing is written, nothing is lost |
//!
//! This needs durable batch ids, i.e. a pipeline with a `checkpoint_dir`. Without one, batch ids
//! restart at 1 in every process, so the output does not consult or write the progress table:
//! each batch is still one transaction (all of its rows or none), retried until it commits, but a
//! crash between the commit and the take commit replays the batch (at least once). With
//! `accumulate` columns that double-counts; configure a checkpoint.
//!
//! # How rows land
//!
//! * **Upsert** (`keys` set, the default for grouping queries): `ON CONFLICT (keys) DO UPDATE`.
//!   Every non-key column is replaced by the batch's value (the dashboard shows the newest
//!   value: per-batch counts, or a window's current value in update mode), except
//!   **accumulate** columns, which are added: `col = COALESCE(t.col + EXCLUDED.col, t.col,
//!   EXCLUDED.col)` (SQL `sum` semantics across batches: a per-batch `count(*)` accumulates
//!   into a running total). The columns `window_start` and `window_end`, when the query
//!   selects them, are always part of the key. Two rows of one batch with the same key are an
//!   error (list every `GROUP BY` column in `keys`): merging them silently would hide it.
//! * **Append** (`keys` empty, e.g. an alert projection): plain `INSERT`; the progress row keeps
//!   replays from inserting twice.
//!
//! Values are written as SQL literals in a simple-query batch (one round trip per 500 rows), so
//! an existing table may use any column type the server can assign a literal to (`integer`,
//! `numeric`, `varchar(n)`, `timestamptz` from text...). `BIGINT` → an integer literal, `DOUBLE`
//! → `'<shortest round-trip decimal>'::float8` (also `NaN`, `Infinity`), `VARCHAR` → an escaped
//! `E'...'` literal (PostgreSQL `text` cannot hold NUL: a NUL character is written as U+FFFD),
//! `BOOLEAN` → `TRUE`/`FALSE`, `NULL` → `NULL`. Identifiers (table, schema, columns) are
//! double-quoted, so they are case-sensitive as written in the query and the keys.
//!
//! With `createTable = true` the output creates the table when it is missing, with column types
//! from the query (`BIGINT` → `bigint`, `DOUBLE` → `double precision`, `VARCHAR` and
//! always-`NULL` → `text`, `BOOLEAN` → `boolean`) and a `UNIQUE NULLS NOT DISTINCT (keys)`
//! constraint (a group key may be `NULL`: a missing header; PostgreSQL 15 or newer; on older
//! servers a `PRIMARY KEY`, which rejects `NULL` keys). An existing table is used as it is; it
//! needs a unique index or constraint on exactly the key columns. The progress table is always
//! created when missing.
//!
//! # Settings (`flume.conf`, keys of the `pipeline` sink)
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `output.type` | — | `postgres` |
//! | `output.url` | — | `postgres://user:password@host:port/database` (or libpq `key=value` form); alternative to the next five |
//! | `output.host` | `127.0.0.1` | server host, or the directory of its Unix socket (`/var/run/postgresql`) |
//! | `output.port` | `5432` | server port |
//! | `output.user` | `postgres` | user name |
//! | `output.password` | none | password (prefer a `.conf` readable by the agent only) |
//! | `output.database` | the user name | database |
//! | `output.table` | — (required) | target table, optionally `schema.table` |
//! | `output.keys` | — | comma-separated key columns; empty or unset: append mode |
//! | `output.accumulate` | none | comma-separated numeric columns added to the stored value instead of replacing it |
//! | `output.createTable` | `false` | create the table when missing (types from the query) |
//! | `output.progressTable` | `sluicegate_batches` | the table recording each pipeline's last applied batch |
//! | `output.connectTimeout` | `10` | seconds to wait for a connection |
//!
//! `output.url` and the individual keys are exclusive. TLS is not supported yet: a URL with
//! `sslmode=require` is rejected at load (use a local or tunnelled connection).
//!
//! [`PostgresOutput::from_context`] reads these keys (the sink's context) and checks them against
//! the query's columns; [`PostgresOutput::new`] takes a [`PostgresConfig`] built in code;
//! [`DStream::to_postgres`] attaches the output to a stream of [`Row`]s.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use postgres::config::SslMode;
use postgres::{Client, NoTls};

use crate::config::{ConfigError, Context};

use super::context::{BatchEnv, OutputOp};
use super::sql::{Row, SqlQuery, SqlType, Value};
use super::stream::DStream;

/// Rows per `INSERT` statement.
const ROWS_PER_STATEMENT: usize = 500;

/// The columns that are always part of the key when the query selects them.
const WINDOW_COLUMNS: [&str; 2] = ["window_start", "window_end"];

/// Connection and table settings of the PostgreSQL output (see the module docs for the keys).
#[derive(Clone)]
pub struct PostgresConfig {
    /// Where and how to connect (host, port, user, password, database, timeout).
    pub connection: postgres::Config,
    /// The target table, `table` or `schema.table`.
    pub table: String,
    /// Key columns (upsert); empty: append.
    pub keys: Vec<String>,
    /// Numeric columns added to the stored value instead of replacing it.
    pub accumulate: Vec<String>,
    /// Create the table when it does not exist.
    pub create_table: bool,
    /// The progress table (`sluicegate_batches`).
    pub progress_table: String,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection config holds the password: show where, not how.
        f.debug_struct("PostgresConfig")
            .field("server", &server_of(&self.connection))
            .field("user", &self.connection.get_user())
            .field("database", &self.connection.get_dbname())
            .field("table", &self.table)
            .field("keys", &self.keys)
            .field("accumulate", &self.accumulate)
            .field("create_table", &self.create_table)
            .field("progress_table", &self.progress_table)
            .finish()
    }
}

/// Why a PostgreSQL output cannot be set up (all found at load, before any batch).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostgresSetupError {
    /// A key or accumulate column is not a column of the query.
    #[error("{setting}: '{column}' is not a column of the query; its columns are {columns}")]
    UnknownColumn {
        /// `keys` or `accumulate`.
        setting: &'static str,
        /// The name given.
        column: String,
        /// The query's columns, comma-separated.
        columns: String,
    },
    /// An accumulate column is not BIGINT or DOUBLE.
    #[error("accumulate: column '{column}' is {ty}, not a number; only BIGINT and DOUBLE columns (count, sum) can be added up")]
    NotNumeric {
        /// The column.
        column: String,
        /// Its SQL type.
        ty: &'static str,
    },
    /// A column is both a key and accumulated.
    #[error("accumulate: column '{column}' is a key; a key identifies the row and cannot be added up (remove it from one of the lists)")]
    KeyAccumulated {
        /// The column.
        column: String,
    },
    /// Accumulate without keys.
    #[error("accumulate needs keys: without keys every row is appended and there is nothing to add to (set keys to the GROUP BY columns)")]
    AccumulateWithoutKeys,
    /// A name is listed twice.
    #[error("{setting}: column '{column}' is listed twice")]
    Duplicate {
        /// `keys` or `accumulate`.
        setting: &'static str,
        /// The column.
        column: String,
    },
    /// An empty or malformed table name.
    #[error("table: '{0}' is not a table name (use name or schema.name)")]
    BadTable(String),
}

impl PostgresConfig {
    /// Settings from a URL (`postgres://user:password@host:port/database` or libpq
    /// `key=value` pairs) and a table; no keys, no accumulate, no table creation.
    pub fn from_url(url: &str, table: &str) -> Result<PostgresConfig, String> {
        let mut connection: postgres::Config = url
            .parse()
            .map_err(|e| format!("not a PostgreSQL connection URL: {}", chain(&e)))?;
        check_tls(&connection)?;
        if connection.get_connect_timeout().is_none() {
            connection.connect_timeout(Duration::from_secs(10));
        }
        connection.application_name("sluicegate");
        Ok(PostgresConfig {
            connection,
            table: table.to_string(),
            keys: Vec::new(),
            accumulate: Vec::new(),
            create_table: false,
            progress_table: "sluicegate_batches".into(),
        })
    }

    /// Reads the `output.*` keys of a `pipeline` sink's context (see the module docs).
    pub fn from_context(ctx: &Context) -> Result<PostgresConfig, ConfigError> {
        let table = ctx.require("output.table")?.trim().to_string();
        let individual = [
            "output.host",
            "output.port",
            "output.user",
            "output.password",
            "output.database",
        ]
        .into_iter()
        .find(|k| ctx.contains(k));
        let timeout = ctx.get_secs("output.connectTimeout", 10)?;
        let mut cfg = match ctx.get("output.url") {
            Some(url) => {
                if let Some(k) = individual {
                    return Err(ctx.error(
                        k,
                        "cannot be combined with output.url: put it into the URL or drop output.url",
                    ));
                }
                PostgresConfig::from_url(url.trim(), &table)
                    .map_err(|e| ctx.error("output.url", &e))?
            }
            None => {
                let mut c = postgres::Config::new();
                let host = ctx.get_or("output.host", "127.0.0.1").trim();
                c.host(host);
                let port = ctx.parse::<u16>("output.port", "a port number (1-65535)")?;
                c.port(port.unwrap_or(5432));
                let user = ctx.get_or("output.user", "postgres").trim().to_string();
                c.user(&user);
                if let Some(p) = ctx.get("output.password") {
                    c.password(p);
                }
                c.dbname(ctx.get_or("output.database", &user).trim());
                c.application_name("sluicegate");
                PostgresConfig {
                    connection: c,
                    table: table.clone(),
                    keys: Vec::new(),
                    accumulate: Vec::new(),
                    create_table: false,
                    progress_table: "sluicegate_batches".into(),
                }
            }
        };
        if timeout.is_zero() {
            return Err(ctx.error("output.connectTimeout", "must be at least 1 second"));
        }
        cfg.connection.connect_timeout(timeout);
        cfg.keys = list(ctx.get("output.keys"));
        cfg.accumulate = list(ctx.get("output.accumulate"));
        cfg.create_table = ctx.get_bool("output.createTable", false);
        cfg.progress_table = ctx
            .get_or("output.progressTable", "sluicegate_batches")
            .trim()
            .to_string();
        if split_ident(&cfg.table).is_none() {
            return Err(ctx.error(
                "output.table",
                &PostgresSetupError::BadTable(cfg.table.clone()).to_string(),
            ));
        }
        if split_ident(&cfg.progress_table).is_none() {
            return Err(ctx.error(
                "output.progressTable",
                &PostgresSetupError::BadTable(cfg.progress_table.clone()).to_string(),
            ));
        }
        Ok(cfg)
    }
}

fn list(v: Option<&str>) -> Vec<String> {
    v.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn check_tls(c: &postgres::Config) -> Result<(), String> {
    if c.get_ssl_mode() == SslMode::Require {
        return Err("sslmode=require: the postgres output does not support TLS yet; connect over a local socket, 127.0.0.1 or a tunnel and use sslmode=disable or prefer".into());
    }
    Ok(())
}

fn server_of(c: &postgres::Config) -> String {
    let host = match c.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}

/// `"a"."b"` from `a.b`; `None` when a part is empty.
fn split_ident(name: &str) -> Option<String> {
    let parts: Vec<&str> = name.split('.').map(str::trim).collect();
    if parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    Some(
        parts
            .iter()
            .map(|p| quote_ident(p))
            .collect::<Vec<_>>()
            .join("."),
    )
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// An SQL string literal, valid whatever `standard_conforming_strings` says.
fn quote_literal(s: &str, out: &mut String) {
    out.push_str("E'");
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out.push('\'');
}

fn literal(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("NULL"),
        Value::Bool(true) => out.push_str("TRUE"),
        Value::Bool(false) => out.push_str("FALSE"),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => {
            if f.is_nan() {
                out.push_str("'NaN'::float8");
            } else if f.is_infinite() {
                out.push_str(if *f > 0.0 {
                    "'Infinity'::float8"
                } else {
                    "'-Infinity'::float8"
                });
            } else {
                let _ = write!(out, "'{f:?}'::float8");
            }
        }
        Value::Str(s) => quote_literal(s, out),
    }
}

fn pg_type(t: SqlType) -> &'static str {
    match t {
        SqlType::Bool => "boolean",
        SqlType::Int => "bigint",
        SqlType::Float => "double precision",
        SqlType::Str | SqlType::Null | SqlType::StrArray => "text",
    }
}

/// An error message with its causes and, for server errors, the SQLSTATE, detail and hint.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let _ = write!(s, ": {c}");
        cur = c.source();
    }
    s
}

/// A PostgreSQL output ready to attach (see the module docs).
#[derive(Debug, Clone)]
pub struct PostgresOutput {
    cfg: PostgresConfig,
    columns: Vec<String>,
    types: Vec<SqlType>,
    /// Key column names (configured keys plus the window columns), in column order.
    keys: Vec<String>,
}

impl PostgresOutput {
    /// Checks `cfg` against the query's output columns and types.
    pub fn new(
        mut cfg: PostgresConfig,
        columns: &[String],
        types: &[SqlType],
    ) -> Result<PostgresOutput, PostgresSetupError> {
        let all = || columns.join(", ");
        if split_ident(&cfg.table).is_none() {
            return Err(PostgresSetupError::BadTable(cfg.table.clone()));
        }
        if split_ident(&cfg.progress_table).is_none() {
            return Err(PostgresSetupError::BadTable(cfg.progress_table.clone()));
        }
        for (setting, names) in [("keys", &cfg.keys), ("accumulate", &cfg.accumulate)] {
            let mut seen = HashSet::new();
            for n in names {
                if !columns.contains(n) {
                    return Err(PostgresSetupError::UnknownColumn {
                        setting,
                        column: n.clone(),
                        columns: all(),
                    });
                }
                if !seen.insert(n) {
                    return Err(PostgresSetupError::Duplicate {
                        setting,
                        column: n.clone(),
                    });
                }
            }
        }
        if !cfg.keys.is_empty() {
            for w in WINDOW_COLUMNS {
                if columns.iter().any(|c| c == w) && !cfg.keys.iter().any(|k| k == w) {
                    cfg.keys.push(w.to_string());
                }
            }
        }
        if !cfg.accumulate.is_empty() && cfg.keys.is_empty() {
            return Err(PostgresSetupError::AccumulateWithoutKeys);
        }
        for a in &cfg.accumulate {
            if cfg.keys.contains(a) {
                return Err(PostgresSetupError::KeyAccumulated { column: a.clone() });
            }
            let i = columns.iter().position(|c| c == a).unwrap_or(0);
            let ty = types.get(i).copied().unwrap_or(SqlType::Null);
            if !matches!(ty, SqlType::Int | SqlType::Float) {
                return Err(PostgresSetupError::NotNumeric {
                    column: a.clone(),
                    ty: ty.name(),
                });
            }
        }
        let keys = columns
            .iter()
            .filter(|c| cfg.keys.contains(c))
            .cloned()
            .collect();
        Ok(PostgresOutput {
            cfg,
            columns: columns.to_vec(),
            types: types.to_vec(),
            keys,
        })
    }

    /// [`new`](Self::new) for a compiled query.
    pub fn for_query(
        cfg: PostgresConfig,
        query: &SqlQuery,
    ) -> Result<PostgresOutput, PostgresSetupError> {
        PostgresOutput::new(cfg, query.columns(), query.column_types())
    }

    /// Reads the sink's `output.*` keys and checks them against `query`; errors point at the
    /// key (file and line) that needs fixing.
    pub fn from_context(ctx: &Context, query: &SqlQuery) -> Result<PostgresOutput, ConfigError> {
        let cfg = PostgresConfig::from_context(ctx)?;
        PostgresOutput::for_query(cfg, query).map_err(|e| {
            let key = match &e {
                PostgresSetupError::UnknownColumn { setting, .. }
                | PostgresSetupError::Duplicate { setting, .. } => format!("output.{setting}"),
                PostgresSetupError::BadTable(_) => "output.table".into(),
                _ => "output.accumulate".into(),
            };
            // The diagnostic names the key already: no `keys: ` before the message.
            let message = e.to_string();
            let setting = format!("{}: ", key.trim_start_matches("output."));
            ctx.error(&key, message.strip_prefix(&setting).unwrap_or(&message))
        })
    }

    /// The settings.
    pub fn config(&self) -> &PostgresConfig {
        &self.cfg
    }

    /// The key columns in effect (configured keys plus the window columns).
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The server it connects to, `host:port` (or the socket directory and port), for logs.
    pub fn server(&self) -> String {
        server_of(&self.cfg.connection)
    }

    /// The description that goes into the pipeline's fingerprint (no server, no password: the
    /// same pipeline may move to another server).
    fn describe(&self) -> String {
        format!(
            "to_postgres(table={},keys={},accumulate={})",
            self.cfg.table,
            self.keys.join("+"),
            self.cfg.accumulate.join("+")
        )
    }

    fn create_table_sql(&self, nulls_not_distinct: bool) -> String {
        let mut s = format!(
            "CREATE TABLE IF NOT EXISTS {} (",
            split_ident(&self.cfg.table).unwrap_or_default()
        );
        for (i, (c, t)) in self.columns.iter().zip(&self.types).enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            let _ = write!(s, "{} {}", quote_ident(c), pg_type(*t));
        }
        if !self.keys.is_empty() {
            let keys: Vec<String> = self.keys.iter().map(|k| quote_ident(k)).collect();
            if nulls_not_distinct {
                let _ = write!(s, ", UNIQUE NULLS NOT DISTINCT ({})", keys.join(", "));
            } else {
                let _ = write!(s, ", PRIMARY KEY ({})", keys.join(", "));
            }
        }
        s.push(')');
        s
    }

    fn progress_sql(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {} (pipeline text NOT NULL, target text NOT NULL, \
             batch_id bigint NOT NULL, batch_time_ms bigint NOT NULL, \
             updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (pipeline, target))",
            split_ident(&self.cfg.progress_table).unwrap_or_default()
        )
    }

    /// The `INSERT` statements of a batch's rows, `;`-separated.
    fn insert_sql(&self, rows: &[Row]) -> Result<String, String> {
        let table = split_ident(&self.cfg.table).unwrap_or_default();
        let cols: Vec<String> = self.columns.iter().map(|c| quote_ident(c)).collect();
        let key_idx: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| self.keys.contains(c))
            .map(|(i, _)| i)
            .collect();
        let mut tail = String::new();
        if !self.keys.is_empty() {
            let keys: Vec<String> = self.keys.iter().map(|k| quote_ident(k)).collect();
            let _ = write!(tail, " ON CONFLICT ({}) ", keys.join(", "));
            let updates: Vec<String> = self
                .columns
                .iter()
                .filter(|c| !self.keys.contains(c))
                .map(|c| {
                    let q = quote_ident(c);
                    if self.cfg.accumulate.contains(c) {
                        format!("{q} = COALESCE(t.{q} + EXCLUDED.{q}, t.{q}, EXCLUDED.{q})")
                    } else {
                        format!("{q} = EXCLUDED.{q}")
                    }
                })
                .collect();
            if updates.is_empty() {
                tail.push_str("DO NOTHING");
            } else {
                let _ = write!(tail, "DO UPDATE SET {}", updates.join(", "));
            }
        }
        let mut seen: HashSet<Vec<&Value>> = HashSet::new();
        let mut sql = String::new();
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let _ = write!(
                sql,
                "INSERT INTO {table} AS t ({}) VALUES ",
                cols.join(", ")
            );
            for (i, r) in chunk.iter().enumerate() {
                if r.values.len() != self.columns.len() || r.names.as_ref() != self.columns {
                    return Err(format!(
                        "a row has the columns ({}), the output was set up for ({}); attach the output to the query it was built for",
                        r.names.join(", "),
                        self.columns.join(", ")
                    ));
                }
                if !key_idx.is_empty() {
                    let k: Vec<&Value> = key_idx.iter().map(|&i| &r.values[i]).collect();
                    if !seen.insert(k) {
                        let shown: Vec<String> = key_idx
                            .iter()
                            .map(|&i| {
                                let mut s = String::new();
                                literal(&r.values[i], &mut s);
                                format!("{}={s}", self.columns[i])
                            })
                            .collect();
                        return Err(format!(
                            "two rows of the batch have the same key ({}): the keys ({}) do not identify a row; set output.keys to every GROUP BY column",
                            shown.join(", "),
                            self.keys.join(", ")
                        ));
                    }
                }
                sql.push_str(if i == 0 { "(" } else { ", (" });
                for (j, v) in r.values.iter().enumerate() {
                    if j > 0 {
                        sql.push_str(", ");
                    }
                    literal(v, &mut sql);
                }
                sql.push(')');
            }
            sql.push_str(&tail);
            sql.push_str(";\n");
        }
        Ok(sql)
    }
}

struct PgOp {
    out: PostgresOutput,
    pipeline: String,
    /// Consult and write the progress table (the pipeline has durable batch ids).
    exactly_once: bool,
    /// The open connection, kept between batches.
    conn: Mutex<Option<Client>>,
}

impl PgOp {
    fn server(&self) -> String {
        server_of(&self.out.cfg.connection)
    }

    /// Turns a client error into a message that says what to do.
    fn explain(&self, doing: &str, e: &postgres::Error) -> String {
        let table = &self.out.cfg.table;
        let server = self.server();
        let user = self.out.cfg.connection.get_user().unwrap_or("?");
        let db = self.out.cfg.connection.get_dbname().unwrap_or(user);
        if let Some(d) = e.as_db_error() {
            let code = d.code().code();
            let mut base = format!("{doing}: {} (SQLSTATE {code})", d.message());
            if let Some(x) = d.detail() {
                let _ = write!(base, "; detail: {x}");
            }
            if let Some(x) = d.hint() {
                let _ = write!(base, "; hint: {x}");
            }
            let what = match code {
                "28P01" | "28000" => format!("check output.user ({user}) and output.password, and the server's pg_hba.conf for this client"),
                "3D000" => format!("create the database ({db}) or fix output.database"),
                "42P01" => format!("create the table {table} (columns {}) or set output.createTable = true", self.out.columns.join(", ")),
                "42P10" => format!("the table {table} needs a unique index or constraint on exactly ({}): CREATE UNIQUE INDEX ON {table} ({}), or fix output.keys", self.out.keys.join(", "), self.out.keys.join(", ")),
                "42703" => format!("the table {table} lacks a column of the query ({}): add it or recreate the table", self.out.columns.join(", ")),
                "42501" => format!("grant the user {user} INSERT, UPDATE and SELECT on {table} and {} (and CREATE on the schema for createTable)", self.out.cfg.progress_table),
                "21000" => "two rows of the batch have the same key: set output.keys to every GROUP BY column".to_string(),
                c if c.starts_with("57") || c.starts_with("08") || c.starts_with("53") => "the server is unavailable or overloaded; the batch is retried with backoff".to_string(),
                _ => "fix the table or the settings; the batch is retried with backoff".to_string(),
            };
            return format!("{base}; {what}");
        }
        format!(
            "{doing}: {} (PostgreSQL at {server}, database {db}, user {user}); is the server running and reachable? The batch is retried with backoff until it is",
            chain(e)
        )
    }

    fn connect(&self) -> Result<Client, String> {
        let mut client = self
            .out
            .cfg
            .connection
            .connect(NoTls)
            .map_err(|e| self.explain("cannot connect to PostgreSQL", &e))?;
        if self.exactly_once {
            create(&mut client, &self.out.progress_sql()).map_err(|e| {
                self.explain(
                    &format!(
                        "cannot create the progress table {}",
                        self.out.cfg.progress_table
                    ),
                    &e,
                )
            })?;
        }
        if self.out.cfg.create_table {
            let version: i32 = client
                .query_one("SELECT current_setting('server_version_num')::int", &[])
                .and_then(|r| r.try_get(0))
                .map_err(|e| self.explain("cannot read the server version", &e))?;
            create(&mut client, &self.out.create_table_sql(version >= 150000)).map_err(|e| {
                self.explain(
                    &format!("cannot create the table {}", self.out.cfg.table),
                    &e,
                )
            })?;
        }
        tracing::info!(pipeline = %self.pipeline, server = %self.server(), table = %self.out.cfg.table, "connected to PostgreSQL");
        Ok(client)
    }

    fn write(
        &self,
        client: &mut Client,
        batch_id: u64,
        batch_time_ms: i64,
        rows: &[Row],
    ) -> Result<u64, String> {
        let sql = self.out.insert_sql(rows)?;
        let progress = split_ident(&self.out.cfg.progress_table).unwrap_or_default();
        let target = self.out.cfg.table.as_str();
        let id = batch_id as i64;
        let mut tx = client
            .transaction()
            .map_err(|e| self.explain("cannot begin a transaction", &e))?;
        if self.exactly_once {
            tx.execute(
                &format!(
                    "INSERT INTO {progress} (pipeline, target, batch_id, batch_time_ms) \
                     VALUES ($1, $2, 0, 0) ON CONFLICT DO NOTHING"
                ),
                &[&self.pipeline, &target],
            )
            .map_err(|e| self.explain("cannot write the progress table", &e))?;
            let row = tx
                .query_one(
                    &format!(
                        "SELECT batch_id, batch_time_ms FROM {progress} \
                         WHERE pipeline = $1 AND target = $2 FOR UPDATE"
                    ),
                    &[&self.pipeline, &target],
                )
                .map_err(|e| self.explain("cannot read the progress table", &e))?;
            let (done, done_time): (i64, i64) = (
                row.try_get(0)
                    .map_err(|e| self.explain("reading the progress table", &e))?,
                row.try_get(1)
                    .map_err(|e| self.explain("reading the progress table", &e))?,
            );
            if done > 0 && id == done && batch_time_ms == done_time {
                tracing::info!(pipeline = %self.pipeline, table = %target, batch_id, "batch already in PostgreSQL (committed before a crash or a lost acknowledgement); not writing it again");
                return Ok(0);
            }
            if done > 0 && id <= done {
                return Err(format!(
                    "{progress} says pipeline {} already wrote batch {done} (batch time {done_time} ms) into {target}, \
                     but the pipeline is at batch {batch_id} (batch time {batch_time_ms} ms): its checkpoint was deleted or reset, \
                     or another pipeline of the same name writes this table. Nothing was written. To start counting afresh \
                     run DELETE FROM {progress} WHERE pipeline = '{}' AND target = '{target}' (and clear the table if its \
                     rows should go too); or restore the checkpoint directory",
                    self.pipeline, self.pipeline
                ));
            }
        }
        if !rows.is_empty() {
            tx.batch_execute(&sql).map_err(|e| {
                self.explain(
                    &format!("cannot write {} rows into {target}", rows.len()),
                    &e,
                )
            })?;
        }
        if self.exactly_once {
            tx.execute(
                &format!(
                    "UPDATE {progress} SET batch_id = $3, batch_time_ms = $4, updated_at = now() \
                     WHERE pipeline = $1 AND target = $2"
                ),
                &[&self.pipeline, &target, &id, &batch_time_ms],
            )
            .map_err(|e| self.explain("cannot write the progress table", &e))?;
        }
        tx.commit()
            .map_err(|e| self.explain("cannot commit the batch", &e))?;
        Ok(rows.len() as u64)
    }
}

/// Runs a `CREATE TABLE IF NOT EXISTS` under a transaction-scoped advisory lock: two
/// pipelines creating the same table at once would otherwise collide inside the catalog
/// (`pg_type_typname_nsp_index`) although both said `IF NOT EXISTS`.
fn create(client: &mut Client, sql: &str) -> Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    tx.batch_execute(CREATE_LOCK)?;
    tx.batch_execute(sql)?;
    tx.commit()
}

/// The advisory lock key all sluicegate table creations take (`hashtext('sluicegate')`).
pub const CREATE_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('sluicegate'))";

impl DStream<Row> {
    /// Writes every batch's rows into PostgreSQL, one transaction per batch (see
    /// [`crate::pipeline::postgres`]). Exactly once when the pipeline has a `checkpoint_dir`.
    pub fn to_postgres(&self, out: PostgresOutput) -> &Self {
        let exactly_once = self.ctx.config().checkpoint_dir.is_some();
        let pipeline = self.ctx.name().to_string();
        if !exactly_once {
            tracing::info!(pipeline = %pipeline, table = %out.cfg.table, "the pipeline has no checkpoint directory: PostgreSQL output is at least once across restarts (set checkpointDir for exactly once)");
        }
        let desc = out.describe();
        let s = self.clone();
        let op = PgOp {
            out,
            pipeline,
            exactly_once,
            conn: Mutex::new(None),
        };
        self.ctx
            .add_output(desc, Box::new(PgOutput { stream: s, op }));
        self
    }
}

struct PgOutput {
    stream: DStream<Row>,
    op: PgOp,
}

impl OutputOp for PgOutput {
    fn run(&self, env: &BatchEnv<'_>) -> Result<u64, String> {
        let rows = self.stream.get(env);
        let mut g = self.op.conn.lock().unwrap_or_else(|e| e.into_inner());
        if g.as_ref().is_some_and(|c| c.is_closed()) {
            *g = None;
        }
        if g.is_none() {
            *g = Some(self.op.connect()?);
        }
        let Some(client) = g.as_mut() else {
            return Err("no connection".into());
        };
        let r = self
            .op
            .write(client, env.batch_id, env.batch_time_ms, &rows);
        if r.is_err() && client.is_valid(Duration::from_secs(5)).is_err() {
            // The connection is gone or wedged: open a new one for the retry.
            *g = None;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn cfg(keys: &[&str], acc: &[&str]) -> PostgresConfig {
        let mut c = PostgresConfig::from_url("postgres://u:secret@127.0.0.1:5/db", "wc").unwrap();
        c.keys = keys.iter().map(|s| s.to_string()).collect();
        c.accumulate = acc.iter().map(|s| s.to_string()).collect();
        c
    }

    fn cols(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn literals_are_escaped() {
        let mut s = String::new();
        for v in [
            Value::Null,
            Value::Bool(true),
            Value::Int(-5),
            Value::Float(0.1),
            Value::Float(f64::NAN),
            Value::Float(f64::NEG_INFINITY),
            Value::Str("it's \\ a\0b".into()),
        ] {
            literal(&v, &mut s);
            s.push(' ');
        }
        assert_eq!(
            s,
            "NULL TRUE -5 '0.1'::float8 'NaN'::float8 '-Infinity'::float8 E'it''s \\\\ a\u{FFFD}b' "
        );
        assert_eq!(split_ident("s.t\"x").unwrap(), "\"s\".\"t\"\"x\"");
        assert!(split_ident("a..b").is_none());
        assert!(split_ident("").is_none());
    }

    #[test]
    fn setup_checks_columns() {
        let c = cols(&["word", "n", "window_start", "window_end"]);
        let t = [SqlType::Str, SqlType::Int, SqlType::Int, SqlType::Int];
        let o = PostgresOutput::new(cfg(&["word"], &["n"]), &c, &t).unwrap();
        assert_eq!(o.keys(), ["word", "window_start", "window_end"]);
        assert_eq!(
            PostgresOutput::new(cfg(&["wrod"], &[]), &c, &t).unwrap_err(),
            PostgresSetupError::UnknownColumn {
                setting: "keys",
                column: "wrod".into(),
                columns: "word, n, window_start, window_end".into()
            }
        );
        assert!(matches!(
            PostgresOutput::new(cfg(&["word"], &["word"]), &c, &t).unwrap_err(),
            PostgresSetupError::KeyAccumulated { .. }
        ));
        assert!(matches!(
            PostgresOutput::new(cfg(&[], &["n"]), &c, &t).unwrap_err(),
            PostgresSetupError::AccumulateWithoutKeys
        ));
        assert!(matches!(
            PostgresOutput::new(cfg(&["n"], &["word"]), &c, &t).unwrap_err(),
            PostgresSetupError::NotNumeric { ty: "VARCHAR", .. }
        ));
        // No password in the debug form.
        assert!(!format!("{:?}", cfg(&[], &[])).contains("secret"));
    }

    #[test]
    fn upsert_statement_shape() {
        let c = cols(&["word", "n", "last"]);
        let t = [SqlType::Str, SqlType::Int, SqlType::Str];
        let o = PostgresOutput::new(cfg(&["word"], &["n"]), &c, &t).unwrap();
        let names: Arc<[String]> = c.clone().into();
        let row = |w: &str, n: i64| Row {
            names: names.clone(),
            values: vec![Value::Str(w.into()), Value::Int(n), Value::Null],
        };
        let sql = o.insert_sql(&[row("a", 1), row("b", 2)]).unwrap();
        assert_eq!(
            sql,
            "INSERT INTO \"wc\" AS t (\"word\", \"n\", \"last\") VALUES (E'a', 1, NULL), (E'b', 2, NULL) \
             ON CONFLICT (\"word\") DO UPDATE SET \"n\" = COALESCE(t.\"n\" + EXCLUDED.\"n\", t.\"n\", EXCLUDED.\"n\"), \
             \"last\" = EXCLUDED.\"last\";\n"
        );
        let e = o.insert_sql(&[row("a", 1), row("a", 2)]).unwrap_err();
        assert!(e.contains("same key (word=E'a')"), "{e}");
        assert_eq!(
            o.create_table_sql(true),
            "CREATE TABLE IF NOT EXISTS \"wc\" (\"word\" text, \"n\" bigint, \"last\" text, \
             UNIQUE NULLS NOT DISTINCT (\"word\"))"
        );
        let rows: Vec<Row> = (0..1001).map(|i| row(&i.to_string(), i)).collect();
        assert_eq!(
            o.insert_sql(&rows).unwrap().matches("INSERT INTO").count(),
            3
        );
    }

    #[test]
    fn keys_from_context() {
        let mut ctx = Context::new("a1.sinks.wc");
        let o = crate::config::Origin::default();
        ctx.insert("output.host", "db.example", o.clone());
        ctx.insert("output.port", "6543", o.clone());
        ctx.insert("output.user", "me", o.clone());
        ctx.insert("output.table", "public.wc", o.clone());
        ctx.insert("output.keys", "word, host", o.clone());
        ctx.insert("output.createTable", "true", o.clone());
        let c = PostgresConfig::from_context(&ctx).unwrap();
        assert_eq!(server_of(&c.connection), "db.example:6543");
        assert_eq!(c.connection.get_dbname(), Some("me"));
        assert_eq!(c.keys, ["word", "host"]);
        assert!(c.create_table);
        ctx.insert("output.url", "postgres://x@h/db", o.clone());
        let e = PostgresConfig::from_context(&ctx).unwrap_err();
        assert!(
            e.message.contains("cannot be combined with output.url"),
            "{e}"
        );
        let mut ctx = Context::new("a1.sinks.wc");
        ctx.insert("output.url", "postgres://x@h/db?sslmode=require", o.clone());
        ctx.insert("output.table", "wc", o.clone());
        let e = PostgresConfig::from_context(&ctx).unwrap_err();
        assert!(e.message.contains("does not support TLS"), "{e}");
        assert_eq!(e.key, "a1.sinks.wc.output.url");
    }
}
