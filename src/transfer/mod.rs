//! Content transfer: `get` fetches the newest content of files from the
//! locations holding it, chunk by chunk, verified, resumable, reusing every
//! chunk already here; `drop` frees a local copy once another location
//! confirms it holds one. [`serve`] answers the other side.

mod get;
mod install;
mod lane;
mod large;
mod local;
mod manifest;
mod misbehaved;
mod paging;
mod pieces;
mod rate;
mod refine;
mod schedule;
pub mod serve;
mod staging;
mod writer;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde::Serialize;

pub use get::{get, GetLock};
pub use misbehaved::Misbehaved;
pub use rate::{RateLimit, TokenBucket};
pub use staging::STAGING_DIR;

use crate::model::{ContentHash, FileEntry, NodeId, Resolved};
use crate::net::{NetError, Node, PeerConnection};
use crate::proto::{Request, Response};
use crate::store::PeerRecord;

/// Told how a `get` advances (e.g. to draw a progress bar), from several
/// tasks at once.
pub trait TransferProgress: Send + Sync {
    /// The get has `files` files of `bytes` bytes in all to fetch.
    fn start(&self, files: u64, bytes: u64);
    /// `bytes` more bytes arrived and were verified.
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

/// The report, filled in by the tasks and threads of one `get`.
#[derive(Default)]
struct Shared {
    report: Mutex<GetReport>,
    /// The full or read-only disk that stopped the get, which then ends
    /// with this error instead of a report that fails every file after it.
    stopped: Mutex<Option<crate::Error>>,
}

impl Shared {
    fn with(&self, f: impl FnOnce(&mut GetReport)) {
        f(&mut self.report.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Keeps `error` as the reason the get stopped, unless one is kept.
    fn stop(&self, error: crate::Error) {
        self.stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(error);
    }

    fn take_stopped(&self) -> Option<crate::Error> {
        self.stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    fn fetched(&self, holder: &str, bytes: u64) {
        self.with(|r| {
            r.bytes_fetched += bytes;
            *r.per_holder.entry(holder.to_owned()).or_default() += bytes;
        });
    }

    fn reused(&self, bytes: u64) {
        self.with(|r| r.bytes_reused += bytes);
    }

    fn fail(&self, why: String) {
        self.with(|r| r.failed.push(why));
    }

    fn installed(&self, done: install::Installed) {
        self.with(|r| {
            r.files += done.files;
            r.failed.extend(done.failed);
        });
    }

    fn report(&self) -> GetReport {
        self.report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Why a holder gave no usable answer to a request.
enum AskError {
    /// It cannot serve it now (refused, unreachable, lost): ask elsewhere.
    Unavailable(String),
    /// It sent something false or broken: dropped for this transfer.
    Lied(Misbehaved),
}

/// Sends `request` to `conn`: an `Error` answer or a failed connection is
/// `Unavailable`, a broken frame a lie.
async fn ask(
    conn: &PeerConnection,
    request: &Request,
) -> Result<(Response, crate::net::FramedStream), AskError> {
    // `request` turns an `Error` answer into `NetError::Remote`.
    Ok(conn.request(request).await?)
}

impl From<NetError> for AskError {
    /// A broken frame is a lie; a refusal, a reset or a lost connection is
    /// not. Worded without the peer's name, which callers put first.
    fn from(e: NetError) -> Self {
        match e {
            NetError::Protocol { .. } => AskError::Lied(Misbehaved::BrokenFrame(e.reason())),
            other => AskError::Unavailable(other.reason()),
        }
    }
}

/// The newest content of `entry`: hash, size and mtime; `None` when it is
/// deleted or in conflict.
fn newest(entry: &FileEntry) -> Option<(ContentHash, u64, i64)> {
    match entry.resolved() {
        Resolved::File(v) => v.value.bytes(),
        _ => None,
    }
}

/// Reaches holders by node id: the trusted peers, each connected once, on
/// first need. A holder this location does not trust is never contacted.
pub struct Holders {
    /// Shared with the connection attempts under way ([`Holders::connect_all`]).
    node: Arc<Node>,
    peers: HashMap<NodeId, PeerRecord>,
    conns: HashMap<NodeId, Result<PeerConnection, String>>,
    /// Content bytes a get through these holders receives.
    receiving: RateLimit,
}

impl Holders {
    /// Reaches `peers` through `node`; nothing is connected until a holder is asked for.
    pub fn new(node: Node, peers: Vec<PeerRecord>) -> Self {
        Holders {
            node: Arc::new(node),
            peers: peers.into_iter().map(|p| (p.node_id, p)).collect(),
            conns: HashMap::new(),
            receiving: RateLimit::default(),
        }
    }

    /// Receives content (chunks, whole files) from all holders together at
    /// most as fast as `limit` allows (no limit by default). One get runs
    /// per location at a time, so a limit given to its holders is the
    /// location's; a limit shared with other holders is shared with them.
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.receiving = limit;
        self
    }

    /// The name this location knows `id` by, if it trusts it.
    pub fn name(&self, id: &NodeId) -> Option<&str> {
        self.peers.get(id).map(|p| p.name.as_str())
    }

    /// A connection to `id` (a handle sharing the one connection), or why
    /// there is none.
    pub async fn conn(&mut self, id: NodeId) -> Result<PeerConnection, String> {
        if !self.conns.contains_key(&id) {
            let result = match self.peers.get(&id) {
                None => Err(format!("node {} is not a trusted peer", id.short())),
                Some(peer) => connect(&self.node, peer).await,
            };
            self.conns.insert(id, result);
        }
        self.conns[&id].clone()
    }

    /// Connects to each of `ids` not asked before, all at once: a holder
    /// that does not answer then costs one handshake timeout in all, not
    /// one each. [`Holders::conn`] returns the outcomes.
    pub async fn connect_all(&mut self, ids: &[NodeId]) {
        let mut attempts = tokio::task::JoinSet::new();
        for id in ids {
            if self.conns.contains_key(id) {
                continue;
            }
            if let Some(peer) = self.peers.get(id).cloned() {
                let node = self.node.clone();
                attempts.spawn(async move { (peer.node_id, connect(&node, &peer).await) });
            }
        }
        while let Some(done) = attempts.join_next().await {
            if let Ok((id, result)) = done {
                self.conns.insert(id, result);
            }
        }
    }

    /// Closes every connection.
    pub async fn close(self) {
        for conn in self.conns.values().flatten() {
            conn.close();
        }
        self.node.shutdown().await;
    }
}

async fn connect(node: &Node, peer: &PeerRecord) -> Result<PeerConnection, String> {
    let addr = tokio::net::lookup_host(&peer.addr)
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", peer.addr))?
        .next()
        .ok_or_else(|| format!("{} resolves to nothing", peer.addr))?;
    node.connect(addr, peer.node_id, &peer.name)
        .await
        .map_err(|e| e.to_string())
}

/// Asks `conn` whether it holds `hash` now (checked on its disk).
pub async fn confirms(
    conn: &PeerConnection,
    hash: crate::model::ContentHash,
) -> Result<bool, NetError> {
    match conn.request(&Request::Has { hash }).await?.0 {
        Response::Has(held) => Ok(held),
        other => Err(NetError::Unexpected {
            peer: conn.peer().name.clone(),
            what: format!("{other:?} in answer to Has"),
        }),
    }
}

/// Asks `others`, one by one, whether they hold `hash` now, until `needed`
/// confirmed it; returns how many did and why the others did not.
async fn confirm_copies(
    holders: &mut Holders,
    others: &[NodeId],
    hash: crate::model::ContentHash,
    needed: usize,
) -> (usize, Vec<String>) {
    let mut confirmed = 0;
    let mut why_not = Vec::new();
    for other in others {
        if confirmed >= needed {
            break;
        }
        match holders.conn(*other).await {
            Ok(conn) => match confirms(&conn, hash).await {
                Ok(true) => confirmed += 1,
                Ok(false) => why_not.push(format!("{} no longer holds it", conn.peer().name)),
                Err(e) => why_not.push(e.to_string()),
            },
            Err(e) => why_not.push(e),
        }
    }
    (confirmed, why_not)
}

/// What `drop` did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DropReport {
    /// Files whose local copy was removed.
    pub dropped: Vec<crate::model::RepoPath>,
    /// Files kept, each with the reason.
    pub refused: Vec<String>,
}

/// Removes the local copies of the files `ids`, each only after as many
/// other locations as the repository's numcopies confirmed (live, on their
/// disks) that they hold the same content, unless `force`. The files stay in
/// the repository; the change of holder syncs like any change.
pub async fn drop_files(
    root: &std::path::Path,
    ids: &[crate::model::FileId],
    holders: &mut Holders,
    force: bool,
) -> Result<DropReport, crate::Error> {
    let mut repo = crate::Repo::open(root)?;
    let me = repo.node_id();
    let numcopies = repo.numcopies()?;
    let mut report = DropReport::default();
    for id in ids {
        let (Some(entry), Some(record)) = (
            repo.store().entry(*id)?,
            repo.store().local_file_by_id(*id)?,
        ) else {
            continue;
        };
        if !crate::scan::still_as_recorded(root, &record)
            .map_err(crate::Error::io("read", record.path.to_path(root)))?
        {
            report.refused.push(format!(
                "{}: changed here since the last commit; commit it first",
                record.path
            ));
            continue;
        }
        if !force {
            // Any location holding these bytes, for whichever file.
            let others: Vec<NodeId> = repo
                .store()
                .holders_of_content(record.hash)?
                .into_iter()
                .filter(|n| *n != me)
                .collect();
            let (confirmed, why_not) =
                confirm_copies(holders, &others, record.hash, numcopies as usize).await;
            if !crate::model::preferred::may_drop(confirmed, numcopies) {
                let needed = if numcopies == 1 {
                    "no other location confirmed it holds this content".to_owned()
                } else {
                    format!(
                        "numcopies is {numcopies} and {confirmed} other location{} confirmed {} this content",
                        if confirmed == 1 { "" } else { "s" },
                        if confirmed == 1 { "it holds" } else { "they hold" },
                    )
                };
                report.refused.push(format!(
                    "{}: {needed}{}; nothing removed (`--force` removes it anyway)",
                    record.path,
                    if why_not.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", why_not.join("; "))
                    }
                ));
                continue;
            }
        }
        let path = record.path.to_path(root);
        let tree = crate::tree::Tree::new(root);
        tree.remove_file(&record.path)
            .map_err(crate::Error::io("remove", &path))?;
        tree.remove_empty_parents(&record.path);
        let writer = repo.store_mut().write()?;
        writer.remove_local_file(&record.path)?;
        let counter = writer.next_write_counter()?;
        let mut current = entry.clone();
        current.set_holding(me, None, counter);
        writer.put_entry(&current)?;
        writer.commit()?;
        report.dropped.push(record.path);
    }
    Ok(report)
}
