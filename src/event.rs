//! The event every layer passes around.
//!
//! An [`Event`] is kept in its **Avro binary encoding** as an `AvroFlumeEvent` record
//! (`headers: map<string>`, then `body: bytes`), exactly as it travels inside an `append` or
//! `appendBatch` request. That one choice makes the hot path copy-free end to end:
//!
//! * the Avro source slices events out of the received frame (`Bytes::slice`, no copy);
//! * the file channel writes those bytes verbatim and hands them back as slices of its mmap;
//! * the Avro sink writes them verbatim into the next `appendBatch`.
//!
//! Headers are decoded lazily by [`Event::headers`]. Header strings that are not valid UTF-8 are
//! kept as received (Java's Avro keeps them as raw `Utf8` too) and shown lossily, never rejected,
//! so no event is lost over a bad header.

use std::borrow::Cow;
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::avro::{self, AvroDecodeError};

/// One Flume event: string headers and an opaque body, held in Avro binary form.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Event {
    raw: Bytes,
    body_start: usize,
}

impl Event {
    /// Builds an event from headers and a body, encoding it.
    pub fn new<I, K, V>(headers: I, body: impl AsRef<[u8]>) -> Event
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let body = body.as_ref();
        let mut out = BytesMut::with_capacity(body.len() + 16);
        let mut block: Vec<(K, V)> = headers.into_iter().collect();
        if !block.is_empty() {
            avro::write_long(&mut out, block.len() as i64);
            for (k, v) in block.drain(..) {
                avro::write_str(&mut out, k.as_ref());
                avro::write_str(&mut out, v.as_ref());
            }
        }
        out.put_u8(0);
        avro::write_long(&mut out, body.len() as i64);
        let body_start = out.len();
        out.put_slice(body);
        Event {
            raw: out.freeze(),
            body_start,
        }
    }

    /// An event with no headers.
    pub fn from_body(body: impl AsRef<[u8]>) -> Event {
        Event::new(std::iter::empty::<(&str, &str)>(), body)
    }

    /// Parses one encoded `AvroFlumeEvent` starting at `*pos` in `buf`, advancing `*pos` past it.
    /// Returns the body's byte offset. This is the validation every encoded event goes through.
    #[inline]
    pub fn scan(buf: &[u8], pos: &mut usize) -> Result<usize, AvroDecodeError> {
        loop {
            let n = avro::read_block_count(buf, pos)?;
            if n == 0 {
                break;
            }
            for _ in 0..n {
                avro::read_bytes_range(buf, pos)?;
                avro::read_bytes_range(buf, pos)?;
            }
        }
        let body = avro::read_bytes_range(buf, pos)?;
        Ok(body.start)
    }

    /// Wraps an already-encoded event. `raw` must hold exactly one `AvroFlumeEvent`.
    pub fn from_encoded(raw: Bytes) -> Result<Event, AvroDecodeError> {
        let mut pos = 0;
        let body_start = Event::scan(&raw, &mut pos)?;
        if pos != raw.len() {
            return Err(AvroDecodeError::BadLength {
                at: pos,
                len: (raw.len() - pos) as i64,
            });
        }
        Ok(Event { raw, body_start })
    }

    /// Wraps an encoded event whose layout was already validated by [`Event::scan`].
    /// `body_start` is the offset `scan` returned, relative to `raw`.
    #[inline]
    pub fn from_scanned(raw: Bytes, body_start: usize) -> Event {
        debug_assert!(body_start <= raw.len());
        Event { raw, body_start }
    }

    /// The Avro encoding of this event (headers map + body bytes).
    #[inline]
    pub fn encoded(&self) -> &Bytes {
        &self.raw
    }

    /// Length of the Avro encoding in bytes.
    #[inline]
    pub fn encoded_len(&self) -> usize {
        self.raw.len()
    }

    /// The body.
    #[inline]
    pub fn body(&self) -> &[u8] {
        &self.raw[self.body_start..]
    }

    /// The body as a shared `Bytes` (no copy).
    #[inline]
    pub fn body_bytes(&self) -> Bytes {
        self.raw.slice(self.body_start..)
    }

    /// Iterates over the headers as raw byte pairs, in wire order.
    pub fn headers_raw(&self) -> HeadersRaw<'_> {
        HeadersRaw {
            buf: &self.raw,
            pos: 0,
            left_in_block: 0,
        }
    }

    /// Iterates over the headers as strings (lossy where a header is not UTF-8).
    pub fn headers(&self) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
        self.headers_raw()
            .map(|(k, v)| (String::from_utf8_lossy(k), String::from_utf8_lossy(v)))
    }

    /// The value of header `key` (the last one if repeated, as a Java map keeps it).
    pub fn header(&self, key: &str) -> Option<Cow<'_, str>> {
        self.headers_raw()
            .filter(|(k, _)| *k == key.as_bytes())
            .last()
            .map(|(_, v)| String::from_utf8_lossy(v))
    }

    /// Number of header entries as encoded.
    pub fn header_count(&self) -> usize {
        self.headers_raw().count()
    }

    /// Headers as owned pairs (duplicates collapsed, last wins, first position kept).
    pub fn header_map(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, v) in self.headers() {
            if let Some(slot) = out.iter_mut().find(|(ek, _)| *ek == k) {
                slot.1 = v.into_owned();
            } else {
                out.push((k.into_owned(), v.into_owned()));
            }
        }
        out
    }

    /// A copy of this event with its headers replaced (body shared). Used by interceptors.
    pub fn with_headers<I, K, V>(&self, headers: I) -> Event
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        Event::new(headers, self.body())
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = self.body();
        let shown = &body[..body.len().min(64)];
        f.debug_struct("Event")
            .field("headers", &self.header_map())
            .field("body", &String::from_utf8_lossy(shown))
            .field("body_len", &body.len())
            .finish()
    }
}

/// Iterator over the raw header pairs of an [`Event`].
pub struct HeadersRaw<'a> {
    buf: &'a [u8],
    pos: usize,
    left_in_block: u64,
}

impl<'a> Iterator for HeadersRaw<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        // The layout was validated when the event was built, so decoding cannot fail here;
        // a failure ends the iteration rather than panicking.
        if self.left_in_block == 0 {
            let n = avro::read_block_count(self.buf, &mut self.pos).ok()?;
            if n == 0 {
                // Park at the end so later calls stay finished.
                self.pos = self.buf.len();
                return None;
            }
            self.left_in_block = n;
        }
        let k = avro::read_bytes(self.buf, &mut self.pos).ok()?;
        let v = avro::read_bytes(self.buf, &mut self.pos).ok()?;
        self.left_in_block -= 1;
        Some((k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_matches_the_flume_worked_example() {
        // Spec §2.6: E1 headers {"host":"h1"}, body "ab"; E2 no headers, body "c".
        let e1 = Event::new([("host", "h1")], b"ab");
        assert_eq!(hex::encode(e1.encoded()), "0208686f737404683100046162");
        let e2 = Event::from_body(b"c");
        assert_eq!(hex::encode(e2.encoded()), "000263");
        assert_eq!(e1.body(), b"ab");
        assert_eq!(e1.header("host").as_deref(), Some("h1"));
        assert_eq!(e2.header_count(), 0);
    }

    #[test]
    fn from_encoded_round_trips_and_rejects_trailing_bytes() {
        let e = Event::new([("a", "1"), ("b", "2")], vec![7u8; 300]);
        let back = Event::from_encoded(e.encoded().clone()).unwrap();
        assert_eq!(back, e);
        assert_eq!(
            back.header_map(),
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        let mut extra = e.encoded().to_vec();
        extra.push(0);
        assert!(Event::from_encoded(Bytes::from(extra)).is_err());
    }

    #[test]
    fn negative_block_counts_are_accepted() {
        // headers block of -1 items with byte size 6, then end, then body "x".
        let raw = Bytes::from_static(&[0x01, 0x0c, 0x02, b'k', 0x02, b'v', 0x00, 0x02, b'x']);
        let e = Event::from_encoded(raw).unwrap();
        assert_eq!(e.header("k").as_deref(), Some("v"));
        assert_eq!(e.body(), b"x");
    }

    #[test]
    fn invalid_utf8_headers_are_kept_not_rejected() {
        let raw = Bytes::from_static(&[0x02, 0x02, 0xff, 0x02, b'v', 0x00, 0x00]);
        let e = Event::from_encoded(raw.clone()).unwrap();
        assert_eq!(e.headers_raw().next(), Some((&[0xffu8][..], &b"v"[..])));
        assert_eq!(e.encoded(), &raw);
    }
}
