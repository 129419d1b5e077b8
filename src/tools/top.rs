//! `sluicegate top`: a live terminal view of a running agent, fed by its `/metrics` JSON.
//!
//! ```text
//! sluicegate top [--url http://HOST:PORT] [--interval 1s] [--once]
//! ```
//!
//! ## Where the numbers come from
//!
//! The agent serves Flume's `/metrics` JSON on its monitoring port when it runs with
//! `-Dflume.monitoring.type=http -Dflume.monitoring.port=N` ([`crate::metrics::http`]; Flume's
//! own `HTTPMetricsServer` serves the same shape, so `top` watches a Flume agent too):
//!
//! ```text
//! {"CHANNEL.c1":{"ChannelSize":"12",...},"SOURCE.r1":{"EventAcceptedCount":"2",...},...}
//! ```
//!
//! `top` polls it every `--interval` with a tiny HTTP/1.1 `GET` over a std `TcpStream`
//! ([`fetch`]: `Connection: close`; a `Content-Length`, chunked or read-to-close body; at most
//! 64 MiB; 5 s to connect and 5 s per read). Each poll is a [`Sample`]: every group's attributes
//! as strings, stamped with the monotonic time of the poll (the midpoint between sending the
//! request and reading the answer). A [`View`] compares two samples: a **rate** is the change
//! of a counter divided by the time between the two polls; it is `-` on the first poll, for a
//! component that was not in the previous poll, and for one whose `StartTime` changed or whose
//! counter went down (it was restarted by a reload). Everything else is the latest value.
//!
//! ## What is shown
//!
//! One table per kind, one row per component, sorted by name (groups of other kinds are left
//! out):
//!
//! | kind | columns (attributes) |
//! |---|---|
//! | `SOURCE` | `recv/s` (`EventReceivedCount`), `accepted/s` and `accepted` (`EventAcceptedCount`), `conns` (`OpenConnectionCount`), `refused` (`ChannelWriteFail`), `errors` (`EventReadFail` + `GenericProcessingFail`) |
//! | `CHANNEL` | `put/s` (`EventPutSuccessCount`), `take/s` (`EventTakeSuccessCount`), `size`, `capacity`, `fill` (`ChannelSize`/`ChannelCapacity`), `refused` (`EventPutErrorCount`), `errors` (`EventTakeErrorCount` + `CheckpointWriteErrorCount`), `state` (`ok`, `unhealthy`, `closed`, `stopped`) |
//! | `SINK` | `out/s` and `delivered` (`EventDrainSuccessCount`), `conns` (`ConnectionCreatedCount` − `ConnectionClosedCount`), `conn-fail` (`ConnectionFailedCount`), `errors` (`EventWriteFail` + `ChannelReadFail`) |
//! | `PIPELINE` | `in/s` (`InputEventsTotal`), `batches`, `last ms`, `p50 ms`, `p99 ms` (processing time), `delay ms` (`SchedulingDelayLastMs`), `keys` (`StateKeys`), `wm lag ms`, `output`, `retried`, `errors` (the `Errors*` sum) |
//!
//! `refused` is kept apart from `errors`, as in the agent's summary line: a full channel
//! refusing puts is back-pressure (the senders retry, nothing is lost), not a failure. In the
//! live view a non-zero `errors` or `conn-fail`, an unhealthy channel and a fill of 100 % are
//! red; a non-zero `refused` or `retried` and a fill of 80 % or more are yellow.
//!
//! ## Two modes
//!
//! * **Live** (the default): `ratatui` on the crossterm backend, in the terminal's alternate
//!   screen and raw mode. A poller thread fetches every `--interval` and hands samples to the
//!   drawing loop over a channel, so keys are answered at once even when the agent is slow.
//!   `q`, `Esc` or Ctrl-C quits; so do SIGTERM, SIGINT and SIGHUP (their handlers only
//!   record the signal; the loop sees it within 100 ms, restores the terminal, then the
//!   process dies of that signal as it would have). The terminal (raw mode off, alternate
//!   screen left, cursor shown) is restored on every way out: a guard on return, ratatui's
//!   panic hook on a panic (in the drawing loop; a poller thread that dies ends the view
//!   with [`TopError::PollerStopped`]). A poll that fails keeps the last figures on screen with
//!   the error in the title line, and polling goes on. The first poll happens before the
//!   screen is taken, so an agent that cannot be reached is a plain error message.
//! * **`--once`**: two polls `--interval` apart, then one frame as plain text on standard
//!   output ([`View`]'s `Display`) — for scripts and tests.
//!
//! ## Errors
//!
//! [`TopError`] says what to do: an agent that cannot be reached names the URL and the flags
//! that turn the metrics server on; a port that answers something other than Flume's JSON says
//! so.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Flume's default monitoring address (`flume.monitoring.port` defaults to 41414).
pub const DEFAULT_URL: &str = "http://127.0.0.1:41414";
/// Time to connect, and to wait for each read of the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest `/metrics` answer read.
const MAX_RESPONSE: u64 = 64 * 1024 * 1024;

/// Why `top` could not show an agent.
#[derive(Debug, thiserror::Error)]
pub enum TopError {
    /// `--url` is not an `http://HOST:PORT` address.
    #[error("--url {url}: {reason}")]
    BadUrl {
        /// What was given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No connection, or no answer in time.
    #[error(
        "cannot reach {url}: {reason}; is the agent running with \
         -Dflume.monitoring.type=http -Dflume.monitoring.port=N?"
    )]
    Unreachable {
        /// The agent's base URL.
        url: String,
        /// The operating system's error, or the timeout.
        reason: String,
    },
    /// Something answered, but not with Flume's `/metrics` JSON.
    #[error(
        "{url} is not an agent's metrics server: {reason} (give the port of \
         -Dflume.monitoring.port)"
    )]
    NotMetrics {
        /// The URL fetched.
        url: String,
        /// What came back.
        reason: String,
    },
    /// The terminal could not be set up, drawn on or read.
    #[error("terminal: {0}")]
    Terminal(io::Error),
    /// The live view's poller thread could not start or died (a panic prints its own
    /// message above); the figures would no longer change.
    #[error("the poller thread stopped; run top again")]
    PollerStopped,
}

/// Where the agent's metrics are: `http://HOST:PORT` and the path fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    host: String,
    port: u16,
    path: String,
    base: String,
}

impl Endpoint {
    /// Parses `http://HOST:PORT[/PATH]`, `HOST:PORT` or a bare `PORT` (on 127.0.0.1). The port
    /// defaults to Flume's 41414, the path to `/metrics`.
    pub fn parse(url: &str) -> Result<Endpoint, TopError> {
        let bad = |reason: &str| TopError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let t = url.trim();
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            let port = t
                .parse::<u16>()
                .map_err(|_| bad("not a TCP port (1-65535)"))?;
            return Endpoint::parse(&format!("http://127.0.0.1:{port}"));
        }
        let rest = match t.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
                return Err(bad(
                    "https is not supported: the monitoring port serves plain HTTP",
                ))
            }
            Some(_) => return Err(bad("expected http://HOST:PORT")),
            None => t,
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let path = match path {
            "" | "/" => "/metrics".to_string(),
            p => p.to_string(),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed '[' in an IPv6 address"))?;
            match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None if after.is_empty() => (host, None),
                None => return Err(bad("expected [IPv6]:PORT")),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host (expected http://HOST:PORT)"));
        }
        let port = match port {
            None => 41414,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(bad(&format!("'{p}' is not a TCP port (1-65535)"))),
            },
        };
        let shown_host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        Ok(Endpoint {
            host: host.to_string(),
            port,
            path,
            base: format!("http://{shown_host}:{port}"),
        })
    }

    /// `http://HOST:PORT`, as error messages show it.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The full URL fetched (`http://HOST:PORT/metrics`).
    pub fn url(&self) -> String {
        format!("{}{}", self.base, self.path)
    }
}

/// The attributes of one counter group, by Flume's names.
pub type Attributes = BTreeMap<String, String>;

/// One poll of `/metrics`.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When the counters were read (monotonic).
    pub at: Instant,
    /// Every group by its key (`SOURCE.r1`).
    pub groups: BTreeMap<String, Attributes>,
}

impl Sample {
    /// Parses Flume's `/metrics` JSON (values may be strings, as Flume writes them, or plain
    /// JSON numbers and booleans).
    pub fn from_json(at: Instant, body: &[u8]) -> Result<Sample, String> {
        let v: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
        let obj = v
            .as_object()
            .ok_or("the JSON is not an object of component groups")?;
        let mut groups = BTreeMap::new();
        for (key, attrs) in obj {
            let attrs = attrs
                .as_object()
                .ok_or_else(|| format!("group {key} is not an object"))?;
            let attrs = attrs
                .iter()
                .filter_map(|(k, v)| {
                    let s = match v {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Number(n) => n.to_string(),
                        serde_json::Value::Bool(b) => b.to_string(),
                        _ => return None,
                    };
                    Some((k.clone(), s))
                })
                .collect();
            groups.insert(key.clone(), attrs);
        }
        Ok(Sample { at, groups })
    }
}

/// Fetches `/metrics` once.
pub fn fetch(ep: &Endpoint) -> Result<Sample, TopError> {
    let unreachable = |reason: String| TopError::Unreachable {
        url: ep.base.clone(),
        reason,
    };
    let addrs: Vec<_> = (ep.host.as_str(), ep.port)
        .to_socket_addrs()
        .map_err(|e| unreachable(format!("cannot resolve {}: {e}", ep.host)))?
        .collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    let mut stream = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, IO_TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let mut stream = stream.ok_or_else(|| unreachable(last.to_string()))?;
    let timed = |e: io::Error| {
        if matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) {
            unreachable(format!("no answer within {} s", IO_TIMEOUT.as_secs()))
        } else {
            unreachable(e.to_string())
        }
    };
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let host = if ep.host.contains(':') {
        format!("[{}]", ep.host)
    } else {
        ep.host.clone()
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}:{}\r\nUser-Agent: sluicegate-top\r\nAccept: \
         application/json\r\nConnection: close\r\n\r\n",
        ep.path, ep.port
    );
    let sent = Instant::now();
    stream.write_all(request.as_bytes()).map_err(timed)?;
    let mut raw = Vec::new();
    (&mut stream)
        .take(MAX_RESPONSE)
        .read_to_end(&mut raw)
        .map_err(timed)?;
    let at = sent + sent.elapsed() / 2;
    let not_metrics = |reason: String| TopError::NotMetrics {
        url: ep.url(),
        reason,
    };
    let (status, body) = parse_response(&raw).map_err(not_metrics)?;
    if status != 200 {
        return Err(not_metrics(format!("it answered HTTP {status}")));
    }
    Sample::from_json(at, &body).map_err(not_metrics)
}

/// Splits an HTTP/1.x response into its status and body (`Content-Length`, chunked, or up to
/// the end).
pub fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), String> {
    if raw.is_empty() {
        return Err("the connection closed without an answer".into());
    }
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("not an HTTP answer (no end of headers)")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let rest = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.split_whitespace();
    let status = match (parts.next(), parts.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => code
            .parse::<u16>()
            .map_err(|_| format!("bad status line '{status_line}'"))?,
        _ => return Err("not an HTTP answer".into()),
    };
    let mut length = None;
    let mut chunked = false;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("content-length") {
            length = Some(
                v.parse::<usize>()
                    .map_err(|_| format!("bad Content-Length '{v}'"))?,
            );
        } else if k.eq_ignore_ascii_case("transfer-encoding")
            && v.to_ascii_lowercase().contains("chunked")
        {
            chunked = true;
        }
    }
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(n) = length {
        if rest.len() < n {
            return Err(format!(
                "the answer was cut short ({} of {n} bytes)",
                rest.len()
            ));
        }
        rest[..n].to_vec()
    } else {
        rest.to_vec()
    };
    Ok((status, body))
}

/// Decodes a chunked body.
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunked body cut short")?;
        let line = String::from_utf8_lossy(&rest[..eol]);
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size '{size_text}'"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if rest.len() < size + 2 {
            return Err("a chunked body cut short".into());
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// Parses `--interval`: `1s`, `500ms`, `2m`, or a bare number of seconds; at least 10 ms.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let t = text.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{text}': expected e.g. 1s, 500ms or 2m"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" | "min" => n * 60.0,
        u => return Err(format!("'{text}': unknown unit '{u}' (use ms, s or m)")),
    };
    if !(0.01..=3600.0).contains(&secs) {
        return Err(format!("'{text}': must be between 10ms and 1h"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// How a cell should stand out in the live view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Nothing to see.
    Plain,
    /// Worth a look (back-pressure, a channel filling up).
    Warn,
    /// Something is failing.
    Bad,
}

/// One cell of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// The text shown.
    pub text: String,
    /// Its emphasis in the live view.
    pub tone: Tone,
}

impl Cell {
    fn plain(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            tone: Tone::Plain,
        }
    }

    fn toned(text: impl Into<String>, tone: Tone) -> Cell {
        Cell {
            text: text.into(),
            tone,
        }
    }

    /// A count: red when non-zero and `bad`, yellow when non-zero and not.
    fn count(n: u64, bad: bool) -> Cell {
        let tone = match (n, bad) {
            (0, _) => Tone::Plain,
            (_, true) => Tone::Bad,
            (_, false) => Tone::Warn,
        };
        Cell::toned(n.to_string(), tone)
    }
}

/// The components of one kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// `SOURCE`, `CHANNEL`, `SINK` or `PIPELINE`.
    pub kind: &'static str,
    /// Column titles; the first is the kind.
    pub header: Vec<&'static str>,
    /// One row per component; the first cell is its name.
    pub rows: Vec<Vec<Cell>>,
}

/// One frame: every component's figures from two successive polls.
#[derive(Debug, Clone)]
pub struct View {
    /// The agent's base URL.
    pub url: String,
    /// The time between the two polls the rates come from (`None`: first poll, no rates).
    pub over: Option<Duration>,
    /// Sources, channels, sinks, pipelines (each present, possibly empty).
    pub sections: Vec<Section>,
}

/// The sections' column titles, in the order [`View::new`] fills them.
const KINDS: &[(&str, &[&str])] = &[
    (
        "SOURCE",
        &[
            "SOURCE",
            "recv/s",
            "accepted/s",
            "accepted",
            "conns",
            "refused",
            "errors",
        ],
    ),
    (
        "CHANNEL",
        &[
            "CHANNEL", "put/s", "take/s", "size", "capacity", "fill", "refused", "errors", "state",
        ],
    ),
    (
        "SINK",
        &["SINK", "out/s", "delivered", "conns", "conn-fail", "errors"],
    ),
    (
        "PIPELINE",
        &[
            "PIPELINE",
            "in/s",
            "batches",
            "last ms",
            "p50 ms",
            "p99 ms",
            "delay ms",
            "keys",
            "wm lag ms",
            "output",
            "retried",
            "errors",
        ],
    ),
];

/// Reads attributes of one group in `now`, and rates against `before`.
struct Group<'a> {
    now: &'a Attributes,
    before: Option<&'a Attributes>,
    secs: Option<f64>,
}

impl Group<'_> {
    fn n(&self, attr: &str) -> u64 {
        self.now
            .get(attr)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    fn sum(&self, attrs: &[&str]) -> u64 {
        attrs.iter().map(|a| self.n(a)).sum()
    }

    fn text(&self, attr: &str) -> String {
        self.now
            .get(attr)
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| "-".into())
    }

    /// The per-second change of `attr` since the previous poll.
    fn rate(&self, attr: &str) -> Option<f64> {
        let before = self.before?;
        let secs = self.secs.filter(|s| *s > 0.0)?;
        if before.get("StartTime") != self.now.get("StartTime") {
            return None;
        }
        let was: u64 = before.get(attr)?.trim().parse().ok()?;
        let is: u64 = self.now.get(attr)?.trim().parse().ok()?;
        (is >= was).then(|| (is - was) as f64 / secs)
    }

    fn rate_cell(&self, attr: &str) -> Cell {
        Cell::plain(format_rate(self.rate(attr)))
    }

    fn stopped(&self) -> bool {
        self.n("StopTime") != 0
    }
}

/// `12345`, `12.5`, `0`, or `-` when unknown.
pub fn format_rate(r: Option<f64>) -> String {
    match r {
        None => "-".into(),
        Some(r) if r == 0.0 || r >= 100.0 => format!("{r:.0}"),
        Some(r) => format!("{r:.1}"),
    }
}

impl View {
    /// The frame for `now`, with rates against `before` (the previous poll).
    pub fn new(url: &str, before: Option<&Sample>, now: &Sample) -> View {
        let over = before.and_then(|b| now.at.checked_duration_since(b.at));
        let secs = over.map(|d| d.as_secs_f64());
        let mut sections: Vec<Section> = KINDS
            .iter()
            .map(|(kind, header)| Section {
                kind,
                header: header.to_vec(),
                rows: Vec::new(),
            })
            .collect();
        for (key, attrs) in &now.groups {
            let Some((kind, name)) = key.split_once('.') else {
                continue;
            };
            let g = Group {
                now: attrs,
                before: before.and_then(|b| b.groups.get(key)),
                secs,
            };
            let mut row = vec![Cell::plain(name)];
            let section = match kind {
                "SOURCE" => {
                    row.extend([
                        g.rate_cell("EventReceivedCount"),
                        g.rate_cell("EventAcceptedCount"),
                        Cell::plain(g.n("EventAcceptedCount").to_string()),
                        Cell::plain(g.n("OpenConnectionCount").to_string()),
                        Cell::count(g.n("ChannelWriteFail"), false),
                        Cell::count(g.sum(&["EventReadFail", "GenericProcessingFail"]), true),
                    ]);
                    0
                }
                "CHANNEL" => {
                    let (size, cap) = (g.n("ChannelSize"), g.n("ChannelCapacity"));
                    let fill = if cap > 0 {
                        Some(size as f64 * 100.0 / cap as f64)
                    } else {
                        g.now
                            .get("ChannelFillPercentage")
                            .and_then(|v| v.trim().parse::<f64>().ok())
                            .filter(|f| *f <= 100.0 && *f >= 0.0)
                    };
                    let fill_cell = match fill {
                        None => Cell::plain("-"),
                        Some(f) => Cell::toned(
                            format!("{f:.1}%"),
                            if f >= 100.0 {
                                Tone::Bad
                            } else if f >= 80.0 {
                                Tone::Warn
                            } else {
                                Tone::Plain
                            },
                        ),
                    };
                    let state = if g.n("Unhealthy") != 0 {
                        Cell::toned("unhealthy", Tone::Bad)
                    } else if g.stopped() {
                        Cell::toned("stopped", Tone::Warn)
                    } else if g.n("Closed") != 0 {
                        Cell::toned("closed", Tone::Warn)
                    } else {
                        Cell::plain("ok")
                    };
                    row.extend([
                        g.rate_cell("EventPutSuccessCount"),
                        g.rate_cell("EventTakeSuccessCount"),
                        Cell::plain(size.to_string()),
                        Cell::plain(cap.to_string()),
                        fill_cell,
                        Cell::count(g.n("EventPutErrorCount"), false),
                        Cell::count(
                            g.sum(&["EventTakeErrorCount", "CheckpointWriteErrorCount"]),
                            true,
                        ),
                        state,
                    ]);
                    1
                }
                "SINK" => {
                    let open = g
                        .n("ConnectionCreatedCount")
                        .saturating_sub(g.n("ConnectionClosedCount"));
                    row.extend([
                        g.rate_cell("EventDrainSuccessCount"),
                        Cell::plain(g.n("EventDrainSuccessCount").to_string()),
                        Cell::plain(open.to_string()),
                        Cell::count(g.n("ConnectionFailedCount"), true),
                        Cell::count(g.sum(&["EventWriteFail", "ChannelReadFail"]), true),
                    ]);
                    2
                }
                "PIPELINE" => {
                    let errors: u64 = g
                        .now
                        .iter()
                        .filter(|(k, _)| k.starts_with("Errors"))
                        .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
                        .sum();
                    row.extend([
                        g.rate_cell("InputEventsTotal"),
                        Cell::plain(g.n("BatchesCompleted").to_string()),
                        Cell::plain(g.text("ProcessingTimeLastMs")),
                        Cell::plain(g.text("ProcessingTimeP50Ms")),
                        Cell::plain(g.text("ProcessingTimeP99Ms")),
                        Cell::plain(g.text("SchedulingDelayLastMs")),
                        Cell::plain(g.n("StateKeys").to_string()),
                        Cell::plain(g.text("WatermarkLagMs")),
                        Cell::plain(g.n("OutputRecords").to_string()),
                        Cell::count(g.n("BatchesRetried"), false),
                        Cell::count(errors, true),
                    ]);
                    3
                }
                _ => continue,
            };
            sections[section].rows.push(row);
        }
        View {
            url: url.to_string(),
            over,
            sections,
        }
    }

    /// The title line: where, and over which interval.
    pub fn title(&self) -> String {
        match self.over {
            Some(d) => format!(
                "sluicegate top: {}, rates over {:.2} s",
                self.url,
                d.as_secs_f64()
            ),
            None => format!("sluicegate top: {}, first poll (no rates yet)", self.url),
        }
    }

    /// The widths of each section's columns (the widest of title and cells).
    fn widths(section: &Section) -> Vec<usize> {
        section
            .header
            .iter()
            .enumerate()
            .map(|(i, h)| {
                section
                    .rows
                    .iter()
                    .filter_map(|r| r.get(i))
                    .map(|c| c.text.chars().count())
                    .chain([h.len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }
}

impl fmt::Display for View {
    /// Plain text: the title line, then per non-empty section a header and one line per
    /// component; names left-aligned, figures right-aligned, columns two spaces apart.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.title())?;
        let mut any = false;
        for s in self.sections.iter().filter(|s| !s.rows.is_empty()) {
            any = true;
            let widths = View::widths(s);
            writeln!(f)?;
            let line = |cells: Vec<&str>| -> String {
                let mut out = String::new();
                for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
                    if i == 0 {
                        out.push_str(&format!("{c:<w$}"));
                    } else {
                        out.push_str(&format!("  {c:>w$}"));
                    }
                }
                out.trim_end().to_string()
            };
            writeln!(f, "{}", line(s.header.clone()))?;
            for r in &s.rows {
                writeln!(f, "{}", line(r.iter().map(|c| c.text.as_str()).collect()))?;
            }
        }
        if !any {
            writeln!(f)?;
            writeln!(f, "no sources, channels, sinks or pipelines reported yet")?;
        }
        Ok(())
    }
}

/// `--once`: two polls `interval` apart, the frame as plain text.
pub fn once(ep: &Endpoint, interval: Duration) -> Result<View, TopError> {
    let first = fetch(ep)?;
    std::thread::sleep(interval);
    let second = fetch(ep)?;
    Ok(View::new(ep.base(), Some(&first), &second))
}

/// Polls `ep` every `interval` on a thread until the receiver is dropped or `stop` is.
fn spawn_poller(
    ep: Endpoint,
    interval: Duration,
) -> (mpsc::Receiver<Result<Sample, TopError>>, mpsc::Sender<()>) {
    let (tx, rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("sluicegate-top-poll".into())
        .spawn(move || loop {
            match stop_rx.recv_timeout(interval) {
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            if tx.send(fetch(&ep)).is_err() {
                return;
            }
        })
        .map(|_| ())
        .unwrap_or_else(|e| tracing::error!("cannot start the poller thread: {e}"));
    (rx, stop_tx)
}

/// Restores the terminal however the live view ends: raw mode off, the alternate screen
/// left, the cursor shown.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
        let _ = ratatui::crossterm::execute!(io::stdout(), ratatui::crossterm::cursor::Show);
    }
}

/// The signals that end the live view as `q` does, the terminal restored first.
const QUIT_SIGNALS: [i32; 3] = [
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGHUP,
];

/// The handlers of [`QUIT_SIGNALS`] while the live view runs: each records its signal (the
/// only thing a handler may safely do); the drawing loop sees it within a tick. Dropping
/// unregisters them.
struct QuitSignals {
    caught: Arc<AtomicUsize>,
    ids: Vec<signal_hook::SigId>,
}

impl QuitSignals {
    fn install() -> io::Result<QuitSignals> {
        let caught = Arc::new(AtomicUsize::new(0));
        let mut q = QuitSignals {
            caught,
            ids: Vec::new(),
        };
        for sig in QUIT_SIGNALS {
            let id = signal_hook::flag::register_usize(sig, q.caught.clone(), sig as usize)?;
            q.ids.push(id);
        }
        Ok(q)
    }

    /// The signal received, if any.
    fn caught(&self) -> Option<i32> {
        match self.caught.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s as i32),
        }
    }
}

impl Drop for QuitSignals {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// The live view: polls every `interval` until `q`, `Esc` or Ctrl-C. SIGTERM, SIGINT and
/// SIGHUP end it too: the terminal is restored, then the process dies of the signal as it
/// would have (its parent sees the signal, a shell `$?` of 128 + the signal's number).
pub fn run_live(ep: &Endpoint, interval: Duration) -> Result<(), TopError> {
    use std::io::IsTerminal;

    if !io::stdout().is_terminal() {
        return Err(TopError::Terminal(io::Error::other(
            "standard output is not a terminal; use --once for plain text",
        )));
    }
    let first = fetch(ep)?;
    let signals = QuitSignals::install().map_err(TopError::Terminal)?;
    let result = live_loop(ep, interval, first, &signals);
    let caught = signals.caught();
    drop(signals);
    if let Some(sig) = caught {
        // The terminal is restored (the loop's guards are dropped): die of the signal.
        let _ = io::stdout().flush();
        signal_hook::low_level::emulate_default_handler(sig).map_err(TopError::Terminal)?;
    }
    result
}

fn live_loop(
    ep: &Endpoint,
    interval: Duration,
    first: Sample,
    signals: &QuitSignals,
) -> Result<(), TopError> {
    use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

    let mut view = View::new(ep.base(), None, &first);
    let mut last = first;
    let mut last_ok = Instant::now();
    let mut problem: Option<String> = None;

    // Before the set-up, which may fail half-way (raw mode on, no alternate screen).
    let _restore = Restore;
    let mut terminal = ratatui::try_init().map_err(TopError::Terminal)?;
    let (samples, _stop) = spawn_poller(ep.clone(), interval);
    let mut dirty = true;
    let tick = Duration::from_millis(100).min(interval);
    loop {
        if signals.caught().is_some() {
            return Ok(());
        }
        loop {
            let r = match samples.try_recv() {
                Ok(r) => r,
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return Err(TopError::PollerStopped),
            };
            match r {
                Ok(s) => {
                    view = View::new(ep.base(), Some(&last), &s);
                    last = s;
                    last_ok = Instant::now();
                    problem = None;
                }
                Err(e) => problem = Some(e.to_string()),
            }
            dirty = true;
        }
        if dirty || problem.is_some() {
            let status = match &problem {
                None => format!("polling every {}; q to quit", humantime(interval)),
                Some(e) => format!("last good poll {} ago: {e}", humantime(last_ok.elapsed())),
            };
            terminal
                .draw(|f| draw(f, &view, &status, problem.is_some()))
                .map_err(TopError::Terminal)?;
            dirty = false;
        }
        if event::poll(tick).map_err(TopError::Terminal)? {
            match event::read().map_err(TopError::Terminal)? {
                Event::Key(k) if k.kind != KeyEventKind::Release => {
                    let ctrl_c = k.modifiers.contains(KeyModifiers::CONTROL)
                        && matches!(k.code, KeyCode::Char('c') | KeyCode::Char('C'));
                    if ctrl_c
                        || matches!(
                            k.code,
                            KeyCode::Char('q') | KeyCode::Char('Q') | KeyCode::Esc
                        )
                    {
                        return Ok(());
                    }
                }
                Event::Resize(..) => dirty = true,
                _ => {}
            }
        }
    }
}

fn humantime(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Draws `view` on a frame: the title, one bordered table per non-empty section, a status line.
pub fn draw(f: &mut ratatui::Frame<'_>, view: &View, status: &str, failing: bool) {
    use ratatui::layout::{Constraint, Layout};
    use ratatui::style::{Color, Modifier, Style};
    use ratatui::text::Line;
    use ratatui::widgets::{Block, Paragraph, Row, Table};

    let shown: Vec<&Section> = view
        .sections
        .iter()
        .filter(|s| !s.rows.is_empty())
        .collect();
    let mut constraints = vec![Constraint::Length(1)];
    constraints.extend(
        shown
            .iter()
            .map(|s| Constraint::Length(s.rows.len() as u16 + 3)),
    );
    constraints.push(Constraint::Min(0));
    constraints.push(Constraint::Length(1));
    let areas = Layout::vertical(constraints).split(f.area());
    let bold = Style::default().add_modifier(Modifier::BOLD);
    f.render_widget(Paragraph::new(Line::styled(view.title(), bold)), areas[0]);
    for (i, s) in shown.iter().enumerate() {
        let w = View::widths(s);
        let widths: Vec<Constraint> = w.iter().map(|&w| Constraint::Length(w as u16)).collect();
        let rows = s.rows.iter().map(|r| {
            Row::new(r.iter().enumerate().map(|(j, c)| {
                let style = match c.tone {
                    Tone::Plain if j == 0 => Style::default().fg(Color::Cyan),
                    Tone::Plain => Style::default(),
                    Tone::Warn => Style::default().fg(Color::Yellow),
                    Tone::Bad => Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
                };
                // Names left-aligned, figures right-aligned within the column.
                let text = if j == 0 {
                    c.text.clone()
                } else {
                    format!("{:>1$}", c.text, w[j])
                };
                ratatui::widgets::Cell::from(text).style(style)
            }))
        });
        let header = Row::new(s.header.iter().enumerate().map(|(j, h)| {
            if j == 0 {
                h.to_string()
            } else {
                format!("{:>1$}", h, w[j])
            }
        }))
        .style(bold);
        let title = format!(" {}s ({}) ", s.kind.to_ascii_lowercase(), s.rows.len());
        let table = Table::new(rows, widths)
            .header(header)
            .column_spacing(2)
            .block(Block::bordered().title(title));
        f.render_widget(table, areas[i + 1]);
    }
    if shown.is_empty() {
        f.render_widget(
            Paragraph::new("no sources, channels, sinks or pipelines reported yet"),
            areas[1],
        );
    }
    let style = if failing {
        Style::default().fg(Color::Red)
    } else {
        Style::default().fg(Color::DarkGray)
    };
    if let Some(area) = areas.last() {
        f.render_widget(
            Paragraph::new(Line::styled(status.to_string(), style)),
            *area,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: Instant, groups: &[(&str, &[(&str, &str)])]) -> Sample {
        Sample {
            at,
            groups: groups
                .iter()
                .map(|(k, attrs)| {
                    (
                        k.to_string(),
                        attrs
                            .iter()
                            .map(|(a, v)| (a.to_string(), v.to_string()))
                            .collect(),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn urls() {
        let e = Endpoint::parse("http://127.0.0.1:34545").unwrap();
        assert_eq!(e.url(), "http://127.0.0.1:34545/metrics");
        assert_eq!(e.base(), "http://127.0.0.1:34545");
        assert_eq!(
            Endpoint::parse("localhost:9").unwrap().url(),
            "http://localhost:9/metrics"
        );
        assert_eq!(
            Endpoint::parse("34545").unwrap().base(),
            "http://127.0.0.1:34545"
        );
        assert_eq!(
            Endpoint::parse("HTTP://h").unwrap().base(),
            "http://h:41414"
        );
        assert_eq!(
            Endpoint::parse("http://[::1]:8080/metrics").unwrap().url(),
            "http://[::1]:8080/metrics"
        );
        assert_eq!(
            Endpoint::parse("http://h:1/").unwrap().url(),
            "http://h:1/metrics"
        );
        for bad in [
            "https://h:1",
            "ftp://h",
            "http://:1",
            "h:0",
            "h:99999",
            "http://[::1",
        ] {
            let e = Endpoint::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("--url {bad}: ")), "{e}");
        }
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_interval("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_interval("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_interval("0").is_err());
        assert!(parse_interval("5ms").is_err());
        assert!(parse_interval("1h").is_err());
        assert!(parse_interval("fast").is_err());
    }

    #[test]
    fn responses_with_length_chunks_or_close() {
        let (s, b) =
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}extra").unwrap();
        assert_eq!((s, b.as_slice()), (200, &b"{}"[..]));
        let (s, b) = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((s, b.as_slice()), (200, &br#"{"a":1}"#[..]));
        let (s, b) = parse_response(b"HTTP/1.0 404 Not Found\r\n\r\nnope").unwrap();
        assert_eq!((s, b.as_slice()), (404, &b"nope"[..]));
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}")
                .unwrap_err()
                .contains("cut short")
        );
        assert!(parse_response(b"").is_err());
        assert!(parse_response(b"\x00\x01binary\r\n\r\n").is_err());
    }

    #[test]
    fn samples_accept_flume_strings_and_plain_numbers() {
        let s = Sample::from_json(
            Instant::now(),
            br#"{"SOURCE.r1":{"EventReceivedCount":"5","X":7,"Open":true,"N":null}}"#,
        )
        .unwrap();
        let r1 = &s.groups["SOURCE.r1"];
        assert_eq!(r1["EventReceivedCount"], "5");
        assert_eq!(r1["X"], "7");
        assert_eq!(r1["Open"], "true");
        assert!(!r1.contains_key("N"));
        assert!(Sample::from_json(Instant::now(), b"[1]").is_err());
        assert!(Sample::from_json(Instant::now(), b"<html>").is_err());
    }

    fn two_polls() -> (Sample, Sample) {
        let t0 = Instant::now();
        let before = sample(
            t0,
            &[
                (
                    "SOURCE.r1",
                    &[
                        ("StartTime", "100"),
                        ("EventReceivedCount", "1000"),
                        ("EventAcceptedCount", "1000"),
                        ("OpenConnectionCount", "2"),
                    ],
                ),
                (
                    "CHANNEL.c1",
                    &[
                        ("StartTime", "100"),
                        ("EventPutSuccessCount", "1000"),
                        ("EventTakeSuccessCount", "900"),
                        ("ChannelSize", "100"),
                        ("ChannelCapacity", "1000"),
                    ],
                ),
                (
                    "SINK.k1",
                    &[("StartTime", "100"), ("EventDrainSuccessCount", "900")],
                ),
                (
                    "SINK.gone",
                    &[("StartTime", "5"), ("EventDrainSuccessCount", "50")],
                ),
                (
                    "PIPELINE.wc",
                    &[("StartTime", "100"), ("InputEventsTotal", "0")],
                ),
            ],
        );
        let now = sample(
            t0 + Duration::from_secs(2),
            &[
                (
                    "SOURCE.r1",
                    &[
                        ("StartTime", "100"),
                        ("EventReceivedCount", "3000"),
                        ("EventAcceptedCount", "2900"),
                        ("OpenConnectionCount", "2"),
                        ("ChannelWriteFail", "3"),
                        ("EventReadFail", "0"),
                    ],
                ),
                (
                    "CHANNEL.c1",
                    &[
                        ("StartTime", "100"),
                        ("EventPutSuccessCount", "2900"),
                        ("EventTakeSuccessCount", "1900"),
                        ("ChannelSize", "1000"),
                        ("ChannelCapacity", "1000"),
                        ("Unhealthy", "0"),
                        ("StopTime", "0"),
                    ],
                ),
                (
                    "SINK.k1",
                    &[
                        ("StartTime", "100"),
                        ("EventDrainSuccessCount", "1900"),
                        ("ConnectionCreatedCount", "3"),
                        ("ConnectionClosedCount", "2"),
                        ("ConnectionFailedCount", "4"),
                    ],
                ),
                // Restarted by a reload: its counter went down, so no rate.
                (
                    "SINK.gone",
                    &[("StartTime", "6"), ("EventDrainSuccessCount", "10")],
                ),
                (
                    "PIPELINE.wc",
                    &[
                        ("StartTime", "100"),
                        ("InputEventsTotal", "500"),
                        ("BatchesCompleted", "2"),
                        ("ProcessingTimeLastMs", "7"),
                        ("ProcessingTimeP50Ms", "6"),
                        ("ProcessingTimeP99Ms", "9"),
                        ("SchedulingDelayLastMs", "-1"),
                        ("StateKeys", "42"),
                        ("WatermarkLagMs", "0"),
                        ("ErrorsNonUtf8", "1"),
                        ("ErrorsPanic", "2"),
                    ],
                ),
                ("SINK_PROCESSOR.g", &[("X", "1")]),
            ],
        );
        (before, now)
    }

    #[test]
    fn rates_totals_and_tones_from_two_polls() {
        let (before, now) = two_polls();
        let v = View::new("http://h:1", Some(&before), &now);
        let row = |kind: &str, name: &str| -> Vec<Cell> {
            v.sections
                .iter()
                .find(|s| s.kind == kind)
                .unwrap()
                .rows
                .iter()
                .find(|r| r[0].text == name)
                .unwrap()
                .clone()
        };
        let texts = |r: Vec<Cell>| r.into_iter().map(|c| c.text).collect::<Vec<_>>();
        assert_eq!(
            texts(row("SOURCE", "r1")),
            ["r1", "1000", "950", "2900", "2", "3", "0"]
        );
        let c1 = row("CHANNEL", "c1");
        assert_eq!(
            texts(c1.clone()),
            ["c1", "950", "500", "1000", "1000", "100.0%", "0", "0", "ok"]
        );
        assert_eq!(c1[5].tone, Tone::Bad, "a full channel");
        assert_eq!(
            texts(row("SINK", "k1")),
            ["k1", "500", "1900", "1", "4", "0"]
        );
        assert_eq!(row("SINK", "k1")[4].tone, Tone::Bad);
        assert_eq!(row("SINK", "gone")[1].text, "-");
        assert_eq!(
            row("SOURCE", "r1")[5].tone,
            Tone::Warn,
            "refused is back-pressure"
        );
        assert_eq!(
            texts(row("PIPELINE", "wc")),
            ["wc", "250", "2", "7", "6", "9", "-1", "42", "0", "0", "0", "3"]
        );
        assert_eq!(v.over, Some(Duration::from_secs(2)));

        let text = v.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "sluicegate top: http://h:1, rates over 2.00 s");
        assert!(text.contains("\nSOURCE  recv/s  accepted/s  accepted  conns  refused  errors\n"));
        assert!(text.contains("\nr1        1000         950      2900      2        3       0\n"));
        assert!(!text.contains("SINK_PROCESSOR"), "other kinds are left out");

        // The first poll: totals, no rates.
        let first = View::new("http://h:1", None, &now);
        assert!(first.to_string().contains("first poll (no rates yet)"));
        assert_eq!(
            first.sections[0].rows[0][1].text, "-",
            "no rate without a previous poll"
        );
    }

    #[test]
    fn draws_every_section_on_a_terminal_buffer() {
        let (before, now) = two_polls();
        let v = View::new("http://h:1", Some(&before), &now);
        let backend = ratatui::backend::TestBackend::new(140, 30);
        let mut t = ratatui::Terminal::new(backend).unwrap();
        t.draw(|f| draw(f, &v, "polling every 1.0 s; q to quit", false))
            .unwrap();
        let buf = t.backend().buffer().clone();
        let screen: Vec<String> = (0..buf.area.height)
            .map(|y| {
                (0..buf.area.width)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect()
            })
            .collect();
        let all = screen.join("\n");
        for want in [
            "sluicegate top: http://h:1, rates over 2.00 s",
            " sources (1) ",
            " channels (1) ",
            " sinks (2) ",
            " pipelines (1) ",
            "100.0%",
            "q to quit",
        ] {
            assert!(all.contains(want), "{want} missing from\n{all}");
        }
        assert!(screen
            .iter()
            .any(|l| l.contains("r1") && l.contains("2900")));
    }

    #[test]
    fn unreachable_agent_names_the_url_and_the_flags() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let ep = Endpoint::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        let e = fetch(&ep).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("cannot reach http://127.0.0.1:{port}: ")),
            "{e}"
        );
        assert!(
            e.ends_with(
                "is the agent running with -Dflume.monitoring.type=http -Dflume.monitoring.port=N?"
            ),
            "{e}"
        );
    }
}
