//! The netcat source (`type = netcat`, Flume's `NetcatSource`): a TCP server where every
//! newline-terminated line a client sends becomes one event (body = the line without its `\n`;
//! a `\r` before it is kept, as Flume keeps it). No headers are added.
//!
//! Settings: `bind` and `port` (required), `max-line-length` (default 512, counted in bytes
//! including the newline; Flume counts UTF-16 chars, the same for ASCII), `ack-every-event`
//! (default true: the server answers `OK\n` for each committed line).
//!
//! Flume's replies are kept: a line the channels refuse gets `FAILED: <reason>\n`; a line longer
//! than `max-line-length` gets `FAILED: Event exceeds the maximum length (N chars, including
//! newline)\n` and the connection is closed. Bytes after the last newline at end of stream are
//! dropped.
//!
//! Threads: one accept thread (polling so [`Source::stop`] is prompt) and one thread per
//! connection. Counters: `OpenConnectionCount`, `EventReceivedCount`, `EventAcceptedCount`,
//! `ChannelWriteFail`, `EventReadFail` (over-long lines).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{ChannelProcessor, Source, SourceError};
use crate::config::{ConfigError, Context};
use crate::event::Event;
use crate::metrics::SourceCounter;

/// How often blocked threads look at the stop flag.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long a reply may wait for a client that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings of a netcat source.
#[derive(Debug, Clone)]
pub struct NetcatSourceConfig {
    /// `bind`: host or address to listen on.
    pub bind: String,
    /// `port` (0 picks a free port; see [`NetcatSource::local_addr`]).
    pub port: u16,
    /// `max-line-length`, default 512.
    pub max_line_length: usize,
    /// `ack-every-event`, default true.
    pub ack_every_event: bool,
}

impl NetcatSourceConfig {
    /// Reads the settings with Flume's defaults.
    pub fn from_context(ctx: &Context) -> Result<Self, ConfigError> {
        let bind = ctx.require("bind")?.trim().to_string();
        ctx.require("port")?;
        let port = ctx
            .parse::<u16>("port", "a TCP port (0-65535)")?
            .unwrap_or(0);
        let max_line_length = ctx.get_u64("max-line-length", 512)?;
        if !(2..=(64 << 20)).contains(&max_line_length) {
            return Err(ctx.error(
                "max-line-length",
                "must be between 2 and 67108864 (it includes the newline)",
            ));
        }
        Ok(NetcatSourceConfig {
            bind,
            port,
            max_line_length: max_line_length as usize,
            ack_every_event: ctx.get_bool("ack-every-event", true),
        })
    }
}

struct Shared {
    name: String,
    cfg: NetcatSourceConfig,
    processor: ChannelProcessor,
    counter: Arc<SourceCounter>,
    stop: AtomicBool,
    handlers: Mutex<Vec<JoinHandle<()>>>,
}

/// The netcat source.
pub struct NetcatSource {
    shared: Arc<Shared>,
    local_addr: Option<SocketAddr>,
    accept_thread: Option<JoinHandle<()>>,
}

impl NetcatSource {
    /// Builds the source from its context.
    pub fn from_context(
        name: &str,
        ctx: &Context,
        processor: ChannelProcessor,
    ) -> Result<NetcatSource, ConfigError> {
        Ok(NetcatSource::new(
            name,
            NetcatSourceConfig::from_context(ctx)?,
            processor,
        ))
    }

    /// Builds the source from explicit settings.
    pub fn new(name: &str, cfg: NetcatSourceConfig, processor: ChannelProcessor) -> NetcatSource {
        NetcatSource {
            shared: Arc::new(Shared {
                name: name.to_string(),
                cfg,
                processor,
                counter: Arc::new(SourceCounter::new(name)),
                stop: AtomicBool::new(false),
                handlers: Mutex::new(Vec::new()),
            }),
            local_addr: None,
            accept_thread: None,
        }
    }

    /// The address the source listens on, once started.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }
}

fn io_err(name: &str, what: &str, error: io::Error) -> SourceError {
    SourceError::Io {
        source_name: name.to_string(),
        what: what.to_string(),
        error,
    }
}

/// Waits until `fd` is readable or `timeout` passes.
fn wait_readable(fd: impl AsFd, timeout: Duration) -> io::Result<bool> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let timeout = Timespec::try_from(timeout).map_err(io::Error::other)?;
    match poll(&mut fds, Some(&timeout)) {
        Ok(n) => Ok(n > 0),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    while !shared.stop.load(Ordering::Acquire) {
        match wait_readable(&listener, POLL_INTERVAL) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(e) => {
                tracing::error!(source = %shared.name, error = %e, "poll on listening socket failed");
                std::thread::sleep(POLL_INTERVAL);
                continue;
            }
        }
        match listener.accept() {
            Ok((stream, peer)) => {
                let s = shared.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("netcat-handler-{}", shared.name))
                    .spawn(move || handle_connection(s, stream, peer));
                // Poison: a list of thread handles; retain/push leave it whole.
                let mut hs = shared.handlers.lock().unwrap_or_else(|e| e.into_inner());
                hs.retain(|h| !h.is_finished());
                match spawned {
                    Ok(h) => hs.push(h),
                    Err(e) => {
                        tracing::error!(source = %shared.name, error = %e, "cannot spawn connection handler")
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                tracing::error!(source = %shared.name, error = %e, "unable to accept connection");
            }
        }
    }
}

fn handle_connection(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    SourceCounter::add(&shared.counter.open_connections, 1);
    if let Err(e) = serve(&shared, stream) {
        tracing::debug!(source = %shared.name, %peer, error = %e, "netcat session broken");
    }
    shared
        .counter
        .open_connections
        .fetch_sub(1, Ordering::Relaxed);
}

fn serve(shared: &Shared, mut stream: TcpStream) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(POLL_INTERVAL))?;
    // A client that stops reading its acks must not be able to hold up stop() for long.
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let _ = stream.set_nodelay(true);
    let cap = shared.cfg.max_line_length;
    let mut buf = vec![0u8; cap];
    let mut filled = 0usize;
    let mut replies: Vec<u8> = Vec::new();
    loop {
        if shared.stop.load(Ordering::Acquire) {
            return Ok(());
        }
        let n = match stream.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        let eof = n == 0;
        filled += n;
        // Every complete line becomes one event.
        let mut start = 0;
        while let Some(off) = buf[start..filled].iter().position(|b| *b == b'\n') {
            let line = &buf[start..start + off];
            start += off + 1;
            SourceCounter::add(&shared.counter.events_received, 1);
            match shared.processor.process_event(Event::from_body(line)) {
                Ok(()) => {
                    SourceCounter::add(&shared.counter.events_accepted, 1);
                    if shared.cfg.ack_every_event {
                        replies.extend_from_slice(b"OK\n");
                    }
                }
                Err(e) => {
                    SourceCounter::add(&shared.counter.channel_write_fail, 1);
                    tracing::warn!(source = %shared.name, error = %e, "error processing event");
                    replies.extend_from_slice(format!("FAILED: {e}\n").as_bytes());
                }
            }
        }
        if start > 0 {
            buf.copy_within(start..filled, 0);
            filled -= start;
        }
        if !replies.is_empty() {
            stream.write_all(&replies)?;
            replies.clear();
        }
        if eof {
            return Ok(());
        }
        if filled == cap {
            SourceCounter::add(&shared.counter.event_read_fail, 1);
            tracing::warn!(source = %shared.name, "client sent event exceeding the maximum length");
            stream.write_all(
                format!(
                    "FAILED: Event exceeds the maximum length ({cap} chars, including newline)\n"
                )
                .as_bytes(),
            )?;
            linger_close(&mut stream, &mut buf);
            return Ok(());
        }
    }
}

/// Closes our side, then discards what the client still sends for a moment (bounded), so
/// unread input does not turn the close into a reset that would destroy the reply in flight.
fn linger_close(stream: &mut TcpStream, scratch: &mut [u8]) {
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(POLL_INTERVAL));
    let mut left: usize = 1 << 20;
    while left > 0 {
        match stream.read(scratch) {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

impl Source for NetcatSource {
    fn name(&self) -> &str {
        &self.shared.name
    }

    fn start(&mut self) -> Result<(), SourceError> {
        if self.accept_thread.is_some() {
            return Ok(());
        }
        let name = &self.shared.name;
        let cfg = &self.shared.cfg;
        let addrs: Vec<SocketAddr> = (cfg.bind.as_str(), cfg.port)
            .to_socket_addrs()
            .map_err(|e| io_err(name, &format!("resolving {}:{}", cfg.bind, cfg.port), e))?
            .collect();
        let listener = TcpListener::bind(&addrs[..])
            .map_err(|e| io_err(name, &format!("binding {}:{}", cfg.bind, cfg.port), e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| io_err(name, "configuring the listening socket", e))?;
        self.local_addr = listener.local_addr().ok();
        self.shared.stop.store(false, Ordering::Release);
        self.shared.counter.start();
        let shared = self.shared.clone();
        let t = std::thread::Builder::new()
            .name(format!("netcat-accept-{name}"))
            .spawn(move || accept_loop(shared, listener))
            .map_err(|e| io_err(name, "spawning the accept thread", e))?;
        tracing::info!(source = %name, addr = ?self.local_addr, "netcat source listening");
        self.accept_thread = Some(t);
        Ok(())
    }

    fn stop(&mut self) {
        let Some(t) = self.accept_thread.take() else {
            return;
        };
        self.shared.stop.store(true, Ordering::Release);
        let _ = t.join();
        // Poison: a list of thread handles; joining what is there is all stop needs.
        let handlers: Vec<JoinHandle<()>> = std::mem::take(
            &mut *self
                .shared
                .handlers
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for h in handlers {
            let _ = h.join();
        }
        self.shared.counter.stop();
    }

    fn counter(&self) -> Arc<SourceCounter> {
        self.shared.counter.clone()
    }
}

impl Drop for NetcatSource {
    fn drop(&mut self) {
        self.stop();
    }
}
