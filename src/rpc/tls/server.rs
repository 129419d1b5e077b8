//! The Avro source's side of TLS: [`TlsServerSettings`], a rustls `ServerConfig` built from
//! `ssl`, `keystore`, `keystore-password`, `keystore-type`, `keystore-key` and the filter keys.
//!
//! As in Flume, the server presents one certificate chain and asks for no client certificate.
//! A missing `keystore*` key falls back to the `javax.net.ssl.keyStore*` system property (and
//! from there to `FLUME_SSL_KEYSTORE_*`, see [`SystemProps`]); `ssl = true` without any
//! keystore is a configuration error. With `ssl` off the TLS keys are still marked as read,
//! so a config that sets them for later is not reported as having unknown keys.
//!
//! The settings are built once per source start and shared by every connection (the
//! `ServerConfig` sits behind an `Arc`; [`TlsServerSettings::acceptor`] is cheap).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::ServerConfig;

use super::error::TlsError;
use super::filters::{TlsFilters, FILTER_KEYS};
use super::store::{load_keystore, StoreSource, StoreType};
use super::touch;
use crate::config::{ConfigError, Context, SystemProps};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
