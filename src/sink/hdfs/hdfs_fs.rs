//! `hdfs://` paths: the sink's [`HdfsFileSystem`] on a real HDFS, through the native client
//! `hdfs-native` (pure Rust, Hadoop's RPC and data-transfer protocols; no JVM, no `libhdfs`).
//! Only in builds with the `hdfs` cargo feature (on by default).
//!
//! # Sync sink, async client
//!
//! The sink runs on its own runner thread and calls this filesystem synchronously; the client is
//! async. [`HdfsFs`] owns a small Tokio runtime (one worker thread, named
//! `hdfs-<sink>`), made on first use, on which the client also runs its own tasks (RPC response
//! readers, DataNode ack readers, lease renewal). Each call is spawned onto that runtime under
//! `tokio::time::timeout(hdfs.callTimeout)` and the sink thread waits for the task's result
//! (`futures::executor::block_on` on the join handle): nothing blocks inside an async task, and a
//! caller that is itself inside some runtime (a test, an agent stopping) does not panic as
//! `Runtime::block_on` would. The runtime is shut down in the background when the filesystem is
//! dropped (after `stop` closed every file).
//!
//! # Calls and the guarantees they give
//!
//! | trait call | HDFS | notes |
//! |---|---|---|
//! | `create(p)` | `create(p, overwrite, createParent)` | parents made (mkdirs) by the NameNode, 0644 |
//! | `write` | buffered here; `write_bytes` per 1 MiB | packets stream to the DataNode pipeline |
//! | `hflush` | buffer written, then `hsync` | see below |
//! | drop of the file | `close` (`complete` at the NameNode) | a failed close starts lease recovery |
//! | `rename(a, b)` | `rename(a, b, overwrite)` | lease recovery first for files not closed here |
//! | `exists(p)` | `getFileInfo(p)` | any error counts as "no" (the following create reports it) |
//! | `list(d)` | `getListing(d)` | full paths, directories flagged |
//!
//! **`hflush` is `hsync` here**, which is stronger than what Flume asks for. `hdfs-native`
//! exposes no `hflush` of its own; its `hsync` sends the last packet with the `syncBlock` flag,
//! waits until *every* DataNode of the pipeline acknowledged it (each has then `fsync`ed the block
//! file), and then calls the NameNode's `fsync` with the block's length. So when the sink's take
//! commits, every event of it is (a) on the disks of all the pipeline's DataNodes, not only in
//! their memory as Hadoop's `hflush` guarantees, and (b) visible to new readers, at the length
//! recorded at the NameNode. The price is one disk sync per DataNode per flush (`hdfs.batchSize`
//! events per bucket); on a local filesystem the sink likewise `fdatasync`s.
//!
//! # Errors
//!
//! Every error names the operation, the path and the filesystem (`... on NameNode
//! hdfs://host:port: ...`); its kind follows the cause (`NotFound`, `AlreadyExists`,
//! `PermissionDenied` for Hadoop's `AccessControlException`, `TimedOut` past `hdfs.callTimeout`,
//! the socket's own kind for a refused or reset connection). The sink turns any of them into its
//! rollback path: the bucket's events go back to the channel, the bucket waits (1 s doubling to
//! 60 s), nothing is lost. For a URL with an explicit port (one NameNode) the client's own
//! fail-over retries are switched off (`dfs.client.failover.max.attempts = 0`): the sink backs off
//! itself, and a NameNode that is down is reported at once instead of after the client's ~15
//! sleeps. HA nameservices (no port, defined in the Hadoop configuration) keep the configured
//! fail-over.
//!
//! After a failed or timed-out write or sync the file is broken: further writes fail at once
//! and dropping it still tries to close it (as Flume's abandoned writer does).
//!
//! # Close, `hdfs.closeTries`, `hdfs.retryInterval`
//!
//! A file is closed when the format writer lets go of it (on roll, idle/interval timeout, stop,
//! or after a failure), before the bucket renames it. If `close` fails (NameNode or DataNode
//! down, timeout), the data up to the last `hflush` is still durable, but the file stays under
//! construction with this client's lease. As Flume's close retries do, the sink then retries in
//! the background on the filesystem's runtime — here as NameNode lease recovery
//! (`recoverLease`, which closes the file at the length the DataNodes hold): every
//! `hdfs.retryInterval` seconds, up to `hdfs.closeTries - 1` more times (0 = until it works;
//! `retryInterval <= 0` or `closeTries = 1` = no retry). The rename to the final name does not
//! wait for it (HDFS renames files under construction; the recovery follows the file: the retry
//! uses the file's current name). A file the filesystem did not close itself — a leftover in-use
//! file renamed by the sink's crash recovery at `start` — gets one `recoverLease` before its
//! rename, so the dead writer's lease is recovered at once rather than after the NameNode's
//! one-hour hard limit.
//!
//! # Not done
//!
//! Kerberos (the config refuses its keys; the client uses simple authentication as
//! `HADOOP_USER_NAME` or the login name), `hdfs.minBlockReplicas` (see the config module),
//! erasure-coded directories (their files cannot be `hsync`ed; writes fail with the client's
//! error), `viewfs://`.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use hdfs_native::file::FileWriter;
use hdfs_native::{Client, ClientBuilder, HdfsError, WriteOptions};
use tokio::runtime::{Handle, Runtime};

use super::config::{CallSettings, HdfsAuthority};
use super::fs::{HdfsFileSystem, OutFile};

/// Bytes collected before one `write_bytes` (one round trip to the runtime).
const WRITE_BUFFER: usize = 1 << 20;

/// Hadoop's `AccessControlException` (permission denied), as the NameNode names it.
const ACCESS_CONTROL: &str = "org.apache.hadoop.security.AccessControlException";

/// An `hdfs://` filesystem: one NameNode (or HA nameservice), as one client.
pub struct HdfsFs {
    inner: Arc<Inner>,
}

struct Inner {
    authority: HdfsAuthority,
    /// How messages name the filesystem: `NameNode hdfs://host:port`.
    shown: String,
    calls: CallSettings,
    sink: String,
    conn: OnceLock<Result<Conn, String>>,
    /// Files whose close failed and whose lease recovery is retried: id -> current path.
    /// Shared with the retry tasks, which hold no reference to the filesystem itself (so
    /// dropping it shuts the runtime down and ends them).
    pending: Arc<Mutex<HashMap<u64, String>>>,
    next_pending: Mutex<u64>,
    /// In-use paths this filesystem closed itself (their rename needs no lease recovery).
    closed: Mutex<HashSet<String>>,
}

struct Conn {
    runtime: Option<Runtime>,
    client: Client,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Not `drop(runtime)`: that blocks, and panics inside another runtime.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Conn {
    fn handle(&self) -> Handle {
        self.runtime
            .as_ref()
            .map(|r| r.handle().clone())
            .expect("the runtime lives as long as the connection")
    }
}

/// One remote operation, run on the filesystem's runtime.
enum WriterOp {
    Write(Bytes),
    Sync,
    Close,
}

impl HdfsFs {
    /// The filesystem of `hdfs://<authority>`, for the sink `sink`. Connects on first use.
    pub fn new(authority: HdfsAuthority, calls: CallSettings, sink: &str) -> HdfsFs {
        let shown = if authority.host.is_empty() {
            "the default filesystem (fs.defaultFS) hdfs://".to_string()
        } else {
            format!("NameNode {}", authority.url())
        };
        HdfsFs {
            inner: Arc::new(Inner {
                authority,
                shown,
                calls,
                sink: sink.to_string(),
                conn: OnceLock::new(),
                pending: Arc::new(Mutex::new(HashMap::new())),
                next_pending: Mutex::new(0),
                closed: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// How errors name this filesystem (`NameNode hdfs://host:port`).
    pub fn shown(&self) -> &str {
        &self.inner.shown
    }

    /// The client (for tests and tools that read back what the sink wrote). Connects if needed.
    pub fn client(&self) -> io::Result<Client> {
        Ok(self.inner.conn()?.client.clone())
    }

    /// Runs `fut` (made from the client) on the filesystem's runtime under `hdfs.callTimeout`.
    pub fn call<T, F, Fut>(&self, what: &str, path: &str, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = hdfs_native::Result<T>> + Send + 'static,
    {
        self.inner.call(what, path, f)
    }

    /// Files whose lease recovery after a failed close is still being retried.
    pub fn pending_recoveries(&self) -> Vec<String> {
        let mut v: Vec<String> = lock(&self.inner.pending).values().cloned().collect();
        v.sort();
        v
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn path_str(p: &Path) -> io::Result<&str> {
    p.to_str().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not UTF-8 (HDFS paths are)", p.display()),
        )
    })
}

/// The error kind of a client error.
fn kind(e: &HdfsError) -> io::ErrorKind {
    match e {
        HdfsError::IOError(io) => io.kind(),
        HdfsError::FileNotFound(_) => io::ErrorKind::NotFound,
        HdfsError::AlreadyExists(_) => io::ErrorKind::AlreadyExists,
        HdfsError::IsADirectoryError(_) => io::ErrorKind::IsADirectory,
        HdfsError::InvalidPath(_) | HdfsError::InvalidArgument(_) => io::ErrorKind::InvalidInput,
        HdfsError::RPCError(class, _) | HdfsError::FatalRPCError(class, _)
            if class == ACCESS_CONTROL =>
        {
            io::ErrorKind::PermissionDenied
        }
        _ => io::ErrorKind::Other,
    }
}

impl Inner {
    fn connect(&self) -> Result<Conn, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("hdfs-{}", self.sink))
            .enable_all()
            .build()
            .map_err(|e| {
                format!(
                    "{}: could not start the HDFS client's runtime: {e}",
                    self.shown
                )
            })?;
        let build = |url: Option<String>, single_namenode: bool| {
            let mut b = ClientBuilder::new().with_io_runtime(runtime.handle().clone());
            if let Some(url) = url {
                b = b.with_url(url);
            }
            if single_namenode {
                b = b.with_config([("dfs.client.failover.max.attempts", "0")]);
            }
            b.build()
        };
        let a = &self.authority;
        let client = if a.host.is_empty() {
            build(None, false)
        } else if a.port.is_some() {
            build(Some(a.url()), true)
        } else {
            // An HA nameservice if the Hadoop configuration defines one, else host:8020.
            build(Some(a.url()), false).or_else(|_| build(Some(a.url_with_default_port()), true))
        }
        .map_err(|e| format!("{}: the HDFS client could not be set up: {e}", self.shown))?;
        tracing::debug!(sink = %self.sink, "HDFS client for {} ready", self.shown);
        Ok(Conn {
            runtime: Some(runtime),
            client,
        })
    }

    fn conn(&self) -> io::Result<&Conn> {
        self.conn
            .get_or_init(|| self.connect())
            .as_ref()
            .map_err(|e| io::Error::other(e.clone()))
    }

    fn error(&self, what: &str, path: &str, e: HdfsError) -> io::Error {
        io::Error::new(kind(&e), format!("{what} {path} on {}: {e}", self.shown))
    }

    fn timed_out(&self, what: &str, path: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "{what} {path} on {}: no answer within hdfs.callTimeout = {} ms",
                self.shown,
                self.calls.call_timeout.as_millis()
            ),
        )
    }

    /// Spawns `fut` on the runtime under the call timeout and waits for it on this thread.
    fn run<T: Send + 'static>(
        &self,
        handle: &Handle,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> io::Result<Option<T>> {
        let limit = self.calls.call_timeout;
        let task = handle.spawn(async move { tokio::time::timeout(limit, fut).await.ok() });
        futures::executor::block_on(task).map_err(|e| {
            io::Error::other(format!(
                "{}: the HDFS call was cancelled (the client's runtime is shutting down?): {e}",
                self.shown
            ))
        })
    }

    fn call<T, F, Fut>(&self, what: &str, path: &str, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = hdfs_native::Result<T>> + Send + 'static,
    {
        let conn = self.conn()?;
        match self.run(&conn.handle(), f(conn.client.clone()))? {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(self.error(what, path, e)),
            None => Err(self.timed_out(what, path)),
        }
    }

    /// Applies `op` to `w` on the runtime; the writer comes back whatever happens.
    fn writer_op(
        &self,
        w: FileWriter,
        op: WriterOp,
    ) -> io::Result<(FileWriter, Option<hdfs_native::Result<()>>)> {
        let conn = self.conn()?;
        let limit = self.calls.call_timeout;
        let task = conn.handle().spawn(async move {
            let mut w = w;
            let fut = async {
                match op {
                    WriterOp::Write(b) => w.write_bytes(b).await.map(|_| ()),
                    WriterOp::Sync => w.hsync().await,
                    WriterOp::Close => w.close().await,
                }
            };
            let r = tokio::time::timeout(limit, fut).await.ok();
            (w, r)
        });
        futures::executor::block_on(task).map_err(|e| {
            io::Error::other(format!(
                "{}: the HDFS call was cancelled (the client's runtime is shutting down?): {e}",
                self.shown
            ))
        })
    }

    /// After a failed close: retries lease recovery in the background (see the module docs).
    fn schedule_recovery(&self, path: &str) {
        let tries = self.calls.close_tries;
        let Some(interval) = self.calls.retry_interval.filter(|_| tries != 1) else {
            tracing::warn!(
                sink = %self.sink,
                "{path} on {} stays open (hdfs.closeTries = {tries}, hdfs.retryInterval <= 0: no \
                 retry); its data up to the last flush is durable, the NameNode recovers the \
                 lease after its hard limit",
                self.shown
            );
            return;
        };
        let Ok(conn) = self.conn() else { return };
        let id = {
            let mut n = lock(&self.next_pending);
            *n += 1;
            *n
        };
        lock(&self.pending).insert(id, path.to_string());
        let me = RetryCtx {
            pending: Arc::clone(&self.pending),
            sink: self.sink.clone(),
            shown: self.shown.clone(),
            call_timeout: self.calls.call_timeout,
        };
        let client = conn.client.clone();
        conn.handle().spawn(async move {
            let mut attempt = 1u32;
            loop {
                if tries != 0 && attempt >= tries {
                    let p = lock(&me.pending).remove(&id);
                    tracing::warn!(
                        sink = %me.sink,
                        "gave up closing {} on {} after {tries} tries (hdfs.closeTries); its data \
                         up to the last flush is durable, the NameNode recovers the lease after \
                         its hard limit",
                        p.unwrap_or_default(),
                        me.shown
                    );
                    return;
                }
                tokio::time::sleep(interval).await;
                attempt += 1;
                let Some(p) = lock(&me.pending).get(&id).cloned() else {
                    return;
                };
                let r =
                    tokio::time::timeout(me.call_timeout, client.recover_lease(&p)).await;
                match r {
                    Ok(Ok(true)) => {
                        lock(&me.pending).remove(&id);
                        tracing::info!(sink = %me.sink, "closed {p} on {} by lease recovery", me.shown);
                        return;
                    }
                    Ok(Ok(false)) => tracing::info!(
                        sink = %me.sink,
                        "lease recovery of {p} on {} under way (try {attempt})",
                        me.shown
                    ),
                    Ok(Err(e)) => tracing::warn!(
                        sink = %me.sink,
                        "lease recovery of {p} on {} failed (try {attempt}): {e}",
                        me.shown
                    ),
                    Err(_) => tracing::warn!(
                        sink = %me.sink,
                        "lease recovery of {p} on {} timed out (try {attempt}, hdfs.callTimeout)",
                        me.shown
                    ),
                }
            }
        });
    }
}

/// What a lease-recovery retry task needs.
struct RetryCtx {
    pending: Arc<Mutex<HashMap<u64, String>>>,
    sink: String,
    shown: String,
    call_timeout: std::time::Duration,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let left = lock(&self.pending);
        if !left.is_empty() {
            let mut v: Vec<&String> = left.values().collect();
            v.sort();
            tracing::warn!(
                sink = %self.sink,
                "{} file(s) on {} whose close failed are still open: {v:?}; their data up to the \
                 last flush is durable, the NameNode recovers their leases after its hard limit",
                v.len(),
                self.shown
            );
        }
    }
}

/// Paths remembered as closed here before the set is cleared (an in-use name equal to the final
/// name is never renamed, so it would stay; forgetting costs one lease recovery call).
const CLOSED_MEMORY: usize = 4096;

/// One file open for writing.
struct HdfsOut {
    fs: Arc<Inner>,
    path: String,
    writer: Option<FileWriter>,
    buf: Vec<u8>,
    /// Why the file cannot be written any more.
    broken: Option<String>,
}

impl HdfsOut {
    fn check(&self) -> io::Result<()> {
        match &self.broken {
            Some(why) => Err(io::Error::other(format!(
                "{} on {} cannot be written after an earlier failure ({why})",
                self.path, self.fs.shown
            ))),
            None => Ok(()),
        }
    }

    fn op(&mut self, what: &str, op: WriterOp) -> io::Result<()> {
        self.check()?;
        let Some(w) = self.writer.take() else {
            return Err(io::Error::other(format!("{} is closed", self.path)));
        };
        let (w, r) = self.fs.writer_op(w, op)?;
        self.writer = Some(w);
        let r = match r {
            Some(Ok(())) => return Ok(()),
            Some(Err(e)) => self.fs.error(what, &self.path, e),
            None => self.fs.timed_out(what, &self.path),
        };
        self.broken = Some(r.to_string());
        Err(r)
    }

    fn push(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = Bytes::from(std::mem::take(&mut self.buf));
        self.op("write", WriterOp::Write(data))
    }
}

impl Write for HdfsOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.check()?;
        self.buf.extend_from_slice(buf);
        if self.buf.len() >= WRITE_BUFFER {
            self.push()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.push()
    }
}

impl OutFile for HdfsOut {
    fn hflush(&mut self) -> io::Result<()> {
        self.push()?;
        self.op("hflush (hsync)", WriterOp::Sync)
    }
}

impl Drop for HdfsOut {
    fn drop(&mut self) {
        if self.writer.is_none() {
            return;
        }
        // As a local file's buffer is written when it is dropped (at-least-once: these bytes
        // belong to a batch that was not committed, or is written again).
        if self.broken.is_none() {
            if let Err(e) = self.push() {
                tracing::warn!(sink = %self.fs.sink, "{e}");
            }
        }
        tracing::debug!(sink = %self.fs.sink, "closing {} on {}", self.path, self.fs.shown);
        let broken = self.broken.take();
        match self.op("close", WriterOp::Close) {
            Ok(()) => {
                let mut closed = lock(&self.fs.closed);
                if closed.len() >= CLOSED_MEMORY {
                    closed.clear();
                }
                closed.insert(self.path.clone());
            }
            Err(e) => {
                tracing::warn!(
                    sink = %self.fs.sink,
                    "could not close {}: {e}{}; its data up to the last flush is durable",
                    self.path,
                    broken.map(|b| format!(" (after: {b})")).unwrap_or_default()
                );
                self.fs.schedule_recovery(&self.path);
            }
        }
        // Dropping the client's writer ends its lease renewal (after a failed close the
        // client logs that the file was not closed; the recovery above takes over).
        self.writer.take();
    }
}

impl HdfsFileSystem for HdfsFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn OutFile>> {
        let p = path_str(path)?.to_string();
        let owned = p.clone();
        let writer = self.inner.call("create", &p, move |c| async move {
            let opts = WriteOptions::default().overwrite(true).create_parent(true);
            c.create(&owned, opts).await
        })?;
        lock(&self.inner.closed).remove(&p);
        Ok(Box::new(HdfsOut {
            fs: Arc::clone(&self.inner),
            path: p,
            writer: Some(writer),
            buf: Vec::with_capacity(64 * 1024),
            broken: None,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (f, t) = (path_str(from)?.to_string(), path_str(to)?.to_string());
        let closed_here = lock(&self.inner.closed).remove(&f);
        let recovering = lock(&self.inner.pending).values().any(|p| *p == f);
        if !closed_here && !recovering {
            // A file some other writer left open (crash recovery): recover its lease first.
            let owned = f.clone();
            match self.inner.call("recoverLease", &f, move |c| async move {
                c.recover_lease(&owned).await
            }) {
                Ok(done) => tracing::info!(
                    sink = %self.inner.sink,
                    "lease recovery of {f} on {}: {}",
                    self.inner.shown,
                    if done { "closed" } else { "under way" }
                ),
                Err(e) => tracing::warn!(sink = %self.inner.sink, "{e}"),
            }
        }
        let (src, dst) = (f.clone(), t.clone());
        self.inner
            .call("rename", &format!("{f} to {t}"), move |c| async move {
                c.rename(&src, &dst, true).await
            })?;
        for p in lock(&self.inner.pending).values_mut() {
            if *p == f {
                p.clone_from(&t);
            }
        }
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let Ok(p) = path_str(path) else {
            return false;
        };
        let owned = p.to_string();
        self.inner
            .call("getFileInfo", p, move |c| async move {
                c.get_file_info(&owned).await
            })
            .is_ok()
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<(PathBuf, bool)>> {
        let p = path_str(dir)?.to_string();
        let owned = p.clone();
        let entries = self.inner.call("list", &p, move |c| async move {
            c.list_status(&owned, false).await
        })?;
        let mut out: Vec<(PathBuf, bool)> = entries
            .into_iter()
            .map(|s| (PathBuf::from(s.path), s.isdir))
            .collect();
        out.sort();
        Ok(out)
    }
}

impl std::fmt::Debug for HdfsFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HdfsFs")
            .field("at", &self.inner.shown)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_keep_a_kind_the_sink_and_users_can_act_on() {
        let denied = HdfsError::RPCError(
            ACCESS_CONTROL.to_string(),
            "Permission denied: user=flume, access=WRITE, inode=\"/data\"".to_string(),
        );
        assert_eq!(kind(&denied), io::ErrorKind::PermissionDenied);
        let refused = HdfsError::IOError(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(kind(&refused), io::ErrorKind::ConnectionRefused);
        assert_eq!(
            kind(&HdfsError::FileNotFound("/x".into())),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            kind(&HdfsError::AlreadyExists("/x".into())),
            io::ErrorKind::AlreadyExists
        );
        let other = HdfsError::RPCError("java.io.IOException".into(), "disk".into());
        assert_eq!(kind(&other), io::ErrorKind::Other);

        let fs = HdfsFs::new(
            HdfsAuthority {
                host: "nn".into(),
                port: Some(8020),
            },
            CallSettings::default(),
            "k1",
        );
        assert_eq!(fs.shown(), "NameNode hdfs://nn:8020");
        let e = fs.inner.error("create", "/data/f.tmp", denied);
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        let m = e.to_string();
        assert!(
            m.starts_with("create /data/f.tmp on NameNode hdfs://nn:8020: "),
            "{m}"
        );
        assert!(m.contains("Permission denied: user=flume"), "{m}");
        let e = fs.inner.timed_out("hsync", "/data/f.tmp");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("hdfs.callTimeout = 30000 ms"), "{e}");
        // Nothing connects until the first call.
        assert!(fs.inner.conn.get().is_none());
        let d = HdfsFs::new(
            HdfsAuthority {
                host: String::new(),
                port: None,
            },
            CallSettings::default(),
            "k1",
        );
        assert!(d.shown().contains("fs.defaultFS"), "{}", d.shown());
    }
}
