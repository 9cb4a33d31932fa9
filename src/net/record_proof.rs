//! Node records signed by their own node (issue #14): a peer gossips every
//! node's record, so without a signature any trusted peer could rewrite
//! another node's addresses or placement preferences, and every location
//! would believe it. The signature covers the record
//! ([`NodeRecord::signed_message`]); the key travels with it, and its hash
//! must be the record's node id, the same check TLS makes of a peer's
//! certificate.

use super::identity::{Identity, IdentityError};
use crate::model::{NodeId, NodeRecord, RecordProof};

/// The SubjectPublicKeyInfo of every P-256 key, up to the key's point: the
/// one kind of key `harmony init` makes (rcgen's default).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// An uncompressed P-256 point.
const P256_POINT_LEN: usize = 65;

/// Why a node record from a peer is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordFault {
    /// It carries no signature.
    #[error("is not signed by its node")]
    Unsigned,
    /// The key it carries is not the one the node id stands for.
    #[error("is signed with a key that is not its node's")]
    ForeignKey,
    /// The key is not a P-256 key.
    #[error("is signed with a kind of key Harmony does not use")]
    UnsupportedKey,
    /// The signature does not match the record (altered or forged).
    #[error("has a signature that does not match it (altered or forged)")]
    BadSignature,
}

/// Signs `record`, the node's own.
pub fn sign(identity: &Identity, record: &mut NodeRecord) -> Result<(), IdentityError> {
    debug_assert_eq!(record.id, identity.node_id());
    let signature = identity.sign(&record.signed_message())?;
    record.proof = Some(RecordProof {
        key: identity.public_key(),
        signature,
    });
    Ok(())
}

/// Checks that `record` was signed by its node.
pub fn verify(record: &NodeRecord) -> Result<(), RecordFault> {
    let proof = record.proof.as_ref().ok_or(RecordFault::Unsigned)?;
    if NodeId::from_spki_der(&proof.key) != record.id {
        return Err(RecordFault::ForeignKey);
    }
    let point = proof
        .key
        .strip_prefix(&P256_SPKI_PREFIX[..])
        .filter(|point| point.len() == P256_POINT_LEN)
        .ok_or(RecordFault::UnsupportedKey)?;
    webpki::ring::ECDSA_P256_SHA256
        .verify_signature(point, &record.signed_message(), &proof.signature)
        .map_err(|_| RecordFault::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Preferences;

    fn own_record(identity: &Identity) -> NodeRecord {
        NodeRecord {
            id: identity.node_id(),
            name: "nas".into(),
            addrs: vec!["10.0.0.2:7447".into()],
            counter: 5,
            preferences: Preferences::default(),
            proof: None,
        }
    }

    fn identity() -> (tempfile::TempDir, Identity) {
        let dir = tempfile::tempdir().unwrap();
        let identity = Identity::create(dir.path()).unwrap();
        (dir, identity)
    }

    #[test]
    fn a_signed_record_verifies_and_any_change_to_it_does_not() {
        let ((_a, identity), (_b, other)) = (identity(), identity());
        let mut record = own_record(&identity);
        assert_eq!(verify(&record), Err(RecordFault::Unsigned));
        sign(&identity, &mut record).unwrap();
        assert_eq!(verify(&record), Ok(()));

        let mut moved = record.clone();
        moved.addrs = vec!["192.0.2.1:7447".into()];
        assert_eq!(verify(&moved), Err(RecordFault::BadSignature));
        let mut newer = record.clone();
        newer.counter += 1;
        assert_eq!(verify(&newer), Err(RecordFault::BadSignature));
        // Another node's key, and another node signing a record under
        // this node's id.
        let mut foreign = record.clone();
        foreign.proof.as_mut().unwrap().key = other.public_key();
        assert_eq!(verify(&foreign), Err(RecordFault::ForeignKey));
        let mut theirs = own_record(&other);
        sign(&other, &mut theirs).unwrap();
        let claimed = NodeRecord {
            id: identity.node_id(),
            ..theirs
        };
        assert_eq!(verify(&claimed), Err(RecordFault::ForeignKey));
    }

    #[test]
    fn init_makes_p256_keys() {
        let (_dir, identity) = identity();
        let key = identity.public_key();
        assert_eq!(key.len(), P256_SPKI_PREFIX.len() + P256_POINT_LEN);
        assert!(key.starts_with(&P256_SPKI_PREFIX));
    }
}
