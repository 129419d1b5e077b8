//! Component configuration as Flume hands it over: a [`Context`] of `key = value` pairs for one
//! component (`a1.sources.r1.*` with the prefix removed), each remembering the file and line it
//! came from so every error can point at it.
//!
//! The process-wide `-D` settings (Java system properties, with the `FLUME_SSL_*` environment
//! fallbacks) are a [`SystemProps`] ([`system_props`]), handed down next to the `Context`s.
//!
//! This module sits at the bottom of the crate: sources, sinks and channels read their settings
//! from a `Context`; the agent's `flume.conf` loader builds them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    declared_at: Origin,
    entries: BTreeMap<String, Entry>,
    used: Arc<Mutex<std::collections::BTreeSet<String>>>,
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

    fn mark_used(&self, key: &str) {
        // Poison (both): the set of keys read, used only for "unknown key" warnings.
        self.used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string());
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
        for (k, e) in &self.entries {
            if let Some(rest) = k.strip_prefix(&p) {
                c.entries.insert(rest.to_string(), e.clone());
            }
        }
        // Reads through the sub-context mark keys relative to it; record the parent keys too.
        for k in c.entries.keys() {
            self.mark_used(&format!("{p}{k}"));
        }
        c
    }

    /// All relative keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// `(key, value)` pairs, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .map(|(k, e)| (k.as_str(), e.value.as_str()))
    }

    /// Keys never read by any getter (candidates for an "unknown key" warning).
    pub fn unused_keys(&self) -> Vec<String> {
        let used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        self.entries
            .keys()
            .filter(|k| !used.contains(*k))
            .cloned()
            .collect()
    }

    /// Where `key` was set (or where the component was declared when it is not).
    pub fn origin(&self, key: &str) -> Origin {
        self.entries
            .get(key)
            .map(|e| e.origin.clone())
            .unwrap_or_else(|| self.declared_at.clone())
    }

    /// An error about `key`, carrying its file and line.
    pub fn error(&self, key: &str, message: &str) -> ConfigError {
        let o = self.origin(key);
        ConfigError {
            file: o.file,
            line: o.line,
            key: self.full_key(key),
            message: message.to_string(),
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
}
