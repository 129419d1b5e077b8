//! Output operations. Each returns only once its effect for the batch is durable; the driver
//! commits the take after all of them (see the module docs of [`crate::pipeline`]).
//!
//! | output | format | delivery |
//! |---|---|---|
//! | [`DStream::print`] | Spark's `DStream.print`: `-------------------------------------------`, `Time: <ms> ms`, the banner again, the first `n` elements (`(key,value)`), `...` if there are more, an empty line | at least once (stdout) |
//! | [`DStream::save_as_text_files`] | Spark's naming: directory `<prefix>-<batch ms>[.<suffix>]` with `part-00000` (one element per line) and an empty `_SUCCESS`; written as `.<name>.tmp`, fsynced, renamed, parent fsynced | exactly once |
//! | [`DStream::to_jsonl`] | `<dir>/batch-<batch ms>-<batch id:010>.jsonl`, one JSON object per line: `{"batch_time":<ms>,"key":<k>,"value":<v>}` for pairs, `{"batch_time":<ms>,"value":<v>}` otherwise; written as `<dir>/.batch-….jsonl.tmp`, fsynced, renamed, dir fsynced (what Spark Structured Streaming's file source expects: it never sees a partial file); an empty batch writes no file | exactly once |
//! | [`DStream::foreach_batch`] | a closure with the batch's elements | as the closure makes it (an `Err` rolls the batch back) |
//! | [`DStream::to_channel`] | one put per batch (split at the target's `transactionCapacity`); body = the JSON line above, headers `sluicegate.batch = <pipeline>-<batch id>` and `timestamp = <batch ms>` | at least once; deduplicate on the header |
//!
//! Element formatting: [`Render`] is Scala's `toString` for the types a DStream word count
//! prints (numbers — floats with a decimal point —, strings, tuples as `(a,b)`, `Option` as
//! `Some(x)`/`None`); [`ToJson`] writes JSON values; [`JsonRecord`] decides between the pair and
//! the single-value line shape.

use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::channel::Channel;
use crate::event::Event;

use super::context::{BatchEnv, OutputOp};
use super::metrics::LATEST_ROWS;
use super::stage::StageContext;
use super::stream::DStream;
use super::text::Text;

/// Scala-`toString`-like rendering, for `print` and text files.
pub trait Render {
    /// Appends the rendering of `self`.
    fn render(&self, out: &mut String);

    /// Appends `self` as table cells (the status page's latest results): one cell, the
    /// rendering, by default; one per element for pairs and triples.
    fn render_cells(&self, cells: &mut Vec<String>) {
        let mut s = String::new();
        self.render(&mut s);
        cells.push(s);
    }
}

/// The first rows of a batch as cells (an output's latest results on the status page).
fn latest_rows<T: Render>(items: &[T]) -> impl Iterator<Item = Vec<String>> + '_ {
    items.iter().take(LATEST_ROWS).map(|x| {
        let mut cells = Vec::new();
        x.render_cells(&mut cells);
        cells
    })
}

/// A JSON Lines record as cells: `[key, value]` for pairs, `[value]` otherwise.
fn json_cells(line: &str) -> Vec<String> {
    let cell = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(serde_json::Value::Object(m)) => ["key", "value"]
            .iter()
            .filter_map(|k| m.get(*k))
            .map(cell)
            .collect(),
        _ => vec![line.to_string()],
    }
}

macro_rules! render_display {
    ($($t:ty),*) => {$(
        impl Render for $t {
            fn render(&self, out: &mut String) {
                let _ = write!(out, "{}", self);
            }
        }
    )*};
}
render_display!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize, bool, String, str, Text, char);

impl Render for f64 {
    fn render(&self, out: &mut String) {
        let _ = write!(out, "{:?}", self);
    }
}
impl Render for f32 {
    fn render(&self, out: &mut String) {
        let _ = write!(out, "{:?}", self);
    }
}
impl<T: Render + ?Sized> Render for &T {
    fn render(&self, out: &mut String) {
        (**self).render(out)
    }
    fn render_cells(&self, cells: &mut Vec<String>) {
        (**self).render_cells(cells)
    }
}
impl<T: Render> Render for Option<T> {
    fn render(&self, out: &mut String) {
        match self {
            Some(v) => {
                out.push_str("Some(");
                v.render(out);
                out.push(')');
            }
            None => out.push_str("None"),
        }
    }
}
impl<A: Render, B: Render> Render for (A, B) {
    fn render(&self, out: &mut String) {
        out.push('(');
        self.0.render(out);
        out.push(',');
        self.1.render(out);
        out.push(')');
    }
    fn render_cells(&self, cells: &mut Vec<String>) {
        for r in [&self.0 as &dyn Render, &self.1] {
            let mut s = String::new();
            r.render(&mut s);
            cells.push(s);
        }
    }
}
impl<A: Render, B: Render, C: Render> Render for (A, B, C) {
    fn render(&self, out: &mut String) {
        out.push('(');
        self.0.render(out);
        out.push(',');
        self.1.render(out);
        out.push(',');
        self.2.render(out);
        out.push(')');
    }
    fn render_cells(&self, cells: &mut Vec<String>) {
        for r in [&self.0 as &dyn Render, &self.1, &self.2] {
            let mut s = String::new();
            r.render(&mut s);
            cells.push(s);
        }
    }
}
impl<T: Render> Render for Vec<T> {
    fn render(&self, out: &mut String) {
        out.push_str("List(");
        for (i, v) in self.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            v.render(out);
        }
        out.push(')');
    }
}
impl Render for Event {
    fn render(&self, out: &mut String) {
        out.push_str(&String::from_utf8_lossy(self.body()));
    }
}

/// A JSON value.
pub trait ToJson {
    /// Appends `self` as JSON.
    fn to_json(&self, out: &mut String);
}

/// Appends `s` as a JSON string.
pub fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

macro_rules! json_int {
    ($($t:ty),*) => {$(
        impl ToJson for $t {
            fn to_json(&self, out: &mut String) {
                let _ = write!(out, "{}", self);
            }
        }
    )*};
}
json_int!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize, bool);

impl ToJson for f64 {
    fn to_json(&self, out: &mut String) {
        if self.is_finite() {
            let _ = write!(out, "{:?}", self);
        } else {
            out.push_str("null");
        }
    }
}
impl ToJson for f32 {
    fn to_json(&self, out: &mut String) {
        (*self as f64).to_json(out)
    }
}
impl ToJson for str {
    fn to_json(&self, out: &mut String) {
        json_string(self, out)
    }
}
impl ToJson for String {
    fn to_json(&self, out: &mut String) {
        json_string(self, out)
    }
}
impl ToJson for Text {
    fn to_json(&self, out: &mut String) {
        json_string(self, out)
    }
}
impl ToJson for char {
    fn to_json(&self, out: &mut String) {
        json_string(self.encode_utf8(&mut [0; 4]), out)
    }
}
impl<T: ToJson + ?Sized> ToJson for &T {
    fn to_json(&self, out: &mut String) {
        (**self).to_json(out)
    }
}
impl<T: ToJson> ToJson for Option<T> {
    fn to_json(&self, out: &mut String) {
        match self {
            Some(v) => v.to_json(out),
            None => out.push_str("null"),
        }
    }
}
impl<T: ToJson> ToJson for Vec<T> {
    fn to_json(&self, out: &mut String) {
        out.push('[');
        for (i, v) in self.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            v.to_json(out);
        }
        out.push(']');
    }
}
impl<A: ToJson, B: ToJson> ToJson for (A, B) {
    fn to_json(&self, out: &mut String) {
        out.push('[');
        self.0.to_json(out);
        out.push(',');
        self.1.to_json(out);
        out.push(']');
    }
}
impl<A: ToJson, B: ToJson, C: ToJson> ToJson for (A, B, C) {
    fn to_json(&self, out: &mut String) {
        out.push('[');
        self.0.to_json(out);
        out.push(',');
        self.1.to_json(out);
        out.push(',');
        self.2.to_json(out);
        out.push(']');
    }
}
impl ToJson for serde_json::Value {
    fn to_json(&self, out: &mut String) {
        out.push_str(&self.to_string());
    }
}
impl ToJson for Event {
    fn to_json(&self, out: &mut String) {
        json_string(&String::from_utf8_lossy(self.body()), out)
    }
}

/// The shape of one JSON Lines record (see the module docs). Pairs write `key` and `value`;
/// everything else writes `value`. For your own type: `impl JsonRecord for MyType {}` (with
/// [`ToJson`]) gives the single-value shape.
pub trait JsonRecord {
    /// Appends the record (no newline).
    fn json_record(&self, batch_time_ms: i64, out: &mut String);
}

/// The single-value record shape.
pub fn json_value_record<T: ToJson + ?Sized>(v: &T, batch_time_ms: i64, out: &mut String) {
    let _ = write!(out, "{{\"batch_time\":{batch_time_ms},\"value\":");
    v.to_json(out);
    out.push('}');
}

macro_rules! json_record_value {
    ($($t:ty),*) => {$(
        impl JsonRecord for $t {
            fn json_record(&self, batch_time_ms: i64, out: &mut String) {
                json_value_record(self, batch_time_ms, out)
            }
        }
    )*};
}
json_record_value!(
    u8,
    u16,
    u32,
    u64,
    usize,
    i8,
    i16,
    i32,
    i64,
    isize,
    bool,
    f32,
    f64,
    String,
    Text,
    char,
    serde_json::Value,
    Event
);
impl<T: ToJson> JsonRecord for Option<T> {
    fn json_record(&self, batch_time_ms: i64, out: &mut String) {
        json_value_record(self, batch_time_ms, out)
    }
}
impl<T: ToJson> JsonRecord for Vec<T> {
    fn json_record(&self, batch_time_ms: i64, out: &mut String) {
        json_value_record(self, batch_time_ms, out)
    }
}
impl<A: ToJson, B: ToJson, C: ToJson> JsonRecord for (A, B, C) {
    fn json_record(&self, batch_time_ms: i64, out: &mut String) {
        json_value_record(self, batch_time_ms, out)
    }
}
impl<K: ToJson, V: ToJson> JsonRecord for (K, V) {
    fn json_record(&self, batch_time_ms: i64, out: &mut String) {
        let _ = write!(out, "{{\"batch_time\":{batch_time_ms},\"key\":");
        self.0.to_json(out);
        out.push_str(",\"value\":");
        self.1.to_json(out);
        out.push('}');
    }
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> String {
    format!("{what} {}: {e}", path.display())
}

/// fsyncs a directory (so a rename in it is durable).
pub(crate) fn sync_dir(dir: &Path) -> Result<(), String> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err("syncing directory", dir, e))
}

/// Writes `bytes` to `dir/name` atomically: `dir/.name.tmp`, fsync, rename, fsync dir.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let dst = dir.join(name);
    let mut f = fs::File::create(&tmp).map_err(|e| io_err("creating", &tmp, e))?;
    f.write_all(bytes).map_err(|e| io_err("writing", &tmp, e))?;
    f.sync_all().map_err(|e| io_err("syncing", &tmp, e))?;
    drop(f);
    fs::rename(&tmp, &dst).map_err(|e| io_err("renaming into place", &dst, e))?;
    sync_dir(dir)
}

/// Spark's `rddToFileName`.
pub fn spark_file_name(prefix: &str, suffix: &str, batch_time_ms: i64) -> String {
    if suffix.is_empty() {
        format!("{prefix}-{batch_time_ms}")
    } else {
        format!("{prefix}-{batch_time_ms}.{suffix}")
    }
}

/// The JSON Lines file name of a batch.
pub fn jsonl_file_name(batch_time_ms: i64, batch_id: u64) -> String {
    format!("batch-{batch_time_ms}-{batch_id:010}.jsonl")
}

/// Where `print` writes.
pub type PrintSink = Arc<Mutex<dyn Write + Send>>;

/// Formats a batch as Spark's `DStream.print(n)` does.
pub fn format_print<T: Render>(items: &[T], n: usize, batch_time_ms: i64) -> String {
    let mut s = String::new();
    s.push_str("-------------------------------------------\n");
    let _ = writeln!(s, "Time: {batch_time_ms} ms");
    s.push_str("-------------------------------------------\n");
    for x in items.iter().take(n) {
        x.render(&mut s);
        s.push('\n');
    }
    if items.len() > n {
        s.push_str("...\n");
    }
    s.push('\n');
    s
}

struct Op<F>(F);
impl<F: Fn(&BatchEnv<'_>) -> Result<u64, String> + Send + Sync> OutputOp for Op<F> {
    fn run(&self, env: &BatchEnv<'_>) -> Result<u64, String> {
        (self.0)(env)
    }
}

/// Removes `.…tmp` leftovers of interrupted writes in `dir`.
fn clean_temps(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".tmp") {
                let p = e.path();
                let _ = if p.is_dir() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
            }
        }
    }
}

impl<T: Send + Sync + 'static> DStream<T> {
    /// Prints the first `n` elements of every batch to stdout in Spark's format.
    pub fn print(&self, n: usize) -> &Self
    where
        T: Render,
    {
        self.print_to(n, Arc::new(Mutex::new(std::io::stdout())))
    }

    /// [`print`](Self::print) into any writer.
    pub fn print_to(&self, n: usize, sink: PrintSink) -> &Self
    where
        T: Render,
    {
        let s = self.clone();
        let label = format!("print({n})");
        self.ctx.add_output(
            label.clone(),
            Box::new(Op(move |env: &BatchEnv<'_>| {
                let items = s.get(env);
                let text = format_print(&items, n, env.batch_time_ms);
                let mut w = sink.lock().unwrap_or_else(|e| e.into_inner());
                w.write_all(text.as_bytes())
                    .and_then(|_| w.flush())
                    .map_err(|e| format!("print: {e}"))?;
                let rows = latest_rows(&items[..items.len().min(n)]);
                env.counter.record_latest(
                    &label,
                    env.batch_id,
                    env.batch_time_ms,
                    items.len() as u64,
                    rows,
                );
                Ok(items.len().min(n) as u64)
            })),
        );
        self
    }

    /// Spark's `saveAsTextFiles(prefix, suffix)`: every batch becomes the directory
    /// `<prefix>-<batch ms>[.<suffix>]` holding `part-00000` and `_SUCCESS` (see the module docs).
    pub fn save_as_text_files(&self, prefix: impl Into<PathBuf>, suffix: &str) -> &Self
    where
        T: Render,
    {
        let prefix: PathBuf = prefix.into();
        let suffix = suffix.to_string();
        let s = self.clone();
        let parent = prefix
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let base = prefix
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        clean_temps(&parent);
        let label = format!("save_as_text_files({},{suffix})", prefix.display());
        self.ctx.add_output(
            label.clone(),
            Box::new(Op(move |env: &BatchEnv<'_>| {
                let items = s.get(env);
                let name = spark_file_name(&base, &suffix, env.batch_time_ms);
                fs::create_dir_all(&parent).map_err(|e| io_err("creating", &parent, e))?;
                let tmp = parent.join(format!(".{name}.tmp"));
                let dst = parent.join(&name);
                let _ = fs::remove_dir_all(&tmp);
                fs::create_dir(&tmp).map_err(|e| io_err("creating", &tmp, e))?;
                let mut text = String::new();
                for x in items.iter() {
                    x.render(&mut text);
                    text.push('\n');
                }
                write_atomic(&tmp, "part-00000", text.as_bytes())?;
                write_atomic(&tmp, "_SUCCESS", b"")?;
                if dst.exists() {
                    // A replay of a batch whose output was complete: same content; replace.
                    fs::remove_dir_all(&dst).map_err(|e| io_err("replacing", &dst, e))?;
                }
                fs::rename(&tmp, &dst).map_err(|e| io_err("renaming into place", &dst, e))?;
                sync_dir(&parent)?;
                let n = items.len() as u64;
                let rows = latest_rows(&items);
                env.counter
                    .record_latest(&label, env.batch_id, env.batch_time_ms, n, rows);
                Ok(n)
            })),
        );
        self
    }

    /// JSON Lines per batch into `dir`, for Spark Structured Streaming's file source (see the
    /// module docs for names and shape).
    pub fn to_jsonl(&self, dir: impl Into<PathBuf>) -> &Self
    where
        T: JsonRecord,
    {
        let dir: PathBuf = dir.into();
        let s = self.clone();
        clean_temps(&dir);
        let label = format!("to_jsonl({})", dir.display());
        self.ctx.add_output(
            label.clone(),
            Box::new(Op(move |env: &BatchEnv<'_>| {
                let items = s.get(env);
                if items.is_empty() {
                    // No file for an empty batch: a reader (Spark's file source lists and
                    // opens every file) would pay for each idle interval, and a directory of
                    // empty files hides the ones with data.
                    return Ok(0);
                }
                fs::create_dir_all(&dir).map_err(|e| io_err("creating", &dir, e))?;
                let mut text = String::with_capacity(items.len() * 48);
                for x in items.iter() {
                    x.json_record(env.batch_time_ms, &mut text);
                    text.push('\n');
                }
                let name = jsonl_file_name(env.batch_time_ms, env.batch_id);
                write_atomic(&dir, &name, text.as_bytes())?;
                let n = items.len() as u64;
                let rows = text.lines().take(LATEST_ROWS).map(json_cells);
                env.counter
                    .record_latest(&label, env.batch_id, env.batch_time_ms, n, rows);
                Ok(n)
            })),
        );
        self
    }

    /// Calls `f` with every batch's elements; an `Err` fails the batch (rolled back, retried).
    pub fn foreach_batch<F, E>(&self, f: F) -> &Self
    where
        F: Fn(&[T], &StageContext<'_>) -> Result<(), E> + Send + Sync + 'static,
        E: std::fmt::Display,
    {
        self.foreach_batch_named("foreach_batch", f)
    }

    /// [`foreach_batch`](Self::foreach_batch) under the output name `label`: the name in the
    /// pipeline's definition (so a restart with a different `label` is a changed definition,
    /// as for a changed `to_jsonl` directory) and in its metrics. Outputs built outside this
    /// module (the agent's `hdfs` output) describe their target with it.
    pub fn foreach_batch_named<F, E>(&self, label: impl Into<String>, f: F) -> &Self
    where
        F: Fn(&[T], &StageContext<'_>) -> Result<(), E> + Send + Sync + 'static,
        E: std::fmt::Display,
    {
        let s = self.clone();
        let label: String = label.into();
        self.ctx.add_output(
            label.clone(),
            Box::new(Op(move |env: &BatchEnv<'_>| {
                let items = s.get(env);
                let cx = env.stage_ctx();
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&items, &cx))) {
                    Ok(Ok(())) => {
                        let n = items.len() as u64;
                        let none = std::iter::empty::<Vec<String>>();
                        env.counter
                            .record_latest(&label, env.batch_id, env.batch_time_ms, n, none);
                        Ok(n)
                    }
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("the foreach_batch function panicked".into()),
                }
            })),
        );
        self
    }

    /// Puts every batch's elements into `target` as events (see the module docs).
    pub fn to_channel(&self, target: Arc<dyn Channel>) -> &Self
    where
        T: JsonRecord,
    {
        let s = self.clone();
        let pipeline = self.ctx.name().to_string();
        let label = format!("to_channel({})", target.name());
        self.ctx.add_output(
            label.clone(),
            Box::new(Op(move |env: &BatchEnv<'_>| {
                let items = s.get(env);
                let tag = format!("{pipeline}-{}", env.batch_id);
                let ts = env.batch_time_ms.to_string();
                let mut line = String::new();
                let events: Vec<Event> = items
                    .iter()
                    .map(|x| {
                        line.clear();
                        x.json_record(env.batch_time_ms, &mut line);
                        Event::new(
                            [
                                ("sluicegate.batch", tag.as_str()),
                                ("timestamp", ts.as_str()),
                            ],
                            line.as_bytes(),
                        )
                    })
                    .collect();
                for chunk in events.chunks(target.transaction_capacity().max(1)) {
                    target.put_batch(chunk).map_err(|e| e.to_string())?;
                }
                let n = items.len() as u64;
                let rows = events
                    .iter()
                    .take(LATEST_ROWS)
                    .map(|e| json_cells(&String::from_utf8_lossy(e.body())));
                env.counter
                    .record_latest(&label, env.batch_id, env.batch_time_ms, n, rows);
                Ok(n)
            })),
        );
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn print_matches_spark_format() {
        let items = vec![(Text::new("a"), 3u64), (Text::new("b"), 1)];
        assert_eq!(
            format_print(&items, 10, 1_500),
            "-------------------------------------------\nTime: 1500 ms\n\
             -------------------------------------------\n(a,3)\n(b,1)\n\n"
        );
        assert_eq!(
            format_print(&items, 1, 2_000),
            "-------------------------------------------\nTime: 2000 ms\n\
             -------------------------------------------\n(a,3)\n...\n\n"
        );
    }

    #[test]
    fn json_records_have_the_handoff_shape() {
        let mut s = String::new();
        (Text::new("w\"x"), 2u64).json_record(7, &mut s);
        assert_eq!(s, r#"{"batch_time":7,"key":"w\"x","value":2}"#);
        s.clear();
        42u64.json_record(7, &mut s);
        assert_eq!(s, r#"{"batch_time":7,"value":42}"#);
        s.clear();
        (Text::new("k"), (1u64, None::<u64>)).json_record(1, &mut s);
        assert_eq!(s, r#"{"batch_time":1,"key":"k","value":[1,null]}"#);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["key"], "k");
        assert_eq!(jsonl_file_name(1500, 3), "batch-1500-0000000003.jsonl");
        assert_eq!(spark_file_name("out/wc", "txt", 1500), "out/wc-1500.txt");
        assert_eq!(spark_file_name("wc", "", 1500), "wc-1500");
    }

    #[test]
    fn render_is_scala_like() {
        let mut s = String::new();
        (Text::new("k"), (1.0f64, Some(2u8))).render(&mut s);
        assert_eq!(s, "(k,(1.0,Some(2)))");
    }
}
