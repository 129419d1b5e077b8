//! The Avro RPC server: a tokio accept loop and one task per connection speaking Flume's
//! `AvroSourceProtocol` over Netty frames (what Flume's `AvroSource` runs on Avro's
//! `NettyServer`). The Avro source ([`crate::source::avro`]) is a thin layer over it; anything
//! else that wants to receive Flume RPCs can use it with its own [`RequestHandler`].
//!
//! # Life of a connection
//!
//! 1. The accept loop takes the TCP connection. Beyond [`ServerConfig::max_connections`] it is
//!    closed at once with a (rate-limited) warning. Otherwise it gets its own task, which runs
//!    [`ServerTransport::accept`] (IP filter, socket options, TLS handshake, zlib) and then the
//!    request loop. A slow or stalled client therefore never delays another one.
//! 2. The request loop reads bytes into one buffer and cuts [`Frame`]s with the [`FrameCodec`]
//!    (caps from [`ServerConfig::frame_limits`]); each request message goes through the
//!    connection's own [`ServerSession`] (all sessions of a server share one [`ProtocolCache`],
//!    so a client protocol learned on one connection is known on every later one).
//! 3. Pings and handshake `NONE` replies are answered directly; malformed requests get an Avro
//!    system error (the bytes a Java `Responder` would send) and the connection stays open; an
//!    `append`/`appendBatch` is handed to the [`RequestHandler`] and answered with the
//!    [`Outcome`] it returns — for the Avro source, `OK` only after the channel committed.
//!
//! # Ordering
//!
//! Requests on one connection are served **one at a time, in order**: the next request is not
//! read from the buffer before the previous one is answered (like Avro 1.7/1.8's `NettyServer`
//! in Flume ≤ 1.9; Flume ≥ 1.10 may answer pipelined requests out of order, which no Flume client
//! relies on since `NettyAvroRpcClient` waits for each answer). Different connections are served
//! concurrently.
//!
//! # Errors: reply, or close?
//!
//! | input | answer |
//! |---|---|
//! | request undecodable after a good frame (bad handshake, bad call header, unknown message, bad params, more events than `max-batch-events`) | Avro system error, connection kept, `EventReadFail` + 1 |
//! | frame over `max-frame-bytes` (well-formed; Java would have taken it) | Avro system error for its serial as soon as its size is known; the rest of the frame is discarded unbuffered; `EventReadFail` + 1; connection kept — except on a connection whose handshake is not done yet: its handshake was in the discarded bytes, so the error is sent after a `BOTH` handshake response (so Java clients can read it) and the connection is closed |
//! | broken framing (`count` ≤ 0 or over the buffer cap, negative length), TLS failure, IP filter refusal, first bytes neither TLS nor zlib (TLS + deflate with `compression-layer-order = auto`) | connection closed (as Netty/Java close it), logged |
//! | (TLS + deflate, `auto`) connection closed before its first bytes showed the layer order (health checks, port scans) | connection closed, logged at DEBUG (INFO when some bytes came) |
//! | stream ends inside a frame; no new byte of a started frame for `read-timeout`; no frame at all for `idle-timeout` (if set); reply not taken by the client within `read-timeout` | connection closed, logged |
//!
//! # Shutdown
//!
//! [`ServerHandle::shutdown`] stops accepting (the listening socket is closed), lets every
//! request that is being handled finish and be answered, then closes each connection at its next
//! frame boundary (a frame only partly received is dropped; the client retries it). Connections
//! still busy after [`ServerConfig::shutdown_timeout`] are aborted.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::codec::Decoder;

use super::transport::{bind_listener, RpcStream, ServerTransport, TransportError};
use crate::config::{ConfigError, Context};
use crate::event::Event;
use crate::metrics::SourceCounter;
use crate::wire::{
    FlumeMessage, Frame, FrameCodec, FrameError, FrameLimits, HandshakeMatch, HandshakeResponse,
    PendingReply, ProtocolCache, ServerAction, ServerSession, SessionLimits, Status,
};

/// Default for [`ServerConfig::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Default for [`ServerConfig::read_timeout`].
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Default for [`ServerConfig::shutdown_timeout`].
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Initial read buffer of a connection (grows to the frame being received).
const READ_CHUNK: usize = 16 * 1024;
/// How long a closing connection may take to send its TLS close / zlib trailer.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a lingering close keeps reading (and dropping) what the client still sends.
const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

/// Limits and timeouts of one server. Read from a source's settings with
/// [`ServerConfig::from_context`]; see `docs/avro-source.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The owning component's name, for logs.
    pub name: String,
    /// `max-connections`: most simultaneously open connections (0 = unlimited); more are closed
    /// on accept. Default 4096.
    pub max_connections: usize,
    /// `idle-timeout` (ms): close a connection that starts no frame for this long. `None` (the
    /// default, `0`) never closes idle connections, as Flume.
    pub idle_timeout: Option<Duration>,
    /// `read-timeout` (ms): close a connection whose started frame gets no new byte for this long,
    /// or that does not take a reply within it. Default 60 s.
    pub read_timeout: Duration,
    /// `max-frame-bytes` (and the per-buffer cap derived from it) and the buffer-count cap.
    pub frame_limits: FrameLimits,
    /// `max-batch-events`.
    pub session_limits: SessionLimits,
    /// `shutdown-timeout` (ms): how long shutdown waits for busy connections. Default 30 s.
    pub shutdown_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            name: "avro-server".to_string(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: None,
            read_timeout: DEFAULT_READ_TIMEOUT,
            frame_limits: FrameLimits::default(),
            session_limits: SessionLimits::default(),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }
}

impl ServerConfig {
    /// Reads `max-connections`, `idle-timeout`, `read-timeout`, `max-frame-bytes`,
    /// `max-batch-events` and `shutdown-timeout` (sluicegate extras; Flume has none of them).
    pub fn from_context(name: &str, ctx: &Context) -> Result<ServerConfig, ConfigError> {
        let d = ServerConfig::default();
        let max_connections = ctx.get_u64("max-connections", d.max_connections as u64)? as usize;
        let idle = ctx.get_millis("idle-timeout", 0)?;
        let read_timeout = ctx.get_millis("read-timeout", d.read_timeout.as_millis() as u64)?;
        if read_timeout.is_zero() {
            return Err(ctx.error(
                "read-timeout",
                "must be at least 1 ms (it bounds how long a half-sent request may hold a connection)",
            ));
        }
        let max_frame = ctx.get_u64(
            "max-frame-bytes",
            FrameLimits::DEFAULT_MAX_FRAME_BYTES as u64,
        )?;
        if !(1024..=i32::MAX as u64).contains(&max_frame) {
            return Err(ctx.error(
                "max-frame-bytes",
                &format!("must be between 1024 and {} bytes", i32::MAX),
            ));
        }
        let max_batch =
            ctx.get_u64("max-batch-events", d.session_limits.max_batch_events as u64)?;
        if max_batch == 0 {
            return Err(ctx.error("max-batch-events", "must be at least 1"));
        }
        let shutdown_timeout =
            ctx.get_millis("shutdown-timeout", d.shutdown_timeout.as_millis() as u64)?;
        let max_frame = max_frame as usize;
        Ok(ServerConfig {
            name: name.to_string(),
            max_connections,
            idle_timeout: (!idle.is_zero()).then_some(idle),
            read_timeout,
            frame_limits: FrameLimits {
                max_buffers: FrameLimits::DEFAULT_MAX_BUFFERS,
                max_buffer_len: max_frame,
                max_frame_bytes: max_frame,
            },
            session_limits: SessionLimits {
                max_batch_events: max_batch as usize,
            },
            shutdown_timeout,
        })
    }
}

/// One decoded `append`/`appendBatch` call handed to the [`RequestHandler`].
#[derive(Debug)]
pub struct Request {
    /// Which message carried the events.
    pub message: FlumeMessage,
    /// The events, in the order sent (zero-copy slices of the received frame).
    pub events: Vec<Event>,
    /// The client.
    pub peer: SocketAddr,
    /// The request's frame serial.
    pub serial: i32,
}

/// What to answer a [`Request`] with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A normal answer: `OK` (stored), `FAILED` (refused; the client retries).
    Status(Status),
    /// An Avro system error with this text (Java's `"<exception class>: <message>"`); Flume
    /// clients report it as an `EventDeliveryException`.
    SystemError(String),
}

/// A boxed future returned by a [`RequestHandler`].
pub type HandlerFuture = Pin<Box<dyn Future<Output = Outcome> + Send + 'static>>;

/// Decides the answer to each delivered batch. The future may take as long as it needs (the
/// connection waits; other connections do not); its [`Outcome`] is sent with the request's
/// serial. Closures `Fn(Request) -> impl Future<Output = Outcome>` implement it.
pub trait RequestHandler: Send + Sync + 'static {
    /// Handles one call.
    fn handle(&self, request: Request) -> HandlerFuture;
}

impl<F, Fut> RequestHandler for F
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    fn handle(&self, request: Request) -> HandlerFuture {
        Box::pin(self(request))
    }
}

/// Everything the connection tasks share.
struct Shared {
    config: ServerConfig,
    transport: ServerTransport,
    handler: Arc<dyn RequestHandler>,
    counter: Arc<SourceCounter>,
    cache: ProtocolCache,
    open: AtomicUsize,
    refused: AtomicU64,
    last_refusal_log: std::sync::Mutex<Option<Instant>>,
}

/// Builder-free entry point: binds and starts a server.
#[derive(Debug)]
pub struct RpcServer;

impl RpcServer {
    /// Binds `addr` (port 0 picks a free port) and starts serving on the current tokio runtime.
    /// `counter` receives `OpenConnectionCount` and `EventReadFail`; the handler does the rest.
    pub fn bind(
        addr: SocketAddr,
        transport: ServerTransport,
        config: ServerConfig,
        handler: Arc<dyn RequestHandler>,
        counter: Arc<SourceCounter>,
    ) -> io::Result<ServerHandle> {
        let listener = bind_listener(addr)?;
        RpcServer::serve(listener, transport, config, handler, counter)
    }

    /// Starts serving on an already bound listener (must be called within a tokio runtime).
    pub fn serve(
        listener: TcpListener,
        transport: ServerTransport,
        config: ServerConfig,
        handler: Arc<dyn RequestHandler>,
        counter: Arc<SourceCounter>,
    ) -> io::Result<ServerHandle> {
        let local_addr = listener.local_addr()?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let shared = Arc::new(Shared {
            config,
            transport,
            handler,
            counter,
            cache: ProtocolCache::new(),
            open: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            last_refusal_log: std::sync::Mutex::new(None),
        });
        tracing::info!(
            server = %shared.config.name,
            %local_addr,
            compression_level = ?shared.transport.settings().compression_level,
            tls = shared.transport.is_tls(),
            layer_order = %shared.transport.layer_order(),
            "Avro RPC server listening"
        );
        let task = tokio::spawn(accept_loop(shared.clone(), listener, stop_rx, done_tx));
        Ok(ServerHandle {
            local_addr,
            stop: stop_tx,
            task: Some(task),
            done: done_rx,
            shared,
        })
    }
}

/// A running server. Dropping it stops accepting and closes connections (without waiting);
/// call [`ServerHandle::shutdown`] or [`ServerHandle::shutdown_blocking`] to wait.
pub struct ServerHandle {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    done: std::sync::mpsc::Receiver<()>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .field("open_connections", &self.open_connections())
            .finish()
    }
}

impl ServerHandle {
    /// The address actually bound (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connections currently open (accepted and not yet closed).
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::Relaxed)
    }

    /// Connections refused so far because of `max-connections`.
    pub fn refused_connections(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    /// Stops accepting and asks every connection to close after its current request; returns
    /// at once.
    pub fn begin_shutdown(&self) {
        self.stop.send_replace(true);
    }

    /// Graceful shutdown (see the module docs); returns when every connection is closed.
    pub async fn shutdown(mut self) {
        self.begin_shutdown();
        if let Some(task) = self.task.take() {
            if let Err(e) = task.await {
                tracing::error!(server = %self.shared.config.name, "accept loop failed: {e}");
            }
        }
    }

    /// [`shutdown`](ServerHandle::shutdown) for synchronous callers: waits at most `limit`
    /// (the server's own `shutdown-timeout` bounds it anyway). Returns true when the server
    /// finished. Must not be called from a current-thread runtime's own thread.
    pub fn shutdown_blocking(mut self, limit: Duration) -> bool {
        self.begin_shutdown();
        self.task.take();
        let wait = || {
            matches!(
                self.done.recv_timeout(limit),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) | Ok(())
            )
        };
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::CurrentThread) => {
                tracing::warn!(
                    server = %self.shared.config.name,
                    "shutdown requested from a current-thread runtime: not waiting for connections"
                );
                false
            }
            Ok(_) => tokio::task::block_in_place(wait),
            Err(_) => wait(),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// Resolves when `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Decrements the open-connection counts when a connection task ends.
struct ConnectionSlot(Arc<Shared>);

impl ConnectionSlot {
    fn new(shared: Arc<Shared>) -> ConnectionSlot {
        shared.open.fetch_add(1, Ordering::Relaxed);
        SourceCounter::add(&shared.counter.open_connections, 1);
        ConnectionSlot(shared)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
        self.0
            .counter
            .open_connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    done: std::sync::mpsc::Sender<()>,
) {
    let name = shared.config.name.clone();
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = stopped(&mut stop) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let max = shared.config.max_connections;
                    if max > 0 && shared.open.load(Ordering::Relaxed) >= max {
                        refuse(&shared, peer);
                        drop(tcp);
                        continue;
                    }
                    let slot = ConnectionSlot::new(shared.clone());
                    conns.spawn(connection(slot, tcp, peer, stop.clone()));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(server = %name, "accept failed: {e}; retrying in 100 ms");
                    tokio::select! {
                        _ = stopped(&mut stop) => break,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            },
        }
    }
    drop(listener);
    let busy = conns.len();
    if busy > 0 {
        tracing::info!(server = %name, connections = busy, "stopped accepting; closing connections");
    }
    let limit = shared.config.shutdown_timeout;
    let drained =
        tokio::time::timeout(limit, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            server = %name,
            connections = conns.len(),
            "connections still busy after shutdown-timeout {limit:?}; aborting them"
        );
        conns.abort_all();
        while conns.join_next().await.is_some() {}
    }
    tracing::info!(server = %name, "Avro RPC server stopped");
    drop(done);
}

fn refuse(shared: &Shared, peer: SocketAddr) {
    let n = shared.refused.fetch_add(1, Ordering::Relaxed) + 1;
    // Poison: one timestamp rate-limiting a log line.
    let mut last = shared
        .last_refusal_log
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    if last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
        *last = Some(now);
        tracing::warn!(
            server = %shared.config.name,
            %peer,
            max_connections = shared.config.max_connections,
            refused_total = n,
            "connection closed: max-connections reached (raise max-connections or reduce the \
             number of senders)"
        );
    }
}

/// Why a connection ended.
enum End {
    /// The client closed between frames, or the server is shutting down.
    Clean,
    /// Something to log at `warn`.
    Problem(String),
    /// Like `Problem`, but the client may still be sending the request we refused: close our
    /// side first and read (and drop) its bytes for a moment, so the kernel does not answer them
    /// with a reset that would destroy the reply we just sent.
    Linger(String),
}

async fn connection(
    slot: ConnectionSlot,
    tcp: TcpStream,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let shared = slot.0.clone();
    let name = &shared.config.name;
    let stream = tokio::select! {
        _ = stopped(&mut stop) => return,
        s = shared.transport.accept(tcp, peer) => match s {
            Ok(s) => s,
            // Health checks and port scans connect and close: not worth a warning.
            Err(e @ TransportError::ClosedEarly { .. }) => {
                if matches!(&e, TransportError::ClosedEarly { seen, .. } if seen.is_empty()) {
                    tracing::debug!(server = %name, %peer, "connection closed: {e}");
                } else {
                    tracing::info!(server = %name, %peer, "connection closed: {e}");
                }
                return;
            }
            Err(e) => {
                tracing::warn!(server = %name, %peer, "connection closed: {e}");
                return;
            }
        },
    };
    tracing::debug!(server = %name, %peer, layers = stream.layers(), "connection open");
    let mut conn = Connection {
        shared: &shared,
        peer,
        stream,
        codec: FrameCodec::with_limits(shared.config.frame_limits),
        session: ServerSession::with_limits(shared.cache.clone(), shared.config.session_limits),
        rbuf: BytesMut::with_capacity(READ_CHUNK),
        wbuf: BytesMut::new(),
    };
    let end = conn.run(&mut stop).await;
    match &end {
        End::Clean => tracing::debug!(server = %name, %peer, "connection closed"),
        End::Problem(why) | End::Linger(why) => {
            tracing::warn!(server = %name, %peer, "connection closed: {why}")
        }
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.stream.shutdown()).await;
    if matches!(end, End::Linger(_)) {
        let mut sink = vec![0u8; READ_CHUNK];
        let _ = tokio::time::timeout(LINGER_TIMEOUT, async {
            while matches!(conn.stream.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    }
    drop(slot);
}

struct Connection<'a> {
    shared: &'a Shared,
    peer: SocketAddr,
    stream: RpcStream,
    codec: FrameCodec,
    session: ServerSession,
    rbuf: BytesMut,
    wbuf: BytesMut,
}

impl Connection<'_> {
    async fn run(&mut self, stop: &mut watch::Receiver<bool>) -> End {
        loop {
            match self.codec.decode(&mut self.rbuf) {
                Ok(Some(frame)) => {
                    if let Err(end) = self.serve(frame).await {
                        return end;
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) if e.is_recoverable() => {
                    if let Err(end) = self.refuse_oversized(&e).await {
                        return end;
                    }
                    continue;
                }
                Err(e) => {
                    SourceCounter::add(&self.shared.counter.event_read_fail, 1);
                    return End::Problem(format!("unusable frame: {e}"));
                }
            }
            let partial = self.codec.is_mid_frame() || !self.rbuf.is_empty();
            let limit = if partial {
                Some(self.shared.config.read_timeout)
            } else {
                self.shared.config.idle_timeout
            };
            if self.rbuf.capacity() - self.rbuf.len() < 1024 {
                self.rbuf.reserve(READ_CHUNK);
            }
            let read = async {
                match limit {
                    Some(t) => tokio::time::timeout(t, self.stream.read_buf(&mut self.rbuf))
                        .await
                        .map_err(|_| t),
                    None => Ok(self.stream.read_buf(&mut self.rbuf).await),
                }
            };
            tokio::select! {
                biased;
                _ = stopped(stop) => {
                    return if partial {
                        End::Problem("server shutting down; a partly received request was dropped".into())
                    } else {
                        End::Clean
                    };
                }
                r = read => match r {
                    Err(t) if partial => {
                        SourceCounter::add(&self.shared.counter.event_read_fail, 1);
                        return End::Problem(format!(
                            "no data for {t:?} in the middle of a request (read-timeout)"
                        ));
                    }
                    Err(t) => return End::Problem(format!("idle for {t:?} (idle-timeout)")),
                    Ok(Ok(0)) if partial => {
                        SourceCounter::add(&self.shared.counter.event_read_fail, 1);
                        let buffered = self.rbuf.len();
                        return End::Problem(format!(
                            "client closed the connection inside a request ({buffered} byte(s) of \
                             an incomplete frame)"
                        ));
                    }
                    Ok(Ok(0)) => return End::Clean,
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) if partial => return End::Problem(format!("read failed inside a request: {e}")),
                    Ok(Err(e)) => {
                        return match e.kind() {
                            io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof => End::Clean,
                            _ => End::Problem(format!("read failed: {e}")),
                        };
                    }
                },
            }
        }
    }

    /// Answers one request frame.
    async fn serve(&mut self, frame: Frame) -> Result<(), End> {
        let serial = frame.serial;
        let buffers = match self.session.on_request(frame.message()) {
            ServerAction::Reply(buffers) => buffers,
            ServerAction::Reject { reply, error } => {
                SourceCounter::add(&self.shared.counter.event_read_fail, 1);
                tracing::warn!(
                    server = %self.shared.config.name,
                    peer = %self.peer,
                    serial,
                    "request refused with an Avro system error: {error}"
                );
                reply
            }
            ServerAction::Deliver(d) => {
                let request = Request {
                    message: d.message,
                    events: d.events,
                    peer: self.peer,
                    serial,
                };
                match self.shared.handler.handle(request).await {
                    Outcome::Status(s) => d.reply.finish(s),
                    Outcome::SystemError(text) => d.reply.system_error(&text),
                }
            }
        };
        self.send(serial, buffers).await
    }

    /// A frame over the byte caps: answer its serial with a system error right away (the codec
    /// discards the rest of it as it arrives).
    async fn refuse_oversized(&mut self, e: &FrameError) -> Result<(), End> {
        SourceCounter::add(&self.shared.counter.event_read_fail, 1);
        let serial = e.serial().unwrap_or(0);
        let max = self.shared.config.frame_limits.max_frame_bytes;
        tracing::warn!(
            server = %self.shared.config.name,
            peer = %self.peer,
            serial,
            "request refused with an Avro system error: {e} (max-frame-bytes {max})"
        );
        let text = format!(
            "org.apache.avro.AvroRuntimeException: sluicegate source {}: {e}; the request was \
             discarded (raise max-frame-bytes on the source or lower the sender's batch-size)",
            self.shared.config.name
        );
        if self.session.is_established() {
            return self
                .send(serial, PendingReply::new(Bytes::new()).system_error(&text))
                .await;
        }
        // The request's handshake was in the discarded bytes. A client waiting for its first
        // answer expects a handshake response before the error, so say BOTH (it lets Java's
        // Requestor read our text) and close: the client now believes the connection is
        // established and we do not, so nothing after this could be understood.
        let hs = HandshakeResponse::server_bytes(HandshakeMatch::Both);
        self.send(serial, PendingReply::new(hs).system_error(&text))
            .await?;
        Err(End::Linger(format!(
            "first request refused ({e}); closing, since its handshake was discarded with it"
        )))
    }

    /// Writes one reply frame and flushes it (one zlib sync flush per frame).
    async fn send(&mut self, serial: i32, buffers: Vec<Bytes>) -> Result<(), End> {
        self.wbuf.clear();
        Frame::new(serial, buffers).encode_into(&mut self.wbuf);
        let t = self.shared.config.read_timeout;
        let write = async {
            self.stream.write_all(&self.wbuf).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(t, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(End::Problem(format!(
                "writing the reply to serial {serial} failed: {e}"
            ))),
            Err(_) => Err(End::Problem(format!(
                "the client did not take the reply to serial {serial} within {t:?} (read-timeout)"
            ))),
        }
    }
}
