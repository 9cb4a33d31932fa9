//! Rows of the state database that are this location's own (not replicated).

use rusqlite::types::Type;
use rusqlite::Row;

use crate::model::{ContentHash, FileId, Kind, NodeId, RepoPath};

/// The stat fields of a working-tree file that change whenever its bytes may
/// have: if all are equal to what was recorded, the file is not read again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStat {
    /// Length in bytes.
    pub size: u64,
    /// Last modification time, ns since the Unix epoch.
    pub mtime_ns: i64,
    /// Last status change time, ns since the Unix epoch: it moves with any
    /// write, even one that puts the old mtime back.
    pub ctime_ns: i64,
    /// Inode number: changes when the file is replaced by another.
    pub inode: u64,
    /// Device number of the file system holding it.
    pub dev: u64,
}

/// A working-tree file as last recorded by this location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalFile {
    /// Where it is in the working tree.
    pub path: RepoPath,
    /// The repository file it is.
    pub file_id: FileId,
    /// blake3 of the bytes recorded.
    pub hash: ContentHash,
    /// Its stat fields when recorded.
    pub stat: FileStat,
    /// A regular file, an executable one, or a symbolic link.
    pub kind: Kind,
}

/// A remote change this location could not apply, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockedFile {
    /// The file whose change was not applied.
    pub file_id: FileId,
    /// Where the change would have put it.
    pub path: RepoPath,
    /// Why it was not applied, for `status`.
    pub reason: String,
    /// When it was blocked, ms since the Unix epoch.
    pub at_ms: i64,
}

/// A node this location trusts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerRecord {
    /// The name the user gave it; commands name peers by it.
    pub name: String,
    /// Its node id: what its certificate must prove.
    pub node_id: NodeId,
    /// `host:port` as the user gave it.
    pub addr: String,
    /// When it was added, ms since the Unix epoch.
    pub added_ms: i64,
}

impl LocalFile {
    pub(super) fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        let path: String = row.get(0)?;
        Ok(LocalFile {
            path: RepoPath::new(&path)
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, Type::Text, e.into()))?,
            file_id: FileId(fixed(row, 1)?),
            hash: ContentHash(fixed(row, 2)?),
            stat: FileStat {
                size: row.get::<_, i64>(3)? as u64,
                mtime_ns: row.get(4)?,
                ctime_ns: row.get(5)?,
                inode: row.get::<_, i64>(6)? as u64,
                dev: row.get::<_, i64>(7)? as u64,
            },
            kind: Kind::from_code(row.get(8)?).ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(8, Type::Integer, "unknown kind".into())
            })?,
        })
    }
}

impl BlockedFile {
    pub(super) fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        let path: String = row.get(1)?;
        Ok(BlockedFile {
            file_id: FileId(fixed(row, 0)?),
            path: RepoPath::new(&path)
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(1, Type::Text, e.into()))?,
            reason: row.get(2)?,
            at_ms: row.get(3)?,
        })
    }
}

impl PeerRecord {
    pub(super) fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(PeerRecord {
            name: row.get(0)?,
            node_id: NodeId(fixed(row, 1)?),
            addr: row.get(2)?,
            added_ms: row.get(3)?,
        })
    }
}

/// Reads a blob column that must hold exactly `N` bytes.
fn fixed<const N: usize>(row: &Row<'_>, column: usize) -> rusqlite::Result<[u8; N]> {
    let blob: Vec<u8> = row.get(column)?;
    blob.try_into().map_err(|blob: Vec<u8>| {
        rusqlite::Error::FromSqlConversionFailure(
            column,
            Type::Blob,
            format!("expected {N} bytes, found {}", blob.len()).into(),
        )
    })
}
