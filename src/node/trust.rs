//! The trust list and repository membership of a serving location, read from
//! its state database.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use crate::model::STATE_DIR;
use crate::net::{Membership, TrustList, TrustSnapshot, TrustSource};
use crate::store::{Store, StoreError, DB_FILE};
use crate::Repo;

/// The peers the location `repo` trusts now, as a trust list.
pub fn trusted(repo: &Repo) -> crate::Result<TrustList> {
    let peers = repo.store().peers()?;
    Ok(TrustList::from_peers(
        peers.into_iter().map(|p| (p.node_id, p.name)),
    ))
}

/// The state database of a location to serve could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open {}", path.display())]
pub struct OpenError {
    path: PathBuf,
    #[source]
    source: StoreError,
}

/// A trust source for the location at `root`: the trust list, whether an
/// invite is pending (`harmony invite`: guests may then connect to pair),
/// and the repository membership (which changes when a fresh location
/// joins a repository) are re-read from the state database before each
/// new connection's handshake, on a database connection of its own, so
/// that `peer add`, `peer remove` and `invite` apply while serving. It keeps `membership`
/// (the serving node's, see `Node::membership`) current as it reads.
pub fn trust_source(
    root: &Path,
    membership: Arc<RwLock<Membership>>,
) -> Result<TrustSource, OpenError> {
    let path = root.join(STATE_DIR).join(DB_FILE);
    let store = Store::open(&path).map_err(|source| OpenError { path, source })?;
    let store = Mutex::new(store);
    Ok(Arc::new(move || {
        let store = store.lock().unwrap_or_else(|e| e.into_inner());
        let current = Membership {
            repo_id: store.settings()?.repo_id,
            fresh: store.is_fresh()?,
        };
        *membership.write().unwrap_or_else(|e| e.into_inner()) = current;
        Ok(TrustSnapshot {
            peers: store
                .peers()?
                .into_iter()
                .map(|p| (p.node_id, p.name))
                .collect(),
            guests: store.invite_pending(crate::repo::now_ms())?,
        })
    }))
}
