//! The state database: SQLite in WAL mode, so a running `serve` and a CLI
//! command can use it at once, and every change is one atomic, durable
//! transaction (a crash at any instant leaves the last committed state).

mod addresses;
mod derived;
mod records;
mod trash;

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::chunk::{ChunkParams, Manifest};
use crate::model::digest::{entry_part, xor_into};
use crate::model::{ContentHash, FileEntry, FileId, NodeId, NodeRecord, Placed, RepoId, RepoPath};
pub use records::{BlockedFile, FileStat, LocalFile, PeerRecord};
pub use trash::TrashRecord;

/// The database file inside `.harmony/`.
pub const DB_FILE: &str = "state.db";
const SCHEMA: &str = include_str!("schema.sql");
const SCHEMA_VERSION: i64 = 2;
/// How long a writer waits for another process's transaction to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of write-ahead log kept after a checkpoint (a big merge may grow
/// it far beyond, see [`Store::open_snapshot`]).
pub const WAL_SIZE_LIMIT: i64 = 64 << 20;

/// A [`Store`] that only reads, from a snapshot ([`Store::open_snapshot`]).
pub struct Snapshot(Store);

impl std::ops::Deref for Snapshot {
    type Target = Store;

    fn deref(&self) -> &Store {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("state database is damaged: {0}")]
    Corrupt(String),
    #[error("state database has schema version {found}, this harmony understands {SCHEMA_VERSION}; use a matching harmony version")]
    SchemaVersion { found: i64 },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// This location's settings, fixed at `init` (name and listen can change).
#[derive(Clone, Debug)]
pub struct Settings {
    pub repo_id: RepoId,
    pub node_name: String,
    pub listen: String,
    pub chunking: ChunkParams,
}

pub struct Store {
    conn: Connection,
}

impl Store {
    /// Creates a new database with `settings`. Fails if one exists.
    pub fn create(path: &Path, settings: &Settings) -> Result<Self> {
        let mut store = Self::connect(path)?;
        let txn = store
            .conn
            .transaction_with_behavior(TransactionBehavior::Exclusive)?;
        txn.execute_batch(SCHEMA)?;
        txn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        for (key, value) in [
            ("repo_id", settings.repo_id.0.to_vec()),
            ("node_name", settings.node_name.clone().into_bytes()),
            ("listen", settings.listen.clone().into_bytes()),
            ("chunking", encode(&settings.chunking)?),
            ("incarnation", rand::random::<[u8; 8]>().to_vec()),
            ("state_digest", vec![0u8; 32]),
        ] {
            txn.execute(
                "INSERT INTO meta(key, value) VALUES (?1, ?2)",
                params![key, value],
            )?;
        }
        txn.commit()?;
        Ok(store)
    }

    /// Opens an existing database.
    pub fn open(path: &Path) -> Result<Self> {
        let store = Self::connect(path)?;
        let found: i64 = store
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found != SCHEMA_VERSION {
            return Err(StoreError::SchemaVersion { found });
        }
        Ok(store)
    }

    /// Opens the database with a read snapshot: every read through it sees
    /// the state as of this call, whatever other connections commit
    /// meanwhile. Used by a sync session, for its hello and its batches, so
    /// that merging the peer's changes while sending cannot move an entry
    /// out of the range being sent. WAL readers block no writer, but the WAL
    /// cannot be checkpointed past an open snapshot: it grows for as long as
    /// the snapshot lives (one session), and is cut back to
    /// [`WAL_SIZE_LIMIT`] at a later checkpoint.
    ///
    /// Without WAL (a filesystem that refuses it) a read transaction would
    /// block the session's own merges, so there the snapshot is a plain
    /// connection, and an entry changed during a session may wait for the
    /// next one.
    pub fn open_snapshot(path: &Path) -> Result<Snapshot> {
        let store = Self::open(path)?;
        let mode: String = store
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        if mode.eq_ignore_ascii_case("wal") {
            store.conn.execute_batch("BEGIN DEFERRED")?;
            // SQLite takes the snapshot at the first read of the transaction.
            store.change_seq()?;
        } else {
            tracing::warn!("state database in {mode} mode, not WAL: sync reads without a snapshot");
        }
        Ok(Snapshot(store))
    }

    fn connect(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        // FULL: a transaction reported committed survives a power cut too.
        conn.pragma_update(None, "synchronous", "FULL")?;
        // 64 MiB of page cache (the default 8 MiB spills a 100,000-file commit
        // to the WAL and reads it back mid-transaction).
        conn.pragma_update(None, "cache_size", -65536)?;
        Ok(Store { conn })
    }

    pub fn settings(&self) -> Result<Settings> {
        let repo = self.meta_bytes("repo_id")?;
        let repo_id = RepoId(fixed_meta(repo, "repo_id")?);
        Ok(Settings {
            repo_id,
            node_name: self.meta_text("node_name")?,
            listen: self.meta_text("listen")?,
            chunking: decode("chunking", &self.meta_bytes("chunking")?)?,
        })
    }

    /// True while this location has recorded nothing and synced with no one:
    /// it may still join another repository.
    pub fn is_fresh(&self) -> Result<bool> {
        Ok(!holds_state(&self.conn)?)
    }

    /// Makes a fresh location part of the repository `repo_id` (its first
    /// sync). Refused once the location holds any state of its own.
    pub fn join_repository(&mut self, repo_id: RepoId) -> Result<bool> {
        let txn = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if holds_state(&txn)? {
            return Ok(false);
        }
        txn.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'repo_id'",
            [repo_id.0.to_vec()],
        )?;
        txn.commit()?;
        Ok(true)
    }

    fn meta_bytes(&self, key: &str) -> Result<Vec<u8>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?
            .ok_or_else(|| StoreError::Corrupt(format!("setting `{key}` is missing")))
    }

    fn meta_text(&self, key: &str) -> Result<String> {
        String::from_utf8(self.meta_bytes(key)?)
            .map_err(|_| StoreError::Corrupt(format!("setting `{key}` is not UTF-8")))
    }

    /// Random per database: a peer that remembers our change sequence from
    /// another incarnation (a restored backup) must start over.
    pub fn incarnation(&self) -> Result<[u8; 8]> {
        fixed_meta(self.meta_bytes("incarnation")?, "incarnation")
    }

    /// XOR of every entry's digest: equal on two nodes exactly when they hold
    /// the same replicated state (barring a 2^-256 accident).
    pub fn state_digest(&self) -> Result<[u8; 32]> {
        fixed_meta(self.meta_bytes("state_digest")?, "state_digest")
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
    /// `upto`, in change order, each with its change sequence.
    pub fn entries_between(
        &self,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<(u64, FileEntry)>> {
        let upto = upto.min(i64::MAX as u64) as i64;
        self.entries_with_seq(
            "SELECT seq, data FROM entries WHERE seq > ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3",
            params![after as i64, upto, limit as i64],
        )
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

    pub fn node(&self, id: NodeId) -> Result<Option<NodeRecord>> {
        read_node(&self.conn, id)
    }

    /// How far this node has merged `peer`'s changes, if it knows.
    pub fn peer_progress(&self, peer: NodeId) -> Result<Option<([u8; 8], u64)>> {
        let row: Option<(Vec<u8>, i64)> = self
            .conn
            .query_row(
                "SELECT incarnation, seq FROM peer_progress WHERE node_id = ?1",
                [peer.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(inc, seq)| Ok((fixed_meta(inc, "peer incarnation")?, seq as u64)))
            .transpose()
    }

    /// Tombstones (deleted entries) with their change sequence.
    pub fn tombstones(&self) -> Result<Vec<(u64, FileEntry)>> {
        self.entries_with_seq("SELECT seq, data FROM entries WHERE deleted = 1", [])
    }

    /// The lowest change sequence of this node that every direct peer (a
    /// trusted peer, or a node this one synced with) is known to have merged.
    /// `None` when there is no peer at all.
    pub fn merged_by_all_peers(&self) -> Result<Option<u64>> {
        let row: (i64, Option<i64>) = self.conn.query_row(
            "SELECT COUNT(*), MIN(COALESCE(h.seq, 0)) FROM (
                 SELECT node_id FROM peers UNION SELECT node_id FROM peer_has_mine
             ) AS p LEFT JOIN peer_has_mine AS h ON h.node_id = p.node_id",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((row.0 > 0).then(|| row.1.unwrap_or(0) as u64))
    }

    /// Every path this location recorded, with its stat fields.
    pub fn local_files(&self) -> Result<Vec<LocalFile>> {
        let mut stmt = self.conn.prepare(
            "SELECT path, file_id, hash, size, mtime_ns, ctime_ns, inode, dev, kind FROM local_files",
        )?;
        let rows = stmt.query_map([], LocalFile::from_row)?;
        rows.map(|r| r.map_err(StoreError::from)).collect()
    }

    /// Where this location holds the file `id`, if it does.
    pub fn local_file_by_id(&self, id: FileId) -> Result<Option<LocalFile>> {
        self.local_file_where("file_id", &id.0)
    }

    /// A working-tree file recorded with content `hash`, if any.
    pub fn local_file_by_hash(&self, hash: ContentHash) -> Result<Option<LocalFile>> {
        self.local_file_where("hash", &hash.0)
    }

    fn local_file_where(&self, column: &str, value: &[u8]) -> Result<Option<LocalFile>> {
        let sql = format!(
            "SELECT path, file_id, hash, size, mtime_ns, ctime_ns, inode, dev, kind
             FROM local_files WHERE {column} = ?1 LIMIT 1"
        );
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row([value], LocalFile::from_row)
            .optional()?)
    }

    /// The files held here whose content has a stored manifest (several
    /// chunks), with it: where each such chunk can be read locally.
    pub fn local_manifests(&self) -> Result<Vec<(LocalFile, Manifest)>> {
        let mut stmt = self.conn.prepare(
            "SELECT l.path, l.file_id, l.hash, l.size, l.mtime_ns, l.ctime_ns, l.inode, l.dev, l.kind,
                    m.chunks
             FROM local_files AS l JOIN manifests AS m ON m.hash = l.hash",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((LocalFile::from_row(r)?, r.get::<_, Vec<u8>>(9)?))
        })?;
        rows.map(|row| {
            let (file, chunks) = row?;
            Ok((file, decode("manifest", &chunks)?))
        })
        .collect()
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

    pub fn entry(&self, id: FileId) -> Result<Option<FileEntry>> {
        read_entry(&self.conn, id)
    }

    /// The entry `id` with the path it is placed at.
    pub fn placed_entry(&self, id: FileId) -> Result<Option<Placed>> {
        derived::placed_entry(&self.conn, id)
    }

    pub fn manifest(&self, hash: ContentHash) -> Result<Option<Manifest>> {
        let data: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT chunks FROM manifests WHERE hash = ?1",
                [hash.0],
                |r| r.get(0),
            )
            .optional()?;
        data.map(|d| decode("manifest", &d)).transpose()
    }

    pub fn peers(&self) -> Result<Vec<PeerRecord>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, node_id, addr, added_ms FROM peers ORDER BY name")?;
        let rows = stmt.query_map([], PeerRecord::from_row)?;
        rows.map(|r| r.map_err(StoreError::from)).collect()
    }

    /// Starts a write transaction, waiting for other writers. Dropping the
    /// returned [`Writer`] without [`Writer::commit`] rolls everything back.
    pub fn write(&mut self) -> Result<Writer<'_>> {
        let txn = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        Ok(Writer {
            txn,
            known: Default::default(),
            meta: Default::default(),
            replaced: Default::default(),
        })
    }
}

/// One atomic batch of changes to the state.
pub struct Writer<'a> {
    txn: rusqlite::Transaction<'a>,
    /// Ids of the known nodes, loaded on first need: a tombstone every one
    /// of them has acknowledged is stable and counts for nothing in the
    /// state digest (nodes collect stable tombstones at different moments,
    /// and must not disagree about the state because of it).
    known: std::cell::RefCell<Option<Vec<NodeId>>>,
    /// Counters and the state digest, read on first use and written back
    /// once at commit (a merge of 100,000 entries would otherwise run four
    /// more statements per entry).
    meta: std::cell::RefCell<CachedMeta>,
    /// Files whose placement changed in this batch though their own entry
    /// may not have (another file took or freed the path they claim): the
    /// working tree must follow them too.
    replaced: std::cell::RefCell<Vec<FileId>>,
}

#[derive(Default)]
struct CachedMeta {
    counters: std::collections::HashMap<&'static str, u64>,
    digest: Option<[u8; 32]>,
}

impl Writer<'_> {
    /// Takes the next value of the counter `key` (starting at 1).
    fn next(&self, key: &'static str) -> Result<u64> {
        let mut meta = self.meta.borrow_mut();
        let value = match meta.counters.get(key) {
            Some(value) => *value,
            None => self
                .txn
                .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
                .query_row([key], |r| r.get::<_, i64>(0))
                .optional()?
                .unwrap_or(0) as u64,
        };
        meta.counters.insert(key, value + 1);
        Ok(value + 1)
    }

    /// The next write counter of this node, for version vectors.
    pub fn next_write_counter(&self) -> Result<u64> {
        self.next("write_counter")
    }

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
        let seq = self.next("change_seq")?;
        let digest = self.digest_of(entry)?;
        let old: Option<(Vec<u8>, Vec<u8>)> = self
            .txn
            .prepare_cached("SELECT digest, data FROM entries WHERE file_id = ?1")?
            .query_row([entry.id.0], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let old = match old {
            Some((old_digest, data)) => {
                self.swap_digest(Some(fixed_meta(old_digest, "row digest")?), digest)?;
                Some(decode::<FileEntry>("file entry", &data)?)
            }
            None => {
                self.swap_digest(None, digest)?;
                None
            }
        };
        self.txn
            .prepare_cached(
                "INSERT INTO entries(file_id, path, deleted, seq, digest, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(file_id) DO UPDATE SET path = excluded.path,
                     deleted = excluded.deleted, seq = excluded.seq,
                     digest = excluded.digest, data = excluded.data",
            )?
            .execute(params![
                entry.id.0,
                entry.current_path().as_str(),
                entry.is_deleted(),
                seq as i64,
                digest.to_vec(),
                encode(entry)?
            ])?;
        self.update_derived(old.as_ref(), Some(entry))
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

    fn known_nodes(&self) -> Result<Vec<NodeId>> {
        self.txn
            .prepare_cached("SELECT node_id FROM nodes")?
            .query_map([], |r| r.get::<_, Vec<u8>>(0))?
            .map(|id| Ok(NodeId(fixed_meta(id?, "node id")?)))
            .collect()
    }

    /// Stores a node record, like [`Writer::put_entry`]. A node seen for the
    /// first time may make stable tombstones unstable again: their digests
    /// are recomputed.
    pub fn put_node(&self, record: &NodeRecord) -> Result<()> {
        if self.node(record.id)?.is_none() {
            self.known.borrow_mut().take();
            self.rehash_tombstones_with(record.id)?;
        }
        let seq = self.next("change_seq")?;
        let digest = record.digest();
        self.replace_digest(
            "SELECT digest FROM nodes WHERE node_id = ?1",
            &record.id.0,
            digest,
        )?;
        self.txn
            .prepare_cached(
                "INSERT OR REPLACE INTO nodes(node_id, seq, digest, data) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                record.id.0,
                seq as i64,
                digest.to_vec(),
                encode(record)?
            ])?;
        Ok(())
    }

    /// Recomputes the digest of every tombstone, counting `newcomer` among
    /// the known nodes.
    fn rehash_tombstones_with(&self, newcomer: NodeId) -> Result<()> {
        let rows: Vec<(Vec<u8>, Vec<u8>)> = self
            .txn
            .prepare_cached("SELECT file_id, data FROM entries WHERE deleted = 1")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut known = self.known_nodes()?;
        known.push(newcomer);
        for (id, data) in rows {
            let digest = entry_part(&decode("file entry", &data)?, &known);
            self.replace_digest("SELECT digest FROM entries WHERE file_id = ?1", &id, digest)?;
            self.txn
                .prepare_cached("UPDATE entries SET digest = ?1 WHERE file_id = ?2")?
                .execute(params![digest.to_vec(), id])?;
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

    /// Records that `peer` has merged this node's changes up to `seq`.
    pub fn set_peer_has_mine(&self, peer: NodeId, seq: u64) -> Result<()> {
        self.txn
            .prepare_cached("INSERT OR REPLACE INTO peer_has_mine(node_id, seq) VALUES (?1, ?2)")?
            .execute(params![peer.0, seq as i64])?;
        Ok(())
    }

    /// Records that every change of `peer` up to `seq` (in its database
    /// `incarnation`) is merged here.
    pub fn set_peer_progress(&self, peer: NodeId, incarnation: [u8; 8], seq: u64) -> Result<()> {
        self.txn
            .prepare_cached(
                "INSERT OR REPLACE INTO peer_progress(node_id, incarnation, seq) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![peer.0, incarnation.to_vec(), seq as i64])?;
        Ok(())
    }

    pub fn put_local_file(&self, file: &LocalFile) -> Result<()> {
        let s = &file.stat;
        self.txn.prepare_cached("INSERT OR REPLACE INTO local_files(path, file_id, hash, size, mtime_ns, ctime_ns, inode, dev, kind)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")?.execute(params![
                file.path.as_str(),
                file.file_id.0,
                file.hash.0,
                s.size as i64,
                s.mtime_ns,
                s.ctime_ns,
                s.inode as i64,
                s.dev as i64,
                file.kind.code()
            ],
        )?;
        Ok(())
    }

    /// Where this location records the file `id`, if it holds it.
    pub fn local_file_path_of(&self, id: FileId) -> Result<Option<RepoPath>> {
        let path: Option<String> = self
            .txn
            .prepare_cached("SELECT path FROM local_files WHERE file_id = ?1")?
            .query_row([id.0], |r| r.get(0))
            .optional()?;
        path.map(|p| RepoPath::new(&p).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    pub fn remove_local_file(&self, path: &RepoPath) -> Result<()> {
        self.txn
            .prepare_cached("DELETE FROM local_files WHERE path = ?1")?
            .execute([path.as_str()])?;
        Ok(())
    }

    pub fn put_manifest(&self, hash: ContentHash, manifest: &Manifest) -> Result<()> {
        let data = encode(manifest)?;
        self.txn
            .prepare_cached("INSERT OR IGNORE INTO manifests(hash, chunks) VALUES (?1, ?2)")?
            .execute(params![hash.0, data])?;
        Ok(())
    }

    pub fn add_peer(&self, peer: &PeerRecord) -> Result<()> {
        self.txn
            .prepare_cached(
                "INSERT INTO peers(name, node_id, addr, added_ms) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![peer.name, peer.node_id.0, peer.addr, peer.added_ms])?;
        Ok(())
    }

    /// Forgets the peer called `name`; false if there was none.
    pub fn remove_peer(&self, name: &str) -> Result<bool> {
        Ok(self
            .txn
            .prepare_cached("DELETE FROM peers WHERE name = ?1")?
            .execute([name])?
            > 0)
    }

    /// Makes every change of this batch durable at once.
    pub fn commit(self) -> Result<()> {
        let meta = self.meta.take();
        for (key, value) in meta.counters {
            self.txn
                .prepare_cached(
                    "INSERT INTO meta(key, value) VALUES (?1, ?2)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                )?
                .execute(params![key, value as i64])?;
        }
        if let Some(digest) = meta.digest {
            self.txn
                .prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'state_digest'")?
                .execute([digest.to_vec()])?;
        }
        self.txn.commit()?;
        Ok(())
    }
}

fn read_entry(conn: &Connection, id: FileId) -> Result<Option<FileEntry>> {
    let data: Option<Vec<u8>> = conn
        .prepare_cached("SELECT data FROM entries WHERE file_id = ?1")?
        .query_row([id.0], |r| r.get(0))
        .optional()?;
    data.map(|d| decode("file entry", &d)).transpose()
}

/// Whether the database holds any replicated state or sync history.
fn holds_state(conn: &Connection) -> Result<bool> {
    Ok(conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM entries) OR EXISTS(SELECT 1 FROM peer_progress)
                OR (SELECT COUNT(*) FROM nodes) > 1",
        [],
        |r| r.get(0),
    )?)
}

fn fixed_meta<const N: usize>(bytes: Vec<u8>, what: &str) -> Result<[u8; N]> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("{what} is not {N} bytes")))
}

fn read_node(conn: &Connection, id: NodeId) -> Result<Option<NodeRecord>> {
    let data: Option<Vec<u8>> = conn
        .prepare_cached("SELECT data FROM nodes WHERE node_id = ?1")?
        .query_row([id.0], |r| r.get(0))
        .optional()?;
    data.map(|d| decode("node record", &d)).transpose()
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(|e| StoreError::Corrupt(format!("cannot encode: {e}")))
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, data: &[u8]) -> Result<T> {
    postcard::from_bytes(data).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}
