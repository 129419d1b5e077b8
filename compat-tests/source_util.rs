//! Helpers shared by the Avro source tests (`compat-tests/source_*.rs`,
//! `tests/avro_source_*.rs`): a running [`AvroSource`] over a memory channel, a raw blocking
//! TCP client that reads whole Netty frames (optionally inflating the reply stream), and frame
//! builders. Every read has a deadline, so no test can hang.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use sluicegate::channel::memory::{MemoryChannel, MemoryChannelConfig};
use sluicegate::channel::Channel;
use sluicegate::config::{Context, SystemProps};
use sluicegate::metrics::SourceCounter;
use sluicegate::source::avro::AvroSource;
use sluicegate::source::{ChannelProcessor, Source};
use sluicegate::wire::{ClientReply, ClientSession, Frame, SentRequest, Status};
use sluicegate::Event;

/// How long any single read in a test may wait.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A memory channel config with Flume's defaults but no waiting when full.
pub fn channel_config(capacity: u64) -> MemoryChannelConfig {
    MemoryChannelConfig {
        capacity,
        transaction_capacity: 100_000,
        byte_capacity: None,
        keep_alive: Duration::ZERO,
    }
}

/// A started Avro source on 127.0.0.1:0 delivering into one memory channel.
pub struct Harness {
    pub rt: tokio::runtime::Runtime,
    pub source: AvroSource,
    pub channel: Arc<MemoryChannel>,
}

impl Harness {
    /// Starts a source with `settings` (besides `bind`/`port`) over a channel built from `cfg`.
    pub fn start(settings: &[(&str, &str)], cfg: MemoryChannelConfig) -> Harness {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let channel = Arc::new(MemoryChannel::new("c1", cfg));
        let processor = ChannelProcessor::replicating(vec![channel.clone() as Arc<dyn Channel>]);
        let mut pairs = vec![("bind", "127.0.0.1"), ("port", "0")];
        pairs.extend_from_slice(settings);
        let ctx = Context::from_pairs("a1.sources.r1", pairs);
        let mut source = AvroSource::from_context(
            "r1",
            &ctx,
            &SystemProps::new(),
            processor,
            rt.handle().clone(),
        )
        .expect("valid source settings");
        source.start().expect("source starts");
        Harness {
            rt,
            source,
            channel,
        }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.source.local_addr().expect("running source")
    }

    /// Takes (and commits) everything in the channel, in order.
    pub fn drain(&self) -> Vec<Event> {
        let mut out = Vec::new();
        loop {
            let batch = self
                .channel
                .take_batch(1000, Duration::from_millis(1))
                .expect("take");
            if batch.is_empty() {
                return out;
            }
            out.extend(batch.events().iter().cloned());
            batch.commit().expect("commit");
        }
    }

    /// The source's counters.
    pub fn counter(&self) -> Arc<SourceCounter> {
        self.source.counter()
    }

    /// Reads one counter.
    pub fn count(&self, f: impl Fn(&SourceCounter) -> &std::sync::atomic::AtomicU64) -> u64 {
        SourceCounter::get(f(&self.counter()))
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.source.stop();
    }
}

/// Length of the first complete Netty frame in `buf`, if it is complete.
pub fn complete_frame_len(buf: &[u8]) -> Option<usize> {
    if buf.len() < 8 {
        return None;
    }
    let count = i32::from_be_bytes(buf[4..8].try_into().unwrap());
    assert!(count > 0, "server sent a frame with count {count}");
    let mut pos = 8usize;
    for _ in 0..count {
        if buf.len() < pos + 4 {
            return None;
        }
        let len = i32::from_be_bytes(buf[pos..pos + 4].try_into().unwrap());
        assert!(len >= 0, "server sent a negative buffer length");
        pos += 4 + len as usize;
        if buf.len() < pos {
            return None;
        }
    }
    Some(pos)
}

/// Splits one raw frame into serial and buffers.
pub fn parse_frame(raw: &[u8]) -> Frame {
    let serial = i32::from_be_bytes(raw[0..4].try_into().unwrap());
    let count = i32::from_be_bytes(raw[4..8].try_into().unwrap());
    let mut pos = 8;
    let mut buffers = Vec::new();
    for _ in 0..count {
        let len = i32::from_be_bytes(raw[pos..pos + 4].try_into().unwrap()) as usize;
        buffers.push(Bytes::copy_from_slice(&raw[pos + 4..pos + 4 + len]));
        pos += 4 + len;
    }
    assert_eq!(pos, raw.len(), "trailing bytes after the frame");
    Frame::new(serial, buffers)
}

/// Splits a whole plain stream into raw frames.
pub fn split_frames(mut stream: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !stream.is_empty() {
        let n = complete_frame_len(stream).expect("stream ends on a frame boundary");
        out.push(stream[..n].to_vec());
        stream = &stream[n..];
    }
    out
}

/// The wire bytes of a frame.
pub fn frame_bytes(serial: i32, buffers: &[Bytes]) -> Vec<u8> {
    let mut out = BytesMut::new();
    Frame::new(serial, buffers.to_vec()).encode_into(&mut out);
    out.to_vec()
}

/// What the server did with the connection when a test expected a reply.
#[derive(Debug)]
pub enum ReadError {
    /// The server closed the connection (EOF or reset).
    Closed,
    /// Nothing complete within the deadline.
    Timeout,
}

/// A blocking raw client. With `deflate`, everything written is deflated (one zlib stream,
/// sync flush per write) and the replies are inflated.
pub struct RawClient {
    pub sock: TcpStream,
    deflate: Option<Compress>,
    inflate: Option<Decompress>,
    plain: Vec<u8>,
}

impl RawClient {
    pub fn connect(addr: SocketAddr) -> RawClient {
        RawClient::connect_with(addr, false)
    }

    pub fn connect_with(addr: SocketAddr, deflate: bool) -> RawClient {
        let sock = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
        sock.set_nodelay(true).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        sock.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        RawClient {
            sock,
            deflate: deflate.then(|| Compress::new(Compression::new(6), true)),
            inflate: deflate.then(|| Decompress::new(true)),
            plain: Vec::new(),
        }
    }

    /// Writes bytes as they are (already compressed when the test replays a zlib stream).
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.sock.write_all(bytes)
    }

    /// Writes bytes through the deflater if there is one.
    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let Some(d) = &mut self.deflate else {
            return self.sock.write_all(bytes);
        };
        let mut out = Vec::with_capacity(bytes.len() + 64);
        let mut input = bytes;
        loop {
            out.reserve(4096);
            let before_in = d.total_in();
            d.compress_vec(input, &mut out, FlushCompress::Sync)
                .expect("deflate");
            input = &input[(d.total_in() - before_in) as usize..];
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        self.sock.write_all(&out)
    }

    /// Sends a request frame.
    pub fn send_frame(&mut self, serial: i32, buffers: &[Bytes]) {
        let bytes = frame_bytes(serial, buffers);
        self.send(&bytes).expect("send frame");
    }

    fn fill(&mut self, deadline: Instant) -> Result<(), ReadError> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            if Instant::now() > deadline {
                return Err(ReadError::Timeout);
            }
            match self.sock.read(&mut buf) {
                Ok(0) => return Err(ReadError::Closed),
                Ok(n) => {
                    match &mut self.inflate {
                        None => self.plain.extend_from_slice(&buf[..n]),
                        Some(inf) => {
                            let mut input = &buf[..n];
                            while !input.is_empty() {
                                self.plain.reserve(64 * 1024);
                                let before = inf.total_in();
                                inf.decompress_vec(input, &mut self.plain, FlushDecompress::Sync)
                                    .expect("server zlib stream inflates");
                                input = &input[(inf.total_in() - before) as usize..];
                            }
                        }
                    }
                    return Ok(());
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    continue
                }
                Err(_) => return Err(ReadError::Closed),
            }
        }
    }

    /// Reads one whole reply frame (raw, inflated when deflating).
    pub fn read_frame(&mut self) -> Result<Vec<u8>, ReadError> {
        self.read_frame_within(IO_TIMEOUT)
    }

    pub fn read_frame_within(&mut self, limit: Duration) -> Result<Vec<u8>, ReadError> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(n) = complete_frame_len(&self.plain) {
                return Ok(self.plain.drain(..n).collect());
            }
            self.fill(deadline)?;
        }
    }

    /// Waits until the server closes the connection; true if it did within `limit` (bytes
    /// received meanwhile are kept).
    pub fn closed_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            match self.fill(deadline) {
                Err(ReadError::Closed) => return true,
                Err(ReadError::Timeout) => return false,
                Ok(()) => {}
            }
        }
    }

    /// Bytes received and not yet returned as frames.
    pub fn pending(&self) -> &[u8] {
        &self.plain
    }
}

/// Test events `prefix-<i>` with headers `seq=i`, `k=v`.
pub fn events(prefix: &str, range: std::ops::Range<usize>) -> Vec<Event> {
    range
        .map(|i| {
            Event::new(
                vec![("seq".to_string(), i.to_string()), ("k".into(), "v".into())],
                format!("{prefix}-{i}").into_bytes(),
            )
        })
        .collect()
}

/// A fresh (Flume-like) client session.
pub fn session() -> ClientSession {
    ClientSession::new()
}

/// Sends `appendBatch(events)` on `client` with `serial` and decodes the answer.
pub fn append_batch(
    client: &mut RawClient,
    session: &mut ClientSession,
    serial: i32,
    events: &[Event],
) -> Result<Result<Status, String>, ReadError> {
    let req = session.encode_append_batch(events);
    client.send_frame(serial, &req.buffers);
    read_answer(client, session, serial, req.sent)
}

/// Reads and decodes the answer to a request encoded by `session`.
pub fn read_answer(
    client: &mut RawClient,
    session: &mut ClientSession,
    serial: i32,
    sent: SentRequest,
) -> Result<Result<Status, String>, ReadError> {
    let raw = client.read_frame()?;
    let frame = parse_frame(&raw);
    assert_eq!(frame.serial, serial, "reply serial");
    match session
        .on_response(sent, &frame.message())
        .expect("a well-formed reply")
    {
        ClientReply::Answer { result, .. } => Ok(result),
        other => panic!("unexpected reply {other:?}"),
    }
}

/// Asserts that two event lists are equal, byte for byte (headers and body encodings).
pub fn assert_same_events(got: &[Event], want: &[Event], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: event count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.encoded(), w.encoded(), "{what}: event {i}");
    }
}
