//! The set of node ids this node trusts, shared between the TLS verifier
//! (which runs synchronously inside rustls) and whoever keeps it current.
//!
//! `serve` keeps it current from the state database: the accept loop reloads
//! the `peers` table (on a separate SQLite connection) every time a new
//! connection arrives, before the TLS handshake runs, so a `peer add` or
//! `peer remove` made while `serve` runs applies to the next connection.
//! Connections already established are not cut by a `peer remove`; they end
//! when the peer disconnects, idles out, or `serve` stops.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::model::NodeId;

/// Trusted node ids and the names this node knows them by, and whether
/// nodes it does not trust may connect as guests (only to pair by an
/// invite; see protocol.md, "Pairing"). Cheap to clone (all clones share
/// one set).
#[derive(Clone, Default)]
pub struct TrustList {
    inner: Arc<RwLock<HashMap<NodeId, String>>>,
    guests: Arc<AtomicBool>,
}

/// The trust list as a [`TrustSource`](super::TrustSource) reads it.
#[derive(Clone, Debug, Default)]
pub struct TrustSnapshot {
    /// The trusted nodes (id, name).
    pub peers: Vec<(NodeId, String)>,
    /// An invite is pending: nodes not trusted may connect, to `Join` only.
    pub guests: bool,
}

impl TrustList {
    /// An empty list: no node may connect.
    pub fn new() -> Self {
        Self::default()
    }

    /// A trust list holding `peers` (node id, name).
    pub fn from_peers(peers: impl IntoIterator<Item = (NodeId, String)>) -> Self {
        let list = Self::new();
        list.replace(peers);
        list
    }

    /// Replaces the whole set at once.
    pub fn replace(&self, peers: impl IntoIterator<Item = (NodeId, String)>) {
        let fresh: HashMap<_, _> = peers.into_iter().collect();
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = fresh;
    }

    /// Takes the whole state `snapshot` gives at once.
    pub fn update(&self, snapshot: TrustSnapshot) {
        self.replace(snapshot.peers);
        self.set_guests(snapshot.guests);
    }

    /// Lets nodes this one does not trust connect (`true`, while an invite
    /// is pending), or not.
    pub fn set_guests(&self, open: bool) {
        self.guests.store(open, Ordering::SeqCst);
    }

    /// Whether nodes this one does not trust may connect now, as guests.
    pub fn admits_guests(&self) -> bool {
        self.guests.load(Ordering::SeqCst)
    }

    /// Trusts `id`, known as `name` (e.g. just after `peer add`).
    pub fn insert(&self, id: NodeId, name: &str) {
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, name.to_owned());
    }

    /// Stops trusting `id` for new connections; false if it was not trusted.
    pub fn remove(&self, id: &NodeId) -> bool {
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
            .is_some()
    }

    /// The name of a trusted node, `None` if it is not trusted.
    pub fn name_of(&self, id: &NodeId) -> Option<String> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// True if `id` may connect.
    pub fn contains(&self, id: &NodeId) -> bool {
        self.name_of(id).is_some()
    }

    /// Number of trusted nodes.
    pub fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when no node may connect.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for TrustList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrustList({} nodes)", self.len())
    }
}
