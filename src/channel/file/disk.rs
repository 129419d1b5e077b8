//! Directory lock (`flock`) and free-space queries (`statvfs`).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Name of the lock file taken in each directory (Flume's name).
pub const LOCK_FILE: &str = "in_use.lock";

/// An exclusive `flock` on `dir/in_use.lock`, released when dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock without waiting; `Err(WouldBlock)` when another channel holds it.
    pub fn acquire(dir: &Path) -> io::Result<DirLock> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)?;
        Ok(DirLock { _file: file })
    }
}

/// Bytes available to an unprivileged user on the filesystem holding `dir`.
pub fn available_bytes(dir: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(dir)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// True when `e` means the disk is full.
pub fn is_no_space(e: &io::Error) -> bool {
    use rustix::io::Errno;
    e.raw_os_error()
        .is_some_and(|n| n == Errno::NOSPC.raw_os_error() || n == Errno::DQUOT.raw_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_is_exclusive_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let held = DirLock::acquire(dir.path()).unwrap();
        // flock conflicts between open files even inside one process.
        let e = DirLock::acquire(dir.path()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
        drop(held);
        DirLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn free_space_and_disk_full_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(available_bytes(dir.path()).unwrap() > 0);
        assert!(available_bytes(&dir.path().join("missing")).is_err());
        assert!(is_no_space(&io::Error::from(rustix::io::Errno::NOSPC)));
        assert!(is_no_space(&io::Error::from(rustix::io::Errno::DQUOT)));
        assert!(!is_no_space(&io::Error::from(rustix::io::Errno::IO)));
        assert!(!is_no_space(&io::Error::other("not an OS error")));
    }
}
