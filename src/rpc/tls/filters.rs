//! Protocol and cipher-suite filters: which TLS versions and suites a source or sink enables,
//! from Flume's `include-protocols`/`exclude-protocols`/`include-cipher-suites`/
//! `exclude-cipher-suites` keys (with the `flume.ssl.*` system properties as fallback).
//!
//! **Names.** Protocols use Java names. Only `TLSv1.2` and `TLSv1.3` can ever be enabled:
//! `SSLv2Hello`, `SSLv2`, `SSLv3`, `TLSv1` and `TLSv1.1` are accepted as names (a Flume config
//! that excludes them stays valid) but rustls does not implement them, so they are never
//! offered; any other name is an error. Cipher suites use the Java/IANA names
//! (`TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`, `TLS_AES_128_GCM_SHA256`); rustls' own `TLS13_`
//! spelling is accepted too, case does not matter, and a well-formed name rustls/ring does not
//! implement is logged and ignored. Lists split on spaces and commas ([`split_list`]).
//!
//! **Rule.** enabled = supported ∩ include (when given) − exclude, for versions and suites
//! alike. An empty result is an error naming the key to change; so is a combination where no
//! enabled suite belongs to any enabled version. The result is a ring `CryptoProvider` holding
//! only the enabled suites plus the enabled versions, which both the server and the client
//! configuration are built from.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{SupportedCipherSuite, SupportedProtocolVersion};

use super::error::TlsError;
use crate::config::{Context, SystemProps};

/// Protocol versions rustls implements, by Java name.
const PROTOCOLS: [(&str, &SupportedProtocolVersion); 2] = [
    ("TLSv1.2", &rustls::version::TLS12),
    ("TLSv1.3", &rustls::version::TLS13),
];
/// Java protocol names that are valid but never enabled.
const LEGACY_PROTOCOLS: [&str; 5] = ["SSLv2Hello", "SSLv2", "SSLv3", "TLSv1", "TLSv1.1"];

/// The four filter keys, marked as read by `from_context` even when `ssl` is off.
pub(super) const FILTER_KEYS: [&str; 4] = [
    "include-protocols",
    "exclude-protocols",
    "include-cipher-suites",
    "exclude-cipher-suites",
];

/// Protocol and cipher-suite filters (Java names; lists split on spaces and commas).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFilters {
    /// `include-protocols`: when non-empty, only these.
    pub include_protocols: Vec<String>,
    /// `exclude-protocols` (`SSLv3` is always excluded anyway).
    pub exclude_protocols: Vec<String>,
    /// `include-cipher-suites`: when non-empty, only these.
    pub include_cipher_suites: Vec<String>,
    /// `exclude-cipher-suites`.
    pub exclude_cipher_suites: Vec<String>,
}

/// Splits a Flume list setting (space-separated in component keys, comma-separated in globals).
pub fn split_list(v: &str) -> Vec<String> {
    v.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The Java/IANA name of a rustls suite (`TLS13_AES_128_GCM_SHA256` → `TLS_AES_128_GCM_SHA256`).
pub fn java_suite_name(suite: &SupportedCipherSuite) -> String {
    let raw = suite
        .suite()
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:?}", suite.suite()));
    match raw.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => raw,
    }
}

fn normalize_suite_name(name: &str) -> String {
    let up = name.trim().to_ascii_uppercase();
    match up.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => up,
    }
}

impl TlsFilters {
    /// Reads the four filter keys from `ctx`, falling back to the `flume.ssl.*` globals.
    pub fn from_context(ctx: &Context, props: &SystemProps) -> TlsFilters {
        let list = |key: &str, global: &str| {
            ctx.get(key)
                .or_else(|| props.get(global))
                .map(split_list)
                .unwrap_or_default()
        };
        TlsFilters {
            include_protocols: list("include-protocols", "flume.ssl.include.protocols"),
            exclude_protocols: list("exclude-protocols", "flume.ssl.exclude.protocols"),
            include_cipher_suites: list("include-cipher-suites", "flume.ssl.include.cipherSuites"),
            exclude_cipher_suites: list("exclude-cipher-suites", "flume.ssl.exclude.cipherSuites"),
        }
    }

    /// The enabled protocol versions: {TLSv1.2, TLSv1.3} ∩ include − exclude − SSLv3.
    pub fn protocol_versions(&self) -> Result<Vec<&'static SupportedProtocolVersion>, TlsError> {
        for (key, list) in [
            ("include-protocols", &self.include_protocols),
            ("exclude-protocols", &self.exclude_protocols),
        ] {
            for p in list {
                let known = PROTOCOLS.iter().any(|(n, _)| n.eq_ignore_ascii_case(p))
                    || LEGACY_PROTOCOLS.iter().any(|n| n.eq_ignore_ascii_case(p));
                if !known {
                    return Err(TlsError::Filter {
                        key,
                        message: format!(
                            "unknown protocol '{p}': use Java names TLSv1.2 and/or TLSv1.3"
                        ),
                    });
                }
            }
        }
        let enabled: Vec<_> = PROTOCOLS
            .iter()
            .filter(|(n, _)| {
                self.include_protocols.is_empty()
                    || self
                        .include_protocols
                        .iter()
                        .any(|p| p.eq_ignore_ascii_case(n))
            })
            .filter(|(n, _)| {
                !self
                    .exclude_protocols
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(n))
            })
            .map(|(_, v)| *v)
            .collect();
        if enabled.is_empty() {
            let key = if self.include_protocols.is_empty() {
                "exclude-protocols"
            } else {
                "include-protocols"
            };
            return Err(TlsError::Filter {
                key,
                message: format!(
                    "no TLS protocol left enabled (include = [{}], exclude = [{}]); sluicegate \
                     supports only TLSv1.2 and TLSv1.3 (SSLv3, TLSv1 and TLSv1.1 are never enabled)",
                    self.include_protocols.join(" "),
                    self.exclude_protocols.join(" ")
                ),
            });
        }
        Ok(enabled)
    }

    /// The enabled cipher suites of `provider`, by Java/IANA name.
    pub fn cipher_suites(
        &self,
        provider: &CryptoProvider,
    ) -> Result<Vec<SupportedCipherSuite>, TlsError> {
        let names: Vec<String> = provider.cipher_suites.iter().map(java_suite_name).collect();
        let include: Vec<String> = self
            .include_cipher_suites
            .iter()
            .map(|s| normalize_suite_name(s))
            .collect();
        let exclude: Vec<String> = self
            .exclude_cipher_suites
            .iter()
            .map(|s| normalize_suite_name(s))
            .collect();
        for s in include.iter().chain(exclude.iter()) {
            if !names.contains(s) {
                tracing::warn!(
                    suite = %s,
                    "TLS cipher suite is not implemented by sluicegate (rustls/ring) and is ignored"
                );
            }
        }
        let enabled: Vec<SupportedCipherSuite> = provider
            .cipher_suites
            .iter()
            .zip(names.iter())
            .filter(|(_, n)| include.is_empty() || include.contains(n))
            .filter(|(_, n)| !exclude.contains(n))
            .map(|(s, _)| *s)
            .collect();
        if enabled.is_empty() {
            let key = if include.is_empty() {
                "exclude-cipher-suites"
            } else {
                "include-cipher-suites"
            };
            return Err(TlsError::Filter {
                key,
                message: format!(
                    "no TLS cipher suite left enabled (include = [{}], exclude = [{}]); \
                     supported: {}",
                    self.include_cipher_suites.join(" "),
                    self.exclude_cipher_suites.join(" "),
                    names.join(" ")
                ),
            });
        }
        Ok(enabled)
    }

    /// A ring provider restricted to the enabled suites, and the enabled versions, checked for
    /// consistency (at least one suite per enabled version).
    pub(super) fn provider_and_versions(
        &self,
    ) -> Result<(Arc<CryptoProvider>, Vec<&'static SupportedProtocolVersion>), TlsError> {
        let mut provider = rustls::crypto::ring::default_provider();
        let suites = self.cipher_suites(&provider)?;
        let versions = self.protocol_versions()?;
        let usable: Vec<_> = versions
            .iter()
            .copied()
            .filter(|v| suites.iter().any(|s| s.version() == *v))
            .collect();
        if usable.is_empty() {
            return Err(TlsError::Filter {
                key: "include-cipher-suites",
                message: format!(
                    "no enabled cipher suite works with the enabled protocols ({}): suites [{}]",
                    versions
                        .iter()
                        .map(|v| protocol_name(v))
                        .collect::<Vec<_>>()
                        .join(" "),
                    suites
                        .iter()
                        .map(java_suite_name)
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            });
        }
        provider.cipher_suites = suites;
        Ok((Arc::new(provider), usable))
    }
}

/// Java name of a rustls protocol version.
pub fn protocol_name(v: &SupportedProtocolVersion) -> &'static str {
    PROTOCOLS
        .iter()
        .find(|(_, p)| p.version == v.version)
        .map(|(n, _)| *n)
        .unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_filters() {
        let f = TlsFilters::default();
        assert_eq!(f.protocol_versions().unwrap().len(), 2);
        let f = TlsFilters {
            include_protocols: split_list("TLSv1.3"),
            ..TlsFilters::default()
        };
        let v = f.protocol_versions().unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(protocol_name(v[0]), "TLSv1.3");
        let f = TlsFilters {
            include_protocols: split_list("TLSv1 TLSv1.1"),
            ..TlsFilters::default()
        };
        let e = f.protocol_versions().unwrap_err();
        assert_eq!(e.key(), "include-protocols");
        assert!(e.to_string().contains("never enabled"), "{e}");
        let f = TlsFilters {
            exclude_protocols: split_list("SSLv3,TLSv1.2 TLSv1.3"),
            ..TlsFilters::default()
        };
        assert_eq!(
            f.protocol_versions().unwrap_err().key(),
            "exclude-protocols"
        );
        let f = TlsFilters {
            include_protocols: split_list("TLSv9"),
            ..TlsFilters::default()
        };
        assert!(f
            .protocol_versions()
            .unwrap_err()
            .to_string()
            .contains("TLSv9"));
    }

    #[test]
    fn cipher_suite_names_map_to_rustls() {
        let p = rustls::crypto::ring::default_provider();
        let names: Vec<String> = p.cipher_suites.iter().map(java_suite_name).collect();
        assert!(
            names.contains(&"TLS_AES_128_GCM_SHA256".to_string()),
            "{names:?}"
        );
        assert!(names.contains(&"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_string()));
        let f = TlsFilters {
            include_cipher_suites: split_list(
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 tls13_aes_256_gcm_sha384",
            ),
            ..TlsFilters::default()
        };
        let s: Vec<String> = f
            .cipher_suites(&p)
            .unwrap()
            .iter()
            .map(java_suite_name)
            .collect();
        assert_eq!(s.len(), 2, "{s:?}");
        assert!(s.contains(&"TLS_AES_256_GCM_SHA384".to_string()));
        let f = TlsFilters {
            include_cipher_suites: split_list("TLS_RSA_WITH_AES_128_CBC_SHA"),
            ..TlsFilters::default()
        };
        let e = f.cipher_suites(&p).unwrap_err();
        assert_eq!(e.key(), "include-cipher-suites");
        assert!(
            e.to_string().contains("no TLS cipher suite left enabled"),
            "{e}"
        );
        // TLS 1.3 only, but only TLS 1.2 suites: inconsistent.
        let f = TlsFilters {
            include_protocols: split_list("TLSv1.3"),
            include_cipher_suites: split_list("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
            ..TlsFilters::default()
        };
        assert!(f.provider_and_versions().is_err());
    }
}
