//! What can go wrong between two nodes, worded for the user.

use std::net::SocketAddr;

use crate::model::NodeId;
use crate::proto::{ErrorCode, ProtoError};

/// What failed between this node and a peer, worded for the user: each variant names the
/// peer as this node knows it, and where the user can act, says how.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The UDP socket could not be bound (address in use, no permission).
    #[error("cannot bind the QUIC endpoint to {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Our own TLS settings were refused by rustls: a bug, not the peer's doing.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The peer did not answer within the handshake timeout (a stopped
    /// host, a firewall, a wrong address).
    #[error(
        "cannot reach peer {peer} at {addr}: {reason}; check that `harmony serve` runs \
         there, that this is the address it prints, and that no firewall drops UDP port \
         {} (a slow link may need a longer --connect-timeout)", addr.port()
    )]
    Unreachable {
        /// The peer's name, as this node knows it.
        peer: String,
        /// The address tried.
        addr: SocketAddr,
        /// What the transport said.
        reason: String,
    },
    /// An ICMP "port unreachable" came back: the host is there but nothing
    /// listens on the port (see `probe`).
    #[error(
        "cannot reach peer {peer} at {addr}: nothing listens on UDP port {} there (the \
         port is closed); check that `harmony serve` runs there and that this is the \
         address it prints (`harmony peer list` shows the address used here)", addr.port()
    )]
    PortClosed {
        /// The peer's name, as this node knows it.
        peer: String,
        /// The address tried.
        addr: SocketAddr,
    },
    /// The peer refused our certificate: it has not added this node (the message says the
    /// command that would).
    #[error("peer {peer} does not trust this node (ask its owner to run `harmony peer add {our_name} {our_id} <this node's host:port>`)")]
    NotTrusted {
        /// The peer's name, as this node knows it.
        peer: String,
        /// This node's name, for the command the peer's owner must run.
        our_name: String,
        /// This node's id, for that same command.
        our_id: NodeId,
    },
    /// The node at the address proved another id than the one pinned for the peer.
    #[error("the node at {addr} is {found}, not peer {peer} ({expected}); check the address, or the peer's key changed (then `harmony peer remove {peer}` and add its new id)")]
    WrongPeer {
        /// The peer's name, as this node knows it.
        peer: String,
        /// The address tried.
        addr: SocketAddr,
        /// The id this node trusts for the peer.
        expected: NodeId,
        /// The id the certificate at the address proves.
        found: NodeId,
    },
    /// TLS failed for another reason than trust or identity.
    #[error("TLS handshake with peer {peer} at {addr} failed: {reason}")]
    Handshake {
        /// The peer's name, as this node knows it.
        peer: String,
        /// The address tried.
        addr: SocketAddr,
        /// What TLS or the transport said.
        reason: String,
    },
    /// The handshake found the nodes incompatible (reason worded by this side).
    #[error("{0}")]
    Incompatible(String),
    /// The peer closed the connection, with its reason.
    #[error("peer {peer} closed the connection: {reason}")]
    Closed {
        /// The peer's name, as this node knows it.
        peer: String,
        /// The close reason the peer sent.
        reason: String,
    },
    /// The connection broke (idle timeout, reset, network gone).
    #[error("connection to peer {peer} lost: {reason}")]
    Lost {
        /// The peer's name, as this node knows it.
        peer: String,
        /// What the transport said.
        reason: String,
    },
    /// The peer sent a frame that does not decode or breaks a limit.
    #[error("peer {peer} sent an invalid message: {source}")]
    Protocol {
        /// The peer's name, as this node knows it.
        peer: String,
        /// What is wrong with the frame.
        #[source]
        source: ProtoError,
    },
    /// The peer refused the request with a `Response::Error`.
    #[error("peer {peer} answered: {code}: {message}")]
    Remote {
        /// The peer's name, as this node knows it.
        peer: String,
        /// Its error code, which callers match on (e.g. `REFUSED` vs `CHANGED`).
        code: ErrorCode,
        /// Its explanation, at most `MAX_ERROR_TEXT` bytes.
        message: String,
    },
    /// The peer reset the stream (it gave up on the request).
    #[error("peer {peer} aborted the stream: {} (code {code})", stream_reset_meaning(*.code))]
    StreamReset {
        /// The peer's name, as this node knows it.
        peer: String,
        /// Its reset code (`proto::stream`).
        code: u64,
    },
    /// The handshake or a `Hello` did not complete in time.
    #[error("peer {peer} did not answer within {secs} s")]
    Timeout {
        /// The peer's name, as this node knows it.
        peer: String,
        /// The limit that passed.
        secs: u64,
    },
    /// Nothing moved on the connection for a whole no-progress limit while a
    /// stream waited (see `FramedStream`).
    #[error("peer {peer} stalled: nothing moved on the connection for {secs} s")]
    Stalled {
        /// The peer's name, as this node knows it.
        peer: String,
        /// The no-progress limit that passed.
        secs: u64,
    },
    /// A valid frame of a kind the request does not allow.
    #[error("peer {peer} sent an unexpected answer: {what}")]
    Unexpected {
        /// The peer's name, as this node knows it.
        peer: String,
        /// The answer, in its debug form.
        what: String,
    },
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
