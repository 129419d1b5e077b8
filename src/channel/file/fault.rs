//! A seam for making chosen file operations fail at open and recovery, so tests can prove that
//! an environmental failure (EMFILE, EACCES/EPERM, ENOMEM from `mmap`, EIO) stops recovery with
//! a clear error instead of being mistaken for a segment whose creation was cut short.
//!
//! Production opens pass `None`: one branch per segment opened at recovery, nothing on the
//! append, commit or read paths. Tests build a [`Faults`], name an operation, a file and an
//! errno, and open the channel with [`super::FileChannel::open_with_faults`]; clearing the rules
//! (or opening without them) is "the fault is gone".

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A file operation recovery performs on a segment.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileOp {
    /// `open(2)`.
    Open,
    /// Reading the header, or scanning a header-less file for written bytes.
    Read,
    /// `fstat` for the file's length.
    Stat,
    /// Extending a file shorter than its header says.
    Extend,
    /// `mmap(2)`.
    Map,
}

impl fmt::Display for FileOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileOp::Open => "opening",
            FileOp::Read => "reading",
            FileOp::Stat => "checking the length of",
            FileOp::Extend => "extending",
            FileOp::Map => "mapping",
        })
    }
}

/// Injected failures: `(operation, file, errno)` rules, applied until cleared.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<Vec<(FileOp, PathBuf, i32)>>,
}

impl Faults {
    /// No rules yet.
    pub fn new() -> Faults {
        Faults::default()
    }

    /// From now on, `op` on `path` fails with OS error `errno`.
    pub fn fail(&self, op: FileOp, path: impl Into<PathBuf>, errno: i32) {
        self.rules().push((op, path.into(), errno));
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.rules().clear();
    }

    fn rules(&self) -> std::sync::MutexGuard<'_, Vec<(FileOp, PathBuf, i32)>> {
        // Poison: a list of test rules, each push/clear complete in itself.
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The injected error for `op` on `path`, if any.
pub fn check(faults: Option<&Faults>, op: FileOp, path: &Path) -> io::Result<()> {
    let Some(f) = faults else { return Ok(()) };
    match f.rules().iter().find(|(o, p, _)| *o == op && p == path) {
        Some((_, _, errno)) => Err(io::Error::from_raw_os_error(*errno)),
        None => Ok(()),
    }
}
