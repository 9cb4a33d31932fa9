//! A location's settings turned into an endpoint.

use std::net::SocketAddr;
use std::path::Path;

use crate::net::{Identity, NetError, Node, NodeConfig, TrustList};
use crate::Repo;

/// What a node of a location is built from: the location's identity, and
/// endpoint settings taken from its state (repository, name, freshness).
/// Callers may change [`config`](NodeSetup::config) before binding (tests
/// shorten the timeouts, commands set how long to wait for a peer).
#[derive(Clone)]
pub struct NodeSetup {
    identity: Identity,
    /// The endpoint settings the node will be bound with.
    pub config: NodeConfig,
}

impl NodeSetup {
    /// The settings of the location `repo`, listening on `listen`.
    pub fn of(repo: &Repo, listen: SocketAddr) -> crate::Result<NodeSetup> {
        let settings = repo.settings();
        let mut config = NodeConfig::new(settings.repo_id, &settings.node_name, listen);
        config.fresh = repo.store().is_fresh()?;
        Ok(NodeSetup {
            identity: repo.identity().clone(),
            config,
        })
    }

    /// [`NodeSetup::of`] the location at `root`, read now (a sync may just
    /// have made it join a repository).
    pub fn open(root: &Path, listen: SocketAddr) -> crate::Result<NodeSetup> {
        NodeSetup::of(&Repo::open(root)?, listen)
    }

    /// Binds a node that serves the peers in `trust` (and connects).
    pub fn bind(self, trust: TrustList) -> Result<Node, NetError> {
        Node::bind(self.identity, self.config, trust)
    }

    /// Binds a node that only connects (it refuses incoming connections).
    pub fn bind_client(self) -> Result<Node, NetError> {
        Node::bind_client(self.identity, self.config)
    }
}
