//! What happened since the live node last looked, raised by its other
//! parts: the router (a peer's notice, a merge, a connection), the watcher
//! (a commit) and discovery (a peer at a new address).
//!
//! Events are kept as sets, not queued: repeats count once, so the inbox
//! stays bounded by the number of trusted peers whatever they send, and a
//! burst of events costs the live node one look.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::model::NodeId;

/// The shared inbox of one live node; clones raise into the same one.
#[derive(Clone, Debug, Default)]
pub struct Inbox(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    news: Mutex<News>,
    wake: Notify,
}

/// The events gathered since the last [`Inbox::take`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct News {
    /// This location's state changed here: a commit, a fetch.
    pub local: bool,
    /// Peers whose sync with this node changed its state.
    pub merged_from: BTreeSet<NodeId>,
    /// Peers that said their state differs from this node's, with the
    /// digest of their latest notice.
    pub noticed: BTreeMap<NodeId, [u8; 32]>,
    /// Peers that just proved reachable (they connected here, or were seen
    /// at a new address): worth dialing now rather than after a backoff.
    pub reachable: BTreeSet<NodeId>,
}

impl News {
    /// Nothing happened.
    pub fn is_empty(&self) -> bool {
        *self == News::default()
    }
}

impl Inbox {
    fn raise(&self, event: impl FnOnce(&mut News)) {
        event(&mut self.0.news.lock().unwrap_or_else(|e| e.into_inner()));
        self.0.wake.notify_one();
    }

    /// This location's state changed here.
    pub fn local_change(&self) {
        self.raise(|news| news.local = true);
    }

    /// A sync served for `peer` changed this location's state.
    pub fn merged_from(&self, peer: NodeId) {
        self.raise(|news| {
            news.merged_from.insert(peer);
        });
    }

    /// `peer` said its state, of `digest`, differs from this node's.
    pub fn noticed(&self, peer: NodeId, digest: [u8; 32]) {
        self.raise(|news| {
            news.noticed.insert(peer, digest);
        });
    }

    /// `peer` proved reachable.
    pub fn reachable(&self, peer: NodeId) {
        self.raise(|news| {
            news.reachable.insert(peer);
        });
    }

    /// The events since the last take, waiting for one if there are none.
    /// One taker at a time (the live node).
    pub async fn take(&self) -> News {
        loop {
            let news = std::mem::take(&mut *self.0.news.lock().unwrap_or_else(|e| e.into_inner()));
            if !news.is_empty() {
                return news;
            }
            self.0.wake.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn repeats_count_once_and_a_take_empties_it() {
        let inbox = Inbox::default();
        let a = NodeId([1; 32]);
        for _ in 0..1000 {
            inbox.noticed(a, [0; 32]);
            inbox.local_change();
        }
        inbox.reachable(a);
        let news = inbox.take().await;
        assert!(news.local);
        assert_eq!(news.noticed.len(), 1);
        assert_eq!(news.reachable.len(), 1);
        assert!(news.merged_from.is_empty());
        // Empty now: a take waits for the next event.
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(20), inbox.take());
        assert!(waiting.await.is_err());
        inbox.merged_from(a);
        assert_eq!(inbox.take().await.merged_from.len(), 1);
    }
}
