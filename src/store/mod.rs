//! The state database: SQLite in WAL mode, so a running `serve` and a CLI
//! command can use it at once, and every change is one atomic, durable
//! transaction (a crash at any instant leaves the last committed state).

mod records;

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::chunk::{ChunkParams, Manifest};
use crate::model::{ContentHash, FileEntry, FileId, RepoId, RepoPath};
pub use records::{FileStat, LocalFile, PeerRecord};

/// The database file inside `.harmony/`.
pub const DB_FILE: &str = "state.db";
const SCHEMA: &str = include_str!("schema.sql");
const SCHEMA_VERSION: i64 = 1;
/// How long a writer waits for another process's transaction to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

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

    fn connect(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a transaction reported committed survives a power cut too.
        conn.pragma_update(None, "synchronous", "FULL")?;
        // 64 MiB of page cache (the default 8 MiB spills a 100,000-file commit
        // to the WAL and reads it back mid-transaction).
        conn.pragma_update(None, "cache_size", -65536)?;
        Ok(Store { conn })
    }

    pub fn settings(&self) -> Result<Settings> {
        let repo = self.meta_bytes("repo_id")?;
        let repo_id = RepoId(
            repo.try_into()
                .map_err(|_| StoreError::Corrupt("repo_id is not 16 bytes".into()))?,
        );
        Ok(Settings {
            repo_id,
            node_name: self.meta_text("node_name")?,
            listen: self.meta_text("listen")?,
            chunking: decode("chunking", &self.meta_bytes("chunking")?)?,
        })
    }

    pub fn set_listen(&self, listen: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'listen'",
            params![listen.as_bytes()],
        )?;
        Ok(())
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

    /// Every path this location recorded, with its stat fields.
    pub fn local_files(&self) -> Result<Vec<LocalFile>> {
        let mut stmt = self.conn.prepare(
            "SELECT path, file_id, hash, size, mtime_ns, ctime_ns, inode, dev FROM local_files",
        )?;
        let rows = stmt.query_map([], LocalFile::from_row)?;
        rows.map(|r| r.map_err(StoreError::from)).collect()
    }

    /// Every entry of the repository, in path order.
    pub fn entries(&self) -> Result<Vec<FileEntry>> {
        let mut stmt = self
            .conn
            .prepare("SELECT data FROM entries ORDER BY path")?;
        let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        rows.map(|data| decode("file entry", &data?)).collect()
    }

    pub fn entry(&self, id: FileId) -> Result<Option<FileEntry>> {
        read_entry(&self.conn, id)
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
        Ok(Writer { txn })
    }
}

/// One atomic batch of changes to the state.
pub struct Writer<'a> {
    txn: rusqlite::Transaction<'a>,
}

impl Writer<'_> {
    /// Takes the next value of the counter `key` (starting at 1).
    fn next(&self, key: &str) -> Result<u64> {
        let current: Option<i64> = self
            .txn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?;
        let next = current.unwrap_or(0) + 1;
        self.txn
            .prepare_cached(
                "INSERT INTO meta(key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![key, next])?;
        Ok(next as u64)
    }

    /// The next write counter of this node, for version vectors.
    pub fn next_write_counter(&self) -> Result<u64> {
        self.next("write_counter")
    }

    pub fn entry(&self, id: FileId) -> Result<Option<FileEntry>> {
        read_entry(&self.txn, id)
    }

    /// Stores an entry, stamping it with the next change sequence.
    pub fn put_entry(&self, entry: &FileEntry) -> Result<()> {
        let seq = self.next("change_seq")?;
        let data = encode(entry)?;
        self.txn
            .prepare_cached(
                "INSERT INTO entries(file_id, path, deleted, seq, data) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(file_id) DO UPDATE SET path = excluded.path,
                 deleted = excluded.deleted, seq = excluded.seq, data = excluded.data",
            )?
            .execute(params![
                entry.id.0,
                entry.current_path().as_str(),
                entry.is_deleted(),
                seq as i64,
                data
            ])?;
        Ok(())
    }

    pub fn put_local_file(&self, file: &LocalFile) -> Result<()> {
        let s = &file.stat;
        self.txn.prepare_cached("INSERT OR REPLACE INTO local_files(path, file_id, hash, size, mtime_ns, ctime_ns, inode, dev)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")?.execute(params![
                file.path.as_str(),
                file.file_id.0,
                file.hash.0,
                s.size as i64,
                s.mtime_ns,
                s.ctime_ns,
                s.inode as i64,
                s.dev as i64
            ],
        )?;
        Ok(())
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

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(|e| StoreError::Corrupt(format!("cannot encode: {e}")))
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, data: &[u8]) -> Result<T> {
    postcard::from_bytes(data).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}
