//! An established connection, from either side: who the peer is
//! ([`PeerInfo`]) and, on the client side, the requests sent to it
//! ([`PeerConnection`]).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use quinn::{Connection, VarInt};

use super::stream::{connection_error, is_tls_refusal, FramedStream};
use super::NetError;
use crate::model::{NodeId, RepoId};
use crate::proto::{close, Request, Response};

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
    /// The repository the peer said it belongs to when it connected. It
    /// differs from ours only when one side was fresh. Who joins whom is the
    /// state-sync layer's decision, on the memberships stated in each
    /// session (this one may be outdated by then).
    pub repo_id: RepoId,
    /// The peer was fresh when it connected.
    pub fresh: bool,
    /// The address the connection is with.
    pub addr: SocketAddr,
    /// This node trusted the peer when it connected. Only a server has
    /// untrusted peers: guests, let in while an invite is pending, whose
    /// only request answered is `Join`.
    pub trusted: bool,
}

/// An established, authenticated connection to a peer, after `Hello`. Cheap to
/// clone: clones share the one QUIC connection.
#[derive(Clone)]
pub struct PeerConnection {
    pub(super) conn: Connection,
    pub(super) info: PeerInfo,
    pub(super) our_name: String,
    pub(super) our_id: NodeId,
    pub(super) timeout: Duration,
}

impl PeerConnection {
    /// Who is at the other end.
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
        tracing::debug!(
            "closing the connection to {}: {:?} round trip, {}",
            self.info.name,
            self.conn.rtt(),
            super::leading_controller(&self.conn)
        );
        self.conn.close(VarInt::from_u32(close::DONE), b"done");
    }
}
