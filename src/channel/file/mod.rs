//! The durable, mmap-backed file channel (`type = file`). See issue 3; filled in by the
//! file-channel work.
