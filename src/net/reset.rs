//! The keys of a serving endpoint that must survive a restart: its
//! stateless-reset key and its connection-id key, derived from the node's
//! private key and its port instead of drawn at random.
//!
//! Why: a QUIC endpoint that loses a connection's state (its process was
//! killed, the machine rebooted) answers the peer's next packet with a
//! stateless reset, which ends the connection at once, but only if the
//! reset carries the token the old endpoint gave out for that connection
//! id. quinn's default key is random per process, so a restarted `serve`
//! could not make a token its clients accept; they kept retransmitting
//! into it until their stream or idle timeout (30 s and more), and a `get`
//! or live sync cut by the restart stalled that long. With a key derived
//! from what survives a restart, the new process resets them in one round
//! trip. The connection-id key matters as much: quinn answers a packet for
//! an unknown connection only if its connection id passes the endpoint's
//! hash check, so a new random key made every old id look foreign and
//! dropped its packets without a reset.
//!
//! The port is part of the key (RFC 9000 §10.3.2): two endpoints of the
//! same node, a `serve` and a `sync` run beside it, must not be able to
//! make each other's reset tokens, or a packet bounced off one could reset
//! the other's connections. Client-only endpoints keep quinn's random key:
//! their port changes every run, so a derived key would buy nothing.

use std::sync::Arc;

use quinn::crypto::HmacKey;
use quinn::EndpointConfig;
use quinn_proto::HashedConnectionIdGenerator;

use super::Identity;

/// The blake3 derive-key context of the reset key.
const RESET_KEY_CONTEXT: &str = "harmony 2026-12 stateless reset key v1";
/// The blake3 derive-key context of the connection-id key.
const CID_KEY_CONTEXT: &str = "harmony 2026-12 connection id key v1";

/// The endpoint settings of `identity`'s `serve` listening on `port`: the
/// same in every process that serves there.
pub(super) fn serving_endpoint(identity: &Identity, port: u16) -> EndpointConfig {
    let material = key_material(identity, port);
    let mut config = EndpointConfig::new(Arc::new(ResetKey::from_material(&material)));
    let cid_key = blake3::derive_key(CID_KEY_CONTEXT, &material);
    let cid_key = u64::from_le_bytes(cid_key[..8].try_into().unwrap_or_default());
    config.cid_generator(move || Box::new(HashedConnectionIdGenerator::from_key(cid_key)));
    config
}

/// What both keys derive from: the private key and the port.
fn key_material(identity: &Identity, port: u16) -> Vec<u8> {
    let mut material = identity.private_key().secret_der().to_vec();
    material.extend_from_slice(&port.to_be_bytes());
    material
}

/// A keyed-blake3 MAC key, in the form quinn signs reset tokens with.
struct ResetKey(blake3::Hasher);

impl ResetKey {
    fn from_material(material: &[u8]) -> Self {
        ResetKey(blake3::Hasher::new_keyed(&blake3::derive_key(
            RESET_KEY_CONTEXT,
            material,
        )))
    }

    #[cfg(test)]
    fn of(identity: &Identity, port: u16) -> Self {
        ResetKey::from_material(&key_material(identity, port))
    }

    fn mac(&self, data: &[u8]) -> blake3::Hash {
        self.0.clone().update(data).finalize()
    }
}

impl HmacKey for ResetKey {
    fn sign(&self, data: &[u8], signature_out: &mut [u8]) {
        let mac = self.mac(data);
        let n = signature_out.len().min(blake3::OUT_LEN);
        signature_out[..n].copy_from_slice(&mac.as_bytes()[..n]);
    }

    fn signature_len(&self) -> usize {
        blake3::OUT_LEN
    }

    fn verify(&self, data: &[u8], signature: &[u8]) -> Result<(), quinn::crypto::CryptoError> {
        // blake3::Hash compares in constant time.
        let expected: [u8; blake3::OUT_LEN] = signature
            .try_into()
            .map_err(|_| quinn::crypto::CryptoError)?;
        if self.mac(data) == blake3::Hash::from(expected) {
            Ok(())
        } else {
            Err(quinn::crypto::CryptoError)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(key: &ResetKey, cid: &[u8]) -> [u8; blake3::OUT_LEN] {
        let mut out = [0u8; blake3::OUT_LEN];
        key.sign(cid, &mut out);
        out
    }

    #[test]
    fn the_key_survives_a_restart_and_differs_by_port_and_node() {
        let dir = tempfile::tempdir().unwrap();
        let identity = Identity::create(dir.path()).unwrap();
        let reloaded = Identity::load(dir.path()).unwrap();
        let other = tempfile::tempdir().unwrap();
        let other = Identity::create(other.path()).unwrap();
        let cid = b"connection id";

        let first = token(&ResetKey::of(&identity, 4000), cid);
        assert_eq!(first, token(&ResetKey::of(&reloaded, 4000), cid));
        assert_ne!(first, token(&ResetKey::of(&identity, 4001), cid));
        assert_ne!(first, token(&ResetKey::of(&other, 4000), cid));
        assert_ne!(first, token(&ResetKey::of(&identity, 4000), b"another id"));
    }

    /// The vector in protocol.md, section 3: material 0x00..0x1f followed
    /// by port 4000, connection id 01..08.
    #[test]
    fn the_reset_token_matches_the_protocol_vector() {
        let mut material: Vec<u8> = (0u8..32).collect();
        material.extend_from_slice(&4000u16.to_be_bytes());
        let key = ResetKey::from_material(&material);
        let token = token(&key, &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            hex::encode(&token[..16]),
            "54e232dc115f9e372227508c649f4f07"
        );
    }

    #[test]
    fn verify_accepts_its_own_signature_only() {
        let dir = tempfile::tempdir().unwrap();
        let key = ResetKey::of(&Identity::create(dir.path()).unwrap(), 4000);
        let signature = token(&key, b"data");
        assert!(key.verify(b"data", &signature).is_ok());
        assert!(key.verify(b"other", &signature).is_err());
        assert!(key.verify(b"data", &signature[..16]).is_err());
    }
}
