//! The client half of the handshake: QUIC with mutual TLS to a pinned node
//! id, then the `Hello` exchange, with each failure worded for the user
//! (unreachable, wrong peer, not trusted, incompatible).

use std::net::SocketAddr;
use std::sync::Arc;

use quinn::crypto::rustls::QuicClientConfig;
use quinn::{Connection, VarInt};
use tokio::time::timeout;

use super::probe;
use super::stream::{connection_error, is_tls_refusal, FramedStream};
use super::tls::{client_crypto, SERVER_NAME};
use super::{NetError, Node, PeerConnection, PeerInfo};
use crate::model::NodeId;
use crate::proto::{self, close};

impl Node {
    /// Establishes the QUIC connection with mutual TLS to the node `expected`
    /// at `addr`, without the `Hello` exchange: within the handshake timeout,
    /// and at once when `addr` refuses a probe (nothing listens there). For
    /// tools and tests; use [`Node::connect`].
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
        let result = tokio::select! {
            result = timeout(self.config.handshake_timeout, connecting) => result,
            _ = probe::refused(addr) => {
                return Err(NetError::PortClosed { peer: peer.to_owned(), addr });
            }
        };
        let seen = *seen.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(Ok(connection)) => {
                self.dialed(&connection);
                Ok(connection)
            }
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
                    trusted: true,
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
}
