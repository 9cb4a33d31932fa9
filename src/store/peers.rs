//! Peers and progress: the trusted peers, how far this node has merged
//! each peer's changes, and how far each peer has merged ours (which is
//! what lets a tombstone be collected).

use rusqlite::{params, OptionalExtension};

use super::{fixed_meta, PeerRecord, Result, Store, StoreError, Writer};
use crate::model::NodeId;

impl Store {
    /// How far this node has merged `peer`'s changes, if it knows.
    pub fn peer_progress(&self, peer: NodeId) -> Result<Option<([u8; 8], u64)>> {
        let row: Option<(Vec<u8>, i64)> = self
            .conn
            .query_row(
                "SELECT incarnation, seq FROM peer_progress WHERE node_id = ?1",
                [peer.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(inc, seq)| Ok((fixed_meta(inc, "peer incarnation")?, seq as u64)))
            .transpose()
    }

    /// Whether a compact holder run of `peer` could not be placed here, so
    /// that the next session asks for its changes as whole entries.
    pub fn peer_wants_whole(&self, peer: NodeId) -> Result<bool> {
        let whole: Option<bool> = self
            .conn
            .query_row(
                "SELECT whole FROM peer_progress WHERE node_id = ?1",
                [peer.0],
                |r| r.get(0),
            )
            .optional()?;
        Ok(whole.unwrap_or(false))
    }

    /// The lowest change sequence of this node that every direct peer (a
    /// trusted peer, or a node this one synced with) is known to have merged.
    /// `None` when there is no peer at all.
    pub fn merged_by_all_peers(&self) -> Result<Option<u64>> {
        let row: (i64, Option<i64>) = self.conn.query_row(
            "SELECT COUNT(*), MIN(COALESCE(h.seq, 0)) FROM (
                 SELECT node_id FROM peers UNION SELECT node_id FROM peer_has_mine
             ) AS p LEFT JOIN peer_has_mine AS h ON h.node_id = p.node_id",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((row.0 > 0).then(|| row.1.unwrap_or(0) as u64))
    }

    /// Every trusted peer, by name.
    pub fn peers(&self) -> Result<Vec<PeerRecord>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, node_id, addr, added_ms FROM peers ORDER BY name")?;
        let rows = stmt.query_map([], PeerRecord::from_row)?;
        rows.map(|r| r.map_err(StoreError::from)).collect()
    }
}

impl Writer<'_> {
    /// Records that `peer` has merged this node's changes up to `seq`.
    pub fn set_peer_has_mine(&self, peer: NodeId, seq: u64) -> Result<()> {
        self.txn
            .prepare_cached("INSERT OR REPLACE INTO peer_has_mine(node_id, seq) VALUES (?1, ?2)")?
            .execute(params![peer.0, seq as i64])?;
        Ok(())
    }

    /// Records that every change of `peer` up to `seq` (in its database
    /// `incarnation`) is merged here, and whether its changes after that
    /// must come as whole entries (`whole`, see [`Store::peer_wants_whole`]).
    pub fn set_peer_progress(
        &self,
        peer: NodeId,
        incarnation: [u8; 8],
        seq: u64,
        whole: bool,
    ) -> Result<()> {
        self.txn
            .prepare_cached(
                "INSERT OR REPLACE INTO peer_progress(node_id, incarnation, seq, whole)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![peer.0, incarnation.to_vec(), seq as i64, whole])?;
        Ok(())
    }

    /// Records that `peer`'s changes after the point already recorded must
    /// come as whole entries; without a recorded point, all of them do
    /// anyway.
    pub fn set_peer_wants_whole(&self, peer: NodeId) -> Result<()> {
        self.txn
            .prepare_cached("UPDATE peer_progress SET whole = 1 WHERE node_id = ?1")?
            .execute([peer.0])?;
        Ok(())
    }

    /// Trusts a peer; fails when its name or node id is taken already.
    pub fn add_peer(&self, peer: &PeerRecord) -> Result<()> {
        self.txn
            .prepare_cached(
                "INSERT INTO peers(name, node_id, addr, added_ms) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![peer.name, peer.node_id.0, peer.addr, peer.added_ms])?;
        Ok(())
    }

    /// Forgets the peer called `name`; false if there was none.
    pub fn remove_peer(&self, name: &str) -> Result<bool> {
        Ok(self
            .txn
            .prepare_cached("DELETE FROM peers WHERE name = ?1")?
            .execute([name])?
            > 0)
    }
}
