//! The working tree and the state: walking, ignore rules, change detection
//! and rename detection. [`scan`] is the whole pipeline; its parts are
//! separate so the decisions ([`detect`]) stay pure and testable.

pub mod detect;
mod ignored;
mod read;
mod walk;

use std::path::Path;

pub use detect::{detect, triage, Change, ReadFile};
pub use ignored::IgnoreRules;
pub use read::ReadFailure;
pub use walk::{kind_of, set_mtime, stat_of, walk, SkipReason, Skipped, WalkedFile, IGNORE_FILE};

use crate::chunk::{ChunkParams, Manifest};
use crate::model::{ContentHash, Kind, LinkTarget, RepoPath};
use crate::store::LocalFile;

/// Told how a scan advances, e.g. to draw a progress bar. Called from the
/// reading threads too, hence `Sync`.
pub trait ScanProgress: Sync {
    /// `files` regular files listed so far.
    fn walking(&self, files: u64);
    /// Reading starts: this many files and bytes to read.
    fn reading(&self, files: u64, bytes: u64);
    /// One more file of `bytes` bytes was read.
    fn read(&self, bytes: u64);
}

/// A [`ScanProgress`] that shows nothing.
pub struct NoProgress;

impl ScanProgress for NoProgress {
    fn walking(&self, _: u64) {}
    fn reading(&self, _: u64, _: u64) {}
    fn read(&self, _: u64) {}
}

/// What a scan found, ready to be recorded.
#[derive(Debug, Default)]
pub struct ScanOutcome {
    /// What changed, to be recorded.
    pub changes: Vec<Change>,
    /// Manifests of new multi-chunk contents.
    pub manifests: Vec<(ContentHash, Manifest)>,
    /// Things in the tree that are not synced, each with its reason.
    pub skipped: Vec<Skipped>,
    /// Files that could not be read consistently: left as recorded before.
    pub failed: Vec<ReadFailure>,
    /// Recorded files the walk no longer lists but that still exist (now
    /// ignored, or no longer regular files): left as recorded, not deleted.
    pub kept: Vec<RepoPath>,
    /// How many files were recognised as unchanged by their stat fields.
    pub unchanged: usize,
    /// Files whose bytes were read (new, or stat changed).
    pub files_read: usize,
    /// Bytes read.
    pub bytes_read: u64,
}

/// Compares the tree under `root` with what this location `recorded` (in
/// path order, as [`Store::each_local_file`](crate::store::Store) gives
/// it); symbolic links are recorded as links when `symlinks` is on.
///
/// The walk runs on threads of its own and hands its files over in the
/// batches it stats them in, so that listing the tree and reading the
/// database overlap; only a few batches are in flight at once, so memory
/// does not grow with the tree.
pub fn scan(
    root: &Path,
    recorded: impl Iterator<Item = LocalFile>,
    params: ChunkParams,
    symlinks: bool,
    progress: &dyn ScanProgress,
) -> ScanOutcome {
    let (triaged, skipped) = std::thread::scope(|threads| {
        let (batches, walked) = std::sync::mpsc::sync_channel::<Vec<WalkedFile>>(4);
        let walker = threads.spawn(move || {
            let mut listed = 0u64;
            walk(root, symlinks, |files| {
                listed += files.len() as u64;
                progress.walking(listed);
                // The comparing side hangs up only when it panicked.
                let _ = batches.send(files);
            })
        });
        let triaged = triage(recorded, walked.into_iter().flatten());
        let skipped = walker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (triaged, skipped)
    });
    let mut outcome = ScanOutcome {
        unchanged: triaged.unchanged,
        ..ScanOutcome::default()
    };

    let (missing, kept): (Vec<_>, Vec<_>) = triaged
        .missing
        .into_iter()
        .partition(|f| !Skipped::covers(&skipped, &f.path) && !read::exists_on_disk(root, &f.path));
    outcome.kept = kept
        .into_iter()
        .filter(|f| !Skipped::covers(&skipped, &f.path))
        .map(|f| f.path)
        .collect();

    let bytes: u64 = triaged.to_read.iter().map(|f| f.stat.size).sum();
    progress.reading(triaged.to_read.len() as u64, bytes);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (read, failed) = read::read_files(root, triaged.to_read, params, threads, &|b| {
        progress.read(b)
    });
    outcome.files_read = read.len();
    outcome.bytes_read = read.iter().map(|r| r.size).sum();
    let mut files = Vec::with_capacity(read.len() + triaged.moved.len());
    files.extend(triaged.moved);
    for r in read {
        if let Some(manifest) = r.manifest {
            outcome.manifests.push((r.file.hash, manifest));
        }
        files.push(r.file);
    }
    outcome.changes = detect(&triaged.changed, files, missing);
    outcome.skipped = skipped;
    outcome.failed = failed;
    outcome
}

/// True when the working-tree file at `recorded.path` still holds the
/// recorded version: by its stat fields, or, when those moved (a touch, a
/// racy record), by hashing it (or reading the link). Only then may a
/// remote change replace, move or delete it (DESIGN.md, "never lose data"
/// 1). Nothing along the path is followed.
pub fn still_as_recorded(root: &Path, recorded: &LocalFile) -> std::io::Result<bool> {
    let tree = crate::tree::Tree::new(root);
    let Some(stat) = tree.lstat(&recorded.path)? else {
        return Ok(false);
    };
    let is_link = stat.st_mode & 0o170000 == 0o120000;
    let is_file = stat.st_mode & 0o170000 == 0o100000;
    let kind = match (is_link, is_file) {
        (true, _) => Kind::Link,
        (_, true) if crate::tree::is_executable(stat.st_mode) => Kind::Executable,
        (_, true) => Kind::File,
        _ => return Ok(false),
    };
    if kind != recorded.kind {
        return Ok(false);
    }
    if kind == Kind::Link {
        let target = tree.read_link(&recorded.path)?;
        return Ok(LinkTarget::new(&target).is_ok_and(|t| t.hash() == recorded.hash));
    }
    if file_stat(&stat) == recorded.stat {
        return Ok(true);
    }
    let params = ChunkParams::DEFAULT;
    let mut buf = vec![0u8; 4 * params.max as usize];
    let summary =
        crate::chunk::hash_reader(&mut tree.open_read(&recorded.path)?, params, &mut buf)?;
    Ok(summary.hash == recorded.hash)
}

/// The fields of a raw stat that [`stat_of`] reads from metadata.
pub fn file_stat(stat: &rustix::fs::Stat) -> crate::store::FileStat {
    crate::store::FileStat {
        size: stat.st_size as u64,
        mtime_ns: stat.st_mtime * 1_000_000_000 + stat.st_mtime_nsec as i64,
        ctime_ns: stat.st_ctime * 1_000_000_000 + stat.st_ctime_nsec as i64,
        inode: stat.st_ino,
        dev: stat.st_dev,
    }
}
