//! Telling a closed port from a silent one while a handshake runs.
//!
//! Why a probe: quinn's socket is unconnected and does not ask for ICMP
//! errors (no IP_RECVERR), so a refusal is invisible to it and the handshake
//! waits out its whole timeout. A connected socket receives the ICMP error
//! as ECONNREFUSED. The probe is a single byte, which a QUIC endpoint drops
//! as a malformed packet; it stops as soon as the handshake ends. Every
//! outgoing connection races it ([`Node::connect_tls`](super::Node::connect_tls)),
//! so `sync`, `peer ping`, `get` and `drop` all report a stopped peer at once.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

/// How often the refusal probe asks again while the handshake runs (a
/// probe or its ICMP answer may be lost).
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// `0.0.0.0:0` or `[::]:0`, whichever can reach `remote`.
pub fn unspecified(remote: SocketAddr) -> SocketAddr {
    let ip: std::net::IpAddr = if remote.is_ipv4() {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    };
    SocketAddr::new(ip, 0)
}

/// Completes once `remote` refuses a datagram (its kernel answered with
/// ICMP port unreachable: nothing listens there); never completes otherwise.
pub(super) async fn refused(remote: SocketAddr) {
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
