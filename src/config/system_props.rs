//! The agent-wide settings Flume takes as Java system properties (`-Dname=value` on the
//! `flume-ng` command line), as one [`SystemProps`] value handed down to every component that
//! reads one.
//!
//! Component settings live in a per-component [`Context`](super::Context); a system property is
//! global instead: the same value for every source, sink and tool of the process. The ones
//! sluicegate reads are
//!
//! * `flume.root.logger` — the log level (`agent::cli::log_filter`);
//! * the TLS globals of [`GLOBAL_SSL_SETTINGS`] (`javax.net.ssl.keyStore`,
//!   `flume.ssl.include.protocols`, ...), the fallback for a source's or sink's missing
//!   `keystore*`/`truststore*`/filter keys (`rpc::tls`).
//!
//! **Precedence** (as in Flume's `SSLUtil.initGlobalSSLParameters`): a property that is set wins;
//! an unset TLS global is filled from its `FLUME_SSL_*` environment variable by
//! [`SystemProps::with_env`] (or [`SystemProps::with_env_lookup`], which takes the lookup as a
//! function so tests need not touch the process environment). A component key beats both.
//!
//! The value is plain data: built once at start (`agent::cli::parse_defines`), cloned freely,
//! never changed while components run. Properties are kept sorted by name, so iteration order
//! is stable.

use std::collections::BTreeMap;

/// The Java system properties (`-Dname=value`) the agent was started with, plus the
/// `FLUME_SSL_*` environment fallbacks Flume's `SSLUtil.initGlobalSSLParameters` applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemProps {
    props: BTreeMap<String, String>,
}

/// `(system property, environment variable)` pairs, as in Flume's `SSLUtil`.
pub const GLOBAL_SSL_SETTINGS: [(&str, &str); 10] = [
    ("javax.net.ssl.keyStore", "FLUME_SSL_KEYSTORE_PATH"),
    (
        "javax.net.ssl.keyStorePassword",
        "FLUME_SSL_KEYSTORE_PASSWORD",
    ),
    ("javax.net.ssl.keyStoreType", "FLUME_SSL_KEYSTORE_TYPE"),
    ("javax.net.ssl.trustStore", "FLUME_SSL_TRUSTSTORE_PATH"),
    (
        "javax.net.ssl.trustStorePassword",
        "FLUME_SSL_TRUSTSTORE_PASSWORD",
    ),
    ("javax.net.ssl.trustStoreType", "FLUME_SSL_TRUSTSTORE_TYPE"),
    ("flume.ssl.include.protocols", "FLUME_SSL_INCLUDE_PROTOCOLS"),
    ("flume.ssl.exclude.protocols", "FLUME_SSL_EXCLUDE_PROTOCOLS"),
    (
        "flume.ssl.include.cipherSuites",
        "FLUME_SSL_INCLUDE_CIPHERSUITES",
    ),
    (
        "flume.ssl.exclude.cipherSuites",
        "FLUME_SSL_EXCLUDE_CIPHERSUITES",
    ),
];

impl SystemProps {
    /// No properties.
    pub fn new() -> SystemProps {
        SystemProps::default()
    }

    /// Properties from `(name, value)` pairs (e.g. parsed `-D` options).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> SystemProps {
        SystemProps {
            props: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Sets one property.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.props.insert(name.into(), value.into());
    }

    /// One property.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.props.get(name).map(String::as_str)
    }

    /// Every property, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.props.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Fills every unset global SSL property from its `FLUME_SSL_*` variable as looked up by
    /// `env` (a property that is set wins, as in Flume).
    pub fn with_env_lookup(mut self, env: impl Fn(&str) -> Option<String>) -> SystemProps {
        for (prop, var) in GLOBAL_SSL_SETTINGS {
            if !self.props.contains_key(prop) {
                if let Some(v) = env(var) {
                    self.props.insert(prop.to_string(), v);
                }
            }
        }
        self
    }

    /// [`with_env_lookup`](Self::with_env_lookup) over the process environment.
    pub fn with_env(self) -> SystemProps {
        self.with_env_lookup(|k| std::env::var(k).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_fallback_does_not_override_properties() {
        let p = SystemProps::from_pairs([("javax.net.ssl.keyStore", "/from/prop")])
            .with_env_lookup(|k| match k {
                "FLUME_SSL_KEYSTORE_PATH" => Some("/from/env".into()),
                "FLUME_SSL_KEYSTORE_PASSWORD" => Some("pw".into()),
                _ => None,
            });
        assert_eq!(p.get("javax.net.ssl.keyStore"), Some("/from/prop"));
        assert_eq!(p.get("javax.net.ssl.keyStorePassword"), Some("pw"));
        assert_eq!(p.get("javax.net.ssl.trustStore"), None);
    }

    #[test]
    fn only_tls_globals_come_from_the_environment() {
        let p = SystemProps::new().with_env_lookup(|k| Some(format!("env:{k}")));
        assert_eq!(p.iter().count(), GLOBAL_SSL_SETTINGS.len());
        assert_eq!(p.get("flume.root.logger"), None);
        assert_eq!(
            p.get("flume.ssl.exclude.cipherSuites"),
            Some("env:FLUME_SSL_EXCLUDE_CIPHERSUITES")
        );
        let names: Vec<&str> = p.iter().map(|(k, _)| k).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
    }
}
