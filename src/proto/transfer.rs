//! The messages of content transfer (see `transfer` for how they are used).

use serde::{Deserialize, Serialize};

use super::message::check_len;
use super::{ProtoError, Validate};
use crate::chunk::{ChunkRef, PageRef, PAGE_MAX_CHUNKS};
use crate::model::ContentHash;

/// Page references per `Manifest` answer.
pub const MAX_INDEX_PAGES: usize = 16_384;
/// Pages one `ManifestPages` request may ask for.
pub const MAX_PAGES_ASKED: usize = 256;
/// Chunk references in one `ManifestPages` answer, in all.
pub const MAX_PAGE_CHUNKS_SENT: usize = 16_384;
/// Byte ranges per `Chunks` request.
pub const MAX_RANGES: usize = 1024;
/// Bytes one `Chunks` request may ask for in all. The server streams them
/// from the file (it never holds a whole answer in memory); the limit only
/// bounds how long one request can occupy a stream.
pub const MAX_CHUNKS_BYTES: u64 = 1 << 30;
/// Contents per `Files` request.
pub const MAX_FILES: usize = 4096;
/// Largest content a `Files` request fetches whole (larger ones go by
/// manifest and chunks, so that what is already here is reused).
pub const MAX_WHOLE_FILE: u64 = 256 * 1024;

/// Bytes one `Refine` request may ask to cut: more than the largest chunk
/// of the default chunking (128 KiB), less than a frame of sub-chunks.
pub const MAX_REFINE: u32 = 1 << 20;
/// Sub-chunks in one `Refined` answer: `MAX_REFINE` cut at the smallest.
pub const MAX_SUB_CHUNKS: usize = (MAX_REFINE / crate::chunk::REFINE_PARAMS.min) as usize;

/// A page of a content's manifest index: references to its pages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestIndex {
    /// Pages in the whole manifest.
    pub total: u32,
    /// Index of the first page listed here.
    pub first: u32,
    /// The page references, from `first` on.
    pub pages: Vec<PageRef>,
}

impl Validate for ManifestIndex {
    fn validate(&self) -> Result<(), ProtoError> {
        check_len("manifest index", self.pages.len(), MAX_INDEX_PAGES)?;
        if self.first as u64 + self.pages.len() as u64 > self.total as u64 {
            return Err(ProtoError::Malformed(
                "manifest index beyond its total".into(),
            ));
        }
        if self
            .pages
            .iter()
            .any(|p| p.chunks == 0 || p.chunks as usize > PAGE_MAX_CHUNKS)
        {
            return Err(ProtoError::Malformed(format!(
                "a manifest page must hold 1 to {PAGE_MAX_CHUNKS} chunks"
            )));
        }
        Ok(())
    }
}

/// Validates the pages of a `ManifestPages` answer.
pub(super) fn validate_pages(pages: &[Vec<ChunkRef>]) -> Result<(), ProtoError> {
    check_len("manifest pages", pages.len(), MAX_PAGES_ASKED)?;
    check_len(
        "chunks in manifest pages",
        pages.iter().map(Vec::len).sum(),
        MAX_PAGE_CHUNKS_SENT,
    )?;
    pages
        .iter()
        .try_for_each(|p| check_len("manifest page", p.len(), PAGE_MAX_CHUNKS))
}

/// Byte ranges of one content, to be sent back to back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRanges {
    /// The content the ranges are of.
    pub hash: ContentHash,
    /// `(offset, length)` pairs.
    pub ranges: Vec<(u64, u64)>,
}

impl Validate for ChunkRanges {
    fn validate(&self) -> Result<(), ProtoError> {
        check_len("chunk ranges", self.ranges.len(), MAX_RANGES)?;
        let total = self
            .ranges
            .iter()
            .try_fold(0u64, |sum, (_, len)| sum.checked_add(*len))
            .unwrap_or(u64::MAX);
        if total > MAX_CHUNKS_BYTES {
            return Err(ProtoError::TooLong {
                field: "chunk ranges in all",
                len: total,
                max: MAX_CHUNKS_BYTES,
            });
        }
        Ok(())
    }
}

impl ChunkRanges {
    /// Bytes the answer carries (valid once [`Validate::validate`] passed).
    pub fn total_len(&self) -> u64 {
        self.ranges.iter().map(|(_, len)| *len).sum()
    }
}
