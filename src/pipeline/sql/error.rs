//! The error of the SQL front end: where in the query, what was found, what is supported.
//!
//! Positions are 1-based `line:column` inside the query text (as `sqlparser` counts them:
//! columns in characters). [`SqlError`] keeps the pieces apart so that a caller which knows more
//! context (the conf loader: `flume.conf:12: a1.sinks.wc.query:`) can prefix it with
//! [`SqlError::with_context`] without re-parsing the message.

use std::fmt;

/// A 1-based position inside the query text (`0:0` when unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: u64,
    /// Column, from 1.
    pub column: u64,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

impl From<sqlparser::tokenizer::Location> for Pos {
    fn from(l: sqlparser::tokenizer::Location) -> Pos {
        Pos {
            line: l.line,
            column: l.column,
        }
    }
}

/// What kind of rejection (for callers that branch on it; the message says the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlErrorKind {
    /// The text is not SQL the parser understands.
    Syntax,
    /// Valid SQL, but a construct the dialect does not support (yet).
    Unsupported,
    /// A name that does not exist (column, function, header syntax).
    Unknown,
    /// A type mismatch (e.g. `lower(1)`), or a wrong number of arguments.
    Type,
    /// Valid SQL that is wrong in a streaming context (e.g. a bare column not in `GROUP BY`).
    Semantic,
    /// A bad option (emit mode, watermark) passed next to the query.
    Option,
}

/// A rejected query: `line:column: found <found>: <message>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SqlError {
    /// The class of error.
    pub kind: SqlErrorKind,
    /// Where in the query (`0:0` if the parser gave no position).
    pub pos: Pos,
    /// What was found there (a token or an expression, as written).
    pub found: String,
    /// What is wrong and what is supported instead.
    pub message: String,
    /// Optional prefix added by a caller, e.g. `flume.conf:12: a1.sinks.wc.query`.
    pub context: Option<String>,
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(c) = &self.context {
            write!(f, "{c}: ")?;
        }
        write!(f, "query {}: ", self.pos)?;
        if !self.found.is_empty() {
            write!(f, "found `{}`: ", self.found)?;
        }
        f.write_str(&self.message)
    }
}

impl SqlError {
    pub(crate) fn new(
        kind: SqlErrorKind,
        pos: impl Into<Pos>,
        found: impl fmt::Display,
        message: impl Into<String>,
    ) -> SqlError {
        let mut found = found.to_string();
        if found.chars().count() > 60 {
            found = found.chars().take(57).collect::<String>() + "...";
        }
        SqlError {
            kind,
            pos: pos.into(),
            found,
            message: message.into(),
            context: None,
        }
    }

    /// Adds a prefix naming where the query came from (`file:line: key`).
    pub fn with_context(mut self, context: impl Into<String>) -> SqlError {
        self.context = Some(context.into());
        self
    }

    /// Converts a `sqlparser` error (`... at Line: 1, Column: 8`) into a positioned error.
    pub(crate) fn from_parser(e: sqlparser::parser::ParserError) -> SqlError {
        let raw = match e {
            sqlparser::parser::ParserError::TokenizerError(s)
            | sqlparser::parser::ParserError::ParserError(s) => s,
            sqlparser::parser::ParserError::RecursionLimitExceeded => {
                return SqlError::new(
                    SqlErrorKind::Syntax,
                    Pos::default(),
                    "",
                    "the query nests too deeply (recursion limit)",
                )
            }
        };
        let (msg, pos) = match raw.rfind(" at Line: ") {
            Some(i) => {
                let tail = &raw[i + " at Line: ".len()..];
                let mut it = tail.split(", Column: ");
                let line = it.next().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
                let column = it.next().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
                (raw[..i].to_string(), Pos { line, column })
            }
            None => (raw.clone(), Pos::default()),
        };
        // sqlparser says "Expected: X, found: Y"; split the found part out.
        let (message, found) = match msg.rfind(", found: ") {
            Some(i) => (
                msg[..i].replace("Expected: ", "expected "),
                msg[i + ", found: ".len()..].to_string(),
            ),
            None => (msg, String::new()),
        };
        SqlError::new(
            SqlErrorKind::Syntax,
            pos,
            found,
            format!("syntax error: {message}"),
        )
    }
}
