//! The serving side: an accept loop that runs each connection in its own
//! task and each request stream in its own task, dispatching requests to a
//! [`Handler`].
//!
//! Bounds, so that one peer cannot hurt the others:
//! * at most `max_connections` connections (more are refused at once), and
//!   at most `max_connections_per_peer` from one node (more are closed with
//!   `BUSY` right after the TLS handshake), so that one trusted peer cannot
//!   take every slot;
//! * TLS handshake and `Hello` within `handshake_timeout`, or the connection
//!   is closed (`HANDSHAKE_TIMEOUT`);
//! * at most `max_streams` concurrent request streams per connection (QUIC
//!   flow control: the peer cannot open more);
//! * a request frame, and every later read or write, within `stream_timeout`
//!   unless the connection makes progress meanwhile (see `FramedStream`),
//!   else the stream is reset with `TIMEOUT`;
//! * a malformed, truncated or oversized request frame is answered with
//!   `Response::Error` and the stream is reset; a malformed `Hello` closes
//!   the connection (`PROTOCOL_ERROR`). Nothing a peer sends ends the loop.
//!
//! This file holds the accept loop and what it keeps per node (the
//! connection and per-peer slots); a connection's TLS and `Hello` are in
//! `handshake`, each request stream's reading and dispatch in `dispatch`,
//! and the [`Handler`] trait with the built-in requests in `handler`.

mod dispatch;
mod handler;
mod handshake;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::{Incoming, VarInt};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tracing::{info, warn, Instrument};

use super::node::{Gauge, Node, Stats};
use super::stream::FramedStream;
use super::TrustList;
use crate::model::NodeId;
use crate::proto::{self, close};
use dispatch::serve_stream;
pub use dispatch::truncate_error_text;
pub use handler::{bulk_pattern, BoxFuture, Builtin, Handler};
use handshake::handshake;

/// Something that happened to a connection, for logs and tests.
#[derive(Clone, Debug)]
pub enum ServerEvent {
    /// A peer passed TLS and `Hello`.
    Accepted {
        /// The id its certificate proved.
        node_id: NodeId,
        /// The name this node knows it by.
        name: String,
        /// Its `Hello` says it serves: it can be dialed back.
        serves: bool,
    },
    /// A connection was refused: TLS failure, untrusted node, mismatch.
    Refused {
        /// Where the connection came from.
        addr: SocketAddr,
        /// The id its certificate proved, when the TLS handshake got that far.
        node_id: Option<NodeId>,
        /// Why it was refused, as closed to the peer.
        reason: String,
    },
    /// An accepted connection ended.
    Closed {
        /// The peer's id.
        node_id: NodeId,
        /// Why it ended (closed by the peer, idle timeout, shutdown).
        reason: String,
    },
    /// A request stream failed (bad frame, timeout, handler error).
    StreamFailed {
        /// The peer's id.
        node_id: NodeId,
        /// What went wrong.
        reason: String,
    },
}

/// Where the trust list comes from while serving: called (on a blocking
/// thread) before each new connection's handshake; `serve` reads the
/// `peers` table (and whether an invite is pending) with it.
pub type TrustSource = Arc<dyn Fn() -> anyhow::Result<super::TrustSnapshot> + Send + Sync>;

struct Shared {
    handler: Arc<dyn Handler>,
    config: super::NodeConfig,
    trust: TrustList,
    stats: Arc<Stats>,
    events: tokio::sync::broadcast::Sender<ServerEvent>,
    membership: Arc<std::sync::RwLock<super::Membership>>,
    hello: proto::Hello,
    /// Every established connection, so that shutdown closes each with
    /// `SHUTDOWN` before its task is aborted: quinn closes a connection whose
    /// last handle is dropped with code 0, which could otherwise overtake the
    /// endpoint-wide close and tell the peer "done" instead of "shutting down".
    live: std::sync::Mutex<std::collections::HashMap<usize, quinn::Connection>>,
    /// Established connections per peer (only peers with at least one).
    per_peer: std::sync::Mutex<std::collections::HashMap<NodeId, usize>>,
}

impl Shared {
    fn event(&self, event: ServerEvent) {
        let _ = self.events.send(event);
    }

    fn close_all(&self) {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        for conn in live.values() {
            conn.close(VarInt::from_u32(close::SHUTDOWN), b"node shutting down");
        }
    }
}

/// Keeps a connection in [`Shared::live`] while its task runs.
struct Live<'a>(&'a Shared, usize);

impl<'a> Live<'a> {
    fn register(shared: &'a Shared, conn: &quinn::Connection) -> Self {
        let id = conn.stable_id();
        shared
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, conn.clone());
        Live(shared, id)
    }
}

/// One of a peer's connection slots, given back when dropped.
struct PeerSlot<'a>(&'a Shared, NodeId);

impl<'a> PeerSlot<'a> {
    /// A slot for `peer`, unless it holds `max_connections_per_peer` already.
    fn take(shared: &'a Shared, peer: NodeId) -> Option<Self> {
        let mut per_peer = shared.per_peer.lock().unwrap_or_else(|e| e.into_inner());
        let held = per_peer.entry(peer).or_default();
        if *held >= shared.config.max_connections_per_peer {
            return None;
        }
        *held += 1;
        Some(PeerSlot(shared, peer))
    }
}

impl Drop for PeerSlot<'_> {
    fn drop(&mut self) {
        let mut per_peer = self.0.per_peer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = per_peer.get_mut(&self.1) {
            *held -= 1;
            if *held == 0 {
                per_peer.remove(&self.1);
            }
        }
    }
}

impl Drop for Live<'_> {
    fn drop(&mut self) {
        self.0
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.1);
    }
}

impl Node {
    /// Serves peers until `shutdown` completes: accepts connections, runs the
    /// handshake, and hands each request to `handler`. On shutdown, every
    /// connection is closed (`SHUTDOWN`) and in-flight requests are
    /// abandoned: a peer sees its stream fail, never a partial message
    /// taken for a whole one (bulk data carries its length up front).
    pub async fn serve(
        &self,
        handler: Arc<dyn Handler>,
        trust_source: Option<TrustSource>,
        shutdown: impl Future<Output = ()>,
    ) {
        let shared = Arc::new(Shared {
            handler,
            config: self.config.clone(),
            trust: self.trust.clone(),
            stats: self.stats.clone(),
            events: self.events.clone(),
            membership: self.membership(),
            hello: self.our_hello(),
            live: Default::default(),
            per_peer: Default::default(),
        });
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let incoming = tokio::select! {
                _ = &mut shutdown => break,
                incoming = self.endpoint.accept() => match incoming {
                    Some(incoming) => incoming,
                    None => break,
                },
                // Reap finished connection tasks so the set does not grow.
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            let addr = incoming.remote_address();
            if shared.stats.connections() >= shared.config.max_connections {
                warn!(
                    "refusing a connection from {addr}: already serving {} connections",
                    shared.config.max_connections
                );
                shared.event(ServerEvent::Refused {
                    addr,
                    node_id: None,
                    reason: "too many connections".into(),
                });
                incoming.refuse();
                continue;
            }
            if let Some(source) = &trust_source {
                let source = source.clone();
                match tokio::task::spawn_blocking(move || source()).await {
                    Ok(Ok(snapshot)) => shared.trust.update(snapshot),
                    Ok(Err(e)) => {
                        warn!("cannot reload the trusted peers, keeping the previous list: {e:#}")
                    }
                    Err(e) => warn!("cannot reload the trusted peers: {e}"),
                }
            }
            let gauge = Gauge::new(&shared.stats, |s| &s.connections);
            let shared = shared.clone();
            connections.spawn(
                async move {
                    let _gauge = gauge;
                    serve_connection(shared, incoming).await;
                }
                .instrument(tracing::info_span!("peer", %addr)),
            );
        }
        info!("shutting down: closing {} connections", connections.len());
        shared.close_all();
        self.endpoint
            .close(VarInt::from_u32(close::SHUTDOWN), b"node shutting down");
        // Aborting drops every connection and stream task (their gauges too).
        connections.shutdown().await;
        let _ = timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
    }
}

/// Serves one connection: its handshake, then each request stream in its
/// own task until the connection ends.
async fn serve_connection(shared: Arc<Shared>, incoming: Incoming) {
    let Some(established) = handshake(&shared, incoming).await else {
        return;
    };
    let (conn, peer) = (&established.conn, &established.peer);
    let mut streams = JoinSet::new();
    let reason = loop {
        tokio::select! {
            accepted = conn.accept_bi() => match accepted {
                Ok(opened) => {
                    let gauge = Gauge::new(&shared.stats, |s| &s.streams);
                    let limit = shared.config.stream_timeout;
                    let stream = FramedStream::new(opened, conn, &peer.name, limit);
                    let (shared, peer) = (shared.clone(), peer.clone());
                    streams.spawn(async move {
                        let _gauge = gauge;
                        serve_stream(shared, peer, stream).await;
                    });
                }
                Err(e) => break e,
            },
            Some(_) = streams.join_next(), if !streams.is_empty() => {}
        }
    };
    // Streams of a closed connection cannot go on; end their tasks now.
    streams.shutdown().await;
    let reason = match reason {
        quinn::ConnectionError::ApplicationClosed(c)
            if c.error_code == VarInt::from_u32(close::DONE) =>
        {
            "closed by the peer".to_owned()
        }
        other => other.to_string(),
    };
    info!("peer {} disconnected: {reason}", peer.name);
    shared.event(ServerEvent::Closed {
        node_id: peer.node_id,
        reason,
    });
}
