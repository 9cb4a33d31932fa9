//! Refinement: fetching a changed chunk by its differences from the older
//! version held here, so that an edit costs about the edit, not the chunk.
//!
//! A 100-byte insert rewrites one chunk of ~32-128 KiB. When the file's
//! older version is here, the chunks it had and the new version lacks are
//! what the edit replaced. The holder cuts the new chunk into sub-chunks of
//! ~2 KiB ([`crate::chunk::REFINE_PARAMS`]); this side cuts the replaced
//! chunks the same way and asks only for the sub-chunks it does not have.
//! Every sub-chunk is checked against its hash, and the chunk rebuilt from
//! them against the chunk's hash, before it is written.

use std::collections::{HashMap, HashSet};

use super::local::LocalCopies;
use super::rate::RateLimit;
use super::{ask, AskError, Misbehaved};
use crate::chunk::{refine, ChunkRef, Manifest};
use crate::model::ContentHash;
use crate::net::PeerConnection;
use crate::proto::{ChunkRanges, Request, Response, MAX_RANGES};

/// Chunks refined per content, at most: refinement pays a round trip per
/// chunk, worth it for an edit, not for a rewrite.
pub(super) const MAX_CHUNKS: usize = 16;
/// Bytes of replaced chunks read and cut, at most.
const MAX_OLD_BYTES: u64 = 16 << 20;

/// The sub-chunks of what an edit replaced, with their bytes.
pub(super) struct OldPieces {
    subs: HashMap<ContentHash, Vec<u8>>,
}

impl OldPieces {
    /// Cuts the chunks of `old` that `new` lacks (read from the files here,
    /// checked) into sub-chunks.
    pub(super) fn load(copies: &LocalCopies, old: &Manifest, new: &Manifest) -> Self {
        let kept: HashSet<ContentHash> = new.chunks.iter().map(|c| c.hash).collect();
        let mut subs = HashMap::new();
        let mut read = 0;
        for chunk in old.chunks.iter().filter(|c| !kept.contains(&c.hash)) {
            read += u64::from(chunk.len);
            if read > MAX_OLD_BYTES {
                break;
            }
            let Some(bytes) = copies.chunk(chunk) else {
                continue;
            };
            let mut at = 0;
            for sub in refine(&bytes) {
                let end = at + sub.len as usize;
                subs.entry(sub.hash)
                    .or_insert_with(|| bytes[at..end].to_vec());
                at = end;
            }
        }
        OldPieces { subs }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }
}

/// What refining one chunk gave.
pub(super) struct Refined {
    pub bytes: Vec<u8>,
    /// Bytes received from the holder (sub-chunks only).
    pub fetched: u64,
    /// Bytes taken from the older version.
    pub reused: u64,
}

/// Chunk `chunk` at `offset` of content `hash`, from `conn`, reusing `old`;
/// the sub-chunks are read as `limit` allows.
pub(super) async fn refine_chunk(
    conn: &PeerConnection,
    limit: &RateLimit,
    hash: ContentHash,
    offset: u64,
    chunk: ChunkRef,
    old: &OldPieces,
) -> Result<Refined, AskError> {
    let request = Request::Refine {
        hash,
        offset,
        len: chunk.len,
    };
    let subs = match ask(conn, &request).await?.0 {
        Response::Refined(subs) => subs,
        other => return Err(AskError::Lied(Misbehaved::unexpected(&other))),
    };
    if subs.iter().map(|s| u64::from(s.len)).sum::<u64>() != u64::from(chunk.len) {
        return Err(AskError::Lied(Misbehaved::SubChunksDoNotCover));
    }
    // Place what is here; list the ranges (relative to the chunk) to fetch.
    let mut bytes = vec![0u8; chunk.len as usize];
    let mut wanted: Vec<(usize, ChunkRef)> = Vec::new();
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    let mut at = 0usize;
    let mut reused = 0;
    for sub in &subs {
        let end = at + sub.len as usize;
        match old.subs.get(&sub.hash) {
            Some(piece) if piece.len() == sub.len as usize => {
                bytes[at..end].copy_from_slice(piece);
                reused += u64::from(sub.len);
            }
            _ => {
                wanted.push((at, *sub));
                match ranges.last_mut() {
                    Some((start, len)) if *start + *len == at as u64 => *len += u64::from(sub.len),
                    _ => ranges.push((at as u64, u64::from(sub.len))),
                }
            }
        }
        at = end;
    }
    if ranges.len() > MAX_RANGES {
        return Err(AskError::Unavailable("too many pieces to fetch".into()));
    }
    let fetched: u64 = ranges.iter().map(|(_, len)| len).sum();
    if fetched > 0 {
        let request = Request::Chunks(ChunkRanges {
            hash,
            ranges: ranges.iter().map(|(o, l)| (offset + o, *l)).collect(),
        });
        let mut stream = match ask(conn, &request).await? {
            (Response::Chunks { len }, stream) if len == fetched => stream,
            (other, _) => return Err(AskError::Lied(Misbehaved::unexpected(&other))),
        };
        for (at, sub) in &wanted {
            let piece = &mut bytes[*at..*at + sub.len as usize];
            limit.recv_exact(&mut stream, piece).await?;
            if ContentHash::from(blake3::hash(piece)) != sub.hash {
                return Err(AskError::Lied(Misbehaved::CorruptSubChunk));
            }
        }
    }
    if ContentHash::from(blake3::hash(&bytes)) != chunk.hash {
        return Err(AskError::Lied(Misbehaved::SubChunksDoNotRebuild));
    }
    Ok(Refined {
        bytes,
        fetched,
        reused,
    })
}
