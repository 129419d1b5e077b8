//! [`NettyAvroClient`]: one connection to one Avro source, like the Flume SDK's
//! `NettyAvroRpcClient` (spec §1.2, §2.4, §4.3).
//!
//! * **Connects eagerly** ([`NettyAvroClient::connect`]): TCP, then TLS/zlib as configured, all
//!   within `connect-timeout`.
//! * **Handshake**: the first call carries the handshake (as Java's `Requestor` does; no ping), and
//!   is bounded by `connect-timeout` like Java's "Handshake timed out". Calls made while the
//!   handshake is pending wait for it (Java's `handshakeLock`). A `NONE` reply makes the same call
//!   go out again with our protocol text and the learned server hash (new serial); `CLIENT` and
//!   `BOTH` establish the connection.
//! * **Serials** start at 1 per connection; a **reader task** routes every reply to the call
//!   waiting for its serial (a pending map), so out-of-order replies from Flume ≥ 1.10 servers are
//!   fine. A reply with an unknown serial kills the connection (Java: "Missing previous call info").
//! * **Timeouts**: later calls are bounded by `request-timeout`.
//! * **Batches**: [`append_batch`](NettyAvroClient::append_batch) splits a slice into RPCs of
//!   `batch-size` events; each event's Avro encoding is written verbatim.
//! * **Failure**: a `Status` other than `OK` is an [`RpcClientError::Status`] naming it; any
//!   failure (status, system error, timeout, I/O, garbage) marks the client **dead**
//!   ([`is_active`](NettyAvroClient::is_active) turns false): it must be closed and recreated, as in
//!   Flume.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::BytesMut;
use futures::StreamExt;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::oneshot;
use tokio_util::codec::FramedRead;

use super::config::{HostInfo, RpcClientConfig};
use super::RpcClientError;
use crate::event::Event;
use crate::rpc::transport::RpcStream;
use crate::wire::{ClientReply, ClientSession, EncodedRequest, Frame, FrameCodec, Status};

/// Replies owed to calls in flight, by serial. `None` once the connection is dead.
type Pending = Mutex<Option<HashMap<i32, oneshot::Sender<Frame>>>>;

struct Shared {
    target: String,
    active: AtomicBool,
    /// Why the connection died (first reason wins).
    dead_reason: Mutex<Option<String>>,
    pending: Pending,
}

impl Shared {
    fn kill(&self, reason: String) {
        self.active.store(false, Ordering::SeqCst);
        {
            let mut r = self
                .dead_reason
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if r.is_none() {
                *r = Some(reason);
            }
        }
        // Dropping the senders wakes every waiting call.
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    fn reason(&self) -> String {
        self.dead_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| "connection closed".to_string())
    }
}

/// One connection to one Avro source. Cheap to share by reference: calls take `&self` and may run
/// concurrently once the handshake is done (replies are matched by serial).
pub struct NettyAvroClient {
    host: HostInfo,
    shared: Arc<Shared>,
    writer: tokio::sync::Mutex<WriteHalf<RpcStream>>,
    session: Mutex<ClientSession>,
    /// Held by the call that carries the handshake (Java's `handshakeLock`).
    handshake_lock: tokio::sync::Mutex<()>,
    established: AtomicBool,
    serial: AtomicI32,
    batch_size: usize,
    connect_timeout: Duration,
    request_timeout: Duration,
    reader: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for NettyAvroClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NettyAvroClient")
            .field("host", &self.host.to_string())
            .field("active", &self.is_active())
            .field("established", &self.established.load(Ordering::Relaxed))
            .finish()
    }
}

impl NettyAvroClient {
    /// Connects to the first of `cfg.hosts` (TCP, TLS, zlib) within `connect-timeout`. Must be
    /// called inside a tokio runtime (the reader task is spawned on it).
    pub async fn connect(cfg: &RpcClientConfig) -> Result<NettyAvroClient, RpcClientError> {
        let host = cfg.hosts.first().ok_or(RpcClientError::NoHosts)?.clone();
        let stream = cfg
            .transport
            .connect(&host.host, host.port)
            .await
            .map_err(|source| RpcClientError::Connect {
                target: host.to_string(),
                source,
            })?;
        tracing::debug!(target_host = %host, layers = stream.layers(), "RPC client connected");
        Ok(NettyAvroClient::from_stream(stream, host, cfg))
    }

    /// Wraps an already connected stream (the layers are already stacked).
    pub fn from_stream(
        stream: RpcStream,
        host: HostInfo,
        cfg: &RpcClientConfig,
    ) -> NettyAvroClient {
        let (rd, wr) = tokio::io::split(stream);
        let shared = Arc::new(Shared {
            target: host.to_string(),
            active: AtomicBool::new(true),
            dead_reason: Mutex::new(None),
            pending: Mutex::new(Some(HashMap::new())),
        });
        let reader = tokio::spawn(read_loop(rd, shared.clone()));
        NettyAvroClient {
            host,
            shared,
            writer: tokio::sync::Mutex::new(wr),
            session: Mutex::new(ClientSession::new()),
            handshake_lock: tokio::sync::Mutex::new(()),
            established: AtomicBool::new(false),
            serial: AtomicI32::new(0),
            batch_size: cfg.batch_size.max(1),
            connect_timeout: cfg.connect_timeout,
            request_timeout: cfg.request_timeout,
            reader,
        }
    }

    /// The host this client talks to.
    pub fn host(&self) -> &HostInfo {
        &self.host
    }

    /// Most events per RPC.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// False once any call failed or the connection closed: the client must be recreated.
    pub fn is_active(&self) -> bool {
        self.shared.active.load(Ordering::SeqCst)
    }

    /// Whether the handshake is done on this connection.
    pub fn is_established(&self) -> bool {
        self.established.load(Ordering::SeqCst)
    }

    /// Sends `events` as `appendBatch` RPCs of at most `batch-size` events each, in order; the
    /// first failure ends the call (earlier RPCs of the slice were delivered).
    pub async fn append_batch(&self, events: &[Event]) -> Result<(), RpcClientError> {
        if events.is_empty() {
            return self.call(|s| s.encode_append_batch(events)).await;
        }
        for chunk in events.chunks(self.batch_size) {
            self.call(|s| s.encode_append_batch(chunk)).await?;
        }
        Ok(())
    }

    /// Sends one `append` RPC.
    pub async fn append(&self, event: &Event) -> Result<(), RpcClientError> {
        self.call(|s| s.encode_append(event)).await
    }

    /// Closes the connection (zlib trailer, TLS close_notify, FIN) and marks the client dead.
    pub async fn close(&self) {
        self.shared.kill("client closed".to_string());
        let mut w = self.writer.lock().await;
        let _ = tokio::time::timeout(Duration::from_secs(1), w.shutdown()).await;
        self.reader.abort();
    }

    fn fail(&self, e: RpcClientError) -> RpcClientError {
        self.shared.kill(e.to_string());
        e
    }

    async fn call(
        &self,
        encode: impl Fn(&ClientSession) -> EncodedRequest,
    ) -> Result<(), RpcClientError> {
        let target = || self.shared.target.clone();
        let mut attempts = 0;
        loop {
            if !self.is_active() {
                return Err(RpcClientError::Inactive {
                    target: target(),
                    reason: self.shared.reason(),
                });
            }
            let _hs_guard = if self.is_established() {
                None
            } else {
                let g = self.handshake_lock.lock().await;
                if self.is_established() {
                    None
                } else {
                    Some(g)
                }
            };
            let req = encode(&self.session.lock().unwrap_or_else(PoisonError::into_inner));
            let timeout = if req.sent.handshake {
                self.connect_timeout
            } else {
                self.request_timeout
            };
            let serial = self.serial.fetch_add(1, Ordering::SeqCst).wrapping_add(1);
            let (tx, rx) = oneshot::channel();
            {
                let mut p = self
                    .shared
                    .pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                match p.as_mut() {
                    Some(map) => {
                        map.insert(serial, tx);
                    }
                    None => {
                        return Err(RpcClientError::Inactive {
                            target: target(),
                            reason: self.shared.reason(),
                        })
                    }
                }
            }
            let exchange = async {
                self.write_frame(serial, &req).await?;
                rx.await.map_err(|_| RpcClientError::Closed {
                    target: target(),
                    reason: self.shared.reason(),
                })
            };
            let frame = match tokio::time::timeout(timeout, exchange).await {
                Ok(Ok(f)) => f,
                Ok(Err(e)) => return Err(self.fail(e)),
                Err(_) => {
                    let e = if req.sent.handshake {
                        RpcClientError::HandshakeTimeout {
                            target: target(),
                            after: timeout,
                        }
                    } else {
                        RpcClientError::RequestTimeout {
                            target: target(),
                            after: timeout,
                        }
                    };
                    return Err(self.fail(e));
                }
            };
            let message = frame.message();
            let reply = self
                .session
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .on_response(req.sent, &message);
            match reply {
                Err(source) => {
                    return Err(self.fail(RpcClientError::Protocol {
                        target: target(),
                        source,
                    }))
                }
                Ok(ClientReply::Resend) => {
                    attempts += 1;
                    tracing::debug!(target_host = %self.shared.target, "handshake NONE: re-sending with our protocol text");
                    if attempts > 1 {
                        return Err(self.fail(RpcClientError::Protocol {
                            target: target(),
                            source: crate::wire::ClientHandshakeError::Rejected.into(),
                        }));
                    }
                    continue;
                }
                Ok(ClientReply::Pong { .. }) => return Ok(()),
                Ok(ClientReply::Answer { handshake, result }) => {
                    if handshake.is_some() {
                        self.established.store(true, Ordering::SeqCst);
                    }
                    return match result {
                        Ok(Status::Ok) => Ok(()),
                        Ok(status) => Err(self.fail(RpcClientError::Status {
                            target: target(),
                            status,
                        })),
                        Err(message) => Err(self.fail(RpcClientError::Remote {
                            target: target(),
                            message,
                        })),
                    };
                }
            }
        }
    }

    async fn write_frame(&self, serial: i32, req: &EncodedRequest) -> Result<(), RpcClientError> {
        let frame = Frame::new(serial, req.buffers.clone());
        // One allocation per RPC: the frame header, buffer lengths and buffers in one write, so
        // a plain TCP connection sends it without extra segments and zlib flushes once per frame.
        let mut bytes = BytesMut::with_capacity(frame.encoded_len());
        frame.encode_into(&mut bytes);
        let mut w = self.writer.lock().await;
        let io = async {
            w.write_all(&bytes).await?;
            w.flush().await
        };
        io.await.map_err(|source| RpcClientError::Io {
            target: self.shared.target.clone(),
            source,
        })
    }
}

impl Drop for NettyAvroClient {
    fn drop(&mut self) {
        self.shared.kill("client dropped".to_string());
        self.reader.abort();
    }
}

async fn read_loop(rd: ReadHalf<RpcStream>, shared: Arc<Shared>) {
    let mut frames = FramedRead::new(rd, FrameCodec::new());
    loop {
        match frames.next().await {
            Some(Ok(frame)) => {
                let tx = shared
                    .pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_mut()
                    .and_then(|m| m.remove(&frame.serial));
                match tx {
                    Some(tx) => {
                        let _ = tx.send(frame);
                    }
                    None => {
                        shared.kill(format!(
                            "reply with serial {} matches no call in flight (Java: \"Missing previous call info\")",
                            frame.serial
                        ));
                        return;
                    }
                }
            }
            Some(Err(e)) => {
                shared.kill(format!("bad reply stream: {e}"));
                return;
            }
            None => {
                shared.kill("server closed the connection".to_string());
                return;
            }
        }
    }
}
