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
//! * **Filters** ([`TlsFilters`]): `include-protocols`/`exclude-protocols` take Java protocol
//!   names; only `TLSv1.2` and `TLSv1.3` can ever be enabled. `include-cipher-suites`/
//!   `exclude-cipher-suites` take the Java/IANA names. enabled = supported ∩ include (when
//!   given) − exclude; an empty result is an error.
//! * **Globals**: a missing `keystore*`/`truststore*`/filter key falls back to the Java system
//!   properties Flume reads (`javax.net.ssl.keyStore`, `flume.ssl.include.protocols`, ...),
//!   passed in as [`SystemProps`](crate::config::SystemProps), which in turn fall back to the `FLUME_SSL_*` environment
//!   variables ([`SystemProps::with_env`](crate::config::SystemProps::with_env)).
//!
//! | file | job |
//! |---|---|
//! | [`error`] | [`TlsError`] and the configuration key each failure is about |
//! | [`filters`] | protocol/cipher-suite filters → a restricted ring provider and the enabled versions |
//! | [`store`] | reading keystores and truststores (PKCS#12, PEM; JKS detected and refused) |
//! | [`server`] | [`TlsServerSettings`]: the source's `ServerConfig` |
//! | [`client`] | [`TlsClientSettings`], [`TrustMode`]: the sink's `ClientConfig` |
//! | `verifiers` | the chain-only (no hostname check) and trust-all certificate verifiers |
//!
//! Everything here runs once, when a component starts: a bad setting stops that component
//! with a [`ConfigError`](crate::config::ConfigError) naming the key (and file and line), never a failed handshake later.
//! The built configurations are immutable and shared by every connection.
//!
//! See `docs/tls.md` for the user-facing description.

pub mod client;
pub mod error;
pub mod filters;
pub mod server;
pub mod store;
mod verifiers;

pub use client::{TlsClientSettings, TrustMode};
pub use error::TlsError;
pub use filters::{java_suite_name, protocol_name, split_list, TlsFilters};
pub use server::TlsServerSettings;
pub use store::{load_keystore, load_truststore, StoreSource, StoreType, JKS_CONVERSION_HINT};

use crate::config::Context;

/// Marks the TLS keys as read even when `ssl` is off, so they are not reported as unknown.
fn touch(ctx: &Context, keys: &[&str]) {
    for k in keys {
        let _ = ctx.get(k);
    }
}
