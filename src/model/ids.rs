//! Identifiers: who a node is, which repository, which file, which content.
//!
//! Every id is a fixed-size byte array so that it hashes, compares and encodes
//! cheaply; the human forms (base32 with a checksum for node ids, hex for the
//! rest) exist only at the edges.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Errors met when reading an id typed or pasted by a user.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdParseError {
    /// Not the right length or not hex.
    #[error("{kind} `{input}` is not valid: {reason}")]
    Invalid {
        /// What was being read ("node id", "content hash").
        kind: &'static str,
        /// The text given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

fn invalid(kind: &'static str, input: &str, reason: &'static str) -> IdParseError {
    IdParseError::Invalid {
        kind,
        input: input.to_owned(),
        reason,
    }
}

/// A node's identity: blake3 of its certificate's SubjectPublicKeyInfo (DER).
///
/// The id *is* the key: whoever proves possession of the matching private key
/// in a TLS handshake is that node, no certificate authority involved.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub [u8; 32]);

/// Bytes of checksum appended to a node id's printed form, so that a typo in
/// `peer add` is caught instead of trusting a node nobody owns.
const NODE_ID_CHECK_LEN: usize = 2;
/// Length of the printed form without dashes: base32 of 32 + 2 bytes.
const NODE_ID_TEXT_LEN: usize = 55;
const NODE_ID_GROUP: usize = 5;

impl NodeId {
    /// Derives the node id from a DER-encoded SubjectPublicKeyInfo.
    pub fn from_spki_der(spki: &[u8]) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key("harmony node id v1");
        hasher.update(spki);
        NodeId(*hasher.finalize().as_bytes())
    }

    fn checksum(bytes: &[u8; 32]) -> [u8; NODE_ID_CHECK_LEN] {
        let mut hasher = blake3::Hasher::new_derive_key("harmony node id checksum v1");
        hasher.update(bytes);
        let digest = hasher.finalize();
        let mut check = [0u8; NODE_ID_CHECK_LEN];
        check.copy_from_slice(&digest.as_bytes()[..NODE_ID_CHECK_LEN]);
        check
    }

    /// A short prefix for logs and tables where the full id is too long.
    pub fn short(&self) -> String {
        self.to_string()[..11].to_owned()
    }
}

impl fmt::Display for NodeId {
    /// Upper-case RFC 4648 base32 of the id and a 2-byte checksum, in dash-separated
    /// groups of five: `ABCDE-FGHIJ-...` (11 groups).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = Vec::with_capacity(32 + NODE_ID_CHECK_LEN);
        raw.extend_from_slice(&self.0);
        raw.extend_from_slice(&Self::checksum(&self.0));
        let text = base32::encode(base32::Alphabet::Rfc4648 { padding: false }, &raw);
        for (i, group) in text.as_bytes().chunks(NODE_ID_GROUP).enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            f.write_str(std::str::from_utf8(group).map_err(|_| fmt::Error)?)?;
        }
        Ok(())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.short())
    }
}

impl FromStr for NodeId {
    type Err = IdParseError;

    /// Accepts the printed form with or without dashes, in either case.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        const KIND: &str = "node id";
        let compact: String = input
            .trim()
            .chars()
            .filter(|c| *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if compact.len() != NODE_ID_TEXT_LEN {
            return Err(invalid(
                KIND,
                input,
                "expected 55 base32 characters (11 groups of 5); copy it whole from `harmony id`",
            ));
        }
        let raw = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &compact)
            .ok_or_else(|| invalid(KIND, input, "it holds characters outside A-Z and 2-7"))?;
        // The last character carries 3 unused bits: insist on the canonical
        // form so that every single-character change is rejected.
        if raw.len() != 32 + NODE_ID_CHECK_LEN
            || base32::encode(base32::Alphabet::Rfc4648 { padding: false }, &raw) != compact
        {
            return Err(invalid(
                KIND,
                input,
                "it is not a canonical node id; copy it again",
            ));
        }
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&raw[..32]);
        if raw[32..] != Self::checksum(&bytes) {
            return Err(invalid(
                KIND,
                input,
                "its checksum does not match (a typo?); copy it again from `harmony id`",
            ));
        }
        Ok(NodeId(bytes))
    }
}

/// Defines a random fixed-size id printed as lower-case hex.
macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $len:expr, $kind:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Parses the hex form, as printed by `Display`.
            pub fn from_hex(input: &str) -> Result<Self, IdParseError> {
                let mut bytes = [0u8; $len];
                hex::decode_to_slice(input.trim(), &mut bytes).map_err(|_| {
                    invalid($kind, input, concat!("expected ", stringify!($len), " bytes in hex"))
                })?;
                Ok($name(bytes))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), &hex::encode(self.0)[..12])
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(input: &str) -> Result<Self, Self::Err> {
                Self::from_hex(input)
            }
        }
    };
}

hex_id!(
    /// A repository: random, created by the first `init`. Nodes of different
    /// repositories refuse to exchange state.
    RepoId,
    16,
    "repository id"
);

hex_id!(
    /// A file's stable identity, assigned when the file is first seen. Renames and
    /// edits are versioned separately under it, so a rename on one location and an
    /// edit on another merge into one renamed, edited file.
    FileId,
    16,
    "file id"
);

hex_id!(
    /// blake3 of a file's or chunk's bytes: exactly what `b3sum` prints.
    ContentHash,
    32,
    "content hash"
);

impl RepoId {
    /// A fresh repository id, for `init`: random, so two repositories never share one by
    /// accident.
    pub fn random() -> Self {
        RepoId(rand::random())
    }
}

impl FileId {
    /// A new id: the current time in milliseconds (6 bytes, big-endian) then
    /// 10 random bytes, like a UUIDv7. Ids made one after another sort one
    /// after another, so the state database (keyed by file id) appends new
    /// files instead of writing all over its B-tree: merging 100,000 new
    /// entries wrote ~10x fewer pages than with fully random ids.
    pub fn new_at(unix_ms: u64) -> Self {
        let mut id: [u8; 16] = rand::random();
        id[..6].copy_from_slice(&unix_ms.to_be_bytes()[2..]);
        FileId(id)
    }
}

/// The ids of the files one commit adds: the commit's time in milliseconds
/// (6 bytes, big-endian, as in [`FileId::new_at`]), 6 random bytes, then a
/// 4-byte index counting up. Files added together thus have consecutive ids,
/// so that holder changes of many of them (a `get`, a `drop`) travel as a
/// few runs of ids (`proto::HolderRun`) instead of an entry each. The random
/// part keeps two nodes committing in the same millisecond apart.
#[derive(Clone, Debug)]
pub struct FileIdSequence {
    prefix: [u8; 12],
    next: u32,
}

impl FileIdSequence {
    /// A sequence for a commit at `unix_ms`.
    pub fn new_at(unix_ms: u64) -> Self {
        let mut prefix: [u8; 12] = rand::random();
        prefix[..6].copy_from_slice(&unix_ms.to_be_bytes()[2..]);
        FileIdSequence { prefix, next: 0 }
    }

    /// The next id (after 2^32 of them, the sequence starts over with a new
    /// random part).
    pub fn next_id(&mut self) -> FileId {
        if self.next == u32::MAX {
            let millis: [u8; 6] = self.prefix[..6].try_into().expect("six bytes");
            self.prefix[6..].copy_from_slice(&rand::random::<[u8; 6]>());
            self.prefix[..6].copy_from_slice(&millis);
            self.next = 0;
        }
        let mut id = [0; 16];
        id[..12].copy_from_slice(&self.prefix);
        id[12..].copy_from_slice(&self.next.to_be_bytes());
        self.next += 1;
        FileId(id)
    }
}

impl From<blake3::Hash> for ContentHash {
    fn from(hash: blake3::Hash) -> Self {
        ContentHash(*hash.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_one_sequence_are_consecutive_and_sort_by_time() {
        let mut sequence = FileIdSequence::new_at(5_000);
        let ids: Vec<u128> = (0..3)
            .map(|_| u128::from_be_bytes(sequence.next_id().0))
            .collect();
        assert_eq!(ids, vec![ids[0], ids[0] + 1, ids[0] + 2]);
        let later = FileIdSequence::new_at(5_001).next_id();
        assert!(u128::from_be_bytes(later.0) > ids[2]);
        assert_eq!(later.0[..6], 5_001u64.to_be_bytes()[2..]);
    }

    #[test]
    fn node_id_round_trips_through_text() {
        let id = NodeId::from_spki_der(b"example key");
        let text = id.to_string();
        assert_eq!(text.len(), 55 + 10);
        assert_eq!(text.parse::<NodeId>().unwrap(), id);
        assert_eq!(text.to_lowercase().parse::<NodeId>().unwrap(), id);
        assert_eq!(text.replace('-', "").parse::<NodeId>().unwrap(), id);
    }

    #[test]
    fn node_id_typos_are_caught() {
        let text = NodeId::from_spki_der(b"example key").to_string();
        // Change one character in every position: the checksum must notice.
        for pos in (0..text.len()).filter(|&i| text.as_bytes()[i] != b'-') {
            let mut bytes = text.clone().into_bytes();
            bytes[pos] = if bytes[pos] == b'A' { b'B' } else { b'A' };
            let typo = String::from_utf8(bytes).unwrap();
            assert!(typo.parse::<NodeId>().is_err(), "typo at {pos} accepted");
        }
        assert!(text[..20].parse::<NodeId>().is_err());
        assert!(text.replace('A', "1").parse::<NodeId>().is_err() || !text.contains('A'));
    }

    #[test]
    fn hex_ids_round_trip() {
        let repo = RepoId::random();
        assert_eq!(repo.to_string().parse::<RepoId>().unwrap(), repo);
        assert!("zz".parse::<RepoId>().is_err());
    }
}
