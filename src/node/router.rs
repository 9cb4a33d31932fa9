//! The request router of a serving location: each request to the layer that
//! answers it.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use super::live::Inbox;
use super::read_state;
use crate::net::{BoxFuture, Builtin, FramedStream, Handler, Membership, NetError, PeerInfo};
use crate::proto::{Request, Response};
use crate::store::Store;
use crate::sync::SyncServer;
use crate::transfer::serve::{self as content, StoreCell};
use crate::transfer::RateLimit;

/// Serves the location at `root`: state sync to [`sync`](crate::sync),
/// content requests to [`transfer`](crate::transfer), a join by invite to
/// `pair`, every other request to [`Builtin`].
pub struct Router {
    root: PathBuf,
    sync: SyncServer,
    content: StoreCell,
    /// Where a live node (`serve`) hears of notices and merges.
    inbox: Option<Inbox>,
    /// Content bytes sent, to every peer together (no limit by default).
    sending: RateLimit,
}

impl Router {
    /// `membership` is the serving node's (see `Node::membership`): joining a
    /// repository updates it for later connections.
    pub fn new(root: PathBuf, membership: Arc<RwLock<Membership>>) -> Self {
        Router {
            sync: SyncServer::new(root.clone(), membership),
            root,
            content: StoreCell::default(),
            inbox: None,
            sending: RateLimit::default(),
        }
    }

    /// Sends content (chunks, whole files) to all peers together at most as
    /// fast as `limit` allows: the location's `bandwidth_limit`, whose rate
    /// may change while serving. State sync is not limited.
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.sending = limit;
        self
    }

    /// Tells `inbox` of each peer's notice that its state differs from ours,
    /// and of each sync that changed our state (so the live node passes the
    /// change on).
    pub fn live(mut self, inbox: Inbox) -> Self {
        self.inbox = Some(inbox);
        self
    }

    /// Answers a peer's notice; when its digest differs from ours, the live
    /// node hears of it (without one, a notice changes nothing).
    async fn noted(
        &self,
        peer: &PeerInfo,
        digest: [u8; 32],
        stream: &mut FramedStream,
    ) -> Result<(), NetError> {
        if let Some(inbox) = &self.inbox {
            match read_state(&self.root, Store::state_digest).await {
                Ok(ours) if ours == digest => {}
                Ok(_) => inbox.noticed(peer.node_id, digest),
                // Cannot tell: a sync finds out.
                Err(e) => {
                    tracing::warn!("cannot read this location's digest: {e}");
                    inbox.noticed(peer.node_id, digest);
                }
            }
        }
        stream.send_frame(&Response::Noted).await
    }

    /// Whether each sync session starts with a commit of this location's
    /// working tree (the default); see [`SyncServer::commit_first`].
    pub fn commit_first(mut self, yes: bool) -> Self {
        self.sync = self.sync.commit_first(yes);
        self
    }
}

impl Handler for Router {
    fn handle<'a>(
        &'a self,
        peer: &'a PeerInfo,
        request: Request,
        stream: &'a mut FramedStream,
    ) -> BoxFuture<'a, Result<(), NetError>> {
        Box::pin(async move {
            match request {
                Request::Sync(theirs) => {
                    let report = self.sync.serve(peer, theirs, stream).await?;
                    let changed = report.is_some_and(|r| r.changed > 0 || r.left_news());
                    if let (true, Some(inbox)) = (changed, &self.inbox) {
                        inbox.merged_from(peer.node_id);
                    }
                    Ok(())
                }
                Request::Notify { digest } => self.noted(peer, digest, stream).await,
                Request::Join(join) => {
                    let answer = super::pair::answer(&self.root, peer, join).await;
                    stream.send_frame(&Response::Join(answer)).await
                }
                Request::Manifest { .. }
                | Request::ManifestPages { .. }
                | Request::Chunks(_)
                | Request::Files { .. }
                | Request::Refine { .. }
                | Request::Has { .. } => {
                    let cache = self.content.clone();
                    content::answer(self.root.clone(), cache, request, stream, &self.sending).await
                }
                other => Builtin.handle(peer, other, stream).await,
            }
        })
    }
}
