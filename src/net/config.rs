//! Endpoint and transport settings. Every number here is explained, and the
//! same figures are in protocol.md ("Transport settings").

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::{IdleTimeout, TransportConfig, VarInt};

use super::congestion::Congestion;
use crate::model::RepoId;
use crate::proto::{MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};

/// Keep-alive PING every 10 s: keeps NAT bindings (often 30 s for UDP) and
/// an idle connection alive, at ~50 bytes per 10 s.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// A connection with no packet for 60 s is dead (6 missed keep-alives).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Per-stream receive window: 4 MiB, about 4x quinn's default (1.25 MB,
/// which caps one stream at 100 Mbit/s on a 100 ms path). 4 MiB carries one
/// stream at 1 Gbit/s up to 33 ms RTT, 330 Mbit/s at 100 ms. Measured on
/// loopback: larger windows *cost* throughput when the kernel caps the UDP
/// receive buffer at 4 MiB (`net.core.rmem_max`), because bursts overflow it
/// (16 MiB windows: -18%); 4 MiB stays within ~5-10% of quinn's default.
/// Raise [`NodeConfig::stream_window`] for long fat links, together with
/// `rmem_max`.
pub const STREAM_RECEIVE_WINDOW: u32 = 4 << 20;
/// Per-connection receive window: two streams at full speed. Also the most
/// one trusted peer can make us buffer.
pub const CONNECTION_RECEIVE_WINDOW: u32 = 8 << 20;
/// Send window: as much as we keep unacknowledged in flight.
pub const SEND_WINDOW: u64 = 8 << 20;
/// UDP payload size used from the start: 1452 bytes, what a 1500-byte
/// Ethernet MTU carries over IPv6 (and IPv4). Starting there instead of at
/// QUIC's 1200 saves the path-MTU probes (four ~1.4 KB probes each way
/// doubled the bytes of a no-change sync), and bulk data uses full-size
/// packets at once. On a narrower path (VPN, PPPoE) quinn's black-hole
/// detection falls back to 1200 after the first losses.
pub const INITIAL_MTU: u16 = 1452;

/// Socket buffers requested for the UDP socket (the kernel caps them at
/// net.core.rmem_max / wmem_max unless raised); the default ~208 KiB drops
/// packets at full speed.
pub const UDP_BUFFER: usize = 4 << 20;

/// Settings of one node's endpoint.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The repository this node belongs to (sent in `Hello`); the starting
    /// value of [`Node::membership`](super::Node::membership).
    pub repo_id: RepoId,
    /// This location is fresh (recorded nothing, synced with no one) and may
    /// join a peer's repository.
    pub fresh: bool,
    /// This node's name (sent in `Hello`, informational).
    pub node_name: String,
    /// Where to listen (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Time allowed for the TLS handshake plus the `Hello` exchange.
    pub handshake_timeout: Duration,
    /// No-progress limit of a stream operation (at least 16 round trips): a
    /// read or write fails once this long passed in which no stream of the
    /// connection moved (`FramedStream`'s watchdog). A stream that opens
    /// and never sends, on an otherwise quiet connection, is reset after
    /// this. Slow progress is never a failure (see `FramedStream`).
    pub stream_timeout: Duration,
    /// Concurrent bidirectional streams a peer may open on one connection
    /// (QUIC flow control: a peer cannot open more until some finish).
    pub max_streams: u32,
    /// Concurrent connections the server accepts; more are refused.
    pub max_connections: usize,
    /// Concurrent connections the server accepts from one peer; more are
    /// closed with `BUSY`. A `get`, a `sync` and a `ping` from one peer at
    /// once take three.
    pub max_connections_per_peer: usize,
    /// `(newest, oldest)` protocol version to announce. Only tests change it.
    pub protocol: (u32, u32),
    /// Receive window of one stream (bytes); see [`STREAM_RECEIVE_WINDOW`].
    pub stream_window: u32,
    /// Receive window of a whole connection (bytes).
    pub connection_window: u32,
    /// Send window of a whole connection (bytes).
    pub send_window: u64,
    /// The congestion controller of this node's connections.
    pub congestion: Congestion,
    /// Apply the tuned transport settings (windows, keep-alive) and socket
    /// buffers. Off only in the benchmark's baseline.
    pub tuned: bool,
}

impl NodeConfig {
    /// The settings for the node `node_name` of repository `repo_id` listening on `listen`,
    /// with the limits and tuning every node uses; callers change only what they need.
    pub fn new(repo_id: RepoId, node_name: &str, listen: SocketAddr) -> Self {
        NodeConfig {
            repo_id,
            fresh: false,
            node_name: node_name.to_owned(),
            listen,
            handshake_timeout: Duration::from_secs(10),
            stream_timeout: Duration::from_secs(30),
            max_streams: 64,
            max_connections: 128,
            max_connections_per_peer: 8,
            protocol: (PROTOCOL_VERSION, MIN_PROTOCOL_VERSION),
            stream_window: STREAM_RECEIVE_WINDOW,
            connection_window: CONNECTION_RECEIVE_WINDOW,
            send_window: SEND_WINDOW,
            congestion: Congestion::from_env(),
            tuned: true,
        }
    }

    /// The QUIC transport parameters of this node (both directions).
    pub fn transport(&self) -> Arc<TransportConfig> {
        let mut t = TransportConfig::default();
        t.max_concurrent_bidi_streams(VarInt::from_u32(self.max_streams));
        // Protocol version 1 uses no unidirectional streams and no datagrams.
        t.max_concurrent_uni_streams(VarInt::from_u32(0));
        t.datagram_receive_buffer_size(None);
        if self.tuned {
            t.congestion_controller_factory(self.congestion.factory());
            t.stream_receive_window(VarInt::from_u32(self.stream_window));
            t.receive_window(VarInt::from_u32(self.connection_window));
            t.send_window(self.send_window);
            t.keep_alive_interval(Some(KEEP_ALIVE));
            t.initial_mtu(INITIAL_MTU);
            let mut mtu = quinn::MtuDiscoveryConfig::default();
            mtu.upper_bound(INITIAL_MTU);
            t.mtu_discovery_config(Some(mtu));
            t.max_idle_timeout(Some(
                IdleTimeout::try_from(IDLE_TIMEOUT).expect("60 s is a valid idle timeout"),
            ));
        }
        Arc::new(t)
    }
}

/// Binds the UDP socket, raising its buffers when tuned.
pub(crate) fn bind_socket(addr: SocketAddr, tuned: bool) -> std::io::Result<std::net::UdpSocket> {
    let socket = std::net::UdpSocket::bind(addr)?;
    if tuned {
        let state = quinn::udp::UdpSocketState::new((&socket).into())?;
        // Best effort: the kernel may cap these; a smaller buffer only costs speed.
        let _ = state.set_recv_buffer_size((&socket).into(), UDP_BUFFER);
        let _ = state.set_send_buffer_size((&socket).into(), UDP_BUFFER);
        tracing::debug!(
            "UDP socket buffers: receive {:?}, send {:?}",
            state.recv_buffer_size((&socket).into()),
            state.send_buffer_size((&socket).into())
        );
    }
    Ok(socket)
}
