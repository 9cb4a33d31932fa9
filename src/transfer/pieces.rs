//! Recycled read buffers for the serving side.
//!
//! A piece read from disk is handed to quinn as [`Bytes`] and stays in its
//! send buffer until the peer acknowledges it. Allocating each 1 MiB piece
//! afresh cost the server a page fault and a kernel zero-fill per 4 KiB
//! (about 5% of all CPU during a 1 GiB get, measured with `perf`), because
//! glibc hands such sizes back to the kernel on free. Here a piece's buffer
//! returns to a small process-wide pool when quinn drops it, and the next
//! read reuses it with its pages already mapped.

use std::sync::{Mutex, OnceLock};

use bytes::Bytes;

/// Buffers kept for reuse: enough for the read-ahead queue and the pieces
/// that are in flight, for one or two answers at a time.
const KEPT: usize = 12;

fn pool() -> &'static Mutex<Vec<Vec<u8>>> {
    static POOL: OnceLock<Mutex<Vec<Vec<u8>>>> = OnceLock::new();
    POOL.get_or_init(|| Mutex::new(Vec::with_capacity(KEPT)))
}

/// A buffer from the pool. It goes back when dropped, or, once shared,
/// when the last clone of its [`Bytes`] is dropped.
pub(super) struct Piece(Vec<u8>);

impl Piece {
    /// An empty buffer with room for `capacity` bytes, recycled if one is
    /// kept.
    pub(super) fn take(capacity: usize) -> Piece {
        let recycled = pool().lock().ok().and_then(|mut kept| kept.pop());
        Piece(match recycled {
            Some(mut buf) if buf.capacity() >= capacity => {
                buf.clear();
                buf
            }
            _ => Vec::with_capacity(capacity),
        })
    }

    /// The bytes as [`Bytes`], without a copy.
    pub(super) fn share(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl std::ops::Deref for Piece {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl std::ops::DerefMut for Piece {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl AsRef<[u8]> for Piece {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Piece {
    fn drop(&mut self) {
        if let Ok(mut kept) = pool().lock() {
            if kept.len() < KEPT {
                kept.push(std::mem::take(&mut self.0));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_piece_is_reused_with_its_contents_cleared() {
        let mut piece = Piece::take(4096);
        piece.extend_from_slice(b"piece");
        let ptr = piece.as_ptr();
        let bytes = piece.share();
        let clone = bytes.slice(1..3);
        drop(bytes);
        assert_eq!(&clone[..], b"ie", "a live slice keeps the buffer");
        drop(clone);
        // Other tests may take from the pool concurrently: look for ours.
        let mut taken = Vec::new();
        let mut found = false;
        for _ in 0..KEPT {
            let again = Piece::take(4096);
            if again.as_ptr() == ptr {
                assert!(again.is_empty());
                found = true;
            }
            taken.push(again);
        }
        assert!(found, "the buffer did not come back to the pool");
    }
}
