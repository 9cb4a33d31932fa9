//! The serving side of content transfer: manifest indexes and pages, chunk
//! bytes, whole small files and "do you hold this?", always read from this
//! location's working tree, and only from a file that is still the recorded
//! version of that content and lies inside the repository.
//!
//! Bytes are streamed: a blocking reader fills pieces of [`PIECE`] bytes into
//! a short queue while the stream sends the previous ones, so an answer of
//! any size costs a few MiB of memory and the disk and the network overlap.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::pieces::Piece;
use super::rate::RateLimit;
use crate::chunk::{ChunkRef, Manifest};
use crate::model::{ContentHash, RepoPath, STATE_DIR};
use crate::net::{FramedStream, NetError};
use crate::proto::{
    ErrorCode, ManifestIndex, Request, Response, MAX_INDEX_PAGES, MAX_PAGE_CHUNKS_SENT,
    MAX_WHOLE_FILE,
};
use crate::scan::{stat_of, still_as_recorded};
use crate::store::{FileStat, LocalFile, Store, StoreError, DB_FILE};

/// Why a transfer request is refused; its text goes to the peer.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("this location does not hold content {0}")]
    NotHeld(ContentHash),
    #[error("{0} is missing here")]
    Missing(RepoPath),
    #[error("{0} is a symbolic link; links are not served")]
    Link(RepoPath),
    #[error("{0} changed here since it was recorded; it is not served until committed again")]
    Changed(RepoPath),
    #[error("{0} leads out of the repository; not served")]
    LeadsOut(RepoPath),
    #[error("{0} changed while it was read")]
    ChangedWhileRead(RepoPath),
    #[error("content without a manifest")]
    NoManifest,
    #[error("the manifest has no page {0}")]
    NoSuchPage(u32),
    #[error("more than {MAX_PAGE_CHUNKS_SENT} chunk references asked at once")]
    TooManyChunkRefs,
    #[error("a range lies beyond the end of the content ({0} bytes)")]
    RangesBeyondEnd(u64),
    #[error("the range lies beyond the end of the content")]
    RangeBeyondEnd,
    #[error("not a transfer request: {0:?}")]
    NotTransfer(Box<Request>),
}

/// Bytes per piece handed from the reader to the stream.
const PIECE: usize = 1 << 20;
/// Pieces read ahead of the stream.
const READ_AHEAD: usize = 4;

/// What the serving side keeps between requests: a connection to the state
/// database, the repository's real path, and the files it verified by
/// hashing (with the stat fields they had then), so that a file recorded
/// "to check again" is hashed once per `serve`, not once per request.
#[derive(Default)]
pub struct ServeCache {
    store: Option<Store>,
    real_root: Option<PathBuf>,
    verified: HashMap<RepoPath, FileStat>,
}

/// The serving state shared by every request stream of a `serve`, behind one
/// lock: its cache and database connection serve one request at a time.
pub type StoreCell = std::sync::Arc<std::sync::Mutex<ServeCache>>;

/// One file to stream: ranges of it, as long as it keeps the stat it had
/// when it was checked.
struct FileRead {
    path: PathBuf,
    stat: FileStat,
    ranges: Vec<(u64, u64)>,
}

/// Answers a transfer request (`Manifest`, `ManifestPages`, `Chunks`,
/// `Files`, `Has`) for the location at `root`; the content bytes go out as
/// `limit` allows (frames are never held back).
pub async fn answer(
    root: PathBuf,
    cell: StoreCell,
    request: Request,
    stream: &mut FramedStream,
    limit: &RateLimit,
) -> Result<(), NetError> {
    let prepared = tokio::task::spawn_blocking(move || {
        let mut cache = cell.lock().unwrap_or_else(|e| e.into_inner());
        prepare(&mut cache, &root, request)
    })
    .await;
    let (response, reads) = match prepared {
        Ok(Ok(prepared)) => prepared,
        Ok(Err(refusal)) => (
            refused(ErrorCode::REFUSED, &refusal.to_string()),
            Vec::new(),
        ),
        Err(e) => (refused(ErrorCode::INTERNAL, &e.to_string()), Vec::new()),
    };
    stream.send_frame(&response).await?;
    if !reads.is_empty() {
        send_reads(stream, reads, limit).await?;
    }
    Ok(())
}

fn refused(code: ErrorCode, why: &str) -> Response {
    Response::Error {
        code,
        message: crate::net::truncate_error_text(why),
    }
}

/// The answer and the file bytes that follow it.
fn prepare(
    cache: &mut ServeCache,
    root: &Path,
    request: Request,
) -> Result<(Response, Vec<FileRead>), Refusal> {
    if cache.store.is_none() {
        let db = root.join(STATE_DIR).join(DB_FILE);
        cache.store = Some(Store::open(&db)?);
    }
    if cache.real_root.is_none() {
        cache.real_root = Some(std::fs::canonicalize(root)?);
    }
    let (Some(store), Some(real_root)) = (cache.store.as_ref(), cache.real_root.as_deref()) else {
        unreachable!("both set above");
    };
    let mut sources = Sources {
        store,
        root,
        real_root,
        verified: &mut cache.verified,
    };
    match request {
        Request::Has { hash } => Ok((Response::Has(sources.find(hash).is_ok()), vec![])),
        Request::Manifest { hash, first } => {
            let source = sources.find(hash)?;
            let index = sources.manifest(&source.record)?.page_index();
            let from = (first as usize).min(index.len());
            let to = (from + MAX_INDEX_PAGES).min(index.len());
            let page = ManifestIndex {
                total: index.len() as u32,
                first: from as u32,
                pages: index[from..to].to_vec(),
            };
            Ok((Response::Manifest(page), vec![]))
        }
        Request::ManifestPages { hash, pages: asked } => {
            let source = sources.find(hash)?;
            let manifest = sources.manifest(&source.record)?;
            let pages = manifest.pages();
            let mut answer = Vec::with_capacity(asked.len());
            let mut chunks = 0;
            for index in asked {
                let page = pages
                    .get(index as usize)
                    .ok_or(Refusal::NoSuchPage(index))?;
                chunks += page.len();
                if chunks > MAX_PAGE_CHUNKS_SENT {
                    return Err(Refusal::TooManyChunkRefs);
                }
                answer.push(page.to_vec());
            }
            Ok((Response::ManifestPages(answer), vec![]))
        }
        Request::Chunks(ranges) => {
            let source = sources.find(ranges.hash)?;
            let size = source.stat.size;
            if ranges
                .ranges
                .iter()
                .any(|(offset, len)| !within(size, *offset, *len))
            {
                return Err(Refusal::RangesBeyondEnd(size));
            }
            let len = ranges.total_len();
            let read = FileRead {
                path: source.path,
                stat: source.stat,
                ranges: ranges.ranges,
            };
            Ok((Response::Chunks { len }, vec![read]))
        }
        Request::Files { hashes } => {
            let mut lens = Vec::with_capacity(hashes.len());
            let mut reads = Vec::new();
            for hash in hashes {
                match sources.find(hash) {
                    Ok(source) if source.stat.size <= MAX_WHOLE_FILE => {
                        lens.push(Some(source.stat.size));
                        reads.push(FileRead {
                            path: source.path,
                            stat: source.stat,
                            ranges: vec![(0, source.stat.size)],
                        });
                    }
                    _ => lens.push(None),
                }
            }
            Ok((Response::Files { lens }, reads))
        }
        Request::Refine { hash, offset, len } => {
            let source = sources.find(hash)?;
            if !within(source.stat.size, offset, u64::from(len)) {
                return Err(Refusal::RangeBeyondEnd);
            }
            let mut bytes = vec![0; len as usize];
            let file = File::open(&source.path)?;
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut bytes, offset)?;
            if file.metadata().map(|m| stat_of(&m)).ok() != Some(source.stat) {
                return Err(Refusal::ChangedWhileRead(source.record.path));
            }
            Ok((Response::Refined(crate::chunk::refine(&bytes)), vec![]))
        }
        other => Err(Refusal::NotTransfer(Box::new(other))),
    }
}

/// Whether `len` bytes at `offset` lie inside a content of `size` bytes.
fn within(size: u64, offset: u64, len: u64) -> bool {
    offset.checked_add(len).is_some_and(|end| end <= size)
}

/// A working-tree file that holds a content, checked.
struct Source {
    /// Its real path (no symlink in it).
    path: PathBuf,
    record: LocalFile,
    /// Its stat when it was found to be the recorded version.
    stat: FileStat,
}

/// Finds the files that hold contents, checking each against its record.
struct Sources<'a> {
    store: &'a Store,
    root: &'a Path,
    real_root: &'a Path,
    verified: &'a mut HashMap<RepoPath, FileStat>,
}

impl Sources<'_> {
    /// The working-tree file holding `hash`, checked to still be that
    /// version and to lie inside the repository (no symlinked folder leads
    /// out of it).
    fn find(&mut self, hash: ContentHash) -> Result<Source, Refusal> {
        let record = self
            .store
            .local_file_by_hash(hash)?
            .ok_or(Refusal::NotHeld(hash))?;
        if record.kind == crate::model::Kind::Link {
            // A link's version is its target text, in the entry itself:
            // there are no bytes to send, and what it points to is never read.
            return Err(Refusal::Link(record.path));
        }
        let path = record.path.to_path(self.root);
        let Ok(now) = std::fs::symlink_metadata(&path).map(|m| stat_of(&m)) else {
            return Err(Refusal::Missing(record.path));
        };
        let unchanged = now == record.stat
            || self.verified.get(&record.path) == Some(&now)
            || still_as_recorded(self.root, &record)?;
        if !unchanged {
            return Err(Refusal::Changed(record.path));
        }
        if now != record.stat {
            self.verified.insert(record.path.clone(), now);
        }
        let real = std::fs::canonicalize(&path)?;
        if !real.starts_with(self.real_root) {
            return Err(Refusal::LeadsOut(record.path));
        }
        Ok(Source {
            path: real,
            record,
            stat: now,
        })
    }

    /// The manifest of a held content: stored for contents of several
    /// chunks; a content of one chunk is its own manifest.
    fn manifest(&self, record: &LocalFile) -> Result<Manifest, Refusal> {
        if let Some(manifest) = self.store.manifest(record.hash)? {
            return Ok(manifest);
        }
        let size = record.stat.size;
        Ok(Manifest {
            chunks: if size == 0 {
                Vec::new()
            } else {
                vec![ChunkRef {
                    hash: record.hash,
                    len: u32::try_from(size).map_err(|_| Refusal::NoManifest)?,
                }]
            },
        })
    }
}

/// Streams the bytes of `reads`, read ahead on a blocking thread, as `limit`
/// allows. A file that changes meanwhile ends the stream with
/// `stream::CHANGED`.
async fn send_reads(
    stream: &mut FramedStream,
    reads: Vec<FileRead>,
    limit: &RateLimit,
) -> Result<(), NetError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        if let Err(why) = read_pieces(reads, &tx) {
            let _ = tx.blocking_send(Err(why));
        }
    });
    while let Some(piece) = rx.recv().await {
        match piece {
            Ok(bytes) => limit.send(stream, bytes).await?,
            Err(why) => {
                tracing::warn!("stopped sending to {}: {why}", stream.peer());
                stream.abort(crate::proto::stream::CHANGED);
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Reads the ranges of each file into pieces of up to [`PIECE`] bytes (small
/// files share a piece) and queues them; stops when the receiver is gone.
fn read_pieces(
    reads: Vec<FileRead>,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, String>>,
) -> Result<(), String> {
    // A Vec filled by `read_to_end` is not zeroed first (a page-cache read
    // at ~1 GB/s would otherwise pay for a memset of every byte too), and a
    // recycled one has its pages mapped already.
    let mut piece = Piece::take(PIECE);
    let flush = |piece: &mut Piece| -> Result<(), String> {
        if !piece.is_empty() {
            let full = std::mem::replace(piece, Piece::take(PIECE)).share();
            tx.blocking_send(Ok(full))
                .map_err(|_| "the stream is gone".to_owned())?;
        }
        Ok(())
    };
    for read in reads {
        let changed = || format!("{} changed while it was sent", read.path.display());
        let mut file = File::open(&read.path).map_err(|e| e.to_string())?;
        let stat_now = |file: &File| file.metadata().map(|m| stat_of(&m)).ok();
        if stat_now(&file) != Some(read.stat) {
            return Err(changed());
        }
        for (offset, len) in &read.ranges {
            file.seek(SeekFrom::Start(*offset))
                .map_err(|e| e.to_string())?;
            let mut left = *len;
            while left > 0 {
                let take = left.min((PIECE - piece.len()) as u64);
                let got = (&mut file)
                    .take(take)
                    .read_to_end(&mut piece)
                    .map_err(|e| e.to_string())?;
                if got as u64 != take {
                    return Err(changed()); // shorter than recorded
                }
                left -= take;
                if piece.len() == PIECE {
                    flush(&mut piece)?;
                }
            }
        }
        // Written to while it was read: what was read may mix versions.
        if stat_now(&file) != Some(read.stat) {
            return Err(changed());
        }
    }
    flush(&mut piece)
}
