//! `.harmony/staging/`: where contents are assembled before they enter the
//! working tree, so that no partial file ever appears there.
//!
//! A content of several chunks is assembled in `<hash>.part`, sized up front,
//! each chunk written at its offset once its hash checked. There is no
//! separate record of the chunks done: a resumed `get` hashes the chunks the
//! part file holds and keeps those that match. That costs a read of the part
//! file (at hashing speed, ~5 GB/s from the page cache) and no fsync while
//! fetching: a chunk a crash lost, or a hole never written, no longer
//! matches its hash and is simply fetched again.
//!
//! The whole-content hash is computed as chunks arrive, in order: a chunk
//! written at the point the hash has reached is hashed from memory, chunks
//! written ahead of it (another holder's, a local copy's) are read back when
//! the hash reaches them. So the content is verified without a second pass
//! when one holder sends it in order.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::chunk::Manifest;
use crate::model::{ContentHash, STATE_DIR};
use crate::Error;

/// Where downloads are assembled, inside `.harmony/`.
pub const STAGING_DIR: &str = "staging";

/// Held by the `get` that uses the staging folder: two gets in one location
/// would write the same `<hash>.part` files. It is the kernel's lock
/// (`flock`) on the folder itself, so it leaves no file behind and ends
/// with the process, `kill -9` included.
pub(super) struct StagingLock {
    _dir: File,
}

/// The staging folder of the location at `root`, created if missing (but
/// not `.harmony/` itself: `NotFound` if `root` is no location), and locked
/// for this `get`; an error of kind `WouldBlock` if another process holds
/// it.
pub(super) fn lock_staging(root: &Path) -> io::Result<(PathBuf, StagingLock)> {
    let path = root.join(STATE_DIR).join(STAGING_DIR);
    match fs::create_dir(&path) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let dir = File::open(&path)?;
    rustix::fs::flock(&dir, rustix::fs::FlockOperation::NonBlockingLockExclusive)?;
    Ok((path, StagingLock { _dir: dir }))
}

/// The staging file of content `hash`.
pub(super) fn part_path(dir: &Path, hash: ContentHash) -> PathBuf {
    dir.join(format!("{hash}.part"))
}

/// The contents with a part file in the staging folder `dir` (see
/// [`part_path`]), with its size (none if it cannot be read: nothing is
/// then reused from it).
pub(super) fn staged_files(dir: &Path) -> HashMap<ContentHash, u64> {
    let Ok(entries) = fs::read_dir(dir) else {
        return HashMap::new();
    };
    entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let hash = entry
                .file_name()
                .to_str()?
                .strip_suffix(".part")?
                .parse()
                .ok()?;
            let meta = entry.metadata().ok()?;
            meta.is_file().then_some((hash, meta.len()))
        })
        .collect()
}

/// A content of several chunks being assembled.
pub(super) struct StagedFile {
    pub path: PathBuf,
    file: File,
    offsets: Vec<u64>,
    lens: Vec<u32>,
    done: Vec<bool>,
    remaining: usize,
    hasher: blake3::Hasher,
    /// Chunks fed to `hasher`, in order from the first.
    hashed: usize,
}

impl StagedFile {
    /// Opens the part file of content `hash` with chunks `manifest`, keeping
    /// every chunk an earlier, interrupted `get` left in it. Returns the
    /// bytes kept.
    pub(super) fn open(
        dir: &Path,
        hash: ContentHash,
        manifest: &Manifest,
    ) -> io::Result<(Self, u64)> {
        let path = part_path(dir, hash);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let size = manifest.total_len();
        let existing = file.metadata()?.len();
        let mut staged = StagedFile {
            path,
            file,
            offsets: manifest.offsets(),
            lens: manifest.chunks.iter().map(|c| c.len).collect(),
            done: vec![false; manifest.chunks.len()],
            remaining: manifest.chunks.len(),
            hasher: blake3::Hasher::new(),
            hashed: 0,
        };
        let mut kept = 0;
        if existing == size && size > 0 {
            let mut bytes = Vec::new();
            for (index, chunk) in manifest.chunks.iter().enumerate() {
                staged.read_chunk(index, &mut bytes)?;
                if ContentHash::from(blake3::hash(&bytes)) == chunk.hash {
                    staged.mark_done(index);
                    if staged.hashed == index {
                        staged.hasher.update(&bytes);
                        staged.hashed += 1;
                    }
                    kept += u64::from(chunk.len);
                }
            }
        } else {
            staged.file.set_len(0)?;
            staged.file.set_len(size)?;
        }
        Ok((staged, kept))
    }

    /// Whether chunk `index` is in place.
    pub(super) fn is_done(&self, index: usize) -> bool {
        self.done[index]
    }

    /// Whether every chunk is in place.
    pub(super) fn is_complete(&self) -> bool {
        self.remaining == 0
    }

    /// Writes chunk `index` (its hash already checked) at its offset.
    pub(super) fn write(&mut self, index: usize, bytes: &[u8]) -> io::Result<()> {
        if self.done[index] {
            return Ok(());
        }
        self.file.write_all_at(bytes, self.offsets[index])?;
        self.mark_done(index);
        if self.hashed == index {
            self.hasher.update(bytes);
            self.hashed += 1;
            self.catch_up()?;
        }
        Ok(())
    }

    fn mark_done(&mut self, index: usize) {
        if !self.done[index] {
            self.done[index] = true;
            self.remaining -= 1;
        }
    }

    /// Hashes the chunks already in place right after the hashed ones.
    fn catch_up(&mut self) -> io::Result<()> {
        let mut bytes = Vec::new();
        while self.hashed < self.done.len() && self.done[self.hashed] {
            self.read_chunk(self.hashed, &mut bytes)?;
            self.hasher.update(&bytes);
            self.hashed += 1;
        }
        Ok(())
    }

    fn read_chunk(&self, index: usize, bytes: &mut Vec<u8>) -> io::Result<()> {
        bytes.resize(self.lens[index] as usize, 0);
        self.file.read_exact_at(bytes, self.offsets[index])
    }

    /// Checks the complete file against the content hash. A file that does
    /// not match (a holder's manifest lied) is removed, so that the next try
    /// starts afresh.
    pub(super) fn finish(mut self, hash: ContentHash) -> Result<PathBuf, FinishError> {
        debug_assert!(self.is_complete());
        self.catch_up()
            .map_err(|e| FinishError::Io(Error::io("read", &self.path)(e)))?;
        if ContentHash::from(self.hasher.finalize()) != hash {
            let _ = fs::remove_file(&self.path);
            return Err(FinishError::Mismatch);
        }
        Ok(self.path)
    }
}

/// Why a staged content could not be finished.
#[derive(Debug, thiserror::Error)]
pub(super) enum FinishError {
    #[error("the assembled file does not match its content hash (a holder sent a wrong manifest); discarded")]
    Mismatch,
    #[error("{0}")]
    Io(Error),
}

/// The blake3 of a whole file.
pub(super) fn hash_file(path: &Path) -> io::Result<ContentHash> {
    hash_of(File::open(path)?)
}

/// The blake3 of what `file` holds.
pub(super) fn hash_of(file: File) -> io::Result<ContentHash> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(file)?;
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::ChunkRef;

    fn manifest_of(parts: &[&[u8]]) -> Manifest {
        Manifest {
            chunks: parts
                .iter()
                .map(|p| ChunkRef {
                    hash: blake3::hash(p).into(),
                    len: p.len() as u32,
                })
                .collect(),
        }
    }

    #[test]
    fn the_staging_folder_serves_one_get_at_a_time() {
        let root = tempfile::tempdir().unwrap();
        let not_a_location = lock_staging(root.path()).err().expect("no .harmony/");
        assert_eq!(not_a_location.kind(), io::ErrorKind::NotFound);
        assert!(!root.path().join(STATE_DIR).exists(), "nothing created");
        fs::create_dir(root.path().join(STATE_DIR)).unwrap();
        let (dir, held) = lock_staging(root.path()).unwrap();
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0, "no lock file");
        let busy = lock_staging(root.path()).err().expect("a second lock");
        assert_eq!(busy.kind(), io::ErrorKind::WouldBlock);
        drop(held);
        lock_staging(root.path()).expect("free again once the first get ends");
    }

    #[test]
    fn out_of_order_writes_and_a_resume_verify_the_whole() {
        let dir = tempfile::tempdir().unwrap();
        let parts: [&[u8]; 3] = [b"first chunk ", b"second chunk ", b"third"];
        let whole: ContentHash = blake3::hash(&parts.concat()).into();
        let manifest = manifest_of(&parts);
        let (mut staged, kept) = StagedFile::open(dir.path(), whole, &manifest).unwrap();
        assert_eq!(kept, 0);
        staged.write(2, parts[2]).unwrap();
        drop(staged); // killed here

        let (mut staged, kept) = StagedFile::open(dir.path(), whole, &manifest).unwrap();
        assert_eq!(kept, parts[2].len() as u64, "the written chunk survives");
        assert!(staged.is_done(2) && !staged.is_done(0));
        staged.write(1, parts[1]).unwrap();
        staged.write(0, parts[0]).unwrap();
        assert!(staged.is_complete());
        let path = staged.finish(whole).unwrap();
        assert_eq!(fs::read(path).unwrap(), parts.concat());
    }

    #[test]
    fn a_wrong_manifest_is_caught_at_the_end_and_the_file_removed() {
        let dir = tempfile::tempdir().unwrap();
        let parts: [&[u8]; 2] = [b"aaaa", b"bbbb"];
        let manifest = manifest_of(&parts);
        let claimed: ContentHash = blake3::hash(b"something else").into();
        let (mut staged, _) = StagedFile::open(dir.path(), claimed, &manifest).unwrap();
        staged.write(0, parts[0]).unwrap();
        staged.write(1, parts[1]).unwrap();
        let path = part_path(dir.path(), claimed);
        assert!(matches!(staged.finish(claimed), Err(FinishError::Mismatch)));
        assert!(!path.exists());
    }
}
