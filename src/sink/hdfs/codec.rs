//! `hdfs.codeC`: Hadoop's compression codecs, written the way Hadoop's own codec classes write
//! them, so Hadoop, Hive and Spark read the files with the codec named by the extension (or by
//! the SequenceFile header).
//!
//! # Names
//!
//! As Flume's `HDFSEventSink.getCodec`: a codec matches its full class name, its simple class
//! name, or the simple name without `Codec`, case-insensitively (`bzip2`, `BZip2Codec`,
//! `org.apache.hadoop.io.compress.BZip2Codec`). `None` means no codec. `lzo`/`lzop` (the GPL
//! hadoop-lzo add-on), `zstd` (Hadoop's `ZStandardCodec` needs libhadoop and libzstd on every
//! reader) and anything else are refused with the list of what is supported.
//!
//! | codec | class | extension | one stream unit |
//! |---|---|---|---|
//! | `default` | `DefaultCodec` | `.deflate` | a zlib stream (RFC 1950: `78 9c`, deflate, Adler-32) |
//! | `deflate` | `DeflateCodec` | `.deflate` | the same bytes as `default` |
//! | `gzip` | `GzipCodec` | `.gz` | a gzip member (RFC 1952) |
//! | `bzip2` | `BZip2Codec` | `.bz2` | a bzip2 stream `BZh9` (900 k blocks, as `CBZip2OutputStream`) |
//! | `snappy` | `SnappyCodec` | `.snappy` | Hadoop block framing of raw snappy (not snappy's framing format) |
//! | `lz4` | `Lz4Codec` | `.lz4` | Hadoop block framing of raw LZ4 blocks (not the LZ4 frame format) |
//!
//! # Where a unit ends
//!
//! A `CompressedStream` ends the codec's stream at every flush (Flume's
//! `HDFSCompressedDataStream.sync` calls `finish()`, the next append `resetState()`), so a file is
//! a concatenation of units, one per flush that had data: gzip members, zlib streams, bzip2
//! streams (Hadoop's reader, Python's `bz2` and `bzip2 -d` read concatenated streams), or
//! snappy/LZ4 blocks. A block-compressed SequenceFile compresses each of a block's four buffers
//! as one unit (see [`super::format`]).
//!
//! # Hadoop's block framing (`BlockCompressorStream`, for snappy and LZ4)
//!
//! A block is `int32 BE uncompressed length`, then one or more `int32 BE compressed length +
//! compressed bytes` chunks, each chunk compressing at most `MAX_INPUT` bytes: the codec's buffer
//! (256 KiB) less its overhead allowance — snappy `256 Ki - (256 Ki / 6 + 32)` = 218422, LZ4
//! `256 Ki - (256 Ki / 255 + 16)` = 261100. Writes are collected into the open block; a write that
//! would take it past `MAX_INPUT` first closes it, and a single write larger than `MAX_INPUT`
//! becomes a block of its own with one chunk per `MAX_INPUT` bytes. A flush closes the open block.
//! One deliberate difference: a flush right after such an oversized write writes nothing, where
//! Hadoop writes an empty block (`00000000`), which Hadoop's own `BlockDecompressorStream` takes
//! for the end of the file — the rest of the file would be lost to readers.

use std::io::{self, Write};

use flate2::write::{GzEncoder, ZlibEncoder};
use flate2::Compression;

use super::fs::OutFile;

/// A Hadoop compression codec this build writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// `org.apache.hadoop.io.compress.DefaultCodec` (zlib).
    Default,
    /// `org.apache.hadoop.io.compress.DeflateCodec` (zlib, same bytes as `DefaultCodec`).
    Deflate,
    /// `org.apache.hadoop.io.compress.GzipCodec`.
    Gzip,
    /// `org.apache.hadoop.io.compress.BZip2Codec`.
    Bzip2,
    /// `org.apache.hadoop.io.compress.SnappyCodec`.
    Snappy,
    /// `org.apache.hadoop.io.compress.Lz4Codec`.
    Lz4,
}

const ALL: [Codec; 6] = [
    Codec::Default,
    Codec::Deflate,
    Codec::Gzip,
    Codec::Bzip2,
    Codec::Snappy,
    Codec::Lz4,
];

/// Snappy's `MAX_INPUT` in Hadoop's block framing (see the module docs).
pub const SNAPPY_MAX_INPUT: usize = 256 * 1024 - (256 * 1024 / 6 + 32);
/// LZ4's `MAX_INPUT` in Hadoop's block framing.
pub const LZ4_MAX_INPUT: usize = 256 * 1024 - (256 * 1024 / 255 + 16);

impl Codec {
    /// Hadoop's class name (written into SequenceFile headers).
    pub fn class_name(self) -> &'static str {
        match self {
            Codec::Default => "org.apache.hadoop.io.compress.DefaultCodec",
            Codec::Deflate => "org.apache.hadoop.io.compress.DeflateCodec",
            Codec::Gzip => "org.apache.hadoop.io.compress.GzipCodec",
            Codec::Bzip2 => "org.apache.hadoop.io.compress.BZip2Codec",
            Codec::Snappy => "org.apache.hadoop.io.compress.SnappyCodec",
            Codec::Lz4 => "org.apache.hadoop.io.compress.Lz4Codec",
        }
    }

    /// `getDefaultExtension()`: what Flume appends to file names when `hdfs.fileSuffix` is empty.
    pub fn extension(self) -> &'static str {
        match self {
            Codec::Default | Codec::Deflate => ".deflate",
            Codec::Gzip => ".gz",
            Codec::Bzip2 => ".bz2",
            Codec::Snappy => ".snappy",
            Codec::Lz4 => ".lz4",
        }
    }

    /// The short name `hdfs.codeC` takes (`gzip`, `bzip2`, ...), for messages.
    pub fn short_name(self) -> &'static str {
        match self {
            Codec::Default => "default",
            Codec::Deflate => "deflate",
            Codec::Gzip => "gzip",
            Codec::Bzip2 => "bzip2",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
        }
    }

    fn simple_name(self) -> &'static str {
        self.class_name().rsplit('.').next().unwrap_or_default()
    }

    /// Parses `hdfs.codeC` as Flume matches it; `Ok(None)` for `None`.
    pub fn parse(name: &str) -> Result<Option<Codec>, String> {
        let n = name.trim();
        if n.eq_ignore_ascii_case("none") {
            return Ok(None);
        }
        for c in ALL {
            let simple = c.simple_name();
            let short = simple.strip_suffix("Codec").unwrap_or(simple);
            if n == c.class_name()
                || n.eq_ignore_ascii_case(simple)
                || n.eq_ignore_ascii_case(short)
            {
                return Ok(Some(c));
            }
        }
        let lower = n.to_ascii_lowercase();
        let simple = lower.rsplit('.').next().unwrap_or(&lower);
        let why = match simple.strip_suffix("codec").unwrap_or(simple) {
            "lzo" | "lzop" => {
                "LZO is the GPL hadoop-lzo add-on, not part of Hadoop, and no Rust LZO encoder is \
                 included"
            }
            "zstandard" | "zstd" => {
                "Hadoop's ZStandardCodec needs libhadoop and libzstd on every reader, and no zstd \
                 encoder is included"
            }
            _ => "it is not a codec Hadoop ships",
        };
        Err(format!(
            "codec '{n}' is not supported in this build ({why}); choose from: None, \
             DefaultCodec, DeflateCodec, GzipCodec, BZip2Codec, SnappyCodec, Lz4Codec \
             (or gzip, bzip2, snappy, lz4, deflate, default)"
        ))
    }

    /// `data` as one complete unit of this codec, as Hadoop's codec stream writes one
    /// `write(data)` between `resetState()` and `finish()` (a SequenceFile block buffer).
    pub fn compress_unit(self, data: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        match self {
            Codec::Default | Codec::Deflate => {
                let mut e = ZlibEncoder::new(out, Compression::new(6));
                e.write_all(data)?;
                out = e.finish()?;
            }
            Codec::Gzip => {
                let mut e = GzEncoder::new(out, Compression::new(6));
                e.write_all(data)?;
                out = e.finish()?;
            }
            Codec::Bzip2 => {
                let mut e = bzip2::write::BzEncoder::new(out, bzip2::Compression::best());
                e.write_all(data)?;
                out = e.finish()?;
            }
            Codec::Snappy | Codec::Lz4 => {
                let mut b = Blocks::new(self);
                b.write(data, &mut out)?;
                b.finish(&mut out)?;
            }
        }
        Ok(out)
    }
}

/// Hadoop's `BlockCompressorStream` for snappy and LZ4 (see the module docs).
struct Blocks {
    codec: Codec,
    max_input: usize,
    /// Bytes given to the open block (the compressor's `getBytesRead()`).
    pending: Vec<u8>,
    snappy: snap::raw::Encoder,
}

impl Blocks {
    fn new(codec: Codec) -> Blocks {
        Blocks {
            codec,
            max_input: if codec == Codec::Snappy {
                SNAPPY_MAX_INPUT
            } else {
                LZ4_MAX_INPUT
            },
            pending: Vec::new(),
            snappy: snap::raw::Encoder::new(),
        }
    }

    fn chunk(&mut self, data: &[u8], out: &mut impl Write) -> io::Result<()> {
        let c = if self.codec == Codec::Snappy {
            self.snappy
                .compress_vec(data)
                .map_err(|e| io::Error::other(format!("snappy: {e}")))?
        } else {
            lz4_flex::block::compress(data)
        };
        out.write_all(&(c.len() as u32).to_be_bytes())?;
        out.write_all(&c)
    }

    fn write(&mut self, data: &[u8], out: &mut impl Write) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        if !self.pending.is_empty() && self.pending.len() + data.len() > self.max_input {
            self.finish(out)?;
        }
        if data.len() > self.max_input {
            out.write_all(&(data.len() as u32).to_be_bytes())?;
            for piece in data.chunks(self.max_input) {
                self.chunk(piece, out)?;
            }
            return Ok(());
        }
        self.pending.extend_from_slice(data);
        Ok(())
    }

    fn finish(&mut self, out: &mut impl Write) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(&mut self.pending);
        out.write_all(&(data.len() as u32).to_be_bytes())?;
        self.chunk(&data, out)?;
        self.pending = data;
        self.pending.clear();
        Ok(())
    }
}

/// The open unit of a [`CodecStream`].
enum Unit {
    Zlib(ZlibEncoder<Vec<u8>>),
    Bzip2(bzip2::write::BzEncoder<Vec<u8>>),
}

/// Bytes buffered before compressed output is passed on to the file.
const PASS_ON: usize = 64 * 1024;

/// A `CompressedStream` for every codec but gzip (which [`super::format`] writes itself, with
/// Java's member headers): one unit per flush that had data.
pub struct CodecStream {
    /// The file.
    pub out: Box<dyn OutFile>,
    codec: Codec,
    unit: Option<Unit>,
    blocks: Option<Blocks>,
}

impl CodecStream {
    /// A stream of `codec` units into `out`.
    pub fn new(codec: Codec, out: Box<dyn OutFile>) -> CodecStream {
        let blocks = matches!(codec, Codec::Snappy | Codec::Lz4).then(|| Blocks::new(codec));
        CodecStream {
            out,
            codec,
            unit: None,
            blocks,
        }
    }

    /// Compresses `data` into the open unit (opening one if needed).
    pub fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        if let Some(b) = self.blocks.as_mut() {
            return b.write(data, &mut self.out);
        }
        if data.is_empty() {
            return Ok(());
        }
        let unit = match self.unit.as_mut() {
            Some(u) => u,
            None => self.unit.insert(match self.codec {
                Codec::Bzip2 => Unit::Bzip2(bzip2::write::BzEncoder::new(
                    Vec::with_capacity(PASS_ON),
                    bzip2::Compression::best(),
                )),
                _ => Unit::Zlib(ZlibEncoder::new(
                    Vec::with_capacity(PASS_ON),
                    Compression::new(6),
                )),
            }),
        };
        let buf = match unit {
            Unit::Zlib(e) => {
                e.write_all(data)?;
                e.get_mut()
            }
            Unit::Bzip2(e) => {
                e.write_all(data)?;
                e.get_mut()
            }
        };
        if buf.len() >= PASS_ON {
            self.out.write_all(buf)?;
            buf.clear();
        }
        Ok(())
    }

    /// Ends the open unit (nothing when nothing was written since the last one).
    pub fn finish_unit(&mut self) -> io::Result<()> {
        if let Some(b) = self.blocks.as_mut() {
            return b.finish(&mut self.out);
        }
        let rest = match self.unit.take() {
            None => return Ok(()),
            Some(Unit::Zlib(e)) => e.finish()?,
            Some(Unit::Bzip2(e)) => e.finish()?,
        };
        self.out.write_all(&rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Reads Hadoop's block framing back: every block's chunks, decompressed, in order.
    pub(crate) fn unblock(codec: Codec, mut b: &[u8]) -> Vec<Vec<u8>> {
        let int = |b: &mut &[u8]| {
            let v = u32::from_be_bytes(b[..4].try_into().unwrap()) as usize;
            *b = &b[4..];
            v
        };
        let mut blocks = Vec::new();
        while !b.is_empty() {
            let total = int(&mut b);
            let mut block = Vec::new();
            while block.len() < total {
                let n = int(&mut b);
                let (c, rest) = b.split_at(n);
                b = rest;
                let d = match codec {
                    Codec::Snappy => snap::raw::Decoder::new().decompress_vec(c).unwrap(),
                    _ => lz4_flex::block::decompress(c, total - block.len()).unwrap(),
                };
                block.extend_from_slice(&d);
            }
            assert_eq!(block.len(), total);
            blocks.push(block);
        }
        blocks
    }

    #[test]
    fn names_match_as_flume_matches_them() {
        for (name, want) in [
            ("bzip2", Codec::Bzip2),
            ("BZip2Codec", Codec::Bzip2),
            ("org.apache.hadoop.io.compress.BZip2Codec", Codec::Bzip2),
            ("SNAPPY", Codec::Snappy),
            ("gzip", Codec::Gzip),
            ("GzipCodec", Codec::Gzip),
            ("lz4", Codec::Lz4),
            ("deflate", Codec::Deflate),
            ("DefaultCodec", Codec::Default),
            ("default", Codec::Default),
        ] {
            assert_eq!(Codec::parse(name), Ok(Some(want)), "{name}");
        }
        assert_eq!(Codec::parse("None"), Ok(None));
        let e = Codec::parse("lzo").unwrap_err();
        assert!(e.contains("hadoop-lzo") && e.contains("SnappyCodec"), "{e}");
        let e = Codec::parse("com.hadoop.compression.lzo.LzopCodec").unwrap_err();
        assert!(e.contains("hadoop-lzo"), "{e}");
        assert!(Codec::parse("zstd").unwrap_err().contains("libzstd"));
        assert!(Codec::parse("brotli").unwrap_err().contains("'brotli'"));
        assert_eq!(Codec::Bzip2.extension(), ".bz2");
        assert_eq!(Codec::Snappy.extension(), ".snappy");
        assert_eq!(Codec::Default.extension(), Codec::Deflate.extension());
        assert_eq!(SNAPPY_MAX_INPUT, 218_422);
        assert_eq!(LZ4_MAX_INPUT, 261_100);
    }

    #[test]
    fn units_decompress_with_independent_decoders() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let z = Codec::Default.compress_unit(&data).unwrap();
        assert_eq!(&z[..2], &[0x78, 0x9c]);
        let mut d = Vec::new();
        flate2::read::ZlibDecoder::new(&z[..])
            .read_to_end(&mut d)
            .unwrap();
        assert_eq!(d, data);
        let bz = Codec::Bzip2.compress_unit(&data).unwrap();
        assert_eq!(&bz[..4], b"BZh9");
        let mut d = Vec::new();
        bzip2::read::BzDecoder::new(&bz[..])
            .read_to_end(&mut d)
            .unwrap();
        assert_eq!(d, data);
        let g = Codec::Gzip.compress_unit(&data).unwrap();
        let mut d = Vec::new();
        flate2::read::GzDecoder::new(&g[..])
            .read_to_end(&mut d)
            .unwrap();
        assert_eq!(d, data);
        // One write larger than MAX_INPUT: one block, one chunk per MAX_INPUT bytes.
        for codec in [Codec::Snappy, Codec::Lz4] {
            let s = codec.compress_unit(&data).unwrap();
            assert_eq!(&s[..4], &300_000u32.to_be_bytes());
            assert_eq!(unblock(codec, &s), vec![data.clone()]);
        }
        let s = Codec::Snappy.compress_unit(b"abc").unwrap();
        assert_eq!(&s[..4], &[0, 0, 0, 3]);
        assert_eq!(unblock(Codec::Snappy, &s), vec![b"abc".to_vec()]);
    }

    #[derive(Clone, Default)]
    struct Mem(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Mem {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl OutFile for Mem {
        fn hflush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn snappy_stream_blocks_follow_hadoops_write_rule() {
        let m = Mem::default();
        let mut s = CodecStream::new(Codec::Snappy, Box::new(m.clone()));
        let a = vec![b'a'; 200_000];
        let b = vec![b'b'; 30_000]; // 230000 > MAX_INPUT: closes the block of `a` first
        let big = vec![b'c'; 500_000]; // a block of its own, three chunks
        s.write_all(&a).unwrap();
        s.write_all(b"\n").unwrap();
        s.write_all(&b).unwrap();
        s.write_all(&big).unwrap();
        s.finish_unit().unwrap(); // nothing open: no empty block
        s.write_all(b"tail").unwrap();
        s.finish_unit().unwrap();
        s.finish_unit().unwrap();
        let bytes = m.0.lock().unwrap().clone();
        let mut first = a.clone();
        first.push(b'\n');
        assert_eq!(
            unblock(Codec::Snappy, &bytes),
            vec![first, b, big, b"tail".to_vec()]
        );
    }

    #[test]
    fn bzip2_and_zlib_streams_have_one_unit_per_flush() {
        for codec in [Codec::Bzip2, Codec::Deflate] {
            let m = Mem::default();
            let mut s = CodecStream::new(codec, Box::new(m.clone()));
            s.write_all(b"one\n").unwrap();
            s.finish_unit().unwrap();
            s.finish_unit().unwrap();
            s.write_all(b"two\n").unwrap();
            s.finish_unit().unwrap();
            let bytes = m.0.lock().unwrap().clone();
            let mut rest = &bytes[..];
            let mut units = Vec::new();
            while !rest.is_empty() {
                let mut d = Vec::new();
                if codec == Codec::Bzip2 {
                    let mut r = bzip2::read::BzDecoder::new(rest);
                    r.read_to_end(&mut d).unwrap();
                    rest = &rest[r.total_in() as usize..];
                } else {
                    let mut r = flate2::read::ZlibDecoder::new(rest);
                    r.read_to_end(&mut d).unwrap();
                    rest = &rest[r.total_in() as usize..];
                }
                units.push(d);
            }
            assert_eq!(
                units,
                vec![b"one\n".to_vec(), b"two\n".to_vec()],
                "{codec:?}"
            );
        }
    }
}
