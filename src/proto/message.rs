//! The messages of protocol version 1 and their limits.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::transfer::validate_pages;
use super::{
    ChunkRanges, ManifestIndex, ProtoError, SyncHello, MAX_BULK, MAX_ERROR_TEXT, MAX_FILES,
    MAX_NAME, MAX_PING_PAYLOAD, MAX_WHOLE_FILE, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
};
use crate::chunk::ChunkRef;
use crate::model::{ContentHash, NodeId, RepoId};

/// A message whose lengths and counts can be checked after decoding (and
/// before encoding). Types are not recursive, so nesting is fixed by the types.
pub trait Validate {
    /// Checks every length and count against its limit.
    fn validate(&self) -> Result<(), ProtoError>;
}

/// Refuses a length or count above its limit.
pub(super) fn check_len(field: &'static str, len: usize, max: usize) -> Result<(), ProtoError> {
    if len > max {
        return Err(ProtoError::TooLong {
            field,
            len: len as u64,
            max: max as u64,
        });
    }
    Ok(())
}

/// The first message on a connection, sent by both sides on the first
/// bidirectional stream (client first). The first two fields keep their place
/// and encoding in every protocol version, so that any version can read
/// another's version range and say why they cannot talk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The newest protocol version the sender speaks.
    pub version: u32,
    /// The oldest protocol version the sender speaks.
    pub min_version: u32,
    /// The repository the sender belongs to.
    pub repo_id: RepoId,
    /// The sender's node id; must be the one its TLS certificate proves.
    pub node_id: NodeId,
    /// The sender's name, informational only (at most [`MAX_NAME`] bytes).
    pub node_name: String,
    /// The sender has recorded nothing and synced with no one: it will join
    /// the peer's repository, so a different `repo_id` is not a mismatch.
    pub fresh: bool,
    /// The sender accepts connections (it runs `serve`), so a node whose
    /// dial of it failed may dial it again now. A one-shot command (`sync`,
    /// `get`) says `false`: dialing it back would only meet a closed port.
    pub serves: bool,
}

impl Hello {
    /// A `Hello` for this build's protocol range.
    /// The repository the sender belongs to, as it says.
    pub fn membership(&self) -> super::Membership {
        super::Membership {
            repo_id: self.repo_id,
            fresh: self.fresh,
        }
    }

    /// A `Hello` for this build's protocol range.
    pub fn new(repo_id: RepoId, node_id: NodeId, node_name: &str) -> Self {
        Hello {
            version: PROTOCOL_VERSION,
            min_version: MIN_PROTOCOL_VERSION,
            repo_id,
            node_id,
            node_name: node_name.to_owned(),
            fresh: false,
            serves: false,
        }
    }
}

impl Validate for Hello {
    fn validate(&self) -> Result<(), ProtoError> {
        check_len("node name", self.node_name.len(), MAX_NAME)?;
        if self.min_version > self.version {
            return Err(ProtoError::Malformed(format!(
                "version range {}..={} is empty",
                self.min_version, self.version
            )));
        }
        Ok(())
    }
}

/// Reads only the version range at the start of a `Hello` body, which every
/// protocol version encodes the same way: `(version, min_version)`.
pub fn hello_versions(body: &[u8]) -> Result<(u32, u32), ProtoError> {
    let ((version, min_version), _) = postcard::take_from_bytes::<(u32, u32)>(body)
        .map_err(|e| ProtoError::Malformed(e.to_string()))?;
    Ok((version, min_version))
}

/// The version both sides speak: the highest in both ranges.
pub fn negotiate(ours: (u32, u32), theirs: (u32, u32)) -> Option<u32> {
    let high = ours.0.min(theirs.0);
    let low = ours.1.max(theirs.1);
    (high >= low).then_some(high)
}

/// Why two nodes cannot talk, worded from the point of view of the side that
/// checks (`peer` is the other side's name as this side knows it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HelloMismatch {
    /// No protocol version both sides speak.
    Version {
        /// The peer's (newest, oldest) protocol versions.
        theirs: (u32, u32),
        /// Ours.
        ours: (u32, u32),
    },
    /// Two repositories, and neither side is fresh (so neither may join the other).
    Repository {
        /// The peer's repository.
        theirs: RepoId,
        /// Ours.
        ours: RepoId,
    },
    /// The `Hello` names another node than the certificate proves.
    Identity {
        /// The node id the `Hello` names.
        claimed: NodeId,
        /// The node id the TLS certificate proves.
        proven: NodeId,
    },
}

impl HelloMismatch {
    /// The application close code that goes with this mismatch.
    pub fn close_code(&self) -> u32 {
        match self {
            HelloMismatch::Version { .. } => super::close::VERSION_MISMATCH,
            HelloMismatch::Repository { .. } => super::close::REPO_MISMATCH,
            HelloMismatch::Identity { .. } => super::close::IDENTITY_MISMATCH,
        }
    }

    /// A readable sentence naming the peer.
    pub fn describe(&self, peer: &str) -> String {
        match self {
            HelloMismatch::Version { theirs, ours } => {
                let range = |(high, low): (u32, u32)| {
                    if high == low {
                        format!("{high}")
                    } else {
                        format!("{low} to {high}")
                    }
                };
                format!(
                    "peer {peer} speaks protocol {}, we speak {}; upgrade the older harmony",
                    range(*theirs),
                    range(*ours)
                )
            }
            HelloMismatch::Repository { theirs, ours } => format!(
                "peer {peer} belongs to repository {theirs}, this location to repository {ours}; \
                 nodes of different repositories do not exchange anything"
            ),
            HelloMismatch::Identity { claimed, proven } => {
                format!("peer {peer} claims node id {claimed} but its certificate proves {proven}")
            }
        }
    }
}

impl fmt::Display for HelloMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe("the peer"))
    }
}

/// Checks a peer's `Hello` body against ours and the node id its TLS
/// certificate proved. Different repositories are a mismatch unless one side
/// is fresh (it joins the other's repository; when both are fresh, the
/// client joins the server's). Versions are checked first, from the fixed prefix, so
/// that a `Hello` of a future version still yields a readable reason.
/// Returns the decoded `Hello` and the negotiated version.
pub fn check_hello(
    body: &[u8],
    ours: &Hello,
    proven: NodeId,
) -> Result<Result<(Hello, u32), HelloMismatch>, ProtoError> {
    let theirs_range = hello_versions(body)?;
    let ours_range = (ours.version, ours.min_version);
    let Some(version) = negotiate(ours_range, theirs_range) else {
        return Ok(Err(HelloMismatch::Version {
            theirs: theirs_range,
            ours: ours_range,
        }));
    };
    let hello: Hello = super::decode_body(body)?;
    if hello.node_id != proven {
        return Ok(Err(HelloMismatch::Identity {
            claimed: hello.node_id,
            proven,
        }));
    }
    if !super::compatible(hello.membership(), ours.membership()) {
        return Ok(Err(HelloMismatch::Repository {
            theirs: hello.repo_id,
            ours: ours.repo_id,
        }));
    }
    Ok(Ok((hello, version)))
}

/// A request, the first frame a client sends on a request stream (a
/// bidirectional stream after the handshake stream). Later protocol versions
/// add variants at the end; a server answers an unknown one with
/// `Response::Error { code: ErrorCode::UNSUPPORTED }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Echo `payload` back (at most [`MAX_PING_PAYLOAD`] bytes).
    Ping {
        /// The bytes to echo.
        payload: Vec<u8>,
    },
    /// Send `len` bytes of a fixed pattern (at most [`MAX_BULK`]): the
    /// throughput probe. Answered by `Response::Bulk` and then `len` raw bytes.
    Bulk {
        /// How many bytes to send.
        len: u64,
    },
    /// Start a state sync session with the client's hello. Answered by
    /// `Response::Sync` with the server's; then, unless the digests are
    /// equal, each side sends `Batch` frames until its last (empty) batch.
    Sync(SyncHello),
    /// The index of the chunk manifest of content `hash` (references to its
    /// pages), from page `first`. Answered by `Response::Manifest`, or
    /// `Error(REFUSED)` when the server does not hold that content.
    Manifest {
        /// The content.
        hash: ContentHash,
        /// The first index page wanted (an index longer than one answer is asked in steps).
        first: u32,
    },
    /// Bytes of content `hash`. Answered by `Response::Chunks { len }` and
    /// then exactly `len` raw bytes: the ranges back to back.
    Chunks(ChunkRanges),
    /// Does the server hold content `hash` now (checked on its disk)?
    /// Answered by `Response::Has`. `drop` asks it before deleting a copy.
    Has {
        /// The content.
        hash: ContentHash,
    },
    /// Pages of the manifest of content `hash`, by their place in its index
    /// (at most [`super::MAX_PAGES_ASKED`]). Answered by
    /// `Response::ManifestPages` with those pages, in the order asked.
    ManifestPages {
        /// The content.
        hash: ContentHash,
        /// Places of the pages in the index.
        pages: Vec<u32>,
    },
    /// Whole contents, each at most [`MAX_WHOLE_FILE`] bytes (at most
    /// [`MAX_FILES`]): many small files in one round trip. Answered by
    /// `Response::Files` and then the contents served, back to back.
    Files {
        /// The contents, each answered in the order asked.
        hashes: Vec<ContentHash>,
    },
    /// The bytes `offset..offset + len` of content `hash` (at most
    /// [`super::MAX_REFINE`]; a chunk the client lacks) cut into sub-chunks
    /// with `chunk::REFINE_PARAMS`. Answered by `Response::Refined`: the
    /// client fetches only the sub-chunks it does not have.
    Refine {
        /// The content the chunk belongs to.
        hash: ContentHash,
        /// Where the chunk starts in the content.
        offset: u64,
        /// The chunk's length.
        len: u32,
    },
    /// The sender's replicated state changed; its digest is now `digest`.
    /// Answered by `Response::Noted`. A serving receiver whose own digest
    /// differs syncs with the sender soon: this is how `serve` passes a
    /// change on within a second instead of at the next periodic sync.
    Notify {
        /// The sender's state digest (as in `SyncHello`).
        digest: [u8; 32],
    },
    /// Pair with the server by an invite (protocol.md, "Pairing"): the only
    /// request a server answers from a node it does not trust, and only
    /// while it has an invite pending. Answered by `Response::Join`.
    Join(super::JoinRequest),
}

impl Request {
    /// How many request kinds (enum variants) this version knows: a frame
    /// whose leading variant index is at least this is a request of a newer
    /// version, answered with `ErrorCode::UNSUPPORTED` rather than as garbage.
    pub const KNOWN_KINDS: u32 = 11;

    /// The variant index at the start of a request body, if it can be read.
    pub fn kind_of(body: &[u8]) -> Option<u32> {
        postcard::take_from_bytes::<u32>(body).ok().map(|(k, _)| k)
    }
}

impl Validate for Request {
    fn validate(&self) -> Result<(), ProtoError> {
        match self {
            Request::Ping { payload } => check_len("ping payload", payload.len(), MAX_PING_PAYLOAD),
            Request::Bulk { len } => {
                if *len > MAX_BULK {
                    return Err(ProtoError::TooLong {
                        field: "bulk length",
                        len: *len,
                        max: MAX_BULK,
                    });
                }
                Ok(())
            }
            Request::Sync(hello) => hello.validate(),
            Request::Manifest { .. }
            | Request::Has { .. }
            | Request::Notify { .. }
            | Request::Join(_) => Ok(()),
            Request::Chunks(ranges) => ranges.validate(),
            Request::ManifestPages { pages, .. } => {
                check_len("manifest pages asked", pages.len(), super::MAX_PAGES_ASKED)
            }
            Request::Files { hashes } => check_len("files asked", hashes.len(), MAX_FILES),
            Request::Refine { len, .. } => {
                check_len("bytes to refine", *len as usize, super::MAX_REFINE as usize)
            }
        }
    }
}

/// The first frame a server sends back on a request stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The `Ping` payload, unchanged.
    Pong {
        /// The payload echoed.
        payload: Vec<u8>,
    },
    /// `len` raw bytes follow this frame, then the stream ends.
    Bulk {
        /// How many raw bytes follow.
        len: u64,
    },
    /// The request failed; the stream ends.
    Error {
        /// What kind of failure, for the client to act on.
        code: ErrorCode,
        /// The reason, for the user (at most `MAX_ERROR_TEXT` bytes).
        message: String,
    },
    /// The server's hello in a sync session.
    Sync(SyncHello),
    /// A part of the content's manifest index.
    Manifest(ManifestIndex),
    /// `len` raw bytes follow.
    Chunks {
        /// How many raw bytes follow (the ranges asked, back to back).
        len: u64,
    },
    /// Whether the server holds the content now.
    Has(bool),
    /// The pages asked for, in the order asked.
    ManifestPages(Vec<Vec<ChunkRef>>),
    /// Per content asked, its length if it is served (`None`: not held,
    /// changed since recorded, or too large); the served contents follow,
    /// back to back, in the order asked.
    Files {
        /// Per content asked, in order.
        lens: Vec<Option<u64>>,
    },
    /// The sub-chunks of the range asked, in order.
    Refined(Vec<ChunkRef>),
    /// A `Notify` was received.
    Noted,
    /// The answer to a `Join`.
    Join(super::JoinAnswer),
}

impl Validate for Response {
    fn validate(&self) -> Result<(), ProtoError> {
        match self {
            Response::Pong { payload } => {
                check_len("pong payload", payload.len(), MAX_PING_PAYLOAD)
            }
            Response::Bulk { len } => Request::Bulk { len: *len }.validate(),
            Response::Error { message, .. } => {
                check_len("error text", message.len(), MAX_ERROR_TEXT)
            }
            Response::Sync(hello) => hello.validate(),
            Response::Manifest(index) => index.validate(),
            Response::Chunks { .. } | Response::Has(_) | Response::Noted | Response::Join(_) => {
                Ok(())
            }
            Response::ManifestPages(pages) => validate_pages(pages),
            Response::Refined(subs) => check_len("sub-chunks", subs.len(), super::MAX_SUB_CHUNKS),
            Response::Files { lens } => {
                check_len("files answered", lens.len(), MAX_FILES)?;
                match lens.iter().flatten().find(|len| **len > MAX_WHOLE_FILE) {
                    Some(len) => Err(ProtoError::TooLong {
                        field: "whole file",
                        len: *len,
                        max: MAX_WHOLE_FILE,
                    }),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Request-level error codes carried by `Response::Error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    /// The request frame could not be decoded or broke a limit.
    pub const MALFORMED: ErrorCode = ErrorCode(1);
    /// This server does not handle that kind of request.
    pub const UNSUPPORTED: ErrorCode = ErrorCode(2);
    /// The server failed while handling the request.
    pub const INTERNAL: ErrorCode = ErrorCode(3);
    /// The server is shutting down.
    pub const SHUTDOWN: ErrorCode = ErrorCode(4);
    /// The request was refused (e.g. a resource is not available).
    pub const REFUSED: ErrorCode = ErrorCode(5);
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            ErrorCode::MALFORMED => "malformed request",
            ErrorCode::UNSUPPORTED => "unsupported request",
            ErrorCode::INTERNAL => "internal error",
            ErrorCode::SHUTDOWN => "shutting down",
            ErrorCode::REFUSED => "refused",
            _ => "unknown error",
        };
        write!(f, "{name} ({})", self.0)
    }
}
