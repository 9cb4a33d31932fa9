//! The async shell of a sync session: runs [`super`]'s steps over one
//! request stream, both directions at once, with the database work on
//! blocking threads.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use serde::Serialize;

use super::{begin, check_upto, collect_tombstones, hello, merge_batches, Incoming, Outgoing};
use crate::model::{FileId, NodeId, STATE_DIR};
use crate::net::record_proof::RecordFault;
use crate::net::{
    FrameReceiver, FrameSender, FramedStream, Membership, NetError, PeerConnection, PeerInfo,
};
use crate::proto::{join, Batch, ErrorCode, Join, Request, Response, Side, SyncHello};
use crate::scan::NoProgress;
use crate::store::{Snapshot, Store, StoreError, DB_FILE};
use crate::{ApplyReport, CommitOptions, Repo};

/// Why a sync session failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The connection failed or the peer broke the protocol.
    #[error(transparent)]
    Net(#[from] NetError),
    /// This location could not be read or changed.
    #[error(transparent)]
    Repo(#[from] crate::Error),
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The peer belongs to another repository and this location, past its
    /// first sync or holding state, may no longer join it.
    #[error("cannot join the repository of peer {peer}: this location already has state of its own; a location joins a repository only while it is empty and has never synced")]
    CannotJoin {
        /// The peer whose repository differs.
        peer: String,
    },
    /// The server answered for another repository than this location's,
    /// when by the join rule it should have joined this one (its state
    /// changed between its decision and its answer, or it broke the rule).
    #[error("peer {peer} answered for repository {theirs}, this location is in repository {ours}; nothing was exchanged; sync again")]
    RepositoryDiffers {
        /// The peer.
        peer: String,
        /// The repository the peer's answer names.
        theirs: crate::model::RepoId,
        /// This location's repository.
        ours: crate::model::RepoId,
    },
    /// A blocking task of the session failed.
    #[error("a sync worker failed: {0}")]
    Worker(String),
}

/// What one session did, seen from this side.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SessionReport {
    /// The peer's name.
    pub peer: String,
    /// The digests were equal: nothing was exchanged beyond the hellos.
    pub in_sync: bool,
    /// This location joined the peer's repository in this session.
    pub joined: bool,
    /// Entries this side sent.
    pub entries_sent: usize,
    /// Entries received from the peer.
    pub entries_received: usize,
    /// Holder slots this side sent in compact runs (entries that changed
    /// only in their slots).
    pub slots_sent: usize,
    /// Holder slots received in compact runs.
    pub slots_received: usize,
    /// Runs of the peer that could not be placed here (the entries differ
    /// here): the next session asks for its changes whole from there.
    pub runs_refused: usize,
    /// Entries that changed here (holder slots from runs included).
    pub changed: usize,
    /// Entries or records refused as malformed.
    pub rejected: usize,
    /// What the working tree got from the changes.
    pub applied: ApplyReport,
    /// Tombstones every node has seen, removed after the session.
    pub tombstones_collected: usize,
}

impl SessionReport {
    /// This side changed its own state after merging (a holder slot, by
    /// applying changes to the tree): the peer learns it in one more
    /// session; or it could not place some of the peer's holder runs,
    /// which one more session brings whole.
    pub fn left_news(&self) -> bool {
        let a = &self.applied;
        a.moved + a.deleted + a.copied_locally > 0 || self.runs_refused > 0
    }
}

/// Runs `f` on `value` on a blocking thread and gives `value` back.
async fn blocking<T, R>(
    mut value: T,
    f: impl FnOnce(&mut T) -> R + Send + 'static,
) -> Result<(T, R), SyncError>
where
    T: Send + 'static,
    R: Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let result = f(&mut value);
        (value, result)
    })
    .await
    .map_err(|e| SyncError::Worker(e.to_string()))
}

/// The session's snapshot of `repo`'s state ([`Store::open_snapshot`]),
/// taken before the hello: the hello and every batch sent describe one
/// state, whatever this or another session merges meanwhile.
async fn snapshot_of(repo: Repo) -> Result<(Repo, Snapshot), SyncError> {
    let (repo, snapshot) = blocking(repo, |r| {
        Store::open_snapshot(&r.root().join(STATE_DIR).join(DB_FILE))
    })
    .await?;
    Ok((repo, snapshot?))
}

/// Syncs the location at `root` with the peer at the other end of `conn`.
/// The caller commits first if it wants local changes included.
pub async fn sync_with(conn: &PeerConnection, root: PathBuf) -> Result<SessionReport, SyncError> {
    let peer = conn.peer().clone();
    let (_, opened) = blocking(root, |root| Repo::open(root)).await?;
    let (repo, snapshot) = snapshot_of(opened?).await?;
    let mine = hello(&snapshot, peer.node_id, peer.fresh)?;
    let mut stream = conn.open_session(&Request::Sync(mine.clone())).await?;
    // The server commits its tree before it answers: no time limit but the
    // connection's life.
    let theirs = match stream
        .recv_frame_after_work::<Response>()
        .await
        .map_err(|e| conn.explain(e))?
    {
        Response::Sync(theirs) => theirs,
        Response::Error { code, message } => {
            return Err(NetError::Remote {
                peer: peer.name,
                code,
                message,
            }
            .into())
        }
        other => {
            return Err(NetError::Unexpected {
                peer: peer.name,
                what: format!("{other:?} in answer to Sync"),
            }
            .into())
        }
    };
    let (repo, joined) = client_joins(repo, &peer, mine.membership, theirs.membership).await?;
    let mut report = exchange(&mut stream, repo, snapshot, &peer, mine, theirs).await?;
    // The server ends the stream once it has merged and applied all we sent,
    // which takes as long as its tree needs.
    stream.finish();
    stream.expect_end_after_work().await?;
    report.joined = joined;
    Ok(report)
}

/// The client's half of the join rule, on the memberships both hellos of
/// the session state (`ours` as sent, `theirs` as the server answered once
/// it had joined, if it did). Returns the location, in the server's
/// repository, and whether it joined it now. Dropping the stream on an
/// error ends the session before anything is merged on either side.
async fn client_joins(
    repo: Repo,
    peer: &PeerInfo,
    ours: Membership,
    theirs: Membership,
) -> Result<(Repo, bool), SyncError> {
    match join(Side::Client, ours, theirs) {
        Join::Stay if ours.repo_id == theirs.repo_id => Ok((repo, false)),
        // The server should have joined ours, and answered for another
        // repository: its state changed under the session.
        Join::Stay => Err(SyncError::RepositoryDiffers {
            peer: peer.name.clone(),
            theirs: theirs.repo_id,
            ours: ours.repo_id,
        }),
        Join::Refuse => Err(SyncError::CannotJoin {
            peer: peer.name.clone(),
        }),
        Join::JoinPeer => {
            let repo_id = theirs.repo_id;
            let (repo, joined) = blocking(repo, move |r| r.join_if_fresh(repo_id)).await?;
            if !joined? {
                return Err(SyncError::CannotJoin {
                    peer: peer.name.clone(),
                });
            }
            Ok((repo, true))
        }
    }
}

/// Both sides after the hellos: record them, then (digests differing) send
/// our batches while merging theirs, then apply what changed.
async fn exchange(
    stream: &mut FramedStream,
    repo: Repo,
    snapshot: Snapshot,
    peer: &PeerInfo,
    mine: SyncHello,
    theirs: SyncHello,
) -> Result<SessionReport, SyncError> {
    let peer_id = peer.node_id;
    let mut report = SessionReport {
        peer: peer.name.clone(),
        ..SessionReport::default()
    };
    let (mine2, theirs2) = (mine.clone(), theirs.clone());
    let (repo, in_sync) = blocking(repo, move |r| {
        begin(r.store_mut(), peer_id, &mine2, &theirs2)
    })
    .await?;
    let in_sync = in_sync?;
    if in_sync {
        report.in_sync = true;
        // Nothing new, but what an earlier, cut session merged (or what was
        // blocked) is applied now.
        let (_, result) = blocking(repo, |r| {
            let applied = if r.store().blocked()?.is_empty() {
                ApplyReport::default()
            } else {
                r.apply_remote(&[])?
            };
            Ok::<_, SyncError>((applied, collect_tombstones(r.store_mut())?))
        })
        .await?;
        (report.applied, report.tombstones_collected) = result?;
        return Ok(report);
    }
    let (sender, receiver) = stream.split();
    let outgoing = Outgoing::new(&mine, &theirs, peer_id);
    let incoming = Incoming::new(peer_id, &mine, &theirs);
    let (sent, (repo, received)) = tokio::try_join!(
        send_batches(sender, snapshot, outgoing, mine.seq),
        receive_batches(receiver, repo, peer, incoming),
    )?;
    if received.rejected > 0 {
        tracing::warn!(
            "peer {} sent {} entries or node records that were refused ({} of them credit this node with writes it never made)",
            peer.name,
            received.rejected,
            received.forged
        );
    }
    if let Some((node, fault)) = &received.first_unsigned {
        tracing::warn!(
            "peer {} sent {} node records that were refused: the record of node {node} {fault}",
            peer.name,
            received.unsigned,
        );
    }
    if received.runs_refused > 0 {
        tracing::info!(
            "{} holder runs of peer {} did not match the entries here; the next session asks for its changes whole",
            received.runs_refused,
            peer.name
        );
    }
    (report.entries_sent, report.slots_sent) = sent;
    report.entries_received = received.entries;
    report.slots_received = received.slots;
    report.runs_refused = received.runs_refused;
    report.changed = received.changed + received.slots_placed;
    report.rejected = received.rejected;
    let changed = received.to_apply;
    let (_, result) = blocking(repo, move |r| {
        let applied = r.apply_remote(&changed)?;
        let collected = collect_tombstones(r.store_mut())?;
        Ok::<_, SyncError>((applied, collected))
    })
    .await?;
    let (applied, collected) = result?;
    report.applied = applied;
    report.tombstones_collected = collected;
    Ok(report)
}

/// Sends the batches of `outgoing`, read from `snapshot` (a connection of
/// our own to the database), until the last (empty) batch, which goes up to
/// `my_seq`. Returns the entries and the holder slots sent.
async fn send_batches(
    sender: &mut FrameSender,
    snapshot: Snapshot,
    outgoing: Outgoing,
    my_seq: u64,
) -> Result<(usize, usize), SyncError> {
    let mut state = (snapshot, outgoing);
    let mut sent = (0, 0);
    loop {
        let (back, batch) = blocking(state, |(store, out)| out.next_batch(store)).await?;
        state = back;
        let Some(batch) = batch? else { break };
        sent.0 += batch.entries.len();
        sent.1 += batch.runs.iter().map(|r| r.counters.len()).sum::<usize>();
        let last = batch.is_last(my_seq);
        sender.send_frame(&batch).await?;
        if last {
            break;
        }
    }
    Ok(sent)
}

#[derive(Default)]
struct Received {
    entries: usize,
    /// Entries changed here.
    changed: usize,
    /// Those the apply step has work for.
    to_apply: Vec<FileId>,
    rejected: usize,
    forged: usize,
    unsigned: usize,
    first_unsigned: Option<(NodeId, RecordFault)>,
    slots: usize,
    slots_placed: usize,
    runs_refused: usize,
}

/// Batches waiting for the merger, at most: decoding the next batch overlaps
/// merging the previous one, and memory stays bounded (a few MiB).
const MERGE_QUEUE: usize = 4;

/// Merges the peer's batches as they arrive, on a blocking thread of its own
/// fed by this task, each batch in one transaction that also records how far
/// the peer's changes are merged (so a cut session resumes from there).
async fn receive_batches(
    receiver: &mut FrameReceiver,
    mut repo: Repo,
    peer_info: &PeerInfo,
    mut incoming: Incoming,
) -> Result<(Repo, Received), SyncError> {
    let their_seq = incoming.their_seq;
    let me = repo.node_id();
    let (queue, mut batches) = tokio::sync::mpsc::channel::<Batch>(MERGE_QUEUE);
    let merger = tokio::task::spawn_blocking(move || {
        let mut received = Received::default();
        while let Some(first) = batches.blocking_recv() {
            // What queued up while the last merge ran goes in one
            // transaction with this one.
            let mut group = vec![first];
            while let Ok(more) = batches.try_recv() {
                group.push(more);
            }
            received.entries += group.iter().map(|b| b.entries.len()).sum::<usize>();
            let merged = merge_batches(repo.store_mut(), me, &mut incoming, group)?;
            received.changed += merged.changed.len();
            received.to_apply.extend(merged.to_apply);
            received.rejected += merged.rejected;
            received.forged += merged.forged;
            received.unsigned += merged.unsigned;
            if received.first_unsigned.is_none() {
                received.first_unsigned = merged.first_unsigned;
            }
            received.slots += merged.slots;
            received.slots_placed += merged.slots_placed;
            received.runs_refused += merged.runs_refused;
        }
        Ok::<_, SyncError>((repo, received))
    });
    let fed = async {
        let mut upto = None;
        loop {
            let batch: Batch = receiver.recv_frame().await?;
            upto =
                Some(
                    check_upto(upto, &batch, their_seq).map_err(|source| NetError::Protocol {
                        peer: peer_info.name.clone(),
                        source,
                    })?,
                );
            let last = batch.is_last(their_seq);
            if queue.send(batch).await.is_err() {
                return Ok(()); // the merger stopped: its error says why
            }
            if last {
                return Ok::<_, SyncError>(());
            }
        }
    };
    let fed = fed.await;
    drop(queue);
    let merged = merger.await.map_err(|e| SyncError::Worker(e.to_string()))?;
    fed?;
    merged
}

/// The serving half of state sync for the location at `root`: answers a
/// peer's `Sync` request (the node's router hands it over).
pub struct SyncServer {
    root: PathBuf,
    membership: Arc<RwLock<Membership>>,
    commit_first: bool,
}

impl SyncServer {
    /// `membership` is the serving node's (see `Node::membership`): joining a
    /// repository updates it for later connections.
    pub fn new(root: PathBuf, membership: Arc<RwLock<Membership>>) -> Self {
        SyncServer {
            root,
            membership,
            commit_first: true,
        }
    }

    /// Whether each session starts with a commit of this location's working
    /// tree (the default), so that a peer's sync also picks up what changed
    /// here since the last commit.
    pub fn commit_first(mut self, yes: bool) -> Self {
        self.commit_first = yes;
        self
    }

    /// Opens the location, commits its tree (if asked), applies the join
    /// rule to the membership the client states in its hello (`theirs`):
    /// this location joins the client's repository if it is the fresh
    /// side. Then takes the session's snapshot and makes our hello.
    async fn prepare(
        &self,
        peer: &PeerInfo,
        theirs: Membership,
    ) -> Result<(Repo, Snapshot, SyncHello), SyncError> {
        let (_, opened) = blocking(self.root.clone(), |root| Repo::open(root)).await?;
        let mut repo = opened?;
        if self.commit_first {
            let (back, committed) =
                blocking(repo, |r| r.commit(&CommitOptions::default(), &NoProgress)).await?;
            repo = back;
            // A refused commit (e.g. the tree looks unmounted) leaves the
            // state as it was; the session goes on with that.
            if let Err(e) = committed {
                tracing::warn!("not committing before the sync with {}: {e}", peer.name);
            }
        }
        let ours = Membership {
            repo_id: repo.settings().repo_id,
            fresh: repo.store().is_fresh()?,
        };
        match join(Side::Server, ours, theirs) {
            Join::Stay => {}
            Join::Refuse => {
                return Err(SyncError::CannotJoin {
                    peer: peer.name.clone(),
                })
            }
            Join::JoinPeer => {
                let repo_id = theirs.repo_id;
                let (back, result) = blocking(repo, move |r| r.join_if_fresh(repo_id)).await?;
                repo = back;
                if !result? {
                    return Err(SyncError::CannotJoin {
                        peer: peer.name.clone(),
                    });
                }
                let mut membership = self.membership.write().unwrap_or_else(|e| e.into_inner());
                *membership = Membership {
                    repo_id,
                    fresh: false,
                };
            }
        }
        let (repo, snapshot) = snapshot_of(repo).await?;
        let mine = hello(&snapshot, peer.node_id, theirs.fresh)?;
        Ok((repo, snapshot, mine))
    }

    /// Answers the peer's `Sync` request (its hello `theirs`) on `stream`:
    /// our hello, then the exchange. A location that cannot take part (it
    /// cannot join, say) answers with a refusal (and no report).
    pub async fn serve(
        &self,
        peer: &PeerInfo,
        theirs: SyncHello,
        stream: &mut FramedStream,
    ) -> Result<Option<SessionReport>, NetError> {
        let (repo, snapshot, mine) = match self.prepare(peer, theirs.membership).await {
            Ok(prepared) => prepared,
            Err(e) => {
                tracing::warn!("cannot sync with {}: {e}", peer.name);
                let refusal = Response::Error {
                    code: ErrorCode::REFUSED,
                    message: crate::net::truncate_error_text(&e.to_string()),
                };
                return stream.send_frame(&refusal).await.map(|()| None);
            }
        };
        stream.send_frame(&Response::Sync(mine.clone())).await?;
        // From here on a failure resets the stream (the client sees the
        // session fail; what was merged so far stays merged).
        match exchange(stream, repo, snapshot, peer, mine, theirs).await {
            Ok(report) => {
                tracing::info!(
                    "synced with {}: sent {}, received {} entries, {} changed here",
                    peer.name,
                    report.entries_sent,
                    report.entries_received,
                    report.changed
                );
                Ok(Some(report))
            }
            Err(SyncError::Net(e)) => Err(e),
            Err(e) => Err(NetError::Unexpected {
                peer: peer.name.clone(),
                what: format!("sync failed here: {e}"),
            }),
        }
    }
}
