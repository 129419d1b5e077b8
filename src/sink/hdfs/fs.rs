//! The filesystem the HDFS sink writes through: one small trait, so the bucket and rolling logic
//! is written once for every filesystem.
//!
//! [`LocalFs`] is Hadoop's `RawLocalFileSystem` for `file://` paths (and plain local paths):
//! `create` makes missing parent directories and truncates an existing file (Hadoop's
//! `create(path)` overwrites), `rename` is POSIX `rename(2)` (an existing target is replaced, as
//! `File.renameTo` does under Hadoop) followed by an `fsync` of the directory so the new name is
//! durable. [`OutFile::hflush`] is the point where Flume calls `hflush()`: here the buffered bytes
//! are written and `fdatasync`ed, so data is on disk before the sink commits its take — stronger
//! than Hadoop's local filesystem, which only flushes to the OS. To keep that `fdatasync` short
//! for large batches, the write-back of every MiB handed to the OS is started at once
//! (`sync_file_range(SYNC_FILE_RANGE_WRITE)` on Linux, a hint without durability meaning). Hadoop's `.crc` sidecar files are
//! not written (they belong to Hadoop's `ChecksumFileSystem`, not to Flume).
//!
//! `hdfs://` paths are [`super::hdfs_fs::HdfsFs`] (the native client `hdfs-native`, in builds
//! with the `hdfs` cargo feature, on by default): the same four calls, with `hflush` done as
//! HDFS `hsync` and the file closed at the NameNode when it is dropped. Paths reach every
//! filesystem without scheme or authority (the config strips them): `/dir/name`.
//! [`Unavailable`] stands in for HDFS in a build without the feature (the config already refuses
//! `hdfs://` there, so it is only reached by a sink built from hand-made settings).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// An open output file.
pub trait OutFile: Write + Send {
    /// Makes everything written so far durable (`hflush` on HDFS, `fdatasync` locally).
    fn hflush(&mut self) -> io::Result<()>;
}

/// Where bucket files live.
pub trait HdfsFileSystem: Send + Sync {
    /// Creates (or truncates) `path`, making parent directories as needed.
    fn create(&self, path: &Path) -> io::Result<Box<dyn OutFile>>;
    /// Renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// True if `path` exists.
    fn exists(&self, path: &Path) -> bool;
    /// The entries of directory `dir`: (path, is a directory).
    fn list(&self, dir: &Path) -> io::Result<Vec<(PathBuf, bool)>>;
}

/// The local filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalFs;

/// Bytes handed to the OS since the last early write-back before one is started.
const WRITE_BEHIND: u64 = 1 << 20;

/// A local file that starts the write-back of what it hands to the OS every
/// [`WRITE_BEHIND`] bytes (`sync_file_range(SYNC_FILE_RANGE_WRITE)` on Linux: asynchronous, no
/// durability promise), so most of a large batch is already on its way to the disk when
/// [`OutFile::hflush`]'s `fdatasync` comes, which then waits for far less. Durability is
/// unchanged: only `hflush` makes data durable.
struct WriteBehind {
    file: File,
    /// Bytes written to the file.
    written: u64,
    /// Where the range not yet sent to write-back starts.
    kicked: u64,
}

impl WriteBehind {
    fn kick(&mut self) {
        if self.written - self.kicked < WRITE_BEHIND {
            return;
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: `sync_file_range` takes no memory from us, only a file descriptor this
            // struct owns (open for its whole life) and a byte range; any failure is reported
            // through the return value, which is ignored: this is only a hint, `hflush`'s
            // `fdatasync` is the durability point and reports every error.
            unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    self.kicked as libc::off64_t,
                    (self.written - self.kicked) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
        }
        self.kicked = self.written;
    }
}

impl Write for WriteBehind {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        self.kick();
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct LocalFile(BufWriter<WriteBehind>);

impl Write for LocalFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl OutFile for LocalFile {
    fn hflush(&mut self) -> io::Result<()> {
        self.0.flush()?;
        let wb = self.0.get_mut();
        wb.file.sync_data()?;
        wb.kicked = wb.written;
        Ok(())
    }
}

impl HdfsFileSystem for LocalFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn OutFile>> {
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)?;
            }
        }
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(LocalFile(BufWriter::with_capacity(
            64 * 1024,
            WriteBehind {
                file: f,
                written: 0,
                kicked: 0,
            },
        ))))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)?;
        if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<(PathBuf, bool)>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            out.push((e.path(), e.file_type()?.is_dir()));
        }
        out.sort();
        Ok(out)
    }
}

/// The message for `hdfs://` paths in a build without the `hdfs` cargo feature.
pub const HDFS_SCHEME_UNSUPPORTED: &str = "hdfs:// needs the native HDFS client, which this \
     build was made without (rebuild with the default features or `--features hdfs`; or use a \
     file:// path or a local directory, e.g. one where HDFS is mounted via NFS or FUSE)";

/// `hdfs://` in a build without the `hdfs` feature: every call fails with the config's refusal.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unavailable;

fn unavailable() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, HDFS_SCHEME_UNSUPPORTED)
}

impl HdfsFileSystem for Unavailable {
    fn create(&self, _path: &Path) -> io::Result<Box<dyn OutFile>> {
        Err(unavailable())
    }
    fn rename(&self, _from: &Path, _to: &Path) -> io::Result<()> {
        Err(unavailable())
    }
    fn exists(&self, _path: &Path) -> bool {
        false
    }
    fn list(&self, _dir: &Path) -> io::Result<Vec<(PathBuf, bool)>> {
        Err(unavailable())
    }
}

/// A Hadoop path string -> a local path: strips `file:` / `file://`, collapses empty components
/// (`a//b` -> `a/b`, as Hadoop's `Path` does) and a trailing `/`.
pub fn local_path(s: &str) -> PathBuf {
    let rest = s
        .strip_prefix("file://")
        .or_else(|| s.strip_prefix("file:"))
        .unwrap_or(s);
    let absolute = rest.starts_with('/');
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let mut out = String::new();
    if absolute {
        out.push('/');
    }
    out.push_str(&parts.join("/"));
    PathBuf::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_lose_the_scheme_and_empty_components() {
        assert_eq!(local_path("file:///a/b//c/"), PathBuf::from("/a/b/c"));
        assert_eq!(local_path("file:/a"), PathBuf::from("/a"));
        assert_eq!(local_path("/x//y"), PathBuf::from("/x/y"));
        assert_eq!(local_path("rel/dir"), PathBuf::from("rel/dir"));
    }

    #[test]
    fn unavailable_fails_every_call_with_the_refusal() {
        let e = Unavailable.create(Path::new("/x")).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
        assert!(e.to_string().contains("hdfs://"), "{e}");
        assert!(Unavailable.list(Path::new("/")).is_err());
        assert!(Unavailable
            .rename(Path::new("/a"), Path::new("/b"))
            .is_err());
        assert!(!Unavailable.exists(Path::new("/")));
    }

    #[test]
    fn create_makes_parents_truncates_and_rename_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/f.tmp");
        let mut f = LocalFs.create(&p).unwrap();
        f.write_all(b"hello").unwrap();
        f.hflush().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"hello");
        drop(f);
        let mut f = LocalFs.create(&p).unwrap();
        f.write_all(b"x").unwrap();
        f.hflush().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"x");
        let q = dir.path().join("a/b/f");
        std::fs::write(&q, b"old").unwrap();
        LocalFs.rename(&p, &q).unwrap();
        assert!(!LocalFs.exists(&p));
        assert_eq!(std::fs::read(&q).unwrap(), b"x");
        let l = LocalFs.list(&dir.path().join("a")).unwrap();
        assert_eq!(l, vec![(dir.path().join("a/b"), true)]);
    }
}
