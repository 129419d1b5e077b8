//! Values, types and result rows of the SQL front end.
//!
//! [`Value`] is the owned value of a result column or a group key: `NULL`, `BOOLEAN`, `BIGINT`
//! (also timestamps: ms since the epoch), `DOUBLE`, `VARCHAR` (a [`Text`]: inline up to 22
//! bytes, so a word as a key allocates nothing). During evaluation values borrow from the event
//! ([`Val`]: strings are `Cow<str>` slices of the body or a header) and are only made owned when
//! they become keys or output.
//!
//! Ordering (for `ORDER BY`, group-key order and `min`/`max`): values of one column have one type
//! (the analyser checks it); `NULL` sorts after everything (DuckDB's `NULLS LAST` default),
//! doubles by `f64::total_cmp` (so `NaN` is largest, and `-0.0 < 0.0`).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::pipeline::output::{json_string, JsonRecord, Render, ToJson};
use crate::pipeline::Text;

/// A column's static type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqlType {
    /// `BOOLEAN`.
    Bool,
    /// `BIGINT` (64-bit signed).
    Int,
    /// `DOUBLE`.
    Float,
    /// `VARCHAR` (UTF-8).
    Str,
    /// The type of a bare `NULL` literal (unifies with anything).
    Null,
    /// `VARCHAR[]`: only the result of `split`, only inside `UNNEST`.
    StrArray,
}

impl SqlType {
    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            SqlType::Bool => "BOOLEAN",
            SqlType::Int => "BIGINT",
            SqlType::Float => "DOUBLE",
            SqlType::Str => "VARCHAR",
            SqlType::Null => "NULL",
            SqlType::StrArray => "VARCHAR[]",
        }
    }

    /// True for BIGINT and DOUBLE (and NULL).
    pub fn is_numeric(self) -> bool {
        matches!(self, SqlType::Int | SqlType::Float | SqlType::Null)
    }

    /// The common type of two branches (CASE, COALESCE, IN lists), if any.
    pub fn unify(a: SqlType, b: SqlType) -> Option<SqlType> {
        match (a, b) {
            (x, y) if x == y => Some(x),
            (SqlType::Null, y) => Some(y),
            (x, SqlType::Null) => Some(x),
            (SqlType::Int, SqlType::Float) | (SqlType::Float, SqlType::Int) => Some(SqlType::Float),
            _ => None,
        }
    }
}

/// An owned value (see the module docs).
#[derive(Debug, Clone)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// `BOOLEAN`.
    Bool(bool),
    /// `BIGINT`.
    Int(i64),
    /// `DOUBLE`.
    Float(f64),
    /// `VARCHAR`.
    Str(Text),
}

/// A value during evaluation, strings borrowed where possible (see the module docs).
#[derive(Debug, Clone)]
pub enum Val<'a> {
    /// SQL `NULL`.
    Null,
    /// `BOOLEAN`.
    Bool(bool),
    /// `BIGINT`.
    Int(i64),
    /// `DOUBLE`.
    Float(f64),
    /// `VARCHAR`.
    Str(Cow<'a, str>),
}

impl<'a> Val<'a> {
    /// Makes it owned.
    #[inline]
    pub fn to_value(&self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Int(i) => Value::Int(*i),
            Val::Float(f) => Value::Float(*f),
            Val::Str(s) => Value::Str(Text::new(s)),
        }
    }

    /// True for `NULL`.
    #[inline]
    pub fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    /// As a number (ints widened), `None` for NULL or non-numbers.
    #[inline]
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Val::Int(i) => Some(*i as f64),
            Val::Float(f) => Some(*f),
            _ => None,
        }
    }
}

impl Value {
    /// Borrows it as an evaluation value.
    #[inline]
    pub fn as_val(&self) -> Val<'_> {
        match self {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Int(i) => Val::Int(*i),
            Value::Float(f) => Val::Float(*f),
            Value::Str(s) => Val::Str(Cow::Borrowed(s.as_str())),
        }
    }

    /// True for `NULL`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    fn rank(&self) -> u8 {
        match self {
            Value::Bool(_) => 0,
            Value::Int(_) | Value::Float(_) => 1,
            Value::Str(_) => 2,
            Value::Null => 3,
        }
    }
}

/// Compares two non-null evaluation values of compatible types (numbers across int/double);
/// `None` when either is NULL or the types differ.
#[inline]
pub fn cmp_val(a: &Val<'_>, b: &Val<'_>) -> Option<Ordering> {
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(y)),
        (Val::Str(x), Val::Str(y)) => Some(x.as_ref().cmp(y.as_ref())),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(y)),
        (Val::Float(x), Val::Float(y)) => Some(x.total_cmp(y)),
        (Val::Int(x), Val::Float(y)) => Some((*x as f64).total_cmp(y)),
        (Val::Float(x), Val::Int(y)) => Some(x.total_cmp(&(*y as f64))),
        _ => None,
    }
}

impl PartialEq for Value {
    #[inline]
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            // The group-key probe of every row: compare without building `Val`s.
            (Value::Str(a), Value::Str(b)) => a.as_str() == b.as_str(),
            (Value::Int(a), Value::Int(b)) => a == b,
            _ => self.cmp(other) == Ordering::Equal,
        }
    }
}
impl Eq for Value {}
impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Value) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Value {
    fn cmp(&self, other: &Value) -> Ordering {
        match (self, other) {
            (Value::Null, Value::Null) => Ordering::Equal,
            _ => match cmp_val(&self.as_val(), &other.as_val()) {
                Some(o) => o,
                None => self.rank().cmp(&other.rank()),
            },
        }
    }
}
impl Hash for Value {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_val(&self.as_val(), state)
    }
}

/// Hashes an evaluation value exactly as [`Value`]'s `Hash` hashes its owned form.
#[inline]
pub(crate) fn hash_val<H: Hasher>(v: &Val<'_>, state: &mut H) {
    match v {
        Val::Null => state.write_u8(0),
        Val::Bool(b) => state.write_u8(*b as u8 + 1),
        // Ints and doubles that compare equal must hash equal.
        Val::Int(i) => state.write_u64((*i as f64).to_bits()),
        Val::Float(f) => state.write_u64(if *f == 0.0 { 0 } else { f.to_bits() }),
        Val::Str(s) => s.as_ref().hash(state),
    }
}

/// Equality of evaluation values, exactly as [`Value`]'s `PartialEq` on their owned forms.
#[inline]
pub(crate) fn eq_val(a: &Val<'_>, b: &Val<'_>) -> bool {
    match (a, b) {
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::Null, Val::Null) => true,
        _ => cmp_val(a, b) == Some(Ordering::Equal),
    }
}

/// A value seen as a borrowed [`Val`]: a set of [`Value`]s (`count(DISTINCT x)`) is probed
/// with `&val as &dyn AsVal`, so finding that a value is already there makes no owned copy
/// of it (`Value: Borrow<dyn AsVal>`; hash and equality are [`hash_val`] / [`eq_val`], the
/// same as `Value`'s own).
pub(crate) trait AsVal {
    /// The value, borrowed.
    fn val(&self) -> Val<'_>;
}

impl AsVal for Value {
    #[inline]
    fn val(&self) -> Val<'_> {
        self.as_val()
    }
}

impl AsVal for Val<'_> {
    #[inline]
    fn val(&self) -> Val<'_> {
        match self {
            Val::Str(s) => Val::Str(Cow::Borrowed(s.as_ref())),
            Val::Null => Val::Null,
            Val::Bool(b) => Val::Bool(*b),
            Val::Int(i) => Val::Int(*i),
            Val::Float(f) => Val::Float(*f),
        }
    }
}

impl<'a> std::borrow::Borrow<dyn AsVal + 'a> for Value {
    #[inline]
    fn borrow(&self) -> &(dyn AsVal + 'a) {
        self
    }
}

impl Hash for dyn AsVal + '_ {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_val(&self.val(), state)
    }
}

impl PartialEq for dyn AsVal + '_ {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        eq_val(&self.val(), &other.val())
    }
}

impl Eq for dyn AsVal + '_ {}

impl Render for Value {
    fn render(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => b.render(out),
            Value::Int(i) => i.render(out),
            Value::Float(f) => f.render(out),
            Value::Str(s) => out.push_str(s),
        }
    }
}

impl ToJson for Value {
    fn to_json(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => b.to_json(out),
            Value::Int(i) => i.to_json(out),
            Value::Float(f) => f.to_json(out),
            Value::Str(s) => json_string(s, out),
        }
    }
}

/// One result row: the column names (shared by all rows of a query) and the values.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Row {
    /// The output column names, in `SELECT` order.
    pub names: Arc<[String]>,
    /// The values, one per name.
    pub values: Vec<Value>,
}

impl Row {
    /// The value of column `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| &self.values[i])
    }

    /// The row as a JSON object `{"name":value,...}`.
    pub fn to_json_object(&self, out: &mut String) {
        out.push('{');
        for (i, (n, v)) in self.names.iter().zip(&self.values).enumerate() {
            if i > 0 {
                out.push(',');
            }
            json_string(n, out);
            out.push(':');
            v.to_json(out);
        }
        out.push('}');
    }
}

/// `print` shows a row as a tuple `(v1,v2,...)`, as `DStream.print` shows pairs.
impl Render for Row {
    fn render(&self, out: &mut String) {
        out.push('(');
        for (i, v) in self.values.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            v.render(out);
        }
        out.push(')');
    }
}

impl ToJson for Row {
    fn to_json(&self, out: &mut String) {
        self.to_json_object(out)
    }
}

/// JSON Lines / channel outputs: `{"batch_time":<ms>,"col1":v1,...}` (a column named
/// `batch_time` would shadow nothing: it is written after, so readers taking the last key see it).
impl JsonRecord for Row {
    fn json_record(&self, batch_time_ms: i64, out: &mut String) {
        let _ = write!(out, "{{\"batch_time\":{batch_time_ms}");
        for (n, v) in self.names.iter().zip(&self.values) {
            out.push(',');
            json_string(n, out);
            out.push(':');
            v.to_json(out);
        }
        out.push('}');
    }
}

/// Snapshot encoding (window state): `u8 tag` (0 NULL, 1 BOOLEAN, 2 BIGINT, 3 DOUBLE,
/// 4 VARCHAR) then the value.
impl crate::pipeline::Persist for Value {
    fn persist(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => 0u8.persist(out),
            Value::Bool(b) => {
                1u8.persist(out);
                b.persist(out)
            }
            Value::Int(i) => {
                2u8.persist(out);
                i.persist(out)
            }
            Value::Float(f) => {
                3u8.persist(out);
                f.persist(out)
            }
            Value::Str(s) => {
                4u8.persist(out);
                s.persist(out)
            }
        }
    }

    fn restore(
        r: &mut crate::pipeline::SnapshotReader<'_>,
    ) -> Result<Self, crate::pipeline::SnapshotError> {
        let tag: u8 = r.read()?;
        Ok(match tag {
            0 => Value::Null,
            1 => Value::Bool(r.read()?),
            2 => Value::Int(r.read()?),
            3 => Value::Float(r.read()?),
            4 => Value::Str(r.read()?),
            t => return Err(r.invalid(format!("SQL value tag {t}"))),
        })
    }
}
