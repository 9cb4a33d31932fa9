//! Reading changed files: each is read once, on all cores, hashing and
//! chunking in the same pass, and checked to have held still while read.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::chunk::{hash_reader, ChunkParams, Manifest};
use crate::model::{Kind, LinkTarget, RepoPath};

use super::walk::stat_of;
use super::{ReadFile, WalkedFile};

/// How often a file that changes while being read is read again before it
/// is reported instead of recorded.
const READ_ATTEMPTS: usize = 3;
/// Timestamps this close to the moment of reading may not reveal a write that
/// lands right after the read (coarse filesystem clocks; git's "racily clean"
/// problem). Such files are recorded so that the next scan reads them again.
const RACY_WINDOW: Duration = Duration::from_secs(2);

/// A file read successfully.
#[derive(Debug)]
pub(super) struct ReadOutcome {
    pub file: ReadFile,
    pub size: u64,
    /// Set when the content has more than one chunk.
    pub manifest: Option<Manifest>,
}

/// A file that could not be read as one consistent version.
#[derive(Debug)]
pub enum ReadFailure {
    /// Kept changing while being read; try again when it is quiet.
    Changing(RepoPath),
    /// Could not be read at all; what the system said.
    Io(RepoPath, io::Error),
}

impl std::fmt::Display for ReadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadFailure::Changing(p) => write!(
                f,
                "{p}: changed while being read ({READ_ATTEMPTS} attempts); not recorded, commit again when it is quiet"
            ),
            ReadFailure::Io(p, e) => write!(f, "{p}: cannot be read ({e}); not recorded"),
        }
    }
}

/// Scratch buffer per worker: big reads, and room for chunker look-ahead.
const BUFFER_BYTES: usize = 4 << 20;

/// Reads `files` under `root` with `threads` workers. `on_bytes` is told how
/// many bytes each finished file had (for progress). A file that vanished
/// since the walk is left out silently: the next scan will see it missing.
pub(super) fn read_files(
    root: &Path,
    mut files: Vec<WalkedFile>,
    params: ChunkParams,
    threads: usize,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> (Vec<ReadOutcome>, Vec<ReadFailure>) {
    // Largest first, so that the last big file does not run alone at the end.
    files.sort_by_key(|f| std::cmp::Reverse(f.stat.size));
    let next = AtomicUsize::new(0);
    let done = Mutex::new((Vec::with_capacity(files.len()), Vec::new()));
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1).min(files.len().max(1)) {
            scope.spawn(|| {
                let mut buf = vec![0u8; BUFFER_BYTES.max(4 * params.max as usize)];
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(file) = files.get(i) else { break };
                    let result = match file.kind {
                        Kind::Link => read_link(root, file),
                        Kind::File | Kind::Executable => read_stable(root, file, params, &mut buf),
                    };
                    if let Ok(Some(outcome)) = &result {
                        on_bytes(outcome.size);
                    }
                    let mut done = done.lock().unwrap_or_else(|e| e.into_inner());
                    match result {
                        Ok(Some(outcome)) => done.0.push(outcome),
                        Ok(None) => {}
                        Err(failure) => done.1.push(failure),
                    }
                }
            });
        }
    });
    let (mut read, failed) = done.into_inner().unwrap_or_else(|e| e.into_inner());
    read.sort_by(|a, b| a.file.path.cmp(&b.file.path));
    (read, failed)
}

/// Reads a symbolic link's target (the link is the version, not what it
/// points to).
fn read_link(root: &Path, walked: &WalkedFile) -> Result<Option<ReadOutcome>, ReadFailure> {
    let path = &walked.path;
    let io_err = |e: io::Error| ReadFailure::Io(path.clone(), e);
    let tree = crate::tree::Tree::new(root);
    let target = match tree.read_link(path) {
        Ok(target) => target,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(e)),
    };
    let target = LinkTarget::new(&target)
        .map_err(|e| io_err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())))?;
    Ok(Some(ReadOutcome {
        file: ReadFile {
            path: path.clone(),
            stat: walked.stat,
            hash: target.hash(),
            kind: Kind::Link,
            target: Some(target),
            recheck: false,
        },
        size: 0,
        manifest: None,
    }))
}

/// Reads one file until a read sees the same stat fields before and after.
fn read_stable(
    root: &Path,
    walked: &WalkedFile,
    params: ChunkParams,
    buf: &mut [u8],
) -> Result<Option<ReadOutcome>, ReadFailure> {
    let path = &walked.path;
    let io_err = |e: io::Error| ReadFailure::Io(path.clone(), e);
    let tree = crate::tree::Tree::new(root);
    for _ in 0..READ_ATTEMPTS {
        let read_started = SystemTime::now();
        let mut file = match tree.open_read(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(e)),
        };
        let meta = file.metadata().map_err(io_err)?;
        let before = stat_of(&meta);
        let kind = super::walk::kind_of(&meta);
        // Read at most one byte past the size seen at open: a file that keeps
        // growing must not keep us reading (or hashing) forever.
        let mut bounded = io::Read::take(&mut file, before.size + 1);
        let summary = hash_reader(&mut bounded, params, buf).map_err(io_err)?;
        let after = stat_of(&file.metadata().map_err(io_err)?);
        if before != after || summary.size != after.size {
            continue;
        }
        let multi_chunk = summary.manifest.chunks.len() > 1;
        return Ok(Some(ReadOutcome {
            file: ReadFile {
                path: path.clone(),
                stat: after,
                hash: summary.hash,
                kind,
                target: None,
                recheck: is_racy(after.mtime_ns, read_started),
            },
            size: summary.size,
            manifest: multi_chunk.then_some(summary.manifest),
        }));
    }
    Err(ReadFailure::Changing(path.clone()))
}

fn is_racy(mtime_ns: i64, read_started: SystemTime) -> bool {
    let started_ns = read_started
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    mtime_ns > started_ns - RACY_WINDOW.as_nanos() as i64
}

/// True when something other than a folder exists at `path` now: a recorded
/// path the walk did not list is deleted (or moved) when this is false. A
/// folder there means the file was replaced by a folder of its name.
pub(super) fn exists_on_disk(root: &Path, path: &RepoPath) -> bool {
    crate::tree::Tree::new(root)
        .lstat(path)
        .is_ok_and(|stat| stat.is_some_and(|s| s.st_mode & 0o170000 != 0o040000))
}
