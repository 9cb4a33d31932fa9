//! When the live node dials, syncs with and notifies each peer: a pure
//! state machine, fed events and the time, asked for actions. It does no
//! I/O, so its rules (catch up on connect, one exchange per peer at a time,
//! coalesced notices, backoff with jitter, a periodic safety sync) are
//! tested in memory below.
//!
//! Each node keeps one connection of its own to each reachable peer and
//! uses it for what it starts: its syncs and its notices. The peer does the
//! same the other way, so neither waits for the other to dial.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::model::NodeId;

/// The first retry after a failed dial or a lost connection.
pub const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// Retries never wait longer than this.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// What the live node should do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Connect to the peer (at its stored address).
    Dial(NodeId),
    /// Sync with the peer over the connection, until settled.
    Sync(NodeId),
    /// Sync with the peer, which said its state is the one of `digest`,
    /// unless this node's state has become that one by the time the sync
    /// starts (another session brought the same news). One runs at a time,
    /// so that what one peer brings is in this node's digest before the
    /// next notice is weighed: a change that reaches a node from many peers
    /// at once costs it one session, not one per peer.
    SyncNoticed(NodeId, [u8; 32]),
    /// Tell the peer that this node's state changed.
    Notify(NodeId),
}

impl Action {
    /// The peer the action is with.
    pub fn peer(&self) -> NodeId {
        match *self {
            Action::Dial(id)
            | Action::Sync(id)
            | Action::SyncNoticed(id, _)
            | Action::Notify(id) => id,
        }
    }
}

/// How one exchange with a peer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It did what it was for.
    Done,
    /// Failed: the connection is taken for lost.
    Failed,
    /// The dial failed because the host answered that nothing listens on
    /// the port: the peer runs no `serve`. Redialing it every few seconds
    /// would cost a handshake and ICMP errors each time and find nothing;
    /// its `serve`, once started, dials this node, and that connection
    /// ([`Schedule::reachable`]) brings the dial forward. Until then it is
    /// retried only after [`BACKOFF_MAX`].
    NotServing,
    /// Nothing to exchange: both locations are empty. The connection is
    /// closed (a later one's `Hello`s say what changed) and made again when
    /// either side has news, or after the periodic interval.
    BothEmpty,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    Down { retry_at: Instant, why: Down },
    Dialing,
    Up,
}

/// Why a link is down, which says what may bring its dial forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Down {
    /// Never dialed yet, or the dial failed: the peer connecting here
    /// proves it is back.
    Unreached,
    /// An exchange failed over a connection that was up. The peer was
    /// reachable all along, so its connecting here says nothing new: two
    /// nodes whose exchanges fail would otherwise wake each other in a loop.
    Failed,
    /// Both locations were empty: news on either side dials at once.
    Empty,
}

#[derive(Clone, Debug)]
struct Peer {
    link: Link,
    /// Failed dials or exchanges in a row: the backoff's exponent.
    failures: u32,
    /// A dial, sync or notice with this peer is running.
    busy: bool,
    /// A sync is owed: the link just came up, or a sync failed.
    sync_owed: bool,
    /// The digest of the peer's latest notice not yet acted on.
    noticed: Option<[u8; 32]>,
    /// The peer has not been told of a change of this node's state.
    notice_owed: bool,
    /// When the periodic sync is due.
    periodic_at: Instant,
}

impl Peer {
    /// Brings the dial of a link down for `why` forward to `now`; whether
    /// it did.
    fn dial_now_if(&mut self, why: Down, now: Instant) -> bool {
        match &mut self.link {
            Link::Down { retry_at, why: was } if *was == why => {
                *retry_at = (*retry_at).min(now);
                true
            }
            _ => false,
        }
    }
}

/// The schedule of every trusted peer.
#[derive(Debug)]
pub struct Schedule {
    peers: BTreeMap<NodeId, Peer>,
    /// A [`Action::SyncNoticed`] runs.
    noticed_running: bool,
    sync_interval: Duration,
    rng: StdRng,
}

impl Schedule {
    /// A schedule for `peers`, each dialed at once. `seed` feeds the jitter
    /// (any value; tests fix it).
    pub fn new(
        peers: impl IntoIterator<Item = NodeId>,
        sync_interval: Duration,
        seed: u64,
        now: Instant,
    ) -> Self {
        let mut schedule = Schedule {
            peers: BTreeMap::new(),
            noticed_running: false,
            sync_interval,
            rng: StdRng::seed_from_u64(seed),
        };
        schedule.set_peers(peers, now);
        schedule
    }

    /// The trusted peers changed: new ones are dialed at once, removed ones
    /// forgotten (the caller closes their connections).
    pub fn set_peers(&mut self, peers: impl IntoIterator<Item = NodeId>, now: Instant) {
        let wanted: BTreeMap<NodeId, ()> = peers.into_iter().map(|p| (p, ())).collect();
        self.peers.retain(|id, _| wanted.contains_key(id));
        for id in wanted.into_keys() {
            self.peers.entry(id).or_insert(Peer {
                link: Link::Down {
                    retry_at: now,
                    why: Down::Unreached,
                },
                failures: 0,
                busy: false,
                sync_owed: false,
                noticed: None,
                notice_owed: false,
                periodic_at: now,
            });
        }
    }

    /// The periodic sync's interval changed (a reloaded `config.toml`).
    pub fn set_sync_interval(&mut self, interval: Duration, now: Instant) {
        self.sync_interval = interval;
        for peer in self.peers.values_mut() {
            peer.periodic_at = peer.periodic_at.min(now + interval);
        }
    }

    /// This node's state changed: every peer but `except` (the one the
    /// change came from, which has it already) is owed a notice, and every
    /// peer this node had nothing to exchange with is dialed now.
    pub fn local_changed(&mut self, except: Option<NodeId>, now: Instant) {
        for (id, peer) in &mut self.peers {
            if Some(*id) != except {
                peer.notice_owed = true;
            }
            peer.dial_now_if(Down::Empty, now);
        }
    }

    /// `peer` said its state, of `digest`, differs from ours: a sync is
    /// owed unless another session brings us that state first (and a link
    /// closed because both were empty is made again now).
    pub fn noticed(&mut self, peer: NodeId, digest: [u8; 32], now: Instant) {
        if let Some(peer) = self.peers.get_mut(&peer) {
            peer.noticed = Some(digest);
            peer.dial_now_if(Down::Empty, now);
        }
    }

    /// `peer` connected here: if its dial failed, it is back, so dial it
    /// now, not after the backoff.
    pub fn reachable(&mut self, peer: NodeId, now: Instant) {
        if let Some(peer) = self.peers.get_mut(&peer) {
            if peer.dial_now_if(Down::Unreached, now) {
                peer.failures = 0;
            }
        }
    }

    /// A dial ended: up, the two sync at once (either may have missed the
    /// other's changes while apart); failed, it is retried after a backoff.
    pub fn dialed(&mut self, id: NodeId, outcome: Outcome, now: Instant) {
        let delay = self.backoff(id);
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        peer.busy = false;
        match outcome {
            Outcome::Done => {
                peer.link = Link::Up;
                peer.sync_owed = true;
            }
            Outcome::Failed | Outcome::BothEmpty => {
                peer.failures = peer.failures.saturating_add(1);
                peer.link = Link::Down {
                    retry_at: now + delay,
                    why: Down::Unreached,
                };
            }
            Outcome::NotServing => {
                peer.failures = peer.failures.saturating_add(1);
                peer.link = Link::Down {
                    retry_at: now + BACKOFF_MAX,
                    why: Down::Unreached,
                };
            }
        }
    }

    /// A sync or a notice ended. A failure takes the connection for lost:
    /// the peer is dialed again after a backoff, and synced with then.
    pub fn exchanged(&mut self, id: NodeId, action: Action, outcome: Outcome, now: Instant) {
        if let Action::SyncNoticed(..) = action {
            self.noticed_running = false;
        }
        let delay = self.backoff(id);
        let interval = self.jittered(self.sync_interval);
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        peer.busy = false;
        match (outcome, action) {
            (Outcome::Done, Action::Sync(_) | Action::SyncNoticed(..)) => {
                peer.failures = 0;
                peer.periodic_at = now + interval;
            }
            (Outcome::Done, _) => peer.failures = 0,
            // (An exchange runs over a connection: its port was open.)
            (Outcome::Failed | Outcome::NotServing, _) => {
                peer.failures = peer.failures.saturating_add(1);
                peer.link = Link::Down {
                    retry_at: now + delay,
                    why: Down::Failed,
                };
                // What was owed is carried by the sync after the redial.
                peer.notice_owed = false;
            }
            (Outcome::BothEmpty, _) => {
                peer.failures = 0;
                peer.link = Link::Down {
                    retry_at: now + interval,
                    why: Down::Empty,
                };
                peer.notice_owed = false;
            }
        }
    }

    /// The actions due at `now`, each peer marked busy until its action
    /// ends. A sync is preferred to a notice: it carries this node's state
    /// anyway, so it settles what a notice was owed for.
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let noticed_running = &mut self.noticed_running;
        for (id, peer) in &mut self.peers {
            if peer.busy {
                continue;
            }
            match peer.link {
                Link::Down { retry_at, .. } if retry_at <= now => {
                    peer.link = Link::Dialing;
                    peer.busy = true;
                    actions.push(Action::Dial(*id));
                }
                Link::Up if peer.sync_owed || peer.periodic_at <= now => {
                    peer.sync_owed = false;
                    peer.noticed = None;
                    peer.notice_owed = false;
                    peer.busy = true;
                    actions.push(Action::Sync(*id));
                }
                Link::Up if peer.noticed.is_some() && !*noticed_running => {
                    let digest = peer.noticed.take().expect("just checked");
                    peer.notice_owed = false;
                    peer.busy = true;
                    *noticed_running = true;
                    actions.push(Action::SyncNoticed(*id, digest));
                }
                Link::Up if peer.notice_owed => {
                    peer.notice_owed = false;
                    peer.busy = true;
                    actions.push(Action::Notify(*id));
                }
                _ => {}
            }
        }
        actions
    }

    /// When [`poll`](Self::poll) may next have something to do without a
    /// new event: the earliest retry or periodic sync of an idle peer.
    pub fn next_due(&self) -> Option<Instant> {
        self.peers
            .values()
            .filter(|peer| !peer.busy)
            .filter_map(|peer| match peer.link {
                Link::Down { retry_at, .. } => Some(retry_at),
                Link::Up => Some(peer.periodic_at),
                Link::Dialing => None,
            })
            .min()
    }

    /// Whether a connection to `peer` is up.
    pub fn is_up(&self, peer: NodeId) -> bool {
        self.peers.get(&peer).is_some_and(|p| p.link == Link::Up)
    }

    /// The wait before the next dial of `id`, after one more failure:
    /// doubling from [`BACKOFF_FIRST`] up to [`BACKOFF_MAX`], then drawn
    /// from its upper half, so that nodes that lost each other together do
    /// not all come back in the same instant.
    fn backoff(&mut self, id: NodeId) -> Duration {
        let failures = self.peers.get(&id).map_or(0, |p| p.failures);
        let full = BACKOFF_FIRST
            .saturating_mul(1u32 << failures.min(16))
            .min(BACKOFF_MAX);
        full / 2 + self.jittered(full / 2)
    }

    /// `d` cut to a random 75–100 %, spreading periodic syncs.
    fn jittered(&mut self, d: Duration) -> Duration {
        d.mul_f64(self.rng.random_range(0.75..=1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: NodeId = NodeId([1; 32]);
    const B: NodeId = NodeId([2; 32]);
    const MINUTE: Duration = Duration::from_secs(60);
    const DIGEST: [u8; 32] = [9; 32];

    fn schedule(now: Instant) -> Schedule {
        Schedule::new([A, B], 5 * MINUTE, 7, now)
    }

    /// Dials both and brings both up; returns the syncs owed on connect.
    fn both_up(s: &mut Schedule, now: Instant) -> Vec<Action> {
        assert_eq!(s.poll(now), [Action::Dial(A), Action::Dial(B)]);
        s.dialed(A, Outcome::Done, now);
        s.dialed(B, Outcome::Done, now);
        s.poll(now)
    }

    /// A and B up, each synced once on connect.
    fn both_synced(now: Instant) -> Schedule {
        let mut s = schedule(now);
        both_up(&mut s, now);
        s.exchanged(A, Action::Sync(A), Outcome::Done, now);
        s.exchanged(B, Action::Sync(B), Outcome::Done, now);
        s
    }

    #[test]
    fn dials_every_peer_then_syncs_on_connect() {
        let now = Instant::now();
        let mut s = schedule(now);
        assert_eq!(both_up(&mut s, now), [Action::Sync(A), Action::Sync(B)]);
        // Busy while syncing: nothing more.
        assert!(s.poll(now).is_empty());
        assert!(s.is_up(A));
    }

    #[test]
    fn one_exchange_per_peer_and_notices_coalesce() {
        let now = Instant::now();
        let mut s = both_synced(now);
        // A burst of changes: one notice each.
        for _ in 0..100 {
            s.local_changed(None, now);
        }
        assert_eq!(s.poll(now), [Action::Notify(A), Action::Notify(B)]);
        // Changes while a notice runs: one more notice after it, not 50.
        for _ in 0..50 {
            s.local_changed(None, now);
        }
        assert!(s.poll(now).is_empty());
        s.exchanged(A, Action::Notify(A), Outcome::Done, now);
        assert_eq!(s.poll(now), [Action::Notify(A)]);
        s.exchanged(A, Action::Notify(A), Outcome::Done, now);
        assert!(s.poll(now).is_empty());
    }

    #[test]
    fn the_peer_a_change_came_from_is_not_told_of_it() {
        let now = Instant::now();
        let mut s = both_synced(now);
        s.local_changed(Some(A), now);
        assert_eq!(s.poll(now), [Action::Notify(B)]);
    }

    #[test]
    fn a_notice_from_a_peer_owes_a_sync_which_also_settles_a_notice() {
        let now = Instant::now();
        let mut s = both_synced(now);
        s.noticed(A, DIGEST, now);
        s.local_changed(None, now);
        let noticed = Action::SyncNoticed(A, DIGEST);
        assert_eq!(s.poll(now), [noticed, Action::Notify(B)]);
        s.exchanged(A, noticed, Outcome::Done, now);
        assert!(s.poll(now).is_empty(), "the sync carried our change to A");
    }

    #[test]
    fn failures_back_off_exponentially_with_jitter_and_reachable_cuts_it_short() {
        let start = Instant::now();
        let mut s = Schedule::new([A], 5 * MINUTE, 3, start);
        let mut now = start;
        let mut waits = Vec::new();
        for _ in 0..12 {
            assert_eq!(s.poll(now), [Action::Dial(A)]);
            s.dialed(A, Outcome::Failed, now);
            let due = s.next_due().unwrap();
            waits.push(due - now);
            assert!(s.poll(due - Duration::from_millis(1)).is_empty());
            now = due;
        }
        // Each wait is within [half, full] of the doubled backoff.
        for (i, wait) in waits.iter().enumerate() {
            let full = (BACKOFF_FIRST * (1 << i.min(16))).min(BACKOFF_MAX);
            assert!(
                *wait >= full / 2 && *wait <= full,
                "wait {i}: {wait:?} for {full:?}"
            );
        }
        assert!(waits[11] <= BACKOFF_MAX);
        // Two jittered waits of the same size differ (the jitter is real).
        assert_ne!(waits[10], waits[11]);
        // The peer connected to us: dial it now.
        assert_eq!(s.poll(now), [Action::Dial(A)]);
        s.dialed(A, Outcome::Failed, now);
        assert!(s.poll(now).is_empty());
        s.reachable(A, now);
        assert_eq!(s.poll(now), [Action::Dial(A)]);
    }

    #[test]
    fn a_peer_that_serves_not_is_left_until_it_connects() {
        let now = Instant::now();
        let mut s = schedule(now);
        assert_eq!(s.poll(now), [Action::Dial(A), Action::Dial(B)]);
        s.dialed(A, Outcome::NotServing, now);
        s.dialed(B, Outcome::Failed, now);
        // B, silent, is retried within seconds; A, whose port is closed,
        // not for minutes.
        let soon = now + BACKOFF_FIRST * 2;
        assert_eq!(s.poll(soon), [Action::Dial(B)]);
        assert_eq!(s.poll(now + BACKOFF_MAX - Duration::from_secs(1)), []);
        // A's serve starts and connects here: dialed back at once.
        s.reachable(A, soon);
        assert_eq!(s.poll(soon), [Action::Dial(A)]);
        s.dialed(A, Outcome::NotServing, soon);
        assert_eq!(s.poll(soon + BACKOFF_MAX), [Action::Dial(A)]);
    }

    #[test]
    fn a_lost_connection_is_redialed_and_synced_then() {
        let now = Instant::now();
        let mut s = Schedule::new([A], 5 * MINUTE, 1, now);
        assert_eq!(s.poll(now), [Action::Dial(A)]);
        s.dialed(A, Outcome::Done, now);
        assert_eq!(s.poll(now), [Action::Sync(A)]);
        s.exchanged(A, Action::Sync(A), Outcome::Done, now);
        s.local_changed(None, now);
        assert_eq!(s.poll(now), [Action::Notify(A)]);
        s.exchanged(A, Action::Notify(A), Outcome::Failed, now);
        assert!(!s.is_up(A));
        let due = s.next_due().unwrap();
        assert!(due > now && due <= now + BACKOFF_FIRST);
        assert_eq!(s.poll(due), [Action::Dial(A)]);
        s.dialed(A, Outcome::Done, due);
        assert_eq!(s.poll(due), [Action::Sync(A)]);
    }

    #[test]
    fn the_periodic_sync_comes_back_within_the_interval() {
        let start = Instant::now();
        let mut s = Schedule::new([A], 5 * MINUTE, 9, start);
        s.poll(start);
        s.dialed(A, Outcome::Done, start);
        assert_eq!(s.poll(start), [Action::Sync(A)]);
        s.exchanged(A, Action::Sync(A), Outcome::Done, start);
        let due = s.next_due().unwrap();
        assert!(due >= start + 5 * MINUTE * 3 / 4 && due <= start + 5 * MINUTE);
        assert!(s.poll(due - Duration::from_secs(1)).is_empty());
        assert_eq!(s.poll(due), [Action::Sync(A)]);
        // A shorter interval from a reloaded config takes effect at once.
        s.exchanged(A, Action::Sync(A), Outcome::Done, due);
        s.set_sync_interval(Duration::from_secs(10), due);
        assert!(s.next_due().unwrap() <= due + Duration::from_secs(10));
    }

    #[test]
    fn peers_added_are_dialed_and_removed_ones_forgotten() {
        let now = Instant::now();
        let mut s = Schedule::new([A], 5 * MINUTE, 1, now);
        assert_eq!(s.poll(now), [Action::Dial(A)]);
        s.set_peers([B], now);
        assert_eq!(s.poll(now), [Action::Dial(B)]);
        // A's dial ending after its removal changes nothing.
        s.dialed(A, Outcome::Done, now);
        assert!(!s.is_up(A));
        s.noticed(A, DIGEST, now);
        assert!(s.poll(now).is_empty());
    }

    #[test]
    fn a_failed_exchange_is_not_cut_short_by_the_peer_connecting() {
        let now = Instant::now();
        let mut s = Schedule::new([A], 5 * MINUTE, 1, now);
        s.poll(now);
        s.dialed(A, Outcome::Done, now);
        assert_eq!(s.poll(now), [Action::Sync(A)]);
        s.exchanged(A, Action::Sync(A), Outcome::Failed, now);
        // The peer dialed us back meanwhile: it was reachable all along.
        s.reachable(A, now);
        assert!(s.poll(now).is_empty());
        assert!(s.next_due().unwrap() > now);
    }

    #[test]
    fn two_empty_locations_wait_for_news_then_dial_at_once() {
        let now = Instant::now();
        let mut s = Schedule::new([A], 5 * MINUTE, 1, now);
        s.poll(now);
        s.dialed(A, Outcome::Done, now);
        assert_eq!(s.poll(now), [Action::Sync(A)]);
        s.exchanged(A, Action::Sync(A), Outcome::BothEmpty, now);
        assert!(!s.is_up(A));
        // No backoff retry, and the peer connecting changes nothing...
        let later = now + 4 * BACKOFF_FIRST;
        s.reachable(A, later);
        assert!(s.poll(later).is_empty());
        assert!(s.next_due().unwrap() >= now + 5 * MINUTE * 3 / 4);
        // ...until this node has news.
        s.local_changed(None, later);
        assert_eq!(s.poll(later), [Action::Dial(A)]);
        s.dialed(A, Outcome::Done, later);
        assert_eq!(s.poll(later), [Action::Sync(A)]);
        s.exchanged(A, Action::Sync(A), Outcome::BothEmpty, later);
        // Or the peer tells of news.
        s.noticed(A, DIGEST, later);
        assert_eq!(s.poll(later), [Action::Dial(A)]);
    }

    /// Two empty nodes that each dial the other, and take each connection
    /// from the other as a sign it is reachable, for ten simulated minutes:
    /// a handful of dials, not one each time the other connects.
    #[test]
    fn two_empty_nodes_do_not_wake_each_other_in_a_loop() {
        let start = Instant::now();
        let ids = [A, B];
        let mut nodes = [
            Schedule::new([B], 5 * MINUTE, 1, start),
            Schedule::new([A], 5 * MINUTE, 2, start),
        ];
        let mut dials = 0;
        let mut now = start;
        while now < start + 10 * MINUTE {
            for me in 0..2 {
                let other = 1 - me;
                for action in nodes[me].poll(now) {
                    match action {
                        Action::Dial(_) => {
                            dials += 1;
                            nodes[me].dialed(ids[other], Outcome::Done, now);
                            nodes[other].reachable(ids[me], now);
                        }
                        Action::Sync(_) | Action::SyncNoticed(..) | Action::Notify(_) => {
                            nodes[me].exchanged(ids[other], action, Outcome::BothEmpty, now)
                        }
                    }
                }
            }
            now += Duration::from_millis(10);
        }
        // The first dial of each, then one each periodic interval at most.
        assert!(dials <= 8, "{dials} dials in ten minutes");
    }

    #[test]
    fn notices_from_many_peers_are_weighed_one_sync_at_a_time() {
        let now = Instant::now();
        let mut s = both_synced(now);
        // Both tell of the same news.
        s.noticed(A, DIGEST, now);
        s.noticed(B, DIGEST, now);
        assert_eq!(s.poll(now), [Action::SyncNoticed(A, DIGEST)]);
        // B waits while A's runs; a newer notice from B replaces the older.
        let newer = [10; 32];
        s.noticed(B, newer, now);
        assert!(s.poll(now).is_empty());
        s.exchanged(A, Action::SyncNoticed(A, DIGEST), Outcome::Done, now);
        assert_eq!(s.poll(now), [Action::SyncNoticed(B, newer)]);
        // A sync owed for another reason does not wait, and settles a
        // pending notice.
        s.noticed(A, DIGEST, now);
        s.exchanged(A, Action::Sync(A), Outcome::Failed, now);
        let redial = s.next_due().unwrap();
        assert_eq!(s.poll(redial), [Action::Dial(A)]);
        s.dialed(A, Outcome::Done, redial);
        assert_eq!(s.poll(redial), [Action::Sync(A)]);
    }

    #[test]
    fn a_noticed_sync_of_a_removed_peer_frees_the_turn() {
        let now = Instant::now();
        let mut s = both_synced(now);
        s.noticed(A, DIGEST, now);
        s.noticed(B, DIGEST, now);
        assert_eq!(s.poll(now), [Action::SyncNoticed(A, DIGEST)]);
        s.set_peers([B], now);
        s.exchanged(A, Action::SyncNoticed(A, DIGEST), Outcome::Done, now);
        assert_eq!(s.poll(now), [Action::SyncNoticed(B, DIGEST)]);
    }
}
