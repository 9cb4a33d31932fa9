//! Reaching a trusted peer from a command (ping, sync): resolve its address
//! and bind a client-only endpoint of the matching address family.

use std::net::SocketAddr;

use anyhow::Context;
use harmony::net::{Identity, Node, NodeConfig};
use harmony::store::{PeerRecord, Settings};

/// The first address the peer's `host:port` resolves to.
pub async fn resolve(peer: &PeerRecord) -> anyhow::Result<SocketAddr> {
    tokio::net::lookup_host(&peer.addr)
        .await
        .with_context(|| {
            format!(
                "cannot resolve the address {} of peer {}",
                peer.addr, peer.name
            )
        })?
        .next()
        .with_context(|| {
            format!(
                "the address {} of peer {} resolves to nothing",
                peer.addr, peer.name
            )
        })
}

/// A client-only endpoint able to reach `remote`.
pub fn client_node(
    identity: Identity,
    settings: &Settings,
    fresh: bool,
    remote: SocketAddr,
) -> anyhow::Result<Node> {
    let local: SocketAddr = if remote.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let mut config = NodeConfig::new(settings.repo_id, &settings.node_name, local);
    config.fresh = fresh;
    Ok(Node::bind_client(identity, config)?)
}
