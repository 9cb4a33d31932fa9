//! Node records: the name and addresses of every node, gossiped with the
//! state so that a location can reach a holder it was never told about.
//! Each node writes only its own record; the higher counter wins.

use serde::{Deserialize, Serialize};

use super::NodeId;

/// Longest node name, in bytes.
pub const MAX_NODE_NAME: usize = 64;
/// Most addresses one node announces.
pub const MAX_NODE_ADDRS: usize = 8;
/// Longest address (`host:port`), in bytes.
pub const MAX_ADDR_LEN: usize = 256;

/// A node as the repository knows it: replicated, so that every location can name the
/// holders of a file and learn the nodes a tombstone must be seen by.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Its id (a hash of its certificate's public key).
    pub id: NodeId,
    /// The name it gave itself at `init` (shown beside the id, never trusted for identity).
    pub name: String,
    /// Where the node says it listens (`host:port`).
    pub addrs: Vec<String>,
    /// The node's own write counter when it wrote this record.
    pub counter: u64,
}

impl NodeRecord {
    /// Keeps whichever record is newer by its owner's counter. Ties (which a
    /// correct owner never produces) are broken by content, so every node
    /// picks the same one.
    pub fn merge(&mut self, other: &NodeRecord) {
        debug_assert_eq!(self.id, other.id);
        let newer =
            (other.counter, &other.name, &other.addrs) > (self.counter, &self.name, &self.addrs);
        if newer {
            *self = other.clone();
        }
    }

    /// Checks the bounds of a record received from a peer.
    pub fn is_valid(&self) -> bool {
        self.name.len() <= MAX_NODE_NAME
            && self.addrs.len() <= MAX_NODE_ADDRS
            && self.addrs.iter().all(|a| a.len() <= MAX_ADDR_LEN)
    }

    /// Fingerprint for the state digest.
    pub fn digest(&self) -> [u8; 32] {
        let bytes = postcard::to_stdvec(self).expect("a node record always encodes");
        let mut hasher = blake3::Hasher::new_derive_key("harmony node record v1");
        hasher.update(&bytes);
        *hasher.finalize().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(counter: u64, name: &str) -> NodeRecord {
        NodeRecord {
            id: NodeId([1; 32]),
            name: name.into(),
            addrs: vec!["10.0.0.1:7447".into()],
            counter,
        }
    }

    #[test]
    fn newer_counter_wins_whatever_the_order() {
        let (old, new) = (record(1, "old"), record(2, "new"));
        let mut a = old.clone();
        a.merge(&new);
        let mut b = new.clone();
        b.merge(&old);
        assert_eq!(a, new);
        assert_eq!(b, new);
    }
}
