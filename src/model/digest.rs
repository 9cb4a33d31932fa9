//! The state digest: what two locations compare first in a sync. It is the
//! XOR of one part per file entry and per node record, so it is the same
//! whatever the order the state was built in, and a store keeps it current
//! by XOR-ing out a part's old value and in its new one. A stable tombstone
//! (every known node has seen the deletion) counts as zero: one location
//! may have collected it while another still holds it, and their states
//! are equal all the same.

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
}
