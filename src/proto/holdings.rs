//! Holder slots sent compactly, as runs over consecutive file ids.
//!
//! After a `get` of 20,000 files, the only change of those entries is the
//! getter's holder slot. Sent as whole entries that is ~360 bytes a file;
//! as a [`HolderRun`] it is the counter, about one byte a file: the
//! receiver already has everything else of the entries (the sender sends a
//! run only for entries whose other parts the receiver has merged), and the
//! ids of the files one commit adds are consecutive (`FileIdSequence`).
//!
//! A run does not carry the content hash of each slot: it says "each of
//! these slots holds the file's one current content" (or "nothing"), with a
//! check over the (id, hash) pairs as the sender sees them. A receiver whose
//! entries differ (a newer edit reached it from elsewhere, a file it does
//! not have) finds the check wrong, places nothing of the run, and asks for
//! the sender's changes from there again as whole entries in the next
//! session (`SyncHello::whole_entries`), so nothing is lost and nothing
//! sticks.

use serde::{Deserialize, Serialize};

use super::message::check_len;
use super::ProtoError;
use crate::model::{ContentHash, FileId, NodeId};

/// Slots one run may carry, at most.
pub const MAX_RUN_SLOTS: usize = 1024;
/// Runs one batch may carry, at most.
pub const MAX_BATCH_RUNS: usize = 4096;
/// Slots all the runs of one batch may carry together, at most: each costs
/// the receiver one entry read, so this bounds a batch's work.
pub const MAX_BATCH_SLOTS: usize = 64 * 1024;

/// The holder slots of node `node` for the files `first`, `first + 1`, …
/// (one per counter), each written with its counter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderRun {
    /// Whose slots these are.
    pub node: NodeId,
    /// True: each slot holds the content of the file's one current version;
    /// false: each slot holds nothing (the node dropped its copies).
    pub holds: bool,
    /// The id of the first file; the others follow it one by one.
    pub first: FileId,
    /// The counter of each slot, in id order. On the wire each is the
    /// difference from the one before (the first from 0), a zigzag varint:
    /// the slots of one `get` are written one after another, one byte each.
    #[serde(with = "counter_deltas")]
    pub counters: Vec<u64>,
    /// [`check`] over the run's (id, slot content) pairs, as the sender
    /// has them.
    pub check: [u8; 8],
}

/// One holder slot as a sender puts it into a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactSlot {
    /// Whose slot.
    pub node: NodeId,
    /// Of which file.
    pub id: FileId,
    /// The slot's counter.
    pub counter: u64,
    /// What it holds: the file's one current content, or nothing.
    pub hash: Option<ContentHash>,
}

impl HolderRun {
    /// The ids the run covers, with each slot's counter. Validated runs
    /// never run past the last id.
    pub fn slots(&self) -> impl Iterator<Item = (FileId, u64)> + '_ {
        let first = u128::from_be_bytes(self.first.0);
        self.counters.iter().enumerate().map(move |(i, counter)| {
            let id = first.wrapping_add(i as u128);
            (FileId(id.to_be_bytes()), *counter)
        })
    }
}

/// The check of a run: the first 8 bytes of a keyed blake3 over each
/// slot's file id and what it holds (the hash, or nothing for a run of
/// `holds: false`).
pub fn check(slots: impl IntoIterator<Item = (FileId, Option<ContentHash>)>) -> [u8; 8] {
    let mut hasher = blake3::Hasher::new_derive_key("harmony holder run v1");
    for (id, hash) in slots {
        hasher.update(&id.0);
        if let Some(hash) = hash {
            hasher.update(&hash.0);
        }
    }
    let mut out = [0; 8];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
    out
}

/// Groups `slots` into runs: per node, per kind (holding or not), over
/// consecutive ids, each at most [`MAX_RUN_SLOTS`] long. Slots of random
/// (older) ids make runs of one, still a tenth of a whole entry.
pub fn runs_of(mut slots: Vec<CompactSlot>) -> Vec<HolderRun> {
    slots.sort_by_key(|s| (s.node, s.hash.is_some(), s.id));
    let mut runs: Vec<HolderRun> = Vec::new();
    let mut hashes: Vec<(FileId, Option<ContentHash>)> = Vec::new();
    let mut finish = |run: HolderRun, hashes: &mut Vec<_>| {
        runs.push(HolderRun {
            check: check(hashes.drain(..)),
            ..run
        })
    };
    let mut open: Option<HolderRun> = None;
    for slot in slots {
        let holds = slot.hash.is_some();
        let follows = open.as_ref().is_some_and(|run| {
            run.node == slot.node
                && run.holds == holds
                && run.counters.len() < MAX_RUN_SLOTS
                && u128::from_be_bytes(run.first.0).checked_add(run.counters.len() as u128)
                    == Some(u128::from_be_bytes(slot.id.0))
        });
        if !follows {
            if let Some(run) = open.take() {
                finish(run, &mut hashes);
            }
            open = Some(HolderRun {
                node: slot.node,
                holds,
                first: slot.id,
                counters: Vec::new(),
                check: [0; 8],
            });
        }
        let run = open.as_mut().expect("opened above");
        run.counters.push(slot.counter);
        hashes.push((slot.id, slot.hash));
    }
    if let Some(run) = open {
        finish(run, &mut hashes);
    }
    runs
}

/// Checks the runs of one batch against the limits above: counts, and no
/// run past the last file id.
pub fn validate_runs(runs: &[HolderRun]) -> Result<(), ProtoError> {
    check_len("holder runs", runs.len(), MAX_BATCH_RUNS)?;
    let mut total = 0;
    for run in runs {
        check_len("holder run slots", run.counters.len(), MAX_RUN_SLOTS)?;
        let last = (run.counters.len() as u128)
            .checked_sub(1)
            .and_then(|after_first| u128::from_be_bytes(run.first.0).checked_add(after_first));
        if last.is_none() {
            return Err(ProtoError::Malformed(
                "a holder run that is empty or runs past the last file id".into(),
            ));
        }
        total += run.counters.len();
    }
    check_len("holder slots in one batch", total, MAX_BATCH_SLOTS)
}

/// The counters of a run as differences from the one before, so a run of
/// counters written one after another costs a byte each.
mod counter_deltas {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(counters: &[u64], s: S) -> Result<S::Ok, S::Error> {
        let mut previous = 0u64;
        let deltas: Vec<i64> = counters
            .iter()
            .map(|&c| {
                let delta = c.wrapping_sub(previous) as i64;
                previous = c;
                delta
            })
            .collect();
        deltas.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
        let deltas = Vec::<i64>::deserialize(d)?;
        let mut previous = 0u64;
        Ok(deltas
            .into_iter()
            .map(|delta| {
                previous = previous.wrapping_add(delta as u64);
                previous
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> FileId {
        FileId(n.to_be_bytes())
    }

    fn slot(node: u8, n: u128, counter: u64, hash: Option<u8>) -> CompactSlot {
        CompactSlot {
            node: NodeId([node; 32]),
            id: id(n),
            counter,
            hash: hash.map(|h| ContentHash([h; 32])),
        }
    }

    #[test]
    fn consecutive_slots_of_one_node_make_one_run() {
        let slots = (0..10)
            .rev()
            .map(|i| slot(2, 100 + i, 50 + i as u64, Some(i as u8)));
        let runs = runs_of(slots.collect());
        assert_eq!(runs.len(), 1);
        let run = &runs[0];
        assert_eq!((run.first, run.holds), (id(100), true));
        assert_eq!(run.counters, (50..60).collect::<Vec<_>>());
        let expected = check((0..10).map(|i| (id(100 + i), Some(ContentHash([i as u8; 32])))));
        assert_eq!(run.check, expected);
        assert_eq!(
            run.slots().collect::<Vec<_>>(),
            (0..10)
                .map(|i| (id(100 + i), 50 + i as u64))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn runs_split_at_gaps_nodes_kinds_and_their_length_limit() {
        let mut slots = vec![
            slot(1, 1, 1, Some(1)),
            slot(1, 2, 2, Some(1)),
            slot(1, 4, 3, Some(1)), // a gap
            slot(1, 5, 4, None),    // holds nothing: another kind
            slot(2, 5, 9, Some(1)), // another node
        ];
        let long = MAX_RUN_SLOTS as u128 + 1;
        slots.extend((0..long).map(|i| slot(3, 1000 + i, 1, Some(7))));
        let runs = runs_of(slots);
        let shape: Vec<(u8, bool, FileId, usize)> = runs
            .iter()
            .map(|r| (r.node.0[0], r.holds, r.first, r.counters.len()))
            .collect();
        assert_eq!(
            shape,
            vec![
                (1, false, id(5), 1),
                (1, true, id(1), 2),
                (1, true, id(4), 1),
                (2, true, id(5), 1),
                (3, true, id(1000), MAX_RUN_SLOTS),
                (3, true, id(1000 + MAX_RUN_SLOTS as u128), 1),
            ]
        );
        assert!(validate_runs(&runs).is_ok());
    }

    #[test]
    fn counters_travel_as_deltas_and_round_trip_at_the_extremes() {
        let run = HolderRun {
            node: NodeId([1; 32]),
            holds: true,
            first: id(7),
            counters: vec![300, 301, 302, 5, u64::MAX, 0],
            check: [9; 8],
        };
        let bytes = postcard::to_stdvec(&run).unwrap();
        // node, holds, first, then 6 counters: 300 as a zigzag varint takes
        // two bytes, each step of one a byte, the jumps more; then the check.
        let counters = &bytes[32 + 1 + 16..bytes.len() - 8];
        assert_eq!(counters[..5], [6, 0xd8, 0x04, 2, 2]);
        assert_eq!(postcard::from_bytes::<HolderRun>(&bytes).unwrap(), run);
    }

    #[test]
    fn runs_out_of_bounds_are_refused() {
        let run = |first: u128, len: usize| HolderRun {
            node: NodeId([1; 32]),
            holds: false,
            first: id(first),
            counters: vec![1; len],
            check: [0; 8],
        };
        assert!(validate_runs(&[run(u128::MAX, 1)]).is_ok());
        assert!(validate_runs(&[run(u128::MAX, 2)]).is_err());
        assert!(validate_runs(&[run(1, 0)]).is_err());
        assert!(validate_runs(&[run(1, MAX_RUN_SLOTS + 1)]).is_err());
        let many = vec![run(1, MAX_RUN_SLOTS); MAX_BATCH_SLOTS / MAX_RUN_SLOTS + 1];
        assert!(validate_runs(&many).is_err());
    }
}
