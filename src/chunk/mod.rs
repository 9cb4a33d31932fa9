//! Content-defined chunking (fastcdc v2020) and blake3 hashing, in one pass
//! over a file's bytes: the content hash (what `b3sum` prints) and the chunk
//! manifest come out of the same read.

mod hasher;
mod pages;

use serde::{Deserialize, Serialize};

use crate::model::ContentHash;
pub use hasher::{hash_reader, ContentSummary};
pub use pages::{page_hash, PageRef, PAGE_AVG_CHUNKS, PAGE_MAX_CHUNKS};

/// Chunk size bounds, fixed per repository at `init` (changing them would make
/// every manifest of the repository disagree with new ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkParams {
    /// No chunk is shorter (except a content's last).
    pub min: u32,
    /// The size fastcdc aims at: the mean, and so the granularity of dedup and of a resumed
    /// get.
    pub avg: u32,
    /// No chunk is longer: the bound a received chunk is checked against before it is
    /// buffered.
    pub max: u32,
}

impl ChunkParams {
    /// 8 / 32 / 128 KiB. Measured on the project's 2-core machine with
    /// `examples/bench_commit.rs`: the single pass (cut + hash every chunk +
    /// hash the whole) runs at ~1.19 GB/s per core, 7% slower than with
    /// 16/64/256 KiB (~1.28 GB/s), while a 100-byte insert rewrites about half
    /// as many bytes of chunks (mean ~40 KiB instead of ~86 KiB), which is what
    /// an edit costs on the wire. A manifest costs ~36 bytes per chunk: ~1.2 MB
    /// per GiB of content.
    pub const DEFAULT: ChunkParams = ChunkParams {
        min: 8 * 1024,
        avg: 32 * 1024,
        max: 128 * 1024,
    };

    /// Whether fastcdc v2020 can cut with these sizes: each within its
    /// bounds and even (it asserts both in debug builds), and
    /// `min <= avg <= max`. The parameters are read back from
    /// the state database, and damaged ones must be an error there, not a
    /// panic in the chunker or a scratch buffer of four times `max` (16 GiB
    /// for `u32::MAX`).
    pub fn is_valid(&self) -> bool {
        use fastcdc::v2020::{
            AVERAGE_MAX, AVERAGE_MIN, MAXIMUM_MAX, MAXIMUM_MIN, MINIMUM_MAX, MINIMUM_MIN,
        };
        let (min, avg, max) = (self.min as usize, self.avg as usize, self.max as usize);
        (MINIMUM_MIN..=MINIMUM_MAX).contains(&min)
            && (AVERAGE_MIN..=AVERAGE_MAX).contains(&avg)
            && (MAXIMUM_MIN..=MAXIMUM_MAX).contains(&max)
            && [min, avg, max].iter().all(|size| size % 2 == 0)
            && min <= avg
            && avg <= max
    }
}

/// One chunk of a content: its blake3 hash and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChunkRef {
    /// blake3 of the chunk's bytes, checked before they are written.
    pub hash: ContentHash,
    /// Length of the chunk in bytes.
    pub len: u32,
}

/// The chunks of one content, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The chunks, in content order; their lengths add up to the content's size.
    pub chunks: Vec<ChunkRef>,
}

impl Manifest {
    /// Length of the content the chunks make, in bytes.
    pub fn total_len(&self) -> u64 {
        self.chunks.iter().map(|c| c.len as u64).sum()
    }

    /// Where each chunk starts in the content.
    pub fn offsets(&self) -> Vec<u64> {
        let mut offset = 0;
        self.chunks
            .iter()
            .map(|c| {
                let at = offset;
                offset += u64::from(c.len);
                at
            })
            .collect()
    }
}

/// Sub-chunk bounds: a changed chunk is cut again this finely so that an
/// edit inside it costs about the edit, not the chunk (see
/// `transfer::refine`). fastcdc v2020's smallest allowed bounds are 64 /
/// 256 / 1024 bytes; at 512 / 2 KiB / 8 KiB a sub-chunk reference (36 B)
/// costs under 2% of the bytes it stands for.
pub const REFINE_PARAMS: ChunkParams = ChunkParams {
    min: 512,
    avg: 2 * 1024,
    max: 8 * 1024,
};

/// `bytes` cut into sub-chunks with [`REFINE_PARAMS`], each with its blake3.
pub fn refine(bytes: &[u8]) -> Vec<ChunkRef> {
    let p = REFINE_PARAMS;
    fastcdc::v2020::FastCDC::new(bytes, p.min as usize, p.avg as usize, p.max as usize)
        .map(|cut| ChunkRef {
            hash: blake3::hash(&bytes[cut.offset..cut.offset + cut.length]).into(),
            len: cut.length as u32,
        })
        .collect()
}
