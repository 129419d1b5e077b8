//! The Avro sink's side of TLS: [`TlsClientSettings`], a rustls `ClientConfig` built from
//! `ssl`, `trust-all-certs`, `truststore`, `truststore-password`, `truststore-type`,
//! `verify-hostname` and the filter keys.
//!
//! **Trust** ([`TrustMode`]): `trust-all-certs = true` accepts any server certificate; else a
//! `truststore` (or the `javax.net.ssl.trustStore*` system properties) lists the trusted
//! certificates; else the Mozilla root set (`webpki-roots`, the pure-Rust counterpart of the
//! JVM's `cacerts`) is used.
//!
//! **Host names.** Flume's client never checks the name in the server's certificate and sends
//! no SNI (it creates its `SSLEngine` without a peer host). That is the default here too:
//! the chain is still verified against the trusted roots, but a certificate for another name
//! is accepted and no SNI is sent. `verify-hostname = true` turns on the standard check (and
//! SNI). [`TlsClientSettings::server_name`] gives the name to hand to the connector; with the
//! check off, a host that is no valid DNS name or IP literal gets a placeholder that is neither
//! sent nor checked.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};

use super::error::TlsError;
use super::filters::{TlsFilters, FILTER_KEYS};
use super::store::{load_truststore, StoreSource, StoreType};
use super::touch;
use super::verifiers::{ChainOnlyVerifier, TrustAllVerifier};
use crate::config::{ConfigError, Context, SystemProps};

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
