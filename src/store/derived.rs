//! State derived from the replicated entries, kept up to date with them in
//! the same transaction: where files that lost a clash for their path are
//! placed ([`crate::model::placement`]), which files have which content (to
//! find holders per content), and the remote changes blocked here.

use std::collections::{BTreeSet, HashSet};

use rusqlite::{params, Connection, OptionalExtension};

use super::{decode, BlockedFile, Result, Store, StoreError, Writer};
use crate::model::placement::{self, Claim};
use crate::model::{ContentHash, FileEntry, FileId, NodeId, Placed, RepoPath};

impl Writer<'_> {
    /// Brings the derived tables in line with an entry that changed from
    /// `old` to `new` (`None`: absent, before its first write or after its
    /// removal).
    pub(super) fn update_derived(
        &self,
        old: Option<&FileEntry>,
        new: Option<&FileEntry>,
    ) -> Result<()> {
        self.index_contents(old, new)?;
        let before = old.and_then(Claim::of);
        let after = new.and_then(Claim::of);
        if before == after {
            return Ok(());
        }
        if let Some(id) = old.or(new).map(|e| e.id) {
            self.txn
                .prepare_cached("DELETE FROM displaced WHERE file_id = ?1")?
                .execute([id.0])?;
        }
        let mut paths = BTreeSet::new();
        for claim in [&before, &after].into_iter().flatten() {
            paths.extend(placement::affected_by(&claim.path));
        }
        for path in paths {
            self.settle_clash(&path)?;
        }
        Ok(())
    }

    /// Places again the live files claiming `path`.
    fn settle_clash(&self, path: &RepoPath) -> Result<()> {
        let claimants: Vec<Claim> = self
            .txn
            .prepare_cached("SELECT data FROM entries WHERE path = ?1 AND deleted = 0")?
            .query_map([path.as_str()], |r| r.get::<_, Vec<u8>>(0))?
            .map(|data| Ok(Claim::of(&decode::<FileEntry>("file entry", &data?)?)))
            .filter_map(|claim| claim.transpose())
            .collect::<Result<_>>()?;
        if claimants.is_empty() {
            return Ok(());
        }
        let mut before = std::collections::BTreeMap::new();
        for claim in &claimants {
            let name: Option<String> = self
                .txn
                .prepare_cached("DELETE FROM displaced WHERE file_id = ?1 RETURNING placed")?
                .query_row([claim.id.0], |r| r.get(0))
                .optional()?;
            before.insert(claim.id, name);
        }
        let folder_below = live_below(&self.txn, path)?;
        let moved = if claimants.len() == 1 && !folder_below {
            Vec::new()
        } else {
            self.displaced_among(path, &claimants, folder_below)?
        };
        let mut replaced = self.replaced.borrow_mut();
        for (id, name) in before {
            let after = moved
                .iter()
                .find(|(m, _)| *m == id)
                .map(|(_, n)| n.as_str());
            if name.as_deref() != after {
                replaced.push(id);
            }
        }
        for (id, placed) in moved {
            self.txn
                .prepare_cached(
                    "INSERT OR REPLACE INTO displaced(file_id, placed) VALUES (?1, ?2)",
                )?
                .execute(params![id.0, placed.as_str()])?;
        }
        Ok(())
    }

    /// The files among `claimants` of `path` that lose it, with their names.
    fn displaced_among(
        &self,
        path: &RepoPath,
        claimants: &[Claim],
        folder_below: bool,
    ) -> Result<Vec<(FileId, RepoPath)>> {
        let mut failure = None;
        let moved = placement::displaced(path, claimants, folder_below, |name| {
            match is_claimed(&self.txn, name) {
                Ok(claimed) => claimed,
                Err(e) => {
                    failure.get_or_insert(e);
                    true
                }
            }
        });
        match failure {
            Some(e) => Err(e),
            None => Ok(moved),
        }
    }

    /// The files whose placement this batch changed so far, each once:
    /// another file took or freed the path they claim, so the working tree
    /// must follow them though their own entry may not have changed.
    pub fn take_replaced(&self) -> Vec<FileId> {
        let mut ids = std::mem::take(&mut *self.replaced.borrow_mut());
        ids.sort();
        ids.dedup();
        ids
    }

    /// Keeps `content_files` listing every hash some holder slot of the
    /// entry names.
    fn index_contents(&self, old: Option<&FileEntry>, new: Option<&FileEntry>) -> Result<()> {
        let held = |entry: Option<&FileEntry>| -> BTreeSet<ContentHash> {
            entry
                .into_iter()
                .flat_map(|e| e.holders.values().filter_map(|h| h.hash))
                .collect()
        };
        let (before, after) = (held(old), held(new));
        let Some(id) = old.or(new).map(|e| e.id) else {
            return Ok(());
        };
        for gone in before.difference(&after) {
            self.txn
                .prepare_cached("DELETE FROM content_files WHERE hash = ?1 AND file_id = ?2")?
                .execute(params![gone.0, id.0])?;
        }
        for added in after.difference(&before) {
            self.txn
                .prepare_cached(
                    "INSERT OR IGNORE INTO content_files(hash, file_id) VALUES (?1, ?2)",
                )?
                .execute(params![added.0, id.0])?;
        }
        Ok(())
    }

    /// Records that the remote change to `id` could not be applied here.
    pub fn set_blocked(&self, id: FileId, path: &RepoPath, reason: &str, at_ms: i64) -> Result<()> {
        self.txn
            .prepare_cached(
                "INSERT OR REPLACE INTO blocked(file_id, path, reason, at_ms) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![id.0, path.as_str(), reason, at_ms])?;
        Ok(())
    }

    /// Forgets a blocked change (applied since, or superseded).
    pub fn clear_blocked(&self, id: FileId) -> Result<()> {
        self.txn
            .prepare_cached("DELETE FROM blocked WHERE file_id = ?1")?
            .execute([id.0])?;
        Ok(())
    }
}

impl Store {
    /// Every location that holds `hash`, for whichever file (DESIGN.md,
    /// invariant 9).
    pub fn holders_of_content(&self, hash: ContentHash) -> Result<BTreeSet<NodeId>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT e.data FROM content_files AS c JOIN entries AS e USING (file_id)
             WHERE c.hash = ?1",
        )?;
        let rows = stmt.query_map([hash.0], |r| r.get::<_, Vec<u8>>(0))?;
        let mut holders = BTreeSet::new();
        for data in rows {
            let entry: FileEntry = decode("file entry", &data?)?;
            holders.extend(entry.holders_of(hash).copied());
        }
        Ok(holders)
    }

    /// Every location that holds `hash`, the newest content of `entry`:
    /// its own holders of it, and, only when another file has the same
    /// content, theirs too ([`holders_of_content`](Self::holders_of_content)).
    /// One index lookup for a content no other file has, so `ls` can ask
    /// it of each of a million files.
    pub fn holders_of_content_of(
        &self,
        entry: &FileEntry,
        hash: ContentHash,
    ) -> Result<BTreeSet<NodeId>> {
        let shared: bool = self
            .conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM content_files WHERE hash = ?1 AND file_id != ?2)",
            )?
            .query_row(params![hash.0, entry.id.0], |r| r.get(0))?;
        if shared {
            return self.holders_of_content(hash);
        }
        Ok(entry.holders_of(hash).copied().collect())
    }

    /// The paths displaced files claim but lost: the file placed at each is
    /// in a conflict too.
    pub fn clashed_paths(&self) -> Result<HashSet<RepoPath>> {
        let mut stmt = self
            .conn
            .prepare("SELECT e.path FROM displaced CROSS JOIN entries AS e USING (file_id)")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|path| {
            RepoPath::new(&path?).map_err(|e| StoreError::Corrupt(format!("entry path: {e}")))
        })
        .collect()
    }

    /// The remote changes not applied here, by path.
    pub fn blocked(&self) -> Result<Vec<BlockedFile>> {
        let mut stmt = self
            .conn
            .prepare("SELECT file_id, path, reason, at_ms FROM blocked ORDER BY path")?;
        let rows = stmt.query_map([], BlockedFile::from_row)?;
        rows.map(|r| r.map_err(StoreError::from)).collect()
    }
}

/// An entry with its displaced name, if it has one.
pub(super) fn placed(entry: FileEntry, displaced: Option<String>) -> Result<Placed> {
    let path = match displaced {
        Some(name) => {
            RepoPath::new(&name).map_err(|e| StoreError::Corrupt(format!("placed path: {e}")))?
        }
        None => entry.current_path().clone(),
    };
    Ok(Placed { entry, path })
}

pub(super) fn placed_entry(conn: &Connection, id: FileId) -> Result<Option<Placed>> {
    let row: Option<(Vec<u8>, Option<String>)> = conn
        .prepare_cached(
            "SELECT e.data, d.placed FROM entries AS e LEFT JOIN displaced AS d USING (file_id)
             WHERE e.file_id = ?1",
        )?
        .query_row([id.0], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    row.map(|(data, name)| placed(decode("file entry", &data)?, name))
        .transpose()
}

/// The live file placed at `path`: a displaced one under its conflict
/// name, or the one claiming `path` that is not displaced.
pub(super) fn live_entry_at(conn: &Connection, path: &RepoPath) -> Result<Option<FileEntry>> {
    let data: Option<Vec<u8>> = conn
        .prepare_cached(
            "SELECT e.data FROM displaced AS d JOIN entries AS e USING (file_id)
             WHERE d.placed = ?1
             UNION ALL
             SELECT e.data FROM entries AS e
             WHERE e.path = ?1 AND e.deleted = 0
               AND NOT EXISTS (SELECT 1 FROM displaced AS d WHERE d.file_id = e.file_id)
             LIMIT 1",
        )?
        .query_row([path.as_str()], |r| r.get(0))
        .optional()?;
    data.map(|d| decode("file entry", &d)).transpose()
}

/// Whether a live file lies under the folder `path`.
fn live_below(conn: &Connection, path: &RepoPath) -> Result<bool> {
    let (from, to) = folder_range(path);
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM entries WHERE path > ?1 AND path < ?2 AND deleted = 0)",
        )?
        .query_row([from, to], |r| r.get(0))?)
}

/// Whether a live file claims `path` or lies under it.
fn is_claimed(conn: &Connection, path: &RepoPath) -> Result<bool> {
    let exact: bool = conn
        .prepare_cached("SELECT EXISTS(SELECT 1 FROM entries WHERE path = ?1 AND deleted = 0)")?
        .query_row([path.as_str()], |r| r.get(0))?;
    Ok(exact || live_below(conn, path)?)
}

/// The range of paths inside the folder `path`: every such path starts
/// with `path/`, so it sorts after `path/` and before `path0` (`0` follows
/// `/` in every collation by bytes).
fn folder_range(path: &RepoPath) -> (String, String) {
    (format!("{path}/"), format!("{path}0"))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::chunk::ChunkParams;
    use crate::model::placement::layout;
    use crate::model::{Content, ContentHash, FileEntry, FileId, NodeId, RepoId, RepoPath, Stamp};
    use crate::store::{Order, Settings, Store};

    const PATHS: &[&str] = &[
        "d",
        "d/x",
        "d/x/y",
        "e",
        "d.conflict-AEAQC",
        "d.txt",
        "d.conflict-AEAQC.txt",
    ];

    /// Puts of entries (file, path, writer, deleted), in order.
    fn puts() -> impl Strategy<Value = Vec<(u8, usize, u8, bool)>> {
        prop::collection::vec(
            (0u8..6, 0..PATHS.len(), 0u8..3, prop::bool::weighted(0.2)),
            1..40,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The placements the store keeps clash by clash are those of the
        /// whole-state rule, after every write.
        #[test]
        fn incremental_placement_matches_the_whole_layout(puts in puts()) {
            let dir = tempfile::tempdir().unwrap();
            let settings = Settings {
                repo_id: RepoId([1; 16]),
                node_name: "t".into(),
                listen: "127.0.0.1:0".into(),
                chunking: ChunkParams::DEFAULT,
            };
            let mut store = Store::create(&dir.path().join("s.db"), &settings).unwrap();
            for (k, (file, path, by, deleted)) in puts.into_iter().enumerate() {
                let stamp = Stamp { node: NodeId([by; 32]), counter: k as u64 + 1, at_ms: (k % 5) as i64 };
                let id = FileId([file; 16]);
                let path = RepoPath::new(PATHS[path]).unwrap();
                let writer = store.write().unwrap();
                let mut entry = writer.entry(id).unwrap().unwrap_or_else(|| {
                    FileEntry::new_file(id, path.clone(), Content::Deleted, stamp)
                });
                entry.rename(path, stamp);
                let content = if deleted {
                    Content::Deleted
                } else {
                    Content::File { hash: ContentHash([file; 32]), size: 1, mtime_ns: 0, executable: false }
                };
                entry.set_content(content, stamp);
                writer.put_entry(&entry).unwrap();
                writer.commit().unwrap();
                let entries = store.entries().unwrap();
                let expected = layout(&entries);
                let kept: std::collections::BTreeMap<FileId, RepoPath> = store
                    .placed_entries()
                    .unwrap()
                    .into_iter()
                    .filter(|p| p.is_displaced() && !p.entry.is_deleted())
                    .map(|p| (p.entry.id, p.path))
                    .collect();
                prop_assert_eq!(kept, expected);
                // Streamed, the entries are the same: in path order with
                // the displaced ones merged in at their names, or all of
                // them as stored; under a prefix, those under it.
                let whole: Vec<(FileId, RepoPath)> = store
                    .placed_entries()
                    .unwrap()
                    .into_iter()
                    .map(|p| (p.entry.id, p.path))
                    .collect();
                let streamed = |prefix: Option<&RepoPath>, order| {
                    let mut seen = Vec::new();
                    store
                        .each_placed(prefix, order, |p| {
                            seen.push((p.entry.id, p.path));
                            Ok(())
                        })
                        .unwrap();
                    seen
                };
                let by_key = |mut v: Vec<(FileId, RepoPath)>| {
                    v.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
                    v
                };
                let by_path = streamed(None, Order::ByPath);
                prop_assert!(by_path.windows(2).all(|w| w[0].1 <= w[1].1), "{:?}", by_path);
                prop_assert_eq!(by_key(by_path), by_key(whole.clone()));
                prop_assert_eq!(by_key(streamed(None, Order::Stored)), by_key(whole.clone()));
                let d = RepoPath::new("d").unwrap();
                let under_d: Vec<_> = whole.iter().filter(|(_, p)| p.starts_with(&d)).cloned().collect();
                prop_assert_eq!(by_key(streamed(Some(&d), Order::ByPath)), by_key(under_d));
            }
        }
    }
}
