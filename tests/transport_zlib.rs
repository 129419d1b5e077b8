//! The zlib layer against a real Flume 1.11 deflate capture, large round trips in small chunks,
//! the per-flush sync marker, and a deflate bomb read with bounded memory.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use flate2::{Compress, Compression, FlushCompress};
use sluicegate::rpc::ZlibStream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};

const CAPTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/compat-tests/fixtures/sdk-appendbatch-deflate.json"
);

/// Serves bytes from a source in pieces of at most `step` bytes.
struct Trickle<F: FnMut(&mut [u8]) -> usize> {
    fill: F,
    step: usize,
}

impl<F: FnMut(&mut [u8]) -> usize + Unpin> AsyncRead for Trickle<F> {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let n = buf.remaining().min(this.step);
        let dst = buf.initialize_unfilled_to(n);
        let got = (this.fill)(dst);
        buf.advance(got);
        Poll::Ready(Ok(()))
    }
}

fn trickle(data: Vec<u8>, step: usize) -> Trickle<impl FnMut(&mut [u8]) -> usize + Unpin> {
    let mut pos = 0;
    Trickle {
        fill: move |dst: &mut [u8]| {
            let n = dst.len().min(data.len() - pos);
            dst[..n].copy_from_slice(&data[pos..pos + n]);
            pos += n;
            n
        },
        step,
    }
}

fn capture() -> (Vec<u8>, Vec<u8>) {
    let text = std::fs::read_to_string(CAPTURE).expect("capture fixture");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let conn = &v["connections"][0];
    let c2s = hex::decode(conn["client_to_server_hex"].as_str().unwrap()).unwrap();
    let s2c = hex::decode(conn["server_to_client_hex"].as_str().unwrap()).unwrap();
    (c2s, s2c)
}

/// Splits inflated bytes into Netty frames: `(serial, [buffer lengths], frame bytes)`.
fn frames(mut b: &[u8]) -> Vec<(i32, Vec<usize>, Vec<u8>)> {
    let be = |x: &[u8]| i32::from_be_bytes([x[0], x[1], x[2], x[3]]);
    let mut out = Vec::new();
    while !b.is_empty() {
        let start = b;
        let serial = be(&b[0..4]);
        let count = be(&b[4..8]) as usize;
        let mut p = 8;
        let mut lens = Vec::new();
        for _ in 0..count {
            let len = be(&b[p..p + 4]) as usize;
            lens.push(len);
            p += 4 + len;
        }
        assert!(p <= b.len(), "truncated frame");
        out.push((serial, lens, start[..p].to_vec()));
        b = &b[p..];
    }
    out
}

async fn inflate_all(compressed: Vec<u8>, step: usize, read_piece: usize) -> Vec<u8> {
    let mut z = ZlibStream::new(trickle(compressed, step), 6);
    let mut out = Vec::new();
    let mut piece = vec![0u8; read_piece];
    loop {
        let n = z.read(&mut piece).await.expect("inflate");
        if n == 0 {
            break;
        }
        out.extend_from_slice(&piece[..n]);
    }
    out
}

#[tokio::test]
async fn real_flume_capture_inflates_to_the_expected_frames() {
    let (c2s, s2c) = capture();
    assert_eq!(&c2s[..2], &[0x78, 0x9c]);
    // Each frame ends with a sync flush in the capture too.
    assert!(c2s.windows(4).filter(|w| *w == [0, 0, 0xff, 0xff]).count() >= 2);

    for (step, piece) in [(usize::MAX, 1 << 16), (1, 3), (7, 1), (13, 64)] {
        let plain = inflate_all(c2s.clone(), step, piece).await;
        let f = frames(&plain);
        assert_eq!(f.len(), 2, "step {step}");
        // Serial 1: handshake + appendBatch (3 events); serial 2: appendBatch only.
        assert_eq!(&f[0].2[..8], &[0, 0, 0, 1, 0, 0, 0, 2]);
        assert_eq!(&f[1].2[..8], &[0, 0, 0, 2, 0, 0, 0, 2]);
        assert_eq!(f[0].1, vec![48, 224]);
        assert_eq!(f[1].1, vec![13, 224]);
        // The handshake's first field is the client protocol MD5 (fixed 16 bytes) after the
        // frame and buffer headers; the call names appendBatch.
        let first = String::from_utf8_lossy(&f[0].2);
        assert!(first.contains("appendBatch"));
        assert!(String::from_utf8_lossy(&f[1].2).contains("appendBatch"));
        assert_eq!(plain.len(), 541);

        let plain = inflate_all(s2c.clone(), step, piece).await;
        let f = frames(&plain);
        assert_eq!(f.len(), 2);
        assert_eq!(&f[0].2[..8], &[0, 0, 0, 1, 0, 0, 0, 3]);
        assert_eq!(&f[1].2[..8], &[0, 0, 0, 2, 0, 0, 0, 3]);
        assert_eq!(f[0].1, vec![4, 1, 2]);
        assert_eq!(f[1].1, vec![0, 1, 2]);
        // Both responses are Status OK: metadata map end (0), no error (0), enum index 0.
        assert_eq!(&f[1].2[f[1].2.len() - 2..], &[0, 0]);
    }
}

#[tokio::test]
async fn our_deflate_output_is_what_flume_inflates() {
    // Re-compress the server's plaintext frames, one flush per frame, and check the result
    // inflates to the same frames with a sync marker after each (what JZlibDecoder expects).
    let (_, s2c) = capture();
    let plain = inflate_all(s2c, usize::MAX, 1 << 16).await;
    let f = frames(&plain);
    let (a, mut b) = tokio::io::duplex(1 << 20);
    let mut w = ZlibStream::new(a, 6);
    let mut wire = Vec::new();
    for (_, _, bytes) in &f {
        w.write_all(bytes).await.unwrap();
        w.flush().await.unwrap();
        let mut chunk = vec![0u8; 4096];
        let n = b.read(&mut chunk).await.unwrap();
        assert_eq!(&chunk[n - 4..n], &[0, 0, 0xff, 0xff]);
        wire.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(
        &wire[..2],
        &[0x78, 0x9c],
        "level 6 header as JZlib writes it"
    );
    w.shutdown().await.unwrap();
    let mut tail = Vec::new();
    b.read_to_end(&mut tail).await.unwrap();
    wire.extend_from_slice(&tail);
    let mut d = flate2::read::ZlibDecoder::new(&wire[..]);
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut d, &mut out).expect("complete zlib stream with trailer");
    assert_eq!(out, plain);
}

#[tokio::test]
async fn large_round_trip_in_small_chunks_all_levels() {
    let mut data = Vec::with_capacity(3 << 20);
    let mut x: u32 = 12345;
    while data.len() < (3 << 20) {
        // Mixed compressible and random-ish content.
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        if x.is_multiple_of(3) {
            data.extend_from_slice(b"flume event body with some repeated text ");
        } else {
            data.extend_from_slice(&x.to_le_bytes());
        }
    }
    for (level, chunk) in [(0u32, 1usize), (1, 97), (6, 4096), (9, 65_537)] {
        let (a, b) = tokio::io::duplex(8 * 1024);
        let to_send = data.clone();
        let writer = tokio::spawn(async move {
            let mut w = ZlibStream::new(a, level);
            // chunk 1 is slow in debug builds: use it for the first 64 KiB only.
            let limit = if chunk == 1 { 64 * 1024 } else { to_send.len() };
            for (i, c) in to_send[..limit].chunks(chunk).enumerate() {
                w.write_all(c).await.unwrap();
                if i % 50 == 0 {
                    w.flush().await.unwrap();
                }
            }
            w.write_all(&to_send[limit..]).await.unwrap();
            w.shutdown().await.unwrap();
        });
        let mut r = ZlibStream::new(b, level);
        let mut out = Vec::with_capacity(data.len());
        let mut piece = vec![0u8; chunk.clamp(1, 8192)];
        loop {
            let n = tokio::time::timeout(std::time::Duration::from_secs(60), r.read(&mut piece))
                .await
                .expect("no stall")
                .unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&piece[..n]);
        }
        writer.await.unwrap();
        assert_eq!(out.len(), data.len(), "level {level}");
        assert!(out == data, "level {level} content");
    }
}

fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[tokio::test]
async fn deflate_bomb_is_consumed_with_bounded_memory() {
    // Build a 1 GiB-of-zeros zlib stream without compressing 1 GiB: after a full flush the
    // deflater forgets its history, so every further 1 MiB of zeros compresses to the same
    // byte-aligned block, which is repeated.
    const MIB: usize = 1 << 20;
    const TOTAL_MIB: usize = 1024;
    let zeros = vec![0u8; MIB];
    let mut c = Compress::new(Compression::best(), true);
    let block = |c: &mut Compress| {
        let mut out = Vec::with_capacity(8 * 1024);
        let before = c.total_in();
        c.compress_vec(&zeros, &mut out, FlushCompress::Full)
            .unwrap();
        assert_eq!(c.total_in() - before, MIB as u64);
        out
    };
    let first = block(&mut c);
    let second = block(&mut c);
    let third = block(&mut c);
    assert_eq!(second, third, "blocks after a full flush repeat");
    let compressed_len = first.len() + second.len() * (TOTAL_MIB - 1);
    assert!(compressed_len < 2 * MIB, "a bomb: {compressed_len} bytes");

    let mut emitted = 0usize;
    let mut which = 0usize;
    let source = Trickle {
        fill: move |dst: &mut [u8]| {
            if which >= TOTAL_MIB {
                return 0;
            }
            let cur = if which == 0 { &first } else { &second };
            let n = dst.len().min(cur.len() - emitted);
            dst[..n].copy_from_slice(&cur[emitted..emitted + n]);
            emitted += n;
            if emitted == cur.len() {
                emitted = 0;
                which += 1;
            }
            n
        },
        step: 4096,
    };
    let rss_before = rss_bytes();
    let mut z = ZlibStream::new(source, 6);
    let mut piece = vec![0u8; 16 * 1024];
    let all_zero = vec![0u8; 16 * 1024];
    let mut total: u64 = 0;
    let mut max_rss = 0;
    loop {
        let n = z.read(&mut piece).await.unwrap();
        if n == 0 {
            break;
        }
        assert!(piece[..n] == all_zero[..n]); // memcmp: fast in debug builds
        total += n as u64;
        if total % (64 * MIB as u64) < n as u64 {
            max_rss = max_rss.max(rss_bytes().unwrap_or(0));
        }
    }
    assert_eq!(total, (TOTAL_MIB * MIB) as u64);
    assert_eq!(z.total_read(), total);
    if let Some(before) = rss_before {
        let grown = max_rss.saturating_sub(before);
        assert!(
            grown < 64 * MIB as u64,
            "inflating 1 GiB grew RSS by {grown} bytes"
        );
    }
}

#[tokio::test]
async fn garbage_input_is_an_error_not_a_hang() {
    // A TLS ClientHello where a zlib header is expected (the layer-order mismatch).
    let hello = vec![
        0x16, 0x03, 0x01, 0x00, 0x50, 0x01, 0x00, 0x00, 0x4c, 0x03, 0x03,
    ];
    let mut z = ZlibStream::new(trickle(hello, 64), 6);
    let mut buf = [0u8; 64];
    let e = z.read(&mut buf).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    assert!(e.to_string().contains("zlib inflate failed"), "{e}");
}

#[tokio::test]
async fn eof_without_trailer_is_clean_eof() {
    let (c2s, _) = capture();
    // Cut off the Z_FINISH block and trailer (everything after the last sync marker).
    let last_sync = c2s
        .windows(4)
        .rposition(|w| w == [0, 0, 0xff, 0xff])
        .unwrap()
        + 4;
    let plain = inflate_all(c2s[..last_sync].to_vec(), 5, 100).await;
    assert_eq!(plain.len(), 541);
}
