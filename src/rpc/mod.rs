//! The tokio transport for Flume's Avro RPC: everything between a TCP socket and the Netty
//! frame codec (`crate::wire`). The Avro source's server and the Avro sink's client are built on
//! it; this layer knows nothing about frames or Avro.
//!
//! | module | job |
//! |---|---|
//! | [`transport`] | [`ServerTransport`] (acceptor) / [`ClientTransport`] (connector): socket options, connect timeout, and the TLS/zlib stack in the configured [`LayerOrder`] (a server detects it per connection by default: [`ServerLayerOrder::Auto`]), yielding an [`RpcStream`] |
//! | [`zlib`] | [`ZlibStream`]: `compression-type = deflate` — one zlib stream per direction, `Z_SYNC_FLUSH` per flush, bomb-safe inflate |
//! | [`tls`] | rustls configs from Flume's `ssl`/`keystore*`/`truststore*`/filter keys and the `javax.net.ssl.*` / `FLUME_SSL_*` globals |
//! | [`client`] | the RPC clients (`default`, `default_loadbalance`, `default_failover`) the Avro sink uses |
//! | [`ipfilter`] | [`IpFilter`]: the source's `ipFilter`/`ipFilterRules` |
//! | [`server`] | [`RpcServer`]: the Avro RPC server (accept loop, one task per connection, handshake, ordered replies, limits, graceful shutdown) the Avro source runs on |
//!
//! Typical server use: `let t = ServerTransport::from_context(&ctx, &props)?;
//! let l = ServerTransport::bind(addr)?;` then per accepted `(tcp, peer)`, in its own task,
//! `let stream = t.accept(tcp, peer).await?;` and run the frame codec over `stream`, calling
//! `flush()` once per written frame (each flush is one zlib sync flush). Client:
//! `ClientTransport::from_context(&ctx, &props)?.connect(host, port).await?`.
//! See `docs/tls.md` for the settings.

pub mod client;
pub mod ipfilter;
pub mod server;
pub mod tls;
pub mod transport;
pub mod zlib;

pub use ipfilter::{IpFilter, IpFilterError, Verdict};
pub use server::{Outcome, Request, RequestHandler, RpcServer, ServerConfig, ServerHandle};
pub use tls::{
    StoreSource, StoreType, TlsClientSettings, TlsError, TlsFilters, TlsServerSettings, TrustMode,
};
pub use transport::{
    bind_listener, ClientTransport, LayerOrder, Replay, RpcStream, ServerLayerOrder,
    ServerTransport, TransportError, TransportSettings,
};
pub use zlib::ZlibStream;
