//! In-process downstream servers for the RPC client and Avro sink tests: a small Netty-framed
//! Avro source built from the wire layer's `ServerSession` (real handshake, real decoding) with
//! scripted behaviour — answer OK, FAILED for the first N calls, never answer (stall), or send
//! garbage. Binds 127.0.0.1 only; every connection task dies with the server.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures::StreamExt;
use sluicegate::config::{Context, SystemProps};
use sluicegate::rpc::ServerTransport;
use sluicegate::wire::{Frame, FrameCodec, ProtocolCache, ServerAction, ServerSession, Status};
use sluicegate::Event;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::FramedRead;

/// How the server answers `append`/`appendBatch` calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Store the events, answer OK.
    Ok,
    /// Answer FAILED (storing nothing) for the next N calls, then OK.
    FailFirst(usize),
    /// Read requests but never answer.
    Stall,
    /// Answer every call with bytes that are not a Netty frame.
    Garbage,
}

#[derive(Debug)]
pub struct State {
    pub mode: Mode,
    /// Events stored (answered OK), in arrival order.
    pub events: Vec<Event>,
    /// Events per OK call.
    pub batches: Vec<usize>,
    /// Calls answered FAILED.
    pub failed_calls: usize,
    /// Calls received in any mode.
    pub calls: usize,
}

pub struct TestServer {
    addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    pub connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

/// The project's throw-away TLS fixtures.
pub fn tls_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls")
}

/// A server transport: plain, deflate and/or TLS (fixture keystore), in the given layer order.
pub fn server_transport(deflate: bool, tls: bool, order: &str) -> ServerTransport {
    let ks = tls_dir().join("server.p12");
    let ks = ks.to_string_lossy().into_owned();
    let mut pairs = vec![("compression-layer-order", order)];
    if deflate {
        pairs.push(("compression-type", "deflate"));
    }
    if tls {
        pairs.extend([
            ("ssl", "true"),
            ("keystore", ks.as_str()),
            ("keystore-password", "changeit"),
            ("keystore-type", "PKCS12"),
        ]);
    }
    let ctx = Context::from_pairs("test.source", pairs);
    ServerTransport::from_context(&ctx, &SystemProps::new()).expect("server transport")
}

impl TestServer {
    /// Starts a plain server on an ephemeral port.
    pub async fn start(mode: Mode) -> TestServer {
        TestServer::start_with(
            "127.0.0.1:0".parse().unwrap(),
            mode,
            server_transport(false, false, "zlib-outside"),
        )
        .await
    }

    /// Starts a server on `addr` (retrying the bind for up to 5 s, for restarts on one port).
    pub async fn start_with(
        addr: SocketAddr,
        mode: Mode,
        transport: ServerTransport,
    ) -> TestServer {
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match ServerTransport::bind(addr) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("bind {addr}: {e}"),
            }
        };
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            mode,
            events: Vec::new(),
            batches: Vec::new(),
            failed_calls: 0,
            calls: 0,
        }));
        let connections = Arc::new(AtomicUsize::new(0));
        let (st, conns) = (state.clone(), connections.clone());
        let task = tokio::spawn(async move {
            let mut set = tokio::task::JoinSet::new();
            let cache = ProtocolCache::new();
            loop {
                let Ok((tcp, peer)) = listener.accept().await else {
                    continue;
                };
                conns.fetch_add(1, Ordering::SeqCst);
                let (st, t, cache) = (st.clone(), transport.clone(), cache.clone());
                set.spawn(async move {
                    let Ok(stream) = t.accept(tcp, peer).await else {
                        return;
                    };
                    serve(stream, st, cache).await;
                });
                while set.try_join_next().is_some() {}
            }
        });
        TestServer {
            addr,
            state,
            connections,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn set_mode(&self, m: Mode) {
        self.state.lock().unwrap().mode = m;
    }

    pub fn events(&self) -> Vec<Event> {
        self.state.lock().unwrap().events.clone()
    }

    pub fn bodies(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|e| String::from_utf8_lossy(e.body()).into_owned())
            .collect()
    }

    pub fn event_count(&self) -> usize {
        self.state.lock().unwrap().events.len()
    }

    pub fn calls(&self) -> usize {
        self.state.lock().unwrap().calls
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Stops accepting and drops every connection (like a killed process).
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// Waits (bounded) until at least `n` events were stored.
    pub async fn wait_events(&self, n: usize, within: Duration) -> bool {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if self.event_count() >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.event_count() >= n
    }
}

async fn serve(stream: sluicegate::rpc::RpcStream, st: Arc<Mutex<State>>, cache: ProtocolCache) {
    let (rd, mut wr) = tokio::io::split(stream);
    let mut frames = FramedRead::new(rd, FrameCodec::new());
    let mut session = ServerSession::new(cache);
    while let Some(Ok(frame)) = frames.next().await {
        let serial = frame.serial;
        let buffers = match session.on_request(frame.message()) {
            ServerAction::Reply(b) => b,
            ServerAction::Reject { reply, .. } => reply,
            ServerAction::Deliver(d) => {
                let mode = {
                    let mut s = st.lock().unwrap();
                    s.calls += 1;
                    let mode = s.mode;
                    match mode {
                        Mode::Ok => {
                            s.batches.push(d.events.len());
                            s.events.extend(d.events.iter().cloned());
                        }
                        Mode::FailFirst(n) => {
                            s.failed_calls += 1;
                            s.mode = if n <= 1 {
                                Mode::Ok
                            } else {
                                Mode::FailFirst(n - 1)
                            };
                        }
                        _ => {}
                    }
                    mode
                };
                match mode {
                    Mode::Ok => d.reply.finish(Status::Ok),
                    Mode::FailFirst(_) => d.reply.finish(Status::Failed),
                    Mode::Stall => continue,
                    Mode::Garbage => {
                        let _ = wr
                            .write_all(b"\x00\x00\x00\x01\xff\xff\xff\xffgarbage")
                            .await;
                        let _ = wr.flush().await;
                        continue;
                    }
                }
            }
        };
        let mut out = BytesMut::new();
        Frame::new(serial, buffers).encode_into(&mut out);
        if wr.write_all(&out).await.is_err() || wr.flush().await.is_err() {
            return;
        }
    }
}

/// Events `prefix-0 .. prefix-(n-1)` with a `seq` header.
/// A port on 127.0.0.1 that refuses connections for as long as the returned socket lives: bound
/// (so no one else takes it) but not listening. It has `SO_REUSEADDR`, like the listeners
/// [`ServerTransport::bind`] makes, so a [`TestServer::start_with`] on the same port can start
/// listening there later while the socket is still held.
pub fn dead_port() -> (socket2::Socket, u16) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_reuse_address(true).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    s.bind(&any.into()).unwrap();
    let port = s.local_addr().unwrap().as_socket().unwrap().port();
    (s, port)
}

pub fn numbered(prefix: &str, n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| Event::new([("seq", i.to_string())], format!("{prefix}-{i}")))
        .collect()
}

/// A multi-threaded runtime for tests that drive sinks from runner threads.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}
