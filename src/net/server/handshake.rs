//! A new connection's way in: TLS within the handshake deadline, a client
//! certificate, a free per-peer slot, and the `Hello` exchange whose
//! verdict (`proto::check_hello`) decides whether it is served.

use std::sync::Arc;
use std::time::Duration;

use quinn::{Connection, Incoming, VarInt};
use tokio::time::timeout;
use tracing::{debug, info, warn};

use super::{Live, PeerSlot, ServerEvent, Shared};
use crate::model::NodeId;
use crate::net::identity::node_id_of_certificate;
use crate::net::stream::{read_body, FrameReadError};
use crate::net::PeerInfo;
use crate::proto::{self, close};

/// A connection that passed TLS and `Hello`, with the slots it holds while
/// it lives (given back when dropped, slot first, as the connection ends).
pub(super) struct Established<'a> {
    pub(super) peer: Arc<PeerInfo>,
    _slot: PeerSlot<'a>,
    _live: Live<'a>,
    pub(super) conn: Connection,
}

/// Takes a new connection through TLS and `Hello`: `None` when it was
/// refused (the reason is closed to the peer and sent as
/// [`ServerEvent::Refused`]).
pub(super) async fn handshake(shared: &Shared, incoming: Incoming) -> Option<Established<'_>> {
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
            refused(None, e.to_string());
            return None;
        }
    };
    let conn = match timeout(deadline, connecting).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            // An untrusted node was logged by the verifier (at most once);
            // other failures are scanners and broken clients.
            debug!("TLS handshake with {addr} failed: {e}");
            refused(None, format!("TLS handshake failed: {e}"));
            return None;
        }
        Err(_) => {
            info!("TLS handshake with {addr} timed out");
            refused(None, "TLS handshake timed out".into());
            return None;
        }
    };
    let _live = Live::register(shared, &conn);
    let Some(node_id) = peer_node_id(&conn) else {
        conn.close(
            VarInt::from_u32(close::PROTOCOL_ERROR),
            b"no client certificate",
        );
        refused(None, "no client certificate".into());
        return None;
    };
    let known = shared.trust.name_of(&node_id);
    let trusted = known.is_some();
    let name = known.unwrap_or_else(|| format!("guest {}", node_id.short()));
    let Some(_slot) = PeerSlot::take(shared, node_id) else {
        let max = shared.config.max_connections_per_peer;
        warn!("refusing a connection from peer {name}: it has {max} already");
        let reason = format!(
            "too many connections from this node (at most {max}); retry once some have ended"
        );
        conn.close(VarInt::from_u32(close::BUSY), reason.as_bytes());
        refused(Some(node_id), reason);
        return None;
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
            refused(Some(node_id), format!("no valid Hello: {reason}"));
            return None;
        }
        Err(_) => {
            warn!("peer {name} sent no Hello within {} s", deadline.as_secs());
            conn.close(
                VarInt::from_u32(close::HANDSHAKE_TIMEOUT),
                b"no Hello in time",
            );
            refused(Some(node_id), "no Hello in time".into());
            return None;
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
            refused(Some(node_id), reason);
            return None;
        }
        Err(e) => {
            let reason = format!("malformed Hello: {e}");
            warn!("peer {name} sent a {reason}");
            conn.close(VarInt::from_u32(close::PROTOCOL_ERROR), reason.as_bytes());
            refused(Some(node_id), reason);
            return None;
        }
    };
    info!("peer {name} ({node_id}) connected, protocol {version}");
    shared.event(ServerEvent::Accepted {
        node_id,
        name: name.clone(),
        serves: hello.serves,
    });
    let peer = Arc::new(PeerInfo {
        node_id,
        name,
        own_name: hello.node_name,
        version,
        repo_id: hello.repo_id,
        fresh: hello.fresh,
        addr,
        trusted,
    });
    Some(Established {
        peer,
        _slot,
        _live,
        conn,
    })
}

/// The node id a connection's client certificate proved.
fn peer_node_id(conn: &Connection) -> Option<NodeId> {
    let identity = conn.peer_identity()?;
    let certs = identity
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    node_id_of_certificate(certs.first()?).ok()
}
