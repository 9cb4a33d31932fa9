//! The live node's loop: the async shell around [`Schedule`]. It turns the
//! inbox's events into schedule events, runs the actions the schedule asks
//! for (dial, sync, notify) as tasks on the serving endpoint, feeds their
//! outcomes back, and keeps held files current through [`fetch`](super::fetch).

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use super::fetch::keep_fetching;
use super::local::notice_local_changes;
use super::schedule::{Action, Outcome, Schedule};
use super::{Inbox, News, StatusBoard};
use crate::model::{NodeId, STATE_DIR};
use crate::net::{Membership, NetError, Node, PeerConnection};
use crate::node::read_state;
use crate::proto::{Request, Response};
use crate::repo::{CommitOptions, Config};
use crate::scan::NoProgress;
use crate::store::{PeerRecord, Store, DB_FILE};
use crate::Repo;

/// How often the trusted peers are read again (a `harmony peer add` while
/// serving is dialed within this).
const PEERS_EVERY: Duration = Duration::from_secs(10);

/// What a serving location runs besides answering requests.
pub struct Live {
    /// The location.
    pub root: PathBuf,
    /// The serving endpoint: connections to peers go out from its port.
    pub node: Arc<Node>,
    /// Where the router, the watcher and discovery raise events.
    pub inbox: Inbox,
    /// The location's `config.toml`, a new value at each reload.
    pub config: watch::Receiver<Config>,
    /// What `harmony status` shows.
    pub status: StatusBoard,
}

/// How a live sync ended, when it did not fail.
enum Synced {
    /// This location's state was already the one the peer's notice
    /// announced: no session was needed.
    Current,
    /// Both locations are empty: nothing was exchanged.
    BothEmpty,
    /// Synced until settled; `changed` when it changed this location.
    Settled { changed: bool },
}

/// Why a dial failed, and whether because the peer's port is closed.
struct DialFailed {
    reason: String,
    port_closed: bool,
}

/// How a task of the loop ended.
enum Done {
    Dialed(NodeId, Result<PeerConnection, DialFailed>),
    Synced(Action, Result<Synced, String>),
    Notified(NodeId, Result<(), String>),
}

impl Live {
    /// Runs until `stop` completes; then closes its connections. A task
    /// cut by the stop leaves nothing half done (each sync batch and each
    /// fetched file is its own transaction).
    pub async fn run(mut self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut peers = self.read_peers().await;
        let sync_interval = self.config.borrow().sync_interval;
        let mut schedule = Schedule::new(
            peers.keys().copied(),
            sync_interval,
            rand::random(),
            Instant::now(),
        );
        let fetch_wanted = Arc::new(Notify::new());
        let fetcher = tokio::spawn(keep_fetching(
            self.root.clone(),
            fetch_wanted.clone(),
            self.inbox.clone(),
            self.status.clone(),
            self.node.config().handshake_timeout,
        ));
        // What this location holds may be outdated since the last run.
        fetch_wanted.notify_one();
        let local = tokio::spawn(notice_local_changes(self.root.clone(), self.inbox.clone()));
        let accepted = tokio::spawn(reachable_on_accept(
            self.node.subscribe(),
            self.inbox.clone(),
        ));
        let mut links: HashMap<NodeId, Arc<PeerConnection>> = HashMap::new();
        let mut tasks: JoinSet<Done> = JoinSet::new();
        let mut reread = tokio::time::interval(PEERS_EVERY);
        loop {
            for action in schedule.poll(Instant::now()) {
                self.start(action, &peers, &links, &mut tasks);
            }
            let due = schedule.next_due();
            let wait = async move {
                match due {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut stop => break,
                news = self.inbox.take() => {
                    let News { local, merged_from, noticed, reachable } = news;
                    let now = Instant::now();
                    if local || !merged_from.is_empty() {
                        refresh_membership(&self.root, &self.node).await;
                    }
                    if local {
                        schedule.local_changed(None, now);
                    }
                    // What the rules want may change with any change of
                    // the state, here or merged.
                    if local || !merged_from.is_empty() {
                        fetch_wanted.notify_one();
                    }
                    for peer in merged_from {
                        schedule.local_changed(Some(peer), now);
                    }
                    for (peer, digest) in noticed {
                        schedule.noticed(peer, digest, now);
                    }
                    if !reachable.is_empty() {
                        // A moved peer's new address, a new peer.
                        peers = self.read_peers().await;
                        schedule.set_peers(peers.keys().copied(), now);
                    }
                    for peer in reachable {
                        schedule.reachable(peer, now);
                    }
                }
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    let Ok(done) = done else { continue };
                    self.finished(done, &peers, &mut schedule, &mut links, &fetch_wanted);
                }
                _ = reread.tick() => {
                    peers = self.read_peers().await;
                    schedule.set_peers(peers.keys().copied(), Instant::now());
                    links.retain(|id, _| peers.contains_key(id));
                }
                Ok(()) = self.config.changed() => {
                    let interval = self.config.borrow().sync_interval;
                    schedule.set_sync_interval(interval, Instant::now());
                }
                _ = wait => {}
            }
        }
        tasks.abort_all();
        fetcher.abort();
        local.abort();
        accepted.abort();
        for conn in links.values() {
            conn.close();
        }
    }

    /// The trusted peers, by node id (none when the state cannot be read:
    /// said once per read).
    async fn read_peers(&self) -> HashMap<NodeId, PeerRecord> {
        let peers = read_state(&self.root, Store::peers)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!("cannot read the trusted peers: {e}");
                Vec::new()
            });
        let named: Vec<(String, NodeId)> =
            peers.iter().map(|p| (p.name.clone(), p.node_id)).collect();
        self.status.set_peers(&named);
        peers.into_iter().map(|p| (p.node_id, p)).collect()
    }

    /// Starts `action` as a task.
    fn start(
        &self,
        action: Action,
        peers: &HashMap<NodeId, PeerRecord>,
        links: &HashMap<NodeId, Arc<PeerConnection>>,
        tasks: &mut JoinSet<Done>,
    ) {
        match action {
            Action::Dial(id) => {
                let Some(peer) = peers.get(&id).cloned() else {
                    return;
                };
                let node = self.node.clone();
                tasks.spawn(async move {
                    let dialed = match super::super::resolve(&peer).await {
                        Ok(addr) => {
                            node.connect(addr, peer.node_id, &peer.name)
                                .await
                                .map_err(|e| DialFailed {
                                    port_closed: matches!(e, NetError::PortClosed { .. }),
                                    reason: e.to_string(),
                                })
                        }
                        Err(e) => Err(DialFailed {
                            reason: e.to_string(),
                            port_closed: false,
                        }),
                    };
                    Done::Dialed(id, dialed)
                });
            }
            Action::Sync(id) | Action::SyncNoticed(id, _) => {
                let Some(conn) = links.get(&id).cloned() else {
                    return;
                };
                let root = self.root.clone();
                let commit_first = !self.config.borrow().watch;
                let node = self.node.clone();
                tasks.spawn(async move {
                    if let Action::SyncNoticed(_, digest) = action {
                        if read_state(&root, Store::state_digest).await == Ok(digest) {
                            return Done::Synced(action, Ok(Synced::Current));
                        }
                    }
                    let synced = sync(&conn, &root, commit_first).await;
                    if let Ok(Synced::Settled { changed: true }) = synced {
                        refresh_membership(&root, &node).await;
                    }
                    Done::Synced(action, synced)
                });
            }
            Action::Notify(id) => {
                let Some(conn) = links.get(&id).cloned() else {
                    return;
                };
                let root = self.root.clone();
                tasks.spawn(async move { Done::Notified(id, notify(&conn, root).await) });
            }
        }
    }

    /// Feeds a finished task back into the schedule.
    fn finished(
        &self,
        done: Done,
        peers: &HashMap<NodeId, PeerRecord>,
        schedule: &mut Schedule,
        links: &mut HashMap<NodeId, Arc<PeerConnection>>,
        fetch_wanted: &Notify,
    ) {
        let now = Instant::now();
        let name = |id: &NodeId| {
            peers
                .get(id)
                .map_or_else(|| id.to_string(), |p| p.name.clone())
        };
        let outcome = |ok: bool| if ok { Outcome::Done } else { Outcome::Failed };
        match done {
            Done::Dialed(id, dialed) => {
                self.status.connected(&name(&id), dialed.is_ok());
                let ended = match dialed {
                    Ok(conn) => {
                        tracing::info!("connected to {}", name(&id));
                        links.insert(id, Arc::new(conn));
                        Outcome::Done
                    }
                    Err(failed) => {
                        tracing::debug!("cannot reach {}: {}", name(&id), failed.reason);
                        if failed.port_closed {
                            Outcome::NotServing
                        } else {
                            Outcome::Failed
                        }
                    }
                };
                schedule.dialed(id, ended, now);
            }
            Done::Synced(action, synced) => {
                let id = action.peer();
                let ended = match synced {
                    Ok(Synced::Current) => Outcome::Done,
                    Ok(Synced::Settled { changed }) => {
                        if changed {
                            schedule.local_changed(Some(id), now);
                            fetch_wanted.notify_one();
                        }
                        let said = if changed { "ok, changes here" } else { "ok" };
                        self.status.synced(&name(&id), said.into());
                        Outcome::Done
                    }
                    Ok(Synced::BothEmpty) => {
                        tracing::debug!(
                            "{} and this location are both empty; connecting again when either has news",
                            name(&id)
                        );
                        self.status
                            .synced(&name(&id), "waiting: both locations are empty".into());
                        Outcome::BothEmpty
                    }
                    Err(e) => {
                        tracing::info!("sync with {} failed: {e}", name(&id));
                        self.status.synced(&name(&id), format!("failed: {e}"));
                        Outcome::Failed
                    }
                };
                self.lost_unless(ended == Outcome::Done, id, &name(&id), links);
                schedule.exchanged(id, action, ended, now);
            }
            Done::Notified(id, notified) => {
                if let Err(e) = &notified {
                    tracing::info!("cannot tell {} of a change: {e}", name(&id));
                }
                let ok = notified.is_ok();
                self.lost_unless(ok, id, &name(&id), links);
                schedule.exchanged(id, Action::Notify(id), outcome(ok), now);
            }
        }
    }

    /// After a failed exchange the connection is taken for lost.
    fn lost_unless(
        &self,
        ok: bool,
        id: NodeId,
        name: &str,
        links: &mut HashMap<NodeId, Arc<PeerConnection>>,
    ) {
        if !ok {
            if let Some(conn) = links.remove(&id) {
                conn.close();
            }
            self.status.connected(name, false);
        }
    }
}

/// A peer that connected here and serves is reachable: the live node dials
/// it back now instead of waiting out a backoff. A one-shot command's
/// connection (`sync`, `get`: its `Hello` says it does not serve) proves
/// nothing about the peer's own port; dialing it back cost 3.8 KB of
/// Initials and ICMP errors per `sync`, more than the sync itself.
async fn reachable_on_accept(
    mut events: tokio::sync::broadcast::Receiver<crate::net::ServerEvent>,
    inbox: Inbox,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match events.recv().await {
            Ok(crate::net::ServerEvent::Accepted {
                node_id,
                serves: true,
                ..
            }) => inbox.reachable(node_id),
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

/// Brings the membership this node announces in each `Hello` up to date
/// with its state: a fresh location stops being fresh with its first commit
/// or merge, and may have joined a repository as a sync's client. Else a
/// fresh peer would take both for empty, and neither would join the other
/// (the join rule).
async fn refresh_membership(root: &std::path::Path, node: &Node) {
    let membership = node.membership();
    let db = root.join(STATE_DIR).join(DB_FILE);
    // Read and written under the lock: the sync server's own update after a
    // join (under the same lock) is never overwritten by an older read.
    let _ = tokio::task::spawn_blocking(move || -> Result<(), crate::store::StoreError> {
        let mut announced = membership.write().unwrap_or_else(|e| e.into_inner());
        let store = Store::open(&db)?;
        *announced = Membership {
            repo_id: store.settings()?.repo_id,
            fresh: store.is_fresh()?,
        };
        Ok(())
    })
    .await;
}

/// Whether the location at `root` is still fresh (false when unreadable:
/// the sync then says what is wrong).
async fn is_fresh(root: &Path) -> bool {
    read_state(root, Store::is_fresh).await == Ok(true)
}

/// Syncs with the peer of `conn` until settled, committing first when no
/// watcher does it.
async fn sync(conn: &PeerConnection, root: &Path, commit_first: bool) -> Result<Synced, String> {
    if commit_first {
        let at = root.to_path_buf();
        let committed = tokio::task::spawn_blocking(move || {
            Repo::open(&at)?.commit(&CommitOptions::default(), &NoProgress)
        })
        .await
        .map_err(|e| e.to_string())?;
        if let Err(e) = committed {
            tracing::warn!(
                "not committing before the sync with {}: {e}",
                conn.peer().name
            );
        }
    }
    // Two empty locations do not sync on their own: by the join rule the
    // client would join the server's repository, and starting three nodes,
    // two of them empty, could bind the empty two into a repository of their
    // own that the third's could never meet. The peer may have recorded a
    // file since its `Hello` said it was empty: the connection is closed and
    // made again, with new `Hello`s, when either side has news.
    if conn.peer().fresh && is_fresh(root).await {
        return Ok(Synced::BothEmpty);
    }
    let (reports, ended) = super::super::sync_until_settled(conn, root).await;
    let changed = reports.iter().any(|r| r.changed > 0 || r.left_news());
    for report in &reports {
        tracing::info!(
            "synced with {}: sent {}, received {} entries, {} changed here",
            report.peer,
            report.entries_sent,
            report.entries_received,
            report.changed
        );
    }
    ended
        .map(|()| Synced::Settled { changed })
        .map_err(|e| e.to_string())
}

/// Tells the peer of `conn` this location's digest. A peer too old to know
/// the notice answers `UNSUPPORTED`: then it learns at the periodic sync.
async fn notify(conn: &PeerConnection, root: PathBuf) -> Result<(), String> {
    let digest = read_state(&root, Store::state_digest).await?;
    match conn.request(&Request::Notify { digest }).await {
        Ok((Response::Noted, _)) => Ok(()),
        Ok((other, _)) => Err(format!("unexpected answer {other:?}")),
        Err(crate::net::NetError::Remote { code, .. })
            if code == crate::proto::ErrorCode::UNSUPPORTED =>
        {
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::ServerEvent;

    #[tokio::test]
    async fn only_a_serving_peer_that_connects_is_dialed_back() {
        let (events, receiver) = tokio::sync::broadcast::channel(8);
        let inbox = Inbox::default();
        let (one_shot, serving) = (NodeId([1; 32]), NodeId([2; 32]));
        for (node_id, serves) in [(one_shot, false), (serving, true)] {
            let name = String::new();
            events
                .send(ServerEvent::Accepted {
                    node_id,
                    name,
                    serves,
                })
                .unwrap();
        }
        drop(events);
        reachable_on_accept(receiver, inbox.clone()).await;
        let news = inbox.take().await;
        assert_eq!(news.reachable.into_iter().collect::<Vec<_>>(), [serving]);
    }
}
