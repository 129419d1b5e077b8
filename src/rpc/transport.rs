//! The byte stream under the Netty frames: TCP, optionally TLS and/or zlib, stacked in the order
//! the peer's Flume version uses (spec §1.4, §1.6, §1.7).
//!
//! | settings | wire (outermost first) | [`RpcStream`] variant |
//! |---|---|---|
//! | plain | TCP | `Plain` |
//! | `compression-type = deflate` | zlib(frames) | `Zlib` |
//! | `ssl = true` | TLS(frames) | `Tls` |
//! | both, [`LayerOrder::ZlibOutside`] (Flume ≥ 1.10, default) | zlib(TLS(frames)) | `TlsOverZlib` |
//! | both, [`LayerOrder::TlsOutside`] (Flume ≤ 1.9) | TLS(zlib(frames)) | `ZlibOverTls` |
//!
//! The order is chosen with `compression-layer-order = zlib-outside | tls-outside` (aliases
//! `flume-1.10` / `flume-1.9`); both ends must agree, and a mismatch fails the TLS handshake.
//!
//! [`ServerTransport`] is the acceptor side: the Avro source's accept loop hands every accepted
//! socket to [`ServerTransport::accept`] (in the connection's own task), which applies the IP
//! filter first (as Flume's filter is the first handler), sets `TCP_NODELAY`/`SO_KEEPALIVE` and
//! runs the TLS handshake with a timeout. [`ClientTransport`] is the connector the Avro sink
//! uses: [`ClientTransport::connect`] resolves, connects within `connect-timeout`, sets the same
//! socket options and runs the TLS handshake within the same timeout.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsStream;

use super::ipfilter::{IpFilter, Verdict};
use super::tls::{TlsClientSettings, TlsError, TlsServerSettings};
use super::zlib::ZlibStream;
use crate::config::{ConfigError, Context, SystemProps};

/// Flume's default `compression-level` (and the level AvroSource always uses).
pub const DEFAULT_COMPRESSION_LEVEL: u32 = 6;
/// Flume's default `connect-timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(20_000);
/// Smallest `connect-timeout` Flume accepts (smaller values fall back to the default).
pub const MIN_CONNECT_TIMEOUT: Duration = Duration::from_millis(1_000);
/// Default limit for a server-side TLS handshake (Netty `SslHandler`'s default is 10 s).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Listen backlog (Netty's `SO_BACKLOG` in Avro's `NettyServer`).
pub const LISTEN_BACKLOG: i32 = 1024;

/// Which of TLS and zlib is outermost on the wire when both are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayerOrder {
    /// wire = zlib(TLS(frames)): Flume ≥ 1.10 (Netty 4 pipelines). The default.
    #[default]
    ZlibOutside,
    /// wire = TLS(zlib(frames)): Flume ≤ 1.9 and other Netty 3 peers.
    TlsOutside,
}

impl LayerOrder {
    /// Parses a `compression-layer-order` value.
    pub fn parse(v: &str) -> Option<LayerOrder> {
        match v.trim().to_ascii_lowercase().as_str() {
            "zlib-outside" | "flume-1.10" | "1.10" | "flume-1.11" | "1.11" => {
                Some(LayerOrder::ZlibOutside)
            }
            "tls-outside" | "flume-1.9" | "1.9" => Some(LayerOrder::TlsOutside),
            _ => None,
        }
    }

    /// The canonical setting value.
    pub fn as_str(self) -> &'static str {
        match self {
            LayerOrder::ZlibOutside => "zlib-outside",
            LayerOrder::TlsOutside => "tls-outside",
        }
    }
}

/// Compression and layer order for one endpoint (TLS is configured separately).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransportSettings {
    /// `Some(level)` (0–9) for `compression-type = deflate`, `None` for no compression.
    pub compression_level: Option<u32>,
    /// Order of TLS and zlib when both are on.
    pub layer_order: LayerOrder,
}

impl TransportSettings {
    /// No compression.
    pub fn plain() -> TransportSettings {
        TransportSettings::default()
    }

    /// Deflate at `level`.
    pub fn deflate(level: u32) -> TransportSettings {
        TransportSettings {
            compression_level: Some(level.min(9)),
            layer_order: LayerOrder::default(),
        }
    }

    /// With a layer order.
    pub fn with_layer_order(mut self, order: LayerOrder) -> TransportSettings {
        self.layer_order = order;
        self
    }

    /// Reads `compression-type` (`none` | `deflate`, any case), `compression-level` (0–9,
    /// default 6; Flume's source always uses 6, sluicegate honours the key on both sides) and
    /// `compression-layer-order`.
    pub fn from_context(ctx: &Context) -> Result<TransportSettings, ConfigError> {
        let ctype = ctx.get_or("compression-type", "none").trim().to_string();
        let deflate = if ctype.eq_ignore_ascii_case("deflate") {
            true
        } else if ctype.eq_ignore_ascii_case("none") || ctype.is_empty() {
            false
        } else {
            return Err(ctx.error(
                "compression-type",
                &format!("unknown compression type '{ctype}': use none or deflate"),
            ));
        };
        let level = ctx.get_u64("compression-level", u64::from(DEFAULT_COMPRESSION_LEVEL))?;
        if level > 9 {
            return Err(ctx.error("compression-level", &format!("must be 0-9, got {level}")));
        }
        let layer_order = match ctx.get("compression-layer-order") {
            None => LayerOrder::default(),
            Some(v) => LayerOrder::parse(v).ok_or_else(|| {
                ctx.error(
                    "compression-layer-order",
                    &format!(
                        "unknown value '{v}': use zlib-outside (Flume >= 1.10, default) or \
                         tls-outside (Flume <= 1.9)"
                    ),
                )
            })?,
        };
        Ok(TransportSettings {
            compression_level: deflate.then_some(level as u32),
            layer_order,
        })
    }
}

/// A connection failure at the transport level.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The IP filter refused the peer.
    #[error("connection from {peer} refused by ipFilter rule '{rule}'")]
    Rejected {
        /// The peer.
        peer: SocketAddr,
        /// The rule that denied it.
        rule: String,
    },
    /// The host name could not be resolved.
    #[error("cannot resolve {host}:{port}: {source}")]
    Resolve {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// Cause.
        source: io::Error,
    },
    /// TCP connect failed.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// `host:port` as given.
        target: String,
        /// Cause (for several addresses, the last one's).
        source: io::Error,
    },
    /// Connect (or TLS handshake) did not finish in time.
    #[error("{what} with {target} timed out after {after:?}")]
    Timeout {
        /// `connect` or `TLS handshake`.
        what: &'static str,
        /// The peer.
        target: String,
        /// The limit.
        after: Duration,
    },
    /// The TLS handshake failed (bad certificate, protocol mismatch, or the other end uses a
    /// different TLS/zlib layer order or no TLS).
    #[error("TLS handshake with {target} failed: {source}")]
    TlsHandshake {
        /// The peer.
        target: String,
        /// Cause.
        source: io::Error,
    },
    /// The TLS client could not use the host name.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A socket option or other I/O failure.
    #[error("I/O error with {target}: {source}")]
    Io {
        /// The peer.
        target: String,
        /// Cause.
        source: io::Error,
    },
}

/// The stacked stream one connection speaks frames over.
pub enum RpcStream {
    /// TCP only.
    Plain(TcpStream),
    /// zlib over TCP.
    Zlib(ZlibStream<TcpStream>),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
    /// wire = zlib(TLS(frames)) — [`LayerOrder::ZlibOutside`], Flume ≥ 1.10.
    TlsOverZlib(Box<TlsStream<ZlibStream<TcpStream>>>),
    /// wire = TLS(zlib(frames)) — [`LayerOrder::TlsOutside`], Flume ≤ 1.9.
    ZlibOverTls(Box<ZlibStream<TlsStream<TcpStream>>>),
}

impl fmt::Debug for RpcStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcStream")
            .field("layers", &self.layers())
            .field("peer", &self.tcp().peer_addr().ok())
            .finish()
    }
}

impl RpcStream {
    /// The TCP socket at the bottom.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            RpcStream::Plain(s) => s,
            RpcStream::Zlib(z) => z.get_ref(),
            RpcStream::Tls(t) => t.get_ref().0,
            RpcStream::TlsOverZlib(t) => t.get_ref().0.get_ref(),
            RpcStream::ZlibOverTls(z) => z.get_ref().get_ref().0,
        }
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().local_addr()
    }

    /// The layers, outermost (wire side) first, e.g. `"zlib+tls"`.
    pub fn layers(&self) -> &'static str {
        match self {
            RpcStream::Plain(_) => "plain",
            RpcStream::Zlib(_) => "zlib",
            RpcStream::Tls(_) => "tls",
            RpcStream::TlsOverZlib(_) => "zlib+tls",
            RpcStream::ZlibOverTls(_) => "tls+zlib",
        }
    }

    /// The negotiated TLS protocol version's Java name (`TLSv1.3`), when TLS is on.
    pub fn tls_protocol(&self) -> Option<&'static str> {
        let v = match self {
            RpcStream::Tls(t) => tls_version(t),
            RpcStream::TlsOverZlib(t) => tls_version(t),
            RpcStream::ZlibOverTls(z) => tls_version(z.get_ref()),
            _ => None,
        }?;
        Some(match v {
            rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3",
            rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2",
            _ => "other",
        })
    }
}

fn tls_version<IO>(t: &TlsStream<IO>) -> Option<rustls::ProtocolVersion> {
    match t {
        TlsStream::Client(c) => c.get_ref().1.protocol_version(),
        TlsStream::Server(s) => s.get_ref().1.protocol_version(),
    }
}

macro_rules! each_stream {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            RpcStream::Plain($s) => $e,
            RpcStream::Zlib($s) => $e,
            RpcStream::Tls($s) => $e,
            RpcStream::TlsOverZlib($s) => $e,
            RpcStream::ZlibOverTls($s) => $e,
        }
    };
}

impl AsyncRead for RpcStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each_stream!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for RpcStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each_stream!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each_stream!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            RpcStream::Plain(s) => s.is_write_vectored(),
            RpcStream::Tls(s) => s.is_write_vectored(),
            _ => false,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        each_stream!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        each_stream!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

/// Sets `TCP_NODELAY` and `SO_KEEPALIVE`, as Netty does for Avro connections.
pub fn set_socket_options(tcp: &TcpStream) -> io::Result<()> {
    tcp.set_nodelay(true)?;
    socket2::SockRef::from(tcp).set_keepalive(true)
}

/// Binds a listener with `SO_REUSEADDR` and a backlog of [`LISTEN_BACKLOG`].
pub fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let sock = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(LISTEN_BACKLOG)?;
    TcpListener::from_std(sock.into())
}

/// The acceptor side: IP filter, socket options, TLS and zlib for each accepted connection.
#[derive(Clone)]
pub struct ServerTransport {
    settings: TransportSettings,
    tls: Option<tokio_rustls::TlsAcceptor>,
    ip_filter: Option<IpFilter>,
    handshake_timeout: Duration,
}

impl fmt::Debug for ServerTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTransport")
            .field("settings", &self.settings)
            .field("tls", &self.tls.is_some())
            .field(
                "ip_filter",
                &self.ip_filter.as_ref().map(|f| f.rules().len()),
            )
            .field("handshake_timeout", &self.handshake_timeout)
            .finish()
    }
}

impl ServerTransport {
    /// A server transport from its parts.
    pub fn new(
        settings: TransportSettings,
        tls: Option<TlsServerSettings>,
        ip_filter: Option<IpFilter>,
    ) -> ServerTransport {
        ServerTransport {
            settings,
            tls: tls.map(|t| t.acceptor()),
            ip_filter,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// Reads the compression, TLS (`ssl`, `keystore*`, filters) and IP-filter keys of an Avro
    /// source.
    pub fn from_context(
        ctx: &Context,
        props: &SystemProps,
    ) -> Result<ServerTransport, ConfigError> {
        let settings = TransportSettings::from_context(ctx)?;
        let tls = TlsServerSettings::from_context(ctx, props)?;
        let ip_filter = IpFilter::from_context(ctx)?;
        Ok(ServerTransport::new(settings, tls, ip_filter))
    }

    /// Sets the TLS handshake limit.
    pub fn with_handshake_timeout(mut self, t: Duration) -> ServerTransport {
        self.handshake_timeout = t;
        self
    }

    /// The compression settings.
    pub fn settings(&self) -> TransportSettings {
        self.settings
    }

    /// True when TLS is on.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The IP filter, if any.
    pub fn ip_filter(&self) -> Option<&IpFilter> {
        self.ip_filter.as_ref()
    }

    /// Binds a listener (see [`bind_listener`]).
    pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
        bind_listener(addr)
    }

    /// Turns an accepted socket into a ready stream: IP filter (a refused connection is
    /// dropped, i.e. closed), socket options, then the layers in the configured order.
    /// Call it in the connection's own task: name rules and the TLS handshake take time.
    pub async fn accept(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
    ) -> Result<RpcStream, TransportError> {
        if let Some(filter) = &self.ip_filter {
            if let Verdict::Deny(rule) = filter.check(peer.ip()).await {
                tracing::info!(%peer, %rule, "connection refused by ipFilter");
                return Err(TransportError::Rejected { peer, rule });
            }
        }
        let target = peer.to_string();
        set_socket_options(&tcp).map_err(|source| TransportError::Io {
            target: target.clone(),
            source,
        })?;
        let Some(acceptor) = &self.tls else {
            return Ok(match self.settings.compression_level {
                None => RpcStream::Plain(tcp),
                Some(level) => RpcStream::Zlib(ZlibStream::new(tcp, level)),
            });
        };
        let fut = async {
            Ok::<_, io::Error>(
                match (self.settings.compression_level, self.settings.layer_order) {
                    (None, _) => RpcStream::Tls(Box::new(acceptor.accept(tcp).await?.into())),
                    (Some(level), LayerOrder::ZlibOutside) => RpcStream::TlsOverZlib(Box::new(
                        acceptor.accept(ZlibStream::new(tcp, level)).await?.into(),
                    )),
                    (Some(level), LayerOrder::TlsOutside) => RpcStream::ZlibOverTls(Box::new(
                        ZlibStream::new(acceptor.accept(tcp).await?.into(), level),
                    )),
                },
            )
        };
        match tokio::time::timeout(self.handshake_timeout, fut).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(source)) => Err(TransportError::TlsHandshake { target, source }),
            Err(_) => Err(TransportError::Timeout {
                what: "TLS handshake",
                target,
                after: self.handshake_timeout,
            }),
        }
    }
}

/// The connector side: connect timeout, socket options, TLS and zlib.
#[derive(Clone)]
pub struct ClientTransport {
    settings: TransportSettings,
    tls: Option<TlsClientSettings>,
    connect_timeout: Duration,
}

impl fmt::Debug for ClientTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTransport")
            .field("settings", &self.settings)
            .field("tls", &self.tls)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// Reads a Flume RPC timeout in milliseconds (`connect-timeout`, `request-timeout`). As the
/// Flume SDK does, a value below 1000 ms falls back to `default` with a warning.
pub fn flume_timeout(ctx: &Context, key: &str, default: Duration) -> Result<Duration, ConfigError> {
    let t = ctx.get_millis(key, default.as_millis() as u64)?;
    if t < MIN_CONNECT_TIMEOUT {
        tracing::warn!(
            key = %ctx.full_key(key),
            value_ms = t.as_millis() as u64,
            default_ms = default.as_millis() as u64,
            "{key} below 1000 ms; using the default (as Flume does)"
        );
        return Ok(default);
    }
    Ok(t)
}

impl ClientTransport {
    /// A client transport from its parts.
    pub fn new(
        settings: TransportSettings,
        tls: Option<TlsClientSettings>,
        connect_timeout: Duration,
    ) -> ClientTransport {
        ClientTransport {
            settings,
            tls,
            connect_timeout,
        }
    }

    /// Reads the compression, TLS (`ssl`, `trust-all-certs`, `truststore*`, `verify-hostname`,
    /// filters) and `connect-timeout` keys of an Avro sink / RPC client. As in Flume, a
    /// `connect-timeout` below 1000 ms falls back to the 20000 ms default with a warning.
    pub fn from_context(
        ctx: &Context,
        props: &SystemProps,
    ) -> Result<ClientTransport, ConfigError> {
        let settings = TransportSettings::from_context(ctx)?;
        let tls = TlsClientSettings::from_context(ctx, props)?;
        let connect_timeout = flume_timeout(ctx, "connect-timeout", DEFAULT_CONNECT_TIMEOUT)?;
        Ok(ClientTransport::new(settings, tls, connect_timeout))
    }

    /// The compression settings.
    pub fn settings(&self) -> TransportSettings {
        self.settings
    }

    /// True when TLS is on.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The connect (and TLS handshake) limit.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Resolves `host`, connects to the first address that answers within the connect timeout,
    /// sets socket options and stacks the layers (the TLS handshake gets its own
    /// `connect_timeout`).
    pub async fn connect(&self, host: &str, port: u16) -> Result<RpcStream, TransportError> {
        let target = format!("{host}:{port}");
        let tcp = tokio::time::timeout(self.connect_timeout, async {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
                .await
                .map_err(|source| TransportError::Resolve {
                    host: host.to_string(),
                    port,
                    source,
                })?
                .collect();
            let mut last = io::Error::new(io::ErrorKind::NotFound, "no addresses");
            for a in addrs {
                match TcpStream::connect(a).await {
                    Ok(s) => return Ok(s),
                    Err(e) => last = e,
                }
            }
            Err(TransportError::Connect {
                target: target.clone(),
                source: last,
            })
        })
        .await
        .map_err(|_| TransportError::Timeout {
            what: "connect",
            target: target.clone(),
            after: self.connect_timeout,
        })??;
        self.wrap(tcp, host).await
    }

    /// Stacks the layers over an already connected socket; `host` is the name TLS verifies
    /// (when `verify-hostname` is on).
    pub async fn wrap(&self, tcp: TcpStream, host: &str) -> Result<RpcStream, TransportError> {
        let target = tcp
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| host.to_string());
        set_socket_options(&tcp).map_err(|source| TransportError::Io {
            target: target.clone(),
            source,
        })?;
        let Some(tls) = &self.tls else {
            return Ok(match self.settings.compression_level {
                None => RpcStream::Plain(tcp),
                Some(level) => RpcStream::Zlib(ZlibStream::new(tcp, level)),
            });
        };
        let name = tls.server_name(host)?;
        let connector = tls.connector();
        let fut = async {
            Ok::<_, io::Error>(
                match (self.settings.compression_level, self.settings.layer_order) {
                    (None, _) => {
                        RpcStream::Tls(Box::new(connector.connect(name, tcp).await?.into()))
                    }
                    (Some(level), LayerOrder::ZlibOutside) => RpcStream::TlsOverZlib(Box::new(
                        connector
                            .connect(name, ZlibStream::new(tcp, level))
                            .await?
                            .into(),
                    )),
                    (Some(level), LayerOrder::TlsOutside) => RpcStream::ZlibOverTls(Box::new(
                        ZlibStream::new(connector.connect(name, tcp).await?.into(), level),
                    )),
                },
            )
        };
        match tokio::time::timeout(self.connect_timeout, fut).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(source)) => Err(TransportError::TlsHandshake { target, source }),
            Err(_) => Err(TransportError::Timeout {
                what: "TLS handshake",
                target,
                after: self.connect_timeout,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_context() {
        let c = Context::from_pairs("a1.sinks.k1", []);
        assert_eq!(
            TransportSettings::from_context(&c).unwrap(),
            TransportSettings::plain()
        );
        let c = Context::from_pairs(
            "a1.sinks.k1",
            [
                ("compression-type", "DEFLATE"),
                ("compression-level", "9"),
                ("compression-layer-order", "flume-1.9"),
            ],
        );
        let s = TransportSettings::from_context(&c).unwrap();
        assert_eq!(s.compression_level, Some(9));
        assert_eq!(s.layer_order, LayerOrder::TlsOutside);
        for (k, v) in [
            ("compression-type", "gzip"),
            ("compression-level", "10"),
            ("compression-layer-order", "sideways"),
        ] {
            let c = Context::from_pairs("a1.sinks.k1", [("compression-type", "deflate"), (k, v)]);
            let e = TransportSettings::from_context(&c).unwrap_err();
            assert_eq!(e.key, format!("a1.sinks.k1.{k}"));
        }
    }

    #[test]
    fn client_connect_timeout_floor() {
        let c = Context::from_pairs("k", [("connect-timeout", "500")]);
        let t = ClientTransport::from_context(&c, &SystemProps::new()).unwrap();
        assert_eq!(t.connect_timeout(), DEFAULT_CONNECT_TIMEOUT);
        let c = Context::from_pairs("k", [("connect-timeout", "1500")]);
        let t = ClientTransport::from_context(&c, &SystemProps::new()).unwrap();
        assert_eq!(t.connect_timeout(), Duration::from_millis(1500));
    }
}
