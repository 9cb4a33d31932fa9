//! State sync, the part that is independent of the transport: what a node
//! says first (a digest and how far it has merged the other's changes),
//! which entries it then sends (only those changed since that point, in
//! bounded batches, in change order), and how received batches are merged.
//!
//! One session, seen from either side:
//! 1. both send a [`SyncHello`];
//! 2. equal digests: done, after one round trip;
//! 3. otherwise both stream [`Batch`]es of what the other lacks, from
//!    [`Outgoing`], and merge the other's batches with [`merge_batch`];
//!    each merged batch records how far the other's changes are merged, so a
//!    cut connection resumes where it stopped.

mod session;

pub use session::{sync_with, SessionReport, SyncError, SyncServer};

use crate::model::digest::{bucket_of, Summary};
use crate::model::{FileEntry, FileId, NodeId};
use crate::net::record_proof::{self, RecordFault};
use crate::proto::holdings::{check, runs_of, CompactSlot, MAX_BATCH_SLOTS};
use crate::proto::{HolderRun, Membership, ProtoError, MAX_BATCH_NODES};
use crate::repo::has_work_here;
use crate::store::{EntryChange, NodeChange, Store, StoreError, Writer};

pub use crate::proto::{Batch, SyncHello};

/// Entries per batch, at most; batches also stay under [`BATCH_BYTES`].
pub const BATCH_ENTRIES: usize = crate::proto::MAX_BATCH_ENTRIES;
/// Encoded bytes per batch, at most (one entry alone may exceed it, up to
/// the frame limit).
pub const BATCH_BYTES: usize = 256 * 1024;
/// Encoded bytes one holder slot of a run may take, at most: a run of its
/// own (node, kind, first id, check) and a 10-byte counter. Most take one.
const SLOT_BYTES: usize = 64;

/// The hello this node sends to `peer`: with a summary of its state when it
/// has merged none of `peer`'s changes, and both have state (a fresh peer,
/// as `peer_fresh` says, has nothing to leave out).
pub fn hello(store: &Store, peer: NodeId, peer_fresh: bool) -> Result<SyncHello, StoreError> {
    let merged_yours = store.peer_progress(peer)?;
    let fresh = store.is_fresh()?;
    Ok(SyncHello {
        digest: store.state_digest()?,
        incarnation: store.incarnation()?,
        seq: store.change_seq()?,
        merged_yours,
        membership: Membership {
            repo_id: store.settings()?.repo_id,
            fresh,
        },
        whole_entries: store.peer_wants_whole(peer)?,
        summary: match merged_yours {
            None if !fresh && !peer_fresh => Some(store.summary()?),
            _ => None,
        },
    })
}

/// The change sequence after which this node must send its entries, given
/// the peer's hello: where the peer says it is, unless that claim is about
/// another incarnation of this database or lies in its future (a restored
/// backup), in which case everything is sent.
pub fn send_from(mine: &SyncHello, theirs: &SyncHello) -> u64 {
    match theirs.merged_yours {
        Some((incarnation, seq)) if incarnation == mine.incarnation && seq <= mine.seq => seq,
        _ => 0,
    }
}

/// The batches this node sends, read lazily from the store (a snapshot
/// taken before merging starts, see `Store::open_snapshot`): its changes
/// after the point the peer has merged, up to its change sequence when the
/// session began. Changes made during the session (also those merged from
/// the peer) wait for the next one, so nothing is echoed back. The last batch
/// is always empty: it only tells the receiver how far it is now up to date.
///
/// An entry that changed only in its holder slots since the peer's point,
/// each slot holding the entry's one current content or nothing, goes as
/// its slots in [`HolderRun`]s (the peer's own slot left out: only the peer
/// writes it), unless the peer asked for whole entries.
pub struct Outgoing {
    after: u64,
    /// The point the peer has merged this node's changes up to: an entry
    /// whose last change other than in slots is no later, it has.
    peer_has: u64,
    /// This node's change sequence when the session began.
    upto: u64,
    /// The node receiving the batches.
    receiver: NodeId,
    /// Whether holder slots may go as runs.
    compact: bool,
    /// The receiver's summary, when it sent one and everything would go:
    /// rows in buckets where it equals ours are left out.
    their_summary: Option<Summary>,
    /// Per bucket of that summary, whether ours equals it (made from the
    /// store at the first batch).
    equal_buckets: Option<Vec<bool>>,
    done: bool,
}

impl Outgoing {
    /// Sends this node's changes to `receiver` in the session of this
    /// node's hello (`mine`) and the receiver's (`theirs`): those after the
    /// point [`send_from`] finds.
    pub fn new(mine: &SyncHello, theirs: &SyncHello, receiver: NodeId) -> Self {
        let after = send_from(mine, theirs);
        Outgoing {
            after,
            peer_has: after,
            upto: mine.seq,
            receiver,
            compact: !theirs.whole_entries,
            their_summary: theirs.summary.clone().filter(|_| after == 0),
            equal_buckets: None,
            done: false,
        }
    }

    /// Whether the row of `key` lies in a bucket where the receiver's
    /// summary equals ours: it has that row already.
    fn receiver_has(&self, key: &[u8]) -> bool {
        self.equal_buckets
            .as_ref()
            .is_some_and(|equal| equal[bucket_of(key, equal.len())])
    }

    /// The slots of `change` to send as runs, or `None` when the entry
    /// must go whole.
    fn compact_slots(&self, change: &EntryChange) -> Option<Vec<CompactSlot>> {
        let has_body = change.body_seq <= self.peer_has || change.body_from == Some(self.receiver);
        if !self.compact || !has_body {
            return None;
        }
        let entry = &change.entry;
        let current = entry.single_content_hash();
        entry
            .holders
            .iter()
            .filter(|(node, _)| **node != self.receiver)
            .map(|(node, holding)| {
                (holding.hash.is_none() || holding.hash == current).then_some(CompactSlot {
                    node: *node,
                    id: entry.id,
                    counter: holding.counter,
                    hash: holding.hash,
                })
            })
            .collect()
    }

    /// The next batch, or `None` after the last one. Read from a
    /// plain connection instead of a snapshot, an entry changed again while
    /// sending would move past `upto` and go with the next session only.
    ///
    /// A batch goes up to its last entry, with the node records changed up
    /// to there; when those are more than a batch may carry (a peer may
    /// have told us of thousands of nodes), the batch ends at the last
    /// record that fits, and the entries after it wait for the next batch,
    /// which may then hold node records only. The last batch has no
    /// entries and goes up to the session's change sequence.
    pub fn next_batch(&mut self, store: &Store) -> Result<Option<Batch>, StoreError> {
        if self.done {
            return Ok(None);
        }
        if let Some(theirs) = self.their_summary.take() {
            self.equal_buckets = store
                .summary_of(theirs.buckets().len())?
                .equal_buckets(&theirs);
        }
        let start = self.after;
        let mut entries: Vec<(u64, FileEntry)> = Vec::new();
        let mut slots: Vec<(u64, CompactSlot)> = Vec::new();
        let mut bytes = 0;
        let mut last_seq = None;
        for change in store.entries_between(start, self.upto, BATCH_ENTRIES)? {
            if self.receiver_has(&change.entry.id.0) {
                last_seq = Some(change.seq);
                continue;
            }
            let compact = self
                .compact_slots(&change)
                .filter(|these| slots.len() + these.len() <= MAX_BATCH_SLOTS);
            let size = match &compact {
                Some(these) => these.len() * SLOT_BYTES,
                None => {
                    postcard::experimental::serialized_size(&change.entry).unwrap_or(usize::MAX)
                }
            };
            if last_seq.is_some() && bytes + size > BATCH_BYTES {
                break;
            }
            bytes += size;
            last_seq = Some(change.seq);
            match compact {
                Some(these) => slots.extend(these.into_iter().map(|slot| (change.seq, slot))),
                None => entries.push((change.seq, change.entry)),
            }
        }
        let mut upto = last_seq.unwrap_or(self.upto);
        let mut nodes = Vec::new();
        let records = store.node_changes_between(start, upto, MAX_BATCH_NODES + 1)?;
        // Read to its limit, the records past the last one read wait for
        // the next batch (with the entries after it), whether or not the
        // ones read fill this batch.
        let mut cut = records.get(MAX_BATCH_NODES).map(|change| change.seq);
        for NodeChange { seq, record, from } in records {
            // The receiver's own record is its own to write: it ignores a
            // copy. And one taken from the receiver as it sent it is the
            // receiver's already. (A signed record is ~250 bytes.)
            if record.id == self.receiver
                || from == Some(self.receiver)
                || self.receiver_has(&record.id.0)
            {
                continue;
            }
            let size = postcard::experimental::serialized_size(&record).unwrap_or(usize::MAX);
            if let Some(&(last, _)) = nodes.last() {
                if nodes.len() == MAX_BATCH_NODES || bytes + size > BATCH_BYTES {
                    cut = Some(last);
                    break;
                }
            }
            bytes += size;
            nodes.push((seq, record));
        }
        if let Some(cut) = cut {
            upto = cut;
            entries.retain(|(seq, _)| *seq <= upto);
            slots.retain(|(seq, _)| *seq <= upto);
        }
        self.after = upto;
        let batch = Batch {
            entries: entries.into_iter().map(|(_, entry)| entry).collect(),
            nodes: nodes.into_iter().map(|(_, record)| record).collect(),
            upto,
            runs: runs_of(slots.into_iter().map(|(_, slot)| slot).collect()),
        };
        self.done = batch.is_last(self.upto);
        Ok(Some(batch))
    }
}

/// Checks how far a received batch says it brings the receiver: never past
/// the change sequence the sender's hello stated (`their_seq`, its state
/// when the session began), and further than the batch before it unless it
/// is the last one. Each batch but the last carries at least one change
/// after the one before, so a session has at most `their_seq` batches, and
/// a peer that sends the same batch again and again (a session without
/// end) is caught at once. Returns the batch's `upto`.
pub fn check_upto(previous: Option<u64>, batch: &Batch, their_seq: u64) -> Result<u64, ProtoError> {
    let last = batch.is_last(their_seq);
    let stalled = previous.is_some_and(|p| batch.upto < p || (batch.upto == p && !last));
    if batch.upto > their_seq || stalled {
        return Err(ProtoError::Malformed(format!(
            "a batch up to change sequence {}, after one up to {}, in a session the sender began at change sequence {their_seq}",
            batch.upto,
            previous.unwrap_or(0),
        )));
    }
    Ok(batch.upto)
}

/// What merging one batch did.
#[derive(Debug, Default)]
pub struct Merged {
    /// Entries that changed here (by id: a first sync may change 100,000).
    pub changed: Vec<FileId>,
    /// Of those, the ones the apply step has work for in this tree (see
    /// [`has_work_here`]): most entries of a first sync have none.
    pub to_apply: Vec<FileId>,
    /// Node records refused as malformed (an entry that breaks a rule
    /// fails the decoding of its whole batch).
    pub rejected: usize,
    /// Of those, entries refused for crediting this node with a write it
    /// never made.
    pub forged: usize,
    /// Of those, node records refused for their signature.
    pub unsigned: usize,
    /// The first of those: whose record, and what was wrong (for the log).
    pub first_unsigned: Option<(NodeId, RecordFault)>,
    /// Holder slots received in runs.
    pub slots: usize,
    /// Of those, slots that changed an entry here: another node's slot
    /// changes nothing in this working tree, so these entries are not in
    /// `changed` (which the apply step goes through).
    pub slots_placed: usize,
    /// Runs that could not be placed here (see [`place_run`]).
    pub runs_refused: usize,
}

/// The receiving half of one session, from batch to batch: whose batches
/// they are and what this side asked for.
#[derive(Clone, Debug)]
pub struct Incoming {
    /// The sender.
    pub peer: NodeId,
    /// The sender's database incarnation, from its hello.
    pub incarnation: [u8; 8],
    /// The change sequence of the sender's hello: its last batch goes there.
    pub their_seq: u64,
    /// This side's hello asked for whole entries.
    pub asked_whole: bool,
    /// A run of this session could not be placed: the sender's changes
    /// from the last point recorded must come again, whole, so the progress
    /// stays there for the rest of the session.
    pub refused: bool,
}

impl Incoming {
    /// The receiving half for the session of these two hellos with `peer`.
    pub fn new(peer: NodeId, mine: &SyncHello, theirs: &SyncHello) -> Self {
        Incoming {
            peer,
            incarnation: theirs.incarnation,
            their_seq: theirs.seq,
            asked_whole: mine.whole_entries,
            refused: false,
        }
    }
}

/// Places the slots of `run` in this node's entries if the run's check
/// holds against them: every entry of the run is known here, and (for a
/// run of holding slots) has one current content, and the check over the
/// (id, hash) pairs is the sender's. Returns how many slots changed an
/// entry, `None` if the run did not fit. A run of this node's own slots is
/// checked and ignored (only this node writes them).
fn place_run(
    writer: &Writer<'_>,
    me: NodeId,
    run: &HolderRun,
) -> Result<Option<usize>, StoreError> {
    let mut entries = Vec::with_capacity(run.counters.len());
    for (id, _) in run.slots() {
        let Some(entry) = writer.entry(id)? else {
            return Ok(None);
        };
        let held = if run.holds {
            match entry.single_content_hash() {
                Some(hash) => Some(hash),
                None => return Ok(None),
            }
        } else {
            None
        };
        entries.push((entry, held));
    }
    if check(entries.iter().map(|(entry, held)| (entry.id, *held))) != run.check {
        return Ok(None);
    }
    if run.node == me {
        return Ok(Some(0));
    }
    let mut placed = 0;
    for ((old, held), (_, counter)) in entries.into_iter().zip(run.slots()) {
        let mut entry = old.clone();
        entry.set_holding(run.node, held, counter);
        if entry.holders.get(&run.node) != old.holders.get(&run.node) {
            writer.replace_entry(&old, &entry, None)?;
            placed += 1;
        }
    }
    Ok(Some(placed))
}

/// Why a merged change is blocked until the apply step after the merge
/// clears it (what `status` shows if that apply never ran).
const NOT_APPLIED: &str =
    "merged from a peer but not applied yet (the session was cut); the next sync or get applies it";

/// Merges a batch received from `peer` (database `incarnation`) in one
/// transaction, and records that `peer`'s changes up to `batch.upto` are
/// merged, and that each changed entry the apply step has work for awaits
/// it. Only entries that really change are written, so merging what is
/// already known costs no write and no new change sequence.
pub fn merge_batch(
    store: &mut Store,
    me: NodeId,
    session: &mut Incoming,
    batch: Batch,
) -> Result<Merged, StoreError> {
    merge_batches(store, me, session, vec![batch])
}

/// [`merge_batch`] for several batches in a row, in one transaction: a
/// merger that falls behind the network takes what has queued up at once,
/// and a first sync of a million entries pays a few hundred commits (each
/// a WAL sync), not a thousand.
pub fn merge_batches(
    store: &mut Store,
    me: NodeId,
    session: &mut Incoming,
    batches: Vec<Batch>,
) -> Result<Merged, StoreError> {
    let writer = store.write()?;
    let mine = Mine {
        id: me,
        writes: writer.write_counter()?,
    };
    let mut merged = Merged::default();
    let at_ms = crate::repo::now_ms();
    for batch in batches {
        merge_into(&writer, &mine, session, at_ms, batch, &mut merged)?;
    }
    // Files of this location moved aside (or back) by what arrived.
    for id in writer.take_replaced() {
        if let Some(entry) = writer.entry(id)? {
            await_apply(&writer, &entry, at_ms, &mut merged)?;
        }
        merged.changed.push(id);
    }
    writer.commit()?;
    Ok(merged)
}

/// Each change the apply step has work for waits for it as a blocked
/// change, in the merge's transaction: a process killed between the merge
/// and the apply (the peer's progress says these are merged, so they never
/// come again) leaves them for the next apply, instead of a tree that never
/// follows.
fn await_apply(
    writer: &Writer<'_>,
    entry: &FileEntry,
    at_ms: i64,
    merged: &mut Merged,
) -> Result<(), StoreError> {
    if has_work_here(writer, entry)? {
        writer.set_blocked(entry.id, entry.current_path(), NOT_APPLIED, at_ms)?;
        merged.to_apply.push(entry.id);
    }
    Ok(())
}

/// The receiving node, as a merge needs it.
struct Mine {
    id: NodeId,
    /// Its write counter: no version of a later write of its own is real.
    writes: u64,
}

/// One batch of [`merge_batches`], in its transaction.
fn merge_into(
    writer: &Writer<'_>,
    mine: &Mine,
    session: &mut Incoming,
    at_ms: i64,
    batch: Batch,
    merged: &mut Merged,
) -> Result<(), StoreError> {
    let me = mine.id;
    // Read per batch: the batch before may have brought new nodes.
    let known = writer.known_nodes()?;
    let last = batch.is_last(session.their_seq);
    for incoming in batch.entries {
        let incoming = incoming.normalized();
        // Only this node makes its writes: a version of one it never made
        // is forged, and taken it would tie every later write here to it.
        if incoming.credited_writes(&me) > mine.writes {
            merged.rejected += 1;
            merged.forged += 1;
            continue;
        }
        let local = writer.entry(incoming.id)?;
        let updated = match &local {
            Some(local) => {
                let mut updated = local.clone();
                updated.merge_remote(&incoming, me);
                updated.acknowledge_deletion(me);
                (updated != *local).then_some(updated)
            }
            // A stable tombstone unknown here was collected here already (or
            // is of a file never seen): taking it again would only send it
            // back and forth.
            None if incoming.deletion_is_stable(&known) => None,
            None => {
                let mut fresh = incoming.clone();
                fresh.holders.remove(&me);
                fresh.deletion_seen.remove(&me);
                fresh.acknowledge_deletion(me);
                Some(fresh)
            }
        };
        if let Some(entry) = updated {
            // Left as the peer sent it (but for slots), the peer has it.
            let from = entry
                .differs_only_in_holders(&incoming)
                .then_some(session.peer);
            match (&local, from) {
                (Some(local), _) => writer.replace_entry(local, &entry, from)?,
                (None, Some(peer)) => writer.put_merged_entry(&entry, peer)?,
                (None, None) => writer.put_entry(&entry)?,
            }
            await_apply(writer, &entry, at_ms, merged)?;
            merged.changed.push(entry.id);
        }
    }
    for run in &batch.runs {
        merged.slots += run.counters.len();
        match place_run(writer, me, run)? {
            Some(placed) => merged.slots_placed += placed,
            None => merged.runs_refused += 1,
        }
    }
    for incoming in batch.nodes {
        if !incoming.is_valid() {
            merged.rejected += 1;
            continue;
        }
        if incoming.id == me {
            continue; // only this node writes its own record
        }
        let local = writer.node(incoming.id)?;
        if local.as_ref() == Some(&incoming) {
            continue; // held as it is: nothing to check or change
        }
        // Only its node writes a record: a relayed one must carry its
        // node's signature.
        if let Err(fault) = record_proof::verify(&incoming) {
            merged.rejected += 1;
            merged.unsigned += 1;
            merged.first_unsigned.get_or_insert((incoming.id, fault));
            continue;
        }
        let updated = match local {
            Some(local) => {
                let mut updated = local.clone();
                updated.merge(&incoming);
                (updated != local).then_some(updated)
            }
            None => Some(incoming.clone()),
        };
        if let Some(record) = updated {
            let from = (record == incoming).then_some(session.peer);
            writer.put_node(&record, from)?;
        }
    }
    if merged.runs_refused > 0 && !session.refused {
        session.refused = true;
        writer.set_peer_wants_whole(session.peer)?;
    }
    if !session.refused {
        let whole = session.asked_whole && !last;
        writer.set_peer_progress(session.peer, session.incarnation, batch.upto, whole)?;
    }
    Ok(())
}

/// Takes in the peer's hello before any batch: remembers how far the peer
/// has merged this node's changes, and, when the digests are equal (the
/// session ends here), that each side has all of the other's changes.
/// Returns whether the digests are equal.
pub fn begin(
    store: &mut Store,
    peer: NodeId,
    mine: &SyncHello,
    theirs: &SyncHello,
) -> Result<bool, StoreError> {
    let in_sync = mine.digest == theirs.digest;
    let writer = store.write()?;
    if in_sync {
        writer.set_peer_progress(peer, theirs.incarnation, theirs.seq, false)?;
        writer.set_peer_has_mine(peer, mine.seq)?;
    } else {
        writer.set_peer_has_mine(peer, send_from(mine, theirs))?;
    }
    writer.commit()?;
    Ok(in_sync)
}

/// Removes tombstones that are stable (every known node has seen the
/// deletion) and that every direct peer already has with that knowledge, so
/// that none of them sends it back. Returns how many were removed.
pub fn collect_tombstones(store: &mut Store) -> Result<usize, StoreError> {
    let known: Vec<NodeId> = store.nodes()?.into_iter().map(|n| n.id).collect();
    let merged_by_peers = store.merged_by_all_peers()?;
    let collectable: Vec<_> = store
        .tombstones()?
        .into_iter()
        .filter(|(seq, entry)| {
            entry.deletion_is_stable(&known) && merged_by_peers.is_none_or(|m| *seq <= m)
        })
        .map(|(_, entry)| entry.id)
        .collect();
    if collectable.is_empty() {
        return Ok(0);
    }
    let writer = store.write()?;
    for id in &collectable {
        writer.remove_entry(*id)?;
    }
    writer.commit()?;
    Ok(collectable.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(entries: usize, upto: u64) -> Batch {
        let entry = crate::model::FileEntry::new_file(
            FileId::new_at(1),
            crate::model::RepoPath::new("f").unwrap(),
            crate::model::Content::Deleted,
            crate::model::Stamp {
                node: NodeId([1; 32]),
                counter: 1,
                at_ms: 0,
            },
        );
        Batch {
            entries: vec![entry; entries],
            nodes: Vec::new(),
            upto,
            runs: Vec::new(),
        }
    }

    #[test]
    fn batches_must_move_forward_within_the_senders_hello() {
        assert_eq!(check_upto(None, &batch(1, 3), 10), Ok(3));
        assert_eq!(check_upto(Some(3), &batch(1, 7), 10), Ok(7));
        // The last batch may equal the one before; it ends at the hello's seq.
        assert_eq!(check_upto(Some(10), &batch(0, 10), 10), Ok(10));
        assert_eq!(check_upto(None, &batch(0, 10), 10), Ok(10));
        // The same batch again, one going back, one past the hello.
        assert!(check_upto(Some(7), &batch(1, 7), 10).is_err());
        assert!(check_upto(Some(7), &batch(1, 5), 10).is_err());
        assert!(check_upto(Some(7), &batch(1, 11), 10).is_err());
        assert!(check_upto(None, &batch(0, u64::MAX), 10).is_err());
    }
}
