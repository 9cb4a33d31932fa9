//! The single pass: read a stream once into a reusable buffer, cut it with
//! fastcdc, hash every chunk and the whole stream with blake3.

use std::io::{self, Read};

use fastcdc::v2020::{self, Normalization};

use super::{ChunkParams, ChunkRef, Manifest};
use crate::model::ContentHash;

/// What one pass over a content yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentSummary {
    /// blake3 of the whole content: the content's identity everywhere (entries, holders,
    /// requests).
    pub hash: ContentHash,
    /// Length of the content in bytes.
    pub size: u64,
    /// Its chunks in order, for a content of several chunks (fetched and verified chunk by
    /// chunk).
    pub manifest: Manifest,
}

/// Reads `reader` to the end once, returning its blake3 hash, its size and
/// its chunk manifest. `buf` is scratch space reused across calls (its length
/// must be at least four times `params.max`, so that each refill moves few bytes).
pub fn hash_reader(
    reader: &mut impl Read,
    params: ChunkParams,
    buf: &mut [u8],
) -> io::Result<ContentSummary> {
    let (min, avg, max) = (
        params.min as usize,
        params.avg as usize,
        params.max as usize,
    );
    assert!(
        buf.len() >= 4 * max,
        "scratch buffer too small for the chunk size"
    );
    let (mask_s, mask_l) = v2020::select_masks(avg, Normalization::Level1);
    let mut whole = blake3::Hasher::new();
    let mut chunks = Vec::new();
    let mut size = 0u64;
    let (mut start, mut filled, mut eof) = (0usize, 0usize, false);
    loop {
        while filled < buf.len() && !eof {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => eof = true,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // Cut only where the chunker sees a full window (or the real end), so
        // cut points do not depend on how reads happened to fall.
        while start < filled && (eof || filled - start >= max) {
            let (_, len) = v2020::cut(
                &buf[start..filled],
                min,
                avg,
                max,
                mask_s,
                mask_l,
                mask_s << 1,
                mask_l << 1,
            );
            let chunk = &buf[start..start + len];
            whole.update(chunk);
            chunks.push(ChunkRef {
                hash: blake3::hash(chunk).into(),
                len: len as u32,
            });
            size += len as u64;
            start += len;
        }
        if eof {
            break;
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
        start = 0;
    }
    Ok(ContentSummary {
        hash: whole.finalize().into(),
        size,
        manifest: Manifest { chunks },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// A reader that returns at most `step` bytes per read.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(out.len()).min(self.0.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn summary(data: &[u8], step: usize) -> ContentSummary {
        let params = ChunkParams::DEFAULT;
        let mut buf = vec![0; 4 * params.max as usize];
        hash_reader(&mut Trickle(data, step), params, &mut buf).unwrap()
    }

    #[test]
    fn hash_is_b3sum_and_chunks_cover_the_file() {
        let data = pseudo_random(3 * 1024 * 1024 + 17, 1);
        let s = summary(&data, usize::MAX);
        assert_eq!(s.hash, ContentHash::from(blake3::hash(&data)));
        assert_eq!(s.size, data.len() as u64);
        assert_eq!(s.manifest.total_len(), data.len() as u64);
        let mut offset = 0;
        for c in &s.manifest.chunks {
            let chunk = &data[offset..offset + c.len as usize];
            assert_eq!(c.hash, ContentHash::from(blake3::hash(chunk)));
            assert!(c.len <= ChunkParams::DEFAULT.max);
            offset += c.len as usize;
        }
        let mean = data.len() / s.manifest.chunks.len();
        assert!((16 * 1024..64 * 1024).contains(&mean), "mean chunk {mean}");
    }

    #[test]
    fn cut_points_do_not_depend_on_read_sizes() {
        let data = pseudo_random(2 * 1024 * 1024, 2);
        let whole = summary(&data, usize::MAX);
        for step in [1000, 4096, 65_537, 300_000] {
            assert_eq!(summary(&data, step), whole, "read size {step}");
        }
    }

    #[test]
    fn an_insert_changes_few_chunks() {
        let data = pseudo_random(8 * 1024 * 1024, 3);
        let mut edited = data.clone();
        edited.splice(4_000_000..4_000_000, [7u8; 100]);
        let before = summary(&data, usize::MAX).manifest.chunks;
        let after = summary(&edited, usize::MAX).manifest.chunks;
        let changed: u64 = after
            .iter()
            .filter(|c| !before.contains(c))
            .map(|c| c.len as u64)
            .sum();
        assert!(changed < 3 * 128 * 1024, "{changed} bytes of new chunks");
    }

    #[test]
    fn empty_and_tiny_inputs() {
        let empty = summary(&[], 10);
        assert_eq!(empty.size, 0);
        assert!(empty.manifest.chunks.is_empty());
        assert_eq!(empty.hash, ContentHash::from(blake3::hash(&[])));
        let tiny = summary(b"hello", 10);
        assert_eq!(tiny.manifest.chunks.len(), 1);
        assert_eq!(tiny.manifest.chunks[0].hash, tiny.hash);
    }
}
