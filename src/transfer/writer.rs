//! The writer: one thread that puts checked bytes into staging, off the
//! async runtime, so that the lanes keep reading the network while the page
//! cache is written and the whole-content hashes advance.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;

use tokio::sync::{mpsc, oneshot};

use super::install::Ready;
use super::staging::{part_path, FinishError, StagedFile};
use crate::model::{ContentHash, Placed};
use crate::Error;

/// Chunks (at most 128 KiB each with the default chunking) queued for the
/// writer: bounds the memory between the network and the disk.
pub(super) const QUEUE: usize = 64;

/// What the writer is asked to do.
pub(super) enum WriteOp {
    /// A large content is being fetched: chunks for `key` go to `staged`;
    /// `done` is told the verified file, once complete.
    Open {
        key: u64,
        hash: ContentHash,
        staged: Box<StagedFile>,
        done: oneshot::Sender<Result<PathBuf, FinishError>>,
    },
    /// A checked chunk of content `key`.
    Chunk {
        key: u64,
        index: usize,
        bytes: Vec<u8>,
    },
    /// Content `key` failed: stop writing it (its part file stays for the
    /// next `get` to resume).
    Close { key: u64 },
    /// A whole, checked small content, for the files `targets`.
    Whole {
        hash: ContentHash,
        bytes: Vec<u8>,
        targets: Vec<Placed>,
    },
}

struct Open {
    hash: ContentHash,
    staged: Box<StagedFile>,
    done: oneshot::Sender<Result<PathBuf, FinishError>>,
}

/// Runs until every sender of `ops` is gone. Small contents go on to the
/// installer through `ready`; `failed` hears of those that cannot be staged
/// (their files, and why).
pub(super) fn run(
    dir: &Path,
    mut ops: mpsc::Receiver<WriteOp>,
    ready: Sender<Ready>,
    mut failed: impl FnMut(&[Placed], Error),
) {
    let mut open: HashMap<u64, Open> = HashMap::new();
    while let Some(op) = ops.blocking_recv() {
        match op {
            WriteOp::Open {
                key,
                hash,
                staged,
                done,
            } => {
                open.insert(key, Open { hash, staged, done });
            }
            WriteOp::Chunk { key, index, bytes } => {
                let Some(file) = open.get_mut(&key) else {
                    continue; // a content that failed meanwhile
                };
                match file.staged.write(index, &bytes) {
                    Ok(()) if !file.staged.is_complete() => {}
                    outcome => {
                        if let Some(file) = open.remove(&key) {
                            let result = outcome
                                .map_err(|e| {
                                    FinishError::Io(Error::io("write", &file.staged.path)(e))
                                })
                                .and_then(|()| file.staged.finish(file.hash));
                            let _ = file.done.send(result);
                        }
                    }
                }
            }
            WriteOp::Close { key } => {
                open.remove(&key);
            }
            WriteOp::Whole {
                hash,
                bytes,
                targets,
            } => match stage_whole(dir, hash, &bytes) {
                Ok(staged) => {
                    let _ = ready.send(Ready {
                        staged,
                        hash,
                        manifest: None,
                        targets,
                    });
                }
                Err(e) => failed(&targets, Error::io("stage", part_path(dir, hash))(e)),
            },
        }
    }
}

/// Writes a whole content to its staging file.
pub(super) fn stage_whole(dir: &Path, hash: ContentHash, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let path = part_path(dir, hash);
    File::create(&path)?.write_all(bytes)?;
    Ok(path)
}
