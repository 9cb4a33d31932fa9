//! A node's QUIC endpoint: binding it, what it announces, and the counters
//! of what it serves. It connects to peers through [`Node::connect`]
//! (`connect.rs`, the client side) and answers them through
//! [`Node::serve`](super::server).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quinn::crypto::rustls::QuicServerConfig;
use quinn::{Endpoint, EndpointConfig, VarInt};
use tokio::sync::broadcast;
use tokio::time::timeout;

use super::config::bind_socket;
use super::reset::serving_endpoint;
use super::tls::server_crypto;
use super::{Identity, NetError, NodeConfig, ServerEvent, TrustList};
use crate::model::NodeId;
use crate::proto::{close, Hello, Membership};

/// The longest [`Node::shutdown`] waits for its connections to drain. The
/// CONNECTION_CLOSE leaves at once; the wait lets the endpoint send it again
/// in answer to a peer's packet if the first was lost. QUIC's full draining
/// period is 3 probe timeouts, which a lossy link stretches to seconds
/// (the 2 s cap was reached at 1% loss and 50 ms), and every `sync` and
/// `get` paid it before exiting. A peer that misses the close frees the
/// connection at its idle timeout instead.
pub const CLOSE_GRACE: Duration = Duration::from_millis(250);
/// What a close needs beyond the round trip: the endpoint driver's turn to
/// send it, and timer granularity. Nothing acknowledges a CONNECTION_CLOSE
/// (the closing side only answers the peer's packets with it again), so
/// waiting longer than a round trip only delays the exit: 100 ms here and
/// three round trips cost every `sync` and `get` on a LAN ~0.1 s, most of
/// a no-change sync.
const CLOSE_SLACK: Duration = Duration::from_millis(5);

/// Counters of a serving node, for logs and tests.
#[derive(Default, Debug)]
pub struct Stats {
    pub(crate) connections: AtomicUsize,
    pub(crate) streams: AtomicUsize,
}

impl Stats {
    /// Established connections being served now.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Request streams being served now.
    pub fn streams(&self) -> usize {
        self.streams.load(Ordering::SeqCst)
    }
}

/// Decrements a counter when dropped: a task that ends in any way (also
/// aborted) gives its slot back.
pub(crate) struct Gauge(Arc<Stats>, fn(&Stats) -> &AtomicUsize);

impl Gauge {
    pub(crate) fn new(stats: &Arc<Stats>, which: fn(&Stats) -> &AtomicUsize) -> Self {
        which(stats).fetch_add(1, Ordering::SeqCst);
        Gauge(stats.clone(), which)
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        (self.1)(&self.0).fetch_sub(1, Ordering::SeqCst);
    }
}

/// One node's endpoint: its identity, settings, trust list and QUIC socket.
pub struct Node {
    pub(crate) membership: Arc<std::sync::RwLock<Membership>>,
    pub(crate) endpoint: Endpoint,
    pub(crate) identity: Arc<Identity>,
    pub(crate) config: NodeConfig,
    pub(crate) trust: TrustList,
    pub(crate) stats: Arc<Stats>,
    pub(crate) events: broadcast::Sender<ServerEvent>,
    /// The connections this node opened that passed their handshake, so that
    /// [`Node::shutdown`] waits for those peers only (see there).
    pub(crate) dialed: Arc<Mutex<Vec<quinn::Connection>>>,
    /// Bound to serve (not client-only): said in each `Hello`.
    serves: bool,
}

impl Node {
    /// Binds the endpoint on `config.listen`, ready to connect and to serve.
    /// Incoming connections are only accepted while [`Node::serve`] runs.
    pub fn bind(
        identity: Identity,
        config: NodeConfig,
        trust: TrustList,
    ) -> Result<Node, NetError> {
        let crypto = server_crypto(&identity, trust.clone())?;
        let crypto = QuicServerConfig::try_from(crypto)
            .map_err(|e| NetError::Tls(rustls::Error::General(e.to_string())))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server.transport_config(config.transport());
        Node::with_endpoint(identity, config, trust, Some(server))
    }

    /// Binds a client-only endpoint (it refuses incoming connections) on
    /// `config.listen`, typically `0.0.0.0:0` or `[::]:0`.
    pub fn bind_client(identity: Identity, config: NodeConfig) -> Result<Node, NetError> {
        Node::with_endpoint(identity, config, TrustList::new(), None)
    }

    fn with_endpoint(
        identity: Identity,
        config: NodeConfig,
        trust: TrustList,
        server: Option<quinn::ServerConfig>,
    ) -> Result<Node, NetError> {
        let serves = server.is_some();
        let bind_err = |source| NetError::Bind {
            addr: config.listen,
            source,
        };
        let socket = bind_socket(config.listen, config.tuned).map_err(bind_err)?;
        // A serving endpoint resets its old connections after a restart
        // (see reset.rs); a client's random key is quinn's default.
        let endpoint_config = match &server {
            Some(_) => serving_endpoint(&identity, socket.local_addr().map_err(bind_err)?.port()),
            None => EndpointConfig::default(),
        };
        let endpoint = Endpoint::new(
            endpoint_config,
            server,
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(bind_err)?;
        let (events, _) = broadcast::channel(256);
        let membership = Arc::new(std::sync::RwLock::new(Membership {
            repo_id: config.repo_id,
            fresh: config.fresh,
        }));
        Ok(Node {
            membership,
            endpoint,
            identity: Arc::new(identity),
            config,
            trust,
            stats: Arc::default(),
            events,
            dialed: Arc::default(),
            serves,
        })
    }

    /// The address actually bound (with the real port when 0 was asked).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// This node's id, as its certificate proves it.
    pub fn node_id(&self) -> NodeId {
        self.identity.node_id()
    }

    /// The settings the node was bound with.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// The trusted peers; updating it changes who may connect from the next handshake on.
    pub fn trust(&self) -> &TrustList {
        &self.trust
    }

    /// Counters of what is being served now.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Server events (accepted, refused, closed peers), for logs and tests.
    /// Bounded: a slow subscriber misses old events rather than growing memory.
    pub fn subscribe(&self) -> broadcast::Receiver<ServerEvent> {
        self.events.subscribe()
    }

    /// The repository this node announces; shared, so whoever keeps it
    /// current (a join, the end of freshness) can update it while serving.
    pub fn membership(&self) -> Arc<std::sync::RwLock<Membership>> {
        self.membership.clone()
    }

    pub(crate) fn our_hello(&self) -> Hello {
        let membership = *self.membership.read().unwrap_or_else(|e| e.into_inner());
        Hello {
            version: self.config.protocol.0,
            min_version: self.config.protocol.1,
            repo_id: membership.repo_id,
            node_id: self.node_id(),
            node_name: self.config.node_name.clone(),
            fresh: membership.fresh,
            serves: self.serves,
        }
    }

    /// Remembers an outgoing connection that passed its handshake (and
    /// forgets those that have ended since), for [`Node::shutdown`].
    pub(crate) fn dialed(&self, conn: &quinn::Connection) {
        let mut dialed = self.dialed.lock().unwrap_or_else(|e| e.into_inner());
        dialed.retain(|c| c.close_reason().is_none());
        dialed.push(conn.clone());
    }

    /// Closes every connection and waits briefly for the peers to learn it:
    /// a round trip of the slowest connection that passed its handshake
    /// (time for packets the peer had in flight to be answered with the
    /// close), at most [`CLOSE_GRACE`]. Why not until the endpoint is
    /// idle: a connection to a peer that never answered (a stopped holder)
    /// drains for three probe timeouts of a path with no round trip
    /// measured, about 3 s, with nobody to tell; waiting for it made every
    /// `get` and `drop` that met a stopped peer 2 s slower.
    pub async fn shutdown(&self) {
        self.endpoint
            .close(VarInt::from_u32(close::SHUTDOWN), b"node shutting down");
        let wait = self
            .dialed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|c| c.rtt() + CLOSE_SLACK)
            .max()
            .unwrap_or_default()
            .min(CLOSE_GRACE);
        let _ = timeout(wait, self.endpoint.wait_idle()).await;
    }
}
