//! `get`: the newest content of files, from the locations that hold it.
//!
//! The parts, each on its own:
//! * the plan ([`Repo::plan_get`](crate::Repo::plan_get)): which contents
//!   are wanted, by which files, held by whom; what is already here whole
//!   (copied here, not fetched);
//! * one task per large content (here, a few at a time): its manifest
//!   (only the pages that differ from the version held here), its part file
//!   in staging (resumed), the chunks found locally, then its missing chunks
//!   queued as runs for the lanes;
//! * the [`schedule`](super::schedule) and one [`lane`](super::lane) per
//!   reachable holder, which fetch and check the bytes;
//! * the [`writer`](super::writer) thread, which writes them to staging;
//! * the [`install`](super::install) thread, which moves verified contents
//!   into the working tree and records them, a group at a time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};

use super::install::{self, Ready};
use super::lane::Lane;
use super::local::LocalCopies;
use super::refine::{self, OldPieces};
use super::schedule::{LargeFetch, Schedule, SmallContent};
use super::staging::StagingLock;
use super::staging::{self, FinishError, StagedFile};
use super::writer::{self, WriteOp};
use super::{ask, AskError, GetReport, Holders, Shared, TransferProgress};
use crate::chunk::{page_hash, ChunkRef, Manifest};
use crate::model::{ContentHash, NodeId, Placed};
use crate::net::PeerConnection;
use crate::proto::{Request, Response, MAX_PAGES_ASKED, MAX_PAGE_CHUNKS_SENT, MAX_WHOLE_FILE};
use crate::{Error, GetPlan, WantedContent as Wanted};

/// Bytes per `Chunks` request: small enough that several holders share a
/// file's work, large enough that a request costs nothing next to its answer.
const SPAN_BYTES: u64 = 16 << 20;
/// Large contents prepared (manifest, staging) at once: the next one's
/// manifest is fetched while the previous one's chunks arrive.
const LARGE_AT_ONCE: usize = 3;

/// Everything one `get` shares between its tasks.
struct Context {
    staging: PathBuf,
    copies: LocalCopies,
    /// The repository's smallest chunk: bounds how many chunks (and pages)
    /// a manifest of a given size can have.
    min_chunk: u32,
    schedule: Arc<Schedule>,
    conns: HashMap<NodeId, PeerConnection>,
    writer: mpsc::Sender<WriteOp>,
    ready: std::sync::mpsc::Sender<Ready>,
    shared: Arc<Shared>,
    progress: Arc<dyn TransferProgress>,
    next_key: AtomicU64,
}

/// The right to run the one `get` of a location at a time: its staging
/// folder, locked. Taken before the plan is made, so that the plan sees
/// what an earlier `get` installed.
pub struct GetLock {
    root: PathBuf,
    staging: PathBuf,
    lock: StagingLock,
}

impl GetLock {
    /// Locks the staging folder of the location at `root`; while another
    /// get holds it, fails with [`Error::GetRunning`].
    pub fn take(root: &Path) -> Result<GetLock, Error> {
        let root = root.to_path_buf();
        let (staging, lock) = staging::lock_staging(&root).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock => Error::GetRunning(root.clone()),
            std::io::ErrorKind::NotFound => Error::NotALocation(root.clone()),
            _ => Error::io("lock the staging folder of", &root)(e),
        })?;
        Ok(GetLock {
            root,
            staging,
            lock,
        })
    }
}

/// Fetches what `plan` names into the location `lock` was taken for.
///
/// A get whose future is dropped stops fetching, and its threads finish
/// installing what is complete before they release the location, a moment
/// later.
pub async fn get(
    lock: GetLock,
    plan: GetPlan,
    holders: &mut Holders,
    progress: Arc<dyn TransferProgress>,
) -> Result<GetReport, Error> {
    let GetLock {
        root,
        staging,
        lock: staging_lock,
    } = lock;
    let (wanted, min_chunk) = (plan.contents, plan.min_chunk);
    let copies = LocalCopies::index(&root, plan.local_manifests, plan.local_files);
    progress.start(
        wanted.iter().map(|w| w.targets.len() as u64).sum(),
        wanted.iter().map(|w| w.size).sum(),
    );
    let shared = Arc::new(Shared::default());

    // The threads that write and install.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let installer = {
        let (root, shared) = (root.clone(), shared.clone());
        std::thread::spawn(move || {
            // The installer ends last (after the writer and the lanes, even
            // if this future is dropped): the staging folder is ours until
            // then.
            let _held = staging_lock;
            install::run(&root, ready_rx, |done| shared.installed(done))
        })
    };
    let (write_tx, write_rx) = mpsc::channel(writer::QUEUE);
    let writer = {
        let (staging, ready, shared) = (staging.clone(), ready_tx.clone(), shared.clone());
        std::thread::spawn(move || writer::run(&staging, write_rx, ready, |f| shared.fail(f)))
    };

    // A connection to every holder of something wanted.
    let mut needed: Vec<NodeId> = wanted.iter().flat_map(|w| w.holders.clone()).collect();
    needed.sort();
    needed.dedup();
    let mut conns = HashMap::new();
    let mut unreachable = HashMap::new();
    for id in needed {
        match holders.conn(id).await {
            Ok(conn) => {
                conns.insert(id, conn);
            }
            Err(why) => {
                unreachable.insert(id, why);
            }
        }
    }
    let schedule = Arc::new(Schedule::new(conns.keys().copied(), unreachable.clone()));
    let ctx = Arc::new(Context {
        staging,
        copies,
        min_chunk,
        schedule: schedule.clone(),
        conns,
        writer: write_tx,
        ready: ready_tx,
        shared: shared.clone(),
        progress: progress.clone(),
        next_key: AtomicU64::new(0),
    });
    // In a JoinSet, the lanes stop if this future is dropped, so that the
    // writer and the installer (and the staging lock) end too.
    let mut lanes = tokio::task::JoinSet::new();
    for (id, conn) in &ctx.conns {
        lanes.spawn(
            Lane {
                id: *id,
                conn: conn.clone(),
                schedule: schedule.clone(),
                writer: ctx.writer.clone(),
                shared: shared.clone(),
                progress: progress.clone(),
            }
            .run(),
        );
    }

    // Contents copied locally or fetched whole, then the large ones.
    let mut small = Vec::new();
    let mut large = Vec::new();
    for want in wanted {
        if copy_whole(&ctx, &want).await {
            continue;
        }
        if !ctx.schedule.reachable(&want.holders) {
            let why = super::schedule::no_holder(&want.holders, &unreachable, &[]);
            fail_targets(&ctx, &want.targets, &why);
        } else if want.size <= MAX_WHOLE_FILE {
            small.push(SmallContent {
                hash: want.hash,
                size: want.size,
                targets: want.targets,
                holders: want.holders,
                refused_by: Vec::new(),
            });
        } else {
            large.push(want);
        }
    }
    schedule.push_small(small);
    let permits = Arc::new(Semaphore::new(LARGE_AT_ONCE));
    let mut tasks = tokio::task::JoinSet::new();
    for want in large {
        let permit = permits.clone().acquire_owned().await;
        let ctx = ctx.clone();
        tasks.spawn(async move {
            let _permit = permit;
            if let Err(why) = fetch_large(&ctx, &want).await {
                fail_targets(&ctx, &want.targets, &why);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    schedule.close();
    while lanes.join_next().await.is_some() {}
    for (content, why) in schedule.take_failed() {
        fail_targets(&ctx, &content.targets, &why);
    }

    // Let the writer and the installer finish what they hold.
    drop(ctx);
    let joined =
        tokio::task::spawn_blocking(move || (writer.join().is_ok(), installer.join())).await;
    let stopped = |which: &str| {
        Error::Refused(format!(
            "the thread that {which} stopped unexpectedly; run the get again \
             (what was staged is kept)"
        ))
    };
    match joined {
        Ok((true, Ok(result))) => result?,
        Ok((false, _)) => return Err(stopped("writes to staging")),
        _ => return Err(stopped("installs files")),
    }
    Ok(shared.report())
}

fn fail_targets(ctx: &Context, targets: &[Placed], why: &str) {
    for target in targets {
        ctx.shared.fail(format!("{}: {why}", target.path));
    }
}

/// Stages a content held here whole (under another path) or empty, without
/// the network. Returns whether it did.
async fn copy_whole(ctx: &Arc<Context>, want: &Wanted) -> bool {
    let empty = want.size == 0 && want.hash == ContentHash::from(blake3::hash(&[]));
    let source = ctx.copies.whole(want.hash).map(Path::to_path_buf);
    if source.is_none() && !empty {
        return false;
    }
    let (dir, hash) = (ctx.staging.clone(), want.hash);
    let staged = tokio::task::spawn_blocking(move || -> std::io::Result<Option<PathBuf>> {
        let Some(source) = source else {
            return writer::stage_whole(&dir, hash, &[]).map(Some);
        };
        // Copied, then checked: the source may have changed since recorded.
        let part = staging::part_path(&dir, hash);
        std::fs::copy(&source, &part)?;
        if staging::hash_file(&part)? != hash {
            std::fs::remove_file(&part)?;
            return Ok(None);
        }
        Ok(Some(part))
    })
    .await;
    let Ok(Ok(Some(staged))) = staged else {
        return false;
    };
    ctx.shared.reused(want.size);
    ctx.progress.advance(want.size);
    let _ = ctx.ready.send(Ready {
        staged,
        hash: want.hash,
        manifest: None,
        targets: want.targets.clone(),
    });
    true
}

/// Fetches one large content: manifest, staging, local chunks, then the
/// missing chunks through the lanes. A holder whose manifest turns out
/// false (the assembled file does not match) is dropped, and the content
/// is tried again with another's.
async fn fetch_large(ctx: &Arc<Context>, want: &Wanted) -> Result<(), String> {
    let mut distrusted: Vec<NodeId> = Vec::new();
    loop {
        let (manifest, from) = manifest_from_holders(ctx, want, &mut distrusted).await?;
        let manifest = Arc::new(manifest);
        let prepared = {
            let (ctx, manifest, hash) = (ctx.clone(), manifest.clone(), want.hash);
            tokio::task::spawn_blocking(move || prepare_staged(&ctx, hash, &manifest)).await
        };
        let (mut staged, reused, mut missing) = match prepared {
            Ok(Ok(prepared)) => prepared,
            Ok(Err(e)) => return Err(format!("cannot stage it: {e}")),
            Err(e) => return Err(e.to_string()),
        };
        ctx.shared.reused(reused);
        ctx.progress.advance(reused);
        let offsets = manifest.offsets();
        refine_missing(
            ctx,
            want,
            &manifest,
            &offsets,
            &mut staged,
            &mut missing,
            &distrusted,
        )
        .await;
        let finished = if missing.is_empty() {
            let hash = want.hash;
            tokio::task::spawn_blocking(move || staged.finish(hash))
                .await
                .map_err(|e| e.to_string())?
        } else {
            fetch_missing(ctx, want, staged, manifest.clone(), offsets, &missing).await?
        };
        match finished {
            Ok(path) => {
                let _ = ctx.ready.send(Ready {
                    staged: path,
                    hash: want.hash,
                    manifest: (manifest.chunks.len() > 1).then(|| (*manifest).clone()),
                    targets: want.targets.clone(),
                });
                return Ok(());
            }
            Err(FinishError::Mismatch) => {
                let name = ctx.conns.get(&from).map_or("?", |c| c.peer().name.as_str());
                let why = format!("{name}: sent a wrong manifest for {}", want.hash);
                tracing::warn!("dropping {why}");
                ctx.schedule.holder_gone(from, why, Vec::new());
                distrusted.push(from);
            }
            Err(FinishError::Io(e)) => return Err(format!("cannot write it in staging: {e}")),
        }
    }
}

/// Fetches a few changed chunks by their differences from the version held
/// here (see [`refine`](super::refine)), from the first holder that can;
/// what cannot be refined stays in `missing`, to be fetched whole.
async fn refine_missing(
    ctx: &Arc<Context>,
    want: &Wanted,
    manifest: &Arc<Manifest>,
    offsets: &[u64],
    staged: &mut StagedFile,
    missing: &mut Vec<usize>,
    distrusted: &[NodeId],
) {
    let old = want
        .targets
        .iter()
        .find_map(|t| ctx.copies.manifest_of(t.entry.id));
    let (Some(old), false, true) = (old, missing.is_empty(), missing.len() <= refine::MAX_CHUNKS)
    else {
        return;
    };
    let pieces = {
        let (ctx, old, new) = (ctx.clone(), old.clone(), manifest.clone());
        match tokio::task::spawn_blocking(move || OldPieces::load(&ctx.copies, &old, &new)).await {
            Ok(pieces) if !pieces.is_empty() => pieces,
            _ => return,
        }
    };
    let Some((holder, conn)) = want
        .holders
        .iter()
        .filter(|h| !distrusted.contains(h) && ctx.schedule.reachable(&[**h]))
        .find_map(|h| ctx.conns.get(h).map(|c| (*h, c)))
    else {
        return;
    };
    let mut left = Vec::new();
    for (n, &index) in missing.iter().enumerate() {
        let chunk = manifest.chunks[index];
        match refine::refine_chunk(conn, want.hash, offsets[index], chunk, &pieces).await {
            Ok(refined) if staged.write(index, &refined.bytes).is_ok() => {
                ctx.shared.fetched(&conn.peer().name, refined.fetched);
                ctx.shared.reused(refined.reused);
                ctx.progress.advance(u64::from(chunk.len));
            }
            Err(AskError::Lied(why)) => {
                let why = format!("{}: {why}", conn.peer().name);
                ctx.schedule.holder_gone(holder, why, Vec::new());
                left.extend_from_slice(&missing[n..]);
                break;
            }
            Err(AskError::Unavailable(why)) => {
                tracing::debug!("chunk {index} of {} fetched whole: {why}", want.hash);
                left.push(index);
            }
            Ok(_) => left.push(index), // not written: fetched whole, written again
        }
    }
    *missing = left;
}

/// Hands the staged file to the writer, queues the missing chunks, and
/// waits until the file is complete or cannot be.
async fn fetch_missing(
    ctx: &Arc<Context>,
    want: &Wanted,
    staged: StagedFile,
    manifest: Arc<Manifest>,
    offsets: Vec<u64>,
    missing: &[usize],
) -> Result<Result<PathBuf, FinishError>, String> {
    let key = ctx.next_key.fetch_add(1, Ordering::Relaxed);
    let (done_tx, done_rx) = oneshot::channel();
    let (failed_tx, mut failed_rx) = mpsc::unbounded_channel();
    let open = WriteOp::Open {
        key,
        hash: want.hash,
        staged: Box::new(staged),
        done: done_tx,
    };
    ctx.writer
        .send(open)
        .await
        .map_err(|_| "the writer stopped".to_owned())?;
    let fetch = Arc::new(LargeFetch {
        key,
        hash: want.hash,
        manifest,
        offsets,
        holders: want.holders.clone(),
        failed: failed_tx,
    });
    ctx.schedule.push_spans(fetch, missing, SPAN_BYTES);
    tokio::select! {
        done = done_rx => done.map_err(|_| "the writer stopped".to_owned()),
        Some(why) = failed_rx.recv() => {
            ctx.schedule.cancel(key);
            let _ = ctx.writer.send(WriteOp::Close { key }).await;
            Err(why)
        }
    }
}

/// Opens the part file (keeping what an interrupted `get` left) and copies
/// in every missing chunk found locally. Returns the file, the bytes not
/// to fetch, and the chunks still missing.
fn prepare_staged(
    ctx: &Context,
    hash: ContentHash,
    manifest: &Manifest,
) -> std::io::Result<(StagedFile, u64, Vec<usize>)> {
    let (mut staged, mut reused) = StagedFile::open(&ctx.staging, hash, manifest)?;
    let mut missing = Vec::new();
    for (index, chunk) in manifest.chunks.iter().enumerate() {
        if staged.is_done(index) {
            continue;
        }
        match ctx.copies.chunk(chunk) {
            Some(bytes) => {
                staged.write(index, &bytes)?;
                reused += u64::from(chunk.len);
            }
            None => missing.push(index),
        }
    }
    Ok((staged, reused, missing))
}

/// The manifest of `want`, from the first holder (not distrusted) that gives
/// one covering the content's size. Returns it with who gave it.
async fn manifest_from_holders(
    ctx: &Context,
    want: &Wanted,
    distrusted: &mut Vec<NodeId>,
) -> Result<(Manifest, NodeId), String> {
    // Pages of the versions held here of the same files: an edited file's
    // manifest differs from the old one in a page or two.
    let known: HashMap<ContentHash, &[ChunkRef]> = want
        .targets
        .iter()
        .filter_map(|t| ctx.copies.manifest_of(t.entry.id))
        .flat_map(|m| m.pages())
        .map(|page| (page_hash(page), page))
        .collect();
    let mut why_not = Vec::new();
    for holder in &want.holders {
        let Some(conn) = ctx.conns.get(holder) else {
            continue;
        };
        if distrusted.contains(holder) || !ctx.schedule.reachable(&[*holder]) {
            continue;
        }
        let max_chunks = want.size / u64::from(ctx.min_chunk.max(1)) + 1;
        match fetch_manifest(conn, want.hash, max_chunks, &known).await {
            Ok(manifest) if manifest.total_len() == want.size => return Ok((manifest, *holder)),
            Ok(manifest) => {
                let why = format!(
                    "{}: its manifest covers {} bytes, the content has {}",
                    conn.peer().name,
                    manifest.total_len(),
                    want.size
                );
                ctx.schedule.holder_gone(*holder, why.clone(), Vec::new());
                distrusted.push(*holder);
                why_not.push(why);
            }
            Err(AskError::Unavailable(e)) => why_not.push(format!("{}: {e}", conn.peer().name)),
            Err(AskError::Lied(e)) => {
                let why = format!("{}: {e}", conn.peer().name);
                ctx.schedule.holder_gone(*holder, why.clone(), Vec::new());
                distrusted.push(*holder);
                why_not.push(why);
            }
        }
    }
    for (id, why) in ctx.schedule.dropped() {
        if want.holders.contains(&id) && !why_not.contains(&why) {
            why_not.push(why);
        }
    }
    Err(format!(
        "no holder could provide it ({})",
        why_not.join("; ")
    ))
}

/// A content's manifest from `conn`: its index, then only the pages not
/// in `known`; every page checked against its hash in the index, the index
/// bounded by `max_chunks` (what the content's size allows).
async fn fetch_manifest(
    conn: &PeerConnection,
    hash: ContentHash,
    max_chunks: u64,
    known: &HashMap<ContentHash, &[ChunkRef]>,
) -> Result<Manifest, AskError> {
    let lie = |what: &str| AskError::Lied(what.to_owned());
    let mut index = Vec::new();
    loop {
        let request = Request::Manifest {
            hash,
            first: index.len() as u32,
        };
        let page = match ask(conn, &request).await?.0 {
            Response::Manifest(page) => page,
            other => return Err(AskError::Lied(format!("unexpected answer {other:?}"))),
        };
        if u64::from(page.total) > max_chunks {
            return Err(lie("a manifest index longer than the content allows"));
        }
        if page.first as usize != index.len()
            || (page.pages.is_empty() && index.len() < page.total as usize)
        {
            return Err(lie("a manifest index page out of order"));
        }
        index.extend(page.pages);
        if index.len() >= page.total as usize {
            break;
        }
    }
    if index.iter().map(|p| u64::from(p.chunks)).sum::<u64>() > max_chunks {
        return Err(lie("a manifest of more chunks than the content allows"));
    }
    let mut pages: Vec<Option<Vec<ChunkRef>>> = index
        .iter()
        .map(|p| known.get(&p.hash).map(|chunks| chunks.to_vec()))
        .collect();
    let missing: Vec<u32> = (0..index.len() as u32)
        .filter(|i| pages[*i as usize].is_none())
        .collect();
    // Ask for the missing pages in requests within the answer limits.
    let mut batch: Vec<u32> = Vec::new();
    let mut batch_chunks = 0;
    for (n, page) in missing.iter().enumerate() {
        batch.push(*page);
        batch_chunks += index[*page as usize].chunks as usize;
        let next_chunks = missing
            .get(n + 1)
            .map_or(usize::MAX, |p| index[*p as usize].chunks as usize);
        if batch.len() == MAX_PAGES_ASKED
            || batch_chunks.saturating_add(next_chunks) > MAX_PAGE_CHUNKS_SENT
        {
            let asked = std::mem::take(&mut batch);
            batch_chunks = 0;
            let request = Request::ManifestPages {
                hash,
                pages: asked.clone(),
            };
            let answer = match ask(conn, &request).await?.0 {
                Response::ManifestPages(answer) if answer.len() == asked.len() => answer,
                other => return Err(AskError::Lied(format!("unexpected answer {other:?}"))),
            };
            for (at, page) in asked.into_iter().zip(answer) {
                let expected = &index[at as usize];
                if page.len() != expected.chunks as usize || page_hash(&page) != expected.hash {
                    return Err(AskError::Lied(format!(
                        "manifest page {at} does not match its index"
                    )));
                }
                pages[at as usize] = Some(page);
            }
        }
    }
    let chunks = pages.into_iter().flatten().flatten().collect();
    Ok(Manifest { chunks })
}
