//! `type = hdfs` settings: Flume's keys, defaults and refusals (`HDFSEventSink.configure`).
//!
//! Every key Flume's HDFS sink reads is read here, so none is reported as unknown. Keys with no
//! meaning for a local filesystem (`minBlockReplicas`, `callTimeout`, `threadsPoolSize`,
//! `rollTimerPoolSize`, `closeTries`, `retryInterval`, `useRawLocalFileSystem`) are accepted and
//! validated as numbers/booleans but change nothing. Kerberos and proxy-user keys are refused
//! when set (no Kerberos in this build), `hdfs://` paths are refused (no native HDFS client in
//! this build). `hdfs.codeC` takes every codec [`super::codec`] writes (gzip, bzip2, snappy,
//! lz4, deflate/default; `None` = none); LZO and zstd are refused with the reason. With
//! `fileType = SequenceFile` a codec makes a block-compressed SequenceFile, as Flume passes
//! `CompressionType.BLOCK`; `DataStream` with a codec and `CompressedStream` without one are
//! refused, as in Flume.

use std::time::Duration;

use super::codec::Codec;
use super::escape::{Template, TimeSettings};
use super::format::{FileFormat, Serializer, WriteFormat};
use super::zone::{RoundUnit, Zone};
use crate::config::{ConfigError, Context};

/// The message for `hdfs://` paths.
pub const HDFS_SCHEME_UNSUPPORTED: &str = "hdfs:// needs a native HDFS client; not in this build \
     (use a file:// path or a local directory, e.g. one where HDFS is mounted via NFS or FUSE)";

/// Settings of one HDFS sink.
#[derive(Debug, Clone)]
pub struct HdfsSinkConfig {
    /// `hdfs.path`, compiled.
    pub path: Template,
    /// `hdfs.filePrefix`, compiled (default `FlumeData`).
    pub file_prefix: Template,
    /// `hdfs.fileSuffix`.
    pub file_suffix: String,
    /// `hdfs.inUsePrefix`.
    pub in_use_prefix: String,
    /// `hdfs.inUseSuffix` (empty with `hdfs.emptyInUseSuffix = true`).
    pub in_use_suffix: String,
    /// `hdfs.rollInterval` (None = 0 = off).
    pub roll_interval: Option<Duration>,
    /// `hdfs.rollSize` in body bytes (0 = off).
    pub roll_size: u64,
    /// `hdfs.rollCount` in events (0 = off).
    pub roll_count: u64,
    /// `hdfs.idleTimeout` (None = 0 = off).
    pub idle_timeout: Option<Duration>,
    /// `hdfs.batchSize`.
    pub batch_size: usize,
    /// `hdfs.maxOpenFiles`.
    pub max_open_files: usize,
    /// `hdfs.fileType` with serializer / write format / codec.
    pub format: FileFormat,
    /// Time escapes: zone, rounding, local time stamp.
    pub time: TimeSettings,
}

fn unit(ctx: &Context) -> Result<RoundUnit, ConfigError> {
    let v = ctx
        .get_or("hdfs.roundUnit", "second")
        .trim()
        .to_ascii_lowercase();
    Ok(match v.as_str() {
        "second" => RoundUnit::Second,
        "minute" => RoundUnit::Minute,
        "hour" => RoundUnit::Hour,
        _ => {
            return Err(ctx.error(
                "hdfs.roundUnit",
                &format!("'{v}' is not a round unit (use second, minute or hour)"),
            ))
        }
    })
}

impl HdfsSinkConfig {
    /// Reads the settings with Flume's defaults.
    pub fn from_context(ctx: &Context) -> Result<HdfsSinkConfig, ConfigError> {
        for key in [
            "hdfs.kerberosPrincipal",
            "hdfs.kerberosKeytab",
            "hdfs.proxyUser",
        ] {
            if let Some(v) = ctx.get(key) {
                if !v.trim().is_empty() {
                    return Err(ctx.error(
                        key,
                        "Kerberos/proxy users are not supported in this build \
                         (it writes only to local file:// paths); remove the key",
                    ));
                }
            }
        }
        let raw_path = ctx.require("hdfs.path")?.trim().to_string();
        let lower = raw_path.to_ascii_lowercase();
        if lower.starts_with("hdfs:")
            || lower.starts_with("viewfs:")
            || lower.starts_with("webhdfs:")
        {
            return Err(ctx.error("hdfs.path", HDFS_SCHEME_UNSUPPORTED));
        }
        if let Some((scheme, _)) = lower.split_once("://") {
            if scheme != "file" {
                return Err(ctx.error(
                    "hdfs.path",
                    &format!("the '{scheme}://' filesystem is not supported (only file:// and local paths)"),
                ));
            }
        }
        let path =
            Template::parse(&raw_path).map_err(|e| ctx.error("hdfs.path", &e.to_string()))?;
        let file_prefix = Template::parse(ctx.get_or("hdfs.filePrefix", "FlumeData"))
            .map_err(|e| ctx.error("hdfs.filePrefix", &e.to_string()))?;
        let file_suffix = ctx.get_or("hdfs.fileSuffix", "").to_string();
        let in_use_prefix = ctx.get_or("hdfs.inUsePrefix", "").to_string();
        let in_use_suffix = if ctx.get_bool("hdfs.emptyInUseSuffix", false) {
            ctx.mark_read("hdfs.inUseSuffix");
            String::new()
        } else {
            ctx.get_or("hdfs.inUseSuffix", ".tmp").to_string()
        };
        let roll_interval = ctx.get_secs("hdfs.rollInterval", 30)?;
        let roll_size = ctx.get_u64("hdfs.rollSize", 1024)?;
        let roll_count = ctx.get_u64("hdfs.rollCount", 10)?;
        let idle = ctx.get_secs("hdfs.idleTimeout", 0)?;
        let batch_size = ctx.get_positive_int("hdfs.batchSize", 100)?;
        let max_open_files = ctx.get_positive_int("hdfs.maxOpenFiles", 5000)?;
        // Accepted for compatibility; no effect on a local filesystem.
        for (key, default) in [
            ("hdfs.minBlockReplicas", 0),
            ("hdfs.callTimeout", 30_000),
            ("hdfs.threadsPoolSize", 10),
            ("hdfs.rollTimerPoolSize", 1),
            ("hdfs.closeTries", 0),
            ("hdfs.retryInterval", 180),
        ] {
            ctx.get_u64(key, default)?;
        }
        ctx.get_bool("hdfs.useRawLocalFileSystem", false);

        let codec_name = ctx
            .get("hdfs.codeC")
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty());
        let file_type = ctx
            .get_or("hdfs.fileType", "SequenceFile")
            .trim()
            .to_string();
        let codec = match &codec_name {
            None => None,
            Some(c) => Codec::parse(c).map_err(|e| ctx.error("hdfs.codeC", &e))?,
        };
        let format = match file_type.to_ascii_lowercase().as_str() {
            "sequencefile" => {
                let wf = ctx.get_or("hdfs.writeFormat", "Writable").trim().to_string();
                let wf = match wf.to_ascii_lowercase().as_str() {
                    "writable" => WriteFormat::Writable,
                    "text" => WriteFormat::Text,
                    _ => {
                        return Err(ctx.error(
                            "hdfs.writeFormat",
                            &format!("'{wf}' is not a write format (use Writable or Text)"),
                        ))
                    }
                };
                FileFormat::SequenceFile(wf, codec)
            }
            "datastream" => {
                if codec_name.is_some() {
                    return Err(ctx.error(
                        "hdfs.codeC",
                        "fileType = DataStream does not compress; use CompressedStream with a codec",
                    ));
                }
                ctx.mark_read("hdfs.writeFormat");
                FileFormat::DataStream(serializer(ctx)?)
            }
            "compressedstream" => {
                let Some(codec) = codec else {
                    return Err(ctx.error(
                        "hdfs.codeC",
                        "fileType = CompressedStream needs a codec (hdfs.codeC = gzip, bzip2, \
                         snappy, lz4 or deflate)",
                    ));
                };
                ctx.mark_read("hdfs.writeFormat");
                FileFormat::CompressedStream(serializer(ctx)?, codec)
            }
            _ => {
                return Err(ctx.error(
                    "hdfs.fileType",
                    &format!(
                        "'{file_type}' is not a file type (use SequenceFile, DataStream or CompressedStream)"
                    ),
                ))
            }
        };

        let zone = match ctx
            .get("hdfs.timeZone")
            .map(str::trim)
            .filter(|z| !z.is_empty())
        {
            None => Zone::Local,
            Some(z) => Zone::from_config(z).map_err(|e| ctx.error("hdfs.timeZone", &e))?,
        };
        let round = if ctx.get_bool("hdfs.round", false) {
            let u = unit(ctx)?;
            let v = ctx.get_u64("hdfs.roundValue", 1)?;
            let max = if u == RoundUnit::Hour { 24 } else { 60 };
            if v == 0 || v > max {
                return Err(ctx.error(
                    "hdfs.roundValue",
                    &format!("must be between 1 and {max} for this round unit, got {v}"),
                ));
            }
            Some((u, v as u32))
        } else {
            ctx.mark_read("hdfs.roundUnit");
            ctx.mark_read("hdfs.roundValue");
            None
        };
        Ok(HdfsSinkConfig {
            path,
            file_prefix,
            file_suffix,
            in_use_prefix,
            in_use_suffix,
            roll_interval: (!roll_interval.is_zero()).then_some(roll_interval),
            roll_size,
            roll_count,
            idle_timeout: (!idle.is_zero()).then_some(idle),
            batch_size,
            max_open_files,
            format,
            time: TimeSettings {
                zone,
                round,
                use_local_time: ctx.get_bool("hdfs.useLocalTimeStamp", false),
            },
        })
    }
}

/// `serializer` and its `serializer.*` keys, read relative to `ctx` (the HDFS sink's own context;
/// `file_roll` passes its `sink.` sub-context): Flume's `EventSerializerFactory` names.
pub fn serializer(ctx: &Context) -> Result<Serializer, ConfigError> {
    let s = ctx.get_or("serializer", "TEXT").trim().to_string();
    let append_newline = ctx.get_bool("serializer.appendNewline", true);
    Ok(match s.to_ascii_lowercase().as_str() {
        "text" | "org.apache.flume.serialization.bodytexteventserializer$builder" => {
            Serializer::Text { append_newline }
        }
        "header_and_text"
        | "org.apache.flume.serialization.headerandbodytexteventserializer$builder" => {
            Serializer::HeaderAndText { append_newline }
        }
        "avro_event" | "org.apache.flume.serialization.flumeeventavroeventserializer$builder" => {
            let codec = ctx
                .get_or("serializer.compressionCodec", "null")
                .trim()
                .to_ascii_lowercase();
            let deflate = match codec.as_str() {
                "null" => false,
                "deflate" => true,
                other => {
                    return Err(ctx.error(
                        "serializer.compressionCodec",
                        &format!("unsupported Avro codec '{other}' (use null or deflate)"),
                    ))
                }
            };
            Serializer::AvroEvent {
                deflate,
                sync_interval: ctx.get_positive_int("serializer.syncIntervalBytes", 2_048_000)?,
            }
        }
        _ => {
            return Err(ctx.error(
                "serializer",
                &format!("unsupported serializer '{s}' (use TEXT, header_and_text or avro_event)"),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<HdfsSinkConfig, ConfigError> {
        HdfsSinkConfig::from_context(&Context::from_pairs("a1.sinks.k1", pairs.iter().copied()))
    }

    #[test]
    fn flume_defaults() {
        let c = cfg(&[("hdfs.path", "file:///tmp/x")]).unwrap();
        assert_eq!(c.file_prefix.source(), "FlumeData");
        assert_eq!(c.in_use_suffix, ".tmp");
        assert_eq!(c.roll_interval, Some(Duration::from_secs(30)));
        assert_eq!(
            (c.roll_size, c.roll_count, c.batch_size, c.max_open_files),
            (1024, 10, 100, 5000)
        );
        assert_eq!(
            c.format,
            FileFormat::SequenceFile(WriteFormat::Writable, None)
        );
        assert_eq!(c.time.zone, Zone::Local);
        assert_eq!(c.idle_timeout, None);
    }

    #[test]
    fn refusals_name_the_key() {
        let e = cfg(&[("hdfs.path", "hdfs://nn:8020/flume")]).unwrap_err();
        assert!(
            e.to_string()
                .contains("hdfs:// needs a native HDFS client; not in this build"),
            "{e}"
        );
        assert!(e.to_string().contains("hdfs.path"), "{e}");
        let e = cfg(&[
            ("hdfs.path", "/x"),
            ("hdfs.kerberosPrincipal", "flume/_HOST@R"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("Kerberos"), "{e}");
        assert!(cfg(&[("hdfs.path", "/x"), ("hdfs.kerberosKeytab", "")]).is_ok());
        let e = cfg(&[
            ("hdfs.path", "/x"),
            ("hdfs.fileType", "CompressedStream"),
            ("hdfs.codeC", "lzo"),
        ])
        .unwrap_err();
        assert!(
            e.to_string().contains("codec 'lzo' is not supported"),
            "{e}"
        );
        assert!(e.to_string().contains("hdfs.codeC"), "{e}");
        let e = cfg(&[("hdfs.path", "/x"), ("hdfs.fileType", "CompressedStream")]).unwrap_err();
        assert!(e.to_string().contains("needs a codec"), "{e}");
        let e = cfg(&[
            ("hdfs.path", "/x"),
            ("hdfs.fileType", "DataStream"),
            ("hdfs.codeC", "gzip"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("does not compress"), "{e}");
        let e = cfg(&[("hdfs.path", "/x/%[nope]")]).unwrap_err();
        assert!(e.to_string().contains("%[nope]"), "{e}");
        let e = cfg(&[
            ("hdfs.path", "/x"),
            ("hdfs.round", "true"),
            ("hdfs.roundUnit", "minute"),
            ("hdfs.roundValue", "61"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("between 1 and 60"), "{e}");
        let e = cfg(&[("hdfs.path", "/x"), ("hdfs.timeZone", "Mars/Olympus")]).unwrap_err();
        assert!(e.to_string().contains("Mars/Olympus"), "{e}");
        let e = cfg(&[("hdfs.path", "s3a://bucket/x")]).unwrap_err();
        assert!(e.to_string().contains("s3a://"), "{e}");
    }

    #[test]
    fn formats_and_codecs() {
        let c = cfg(&[
            ("hdfs.path", "/x"),
            ("hdfs.fileType", "CompressedStream"),
            ("hdfs.codeC", "GzipCodec"),
        ])
        .unwrap();
        assert_eq!(
            c.format,
            FileFormat::CompressedStream(
                Serializer::Text {
                    append_newline: true
                },
                Codec::Gzip
            )
        );
        for (name, codec) in [("bzip2", Codec::Bzip2), ("SnappyCodec", Codec::Snappy)] {
            let c = cfg(&[
                ("hdfs.path", "/x"),
                ("hdfs.fileType", "CompressedStream"),
                ("hdfs.codeC", name),
            ])
            .unwrap();
            assert_eq!(c.format.codec_extension(), codec.extension());
            // A codec on a SequenceFile makes it block-compressed (Flume's CompressionType.BLOCK).
            let c = cfg(&[("hdfs.path", "/x"), ("hdfs.codeC", name)]).unwrap();
            assert_eq!(
                c.format,
                FileFormat::SequenceFile(WriteFormat::Writable, Some(codec))
            );
            assert_eq!(c.format.codec_extension(), codec.extension());
        }
        let c = cfg(&[("hdfs.path", "/x"), ("hdfs.codeC", "None")]).unwrap();
        assert_eq!(
            c.format,
            FileFormat::SequenceFile(WriteFormat::Writable, None)
        );
        let c = cfg(&[
            ("hdfs.path", "/x"),
            ("hdfs.fileType", "datastream"),
            ("serializer", "HEADER_AND_TEXT"),
            ("serializer.appendNewline", "false"),
        ])
        .unwrap();
        assert_eq!(
            c.format,
            FileFormat::DataStream(Serializer::HeaderAndText {
                append_newline: false
            })
        );
        let c = cfg(&[("hdfs.path", "/x"), ("hdfs.writeFormat", "Text")]).unwrap();
        assert_eq!(c.format, FileFormat::SequenceFile(WriteFormat::Text, None));
        let c = cfg(&[
            ("hdfs.path", "/x"),
            ("hdfs.emptyInUseSuffix", "true"),
            ("hdfs.inUseSuffix", ".x"),
        ])
        .unwrap();
        assert_eq!(c.in_use_suffix, "");
        let c = cfg(&[
            ("hdfs.path", "/x"),
            ("hdfs.round", "true"),
            ("hdfs.roundValue", "10"),
            ("hdfs.roundUnit", "minute"),
            ("hdfs.timeZone", "UTC"),
        ])
        .unwrap();
        assert_eq!(c.time.round, Some((RoundUnit::Minute, 10)));
        assert_eq!(c.time.zone, Zone::Fixed(0));
    }
}
