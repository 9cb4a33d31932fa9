//! The serving side of content transfer: manifests, chunk bytes and "do you
//! hold this?", always read from this location's working tree, and only
//! from a file that is still the recorded version of that content.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::chunk::{ChunkRef, Manifest};
use crate::model::{ContentHash, STATE_DIR};
use crate::net::{FramedStream, NetError};
use crate::proto::{ChunkRanges, ErrorCode, ManifestPage, Request, Response, MAX_MANIFEST_PAGE};
use crate::scan::still_as_recorded;
use crate::store::{LocalFile, Store, DB_FILE};

/// Why a transfer request is refused, in words for the peer.
type Refusal = String;

/// What the serving side keeps between requests: a connection to the state
/// database, and the files it verified by hashing (with the stat fields they
/// had then), so that a file recorded "to check again" is hashed once per
/// `serve`, not once per request.
#[derive(Default)]
pub struct ServeCache {
    store: Option<Store>,
    verified: std::collections::HashMap<crate::model::RepoPath, crate::store::FileStat>,
}

pub type StoreCell = std::sync::Arc<std::sync::Mutex<ServeCache>>;

/// Answers a transfer request (`Manifest`, `Chunks`, `Has`) for the location
/// at `root`.
pub async fn answer(
    root: PathBuf,
    store: StoreCell,
    request: Request,
    stream: &mut FramedStream,
) -> Result<(), NetError> {
    let answer = tokio::task::spawn_blocking(move || {
        let mut cell = store.lock().unwrap_or_else(|e| e.into_inner());
        if cell.store.is_none() {
            let db = root.join(STATE_DIR).join(DB_FILE);
            cell.store = Some(Store::open(&db).map_err(|e| e.to_string())?);
        }
        prepare(&mut cell, &root, request)
    })
    .await;
    let (response, bytes) = match answer {
        Ok(Ok(prepared)) => prepared,
        Ok(Err(refusal)) => (
            Response::Error {
                code: ErrorCode::REFUSED,
                message: crate::net::truncate_error_text(&refusal),
            },
            Vec::new(),
        ),
        Err(e) => (
            Response::Error {
                code: ErrorCode::INTERNAL,
                message: crate::net::truncate_error_text(&e.to_string()),
            },
            Vec::new(),
        ),
    };
    stream.send_frame(&response).await?;
    if !bytes.is_empty() {
        stream.send_raw(&bytes).await?;
    }
    Ok(())
}

/// The answer and the raw bytes that follow it.
fn prepare(
    cache: &mut ServeCache,
    root: &Path,
    request: Request,
) -> Result<(Response, Vec<u8>), Refusal> {
    let ServeCache { store, verified } = cache;
    let store = store.as_ref().ok_or("no state database")?;
    let mut source = |hash| source(store, root, hash, verified);
    match request {
        Request::Has { hash } => Ok((Response::Has(source(hash).is_ok()), vec![])),
        Request::Manifest { hash, first } => {
            let (_, record) = source(hash)?;
            let manifest = manifest_of(store, &record)?;
            let total = manifest.chunks.len() as u32;
            let from = (first as usize).min(manifest.chunks.len());
            let to = (from + MAX_MANIFEST_PAGE).min(manifest.chunks.len());
            let page = ManifestPage {
                total,
                first: from as u32,
                chunks: manifest.chunks[from..to].to_vec(),
            };
            Ok((Response::Manifest(page), vec![]))
        }
        Request::Chunks(ranges) => {
            let (path, record) = source(ranges.hash)?;
            let bytes = read_ranges(&path, &record, &ranges)?;
            Ok((
                Response::Chunks {
                    len: bytes.len() as u64,
                },
                bytes,
            ))
        }
        other => Err(format!("not a transfer request: {other:?}")),
    }
}

/// The working-tree file holding `hash`, checked to still be that version
/// and to lie inside the repository (no symlinked folder leads out of it).
fn source(
    store: &Store,
    root: &Path,
    hash: ContentHash,
    verified: &mut std::collections::HashMap<crate::model::RepoPath, crate::store::FileStat>,
) -> Result<(PathBuf, LocalFile), Refusal> {
    let record = store
        .local_file_by_hash(hash)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("this location does not hold content {hash}"))?;
    let now = std::fs::symlink_metadata(record.path.to_path(root))
        .map(|m| crate::scan::stat_of(&m))
        .ok();
    let unchanged = if now.is_some() && verified.get(&record.path) == now.as_ref() {
        true
    } else {
        let unchanged = still_as_recorded(root, &record).map_err(|e| e.to_string())?;
        if let (true, Some(now)) = (unchanged, now) {
            verified.insert(record.path.clone(), now);
        }
        unchanged
    };
    if !unchanged {
        return Err(format!(
            "{} changed here since it was recorded; it is not served until committed again",
            record.path
        ));
    }
    let path = record.path.to_path(root);
    let real = std::fs::canonicalize(&path).map_err(|e| e.to_string())?;
    let real_root = std::fs::canonicalize(root).map_err(|e| e.to_string())?;
    if !real.starts_with(&real_root) {
        return Err(format!(
            "{} leads out of the repository; not served",
            record.path
        ));
    }
    Ok((real, record))
}

/// The manifest of a held content: stored for contents of several chunks;
/// a content of one chunk is its own manifest.
fn manifest_of(store: &Store, record: &LocalFile) -> Result<Manifest, Refusal> {
    if let Some(manifest) = store.manifest(record.hash).map_err(|e| e.to_string())? {
        return Ok(manifest);
    }
    let size = record.stat.size;
    Ok(Manifest {
        chunks: if size == 0 {
            Vec::new()
        } else {
            vec![ChunkRef {
                hash: record.hash,
                len: u32::try_from(size).map_err(|_| "content without a manifest".to_owned())?,
            }]
        },
    })
}

fn read_ranges(path: &Path, record: &LocalFile, ranges: &ChunkRanges) -> Result<Vec<u8>, Refusal> {
    let size = record.stat.size;
    if ranges.ranges.iter().any(|(offset, len)| {
        offset
            .checked_add(u64::from(*len))
            .is_none_or(|end| end > size)
    }) {
        return Err(format!(
            "a range lies beyond the end of the content ({size} bytes)"
        ));
    }
    let mut file = File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::with_capacity(ranges.total_len() as usize);
    for (offset, len) in &ranges.ranges {
        file.seek(SeekFrom::Start(*offset))
            .map_err(|e| e.to_string())?;
        let start = bytes.len();
        bytes.resize(start + *len as usize, 0);
        file.read_exact(&mut bytes[start..])
            .map_err(|e| e.to_string())?;
    }
    Ok(bytes)
}
