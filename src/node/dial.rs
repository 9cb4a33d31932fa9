//! Reaching a trusted peer: resolve its address and bind a client-only
//! endpoint of the matching address family (failing fast and clearly when
//! nobody is there is the endpoint's own: `Node::connect`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::NodeSetup;
use crate::net::{unspecified, NetError, Node, PeerConnection};
use crate::store::PeerRecord;

/// Why a peer could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// This location could not be read.
    #[error(transparent)]
    Location(#[from] crate::Error),
    /// The peer's address did not resolve (DNS).
    #[error("cannot resolve the address {addr} of peer {peer}")]
    Resolve {
        /// The peer's name.
        peer: String,
        /// Its address, as recorded.
        addr: String,
        /// What the resolver said.
        #[source]
        source: std::io::Error,
    },
    /// The address resolved to no usable address.
    #[error("the address {addr} of peer {peer} resolves to nothing")]
    NoAddress {
        /// The peer's name.
        peer: String,
        /// Its address, as recorded.
        addr: String,
    },
    /// Nobody answered, the port is closed, or the connection was made but
    /// failed later (trust, identity, handshake).
    #[error(transparent)]
    Net(#[from] NetError),
}

/// The first address the peer's `host:port` resolves to.
pub async fn resolve(peer: &PeerRecord) -> Result<SocketAddr, DialError> {
    tokio::net::lookup_host(&peer.addr)
        .await
        .map_err(|source| DialError::Resolve {
            peer: peer.name.clone(),
            addr: peer.addr.clone(),
            source,
        })?
        .next()
        .ok_or_else(|| DialError::NoAddress {
            peer: peer.name.clone(),
            addr: peer.addr.clone(),
        })
}

/// A connection to a peer and the client endpoint it runs on.
pub struct Dialed {
    /// The client-only endpoint bound for this peer.
    pub node: Node,
    /// The connection, `Hello` done.
    pub conn: PeerConnection,
    /// The address the peer's `host:port` resolved to.
    pub remote: SocketAddr,
}

impl Dialed {
    /// Closes the connection and the endpoint.
    pub async fn close(self) {
        self.conn.close();
        self.node.shutdown().await;
    }
}

/// Connects the location at `root` (its settings read now) to `peer`,
/// waiting `handshake_timeout` for it (a refused port is reported at once,
/// see [`Node::connect`]).
pub async fn dial(
    root: &Path,
    peer: &PeerRecord,
    handshake_timeout: Duration,
) -> Result<Dialed, DialError> {
    let remote = resolve(peer).await?;
    let mut setup = NodeSetup::open(root, unspecified(remote))?;
    setup.config.handshake_timeout = handshake_timeout;
    let node = setup.bind_client()?;
    let conn = node.connect(remote, peer.node_id, &peer.name).await?;
    Ok(Dialed { node, conn, remote })
}
