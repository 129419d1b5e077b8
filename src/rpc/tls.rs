//! TLS for the Avro RPC transport (`ssl = true`), built on rustls 0.23 with the `ring` provider,
//! configured the way Flume configures its `SSLEngine`s (spec §1.7, §4.1, §4.3).
//!
//! * **Server** ([`TlsServerSettings`]): certificate chain and key from `keystore` — PKCS#12
//!   (`.p12`/`.pfx`, with `keystore-password`) or PEM (chain and key in one file, or the key in
//!   `keystore-key`). JKS cannot be read: it is refused with the `keytool` command that converts
//!   it. No client authentication, as in Flume.
//! * **Client** ([`TlsClientSettings`]): `trust-all-certs`, or `truststore` (PKCS#12 or PEM),
//!   or the Mozilla root set (`webpki-roots`, the pure-Rust counterpart of the JVM's `cacerts`).
//!   Hostname verification is **off by default** (Flume's client never checks the name); with
//!   `verify-hostname = true` the certificate must also name the host that was dialled. With it
//!   off, the chain is still verified against the trusted roots and SNI is not sent (Java sends
//!   none either, as Flume creates its `SSLEngine` without a peer host).
//! * **Filters**: `include-protocols`/`exclude-protocols` take Java protocol names; only
//!   `TLSv1.2` and `TLSv1.3` can ever be enabled (`SSLv3`, `TLSv1`, `TLSv1.1` are not implemented
//!   by rustls and are never offered). `include-cipher-suites`/`exclude-cipher-suites` take the
//!   Java/IANA names (`TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`, `TLS_AES_128_GCM_SHA256`, ...).
//!   enabled = supported ∩ include (when given) − exclude; an empty result is an error.
//! * **Globals**: a missing `keystore*`/`truststore*`/filter key falls back to the Java system
//!   properties Flume reads (`javax.net.ssl.keyStore`, `flume.ssl.include.protocols`, ...),
//!   passed in as [`SystemProps`], which in turn fall back to the `FLUME_SSL_*` environment
//!   variables ([`SystemProps::with_env`]).
//!
//! See `docs/tls.md` for the user-facing description.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme, SupportedCipherSuite, SupportedProtocolVersion,
};

use crate::config::{ConfigError, Context, SystemProps};

/// The command that turns a JKS keystore into PKCS#12, quoted in errors and docs.
pub const JKS_CONVERSION_HINT: &str =
    "keytool -importkeystore -srckeystore ks.jks -destkeystore ks.p12 -deststoretype PKCS12";

/// The magic number that starts every JKS file.
const JKS_MAGIC: [u8; 4] = [0xFE, 0xED, 0xFE, 0xED];
/// The magic number of a JCEKS file.
const JCEKS_MAGIC: [u8; 4] = [0xCE, 0xCE, 0xCE, 0xCE];

/// Protocol versions rustls implements, by Java name.
const PROTOCOLS: [(&str, &SupportedProtocolVersion); 2] = [
    ("TLSv1.2", &rustls::version::TLS12),
    ("TLSv1.3", &rustls::version::TLS13),
];
/// Java protocol names that are valid but never enabled.
const LEGACY_PROTOCOLS: [&str; 5] = ["SSLv2Hello", "SSLv2", "SSLv3", "TLSv1", "TLSv1.1"];

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

/// The format of a keystore or truststore file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreType {
    /// PKCS#12 (`.p12`, `.pfx`; Java's default keystore type since Java 9).
    Pkcs12,
    /// PEM text: certificates, and for a keystore a PKCS#8/PKCS#1/SEC1 private key.
    Pem,
}

impl StoreType {
    /// Parses a `*-type` value. `JKS` and `JCEKS` return `Ok(None)`: the file is sniffed and a
    /// real JKS file is refused with the conversion command (many PKCS#12 files are configured
    /// as `JKS`, which Java accepts).
    pub fn parse(what: &'static str, value: &str) -> Result<Option<StoreType>, TlsError> {
        match value.trim().to_ascii_uppercase().as_str() {
            "PKCS12" | "P12" | "PFX" | "PKCS#12" => Ok(Some(StoreType::Pkcs12)),
            "PEM" => Ok(Some(StoreType::Pem)),
            "JKS" | "JCEKS" | "" => Ok(None),
            _ => Err(TlsError::UnknownStoreType {
                what,
                value: value.to_string(),
            }),
        }
    }
}

/// Where a keystore or truststore comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSource {
    /// The file.
    pub path: PathBuf,
    /// PKCS#12 password (empty when unset).
    pub password: Option<String>,
    /// The format; `None` = detect from the content.
    pub store_type: Option<StoreType>,
    /// For a PEM keystore: a separate file holding the private key.
    pub key_path: Option<PathBuf>,
}

impl StoreSource {
    /// A store at `path`, format detected, no password.
    pub fn new(path: impl Into<PathBuf>) -> StoreSource {
        StoreSource {
            path: path.into(),
            password: None,
            store_type: None,
            key_path: None,
        }
    }

    /// With a password.
    pub fn password(mut self, password: impl Into<String>) -> StoreSource {
        self.password = Some(password.into());
        self
    }

    /// With an explicit format.
    pub fn store_type(mut self, t: StoreType) -> StoreSource {
        self.store_type = Some(t);
        self
    }

    /// With a separate PEM key file.
    pub fn key_path(mut self, p: impl Into<PathBuf>) -> StoreSource {
        self.key_path = Some(p.into());
        self
    }
}

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

/// Marks the TLS keys as read even when `ssl` is off, so they are not reported as unknown.
fn touch(ctx: &Context, keys: &[&str]) {
    for k in keys {
        let _ = ctx.get(k);
    }
}

const FILTER_KEYS: [&str; 4] = [
    "include-protocols",
    "exclude-protocols",
    "include-cipher-suites",
    "exclude-cipher-suites",
];

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
    fn provider_and_versions(
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

// ------------------------------------------------------------------------------------------
// Reading stores
// ------------------------------------------------------------------------------------------

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Decides the format of `data`: the configured one, else by content. JKS/JCEKS → error.
fn detect_type(
    what: &'static str,
    path: &Path,
    data: &[u8],
    configured: Option<StoreType>,
) -> Result<StoreType, TlsError> {
    if data.len() >= 4 && data[..4] == JKS_MAGIC {
        return Err(TlsError::Jks {
            what,
            path: path.to_path_buf(),
            kind: "JKS",
        });
    }
    if data.len() >= 4 && data[..4] == JCEKS_MAGIC {
        return Err(TlsError::Jks {
            what,
            path: path.to_path_buf(),
            kind: "JCEKS",
        });
    }
    if let Some(t) = configured {
        return Ok(t);
    }
    let looks_pem = data.windows(11).any(|w| w == b"-----BEGIN ");
    if looks_pem {
        Ok(StoreType::Pem)
    } else if data.first() == Some(&0x30) {
        Ok(StoreType::Pkcs12)
    } else {
        Err(TlsError::BadStore {
            what,
            path: path.to_path_buf(),
            message: "neither PEM nor PKCS#12 (DER); set the type to PKCS12 or PEM".into(),
        })
    }
}

fn p12_error(what: &'static str, path: &Path, e: p12_keystore::error::Error) -> TlsError {
    let hint = match e {
        p12_keystore::error::Error::MacError(_) => " (wrong password?)",
        _ => "",
    };
    TlsError::BadStore {
        what,
        path: path.to_path_buf(),
        message: format!("cannot read PKCS#12: {e}{hint}"),
    }
}

struct PemItems {
    certs: Vec<CertificateDer<'static>>,
    keys: Vec<PrivateKeyDer<'static>>,
    encrypted_key: bool,
}

fn read_pem(what: &'static str, path: &Path, data: &[u8]) -> Result<PemItems, TlsError> {
    let mut items = PemItems {
        certs: Vec::new(),
        keys: Vec::new(),
        encrypted_key: data.windows(19).any(|w| w == b"ENCRYPTED PRIVATE K")
            || data.windows(14).any(|w| w == b"Proc-Type: 4,E"),
    };
    let mut rd = data;
    for item in rustls_pemfile::read_all(&mut rd) {
        let item = item.map_err(|e| TlsError::BadStore {
            what,
            path: path.to_path_buf(),
            message: format!("bad PEM: {e}"),
        })?;
        match item {
            rustls_pemfile::Item::X509Certificate(c) => items.certs.push(c),
            rustls_pemfile::Item::Pkcs1Key(k) => items.keys.push(PrivateKeyDer::Pkcs1(k)),
            rustls_pemfile::Item::Pkcs8Key(k) => items.keys.push(PrivateKeyDer::Pkcs8(k)),
            rustls_pemfile::Item::Sec1Key(k) => items.keys.push(PrivateKeyDer::Sec1(k)),
            _ => {}
        }
    }
    Ok(items)
}

/// Loads a server certificate chain and private key.
pub fn load_keystore(
    src: &StoreSource,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let what = "keystore";
    let data = read_file(what, &src.path)?;
    match detect_type(what, &src.path, &data, src.store_type)? {
        StoreType::Pkcs12 => {
            let pw = src.password.as_deref().unwrap_or("");
            let archive = p12_keystore::Pkcs12Archive::from_pkcs12(&data, pw)
                .map_err(|e| p12_error(what, &src.path, e))?;
            let key = archive.keys.first().ok_or_else(|| TlsError::BadStore {
                what,
                path: src.path.clone(),
                message: "PKCS#12 file holds no private key (is it a truststore?)".into(),
            })?;
            if archive.keys.len() > 1 {
                tracing::warn!(path = %src.path.display(), "PKCS#12 keystore holds several keys; using the first");
            }
            // The leaf is the certificate sharing the key's localKeyId; the rest is the chain.
            let leaf_idx = key
                .local_key_id
                .as_ref()
                .and_then(|id| {
                    archive.certs.iter().position(|c| {
                        c.local_key_id
                            .as_deref()
                            .is_some_and(|cid| cid == id.0.as_slice())
                    })
                })
                .or(if archive.certs.len() == 1 {
                    Some(0)
                } else {
                    None
                })
                .ok_or_else(|| TlsError::BadStore {
                    what,
                    path: src.path.clone(),
                    message: "PKCS#12 file has no certificate for its private key".into(),
                })?;
            let mut chain = vec![CertificateDer::from(
                archive.certs[leaf_idx].cert.as_der().to_vec(),
            )];
            for (i, c) in archive.certs.iter().enumerate() {
                if i != leaf_idx {
                    chain.push(CertificateDer::from(c.cert.as_der().to_vec()));
                }
            }
            let key = PrivateKeyDer::Pkcs8(key.key.as_der().to_vec().into());
            Ok((chain, key))
        }
        StoreType::Pem => {
            let mut items = read_pem(what, &src.path, &data)?;
            let mut key_origin = src.path.clone();
            let mut key_what = what;
            if let Some(kp) = &src.key_path {
                let kdata = read_file("keystore-key", kp)?;
                let k = read_pem("keystore-key", kp, &kdata)?;
                items.keys = k.keys;
                items.encrypted_key = k.encrypted_key;
                key_origin = kp.clone();
                key_what = "keystore-key";
            }
            if items.certs.is_empty() {
                return Err(TlsError::BadStore {
                    what,
                    path: src.path.clone(),
                    message: "PEM keystore holds no CERTIFICATE".into(),
                });
            }
            let key = match items.keys.into_iter().next() {
                Some(k) => k,
                None if items.encrypted_key => {
                    return Err(TlsError::BadStore {
                        what: key_what,
                        path: key_origin,
                        message: "encrypted PEM private keys are not supported: decrypt with \
                                  `openssl pkcs8 -in key.pem -out plain.pem` or use a PKCS#12 \
                                  keystore with keystore-password"
                            .into(),
                    })
                }
                None => {
                    return Err(TlsError::BadStore {
                        what: key_what,
                        path: key_origin,
                        message: "no PRIVATE KEY found: put it in the keystore PEM after the \
                                  certificates, or name its file in keystore-key"
                            .into(),
                    })
                }
            };
            Ok((items.certs, key))
        }
    }
}

/// Loads the trusted certificates of a truststore (every certificate in it is trusted).
pub fn load_truststore(src: &StoreSource) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let what = "truststore";
    let data = read_file(what, &src.path)?;
    let certs: Vec<CertificateDer<'static>> =
        match detect_type(what, &src.path, &data, src.store_type)? {
            StoreType::Pkcs12 => {
                let pw = src.password.as_deref().unwrap_or("");
                let archive = p12_keystore::Pkcs12Archive::from_pkcs12(&data, pw)
                    .map_err(|e| p12_error(what, &src.path, e))?;
                archive
                    .certs
                    .iter()
                    .map(|c| CertificateDer::from(c.cert.as_der().to_vec()))
                    .collect()
            }
            StoreType::Pem => read_pem(what, &src.path, &data)?.certs,
        };
    if certs.is_empty() {
        return Err(TlsError::BadStore {
            what,
            path: src.path.clone(),
            message: "truststore holds no certificate".into(),
        });
    }
    Ok(certs)
}

// ------------------------------------------------------------------------------------------
// Server
// ------------------------------------------------------------------------------------------

/// A ready server TLS configuration (no client authentication).
#[derive(Clone)]
pub struct TlsServerSettings {
    config: Arc<ServerConfig>,
}

impl fmt::Debug for TlsServerSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServerSettings").finish_non_exhaustive()
    }
}

impl TlsServerSettings {
    /// Builds the configuration from a keystore and filters.
    pub fn new(keystore: &StoreSource, filters: &TlsFilters) -> Result<Self, TlsError> {
        let (chain, key) = load_keystore(keystore)?;
        let (provider, versions) = filters.provider_and_versions()?;
        let config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::BadStore {
                what: "keystore",
                path: keystore.path.clone(),
                message: format!("the private key does not fit the certificate: {e}"),
            })?;
        Ok(TlsServerSettings {
            config: Arc::new(config),
        })
    }

    /// Reads `ssl`, `keystore`, `keystore-password`, `keystore-type`, `keystore-key` and the
    /// filter keys (with the `javax.net.ssl.keyStore*` / `flume.ssl.*` globals as fallback).
    /// `Ok(None)` when `ssl` is not `true`.
    pub fn from_context(
        ctx: &Context,
        props: &SystemProps,
    ) -> Result<Option<TlsServerSettings>, ConfigError> {
        if !ctx.get_bool("ssl", false) {
            touch(
                ctx,
                &[
                    "keystore",
                    "keystore-password",
                    "keystore-type",
                    "keystore-key",
                ],
            );
            touch(ctx, &FILTER_KEYS);
            return Ok(None);
        }
        let path = ctx
            .get("keystore")
            .or_else(|| props.get("javax.net.ssl.keyStore"))
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                ctx.error(
                    "keystore",
                    "ssl = true needs a keystore (PKCS#12 or PEM); set keystore, or the global \
                     javax.net.ssl.keyStore / FLUME_SSL_KEYSTORE_PATH",
                )
            })?;
        let mut src = StoreSource::new(path.trim());
        src.password = ctx
            .get("keystore-password")
            .or_else(|| props.get("javax.net.ssl.keyStorePassword"))
            .map(str::to_string);
        if let Some(t) = ctx
            .get("keystore-type")
            .or_else(|| props.get("javax.net.ssl.keyStoreType"))
        {
            src.store_type = StoreType::parse("keystore", t)
                .map_err(|e| ctx.error("keystore-type", &e.to_string()))?;
        }
        src.key_path = ctx.get("keystore-key").map(|s| PathBuf::from(s.trim()));
        let filters = TlsFilters::from_context(ctx, props);
        TlsServerSettings::new(&src, &filters)
            .map(Some)
            .map_err(|e| ctx.error(e.key(), &e.to_string()))
    }

    /// The rustls configuration.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }

    /// A tokio acceptor.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }
}

// ------------------------------------------------------------------------------------------
// Client
// ------------------------------------------------------------------------------------------

/// Which server certificates the client accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustMode {
    /// `trust-all-certs = true`: any certificate (no authentication of the server at all).
    TrustAll,
    /// `truststore`: certificates chaining to one in this store.
    Store(StoreSource),
    /// Neither: the Mozilla root program's CAs (`webpki-roots`).
    PlatformRoots,
}

/// A ready client TLS configuration.
#[derive(Clone)]
pub struct TlsClientSettings {
    config: Arc<ClientConfig>,
    verify_hostname: bool,
}

impl fmt::Debug for TlsClientSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClientSettings")
            .field("verify_hostname", &self.verify_hostname)
            .finish_non_exhaustive()
    }
}

impl TlsClientSettings {
    /// Builds the configuration. With `verify_hostname` false (Flume's behaviour) the chain is
    /// still checked against the roots, but the name in the certificate is not, and no SNI is
    /// sent.
    pub fn new(
        trust: &TrustMode,
        verify_hostname: bool,
        filters: &TlsFilters,
    ) -> Result<Self, TlsError> {
        let (provider, versions) = filters.provider_and_versions()?;
        let verifier: Arc<dyn ServerCertVerifier> = match trust {
            TrustMode::TrustAll => Arc::new(TrustAllVerifier {
                provider: provider.clone(),
            }),
            TrustMode::Store(_) | TrustMode::PlatformRoots => {
                let mut roots = RootCertStore::empty();
                match trust {
                    TrustMode::Store(src) => {
                        for c in load_truststore(src)? {
                            roots.add(c).map_err(|e| TlsError::BadStore {
                                what: "truststore",
                                path: src.path.clone(),
                                message: format!("unusable trusted certificate: {e}"),
                            })?;
                        }
                    }
                    _ => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
                }
                let inner =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| TlsError::Verifier(e.to_string()))?;
                if verify_hostname {
                    inner
                } else {
                    Arc::new(ChainOnlyVerifier { inner })
                }
            }
        };
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.enable_sni = verify_hostname;
        Ok(TlsClientSettings {
            config: Arc::new(config),
            verify_hostname,
        })
    }

    /// Reads `ssl`, `trust-all-certs`, `truststore`, `truststore-password`, `truststore-type`,
    /// `verify-hostname` and the filter keys (globals as fallback). `Ok(None)` unless `ssl`.
    pub fn from_context(
        ctx: &Context,
        props: &SystemProps,
    ) -> Result<Option<TlsClientSettings>, ConfigError> {
        if !ctx.get_bool("ssl", false) {
            touch(
                ctx,
                &[
                    "trust-all-certs",
                    "truststore",
                    "truststore-password",
                    "truststore-type",
                    "verify-hostname",
                ],
            );
            touch(ctx, &FILTER_KEYS);
            return Ok(None);
        }
        let trust = if ctx.get_bool("trust-all-certs", false) {
            TrustMode::TrustAll
        } else if let Some(path) = ctx
            .get("truststore")
            .or_else(|| props.get("javax.net.ssl.trustStore"))
            .filter(|s| !s.trim().is_empty())
        {
            let mut src = StoreSource::new(path.trim());
            src.password = ctx
                .get("truststore-password")
                .or_else(|| props.get("javax.net.ssl.trustStorePassword"))
                .map(str::to_string);
            if let Some(t) = ctx
                .get("truststore-type")
                .or_else(|| props.get("javax.net.ssl.trustStoreType"))
            {
                src.store_type = StoreType::parse("truststore", t)
                    .map_err(|e| ctx.error("truststore-type", &e.to_string()))?;
            }
            TrustMode::Store(src)
        } else {
            TrustMode::PlatformRoots
        };
        let verify_hostname = ctx.get_bool("verify-hostname", false);
        let filters = TlsFilters::from_context(ctx, props);
        TlsClientSettings::new(&trust, verify_hostname, &filters)
            .map(Some)
            .map_err(|e| ctx.error(e.key(), &e.to_string()))
    }

    /// The rustls configuration.
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// Whether the certificate must name the host.
    pub fn verify_hostname(&self) -> bool {
        self.verify_hostname
    }

    /// A tokio connector.
    pub fn connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(self.config.clone())
    }

    /// The name to verify for `host` (an IP literal or a DNS name). When hostname verification
    /// is off, a host that is not a valid DNS name is replaced by a placeholder (it is neither
    /// sent nor checked).
    pub fn server_name(&self, host: &str) -> Result<ServerName<'static>, TlsError> {
        let h = host.trim().trim_start_matches('[').trim_end_matches(']');
        match ServerName::try_from(h.to_string()) {
            Ok(n) => Ok(n),
            Err(_) if !self.verify_hostname => Ok(ServerName::try_from("unverified.invalid")
                .map_err(|e| TlsError::Verifier(e.to_string()))?
                .to_owned()),
            Err(e) => Err(TlsError::Verifier(format!(
                "'{host}' is not a valid host name for TLS verification: {e}"
            ))),
        }
    }
}

/// Verifies the chain against the roots but accepts any name in the certificate.
#[derive(Debug)]
struct ChainOnlyVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnlyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain first and the name last, so a name error means the chain
        // itself was fine.
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `trust-all-certs = true`: accepts every certificate (the handshake signatures are still
/// checked against the presented key).
#[derive(Debug)]
struct TrustAllVerifier {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for TrustAllVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
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

    #[test]
    fn tls_keys_count_as_used_when_ssl_is_off() {
        let c = Context::from_pairs(
            "a1.sources.r1",
            [("keystore", "/x.p12"), ("exclude-protocols", "SSLv3")],
        );
        assert!(TlsServerSettings::from_context(&c, &SystemProps::new())
            .unwrap()
            .is_none());
        assert!(c.unused_keys().is_empty(), "{:?}", c.unused_keys());
    }

    #[test]
    fn store_type_names() {
        assert_eq!(
            StoreType::parse("keystore", "pkcs12").unwrap(),
            Some(StoreType::Pkcs12)
        );
        assert_eq!(
            StoreType::parse("keystore", "PEM").unwrap(),
            Some(StoreType::Pem)
        );
        assert_eq!(StoreType::parse("keystore", "JKS").unwrap(), None);
        let e = StoreType::parse("truststore", "BKS").unwrap_err();
        assert_eq!(e.key(), "truststore-type");
    }
}
