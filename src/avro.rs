//! Avro binary primitives: zig-zag varints, length-prefixed bytes and strings, map/array
//! block headers. Pure functions over byte slices and `Vec<u8>`/`BytesMut`, no allocation on
//! the decode side. Every decode error names the byte offset where it happened.
//!
//! This module sits at the very bottom of the crate (it imports nothing from it): both
//! [`crate::event`] (an event is kept in its Avro encoding) and [`crate::wire`] (Flume's RPC
//! messages) build on it.

use bytes::BufMut;

/// Why a slice of bytes is not valid Avro binary at some offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AvroDecodeError {
    /// The input ended inside a value.
    #[error("truncated Avro data: needed {needed} more byte(s) at offset {at}")]
    UnexpectedEof {
        /// Byte offset into the decoded slice where the missing bytes should have been.
        at: usize,
        /// How many more bytes the value needed (at least).
        needed: usize,
    },
    /// A varint ran past 10 bytes (longs) or 5 bytes (ints), or overflowed.
    #[error("malformed Avro varint at offset {at}")]
    BadVarint {
        /// Byte offset into the decoded slice where the bad value starts.
        at: usize,
    },
    /// A length prefix was negative or larger than what is left.
    #[error("bad Avro length {len} at offset {at}")]
    BadLength {
        /// Byte offset into the decoded slice where the bad value starts.
        at: usize,
        /// The length prefix as decoded.
        len: i64,
    },
    /// An int value outside i32.
    #[error("Avro int out of range at offset {at}")]
    IntOutOfRange {
        /// Byte offset into the decoded slice where the bad value starts.
        at: usize,
    },
    /// A union branch, enum index or boolean byte with no meaning here.
    #[error("unexpected Avro {what} value {value} at offset {at}")]
    BadTag {
        /// Byte offset into the decoded slice where the bad value starts.
        at: usize,
        /// What kind of tag was expected (`union branch`, `boolean`, ...).
        what: &'static str,
        /// The value as decoded.
        value: i64,
    },
    /// A string that must be UTF-8 is not.
    #[error("invalid UTF-8 in Avro string at offset {at}")]
    InvalidUtf8 {
        /// Byte offset into the decoded slice where the string's bytes start.
        at: usize,
    },
}

/// Reads one zig-zag varint long at `*pos`, advancing `*pos`.
#[inline]
pub fn read_long(buf: &[u8], pos: &mut usize) -> Result<i64, AvroDecodeError> {
    let start = *pos;
    let mut value: u64 = 0;
    let mut shift = 0u32;
    loop {
        let Some(&b) = buf.get(*pos) else {
            return Err(AvroDecodeError::UnexpectedEof {
                at: *pos,
                needed: 1,
            });
        };
        *pos += 1;
        if shift == 63 && b > 1 {
            return Err(AvroDecodeError::BadVarint { at: start });
        }
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return Err(AvroDecodeError::BadVarint { at: start });
        }
    }
    Ok(((value >> 1) as i64) ^ -((value & 1) as i64))
}

/// Reads one zig-zag varint int (must fit in i32).
#[inline]
pub fn read_int(buf: &[u8], pos: &mut usize) -> Result<i32, AvroDecodeError> {
    let at = *pos;
    let v = read_long(buf, pos)?;
    i32::try_from(v).map_err(|_| AvroDecodeError::IntOutOfRange { at })
}

/// Reads a length prefix that must be `0..=remaining`.
#[inline]
fn read_len(buf: &[u8], pos: &mut usize) -> Result<usize, AvroDecodeError> {
    let at = *pos;
    let len = read_long(buf, pos)?;
    let remaining = buf.len() - *pos;
    if len < 0 {
        return Err(AvroDecodeError::BadLength { at, len });
    }
    if len as u64 > remaining as u64 {
        return Err(AvroDecodeError::UnexpectedEof {
            at: *pos,
            needed: (len as usize) - remaining,
        });
    }
    Ok(len as usize)
}

/// Reads Avro `bytes`, returning the byte range it occupies in `buf`.
#[inline]
pub fn read_bytes_range(
    buf: &[u8],
    pos: &mut usize,
) -> Result<std::ops::Range<usize>, AvroDecodeError> {
    let len = read_len(buf, pos)?;
    let start = *pos;
    *pos += len;
    Ok(start..start + len)
}

/// Reads Avro `bytes` as a borrowed slice.
#[inline]
pub fn read_bytes<'a>(buf: &'a [u8], pos: &mut usize) -> Result<&'a [u8], AvroDecodeError> {
    let r = read_bytes_range(buf, pos)?;
    Ok(&buf[r])
}

/// Reads an Avro `string` that must be valid UTF-8.
#[inline]
pub fn read_str<'a>(buf: &'a [u8], pos: &mut usize) -> Result<&'a str, AvroDecodeError> {
    let at = *pos;
    let b = read_bytes(buf, pos)?;
    std::str::from_utf8(b).map_err(|_| AvroDecodeError::InvalidUtf8 { at })
}

/// Reads a map/array block header. Returns the item count of the block (0 = end).
/// A negative count (followed by the block's byte size) is normalised to its absolute value.
#[inline]
pub fn read_block_count(buf: &[u8], pos: &mut usize) -> Result<u64, AvroDecodeError> {
    let at = *pos;
    let count = read_long(buf, pos)?;
    if count < 0 {
        let size_at = *pos;
        let size = read_long(buf, pos)?;
        if size < 0 {
            return Err(AvroDecodeError::BadLength {
                at: size_at,
                len: size,
            });
        }
        return count
            .checked_neg()
            .map(|c| c as u64)
            .ok_or(AvroDecodeError::BadLength { at, len: count });
    }
    Ok(count as u64)
}

/// Reads a union branch index and checks it is below `branches`.
#[inline]
pub fn read_union_index(
    buf: &[u8],
    pos: &mut usize,
    branches: i64,
) -> Result<i64, AvroDecodeError> {
    let at = *pos;
    let idx = read_long(buf, pos)?;
    if !(0..branches).contains(&idx) {
        return Err(AvroDecodeError::BadTag {
            at,
            what: "union branch",
            value: idx,
        });
    }
    Ok(idx)
}

/// Reads a fixed-size value.
#[inline]
pub fn read_fixed<'a>(
    buf: &'a [u8],
    pos: &mut usize,
    n: usize,
) -> Result<&'a [u8], AvroDecodeError> {
    let remaining = buf.len() - *pos;
    if remaining < n {
        return Err(AvroDecodeError::UnexpectedEof {
            at: *pos,
            needed: n - remaining,
        });
    }
    let s = &buf[*pos..*pos + n];
    *pos += n;
    Ok(s)
}

/// Reads an Avro boolean (one byte, 0 or 1).
#[inline]
pub fn read_bool(buf: &[u8], pos: &mut usize) -> Result<bool, AvroDecodeError> {
    let at = *pos;
    match read_fixed(buf, pos, 1)?[0] {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(AvroDecodeError::BadTag {
            at,
            what: "boolean",
            value: i64::from(v),
        }),
    }
}

/// Number of bytes `write_long(v)` produces.
#[inline]
pub fn long_len(v: i64) -> usize {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut n = 1;
    while z >= 0x80 {
        z >>= 7;
        n += 1;
    }
    n
}

/// Appends a zig-zag varint long.
#[inline]
pub fn write_long<B: BufMut + ?Sized>(out: &mut B, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.put_u8((z as u8) | 0x80);
        z >>= 7;
    }
    out.put_u8(z as u8);
}

/// Appends Avro `bytes` (length + data).
#[inline]
pub fn write_bytes<B: BufMut + ?Sized>(out: &mut B, b: &[u8]) {
    write_long(out, b.len() as i64);
    out.put_slice(b);
}

/// Appends an Avro `string`.
#[inline]
pub fn write_str<B: BufMut + ?Sized>(out: &mut B, s: &str) {
    write_bytes(out, s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_the_edges() {
        for v in [
            0i64,
            -1,
            1,
            63,
            -64,
            64,
            i32::MAX as i64,
            i32::MIN as i64,
            i64::MAX,
            i64::MIN,
        ] {
            let mut out = Vec::new();
            write_long(&mut out, v);
            assert_eq!(out.len(), long_len(v));
            let mut pos = 0;
            assert_eq!(read_long(&out, &mut pos).unwrap(), v);
            assert_eq!(pos, out.len());
        }
    }

    #[test]
    fn known_encodings_match_the_avro_spec() {
        let mut out = Vec::new();
        write_long(&mut out, 11);
        assert_eq!(out, [0x16]);
        out.clear();
        write_long(&mut out, 667);
        assert_eq!(out, [0xb6, 0x0a]);
    }

    #[test]
    fn overlong_and_truncated_varints_are_errors() {
        let mut pos = 0;
        assert!(matches!(
            read_long(&[0xff; 11], &mut pos),
            Err(AvroDecodeError::BadVarint { .. })
        ));
        let mut pos = 0;
        assert!(matches!(
            read_long(&[0x80], &mut pos),
            Err(AvroDecodeError::UnexpectedEof { .. })
        ));
    }

    #[test]
    fn lengths_past_the_end_or_negative_are_errors() {
        let mut pos = 0;
        assert!(matches!(
            read_bytes(&[0x08, 1, 2], &mut pos),
            Err(AvroDecodeError::UnexpectedEof { .. })
        ));
        let mut pos = 0;
        assert!(matches!(
            read_bytes(&[0x01], &mut pos),
            Err(AvroDecodeError::BadLength { .. })
        ));
    }
}
