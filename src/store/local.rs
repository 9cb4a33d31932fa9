//! What this location holds on its own disk: the files it recorded (with
//! the stat fields that tell a rescan whether to read them again) and the
//! manifests of its several-chunk contents, where a get finds chunks it
//! already has. None of it is replicated.

use rusqlite::{params, OptionalExtension};

use super::{decode, encode, LocalFile, Result, Store, StoreError, Writer};
use crate::chunk::Manifest;
use crate::model::{ContentHash, FileId, RepoPath};

impl Store {
    /// Every path this location recorded, with its stat fields.
    pub fn local_files(&self) -> Result<Vec<LocalFile>> {
        let mut stmt = self.conn.prepare(
            "SELECT path, file_id, hash, size, mtime_ns, ctime_ns, inode, dev, kind FROM local_files",
        )?;
        let rows = stmt.query_map([], LocalFile::from_row)?;
        rows.map(|r| r.map_err(StoreError::from)).collect()
    }

    /// Runs `compare` over every path this location recorded, in path order
    /// (byte order, the table's key), read as it goes: for a scan, which
    /// merges it with the walk of the tree instead of loading it whole.
    pub fn each_local_file<T>(
        &self,
        compare: impl FnOnce(&mut dyn Iterator<Item = LocalFile>) -> T,
    ) -> Result<T> {
        let mut stmt = self.conn.prepare(
            "SELECT path, file_id, hash, size, mtime_ns, ctime_ns, inode, dev, kind FROM local_files
             ORDER BY path",
        )?;
        let mut failed = None;
        let rows = stmt.query_map([], LocalFile::from_row)?;
        let mut files = rows.map_while(|row| row.map_err(|e| failed = Some(e)).ok());
        let compared = compare(&mut files);
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(compared),
        }
    }

    /// How many paths this location recorded.
    pub fn local_file_count(&self) -> Result<usize> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM local_files", [], |r| r.get(0))?;
        Ok(n as usize)
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

    /// The manifest of content `hash`, if this location stored one (a content of several
    /// chunks it held).
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
}

impl Writer<'_> {
    /// Records (or replaces) the file at `file.path`.
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

    /// Whether a file recorded here holds content `hash`.
    pub fn holds_content(&self, hash: ContentHash) -> Result<bool> {
        Ok(self
            .txn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM local_files WHERE hash = ?1)")?
            .query_row([hash.0], |r| r.get(0))?)
    }

    /// Forgets the file at `path` (deleted, or moved away).
    pub fn remove_local_file(&self, path: &RepoPath) -> Result<()> {
        self.txn
            .prepare_cached("DELETE FROM local_files WHERE path = ?1")?
            .execute([path.as_str()])?;
        Ok(())
    }

    /// Stores the manifest of content `hash`; a manifest stored already is kept (a content
    /// has one).
    pub fn put_manifest(&self, hash: ContentHash, manifest: &Manifest) -> Result<()> {
        let data = encode(manifest)?;
        self.txn
            .prepare_cached("INSERT OR IGNORE INTO manifests(hash, chunks) VALUES (?1, ?2)")?
            .execute(params![hash.0, data])?;
        Ok(())
    }
}
