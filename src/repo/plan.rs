//! What a `get` fetches: the wanted files, grouped by content, with who
//! holds each content and what is here to copy from, read from the state in
//! one pass, so that the transfer needs nothing more from the store.

use std::collections::{HashMap, HashSet};

use super::Repo;
use crate::chunk::Manifest;
use crate::error::Result;
use crate::model::{ContentHash, FileId, NodeId, Placed, RepoPath, Resolved};
use crate::store::{LocalFile, Order};

/// A content wanted here, for the files `targets`.
#[derive(Clone, Debug)]
pub struct WantedContent {
    /// blake3 of the content: what is asked of holders and checked on arrival.
    pub hash: ContentHash,
    /// Its length in bytes.
    pub size: u64,
    /// The files that get this content, each where it lives.
    pub targets: Vec<Placed>,
    /// The other locations holding it.
    pub holders: Vec<NodeId>,
}

/// Everything a `get` needs from the state.
#[derive(Clone, Debug)]
pub struct GetPlan {
    /// The wanted contents, in the order of their first file.
    pub contents: Vec<WantedContent>,
    /// The files held here with their stored manifests (the chunks to copy
    /// instead of fetch, the older versions' manifest pages).
    pub local_manifests: Vec<(LocalFile, Manifest)>,
    /// Every file held here (whole contents to copy).
    pub local_files: Vec<LocalFile>,
    /// The repository's chunk sizes: the smallest bounds how many chunks
    /// (and pages) a manifest of a given size can have, the largest how
    /// large a chunk of a fetched manifest may be (every chunk is read into
    /// memory whole).
    pub chunking: crate::chunk::ChunkParams,
}

/// Which files a `get` fetches (those whose newest content is not here).
#[derive(Clone, Copy, Debug)]
pub enum Selection<'a> {
    /// Every file held here in an older version: keeping copies current.
    Outdated,
    /// Every live, unconflicted file at or under these paths (every file
    /// when there are none).
    Under(&'a [RepoPath]),
    /// The outdated files held here, and these (what this location's
    /// preferred-content rules want: `get --auto`).
    OutdatedAnd(&'a HashSet<FileId>),
}

impl<'a> From<Option<&'a [RepoPath]>> for Selection<'a> {
    /// `None`: [`Selection::Outdated`]; paths: [`Selection::Under`].
    fn from(paths: Option<&'a [RepoPath]>) -> Self {
        paths.map_or(Selection::Outdated, Selection::Under)
    }
}

impl Repo {
    /// The files `get` should fetch for `selection`.
    pub fn wanted(&self, selection: Selection<'_>) -> Result<Vec<FileId>> {
        Ok(self
            .wanted_placed(selection)?
            .into_iter()
            .map(|(placed, ..)| placed.entry.id)
            .collect())
    }

    /// What `get` fetches for [`Repo::wanted`]`(selection)`: each entry
    /// read once, grouped by content, with the holders of each content.
    pub fn plan_get(&self, selection: Selection<'_>) -> Result<GetPlan> {
        let me = self.node_id();
        let mut contents: Vec<WantedContent> = Vec::new();
        let mut by_hash: HashMap<ContentHash, usize> = HashMap::new();
        for (placed, hash, size) in self.wanted_placed(selection)? {
            match by_hash.get(&hash) {
                Some(at) => contents[*at].targets.push(placed),
                None => {
                    // Holders per content: any location holding these bytes,
                    // for whichever file (DESIGN.md, invariant 9).
                    let holders: Vec<NodeId> = self
                        .store
                        .holders_of_content(hash)?
                        .into_iter()
                        .filter(|n| *n != me)
                        .collect();
                    by_hash.insert(hash, contents.len());
                    contents.push(WantedContent {
                        hash,
                        size,
                        targets: vec![placed],
                        holders,
                    });
                }
            }
        }
        // What is here to copy from matters only when something is fetched
        // (a serving location plans after every change, mostly for nothing).
        let nothing = contents.is_empty();
        Ok(GetPlan {
            contents,
            local_manifests: if nothing {
                Vec::new()
            } else {
                self.store.local_manifests()?
            },
            local_files: if nothing {
                Vec::new()
            } else {
                self.store.local_files()?
            },
            chunking: self.settings.chunking,
        })
    }

    /// The wanted files in path order, each with its newest content's hash
    /// and size. The state is read entry by entry and only the wanted are
    /// kept: a serving location asks this after every change, of a state
    /// that may have a million entries.
    fn wanted_placed(&self, selection: Selection<'_>) -> Result<Vec<(Placed, ContentHash, u64)>> {
        let me = self.node_id();
        let mut wanted = Vec::new();
        self.store.each_placed(None, Order::Stored, |placed| {
            let entry = &placed.entry;
            let Resolved::File(newest) = entry.resolved() else {
                return Ok(());
            };
            let Some((hash, size, _)) = newest.value.bytes() else {
                return Ok(()); // a link: made by the apply step, nothing to fetch
            };
            let held = entry.holders.get(&me).and_then(|h| h.hash);
            if held == newest.value.hash() {
                return Ok(());
            }
            let selected = match selection {
                Selection::Outdated => held.is_some(),
                Selection::Under(paths) => {
                    paths.is_empty() || paths.iter().any(|p| placed.path.starts_with(p))
                }
                Selection::OutdatedAnd(files) => held.is_some() || files.contains(&entry.id),
            };
            if selected {
                wanted.push((placed, hash, size));
            }
            Ok(())
        })?;
        wanted.sort_by(|a, b| a.0.path.cmp(&b.0.path));
        Ok(wanted)
    }
}
