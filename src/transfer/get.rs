//! `get`: the newest content of files, from the locations that hold it.
//!
//! Per file: the manifest (asked of a holder, or implied for a one-chunk
//! content), then each chunk from a local copy when one exists (another
//! file, the old version), else from a holder, verified against its blake3
//! before it is written. The file is assembled in `.harmony/staging/`, with
//! a record of the chunks done so that a killed `get` resumes with the
//! missing ones only, verified whole against the content hash, synced, and
//! renamed into the working tree. A holder that sends a bad chunk or a bad
//! manifest is dropped for that file and the rest comes from another.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Holders;
use crate::chunk::{ChunkRef, Manifest};
use crate::model::{Content, ContentHash, FileEntry, FileId, NodeId, Resolved, STATE_DIR};
use crate::net::PeerConnection;
use crate::proto::{ChunkRanges, ManifestPage, Request, Response, MAX_RANGES};
use crate::scan::{stat_of, still_as_recorded};
use crate::store::LocalFile;
use crate::{Error, Repo};

/// Where downloads are assembled.
pub const STAGING_DIR: &str = "staging";
/// Bytes asked of a holder per request (several chunks back to back).
const REQUEST_BYTES: u64 = 2 << 20;

/// Told how a `get` advances (e.g. to draw a progress bar).
pub trait TransferProgress: Sync {
    fn start(&self, files: u64, bytes: u64);
    fn advance(&self, bytes: u64);
}

impl TransferProgress for crate::scan::NoProgress {
    fn start(&self, _: u64, _: u64) {}
    fn advance(&self, _: u64) {}
}

/// What a `get` did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct GetReport {
    /// Files brought to their newest content.
    pub files: usize,
    /// Bytes received from holders.
    pub bytes_fetched: u64,
    /// Bytes taken from copies already here (other files, older versions,
    /// an interrupted earlier `get`).
    pub bytes_reused: u64,
    /// Bytes received per holder (by name).
    pub per_holder: BTreeMap<String, u64>,
    /// Files not fetched, each with the reason.
    pub failed: Vec<String>,
}

/// Fetches the newest content of the files `ids` into the location at `root`.
pub async fn get(
    root: &Path,
    ids: &[FileId],
    holders: &mut Holders,
    progress: &dyn TransferProgress,
) -> Result<GetReport, Error> {
    let mut repo = Repo::open(root)?;
    let mut report = GetReport::default();
    let mut wanted = Vec::new();
    for id in ids {
        if let Some(entry) = repo.store().entry(*id)? {
            if let Resolved::File(v) = entry.resolved() {
                if let Content::File { size, .. } = v.value {
                    wanted.push((entry.clone(), size));
                }
            }
        }
    }
    progress.start(wanted.len() as u64, wanted.iter().map(|(_, s)| s).sum());
    let mut local = LocalChunks::load(&repo)?;
    for (entry, _) in wanted {
        match fetch_file(
            &mut repo,
            &mut local,
            &entry,
            holders,
            progress,
            &mut report,
        )
        .await
        {
            Ok(()) => report.files += 1,
            Err(reason) => report
                .failed
                .push(format!("{}: {reason}", entry.current_path())),
        }
    }
    Ok(report)
}

/// The newest content of `entry`: hash, size and mtime.
fn newest(entry: &FileEntry) -> Option<(ContentHash, u64, i64)> {
    match entry.resolved() {
        Resolved::File(v) => match v.value {
            Content::File {
                hash,
                size,
                mtime_ns,
            } => Some((hash, size, mtime_ns)),
            Content::Deleted => None,
        },
        _ => None,
    }
}

async fn fetch_file(
    repo: &mut Repo,
    local: &mut LocalChunks,
    entry: &FileEntry,
    holders: &mut Holders,
    progress: &dyn TransferProgress,
    report: &mut GetReport,
) -> Result<(), String> {
    let me = repo.node_id();
    let (hash, size, mtime_ns) = newest(entry).ok_or("it has no content to fetch")?;
    let sources: Vec<NodeId> = entry
        .holders_of(hash)
        .filter(|n| **n != me)
        .copied()
        .collect();
    let mut staged = Staged::open(repo.root(), hash, size).map_err(|e| e.to_string())?;

    let mut manifest = None;
    let mut why_not = Vec::new();
    if size < u64::from(repo.settings().chunking.min) {
        // One chunk: the content hash is the chunk hash.
        manifest = Some(Manifest {
            chunks: if size == 0 {
                vec![]
            } else {
                vec![ChunkRef {
                    hash,
                    len: size as u32,
                }]
            },
        });
    }
    let mut usable = Vec::new();
    for source in &sources {
        match holders.conn(*source).await {
            Ok(conn) => usable.push(conn),
            Err(e) => why_not.push(e),
        }
    }
    if manifest.is_none() {
        for conn in &usable {
            match fetch_manifest(conn, hash, size).await {
                Ok(m) => {
                    manifest = Some(m);
                    break;
                }
                Err(e) => why_not.push(format!("{}: {e}", conn.peer().name)),
            }
        }
    }
    let manifest = manifest.ok_or_else(|| no_holder(&sources, &why_not))?;
    staged.prepare(&manifest).map_err(|e| e.to_string())?;

    // Chunks an interrupted earlier `get` left, then chunks already here.
    let resumed: u64 = manifest
        .chunks
        .iter()
        .zip(&staged.done)
        .filter(|(_, done)| **done)
        .map(|(c, _)| u64::from(c.len))
        .sum();
    report.bytes_reused += resumed;
    progress.advance(resumed);
    for (index, chunk) in manifest.chunks.iter().enumerate() {
        if staged.done[index] {
            continue;
        }
        if let Some(bytes) = local.find(repo, chunk) {
            staged.write(index, &bytes).map_err(|e| e.to_string())?;
            report.bytes_reused += bytes.len() as u64;
            progress.advance(bytes.len() as u64);
        }
    }

    let mut lanes: Vec<Lane> = usable.into_iter().map(Lane::new).collect();
    let mut queue = staged.missing_batches(&manifest);
    while !queue.is_empty() || lanes.iter().any(|l| !l.inflight.is_empty()) {
        if lanes.is_empty() {
            return Err(no_holder(&[], &why_not));
        }
        // Keep every holder's window full, then take the oldest answer of
        // each in turn: holders send in parallel, each several answers ahead.
        for lane in &mut lanes {
            while lane.inflight.len() < WINDOW {
                let Some(batch) = queue.pop_front() else {
                    break;
                };
                let ranges = batch
                    .iter()
                    .map(|i| (staged.offsets[*i], manifest.chunks[*i].len))
                    .collect();
                match lane
                    .conn
                    .open(&Request::Chunks(ChunkRanges { hash, ranges }))
                    .await
                {
                    Ok(stream) => lane.inflight.push_back((batch, stream)),
                    Err(e) => {
                        queue.push_front(batch);
                        lane.failed = Some(e.to_string());
                        break;
                    }
                }
            }
        }
        for lane in &mut lanes {
            if lane.failed.is_some() {
                continue;
            }
            let Some((batch, mut stream)) = lane.inflight.pop_front() else {
                continue;
            };
            match receive_chunks(&mut stream, &manifest, &batch, &mut staged).await {
                Ok(bytes) => {
                    report.bytes_fetched += bytes;
                    *report.per_holder.entry(lane.name()).or_default() += bytes;
                    progress.advance(bytes);
                }
                Err(e) => {
                    queue.push_front(batch);
                    lane.failed = Some(e);
                }
            }
        }
        // Durable progress costs an fsync: take it every 1/32 of the file
        // (at least 8 MiB), so a resumed get fetches at most ~3% again.
        if manifest.chunks.len() > 1 && staged.unsaved >= (size / 32).max(8 << 20) {
            staged.save_progress().map_err(|e| e.to_string())?;
        }
        // A holder that failed or lied is dropped for this file; what it was
        // asked for goes to the others.
        for lane in lanes.iter_mut().filter(|l| l.failed.is_some()) {
            let name = lane.name();
            let reason = lane.failed.take().unwrap_or_default();
            tracing::warn!("dropping {name} for {}: {reason}", entry.current_path());
            why_not.push(format!("{name}: {reason}"));
            queue.extend(lane.inflight.drain(..).map(|(batch, _)| batch));
            lane.dropped = true;
        }
        lanes.retain(|l| !l.dropped);
    }
    staged.finish(hash, &manifest).map_err(|e| e.to_string())?;
    let placed =
        install(repo, entry, &staged, hash, mtime_ns, &manifest).map_err(|e| e.to_string())?;
    if manifest.chunks.len() > 1 {
        local.add(placed, &manifest);
    }
    Ok(())
}

fn no_holder(sources: &[NodeId], why_not: &[String]) -> String {
    if why_not.is_empty() && sources.is_empty() {
        "no other location holds its newest content".to_owned()
    } else {
        format!("no holder could provide it ({})", why_not.join("; "))
    }
}

async fn fetch_manifest(
    conn: &PeerConnection,
    hash: ContentHash,
    size: u64,
) -> Result<Manifest, String> {
    let mut chunks = Vec::new();
    loop {
        let request = Request::Manifest {
            hash,
            first: chunks.len() as u32,
        };
        let page: ManifestPage = match conn.request(&request).await.map_err(|e| e.to_string())?.0 {
            Response::Manifest(page) => page,
            other => return Err(format!("unexpected answer {other:?}")),
        };
        if page.first as usize != chunks.len()
            || (page.chunks.is_empty() && chunks.len() < page.total as usize)
        {
            return Err("a manifest page out of order".into());
        }
        chunks.extend(page.chunks);
        if chunks.len() >= page.total as usize {
            break;
        }
    }
    let manifest = Manifest { chunks };
    if manifest.total_len() != size {
        return Err(format!(
            "its manifest covers {} bytes, the content has {size}",
            manifest.total_len()
        ));
    }
    Ok(manifest)
}

/// Requests in flight per holder: enough to keep a fast link busy while the
/// previous answer is checked and written. Answers are read oldest first,
/// so all of them together must fit the connection's receive window: else
/// later answers could take all the credit while the oldest waits for it,
/// and the transfer would stall.
const WINDOW: usize = 3;
const _: () = assert!(WINDOW as u64 * REQUEST_BYTES < crate::net::CONNECTION_RECEIVE_WINDOW as u64);

/// One holder serving a file: its connection and its requests in flight.
struct Lane {
    conn: PeerConnection,
    inflight: std::collections::VecDeque<(Vec<usize>, crate::net::FramedStream)>,
    failed: Option<String>,
    dropped: bool,
}

impl Lane {
    fn new(conn: PeerConnection) -> Self {
        Lane {
            conn,
            inflight: Default::default(),
            failed: None,
            dropped: false,
        }
    }

    fn name(&self) -> String {
        self.conn.peer().name.clone()
    }
}

/// Reads the answer to a `Chunks` request for the chunks `batch` (indexes
/// into `manifest`) and writes each chunk after checking its hash. Returns
/// the bytes received.
async fn receive_chunks(
    stream: &mut crate::net::FramedStream,
    manifest: &Manifest,
    batch: &[usize],
    staged: &mut Staged,
) -> Result<u64, String> {
    let response: Response = stream.recv_frame().await.map_err(|e| e.to_string())?;
    let len = match response {
        Response::Chunks { len } => len,
        Response::Error { code, message } => return Err(format!("{code}: {message}")),
        other => return Err(format!("unexpected answer {other:?}")),
    };
    let expected: u64 = batch
        .iter()
        .map(|i| u64::from(manifest.chunks[*i].len))
        .sum();
    if len != expected {
        return Err(format!("announced {len} bytes, {expected} were asked"));
    }
    let mut received = 0;
    let mut bytes = Vec::new();
    for index in batch {
        let chunk = &manifest.chunks[*index];
        bytes.resize(chunk.len as usize, 0);
        stream
            .recv_exact(&mut bytes)
            .await
            .map_err(|e| e.to_string())?;
        if ContentHash::from(blake3::hash(&bytes)) != chunk.hash {
            return Err(format!("sent a corrupted chunk (#{index})"));
        }
        staged.write(*index, &bytes).map_err(|e| e.to_string())?;
        received += bytes.len() as u64;
    }
    Ok(received)
}

/// Chunks that can be copied from files already here: whole files equal to
/// a chunk (found by content hash), and chunks of multi-chunk contents held
/// here (indexed once per `get`, extended as files arrive).
struct LocalChunks {
    index: HashMap<ContentHash, (LocalFile, u64)>,
}

impl LocalChunks {
    fn load(repo: &Repo) -> crate::Result<Self> {
        let mut local = LocalChunks {
            index: HashMap::new(),
        };
        for (file, manifest) in repo.store().local_manifests()? {
            local.add(file, &manifest);
        }
        Ok(local)
    }

    fn add(&mut self, file: LocalFile, manifest: &Manifest) {
        let mut offset = 0;
        for chunk in &manifest.chunks {
            self.index
                .entry(chunk.hash)
                .or_insert_with(|| (file.clone(), offset));
            offset += u64::from(chunk.len);
        }
    }

    /// The bytes of `chunk` from a local file, verified; `None` if none has it.
    fn find(&self, repo: &Repo, chunk: &ChunkRef) -> Option<Vec<u8>> {
        if let Ok(Some(file)) = repo.store().local_file_by_hash(chunk.hash) {
            if let Some(bytes) = read_verified(repo.root(), &file, 0, chunk) {
                return Some(bytes);
            }
        }
        let (file, offset) = self.index.get(&chunk.hash)?;
        read_verified(repo.root(), file, *offset, chunk)
    }
}

fn read_verified(root: &Path, file: &LocalFile, offset: u64, chunk: &ChunkRef) -> Option<Vec<u8>> {
    let mut handle = File::open(file.path.to_path(root)).ok()?;
    handle.seek(SeekFrom::Start(offset)).ok()?;
    let mut bytes = vec![0; chunk.len as usize];
    handle.read_exact(&mut bytes).ok()?;
    (ContentHash::from(blake3::hash(&bytes)) == chunk.hash).then_some(bytes)
}

/// A content being assembled in `.harmony/staging/`: `<hash>.part` and the
/// record of chunks done, `<hash>.done` (one byte per chunk).
struct Staged {
    part: PathBuf,
    done_path: PathBuf,
    file: File,
    size: u64,
    done: Vec<bool>,
    offsets: Vec<u64>,
    /// Bytes written since the progress record was last made durable.
    unsaved: u64,
}

impl Staged {
    fn open(root: &Path, hash: ContentHash, size: u64) -> std::io::Result<Staged> {
        let dir = root.join(STATE_DIR).join(STAGING_DIR);
        fs::create_dir_all(&dir)?;
        let part = dir.join(format!("{hash}.part"));
        let done_path = dir.join(format!("{hash}.done"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&part)?;
        Ok(Staged {
            part,
            done_path,
            file,
            size,
            done: Vec::new(),
            offsets: Vec::new(),
            unsaved: 0,
        })
    }

    /// Sizes the file and loads the chunks an earlier, interrupted `get` left.
    fn prepare(&mut self, manifest: &Manifest) -> std::io::Result<()> {
        let mut offset = 0;
        self.offsets = manifest
            .chunks
            .iter()
            .map(|c| {
                let at = offset;
                offset += u64::from(c.len);
                at
            })
            .collect();
        let previous = fs::read(&self.done_path).unwrap_or_default();
        self.done = if previous.len() == manifest.chunks.len()
            && self.file.metadata()?.len() == self.size
        {
            previous.iter().map(|b| *b == 1).collect()
        } else {
            vec![false; manifest.chunks.len()]
        };
        self.file.set_len(self.size)?;
        Ok(())
    }

    fn write(&mut self, index: usize, bytes: &[u8]) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Start(self.offsets[index]))?;
        self.file.write_all(bytes)?;
        self.done[index] = true;
        self.unsaved += bytes.len() as u64;
        Ok(())
    }

    /// Makes the chunks written so far durable, then records them as done:
    /// a crash never marks a chunk done whose bytes are not on disk.
    fn save_progress(&mut self) -> std::io::Result<()> {
        self.file.sync_data()?;
        let record: Vec<u8> = self.done.iter().map(|d| u8::from(*d)).collect();
        let tmp = self.done_path.with_extension("done.tmp");
        fs::write(&tmp, record)?;
        fs::rename(&tmp, &self.done_path)?;
        self.unsaved = 0;
        Ok(())
    }

    /// The missing chunks, in requests of up to [`REQUEST_BYTES`].
    fn missing_batches(&self, manifest: &Manifest) -> std::collections::VecDeque<Vec<usize>> {
        let mut batches = std::collections::VecDeque::new();
        let mut batch = Vec::new();
        let mut bytes = 0;
        for (index, chunk) in manifest.chunks.iter().enumerate() {
            if self.done[index] {
                continue;
            }
            if !batch.is_empty()
                && (bytes + u64::from(chunk.len) > REQUEST_BYTES || batch.len() == MAX_RANGES)
            {
                batches.push_back(std::mem::take(&mut batch));
                bytes = 0;
            }
            bytes += u64::from(chunk.len);
            batch.push(index);
        }
        if !batch.is_empty() {
            batches.push_back(batch);
        }
        batches
    }

    /// Syncs the whole file and checks it against the content hash (reading
    /// it again, unless it is one chunk already checked); a file that does
    /// not match is thrown away (and fetched again next time).
    fn finish(&mut self, hash: ContentHash, manifest: &Manifest) -> Result<(), String> {
        self.file.sync_all().map_err(|e| e.to_string())?;
        // One chunk named by the content hash was checked when it arrived.
        if let [only] = manifest.chunks.as_slice() {
            if only.hash == hash {
                return Ok(());
            }
        }
        let mut hasher = blake3::Hasher::new();
        let mut reader = File::open(&self.part).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = reader.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        if ContentHash::from(hasher.finalize()) != hash {
            let _ = fs::remove_file(&self.part);
            let _ = fs::remove_file(&self.done_path);
            return Err("the assembled file does not match its content hash; discarded".into());
        }
        Ok(())
    }
}

/// Moves the verified file into the working tree: over the held older
/// version if it is still as recorded (kept in the trash when no other
/// location holds it), or at a free path; never over anything else.
fn install(
    repo: &mut Repo,
    entry: &FileEntry,
    staged: &Staged,
    hash: ContentHash,
    mtime_ns: i64,
    manifest: &Manifest,
) -> crate::Result<LocalFile> {
    let me = repo.node_id();
    let root = repo.root().to_path_buf();
    let target_path = entry.current_path().clone();
    let target = target_path.to_path(&root);
    let old = repo.store().local_file_by_id(entry.id)?;
    match &old {
        Some(old) => {
            if !still_as_recorded(&root, old).map_err(Error::io("read", &target))? {
                return Err(Error::Refused(format!(
                    "{} changed here since the last commit; not overwritten (commit it, then get again)",
                    old.path
                )));
            }
            if !entry.holders_of(old.hash).any(|n| *n != me) {
                let kept = repo.trash_path(&old.path)?;
                fs::hard_link(old.path.to_path(&root), &kept)
                    .map_err(Error::io("keep in trash", &kept))?;
            }
            if old.path != target_path && fs::symlink_metadata(&target).is_ok() {
                return Err(Error::Refused(format!(
                    "{target_path} is taken by a file Harmony does not know"
                )));
            }
        }
        None if fs::symlink_metadata(&target).is_ok() => {
            return Err(Error::Refused(format!(
                "{target_path} exists here but is not recorded; commit it first (it may become a conflict)"
            )));
        }
        None => {}
    }
    let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(mtime_ns.max(0) as u64);
    let _ = staged.file.set_modified(mtime);
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
    }
    fs::rename(&staged.part, &target).map_err(Error::io("place", &target))?;
    let _ = fs::remove_file(&staged.done_path);
    if let Some(old) = &old {
        if old.path != target_path {
            let _ = fs::remove_file(old.path.to_path(&root));
        }
    }
    let meta = fs::symlink_metadata(&target).map_err(Error::io("stat", &target))?;
    let writer = repo.store_mut().write()?;
    if let Some(old) = &old {
        writer.remove_local_file(&old.path)?;
    }
    // Its chunks can serve later gets (another file, the next version).
    if manifest.chunks.len() > 1 {
        writer.put_manifest(hash, manifest)?;
    }
    let placed = LocalFile {
        path: target_path,
        file_id: entry.id,
        hash,
        stat: stat_of(&meta),
    };
    writer.put_local_file(&placed)?;
    let counter = writer.next_write_counter()?;
    let mut current = writer.entry(entry.id)?.unwrap_or_else(|| entry.clone());
    current.set_holding(me, Some(hash), counter);
    writer.put_entry(&current)?;
    writer.commit()?;
    Ok(placed)
}
