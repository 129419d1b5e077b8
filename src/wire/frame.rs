//! Netty framing of Avro IPC (`NettyTransportCodec`, spec §1.1–§1.3).
//!
//! ```text
//! frame  := serial:i32be  count:i32be  buffer{count}
//! buffer := length:i32be  bytes[length]
//! ```
//!
//! One frame carries one Avro message: the concatenation of its buffers. Buffer boundaries
//! carry no meaning, so any split (including empty buffers) is accepted; `count == 0` is never
//! written because Java's decoder cannot finish such a frame. [`FrameCodec`] enforces
//! configurable caps (Java has none worth the name) and reports typed [`FrameError`]s.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// One Netty data pack: a serial and the buffers of one Avro message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    /// Call serial; a server echoes the request's serial in its reply.
    pub serial: i32,
    /// The message, split into buffers as the peer chose.
    pub buffers: Vec<Bytes>,
}

impl Frame {
    /// A frame from its parts.
    pub fn new(serial: i32, buffers: Vec<Bytes>) -> Frame {
        Frame { serial, buffers }
    }

    /// The Avro message: the concatenation of all buffers. Zero-copy (a refcount bump) when at
    /// most one buffer is non-empty; otherwise this is the one memcpy of the receive path (one
    /// allocation of exactly the message length).
    pub fn message(&self) -> Bytes {
        let mut non_empty = self.buffers.iter().filter(|b| !b.is_empty());
        let Some(first) = non_empty.next() else {
            return Bytes::new();
        };
        if non_empty.next().is_none() {
            return first.clone();
        }
        let mut out = BytesMut::with_capacity(self.message_len());
        for b in &self.buffers {
            out.extend_from_slice(b);
        }
        out.freeze()
    }

    /// Total length of the message (sum of the buffer lengths).
    pub fn message_len(&self) -> usize {
        self.buffers.iter().map(Bytes::len).sum()
    }

    /// Bytes this frame takes on the wire (an empty buffer list is written as one empty buffer).
    pub fn encoded_len(&self) -> usize {
        8 + 4 * self.buffers.len().max(1) + self.message_len()
    }

    /// Appends the wire form to `dst` without any caps. A frame with no buffers is written with
    /// one empty buffer (`count == 1`), never `count == 0`.
    ///
    /// # Panics
    /// If a buffer or the buffer count exceeds `i32::MAX` (impossible for messages built by this
    /// crate; [`FrameCodec`]'s encoder checks and returns an error instead).
    pub fn encode_into(&self, dst: &mut BytesMut) {
        dst.reserve(self.encoded_len());
        dst.put_i32(self.serial);
        if self.buffers.is_empty() {
            dst.put_i32(1);
            dst.put_i32(0);
            return;
        }
        dst.put_i32(i32::try_from(self.buffers.len()).expect("buffer count fits in i32"));
        for b in &self.buffers {
            dst.put_i32(i32::try_from(b.len()).expect("buffer length fits in i32"));
            dst.put_slice(b);
        }
    }

    /// The wire form as a new `Bytes` (tests, benches, fuzzing).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out.freeze()
    }
}

/// Caps applied by [`FrameCodec`] to every decoded and encoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Most buffers one frame may declare (default 65,536; Java writes one per 8 KiB).
    pub max_buffers: usize,
    /// Longest single buffer in bytes (default 64 MiB).
    pub max_buffer_len: usize,
    /// Most message bytes (sum of buffer lengths) in one frame (default 64 MiB).
    pub max_frame_bytes: usize,
}

impl FrameLimits {
    /// Default cap on the buffer count.
    pub const DEFAULT_MAX_BUFFERS: usize = 65_536;
    /// Default cap on one buffer's length.
    pub const DEFAULT_MAX_BUFFER_LEN: usize = 64 << 20;
    /// Default cap on a frame's message bytes.
    pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 << 20;
}

impl Default for FrameLimits {
    fn default() -> Self {
        FrameLimits {
            max_buffers: Self::DEFAULT_MAX_BUFFERS,
            max_buffer_len: Self::DEFAULT_MAX_BUFFER_LEN,
            max_frame_bytes: Self::DEFAULT_MAX_FRAME_BYTES,
        }
    }
}

/// Why a byte stream is not an acceptable Netty frame. The byte-cap variants are
/// [recoverable](FrameError::is_recoverable) (the decoder skips that frame); every other variant
/// except `Io` means the stream is out of sync (or hostile): the connection should be closed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The buffer count was zero (Java would hang) — usually a peer speaking another framing.
    #[error("frame {serial}: buffer count is 0 (a Netty Avro peer never sends that; framing or compression mismatch?)")]
    ZeroCount {
        /// The frame's call serial (the first 4 bytes), as read.
        serial: i32,
    },
    /// The buffer count was negative.
    #[error("frame {serial}: negative buffer count {count} (framing or compression mismatch?)")]
    NegativeCount {
        /// The frame's call serial (the first 4 bytes), as read.
        serial: i32,
        /// The buffer count as read (below 0).
        count: i32,
    },
    /// More buffers than [`FrameLimits::max_buffers`].
    #[error("frame {serial}: {count} buffers exceed the limit of {max}")]
    TooManyBuffers {
        /// The frame's call serial (the first 4 bytes), as read.
        serial: i32,
        /// The buffer count as read.
        count: usize,
        /// The configured cap, [`FrameLimits::max_buffers`].
        max: usize,
    },
    /// A buffer length was negative.
    #[error("frame {serial}: buffer {index} has negative length {len}")]
    NegativeLength {
        /// The frame's call serial (the first 4 bytes), as read.
        serial: i32,
        /// Which buffer of the frame, from 0.
        index: usize,
        /// The length as read (below 0).
        len: i32,
    },
    /// A buffer longer than [`FrameLimits::max_buffer_len`].
    #[error("frame {serial}: buffer {index} of {len} bytes exceeds the limit of {max} bytes")]
    BufferTooLarge {
        /// The frame's call serial (the first 4 bytes), as read.
        serial: i32,
        /// Which buffer of the frame, from 0.
        index: usize,
        /// The buffer's declared length in bytes.
        len: usize,
        /// The configured cap in bytes, [`FrameLimits::max_buffer_len`].
        max: usize,
    },
    /// The frame's message would exceed [`FrameLimits::max_frame_bytes`].
    #[error("frame {serial}: message of at least {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The frame's call serial (the first 4 bytes), as read.
        serial: i32,
        /// A lower bound on the message's size in bytes: the declared buffer lengths read so
        /// far.
        len: usize,
        /// The configured cap in bytes, [`FrameLimits::max_frame_bytes`].
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("connection closed inside a frame ({buffered} byte(s) of an incomplete frame)")]
    TruncatedAtEof {
        /// Bytes of the unfinished frame received before the end of the stream.
        buffered: usize,
    },
    /// An I/O error from the underlying transport.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// True for a frame that is well-formed but over a byte cap ([`FrameError::BufferTooLarge`],
    /// [`FrameError::FrameTooLarge`]) — something a Java peer would have accepted. After such an
    /// error the decoder is in *discard* mode: calling `decode` again drops the rest of that
    /// frame as it arrives (never buffering it) and then decodes the following frames, so a
    /// server can answer the frame's serial with an error and keep the connection. Every other
    /// error leaves the stream out of sync: close the connection.
    pub fn is_recoverable(&self) -> bool {
        matches!(
            self,
            FrameError::BufferTooLarge { .. } | FrameError::FrameTooLarge { .. }
        )
    }

    /// The serial of the frame the error is about, when known.
    pub fn serial(&self) -> Option<i32> {
        match self {
            FrameError::ZeroCount { serial }
            | FrameError::NegativeCount { serial, .. }
            | FrameError::TooManyBuffers { serial, .. }
            | FrameError::NegativeLength { serial, .. }
            | FrameError::BufferTooLarge { serial, .. }
            | FrameError::FrameTooLarge { serial, .. } => Some(*serial),
            FrameError::TruncatedAtEof { .. } | FrameError::Io(_) => None,
        }
    }
}

/// Progress through the frame being decoded.
#[derive(Debug, Default)]
enum DecodeState {
    /// Waiting for the 8-byte frame header.
    #[default]
    Header,
    /// Header read; collecting buffers.
    Buffers {
        serial: i32,
        count: usize,
        buffers: Vec<Bytes>,
        total: usize,
    },
    /// A frame over the byte caps is being skipped without buffering it (see
    /// [`FrameError::is_recoverable`]): `buffers_left` buffers remain, the current one still has
    /// `in_buffer` bytes to drop (`None`: its length header comes next).
    Discard {
        buffers_left: usize,
        in_buffer: Option<usize>,
    },
}

/// `tokio_util` codec for Netty-framed Avro IPC: decodes [`Frame`]s, encodes `Frame`s.
///
/// Decoding is incremental (a partial frame is kept, never re-scanned) and each buffer is cut out
/// of the read buffer with `split_to().freeze()` — no other per-buffer allocation.
#[derive(Debug, Default)]
pub struct FrameCodec {
    limits: FrameLimits,
    state: DecodeState,
}

impl FrameCodec {
    /// A codec with the default [`FrameLimits`].
    pub fn new() -> FrameCodec {
        FrameCodec::default()
    }

    /// A codec with the given caps.
    pub fn with_limits(limits: FrameLimits) -> FrameCodec {
        FrameCodec {
            limits,
            state: DecodeState::Header,
        }
    }

    /// The caps in force.
    pub fn limits(&self) -> FrameLimits {
        self.limits
    }

    /// True when part of a frame has been consumed (or is being discarded) and the rest has not
    /// arrived; a server uses it to tell a stalled request from an idle connection.
    pub fn is_mid_frame(&self) -> bool {
        !matches!(self.state, DecodeState::Header)
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        loop {
            match &mut self.state {
                DecodeState::Header => {
                    if src.len() < 8 {
                        src.reserve(8 - src.len());
                        return Ok(None);
                    }
                    let serial = i32::from_be_bytes([src[0], src[1], src[2], src[3]]);
                    let count = i32::from_be_bytes([src[4], src[5], src[6], src[7]]);
                    if count == 0 {
                        return Err(FrameError::ZeroCount { serial });
                    }
                    if count < 0 {
                        return Err(FrameError::NegativeCount { serial, count });
                    }
                    let count = count as usize;
                    if count > self.limits.max_buffers {
                        return Err(FrameError::TooManyBuffers {
                            serial,
                            count,
                            max: self.limits.max_buffers,
                        });
                    }
                    src.advance(8);
                    self.state = DecodeState::Buffers {
                        serial,
                        count,
                        buffers: Vec::with_capacity(count.min(1024)),
                        total: 0,
                    };
                }
                DecodeState::Buffers {
                    serial,
                    count,
                    buffers,
                    total,
                } => {
                    while buffers.len() < *count {
                        if src.len() < 4 {
                            src.reserve(4 - src.len());
                            return Ok(None);
                        }
                        let len = i32::from_be_bytes([src[0], src[1], src[2], src[3]]);
                        let index = buffers.len();
                        if len < 0 {
                            return Err(FrameError::NegativeLength {
                                serial: *serial,
                                index,
                                len,
                            });
                        }
                        let len = len as usize;
                        let over = if len > self.limits.max_buffer_len {
                            Some(FrameError::BufferTooLarge {
                                serial: *serial,
                                index,
                                len,
                                max: self.limits.max_buffer_len,
                            })
                        } else if *total + len > self.limits.max_frame_bytes {
                            Some(FrameError::FrameTooLarge {
                                serial: *serial,
                                len: *total + len,
                                max: self.limits.max_frame_bytes,
                            })
                        } else {
                            None
                        };
                        if let Some(err) = over {
                            // Recoverable: skip this buffer and the rest of the frame.
                            src.advance(4);
                            self.state = DecodeState::Discard {
                                buffers_left: *count - index,
                                in_buffer: Some(len),
                            };
                            return Err(err);
                        }
                        if src.len() < 4 + len {
                            src.reserve(4 + len - src.len());
                            return Ok(None);
                        }
                        src.advance(4);
                        buffers.push(src.split_to(len).freeze());
                        *total += len;
                    }
                    let frame = Frame {
                        serial: *serial,
                        buffers: std::mem::take(buffers),
                    };
                    self.state = DecodeState::Header;
                    return Ok(Some(frame));
                }
                DecodeState::Discard {
                    buffers_left,
                    in_buffer,
                } => {
                    if let Some(left) = in_buffer {
                        let n = (*left).min(src.len());
                        src.advance(n);
                        *left -= n;
                        if *left > 0 {
                            return Ok(None);
                        }
                        *in_buffer = None;
                        *buffers_left -= 1;
                    }
                    if *buffers_left == 0 {
                        self.state = DecodeState::Header;
                        continue;
                    }
                    if src.len() < 4 {
                        return Ok(None);
                    }
                    let len = i32::from_be_bytes([src[0], src[1], src[2], src[3]]);
                    if len < 0 {
                        return Err(FrameError::NegativeLength {
                            serial: 0,
                            index: 0,
                            len,
                        });
                    }
                    src.advance(4);
                    *in_buffer = Some(len as usize);
                }
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None => {
                let partial = !matches!(self.state, DecodeState::Header);
                if src.is_empty() && !partial {
                    Ok(None)
                } else {
                    Err(FrameError::TruncatedAtEof {
                        buffered: src.len(),
                    })
                }
            }
        }
    }
}

impl FrameCodec {
    fn check_encode(&self, serial: i32, buffers: &[Bytes]) -> Result<(), FrameError> {
        if buffers.len() > self.limits.max_buffers {
            return Err(FrameError::TooManyBuffers {
                serial,
                count: buffers.len(),
                max: self.limits.max_buffers,
            });
        }
        let mut total = 0usize;
        for (index, b) in buffers.iter().enumerate() {
            if b.len() > self.limits.max_buffer_len || b.len() > i32::MAX as usize {
                return Err(FrameError::BufferTooLarge {
                    serial,
                    index,
                    len: b.len(),
                    max: self.limits.max_buffer_len.min(i32::MAX as usize),
                });
            }
            total += b.len();
        }
        if total > self.limits.max_frame_bytes {
            return Err(FrameError::FrameTooLarge {
                serial,
                len: total,
                max: self.limits.max_frame_bytes,
            });
        }
        Ok(())
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    /// Writes the frame (copying its buffers into `dst`); an empty buffer list becomes one empty
    /// buffer. Fails with the same caps as decoding, so we never send what we would refuse.
    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encode(&frame, dst)
    }
}

impl Encoder<&Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.check_encode(frame.serial, &frame.buffers)?;
        frame.encode_into(dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(serial: i32, bufs: &[&[u8]]) -> Frame {
        Frame::new(
            serial,
            bufs.iter().map(|b| Bytes::copy_from_slice(b)).collect(),
        )
    }

    #[test]
    fn round_trips_and_waits_for_every_byte() {
        let f = frame(7, &[b"abc", b"", b"defg"]);
        let wire = f.to_bytes();
        assert_eq!(wire.len(), f.encoded_len());
        let mut codec = FrameCodec::new();
        let mut src = BytesMut::new();
        for (i, b) in wire.iter().enumerate() {
            src.put_u8(*b);
            let got = codec.decode(&mut src).unwrap();
            if i + 1 < wire.len() {
                assert!(got.is_none(), "frame completed early at byte {i}");
            } else {
                assert_eq!(got.unwrap(), f);
            }
        }
        assert_eq!(f.message(), Bytes::from_static(b"abcdefg"));
    }

    #[test]
    fn message_is_zero_copy_for_a_single_non_empty_buffer() {
        let body = Bytes::from(vec![1u8; 100]);
        let f = Frame::new(1, vec![Bytes::new(), body.clone(), Bytes::new()]);
        assert_eq!(f.message().as_ptr(), body.as_ptr());
        assert!(Frame::new(1, vec![]).message().is_empty());
    }

    #[test]
    fn oversized_frames_are_discarded_and_decoding_resumes() {
        let limits = FrameLimits {
            max_buffers: 16,
            max_buffer_len: 8,
            max_frame_bytes: 10,
        };
        let big_buffer = frame(5, &[b"ab", b"0123456789abcdef", b"xyz"]);
        let big_frame = frame(6, &[b"abcdefgh", b"ijklmnop"]);
        let ok = frame(7, &[b"fine", b"too"]);
        let mut wire = BytesMut::new();
        big_buffer.encode_into(&mut wire);
        big_frame.encode_into(&mut wire);
        ok.encode_into(&mut wire);
        for chunk in [1, 3, wire.len()] {
            let mut codec = FrameCodec::with_limits(limits);
            let mut src = BytesMut::new();
            let mut got = Vec::new();
            let mut errors = Vec::new();
            for piece in wire.chunks(chunk) {
                src.extend_from_slice(piece);
                loop {
                    match codec.decode(&mut src) {
                        Ok(Some(f)) => got.push(f),
                        Ok(None) => break,
                        Err(e) => {
                            assert!(e.is_recoverable(), "{e}");
                            errors.push(e.serial());
                        }
                    }
                }
                // A discarded frame is never buffered.
                assert!(src.len() <= chunk.max(8) + 8, "buffered {}", src.len());
            }
            assert_eq!(errors, [Some(5), Some(6)], "chunk {chunk}");
            assert!(!codec.is_mid_frame());
            assert_eq!(got, std::slice::from_ref(&ok), "chunk {chunk}");
            assert!(codec.decode_eof(&mut src).unwrap().is_none());
        }
        let e = FrameCodec::with_limits(limits)
            .decode(&mut BytesMut::from(&[0u8, 0, 0, 1, 0, 0, 0, 17][..]))
            .unwrap_err();
        assert!(!e.is_recoverable());
    }

    #[test]
    fn empty_frames_are_written_with_one_empty_buffer() {
        let wire = Frame::new(3, vec![]).to_bytes();
        assert_eq!(&wire[..], &[0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0]);
    }
}
