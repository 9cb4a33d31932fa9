//! What can go wrong between two nodes, worded for the user.

use std::net::SocketAddr;

use crate::model::NodeId;
use crate::proto::{ErrorCode, ProtoError};

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot bind the QUIC endpoint to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot reach peer {peer} at {addr}: {reason}; is `harmony serve` running there and the address right?")]
    Unreachable {
        peer: String,
        addr: SocketAddr,
        reason: String,
    },
    #[error("peer {peer} does not trust this node (ask its owner to run `harmony peer add {our_name} {our_id} <this node's host:port>`)")]
    NotTrusted {
        peer: String,
        our_name: String,
        our_id: NodeId,
    },
    #[error("the node at {addr} is {found}, not peer {peer} ({expected}); check the address, or the peer's key changed (then `harmony peer remove {peer}` and add its new id)")]
    WrongPeer {
        peer: String,
        addr: SocketAddr,
        expected: NodeId,
        found: NodeId,
    },
    #[error("TLS handshake with peer {peer} at {addr} failed: {reason}")]
    Handshake {
        peer: String,
        addr: SocketAddr,
        reason: String,
    },
    /// The handshake found the nodes incompatible (reason worded by this side).
    #[error("{0}")]
    Incompatible(String),
    #[error("peer {peer} closed the connection: {reason}")]
    Closed { peer: String, reason: String },
    #[error("connection to peer {peer} lost: {reason}")]
    Lost { peer: String, reason: String },
    #[error("peer {peer} sent an invalid message: {source}")]
    Protocol {
        peer: String,
        #[source]
        source: ProtoError,
    },
    #[error("peer {peer} answered: {code}: {message}")]
    Remote {
        peer: String,
        code: ErrorCode,
        message: String,
    },
    #[error("peer {peer} aborted the stream: {} (code {code})", stream_reset_meaning(*.code))]
    StreamReset { peer: String, code: u64 },
    #[error("peer {peer} did not answer within {secs} s")]
    Timeout { peer: String, secs: u64 },
    /// Nothing moved on the connection for a whole no-progress limit while a
    /// stream waited (see `FramedStream`).
    #[error("peer {peer} stalled: nothing moved on the connection for {secs} s")]
    Stalled { peer: String, secs: u64 },
    #[error("peer {peer} sent an unexpected answer: {what}")]
    Unexpected { peer: String, what: String },
}

impl NetError {
    /// What went wrong with a peer, without naming it: for messages that
    /// already start with the peer's name (e.g. why a holder was dropped
    /// from a transfer).
    pub fn reason(&self) -> String {
        match self {
            NetError::Closed { reason, .. } => format!("closed the connection: {reason}"),
            NetError::Lost { reason, .. } => format!("connection lost: {reason}"),
            NetError::Protocol { source, .. } => format!("sent an invalid message: {source}"),
            NetError::Remote { code, message, .. } => remote_reason(*code, message),
            NetError::StreamReset { code, .. } => format!(
                "aborted the stream: {} (code {code})",
                stream_reset_meaning(*code)
            ),
            NetError::Timeout { secs, .. } => format!("did not answer within {secs} s"),
            NetError::Stalled { secs, .. } => {
                format!("stalled: nothing moved on the connection for {secs} s")
            }
            NetError::Unexpected { what, .. } => format!("sent an unexpected answer: {what}"),
            other => other.to_string(),
        }
    }
}

/// A peer's `Error` answer in words: "refused: why", or the code and why.
pub fn remote_reason(code: ErrorCode, message: &str) -> String {
    if code == ErrorCode::REFUSED {
        format!("refused: {message}")
    } else {
        format!("{code}: {message}")
    }
}

/// What a stream error code (protocol.md, section 7) means, for messages.
fn stream_reset_meaning(code: u64) -> &'static str {
    use crate::proto::stream;
    match u32::try_from(code) {
        Ok(stream::MALFORMED) => "it found a frame malformed",
        Ok(stream::TIMEOUT) => "nothing moved on the connection for too long",
        Ok(stream::SHUTDOWN) => "it is stopping",
        Ok(stream::INTERNAL) => "its handler failed (its log says why)",
        Ok(stream::CHANGED) => "its file changed while it was sent",
        _ => "unknown reason",
    }
}
