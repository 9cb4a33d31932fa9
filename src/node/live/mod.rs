//! The always-on node: what `harmony serve` runs besides answering
//! requests, so that every location stays current without a command typed.
//!
//! Its parts share one signal, [`StateChanged`]: a commit of the watched
//! tree or a merge of a peer's news raises it, and the node tells its peers.

pub mod discovery;
mod fetch;
mod inbox;
mod lan;
mod local;
mod run;
mod schedule;
mod status;

pub use inbox::{Inbox, News};
pub use run::Live;
pub use schedule::{Action, Outcome, Schedule, BACKOFF_FIRST, BACKOFF_MAX};
pub use status::{PeerStatus, ServeStatus, StatusBoard, TransferStatus, STATUS_FILE};

/// Raised whenever this location's replicated state may have changed (a
/// commit that recorded something, a merge that changed an entry). Raising
/// it many times before anyone waits counts once: that is the coalescing a
/// burst of commits needs.
#[derive(Clone, Debug, Default)]
pub struct StateChanged(Inbox);

impl StateChanged {
    /// The signal that raises into `inbox`.
    pub fn into(inbox: &Inbox) -> Self {
        StateChanged(inbox.clone())
    }

    /// Says that the state changed.
    pub fn raise(&self) {
        self.0.local_change();
    }

    /// The inbox this signal raises into.
    pub fn inbox(&self) -> &Inbox {
        &self.0
    }
}
