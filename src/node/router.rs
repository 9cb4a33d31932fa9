//! The request router of a serving location: each request to the layer that
//! answers it.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::net::{BoxFuture, Builtin, FramedStream, Handler, Membership, NetError, PeerInfo};
use crate::proto::Request;
use crate::sync::SyncServer;
use crate::transfer::serve::{self as content, StoreCell};

/// Serves the location at `root`: state sync to [`sync`](crate::sync),
/// content requests to [`transfer`](crate::transfer), every other request
/// to [`Builtin`].
pub struct Router {
    root: PathBuf,
    sync: SyncServer,
    content: StoreCell,
}

impl Router {
    /// `membership` is the serving node's (see `Node::membership`): joining a
    /// repository updates it for later connections.
    pub fn new(root: PathBuf, membership: Arc<RwLock<Membership>>) -> Self {
        Router {
            sync: SyncServer::new(root.clone(), membership),
            root,
            content: StoreCell::default(),
        }
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
                Request::Sync(theirs) => self.sync.serve(peer, theirs, stream).await,
                Request::Manifest { .. }
                | Request::ManifestPages { .. }
                | Request::Chunks(_)
                | Request::Files { .. }
                | Request::Refine { .. }
                | Request::Has { .. } => {
                    let cache = self.content.clone();
                    content::answer(self.root.clone(), cache, request, stream).await
                }
                other => Builtin.handle(peer, other, stream).await,
            }
        })
    }
}
