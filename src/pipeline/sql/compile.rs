//! The analyser and compiler: `sqlparser` AST → a [`Plan`] of typed, compiled expressions.
//!
//! Every expression is type-checked once and compiled into a boxed closure
//! `Fn(&Cx) -> Val` ([`EvalFn`]); constants (regular expressions, `LIKE` patterns, JSON paths,
//! split delimiters, timestamp formats) are parsed here, once. Nothing of the AST survives into
//! the per-event path.
//!
//! Two scopes: the *row* scope (`WHERE`, `GROUP BY` keys, aggregate arguments, the `SELECT` list
//! of a non-aggregating query) sees the event's columns; the *group* scope (`SELECT`, `HAVING` and
//! `ORDER BY` of an aggregating query) sees only the group keys (matched by their SQL text, by
//! `SELECT` alias or by ordinal) and aggregate results, laid out as `keys ++ aggregates` in
//! [`Cx::cols`].

use std::borrow::Cow;
use std::sync::Arc;

use sqlparser::ast::{
    self, BinaryOperator, DuplicateTreatment, Expr, FunctionArg, FunctionArgExpr,
    FunctionArguments, GroupByExpr, JoinOperator, ObjectName, SelectItem, SetExpr, Spanned,
    Statement, TableFactor, UnaryOperator,
};

use crate::event::Event;
use crate::pipeline::event_time::Windows;

use super::error::{Pos, SqlError, SqlErrorKind};
use super::func;
use super::value::{cmp_val, SqlType, Val, Value};
use super::{EmitMode, SqlOptions};

/// What a compiled expression sees.
pub(crate) struct Cx<'a> {
    /// The event (row scope).
    pub ev: Option<&'a Event>,
    /// The body as text (empty unless the query reads `body`).
    pub body: &'a str,
    /// The current `UNNEST` element.
    pub word: Option<&'a str>,
    /// The batch time (`proc_time`).
    pub batch_ms: i64,
    /// Group scope: keys ++ aggregate results.
    pub cols: &'a [Value],
}

/// A compiled expression.
pub(crate) type EvalFn = Box<dyn for<'a, 'b> Fn(&'b Cx<'a>) -> Val<'a> + Send + Sync>;

fn mk<F>(f: F) -> EvalFn
where
    F: for<'a, 'b> Fn(&'b Cx<'a>) -> Val<'a> + Send + Sync + 'static,
{
    Box::new(f)
}

/// Which inputs an expression reads.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Uses {
    pub body: bool,
    pub word: bool,
    pub proc_time: bool,
}

impl Uses {
    fn or(self, o: Uses) -> Uses {
        Uses {
            body: self.body || o.body,
            word: self.word || o.word,
            proc_time: self.proc_time || o.proc_time,
        }
    }
}

/// A typed, compiled expression.
pub(crate) struct Ex {
    pub ty: SqlType,
    pub f: EvalFn,
    pub uses: Uses,
}

impl Ex {
    #[inline]
    pub fn eval<'a>(&self, cx: &Cx<'a>) -> Val<'a> {
        (self.f)(cx)
    }
    /// For predicates: only TRUE keeps a row.
    #[inline]
    pub fn test(&self, cx: &Cx<'_>) -> bool {
        matches!((self.f)(cx), Val::Bool(true))
    }
}

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AggKind {
    CountStar,
    Count,
    CountDistinct,
    /// `approx_count_distinct(x)`: a HyperLogLog sketch (`hll.rs`).
    ApproxDistinct,
    Sum,
    Min,
    Max,
    Avg,
}

pub(crate) struct AggSpec {
    pub kind: AggKind,
    /// The argument (row scope); `None` for `count(*)`.
    pub arg: Option<Ex>,
    /// The argument's type.
    pub arg_ty: SqlType,
    /// The argument's SQL text (`None` for `count(*)`).
    pub arg_text: Option<String>,
    /// The first aggregate with the same argument text (itself if none): a row evaluates
    /// `sum(length(w)), max(length(w))`'s argument once.
    pub same_arg_as: usize,
}

/// `UNNEST(split(src, delim)) AS t(col)`.
pub(crate) struct Unnest {
    pub src: Ex,
    pub delim: String,
    /// `src` is the bare column `body` (the word-count form `split(body, ' ')`).
    pub src_is_body: bool,
}

/// A sort key over the extended output row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SortKey {
    pub col: usize,
    pub desc: bool,
    pub nulls_first: bool,
}

pub(crate) enum Shape {
    /// No aggregation: one output row per input row.
    Project { cols: Vec<Ex> },
    /// Per-batch grouping.
    Aggregate {
        keys: Vec<Ex>,
        aggs: Vec<AggSpec>,
        having: Option<Ex>,
        /// Output columns (group scope), visible ones first, then hidden sort columns.
        cols: Vec<Ex>,
    },
}

/// The window of a windowed `GROUP BY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowSpec {
    /// The window shape, in ms.
    pub windows: Windows,
    /// True for processing-time windows (`proc_time`), false for `event_time`.
    pub proc_time: bool,
}

/// The compiled query.
pub(crate) struct Plan {
    pub names: Arc<[String]>,
    pub types: Vec<SqlType>,
    /// `WHERE` conjuncts that do not read the `UNNEST` column (evaluated once per event).
    pub pre_filter: Option<Ex>,
    /// `WHERE` conjuncts that read the `UNNEST` column (evaluated per element).
    pub post_filter: Option<Ex>,
    pub unnest: Option<Unnest>,
    pub shape: Shape,
    pub order: Vec<SortKey>,
    pub limit: Option<usize>,
    pub uses: Uses,
    /// `Some` for a windowed `GROUP BY`: the group scope's columns are then
    /// `window_start, window_end ++ keys ++ aggregates`.
    pub window: Option<WindowSpec>,
    /// The only `GROUP BY` key is the bare `UNNEST` column (`GROUP BY word`): with
    /// `split(body, d)` and `count(*)` alone, the word count's table can run the query
    /// (`exec::word_table_delim`).
    pub key_is_unnest_col: bool,
}

fn err(
    kind: SqlErrorKind,
    node: &impl Spanned,
    found: impl std::fmt::Display,
    msg: impl Into<String>,
) -> SqlError {
    SqlError::new(kind, Pos::from(node.span().start), found, msg)
}

fn unsupported(node: &(impl Spanned + std::fmt::Display), msg: impl Into<String>) -> SqlError {
    err(SqlErrorKind::Unsupported, node, node, msg)
}

const COLUMNS: &str =
    "columns are body, event_time, proc_time, headers['k'] (or header('k')) and the UNNEST column";
const FUNCTIONS: &str = "lower, upper, trim, length, octet_length, substr, concat, split (in UNNEST), \
     regexp_extract, regexp_like, json_value, parse_timestamp, coalesce, header, body_hex, CAST, CASE";
const WINDOW_FORMS: &str =
    "supported windows (in GROUP BY): TUMBLE(event_time, INTERVAL '10' SECOND), \
     HOP(event_time, <slide>, <size>) with size a multiple of slide, SESSION(event_time, <gap>); \
     proc_time instead of event_time for processing-time windows; select window_start / window_end";
const INTERVAL_FORMS: &str =
    "write a window length as INTERVAL '<n>' <unit> (or INTERVAL '<n> <unit>'), \
     a positive whole number of MILLISECOND, SECOND, MINUTE, HOUR or DAY";

struct PostScope {
    /// Columns before the keys in [`Cx::cols`] (2 for window_start, window_end).
    offset: usize,
    keys: Vec<String>,
    key_types: Vec<SqlType>,
    aggs: Vec<AggSpec>,
    agg_text: Vec<String>,
}

/// What [`Compiler::bare_column`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BareCol {
    Body,
    Unnest,
}

struct Compiler<'o> {
    opts: &'o SqlOptions,
    table_alias: Option<String>,
    unnest_alias: Option<String>,
    unnest_col: Option<String>,
    unnest_src: Option<Unnest>,
    post: Option<PostScope>,
    window: Option<WindowSpec>,
}

/// Parses and compiles `sql` (see the module docs).
pub(crate) fn compile(sql: &str, opts: &SqlOptions) -> Result<Plan, SqlError> {
    let dialect = sqlparser::dialect::GenericDialect {};
    let mut stmts = sqlparser::parser::Parser::parse_sql(&dialect, sql).map_err(|e| {
        let mut e = SqlError::from_parser(e);
        if e.pos == Pos::default() {
            // The parser gives no position at the end of the input: point just past it.
            e.pos = end_of(sql);
        }
        e
    })?;
    if stmts.len() != 1 {
        let pos = stmts
            .get(1)
            .map(|s| Pos::from(s.span().start))
            .unwrap_or_default();
        return Err(SqlError::new(
            SqlErrorKind::Unsupported,
            pos,
            stmts.get(1).map(|s| s.to_string()).unwrap_or_default(),
            format!(
                "a pipeline runs exactly one SELECT statement, found {}",
                stmts.len()
            ),
        ));
    }
    let stmt = stmts.remove(0);
    let query = match stmt {
        Statement::Query(q) => q,
        other => {
            let kw = other
                .to_string()
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string();
            return Err(SqlError::new(
                SqlErrorKind::Unsupported,
                start_of(sql),
                kw,
                "only SELECT queries are supported",
            ));
        }
    };
    let mut c = Compiler {
        opts,
        table_alias: None,
        unnest_alias: None,
        unnest_col: None,
        unnest_src: None,
        post: None,
        window: None,
    };
    c.query(&query)
}

/// The position just past the end of `sql`.
fn end_of(sql: &str) -> Pos {
    let line = sql.split('\n').count() as u64;
    let last = sql.rsplit('\n').next().unwrap_or("");
    Pos {
        line,
        column: last.chars().count() as u64 + 1,
    }
}

/// The position of the first non-blank character of `sql`.
fn start_of(sql: &str) -> Pos {
    let mut pos = Pos { line: 1, column: 1 };
    for c in sql.chars() {
        match c {
            '\n' => {
                pos.line += 1;
                pos.column = 1;
            }
            c if c.is_whitespace() => pos.column += 1,
            _ => break,
        }
    }
    pos
}

fn object_name(n: &ObjectName) -> String {
    n.to_string().to_ascii_lowercase()
}

fn split_and(e: &Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            split_and(left, out);
            split_and(right, out);
        }
        Expr::Nested(inner)
            if matches!(
                **inner,
                Expr::BinaryOp {
                    op: BinaryOperator::And,
                    ..
                }
            ) =>
        {
            split_and(inner, out)
        }
        e => out.push(e.clone()),
    }
}

fn and_all(mut v: Vec<Ex>) -> Option<Ex> {
    let first = v.pop()?;
    Some(v.into_iter().fold(first, |acc, e| {
        let uses = acc.uses.or(e.uses);
        let (a, b) = (acc.f, e.f);
        Ex {
            ty: SqlType::Bool,
            uses,
            f: mk(move |cx| {
                if matches!(a(cx), Val::Bool(true)) && matches!(b(cx), Val::Bool(true)) {
                    Val::Bool(true)
                } else {
                    Val::Bool(false)
                }
            }),
        }
    }))
}

fn is_aggregate_name(n: &str) -> bool {
    matches!(
        n,
        "count" | "sum" | "min" | "max" | "avg" | "approx_count_distinct"
    )
}

fn is_window_bound(n: &str) -> bool {
    n.eq_ignore_ascii_case("window_start") || n.eq_ignore_ascii_case("window_end")
}

fn is_window_name(n: &str) -> bool {
    matches!(
        n,
        "tumble" | "hop" | "session" | "tumble_start" | "tumble_end" | "hop_start" | "hop_end"
    )
}

/// True if `e` contains an aggregate call.
fn has_aggregate(e: &Expr) -> bool {
    let mut found = false;
    visit(e, &mut |x| {
        if let Expr::Function(f) = x {
            if is_aggregate_name(&object_name(&f.name)) {
                found = true;
            }
        }
    });
    found
}

/// Calls `f` on `e` and its sub-expressions (those the dialect can contain).
fn visit(e: &Expr, f: &mut dyn FnMut(&Expr)) {
    f(e);
    match e {
        Expr::BinaryOp { left, right, .. } => {
            visit(left, f);
            visit(right, f)
        }
        Expr::UnaryOp { expr, .. }
        | Expr::Nested(expr)
        | Expr::IsNull(expr)
        | Expr::IsNotNull(expr)
        | Expr::Cast { expr, .. } => visit(expr, f),
        Expr::Like { expr, pattern, .. } | Expr::ILike { expr, pattern, .. } => {
            visit(expr, f);
            visit(pattern, f)
        }
        Expr::Between {
            expr, low, high, ..
        } => {
            visit(expr, f);
            visit(low, f);
            visit(high, f)
        }
        Expr::InList { expr, list, .. } => {
            visit(expr, f);
            list.iter().for_each(|x| visit(x, f))
        }
        Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            if let Some(o) = operand {
                visit(o, f)
            }
            for w in conditions {
                visit(&w.condition, f);
                visit(&w.result, f)
            }
            if let Some(e) = else_result {
                visit(e, f)
            }
        }
        Expr::Function(func) => {
            if let FunctionArguments::List(l) = &func.args {
                for a in &l.args {
                    if let FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) = a {
                        visit(x, f)
                    }
                }
            }
        }
        Expr::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => {
            visit(expr, f);
            if let Some(x) = substring_from {
                visit(x, f)
            }
            if let Some(x) = substring_for {
                visit(x, f)
            }
        }
        Expr::Trim { expr, .. } => visit(expr, f),
        _ => {}
    }
}

fn literal_str(e: &Expr) -> Option<&str> {
    match e {
        Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

fn literal_int(e: &Expr) -> Option<i64> {
    match e {
        Expr::Value(v) => match &v.value {
            ast::Value::Number(s, _) => s.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

fn type_err(node: &(impl Spanned + std::fmt::Display), msg: impl Into<String>) -> SqlError {
    err(SqlErrorKind::Type, node, node, msg)
}

fn bool_of(v: bool) -> Val<'static> {
    Val::Bool(v)
}

impl<'o> Compiler<'o> {
    fn query(&mut self, q: &ast::Query) -> Result<Plan, SqlError> {
        if let Some(w) = &q.with {
            return Err(unsupported(
                w,
                "WITH (common table expressions) is not supported; write one SELECT over events",
            ));
        }
        if let Some(f) = &q.fetch {
            return Err(SqlError::new(
                SqlErrorKind::Unsupported,
                Pos::default(),
                f,
                "FETCH is not supported; use LIMIT n",
            ));
        }
        if !q.locks.is_empty()
            || q.for_clause.is_some()
            || q.settings.is_some()
            || q.format_clause.is_some()
            || !q.pipe_operators.is_empty()
        {
            return Err(unsupported(q, "only SELECT ... FROM events [CROSS JOIN UNNEST(...)] [WHERE] [GROUP BY] [HAVING] [ORDER BY] [LIMIT] is supported"));
        }
        let select = match &*q.body {
            SetExpr::Select(s) => s,
            SetExpr::Query(inner) => return Err(unsupported(&**inner, "a parenthesised or nested query is not supported; write one SELECT over events")),
            other => return Err(unsupported(other, "set operations (UNION, EXCEPT, INTERSECT) and VALUES are not supported; write one SELECT over events")),
        };
        if let Some(d) = &select.distinct {
            return Err(SqlError::new(
                SqlErrorKind::Unsupported,
                Pos::from(select.select_token.0.span.start),
                d,
                "SELECT DISTINCT is not supported; use GROUP BY over the columns",
            ));
        }
        if let Some(t) = &select.top {
            return Err(SqlError::new(
                SqlErrorKind::Unsupported,
                Pos::from(select.select_token.0.span.start),
                t,
                "TOP is not supported; use ORDER BY ... LIMIT n",
            ));
        }
        for (what, present) in [
            ("INTO", select.into.is_some()),
            ("LATERAL VIEW", !select.lateral_views.is_empty()),
            ("PREWHERE", select.prewhere.is_some()),
            (
                "CLUSTER BY / DISTRIBUTE BY / SORT BY",
                !select.cluster_by.is_empty()
                    || !select.distribute_by.is_empty()
                    || !select.sort_by.is_empty(),
            ),
            ("WINDOW (named windows)", !select.named_window.is_empty()),
            ("QUALIFY", select.qualify.is_some()),
            ("CONNECT BY", select.connect_by.is_some()),
            ("EXCLUDE", select.exclude.is_some()),
        ] {
            if present {
                return Err(SqlError::new(
                    SqlErrorKind::Unsupported,
                    Pos::from(select.select_token.0.span.start),
                    what,
                    format!("{what} is not supported in a pipeline query"),
                ));
            }
        }
        self.from(select)?;

        // The window (at most one), reported before anything else about the group keys.
        let mut window_expr: Option<Expr> = None;
        if let GroupByExpr::Expressions(v, _) = &select.group_by {
            for g in v {
                if let Expr::Function(f) = g {
                    if is_window_name(&object_name(&f.name)) {
                        if let Some(first) = &window_expr {
                            return Err(unsupported(
                            g,
                            format!("a query groups by at most one window, and already has `{first}`"),
                        ));
                        }
                        self.window = Some(self.window_spec(f, g)?);
                        window_expr = Some(g.clone());
                    }
                }
            }
        }

        // WHERE, split into per-event and per-element conjuncts.
        let (mut pre, mut post) = (Vec::new(), Vec::new());
        if let Some(w) = &select.selection {
            if has_aggregate(w) {
                return Err(err(
                    SqlErrorKind::Semantic,
                    w,
                    w,
                    "aggregates are not allowed in WHERE; use HAVING",
                ));
            }
            let mut conj = Vec::new();
            split_and(w, &mut conj);
            for c in &conj {
                let ex = self.expr(c)?;
                self.expect_bool(&ex, c, "WHERE")?;
                if ex.uses.word {
                    post.push(ex)
                } else {
                    pre.push(ex)
                }
            }
        }
        let pre_filter = and_all(pre);
        let post_filter = and_all(post);

        // Projection items.
        let mut items: Vec<(Expr, String)> = Vec::new();
        for it in &select.projection {
            match it {
                SelectItem::UnnamedExpr(e) => {
                    let name = match e {
                        Expr::Identifier(i) => i.value.clone(),
                        Expr::CompoundIdentifier(v) => {
                            v.last().map(|i| i.value.clone()).unwrap_or_default()
                        }
                        e => e.to_string(),
                    };
                    items.push((e.clone(), name))
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    items.push((expr.clone(), alias.value.clone()))
                }
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                    return Err(err(
                        SqlErrorKind::Unsupported,
                        it,
                        it,
                        format!("SELECT * is not supported: name the output columns ({COLUMNS})"),
                    ));
                }
            }
        }
        for (i, (e, n)) in items.iter().enumerate() {
            if n.eq_ignore_ascii_case("batch_time") {
                return Err(err(SqlErrorKind::Semantic, e, n, "the output name batch_time is reserved (JSON outputs add it); choose another alias with AS"));
            }
            if items[..i].iter().any(|(_, m)| m == n) {
                return Err(err(
                    SqlErrorKind::Semantic,
                    e,
                    n,
                    format!("two output columns are named `{n}`; give one another name with AS"),
                ));
            }
        }

        let mut group_exprs: Vec<Expr> = match &select.group_by {
            GroupByExpr::All(_) => {
                return Err(SqlError::new(
                    SqlErrorKind::Unsupported,
                    Pos::from(select.select_token.0.span.start),
                    "GROUP BY ALL",
                    "GROUP BY ALL is not supported; list the group keys",
                ))
            }
            GroupByExpr::Expressions(v, mods) => {
                if !mods.is_empty() {
                    return Err(SqlError::new(
                        SqlErrorKind::Unsupported,
                        Pos::from(select.select_token.0.span.start),
                        "WITH ROLLUP/CUBE/TOTALS",
                        "GROUP BY modifiers are not supported",
                    ));
                }
                v.clone()
            }
        };
        if self.window.is_some() {
            // The window and its bounds (Flink's `GROUP BY window_start, window_end`) are not
            // group keys of their own.
            group_exprs.retain(|g| {
                !matches!(g, Expr::Function(f) if is_window_name(&object_name(&f.name)))
                    && !matches!(g, Expr::Identifier(i) if is_window_bound(&i.value))
            });
        }
        let aggregating = !group_exprs.is_empty()
            || self.window.is_some()
            || select.having.is_some()
            || items.iter().any(|(e, _)| has_aggregate(e));

        let order_items: Vec<ast::OrderByExpr> = match &q.order_by {
            None => Vec::new(),
            Some(ob) => {
                if ob.interpolate.is_some() {
                    return Err(SqlError::new(
                        SqlErrorKind::Unsupported,
                        Pos::default(),
                        "INTERPOLATE",
                        "INTERPOLATE is not supported",
                    ));
                }
                match &ob.kind {
                    ast::OrderByKind::Expressions(v) => v.clone(),
                    ast::OrderByKind::All(_) => {
                        return Err(SqlError::new(
                            SqlErrorKind::Unsupported,
                            Pos::default(),
                            "ORDER BY ALL",
                            "ORDER BY ALL is not supported; list the sort keys",
                        ))
                    }
                }
            }
        };
        let limit = self.limit(q)?;
        if let (Some(_), Some(_), EmitMode::Update) = (self.window, limit, self.opts.emit) {
            let at = match &q.limit_clause {
                Some(ast::LimitClause::LimitOffset { limit: Some(e), .. }) => {
                    Pos::from(e.span().start)
                }
                _ => Pos::default(),
            };
            return Err(SqlError::new(
                SqlErrorKind::Semantic,
                at,
                format!("LIMIT {}", limit.unwrap_or(0)),
                "ORDER BY ... LIMIT n ranks all groups of a window, but with emit = update a batch \
                 outputs only the groups it changed: set emit = final for a per-window top-K, or drop LIMIT",
            ));
        }

        let names: Vec<String> = items.iter().map(|(_, n)| n.clone()).collect();
        let mut order = Vec::new();
        let mut key_is_unnest_col = false;
        let (shape, types) = if aggregating {
            // Group keys: expressions, select aliases or ordinals.
            let mut key_exprs: Vec<Expr> = Vec::new();
            for g in &group_exprs {
                let resolved = match g {
                    Expr::Value(v) if matches!(v.value, ast::Value::Number(..)) => {
                        let n = literal_int(g).unwrap_or(0);
                        if n < 1 || n as usize > items.len() {
                            return Err(err(
                                SqlErrorKind::Semantic,
                                g,
                                g,
                                format!(
                                    "GROUP BY position {n} is not in the select list (1..{})",
                                    items.len()
                                ),
                            ));
                        }
                        items[n as usize - 1].0.clone()
                    }
                    Expr::Identifier(id) if !self.is_column(&id.value) => {
                        match items.iter().find(|(_, n)| n == &id.value) {
                            Some((e, _)) => e.clone(),
                            None => g.clone(),
                        }
                    }
                    g => g.clone(),
                };
                if has_aggregate(&resolved) {
                    return Err(err(
                        SqlErrorKind::Semantic,
                        g,
                        g,
                        "aggregates are not allowed in GROUP BY",
                    ));
                }
                key_exprs.push(resolved);
            }
            key_is_unnest_col =
                key_exprs.len() == 1 && self.bare_column(&key_exprs[0]) == Some(BareCol::Unnest);
            let mut keys = Vec::new();
            let mut key_types = Vec::new();
            for k in &key_exprs {
                let ex = self.expr(k)?;
                key_types.push(ex.ty);
                keys.push(ex);
            }
            self.post = Some(PostScope {
                offset: if self.window.is_some() { 2 } else { 0 },
                keys: key_exprs.iter().map(|e| e.to_string()).collect(),
                key_types,
                aggs: Vec::new(),
                agg_text: Vec::new(),
            });
            let mut cols = Vec::new();
            for (e, _) in &items {
                cols.push(self.expr(e)?);
            }
            let having = match &select.having {
                Some(h) => {
                    let ex = self.expr(h)?;
                    self.expect_bool(&ex, h, "HAVING")?;
                    Some(ex)
                }
                None => None,
            };
            self.order_by(&order_items, &items, &mut cols, &mut order)?;
            let post = self.post.take().expect("post scope");
            let types = cols.iter().map(|c| c.ty).collect();
            (
                Shape::Aggregate {
                    keys,
                    aggs: post.aggs,
                    having,
                    cols,
                },
                types,
            )
        } else {
            let mut cols = Vec::new();
            for (e, _) in &items {
                let ex = self.expr(e)?;
                if ex.ty == SqlType::StrArray {
                    return Err(type_err(
                        e,
                        "split returns an array: use it in CROSS JOIN UNNEST(split(...)) AS t(col)",
                    ));
                }
                cols.push(ex);
            }
            self.order_by(&order_items, &items, &mut cols, &mut order)?;
            let types = cols.iter().map(|c| c.ty).collect();
            (Shape::Project { cols }, types)
        };
        let unnest = self.unnest_src.take();
        let mut uses = Uses::default();
        let cols_uses = match &shape {
            Shape::Project { cols } => cols.iter().fold(Uses::default(), |u, c| u.or(c.uses)),
            Shape::Aggregate { keys, aggs, .. } => keys
                .iter()
                .chain(aggs.iter().filter_map(|a| a.arg.as_ref()))
                .fold(Uses::default(), |u, c| u.or(c.uses)),
        };
        for u in [
            cols_uses,
            pre_filter.as_ref().map(|e| e.uses).unwrap_or_default(),
            post_filter.as_ref().map(|e| e.uses).unwrap_or_default(),
            unnest.as_ref().map(|u| u.src.uses).unwrap_or_default(),
        ] {
            uses = uses.or(u);
        }
        Ok(Plan {
            names: names.into(),
            types,
            pre_filter,
            post_filter,
            unnest,
            shape,
            order,
            limit,
            uses,
            window: self.window,
            key_is_unnest_col,
        })
    }
}

/// A window length: `INTERVAL '10' SECOND`, `INTERVAL '10 seconds'`, `INTERVAL 10 SECOND`.
fn interval_ms(e: &Expr) -> Result<i64, SqlError> {
    let bad = |node: &Expr, what: &str| {
        err(
            SqlErrorKind::Unsupported,
            node,
            node,
            format!("{what}; {INTERVAL_FORMS}"),
        )
    };
    let Expr::Interval(iv) = e else {
        return Err(bad(e, "a window length must be an INTERVAL"));
    };
    if iv.last_field.is_some() || iv.fractional_seconds_precision.is_some() {
        return Err(bad(
            e,
            "interval ranges (... TO ...) and precisions are not supported",
        ));
    }
    let (num, unit_text): (String, Option<String>) = match &*iv.value {
        Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(t) => {
                let mut it = t.split_whitespace();
                let n = it.next().unwrap_or("").to_string();
                let u = it.next().map(str::to_string);
                if it.next().is_some() {
                    return Err(bad(e, "one number and one unit only"));
                }
                (n, u)
            }
            ast::Value::Number(n, _) => (n.clone(), None),
            _ => return Err(bad(e, "the interval value must be a number")),
        },
        _ => return Err(bad(e, "the interval value must be a literal")),
    };
    use ast::DateTimeField as F;
    let unit_ms = |u: &str| -> Option<i64> {
        match u.to_ascii_lowercase().as_str() {
            "millisecond" | "milliseconds" | "ms" => Some(1),
            "second" | "seconds" | "s" => Some(1_000),
            "minute" | "minutes" | "min" => Some(60_000),
            "hour" | "hours" | "h" => Some(3_600_000),
            "day" | "days" | "d" => Some(86_400_000),
            _ => None,
        }
    };
    let per = match (&iv.leading_field, &unit_text) {
        (Some(_), Some(_)) => return Err(bad(e, "the unit is given twice")),
        (Some(f), None) => match f {
            F::Millisecond | F::Milliseconds => 1,
            F::Second | F::Seconds => 1_000,
            F::Minute | F::Minutes => 60_000,
            F::Hour | F::Hours => 3_600_000,
            F::Day | F::Days => 86_400_000,
            other => return Err(bad(e, &format!("unit {other} is not supported"))),
        },
        (None, Some(u)) => match unit_ms(u) {
            Some(m) => m,
            None => return Err(bad(e, &format!("unit `{u}` is not supported"))),
        },
        (None, None) => return Err(bad(e, "the interval needs a unit")),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| bad(e, &format!("`{num}` is not a whole number")))?;
    match n.checked_mul(per) {
        Some(ms) if ms > 0 => Ok(ms),
        _ => Err(bad(
            e,
            "a window length must be positive (and below 2^63 ms)",
        )),
    }
}

impl<'o> Compiler<'o> {
    /// `TUMBLE(t, len)`, `HOP(t, slide, size)`, `SESSION(t, gap)` (see the module docs).
    fn window_spec(&self, f: &ast::Function, e: &Expr) -> Result<WindowSpec, SqlError> {
        let name = object_name(&f.name);
        let (sig, arity) = match name.as_str() {
            "tumble" => ("TUMBLE(event_time, INTERVAL '10' SECOND)", 2),
            "hop" => ("HOP(event_time, <slide>, <size>)", 3),
            "session" => ("SESSION(event_time, <gap>)", 2),
            _ => {
                return Err(unsupported(
                    e,
                    format!("{name} is not a window; {WINDOW_FORMS}"),
                ))
            }
        };
        let args = self.args(f)?;
        if args.len() != arity {
            return Err(type_err(e, format!("wrong number of arguments: {sig}")));
        }
        let col = match args[0] {
            Expr::Identifier(i) => Some(i.value.to_ascii_lowercase()),
            Expr::CompoundIdentifier(v)
                if v.len() == 2 && {
                    let q = &v[0].value;
                    q.eq_ignore_ascii_case("events")
                        || self.table_alias.as_deref() == Some(q.as_str())
                } =>
            {
                Some(v[1].value.to_ascii_lowercase())
            }
            _ => None,
        };
        let proc_time = match col.as_deref() {
            Some("event_time") => false,
            Some("proc_time") => true,
            _ => {
                return Err(unsupported(
                    args[0],
                    format!(
                        "the time of a window must be the column event_time (header `{}`, ms since the epoch) or proc_time (the batch time)",
                        self.opts.timestamp_header
                    ),
                ))
            }
        };
        let windows = match name.as_str() {
            "tumble" => {
                let len = interval_ms(args[1])?;
                Windows::Sliding {
                    len_ms: len,
                    slide_ms: len,
                }
            }
            "hop" => {
                let slide = interval_ms(args[1])?;
                let size = interval_ms(args[2])?;
                if size % slide != 0 {
                    return Err(unsupported(
                        args[2],
                        format!("the HOP size ({size} ms) must be a whole multiple of the slide ({slide} ms): HOP(event_time, <slide>, <size>)"),
                    ));
                }
                Windows::Sliding {
                    len_ms: size,
                    slide_ms: slide,
                }
            }
            _ => Windows::Session {
                gap_ms: interval_ms(args[1])?,
            },
        };
        Ok(WindowSpec { windows, proc_time })
    }

    /// `window_start` / `window_end`: BIGINT ms, in the group scope of a windowed query.
    fn window_bound(&self, name: &str, e: &Expr) -> Result<Ex, SqlError> {
        if self.window.is_none() {
            return Err(err(
                SqlErrorKind::Semantic,
                e,
                e,
                format!("{name} needs a windowed GROUP BY; {WINDOW_FORMS}"),
            ));
        }
        if self.post.is_none() {
            return Err(err(
                SqlErrorKind::Semantic,
                e,
                e,
                format!("{name} is known only per window: use it in SELECT, HAVING or ORDER BY, not in WHERE, GROUP BY or inside an aggregate"),
            ));
        }
        let i = usize::from(name.eq_ignore_ascii_case("window_end"));
        Ok(Ex {
            ty: SqlType::Int,
            uses: Uses::default(),
            f: mk(move |cx| cx.cols[i].as_val()),
        })
    }

    /// The column a bare (optionally qualified, parenthesised) column reference resolves to,
    /// by the same rules as [`column`](Self::column): `None` for anything else.
    fn bare_column(&self, e: &Expr) -> Option<BareCol> {
        let name = match e {
            Expr::Nested(inner) => return self.bare_column(inner),
            Expr::Identifier(id) => &id.value,
            Expr::CompoundIdentifier(parts) if parts.len() == 2 => {
                let q = &parts[0].value;
                let ok = q.eq_ignore_ascii_case("events")
                    || self.table_alias.as_deref().is_some_and(|a| a == q)
                    || self.unnest_alias.as_deref().is_some_and(|a| a == q);
                if !ok {
                    return None;
                }
                &parts[1].value
            }
            _ => return None,
        };
        if is_window_bound(name) {
            None
        } else if self
            .unnest_col
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case(name))
        {
            Some(BareCol::Unnest)
        } else if name.eq_ignore_ascii_case("body") {
            Some(BareCol::Body)
        } else {
            None
        }
    }

    fn is_column(&self, name: &str) -> bool {
        let n = name.to_ascii_lowercase();
        matches!(n.as_str(), "body" | "event_time" | "proc_time")
            || self
                .unnest_col
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case(name))
    }

    fn expect_bool(&self, ex: &Ex, e: &Expr, clause: &str) -> Result<(), SqlError> {
        if matches!(ex.ty, SqlType::Bool | SqlType::Null) {
            Ok(())
        } else {
            Err(type_err(
                e,
                format!("{clause} needs a BOOLEAN condition, found {}", ex.ty.name()),
            ))
        }
    }

    fn from(&mut self, select: &ast::Select) -> Result<(), SqlError> {
        let at_select = Pos::from(select.select_token.0.span.start);
        if select.from.is_empty() {
            return Err(SqlError::new(
                SqlErrorKind::Semantic,
                at_select,
                "SELECT",
                "missing FROM events (a pipeline query reads the stream `events`)",
            ));
        }
        let mut relations: Vec<(&TableFactor, Option<&JoinOperator>)> = Vec::new();
        for twj in &select.from {
            relations.push((&twj.relation, None));
            for j in &twj.joins {
                relations.push((&j.relation, Some(&j.join_operator)));
            }
        }
        // The first relation: events.
        match relations[0].0 {
            TableFactor::Table { name, alias, args, .. } if args.is_none() => {
                if object_name(name) != "events" {
                    return Err(err(SqlErrorKind::Unknown, name, name, "unknown table: a pipeline query reads FROM events"));
                }
                if let Some(a) = alias {
                    if !a.columns.is_empty() {
                        return Err(unsupported(a, "column aliases on events are not supported"));
                    }
                    self.table_alias = Some(a.name.value.clone());
                }
            }
            other => return Err(unsupported(other, "the query must read FROM events (optionally followed by CROSS JOIN UNNEST(...) AS t(col))")),
        }
        if relations.len() > 2 {
            return Err(unsupported(
                relations[2].0,
                "at most one CROSS JOIN UNNEST(...) is supported",
            ));
        }
        if let Some((rel, op)) = relations.get(1) {
            if let Some(op) = op {
                match op {
                    JoinOperator::CrossJoin(ast::JoinConstraint::None) => {}
                    _ => return Err(unsupported(*rel, "joins are not supported; only CROSS JOIN UNNEST(split(...)) AS t(col) (flatMap)")),
                }
            }
            match rel {
                TableFactor::UNNEST { alias, array_exprs, with_offset, with_ordinality, .. } => {
                    if *with_offset || *with_ordinality {
                        return Err(unsupported(*rel, "UNNEST ... WITH OFFSET/ORDINALITY is not supported"));
                    }
                    let col = match alias {
                        Some(a) if a.columns.len() == 1 => {
                            self.unnest_alias = Some(a.name.value.clone());
                            a.columns[0].name.value.clone()
                        }
                        _ => return Err(err(SqlErrorKind::Semantic, *rel, rel, "name the UNNEST column: UNNEST(split(body, ' ')) AS t(word)")),
                    };
                    if array_exprs.len() != 1 {
                        return Err(unsupported(*rel, "UNNEST takes exactly one array: split(string, delimiter)"));
                    }
                    let a = &array_exprs[0];
                    let (src, delim, src_is_body) = match a {
                        Expr::Function(f) if object_name(&f.name) == "split" => {
                            let args = self.args(f)?;
                            if args.len() != 2 {
                                return Err(type_err(a, "split takes 2 arguments: split(string, delimiter)"));
                            }
                            let delim = literal_str(args[1]).ok_or_else(|| type_err(args[1], "the split delimiter must be a string literal"))?;
                            if delim.is_empty() {
                                return Err(type_err(args[1], "the split delimiter must not be empty"));
                            }
                            let src_is_body = self.bare_column(args[0]) == Some(BareCol::Body);
                            let src = self.expr(args[0])?;
                            if !matches!(src.ty, SqlType::Str | SqlType::Null) {
                                return Err(type_err(args[0], format!("split needs a VARCHAR, found {}", src.ty.name())));
                            }
                            (src, delim.to_string(), src_is_body)
                        }
                        _ => return Err(unsupported(a, "UNNEST supports split(string, delimiter) only")),
                    };
                    self.unnest_src = Some(Unnest { src, delim, src_is_body });
                    self.unnest_col = Some(col);
                }
                other => return Err(unsupported(*other, "joins are not supported; only CROSS JOIN UNNEST(split(...)) AS t(col) (flatMap)")),
            }
        }
        Ok(())
    }

    fn limit(&self, q: &ast::Query) -> Result<Option<usize>, SqlError> {
        match &q.limit_clause {
            None => Ok(None),
            Some(ast::LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) => {
                if let Some(o) = offset {
                    return Err(unsupported(
                        &o.value,
                        "OFFSET is not supported; use ORDER BY ... LIMIT n",
                    ));
                }
                if !limit_by.is_empty() {
                    return Err(unsupported(&limit_by[0], "LIMIT BY is not supported"));
                }
                match limit {
                    None => Ok(None),
                    Some(e) => match literal_int(e) {
                        Some(n) if n >= 0 => Ok(Some(n as usize)),
                        _ => Err(type_err(e, "LIMIT needs a non-negative integer literal")),
                    },
                }
            }
            Some(ast::LimitClause::OffsetCommaLimit { offset, .. }) => Err(unsupported(
                offset,
                "LIMIT offset, n is not supported; use ORDER BY ... LIMIT n",
            )),
        }
    }

    fn order_by(
        &mut self,
        order: &[ast::OrderByExpr],
        items: &[(Expr, String)],
        cols: &mut Vec<Ex>,
        out: &mut Vec<SortKey>,
    ) -> Result<(), SqlError> {
        for o in order {
            if let Some(w) = &o.with_fill {
                return Err(SqlError::new(
                    SqlErrorKind::Unsupported,
                    Pos::from(o.expr.span().start),
                    w,
                    "WITH FILL is not supported",
                ));
            }
            let desc = o.options.asc == Some(false);
            let nulls_first = o.options.nulls_first.unwrap_or(false);
            let e = &o.expr;
            let col = match e {
                Expr::Value(v) if matches!(v.value, ast::Value::Number(..)) => {
                    let n = literal_int(e).unwrap_or(0);
                    if n < 1 || n as usize > items.len() {
                        return Err(err(
                            SqlErrorKind::Semantic,
                            e,
                            e,
                            format!(
                                "ORDER BY position {n} is not in the select list (1..{})",
                                items.len()
                            ),
                        ));
                    }
                    n as usize - 1
                }
                Expr::Identifier(id)
                    if items.iter().any(|(_, n)| n == &id.value)
                        && (self.post.is_some()
                            || !self.is_column(&id.value)
                            || items.iter().any(|(x, n)| n == &id.value && x == e)) =>
                {
                    items.iter().position(|(_, n)| n == &id.value).unwrap_or(0)
                }
                e => match items.iter().position(|(x, _)| x == e) {
                    Some(i) => i,
                    None => {
                        let ex = self.expr(e)?;
                        if ex.ty == SqlType::StrArray {
                            return Err(type_err(e, "cannot order by an array"));
                        }
                        cols.push(ex);
                        cols.len() - 1
                    }
                },
            };
            out.push(SortKey {
                col,
                desc,
                nulls_first,
            });
        }
        Ok(())
    }

    fn args<'e>(&self, f: &'e ast::Function) -> Result<Vec<&'e Expr>, SqlError> {
        if f.filter.is_some()
            || f.over.is_some()
            || f.null_treatment.is_some()
            || !f.within_group.is_empty()
            || !matches!(f.parameters, FunctionArguments::None)
        {
            return Err(unsupported(f, "FILTER, OVER (window functions), WITHIN GROUP and IGNORE/RESPECT NULLS are not supported"));
        }
        match &f.args {
            FunctionArguments::None => Ok(Vec::new()),
            FunctionArguments::Subquery(q) => {
                Err(unsupported(&**q, "subqueries are not supported"))
            }
            FunctionArguments::List(l) => {
                if !l.clauses.is_empty() {
                    return Err(unsupported(f, "clauses inside function arguments (ORDER BY, SEPARATOR, ...) are not supported"));
                }
                let mut v = Vec::new();
                for a in &l.args {
                    match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => v.push(e),
                        FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => {
                            return Err(err(
                                SqlErrorKind::Semantic,
                                f,
                                f,
                                "`*` is only allowed in count(*)",
                            ))
                        }
                        other => {
                            return Err(err(
                                SqlErrorKind::Unsupported,
                                f,
                                other,
                                "named or qualified-wildcard arguments are not supported",
                            ))
                        }
                    }
                }
                Ok(v)
            }
        }
    }

    /// Compiles `e` in the current scope.
    fn expr(&mut self, e: &Expr) -> Result<Ex, SqlError> {
        if let Some(post) = &self.post {
            let text = e.to_string();
            if let Some(i) = post.keys.iter().position(|k| *k == text) {
                let ty = post.key_types[i];
                let i = i + post.offset;
                return Ok(Ex {
                    ty,
                    uses: Uses::default(),
                    f: mk(move |cx| cx.cols[i].as_val()),
                });
            }
            if let Expr::Function(f) = e {
                if is_aggregate_name(&object_name(&f.name)) {
                    return self.aggregate(f, e);
                }
            }
        } else if let Expr::Function(f) = e {
            if is_aggregate_name(&object_name(&f.name)) {
                return Err(err(SqlErrorKind::Semantic, e, e, "an aggregate is not allowed here (aggregates go in SELECT, HAVING or ORDER BY of a grouping query, not inside another aggregate, WHERE or GROUP BY)"));
            }
        }
        match e {
            Expr::Identifier(id) => self.column(&id.value, e),
            Expr::CompoundIdentifier(parts) => {
                if parts.len() == 2 {
                    let q = &parts[0].value;
                    let ok = q.eq_ignore_ascii_case("events")
                        || self.table_alias.as_deref().is_some_and(|a| a == q)
                        || self.unnest_alias.as_deref().is_some_and(|a| a == q);
                    if ok {
                        return self.column(&parts[1].value, e);
                    }
                }
                Err(err(SqlErrorKind::Unknown, e, e, format!("unknown column; {COLUMNS}")))
            }
            Expr::CompoundFieldAccess { root, access_chain } => {
                let is_headers = matches!(&**root, Expr::Identifier(i) if i.value.eq_ignore_ascii_case("headers"));
                if is_headers && access_chain.len() == 1 {
                    if let ast::AccessExpr::Subscript(ast::Subscript::Index { index }) = &access_chain[0] {
                        if let Some(k) = literal_str(index) {
                            return self.header(k.to_string(), e);
                        }
                        return Err(type_err(index, "a header name must be a string literal: headers['k']"));
                    }
                }
                Err(unsupported(e, "only headers['name'] subscripts are supported"))
            }
            Expr::Value(v) => self.literal(&v.value, e),
            Expr::Nested(inner) => self.expr(inner),
            Expr::UnaryOp { op, expr } => {
                let a = self.expr(expr)?;
                match op {
                    UnaryOperator::Not => {
                        self.expect_bool(&a, expr, "NOT")?;
                        let f = a.f;
                        Ok(Ex { ty: SqlType::Bool, uses: a.uses, f: mk(move |cx| match f(cx) {
                            Val::Bool(b) => Val::Bool(!b),
                            _ => Val::Null,
                        }) })
                    }
                    UnaryOperator::Minus => {
                        if !a.ty.is_numeric() {
                            return Err(type_err(&**expr, format!("unary minus needs a number, found {}", a.ty.name())));
                        }
                        let f = a.f;
                        Ok(Ex { ty: a.ty, uses: a.uses, f: mk(move |cx| match f(cx) {
                            Val::Int(i) => i.checked_neg().map(Val::Int).unwrap_or(Val::Null),
                            Val::Float(x) => Val::Float(-x),
                            _ => Val::Null,
                        }) })
                    }
                    UnaryOperator::Plus if a.ty.is_numeric() => Ok(a),
                    _ => Err(unsupported(e, "unsupported unary operator (NOT, -, + are supported)")),
                }
            }
            Expr::IsNull(x) | Expr::IsNotNull(x) => {
                let neg = matches!(e, Expr::IsNotNull(_));
                let a = self.expr(x)?;
                let f = a.f;
                Ok(Ex { ty: SqlType::Bool, uses: a.uses, f: mk(move |cx| bool_of(f(cx).is_null() != neg)) })
            }
            Expr::BinaryOp { left, op, right } => self.binary(e, left, op, right),
            Expr::Between { expr, negated, low, high } => {
                let (a, l, h) = (self.expr(expr)?, self.expr(low)?, self.expr(high)?);
                for (x, n) in [(&l, low), (&h, high)] {
                    if SqlType::unify(a.ty, x.ty).is_none() {
                        return Err(type_err(&**n, format!("BETWEEN compares {} with {}", a.ty.name(), x.ty.name())));
                    }
                }
                let neg = *negated;
                let uses = a.uses.or(l.uses).or(h.uses);
                let (fa, fl, fh) = (a.f, l.f, h.f);
                Ok(Ex { ty: SqlType::Bool, uses, f: mk(move |cx| {
                    let v = fa(cx);
                    let ge = cmp_val(&v, &fl(cx)).map(|o| o.is_ge());
                    let le = cmp_val(&v, &fh(cx)).map(|o| o.is_le());
                    match and3(ge, le) {
                        Some(b) => Val::Bool(b != neg),
                        None => Val::Null,
                    }
                }) })
            }
            Expr::InList { expr, list, negated } => {
                let a = self.expr(expr)?;
                let mut items = Vec::new();
                let mut uses = a.uses;
                for x in list {
                    let ex = self.expr(x)?;
                    if SqlType::unify(a.ty, ex.ty).is_none() {
                        return Err(type_err(x, format!("IN compares {} with {}", a.ty.name(), ex.ty.name())));
                    }
                    uses = uses.or(ex.uses);
                    items.push(ex.f);
                }
                let neg = *negated;
                let fa = a.f;
                Ok(Ex { ty: SqlType::Bool, uses, f: mk(move |cx| {
                    let v = fa(cx);
                    if v.is_null() {
                        return Val::Null;
                    }
                    let mut saw_null = false;
                    for it in &items {
                        match cmp_val(&v, &it(cx)) {
                            Some(std::cmp::Ordering::Equal) => return Val::Bool(!neg),
                            Some(_) => {}
                            None => saw_null = true,
                        }
                    }
                    if saw_null { Val::Null } else { Val::Bool(neg) }
                }) })
            }
            Expr::Like { negated, any, expr, pattern, escape_char } | Expr::ILike { negated, any, expr, pattern, escape_char } => {
                if *any {
                    return Err(unsupported(e, "LIKE ANY is not supported; combine LIKEs with OR"));
                }
                let ci = matches!(e, Expr::ILike { .. });
                let a = self.expr(expr)?;
                if !matches!(a.ty, SqlType::Str | SqlType::Null) {
                    return Err(type_err(&**expr, format!("LIKE needs a VARCHAR, found {}", a.ty.name())));
                }
                let pat = literal_str(pattern).ok_or_else(|| type_err(&**pattern, "the LIKE pattern must be a string literal"))?;
                let esc = match escape_char {
                    None => None,
                    Some(ast::Value::SingleQuotedString(s)) if s.chars().count() == 1 => s.chars().next(),
                    Some(v) => return Err(type_err(e, format!("ESCAPE needs one character, found {v}"))),
                };
                let re = regex::Regex::new(&func::like_to_regex(pat, esc, ci)).map_err(|x| type_err(&**pattern, format!("bad LIKE pattern: {x}")))?;
                let neg = *negated;
                let fa = a.f;
                Ok(Ex { ty: SqlType::Bool, uses: a.uses, f: mk(move |cx| match fa(cx) {
                    Val::Str(s) => Val::Bool(re.is_match(&s) != neg),
                    _ => Val::Null,
                }) })
            }
            Expr::Case { operand, conditions, else_result, .. } => self.case(e, operand.as_deref(), conditions, else_result.as_deref()),
            Expr::Cast { kind, expr, data_type, format } => {
                if format.is_some() {
                    return Err(unsupported(e, "CAST ... FORMAT is not supported; use parse_timestamp(s, format)"));
                }
                let _ = kind;
                self.cast(e, expr, data_type)
            }
            Expr::Substring { expr, substring_from, substring_for, .. } => {
                let Some(from) = substring_from else {
                    return Err(type_err(e, "wrong number of arguments: substr(string, start[, length])"));
                };
                let s = self.expr(expr)?;
                let from = self.expr(from)?;
                let len = match substring_for {
                    Some(f) => Some(self.expr(f)?),
                    None => None,
                };
                self.substr(e, s, from, len)
            }
            Expr::Trim { expr, trim_where, trim_what, trim_characters } => {
                if trim_where.is_some() || trim_what.is_some() || trim_characters.is_some() {
                    return Err(unsupported(e, "only trim(s) (spaces at both ends) is supported"));
                }
                let a = self.expr(expr)?;
                self.str_fn(expr, a, "trim", |s| s.trim().to_string())
            }
            Expr::Function(f) => self.function(f, e),
            Expr::Interval(_) => Err(unsupported(e, format!("INTERVAL is only allowed as a window length in GROUP BY; {WINDOW_FORMS}"))),
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => Err(unsupported(e, "subqueries are not supported")),
            _ => Err(unsupported(e, format!("this expression is not supported; supported: literals, columns ({COLUMNS}), comparison, AND/OR/NOT, + - * / % ||, IS [NOT] NULL, BETWEEN, [NOT] LIKE/ILIKE, [NOT] IN (list), CASE, CAST, and the functions {FUNCTIONS}"))),
        }
    }

    fn column(&mut self, name: &str, e: &Expr) -> Result<Ex, SqlError> {
        if is_window_bound(name) {
            return self.window_bound(name, e);
        }
        if self.post.is_some() {
            return Err(err(SqlErrorKind::Semantic, e, e, "this column must appear in GROUP BY or be used inside an aggregate (count, sum, min, max, avg)"));
        }
        let lname = name.to_ascii_lowercase();
        if self
            .unnest_col
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case(name))
        {
            return Ok(Ex {
                ty: SqlType::Str,
                uses: Uses {
                    word: true,
                    ..Uses::default()
                },
                f: mk(|cx| match cx.word {
                    Some(w) => Val::Str(Cow::Borrowed(w)),
                    None => Val::Null,
                }),
            });
        }
        match lname.as_str() {
            "body" => Ok(Ex {
                ty: SqlType::Str,
                uses: Uses {
                    body: true,
                    ..Uses::default()
                },
                f: mk(|cx| Val::Str(Cow::Borrowed(cx.body))),
            }),
            "proc_time" => Ok(Ex {
                ty: SqlType::Int,
                uses: Uses {
                    proc_time: true,
                    ..Uses::default()
                },
                f: mk(|cx| Val::Int(cx.batch_ms)),
            }),
            "event_time" => {
                let h = self.opts.timestamp_header.clone();
                Ok(Ex {
                    ty: SqlType::Int,
                    uses: Uses::default(),
                    f: mk(move |cx| {
                        match cx
                            .ev
                            .and_then(|ev| ev.header(&h))
                            .and_then(|v| v.trim().parse::<i64>().ok())
                        {
                            Some(t) => Val::Int(t),
                            None => Val::Null,
                        }
                    }),
                })
            }
            "headers" => Err(err(
                SqlErrorKind::Type,
                e,
                e,
                "headers is a map: read one header with headers['name'] or header('name')",
            )),
            _ => Err(err(
                SqlErrorKind::Unknown,
                e,
                e,
                format!("unknown column; {COLUMNS}"),
            )),
        }
    }

    fn header(&mut self, key: String, e: &Expr) -> Result<Ex, SqlError> {
        if self.post.is_some() {
            return Err(err(SqlErrorKind::Semantic, e, e, "this column must appear in GROUP BY or be used inside an aggregate (count, sum, min, max, avg)"));
        }
        Ok(Ex {
            ty: SqlType::Str,
            uses: Uses::default(),
            f: mk(move |cx| match cx.ev.and_then(|ev| ev.header(&key)) {
                Some(v) => Val::Str(v),
                None => Val::Null,
            }),
        })
    }

    fn literal(&self, v: &ast::Value, e: &Expr) -> Result<Ex, SqlError> {
        let val =
            match v {
                ast::Value::Number(s, _) => match s.parse::<i64>() {
                    Ok(i) => Value::Int(i),
                    Err(_) => match s.parse::<f64>() {
                        Ok(f) => Value::Float(f),
                        Err(_) => return Err(type_err(e, "bad number")),
                    },
                },
                ast::Value::SingleQuotedString(s) => Value::Str(s.as_str().into()),
                ast::Value::Boolean(b) => Value::Bool(*b),
                ast::Value::Null => Value::Null,
                ast::Value::DoubleQuotedString(_) => {
                    return Err(err(
                        SqlErrorKind::Syntax,
                        e,
                        e,
                        "strings use single quotes ('text'); double quotes name columns",
                    ))
                }
                _ => return Err(unsupported(
                    e,
                    "unsupported literal (numbers, 'strings', TRUE/FALSE and NULL are supported)",
                )),
            };
        let ty = match &val {
            Value::Null => SqlType::Null,
            Value::Bool(_) => SqlType::Bool,
            Value::Int(_) => SqlType::Int,
            Value::Float(_) => SqlType::Float,
            Value::Str(_) => SqlType::Str,
        };
        Ok(Ex {
            ty,
            uses: Uses::default(),
            f: const_fn(val),
        })
    }
}

fn and3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}
fn or3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}
fn as_bool(v: Val<'_>) -> Option<bool> {
    match v {
        Val::Bool(b) => Some(b),
        _ => None,
    }
}

/// A constant. String literals are interned for the life of the process (a compiled query
/// lives as long as its pipeline; this keeps `word = 'x'` free of per-row allocation).
fn const_fn(v: Value) -> EvalFn {
    match v {
        Value::Null => mk(|_| Val::Null),
        Value::Bool(b) => mk(move |_| Val::Bool(b)),
        Value::Int(i) => mk(move |_| Val::Int(i)),
        Value::Float(x) => mk(move |_| Val::Float(x)),
        Value::Str(s) => {
            let st: &'static str = Box::leak(s.as_str().to_string().into_boxed_str());
            mk(move |_| Val::Str(Cow::Borrowed(st)))
        }
    }
}

fn arith_int(op: &BinaryOperator, a: i64, b: i64) -> Option<i64> {
    match op {
        BinaryOperator::Plus => a.checked_add(b),
        BinaryOperator::Minus => a.checked_sub(b),
        BinaryOperator::Multiply => a.checked_mul(b),
        BinaryOperator::Modulo => a.checked_rem(b),
        _ => None,
    }
}

fn arith_float(op: &BinaryOperator, a: f64, b: f64) -> Option<f64> {
    match op {
        BinaryOperator::Plus => Some(a + b),
        BinaryOperator::Minus => Some(a - b),
        BinaryOperator::Multiply => Some(a * b),
        BinaryOperator::Divide => (b != 0.0).then(|| a / b),
        BinaryOperator::Modulo => (b != 0.0).then(|| a % b),
        _ => None,
    }
}

fn stringify(v: &Val<'_>, out: &mut String) -> bool {
    use std::fmt::Write as _;
    match v {
        Val::Null => return false,
        Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Val::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Val::Float(x) => out.push_str(&func::float_to_string(*x)),
        Val::Str(s) => out.push_str(s),
    }
    true
}

impl<'o> Compiler<'o> {
    fn binary(
        &mut self,
        e: &Expr,
        left: &Expr,
        op: &BinaryOperator,
        right: &Expr,
    ) -> Result<Ex, SqlError> {
        let (a, b) = (self.expr(left)?, self.expr(right)?);
        let uses = a.uses.or(b.uses);
        let (fa, fb) = (a.f, b.f);
        use BinaryOperator as B;
        match op {
            B::And | B::Or => {
                self.expect_bool(&Ex { ty: a.ty, uses, f: mk(|_| Val::Null) }, left, &op.to_string())?;
                self.expect_bool(&Ex { ty: b.ty, uses, f: mk(|_| Val::Null) }, right, &op.to_string())?;
                let is_and = matches!(op, B::And);
                Ok(Ex { ty: SqlType::Bool, uses, f: mk(move |cx| {
                    let x = as_bool(fa(cx));
                    // Short-circuit where the result is already known.
                    if is_and && x == Some(false) {
                        return Val::Bool(false);
                    }
                    if !is_and && x == Some(true) {
                        return Val::Bool(true);
                    }
                    let y = as_bool(fb(cx));
                    match if is_and { and3(x, y) } else { or3(x, y) } {
                        Some(r) => Val::Bool(r),
                        None => Val::Null,
                    }
                }) })
            }
            B::Eq | B::NotEq | B::Lt | B::LtEq | B::Gt | B::GtEq => {
                if SqlType::unify(a.ty, b.ty).is_none() || a.ty == SqlType::StrArray {
                    return Err(type_err(e, format!("cannot compare {} with {} (CAST one side)", a.ty.name(), b.ty.name())));
                }
                let op = op.clone();
                Ok(Ex { ty: SqlType::Bool, uses, f: mk(move |cx| {
                    let (x, y) = (fa(cx), fb(cx));
                    match cmp_val(&x, &y) {
                        None => Val::Null,
                        Some(o) => Val::Bool(match op {
                            B::Eq => o.is_eq(),
                            B::NotEq => o.is_ne(),
                            B::Lt => o.is_lt(),
                            B::LtEq => o.is_le(),
                            B::Gt => o.is_gt(),
                            _ => o.is_ge(),
                        }),
                    }
                }) })
            }
            B::Plus | B::Minus | B::Multiply | B::Divide | B::Modulo => {
                if !a.ty.is_numeric() || !b.ty.is_numeric() {
                    return Err(type_err(e, format!("{op} needs numbers, found {} and {}", a.ty.name(), b.ty.name())));
                }
                let float = matches!(op, B::Divide) || a.ty == SqlType::Float || b.ty == SqlType::Float;
                let op = op.clone();
                Ok(Ex { ty: if float { SqlType::Float } else { SqlType::Int }, uses, f: mk(move |cx| {
                    let (x, y) = (fa(cx), fb(cx));
                    if !float {
                        if let (Val::Int(p), Val::Int(q)) = (&x, &y) {
                            return arith_int(&op, *p, *q).map(Val::Int).unwrap_or(Val::Null);
                        }
                        return Val::Null;
                    }
                    match (x.as_f64(), y.as_f64()) {
                        (Some(p), Some(q)) => arith_float(&op, p, q).map(Val::Float).unwrap_or(Val::Null),
                        _ => Val::Null,
                    }
                }) })
            }
            B::StringConcat => {
                if a.ty == SqlType::StrArray || b.ty == SqlType::StrArray {
                    return Err(type_err(e, "|| concatenates scalars, not arrays"));
                }
                Ok(Ex { ty: SqlType::Str, uses, f: mk(move |cx| {
                    let (x, y) = (fa(cx), fb(cx));
                    let mut s = String::new();
                    if stringify(&x, &mut s) && stringify(&y, &mut s) {
                        Val::Str(Cow::Owned(s))
                    } else {
                        Val::Null
                    }
                }) })
            }
            _ => Err(unsupported(e, format!("operator {op} is not supported (supported: = <> < <= > >= AND OR + - * / % ||)"))),
        }
    }

    fn case(
        &mut self,
        e: &Expr,
        operand: Option<&Expr>,
        conditions: &[ast::CaseWhen],
        else_result: Option<&Expr>,
    ) -> Result<Ex, SqlError> {
        let op = match operand {
            Some(o) => Some(self.expr(o)?),
            None => None,
        };
        let mut ty = SqlType::Null;
        let mut uses = op.as_ref().map(|o| o.uses).unwrap_or_default();
        let mut arms = Vec::new();
        for w in conditions {
            let c = self.expr(&w.condition)?;
            match &op {
                Some(o) => {
                    if SqlType::unify(o.ty, c.ty).is_none() {
                        return Err(type_err(
                            &w.condition,
                            format!("CASE compares {} with {}", o.ty.name(), c.ty.name()),
                        ));
                    }
                }
                None => self.expect_bool(&c, &w.condition, "CASE WHEN")?,
            }
            let r = self.expr(&w.result)?;
            ty = SqlType::unify(ty, r.ty).ok_or_else(|| {
                type_err(
                    &w.result,
                    format!(
                        "CASE branches have different types ({} and {})",
                        ty.name(),
                        r.ty.name()
                    ),
                )
            })?;
            uses = uses.or(c.uses).or(r.uses);
            arms.push((c.f, r.f));
        }
        let els = match else_result {
            Some(x) => {
                let r = self.expr(x)?;
                ty = SqlType::unify(ty, r.ty).ok_or_else(|| {
                    type_err(
                        x,
                        format!(
                            "CASE branches have different types ({} and {})",
                            ty.name(),
                            r.ty.name()
                        ),
                    )
                })?;
                uses = uses.or(r.uses);
                Some(r.f)
            }
            None => None,
        };
        if ty == SqlType::StrArray {
            return Err(type_err(e, "CASE cannot return an array"));
        }
        let widen = ty == SqlType::Float;
        let opf = op.map(|o| o.f);
        Ok(Ex {
            ty,
            uses,
            f: mk(move |cx| {
                let subject = opf.as_ref().map(|f| f(cx));
                for (c, r) in &arms {
                    let hit = match &subject {
                        Some(s) => cmp_val(s, &c(cx)) == Some(std::cmp::Ordering::Equal),
                        None => matches!(c(cx), Val::Bool(true)),
                    };
                    if hit {
                        return widen_val(r(cx), widen);
                    }
                }
                match &els {
                    Some(f) => widen_val(f(cx), widen),
                    None => Val::Null,
                }
            }),
        })
    }

    fn cast(&mut self, e: &Expr, inner: &Expr, dt: &ast::DataType) -> Result<Ex, SqlError> {
        let a = self.expr(inner)?;
        let name = dt.to_string().to_ascii_uppercase();
        let base = name.split('(').next().unwrap_or("").trim().to_string();
        let to = match base.as_str() {
            "BIGINT" | "INT" | "INTEGER" | "INT8" | "INT4" | "INT64" | "SMALLINT" | "TINYINT" | "LONG" => SqlType::Int,
            "DOUBLE" | "DOUBLE PRECISION" | "FLOAT" | "FLOAT8" | "FLOAT64" | "REAL" | "FLOAT4" => SqlType::Float,
            "VARCHAR" | "TEXT" | "STRING" | "CHAR" | "CHARACTER VARYING" => SqlType::Str,
            "BOOLEAN" | "BOOL" => SqlType::Bool,
            _ => return Err(err(SqlErrorKind::Unsupported, e, dt, "unsupported CAST target (BIGINT, DOUBLE, VARCHAR, BOOLEAN are supported; timestamps are BIGINT ms: use parse_timestamp)")),
        };
        if a.ty == SqlType::StrArray {
            return Err(type_err(inner, "cannot CAST an array"));
        }
        let f = a.f;
        let g: EvalFn = match to {
            SqlType::Int => mk(move |cx| match f(cx) {
                Val::Int(i) => Val::Int(i),
                Val::Float(x) => func::float_to_int(x).map(Val::Int).unwrap_or(Val::Null),
                Val::Str(s) => func::str_to_int(&s).map(Val::Int).unwrap_or(Val::Null),
                Val::Bool(b) => Val::Int(b as i64),
                Val::Null => Val::Null,
            }),
            SqlType::Float => mk(move |cx| match f(cx) {
                Val::Int(i) => Val::Float(i as f64),
                Val::Float(x) => Val::Float(x),
                Val::Str(s) => func::str_to_float(&s).map(Val::Float).unwrap_or(Val::Null),
                Val::Bool(b) => Val::Float(b as i64 as f64),
                Val::Null => Val::Null,
            }),
            SqlType::Str => mk(move |cx| match f(cx) {
                Val::Str(s) => Val::Str(s),
                Val::Null => Val::Null,
                v => {
                    let mut s = String::new();
                    stringify(&v, &mut s);
                    Val::Str(Cow::Owned(s))
                }
            }),
            _ => mk(move |cx| match f(cx) {
                Val::Bool(b) => Val::Bool(b),
                Val::Int(i) => Val::Bool(i != 0),
                Val::Float(x) => Val::Bool(x != 0.0),
                Val::Str(s) => func::str_to_bool(&s).map(Val::Bool).unwrap_or(Val::Null),
                Val::Null => Val::Null,
            }),
        };
        Ok(Ex {
            ty: to,
            uses: a.uses,
            f: g,
        })
    }

    fn substr(&mut self, e: &Expr, s: Ex, from: Ex, len: Option<Ex>) -> Result<Ex, SqlError> {
        if !matches!(s.ty, SqlType::Str | SqlType::Null) {
            return Err(type_err(
                e,
                format!("substr needs a VARCHAR, found {}", s.ty.name()),
            ));
        }
        if !matches!(from.ty, SqlType::Int | SqlType::Null)
            || len
                .as_ref()
                .is_some_and(|l| !matches!(l.ty, SqlType::Int | SqlType::Null))
        {
            return Err(type_err(e, "substr positions and lengths are BIGINT"));
        }
        let uses = s
            .uses
            .or(from.uses)
            .or(len.as_ref().map(|l| l.uses).unwrap_or_default());
        let (fs, ff, fl) = (s.f, from.f, len.map(|l| l.f));
        Ok(Ex {
            ty: SqlType::Str,
            uses,
            f: mk(move |cx| {
                let (Val::Str(s), Val::Int(start)) = (fs(cx), ff(cx)) else {
                    return Val::Null;
                };
                let len = match &fl {
                    Some(f) => match f(cx) {
                        Val::Int(l) => Some(l),
                        _ => return Val::Null,
                    },
                    None => None,
                };
                match s {
                    Cow::Borrowed(b) => func::substr(b, start, len)
                        .map(|r| Val::Str(Cow::Borrowed(r)))
                        .unwrap_or(Val::Null),
                    Cow::Owned(o) => func::substr(&o, start, len)
                        .map(|r| Val::Str(Cow::Owned(r.to_string())))
                        .unwrap_or(Val::Null),
                }
            }),
        })
    }

    fn str_fn(&self, e: &Expr, a: Ex, name: &str, f: fn(&str) -> String) -> Result<Ex, SqlError> {
        if !matches!(a.ty, SqlType::Str | SqlType::Null) {
            return Err(type_err(
                e,
                format!("{name} needs a VARCHAR, found {}", a.ty.name()),
            ));
        }
        let g = a.f;
        Ok(Ex {
            ty: SqlType::Str,
            uses: a.uses,
            f: mk(move |cx| match g(cx) {
                Val::Str(s) => Val::Str(Cow::Owned(f(&s))),
                _ => Val::Null,
            }),
        })
    }

    fn function(&mut self, fun: &ast::Function, e: &Expr) -> Result<Ex, SqlError> {
        let name = object_name(&fun.name);
        if is_window_name(&name) {
            let msg = if matches!(name.as_str(), "tumble" | "hop" | "session") {
                format!("a window function is only allowed as a GROUP BY item; select its bounds as window_start / window_end. {WINDOW_FORMS}")
            } else {
                format!("{name} is not supported: select window_start / window_end of the GROUP BY window. {WINDOW_FORMS}")
            };
            return Err(unsupported(e, msg));
        }
        let args = self.args(fun)?;
        if let FunctionArguments::List(l) = &fun.args {
            if l.duplicate_treatment.is_some() {
                return Err(unsupported(
                    e,
                    "DISTINCT is only supported in count(DISTINCT x)",
                ));
            }
        }
        let arity = |lo: usize, hi: usize, sig: &str| -> Result<(), SqlError> {
            if args.len() < lo || args.len() > hi {
                Err(type_err(e, format!("wrong number of arguments: {sig}")))
            } else {
                Ok(())
            }
        };
        let str_arg = |c: &mut Self, i: usize| -> Result<Ex, SqlError> {
            let x = c.expr(args[i])?;
            if !matches!(x.ty, SqlType::Str | SqlType::Null) {
                return Err(type_err(
                    args[i],
                    format!("{name} needs a VARCHAR here, found {}", x.ty.name()),
                ));
            }
            Ok(x)
        };
        match name.as_str() {
            "lower" | "upper" | "trim" => {
                arity(1, 1, &format!("{name}(string)"))?;
                let a = str_arg(self, 0)?;
                let f: fn(&str) -> String = match name.as_str() {
                    "lower" => str::to_lowercase,
                    "upper" => str::to_uppercase,
                    _ => |s| s.trim().to_string(),
                };
                self.str_fn(e, a, &name, f)
            }
            "length" | "char_length" | "character_length" | "octet_length" => {
                arity(1, 1, &format!("{name}(string)"))?;
                let a = str_arg(self, 0)?;
                let bytes = name == "octet_length";
                let f = a.f;
                Ok(Ex { ty: SqlType::Int, uses: a.uses, f: mk(move |cx| match f(cx) {
                    Val::Str(s) => Val::Int(if bytes { s.len() } else { s.chars().count() } as i64),
                    _ => Val::Null,
                }) })
            }
            "substr" | "substring" => {
                arity(2, 3, "substr(string, start[, length])")?;
                let s = self.expr(args[0])?;
                let from = self.expr(args[1])?;
                let len = match args.get(2) {
                    Some(x) => Some(self.expr(x)?),
                    None => None,
                };
                self.substr(e, s, from, len)
            }
            "concat" => {
                let mut parts = Vec::new();
                let mut uses = Uses::default();
                for a in &args {
                    let x = self.expr(a)?;
                    if x.ty == SqlType::StrArray {
                        return Err(type_err(*a, "concat takes scalars"));
                    }
                    uses = uses.or(x.uses);
                    parts.push(x.f);
                }
                Ok(Ex { ty: SqlType::Str, uses, f: mk(move |cx| {
                    let mut s = String::new();
                    for p in &parts {
                        stringify(&p(cx), &mut s);
                    }
                    Val::Str(Cow::Owned(s))
                }) })
            }
            "split" | "string_split" | "string_to_array" => Err(type_err(e, "split returns an array: use it as CROSS JOIN UNNEST(split(string, delimiter)) AS t(col)")),
            "regexp_extract" | "regexp_like" | "regexp_matches" => {
                let like = name != "regexp_extract";
                if like {
                    arity(2, 2, "regexp_like(string, pattern)")?;
                } else {
                    arity(2, 3, "regexp_extract(string, pattern[, group])")?;
                }
                let s = str_arg(self, 0)?;
                let pat = literal_str(args[1]).ok_or_else(|| type_err(args[1], "the pattern must be a string literal (it is compiled once)"))?;
                let re = regex::Regex::new(pat).map_err(|x| type_err(args[1], format!("bad regular expression: {x}")))?;
                let f = s.f;
                if like {
                    return Ok(Ex { ty: SqlType::Bool, uses: s.uses, f: mk(move |cx| match f(cx) {
                        Val::Str(s) => Val::Bool(re.is_match(&s)),
                        _ => Val::Null,
                    }) });
                }
                let group = match args.get(2) {
                    None => 0usize,
                    Some(g) => match literal_int(g) {
                        Some(n) if n >= 0 && (n as usize) < re.captures_len() => n as usize,
                        _ => return Err(type_err(*g, format!("the group must be an integer literal from 0 to {}", re.captures_len() - 1))),
                    },
                };
                Ok(Ex { ty: SqlType::Str, uses: s.uses, f: mk(move |cx| match f(cx) {
                    Val::Str(Cow::Borrowed(b)) => Val::Str(Cow::Borrowed(func::regexp_extract(b, &re, group))),
                    Val::Str(Cow::Owned(o)) => Val::Str(Cow::Owned(func::regexp_extract(&o, &re, group).to_string())),
                    _ => Val::Null,
                }) })
            }
            "json_value" => {
                arity(2, 2, "json_value(string, '$.path')")?;
                let s = str_arg(self, 0)?;
                let p = literal_str(args[1]).ok_or_else(|| type_err(args[1], "the JSON path must be a string literal"))?;
                let path = func::parse_json_path(p).map_err(|m| type_err(args[1], m))?;
                let f = s.f;
                Ok(Ex { ty: SqlType::Str, uses: s.uses, f: mk(move |cx| match f(cx) {
                    Val::Str(s) => func::json_value(&s, &path).map(|v| Val::Str(Cow::Owned(v))).unwrap_or(Val::Null),
                    _ => Val::Null,
                }) })
            }
            "parse_timestamp" => {
                arity(1, 2, "parse_timestamp(string[, format])")?;
                let s = str_arg(self, 0)?;
                let fmt = match args.get(1) {
                    None => None,
                    Some(a) => {
                        let f = literal_str(a).ok_or_else(|| type_err(*a, "the format must be a string literal"))?;
                        func::check_format(f).map_err(|m| type_err(*a, m))?;
                        Some(f.to_string())
                    }
                };
                let f = s.f;
                Ok(Ex { ty: SqlType::Int, uses: s.uses, f: mk(move |cx| {
                    let Val::Str(s) = f(cx) else { return Val::Null };
                    let r = match &fmt {
                        Some(fm) => func::parse_timestamp_fmt(&s, fm),
                        None => func::parse_timestamp_iso(&s),
                    };
                    r.map(Val::Int).unwrap_or(Val::Null)
                }) })
            }
            "coalesce" => {
                if args.is_empty() {
                    return Err(type_err(e, "coalesce needs at least one argument"));
                }
                let mut ty = SqlType::Null;
                let mut uses = Uses::default();
                let mut parts = Vec::new();
                for a in &args {
                    let x = self.expr(a)?;
                    ty = SqlType::unify(ty, x.ty).filter(|t| *t != SqlType::StrArray).ok_or_else(|| type_err(*a, format!("coalesce arguments have different types ({} and {})", ty.name(), x.ty.name())))?;
                    uses = uses.or(x.uses);
                    parts.push(x.f);
                }
                let widen = ty == SqlType::Float;
                Ok(Ex { ty, uses, f: mk(move |cx| {
                    for p in &parts {
                        let v = p(cx);
                        if !v.is_null() {
                            return widen_val(v, widen);
                        }
                    }
                    Val::Null
                }) })
            }
            "header" => {
                arity(1, 1, "header('name')")?;
                let k = literal_str(args[0]).ok_or_else(|| type_err(args[0], "the header name must be a string literal"))?;
                self.header(k.to_string(), e)
            }
            "body_hex" => {
                arity(0, 0, "body_hex()")?;
                if self.post.is_some() {
                    return Err(err(SqlErrorKind::Semantic, e, e, "body_hex() must appear in GROUP BY or inside an aggregate"));
                }
                Ok(Ex { ty: SqlType::Str, uses: Uses::default(), f: mk(|cx| match cx.ev {
                    Some(ev) => Val::Str(Cow::Owned(hex::encode(ev.body()))),
                    None => Val::Null,
                }) })
            }
            _ => Err(err(SqlErrorKind::Unknown, &fun.name, &fun.name, format!("unknown function; supported: {FUNCTIONS}; aggregates count, sum, min, max, avg, approx_count_distinct"))),
        }
    }

    fn aggregate(&mut self, fun: &ast::Function, e: &Expr) -> Result<Ex, SqlError> {
        let name = object_name(&fun.name);
        let text = e.to_string();
        let post = self.post.as_ref().expect("group scope");
        if let Some(j) = post.agg_text.iter().position(|t| *t == text) {
            let i = post.offset + post.keys.len() + j;
            let ty = agg_type(post.aggs[j].kind, post.aggs[j].arg_ty);
            return Ok(Ex {
                ty,
                uses: Uses::default(),
                f: mk(move |cx| cx.cols[i].as_val()),
            });
        }
        let distinct = matches!(&fun.args, FunctionArguments::List(l) if l.duplicate_treatment == Some(DuplicateTreatment::Distinct));
        let star = matches!(&fun.args, FunctionArguments::List(l) if l.args.len() == 1 && matches!(l.args[0], FunctionArg::Unnamed(FunctionArgExpr::Wildcard)));
        let (kind, arg, arg_text) = if star {
            if name != "count" || distinct {
                return Err(err(
                    SqlErrorKind::Semantic,
                    e,
                    e,
                    "`*` is only allowed in count(*)",
                ));
            }
            (AggKind::CountStar, None, None)
        } else {
            let args = self.args(fun)?;
            if args.len() != 1 {
                return Err(type_err(e, format!("{name} takes one argument")));
            }
            if has_aggregate(args[0]) {
                return Err(err(
                    SqlErrorKind::Semantic,
                    args[0],
                    args[0],
                    "aggregates cannot be nested",
                ));
            }
            // The argument is in row scope.
            let saved = self.post.take();
            let r = self.expr(args[0]);
            self.post = saved;
            let a = r?;
            if a.ty == SqlType::StrArray {
                return Err(type_err(args[0], "cannot aggregate an array"));
            }
            let kind = match (name.as_str(), distinct) {
                ("count", false) => AggKind::Count,
                ("count", true) => AggKind::CountDistinct,
                (_, true) => {
                    return Err(unsupported(
                        e,
                        "DISTINCT is only supported in count(DISTINCT x)",
                    ))
                }
                ("approx_count_distinct", _) => AggKind::ApproxDistinct,
                ("sum", _) => AggKind::Sum,
                ("avg", _) => AggKind::Avg,
                ("min", _) => AggKind::Min,
                _ => AggKind::Max,
            };
            if matches!(kind, AggKind::Sum | AggKind::Avg) && !a.ty.is_numeric() {
                return Err(type_err(
                    args[0],
                    format!("{name} needs a number, found {} (CAST it)", a.ty.name()),
                ));
            }
            (kind, Some(a), Some(args[0].to_string()))
        };
        let arg_ty = arg.as_ref().map(|a| a.ty).unwrap_or(SqlType::Int);
        let post = self.post.as_mut().expect("group scope");
        let same_arg_as = post
            .aggs
            .iter()
            .position(|a| arg_text.is_some() && a.arg_text == arg_text)
            .unwrap_or(post.aggs.len());
        post.aggs.push(AggSpec {
            kind,
            arg,
            arg_ty,
            arg_text,
            same_arg_as,
        });
        post.agg_text.push(text);
        let i = post.offset + post.keys.len() + post.aggs.len() - 1;
        Ok(Ex {
            ty: agg_type(kind, arg_ty),
            uses: Uses::default(),
            f: mk(move |cx| cx.cols[i].as_val()),
        })
    }
}

/// The result type of an aggregate.
pub(crate) fn agg_type(kind: AggKind, arg: SqlType) -> SqlType {
    match kind {
        AggKind::CountStar | AggKind::Count | AggKind::CountDistinct | AggKind::ApproxDistinct => {
            SqlType::Int
        }
        AggKind::Avg => SqlType::Float,
        AggKind::Sum => {
            if arg == SqlType::Float {
                SqlType::Float
            } else {
                SqlType::Int
            }
        }
        AggKind::Min | AggKind::Max => arg,
    }
}

#[inline]
fn widen_val(v: Val<'_>, widen: bool) -> Val<'_> {
    match v {
        Val::Int(i) if widen => Val::Float(i as f64),
        v => v,
    }
}
