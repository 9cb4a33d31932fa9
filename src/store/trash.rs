//! Rows of the trash table: the versions `.harmony/trash/` keeps.

use rusqlite::params;

use super::{Result, Store, StoreError, Writer};
use crate::model::{ContentHash, RepoPath};

/// One file kept in `.harmony/trash/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrashRecord {
    /// Its file name inside `.harmony/trash/`.
    pub name: String,
    /// The repository path the version had.
    pub path: RepoPath,
    /// blake3 of the kept bytes.
    pub hash: ContentHash,
    /// Length in bytes.
    pub size: u64,
    /// When it was kept, ms since the Unix epoch.
    pub at_ms: i64,
    /// Why it was kept (a code of `repo::TrashReason`).
    pub reason: u8,
}

impl Writer<'_> {
    /// Records a file put in the trash.
    pub fn put_trash(&self, record: &TrashRecord) -> Result<()> {
        self.txn
            .prepare_cached(
                "INSERT OR REPLACE INTO trash(name, path, hash, size, at_ms, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                record.name,
                record.path.as_str(),
                record.hash.0,
                record.size as i64,
                record.at_ms,
                record.reason
            ])?;
        Ok(())
    }

    /// Forgets the trash file `name` (emptied).
    pub fn remove_trash(&self, name: &str) -> Result<()> {
        self.txn
            .prepare_cached("DELETE FROM trash WHERE name = ?1")?
            .execute([name])?;
        Ok(())
    }
}

impl Store {
    /// Everything the trash keeps, oldest first.
    pub fn trash(&self) -> Result<Vec<TrashRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT name, path, hash, size, at_ms, reason FROM trash ORDER BY at_ms, name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, u8>(5)?,
            ))
        })?;
        rows.map(|row| {
            let (name, path, hash, size, at_ms, reason) = row?;
            Ok(TrashRecord {
                name,
                path: RepoPath::new(&path).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                hash: ContentHash(super::fixed_meta(hash, "trashed content hash")?),
                size: size as u64,
                at_ms,
                reason,
            })
        })
        .collect()
    }
}
