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
    /// An index of more pages than a manifest of the content's size needs.
    #[error("a manifest index longer than the content allows")]
    IndexTooLong,
    /// Index pages that do not follow each other.
    #[error("a manifest index page out of order")]
    IndexOutOfOrder,
    /// A manifest of more chunks than the content's size allows.
    #[error("a manifest of more chunks than the content allows")]
    TooManyChunks,
    /// A page that does not hash to its reference in the index (its place).
    #[error("manifest page {0} does not match its index")]
    PageMismatch(u32),
    /// A chunk no chunking of this repository makes (each is received into
    /// memory whole, so a lying length must never be allocated).
    #[error("a manifest chunk of {len} bytes, outside this repository's 1 to {max}")]
    ChunkLength {
        /// The length sent.
        len: u32,
        /// This repository's largest chunk.
        max: u32,
    },
    /// A manifest whose chunks do not add up to the content's size.
    #[error("its manifest covers {covers} bytes, the content has {size}")]
    ManifestSize {
        /// What the chunks add up to.
        covers: u64,
        /// The content's size.
        size: u64,
    },
    /// A manifest whose chunks, assembled, are not the content.
    #[error("sent a wrong manifest for {0}")]
    WrongManifest(ContentHash),
    /// Sub-chunks whose lengths do not add up to the chunk asked.
    #[error("sub-chunks that do not cover the chunk")]
    SubChunksDoNotCover,
    /// A sub-chunk whose bytes do not hash to their reference.
    #[error("sent a corrupted sub-chunk")]
    CorruptSubChunk,
    /// Sub-chunks that, assembled, do not hash to the chunk.
    #[error("sub-chunks that do not make the chunk")]
    SubChunksDoNotRebuild,
}

impl Misbehaved {
    /// An answer of the wrong kind.
    pub(crate) fn unexpected(answer: &crate::proto::Response) -> Self {
        Misbehaved::UnexpectedAnswer(format!("{answer:?}"))
    }
}
