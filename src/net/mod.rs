//! The network shell around `proto`: node identity, TLS verifiers that pin
//! peers by node id, the QUIC endpoint, the handshake, and the server's
//! accept loop with its request handlers.

mod config;
mod error;
pub mod identity;
mod node;
mod server;
mod stream;
pub mod tls;
mod trust;

pub use config::{
    NodeConfig, CONNECTION_RECEIVE_WINDOW, IDLE_TIMEOUT, KEEP_ALIVE, SEND_WINDOW,
    STREAM_RECEIVE_WINDOW, UDP_BUFFER,
};
pub use error::NetError;
pub use identity::{node_id_of_certificate, Identity, IdentityError};
pub use node::{Membership, Node, PeerConnection, PeerInfo, Stats};
pub use server::{bulk_pattern, BoxFuture, Builtin, Handler, ServerEvent, TrustSource};
pub use stream::FramedStream;
pub use trust::TrustList;
