//! Pairing two locations by an invite code (protocol.md, "Pairing"): making
//! an invite, answering a join as the inviter, and joining as the node that
//! holds the code. What a join does to an invite, and what an answer means,
//! is decided purely in `proto::pair`; here are the store and the network.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use super::live::ServeStatus;
use super::{trust_source, NodeSetup, OpenError, Router};
use crate::model::{InviteCode, InviteId, InviteSecret, NodeId, STATE_DIR};
use crate::net::{unspecified, NetError, Node, PeerInfo, ServerEvent};
use crate::proto::pair::{self, Admission, JoinOutcome};
use crate::proto::{JoinAnswer, JoinRefusal, JoinRequest, Request, Response};
use crate::repo::now_ms;
use crate::store::PeerRecord;
use crate::Repo;

/// How often a self-serving invite looks whether it was used or expired.
const POLL: Duration = Duration::from_millis(200);
/// How long a self-serving invite, once used, waits for the joiner to read
/// its answer and close (else closing at once could cut the answer off).
const LINGER: Duration = Duration::from_secs(2);

/// An invite just made.
#[derive(Clone, Debug)]
pub struct Invite {
    /// The code to give the other node.
    pub code: InviteCode,
    /// When it stops admitting a join (ms since the Unix epoch).
    pub expires_ms: i64,
}

/// Records a new invite of the location `repo`, valid for `ttl`, reachable
/// at `addrs`: a fresh 128-bit secret from the system's generator (rand's
/// thread generator, a CSPRNG seeded from the operating system).
pub fn make_invite(repo: &mut Repo, ttl: Duration, addrs: Vec<String>) -> crate::Result<Invite> {
    let secret = InviteSecret(rand::random());
    let now = now_ms();
    let expires_ms = now.saturating_add(ttl.as_millis().min(i64::MAX as u128) as i64);
    let writer = repo.store_mut().write()?;
    writer.add_invite(&secret, now, expires_ms)?;
    writer.commit()?;
    Ok(Invite {
        code: InviteCode {
            inviter: repo.node_id(),
            addrs,
            secret,
        },
        expires_ms,
    })
}

/// The addresses to put in a code for a node bound at `bound`: that
/// address, or for an unspecified one (`0.0.0.0`, `[::]`) the address of
/// each family this host would send from by its default route (asked of
/// the kernel by connecting a UDP socket, which sends nothing). Empty when
/// there is none: the caller then asks for `--addr`.
pub fn invite_addrs(bound: SocketAddr) -> Vec<String> {
    if !bound.ip().is_unspecified() {
        return vec![bound.to_string()];
    }
    // Documentation prefixes (RFC 5737, RFC 3849): routed by the default
    // route, never reached, and connect() on UDP sends no packet.
    let mut probes = vec!["192.0.2.1:9"];
    if bound.is_ipv6() {
        probes.push("[2001:db8::1]:9");
    }
    probes
        .into_iter()
        .filter_map(|probe| {
            let probe: SocketAddr = probe.parse().ok()?;
            let socket = std::net::UdpSocket::bind(unspecified(probe)).ok()?;
            socket.connect(probe).ok()?;
            let ip = socket.local_addr().ok()?.ip();
            (!ip.is_unspecified()).then(|| SocketAddr::new(ip, bound.port()).to_string())
        })
        .collect()
}

/// Why a self-serving invite ended without being used.
#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    /// Nobody joined within its lifetime.
    #[error(
        "the invite expired unused: nothing was trusted; run `harmony invite` again for a new code"
    )]
    Expired,
    /// The location could not be served or read.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The state database failed while waiting.
    #[error("cannot read the invite: {0}")]
    Store(String),
}

/// Serves the location at `root` on `node` (bound by the caller, its
/// address in the code) until the invite `id` is used, then until the
/// joiner has read the answer (at most [`LINGER`]); the node that joined.
/// This is what `harmony invite` does when no `serve` runs for the location:
/// it answers the join itself (and any trusted peer's requests meanwhile).
pub async fn serve_invite(
    node: Arc<Node>,
    root: &Path,
    id: InviteId,
    expires_ms: i64,
) -> Result<NodeId, InviteError> {
    let source = trust_source(root, node.membership())?;
    let router = Arc::new(Router::new(root.to_path_buf(), node.membership()));
    let mut events = node.subscribe();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = {
        let node = node.clone();
        tokio::spawn(async move {
            node.serve(router, Some(source), async {
                let _ = done_rx.await;
            })
            .await
        })
    };
    let result = loop {
        tokio::time::sleep(POLL).await;
        let invite = super::read_state(root, move |store| store.invite(id)).await;
        match invite {
            Err(e) => break Err(InviteError::Store(e)),
            Ok(Some(invite)) if invite.used_by.is_some() => break Ok(invite.used_by),
            Ok(_) if now_ms() >= expires_ms => break Err(InviteError::Expired),
            Ok(_) => {}
        }
    };
    if let Ok(Some(joiner)) = result {
        let closed = async {
            loop {
                match events.recv().await {
                    Ok(ServerEvent::Closed { node_id, .. }) if node_id == joiner => return,
                    Err(RecvError::Closed) => return,
                    _ => {}
                }
            }
        };
        let _ = tokio::time::timeout(LINGER, closed).await;
    }
    let _ = done_tx.send(());
    let _ = serving.await;
    match result {
        Ok(Some(joiner)) => Ok(joiner),
        Ok(None) => Err(InviteError::Store("invite used by nobody".into())),
        Err(e) => Err(e),
    }
}

/// Whether a `serve` runs for the location at `root`, and where it listens.
pub fn running_serve(root: &Path) -> Option<SocketAddr> {
    ServeStatus::read(&root.join(STATE_DIR))?
        .listen
        .parse()
        .ok()
}

/// The inviter's answer to `request` from `peer` (a guest, or a trusted
/// node asking again): judged and, when admitted, the invite consumed and
/// the joiner trusted, in one transaction of the location at `root`.
pub(super) async fn answer(root: &Path, peer: &PeerInfo, request: JoinRequest) -> JoinAnswer {
    let root = root.to_path_buf();
    let joiner = peer.clone();
    let answered = tokio::task::spawn_blocking(move || admit(&root, &joiner, &request)).await;
    match answered {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => {
            tracing::warn!("cannot answer the join of node {}: {e}", peer.node_id);
            // Nothing was trusted: the joiner may try again.
            JoinAnswer::Refused(JoinRefusal::Unknown)
        }
        Err(e) => {
            tracing::warn!("cannot answer the join of node {}: {e}", peer.node_id);
            JoinAnswer::Refused(JoinRefusal::Unknown)
        }
    }
}

fn admit(root: &Path, peer: &PeerInfo, request: &JoinRequest) -> crate::Result<JoinAnswer> {
    let mut repo = Repo::open(root)?;
    let me = repo.node_id();
    let now = now_ms();
    let peers = repo.store().peers()?;
    let writer = repo.store_mut().write()?;
    let invite = writer.invite(request.invite)?;
    let admission = match pair::admit(invite.as_ref(), request, me, peer.node_id, now) {
        Ok(admission) => admission,
        Err(refusal) => {
            tracing::warn!(
                "refused a join by node {} at {}: {refusal:?}",
                peer.node_id,
                peer.addr
            );
            return Ok(JoinAnswer::Refused(refusal));
        }
    };
    let Some(invite) = invite else {
        return Ok(JoinAnswer::Refused(JoinRefusal::Unknown));
    };
    if admission == Admission::New {
        writer.use_invite(request.invite, peer.node_id, now)?;
        if !peers.iter().any(|p| p.node_id == peer.node_id) {
            let record = PeerRecord {
                name: free_name(&peer.own_name, &peers),
                node_id: peer.node_id,
                addr: SocketAddr::new(peer.addr.ip(), request.port).to_string(),
                added_ms: now,
            };
            writer.add_peer(&record)?;
            tracing::info!(
                "node {} joined by invite {}: trusted as {}",
                peer.node_id,
                request.invite,
                record.name
            );
        }
        writer.commit()?;
    }
    Ok(JoinAnswer::Welcome {
        mac: pair::welcome_mac(&invite.secret, me, peer.node_id),
    })
}

/// A peer name for a node calling itself `wanted`: its letters, digits,
/// `-`, `_` and `.` (at most 64), `node` if none are left, with `-2`, `-3`,
/// ... when another peer has it.
fn free_name(wanted: &str, peers: &[PeerRecord]) -> String {
    let clean: String = wanted
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(58)
        .collect();
    let base = if clean.is_empty() {
        "node".into()
    } else {
        clean
    };
    let taken = |name: &str| peers.iter().any(|p| p.name == name);
    (1..)
        .map(|n| {
            if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            }
        })
        .find(|name| !taken(name))
        .expect("some suffix is free")
}

/// Why `join` trusted nothing (or, for [`JoinError::Impostor`], only the
/// other side did).
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// This location could not be read or written.
    #[error(transparent)]
    Location(#[from] crate::Error),
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The code is this node's own.
    #[error("this is an invite of this node itself; run `harmony join` on the other node")]
    OwnCode,
    /// The inviter is trusted here already.
    #[error("node {id} is already trusted here, as {name}; nothing to pair (`harmony peer remove {name}` first to pair again)")]
    AlreadyTrusted {
        /// Its id.
        id: NodeId,
        /// Its name here.
        name: String,
    },
    /// No address of the code led to the inviter.
    #[error(
        "{}; a code is answered only while `harmony serve` or `harmony invite` runs on the \
         inviting node", reasons.join("; ")
    )]
    Unreachable {
        /// Why, per address tried.
        reasons: Vec<String>,
    },
    /// The inviter's TLS refused this node: it has no invite pending.
    #[error(
        "the inviting node at {addr} refused this node: it has no invite pending (the code has \
         expired or was used already, or was never made there); ask for a new one with \
         `harmony invite` there"
    )]
    NoInvitePending {
        /// The address that answered.
        addr: SocketAddr,
    },
    /// The inviter answered and refused.
    #[error("{0}")]
    Refused(String),
    /// The inviter said welcome without proving it holds the secret.
    #[error(
        "the node at {addr} accepted the join but did not prove it holds the code's secret: \
         it is not the node that made the code; nothing was trusted here (on the inviting \
         node, check `harmony peer list` and remove this node if it appears)"
    )]
    Impostor {
        /// The address that answered.
        addr: SocketAddr,
    },
    /// The connection failed after it was made.
    #[error(transparent)]
    Net(#[from] NetError),
}

/// Joins the inviter of `code` from the location at `root`: tries each of
/// its addresses in order (each within `handshake_timeout`, a closed port at
/// once), pinning the inviter's id, proves the secret, checks the
/// inviter's proof, and trusts it here under `name` (default: the name it
/// gives itself, made unique). Returns the peer added.
pub async fn join(
    root: &Path,
    code: &InviteCode,
    name: Option<&str>,
    handshake_timeout: Duration,
) -> Result<PeerRecord, JoinError> {
    let repo = Repo::open(root)?;
    let me = repo.node_id();
    if code.inviter == me {
        return Err(JoinError::OwnCode);
    }
    if let Some(known) = repo
        .store()
        .peers()?
        .into_iter()
        .find(|p| p.node_id == code.inviter)
    {
        return Err(JoinError::AlreadyTrusted {
            id: known.node_id,
            name: known.name,
        });
    }
    let port = running_serve(root)
        .map(|a| a.port())
        .or_else(|| {
            repo.config()
                .ok()?
                .listen?
                .parse::<SocketAddr>()
                .ok()
                .map(|a| a.port())
        })
        .or_else(|| {
            repo.settings()
                .listen
                .parse::<SocketAddr>()
                .ok()
                .map(|a| a.port())
        })
        .unwrap_or(0);
    drop(repo);
    let label = format!("inviter {}", code.inviter.short());
    let mut reasons = Vec::new();
    for addr in &code.addrs {
        let remote = match tokio::net::lookup_host(addr).await {
            Ok(mut found) => match found.next() {
                Some(remote) => remote,
                None => {
                    reasons.push(format!("{addr} resolves to nothing"));
                    continue;
                }
            },
            Err(e) => {
                reasons.push(format!("cannot resolve {addr}: {e}"));
                continue;
            }
        };
        let mut setup = NodeSetup::open(root, unspecified(remote))?;
        setup.config.handshake_timeout = handshake_timeout;
        let node = setup.bind_client()?;
        let result = match node.connect(remote, code.inviter, &label).await {
            Ok(conn) => {
                let request = Request::Join(JoinRequest {
                    invite: code.secret.id(),
                    port,
                    mac: pair::join_mac(&code.secret, code.inviter, me),
                });
                let answered = conn.request(&request).await;
                let own_name = conn.peer().own_name.clone();
                conn.close();
                answered.map(|(response, _)| (response, own_name))
            }
            Err(e) => Err(e),
        };
        node.shutdown().await;
        let (response, own_name) = match result {
            Ok(answered) => answered,
            Err(NetError::NotTrusted { .. }) => {
                return Err(JoinError::NoInvitePending { addr: remote })
            }
            Err(e @ (NetError::Unreachable { .. } | NetError::PortClosed { .. })) => {
                reasons.push(e.to_string());
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let answer = match response {
            Response::Join(answer) => answer,
            other => {
                return Err(NetError::Unexpected {
                    peer: label,
                    what: format!("{other:?} in answer to Join"),
                }
                .into())
            }
        };
        return match pair::outcome(&answer, &code.secret, code.inviter, me) {
            JoinOutcome::Trust => trust_inviter(root, code.inviter, &own_name, name, addr),
            JoinOutcome::Refused(why) => Err(JoinError::Refused(why.describe(&own_name))),
            JoinOutcome::Impostor => Err(JoinError::Impostor { addr: remote }),
        };
    }
    Err(JoinError::Unreachable { reasons })
}

/// Trusts the inviter, which proved the secret, under `name` or a free
/// form of the name it gives itself.
fn trust_inviter(
    root: &Path,
    inviter: NodeId,
    own_name: &str,
    name: Option<&str>,
    addr: &str,
) -> Result<PeerRecord, JoinError> {
    let mut repo = Repo::open(root)?;
    let peers = repo.store().peers()?;
    let record = PeerRecord {
        name: name.map_or_else(|| free_name(own_name, &peers), str::to_owned),
        node_id: inviter,
        addr: addr.to_owned(),
        added_ms: now_ms(),
    };
    let writer = repo.store_mut().write()?;
    writer.add_peer(&record)?;
    writer.commit()?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str) -> PeerRecord {
        PeerRecord {
            name: name.into(),
            node_id: NodeId([1; 32]),
            addr: "h:1".into(),
            added_ms: 0,
        }
    }

    #[test]
    fn a_joiner_gets_a_clean_free_name() {
        assert_eq!(free_name("nas", &[]), "nas");
        assert_eq!(free_name("my nas!", &[]), "mynas");
        assert_eq!(free_name("!!", &[]), "node");
        assert_eq!(free_name("nas", &[peer("nas"), peer("nas-2")]), "nas-3");
    }

    #[test]
    fn a_bound_address_goes_in_the_code_as_it_is() {
        let bound: SocketAddr = "127.0.0.1:7447".parse().unwrap();
        assert_eq!(invite_addrs(bound), vec!["127.0.0.1:7447".to_owned()]);
        // An unspecified one becomes this host's addresses, never 0.0.0.0.
        let any: SocketAddr = "0.0.0.0:7447".parse().unwrap();
        assert!(invite_addrs(any).iter().all(|a| !a.starts_with("0.0.0.0")));
    }
}
