//! The LAN discovery beacon (protocol.md, section 10): one fixed-size UDP
//! datagram a node multicasts on its links, saying "a node listens for QUIC
//! on this port" in a form only those who know its node id can attribute.
//!
//! Why not the node id in clear: an observer on a café network would learn
//! which node (seen elsewhere) is here. The beacon carries a random nonce and
//! a tag, a keyed blake3 of the fields under a key derived from the node id;
//! a receiver tries the ids of its trusted peers. Beacons of one node cannot
//! be linked to each other without its id. Anyone who knows the id can
//! forge one, so a beacon is only a hint: the shell acts on it after a QUIC
//! handshake at the address proves the node's key.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::model::NodeId;

/// The UDP port beacons are sent to (next to the QUIC default, 7447).
pub const DISCOVERY_PORT: u16 = 7448;
/// The IPv4 group: administratively scoped (RFC 2365), sent with TTL 1 so
/// that no router forwards it.
pub const GROUP_V4: Ipv4Addr = Ipv4Addr::new(239, 255, 72, 77);
/// The IPv6 group: link-local scope (ff02::/16), never routed.
pub const GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0x4861, 0x726d);
/// The bytes every beacon starts with.
pub const MAGIC: [u8; 4] = *b"HMNY";
/// The beacon format this build sends and reads.
pub const BEACON_VERSION: u8 = 1;
/// Flag bit: the sender asks every node that hears it to announce itself
/// now (sent when a node starts, and by `peer add` without an address).
pub const FLAG_QUERY: u8 = 1;
/// Length of every version-1 beacon.
pub const BEACON_LEN: usize = 4 + 1 + 1 + 2 + 16 + 32;

/// Domain of the tag key, so that it can serve no other purpose.
const TAG_CONTEXT: &str = "harmony discovery beacon v1";

/// One announcement: "the node whose id makes `tag` listens on `port` of the
/// address this came from".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Beacon {
    /// The sender asks for announcements ([`FLAG_QUERY`]).
    pub query: bool,
    /// The sender's QUIC port; 0 in a query that announces nothing (the
    /// one `peer add` sends: it does not listen).
    pub port: u16,
    /// Fresh random bytes per beacon, so that tags do not repeat.
    pub nonce: [u8; 16],
    /// Keyed blake3 of the fields above under the sender's tag key.
    pub tag: [u8; 32],
}

/// Why a datagram is not a beacon (dropped without an answer).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BeaconError {
    /// Not the length of a beacon of this version.
    #[error("a beacon is {BEACON_LEN} bytes, not {0}")]
    Length(usize),
    /// Some other protocol's datagram on the port.
    #[error("not a Harmony beacon (wrong magic)")]
    Magic,
    /// A beacon of another version of the format.
    #[error("beacon version {0}, this build reads {BEACON_VERSION}")]
    Version(u8),
    /// An announcement must name the port to connect to.
    #[error("port 0 in a beacon that is not a query")]
    Port,
}

impl Beacon {
    /// The beacon of `node` listening on `port`, with `nonce`.
    pub fn new(node: NodeId, port: u16, query: bool, nonce: [u8; 16]) -> Beacon {
        let mut beacon = Beacon {
            query,
            port,
            nonce,
            tag: [0; 32],
        };
        beacon.tag = beacon.tag_for(node);
        beacon
    }

    /// The 56 bytes on the wire.
    pub fn encode(&self) -> [u8; BEACON_LEN] {
        let mut out = [0u8; BEACON_LEN];
        out[..24].copy_from_slice(&self.signed_part());
        out[24..].copy_from_slice(&self.tag);
        out
    }

    /// Reads a datagram; anything but a well-formed version-1 beacon is an
    /// error (a newer version is skipped, not misread).
    pub fn decode(bytes: &[u8]) -> Result<Beacon, BeaconError> {
        if bytes.len() <= MAGIC.len() {
            return Err(BeaconError::Length(bytes.len()));
        }
        if bytes[..4] != MAGIC {
            return Err(BeaconError::Magic);
        }
        if bytes[4] != BEACON_VERSION {
            return Err(BeaconError::Version(bytes[4]));
        }
        let bytes: &[u8; BEACON_LEN] = bytes
            .try_into()
            .map_err(|_| BeaconError::Length(bytes.len()))?;
        let port = u16::from_be_bytes([bytes[6], bytes[7]]);
        let query = bytes[5] & FLAG_QUERY != 0;
        if port == 0 && !query {
            return Err(BeaconError::Port);
        }
        let mut nonce = [0u8; 16];
        nonce.copy_from_slice(&bytes[8..24]);
        let mut tag = [0u8; 32];
        tag.copy_from_slice(&bytes[24..]);
        Ok(Beacon {
            // Unknown flag bits are ignored: a later version may add some.
            query,
            port,
            nonce,
            tag,
        })
    }

    /// Whether `node` sent this beacon (in constant time, as tags are
    /// secrets to those who do not know the id).
    pub fn is_from(&self, node: NodeId) -> bool {
        blake3::Hash::from(self.tag) == blake3::Hash::from(self.tag_for(node))
    }

    /// The first of `nodes` that sent this beacon, if any: the receiver's
    /// trusted peers, one keyed hash each.
    pub fn sender_among(&self, nodes: impl IntoIterator<Item = NodeId>) -> Option<NodeId> {
        nodes.into_iter().find(|node| self.is_from(*node))
    }

    /// Magic, version, flags, port and nonce: what the tag covers.
    fn signed_part(&self) -> [u8; 24] {
        let mut out = [0u8; 24];
        out[..4].copy_from_slice(&MAGIC);
        out[4] = BEACON_VERSION;
        out[5] = if self.query { FLAG_QUERY } else { 0 };
        out[6..8].copy_from_slice(&self.port.to_be_bytes());
        out[8..24].copy_from_slice(&self.nonce);
        out
    }

    fn tag_for(&self, node: NodeId) -> [u8; 32] {
        let key = blake3::derive_key(TAG_CONTEXT, &node.0);
        *blake3::keyed_hash(&key, &self.signed_part()).as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beacon() -> Beacon {
        Beacon::new(NodeId([7; 32]), 7447, true, [9; 16])
    }

    #[test]
    fn round_trips_and_names_its_sender_only() {
        let b = beacon();
        assert_eq!(Beacon::decode(&b.encode()), Ok(b));
        assert!(b.is_from(NodeId([7; 32])));
        assert!(!b.is_from(NodeId([8; 32])));
        assert_eq!(
            b.sender_among([NodeId([1; 32]), NodeId([7; 32])]),
            Some(NodeId([7; 32]))
        );
        assert_eq!(b.sender_among([NodeId([1; 32])]), None);
    }

    #[test]
    fn a_changed_field_breaks_the_tag() {
        let b = beacon();
        for changed in [
            Beacon { port: 7448, ..b },
            Beacon { query: false, ..b },
            Beacon {
                nonce: [0; 16],
                ..b
            },
        ] {
            assert!(!changed.is_from(NodeId([7; 32])), "{changed:?}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_beacon() {
        let good = beacon().encode();
        assert_eq!(Beacon::decode(&good[..10]), Err(BeaconError::Length(10)));
        assert_eq!(Beacon::decode(&[]), Err(BeaconError::Length(0)));
        let mut long = good.to_vec();
        long.push(0);
        assert_eq!(Beacon::decode(&long), Err(BeaconError::Length(57)));
        let mut bad = good;
        bad[0] = b'X';
        assert_eq!(Beacon::decode(&bad), Err(BeaconError::Magic));
        let mut newer = good;
        newer[4] = 2;
        assert_eq!(Beacon::decode(&newer), Err(BeaconError::Version(2)));
        let mut no_port = good;
        no_port[5] = 0;
        no_port[6..8].copy_from_slice(&[0, 0]);
        assert_eq!(Beacon::decode(&no_port), Err(BeaconError::Port));
        let only_asks = Beacon::new(NodeId([7; 32]), 0, true, [9; 16]);
        assert_eq!(Beacon::decode(&only_asks.encode()), Ok(only_asks));
    }
}
