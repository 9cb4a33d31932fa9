//! Reaching a trusted peer from a command (ping, sync, get, drop): resolve
//! its address, bind a client-only endpoint of the matching address family,
//! and fail fast and clearly when nobody is there.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use harmony::net::{Identity, NetError, Node, NodeConfig, PeerConnection};
use harmony::store::{PeerRecord, Settings};
use tokio::net::UdpSocket;

/// How long commands wait for a peer by default. A handshake, even over a
/// 300 ms round trip, takes about a second; waiting longer for a peer that
/// does not answer only delays the message saying so.
const DEFAULT_CONNECT_TIMEOUT: &str = "3";

/// How often the refusal probe asks again while the handshake runs (a
/// probe or its ICMP answer may be lost).
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Args, Debug, Clone, Copy)]
pub struct DialArgs {
    /// Seconds to wait for a peer to answer before reporting it unreachable
    /// (a closed port is reported at once).
    #[arg(long, value_name = "SECS", default_value = DEFAULT_CONNECT_TIMEOUT, value_parser = parse_timeout)]
    pub connect_timeout: Duration,
}

/// Whole seconds: the messages count them so, and a peer worth waiting for
/// answers well within one.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    match text.parse::<u64>() {
        Ok(secs @ 1..=3600) => Ok(Duration::from_secs(secs)),
        _ => Err(format!(
            "`{text}` is not a whole number of seconds from 1 to 3600"
        )),
    }
}

/// The first address the peer's `host:port` resolves to.
pub async fn resolve(peer: &PeerRecord) -> anyhow::Result<SocketAddr> {
    tokio::net::lookup_host(&peer.addr)
        .await
        .with_context(|| {
            format!(
                "cannot resolve the address {} of peer {}",
                peer.addr, peer.name
            )
        })?
        .next()
        .with_context(|| {
            format!(
                "the address {} of peer {} resolves to nothing",
                peer.addr, peer.name
            )
        })
}

/// A client-only endpoint able to reach `remote`, waiting `dial`'s timeout
/// for each peer's handshake.
pub fn client_node(
    identity: Identity,
    settings: &Settings,
    fresh: bool,
    remote: SocketAddr,
    dial: DialArgs,
) -> anyhow::Result<Node> {
    let mut config = NodeConfig::new(settings.repo_id, &settings.node_name, unspecified(remote));
    config.fresh = fresh;
    config.handshake_timeout = dial.connect_timeout;
    Ok(Node::bind_client(identity, config)?)
}

/// `0.0.0.0:0` or `[::]:0`, whichever can reach `remote`.
fn unspecified(remote: SocketAddr) -> SocketAddr {
    let ip: std::net::IpAddr = if remote.is_ipv4() {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    };
    SocketAddr::new(ip, 0)
}

/// [`Node::connect`], with a refused port reported at once instead of after
/// the timeout, and an unreachable peer's message saying what to check.
pub async fn connect(
    node: &Node,
    peer: &PeerRecord,
    remote: SocketAddr,
) -> anyhow::Result<PeerConnection> {
    let port = remote.port();
    tokio::select! {
        result = node.connect(remote, peer.node_id, &peer.name) => match result {
            Ok(conn) => Ok(conn),
            Err(NetError::Unreachable { peer, addr, reason }) => Err(anyhow::anyhow!(
                "cannot reach peer {peer} at {addr}: {reason}; check that `harmony serve` runs \
                 there, that this is the address it prints, and that no firewall drops UDP port \
                 {port} (a slow link may need a longer --connect-timeout)"
            )),
            Err(e) => Err(e.into()),
        },
        _ = refused(remote) => Err(anyhow::anyhow!(
            "cannot reach peer {} at {remote}: nothing listens on UDP port {port} there (the \
             port is closed); check that `harmony serve` runs there and that this is the \
             address it prints (`harmony peer list` shows the address used here)",
            peer.name
        )),
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
