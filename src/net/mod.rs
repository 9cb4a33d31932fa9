//! The network shell: node identity, TLS verifiers that pin peers by node id,
//! and the QUIC endpoint.

pub mod identity;

pub use identity::{node_id_of_certificate, Identity, IdentityError};
