//! A content's manifest assembled from a holder's answers, sans I/O: first
//! its page index, a page of references at a time, then only the pages not
//! known here, asked for in requests within the answer limits. Every answer
//! is checked before it is used; the async shell (`get::fetch_manifest`)
//! only moves the requests and answers.

use std::collections::HashMap;

use super::Misbehaved;
use crate::chunk::{page_hash, ChunkRef, Manifest, PageRef};
use crate::model::ContentHash;
use crate::proto::{ManifestIndex, MAX_PAGES_ASKED, MAX_PAGE_CHUNKS_SENT};

/// What a manifest of one content may hold.
#[derive(Clone, Copy, Debug)]
pub(super) struct ManifestBounds {
    /// Chunks the content's size allows at most (cut at the smallest).
    max_chunks: u64,
    /// The largest chunk the repository's chunking makes.
    max_chunk_len: u32,
}

impl ManifestBounds {
    pub(super) fn new(size: u64, chunking: crate::chunk::ChunkParams) -> Self {
        ManifestBounds {
            max_chunks: size / u64::from(chunking.min.max(1)) + 1,
            max_chunk_len: chunking.max,
        }
    }
}

/// The page index, as it arrives.
pub(super) struct IndexPaging {
    bounds: ManifestBounds,
    index: Vec<PageRef>,
}

impl IndexPaging {
    pub(super) fn new(bounds: ManifestBounds) -> Self {
        IndexPaging {
            bounds,
            index: Vec::new(),
        }
    }

    /// The first index entry to ask for next.
    pub(super) fn next_first(&self) -> u32 {
        self.index.len() as u32
    }

    /// Takes in one answer; returns whether the index is complete.
    pub(super) fn take(&mut self, page: ManifestIndex) -> Result<bool, Misbehaved> {
        if u64::from(page.total) > self.bounds.max_chunks {
            return Err(Misbehaved::IndexTooLong);
        }
        if page.first as usize != self.index.len()
            || (page.pages.is_empty() && self.index.len() < page.total as usize)
        {
            return Err(Misbehaved::IndexOutOfOrder);
        }
        self.index.extend(page.pages);
        Ok(self.index.len() >= page.total as usize)
    }

    /// The complete index, with the pages found in `known` (by page hash)
    /// filled in.
    pub(super) fn into_pages(
        self,
        known: &HashMap<ContentHash, &[ChunkRef]>,
    ) -> Result<PagePaging, Misbehaved> {
        let chunks: u64 = self.index.iter().map(|p| u64::from(p.chunks)).sum();
        if chunks > self.bounds.max_chunks {
            return Err(Misbehaved::TooManyChunks);
        }
        let pages = self
            .index
            .iter()
            .map(|p| known.get(&p.hash).map(|chunks| chunks.to_vec()))
            .collect();
        Ok(PagePaging {
            index: self.index,
            pages,
            max_chunk_len: self.bounds.max_chunk_len,
        })
    }
}

/// The pages of a manifest, as they arrive.
pub(super) struct PagePaging {
    index: Vec<PageRef>,
    pages: Vec<Option<Vec<ChunkRef>>>,
    max_chunk_len: u32,
}

impl PagePaging {
    /// The missing pages, in requests of at most [`MAX_PAGES_ASKED`] pages
    /// and [`MAX_PAGE_CHUNKS_SENT`] chunk references (one page alone may
    /// exceed it).
    pub(super) fn requests(&self) -> Vec<Vec<u32>> {
        let missing: Vec<u32> = (0..self.index.len() as u32)
            .filter(|i| self.pages[*i as usize].is_none())
            .collect();
        let mut requests = Vec::new();
        let mut batch: Vec<u32> = Vec::new();
        let mut batch_chunks = 0;
        for (n, page) in missing.iter().enumerate() {
            batch.push(*page);
            batch_chunks += self.index[*page as usize].chunks as usize;
            let next_chunks = missing
                .get(n + 1)
                .map_or(usize::MAX, |p| self.index[*p as usize].chunks as usize);
            if batch.len() == MAX_PAGES_ASKED
                || batch_chunks.saturating_add(next_chunks) > MAX_PAGE_CHUNKS_SENT
            {
                requests.push(std::mem::take(&mut batch));
                batch_chunks = 0;
            }
        }
        requests
    }

    /// Takes in the answer to a request for the pages `asked` (one page
    /// each, in order), each checked against its index entry.
    pub(super) fn take(
        &mut self,
        asked: &[u32],
        answer: Vec<Vec<ChunkRef>>,
    ) -> Result<(), Misbehaved> {
        for (&at, page) in asked.iter().zip(answer) {
            let expected = &self.index[at as usize];
            if page.len() != expected.chunks as usize || page_hash(&page) != expected.hash {
                return Err(Misbehaved::PageMismatch(at));
            }
            if let Some(bad) = page
                .iter()
                .find(|c| c.len == 0 || c.len > self.max_chunk_len)
            {
                return Err(Misbehaved::ChunkLength {
                    len: bad.len,
                    max: self.max_chunk_len,
                });
            }
            self.pages[at as usize] = Some(page);
        }
        Ok(())
    }

    /// The manifest, once every request was answered.
    pub(super) fn finish(self) -> Manifest {
        let chunks = self.pages.into_iter().flatten().flatten().collect();
        Manifest { chunks }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::MAX_INDEX_PAGES;

    /// Bounds of `max_chunks` chunks of the default chunking's sizes.
    fn bounds(max_chunks: u64) -> ManifestBounds {
        ManifestBounds {
            max_chunks,
            max_chunk_len: crate::chunk::ChunkParams::DEFAULT.max,
        }
    }

    /// A manifest of `n` chunks, chunk `i` made from `seed` and `i`.
    fn manifest(n: u32, seed: u8) -> Manifest {
        let chunks = (0..n)
            .map(|i| {
                let mut hash = [seed; 32];
                hash[..4].copy_from_slice(&i.to_le_bytes());
                ChunkRef {
                    hash: ContentHash(hash),
                    len: 8192 + i % 100,
                }
            })
            .collect();
        Manifest { chunks }
    }

    /// The index page a serving location answers for `first` (as
    /// `transfer::serve` cuts it).
    fn index_page(manifest: &Manifest, first: u32) -> ManifestIndex {
        let index = manifest.page_index();
        let from = (first as usize).min(index.len());
        let to = (from + MAX_INDEX_PAGES).min(index.len());
        ManifestIndex {
            total: index.len() as u32,
            first: from as u32,
            pages: index[from..to].to_vec(),
        }
    }

    /// Assembles `theirs` as `fetch_manifest` does, knowing the pages of
    /// `ours`; returns it and the page requests made.
    fn assemble(theirs: &Manifest, ours: Option<&Manifest>) -> (Manifest, Vec<Vec<u32>>) {
        let known: HashMap<ContentHash, &[ChunkRef]> = ours
            .map(|m| m.pages())
            .unwrap_or_default()
            .into_iter()
            .map(|page| (page_hash(page), page))
            .collect();
        let mut index = IndexPaging::new(bounds(theirs.chunks.len() as u64 + 1));
        while !index.take(index_page(theirs, index.next_first())).unwrap() {}
        let mut pages = index.into_pages(&known).unwrap();
        let requests = pages.requests();
        let all = theirs.pages();
        for asked in &requests {
            let answer = asked.iter().map(|at| all[*at as usize].to_vec()).collect();
            pages.take(asked, answer).unwrap();
        }
        (pages.finish(), requests)
    }

    #[test]
    fn a_manifest_is_assembled_from_its_index_and_pages_within_the_limits() {
        let theirs = manifest(20_000, 1);
        let (got, requests) = assemble(&theirs, None);
        assert_eq!(got, theirs);
        let index = theirs.page_index();
        for asked in &requests {
            let chunks: usize = asked
                .iter()
                .map(|p| index[*p as usize].chunks as usize)
                .sum();
            assert!(asked.len() <= MAX_PAGES_ASKED);
            assert!(asked.len() == 1 || chunks <= MAX_PAGE_CHUNKS_SENT);
        }
        let asked: usize = requests.iter().map(Vec::len).sum();
        assert_eq!(asked, index.len(), "every page asked once");
    }

    #[test]
    fn the_index_may_come_in_several_answers() {
        let theirs = manifest(200, 1);
        let index = theirs.page_index();
        assert!(index.len() >= 3);
        let total = index.len() as u32;
        let mut paging = IndexPaging::new(bounds(theirs.chunks.len() as u64));
        let first = ManifestIndex {
            total,
            first: 0,
            pages: index[..2].to_vec(),
        };
        assert!(!paging.take(first).unwrap());
        assert_eq!(paging.next_first(), 2);
        let rest = ManifestIndex {
            total,
            first: 2,
            pages: index[2..].to_vec(),
        };
        assert!(paging.take(rest).unwrap());
        let mut pages = paging.into_pages(&HashMap::new()).unwrap();
        for asked in pages.requests() {
            let answer = asked
                .iter()
                .map(|at| theirs.pages()[*at as usize].to_vec())
                .collect();
            pages.take(&asked, answer).unwrap();
        }
        assert_eq!(pages.finish(), theirs);
    }

    #[test]
    fn only_the_pages_not_held_here_are_asked_for() {
        let ours = manifest(3000, 1);
        let mut theirs = ours.clone();
        theirs.chunks[1500].hash = ContentHash([9; 32]);
        let (got, requests) = assemble(&theirs, Some(&ours));
        assert_eq!(got, theirs);
        let asked: usize = requests.iter().map(Vec::len).sum();
        assert!(
            (1..=2).contains(&asked),
            "{asked} pages asked for one changed chunk"
        );
        let (_, again) = assemble(&theirs, Some(&theirs));
        assert!(again.is_empty(), "nothing asked when every page is here");
    }

    #[test]
    fn a_false_index_or_page_is_caught() {
        let theirs = manifest(500, 1);
        let chunks = theirs.chunks.len() as u64;
        // An index longer than the content's size allows.
        let mut index = IndexPaging::new(bounds(1));
        assert_eq!(
            index.take(index_page(&theirs, 0)),
            Err(Misbehaved::IndexTooLong)
        );
        // An index page other than the one asked for, or an empty one early.
        let mut index = IndexPaging::new(bounds(chunks));
        assert_eq!(
            index.take(index_page(&theirs, 1)),
            Err(Misbehaved::IndexOutOfOrder)
        );
        let empty = ManifestIndex {
            pages: Vec::new(),
            ..index_page(&theirs, 0)
        };
        assert_eq!(index.take(empty), Err(Misbehaved::IndexOutOfOrder));
        // An index whose pages add up to more chunks than the size allows.
        let pages = theirs.page_index().len() as u64;
        let mut index = IndexPaging::new(bounds(pages));
        assert!(index.take(index_page(&theirs, 0)).unwrap());
        assert!(matches!(
            index.into_pages(&HashMap::new()),
            Err(Misbehaved::TooManyChunks)
        ));
        // A page that is not the one the index names.
        let mut index = IndexPaging::new(bounds(chunks));
        assert!(index.take(index_page(&theirs, 0)).unwrap());
        let mut pages = index.into_pages(&HashMap::new()).unwrap();
        let asked = pages.requests().remove(0);
        let mut answer: Vec<Vec<ChunkRef>> = asked
            .iter()
            .map(|at| theirs.pages()[*at as usize].to_vec())
            .collect();
        answer[0][0].len += 1;
        assert_eq!(
            pages.take(&asked, answer),
            Err(Misbehaved::PageMismatch(asked[0]))
        );
    }
}
