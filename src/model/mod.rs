//! The pure data model: ids, version vectors, replicated registers and file
//! entries, with the merge rules. No I/O and no async here, so every rule can
//! be tested exhaustively (see the property tests in `tests.rs`, and the
//! state digest's in `digest.rs`).

pub mod digest;
mod entry;
mod ids;
mod invite;
mod node;
mod path;
pub mod placement;
pub mod preferred;
mod register;
mod size;
mod version;

#[cfg(test)]
mod tests;

pub use entry::{Content, FileEntry, Holding, Kind, LinkTarget, Resolved, Stamp, MAX_LINK_TARGET};
pub use ids::{ContentHash, FileId, FileIdSequence, IdParseError, NodeId, RepoId};
pub use invite::{
    InviteCode, InviteCodeError, InviteId, InviteSecret, StoredInvite, INVITE_SECRET_LEN,
    MAX_INVITE_ADDRS,
};
pub use node::{
    numcopies, NodeRecord, NumCopiesSetting, Preferences, RecordProof, MAX_ADDR_LEN, MAX_GROUPS,
    MAX_NODE_ADDRS, MAX_NODE_NAME, MAX_NUMCOPIES, MAX_PROOF_KEY, MAX_PROOF_SIGNATURE,
};
pub use path::{PathError, RepoPath, MAX_NAME_BYTES, MAX_PATH_BYTES, STATE_DIR};
pub use placement::Placed;
pub use register::{MvRegister, Versioned};
pub use size::{format_size, parse_size};
pub use version::VersionVector;
