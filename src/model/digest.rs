//! The state digest: what two locations compare first in a sync. It is the
//! XOR of one part per file entry and per node record, so it is the same
//! whatever the order the state was built in, and a store keeps it current
//! by XOR-ing out a part's old value and in its new one. A stable tombstone
//! (every known node has seen the deletion) counts as zero: one location
//! may have collected it while another still holds it, and their states
//! are equal all the same.

use serde::{Deserialize, Serialize};

use super::{FileEntry, NodeId};

/// An entry's part of the state digest: nothing for a stable tombstone
/// (every `known` node has acknowledged the deletion).
pub fn entry_part(entry: &FileEntry, known: &[NodeId]) -> [u8; 32] {
    if entry.deletion_is_stable(known) {
        [0; 32]
    } else {
        entry.digest()
    }
}

/// Adds a part to a digest, or takes it out again (XOR is its own inverse).
pub fn xor_into(acc: &mut [u8; 32], part: &[u8; 32]) {
    for (a, d) in acc.iter_mut().zip(part) {
        *a ^= d;
    }
}

/// Most buckets a [`Summary`] has: 512 KiB, half a frame.
pub const MAX_SUMMARY_BUCKETS: usize = 64 * 1024;

/// A location's state digest cut into buckets: bucket *b* is the XOR of the
/// first 8 bytes of the parts of the entries and node records whose key
/// (file or node id) [`bucket_of`] puts in *b*. A node meeting a peer for
/// the first time (it has merged none of the peer's changes) sends its
/// summary, and the peer sends only what lies in buckets that differ:
/// in a fleet, most of a newcomer's state is already there by other paths.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Summary {
    buckets: Vec<[u8; 8]>,
}

impl<'de> Deserialize<'de> for Summary {
    /// Decoding checks the bucket count.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let buckets = Vec::<[u8; 8]>::deserialize(deserializer)?;
        Summary::from_buckets(buckets).ok_or_else(|| {
            serde::de::Error::custom("a summary's bucket count is not a power of two up to 65536")
        })
    }
}

impl Summary {
    /// An empty summary of `buckets` buckets, a power of two from 1 to
    /// [`MAX_SUMMARY_BUCKETS`].
    pub fn new(buckets: usize) -> Self {
        debug_assert!(buckets.is_power_of_two() && buckets <= MAX_SUMMARY_BUCKETS);
        Summary {
            buckets: vec![[0; 8]; buckets],
        }
    }

    /// The bucket count that suits `rows` entries and node records: about
    /// one a row. A bucket costs 8 bytes, a row sent for nothing ~200: with
    /// eight rows a bucket, states a fifth apart would differ in 80 % of
    /// the buckets and send 80 % of the rows; with one, 20 %.
    pub fn buckets_for(rows: usize) -> usize {
        rows.next_power_of_two().clamp(16, MAX_SUMMARY_BUCKETS)
    }

    /// A summary as a peer sent it; `None` unless the count is a power of
    /// two up to [`MAX_SUMMARY_BUCKETS`].
    pub fn from_buckets(buckets: Vec<[u8; 8]>) -> Option<Self> {
        (buckets.len().is_power_of_two() && buckets.len() <= MAX_SUMMARY_BUCKETS)
            .then_some(Summary { buckets })
    }

    /// The buckets' fingerprints.
    pub fn buckets(&self) -> &[[u8; 8]] {
        &self.buckets
    }

    /// Adds the part `digest` of the row of `key`.
    pub fn add(&mut self, key: &[u8], digest: &[u8; 32]) {
        let bucket = bucket_of(key, self.buckets.len());
        for (acc, d) in self.buckets[bucket].iter_mut().zip(digest) {
            *acc ^= d;
        }
    }

    /// Per bucket, whether `other` (of as many buckets) has the same
    /// fingerprint; `None` when the counts differ.
    pub fn equal_buckets(&self, other: &Summary) -> Option<Vec<bool>> {
        (self.buckets.len() == other.buckets.len()).then(|| {
            self.buckets
                .iter()
                .zip(&other.buckets)
                .map(|(a, b)| a == b)
                .collect()
        })
    }
}

/// The bucket of `key` among `buckets` (a power of two): from a keyed hash,
/// as file ids made together share most of their bytes.
pub fn bucket_of(key: &[u8], buckets: usize) -> usize {
    let hash = blake3::Hasher::new_derive_key("harmony summary bucket v1")
        .update(key)
        .finalize();
    let word = u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes"));
    (word as usize) & (buckets - 1)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::{Content, ContentHash, FileId, RepoPath, Stamp};

    fn node(n: u8) -> NodeId {
        NodeId([n; 32])
    }

    fn entry(id: u8, bytes: u8, deleted: bool) -> FileEntry {
        let stamp = |counter| Stamp {
            node: node(1),
            counter,
            at_ms: 0,
        };
        let content = Content::File {
            hash: ContentHash([bytes; 32]),
            size: u64::from(bytes),
            mtime_ns: 0,
            executable: false,
        };
        let path = RepoPath::new(&format!("f{id}")).unwrap();
        let mut entry = FileEntry::new_file(FileId([id; 16]), path, content, stamp(1));
        if deleted {
            entry.set_content(Content::Deleted, stamp(2));
            entry.acknowledge_deletion(node(1));
        }
        entry
    }

    fn digest(parts: &[[u8; 32]]) -> [u8; 32] {
        let mut acc = [0; 32];
        parts.iter().for_each(|p| xor_into(&mut acc, p));
        acc
    }

    #[test]
    fn a_stable_tombstone_counts_as_zero_until_a_node_has_not_seen_it() {
        let gone = entry(1, 5, true);
        assert_eq!(entry_part(&gone, &[node(1)]), [0; 32]);
        // A node that has not acknowledged the deletion: it counts again.
        assert_ne!(entry_part(&gone, &[node(1), node(2)]), [0; 32]);
        let live = entry(1, 5, false);
        assert_eq!(entry_part(&live, &[node(1)]), live.digest());
    }

    proptest! {
        /// The digest does not depend on the order parts are added, and
        /// swapping one part for another (as a store does on a write) gives
        /// the digest of the new state computed from scratch.
        #[test]
        fn the_digest_is_order_free_and_kept_current_by_swaps(
            files in prop::collection::vec((0u8..8, any::<bool>()), 1..24),
            order in any::<prop::sample::Index>(),
            changed in any::<prop::sample::Index>(),
            bytes in 0u8..8,
        ) {
            let known = [node(1)];
            let mut entries: Vec<FileEntry> = files
                .iter()
                .enumerate()
                .map(|(i, (b, del))| entry(i as u8, *b, *del))
                .collect();
            let parts: Vec<[u8; 32]> = entries.iter().map(|e| entry_part(e, &known)).collect();
            let mut rotated = parts.clone();
            rotated.rotate_left(order.index(parts.len()));
            prop_assert_eq!(digest(&parts), digest(&rotated));

            let at = changed.index(entries.len());
            let mut kept = digest(&parts);
            xor_into(&mut kept, &parts[at]);
            entries[at] = entry(at as u8, bytes, false);
            xor_into(&mut kept, &entry_part(&entries[at], &known));
            let fresh: Vec<[u8; 32]> = entries.iter().map(|e| entry_part(e, &known)).collect();
            prop_assert_eq!(kept, digest(&fresh));
        }
    }

    #[test]
    fn summaries_differ_exactly_in_the_buckets_of_rows_that_differ() {
        let keys: Vec<[u8; 16]> = (0..200u8).map(|i| [i; 16]).collect();
        let (mut a, mut b) = (Summary::new(64), Summary::new(64));
        for key in &keys {
            let part = blake3::hash(key).into();
            a.add(key, &part);
            b.add(key, &part);
        }
        assert_eq!(a.equal_buckets(&b), Some(vec![true; 64]));
        // One row changed at b: only its bucket differs.
        b.add(&keys[7], &[1; 32]);
        let equal = a.equal_buckets(&b).unwrap();
        assert_eq!(equal.iter().filter(|e| !**e).count(), 1);
        assert!(!equal[bucket_of(&keys[7], 64)]);
        assert_eq!(a.equal_buckets(&Summary::new(32)), None);
        assert_eq!(Summary::buckets_for(0), 16);
        assert_eq!(Summary::buckets_for(1000), 1024);
        assert_eq!(Summary::buckets_for(10_000_000), MAX_SUMMARY_BUCKETS);
        assert!(Summary::from_buckets(vec![[0; 8]; 48]).is_none());
        assert!(Summary::from_buckets(vec![[0; 8]; 2 * MAX_SUMMARY_BUCKETS]).is_none());
    }
}
