//! The replicated state: file entries and node records, each stamped with
//! the change sequence a peer asks "what changed after" with, and the XOR
//! state digest kept up to date at every write so two nodes can tell in one
//! comparison whether they hold the same state.

use rusqlite::{params, Connection, OptionalExtension};

use super::{decode, derived, encode, fixed_meta, Result, Store, StoreError, Writer};
use crate::model::digest::{entry_part, xor_into, Summary};
use crate::model::{FileEntry, FileId, NodeId, NodeRecord, Placed, RepoPath};

/// An entry as changed here, for a peer that asks what changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryChange {
    /// The change sequence of its last change.
    pub seq: u64,
    /// The change sequence of its last change other than in holder slots: a
    /// peer that has merged this node's changes up to it lacks only slots.
    pub body_seq: u64,
    /// The peer whose version that change took whole (see
    /// [`Writer::put_merged_entry`]): it lacks only slots too.
    pub body_from: Option<NodeId>,
    /// The entry.
    pub entry: FileEntry,
}

/// A node record as changed here, for a peer that asks what changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeChange {
    /// The change sequence of its last change.
    pub seq: u64,
    /// The record.
    pub record: NodeRecord,
    /// The peer it was taken from as that peer sent it, which has it.
    pub from: Option<NodeId>,
}

/// The order [`Store::each_placed`] hands entries over in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// By the path each is placed at.
    ByPath,
    /// As the table stores them (by file id).
    Stored,
}

impl Store {
    /// XOR of every entry's digest: equal on two nodes exactly when they hold
    /// the same replicated state (barring a 2^-256 accident).
    pub fn state_digest(&self) -> Result<[u8; 32]> {
        fixed_meta(self.meta_bytes("state_digest")?, "state_digest")
    }

    /// The state digest cut into buckets (see [`Summary`]): about eight
    /// entries and node records a bucket.
    pub fn summary(&self) -> Result<Summary> {
        let rows: i64 = self.conn.query_row(
            "SELECT (SELECT COUNT(*) FROM entries) + (SELECT COUNT(*) FROM nodes)",
            [],
            |r| r.get(0),
        )?;
        self.summary_of(Summary::buckets_for(rows as usize))
    }

    /// The state digest cut into `buckets` buckets, a power of two.
    pub fn summary_of(&self, buckets: usize) -> Result<Summary> {
        let mut summary = Summary::new(buckets);
        for sql in [
            "SELECT file_id, digest FROM entries",
            "SELECT node_id, digest FROM nodes",
        ] {
            let mut stmt = self.conn.prepare_cached(sql)?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let key: Vec<u8> = row.get(0)?;
                let digest = fixed_meta(row.get(1)?, "row digest")?;
                summary.add(&key, &digest);
            }
        }
        Ok(summary)
    }

    /// The last change sequence given to an entry (0 before any).
    pub fn change_seq(&self) -> Result<u64> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'change_seq'", [], |r| {
                r.get::<_, i64>(0)
            })
            .optional()?
            .unwrap_or(0) as u64)
    }

    /// Up to `limit` entries whose last change is after `after` and at most
    /// `upto`, in change order.
    pub fn entries_between(&self, after: u64, upto: u64, limit: usize) -> Result<Vec<EntryChange>> {
        let upto = upto.min(i64::MAX as u64) as i64;
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, body_seq, body_from, data FROM entries WHERE seq > ?1 AND seq <= ?2
             ORDER BY seq LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![after as i64, upto, limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, Option<Vec<u8>>>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        })?;
        rows.map(|row| {
            let (seq, body_seq, body_from, data) = row?;
            Ok(EntryChange {
                seq,
                body_seq,
                body_from: body_from
                    .map(|id| fixed_meta(id, "node id").map(NodeId))
                    .transpose()?,
                entry: decode("file entry", &data)?,
            })
        })
        .collect()
    }

    /// The `(seq, data)` rows of `sql` as decoded entries.
    fn entries_with_seq(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<(u64, FileEntry)>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params, |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, Vec<u8>>(1)?))
        })?;
        rows.map(|row| {
            let (seq, data) = row?;
            Ok((seq, decode("file entry", &data)?))
        })
        .collect()
    }

    /// Up to `limit` node records changed after `after` and at most
    /// `upto`, in change order.
    pub fn node_changes_between(
        &self,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<NodeChange>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, data, from_peer FROM nodes WHERE seq > ?1 AND seq <= ?2
             ORDER BY seq LIMIT ?3",
        )?;
        let rows = stmt.query_map(
            params![after as i64, upto.min(i64::MAX as u64) as i64, limit as i64],
            |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Option<Vec<u8>>>(2)?,
                ))
            },
        )?;
        rows.map(|row| {
            let (seq, data, from) = row?;
            Ok(NodeChange {
                seq,
                record: decode("node record", &data)?,
                from: from
                    .map(|id| fixed_meta(id, "node id").map(NodeId))
                    .transpose()?,
            })
        })
        .collect()
    }

    /// Node records changed after `after` and up to `upto`.
    pub fn nodes_between(&self, after: u64, upto: u64) -> Result<Vec<NodeRecord>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT data FROM nodes WHERE seq > ?1 AND seq <= ?2 ORDER BY seq")?;
        let rows = stmt.query_map(
            params![after as i64, upto.min(i64::MAX as u64) as i64],
            |r| r.get::<_, Vec<u8>>(0),
        )?;
        rows.map(|data| decode("node record", &data?)).collect()
    }

    /// Every known node's record.
    pub fn nodes(&self) -> Result<Vec<NodeRecord>> {
        self.nodes_between(0, u64::MAX)
    }

    /// The record of node `id`, if it is known.
    pub fn node(&self, id: NodeId) -> Result<Option<NodeRecord>> {
        read_node(&self.conn, id)
    }

    /// Tombstones (deleted entries) with their change sequence.
    pub fn tombstones(&self) -> Result<Vec<(u64, FileEntry)>> {
        self.entries_with_seq("SELECT seq, data FROM entries WHERE deleted = 1", [])
    }

    /// Every entry of the repository, as replicated.
    pub fn entries(&self) -> Result<Vec<FileEntry>> {
        let mut stmt = self
            .conn
            .prepare("SELECT data FROM entries ORDER BY path")?;
        let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        rows.map(|data| decode("file entry", &data?)).collect()
    }

    /// Every entry of the repository with the path it is placed at, in
    /// path order.
    pub fn placed_entries(&self) -> Result<Vec<Placed>> {
        let mut stmt = self.conn.prepare(
            "SELECT e.data, d.placed FROM entries AS e LEFT JOIN displaced AS d USING (file_id)
             ORDER BY COALESCE(d.placed, e.path)",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Option<String>>(1)?))
        })?;
        rows.map(|row| {
            let (data, placed) = row?;
            derived::placed(decode("file entry", &data)?, placed)
        })
        .collect()
    }

    /// Runs `each` on every entry at or under `prefix` (every entry when
    /// `None`) with the path it is placed at, reading them as it goes: `ls`
    /// and `status` of a million files hold one entry at a time, not a
    /// million.
    ///
    /// In [`Order::ByPath`] the entries come in path order, through the
    /// path index (a lookup of the row per entry); the few displaced files
    /// (whose placed name is not their path) are read first and merged in
    /// at their names. [`Order::Stored`] reads the table as it lies, which
    /// is several times faster, for callers that sort what they keep.
    pub fn each_placed(
        &self,
        prefix: Option<&RepoPath>,
        order: Order,
        mut each: impl FnMut(Placed) -> Result<()>,
    ) -> Result<()> {
        let under = |p: &RepoPath| prefix.is_none_or(|prefix| p.starts_with(prefix));
        if order == Order::Stored {
            // The few displaced names first, then one plain scan of the
            // table (a join per row would make SQLite walk an index and
            // look each row up).
            let mut names = self.conn.prepare("SELECT file_id, placed FROM displaced")?;
            let names = names
                .query_map([], |r| {
                    Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))
                })?
                .collect::<rusqlite::Result<std::collections::HashMap<_, _>>>()?;
            let mut stmt = self.conn.prepare("SELECT data FROM entries")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let data = row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
                let entry: FileEntry = decode("file entry", data)?;
                let name = names.get(&entry.id.0[..]).cloned();
                let placed = derived::placed(entry, name)?;
                if under(&placed.path) {
                    each(placed)?;
                }
            }
            return Ok(());
        }
        // CROSS JOIN: from the few displaced rows to their entries, never
        // the other way round.
        let mut displaced = self.conn.prepare(
            "SELECT e.data, d.placed FROM displaced AS d CROSS JOIN entries AS e USING (file_id)
             ORDER BY d.placed",
        )?;
        let displaced = displaced
            .query_map([], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))
            })?
            .map(|row| {
                let (data, placed) = row?;
                derived::placed(decode("file entry", &data)?, Some(placed))
            })
            .filter(|p| p.as_ref().map_or(true, |p| under(&p.path)))
            .collect::<Result<Vec<Placed>>>()?;
        let mut displaced = displaced.into_iter().peekable();
        // Everything at or under `prefix` sorts between it and the same
        // with its last byte past '/' ("a" .. "a0"); what else falls in that
        // range ("a.b") is filtered out.
        let (sql, range) = match prefix {
            None => (
                "SELECT data FROM entries WHERE file_id NOT IN (SELECT file_id FROM displaced)
                 ORDER BY path",
                None,
            ),
            Some(p) => (
                "SELECT data FROM entries WHERE file_id NOT IN (SELECT file_id FROM displaced)
                 AND path >= ?1 AND path < ?2 ORDER BY path",
                Some((p.as_str().to_owned(), format!("{p}0"))),
            ),
        };
        let mut stmt = self.conn.prepare(sql)?;
        let mut rows = match &range {
            None => stmt.query([])?,
            Some((from, to)) => stmt.query(params![from, to])?,
        };
        while let Some(row) = rows.next()? {
            let data = row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
            let placed = derived::placed(decode("file entry", data)?, None)?;
            if !under(&placed.path) {
                continue;
            }
            while let Some(before) = displaced.next_if(|d| d.path < placed.path) {
                each(before)?;
            }
            each(placed)?;
        }
        displaced.try_for_each(each)
    }

    /// The entry of file `id`, if any.
    pub fn entry(&self, id: FileId) -> Result<Option<FileEntry>> {
        read_entry(&self.conn, id)
    }

    /// The entry `id` with the path it is placed at.
    pub fn placed_entry(&self, id: FileId) -> Result<Option<Placed>> {
        derived::placed_entry(&self.conn, id)
    }
}

impl Writer<'_> {
    /// The next write counter of this node, for version vectors.
    pub fn next_write_counter(&self) -> Result<u64> {
        self.next("write_counter")
    }

    /// This node's last write counter taken: no version of its writes
    /// goes beyond it.
    pub fn write_counter(&self) -> Result<u64> {
        self.current("write_counter")
    }

    /// The entry of file `id` as this transaction sees it.
    pub fn entry(&self, id: FileId) -> Result<Option<FileEntry>> {
        read_entry(&self.txn, id)
    }

    /// The live (not deleted) file placed at `path`, if any.
    pub fn live_entry_at(&self, path: &RepoPath) -> Result<Option<FileEntry>> {
        derived::live_entry_at(&self.txn, path)
    }

    /// Stores an entry, stamping it with the next change sequence and
    /// updating the state digest.
    pub fn put_entry(&self, entry: &FileEntry) -> Result<()> {
        self.store_entry(entry, None, None)
    }

    /// Stores an entry merged from `peer` whose parts other than holder
    /// slots are `peer`'s version as it sent it: `peer` has them, so it
    /// needs only the slots of later changes (see [`EntryChange`]).
    pub fn put_merged_entry(&self, entry: &FileEntry, peer: NodeId) -> Result<()> {
        self.store_entry(entry, Some(peer), None)
    }

    /// [`Writer::put_entry`] (or [`Writer::put_merged_entry`], with `from`)
    /// of `entry` in place of `old`, the stored entry this transaction just
    /// read: the row is not read and decoded a second time (merging a batch
    /// and placing holder runs change thousands of entries so).
    pub fn replace_entry(
        &self,
        old: &FileEntry,
        entry: &FileEntry,
        from: Option<NodeId>,
    ) -> Result<()> {
        debug_assert_eq!(old.id, entry.id);
        self.store_entry(entry, from, Some(old))
    }

    /// Stores `entry`, with the peer its other parts were taken from whole,
    /// if so (kept when only holder slots change), over the stored entry
    /// (`known_old` if the caller has it, else read here).
    fn store_entry(
        &self,
        entry: &FileEntry,
        from: Option<NodeId>,
        known_old: Option<&FileEntry>,
    ) -> Result<()> {
        let seq = self.next("change_seq")?;
        let digest = self.digest_of(entry)?;
        let row: Option<StoredRow> = self
            .txn
            .prepare_cached(if known_old.is_some() {
                "SELECT digest, NULL, body_seq, body_from FROM entries WHERE file_id = ?1"
            } else {
                "SELECT digest, data, body_seq, body_from FROM entries WHERE file_id = ?1"
            })?
            .query_row([entry.id.0], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        let read_old;
        let (old, body_seq, body_from) = match row {
            Some((old_digest, data, old_body_seq, old_from)) => {
                self.swap_digest(Some(fixed_meta(old_digest, "row digest")?), digest)?;
                let old = match (known_old, data) {
                    (Some(old), _) => old,
                    (None, Some(data)) => {
                        read_old = decode::<FileEntry>("file entry", &data)?;
                        &read_old
                    }
                    (None, None) => {
                        return Err(StoreError::Corrupt("an entry without data".into()))
                    }
                };
                if entry.differs_only_in_holders(old) {
                    (Some(old), old_body_seq as u64, old_from)
                } else {
                    (Some(old), seq, from.map(|n| n.0.to_vec()))
                }
            }
            None => {
                self.swap_digest(None, digest)?;
                (None, seq, from.map(|n| n.0.to_vec()))
            }
        };
        self.txn
            .prepare_cached(
                "INSERT INTO entries(file_id, path, deleted, seq, digest, data, body_seq, body_from)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(file_id) DO UPDATE SET path = excluded.path,
                     deleted = excluded.deleted, seq = excluded.seq,
                     digest = excluded.digest, data = excluded.data,
                     body_seq = excluded.body_seq, body_from = excluded.body_from",
            )?
            .execute(params![
                entry.id.0,
                entry.current_path().as_str(),
                entry.is_deleted(),
                seq as i64,
                digest.to_vec(),
                encode(entry)?,
                body_seq as i64,
                body_from
            ])?;
        self.update_derived(old, Some(entry))
    }

    /// Removes an entry for good (a collected tombstone).
    pub fn remove_entry(&self, id: FileId) -> Result<()> {
        let old: Option<(Vec<u8>, Vec<u8>)> = self
            .txn
            .prepare_cached("SELECT digest, data FROM entries WHERE file_id = ?1")?
            .query_row([id.0], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((old_digest, data)) = old else {
            return Ok(());
        };
        self.swap_digest(Some(fixed_meta(old_digest, "row digest")?), [0; 32])?;
        self.txn
            .prepare_cached("DELETE FROM entries WHERE file_id = ?1")?
            .execute([id.0])?;
        let old: FileEntry = decode("file entry", &data)?;
        self.update_derived(Some(&old), None)
    }

    /// The record of node `id` as this transaction sees it.
    pub fn node(&self, id: NodeId) -> Result<Option<NodeRecord>> {
        read_node(&self.txn, id)
    }

    /// An entry's part of the state digest: nothing for a stable tombstone.
    fn digest_of(&self, entry: &FileEntry) -> Result<[u8; 32]> {
        let mut known = self.known.borrow_mut();
        if known.is_none() {
            *known = Some(self.known_nodes()?);
        }
        Ok(entry_part(entry, known.as_ref().expect("loaded above")))
    }

    /// The ids of every node with a record, as this transaction sees them.
    pub fn known_nodes(&self) -> Result<Vec<NodeId>> {
        self.txn
            .prepare_cached("SELECT node_id FROM nodes")?
            .query_map([], |r| r.get::<_, Vec<u8>>(0))?
            .map(|id| Ok(NodeId(fixed_meta(id?, "node id")?)))
            .collect()
    }

    /// Stores a node record, like [`Writer::put_entry`]; `from`: the peer
    /// it was taken from as that peer sent it (which needs it not back). A
    /// node seen for the first time may make stable tombstones unstable
    /// again: their digests are recomputed.
    pub fn put_node(&self, record: &NodeRecord, from: Option<NodeId>) -> Result<()> {
        if self.node(record.id)?.is_none() {
            self.known.borrow_mut().take();
            self.rehash_tombstones_with(record.id)?;
        }
        let seq = self.next("change_seq")?;
        let digest = self.swap_node_digest(record)?;
        self.txn
            .prepare_cached(
                "INSERT OR REPLACE INTO nodes(node_id, seq, digest, data, from_peer)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                record.id.0,
                seq as i64,
                digest.to_vec(),
                encode(record)?,
                from.map(|peer| peer.0.to_vec())
            ])?;
        Ok(())
    }

    /// Stores `record` again under its change sequence, with its digest
    /// swapped in the state digest: the same record in a new encoding (a
    /// schema upgrade), which peers need not be told of.
    pub(super) fn rewrite_node(&self, record: &NodeRecord) -> Result<()> {
        let digest = self.swap_node_digest(record)?;
        self.txn
            .prepare_cached("UPDATE nodes SET digest = ?1, data = ?2 WHERE node_id = ?3")?
            .execute(params![digest.to_vec(), encode(record)?, record.id.0])?;
        Ok(())
    }

    /// Puts `record`'s digest in the state digest in place of the stored
    /// record's; returns it.
    fn swap_node_digest(&self, record: &NodeRecord) -> Result<[u8; 32]> {
        let digest = record.digest();
        self.replace_digest(
            "SELECT digest FROM nodes WHERE node_id = ?1",
            &record.id.0,
            digest,
        )?;
        Ok(digest)
    }

    /// Recomputes the digest of every tombstone, counting `newcomer` among
    /// the known nodes. A tombstone that was stable is not any more (the
    /// newcomer has not acknowledged it), and it is stamped as a new change
    /// for every peer: peers that had merged past it must be sent it again,
    /// or the newcomer never learns of the deletion, and this node keeps a
    /// tombstone that counts in its digest and in no one else's.
    fn rehash_tombstones_with(&self, newcomer: NodeId) -> Result<()> {
        let rows: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = self
            .txn
            .prepare_cached("SELECT file_id, digest, data FROM entries WHERE deleted = 1")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut known = self.known_nodes()?;
        known.push(newcomer);
        for (id, old, data) in rows {
            let digest = entry_part(&decode("file entry", &data)?, &known);
            let old = fixed_meta(old, "row digest")?;
            if digest == old {
                continue;
            }
            self.swap_digest(Some(old), digest)?;
            let seq = self.next("change_seq")? as i64;
            self.txn
                .prepare_cached(
                    "UPDATE entries SET digest = ?1, seq = ?2, body_seq = ?2, body_from = NULL
                     WHERE file_id = ?3",
                )?
                .execute(params![digest.to_vec(), seq, id])?;
        }
        Ok(())
    }

    /// Swaps a row's old digest (found by `select_old` with `key`) for `new`
    /// in the state digest.
    fn replace_digest(&self, select_old: &str, key: &[u8], new: [u8; 32]) -> Result<()> {
        let old: Option<Vec<u8>> = self
            .txn
            .prepare_cached(select_old)?
            .query_row([key], |r| r.get(0))
            .optional()?;
        let old = old.map(|old| fixed_meta(old, "row digest")).transpose()?;
        self.swap_digest(old, new)
    }

    /// Swaps a row's `old` digest for `new` in the state digest; XOR makes
    /// the order of changes irrelevant.
    fn swap_digest(&self, old: Option<[u8; 32]>, new: [u8; 32]) -> Result<()> {
        let mut meta = self.meta.borrow_mut();
        let state = match &mut meta.digest {
            Some(state) => state,
            empty => empty.insert(fixed_meta(
                self.txn
                    .prepare_cached("SELECT value FROM meta WHERE key = 'state_digest'")?
                    .query_row([], |r| r.get(0))?,
                "state_digest",
            )?),
        };
        if let Some(old) = old {
            xor_into(state, &old);
        }
        xor_into(state, &new);
        Ok(())
    }
}

/// An entry's row as stored: digest, data (unless the caller has the
/// entry), body_seq, body_from.
type StoredRow = (Vec<u8>, Option<Vec<u8>>, i64, Option<Vec<u8>>);

fn read_entry(conn: &Connection, id: FileId) -> Result<Option<FileEntry>> {
    let data: Option<Vec<u8>> = conn
        .prepare_cached("SELECT data FROM entries WHERE file_id = ?1")?
        .query_row([id.0], |r| r.get(0))
        .optional()?;
    data.map(|d| decode("file entry", &d)).transpose()
}

fn read_node(conn: &Connection, id: NodeId) -> Result<Option<NodeRecord>> {
    let data: Option<Vec<u8>> = conn
        .prepare_cached("SELECT data FROM nodes WHERE node_id = ?1")?
        .query_row([id.0], |r| r.get(0))
        .optional()?;
    data.map(|d| decode("node record", &d)).transpose()
}
