//! `FileChannelConfig`: Flume's FileChannel keys, their defaults, and their validation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{ConfigError, Context};

/// Smallest `minimumRequiredSpace` Flume accepts (1 MiB); smaller values are raised to it.
pub const MIN_REQUIRED_SPACE_FLOOR: u64 = 1024 * 1024;
/// Smallest segment size accepted (tests use tiny segments to exercise rollover).
pub const MIN_SEGMENT_SIZE: u64 = 4096;

/// Keys Flume's FileChannel knows that have no meaning here: accepted with a warning.
pub const IGNORED_KEYS: &[&str] = &[
    "use-log-replay-v1",
    "use-fast-replay",
    "useDualCheckpoints",
    "backupCheckpointDir",
    "compressBackupCheckpoint",
    "checkpointOnClose",
];

/// Settings of a file channel. Field docs name the Flume key and its default.
#[derive(Debug, Clone)]
pub struct FileChannelConfig {
    /// `checkpointDir` (default `~/.flume/file-channel/checkpoint`): holds the ledger and a lock.
    pub checkpoint_dir: PathBuf,
    /// `dataDirs` (default `~/.flume/file-channel/data`), comma-separated. Only the first is
    /// used for segments; more produce a warning (see the module essay).
    pub data_dirs: Vec<PathBuf>,
    /// `capacity` in events (default 1,000,000).
    pub capacity: u64,
    /// `transactionCapacity` (default 10,000).
    pub transaction_capacity: usize,
    /// `byteCapacity`: optional cap on the encoded bytes held; `None` = unbounded.
    pub byte_capacity: Option<u64>,
    /// `checkpointInterval` in ms (default 30,000, minimum 1,000): the longest time between two
    /// ledger updates. A ledger update is also forced after every `maxFileSize` bytes written.
    pub checkpoint_interval: Duration,
    /// `maxFileSize`: size each segment file is preallocated to (default 128 MiB).
    pub segment_size: u64,
    /// `minimumRequiredSpace` (default 524,288,000, floor 1 MiB): puts fail below this.
    pub minimum_required_space: u64,
    /// `keep-alive` in seconds (default 3): how long a put waits for room.
    pub keep_alive: Duration,
    /// `fsyncPerTransaction` (default true): a commit returns only once durable.
    pub fsync_per_transaction: bool,
    /// `fsyncInterval` in seconds (default 5): the sync period when `fsyncPerTransaction=false`.
    pub fsync_interval: Duration,
}

impl Default for FileChannelConfig {
    fn default() -> Self {
        let base = home_dir().join(".flume").join("file-channel");
        FileChannelConfig {
            checkpoint_dir: base.join("checkpoint"),
            data_dirs: vec![base.join("data")],
            capacity: 1_000_000,
            transaction_capacity: 10_000,
            byte_capacity: None,
            checkpoint_interval: Duration::from_millis(30_000),
            segment_size: 128 * 1024 * 1024,
            minimum_required_space: 524_288_000,
            keep_alive: Duration::from_secs(3),
            fsync_per_transaction: true,
            fsync_interval: Duration::from_secs(5),
        }
    }
}

fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

impl FileChannelConfig {
    /// A config rooted at `dir` (`dir/checkpoint`, `dir/data`), other settings at their defaults.
    pub fn in_dir(dir: &Path) -> FileChannelConfig {
        FileChannelConfig {
            checkpoint_dir: dir.join("checkpoint"),
            data_dirs: vec![dir.join("data")],
            ..FileChannelConfig::default()
        }
    }

    /// The directory segments live in.
    pub fn data_dir(&self) -> &Path {
        &self.data_dirs[0]
    }

    /// Reads Flume's FileChannel keys; errors name `file:line: key`.
    pub fn from_context(ctx: &Context) -> Result<Self, ConfigError> {
        let d = FileChannelConfig::default();
        let checkpoint_dir = match ctx.get("checkpointDir") {
            Some(v) if !v.trim().is_empty() => expand_home(v.trim()),
            Some(_) => return Err(ctx.error("checkpointDir", "must not be empty")),
            None => d.checkpoint_dir.clone(),
        };
        let data_dirs = match ctx.get("dataDirs") {
            Some(v) => {
                let dirs: Vec<PathBuf> = v
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(expand_home)
                    .collect();
                if dirs.is_empty() {
                    return Err(ctx.error("dataDirs", "must name at least one directory"));
                }
                if dirs.len() > 1 {
                    ctx.warn(
                        "dataDirs",
                        &format!(
                            "only the first of {} data directories ({}) is used; the file \
                             channel writes one sequential log and gains nothing from spreading it",
                            dirs.len(),
                            dirs[0].display()
                        ),
                    );
                }
                dirs
            }
            None => d.data_dirs.clone(),
        };
        if data_dirs.iter().any(|p| p == &checkpoint_dir) {
            return Err(ctx.error(
                "dataDirs",
                "must differ from checkpointDir (give each its own directory)",
            ));
        }
        let (capacity, tx) =
            crate::channel::read_capacities(ctx, d.capacity, d.transaction_capacity)?;
        let byte_capacity = ctx
            .parse::<u64>("byteCapacity", "a byte count")?
            .filter(|b| *b > 0);
        let ckpt_ms = ctx.get_u64("checkpointInterval", 30_000)?;
        if ckpt_ms < 1000 {
            return Err(ctx.error(
                "checkpointInterval",
                &format!("must be at least 1000 ms, got {ckpt_ms}"),
            ));
        }
        let segment_size = ctx.get_u64("maxFileSize", d.segment_size)?;
        if segment_size < MIN_SEGMENT_SIZE {
            return Err(ctx.error(
                "maxFileSize",
                &format!("must be at least {MIN_SEGMENT_SIZE} bytes, got {segment_size}"),
            ));
        }
        let mut min_space = ctx.get_u64("minimumRequiredSpace", d.minimum_required_space)?;
        if min_space < MIN_REQUIRED_SPACE_FLOOR {
            ctx.warn(
                "minimumRequiredSpace",
                &format!("{min_space} is below the floor; using {MIN_REQUIRED_SPACE_FLOOR}"),
            );
            min_space = MIN_REQUIRED_SPACE_FLOOR;
        }
        let keep_alive = ctx.get_secs("keep-alive", 3)?;
        let fsync_per_transaction = ctx.get_bool("fsyncPerTransaction", true);
        let fsync_interval = ctx.get_secs("fsyncInterval", 5)?;
        if !fsync_per_transaction && fsync_interval.is_zero() {
            return Err(ctx.error(
                "fsyncInterval",
                "must be at least 1 second when fsyncPerTransaction is false",
            ));
        }
        for key in IGNORED_KEYS {
            if ctx.contains(key) {
                let _ = ctx.get(key);
                ctx.warn(
                    key,
                    "ignored: the sluicegate file channel has no equivalent (see \
                     docs/file-channel.md)",
                );
            }
        }
        let enc = ctx.sub("encryption");
        if enc.keys().next().is_some() {
            for k in enc.keys().map(str::to_string).collect::<Vec<_>>() {
                let _ = enc.get(&k);
            }
            let first = enc.keys().next().unwrap_or_default().to_string();
            enc.warn(
                &first,
                "encryption.* is not supported and is ignored: events are stored unencrypted",
            );
        }
        Ok(FileChannelConfig {
            checkpoint_dir,
            data_dirs,
            capacity,
            transaction_capacity: tx,
            byte_capacity,
            checkpoint_interval: Duration::from_millis(ckpt_ms),
            segment_size,
            minimum_required_space: min_space,
            keep_alive,
            fsync_per_transaction,
            fsync_interval,
        })
    }
}

fn expand_home(s: &str) -> PathBuf {
    match s.strip_prefix("~/") {
        Some(rest) => home_dir().join(rest),
        None => PathBuf::from(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_flume() {
        let c = FileChannelConfig::from_context(&Context::from_pairs("a.channels.c1", [])).unwrap();
        assert_eq!(c.capacity, 1_000_000);
        assert_eq!(c.transaction_capacity, 10_000);
        assert_eq!(c.minimum_required_space, 524_288_000);
        assert_eq!(c.keep_alive, Duration::from_secs(3));
        assert!(c.fsync_per_transaction);
        assert!(c.checkpoint_dir.ends_with(".flume/file-channel/checkpoint"));
        assert!(c.data_dirs[0].ends_with(".flume/file-channel/data"));
    }

    #[test]
    fn keys_are_read_and_bad_values_name_the_key() {
        let ctx = Context::from_pairs(
            "a.channels.c1",
            [
                ("checkpointDir", "/x/ck"),
                ("dataDirs", "/x/d1, /x/d2"),
                ("capacity", "50"),
                ("transactionCapacity", "10"),
                ("maxFileSize", "65536"),
                ("minimumRequiredSpace", "10"),
                ("fsyncPerTransaction", "false"),
                ("fsyncInterval", "2"),
                ("use-fast-replay", "true"),
                ("encryption.activeKey", "k"),
            ],
        );
        let c = FileChannelConfig::from_context(&ctx).unwrap();
        assert_eq!(c.data_dirs.len(), 2);
        assert_eq!(c.data_dir(), Path::new("/x/d1"));
        assert_eq!(c.segment_size, 65536);
        assert_eq!(c.minimum_required_space, MIN_REQUIRED_SPACE_FLOOR);
        assert!(!c.fsync_per_transaction);
        assert_eq!(c.fsync_interval, Duration::from_secs(2));

        let bad = Context::from_pairs("a.channels.c1", [("capacity", "lots")]);
        let e = FileChannelConfig::from_context(&bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a.channels.c1.capacity"), "{e}");
        let bad = Context::from_pairs(
            "a.channels.c1",
            [("capacity", "5"), ("transactionCapacity", "6")],
        );
        let e = FileChannelConfig::from_context(&bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("transactionCapacity"), "{e}");
    }
}
