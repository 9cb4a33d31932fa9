//! The wire protocol, sans I/O: message types, framing, limits, version and
//! error-code constants. Nothing here touches a socket or an async runtime, so
//! every rule can be unit- and property-tested; `net` is the shell that moves
//! these bytes over QUIC. `protocol.md` at the top of the repository is the
//! specification this module implements (a test checks its hex examples).

mod batch_wire;
pub mod discovery;
mod frame;
pub mod holdings;
mod join;
mod message;
pub mod pair;
mod sync;
mod transfer;

#[cfg(test)]
mod tests;

pub use frame::{decode_body, decode_frame, encode_frame, frame_len, FRAME_HEADER_LEN};
pub use holdings::HolderRun;
pub use join::{compatible, join, Join, Membership, Side};
pub use message::{
    check_hello, hello_versions, negotiate, ErrorCode, Hello, HelloMismatch, Request, Response,
    Validate,
};
pub use pair::{JoinAnswer, JoinRefusal, JoinRequest};
pub use sync::{
    Batch, SyncHello, MAX_BATCH_ENTRIES, MAX_BATCH_NODES, MAX_NODES_PER_ENTRY, MAX_SIBLINGS,
};
pub use transfer::{
    ChunkRanges, ManifestIndex, MAX_CHUNKS_BYTES, MAX_FILES, MAX_INDEX_PAGES, MAX_PAGES_ASKED,
    MAX_PAGE_CHUNKS_SENT, MAX_RANGES, MAX_REFINE, MAX_SUB_CHUNKS, MAX_WHOLE_FILE,
};

/// The protocol version this build speaks (the newest it understands).
pub const PROTOCOL_VERSION: u32 = 6;
/// The oldest protocol version this build still speaks.
pub const MIN_PROTOCOL_VERSION: u32 = 6;

/// The TLS application protocol (ALPN) of the wire family: the framing and
/// the layout of the first two `Hello` fields. Protocol versions inside the
/// family are negotiated by `Hello`, so that a mismatch gets a readable reason
/// instead of a bare TLS alert.
pub const ALPN: &[u8] = b"harmony/1";

/// Largest frame body (postcard bytes after the length prefix) for control
/// messages. Bulk bytes that follow a header frame are not framed.
pub const MAX_FRAME: usize = 1024 * 1024;
/// Longest node name in a `Hello` (bytes of UTF-8).
pub const MAX_NAME: usize = 64;
/// Longest human-readable error text in a `Response::Error` (bytes of UTF-8).
pub const MAX_ERROR_TEXT: usize = 1024;
/// Longest `Ping` payload.
pub const MAX_PING_PAYLOAD: usize = 64 * 1024;
/// Most bytes one `Bulk` request may ask for (16 GiB).
pub const MAX_BULK: u64 = 16 << 30;

/// Application error codes used to close a QUIC connection (`CONNECTION_CLOSE`
/// of type 0x1d) together with a UTF-8 reason.
pub mod close {
    /// Orderly close: the client is done.
    pub const DONE: u32 = 0;
    /// A peer sent a frame or message that breaks this specification.
    pub const PROTOCOL_ERROR: u32 = 1;
    /// No common protocol version.
    pub const VERSION_MISMATCH: u32 = 2;
    /// The peers belong to different repositories.
    pub const REPO_MISMATCH: u32 = 3;
    /// The node id in `Hello` is not the one the TLS handshake authenticated.
    pub const IDENTITY_MISMATCH: u32 = 4;
    /// No `Hello` within the handshake timeout.
    pub const HANDSHAKE_TIMEOUT: u32 = 5;
    /// The server is shutting down.
    pub const SHUTDOWN: u32 = 6;
    /// The server has as many connections as it accepts.
    pub const BUSY: u32 = 7;
}

/// Application error codes used to reset (`RESET_STREAM`) or stop
/// (`STOP_SENDING`) one stream; the connection goes on.
pub mod stream {
    /// A malformed, oversized or truncated frame.
    pub const MALFORMED: u32 = 1;
    /// No request, or no progress, within the no-progress limit.
    pub const TIMEOUT: u32 = 2;
    /// The server is shutting down.
    pub const SHUTDOWN: u32 = 3;
    /// The handler failed.
    pub const INTERNAL: u32 = 4;
    /// The file being sent changed on the server's disk: what was sent of
    /// it is not that content. Not a lie: ask again later or elsewhere.
    pub const CHANGED: u32 = 5;
}

/// Why a frame or message was rejected. Never panics, never allocates more
/// than the frame it is given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// A frame longer than the limit for its kind: refused before its body is read.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    Oversized {
        /// Its announced length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A body that does not decode as the expected message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A body with bytes after the message (a message must fill its frame exactly).
    #[error("{trailing} unexpected bytes after the message")]
    Trailing {
        /// How many.
        trailing: usize,
    },
    /// A field or list longer than its limit.
    #[error("{field} is {len} long, the limit is {max}")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The stream ended before the frame did.
    #[error("stream ended inside a frame")]
    Truncated,
}
