//! The network shell around `proto`: node identity, TLS verifiers that pin
//! peers by node id, the QUIC endpoint, the handshake, and the server's
//! accept loop with its request handlers.
//!
//! Serving: bind a [`Node`], then run [`Node::serve`] with a [`Handler`]
//! until a shutdown future completes. Connecting: [`Node::connect`] returns a
//! [`PeerConnection`] (TLS and `Hello` done); [`PeerConnection::request`]
//! sends one [`Request`](crate::proto::Request) on a new stream and returns
//! the first [`Response`](crate::proto::Response) with the stream, on which
//! a protocol may go on (raw bytes, more frames).
//!
//! Adding a request kind (state sync, chunk transfer): add a variant at the
//! end of `proto::Request` (and its answer to `proto::Response`), document it
//! in protocol.md, and implement [`Handler`] for a type that handles the new
//! variant and passes the others on to [`Builtin`]:
//!
//! ```ignore
//! struct Sync { /* shared state */ }
//! impl Handler for Sync {
//!     fn handle<'a>(&'a self, peer: &'a PeerInfo, request: Request,
//!                   stream: &'a mut FramedStream) -> BoxFuture<'a, Result<(), NetError>> {
//!         match request {
//!             Request::Digest { .. } => Box::pin(async move {
//!                 stream.send_frame(&Response::Digest { .. }).await
//!             }),
//!             other => Builtin.handle(peer, other, stream),
//!         }
//!     }
//! }
//! node.serve(Arc::new(Sync { .. }), Some(trust_source), shutdown).await;
//! ```
//!
//! The server has read and validated the request frame before the handler
//! runs; it finishes the stream when the handler returns `Ok` and resets it
//! on `Err`. Every read and write through [`FramedStream`] is bounded by a
//! no-progress limit (`NodeConfig::stream_timeout`), not by a timer per call.

mod config;
mod congestion;
mod connect;
mod error;
pub mod identity;
mod node;
mod peer;
mod probe;
pub mod record_proof;
mod refusals;
mod reset;
mod server;
mod stream;
pub mod tls;
mod trust;

pub use crate::proto::Membership;
pub use config::{
    NodeConfig, CONNECTION_RECEIVE_WINDOW, IDLE_TIMEOUT, INITIAL_MTU, KEEP_ALIVE, SEND_WINDOW,
    STREAM_RECEIVE_WINDOW, UDP_BUFFER,
};
pub use congestion::{leading_controller, Congestion, DEFAULT_CONGESTION, FAR_RTT};
pub use error::{remote_reason, NetError};
pub use identity::{node_id_of_certificate, Identity, IdentityError};
pub use node::{Node, Stats, CLOSE_GRACE};
pub use peer::{PeerConnection, PeerInfo};
pub use probe::unspecified;
pub use server::{
    bulk_pattern, truncate_error_text, BoxFuture, Builtin, Handler, ServerEvent, TrustSource,
};
pub use stream::{FrameReceiver, FrameSender, FramedStream};
pub use trust::{TrustList, TrustSnapshot};
