//! Manifest pages: a manifest cut into content-defined runs of chunks, so
//! that a receiver holding an older version of a content asks only for the
//! pages that changed instead of the whole manifest.
//!
//! A page ends after a chunk whose hash's first two bytes (little-endian)
//! are a multiple of [`PAGE_AVG_CHUNKS`], or at [`PAGE_MAX_CHUNKS`] chunks.
//! Because the cut depends only on the chunks themselves, an edit that
//! rewrites a few chunks changes the page that holds them (and at most its
//! neighbour): a 100-byte insert into a 64 MiB file changes 1 of ~52
//! pages, so the receiver fetches ~1.9 KiB of index and at most 4.6 KiB of
//! page instead of a 58 KiB manifest.

use super::{ChunkRef, Manifest};
use crate::model::ContentHash;

/// Mean chunks per page. With ~36 bytes a chunk reference, the bytes an
/// edit costs (the index: 36 B a page; the changed page: 36 B a chunk) are
/// smallest near sqrt(chunks); the page that holds an edit is on average
/// twice the mean (long pages are more likely hit). 32 suits files from
/// ~50 MiB to a few GiB.
pub const PAGE_AVG_CHUNKS: u16 = 32;
/// Most chunks in one page (a forced cut): bounds what one edit costs. Cut
/// by chance, a page reaches it once in ~60 pages: measured on a 64 MiB
/// file with a mean of 64 and no low bound, the page hit by an edit held
/// 462 chunks (16.6 KB).
pub const PAGE_MAX_CHUNKS: usize = 128;

/// A page of a manifest as the index lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PageRef {
    /// blake3 of the page's chunk references, each as its 32-byte hash then
    /// its length as 4 bytes little-endian.
    pub hash: ContentHash,
    /// Chunks in the page.
    pub chunks: u32,
}

/// Whether a page ends after `chunk`.
fn ends_page(chunk: &ChunkRef) -> bool {
    u16::from_le_bytes([chunk.hash.0[0], chunk.hash.0[1]]) % PAGE_AVG_CHUNKS == 0
}

/// The hash of one page's chunk references.
pub fn page_hash(chunks: &[ChunkRef]) -> ContentHash {
    let mut hasher = blake3::Hasher::new();
    for chunk in chunks {
        hasher.update(&chunk.hash.0);
        hasher.update(&chunk.len.to_le_bytes());
    }
    hasher.finalize().into()
}

impl Manifest {
    /// The manifest cut into pages: each page's chunks, in order.
    pub fn pages(&self) -> Vec<&[ChunkRef]> {
        let mut pages = Vec::new();
        let mut start = 0;
        for (index, chunk) in self.chunks.iter().enumerate() {
            if ends_page(chunk) || index + 1 - start == PAGE_MAX_CHUNKS {
                pages.push(&self.chunks[start..=index]);
                start = index + 1;
            }
        }
        if start < self.chunks.len() {
            pages.push(&self.chunks[start..]);
        }
        pages
    }

    /// The index of the manifest: a reference to each page.
    pub fn page_index(&self) -> Vec<PageRef> {
        self.pages()
            .into_iter()
            .map(|page| PageRef {
                hash: page_hash(page),
                chunks: page.len() as u32,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(seed: u64) -> ChunkRef {
        ChunkRef {
            hash: blake3::hash(&seed.to_le_bytes()).into(),
            len: 1000 + (seed % 7) as u32,
        }
    }

    fn manifest(seeds: impl IntoIterator<Item = u64>) -> Manifest {
        Manifest {
            chunks: seeds.into_iter().map(chunk).collect(),
        }
    }

    #[test]
    fn pages_cover_the_manifest_in_order() {
        let m = manifest(0..5000);
        let pages = m.pages();
        let joined: Vec<ChunkRef> = pages.iter().flat_map(|p| p.iter().copied()).collect();
        assert_eq!(joined, m.chunks);
        assert!(pages
            .iter()
            .all(|p| !p.is_empty() && p.len() <= PAGE_MAX_CHUNKS));
        // Content-defined cuts average PAGE_AVG_CHUNKS.
        let mean = m.chunks.len() / pages.len();
        assert!((16..=64).contains(&mean), "mean page {mean}");
        assert!(Manifest::default().pages().is_empty());
    }

    #[test]
    fn an_edit_changes_only_the_pages_around_it() {
        let old = manifest(0..5000);
        let mut edited = old.clone();
        edited.chunks[2500] = chunk(1_000_000);
        edited.chunks.insert(2501, chunk(1_000_001));
        let before: std::collections::HashSet<_> = old.page_index().into_iter().collect();
        let changed = edited
            .page_index()
            .into_iter()
            .filter(|p| !before.contains(p))
            .count();
        assert!(changed <= 2, "{changed} pages changed");
    }

    #[test]
    fn a_long_run_without_a_cut_is_cut_at_the_maximum() {
        // Chunks whose hashes never end a page.
        let chunks: Vec<ChunkRef> = (0..)
            .map(chunk)
            .filter(|c| !ends_page(c))
            .take(PAGE_MAX_CHUNKS * 2 + 3)
            .collect();
        let m = Manifest { chunks };
        let sizes: Vec<usize> = m.pages().iter().map(|p| p.len()).collect();
        assert_eq!(sizes, vec![PAGE_MAX_CHUNKS, PAGE_MAX_CHUNKS, 3]);
    }

    #[test]
    fn page_hash_vector() {
        // The encoding protocol.md states: hash || len (u32 LE) per chunk.
        let c = ChunkRef {
            hash: ContentHash([7; 32]),
            len: 0x0102_0304,
        };
        let mut bytes = vec![7u8; 32];
        bytes.extend_from_slice(&[4, 3, 2, 1]);
        assert_eq!(page_hash(&[c]), ContentHash::from(blake3::hash(&bytes)));
    }
}
