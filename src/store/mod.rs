//! The state database: SQLite in WAL mode, so a running `serve` and a CLI
//! command can use it at once, and every change is one atomic, durable
//! transaction (a crash at any instant leaves the last committed state).
//!
//! This file holds the connection, the schema and the settings; the tables
//! live by job beside it: the replicated state and its digest
//! (`replicated`), what derives from it (`derived`), this location's own
//! files and manifests (`local`), peers and sync progress (`peers`, with the
//! addresses discovery learns in `addresses`), the invites this node made
//! (`invites`), and the trash (`trash`).

mod addresses;
mod derived;
mod invites;
mod local;
mod migrate;
mod peers;
mod records;
mod replicated;
mod trash;

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::chunk::ChunkParams;
use crate::model::{FileId, NodeId, RepoId, STATE_DIR};
pub use records::{BlockedFile, FileStat, LocalFile, PeerRecord};
pub use replicated::{EntryChange, NodeChange, Order};
pub use trash::TrashRecord;

/// The database file inside `.harmony/`.
pub const DB_FILE: &str = "state.db";
const SCHEMA: &str = include_str!("schema.sql");
const SCHEMA_VERSION: i64 = 6;
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

/// Why a state database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed (I/O, locking, a bad statement).
    #[error("state database: {0}")]
    Sqlite(rusqlite::Error),
    /// The database cannot grow: the disk holding it is full (`SQLITE_FULL`).
    /// The transaction was rolled back, so nothing is half-recorded.
    #[error("the disk holding {STATE_DIR}/{DB_FILE} is full, so the change was not recorded (nothing is lost); free space on it, then run this again")]
    Full,
    /// The database cannot be written (`SQLITE_READONLY`): it was opened
    /// read-only because its file system is mounted read-only, or its file
    /// is not writable.
    #[error("{STATE_DIR}/{DB_FILE} cannot be written: it is on a read-only file system (or the file is read-only); nothing there can be changed until it is writable again (status and ls still work)")]
    ReadOnly,
    /// A stored value does not decode or has the wrong size: damage or a foreign database.
    #[error("state database is damaged: {0}")]
    Corrupt(String),
    /// The database was written by a Harmony with another schema.
    #[error("state database has schema version {found}, this harmony understands {SCHEMA_VERSION}; use a matching harmony version")]
    SchemaVersion {
        /// The version it has.
        found: i64,
    },
}

/// A full disk and a read-only database are told apart from other SQLite
/// failures: each has its own remedy, which the user must be told.
impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        match error.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => StoreError::Full,
            // The `-shm` file could not be grown: SQLite's documentation
            // names a full disk as the cause.
            _ if extended_code(&error) == Some(rusqlite::ffi::SQLITE_IOERR_SHMSIZE) => {
                StoreError::Full
            }
            Some(rusqlite::ErrorCode::ReadOnly) => StoreError::ReadOnly,
            _ => StoreError::Sqlite(error),
        }
    }
}

/// Whether the database at `path` has a write-ahead log with frames in it
/// (changes not yet copied into the main file).
fn has_wal(path: &Path) -> bool {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).is_ok_and(|m| m.len() > 0)
}

/// `path` as an SQLite `file:` URI, every byte but the unreserved ones
/// percent-encoded (a `?` or `#` in a folder name must not start the query).
fn file_uri(path: &Path) -> String {
    use std::fmt::Write;
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file:");
    for &byte in path.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"/-_.~".contains(&byte) {
            uri.push(char::from(byte));
        } else {
            let _ = write!(uri, "%{byte:02X}");
        }
    }
    uri
}

fn extended_code(error: &rusqlite::Error) -> Option<std::ffi::c_int> {
    match error {
        rusqlite::Error::SqliteFailure(e, _) => Some(e.extended_code),
        _ => None,
    }
}

/// The store's result, with [`StoreError`] by default.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// This location's settings, fixed at `init` (name and listen can change).
#[derive(Clone, Debug)]
pub struct Settings {
    /// The repository this location belongs to; it changes once, when a fresh location
    /// joins another.
    pub repo_id: RepoId,
    /// This node's name, given at `init`.
    pub node_name: String,
    /// Where `serve` listens by default (`host:port`).
    pub listen: String,
    /// How contents are cut into chunks (the same for every location of the repository).
    pub chunking: ChunkParams,
}

/// The state database of one location: one SQLite connection, read directly and written
/// through [`Writer`] transactions.
pub struct Store {
    conn: Connection,
    /// Why this database was opened read-only, if it was.
    unwritable: Option<Unwritable>,
}

/// Why a [`Store`] was opened read-only.
#[derive(Clone, Copy, Debug)]
enum Unwritable {
    /// Its file system is mounted read-only.
    MountedReadOnly,
    /// Its disk is too full to open it for writing.
    DiskFull,
}

impl Store {
    /// Creates a new database with `settings`. Fails if one exists.
    pub fn create(path: &Path, settings: &Settings) -> Result<Self> {
        let mut store = Self::connect(path)?;
        store.writable()?;
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

    /// Shrinks the page cache to 8 MiB, for a command that reads the state
    /// once through (`ls`, `status`): the 64 MiB a large commit needs would
    /// fill with pages such a read never visits again, and be most of its
    /// memory.
    pub fn read_through(&self) -> Result<()> {
        self.conn.pragma_update(None, "cache_size", -8192)?;
        Ok(())
    }

    /// Opens an existing database, upgrading one of an older schema.
    pub fn open(path: &Path) -> Result<Self> {
        let mut store = Self::connect(path)?;
        let found: i64 = store
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found != SCHEMA_VERSION {
            migrate::upgrade(&mut store, found, SCHEMA_VERSION)?;
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
        if path.parent().is_some_and(crate::disk::is_read_only) {
            return Self::connect_read_only(path, Unwritable::MountedReadOnly);
        }
        match Self::connect_read_write(path) {
            // WAL mode needs its `-shm` file made and sized first, which a
            // full disk refuses: reading still works, from the main file,
            // when it holds everything (no `-wal` with changes in it).
            Err(StoreError::Full) if !has_wal(path) => {
                Self::connect_read_only(path, Unwritable::DiskFull)
            }
            connected => connected,
        }
    }

    fn connect_read_write(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        stable_plans(&conn)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        // FULL: a transaction reported committed survives a power cut too.
        conn.pragma_update(None, "synchronous", "FULL")?;
        // 64 MiB of page cache (the default 8 MiB spills a 100,000-file commit
        // to the WAL and reads it back mid-transaction).
        conn.pragma_update(None, "cache_size", -65536)?;
        Ok(Store {
            conn,
            unwritable: None,
        })
    }

    /// A database that can be read but not written (`why`): on a file
    /// system mounted read-only (a backup disk, a snapshot), or on a full
    /// disk. Opened read-only, so that the commands that only read work,
    /// and [`Store::write`] fails at once with the reason. WAL mode needs a
    /// `-shm` file, which cannot be made there: unless a process that
    /// stopped without closing left a `-wal` with changes (then read through
    /// its `-shm`), the file is opened as immutable, which needs neither,
    /// and reads exactly the state: a clean close leaves it all in the main
    /// file.
    fn connect_read_only(path: &Path, why: Unwritable) -> Result<Self> {
        use rusqlite::OpenFlags;
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = if has_wal(path) {
            Connection::open_with_flags(path, flags)?
        } else {
            Connection::open_with_flags(format!("{}?immutable=1", file_uri(path)), flags)?
        };
        conn.busy_timeout(BUSY_TIMEOUT)?;
        stable_plans(&conn)?;
        Ok(Store {
            conn,
            unwritable: Some(why),
        })
    }

    /// Fails, with the reason, when this database was opened read-only.
    fn writable(&self) -> Result<()> {
        match self.unwritable {
            None => Ok(()),
            Some(Unwritable::MountedReadOnly) => Err(StoreError::ReadOnly),
            Some(Unwritable::DiskFull) => Err(StoreError::Full),
        }
    }

    /// This location's settings as stored now.
    pub fn settings(&self) -> Result<Settings> {
        let repo = self.meta_bytes("repo_id")?;
        let repo_id = RepoId(fixed_meta(repo, "repo_id")?);
        Ok(Settings {
            repo_id,
            node_name: self.meta_text("node_name")?,
            listen: self.meta_text("listen")?,
            chunking: chunking(&self.meta_bytes("chunking")?)?,
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
        self.writable()?;
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

    /// Starts a write transaction, waiting for other writers. Dropping the
    /// returned [`Writer`] without [`Writer::commit`] rolls everything back.
    pub fn write(&mut self) -> Result<Writer<'_>> {
        self.writable()?;
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
    /// The last value taken of the counter `key` (0 before the first).
    fn current(&self, key: &'static str) -> Result<u64> {
        if let Some(value) = self.meta.borrow().counters.get(key) {
            return Ok(*value);
        }
        Ok(self
            .txn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
            .query_row([key], |r| r.get::<_, i64>(0))
            .optional()?
            .unwrap_or(0) as u64)
    }

    /// Takes the next value of the counter `key` (starting at 1).
    fn next(&self, key: &'static str) -> Result<u64> {
        let value = self.current(key)? + 1;
        self.meta.borrow_mut().counters.insert(key, value);
        Ok(value)
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

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(|e| StoreError::Corrupt(format!("cannot encode: {e}")))
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, data: &[u8]) -> Result<T> {
    postcard::from_bytes(data).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// The stored chunking, refused unless the chunker can use it.
fn chunking(data: &[u8]) -> Result<ChunkParams> {
    let params: ChunkParams = decode("chunking", data)?;
    if !params.is_valid() {
        return Err(StoreError::Corrupt(format!(
            "chunking {params:?} is outside what fastcdc can cut"
        )));
    }
    Ok(params)
}

/// Turns on SQLite's query planner stability guarantee: a statement keeps
/// its plan whatever values are bound to it. Without it, a query on
/// `entries` with `column = ?` is compared with the partial index
/// `tombstones` (`WHERE deleted = 1`), which marks `?` as plan-relevant, so
/// every new binding re-parsed and re-planned the cached statement: a
/// quarter of a first sync's time went to that (`sqlite3Reprepare`).
fn stable_plans(conn: &Connection) -> Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A damaged chunking setting was used as read: the fuzz driver's
    /// chunking target, run without this check, panicked in fastcdc (e.g.
    /// an average above the maximum), and a maximum of `u32::MAX` makes
    /// `commit` allocate a 16 GiB scratch buffer. It is refused when read.
    #[test]
    fn damaged_chunking_is_refused_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings {
            repo_id: RepoId([1; 16]),
            node_name: "t".into(),
            listen: "127.0.0.1:0".into(),
            chunking: ChunkParams::DEFAULT,
        };
        let path = dir.path().join("state.db");
        assert_eq!(
            Store::create(&path, &settings)
                .unwrap()
                .settings()
                .unwrap()
                .chunking,
            ChunkParams::DEFAULT
        );
        for (i, damaged) in [
            ChunkParams {
                min: 0,
                avg: 0,
                max: 0,
            },
            ChunkParams {
                max: u32::MAX,
                ..ChunkParams::DEFAULT
            },
            ChunkParams {
                min: 64 * 1024,
                ..ChunkParams::DEFAULT
            },
            // Odd: fastcdc asserts even sizes in debug builds.
            ChunkParams {
                avg: 32 * 1024 + 1,
                ..ChunkParams::DEFAULT
            },
        ]
        .into_iter()
        .enumerate()
        {
            settings.chunking = damaged;
            let path = dir.path().join(format!("{i}.db"));
            let store = Store::create(&path, &settings).unwrap();
            let err = store.settings().unwrap_err();
            assert!(matches!(err, StoreError::Corrupt(_)), "{damaged:?}: {err}");
        }
    }
}
