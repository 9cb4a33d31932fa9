//! A node's QUIC endpoint: connects to peers (client side) and, through
//! [`Node::serve`](super::server), answers them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, Endpoint, EndpointConfig, VarInt};
use tokio::sync::broadcast;
use tokio::time::timeout;

use super::config::bind_socket;
use super::stream::{connection_error, is_tls_refusal, FramedStream};
use super::tls::{client_crypto, server_crypto, SERVER_NAME};
use super::{Identity, NetError, NodeConfig, ServerEvent, TrustList};
use crate::model::{NodeId, RepoId};
use crate::proto::{self, close, Hello, Membership, Request, Response};

/// Who is at the other end of an established connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// The node id its certificate proved.
    pub node_id: NodeId,
    /// The name this node knows it by (from the trust list or the caller).
    pub name: String,
    /// The name it gave itself in `Hello`.
    pub own_name: String,
    /// The negotiated protocol version.
    pub version: u32,
    /// The repository the peer said it belongs to. It differs from ours only
    /// when one side is fresh: the fresh side joins the other's repository
    /// (that is the state-sync layer's job, e.g. `Repo::join_if_fresh`).
    pub repo_id: RepoId,
    /// The peer is fresh.
    pub fresh: bool,
    pub addr: SocketAddr,
}

impl PeerInfo {
    /// The repository the peer said it belongs to, and whether it is fresh.
    pub fn membership(&self) -> Membership {
        Membership {
            repo_id: self.repo_id,
            fresh: self.fresh,
        }
    }
}

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
        let bind_err = |source| NetError::Bind {
            addr: config.listen,
            source,
        };
        let socket = bind_socket(config.listen, config.tuned).map_err(bind_err)?;
        let endpoint = Endpoint::new(
            EndpointConfig::default(),
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
        })
    }

    /// The address actually bound (with the real port when 0 was asked).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    pub fn node_id(&self) -> NodeId {
        self.identity.node_id()
    }

    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    pub fn trust(&self) -> &TrustList {
        &self.trust
    }

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
        }
    }

    /// Establishes the QUIC connection with mutual TLS to the node `expected`
    /// at `addr`, without the `Hello` exchange. For tools and tests; use
    /// [`Node::connect`].
    pub async fn connect_tls(
        &self,
        addr: SocketAddr,
        expected: NodeId,
        peer: &str,
    ) -> Result<Connection, NetError> {
        let (crypto, seen) = client_crypto(&self.identity, expected)?;
        let crypto = QuicClientConfig::try_from(crypto)
            .map_err(|e| NetError::Tls(rustls::Error::General(e.to_string())))?;
        let mut client = quinn::ClientConfig::new(Arc::new(crypto));
        client.transport_config(self.config.transport());
        let unreachable = |reason: String| NetError::Unreachable {
            peer: peer.to_owned(),
            addr,
            reason,
        };
        let connecting = self
            .endpoint
            .connect_with(client, addr, SERVER_NAME)
            .map_err(|e| unreachable(e.to_string()))?;
        let result = timeout(self.config.handshake_timeout, connecting).await;
        let seen = *seen.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(e)) => Err(match seen {
                Some(found) if found != expected => NetError::WrongPeer {
                    peer: peer.to_owned(),
                    addr,
                    expected,
                    found,
                },
                Some(_) if is_tls_refusal(&e) => self.not_trusted(peer),
                _ if matches!(e, quinn::ConnectionError::TimedOut) => {
                    unreachable("no answer".into())
                }
                _ => NetError::Handshake {
                    peer: peer.to_owned(),
                    addr,
                    reason: e.to_string(),
                },
            }),
            Err(_) => Err(unreachable(format!(
                "no answer within {} s",
                self.config.handshake_timeout.as_secs()
            ))),
        }
    }

    fn not_trusted(&self, peer: &str) -> NetError {
        NetError::NotTrusted {
            peer: peer.to_owned(),
            our_name: self.config.node_name.clone(),
            our_id: self.node_id(),
        }
    }

    /// Connects to the node `expected` at `addr` (known as `peer`), checks
    /// its identity, and exchanges `Hello`s: a version or repository mismatch
    /// ends the connection with a readable reason on both sides.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        expected: NodeId,
        peer: &str,
    ) -> Result<PeerConnection, NetError> {
        let conn = self.connect_tls(addr, expected, peer).await?;
        let deadline = self.config.handshake_timeout;
        let ours = self.our_hello();
        let exchange = async {
            let opened = conn
                .open_bi()
                .await
                .map_err(|e| connection_error(e, peer))?;
            let mut stream = FramedStream::new(opened, &conn, peer, deadline);
            stream.send_frame(&ours).await?;
            stream.finish();
            let body = stream.recv_body().await?;
            // Read the end of the server's side too, so the stream is freed
            // on both sides (a stream left half-read keeps its slot).
            stream.expect_end().await?;
            Ok(body)
        };
        let body = match timeout(deadline, exchange).await {
            Ok(Ok(body)) => body,
            Ok(Err(e)) => return Err(self.explain(&conn, peer, e)),
            Err(_) => {
                conn.close(VarInt::from_u32(close::HANDSHAKE_TIMEOUT), b"no Hello");
                return Err(NetError::Timeout {
                    peer: peer.to_owned(),
                    secs: deadline.as_secs(),
                });
            }
        };
        match proto::check_hello(&body, &ours, expected) {
            Ok(Ok((hello, version))) => Ok(PeerConnection {
                conn,
                info: PeerInfo {
                    node_id: expected,
                    name: peer.to_owned(),
                    own_name: hello.node_name,
                    version,
                    repo_id: hello.repo_id,
                    fresh: hello.fresh,
                    addr,
                },
                our_name: self.config.node_name.clone(),
                our_id: self.node_id(),
                timeout: self.config.stream_timeout,
            }),
            Ok(Err(mismatch)) => {
                let reason = mismatch.describe(peer);
                conn.close(VarInt::from_u32(mismatch.close_code()), reason.as_bytes());
                Err(NetError::Incompatible(reason))
            }
            Err(source) => {
                conn.close(VarInt::from_u32(close::PROTOCOL_ERROR), b"malformed Hello");
                Err(NetError::Protocol {
                    peer: peer.to_owned(),
                    source,
                })
            }
        }
    }

    /// Rewords an error seen on a connection whose TLS handshake looked fine
    /// to us: a TLS alert from the peer means it refused our certificate.
    fn explain(&self, conn: &Connection, peer: &str, e: NetError) -> NetError {
        match conn.close_reason() {
            Some(reason) if is_tls_refusal(&reason) => self.not_trusted(peer),
            _ => e,
        }
    }

    /// Closes every connection and waits briefly for the peers to learn it.
    pub async fn shutdown(&self) {
        self.endpoint
            .close(VarInt::from_u32(close::SHUTDOWN), b"node shutting down");
        let _ = timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
    }
}

/// An established, authenticated connection to a peer, after `Hello`. Cheap to
/// clone: clones share the one QUIC connection.
#[derive(Clone)]
pub struct PeerConnection {
    conn: Connection,
    info: PeerInfo,
    our_name: String,
    our_id: NodeId,
    timeout: Duration,
}

impl PeerConnection {
    pub fn peer(&self) -> &PeerInfo {
        &self.info
    }

    /// The QUIC connection, for tools and tests.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Words a failure on this connection for the user: once the peer's TLS
    /// refused our certificate, any error means "does not trust this node".
    pub fn explain(&self, e: NetError) -> NetError {
        match self.conn.close_reason() {
            Some(reason) if is_tls_refusal(&reason) => NetError::NotTrusted {
                peer: self.info.name.clone(),
                our_name: self.our_name.clone(),
                our_id: self.our_id,
            },
            _ => e,
        }
    }

    /// Opens a request stream and sends `request` on it; the caller reads
    /// the response (and whatever follows it) from the returned stream.
    pub async fn open(&self, request: &Request) -> Result<FramedStream, NetError> {
        let mut stream = self.open_session(request).await?;
        stream.finish();
        Ok(stream)
    }

    /// Opens a request stream and sends `request`, leaving our direction
    /// open for the frames the request's protocol sends next (state sync).
    pub async fn open_session(&self, request: &Request) -> Result<FramedStream, NetError> {
        let opened = self
            .conn
            .open_bi()
            .await
            .map_err(|e| self.explain(connection_error(e, &self.info.name)))?;
        let mut stream = FramedStream::new(opened, &self.conn, &self.info.name, self.timeout);
        stream
            .send_frame(request)
            .await
            .map_err(|e| self.explain(e))?;
        Ok(stream)
    }

    /// Sends `request` and reads the first response frame. A
    /// `Response::Error` becomes [`NetError::Remote`].
    pub async fn request(&self, request: &Request) -> Result<(Response, FramedStream), NetError> {
        let mut stream = self.open(request).await?;
        let response: Response = stream.recv_frame().await.map_err(|e| self.explain(e))?;
        if let Response::Error { code, message } = response {
            return Err(NetError::Remote {
                peer: self.info.name.clone(),
                code,
                message,
            });
        }
        Ok((response, stream))
    }

    /// Round trip of a `Ping` carrying `payload` (checked on return).
    pub async fn ping(&self, payload: &[u8]) -> Result<Duration, NetError> {
        let start = Instant::now();
        let (response, _) = self
            .request(&Request::Ping {
                payload: payload.to_vec(),
            })
            .await?;
        match response {
            Response::Pong { payload: back } if back == payload => Ok(start.elapsed()),
            other => Err(NetError::Unexpected {
                peer: self.info.name.clone(),
                what: format!("{other:?}"),
            }),
        }
    }

    /// Asks for `len` bulk bytes and reads them all; returns the count.
    pub async fn bulk(&self, len: u64) -> Result<u64, NetError> {
        let (response, mut stream) = self.request(&Request::Bulk { len }).await?;
        if response != (Response::Bulk { len }) {
            return Err(NetError::Unexpected {
                peer: self.info.name.clone(),
                what: format!("{response:?}"),
            });
        }
        let mut got = 0u64;
        loop {
            let (n, end) = stream
                .skip_raw(8 << 20)
                .await
                .map_err(|e| self.explain(e))?;
            got += n;
            if end {
                break;
            }
        }
        if got != len {
            return Err(NetError::Unexpected {
                peer: self.info.name.clone(),
                what: format!("{got} bulk bytes instead of {len}"),
            });
        }
        Ok(got)
    }

    /// Closes the connection in an orderly way.
    pub fn close(&self) {
        self.conn.close(VarInt::from_u32(close::DONE), b"done");
    }
}
