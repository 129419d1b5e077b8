//! The exec source (`type = exec`, Flume's `ExecSource`): runs a command and turns every line it
//! writes to standard output into one event (body = the line without `\n` / `\r\n`).
//!
//! Settings (Flume's names and defaults): `command` (required), `shell` (e.g. `/bin/sh -c`:
//! when set the command is passed to it as one argument, otherwise the command is split on
//! whitespace and run directly), `restart` (false), `restartThrottle` (10000 ms), `logStdErr`
//! (false: stderr is read and discarded; true: logged at INFO), `batchSize` (20), `batchTimeout`
//! (3000 ms: a partial batch older than this is delivered), `charset` (UTF-8; UTF-8, US-ASCII
//! and ISO-8859-1 are supported and all pass the line's bytes through unchanged).
//!
//! Differences from Flume, both on the safe side: a batch the channels refuse is retried (with a
//! 1 s pause, the command's output waiting in its pipe) instead of being dropped with the
//! command killed; and the command runs in its own process group, which is terminated as a
//! whole on stop (so `shell` pipelines do not outlive the source).
//!
//! [`Source::stop`] stops the restart loop, delivers every line already read (one last attempt),
//! terminates the command (SIGTERM, then SIGKILL after 2 s) and joins the runner thread.
//! Counters: `EventReceivedCount` per line, `EventAcceptedCount` per delivered event,
//! `ChannelWriteFail` per refused batch.

use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use super::seq::sleep_or_stop;
use super::{ChannelProcessor, Source, SourceError};
use crate::config::{ConfigError, Context};
use crate::event::Event;
use crate::metrics::SourceCounter;

/// Settings of an exec source.
#[derive(Debug, Clone)]
pub struct ExecSourceConfig {
    /// `command`.
    pub command: String,
    /// `shell`, e.g. `/bin/sh -c`.
    pub shell: Option<String>,
    /// `restart`, default false.
    pub restart: bool,
    /// `restartThrottle`, default 10000 ms.
    pub restart_throttle: Duration,
    /// `logStdErr`, default false.
    pub log_stderr: bool,
    /// `batchSize`, default 20.
    pub batch_size: usize,
    /// `batchTimeout`, default 3000 ms.
    pub batch_timeout: Duration,
}

impl ExecSourceConfig {
    /// Reads the settings with Flume's defaults.
    pub fn from_context(ctx: &Context) -> Result<Self, ConfigError> {
        let command = ctx.require("command")?.trim().to_string();
        let shell = ctx
            .get("shell")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let batch_size = ctx.get_positive_int("batchSize", 20)?;
        let batch_timeout = ctx.get_millis("batchTimeout", 3000)?;
        if batch_timeout.is_zero() {
            return Err(ctx.error("batchTimeout", "must be at least 1 ms"));
        }
        let charset = ctx.get_or("charset", "UTF-8").trim().to_ascii_lowercase();
        if !matches!(
            charset.as_str(),
            "utf-8" | "utf8" | "us-ascii" | "ascii" | "iso-8859-1" | "iso8859-1" | "latin1"
        ) {
            return Err(ctx.error(
                "charset",
                &format!("unsupported charset '{charset}' (use UTF-8, US-ASCII or ISO-8859-1)"),
            ));
        }
        Ok(ExecSourceConfig {
            command,
            shell,
            restart: ctx.get_bool("restart", false),
            restart_throttle: ctx.get_millis("restartThrottle", 10_000)?,
            log_stderr: ctx.get_bool("logStdErr", false),
            batch_size,
            batch_timeout,
        })
    }

    fn argv(&self) -> Vec<String> {
        match &self.shell {
            Some(shell) => {
                let mut v: Vec<String> = shell.split_whitespace().map(str::to_string).collect();
                v.push(self.command.clone());
                v
            }
            None => self
                .command
                .split_whitespace()
                .map(str::to_string)
                .collect(),
        }
    }
}

/// The exec source.
pub struct ExecSource {
    name: String,
    cfg: ExecSourceConfig,
    processor: ChannelProcessor,
    counter: Arc<SourceCounter>,
    stop_tx: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ExecSource {
    /// Builds the source from its context.
    pub fn from_context(
        name: &str,
        ctx: &Context,
        processor: ChannelProcessor,
    ) -> Result<ExecSource, ConfigError> {
        Ok(ExecSource::new(
            name,
            ExecSourceConfig::from_context(ctx)?,
            processor,
        ))
    }

    /// Builds the source from explicit settings.
    pub fn new(name: &str, cfg: ExecSourceConfig, processor: ChannelProcessor) -> ExecSource {
        ExecSource {
            name: name.to_string(),
            cfg,
            processor,
            counter: Arc::new(SourceCounter::new(name)),
            stop_tx: None,
            thread: None,
        }
    }
}

struct Runner {
    name: String,
    cfg: ExecSourceConfig,
    processor: ChannelProcessor,
    counter: Arc<SourceCounter>,
    stop: Receiver<()>,
}

fn stopping(stop: &Receiver<()>) -> bool {
    !matches!(stop.try_recv(), Err(TryRecvError::Empty))
}

impl Runner {
    fn run(self) {
        loop {
            let exit = match self.spawn() {
                Ok(child) => self.run_once(child),
                Err(e) => {
                    tracing::error!(
                        source = %self.name, command = %self.cfg.command, error = %e,
                        "failed while running command"
                    );
                    "unknown".to_string()
                }
            };
            if !self.cfg.restart || stopping(&self.stop) {
                tracing::info!(source = %self.name, command = %self.cfg.command, exit = %exit, "command exited");
                return;
            }
            tracing::info!(
                source = %self.name, exit = %exit,
                "restarting in {} ms", self.cfg.restart_throttle.as_millis()
            );
            if sleep_or_stop(&self.stop, self.cfg.restart_throttle) {
                return;
            }
        }
    }

    fn spawn(&self) -> io::Result<Child> {
        let argv = self.cfg.argv();
        let (prog, args) = argv
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
        Command::new(prog)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
    }

    /// Reads the command's output until it ends or stop is signalled; returns the exit status.
    fn run_once(&self, mut child: Child) -> String {
        let (line_tx, line_rx) = crossbeam_channel::bounded::<Vec<u8>>(self.cfg.batch_size.max(64));
        if let Some(out) = child.stdout.take() {
            let spawned = std::thread::Builder::new()
                .name(format!("exec-stdout-{}", self.name))
                .spawn(move || read_lines(out, |l| line_tx.send(l).is_ok()));
            if let Err(e) = spawned {
                tracing::error!(source = %self.name, error = %e, "cannot spawn stdout reader");
            }
        }
        if let Some(err) = child.stderr.take() {
            let log = self.cfg.log_stderr;
            let name = self.name.clone();
            let _ = std::thread::Builder::new()
                .name(format!("exec-stderr-{}", self.name))
                .spawn(move || {
                    let mut i = 0u64;
                    read_lines(err, |l| {
                        if log {
                            i += 1;
                            tracing::info!(source = %name, "StderrLogger[{i}] = '{}'", String::from_utf8_lossy(&l));
                        }
                        true
                    })
                });
        }

        let mut batch: Vec<Event> = Vec::with_capacity(self.cfg.batch_size);
        let mut last_push = Instant::now();
        let far = Duration::from_secs(3600);
        loop {
            let wait = if batch.is_empty() {
                far
            } else {
                (last_push + self.cfg.batch_timeout).saturating_duration_since(Instant::now())
            };
            crossbeam_channel::select! {
                recv(line_rx) -> msg => match msg {
                    Ok(line) => {
                        SourceCounter::add(&self.counter.events_received, 1);
                        batch.push(Event::from_body(line));
                        if batch.len() >= self.cfg.batch_size
                            || last_push.elapsed() >= self.cfg.batch_timeout
                        {
                            self.deliver(&mut batch);
                            last_push = Instant::now();
                        }
                    }
                    Err(_) => break, // end of output
                },
                recv(self.stop) -> _ => {
                    for line in line_rx.try_iter() {
                        SourceCounter::add(&self.counter.events_received, 1);
                        batch.push(Event::from_body(line));
                    }
                    break;
                },
                default(wait) => {
                    if !batch.is_empty() {
                        self.deliver(&mut batch);
                        last_push = Instant::now();
                    }
                }
            }
        }
        if !batch.is_empty() {
            self.deliver(&mut batch);
        }
        drop(line_rx);
        terminate(&mut child)
    }

    /// Delivers `batch`, retrying while the channels refuse it (one last try once stopping).
    fn deliver(&self, batch: &mut Vec<Event>) {
        let mut reported_full = false;
        loop {
            match self.processor.process_batch(batch) {
                Ok(()) => {
                    SourceCounter::add(&self.counter.events_accepted, batch.len() as u64);
                    batch.clear();
                    return;
                }
                Err(e) => {
                    SourceCounter::add(&self.counter.channel_write_fail, 1);
                    if stopping(&self.stop) {
                        tracing::error!(
                            source = %self.name, error = %e, dropped = batch.len(),
                            "channel refused the last batch while stopping; events dropped"
                        );
                        batch.clear();
                        return;
                    }
                    if matches!(e, crate::channel::ChannelError::Full { .. }) {
                        if !reported_full {
                            reported_full = true;
                            tracing::info!(source = %self.name, cause = %e, "back-pressure: the channel is full; retrying every 1 s (reported once per batch)");
                        }
                    } else {
                        tracing::error!(source = %self.name, error = %e, "channel refused batch; retrying in 1 s");
                    }
                    // Returns at once when stop is signalled, then the loop tries one last time.
                    sleep_or_stop(&self.stop, Duration::from_secs(1));
                }
            }
        }
    }
}

/// Calls `f` with each line of `r` (without `\n` or `\r\n`; a final unterminated line too),
/// until EOF, an error, or `f` returning false.
fn read_lines(r: impl Read, mut f: impl FnMut(Vec<u8>) -> bool) {
    let mut r = BufReader::with_capacity(64 * 1024, r);
    loop {
        let mut line = Vec::new();
        match r.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                if !f(line) {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Terminates the command's process group (SIGTERM, SIGKILL after 2 s) and reaps it.
fn terminate(child: &mut Child) -> String {
    use rustix::process::{kill_process_group, Pid, Signal};
    let pgid = Pid::from_child(child);
    if let Ok(Some(status)) = child.try_wait() {
        return status.code().map_or("signal".into(), |c| c.to_string());
    }
    // The group id is our unreaped child's pid, so it cannot have been reused. An error means
    // the group is already gone, which the wait below notices.
    let _ = kill_process_group(pgid, Signal::TERM);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return status.code().map_or("signal".into(), |c| c.to_string());
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = kill_process_group(pgid, Signal::KILL);
                return child
                    .wait()
                    .map(|s| s.code().map_or("signal".into(), |c| c.to_string()))
                    .unwrap_or_else(|e| format!("unknown ({e})"));
            }
            Err(e) => return format!("unknown ({e})"),
        }
    }
}

impl Source for ExecSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn start(&mut self) -> Result<(), SourceError> {
        if self.thread.is_some() {
            return Ok(());
        }
        tracing::info!(source = %self.name, command = %self.cfg.command, "exec source starting");
        self.counter.start();
        let (tx, rx) = crossbeam_channel::bounded(0);
        let runner = Runner {
            name: self.name.clone(),
            cfg: self.cfg.clone(),
            processor: self.processor.clone(),
            counter: self.counter.clone(),
            stop: rx,
        };
        let t = std::thread::Builder::new()
            .name(format!("exec-source-{}", self.name))
            .spawn(move || runner.run())
            .map_err(|error| SourceError::Io {
                source_name: self.name.clone(),
                what: "spawning the runner thread".into(),
                error,
            })?;
        self.stop_tx = Some(tx);
        self.thread = Some(t);
        Ok(())
    }

    fn stop(&mut self) {
        self.stop_tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
            self.counter.stop();
            tracing::info!(source = %self.name, "exec source stopped");
        }
    }

    fn counter(&self) -> Arc<SourceCounter> {
        self.counter.clone()
    }
}

impl Drop for ExecSource {
    fn drop(&mut self) {
        self.stop();
    }
}
