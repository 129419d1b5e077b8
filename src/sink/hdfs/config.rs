//! `type = hdfs` settings: Flume's keys, defaults and refusals (`HDFSEventSink.configure`).
//!
//! Every key Flume's HDFS sink reads is read here, so none is reported as unknown.
//!
//! # `hdfs.path`: which filesystem
//!
//! - `file:///dir`, `file:/dir` or a plain path: the local filesystem ([`FsTarget::Local`]).
//! - `hdfs://host:port/dir`: the NameNode at `host:port` ([`FsTarget::Hdfs`], only in builds with
//!   the `hdfs` cargo feature, on by default). `hdfs://host/dir` (no port) is a Hadoop HA
//!   nameservice when the Hadoop configuration (`HADOOP_CONF_DIR`, else
//!   `$HADOOP_HOME/etc/hadoop`) defines one of that name, else the NameNode at `host:8020`
//!   (Hadoop's default NameNode port). `hdfs:///dir` (no authority) uses `fs.defaultFS` from that
//!   configuration. IPv6 hosts are written in brackets (`hdfs://[::1]:8020/dir`). The authority
//!   is literal: escapes (`%`), user info (`@`) and a port of 0 are refused; escapes in the path
//!   part work as on `file://`. The scheme and authority are stripped from the template, so
//!   buckets, names and recovery see the same plain paths on every filesystem.
//! - `viewfs://`, `webhdfs://`, `s3a://` and any other scheme are refused, naming the scheme.
//!
//! # Keys that only mean something on HDFS
//!
//! `hdfs.callTimeout` (ms, default 30000) bounds every NameNode/DataNode call (create, write,
//! hflush, close, rename, list). `hdfs.closeTries` (0 = until it works) and `hdfs.retryInterval`
//! (s, default 180; 0 or less = no retry) govern the lease recovery that follows a failed close
//! (see `hdfs_fs`). `hdfs.minBlockReplicas` is validated but has no effect: the native client
//! does not expose the live pipeline size Flume compares it with (it replaces failed DataNodes
//! itself, per `dfs.client.block.write.replace-datanode-on-failure.*`). `threadsPoolSize`,
//! `rollTimerPoolSize` and `useRawLocalFileSystem` are accepted and change nothing (one sink
//! thread does the calls; timers are deadlines). On `file://` none of these keys has an effect.
//!
//! # Refusals
//!
//! Kerberos and proxy-user keys are refused when set (no Kerberos in this build), `hdfs://`
//! paths in a build without the `hdfs` feature (naming the feature). `hdfs.codeC` takes every codec
//! [`super::codec`] writes (gzip, bzip2, snappy, lz4, deflate/default; `None` = none); LZO and
//! zstd are refused with the reason. With `fileType = SequenceFile` a codec makes a
//! block-compressed SequenceFile, as Flume passes `CompressionType.BLOCK`; `DataStream` with a
//! codec and `CompressedStream` without one are refused, as in Flume.

use std::time::Duration;

use super::codec::Codec;
use super::escape::{Template, TimeSettings};
use super::format::{FileFormat, Serializer, WriteFormat};
use super::zone::{RoundUnit, Zone};
use crate::config::{ConfigError, Context};

pub use super::fs::HDFS_SCHEME_UNSUPPORTED;

/// Hadoop's default NameNode RPC port (`hdfs://host/...` without a port).
pub const DEFAULT_NAMENODE_PORT: u16 = 8020;

/// The filesystem `hdfs.path` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsTarget {
    /// `file://` or a plain local path.
    Local,
    /// `hdfs://authority`: the paths live on this NameNode or nameservice.
    Hdfs(HdfsAuthority),
}

/// The authority of an `hdfs://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HdfsAuthority {
    /// Host name, IP address (IPv6 without brackets) or HA nameservice; empty for `hdfs:///`.
    pub host: String,
    /// The port, if written.
    pub port: Option<u16>,
}

impl HdfsAuthority {
    /// Parses the authority of `hdfs://<authority>/...` (the text between `//` and the next `/`).
    pub fn parse(authority: &str) -> Result<HdfsAuthority, String> {
        if authority.contains('%') {
            return Err(format!(
                "the NameNode address '{authority}' must be literal (escapes work only in the path part)"
            ));
        }
        if authority.contains('@') {
            return Err(format!(
                "user info in the NameNode address '{authority}' is not supported \
                 (set HADOOP_USER_NAME to write as another user)"
            ));
        }
        let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
            let (h, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("unclosed '[' in the NameNode address '{authority}'"))?;
            match after {
                "" => (h, None),
                p => match p.strip_prefix(':') {
                    Some(p) => (h, Some(p)),
                    None => {
                        return Err(format!(
                            "unexpected '{p}' after ']' in the NameNode address '{authority}'"
                        ))
                    }
                },
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    return Err(format!(
                        "'{p}' is not a port (1-65535) in the NameNode address '{authority}'"
                    ))
                }
            },
        };
        if host.is_empty() && port.is_some() {
            return Err(format!(
                "the NameNode address '{authority}' has a port but no host"
            ));
        }
        if host
            .chars()
            .any(|c| c.is_whitespace() || c == '/' || c == '?' || c == '#')
        {
            return Err(format!("'{host}' is not a host name"));
        }
        Ok(HdfsAuthority {
            host: host.to_string(),
            port,
        })
    }

    /// `hdfs://host:port` as written (no port added; `hdfs://` for an empty authority).
    pub fn url(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(p) => format!("hdfs://{host}:{p}"),
            None => format!("hdfs://{host}"),
        }
    }

    /// `hdfs://host:port` with Hadoop's default port 8020 when none was written.
    pub fn url_with_default_port(&self) -> String {
        HdfsAuthority {
            host: self.host.clone(),
            port: Some(self.port.unwrap_or(DEFAULT_NAMENODE_PORT)),
        }
        .url()
    }
}

/// Settings of the calls to a remote filesystem (`hdfs.callTimeout`, `closeTries`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSettings {
    /// `hdfs.callTimeout`: the longest one NameNode/DataNode call may take.
    pub call_timeout: Duration,
    /// `hdfs.closeTries`: lease recoveries after a failed close (0 = until one works).
    pub close_tries: u32,
    /// `hdfs.retryInterval`: between those tries (None: 0 or less, no retry).
    pub retry_interval: Option<Duration>,
    /// `hdfs.minBlockReplicas` (validated; see the module docs).
    pub min_block_replicas: u32,
}

impl Default for CallSettings {
    fn default() -> Self {
        CallSettings {
            call_timeout: Duration::from_millis(30_000),
            close_tries: 0,
            retry_interval: Some(Duration::from_secs(180)),
            min_block_replicas: 0,
        }
    }
}

/// Splits `hdfs.path` into its filesystem and the path template's source (scheme and authority
/// stripped for `hdfs://`).
fn split_fs(raw: &str) -> Result<(FsTarget, String), String> {
    let lower = raw.to_ascii_lowercase();
    if lower.starts_with("hdfs:") {
        if !cfg!(feature = "hdfs") {
            return Err(HDFS_SCHEME_UNSUPPORTED.to_string());
        }
        let (authority, path) = if let Some(rest) = raw
            .get("hdfs://".len()..)
            .filter(|_| lower.starts_with("hdfs://"))
        {
            match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            }
        } else if lower.starts_with("hdfs:/") {
            // `hdfs:/dir`: Hadoop's spelling of a path on the default filesystem.
            ("", &raw["hdfs:".len()..])
        } else {
            return Err(format!(
                "'{raw}' is not an hdfs:// URL (write hdfs://namenode:8020/dir or hdfs:///dir)"
            ));
        };
        let auth = HdfsAuthority::parse(authority)?;
        return Ok((FsTarget::Hdfs(auth), path.to_string()));
    }
    if let Some((scheme, _)) = lower.split_once("://") {
        if scheme != "file" {
            return Err(format!(
                "the '{scheme}://' filesystem is not supported (only hdfs://, file:// and local paths)"
            ));
        }
    } else if lower.starts_with("viewfs:") || lower.starts_with("webhdfs:") {
        let scheme = &lower[..lower.find(':').unwrap_or(0)];
        return Err(format!(
            "the '{scheme}:' filesystem is not supported (only hdfs://, file:// and local paths)"
        ));
    }
    Ok((FsTarget::Local, raw.to_string()))
}

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
    /// The filesystem of `hdfs.path` (`path` holds only its path part).
    pub fs: FsTarget,
    /// `hdfs.callTimeout`, `hdfs.closeTries`, `hdfs.retryInterval`, `hdfs.minBlockReplicas`.
    pub calls: CallSettings,
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
                         (hdfs:// is written as a simple-auth user: HADOOP_USER_NAME or the \
                         login name); remove the key",
                    ));
                }
            }
        }
        let raw_path = ctx.require("hdfs.path")?.trim().to_string();
        let (fs, path_src) = split_fs(&raw_path).map_err(|e| ctx.error("hdfs.path", &e))?;
        let path =
            Template::parse(&path_src).map_err(|e| ctx.error("hdfs.path", &e.to_string()))?;
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
        // Remote calls (no effect on a local filesystem); see the module docs.
        let call_timeout = ctx.get_millis("hdfs.callTimeout", 30_000)?;
        if call_timeout.is_zero() {
            return Err(ctx.error("hdfs.callTimeout", "must be at least 1 (milliseconds)"));
        }
        let close_tries = ctx.get_u64("hdfs.closeTries", 0)?;
        let retry_interval = ctx.get_i64("hdfs.retryInterval", 180)?;
        let min_block_replicas = ctx.get_u64("hdfs.minBlockReplicas", 0)?;
        let calls = CallSettings {
            call_timeout,
            close_tries: u32::try_from(close_tries).unwrap_or(u32::MAX),
            retry_interval: (retry_interval > 0)
                .then(|| Duration::from_secs(retry_interval as u64)),
            min_block_replicas: u32::try_from(min_block_replicas).unwrap_or(u32::MAX),
        };
        // Accepted for compatibility; no effect in this design.
        for (key, default) in [("hdfs.threadsPoolSize", 10), ("hdfs.rollTimerPoolSize", 1)] {
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
            fs,
            calls,
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

    #[cfg(not(feature = "hdfs"))]
    #[test]
    fn hdfs_urls_are_refused_without_the_feature() {
        let e = cfg(&[("hdfs.path", "hdfs://nn:8020/flume")]).unwrap_err();
        assert!(e.to_string().contains("--features hdfs"), "{e}");
        assert!(e.to_string().contains("hdfs.path"), "{e}");
    }

    #[cfg(feature = "hdfs")]
    #[test]
    fn hdfs_urls_name_the_namenode_and_keep_the_path_template() {
        let c = cfg(&[("hdfs.path", "hdfs://nn.example:9000/flume/%{topic}/%Y")]).unwrap();
        let FsTarget::Hdfs(a) = &c.fs else {
            panic!("{:?}", c.fs)
        };
        assert_eq!((a.host.as_str(), a.port), ("nn.example", Some(9000)));
        assert_eq!(a.url(), "hdfs://nn.example:9000");
        assert_eq!(c.path.source(), "/flume/%{topic}/%Y");
        assert!(!c.path.is_static());
        // No port: the URL stays as written (an HA nameservice), 8020 is the fallback.
        let c = cfg(&[("hdfs.path", "HDFS://namenode/flume/test")]).unwrap();
        let FsTarget::Hdfs(a) = &c.fs else {
            panic!("{:?}", c.fs)
        };
        assert_eq!((a.host.as_str(), a.port), ("namenode", None));
        assert_eq!(a.url(), "hdfs://namenode");
        assert_eq!(a.url_with_default_port(), "hdfs://namenode:8020");
        assert_eq!(c.path.source(), "/flume/test");
        // No authority: fs.defaultFS; no path: the root.
        for (raw, path) in [("hdfs:///flume", "/flume"), ("hdfs:/flume", "/flume")] {
            let c = cfg(&[("hdfs.path", raw)]).unwrap();
            assert_eq!(
                c.fs,
                FsTarget::Hdfs(HdfsAuthority {
                    host: String::new(),
                    port: None
                }),
                "{raw}"
            );
            assert_eq!(c.path.source(), path, "{raw}");
        }
        let c = cfg(&[("hdfs.path", "hdfs://[::1]:8020")]).unwrap();
        let FsTarget::Hdfs(a) = &c.fs else {
            panic!("{:?}", c.fs)
        };
        assert_eq!((a.host.as_str(), a.port), ("::1", Some(8020)));
        assert_eq!(a.url(), "hdfs://[::1]:8020");
        assert_eq!(c.path.source(), "/");
        assert_eq!(
            cfg(&[("hdfs.path", "file:///x")]).unwrap().fs,
            FsTarget::Local
        );
        for (raw, why) in [
            ("hdfs://%{nn}:8020/x", "must be literal"),
            ("hdfs://nn:0/x", "'0' is not a port"),
            ("hdfs://nn:80x/x", "'80x' is not a port"),
            ("hdfs://nn:65536/x", "'65536' is not a port"),
            ("hdfs://flume@nn:8020/x", "user info"),
            ("hdfs://:8020/x", "no host"),
            ("hdfs://[::1/x", "unclosed"),
            ("hdfs:nn/x", "is not an hdfs:// URL"),
            (
                "viewfs://cluster/x",
                "'viewfs://' filesystem is not supported",
            ),
            (
                "webhdfs://nn:9870/x",
                "'webhdfs://' filesystem is not supported",
            ),
        ] {
            let e = cfg(&[("hdfs.path", raw)]).unwrap_err().to_string();
            assert!(e.contains(why), "{raw}: {e}");
            assert!(e.contains("hdfs.path"), "{raw}: {e}");
        }
    }

    #[test]
    fn call_settings() {
        let c = cfg(&[("hdfs.path", "/x")]).unwrap();
        assert_eq!(c.calls, CallSettings::default());
        assert_eq!(c.calls.call_timeout, Duration::from_secs(30));
        let c = cfg(&[
            ("hdfs.path", "/x"),
            ("hdfs.callTimeout", "1500"),
            ("hdfs.closeTries", "3"),
            ("hdfs.retryInterval", "-1"),
            ("hdfs.minBlockReplicas", "2"),
        ])
        .unwrap();
        assert_eq!(
            c.calls,
            CallSettings {
                call_timeout: Duration::from_millis(1500),
                close_tries: 3,
                retry_interval: None,
                min_block_replicas: 2,
            }
        );
        let e = cfg(&[("hdfs.path", "/x"), ("hdfs.callTimeout", "0")]).unwrap_err();
        assert!(e.to_string().contains("hdfs.callTimeout"), "{e}");
        let e = cfg(&[("hdfs.path", "/x"), ("hdfs.closeTries", "-2")]).unwrap_err();
        assert!(e.to_string().contains("hdfs.closeTries"), "{e}");
    }

    #[test]
    fn refusals_name_the_key() {
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
