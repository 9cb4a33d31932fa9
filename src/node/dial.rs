//! Reaching a trusted peer: resolve its address, bind a client-only endpoint
//! of the matching address family, and fail fast and clearly when nobody is
//! there.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::net::UdpSocket;

use super::NodeSetup;
use crate::net::{NetError, Node, PeerConnection};
use crate::store::PeerRecord;

/// How often the refusal probe asks again while the handshake runs (a
/// probe or its ICMP answer may be lost).
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

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
    /// Nobody answered within the handshake timeout.
    #[error(
        "cannot reach peer {peer} at {addr}: {reason}; check that `harmony serve` runs \
         there, that this is the address it prints, and that no firewall drops UDP port \
         {} (a slow link may need a longer --connect-timeout)", addr.port()
    )]
    Unreachable {
        /// The peer's name.
        peer: String,
        /// The address tried.
        addr: SocketAddr,
        /// What the transport said.
        reason: String,
    },
    /// The peer's kernel refused the probe: nothing listens on the port.
    /// An ICMP "port unreachable" came back: the host is there but nothing listens.
    #[error(
        "cannot reach peer {peer} at {addr}: nothing listens on UDP port {} there (the \
         port is closed); check that `harmony serve` runs there and that this is the \
         address it prints (`harmony peer list` shows the address used here)", addr.port()
    )]
    Closed {
        /// The peer's name.
        peer: String,
        /// The address tried.
        addr: SocketAddr,
    },
    /// The connection was made but failed later (trust, identity, handshake).
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
/// waiting `handshake_timeout` for it, with a refused port reported at once
/// instead of after the timeout.
pub async fn dial(
    root: &Path,
    peer: &PeerRecord,
    handshake_timeout: Duration,
) -> Result<Dialed, DialError> {
    let remote = resolve(peer).await?;
    let mut setup = NodeSetup::open(root, unspecified(remote))?;
    setup.config.handshake_timeout = handshake_timeout;
    let node = setup.bind_client()?;
    let conn = connect(&node, peer, remote).await?;
    Ok(Dialed { node, conn, remote })
}

/// `0.0.0.0:0` or `[::]:0`, whichever can reach `remote`.
pub fn unspecified(remote: SocketAddr) -> SocketAddr {
    let ip: std::net::IpAddr = if remote.is_ipv4() {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    };
    SocketAddr::new(ip, 0)
}

/// [`Node::connect`], with a refused port reported at once instead of after
/// the timeout.
async fn connect(
    node: &Node,
    peer: &PeerRecord,
    remote: SocketAddr,
) -> Result<PeerConnection, DialError> {
    tokio::select! {
        result = node.connect(remote, peer.node_id, &peer.name) => match result {
            Ok(conn) => Ok(conn),
            Err(NetError::Unreachable { peer, addr, reason }) => {
                Err(DialError::Unreachable { peer, addr, reason })
            }
            Err(e) => Err(e.into()),
        },
        _ = refused(remote) => Err(DialError::Closed { peer: peer.name.clone(), addr: remote }),
    }
}

/// Completes once `remote` refuses a datagram (its kernel answered with
/// ICMP port unreachable: nothing listens there); never completes otherwise.
///
/// Why a probe: quinn's socket is unconnected and does not ask for ICMP
/// errors (no IP_RECVERR), so a refusal is invisible to it and the handshake
/// waits out its whole timeout. A connected socket receives the ICMP error
/// as ECONNREFUSED. The probe is a single byte, which a QUIC endpoint drops
/// as a malformed packet; it stops as soon as the handshake ends.
async fn refused(remote: SocketAddr) {
    match probe(remote).await {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
        // Cannot probe (no socket, say): leave the verdict to the handshake.
        Err(_) => std::future::pending().await,
    }
}

async fn probe(remote: SocketAddr) -> std::io::Result<Infallible> {
    let socket = UdpSocket::bind(unspecified(remote)).await?;
    socket.connect(remote).await?;
    let mut answer = [0u8; 64];
    loop {
        socket.send(&[0]).await?;
        // An answer (no QUIC endpoint sends one) or silence: probe again.
        if let Ok(Err(e)) = tokio::time::timeout(PROBE_INTERVAL, socket.recv(&mut answer)).await {
            return Err(e);
        }
    }
}
