//! Component configuration as Flume hands it over: a [`Context`] of `key = value` pairs for one
//! component (`a1.sources.r1.*` with the prefix removed), each remembering the file and line it
//! came from so every error can point at it.
//!
//! The process-wide `-D` settings (Java system properties, with the `FLUME_SSL_*` environment
//! fallbacks) are a [`SystemProps`] ([`system_props`]), handed down next to the `Context`s.
//!
//! ## Used keys
//!
//! Every getter records the key it asked for, present or not, in a set shared by a context,
//! its clones and its [`Context::sub`] contexts. The set holds keys relative to the **root**
//! context (the component's: `selector.header`, `interceptors.i1.key`), whichever context read
//! them, so a key is "used" exactly when some code asked for it. [`Context::unused_keys`] (keys
//! set but never asked for) and [`Context::read_keys`] (what was asked for: the keys the
//! component knows, for a "did you mean …?" from [`suggest`]) answer relative to the context
//! they are called on. An error about a key that is not set ([`Context::error`], e.g. from
//! [`Context::require`]) names a set but unread key close to it: the typo that left it unset.
//!
//! This module sits at the bottom of the crate: sources, sinks and channels read their settings
//! from a `Context`; the agent's `flume.conf` loader builds them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub mod suggest;
pub mod system_props;

pub use system_props::{SystemProps, GLOBAL_SSL_SETTINGS};

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    /// The file, when the value came from one.
    pub file: Option<Arc<PathBuf>>,
    /// 1-based line number of the key.
    pub line: usize,
}

/// A configuration problem, pointing at the file, line and full key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// File the key came from, if any.
    pub file: Option<Arc<PathBuf>>,
    /// 1-based line, 0 when unknown (e.g. a missing key).
    pub line: usize,
    /// The full key, e.g. `a1.sources.r1.port`.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), l) if l > 0 => write!(f, "{}:{}: ", file.display(), l)?,
            (Some(file), _) => write!(f, "{}: ", file.display())?,
            (None, l) if l > 0 => write!(f, "line {l}: ")?,
            _ => {}
        }
        write!(f, "{}: {}", self.key, self.message)
    }
}

#[derive(Debug, Clone)]
struct Entry {
    value: String,
    origin: Origin,
}

/// The settings of one component. Keys are relative (`port`, `selector.type`).
#[derive(Debug, Clone, Default)]
pub struct Context {
    prefix: String,
    /// This context's place under the root context (`""`, `selector.`, `interceptors.i1.`):
    /// what `used` keys are relative to.
    base: String,
    declared_at: Origin,
    entries: BTreeMap<String, Entry>,
    used: Arc<Mutex<std::collections::BTreeSet<String>>>,
    /// Warnings from [`Context::warn`], when the agent collects them (`None`: logged).
    notes: Option<Arc<Mutex<Vec<ConfigError>>>>,
}

impl Context {
    /// An empty context whose keys print as `prefix.key` (e.g. `a1.sources.r1`).
    pub fn new(prefix: impl Into<String>) -> Context {
        Context {
            prefix: prefix.into(),
            ..Context::default()
        }
    }

    /// Builds a context from `(key, value)` pairs with no file (tests, embedded defaults).
    pub fn from_pairs<'a>(
        prefix: impl Into<String>,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Context {
        let mut c = Context::new(prefix);
        for (k, v) in pairs {
            c.insert(k, v, Origin::default());
        }
        c
    }

    /// Sets `key` (relative) to `value`; a later insert of the same key wins, as in Java.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>, origin: Origin) {
        self.entries.insert(
            key.into(),
            Entry {
                value: value.into(),
                origin,
            },
        );
    }

    /// Records where the component itself was declared (for errors about missing keys).
    pub fn set_declared_at(&mut self, origin: Origin) {
        self.declared_at = origin;
    }

    /// The prefix, e.g. `a1.sources.r1`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The full key for a relative one.
    pub fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{}", self.prefix, key)
        }
    }

    fn used_set(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<String>> {
        // Poison: the set of keys read, used only for diagnostics; a panicked reader cannot
        // leave it inconsistent.
        self.used.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn mark_used(&self, key: &str) {
        let full = format!("{}{key}", self.base);
        self.used_set().insert(full);
    }

    /// From now on [`Context::warn`] on this context, its clones and sub-contexts records
    /// the warning (see [`Context::notes`]) instead of logging it, so the agent can print it
    /// with the other configuration diagnostics.
    pub fn collect_notes(&mut self) {
        self.notes = Some(Arc::default());
    }

    /// A warning about `key` (a value replaced by a default, a Flume key that is ignored):
    /// recorded when notes are collected, else logged at WARN as `file:line: key: message`.
    pub fn warn(&self, key: &str, message: &str) {
        let o = self.origin(key);
        let note = ConfigError {
            file: o.file,
            line: o.line,
            key: self.full_key(key),
            message: message.to_string(),
        };
        match &self.notes {
            Some(n) => n.lock().unwrap_or_else(|e| e.into_inner()).push(note),
            None => tracing::warn!("{note}"),
        }
    }

    /// The warnings recorded by [`Context::warn`] since [`Context::collect_notes`].
    pub fn notes(&self) -> Vec<ConfigError> {
        self.notes
            .as_ref()
            .map(|n| n.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .unwrap_or_default()
    }

    /// Marks `key` as dealt with although no getter read it (a warning already names it, or
    /// it is a Flume key sluicegate accepts and ignores), so it is not reported as unknown.
    pub fn mark_read(&self, key: &str) {
        self.mark_used(key);
    }

    /// The raw value of `key`, trimmed as Flume's `Context.getString` leaves it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.mark_used(key);
        self.entries.get(key).map(|e| e.value.as_str())
    }

    /// True when `key` is set.
    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// The value of `key` or `default`.
    pub fn get_or<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.get(key).unwrap_or(default)
    }

    /// The value of `key`, or an error naming it.
    pub fn require(&self, key: &str) -> Result<&str, ConfigError> {
        match self.get(key) {
            Some(v) if !v.trim().is_empty() => Ok(v),
            Some(_) => Err(self.error(key, "must not be empty")),
            None => Err(self.error(key, "is required but not set")),
        }
    }

    /// Parses `key` with `FromStr` (after trimming), `None` when unset.
    pub fn parse<T: FromStr>(&self, key: &str, what: &str) -> Result<Option<T>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<T>()
                .map(Some)
                .map_err(|_| self.error(key, &format!("expected {what}, got '{v}'"))),
        }
    }

    /// An integer setting with a default.
    pub fn get_u64(&self, key: &str, default: u64) -> Result<u64, ConfigError> {
        Ok(self
            .parse::<u64>(key, "a non-negative integer")?
            .unwrap_or(default))
    }

    /// A positive integer setting in Java's `int` range (`1..=2^31-1`) with a default, as
    /// Flume's batch sizes and intervals are.
    pub fn get_positive_int(&self, key: &str, default: u64) -> Result<usize, ConfigError> {
        let v = self.get_u64(key, default)?;
        if v == 0 || v > i32::MAX as u64 {
            return Err(self.error(key, "must be a positive integer"));
        }
        Ok(v as usize)
    }

    /// A signed integer setting with a default.
    pub fn get_i64(&self, key: &str, default: i64) -> Result<i64, ConfigError> {
        Ok(self.parse::<i64>(key, "an integer")?.unwrap_or(default))
    }

    /// A boolean as Java's `Boolean.parseBoolean` reads it: only `true` (any case) is true.
    pub fn get_bool(&self, key: &str, default: bool) -> bool {
        match self.get(key) {
            None => default,
            Some(v) => v.trim().eq_ignore_ascii_case("true"),
        }
    }

    /// A duration given in milliseconds.
    pub fn get_millis(&self, key: &str, default_ms: u64) -> Result<Duration, ConfigError> {
        Ok(Duration::from_millis(self.get_u64(key, default_ms)?))
    }

    /// A duration given in seconds.
    pub fn get_secs(&self, key: &str, default_s: u64) -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(self.get_u64(key, default_s)?))
    }

    /// The settings under `prefix.` as a new context (e.g. `selector` → `type`, `mapping.x`).
    pub fn sub(&self, prefix: &str) -> Context {
        let p = format!("{prefix}.");
        let mut c = Context::new(self.full_key(prefix));
        c.declared_at = self.declared_at.clone();
        c.used = self.used.clone();
        c.notes = self.notes.clone();
        c.base = format!("{}{p}", self.base);
        for (k, e) in &self.entries {
            if let Some(rest) = k.strip_prefix(&p) {
                c.entries.insert(rest.to_string(), e.clone());
            }
        }
        c
    }

    /// All relative keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// `(key, value)` pairs, sorted by key. Reading every value this way marks every key used
    /// (a selector's `mapping.*` is all meaningful); to look at names only, use [`Context::keys`].
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        for k in self.entries.keys() {
            self.mark_used(k);
        }
        self.entries
            .iter()
            .map(|(k, e)| (k.as_str(), e.value.as_str()))
    }

    /// Keys set but never asked for by any getter (of this context, a clone, a parent or a
    /// sub-context): candidates for an "unknown key" diagnostic.
    pub fn unused_keys(&self) -> Vec<String> {
        let used = self.used_set();
        self.entries
            .keys()
            .filter(|k| !used.contains(&format!("{}{k}", self.base)))
            .cloned()
            .collect()
    }

    /// Every key some getter asked for under this context, set or not (relative to it,
    /// sorted): the keys the component knows, to suggest from.
    pub fn read_keys(&self) -> Vec<String> {
        self.used_set()
            .iter()
            .filter_map(|k| k.strip_prefix(&self.base))
            .map(str::to_string)
            .collect()
    }

    /// The set key nearest to `key` that no getter has asked for: the likely typo when `key`
    /// is missing.
    fn typo_for(&self, key: &str) -> Option<String> {
        let used = self.used_set();
        let unread = self
            .entries
            .keys()
            .filter(|k| !used.contains(&format!("{}{k}", self.base)));
        suggest::suggest(key, unread.map(String::as_str)).map(str::to_string)
    }

    /// Where `key` was set (or where the component was declared when it is not).
    pub fn origin(&self, key: &str) -> Origin {
        self.entries
            .get(key)
            .map(|e| e.origin.clone())
            .unwrap_or_else(|| self.declared_at.clone())
    }

    /// An error about `key`, carrying its file and line. When `key` is not set and a set,
    /// unread key is close to it, the message ends `(did you mean 'port'? found 'prot' at
    /// file:line)`.
    pub fn error(&self, key: &str, message: &str) -> ConfigError {
        let o = self.origin(key);
        let mut message = message.to_string();
        if !self.contains(key) {
            if let Some(typo) = self.typo_for(key) {
                let at = self.origin(&typo);
                let place = match &at.file {
                    Some(f) => format!("{}:{}", f.display(), at.line),
                    None => format!("line {}", at.line),
                };
                message.push_str(&format!(
                    " (did you mean '{key}'? found '{typo}' at {place})"
                ));
                // Named here; not reported again as an unknown key.
                self.mark_used(&typo);
            }
        }
        ConfigError {
            file: o.file,
            line: o.line,
            key: self.full_key(key),
            message,
        }
    }

    /// A stable fingerprint of the settings (used to decide what a reload must restart).
    pub fn fingerprint(&self) -> Vec<(String, String)> {
        self.entries
            .iter()
            .map(|(k, e)| (k.clone(), e.value.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_file_line_and_full_key() {
        let mut c = Context::new("a1.sources.r1");
        c.insert(
            "port",
            "abc",
            Origin {
                file: Some(Arc::new("flume.conf".into())),
                line: 7,
            },
        );
        let e = c.get_u64("port", 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "flume.conf:7: a1.sources.r1.port: expected a non-negative integer, got 'abc'"
        );
        let missing = c.require("bind").unwrap_err();
        assert_eq!(missing.key, "a1.sources.r1.bind");
    }

    #[test]
    fn sub_contexts_and_java_booleans() {
        let c = Context::from_pairs(
            "a1.sources.r1",
            [
                ("selector.type", "multiplexing"),
                ("ssl", "TRUE"),
                ("x", "yes"),
            ],
        );
        assert_eq!(c.sub("selector").get("type"), Some("multiplexing"));
        assert!(c.get_bool("ssl", false));
        assert!(!c.get_bool("x", true));
        assert!(c.unused_keys().is_empty());
        let d = Context::from_pairs("p", [("unread", "1")]);
        assert_eq!(d.unused_keys(), vec!["unread".to_string()]);
    }

    #[test]
    fn used_keys_are_exact_through_sub_contexts() {
        let c = Context::from_pairs(
            "a1.sources.r1",
            [
                ("type", "seq"),
                ("selector.header", "h"),
                ("selector.heder", "h"),
                ("header", "x"),
            ],
        );
        let sel = c.sub("selector");
        assert_eq!(sel.get("header"), Some("h"));
        // Reading `header` in the sub-context is `selector.header`, not the root's `header`,
        // and creating the sub-context does not mark its keys.
        assert_eq!(c.unused_keys(), ["header", "selector.heder", "type"]);
        assert_eq!(sel.unused_keys(), ["heder"]);
        assert_eq!(sel.read_keys(), ["header"]);
        assert_eq!(c.read_keys(), ["selector.header"]);
        let _ = c.get("type");
        c.mark_read("header");
        assert_eq!(c.unused_keys(), ["selector.heder"]);
    }

    #[test]
    fn a_missing_key_names_the_typo_that_left_it_unset() {
        let mut c = Context::new("a1.sources.r1");
        let at = |line| Origin {
            file: Some(Arc::new("f.conf".into())),
            line,
        };
        c.set_declared_at(at(3));
        c.insert("bind", "0.0.0.0", at(3));
        c.insert("prot", "4141", at(5));
        let e = c.require("port").unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.conf:3: a1.sources.r1.port: is required but not set (did you mean 'port'? found \
             'prot' at f.conf:5)"
        );
        // Named in the error: not reported again as unknown. `bind` was never read.
        assert_eq!(c.unused_keys(), ["bind"]);
        // A key that was read is not a typo candidate, and a far key is none.
        let _ = c.get("bind");
        assert!(!c
            .require("bond")
            .unwrap_err()
            .message
            .contains("did you mean"));
        assert!(!c
            .require("hostname")
            .unwrap_err()
            .message
            .contains("did you mean"));
    }
}
