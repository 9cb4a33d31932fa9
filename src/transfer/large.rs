//! One large content of a `get`: its manifest, its part file in staging
//! (resumed), the chunks found locally, the changed chunks refined against
//! the older version, then the missing chunks fetched through the lanes.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::get::{write_failed, Context};
use super::install::Ready;
use super::manifest::manifest_from_holders;
use super::refine::{self, OldPieces};
use super::schedule::LargeFetch;
use super::staging::{self, FinishError, StagedFile};
use super::writer::WriteOp;
use super::{AskError, Misbehaved};
use crate::chunk::Manifest;
use crate::model::{ContentHash, NodeId};
use crate::{Error, WantedContent as Wanted};

/// Bytes per `Chunks` request: small enough that several holders share a
/// file's work, large enough that a request costs nothing next to its answer.
const SPAN_BYTES: u64 = 16 << 20;

/// Fetches one large content: manifest, staging, local chunks, then the
/// missing chunks through the lanes. A holder whose manifest turns out
/// false (the assembled file does not match) is dropped, and the content
/// is tried again with another's.
pub(super) async fn fetch_large(ctx: &Arc<Context>, want: &Wanted) -> Result<(), String> {
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
            Ok(Err(e)) => {
                let part = staging::part_path(&ctx.staging, want.hash);
                let error = Error::io("stage", part)(e);
                return Err(write_failed(&ctx.shared, &ctx.schedule, error));
            }
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
                let why = format!("{name}: {}", Misbehaved::WrongManifest(want.hash));
                tracing::warn!("dropping {why}");
                ctx.schedule.holder_gone(from, why, Vec::new());
                distrusted.push(from);
            }
            Err(FinishError::Io(e)) => return Err(write_failed(&ctx.shared, &ctx.schedule, e)),
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
        match refine::refine_chunk(
            conn,
            &ctx.receiving,
            want.hash,
            offsets[index],
            chunk,
            &pieces,
        )
        .await
        {
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
    let fetch = Arc::new(LargeFetch::new(
        key,
        want.hash,
        manifest,
        offsets,
        want.holders.clone(),
        failed_tx,
    ));
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
