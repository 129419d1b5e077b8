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
//! The order is chosen with `compression-layer-order`. A client (the Avro sink) speaks first and
//! must be told its peer's order: `zlib-outside` (default) or `tls-outside` (aliases `flume-1.10`
//! / `flume-1.9`); a mismatch fails the TLS handshake. A server (the Avro source) defaults to
//! [`ServerLayerOrder::Auto`] and decides **per connection** from the first bytes the client
//! sends, so Flume ≤ 1.9 and ≥ 1.10 senders can share one port; it can also be pinned to one
//! order ([`ServerLayerOrder::Fixed`]).
//!
//! # Layer-order detection (`auto`, server side, only when TLS **and** deflate are on)
//!
//! With both layers on, the client always speaks first: its first bytes are either its TLS
//! ClientHello (TLS outside) or the zlib stream that carries it (zlib outside). So:
//!
//! | first bytes | meaning | stack |
//! |---|---|---|
//! | `16 03 00`…`16 03 04` (TLS handshake record header) | Flume ≤ 1.9 | TLS(zlib(frames)) |
//! | a zlib header (RFC 1950: `CM = 8`, window ≤ 32 KiB, no preset dictionary, `FCHECK` valid; `78 9C` at level 6) | Flume ≥ 1.10 | zlib(TLS(frames)) |
//! | anything else | a sender without TLS or without deflate | connection closed, WARN naming the peer and the bytes |
//! | end of stream (or reset) before a decision | health check, port scan | connection closed, DEBUG (INFO if some bytes came) |
//!
//! The bytes read to decide (at most [`SNIFF_BYTES`]) are not lost: they sit in a [`Replay`]
//! at the bottom of the stack and are read again by the chosen TLS or zlib layer. Waiting for
//! them shares the TLS handshake's deadline (`handshake_timeout`, 10 s): a client that sends
//! nothing is closed exactly when a silent client on a fixed order would be. With only TLS or
//! only deflate on, nothing is read ahead: `auto` changes nothing.
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

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
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
/// Most bytes [`ServerLayerOrder::Auto`] reads ahead to decide (it stops as soon as it can: 2
/// bytes for a zlib header, 3 for a TLS record header, 1 for most garbage).
pub const SNIFF_BYTES: usize = 8;

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

/// How a server picks the TLS/zlib order when both are on (`compression-layer-order` on a
/// source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerLayerOrder {
    /// Decide per connection from the client's first bytes (see the module docs). The Avro
    /// source's default.
    #[default]
    Auto,
    /// Always this order (a client speaking the other one fails its TLS handshake).
    Fixed(LayerOrder),
}

impl ServerLayerOrder {
    /// Parses a source's `compression-layer-order` value: `auto` or any [`LayerOrder`] value.
    pub fn parse(v: &str) -> Option<ServerLayerOrder> {
        if v.trim().eq_ignore_ascii_case("auto") {
            return Some(ServerLayerOrder::Auto);
        }
        LayerOrder::parse(v).map(ServerLayerOrder::Fixed)
    }

    /// The canonical setting value.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerLayerOrder::Auto => "auto",
            ServerLayerOrder::Fixed(o) => o.as_str(),
        }
    }

    /// Reads a source's `compression-layer-order` (default `auto`).
    pub fn from_context(ctx: &Context) -> Result<ServerLayerOrder, ConfigError> {
        match ctx.get("compression-layer-order") {
            None => Ok(ServerLayerOrder::Auto),
            Some(v) => ServerLayerOrder::parse(v).ok_or_else(|| {
                ctx.error(
                    "compression-layer-order",
                    &format!(
                        "unknown value '{v}': use auto (default: detect per connection), \
                         zlib-outside (Flume >= 1.10 senders only) or tls-outside (Flume <= 1.9 \
                         senders only)"
                    ),
                )
            }),
        }
    }
}

impl fmt::Display for ServerLayerOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a connection's first bytes say about its outermost layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sniffed {
    /// A decision.
    Order(LayerOrder),
    /// Neither a TLS record header nor a zlib header.
    Unknown,
    /// Too few bytes to tell yet.
    NeedMore,
}

/// Classifies the first bytes of a connection that should carry both TLS and zlib.
fn sniff(prefix: &[u8]) -> Sniffed {
    match prefix {
        [] => Sniffed::NeedMore,
        // TLS record: content type 22 (handshake), version 3.0 (SSLv3) to 3.4.
        [0x16] | [0x16, 0x03] => Sniffed::NeedMore,
        [0x16, 0x03, minor, ..] if *minor <= 0x04 => Sniffed::Order(LayerOrder::TlsOutside),
        // zlib (RFC 1950): CMF = CINFO(4) CM(4) with CM = 8 (deflate), CINFO <= 7; FLG has no
        // preset dictionary (Netty never uses one) and makes CMF*256 + FLG a multiple of 31.
        [cmf, rest @ ..] if cmf & 0x0f == 8 && cmf >> 4 <= 7 => match rest {
            [] => Sniffed::NeedMore,
            [flg, ..] if flg & 0x20 == 0 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0 => {
                Sniffed::Order(LayerOrder::ZlibOutside)
            }
            _ => Sniffed::Unknown,
        },
        _ => Sniffed::Unknown,
    }
}

/// Bytes as spaced hex (`16 03 01`; `none` when empty), for logs and errors.
fn hex_bytes(b: &[u8]) -> String {
    if b.is_empty() {
        return "none".to_string();
    }
    let mut s = String::with_capacity(b.len() * 3);
    for (i, x) in b.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&format!("{x:02x}"));
    }
    s
}

/// Reads a connection's first bytes until [`sniff`] decides (at most [`SNIFF_BYTES`]). Returns
/// the order and the bytes read (to be replayed); no timeout here (the caller bounds it).
async fn detect_layer_order<S: AsyncRead + Unpin>(
    io: &mut S,
    target: &str,
) -> Result<(LayerOrder, Bytes), TransportError> {
    let mut buf = [0u8; SNIFF_BYTES];
    let mut n = 0;
    loop {
        match sniff(&buf[..n]) {
            Sniffed::Order(order) => return Ok((order, Bytes::copy_from_slice(&buf[..n]))),
            Sniffed::NeedMore if n < buf.len() => {}
            // Unknown (a full buffer never needs more: sniff decides within 3 bytes).
            Sniffed::NeedMore | Sniffed::Unknown => {
                return Err(TransportError::UnknownLayers {
                    target: target.to_string(),
                    seen: buf[..n].to_vec(),
                })
            }
        }
        let closed = |seen: &[u8]| TransportError::ClosedEarly {
            target: target.to_string(),
            seen: seen.to_vec(),
        };
        match io.read(&mut buf[n..]).await {
            Ok(0) => return Err(closed(&buf[..n])),
            Ok(k) => n += k,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof
                ) =>
            {
                return Err(closed(&buf[..n]))
            }
            Err(source) => {
                return Err(TransportError::Io {
                    target: target.to_string(),
                    source,
                })
            }
        }
    }
}

/// A stream that first yields bytes already read from it, then reads on; writes go straight
/// through. It sits at the bottom of the TLS+zlib stacks so that the bytes a server read to
/// detect the layer order reach the chosen layer (empty everywhere else).
#[derive(Debug)]
pub struct Replay<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Replay<S> {
    /// `inner` with nothing to replay.
    pub fn new(inner: S) -> Replay<S> {
        Replay::with_prefix(inner, Bytes::new())
    }

    /// `inner`, reading `prefix` first.
    pub fn with_prefix(inner: S, prefix: Bytes) -> Replay<S> {
        Replay { prefix, inner }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Bytes still to be replayed.
    pub fn pending(&self) -> usize {
        self.prefix.len()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() && buf.remaining() > 0 {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
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

    /// Reads a client's (the Avro sink's) `compression-type` (`none` | `deflate`, any case),
    /// `compression-level` (0–9, default 6; Flume's source always uses 6, sluicegate honours the
    /// key on both sides) and `compression-layer-order` (default `zlib-outside`; `auto` is
    /// refused: a client speaks first and cannot detect its peer's order). A server reads
    /// its order with [`ServerLayerOrder::from_context`] instead.
    pub fn from_context(ctx: &Context) -> Result<TransportSettings, ConfigError> {
        let compression_level = TransportSettings::compression_from_context(ctx)?;
        let layer_order = match ctx.get("compression-layer-order") {
            None => LayerOrder::default(),
            Some(v) if v.trim().eq_ignore_ascii_case("auto") => {
                return Err(ctx.error(
                    "compression-layer-order",
                    "auto works only on a source (a sink speaks first and cannot detect the \
                     order its peer expects): use zlib-outside (Flume >= 1.10 sources, default) \
                     or tls-outside (Flume <= 1.9 sources); a sluicegate source on auto accepts \
                     either",
                ))
            }
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
            compression_level,
            layer_order,
        })
    }

    /// Reads `compression-type` and `compression-level` (both sides): `Some(level)` for
    /// deflate.
    pub fn compression_from_context(ctx: &Context) -> Result<Option<u32>, ConfigError> {
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
        Ok(deflate.then_some(level as u32))
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
    /// `compression-layer-order = auto`: the client closed (or reset) the connection before its
    /// first bytes showed the layer order. Usually a health check or port scan.
    #[error(
        "{target} closed the connection before its first bytes showed the TLS/zlib layer order \
         (bytes seen: {})",
        hex_bytes(.seen)
    )]
    ClosedEarly {
        /// The peer.
        target: String,
        /// The bytes received (often none).
        seen: Vec<u8>,
    },
    /// `compression-layer-order = auto`: the first bytes are neither a TLS record header nor a
    /// zlib header, so the sender does not use both TLS and deflate.
    #[error(
        "first bytes from {target} are {}: neither a TLS record header (16 03 0x: TLS \
         outside, Flume <= 1.9) nor a zlib header (78 9c: zlib outside, Flume >= 1.10); this \
         source has ssl = true and compression-type = deflate, so its senders need both",
        hex_bytes(.seen)
    )]
    UnknownLayers {
        /// The peer.
        target: String,
        /// The bytes received.
        seen: Vec<u8>,
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
    /// wire = zlib(TLS(frames)) — [`LayerOrder::ZlibOutside`], Flume ≥ 1.10. The [`Replay`]
    /// holds the bytes a server read to detect the order (`auto`; empty otherwise).
    TlsOverZlib(Box<TlsStream<ZlibStream<Replay<TcpStream>>>>),
    /// wire = TLS(zlib(frames)) — [`LayerOrder::TlsOutside`], Flume ≤ 1.9 (the [`Replay`] as
    /// above).
    ZlibOverTls(Box<ZlibStream<TlsStream<Replay<TcpStream>>>>),
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
            RpcStream::TlsOverZlib(t) => t.get_ref().0.get_ref().get_ref(),
            RpcStream::ZlibOverTls(z) => z.get_ref().get_ref().0.get_ref(),
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
    order: ServerLayerOrder,
    tls: Option<tokio_rustls::TlsAcceptor>,
    ip_filter: Option<IpFilter>,
    handshake_timeout: Duration,
}

impl fmt::Debug for ServerTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTransport")
            .field("compression_level", &self.settings.compression_level)
            .field("layer_order", &self.order)
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
    /// A server transport from its parts, with the fixed layer order of `settings` (see
    /// [`ServerTransport::with_layer_order`] for `auto`).
    pub fn new(
        settings: TransportSettings,
        tls: Option<TlsServerSettings>,
        ip_filter: Option<IpFilter>,
    ) -> ServerTransport {
        ServerTransport {
            settings,
            order: ServerLayerOrder::Fixed(settings.layer_order),
            tls: tls.map(|t| t.acceptor()),
            ip_filter,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// Reads the compression (`compression-layer-order` defaults to `auto` here), TLS (`ssl`,
    /// `keystore*`, filters) and IP-filter keys of an Avro source.
    pub fn from_context(
        ctx: &Context,
        props: &SystemProps,
    ) -> Result<ServerTransport, ConfigError> {
        let compression_level = TransportSettings::compression_from_context(ctx)?;
        let order = ServerLayerOrder::from_context(ctx)?;
        let tls = TlsServerSettings::from_context(ctx, props)?;
        let ip_filter = IpFilter::from_context(ctx)?;
        let settings = TransportSettings {
            compression_level,
            layer_order: LayerOrder::default(),
        };
        Ok(ServerTransport::new(settings, tls, ip_filter).with_layer_order(order))
    }

    /// Sets how the TLS/zlib order is chosen when both are on.
    pub fn with_layer_order(mut self, order: ServerLayerOrder) -> ServerTransport {
        self.order = order;
        if let ServerLayerOrder::Fixed(o) = order {
            self.settings.layer_order = o;
        }
        self
    }

    /// How the TLS/zlib order is chosen when both are on.
    pub fn layer_order(&self) -> ServerLayerOrder {
        self.order
    }

    /// Sets the TLS handshake limit.
    pub fn with_handshake_timeout(mut self, t: Duration) -> ServerTransport {
        self.handshake_timeout = t;
        self
    }

    /// The compression settings (their `layer_order` applies only when
    /// [`layer_order`](ServerTransport::layer_order) is fixed).
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
    /// dropped, i.e. closed), socket options, then the layers in the configured order (with
    /// TLS and deflate under `auto`: the order the client's first bytes show, read within the
    /// TLS handshake's deadline). Call it in the connection's own task: name rules and the TLS
    /// handshake take time.
    pub async fn accept(
        &self,
        mut tcp: TcpStream,
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
        let deadline = tokio::time::Instant::now() + self.handshake_timeout;
        let timed_out = |target: String| TransportError::Timeout {
            what: "TLS handshake",
            target,
            after: self.handshake_timeout,
        };
        let stack = match (self.settings.compression_level, self.order) {
            (None, _) => None,
            (Some(level), ServerLayerOrder::Fixed(order)) => Some((level, order, Bytes::new())),
            (Some(level), ServerLayerOrder::Auto) => {
                let detected =
                    tokio::time::timeout_at(deadline, detect_layer_order(&mut tcp, &target))
                        .await
                        .map_err(|_| timed_out(target.clone()))??;
                tracing::debug!(%peer, order = detected.0.as_str(), "layer order detected");
                Some((level, detected.0, detected.1))
            }
        };
        let fut = async {
            Ok::<_, io::Error>(match stack {
                None => RpcStream::Tls(Box::new(acceptor.accept(tcp).await?.into())),
                Some((level, LayerOrder::ZlibOutside, seen)) => {
                    let zlib = ZlibStream::new(Replay::with_prefix(tcp, seen), level);
                    RpcStream::TlsOverZlib(Box::new(acceptor.accept(zlib).await?.into()))
                }
                Some((level, LayerOrder::TlsOutside, seen)) => {
                    let tls = acceptor.accept(Replay::with_prefix(tcp, seen)).await?;
                    RpcStream::ZlibOverTls(Box::new(ZlibStream::new(tls.into(), level)))
                }
            })
        };
        match tokio::time::timeout_at(deadline, fut).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(source)) => Err(TransportError::TlsHandshake { target, source }),
            Err(_) => Err(timed_out(target)),
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
                            .connect(name, ZlibStream::new(Replay::new(tcp), level))
                            .await?
                            .into(),
                    )),
                    (Some(level), LayerOrder::TlsOutside) => {
                        RpcStream::ZlibOverTls(Box::new(ZlibStream::new(
                            connector.connect(name, Replay::new(tcp)).await?.into(),
                            level,
                        )))
                    }
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
    fn layer_order_defaults_per_side() {
        // A source detects by default; a sink must be told (and refuses auto).
        let none = Context::from_pairs("a1.sources.r1", [("compression-type", "deflate")]);
        let t = ServerTransport::from_context(&none, &SystemProps::new()).unwrap();
        assert_eq!(t.layer_order(), ServerLayerOrder::Auto);
        assert_eq!(t.settings().compression_level, Some(6));
        assert_eq!(
            TransportSettings::from_context(&none).unwrap().layer_order,
            LayerOrder::ZlibOutside
        );
        for (v, want) in [
            (" AUTO ", ServerLayerOrder::Auto),
            (
                "tls-outside",
                ServerLayerOrder::Fixed(LayerOrder::TlsOutside),
            ),
            ("flume-1.9", ServerLayerOrder::Fixed(LayerOrder::TlsOutside)),
            (
                "zlib-outside",
                ServerLayerOrder::Fixed(LayerOrder::ZlibOutside),
            ),
            ("1.11", ServerLayerOrder::Fixed(LayerOrder::ZlibOutside)),
        ] {
            let c = Context::from_pairs("a1.sources.r1", [("compression-layer-order", v)]);
            let t = ServerTransport::from_context(&c, &SystemProps::new()).unwrap();
            assert_eq!(t.layer_order(), want, "{v}");
            assert_eq!(ServerLayerOrder::parse(want.as_str()), Some(want));
            if let ServerLayerOrder::Fixed(o) = want {
                assert_eq!(t.settings().layer_order, o);
            }
        }
        let c = Context::from_pairs("a1.sources.r1", [("compression-layer-order", "sniff")]);
        let e = ServerTransport::from_context(&c, &SystemProps::new()).unwrap_err();
        assert_eq!(e.key, "a1.sources.r1.compression-layer-order");
        assert!(e.to_string().contains("auto"), "{e}");
        let c = Context::from_pairs("a1.sinks.k1", [("compression-layer-order", "auto")]);
        let e = TransportSettings::from_context(&c).unwrap_err();
        assert_eq!(e.key, "a1.sinks.k1.compression-layer-order");
        assert!(e.to_string().contains("only on a source"), "{e}");
        // Programmatic construction keeps the explicit order of its settings.
        let t = ServerTransport::new(
            TransportSettings::deflate(6).with_layer_order(LayerOrder::TlsOutside),
            None,
            None,
        );
        assert_eq!(
            t.layer_order(),
            ServerLayerOrder::Fixed(LayerOrder::TlsOutside)
        );
    }

    #[test]
    fn sniff_first_bytes() {
        use LayerOrder::*;
        let order = |b: &[u8]| sniff(b);
        // TLS record headers: SSLv3 .. TLS 1.3 record versions (ClientHellos use 03 01 / 03 03).
        for minor in 0..=4u8 {
            assert_eq!(order(&[0x16, 0x03, minor]), Sniffed::Order(TlsOutside));
        }
        assert_eq!(
            order(&[0x16, 0x03, 0x01, 0x02, 0x00]),
            Sniffed::Order(TlsOutside)
        );
        // zlib headers of every level zlib and JZlib write, and other valid windows.
        for h in [
            [0x78, 0x9c],
            [0x78, 0x01],
            [0x78, 0x5e],
            [0x78, 0xda],
            [0x58, 0x85],
            [0x08, 0x1d],
        ] {
            assert_eq!(order(&h), Sniffed::Order(ZlibOutside), "{h:02x?}");
            assert_eq!(order(&[h[0], h[1], 0xff]), Sniffed::Order(ZlibOutside));
        }
        // Need more: nothing yet, or a prefix of a valid header.
        for b in [&[][..], &[0x16], &[0x16, 0x03], &[0x78]] {
            assert_eq!(order(b), Sniffed::NeedMore, "{b:02x?}");
        }
        // Garbage, decided as early as possible.
        for b in [
            &[0x00][..],               // a plain Netty frame (serial 0..)
            &[0x15, 0x03, 0x03],       // a TLS alert record
            &[0x17],                   // TLS application data
            &[0x16, 0x02],             // SSLv2-ish version
            &[0x16, 0x03, 0x05],       // no such TLS version
            &[0x78, 0x9d],             // bad FCHECK
            &[0x78, 0xbb],             // preset dictionary (valid FCHECK, FDICT set)
            &[0x88, 0x98],             // window over 32 KiB
            &[0x79, 0x9c],             // CM 9
            &[0x47, 0x45, 0x54, 0x20], // "GET "
        ] {
            assert_eq!(order(b), Sniffed::Unknown, "{b:02x?}");
        }
        // sniff decides within 3 bytes, whatever they are.
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                for c in [0u8, 3, 4, 5, 0xff] {
                    assert_ne!(order(&[a, b, c]), Sniffed::NeedMore);
                }
            }
        }
    }

    /// Yields its bytes one per read, then EOF (or an error).
    struct Trickle(Vec<u8>, Option<io::ErrorKind>);

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut TaskContext<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if self.0.is_empty() {
                return Poll::Ready(match self.1 {
                    Some(kind) => Err(io::Error::from(kind)),
                    None => Ok(()),
                });
            }
            let b = self.0.remove(0);
            buf.put_slice(&[b]);
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn detection_reads_only_what_it_needs_and_replays_it() {
        // A ClientHello arriving one byte per read: 3 bytes taken, the rest left unread.
        let mut io = Trickle(vec![0x16, 0x03, 0x01, 0x00, 0x2a, 0x01], None);
        let (order, seen) = detect_layer_order(&mut io, "peer").await.unwrap();
        assert_eq!(order, LayerOrder::TlsOutside);
        assert_eq!(&seen[..], &[0x16, 0x03, 0x01]);
        assert_eq!(io.0, vec![0x00, 0x2a, 0x01]);
        // Replay hands the sniffed bytes back first, then the rest, in order.
        let mut r = Replay::with_prefix(io, seen);
        assert_eq!(r.pending(), 3);
        let mut all = Vec::new();
        let mut two = [0u8; 2];
        loop {
            let n = r.read(&mut two).await.unwrap();
            if n == 0 {
                break;
            }
            all.extend_from_slice(&two[..n]);
        }
        assert_eq!(all, vec![0x16, 0x03, 0x01, 0x00, 0x2a, 0x01]);
        assert_eq!(r.pending(), 0);

        let mut io = Trickle(vec![0x78, 0x9c, 0x01], None);
        let (order, seen) = detect_layer_order(&mut io, "peer").await.unwrap();
        assert_eq!(order, LayerOrder::ZlibOutside);
        assert_eq!(&seen[..], &[0x78, 0x9c]);
    }

    #[tokio::test]
    async fn detection_failures_are_errors_not_panics() {
        let e = detect_layer_order(&mut Trickle(vec![0x00, 0x00], None), "1.2.3.4:5")
            .await
            .unwrap_err();
        match &e {
            TransportError::UnknownLayers { target, seen } => {
                assert_eq!(target, "1.2.3.4:5");
                assert_eq!(seen, &[0x00]);
            }
            other => panic!("{other:?}"),
        }
        let text = e.to_string();
        assert!(
            text.contains("1.2.3.4:5") && text.contains("are 00:"),
            "{text}"
        );
        // Closed (or reset) before a decision: nothing, or a partial header.
        for (bytes, end) in [
            (vec![], None),
            (vec![0x16, 0x03], None),
            (vec![0x78], Some(io::ErrorKind::ConnectionReset)),
        ] {
            let e = detect_layer_order(&mut Trickle(bytes.clone(), end), "p")
                .await
                .unwrap_err();
            match &e {
                TransportError::ClosedEarly { seen, .. } => assert_eq!(seen, &bytes),
                other => panic!("{other:?}"),
            }
            let want = if bytes.is_empty() {
                "none".to_string()
            } else {
                hex_bytes(&bytes)
            };
            assert!(
                e.to_string().contains(&format!("bytes seen: {want}")),
                "{e}"
            );
        }
        let e = detect_layer_order(
            &mut Trickle(vec![0x16], Some(io::ErrorKind::PermissionDenied)),
            "p",
        )
        .await
        .unwrap_err();
        assert!(matches!(e, TransportError::Io { .. }), "{e:?}");
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
