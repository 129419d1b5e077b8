//! The logger sink (`type = logger`, Flume's `LoggerSink`): logs each event at INFO, in Flume's
//! `EventHelper.dumpEvent` format:
//!
//! ```text
//! Event: { headers:{host=h1, ts=1} body: 48 65 6C 6C 6F 0D                Hello. }
//! ```
//!
//! The body shows at most `maxBytesToLog` bytes (default 16) as a commons-io `HexDump`: 16 bytes
//! per row, upper-case hex, then the bytes as ASCII (`.` for non-printable); the first row's
//! `00000000` offset is dropped, later rows keep theirs. Headers print as Java's `Map.toString`
//! (`{k=v, k2=v2}`, in the event's order). As in Flume, each [`Sink::process`] call takes one
//! event in its own transaction.

use std::fmt::Write as _;
use std::sync::Arc;

use super::batch::{commit_counted, take_counted};
use super::{Sink, SinkError, SinkStatus};
use crate::channel::Channel;
use crate::config::{ConfigError, Context};
use crate::event::Event;
use crate::metrics::SinkCounter;

/// Flume's default `maxBytesToLog`.
pub const DEFAULT_MAX_BYTES_TO_LOG: usize = 16;

/// Renders `event` exactly as Flume's `EventHelper.dumpEvent(event, max_bytes)` does (without the
/// `Event: ` prefix the sink adds).
pub fn dump_event(event: &Event, max_bytes: usize) -> String {
    let mut out = String::with_capacity(96);
    out.push_str("{ headers:{");
    for (i, (k, v)) in event.header_map().iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{k}={v}");
    }
    out.push_str("} body:");
    let body = event.body();
    let data = &body[..body.len().min(max_bytes)];
    if !data.is_empty() {
        let mut dump = String::new();
        for (row, chunk) in data.chunks(16).enumerate() {
            let _ = write!(dump, "{:08X} ", row * 16);
            for k in 0..16 {
                match chunk.get(k) {
                    Some(b) => {
                        let _ = write!(dump, "{b:02X}");
                    }
                    None => dump.push_str("  "),
                }
                dump.push(' ');
            }
            for &b in chunk {
                dump.push(if (0x20..0x7f).contains(&b) {
                    b as char
                } else {
                    '.'
                });
            }
            dump.push('\n');
        }
        let dump = dump.strip_prefix("00000000").unwrap_or(&dump);
        let dump = if dump.len() > 1 {
            dump.strip_suffix('\n').unwrap_or(dump)
        } else {
            dump
        };
        out.push_str(dump);
    }
    out.push_str(" }");
    out
}

/// The logger sink.
pub struct LoggerSink {
    name: String,
    channel: Arc<dyn Channel>,
    max_bytes: usize,
    counter: Arc<SinkCounter>,
}

impl LoggerSink {
    /// Builds the sink from its context (`maxBytesToLog`); it drains `channel`.
    pub fn from_context(
        name: &str,
        ctx: &Context,
        channel: Arc<dyn Channel>,
    ) -> Result<LoggerSink, ConfigError> {
        let max = match ctx.get("maxBytesToLog").map(str::trim) {
            None | Some("") => DEFAULT_MAX_BYTES_TO_LOG,
            Some(_) => ctx
                .parse::<u32>("maxBytesToLog", "a non-negative integer")?
                .unwrap_or(DEFAULT_MAX_BYTES_TO_LOG as u32) as usize,
        };
        Ok(LoggerSink {
            name: name.to_string(),
            channel,
            max_bytes: max,
            counter: Arc::new(SinkCounter::new(name)),
        })
    }
}

impl Sink for LoggerSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn start(&mut self) -> Result<(), SinkError> {
        self.counter.start();
        Ok(())
    }

    fn process(&mut self) -> Result<SinkStatus, SinkError> {
        let take = take_counted(&*self.channel, &self.counter, 1)?;
        let Some(ev) = take.events().first() else {
            return Ok(SinkStatus::Backoff);
        };
        if tracing::enabled!(tracing::Level::INFO) {
            tracing::info!("Event: {}", dump_event(ev, self.max_bytes));
        }
        commit_counted(take, &self.counter)?;
        Ok(SinkStatus::Ready)
    }

    fn stop(&mut self) {
        self.counter.stop();
    }

    fn counter(&self) -> Arc<SinkCounter> {
        self.counter.clone()
    }
}
