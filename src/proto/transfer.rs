//! The messages of content transfer (see `transfer` for how they are used).

use serde::{Deserialize, Serialize};

use super::message::check_len;
use super::{ProtoError, Validate};
use crate::chunk::ChunkRef;
use crate::model::ContentHash;

/// Chunk references per manifest page.
pub const MAX_MANIFEST_PAGE: usize = 16_384;
/// Byte ranges per `Chunks` request.
pub const MAX_RANGES: usize = 1024;
/// Bytes per range: the largest chunk any repository may use (fastcdc's
/// maximum).
pub const MAX_RANGE: u32 = 16 << 20;
/// Bytes one `Chunks` request may ask for in all: what a server reads into
/// memory for one answer.
pub const MAX_CHUNKS_BYTES: u64 = 16 << 20;

/// One page of a content's chunk manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestPage {
    /// Chunks in the whole manifest.
    pub total: u32,
    /// Index of the first chunk of this page.
    pub first: u32,
    pub chunks: Vec<ChunkRef>,
}

impl Validate for ManifestPage {
    fn validate(&self) -> Result<(), ProtoError> {
        check_len("manifest page", self.chunks.len(), MAX_MANIFEST_PAGE)?;
        if self.first as u64 + self.chunks.len() as u64 > self.total as u64 {
            return Err(ProtoError::Malformed(
                "manifest page beyond its total".into(),
            ));
        }
        Ok(())
    }
}

/// Byte ranges of one content, to be sent back to back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRanges {
    pub hash: ContentHash,
    /// `(offset, length)` pairs.
    pub ranges: Vec<(u64, u32)>,
}

impl Validate for ChunkRanges {
    fn validate(&self) -> Result<(), ProtoError> {
        check_len("chunk ranges", self.ranges.len(), MAX_RANGES)?;
        if self.ranges.iter().any(|(_, len)| *len > MAX_RANGE) {
            return Err(ProtoError::TooLong {
                field: "chunk range",
                len: u64::from(MAX_RANGE) + 1,
                max: MAX_RANGE.into(),
            });
        }
        if self.total_len() > MAX_CHUNKS_BYTES {
            return Err(ProtoError::TooLong {
                field: "chunk ranges in all",
                len: self.total_len(),
                max: MAX_CHUNKS_BYTES,
            });
        }
        Ok(())
    }
}

impl ChunkRanges {
    /// Bytes the answer carries.
    pub fn total_len(&self) -> u64 {
        self.ranges.iter().map(|(_, len)| u64::from(*len)).sum()
    }
}
