//! `get`: the newest content of files, from the locations that hold it.
//!
//! The parts, each on its own:
//! * the plan ([`Repo::plan_get`](crate::Repo::plan_get)): which contents
//!   are wanted, by which files, held by whom; what is already here whole
//!   (copied here, not fetched);
//! * one task per large content ([`large`](super::large), a few at a time):
//!   its manifest ([`manifest`](super::manifest): only the pages that differ
//!   from the version held here), its part file in staging (resumed), the
//!   chunks found locally, then its missing chunks queued as runs for the
//!   lanes;
//! * the [`schedule`](super::schedule) and one [`lane`](super::lane) per
//!   reachable holder, which fetch and check the bytes;
//! * the [`writer`](super::writer) thread, which writes them to staging;
//! * the [`install`](super::install) thread, which moves verified contents
//!   into the working tree and records them, a group at a time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio::sync::{mpsc, Semaphore};

use super::install::{self, Ready};
use super::lane::Lane;
use super::large::fetch_large;
use super::local::LocalCopies;
use super::schedule::{Schedule, SmallContent};
use super::staging::{self, StagingLock};
use super::writer::{self, WriteOp};
use super::{GetReport, Holders, Shared, TransferProgress};
use crate::model::{ContentHash, NodeId, Placed};
use crate::net::PeerConnection;
use crate::proto::MAX_WHOLE_FILE;
use crate::{Error, GetPlan, WantedContent as Wanted};

/// Large contents prepared (manifest, staging) at once: the next one's
/// manifest is fetched while the previous one's chunks arrive.
const LARGE_AT_ONCE: usize = 3;

/// Everything one `get` shares between its tasks.
pub(super) struct Context {
    pub(super) staging: PathBuf,
    pub(super) copies: LocalCopies,
    /// The repository's chunk sizes, which bound fetched manifests.
    pub(super) chunking: crate::chunk::ChunkParams,
    pub(super) schedule: Arc<Schedule>,
    pub(super) conns: HashMap<NodeId, PeerConnection>,
    pub(super) writer: mpsc::Sender<WriteOp>,
    pub(super) ready: std::sync::mpsc::Sender<Ready>,
    pub(super) shared: Arc<Shared>,
    pub(super) progress: Arc<dyn TransferProgress>,
    /// Content bytes received (see [`Holders::rate_limit`]).
    pub(super) receiving: super::RateLimit,
    pub(super) next_key: AtomicU64,
    /// The part files staging held when the get began, by content, with
    /// their sizes: what an earlier get fetched and did not install.
    pub(super) staged: HashMap<ContentHash, u64>,
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
    let (wanted, chunking) = (plan.contents, plan.chunking);
    let mut copies = LocalCopies::index(&root, plan.local_manifests, plan.local_files);
    copies.add_in_place(&wanted);
    progress.start(
        wanted.iter().map(|w| w.targets.len() as u64).sum(),
        wanted.iter().map(|w| w.size).sum(),
    );
    let shared = Arc::new(Shared::default());

    // A connection to every holder of something wanted.
    let mut needed: Vec<NodeId> = wanted.iter().flat_map(|w| w.holders.clone()).collect();
    needed.sort();
    needed.dedup();
    let mut conns = HashMap::new();
    let mut unreachable = HashMap::new();
    holders.connect_all(&needed).await;
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

    // The threads that write and install.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let installer = {
        let (root, shared, schedule) = (root.clone(), shared.clone(), schedule.clone());
        std::thread::spawn(move || {
            // The installer ends last (after the writer and the lanes, even
            // if this future is dropped): the staging folder is ours until
            // then.
            let _held = staging_lock;
            let result = install::run(&root, ready_rx, |done| shared.installed(done));
            if let Err(e) = &result {
                if e.stops_writes() {
                    schedule.abort(&e.to_string());
                }
            }
            result
        })
    };
    let (write_tx, write_rx) = mpsc::channel(writer::QUEUE);
    let writer = {
        let (staging, ready) = (staging.clone(), ready_tx.clone());
        let (shared, schedule) = (shared.clone(), schedule.clone());
        std::thread::spawn(move || {
            writer::run(&staging, write_rx, ready, |targets, error| {
                let why = write_failed(&shared, &schedule, error);
                for target in targets {
                    shared.fail(format!("{}: {why}", target.path));
                }
            })
        })
    };

    let staged = staging::staged_files(&staging);
    let ctx = Arc::new(Context {
        staging,
        copies,
        chunking,
        schedule: schedule.clone(),
        conns,
        writer: write_tx,
        ready: ready_tx,
        shared: shared.clone(),
        progress: progress.clone(),
        receiving: holders.receiving.clone(),
        next_key: AtomicU64::new(0),
        staged,
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
                receiving: ctx.receiving.clone(),
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
    let installed = match joined {
        Ok((true, Ok(result))) => result,
        Ok((false, _)) => return Err(Error::ThreadStopped("writes to staging")),
        _ => return Err(Error::ThreadStopped("installs files")),
    };
    // The first full disk met in staging says more than what the installer
    // met after it (the same disk, as the state database).
    if let Some(stopped) = shared.take_stopped() {
        return Err(stopped);
    }
    installed?;
    Ok(shared.report())
}

/// A write to staging failed with `error`: returns the reason to give its
/// files. A full or read-only disk also stops the get, since every write
/// after it would fail too: the holders are let go, and the get ends with
/// that error once what is complete is installed (what is staged stays, for
/// the next get to resume).
pub(super) fn write_failed(shared: &Shared, schedule: &Schedule, error: Error) -> String {
    let why = error.to_string();
    if error.stops_writes() {
        schedule.abort(&why);
        shared.stop(error);
    }
    why
}

pub(super) fn fail_targets(ctx: &Context, targets: &[Placed], why: &str) {
    for target in targets {
        ctx.shared.fail(format!("{}: {why}", target.path));
    }
}

/// Stages a content held here whole without the network: empty, staged
/// whole by an earlier `get` that stopped before installing it, or under
/// another path. Returns whether it did.
async fn copy_whole(ctx: &Arc<Context>, want: &Wanted) -> bool {
    let empty = want.size == 0 && want.hash == ContentHash::from(blake3::hash(&[]));
    // A large content's part file is resumed chunk by chunk instead.
    let staged_before =
        want.size <= MAX_WHOLE_FILE && ctx.staged.get(&want.hash) == Some(&want.size);
    let source = ctx.copies.whole(want.hash).map(Path::to_path_buf);
    if source.is_none() && !empty && !staged_before {
        return false;
    }
    let (dir, hash) = (ctx.staging.clone(), want.hash);
    let part = staging::part_path(&dir, hash);
    let staged = tokio::task::spawn_blocking(move || -> std::io::Result<Option<PathBuf>> {
        // Checked: a get killed while writing it left it short or torn.
        if staged_before && staging::hash_file(&part)? == hash {
            return Ok(Some(part));
        }
        if empty {
            return writer::stage_whole(&dir, hash, &[]).map(Some);
        }
        let Some(source) = source else {
            return Ok(None);
        };
        // Copied, then checked: the source may have changed since recorded.
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
