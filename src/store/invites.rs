//! The invites this node made (`harmony invite`): pending until a node
//! pairs with one or it expires. Which join an invite admits is decided in
//! the node service (by `proto::pair`); this file only keeps them.

use rusqlite::{params, OptionalExtension};

use super::{Result, Store, Writer};
use crate::model::{InviteId, InviteSecret, NodeId, StoredInvite};

/// Used and expired invites are forgotten this long after their expiry
/// (a join with one then reads "not one of its invites").
const FORGET_AFTER_MS: i64 = 7 * 24 * 3600 * 1000;

impl Store {
    /// Whether an invite is pending at `now_ms`: unused and not expired.
    pub fn invite_pending(&self, now_ms: i64) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM invites WHERE used_by IS NULL AND expires_ms > ?1)",
            [now_ms],
            |r| r.get(0),
        )?)
    }

    /// The invite `id`, if this node made it (and has not forgotten it).
    pub fn invite(&self, id: InviteId) -> Result<Option<StoredInvite>> {
        invite(&self.conn, id)
    }
}

fn invite(conn: &rusqlite::Connection, id: InviteId) -> Result<Option<StoredInvite>> {
    let row: Option<(Vec<u8>, i64, Option<Vec<u8>>)> = conn
        .prepare_cached("SELECT secret, expires_ms, used_by FROM invites WHERE id = ?1")?
        .query_row([id.0.to_vec()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    row.map(|(secret, expires_ms, used_by)| {
        Ok(StoredInvite {
            secret: InviteSecret(super::fixed_meta(secret, "invite secret")?),
            expires_ms,
            used_by: used_by
                .map(|id| super::fixed_meta(id, "invite user").map(NodeId))
                .transpose()?,
        })
    })
    .transpose()
}

impl Writer<'_> {
    /// Records a new invite with `secret`, admitting a join until
    /// `expires_ms`; forgets invites long expired.
    pub fn add_invite(&self, secret: &InviteSecret, now_ms: i64, expires_ms: i64) -> Result<()> {
        self.txn
            .prepare_cached("DELETE FROM invites WHERE expires_ms < ?1")?
            .execute([now_ms - FORGET_AFTER_MS])?;
        self.txn
            .prepare_cached(
                "INSERT INTO invites(id, secret, created_ms, expires_ms) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                secret.id().0.to_vec(),
                secret.0.to_vec(),
                now_ms,
                expires_ms
            ])?;
        Ok(())
    }

    /// The invite `id`, read in this transaction (so that judging and
    /// consuming it cannot race another join).
    pub fn invite(&self, id: InviteId) -> Result<Option<StoredInvite>> {
        invite(&self.txn, id)
    }

    /// Marks the invite `id` used by `node` at `now_ms`.
    pub fn use_invite(&self, id: InviteId, node: NodeId, now_ms: i64) -> Result<()> {
        self.txn
            .prepare_cached("UPDATE invites SET used_by = ?2, used_ms = ?3 WHERE id = ?1")?
            .execute(params![id.0.to_vec(), node.0.to_vec(), now_ms])?;
        Ok(())
    }
}
