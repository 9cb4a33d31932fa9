//! Invite codes: what `harmony invite` prints and `harmony join` reads, so
//! that two nodes pair without anyone copying a node id by hand.
//!
//! A code names the inviting node (its id, which the joiner pins in TLS, so
//! the joiner cannot be talked into trusting another node), where to reach
//! it, and a single-use random secret that proves to the inviter that the
//! joiner got the code from it. The code is a password: whoever reads it
//! within its lifetime can pair with the inviter. What the secret does on
//! the wire is in `proto::pair` and protocol.md ("Pairing").
//!
//! The text form, one line without spaces:
//! `harmony:NODE-ID:SECRET@HOST:PORT[,HOST:PORT...]`, the node id as
//! `harmony id` prints it (with its checksum), the secret in base32 with a
//! checksum of its own, so that a mistyped code is caught here rather than
//! refused by the inviter as unknown.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{NodeId, MAX_ADDR_LEN};

/// Bytes of an invite's secret: 128 bits, beyond any online guessing.
pub const INVITE_SECRET_LEN: usize = 16;
/// Most addresses one code carries (as many as a node record announces).
pub const MAX_INVITE_ADDRS: usize = super::MAX_NODE_ADDRS;
/// What every code starts with.
const PREFIX: &str = "harmony:";
/// Bytes of checksum after the secret in its text form.
const SECRET_CHECK_LEN: usize = 2;

/// The random secret of one invite (made by the node service, from the
/// system's generator). Its `Debug` form hides it: logs must never carry it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct InviteSecret(pub [u8; INVITE_SECRET_LEN]);

impl fmt::Debug for InviteSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InviteSecret(..)")
    }
}

/// The public name of an invite, derived from its secret (so a code needs
/// no separate field for it): how a join says which invite it answers,
/// without revealing the secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InviteId(pub [u8; 8]);

impl fmt::Display for InviteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl InviteSecret {
    /// The invite's public id: blake3 (derive-key mode) of the secret, cut
    /// to 8 bytes.
    pub fn id(&self) -> InviteId {
        let key = blake3::derive_key("harmony 2026-12 invite id v1", &self.0);
        let mut id = [0u8; 8];
        id.copy_from_slice(&key[..8]);
        InviteId(id)
    }

    fn checksum(&self) -> [u8; SECRET_CHECK_LEN] {
        let key = blake3::derive_key("harmony 2026-12 invite checksum v1", &self.0);
        [key[0], key[1]]
    }
}

/// One invite as the inviter keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredInvite {
    /// Its secret.
    pub secret: InviteSecret,
    /// When it stops admitting a join (ms since the Unix epoch).
    pub expires_ms: i64,
    /// The node that used it, once used.
    pub used_by: Option<NodeId>,
}

/// Why a text is not an invite code.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "`{code}` is not a valid invite code: {reason}; copy the whole line `harmony invite` printed"
)]
pub struct InviteCodeError {
    /// The text given (cut to a sensible length).
    pub code: String,
    /// What is wrong with it.
    pub reason: String,
}

/// An invite code: who invites, where, and the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InviteCode {
    /// The inviting node: the joiner accepts only this id in TLS.
    pub inviter: NodeId,
    /// Where the inviter listens (`host:port`), tried in order.
    pub addrs: Vec<String>,
    /// The single-use secret.
    pub secret: InviteSecret,
}

impl fmt::Display for InviteCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = self.secret.0.to_vec();
        raw.extend_from_slice(&self.secret.checksum());
        let secret = base32::encode(base32::Alphabet::Rfc4648 { padding: false }, &raw);
        write!(
            f,
            "{PREFIX}{}:{secret}@{}",
            self.inviter,
            self.addrs.join(",")
        )
    }
}

impl FromStr for InviteCode {
    type Err = InviteCodeError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let text = input.trim();
        let bad = |reason: &str| InviteCodeError {
            code: text.chars().take(200).collect(),
            reason: reason.to_owned(),
        };
        let rest = text
            .strip_prefix(PREFIX)
            .ok_or_else(|| bad("it does not start with `harmony:`"))?;
        let (who, addrs) = rest
            .split_once('@')
            .ok_or_else(|| bad("it has no `@` before the addresses"))?;
        let (id, secret) = who
            .split_once(':')
            .ok_or_else(|| bad("it has no `:` between the node id and the secret"))?;
        let inviter = NodeId::from_str(id).map_err(|e| bad(&e.to_string()))?;
        let secret = parse_secret(secret).ok_or_else(|| {
            bad("its secret (between the node id and `@`) is damaged: a typo or a cut line")
        })?;
        let addrs: Vec<String> = addrs.split(',').map(str::to_owned).collect();
        if addrs.len() > MAX_INVITE_ADDRS {
            return Err(bad(&format!(
                "it lists more than {MAX_INVITE_ADDRS} addresses"
            )));
        }
        if let Some(addr) = addrs.iter().find(|a| !plausible_addr(a)) {
            return Err(bad(&format!("`{addr}` is not a host:port address")));
        }
        Ok(InviteCode {
            inviter,
            addrs,
            secret,
        })
    }
}

/// The secret's text: canonical base32 of the secret and its checksum.
fn parse_secret(text: &str) -> Option<InviteSecret> {
    let upper = text.to_ascii_uppercase();
    let raw = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &upper)?;
    if raw.len() != INVITE_SECRET_LEN + SECRET_CHECK_LEN
        || base32::encode(base32::Alphabet::Rfc4648 { padding: false }, &raw) != upper
    {
        return None;
    }
    let mut bytes = [0u8; INVITE_SECRET_LEN];
    bytes.copy_from_slice(&raw[..INVITE_SECRET_LEN]);
    let secret = InviteSecret(bytes);
    (raw[INVITE_SECRET_LEN..] == secret.checksum()).then_some(secret)
}

/// `host:port` with a port from 1 to 65535, of a sensible length, without
/// the characters the code uses as separators (the host is resolved later).
fn plausible_addr(addr: &str) -> bool {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return false;
    };
    !host.is_empty()
        && addr.len() <= MAX_ADDR_LEN
        && !addr.contains(['@', ',', ' '])
        && port.parse::<u16>().is_ok_and(|p| p != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code() -> InviteCode {
        InviteCode {
            inviter: NodeId([7; 32]),
            addrs: vec!["192.168.1.20:7447".into(), "[fd00::1]:7447".into()],
            secret: InviteSecret([9; INVITE_SECRET_LEN]),
        }
    }

    #[test]
    fn a_code_reads_back_as_printed_and_in_lower_case() {
        let text = code().to_string();
        assert!(text.starts_with("harmony:"), "{text}");
        assert!(!text.contains(' '));
        assert_eq!(text.parse::<InviteCode>().unwrap(), code());
        let lower = text.to_ascii_lowercase();
        assert_eq!(lower.parse::<InviteCode>().unwrap(), code());
    }

    #[test]
    fn every_change_to_the_secret_is_caught() {
        let text = code().to_string();
        let (head, tail) = text.split_once('@').unwrap();
        let start = head.rfind(':').unwrap() + 1;
        for i in start..head.len() {
            let mut changed = head.as_bytes().to_vec();
            changed[i] = if changed[i] == b'A' { b'B' } else { b'A' };
            let changed = format!("{}@{tail}", String::from_utf8(changed).unwrap());
            let err = changed.parse::<InviteCode>().unwrap_err();
            assert!(err.reason.contains("secret"), "{}", err.reason);
        }
    }

    #[test]
    fn damaged_codes_say_what_is_wrong() {
        let text = code().to_string();
        for (bad, why) in [
            (text.replacen("harmony:", "", 1), "harmony:"),
            (text.replacen('@', "", 1), "`@`"),
            (format!("{text}:0"), "host:port"),
            (format!("{text},nas"), "host:port"),
            (
                text.replacen(&NodeId([7; 32]).to_string()[..5], "AAAAA", 1),
                "node id",
            ),
        ] {
            let err = bad.parse::<InviteCode>().unwrap_err();
            assert!(err.to_string().contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn the_id_depends_on_the_secret_only_and_debug_hides_the_secret() {
        let a = InviteSecret([1; INVITE_SECRET_LEN]);
        let b = InviteSecret([2; INVITE_SECRET_LEN]);
        assert_eq!(a.id(), a.id());
        assert_ne!(a.id(), b.id());
        assert_eq!(format!("{a:?}"), "InviteSecret(..)");
    }
}
