//! What goes into one bucket file: `hdfs.fileType` × serializer × codec, with Flume's flush
//! points made visible in the bytes.
//!
//! A [`FormatWriter`] is created on an open [`OutFile`] (`afterCreate` happens there: the Avro
//! container header, the SequenceFile header), gets [`FormatWriter::append`] per event and
//! [`FormatWriter::flush`] at every Flume flush point (every `hdfs.batchSize` appends of a bucket
//! and at the end of each sink transaction). A flush ends what the format groups (an Avro block,
//! a gzip member, a SequenceFile sync) and then `hflush`es the file.
//!
//! * `DataStream`: the serializer's bytes, plain.
//!   * `TEXT`: body, then `\n` (`serializer.appendNewline`, default true).
//!   * `header_and_text`: Java's `Map.toString()` of the headers (`{k=v, k=v}`, `{}` when none),
//!     one space, the body, `\n`. Headers in the order a Flume agent's `HashMap` iterates them
//!     ([`super::javamap`]).
//!   * `avro_event`: an Avro object container of Flume's `Event` record (headers map in that same
//!     order, body bytes), metadata `avro.schema` then `avro.codec` (`null` or `deflate`), one
//!     block per flush (or when a block reaches `serializer.syncIntervalBytes`), sync marker
//!     random per file; no footer.
//! * `CompressedStream` + gzip: the same serializer output, as one gzip member per flush with
//!   data: header `1f8b 0800 00000000 00 ff` for the first member (Java's `GZIPOutputStream`) and
//!   `... 00 00` for later ones (Hadoop's reset header), raw deflate level 6, trailer CRC-32 and
//!   size (little-endian). The deflate bytes are flate2's, not zlib's: compare decompressed.
//! * `CompressedStream` + bzip2, snappy, lz4, deflate: the serializer output as one unit of the
//!   codec per flush with data (a bzip2 stream, a Hadoop snappy/LZ4 block, a zlib stream; see
//!   [`super::codec`]).
//! * `SequenceFile` (uncompressed): `SEQ` 6, key and value class names as Hadoop `Text`, two
//!   `false` compression flags, an empty metadata map (int32 0), a random 16-byte sync marker;
//!   records `int32 record length, int32 key length (8), key, value` big-endian; key =
//!   `LongWritable` of the `timestamp` header (the wall clock when absent; a non-number fails the
//!   transaction, as `Long.valueOf` does in Flume); value = `BytesWritable` (int32 length + body,
//!   `writeFormat = Writable`) or `Text` (vint length + body, `writeFormat = Text`). A sync
//!   (`ff ff ff ff` + marker) is written at every flush unless the last thing written was one,
//!   and before an append once 102400 bytes (Hadoop 3's `SYNC_INTERVAL`) passed since the last.
//! * `SequenceFile` with `hdfs.codeC` (Flume opens it with `CompressionType.BLOCK`, as
//!   `SequenceFile.BlockCompressWriter` writes it): both flags `true`, then the codec's class
//!   name as `Text` before the metadata. Records are buffered into four buffers — key lengths
//!   (vints), keys (`LongWritable`), value lengths (vints), values (serialised as above) — and a
//!   block is written at every flush with records, and when keys + values reach 1,000,000 bytes
//!   (`io.seqfile.compress.blocksize`): sync escape + marker, vint record count, then each buffer
//!   compressed as one codec unit behind its vint length. No sync between blocks otherwise.

use std::io::{self, Write};

use flate2::write::DeflateEncoder;
use flate2::{Compression, Crc};
use rand::RngCore;

use super::codec::{Codec, CodecStream};
use super::escape::parse_java_long;
use super::fs::OutFile;
use super::javamap::flume_agent_order;
use crate::avro;
use crate::event::Event;

/// Flume's `FlumeEventAvroEventSerializer` schema.
pub const FLUME_EVENT_SCHEMA: &str = r#"{"type":"record","name":"Event","fields":[{"name":"headers","type":{"type":"map","values":"string"}},{"name":"body","type":"bytes"}]}"#;

/// Hadoop 3's `SequenceFile.SYNC_INTERVAL` (5 × 1024 × 20 bytes).
pub const SEQ_SYNC_INTERVAL: u64 = 102_400;

/// `serializer` for DataStream/CompressedStream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serializer {
    /// `TEXT`.
    Text {
        /// `serializer.appendNewline`.
        append_newline: bool,
    },
    /// `header_and_text`.
    HeaderAndText {
        /// `serializer.appendNewline`.
        append_newline: bool,
    },
    /// `avro_event`.
    AvroEvent {
        /// `serializer.compressionCodec = deflate`.
        deflate: bool,
        /// `serializer.syncIntervalBytes`.
        sync_interval: usize,
    },
}

/// `hdfs.writeFormat` for SequenceFiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFormat {
    /// `Writable`: `BytesWritable` values.
    Writable,
    /// `Text`: `Text` values.
    Text,
}

/// `hdfs.fileType` with what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileFormat {
    /// `DataStream`.
    DataStream(Serializer),
    /// `CompressedStream` with its codec.
    CompressedStream(Serializer, Codec),
    /// `SequenceFile`, block-compressed with the codec when there is one (Flume passes
    /// `CompressionType.BLOCK` with every `hdfs.codeC`).
    SequenceFile(WriteFormat, Option<Codec>),
}

impl FileFormat {
    /// The extension the codec adds when `hdfs.fileSuffix` is empty (Flume appends the codec's
    /// `getDefaultExtension()` for SequenceFiles too).
    pub fn codec_extension(&self) -> &'static str {
        match self {
            FileFormat::CompressedStream(_, c) | FileFormat::SequenceFile(_, Some(c)) => {
                c.extension()
            }
            _ => "",
        }
    }
}

/// Why an event could not be written.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The file could not be written.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A SequenceFile key could not be made from the `timestamp` header.
    #[error(
        "the event's 'timestamp' header '{0}' is not a number (SequenceFile keys are LongWritable)"
    )]
    BadTimestamp(String),
}

/// One open bucket file's encoder.
pub trait FormatWriter: Send {
    /// Writes one event; `now_ms` is the wall clock (SequenceFile keys without a timestamp).
    fn append(&mut self, ev: &Event, now_ms: i64) -> Result<(), FormatError>;
    /// Ends the current group (block, member, sync) and makes the file durable.
    fn flush(&mut self) -> io::Result<()>;
    /// Flushes and closes the file.
    fn close(self: Box<Self>) -> io::Result<()>;
}

/// Opens the writer for `format` on a freshly created file.
pub fn open(format: &FileFormat, out: Box<dyn OutFile>) -> io::Result<Box<dyn FormatWriter>> {
    Ok(match format {
        FileFormat::DataStream(s) => Box::new(StreamWriter::new(s, Stream::Plain(out))?),
        FileFormat::CompressedStream(s, Codec::Gzip) => {
            Box::new(StreamWriter::new(s, Stream::Gzip(Gzip::new(out)))?)
        }
        FileFormat::CompressedStream(s, c) => Box::new(StreamWriter::new(
            s,
            Stream::Codec(Box::new(CodecStream::new(*c, out))),
        )?),
        FileFormat::SequenceFile(wf, c) => Box::new(SeqWriter::new(*wf, *c, out)?),
    })
}

fn random_sync() -> [u8; 16] {
    let mut s = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut s);
    s
}

/// Headers as the Flume agent's `HashMap` iterates them (duplicates: last value wins).
fn ordered_headers(ev: &Event) -> Vec<(String, String)> {
    let map = ev.header_map();
    let keys: Vec<String> = map.iter().map(|(k, _)| k.clone()).collect();
    flume_agent_order(&keys)
        .into_iter()
        .map(|k| {
            let v = map
                .iter()
                .find(|(mk, _)| *mk == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            (k, v)
        })
        .collect()
}

// ------------------------------------------------------------------ streams

struct Gzip {
    out: Box<dyn OutFile>,
    members: u64,
    member: Option<(DeflateEncoder<Vec<u8>>, Crc)>,
}

impl Gzip {
    fn new(out: Box<dyn OutFile>) -> Gzip {
        Gzip {
            out,
            members: 0,
            member: None,
        }
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        if self.member.is_none() {
            let os = if self.members == 0 { 0xff } else { 0x00 };
            self.out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, os])?;
            self.members += 1;
            self.member = Some((
                DeflateEncoder::new(Vec::with_capacity(64 * 1024), Compression::new(6)),
                Crc::new(),
            ));
        }
        if let Some((enc, crc)) = self.member.as_mut() {
            enc.write_all(data)?;
            crc.update(data);
            if enc.get_ref().len() >= 64 * 1024 {
                self.out.write_all(enc.get_ref())?;
                enc.get_mut().clear();
            }
        }
        Ok(())
    }

    fn finish_member(&mut self) -> io::Result<()> {
        if let Some((enc, crc)) = self.member.take() {
            let rest = enc.finish()?;
            self.out.write_all(&rest)?;
            self.out.write_all(&crc.sum().to_le_bytes())?;
            self.out.write_all(&crc.amount().to_le_bytes())?;
        }
        Ok(())
    }
}

enum Stream {
    Plain(Box<dyn OutFile>),
    Gzip(Gzip),
    Codec(Box<CodecStream>),
}

impl Stream {
    fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(o) => o.write_all(b),
            Stream::Gzip(g) => g.write_all(b),
            Stream::Codec(c) => c.write_all(b),
        }
    }

    fn hflush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(o) => o.hflush(),
            Stream::Gzip(g) => {
                g.finish_member()?;
                g.out.hflush()
            }
            Stream::Codec(c) => {
                c.finish_unit()?;
                c.out.hflush()
            }
        }
    }
}

struct AvroState {
    sync: [u8; 16],
    deflate: bool,
    sync_interval: usize,
    block: Vec<u8>,
    count: i64,
}

impl AvroState {
    fn write_block(&mut self, out: &mut Stream) -> io::Result<()> {
        if self.count == 0 {
            return Ok(());
        }
        let data = if self.deflate {
            let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
            e.write_all(&self.block)?;
            e.finish()?
        } else {
            std::mem::take(&mut self.block)
        };
        let mut head = Vec::with_capacity(20);
        avro::write_long(&mut head, self.count);
        avro::write_long(&mut head, data.len() as i64);
        out.write_all(&head)?;
        out.write_all(&data)?;
        out.write_all(&self.sync)?;
        self.block.clear();
        self.count = 0;
        Ok(())
    }
}

struct StreamWriter {
    ser: Serializer,
    out: Stream,
    avro: Option<AvroState>,
    line: Vec<u8>,
}

impl StreamWriter {
    fn new(ser: &Serializer, out: Stream) -> io::Result<StreamWriter> {
        let mut w = StreamWriter {
            ser: ser.clone(),
            out,
            avro: None,
            line: Vec::with_capacity(1024),
        };
        if let Serializer::AvroEvent {
            deflate,
            sync_interval,
        } = ser
        {
            let st = AvroState {
                sync: random_sync(),
                deflate: *deflate,
                sync_interval: *sync_interval,
                block: Vec::new(),
                count: 0,
            };
            let mut head = Vec::with_capacity(200);
            head.extend_from_slice(b"Obj\x01");
            avro::write_long(&mut head, 2);
            avro::write_str(&mut head, "avro.schema");
            avro::write_bytes(&mut head, FLUME_EVENT_SCHEMA.as_bytes());
            avro::write_str(&mut head, "avro.codec");
            avro::write_bytes(&mut head, if *deflate { b"deflate" } else { b"null" });
            avro::write_long(&mut head, 0);
            head.extend_from_slice(&st.sync);
            w.out.write_all(&head)?;
            w.avro = Some(st);
        }
        Ok(w)
    }
}

impl FormatWriter for StreamWriter {
    fn append(&mut self, ev: &Event, _now_ms: i64) -> Result<(), FormatError> {
        match &self.ser {
            Serializer::Text { append_newline } => {
                self.out.write_all(ev.body())?;
                if *append_newline {
                    self.out.write_all(b"\n")?;
                }
            }
            Serializer::HeaderAndText { append_newline } => {
                self.line.clear();
                self.line.push(b'{');
                for (i, (k, v)) in ordered_headers(ev).iter().enumerate() {
                    if i > 0 {
                        self.line.extend_from_slice(b", ");
                    }
                    self.line.extend_from_slice(k.as_bytes());
                    self.line.push(b'=');
                    self.line.extend_from_slice(v.as_bytes());
                }
                self.line.extend_from_slice(b"} ");
                self.line.extend_from_slice(ev.body());
                if *append_newline {
                    self.line.push(b'\n');
                }
                self.out.write_all(&self.line)?;
            }
            Serializer::AvroEvent { .. } => {
                if let Some(st) = self.avro.as_mut() {
                    let h = ordered_headers(ev);
                    if !h.is_empty() {
                        avro::write_long(&mut st.block, h.len() as i64);
                        for (k, v) in &h {
                            avro::write_str(&mut st.block, k);
                            avro::write_str(&mut st.block, v);
                        }
                    }
                    avro::write_long(&mut st.block, 0);
                    avro::write_bytes(&mut st.block, ev.body());
                    st.count += 1;
                    if st.block.len() >= st.sync_interval {
                        st.write_block(&mut self.out)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(st) = self.avro.as_mut() {
            st.write_block(&mut self.out)?;
        }
        self.out.hflush()
    }

    fn close(mut self: Box<Self>) -> io::Result<()> {
        self.flush()
    }
}

// ------------------------------------------------------------------ SequenceFile

/// Hadoop's `WritableUtils.writeVLong`.
pub fn write_hadoop_vlong(out: &mut Vec<u8>, v: i64) {
    if (-112..=127).contains(&v) {
        out.push(v as u8);
        return;
    }
    let (mut len, i) = if v < 0 { (-120i32, !v) } else { (-112i32, v) };
    let mut tmp = i;
    while tmp != 0 {
        tmp >>= 8;
        len -= 1;
    }
    out.push(len as i8 as u8);
    let n = if len < -120 {
        -(len + 120)
    } else {
        -(len + 112)
    };
    for idx in (0..n).rev() {
        out.push((i >> (idx * 8)) as u8);
    }
}

fn hadoop_text(out: &mut Vec<u8>, s: &[u8]) {
    write_hadoop_vlong(out, s.len() as i64);
    out.extend_from_slice(s);
}

/// Hadoop's `io.seqfile.compress.blocksize` default: a block is written once its keys and values
/// reach this many bytes.
pub const SEQ_COMPRESS_BLOCK: usize = 1_000_000;

/// A block-compressed SequenceFile's open block (`SequenceFile.BlockCompressWriter`).
struct SeqBlock {
    codec: Codec,
    records: i64,
    key_lens: Vec<u8>,
    keys: Vec<u8>,
    val_lens: Vec<u8>,
    vals: Vec<u8>,
}

struct SeqWriter {
    out: Box<dyn OutFile>,
    format: WriteFormat,
    sync: [u8; 16],
    pos: u64,
    last_sync: u64,
    rec: Vec<u8>,
    block: Option<SeqBlock>,
}

impl SeqWriter {
    fn new(
        format: WriteFormat,
        codec: Option<Codec>,
        mut out: Box<dyn OutFile>,
    ) -> io::Result<SeqWriter> {
        let sync = random_sync();
        let mut h = Vec::with_capacity(160);
        h.extend_from_slice(b"SEQ\x06");
        hadoop_text(&mut h, b"org.apache.hadoop.io.LongWritable");
        hadoop_text(
            &mut h,
            match format {
                WriteFormat::Writable => b"org.apache.hadoop.io.BytesWritable",
                WriteFormat::Text => b"org.apache.hadoop.io.Text",
            },
        );
        match codec {
            None => h.extend_from_slice(&[0, 0]),
            Some(c) => {
                h.extend_from_slice(&[1, 1]);
                hadoop_text(&mut h, c.class_name().as_bytes());
            }
        }
        h.extend_from_slice(&0i32.to_be_bytes());
        h.extend_from_slice(&sync);
        out.write_all(&h)?;
        Ok(SeqWriter {
            out,
            format,
            sync,
            pos: h.len() as u64,
            last_sync: 0,
            rec: Vec::with_capacity(1024),
            block: codec.map(|codec| SeqBlock {
                codec,
                records: 0,
                key_lens: Vec::new(),
                keys: Vec::new(),
                val_lens: Vec::new(),
                vals: Vec::new(),
            }),
        })
    }

    fn sync(&mut self) -> io::Result<()> {
        if self.last_sync != self.pos {
            self.out.write_all(&(-1i32).to_be_bytes())?;
            self.out.write_all(&self.sync)?;
            self.pos += 20;
            self.last_sync = self.pos;
        }
        Ok(())
    }

    /// Writes the open block: sync, vint record count, then the key lengths, keys, value
    /// lengths and values, each compressed as one unit behind its vint length.
    fn write_block(&mut self) -> io::Result<()> {
        let Some(b) = self.block.as_ref() else {
            return Ok(());
        };
        if b.records == 0 {
            return Ok(());
        }
        let mut head = Vec::with_capacity(8);
        write_hadoop_vlong(&mut head, b.records);
        let mut units = Vec::with_capacity(4);
        for buf in [&b.key_lens, &b.keys, &b.val_lens, &b.vals] {
            units.push(b.codec.compress_unit(buf)?);
        }
        self.sync()?;
        self.out.write_all(&head)?;
        self.pos += head.len() as u64;
        for u in &units {
            head.clear();
            write_hadoop_vlong(&mut head, u.len() as i64);
            self.out.write_all(&head)?;
            self.out.write_all(u)?;
            self.pos += (head.len() + u.len()) as u64;
        }
        if let Some(b) = self.block.as_mut() {
            b.records = 0;
            b.key_lens.clear();
            b.keys.clear();
            b.val_lens.clear();
            b.vals.clear();
        }
        Ok(())
    }
}

impl FormatWriter for SeqWriter {
    fn append(&mut self, ev: &Event, now_ms: i64) -> Result<(), FormatError> {
        let key = match ev.header("timestamp") {
            Some(t) => {
                parse_java_long(&t).ok_or_else(|| FormatError::BadTimestamp(t.into_owned()))?
            }
            None => now_ms,
        };
        let body = ev.body();
        if let Some(b) = self.block.as_mut() {
            b.keys.extend_from_slice(&key.to_be_bytes());
            write_hadoop_vlong(&mut b.key_lens, 8);
            let before = b.vals.len();
            match self.format {
                WriteFormat::Writable => {
                    b.vals.extend_from_slice(&(body.len() as i32).to_be_bytes());
                    b.vals.extend_from_slice(body);
                }
                WriteFormat::Text => hadoop_text(&mut b.vals, body),
            }
            write_hadoop_vlong(&mut b.val_lens, (b.vals.len() - before) as i64);
            b.records += 1;
            if b.keys.len() + b.vals.len() >= SEQ_COMPRESS_BLOCK {
                self.write_block()?;
            }
            return Ok(());
        }
        if self.pos >= self.last_sync + SEQ_SYNC_INTERVAL {
            self.sync()?;
        }
        self.rec.clear();
        self.rec.extend_from_slice(&[0; 8]); // lengths, filled below
        self.rec.extend_from_slice(&key.to_be_bytes());
        match self.format {
            WriteFormat::Writable => {
                self.rec
                    .extend_from_slice(&(body.len() as i32).to_be_bytes());
                self.rec.extend_from_slice(body);
            }
            WriteFormat::Text => hadoop_text(&mut self.rec, body),
        }
        let rec_len = (self.rec.len() - 8) as i32;
        self.rec[0..4].copy_from_slice(&rec_len.to_be_bytes());
        self.rec[4..8].copy_from_slice(&8i32.to_be_bytes());
        self.out.write_all(&self.rec)?;
        self.pos += self.rec.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.block.is_some() {
            self.write_block()?;
        } else {
            self.sync()?;
        }
        self.out.hflush()
    }

    fn close(mut self: Box<Self>) -> io::Result<()> {
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Mem(Arc<Mutex<(Vec<u8>, usize)>>);
    impl Write for Mem {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().0.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl OutFile for Mem {
        fn hflush(&mut self) -> io::Result<()> {
            self.0.lock().unwrap().1 += 1;
            Ok(())
        }
    }
    impl Mem {
        fn bytes(&self) -> Vec<u8> {
            self.0.lock().unwrap().0.clone()
        }
    }

    #[test]
    fn vints_are_hadoops() {
        let enc = |v| {
            let mut o = Vec::new();
            write_hadoop_vlong(&mut o, v);
            o
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(127), [127]);
        assert_eq!(enc(-112), [0x90]);
        assert_eq!(enc(200), [0x8f, 0xc8]);
        assert_eq!(enc(300), [0x8e, 0x01, 0x2c]);
        assert_eq!(enc(-113), [0x87, 0x70]);
        assert_eq!(enc(1 << 40), [0x8a, 1, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn text_and_header_and_text_lines() {
        let m = Mem::default();
        let mut w = open(
            &FileFormat::DataStream(Serializer::HeaderAndText {
                append_newline: true,
            }),
            Box::new(m.clone()),
        )
        .unwrap();
        w.append(&Event::new([("host", "a"), ("k", "x, y")], "body"), 0)
            .unwrap();
        w.append(&Event::from_body(""), 0).unwrap();
        w.close().unwrap();
        let s = String::from_utf8(m.bytes()).unwrap();
        assert!(
            s == "{host=a, k=x, y} body\n{} \n" || s == "{k=x, y, host=a} body\n{} \n",
            "{s}"
        );
        let m = Mem::default();
        let mut w = open(
            &FileFormat::DataStream(Serializer::Text {
                append_newline: false,
            }),
            Box::new(m.clone()),
        )
        .unwrap();
        w.append(&Event::from_body("a"), 0).unwrap();
        w.append(&Event::from_body("b"), 0).unwrap();
        w.flush().unwrap();
        assert_eq!(m.bytes(), b"ab");
    }

    #[test]
    fn gzip_writes_one_member_per_flush_with_data() {
        let m = Mem::default();
        let mut w = open(
            &FileFormat::CompressedStream(
                Serializer::Text {
                    append_newline: true,
                },
                Codec::Gzip,
            ),
            Box::new(m.clone()),
        )
        .unwrap();
        w.append(&Event::from_body("one"), 0).unwrap();
        w.flush().unwrap();
        w.flush().unwrap(); // nothing new: no empty member
        w.append(&Event::from_body("two"), 0).unwrap();
        w.close().unwrap();
        let b = m.bytes();
        assert_eq!(&b[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
        let mut d = flate2::read::MultiGzDecoder::new(&b[..]);
        let mut s = String::new();
        io::Read::read_to_string(&mut d, &mut s).unwrap();
        assert_eq!(s, "one\ntwo\n");
        // The second member starts right after the first, with OS byte 0.
        let mut first = flate2::read::GzDecoder::new(&b[..]);
        let mut one = Vec::new();
        io::Read::read_to_end(&mut first, &mut one).unwrap();
        assert_eq!(one, b"one\n");
        let second_start = b
            .windows(4)
            .skip(1)
            .position(|w| w == [0x1f, 0x8b, 8, 0])
            .unwrap()
            + 1;
        assert_eq!(b[second_start + 9], 0);
    }

    #[test]
    fn sequence_file_syncs_on_flush_and_every_interval() {
        let m = Mem::default();
        let mut w = open(
            &FileFormat::SequenceFile(WriteFormat::Writable, None),
            Box::new(m.clone()),
        )
        .unwrap();
        let ev = Event::new([("timestamp", "1700000001000")], "seq event 01");
        w.append(&ev, 0).unwrap();
        w.flush().unwrap();
        w.flush().unwrap(); // already synced: nothing
        let b = m.bytes();
        assert_eq!(b.len(), 95 + 32 + 20);
        assert_eq!(&b[..4], b"SEQ\x06");
        assert_eq!(&b[95..103], &[0, 0, 0, 0x18, 0, 0, 0, 8]);
        assert_eq!(&b[103..111], &1_700_000_001_000i64.to_be_bytes());
        assert_eq!(&b[111..115], &[0, 0, 0, 12]);
        assert_eq!(&b[127..131], &[0xff; 4]);
        assert_eq!(&b[131..147], &b[79..95]);
        // Without a timestamp the wall clock is the key; a bad one is an error.
        w.append(&Event::from_body("x"), 42).unwrap();
        assert!(matches!(
            w.append(&Event::new([("timestamp", "soon")], "x"), 0),
            Err(FormatError::BadTimestamp(_))
        ));
        // 102400 bytes after the last sync an append first writes a sync.
        let m = Mem::default();
        let mut w = open(
            &FileFormat::SequenceFile(WriteFormat::Text, None),
            Box::new(m.clone()),
        )
        .unwrap();
        let body = vec![b'x'; 1000];
        let ev = Event::new([("timestamp", "1")], &body);
        let rec = 8 + 8 + 3 + 1000;
        let mut n = 0;
        while 86 + n * rec < SEQ_SYNC_INTERVAL as usize {
            w.append(&ev, 0).unwrap();
            n += 1;
        }
        assert_eq!(m.bytes().len(), 86 + n * rec);
        w.append(&ev, 0).unwrap();
        let b = m.bytes();
        assert_eq!(&b[86 + n * rec..86 + n * rec + 4], &[0xff; 4]);
        assert_eq!(b.len(), 86 + n * rec + 20 + rec);
    }

    /// Reads a Hadoop vint at `b[*i..]`.
    fn read_vlong(b: &[u8], i: &mut usize) -> i64 {
        let first = b[*i] as i8;
        *i += 1;
        if first >= -112 {
            return first as i64;
        }
        let (neg, n) = if first < -120 {
            (true, -(first as i32 + 120))
        } else {
            (false, -(first as i32 + 112))
        };
        let mut v: i64 = 0;
        for _ in 0..n {
            v = (v << 8) | b[*i] as i64;
            *i += 1;
        }
        if neg {
            !v
        } else {
            v
        }
    }

    #[test]
    fn block_compressed_sequence_file_has_hadoops_header_and_blocks() {
        for codec in [Codec::Bzip2, Codec::Snappy, Codec::Default, Codec::Gzip] {
            let m = Mem::default();
            let mut w = open(
                &FileFormat::SequenceFile(WriteFormat::Writable, Some(codec)),
                Box::new(m.clone()),
            )
            .unwrap();
            let evs: Vec<Event> = (0..5)
                .map(|i| {
                    Event::new(
                        [("timestamp", (1000 + i).to_string().as_str())],
                        vec![b'a' + i as u8; i],
                    )
                })
                .collect();
            for e in &evs[..3] {
                w.append(e, 0).unwrap();
            }
            w.flush().unwrap();
            w.flush().unwrap(); // nothing buffered: no block, no sync
            for e in &evs[3..] {
                w.append(e, 0).unwrap();
            }
            w.close().unwrap();
            let b = m.bytes();
            let mut i = 4;
            let mut texts = Vec::new();
            for n in 0..3 {
                if n == 2 {
                    // Compressed, block-compressed; then the codec's class name.
                    assert_eq!(&b[i..i + 2], &[1, 1]);
                    i += 2;
                }
                let n = read_vlong(&b, &mut i) as usize;
                texts.push(String::from_utf8(b[i..i + n].to_vec()).unwrap());
                i += n;
            }
            assert_eq!(&b[..4], b"SEQ\x06");
            assert_eq!(
                texts,
                [
                    "org.apache.hadoop.io.LongWritable",
                    "org.apache.hadoop.io.BytesWritable",
                    codec.class_name()
                ]
            );
            i += 4; // empty metadata
            let sync = b[i..i + 16].to_vec();
            i += 16;
            let mut blocks = Vec::new();
            while i < b.len() {
                assert_eq!(&b[i..i + 4], &[0xff; 4]);
                assert_eq!(&b[i + 4..i + 20], &sync[..]);
                i += 20;
                let records = read_vlong(&b, &mut i);
                let mut bufs = Vec::new();
                for _ in 0..4 {
                    let n = read_vlong(&b, &mut i) as usize;
                    let unit = &b[i..i + n];
                    i += n;
                    let mut d = Vec::new();
                    match codec {
                        Codec::Bzip2 => {
                            io::Read::read_to_end(&mut bzip2::read::BzDecoder::new(unit), &mut d)
                        }
                        Codec::Gzip => {
                            io::Read::read_to_end(&mut flate2::read::GzDecoder::new(unit), &mut d)
                        }
                        Codec::Default => {
                            io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(unit), &mut d)
                        }
                        _ => {
                            let total = u32::from_be_bytes(unit[..4].try_into().unwrap());
                            let clen = u32::from_be_bytes(unit[4..8].try_into().unwrap());
                            assert_eq!(clen as usize, unit.len() - 8);
                            d = snap::raw::Decoder::new()
                                .decompress_vec(&unit[8..])
                                .unwrap();
                            assert_eq!(d.len(), total as usize);
                            Ok(0)
                        }
                    }
                    .unwrap();
                    bufs.push(d);
                }
                blocks.push((records, bufs));
            }
            assert_eq!(blocks.len(), 2, "{codec:?}: one block per flush with data");
            let mut got = Vec::new();
            for (records, bufs) in &blocks {
                let (mut kl, mut vl, mut k, mut v) = (0, 0, 0, 0);
                for _ in 0..*records {
                    assert_eq!(read_vlong(&bufs[0], &mut kl), 8);
                    let key = i64::from_be_bytes(bufs[1][k..k + 8].try_into().unwrap());
                    k += 8;
                    let n = read_vlong(&bufs[2], &mut vl) as usize;
                    let val = &bufs[3][v..v + n];
                    v += n;
                    assert_eq!(&val[..4], &((n - 4) as u32).to_be_bytes());
                    got.push((key, val[4..].to_vec()));
                }
            }
            let want: Vec<(i64, Vec<u8>)> = evs
                .iter()
                .map(|e| {
                    (
                        e.header("timestamp").unwrap().parse().unwrap(),
                        e.body().to_vec(),
                    )
                })
                .collect();
            assert_eq!(got, want, "{codec:?}");
        }
    }

    #[test]
    fn avro_container_has_one_block_per_flush() {
        let m = Mem::default();
        let mut w = open(
            &FileFormat::DataStream(Serializer::AvroEvent {
                deflate: false,
                sync_interval: 2_048_000,
            }),
            Box::new(m.clone()),
        )
        .unwrap();
        assert_eq!(m.bytes().len(), 185, "header written at create");
        w.flush().unwrap();
        assert_eq!(m.bytes().len(), 185, "no empty block");
        w.append(&Event::from_body("a"), 0).unwrap();
        w.append(&Event::new([("k", "v")], "bc"), 0).unwrap();
        w.flush().unwrap();
        let b = m.bytes();
        // count 2, size, records: {} "a" / {k:v} "bc", then the sync marker.
        let rec = [0u8, 2, b'a', 2, 2, b'k', 2, b'v', 0, 4, b'b', b'c'];
        assert_eq!(&b[185..187], &[4, (rec.len() * 2) as u8]);
        assert_eq!(&b[187..187 + rec.len()], &rec);
        assert_eq!(&b[187 + rec.len()..], &b[169..185]);
    }
}
