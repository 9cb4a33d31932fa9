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

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use quinn::{Connection, Incoming, VarInt};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tracing::{debug, info, warn, Instrument};

use super::identity::node_id_of_certificate;
use super::node::{Gauge, Node, PeerInfo, Stats};
use super::stream::{read_body, FrameReadError, FramedStream};
use super::{NetError, TrustList};
use crate::model::NodeId;
use crate::proto::{self, close, stream as stream_code, ErrorCode, Request, Response};

/// A boxed future, as handlers return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the server does with a request. The server has already read and
/// validated the request frame; the handler writes the response frame (and
/// whatever the protocol says follows it) on `stream`. The server finishes
/// the stream when the handler returns `Ok`, and resets it on `Err`.
///
/// Later request kinds plug in by implementing `Handler` for a type that
/// handles its own variants and passes the others to [`Builtin`].
pub trait Handler: Send + Sync + 'static {
    fn handle<'a>(
        &'a self,
        peer: &'a PeerInfo,
        request: Request,
        stream: &'a mut FramedStream,
    ) -> BoxFuture<'a, Result<(), NetError>>;
}

/// The requests every node answers: `Ping` and `Bulk`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Builtin;

/// The bytes a `Bulk` response repeats: 0, 1, ..., 255, 0, 1, ...
pub fn bulk_pattern() -> &'static [u8] {
    static PATTERN: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| (0..BULK_BLOCK).map(|i| i as u8).collect())
}

/// Bytes per write of a bulk response.
const BULK_BLOCK: usize = 1 << 20;

impl Handler for Builtin {
    fn handle<'a>(
        &'a self,
        _peer: &'a PeerInfo,
        request: Request,
        stream: &'a mut FramedStream,
    ) -> BoxFuture<'a, Result<(), NetError>> {
        Box::pin(async move {
            match request {
                Request::Ping { payload } => stream.send_frame(&Response::Pong { payload }).await,
                Request::Bulk { len } => {
                    stream.send_frame(&Response::Bulk { len }).await?;
                    let pattern = bulk_pattern();
                    let mut left = len;
                    while left > 0 {
                        let n = left.min(pattern.len() as u64) as usize;
                        stream.send_raw(&pattern[..n]).await?;
                        left -= n as u64;
                    }
                    Ok(())
                }
                // Served by the location's router (`node::Router`), which
                // passes only the other kinds on to `Builtin`.
                Request::Sync(_)
                | Request::Manifest { .. }
                | Request::ManifestPages { .. }
                | Request::Chunks(_)
                | Request::Files { .. }
                | Request::Refine { .. }
                | Request::Has { .. }
                | Request::Notify { .. } => {
                    let refusal = Response::Error {
                        code: ErrorCode::UNSUPPORTED,
                        message: "this endpoint serves no repository location".into(),
                    };
                    stream.send_frame(&refusal).await
                }
            }
        })
    }
}

/// Something that happened to a connection, for logs and tests.
#[derive(Clone, Debug)]
pub enum ServerEvent {
    /// A peer passed TLS and `Hello`.
    Accepted { node_id: NodeId, name: String },
    /// A connection was refused: TLS failure, untrusted node, mismatch.
    Refused {
        addr: SocketAddr,
        node_id: Option<NodeId>,
        reason: String,
    },
    /// An accepted connection ended.
    Closed { node_id: NodeId, reason: String },
    /// A request stream failed (bad frame, timeout, handler error).
    StreamFailed { node_id: NodeId, reason: String },
}

/// Where the trust list comes from while serving: called (on a blocking
/// thread) before each new connection's handshake; `serve` reads the
/// `peers` table with it.
pub type TrustSource = Arc<dyn Fn() -> anyhow::Result<Vec<(NodeId, String)>> + Send + Sync>;

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
                    Ok(Ok(peers)) => shared.trust.replace(peers),
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

/// The node id a connection's client certificate proved.
fn peer_node_id(conn: &Connection) -> Option<NodeId> {
    let identity = conn.peer_identity()?;
    let certs = identity
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    node_id_of_certificate(certs.first()?).ok()
}

async fn serve_connection(shared: Arc<Shared>, incoming: Incoming) {
    let addr = incoming.remote_address();
    let refused = |node_id, reason: String| {
        shared.event(ServerEvent::Refused {
            addr,
            node_id,
            reason,
        })
    };
    let deadline = shared.config.handshake_timeout;
    let connecting = match incoming.accept() {
        Ok(connecting) => connecting,
        Err(e) => {
            debug!("could not accept a connection from {addr}: {e}");
            return refused(None, e.to_string());
        }
    };
    let conn = match timeout(deadline, connecting).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            info!("TLS handshake with {addr} failed: {e}");
            return refused(None, format!("TLS handshake failed: {e}"));
        }
        Err(_) => {
            info!("TLS handshake with {addr} timed out");
            return refused(None, "TLS handshake timed out".into());
        }
    };
    let _live = Live::register(&shared, &conn);
    let Some(node_id) = peer_node_id(&conn) else {
        conn.close(
            VarInt::from_u32(close::PROTOCOL_ERROR),
            b"no client certificate",
        );
        return refused(None, "no client certificate".into());
    };
    let name = shared
        .trust
        .name_of(&node_id)
        .unwrap_or_else(|| node_id.short());
    let Some(_slot) = PeerSlot::take(&shared, node_id) else {
        let max = shared.config.max_connections_per_peer;
        warn!("refusing a connection from peer {name}: it has {max} already");
        let reason = format!(
            "too many connections from this node (at most {max}); retry once some have ended"
        );
        conn.close(VarInt::from_u32(close::BUSY), reason.as_bytes());
        return refused(Some(node_id), reason);
    };

    // Hello: the client's first bidirectional stream.
    let hello = async {
        let (send, mut recv) = conn.accept_bi().await.map_err(|e| e.to_string())?;
        let body = read_body(&mut recv).await.map_err(|e| match e {
            FrameReadError::Proto(e) => e.to_string(),
            FrameReadError::Read(e) => e.to_string(),
        })?;
        // The client ends the stream after its Hello; reading the end lets
        // both sides free the stream (else it keeps a stream slot forever).
        recv.read_to_end(0)
            .await
            .map_err(|_| "unexpected data after Hello".to_owned())?;
        Ok::<_, String>((send, recv, body))
    };
    let (mut send, body) = match timeout(deadline, hello).await {
        // The Hello stream is done once read: release its stream slot.
        Ok(Ok((send, recv, body))) => {
            drop(recv);
            (send, body)
        }
        Ok(Err(reason)) => {
            warn!("no valid Hello from peer {name}: {reason}");
            conn.close(VarInt::from_u32(close::PROTOCOL_ERROR), reason.as_bytes());
            return refused(Some(node_id), format!("no valid Hello: {reason}"));
        }
        Err(_) => {
            warn!("peer {name} sent no Hello within {} s", deadline.as_secs());
            conn.close(
                VarInt::from_u32(close::HANDSHAKE_TIMEOUT),
                b"no Hello in time",
            );
            return refused(Some(node_id), "no Hello in time".into());
        }
    };
    let ours = {
        let membership = *shared.membership.read().unwrap_or_else(|e| e.into_inner());
        proto::Hello {
            repo_id: membership.repo_id,
            fresh: membership.fresh,
            ..shared.hello.clone()
        }
    };
    let verdict = proto::check_hello(&body, &ours, node_id);
    // Our Hello goes out whatever the verdict, so the client can word the
    // mismatch from its side too.
    if let Ok(frame) = proto::encode_frame(&ours) {
        let _ = timeout(deadline, send.write_all(&frame)).await;
        let _ = send.finish();
    }
    drop(send);
    let (hello, version) = match verdict {
        Ok(Ok(accepted)) => accepted,
        Ok(Err(mismatch)) => {
            let reason = mismatch.describe(&name);
            warn!("{reason}; closing the connection");
            // Give the client a moment to read our Hello and close itself.
            let _ = timeout(Duration::from_secs(2), conn.closed()).await;
            conn.close(VarInt::from_u32(mismatch.close_code()), reason.as_bytes());
            return refused(Some(node_id), reason);
        }
        Err(e) => {
            let reason = format!("malformed Hello: {e}");
            warn!("peer {name} sent a {reason}");
            conn.close(VarInt::from_u32(close::PROTOCOL_ERROR), reason.as_bytes());
            return refused(Some(node_id), reason);
        }
    };
    info!("peer {name} ({node_id}) connected, protocol {version}");
    shared.event(ServerEvent::Accepted {
        node_id,
        name: name.clone(),
    });
    let peer = Arc::new(PeerInfo {
        node_id,
        name: name.clone(),
        own_name: hello.node_name,
        version,
        repo_id: hello.repo_id,
        fresh: hello.fresh,
        addr,
    });

    let mut streams = JoinSet::new();
    let reason = loop {
        tokio::select! {
            accepted = conn.accept_bi() => match accepted {
                Ok(opened) => {
                    let gauge = Gauge::new(&shared.stats, |s| &s.streams);
                    let limit = shared.config.stream_timeout;
                    let stream = FramedStream::new(opened, &conn, &name, limit);
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
    info!("peer {name} disconnected: {reason}");
    shared.event(ServerEvent::Closed { node_id, reason });
}

async fn serve_stream(shared: Arc<Shared>, peer: Arc<PeerInfo>, mut stream: FramedStream) {
    let fail = |stream: &mut FramedStream, code: u32, reason: String| {
        warn!("request stream from peer {} failed: {reason}", peer.name);
        stream.abort(code);
        shared.event(ServerEvent::StreamFailed {
            node_id: peer.node_id,
            reason,
        });
    };
    let body = match stream.recv_body().await {
        Ok(body) => body,
        Err(NetError::Stalled { .. }) => {
            return fail(
                &mut stream,
                stream_code::TIMEOUT,
                "no request in time".into(),
            )
        }
        Err(e @ NetError::Protocol { .. }) => {
            let message = e.to_string();
            return reject(&shared, &peer, stream, ErrorCode::MALFORMED, message).await;
        }
        Err(e) => {
            debug!("request stream from peer {} ended: {e}", peer.name);
            return;
        }
    };
    let request: Request = match proto::decode_body(&body) {
        Ok(request) => request,
        Err(e) => {
            let unknown = Request::kind_of(&body).is_some_and(|k| k >= Request::KNOWN_KINDS);
            let (code, message) = if unknown {
                (ErrorCode::UNSUPPORTED, "unknown request kind".to_owned())
            } else {
                (ErrorCode::MALFORMED, format!("malformed request: {e}"))
            };
            return reject(&shared, &peer, stream, code, message).await;
        }
    };
    debug!("peer {} asks {:?}", peer.name, RequestKind(&request));
    match shared.handler.handle(&peer, request, &mut stream).await {
        Ok(()) => stream.finish(),
        Err(e @ NetError::Stalled { .. }) => fail(&mut stream, stream_code::TIMEOUT, e.to_string()),
        Err(e) => fail(&mut stream, stream_code::INTERNAL, e.to_string()),
    }
}

/// Answers a bad request with `Response::Error`, ends our side of the stream
/// and stops reading the rest of it (the connection goes on).
async fn reject(
    shared: &Shared,
    peer: &PeerInfo,
    mut stream: FramedStream,
    code: ErrorCode,
    message: String,
) {
    warn!("bad request from peer {}: {message}", peer.name);
    let _ = stream
        .send_frame(&Response::Error {
            code,
            message: truncate_error_text(&message),
        })
        .await;
    stream.finish();
    stream.stop_reading(stream_code::MALFORMED);
    shared.event(ServerEvent::StreamFailed {
        node_id: peer.node_id,
        reason: message,
    });
}

/// A request's kind for logs, without its payload.
struct RequestKind<'a>(&'a Request);

impl std::fmt::Debug for RequestKind<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Request::Ping { payload } => write!(f, "Ping ({} bytes)", payload.len()),
            Request::Bulk { len } => write!(f, "Bulk ({len} bytes)"),
            Request::Sync(hello) => write!(f, "Sync (their seq {})", hello.seq),
            Request::Manifest { hash, first } => write!(f, "Manifest ({hash} from {first})"),
            Request::Chunks(r) => write!(f, "Chunks ({} ranges of {})", r.ranges.len(), r.hash),
            Request::Has { hash } => write!(f, "Has ({hash})"),
            Request::ManifestPages { hash, pages } => {
                write!(f, "ManifestPages ({} pages of {hash})", pages.len())
            }
            Request::Files { hashes } => write!(f, "Files ({} contents)", hashes.len()),
            Request::Refine { hash, offset, len } => {
                write!(f, "Refine ({len} bytes at {offset} of {hash})")
            }
            Request::Notify { .. } => write!(f, "Notify"),
        }
    }
}

/// Cuts an error text to `MAX_ERROR_TEXT` bytes at a character boundary.
pub fn truncate_error_text(message: &str) -> String {
    let mut end = message.len().min(proto::MAX_ERROR_TEXT);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message[..end].to_owned()
}
