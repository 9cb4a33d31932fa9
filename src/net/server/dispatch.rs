//! One request stream: read and validate the request frame, answer a bad
//! one (or any but `Join` from a guest, a node not trusted) with
//! `Response::Error`, hand a good one to the [`Handler`](super::Handler),
//! and finish or reset the stream by its outcome.

use std::sync::Arc;

use tracing::{debug, warn};

use super::{ServerEvent, Shared};
use crate::net::stream::FramedStream;
use crate::net::{NetError, PeerInfo};
use crate::proto::{self, stream as stream_code, ErrorCode, Request, Response};

pub(super) async fn serve_stream(
    shared: Arc<Shared>,
    peer: Arc<PeerInfo>,
    mut stream: FramedStream,
) {
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
    if !peer.trusted && !matches!(request, Request::Join(_)) {
        let message = "this node does not trust yours: only a Join with an invite code is \
                       answered (pair with `harmony join CODE`, or ask its owner to `harmony \
                       peer add` this node)";
        return reject(
            &shared,
            &peer,
            stream,
            ErrorCode::REFUSED,
            message.to_owned(),
        )
        .await;
    }
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
            Request::Join(join) => write!(f, "Join (invite {})", join.invite),
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
