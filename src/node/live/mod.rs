//! The always-on node: what `harmony serve` runs besides answering
//! requests, so that every location stays current without a command typed.
//!
//! Its parts share one signal, [`StateChanged`]: a commit of the watched
//! tree or a merge of a peer's news raises it, and the node tells its peers.

mod events;
mod pace;
mod watch;

use std::sync::Arc;

use tokio::sync::Notify;

pub use watch::watch_and_commit;

/// Raised whenever this location's replicated state may have changed (a
/// commit that recorded something, a merge that changed an entry). Raising
/// it many times before anyone waits counts once: that is the coalescing a
/// burst of commits needs.
#[derive(Clone, Debug, Default)]
pub struct StateChanged(Arc<Notify>);

impl StateChanged {
    /// Says that the state changed.
    pub fn raise(&self) {
        self.0.notify_one();
    }

    /// Completes at the next [`raise`](Self::raise), or at once if one came
    /// since the last wait.
    pub async fn wait(&self) {
        self.0.notified().await;
    }
}
