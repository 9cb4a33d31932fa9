//! Peer addresses learned while running (LAN discovery), as opposed to the
//! ones the user typed in `peer add`.

use rusqlite::params;

use super::{Result, Writer};
use crate::model::NodeId;

impl Writer<'_> {
    /// Records that the trusted peer `node` is now reachable at `addr`;
    /// false if no trusted peer has that id (it was removed meanwhile).
    pub fn set_peer_addr(&self, node: NodeId, addr: &str) -> Result<bool> {
        Ok(self
            .txn
            .prepare_cached("UPDATE peers SET addr = ?1 WHERE node_id = ?2")?
            .execute(params![addr, node.0])?
            > 0)
    }
}
