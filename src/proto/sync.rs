//! The messages of state sync (see `sync` for the session they make up).

use serde::{Deserialize, Serialize};

use super::holdings::{validate_runs, HolderRun};
use super::message::check_len;
use super::{Membership, ProtoError, Validate};
use crate::model::digest::Summary;
use crate::model::{FileEntry, NodeRecord};

/// Entries per [`Batch`], at most.
pub const MAX_BATCH_ENTRIES: usize = 1024;
/// Node records per [`Batch`], at most.
pub const MAX_BATCH_NODES: usize = 1024;
/// Versions one register of an entry may hold side by side.
pub const MAX_SIBLINGS: usize = 64;
/// Nodes named in one version vector, holder map or acknowledgement map.
pub const MAX_NODES_PER_ENTRY: usize = 1024;

/// What each side says first in a sync session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncHello {
    /// XOR of the digests of every entry and node record held (stable
    /// tombstones count as zero): equal digests, equal state.
    pub digest: [u8; 32],
    /// The sender's database incarnation (random, new with every database).
    pub incarnation: [u8; 8],
    /// The sender's last change sequence.
    pub seq: u64,
    /// How far the sender has merged the receiver's changes: the receiver's
    /// incarnation and change sequence, if the sender knows.
    pub merged_yours: Option<([u8; 8], u64)>,
    /// The sender's repository and freshness now (the client's before the
    /// session, the server's once it has joined, if it did): the join rule
    /// is decided on these, not on the connection's older `Hello`s.
    pub membership: Membership,
    /// The receiver is to send its changes after `merged_yours` as whole
    /// entries, no holder runs: the sender could not place one of its runs
    /// (see [`HolderRun`]).
    pub whole_entries: bool,
    /// The sender's state by buckets, when it has merged none of the
    /// receiver's changes (a first meeting): the receiver then sends only
    /// what lies in buckets whose fingerprints differ from its own.
    pub summary: Option<Summary>,
}

impl Validate for SyncHello {
    fn validate(&self) -> Result<(), ProtoError> {
        Ok(())
    }
}

/// A run of entries and node records in the sender's change order. After
/// merging it, the receiver holds every change of the sender up to `upto`.
/// The last batch of a session has no entries and goes up to the change
/// sequence of the sender's hello; a batch before it holds at least one
/// entry or, when the node records of a run are more than one batch may
/// carry, node records only.
/// Encoded with its node ids in a table (see `batch_wire`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Entries changed after the previous batch, in change order.
    pub entries: Vec<FileEntry>,
    /// Node records changed in the same range.
    pub nodes: Vec<NodeRecord>,
    /// The sender's change sequence this batch brings the receiver up to.
    pub upto: u64,
    /// Holder slots of entries changed in the same range only in their
    /// slots, of which the receiver has the rest.
    pub runs: Vec<HolderRun>,
}

impl Batch {
    /// Whether this is the last batch of a session whose sender's hello
    /// stated the change sequence `sender_seq`: nothing follows it.
    pub fn is_last(&self, sender_seq: u64) -> bool {
        self.entries.is_empty() && self.runs.is_empty() && self.upto == sender_seq
    }
}

impl Validate for Batch {
    fn validate(&self) -> Result<(), ProtoError> {
        check_len("batch entries", self.entries.len(), MAX_BATCH_ENTRIES)?;
        validate_runs(&self.runs)?;
        check_len("batch node records", self.nodes.len(), MAX_BATCH_NODES)?;
        for entry in &self.entries {
            check_len("path versions", entry.path.versions().len(), MAX_SIBLINGS)?;
            check_len(
                "content versions",
                entry.content.versions().len(),
                MAX_SIBLINGS,
            )?;
            check_len("holders", entry.holders.len(), MAX_NODES_PER_ENTRY)?;
            check_len(
                "deletion acknowledgements",
                entry.deletion_seen.len(),
                MAX_NODES_PER_ENTRY,
            )?;
            let vectors = entry
                .path
                .versions()
                .iter()
                .map(|v| &v.version)
                .chain(entry.content.versions().iter().map(|v| &v.version))
                .chain(entry.deletion_seen.values());
            for vector in vectors {
                check_len("version vector", vector.len(), MAX_NODES_PER_ENTRY)?;
            }
        }
        if self.nodes.iter().any(|n| !n.is_valid()) {
            return Err(ProtoError::Malformed(
                "a node record breaks the name, address or preference limits".into(),
            ));
        }
        Ok(())
    }
}
