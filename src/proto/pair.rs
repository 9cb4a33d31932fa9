//! Pairing by invite (protocol.md, "Pairing"): the `Join` request and its
//! answer, the MACs both sides prove the secret with, and the two pure
//! decisions: the inviter's (what a join does to the invite it names) and
//! the joiner's (what the answer means).
//!
//! Why MACs over the secret inside the TLS connection, and not a PAKE: the
//! secret has 128 random bits, so there is nothing to protect from offline
//! guessing, and TLS already authenticates both keys (the joiner pins the
//! inviter's id from the code; the inviter sees the joiner's certificate).
//! What is left to prove is that the joiner holds the secret, and that the
//! inviter does too (so a joiner that dialed a wrong but somehow accepted
//! node learns it before trusting it). Each MAC binds the secret to both
//! node ids and to its direction, so neither can be replayed by a third
//! node, for another pair, or reflected back as the other's proof.

use serde::{Deserialize, Serialize};

use crate::model::{InviteId, InviteSecret, NodeId, StoredInvite};

/// The blake3 derive-key context of the MAC key made from a secret.
const MAC_KEY_CONTEXT: &str = "harmony 2026-12 invite mac v1";

/// A node asks to be trusted by the inviter, proving it holds an invite's
/// secret (`Request::Join`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The invite, by its public id.
    pub invite: InviteId,
    /// The UDP port the joiner's `serve` listens on (0: not known), for the
    /// inviter to reach it back at the address the connection came from.
    pub port: u16,
    /// [`join_mac`] of the secret, the inviter's id and the joiner's.
    pub mac: [u8; 32],
}

/// The inviter's answer to a [`JoinRequest`] (`Response::Join`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinAnswer {
    /// The joiner is trusted now; `mac` is [`welcome_mac`], the inviter's
    /// proof that it holds the secret too.
    Welcome {
        /// The inviter's proof.
        mac: [u8; 32],
    },
    /// Nothing was trusted, for this reason.
    Refused(JoinRefusal),
}

/// Why an inviter refuses a join.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinRefusal {
    /// No invite of the inviter has this id and secret: a wrong code, or
    /// one for another node.
    Unknown,
    /// The invite's lifetime is over.
    Expired,
    /// Another node used the invite already.
    Used,
}

impl JoinRefusal {
    /// A sentence for the joiner's user, naming the inviter.
    pub fn describe(self, inviter: &str) -> String {
        match self {
            JoinRefusal::Unknown => format!(
                "{inviter} refused the code: it is not one of its invites (a wrong code, or one \
                 from another node); ask for a new one with `harmony invite` there"
            ),
            JoinRefusal::Expired => format!(
                "{inviter} refused the code: it has expired; ask for a new one with \
                 `harmony invite` there (`--expires` makes it last longer)"
            ),
            JoinRefusal::Used => format!(
                "{inviter} refused the code: another node used it already (a code pairs one \
                 node); ask for a new one with `harmony invite` there"
            ),
        }
    }
}

/// What the inviter does with a join that passed [`admit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Consume the invite and trust the joiner.
    New,
    /// The same joiner asks again (its first answer was lost): answer
    /// welcome again; the invite is consumed already.
    Again,
}

/// The key both MACs are made with.
fn mac_key(secret: &InviteSecret) -> [u8; 32] {
    blake3::derive_key(MAC_KEY_CONTEXT, &secret.0)
}

/// keyed blake3 of `label || inviter || joiner` under the secret's key.
fn mac(secret: &InviteSecret, label: &[u8], inviter: NodeId, joiner: NodeId) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new_keyed(&mac_key(secret));
    hasher.update(label);
    hasher.update(&inviter.0);
    hasher.update(&joiner.0);
    hasher.finalize()
}

/// The joiner's proof: keyed blake3 of `"join" || inviter || joiner`.
pub fn join_mac(secret: &InviteSecret, inviter: NodeId, joiner: NodeId) -> [u8; 32] {
    *mac(secret, b"join", inviter, joiner).as_bytes()
}

/// The inviter's proof: keyed blake3 of `"welcome" || inviter || joiner`.
pub fn welcome_mac(secret: &InviteSecret, inviter: NodeId, joiner: NodeId) -> [u8; 32] {
    *mac(secret, b"welcome", inviter, joiner).as_bytes()
}

/// The inviter's decision on a join by `joiner` (the id its certificate
/// proved) naming `invite` (looked up by the request's id), at `now_ms`.
/// The MAC is checked first and in constant time (`blake3::Hash` compares
/// so), so that a node without the secret learns nothing of the invite's
/// state, not even whether it exists.
pub fn admit(
    invite: Option<&StoredInvite>,
    request: &JoinRequest,
    inviter: NodeId,
    joiner: NodeId,
    now_ms: i64,
) -> Result<Admission, JoinRefusal> {
    let Some(invite) = invite else {
        return Err(JoinRefusal::Unknown);
    };
    if mac(&invite.secret, b"join", inviter, joiner) != blake3::Hash::from_bytes(request.mac) {
        return Err(JoinRefusal::Unknown);
    }
    match invite.used_by {
        Some(by) if by == joiner => Ok(Admission::Again),
        Some(_) => Err(JoinRefusal::Used),
        None if now_ms >= invite.expires_ms => Err(JoinRefusal::Expired),
        None => Ok(Admission::New),
    }
}

/// Why a join did not make the inviter trusted here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinOutcome {
    /// The inviter trusts us and proved it holds the secret: trust it.
    Trust,
    /// The inviter refused.
    Refused(JoinRefusal),
    /// The inviter said welcome without the right proof: it does not hold
    /// the secret, so it is not the node that made the code.
    Impostor,
}

/// The joiner's reading of the inviter's answer.
pub fn outcome(
    answer: &JoinAnswer,
    secret: &InviteSecret,
    inviter: NodeId,
    joiner: NodeId,
) -> JoinOutcome {
    match answer {
        JoinAnswer::Welcome { mac: proof } => {
            if mac(secret, b"welcome", inviter, joiner) == blake3::Hash::from_bytes(*proof) {
                JoinOutcome::Trust
            } else {
                JoinOutcome::Impostor
            }
        }
        JoinAnswer::Refused(why) => JoinOutcome::Refused(*why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITER: NodeId = NodeId([1; 32]);
    const JOINER: NodeId = NodeId([2; 32]);
    const OTHER: NodeId = NodeId([3; 32]);

    fn secret() -> InviteSecret {
        InviteSecret([5; 16])
    }

    fn request(secret: &InviteSecret, joiner: NodeId) -> JoinRequest {
        JoinRequest {
            invite: secret.id(),
            port: 7447,
            mac: join_mac(secret, INVITER, joiner),
        }
    }

    fn stored(used_by: Option<NodeId>) -> StoredInvite {
        StoredInvite {
            secret: secret(),
            expires_ms: 1_000,
            used_by,
        }
    }

    #[test]
    fn a_pending_invite_admits_the_holder_of_its_secret_once() {
        let req = request(&secret(), JOINER);
        let fresh = stored(None);
        assert_eq!(
            admit(Some(&fresh), &req, INVITER, JOINER, 999),
            Ok(Admission::New)
        );
        let used = stored(Some(JOINER));
        // The same joiner again (a lost answer), even after the expiry.
        assert_eq!(
            admit(Some(&used), &req, INVITER, JOINER, 5_000),
            Ok(Admission::Again)
        );
        // Anyone else with the code: used.
        let theirs = request(&secret(), OTHER);
        assert_eq!(
            admit(Some(&used), &theirs, INVITER, OTHER, 999),
            Err(JoinRefusal::Used)
        );
    }

    #[test]
    fn expired_unknown_and_wrong_secrets_are_refused() {
        let req = request(&secret(), JOINER);
        let fresh = stored(None);
        assert_eq!(
            admit(Some(&fresh), &req, INVITER, JOINER, 1_000),
            Err(JoinRefusal::Expired)
        );
        assert_eq!(
            admit(None, &req, INVITER, JOINER, 0),
            Err(JoinRefusal::Unknown)
        );
        // A wrong secret, a MAC for another pair, or for the other
        // direction: unknown, whatever state the invite is in.
        let wrong = request(&InviteSecret([6; 16]), JOINER);
        let relayed = request(&secret(), OTHER);
        let reflected = JoinRequest {
            mac: welcome_mac(&secret(), INVITER, JOINER),
            ..req
        };
        for bad in [wrong, relayed, reflected] {
            for state in [stored(None), stored(Some(OTHER)), stored(Some(JOINER))] {
                assert_eq!(
                    admit(Some(&state), &bad, INVITER, JOINER, 5_000),
                    Err(JoinRefusal::Unknown)
                );
            }
        }
    }

    #[test]
    fn the_joiner_trusts_only_a_welcome_with_the_inviters_proof() {
        let proof = welcome_mac(&secret(), INVITER, JOINER);
        let welcome = JoinAnswer::Welcome { mac: proof };
        assert_eq!(
            outcome(&welcome, &secret(), INVITER, JOINER),
            JoinOutcome::Trust
        );
        // Our own proof sent back, another secret's, another pair's.
        for mac in [
            join_mac(&secret(), INVITER, JOINER),
            welcome_mac(&InviteSecret([6; 16]), INVITER, JOINER),
            welcome_mac(&secret(), INVITER, OTHER),
        ] {
            let answer = JoinAnswer::Welcome { mac };
            assert_eq!(
                outcome(&answer, &secret(), INVITER, JOINER),
                JoinOutcome::Impostor
            );
        }
        let refused = JoinAnswer::Refused(JoinRefusal::Used);
        assert_eq!(
            outcome(&refused, &secret(), INVITER, JOINER),
            JoinOutcome::Refused(JoinRefusal::Used)
        );
    }
}
