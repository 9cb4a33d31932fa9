//! The join rule: what two nodes whose repositories differ do about it.
//!
//! A location that is fresh (it recorded nothing and never synced) joins
//! the repository of the first peer it syncs with; two locations of
//! different repositories that are both past that point refuse each other.
//! When both are fresh, the client joins the server's repository. Both the
//! `Hello` check and each half of a sync session ask this module, so the
//! two sides always agree on who joins whom.
//!
//! The `Hello` check only decides whether two nodes may talk at all. Who
//! joins whom is decided in each sync session, on the memberships both
//! sides state in that session's [`SyncHello`](super::SyncHello): one
//! connection carries many sessions, and a node that was fresh when it
//! connected may have joined a repository or recorded its first file since.

use serde::{Deserialize, Serialize};

use crate::model::RepoId;

/// The repository a node belongs to right now, and whether it may still
/// join another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The repository the node is part of now.
    pub repo_id: RepoId,
    /// The node is fresh and may still join another repository.
    pub fresh: bool,
}

/// Which end of a session a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// It opened the connection (`harmony sync`).
    Client,
    /// It accepted the connection (`harmony serve`).
    Server,
}

/// What a node does about the peer's repository before a sync session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Join {
    /// Same repository, or the peer joins ours: go ahead.
    Stay,
    /// This node joins the peer's repository first (it must still be
    /// fresh when it does; the store checks that atomically).
    JoinPeer,
    /// Different repositories, neither side fresh: no session.
    Refuse,
}

/// Whether the two may talk at all: the same repository, or one of them
/// fresh. The `Hello` exchange refuses the connection otherwise.
pub fn compatible(ours: Membership, theirs: Membership) -> bool {
    ours.repo_id == theirs.repo_id || ours.fresh || theirs.fresh
}

/// The join rule for the node on `side`, seen with its own membership
/// `ours` and the peer's `theirs`.
pub fn join(side: Side, ours: Membership, theirs: Membership) -> Join {
    if ours.repo_id == theirs.repo_id {
        return Join::Stay;
    }
    if !compatible(ours, theirs) {
        return Join::Refuse;
    }
    let we_join = match side {
        Side::Client => ours.fresh,
        // Both fresh: the client joins ours.
        Side::Server => ours.fresh && !theirs.fresh,
    };
    if we_join {
        Join::JoinPeer
    } else {
        Join::Stay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(repo: u8, fresh: bool) -> Membership {
        Membership {
            repo_id: RepoId([repo; 16]),
            fresh,
        }
    }

    #[test]
    fn the_same_repository_needs_no_join() {
        for (a, b, side) in [(false, false, Side::Client), (true, true, Side::Server)] {
            assert_eq!(join(side, member(1, a), member(1, b)), Join::Stay);
        }
    }

    #[test]
    fn the_fresh_side_joins_and_the_client_when_both_are() {
        let cases = [
            // (client fresh, server fresh) -> (client does, server does)
            ((true, false), (Join::JoinPeer, Join::Stay)),
            ((false, true), (Join::Stay, Join::JoinPeer)),
            ((true, true), (Join::JoinPeer, Join::Stay)),
            ((false, false), (Join::Refuse, Join::Refuse)),
        ];
        for ((client_fresh, server_fresh), expected) in cases {
            let (client, server) = (member(1, client_fresh), member(2, server_fresh));
            let got = (
                join(Side::Client, client, server),
                join(Side::Server, server, client),
            );
            assert_eq!(
                got, expected,
                "client fresh {client_fresh}, server fresh {server_fresh}"
            );
        }
    }

    #[test]
    fn both_sides_agree_and_refuse_exactly_what_hello_refuses() {
        for repos in [(1, 1), (1, 2)] {
            for client_fresh in [false, true] {
                for server_fresh in [false, true] {
                    let client = member(repos.0, client_fresh);
                    let server = member(repos.1, server_fresh);
                    let c = join(Side::Client, client, server);
                    let s = join(Side::Server, server, client);
                    let joiners = [c, s].iter().filter(|j| **j == Join::JoinPeer).count();
                    if !compatible(client, server) {
                        assert_eq!((c, s), (Join::Refuse, Join::Refuse));
                    } else if repos.0 == repos.1 {
                        assert_eq!(joiners, 0);
                    } else {
                        assert_eq!(joiners, 1, "exactly one side joins: {c:?} {s:?}");
                        assert!(c != Join::Refuse && s != Join::Refuse);
                    }
                    assert_eq!(compatible(client, server), compatible(server, client));
                }
            }
        }
    }
}
