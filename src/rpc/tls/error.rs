//! [`TlsError`]: everything that can go wrong while turning the TLS settings into a rustls
//! configuration, and which configuration key each failure is about.
//!
//! TLS problems are found once, at component start, never per connection: a source or sink
//! with a bad keystore, an unknown protocol name or filters that leave nothing enabled does not
//! start. Every variant therefore carries what the operator needs to fix the file: the store and
//! its path, the offending filter key, or the conversion command for a JKS store.
//!
//! [`TlsError::key`] maps each variant to the relative configuration key (`keystore`,
//! `truststore-type`, `include-cipher-suites`, ...), so `from_context` can turn it into a
//! [`ConfigError`](crate::config::ConfigError) that points at the right line of `flume.conf`.
//! Errors rustls raises while building a config (e.g. a key that does not fit its certificate)
//! are about the keystore; a root store that cannot build a verifier is about the truststore.

use std::path::PathBuf;

/// The command that turns a JKS keystore into PKCS#12, quoted in errors and docs.
pub const JKS_CONVERSION_HINT: &str =
    "keytool -importkeystore -srckeystore ks.jks -destkeystore ks.p12 -deststoretype PKCS12";

/// A TLS setup problem. [`TlsError::key`] names the configuration key it is about.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A keystore or truststore file could not be read.
    #[error("cannot read {what} '{path}': {source}")]
    Read {
        /// `keystore`, `keystore-key` or `truststore`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A JKS/JCEKS store was given; rustls cannot read Java's proprietary formats.
    #[error(
        "'{path}' is a {kind} keystore, which sluicegate cannot read; convert it to PKCS#12 with \
         `{hint}` (add -srcstorepass/-deststorepass as needed) and set {what}-type = PKCS12",
        hint = JKS_CONVERSION_HINT
    )]
    Jks {
        /// `keystore` or `truststore`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// `JKS` or `JCEKS`.
        kind: &'static str,
    },
    /// The store type setting is not one we know.
    #[error("unknown {what}-type '{value}': use PKCS12 or PEM")]
    UnknownStoreType {
        /// `keystore` or `truststore`.
        what: &'static str,
        /// What was configured.
        value: String,
    },
    /// The store's content is not usable.
    #[error("{what} '{path}': {message}")]
    BadStore {
        /// `keystore`, `keystore-key` or `truststore`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// A protocol/cipher filter left nothing enabled, or named something unknown.
    #[error("{message}")]
    Filter {
        /// The filter key (`include-protocols`, ...).
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the configuration (e.g. the key does not match the certificate).
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    /// The root store could not build a verifier (e.g. it is empty).
    #[error("cannot verify server certificates with these roots: {0}")]
    Verifier(String),
}

impl TlsError {
    /// The configuration key the error is about (relative, e.g. `keystore`).
    pub fn key(&self) -> &'static str {
        match self {
            TlsError::Read { what, .. }
            | TlsError::Jks { what, .. }
            | TlsError::BadStore { what, .. } => what,
            TlsError::UnknownStoreType { what, .. } => {
                if *what == "keystore" {
                    "keystore-type"
                } else {
                    "truststore-type"
                }
            }
            TlsError::Filter { key, .. } => key,
            TlsError::Rustls(_) => "keystore",
            TlsError::Verifier(_) => "truststore",
        }
    }
}
