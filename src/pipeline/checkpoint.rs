//! The checkpoint directory: the definition, the plan, the state snapshots (formats in the
//! module docs of [`crate::pipeline`]). Every file is replaced atomically (temp, fsync, rename,
//! directory fsync), so a crash leaves either the old or the new version, and at worst a
//! `.…tmp` file that is ignored and removed on open.

use std::fs;
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use super::PipelineError;

const PLAN_MAGIC: &[u8; 8] = b"SGPLAN\0\0";
const SNAP_MAGIC: &[u8; 8] = b"SGSNAP\0\0";
const VERSION: u32 = 1;

/// The batch a plan or snapshot describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchMark {
    pub batch_id: u64,
    pub batch_time: i64,
    /// The events' channel seqs are known (file channel).
    pub seqs_known: bool,
    pub first_seq: u64,
    pub last_seq: u64,
    pub count: u64,
}

impl BatchMark {
    fn encode(&self, out: &mut Vec<u8>, magic: &[u8; 8]) {
        out.extend_from_slice(magic);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(self.seqs_known as u32).to_le_bytes());
        out.extend_from_slice(&self.batch_id.to_le_bytes());
        out.extend_from_slice(&self.batch_time.to_le_bytes());
        out.extend_from_slice(&self.first_seq.to_le_bytes());
        out.extend_from_slice(&self.last_seq.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
    }

    fn decode(b: &[u8], magic: &[u8; 8]) -> Result<BatchMark, String> {
        if b.len() < 56 || &b[0..8] != magic {
            return Err("bad magic or too short".into());
        }
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap_or([0; 4]));
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        if u32_at(8) != VERSION {
            return Err(format!("unsupported format version {}", u32_at(8)));
        }
        Ok(BatchMark {
            seqs_known: u32_at(12) & 1 == 1,
            batch_id: u64_at(16),
            batch_time: u64_at(24) as i64,
            first_seq: u64_at(32),
            last_seq: u64_at(40),
            count: u64_at(48),
        })
    }
}

/// A persisted snapshot: the batch it follows, and every stage's blob by id.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Snapshot {
    pub mark: BatchMark,
    pub fingerprint: u64,
    pub stages: Vec<(String, Vec<u8>)>,
}

/// FNV-1a 64 of the fingerprint text.
pub(crate) fn fingerprint_hash(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

pub(crate) fn encode_plan(p: &BatchMark) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    p.encode(&mut out, PLAN_MAGIC);
    out.extend_from_slice(&[0u8; 4]);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

pub(crate) fn decode_plan(b: &[u8]) -> Result<BatchMark, String> {
    if b.len() != 64 {
        return Err(format!("plan is {} bytes, expected 64", b.len()));
    }
    let crc = u32::from_le_bytes(b[60..64].try_into().unwrap_or([0; 4]));
    if crc32c::crc32c(&b[..60]) != crc {
        return Err("checksum mismatch".into());
    }
    BatchMark::decode(b, PLAN_MAGIC)
}

pub(crate) fn encode_snapshot(s: &Snapshot) -> Vec<u8> {
    let mut out = Vec::new();
    s.mark.encode(&mut out, SNAP_MAGIC);
    out.extend_from_slice(&s.fingerprint.to_le_bytes());
    out.extend_from_slice(&(s.stages.len() as u32).to_le_bytes());
    for (name, blob) in &s.stages {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(blob.len() as u64).to_le_bytes());
        out.extend_from_slice(blob);
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

pub(crate) fn decode_snapshot(b: &[u8]) -> Result<Snapshot, String> {
    if b.len() < 72 {
        return Err("too short".into());
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().unwrap_or([0; 4])) {
        return Err("checksum mismatch".into());
    }
    let mark = BatchMark::decode(body, SNAP_MAGIC)?;
    let fingerprint = u64::from_le_bytes(body[56..64].try_into().unwrap_or([0; 8]));
    let n = u32::from_le_bytes(body[64..68].try_into().unwrap_or([0; 4])) as usize;
    let mut pos = 68;
    let mut stages = Vec::with_capacity(n.min(1024));
    let take = |pos: &mut usize, k: usize| -> Result<&[u8], String> {
        if body.len() - *pos < k {
            return Err("truncated stage entry".into());
        }
        let s = &body[*pos..*pos + k];
        *pos += k;
        Ok(s)
    };
    for _ in 0..n {
        let nl = u32::from_le_bytes(take(&mut pos, 4)?.try_into().unwrap_or([0; 4])) as usize;
        let name = String::from_utf8(take(&mut pos, nl)?.to_vec())
            .map_err(|_| "stage name is not UTF-8".to_string())?;
        let bl = u64::from_le_bytes(take(&mut pos, 8)?.try_into().unwrap_or([0; 8])) as usize;
        let blob = take(&mut pos, bl)?.to_vec();
        stages.push((name, blob));
    }
    if pos != body.len() {
        return Err("trailing bytes".into());
    }
    Ok(Snapshot {
        mark,
        fingerprint,
        stages,
    })
}

/// An open checkpoint directory (holds its lock).
pub(crate) struct Checkpoint {
    dir: PathBuf,
    pipeline: String,
    _lock: fs::File,
}

fn snap_name(batch_id: u64) -> String {
    format!("state-{batch_id:020}.snap")
}

impl Checkpoint {
    fn io(&self, what: String, e: std::io::Error) -> PipelineError {
        PipelineError::Io {
            pipeline: self.pipeline.clone(),
            what,
            source: e,
        }
    }

    /// Opens (creating) `dir`, checks the definition, and returns the newest snapshot and plan.
    pub fn open(
        dir: &Path,
        pipeline: &str,
        definition: &str,
        discard_on_change: bool,
    ) -> Result<(Checkpoint, Option<Snapshot>, Option<BatchMark>), PipelineError> {
        let io = |what: String, e: std::io::Error| PipelineError::Io {
            pipeline: pipeline.to_string(),
            what,
            source: e,
        };
        fs::create_dir_all(dir).map_err(|e| io(format!("creating {}", dir.display()), e))?;
        let lock_path = dir.join("in_use.lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io(format!("opening {}", lock_path.display()), e))?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(PipelineError::Locked {
                pipeline: pipeline.to_string(),
                dir: dir.display().to_string(),
            });
        }
        let ck = Checkpoint {
            dir: dir.to_path_buf(),
            pipeline: pipeline.to_string(),
            _lock: lock,
        };
        // Leftovers of interrupted writes.
        if let Ok(rd) = fs::read_dir(dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with('.') && n.ends_with(".tmp") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        let def_path = dir.join("definition");
        match fs::read_to_string(&def_path) {
            Ok(stored) if stored == definition => {}
            Ok(stored) => {
                if !discard_on_change {
                    return Err(PipelineError::DefinitionChanged {
                        pipeline: pipeline.to_string(),
                        dir: dir.display().to_string(),
                        stored,
                        now: definition.to_string(),
                    });
                }
                tracing::warn!(
                    pipeline,
                    dir = %dir.display(),
                    "the pipeline definition changed; discarding the old state as configured"
                );
                ck.discard_state()?;
                ck.write_file("definition", definition.as_bytes())?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                ck.discard_state()?;
                ck.write_file("definition", definition.as_bytes())?;
            }
            Err(e) => return Err(ck.io(format!("reading {}", def_path.display()), e)),
        }
        let snap = ck.newest_snapshot()?;
        if let Some(s) = &snap {
            if s.fingerprint != fingerprint_hash(definition) {
                return Err(PipelineError::CorruptCheckpoint {
                    pipeline: pipeline.to_string(),
                    file: snap_name(s.mark.batch_id),
                    reason: "written for another definition than `definition` holds".into(),
                });
            }
        }
        let plan_path = dir.join("plan");
        let plan = match fs::read(&plan_path) {
            Ok(b) => Some(
                decode_plan(&b).map_err(|reason| PipelineError::CorruptCheckpoint {
                    pipeline: pipeline.to_string(),
                    file: plan_path.display().to_string(),
                    reason,
                })?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(ck.io(format!("reading {}", plan_path.display()), e)),
        };
        Ok((ck, snap, plan))
    }

    fn discard_state(&self) -> Result<(), PipelineError> {
        let rd = fs::read_dir(&self.dir)
            .map_err(|e| self.io(format!("listing {}", self.dir.display()), e))?;
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n == "plan" || (n.starts_with("state-") && n.ends_with(".snap")) {
                fs::remove_file(e.path())
                    .map_err(|err| self.io(format!("removing {}", e.path().display()), err))?;
            }
        }
        Ok(())
    }

    fn snapshots(&self) -> Result<Vec<(u64, PathBuf)>, PipelineError> {
        let rd = fs::read_dir(&self.dir)
            .map_err(|e| self.io(format!("listing {}", self.dir.display()), e))?;
        let mut v = Vec::new();
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if let Some(id) = n
                .strip_prefix("state-")
                .and_then(|r| r.strip_suffix(".snap"))
                .and_then(|r| r.parse::<u64>().ok())
            {
                v.push((id, e.path()));
            }
        }
        v.sort();
        Ok(v)
    }

    fn newest_snapshot(&self) -> Result<Option<Snapshot>, PipelineError> {
        let Some((_, path)) = self.snapshots()?.pop() else {
            return Ok(None);
        };
        let b = fs::read(&path).map_err(|e| self.io(format!("reading {}", path.display()), e))?;
        decode_snapshot(&b)
            .map(Some)
            .map_err(|reason| PipelineError::CorruptCheckpoint {
                pipeline: self.pipeline.clone(),
                file: path.display().to_string(),
                reason,
            })
    }

    fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), PipelineError> {
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let dst = self.dir.join(name);
        let res = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &dst)?;
            fs::File::open(&self.dir)?.sync_all()
        })();
        res.map_err(|e| self.io(format!("writing {}", dst.display()), e))
    }

    /// Persists the plan of the next batch.
    pub fn write_plan(&self, p: &BatchMark) -> Result<(), PipelineError> {
        self.write_file("plan", &encode_plan(p))
    }

    /// Persists a snapshot and deletes all but the newest two.
    pub fn write_snapshot(&self, s: &Snapshot) -> Result<(), PipelineError> {
        self.write_file(&snap_name(s.mark.batch_id), &encode_snapshot(s))?;
        let all = self.snapshots()?;
        if all.len() > 2 {
            for (_, p) in &all[..all.len() - 2] {
                let _ = fs::remove_file(p);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_and_snapshot_round_trip_and_detect_corruption() {
        let m = BatchMark {
            batch_id: 7,
            batch_time: 1_700_000_000_000,
            seqs_known: true,
            first_seq: 100,
            last_seq: 199,
            count: 100,
        };
        let b = encode_plan(&m);
        assert_eq!(b.len(), 64);
        assert_eq!(decode_plan(&b).unwrap(), m);
        let mut bad = b.clone();
        bad[20] ^= 1;
        assert!(decode_plan(&bad).is_err());
        let s = Snapshot {
            mark: m,
            fingerprint: fingerprint_hash("#1 x"),
            stages: vec![("#2 w".into(), vec![1, 2, 3]), ("#3 s".into(), vec![])],
        };
        let b = encode_snapshot(&s);
        assert_eq!(decode_snapshot(&b).unwrap(), s);
        assert!(decode_snapshot(&b[..b.len() - 1]).is_err());
    }

    #[test]
    fn changed_definition_is_refused_unless_discarding() {
        let d = tempfile::tempdir().unwrap();
        {
            let (ck, snap, plan) = Checkpoint::open(d.path(), "p", "#1 a", false).unwrap();
            assert!(snap.is_none() && plan.is_none());
            ck.write_plan(&BatchMark {
                batch_id: 1,
                batch_time: 0,
                seqs_known: false,
                first_seq: 0,
                last_seq: 0,
                count: 0,
            })
            .unwrap();
            assert!(matches!(
                Checkpoint::open(d.path(), "p", "#1 a", false),
                Err(PipelineError::Locked { .. })
            ));
        }
        let e = Checkpoint::open(d.path(), "p", "#1 b", false)
            .err()
            .unwrap();
        assert!(matches!(e, PipelineError::DefinitionChanged { .. }), "{e}");
        assert!(e.to_string().contains("discard_state_on_change"));
        let (_ck, snap, plan) = Checkpoint::open(d.path(), "p", "#1 b", true).unwrap();
        assert!(snap.is_none() && plan.is_none(), "old state discarded");
    }
}
