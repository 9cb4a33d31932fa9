//! The node service: what puts a running node of a location together, above
//! [`sync`](crate::sync) and [`transfer`](crate::transfer) (siblings that do
//! not know each other) and below the command line.
//!
//! * [`NodeSetup`]: a location's settings turned into an endpoint (the one
//!   place a [`Node`](crate::net::Node) is built);
//! * [`trust_source`]: the trust list and repository membership, re-read
//!   from the location's state database while serving;
//! * [`Router`]: each request to its layer (sync, content, built-in);
//! * [`dial`]: reaching a trusted peer, failing fast when nobody is there;
//! * [`pair`]: invites, and joining by one (both sides trust each other);
//! * [`sync_until_settled`]: sessions with one peer until neither side has
//!   news for the other;
//! * [`PlannedGet`]: a `get` planned from the state in one pass
//!   ([`Repo::plan_get`](crate::Repo::plan_get)), then fetched from the
//!   holders ([`trusted_holders`]: the trusted peers).

mod dial;
mod get;
pub mod live;
pub mod pair;
mod router;
mod settle;
mod setup;
mod state;
mod trust;

pub use crate::net::unspecified;
pub use dial::{dial, resolve, DialError, Dialed};
pub use get::{trusted_holders, PlannedGet};
pub use router::Router;
pub use settle::{settle, sync_until_settled, MAX_SESSIONS};
pub use setup::NodeSetup;
pub(crate) use state::read_state;
pub use trust::{trust_source, trusted, OpenError};

/// The types the commands meet through the node service.
pub use crate::store::PeerRecord;
pub use crate::sync::{SessionReport, SyncError};
pub use crate::transfer::{
    drop_files, DropReport, GetReport, Holders, RateLimit, TransferProgress,
};
