//! Node records: the name, addresses and placement preferences of every
//! node, gossiped with the state so that a location can reach a holder it
//! was never told about, and can count copies and decide drops by every
//! location's rules. Each node writes only its own record, and signs it
//! ([`RecordProof`]), so that a peer relaying another node's record cannot
//! change it; the higher counter wins.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::preferred::{is_group_name, MAX_EXPR_BYTES};
use super::NodeId;

/// Longest node name, in bytes.
pub const MAX_NODE_NAME: usize = 64;
/// Most addresses one node announces.
pub const MAX_NODE_ADDRS: usize = 8;
/// Longest address (`host:port`), in bytes.
pub const MAX_ADDR_LEN: usize = 256;
/// Most groups one location is in.
pub const MAX_GROUPS: usize = 32;
/// Highest numcopies a location may set.
pub const MAX_NUMCOPIES: u32 = 1024;
/// Longest public key in a [`RecordProof`] (a P-256 key is 91 bytes).
pub const MAX_PROOF_KEY: usize = 128;
/// Longest signature in a [`RecordProof`] (a P-256 one is 70-72 bytes).
pub const MAX_PROOF_SIGNATURE: usize = 80;

/// A node as the repository knows it: replicated, so that every location can name the
/// holders of a file and learn the nodes a tombstone must be seen by.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Its id (a hash of its certificate's public key).
    pub id: NodeId,
    /// The name it gave itself at `init` (shown beside the id, never trusted for identity).
    pub name: String,
    /// Where the node says it listens (`host:port`).
    pub addrs: Vec<String>,
    /// The node's own write counter when it wrote this record.
    pub counter: u64,
    /// What the node says about placement.
    pub preferences: Preferences,
    /// The node's signature of the rest; `None` only in a record stored
    /// before records were signed (a peer's record without a valid one is
    /// refused).
    pub proof: Option<RecordProof>,
}

/// A node's signature of its own record: its public key (whose hash is the
/// node id), and its signature of [`NodeRecord::signed_message`]. Checking
/// it is the network layer's job (`net::record_proof`); the model only
/// says what is signed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordProof {
    /// The node's SubjectPublicKeyInfo, as its certificate has it.
    pub key: Vec<u8>,
    /// The signature (ECDSA P-256 with SHA-256, ASN.1 DER).
    pub signature: Vec<u8>,
}

/// What a location says about placement (issue 13): what it wants, the
/// groups it is in, and the repository-wide numcopies as it last set it.
/// Part of its node record, so only it changes them, and a change of its
/// own replaces the older one everywhere (its counter orders them).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Preferences {
    /// Its preferred-content expression, as the user wrote it (checked when
    /// set, and parsed where used); `None` when never set.
    pub wanted: Option<String>,
    /// The groups it is in (see [`is_group_name`]).
    pub groups: BTreeSet<String>,
    /// The numcopies it set last, if it ever did.
    pub numcopies: Option<NumCopiesSetting>,
}

/// One location's setting of the repository-wide numcopies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NumCopiesSetting {
    /// The copies every file must keep (1 to [`MAX_NUMCOPIES`]).
    pub copies: u32,
    /// When it was set, in milliseconds since the Unix epoch (the setter's
    /// clock).
    pub at_ms: i64,
}

/// The numcopies in force: the latest setting of any location, by its
/// clock, ties broken by the higher node id so that every location picks
/// the same; 1 when no location ever set it. A concurrent change is thus
/// settled the same way everywhere, once the records have met.
pub fn numcopies<'a>(records: impl IntoIterator<Item = &'a NodeRecord>) -> u32 {
    records
        .into_iter()
        .filter_map(|r| r.preferences.numcopies.map(|n| ((n.at_ms, r.id), n.copies)))
        .max()
        .map_or(1, |(_, copies)| copies)
}

impl NodeRecord {
    /// Keeps whichever record is newer by its owner's counter. Ties (which a
    /// correct owner never produces) are broken by content, so every node
    /// picks the same one.
    pub fn merge(&mut self, other: &NodeRecord) {
        debug_assert_eq!(self.id, other.id);
        #[allow(clippy::type_complexity)]
        fn rank(
            r: &NodeRecord,
        ) -> (
            u64,
            &String,
            &Vec<String>,
            &Preferences,
            &Option<RecordProof>,
        ) {
            (r.counter, &r.name, &r.addrs, &r.preferences, &r.proof)
        }
        let newer = rank(other) > rank(self);
        if newer {
            *self = other.clone();
        }
    }

    /// Checks the bounds of a record received from a peer.
    pub fn is_valid(&self) -> bool {
        let p = &self.preferences;
        self.name.len() <= MAX_NODE_NAME
            && self.addrs.len() <= MAX_NODE_ADDRS
            && self.addrs.iter().all(|a| a.len() <= MAX_ADDR_LEN)
            && p.wanted.as_ref().is_none_or(|w| w.len() <= MAX_EXPR_BYTES)
            && p.groups.len() <= MAX_GROUPS
            && p.groups.iter().all(|g| is_group_name(g))
            && p.numcopies
                .is_none_or(|n| (1..=MAX_NUMCOPIES).contains(&n.copies))
            && self.proof.as_ref().is_none_or(|proof| {
                proof.key.len() <= MAX_PROOF_KEY && proof.signature.len() <= MAX_PROOF_SIGNATURE
            })
    }

    /// What the node signs: its record but for the proof. It need not name
    /// the repository: a location's key is its own, and it is a location of
    /// one repository all its life (a fresh one joins another before it has
    /// any state to share), so its record is never carried elsewhere.
    pub fn signed_message(&self) -> Vec<u8> {
        let unsigned = (
            &self.id,
            &self.name,
            &self.addrs,
            self.counter,
            &self.preferences,
        );
        let mut message = b"harmony node record v1\0".to_vec();
        message.extend(postcard::to_stdvec(&unsigned).expect("a node record always encodes"));
        message
    }

    /// Fingerprint for the state digest.
    pub fn digest(&self) -> [u8; 32] {
        let bytes = postcard::to_stdvec(self).expect("a node record always encodes");
        let mut hasher = blake3::Hasher::new_derive_key("harmony node record v1");
        hasher.update(&bytes);
        *hasher.finalize().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::super::preferred::MAX_GROUP_NAME;
    use super::*;

    fn record(counter: u64, name: &str) -> NodeRecord {
        NodeRecord {
            id: NodeId([1; 32]),
            name: name.into(),
            addrs: vec!["10.0.0.1:7447".into()],
            counter,
            preferences: Preferences::default(),
            proof: None,
        }
    }

    #[test]
    fn newer_counter_wins_whatever_the_order() {
        let (old, new) = (record(1, "old"), record(2, "new"));
        let mut a = old.clone();
        a.merge(&new);
        let mut b = new.clone();
        b.merge(&old);
        assert_eq!(a, new);
        assert_eq!(b, new);
    }

    fn setting(id: u8, copies: u32, at_ms: i64) -> NodeRecord {
        NodeRecord {
            id: NodeId([id; 32]),
            preferences: Preferences {
                numcopies: Some(NumCopiesSetting { copies, at_ms }),
                ..Preferences::default()
            },
            ..record(1, "n")
        }
    }

    #[test]
    fn the_latest_numcopies_setting_wins_ties_by_node_id() {
        assert_eq!(numcopies(&[record(1, "a")]), 1, "never set: 1");
        let (early, late) = (setting(1, 3, 100), setting(2, 2, 200));
        assert_eq!(numcopies([&early, &late]), 2);
        assert_eq!(numcopies([&late, &early]), 2);
        let (low, high) = (setting(1, 5, 300), setting(9, 4, 300));
        assert_eq!(numcopies([&low, &high]), 4);
        assert_eq!(numcopies([&high, &low]), 4);
    }

    #[test]
    fn preferences_are_bounded() {
        let mut r = record(1, "a");
        assert!(r.is_valid());
        r.preferences.groups.insert("backup".into());
        assert!(r.is_valid());
        for bad in [
            "",
            "a b",
            "x:1",
            "a=b",
            "(",
            &"g".repeat(MAX_GROUP_NAME + 1),
        ] {
            let mut bad_group = r.clone();
            bad_group.preferences.groups.insert(bad.to_owned());
            assert!(!bad_group.is_valid(), "group {bad:?}");
        }
        let mut long = r.clone();
        long.preferences.wanted = Some("x".repeat(MAX_EXPR_BYTES + 1));
        assert!(!long.is_valid());
        assert!(!setting(1, 0, 0).is_valid());
        assert!(!setting(1, MAX_NUMCOPIES + 1, 0).is_valid());
        let proof = |key: usize, signature: usize| RecordProof {
            key: vec![0; key],
            signature: vec![0; signature],
        };
        let mut signed = record(1, "a");
        signed.proof = Some(proof(MAX_PROOF_KEY, MAX_PROOF_SIGNATURE));
        assert!(signed.is_valid());
        for (key, signature) in [(MAX_PROOF_KEY + 1, 1), (1, MAX_PROOF_SIGNATURE + 1)] {
            signed.proof = Some(proof(key, signature));
            assert!(!signed.is_valid(), "{key} {signature}");
        }
    }

    #[test]
    fn the_signed_message_covers_every_field_but_the_proof() {
        let base = record(3, "nas");
        let message = base.signed_message();
        assert!(message.starts_with(b"harmony node record v1\0"));
        let mut signed = base.clone();
        signed.proof = Some(RecordProof {
            key: vec![1],
            signature: vec![2],
        });
        assert_eq!(signed.signed_message(), message);
        for changed in [
            NodeRecord {
                id: NodeId([2; 32]),
                ..base.clone()
            },
            NodeRecord {
                name: "other".into(),
                ..base.clone()
            },
            NodeRecord {
                addrs: vec![],
                ..base.clone()
            },
            NodeRecord {
                counter: 4,
                ..base.clone()
            },
            setting(1, 2, 3),
        ] {
            assert_ne!(changed.signed_message(), message, "{changed:?}");
        }
    }

    #[test]
    fn records_that_differ_only_in_their_proof_settle_on_the_same_one() {
        let mut a = record(1, "a");
        a.proof = Some(RecordProof {
            key: vec![1],
            signature: vec![1],
        });
        let mut b = record(1, "a");
        b.proof = Some(RecordProof {
            key: vec![1],
            signature: vec![2],
        });
        let (mut x, mut y) = (a.clone(), b.clone());
        x.merge(&b);
        y.merge(&a);
        assert_eq!(x, y);
    }
}
