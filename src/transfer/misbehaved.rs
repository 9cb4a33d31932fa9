//! How a holder can break a transfer: answers that are false or broken, as
//! opposed to a holder that cannot serve now. In the manner of rustls'
//! `PeerMisbehaved`: each way has its own variant, so callers and tests
//! match on what happened rather than on words.

use crate::model::ContentHash;

/// What a holder sent that is false or breaks the protocol. A holder that
/// misbehaves is dropped for the whole transfer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Misbehaved {
    /// A frame that does not decode or breaks a limit (the transport's
    /// reason, worded without the peer's name).
    #[error("{0}")]
    BrokenFrame(String),
    /// A well-formed answer of the wrong kind (its debug form).
    #[error("unexpected answer {0}")]
    UnexpectedAnswer(String),
    #[error("a manifest index longer than the content allows")]
    IndexTooLong,
    #[error("a manifest index page out of order")]
    IndexOutOfOrder,
    #[error("a manifest of more chunks than the content allows")]
    TooManyChunks,
    #[error("manifest page {0} does not match its index")]
    PageMismatch(u32),
    /// A chunk no chunking of this repository makes (each is received into
    /// memory whole, so a lying length must never be allocated).
    #[error("a manifest chunk of {len} bytes, outside this repository's 1 to {max}")]
    ChunkLength { len: u32, max: u32 },
    /// A manifest whose chunks do not add up to the content's size.
    #[error("its manifest covers {covers} bytes, the content has {size}")]
    ManifestSize { covers: u64, size: u64 },
    /// A manifest whose chunks, assembled, are not the content.
    #[error("sent a wrong manifest for {0}")]
    WrongManifest(ContentHash),
    #[error("sub-chunks that do not cover the chunk")]
    SubChunksDoNotCover,
    #[error("sent a corrupted sub-chunk")]
    CorruptSubChunk,
    #[error("sub-chunks that do not make the chunk")]
    SubChunksDoNotRebuild,
}

impl Misbehaved {
    /// An answer of the wrong kind.
    pub(crate) fn unexpected(answer: &crate::proto::Response) -> Self {
        Misbehaved::UnexpectedAnswer(format!("{answer:?}"))
    }
}
