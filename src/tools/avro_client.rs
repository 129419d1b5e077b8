//! `avro-client`: the counterpart of `flume-ng avro-client` (Flume's `AvroCLIClient`).
//!
//! Reads a file (or stdin), turns **each line into one event** (the line terminator `\n`, `\r\n`
//! or `\r` is stripped, as Java's `readLine` does; the bytes are sent as they are), applies the
//! headers of the `-R` header file to every event, and sends them in `appendBatch` calls of
//! `batch_size` events (Flume's avro-client uses 5) over one connection, waiting for each Status.
//! The first failure stops the run with an error that says how many events were delivered.
//!
//! Header file: one `key=value` (or `key: value`) per line; blank lines and lines starting with
//! `#` or `!` are ignored; key and value are trimmed (a subset of Java's `.properties` format,
//! which Flume reads it with).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::{Context, SystemProps};
use crate::event::Event;
use crate::rpc::client::{NettyAvroClient, RpcClientConfig, RpcClientError};

/// Flume's `AvroCLIClient.BATCH_SIZE`.
pub const DEFAULT_BATCH_SIZE: usize = 5;

/// Options of one run.
#[derive(Debug, Clone)]
pub struct AvroClientOptions {
    /// Host of the Avro source.
    pub host: String,
    /// Port of the Avro source.
    pub port: u16,
    /// File to send; `None` = standard input.
    pub file: Option<PathBuf>,
    /// `-R`: headers applied to every event.
    pub header_file: Option<PathBuf>,
    /// Events per `appendBatch` (default 5).
    pub batch_size: usize,
    /// `compression-type = deflate`.
    pub deflate: bool,
    /// `compression-level` (0–9, default 6).
    pub compression_level: u32,
    /// `ssl = true`.
    pub ssl: bool,
    /// `trust-all-certs = true`.
    pub trust_all_certs: bool,
    /// `truststore` (PKCS#12 or PEM).
    pub truststore: Option<PathBuf>,
    /// `truststore-password`.
    pub truststore_password: Option<String>,
    /// `truststore-type` (`PKCS12`, `PEM`).
    pub truststore_type: Option<String>,
    /// `compression-layer-order` when both TLS and deflate are on.
    pub layer_order: Option<String>,
    /// `connect-timeout`.
    pub connect_timeout: Duration,
    /// `request-timeout`.
    pub request_timeout: Duration,
}

impl AvroClientOptions {
    /// Flume's defaults for `host:port`.
    pub fn new(host: impl Into<String>, port: u16) -> AvroClientOptions {
        AvroClientOptions {
            host: host.into(),
            port,
            file: None,
            header_file: None,
            batch_size: DEFAULT_BATCH_SIZE,
            deflate: false,
            compression_level: 6,
            ssl: false,
            trust_all_certs: false,
            truststore: None,
            truststore_password: None,
            truststore_type: None,
            layer_order: None,
            connect_timeout: Duration::from_millis(20_000),
            request_timeout: Duration::from_millis(20_000),
        }
    }

    /// The RPC client settings these options stand for (Flume's property names).
    pub fn client_config(&self, props: &SystemProps) -> Result<RpcClientConfig, AvroClientError> {
        let hp = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        let mut pairs: Vec<(&str, String)> = vec![
            ("hosts", "h1".into()),
            ("hosts.h1", hp),
            ("batch-size", self.batch_size.max(1).to_string()),
            (
                "connect-timeout",
                self.connect_timeout.as_millis().to_string(),
            ),
            (
                "request-timeout",
                self.request_timeout.as_millis().to_string(),
            ),
        ];
        if self.deflate {
            pairs.push(("compression-type", "deflate".into()));
            pairs.push(("compression-level", self.compression_level.to_string()));
        }
        if let Some(o) = &self.layer_order {
            pairs.push(("compression-layer-order", o.clone()));
        }
        if self.ssl {
            pairs.push(("ssl", "true".into()));
            if self.trust_all_certs {
                pairs.push(("trust-all-certs", "true".into()));
            }
            if let Some(t) = &self.truststore {
                pairs.push(("truststore", t.to_string_lossy().into_owned()));
            }
            if let Some(p) = &self.truststore_password {
                pairs.push(("truststore-password", p.clone()));
            }
            if let Some(t) = &self.truststore_type {
                pairs.push(("truststore-type", t.clone()));
            }
        }
        let ctx = Context::from_pairs("avro-client", pairs.iter().map(|(k, v)| (*k, v.as_str())));
        RpcClientConfig::from_context(&ctx, props).map_err(AvroClientError::Config)
    }
}

/// What a run delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvroClientReport {
    /// Events delivered (Status OK).
    pub events: u64,
    /// `appendBatch` calls made.
    pub batches: u64,
    /// Body bytes delivered.
    pub body_bytes: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum AvroClientError {
    /// Bad options.
    #[error("invalid option: {0}")]
    Config(crate::config::ConfigError),
    /// The input or header file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file (`<stdin>` for standard input).
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A header line is not `key=value`.
    #[error("{path}:{line}: expected key=value, got {text:?}")]
    BadHeader {
        /// The header file.
        path: String,
        /// 1-based line.
        line: usize,
        /// The line.
        text: String,
    },
    /// Connecting or sending failed.
    #[error("delivery failed after {delivered} events in {batches} batches: {source}")]
    Rpc {
        /// Events delivered before the failure.
        delivered: u64,
        /// Batches delivered before the failure.
        batches: u64,
        /// Cause.
        source: RpcClientError,
    },
    /// The tokio runtime could not be built.
    #[error("cannot start the I/O runtime: {0}")]
    Runtime(std::io::Error),
}

/// Parses a header file (see the module docs), keeping the order of first appearance; a later
/// line with the same key replaces the value.
pub fn parse_header_file(path: &Path) -> Result<Vec<(String, String)>, AvroClientError> {
    let text = std::fs::read_to_string(path).map_err(|source| AvroClientError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let mut out: Vec<(String, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some(at) = line.find(['=', ':']) else {
            return Err(AvroClientError::BadHeader {
                path: path.display().to_string(),
                line: i + 1,
                text: raw.to_string(),
            });
        };
        let (k, v) = (line[..at].trim(), line[at + 1..].trim());
        match out.iter_mut().find(|(ek, _)| ek == k) {
            Some(e) => e.1 = v.to_string(),
            None => out.push((k.to_string(), v.to_string())),
        }
    }
    Ok(out)
}

/// Reads one line without its terminator (`\n`, `\r\n` or `\r`), into `buf`. False at EOF.
fn read_line<R: BufRead>(r: &mut R, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    buf.clear();
    loop {
        let avail = r.fill_buf()?;
        if avail.is_empty() {
            return Ok(!buf.is_empty());
        }
        if let Some(i) = avail.iter().position(|&b| b == b'\n' || b == b'\r') {
            buf.extend_from_slice(&avail[..i]);
            let cr = avail[i] == b'\r';
            r.consume(i + 1);
            if cr {
                // `\r\n` counts as one terminator.
                let next = r.fill_buf()?;
                if next.first() == Some(&b'\n') {
                    r.consume(1);
                }
            }
            return Ok(true);
        }
        let n = avail.len();
        buf.extend_from_slice(avail);
        r.consume(n);
    }
}

/// Runs the client over `input` inside an existing runtime.
pub async fn send_lines<R: Read>(
    opts: &AvroClientOptions,
    props: &SystemProps,
    input: R,
    input_name: &str,
) -> Result<AvroClientReport, AvroClientError> {
    let cfg = opts.client_config(props)?;
    let headers = match &opts.header_file {
        Some(p) => parse_header_file(p)?,
        None => Vec::new(),
    };
    let start = Instant::now();
    let rpc = |source| AvroClientError::Rpc {
        delivered: 0,
        batches: 0,
        source,
    };
    let client = NettyAvroClient::connect(&cfg).await.map_err(rpc)?;
    let mut reader = BufReader::with_capacity(64 * 1024, input);
    let mut report = AvroClientReport {
        events: 0,
        batches: 0,
        body_bytes: 0,
        elapsed: Duration::ZERO,
    };
    let batch_size = cfg.batch_size;
    let mut batch: Vec<Event> = Vec::with_capacity(batch_size);
    let mut line = Vec::new();
    let mut bytes_in_batch = 0u64;
    loop {
        let more = read_line(&mut reader, &mut line).map_err(|source| AvroClientError::Read {
            path: input_name.to_string(),
            source,
        })?;
        if more {
            bytes_in_batch += line.len() as u64;
            batch.push(Event::new(
                headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                &line,
            ));
        }
        if batch.len() == batch_size || (!more && !batch.is_empty()) {
            if let Err(source) = client.append_batch(&batch).await {
                client.close().await;
                return Err(AvroClientError::Rpc {
                    delivered: report.events,
                    batches: report.batches,
                    source,
                });
            }
            report.events += batch.len() as u64;
            report.batches += 1;
            report.body_bytes += bytes_in_batch;
            bytes_in_batch = 0;
            batch.clear();
        }
        if !more {
            break;
        }
    }
    client.close().await;
    report.elapsed = start.elapsed();
    Ok(report)
}

/// Runs the client: reads `opts.file` (or stdin) on a private single-threaded runtime.
pub fn run(
    opts: &AvroClientOptions,
    props: &SystemProps,
) -> Result<AvroClientReport, AvroClientError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AvroClientError::Runtime)?;
    match &opts.file {
        Some(p) => {
            let f = std::fs::File::open(p).map_err(|source| AvroClientError::Read {
                path: p.display().to_string(),
                source,
            })?;
            rt.block_on(send_lines(opts, props, f, &p.display().to_string()))
        }
        None => rt.block_on(send_lines(opts, props, std::io::stdin().lock(), "<stdin>")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_lose_their_terminators() {
        let mut r = BufReader::with_capacity(2, &b"a\nbc\r\nd\re\n\nlast"[..]);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        while read_line(&mut r, &mut buf).unwrap() {
            got.push(String::from_utf8(buf.clone()).unwrap());
        }
        assert_eq!(got, vec!["a", "bc", "d", "e", "", "last"]);
    }

    #[test]
    fn header_file_format() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h");
        std::fs::write(&p, "# c\n! c\n\nhost = web1\nk:v=w\nhost=web2\n").unwrap();
        assert_eq!(
            parse_header_file(&p).unwrap(),
            vec![("host".into(), "web2".into()), ("k".into(), "v=w".into())]
        );
        std::fs::write(&p, "novalue\n").unwrap();
        assert!(matches!(
            parse_header_file(&p),
            Err(AvroClientError::BadHeader { line: 1, .. })
        ));
    }
}
