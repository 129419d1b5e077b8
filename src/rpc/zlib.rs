//! Flume's `compression-type = deflate` as a stream layer: one zlib (RFC 1950) stream per
//! connection and direction, exactly as Netty's `JZlibEncoder`/`JZlibDecoder` (Flume ≥ 1.10) and
//! `ZlibEncoder`/`ZlibDecoder` (Flume ≤ 1.9) put it on the wire (spec §1.6).
//!
//! * **Outbound**: bytes written are deflated at the configured level (0–9). Every
//!   [`poll_flush`](AsyncWrite::poll_flush) that follows new data ends the pending output with a
//!   `Z_SYNC_FLUSH` (the empty stored block `00 00 FF FF`), so the peer can inflate everything
//!   written so far. The frame writer above flushes once per frame, which reproduces Netty's
//!   one-sync-flush-per-frame output. [`poll_shutdown`](AsyncWrite::poll_shutdown) writes
//!   `Z_FINISH` (final block and Adler-32 trailer) and then shuts the inner stream down.
//! * **Inbound**: the peer's single zlib stream is inflated incrementally; frames may span
//!   inflate outputs; any valid zlib header is accepted (JZlib's level bits differ from zlib's);
//!   EOF without the trailer is a clean end of stream (Java peers usually just close).
//! * **Deflate bombs**: inflated bytes go straight into the caller's buffer, never into an
//!   internal one, and at most one fixed-size block of compressed input is buffered. A reader
//!   that reads in small pieces (the frame codec, which caps frame sizes) therefore never holds
//!   more than its own buffer, however well the input compresses.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Compressed input buffered from the inner stream (one block; output is never buffered).
const IN_BUF: usize = 16 * 1024;
/// Most uncompressed input accepted by one `poll_write` (bounds the pending output).
const MAX_WRITE_CHUNK: usize = 64 * 1024;
/// Pending compressed output above which `poll_write` first drains to the inner stream.
const OUT_HIGH_WATER: usize = 64 * 1024;

/// Where the outbound side is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteState {
    /// Accepting data.
    Open,
    /// `Z_FINISH` has been produced; draining then shutting the inner stream down.
    Finishing,
    /// Inner stream shut down.
    Closed,
}

/// A zlib layer over any byte stream: deflates what is written, inflates what is read.
///
/// Construct with [`ZlibStream::new`]; see the module docs for the exact flush behaviour.
pub struct ZlibStream<S> {
    inner: S,
    // ---- outbound ----
    compress: Compress,
    /// Compressed bytes not yet written to `inner` (`out[out_pos..]`).
    out: Vec<u8>,
    out_pos: usize,
    /// Data was deflated since the last sync flush.
    dirty: bool,
    write_state: WriteState,
    // ---- inbound ----
    decompress: Decompress,
    input: Box<[u8]>,
    in_start: usize,
    in_end: usize,
    /// The inner stream reported EOF.
    inner_eof: bool,
    /// The zlib stream ended (trailer seen); further input is ignored, as Netty does.
    stream_end: bool,
    /// The last inflate call filled the caller's buffer: the inflater may hold more output
    /// that needs no further input.
    maybe_pending: bool,
}

impl<S> std::fmt::Debug for ZlibStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZlibStream")
            .field("deflated_in", &self.compress.total_in())
            .field("deflated_out", &self.compress.total_out())
            .field("inflated_in", &self.decompress.total_in())
            .field("inflated_out", &self.decompress.total_out())
            .field("pending_out", &(self.out.len() - self.out_pos))
            .finish()
    }
}

impl<S> ZlibStream<S> {
    /// Wraps `inner`; outbound data is deflated at `level` (0–9, clamped; Flume's default is 6).
    pub fn new(inner: S, level: u32) -> ZlibStream<S> {
        ZlibStream {
            inner,
            compress: Compress::new(Compression::new(level.min(9)), true),
            out: Vec::with_capacity(8 * 1024),
            out_pos: 0,
            dirty: false,
            write_state: WriteState::Open,
            decompress: Decompress::new(true),
            input: vec![0u8; IN_BUF].into_boxed_slice(),
            in_start: 0,
            in_end: 0,
            inner_eof: false,
            stream_end: false,
            maybe_pending: false,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped stream, mutably (writing to it directly corrupts the zlib stream).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Uncompressed bytes written so far.
    pub fn total_written(&self) -> u64 {
        self.compress.total_in()
    }

    /// Compressed bytes produced so far.
    pub fn total_compressed_out(&self) -> u64 {
        self.compress.total_out()
    }

    /// Compressed bytes consumed from the peer so far.
    pub fn total_compressed_in(&self) -> u64 {
        self.decompress.total_in()
    }

    /// Uncompressed bytes read so far.
    pub fn total_read(&self) -> u64 {
        self.decompress.total_out()
    }

    /// Runs the deflater over `input` with `flush` until it has consumed all of it and (for
    /// sync/finish) emitted everything, appending to `self.out`.
    fn deflate(&mut self, mut input: &[u8], flush: FlushCompress) -> io::Result<()> {
        loop {
            if self.out.capacity() - self.out.len() < 1024 {
                self.out
                    .reserve(input.len().clamp(8 * 1024, MAX_WRITE_CHUNK) + 1024);
            }
            let before_in = self.compress.total_in();
            let before_len = self.out.len();
            let spare = self.out.capacity() - self.out.len();
            let status = self
                .compress
                .compress_vec(input, &mut self.out, flush)
                .map_err(|e| io::Error::other(format!("zlib deflate failed: {e}")))?;
            let consumed = (self.compress.total_in() - before_in) as usize;
            input = &input[consumed..];
            let produced = self.out.len() - before_len;
            match flush {
                FlushCompress::Finish if status == Status::StreamEnd => return Ok(()),
                FlushCompress::Finish => {}
                // Done when all input is taken and the output buffer was not filled (a full
                // buffer may mean the flush marker is still pending inside the deflater).
                _ if input.is_empty() && produced < spare => return Ok(()),
                _ => {}
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> ZlibStream<S> {
    /// Writes pending compressed output to the inner stream until none is left.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_pos < self.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.out_pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "zlib layer: the underlying stream accepted no bytes",
                )));
            }
            self.out_pos += n;
        }
        self.out.clear();
        self.out_pos = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ZlibStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if this.stream_end {
                return Poll::Ready(Ok(()));
            }
            if this.in_start < this.in_end || this.maybe_pending {
                let avail = buf.remaining();
                let before_in = this.decompress.total_in();
                let before_out = this.decompress.total_out();
                let status = this
                    .decompress
                    .decompress(
                        &this.input[this.in_start..this.in_end],
                        buf.initialize_unfilled(),
                        FlushDecompress::None,
                    )
                    .map_err(|e| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!(
                                "zlib inflate failed after {} compressed bytes: {e} (is the peer \
                                 using compression-type = deflate, and the same TLS/zlib layer order?)",
                                this.decompress.total_in()
                            ),
                        )
                    })?;
                this.in_start += (this.decompress.total_in() - before_in) as usize;
                let produced = (this.decompress.total_out() - before_out) as usize;
                this.maybe_pending = produced == avail;
                if status == Status::StreamEnd {
                    this.stream_end = true;
                }
                if produced > 0 {
                    buf.advance(produced);
                    return Poll::Ready(Ok(()));
                }
                if this.stream_end {
                    return Poll::Ready(Ok(()));
                }
            }
            // Need more compressed input.
            if this.inner_eof {
                // EOF without (or in the middle of) the trailer: Java peers close without
                // Z_FINISH routinely; a truncated frame is reported by the frame codec above.
                return Poll::Ready(Ok(()));
            }
            if this.in_start == this.in_end {
                this.in_start = 0;
                this.in_end = 0;
            } else if this.in_end == this.input.len() {
                // The inflater kept a partial symbol at the end: move it to the front.
                this.input.copy_within(this.in_start..this.in_end, 0);
                this.in_end -= this.in_start;
                this.in_start = 0;
            }
            let mut rb = ReadBuf::new(&mut this.input[this.in_end..]);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            if n == 0 {
                this.inner_eof = true;
            }
            this.in_end += n;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ZlibStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.write_state != WriteState::Open {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "zlib layer: write after shutdown",
            )));
        }
        if this.out.len() - this.out_pos >= OUT_HIGH_WATER {
            ready!(this.poll_drain(cx))?;
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let chunk = &buf[..buf.len().min(MAX_WRITE_CHUNK)];
        this.deflate(chunk, FlushCompress::None)?;
        this.dirty = true;
        Poll::Ready(Ok(chunk.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.dirty && this.write_state == WriteState::Open {
            this.deflate(&[], FlushCompress::Sync)?;
            this.dirty = false;
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.write_state == WriteState::Open {
            this.deflate(&[], FlushCompress::Finish)?;
            this.dirty = false;
            this.write_state = WriteState::Finishing;
        }
        if this.write_state == WriteState::Finishing {
            ready!(this.poll_drain(cx))?;
            ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
            ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.write_state = WriteState::Closed;
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn every_flush_ends_with_sync_marker_and_round_trips() {
        let (a, b) = tokio::io::duplex(1 << 20);
        let mut w = ZlibStream::new(a, 6);
        let mut raw = b;
        let mut sent = Vec::new();
        let mut wire = Vec::new();
        for i in 0..20u32 {
            let msg = vec![(i % 7) as u8 + b'a'; 100 + i as usize * 37];
            w.write_all(&msg).await.unwrap();
            w.flush().await.unwrap();
            sent.extend_from_slice(&msg);
            let mut chunk = vec![0u8; 1 << 16];
            let n = raw.read(&mut chunk).await.unwrap();
            assert!(n >= 4);
            assert_eq!(&chunk[n - 4..n], &[0, 0, 0xff, 0xff], "flush {i}");
            wire.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(&wire[..2], &[0x78, 0x9c]);
        let mut d = flate2::read::ZlibDecoder::new(&wire[..]);
        let mut out = Vec::new();
        // The stream has no trailer yet: read until the decoder reports the truncation.
        let _ = std::io::Read::read_to_end(&mut d, &mut out);
        assert_eq!(out, sent);
    }

    #[tokio::test]
    async fn flushed_data_is_readable_without_more_input() {
        // The writer stays open: everything up to the sync flush must come out of the reader
        // even when it reads in pieces much smaller than the inflater's pending output.
        let (a, b) = tokio::io::duplex(1 << 20);
        let mut w = ZlibStream::new(a, 9);
        let msg = vec![b'z'; 200_000];
        w.write_all(&msg).await.unwrap();
        w.flush().await.unwrap();
        let mut r = ZlibStream::new(b, 6);
        let mut got = 0;
        let mut piece = [0u8; 1000];
        while got < msg.len() {
            let n = tokio::time::timeout(std::time::Duration::from_secs(10), r.read(&mut piece))
                .await
                .expect("flushed data must not wait for more input")
                .unwrap();
            assert!(n > 0);
            assert!(piece[..n].iter().all(|&c| c == b'z'));
            got += n;
        }
        assert_eq!(got, msg.len());
        drop(w);
    }

    #[tokio::test]
    async fn flush_without_new_data_writes_nothing() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let mut w = ZlibStream::new(a, 6);
        w.write_all(b"x").await.unwrap();
        w.flush().await.unwrap();
        let before = w.total_compressed_out();
        w.flush().await.unwrap();
        assert_eq!(w.total_compressed_out(), before);
        w.shutdown().await.unwrap();
        let mut all = Vec::new();
        b.read_to_end(&mut all).await.unwrap();
        let mut d = flate2::read::ZlibDecoder::new(&all[..]);
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut d, &mut out).unwrap();
        assert_eq!(out, b"x");
    }
}
