//! LAN discovery: a serving node announces its QUIC port on its links and
//! follows its trusted peers' announcements (protocol.md, section 10).
//!
//! A beacon names its sender only to those who know the sender's id (see
//! [`crate::proto::discovery`]), and anyone who knows an id can forge one:
//! so a beacon is a hint, and a peer's stored address changes only after a
//! QUIC handshake at the announced address proves the peer's key there.
//! Nothing else is announced: no repository id, no name, no file.
//!
//! A node announces when it starts (asking the others to answer at once, so
//! that a node that moved or came back is known both ways within a round
//! trip), twice more shortly after (a lost datagram), then every
//! [`INTERVAL`] (a node whose address changed without a restart).
//!
//! [`OFF_ENV`] turns discovery off for the whole process, whatever the
//! configuration says: the test harness sets it (`.cargo/config.toml`) so
//! that no test can multicast on the host's own network by mistake.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::time::{sleep_until, Instant};

use super::lan::{Families, Lan};
use crate::model::{NodeId, STATE_DIR};
use crate::net::NetError;
use crate::node::{unspecified, NodeSetup, PeerRecord};
use crate::proto::discovery::Beacon;
use crate::store::{Store, DB_FILE};

/// Set (to anything) in the environment: no discovery in this process.
pub const OFF_ENV: &str = "HARMONY_NO_DISCOVERY";
/// How often a serving node announces itself when nothing asks it to.
pub const INTERVAL: Duration = Duration::from_secs(30);
/// When a starting node announces, after the first beacon (a query).
const START_BURST: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(3)];
/// An answer to a query waits up to this long (at random), so that the
/// nodes of a LAN do not all answer in the same instant.
const ANSWER_SPREAD_MS: u64 = 250;
/// At most one answer to queries per this long, however many queries come.
const ANSWER_GAP: Duration = Duration::from_secs(1);
/// How long the identity check at an announced address may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// An address that failed the identity check is not checked again sooner.
const RECHECK_AFTER: Duration = Duration::from_secs(60);
/// Most failed (peer, address) pairs remembered; older ones are forgotten.
const MAX_FAILED: usize = 256;
/// The trusted peers are read again from the database at most this often.
const PEERS_MAX_AGE: Duration = Duration::from_secs(2);

/// Why discovery cannot look for a peer.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The environment forbids discovery (tests on the host's network).
    #[error("LAN discovery is turned off in this process ({OFF_ENV} is set)")]
    Off,
    /// No socket for the beacons (the port is taken, no interface).
    #[error("cannot listen for announcements on the local network: {0}")]
    Socket(#[from] std::io::Error),
}

/// Whether [`OFF_ENV`] turns discovery off.
pub fn forced_off() -> bool {
    std::env::var_os(OFF_ENV).is_some()
}

/// Runs discovery for the serving location at `root`, whose QUIC endpoint
/// (node `node_id`) is bound to `listen`, until `stop` completes: announces,
/// listens, saves the new addresses of trusted peers, and sends their ids on
/// `moved` (so that the live node dials them again).
///
/// Does nothing when [`OFF_ENV`] is set or `listen` is a loopback address
/// (nothing on the LAN could reach it).
pub async fn run(
    root: PathBuf,
    node_id: NodeId,
    listen: SocketAddr,
    moved: UnboundedSender<NodeId>,
    stop: impl Future<Output = ()>,
) {
    if forced_off() {
        tracing::info!("LAN discovery off: {OFF_ENV} is set");
        return;
    }
    if listen.ip().is_loopback() {
        tracing::info!(
            "LAN discovery off: listening on loopback ({listen}), unreachable from the LAN"
        );
        return;
    }
    let mut lan = match Lan::open() {
        Ok(lan) => lan,
        Err(e) => {
            tracing::warn!("LAN discovery off: cannot listen for announcements: {e}");
            return;
        }
    };
    tracing::info!("LAN discovery on: announcing port {}", listen.port());
    let mut follow = Follow::new(root, node_id, moved);
    let families = Families::reaching(listen);
    let mut burst = START_BURST.iter();
    let started = Instant::now();
    let mut next = started;
    let mut query = true;
    let mut answered: Option<Instant> = None;
    let (checked_tx, mut checked) = mpsc::unbounded_channel();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            () = sleep_until(next) => {
                let beacon = Beacon::new(node_id, listen.port(), query, rand::random());
                let sent = lan.send(&beacon, families, listen.ip());
                tracing::trace!("discovery: announced port {} ({sent} bytes)", listen.port());
                query = false;
                next = match burst.next() {
                    Some(at) => started + *at,
                    None => Instant::now() + jittered(INTERVAL),
                };
            }
            got = lan.recv() => match got {
                Ok((beacon, from)) => {
                    let may_answer = answered.is_none_or(|at| at.elapsed() >= ANSWER_GAP);
                    if beacon.query && may_answer && !beacon.is_from(node_id) {
                        let now = Instant::now();
                        answered = Some(now);
                        let soon = now
                            + Duration::from_millis(rand::random_range(0..ANSWER_SPREAD_MS));
                        next = next.min(soon);
                    }
                    if beacon.port != 0 {
                        follow.heard(&beacon, from, &checked_tx).await;
                    }
                }
                Err(e) => {
                    tracing::warn!("LAN discovery stopped: cannot receive announcements: {e}");
                    break;
                }
            },
            Some(result) = checked.recv() => follow.checked(result).await,
        }
    }
}

/// `interval` give or take a tenth, so that nodes started together drift
/// apart instead of announcing in step.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(rand::random_range(0.9..1.1))
}

/// The outcome of an identity check: the peer, the address, whether it is
/// the peer there.
type Checked = (PeerRecord, SocketAddr, bool);

/// What the listening half knows: the trusted peers, the latest address
/// heard from each (per family), the checks running and those that failed.
struct Follow {
    root: PathBuf,
    own: NodeId,
    moved: UnboundedSender<NodeId>,
    peers: Vec<PeerRecord>,
    peers_read: Option<Instant>,
    latest: HashMap<NodeId, [Option<SocketAddr>; 2]>,
    checking: HashMap<NodeId, SocketAddr>,
    failed: HashMap<(NodeId, SocketAddr), Instant>,
}

impl Follow {
    fn new(root: PathBuf, own: NodeId, moved: UnboundedSender<NodeId>) -> Follow {
        Follow {
            root,
            own,
            moved,
            peers: Vec::new(),
            peers_read: None,
            latest: HashMap::new(),
            checking: HashMap::new(),
            failed: HashMap::new(),
        }
    }

    /// A beacon came from `from`: if a trusted peer sent it and its stored
    /// address is none of those it announces now, check the new one.
    async fn heard(
        &mut self,
        beacon: &Beacon,
        from: SocketAddr,
        checked: &UnboundedSender<Checked>,
    ) {
        self.refresh_peers().await;
        let Some(peer) = self
            .peers
            .iter()
            .find(|p| p.node_id != self.own && beacon.is_from(p.node_id))
            .cloned()
        else {
            return;
        };
        let addr = announced(from, beacon.port);
        let latest = self.latest.entry(peer.node_id).or_default();
        latest[usize::from(addr.is_ipv6())] = Some(addr);
        if latest.iter().flatten().any(|a| stored_is(&peer.addr, *a)) {
            return;
        }
        if self.checking.contains_key(&peer.node_id) {
            return;
        }
        if let Some(at) = self.failed.get(&(peer.node_id, addr)) {
            if at.elapsed() < RECHECK_AFTER {
                return;
            }
        }
        tracing::debug!(
            "discovery: peer {} announces {addr}; checking its identity there",
            peer.name
        );
        self.checking.insert(peer.node_id, addr);
        let root = self.root.clone();
        let checked = checked.clone();
        tokio::spawn(async move {
            let proven = is_at(&root, &peer, addr).await;
            let _ = checked.send((peer, addr, proven));
        });
    }

    /// An identity check ended: save the address it proved.
    async fn checked(&mut self, (peer, addr, proven): Checked) {
        self.checking.remove(&peer.node_id);
        if !proven {
            tracing::info!(
                "discovery: an announcement for peer {} from {addr} failed the identity check; ignored",
                peer.name
            );
            if self.failed.len() >= MAX_FAILED {
                self.failed.retain(|_, at| at.elapsed() < RECHECK_AFTER);
            }
            if self.failed.len() < MAX_FAILED {
                self.failed.insert((peer.node_id, addr), Instant::now());
            }
            return;
        }
        let root = self.root.clone();
        let id = peer.node_id;
        let text = addr.to_string();
        let saved = tokio::task::spawn_blocking(move || save_addr(&root, id, &text)).await;
        match saved {
            Ok(Ok(true)) => {
                tracing::info!("peer {} is now at {addr} (found on the LAN)", peer.name);
                self.peers_read = None;
                let _ = self.moved.send(id);
            }
            Ok(Ok(false)) => tracing::debug!("discovery: peer {} was removed meanwhile", peer.name),
            Ok(Err(e)) => tracing::warn!(
                "cannot save the new address {addr} of peer {}: {e}",
                peer.name
            ),
            Err(e) => tracing::warn!(
                "cannot save the new address {addr} of peer {}: {e}",
                peer.name
            ),
        }
    }

    /// Reads the trusted peers again if the copy here is old (a `peer add`
    /// or `remove` while serving applies within [`PEERS_MAX_AGE`]).
    async fn refresh_peers(&mut self) {
        if self
            .peers_read
            .is_some_and(|at| at.elapsed() < PEERS_MAX_AGE)
        {
            return;
        }
        let root = self.root.clone();
        match tokio::task::spawn_blocking(move || read_peers(&root)).await {
            Ok(Ok(peers)) => {
                self.latest
                    .retain(|id, _| peers.iter().any(|p| p.node_id == *id));
                self.peers = peers;
                self.peers_read = Some(Instant::now());
            }
            Ok(Err(e)) => tracing::warn!("discovery: cannot read the trusted peers: {e}"),
            Err(e) => tracing::warn!("discovery: cannot read the trusted peers: {e}"),
        }
    }
}

/// The address to dial for a beacon from `from` announcing `port` (an IPv6
/// link-local sender keeps its scope, the link it was heard on).
fn announced(from: SocketAddr, port: u16) -> SocketAddr {
    let mut addr = from;
    addr.set_port(port);
    if let SocketAddr::V6(v6) = &mut addr {
        v6.set_flowinfo(0);
    }
    addr
}

/// Whether the stored `host:port` of a peer is `addr` (a host name that
/// does not parse is taken as another address: the check decides).
fn stored_is(stored: &str, addr: SocketAddr) -> bool {
    stored.parse::<SocketAddr>().is_ok_and(|s| s == addr)
}

fn read_peers(root: &Path) -> crate::store::Result<Vec<PeerRecord>> {
    Store::open(&root.join(STATE_DIR).join(DB_FILE))?.peers()
}

fn save_addr(root: &Path, node: NodeId, addr: &str) -> crate::store::Result<bool> {
    let mut store = Store::open(&root.join(STATE_DIR).join(DB_FILE))?;
    let writer = store.write()?;
    let changed = writer.set_peer_addr(node, addr)?;
    writer.commit()?;
    Ok(changed)
}

/// Whether `peer` answers at `addr` with its own key: a connection whose TLS
/// handshake checks the peer's certificate against its id. A peer that does
/// not trust this location (yet) proves its key before it refuses ours (TLS
/// 1.3: the server's proof comes first), so a refusal counts as proof too,
/// and so does a `Hello` from another repository (a fresh node joining).
pub async fn is_at(root: &Path, peer: &PeerRecord, addr: SocketAddr) -> bool {
    let cannot = |e: &dyn std::fmt::Display| {
        tracing::warn!("discovery: cannot check peer {} at {addr}: {e}", peer.name);
        false
    };
    let mut setup = match NodeSetup::open(root, unspecified(addr)) {
        Ok(setup) => setup,
        Err(e) => return cannot(&e),
    };
    setup.config.handshake_timeout = CHECK_TIMEOUT;
    let node = match setup.bind_client() {
        Ok(node) => node,
        Err(e) => return cannot(&e),
    };
    let proven = match node.connect(addr, peer.node_id, &peer.name).await {
        Ok(conn) => {
            conn.close();
            true
        }
        // The TLS handshake, which proves the key, came before these.
        Err(NetError::NotTrusted { .. } | NetError::Incompatible(_)) => true,
        Err(e) => {
            tracing::debug!("discovery: {addr} is not peer {}: {e}", peer.name);
            false
        }
    };
    // The verdict need not wait for the endpoint to wind down.
    tokio::spawn(async move { node.shutdown().await });
    proven
}

/// Listens for up to `wait` for an announcement of `wanted` (asking every
/// node on the LAN to announce itself, once a second), and returns the
/// address where the node proved its key; `None` if none was heard. For
/// `peer add` without an address: the location at `root` need not serve.
pub async fn find(
    root: &Path,
    wanted: &PeerRecord,
    wait: Duration,
) -> Result<Option<SocketAddr>, DiscoveryError> {
    if forced_off() {
        return Err(DiscoveryError::Off);
    }
    let mut lan = Lan::open()?;
    let both = Families { v4: true, v6: true };
    let unspecified_v6: IpAddr = std::net::Ipv6Addr::UNSPECIFIED.into();
    let deadline = Instant::now() + wait;
    let mut ask = Instant::now();
    let mut tried = Vec::new();
    loop {
        tokio::select! {
            () = sleep_until(deadline) => return Ok(None),
            () = sleep_until(ask) => {
                // A query announces nothing: port 0, a tag of nobody's.
                let query = Beacon::new(NodeId(rand::random()), 0, true, rand::random());
                lan.send(&query, both, unspecified_v6);
                ask += Duration::from_secs(1);
            }
            got = lan.recv() => {
                let (beacon, from) = got?;
                if beacon.port == 0 || !beacon.is_from(wanted.node_id) {
                    continue;
                }
                let addr = announced(from, beacon.port);
                if tried.contains(&addr) || tried.len() >= MAX_FAILED {
                    continue;
                }
                tried.push(addr);
                if tokio::time::timeout_at(deadline, is_at(root, wanted, addr)).await == Ok(true) {
                    return Ok(Some(addr));
                }
            }
        }
    }
}
