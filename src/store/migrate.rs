//! Upgrading a state database written by an older Harmony, in place and in
//! one transaction (a crash leaves it as it was, and the next open tries
//! again).
//!
//! Schema 2 to 3: node records gained their placement preferences. Each
//! stored record is read in the old encoding and written again, unchanged
//! otherwise and under its change sequence, with no preferences; its digest
//! and the state digest change with the encoding, the same way on every
//! location that upgrades.
//!
//! Schema 3 to 4: the `invites` table (`harmony invite`), empty.
//!
//! Schema 4 to 5: `entries.body_seq` (the last change other than in holder
//! slots; set to the row's `seq`, so every entry changed since a peer's
//! point goes to it whole once, as before), `entries.body_from` (none) and
//! `peer_progress.whole`.
//!
//! Schema 5 to 6: node records gained their node's signature
//! ([`crate::model::RecordProof`]). Each stored record is written again as
//! in the step from 2, with no proof; a location signs its own record when
//! it is next opened, and a peer's signed record replaces an unsigned one
//! of the same counter. `nodes.from_peer` (none).

use serde::Deserialize;

use super::{decode, Result, Store, StoreError};
use crate::model::{NodeId, NodeRecord, Preferences};

/// A node record as schema 2 stored it.
#[derive(Deserialize)]
struct NodeRecordV2 {
    id: NodeId,
    name: String,
    addrs: Vec<String>,
    counter: u64,
}

/// A node record as schemas 3 to 5 stored it.
#[derive(Deserialize)]
struct NodeRecordV5 {
    id: NodeId,
    name: String,
    addrs: Vec<String>,
    counter: u64,
    preferences: Preferences,
}

impl From<NodeRecordV2> for NodeRecordV5 {
    fn from(old: NodeRecordV2) -> Self {
        NodeRecordV5 {
            id: old.id,
            name: old.name,
            addrs: old.addrs,
            counter: old.counter,
            preferences: Preferences::default(),
        }
    }
}

impl From<NodeRecordV5> for NodeRecord {
    fn from(old: NodeRecordV5) -> Self {
        NodeRecord {
            id: old.id,
            name: old.name,
            addrs: old.addrs,
            counter: old.counter,
            preferences: old.preferences,
            proof: None,
        }
    }
}

/// The `invites` table as schema 4 made it.
const INVITES_V4: &str = "CREATE TABLE invites (
    id         BLOB PRIMARY KEY,
    secret     BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    used_by    BLOB,
    used_ms    INTEGER
) WITHOUT ROWID;";

/// Brings the database from schema `found` to `to`, one step after the
/// other, all in one transaction; an error for a version it does not know
/// how to upgrade.
pub(super) fn upgrade(store: &mut Store, found: i64, to: i64) -> Result<()> {
    if !(2..to).contains(&found) || to != 6 {
        return Err(StoreError::SchemaVersion { found });
    }
    let writer = store.write()?;
    // Node records straight into the newest encoding.
    if found == 2 {
        rewrite_node_records(&writer, "node record (schema 2)", |old: NodeRecordV2| {
            NodeRecordV5::from(old).into()
        })?;
    } else {
        rewrite_node_records(&writer, "node record (schema 5)", |old: NodeRecordV5| {
            NodeRecord::from(old)
        })?;
    }
    if found <= 3 {
        writer.txn.execute_batch(INVITES_V4)?;
    }
    if found <= 4 {
        writer.txn.execute_batch(COMPACT_HOLDERS_V5)?;
    }
    writer
        .txn
        .execute_batch("ALTER TABLE nodes ADD COLUMN from_peer BLOB;")?;
    writer.txn.pragma_update(None, "user_version", to)?;
    writer.commit()
}

/// Schema 4 to 5.
const COMPACT_HOLDERS_V5: &str = "
    ALTER TABLE entries ADD COLUMN body_seq INTEGER NOT NULL DEFAULT 0;
    UPDATE entries SET body_seq = seq;
    ALTER TABLE entries ADD COLUMN body_from BLOB;
    ALTER TABLE peer_progress ADD COLUMN whole INTEGER NOT NULL DEFAULT 0;";

/// Every stored node record, read in an older encoding (`Old`, named
/// `what` in errors) and written again as `upgraded` makes it.
fn rewrite_node_records<Old: serde::de::DeserializeOwned>(
    writer: &super::Writer<'_>,
    what: &str,
    upgraded: impl Fn(Old) -> NodeRecord,
) -> Result<()> {
    let rows: Vec<Vec<u8>> = writer
        .txn
        .prepare("SELECT data FROM nodes")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for data in rows {
        writer.rewrite_node(&upgraded(decode(what, &data)?))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rusqlite::params;

    use super::*;
    use crate::chunk::ChunkParams;
    use crate::model::RepoId;
    use crate::store::Settings;

    fn settings() -> Settings {
        Settings {
            repo_id: RepoId([1; 16]),
            node_name: "t".into(),
            listen: "127.0.0.1:0".into(),
            chunking: ChunkParams::DEFAULT,
        }
    }

    /// A new database turned into one of schema `version` (3 or 2, which
    /// had no `invites` table and no columns of schema 5).
    fn store_of_schema(path: &std::path::Path, version: i64) -> Store {
        let store = Store::create(path, &settings()).unwrap();
        store
            .conn
            .execute_batch(
                "DROP TABLE invites;
                 ALTER TABLE entries DROP COLUMN body_seq;
                 ALTER TABLE entries DROP COLUMN body_from;
                 ALTER TABLE peer_progress DROP COLUMN whole;
                 ALTER TABLE nodes DROP COLUMN from_peer;",
            )
            .unwrap();
        store
            .conn
            .pragma_update(None, "user_version", version)
            .unwrap();
        store
    }

    #[test]
    fn a_schema_4_database_sends_each_changed_entry_whole_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let entry = crate::model::FileEntry::new_file(
            crate::model::FileId([3; 16]),
            crate::model::RepoPath::new("a").unwrap(),
            crate::model::Content::Deleted,
            crate::model::Stamp {
                node: NodeId([1; 32]),
                counter: 1,
                at_ms: 0,
            },
        );
        {
            let mut store = Store::create(&path, &settings()).unwrap();
            let writer = store.write().unwrap();
            writer.put_entry(&entry).unwrap();
            writer
                .set_peer_progress(NodeId([2; 32]), [1; 8], 9, true)
                .unwrap();
            writer.commit().unwrap();
            store
                .conn
                .execute_batch(
                    "ALTER TABLE entries DROP COLUMN body_seq;
                     ALTER TABLE entries DROP COLUMN body_from;
                     ALTER TABLE peer_progress DROP COLUMN whole;
                 ALTER TABLE nodes DROP COLUMN from_peer;
                     PRAGMA user_version = 4;",
                )
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let changes = store.entries_between(0, u64::MAX, 10).unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].body_seq, changes[0].seq);
        assert_eq!(changes[0].body_from, None);
        assert_eq!(changes[0].entry, entry);
        assert!(!store.peer_wants_whole(NodeId([2; 32])).unwrap());
    }

    #[test]
    fn a_schema_3_database_opens_with_its_peers_and_takes_invites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let mut store = store_of_schema(&path, 3);
            let writer = store.write().unwrap();
            writer
                .add_peer(&crate::store::PeerRecord {
                    name: "nas".into(),
                    node_id: NodeId([4; 32]),
                    addr: "nas:7447".into(),
                    added_ms: 1,
                })
                .unwrap();
            writer.commit().unwrap();
        }
        let mut store = Store::open(&path).unwrap();
        assert_eq!(store.peers().unwrap()[0].name, "nas");
        assert!(!store.invite_pending(0).unwrap());
        let secret = crate::model::InviteSecret([8; 16]);
        let writer = store.write().unwrap();
        writer.add_invite(&secret, 0, 10).unwrap();
        writer.commit().unwrap();
        assert!(store.invite_pending(5).unwrap());
        assert!(!store.invite_pending(10).unwrap());
        assert_eq!(store.invite(secret.id()).unwrap().unwrap().secret, secret);
        drop(store);
        let version: i64 = Store::open(&path)
            .unwrap()
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, crate::store::SCHEMA_VERSION);
    }

    #[test]
    fn a_schema_2_database_opens_with_its_node_records_and_a_consistent_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let legacy = |id: u8, name: &str| {
            let record = (
                NodeId([id; 32]),
                name.to_owned(),
                vec![format!("h{id}:1")],
                7u64,
            );
            postcard::to_stdvec(&record).unwrap()
        };
        {
            let store = store_of_schema(&path, 2);
            for (i, id) in [1u8, 2].into_iter().enumerate() {
                store
                    .conn
                    .execute(
                        "INSERT INTO nodes(node_id, seq, digest, data) VALUES (?1, ?2, ?3, ?4)",
                        params![vec![id; 32], i as i64 + 1, vec![id; 32], legacy(id, "old")],
                    )
                    .unwrap();
            }
            // The state digest of schema 2: the XOR of the old row digests.
            let digest = [1u8 ^ 2; 32];
            store
                .conn
                .execute(
                    "UPDATE meta SET value = ?1 WHERE key = 'state_digest'",
                    [digest.to_vec()],
                )
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let nodes = store.nodes().unwrap();
        assert_eq!(nodes.len(), 2);
        assert!(nodes
            .iter()
            .all(|n| n.name == "old" && n.counter == 7 && n.preferences == Preferences::default()));
        let mut expected = [0u8; 32];
        for node in &nodes {
            for (e, d) in expected.iter_mut().zip(node.digest()) {
                *e ^= d;
            }
        }
        assert_eq!(store.state_digest().unwrap(), expected);
        // Opened again: already upgraded.
        drop(store);
        assert_eq!(Store::open(&path).unwrap().nodes().unwrap(), nodes);
    }

    #[test]
    fn a_schema_5_database_keeps_its_node_records_unsigned_until_their_nodes_sign_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let preferences = Preferences {
            wanted: Some("standard".into()),
            ..Preferences::default()
        };
        {
            let store = Store::create(&path, &settings()).unwrap();
            let old = (
                NodeId([5; 32]),
                "nas".to_owned(),
                vec!["nas:7447".to_owned()],
                9u64,
                preferences.clone(),
            );
            store
                .conn
                .execute(
                    "INSERT INTO nodes(node_id, seq, digest, data) VALUES (?1, 1, ?2, ?3)",
                    params![
                        vec![5u8; 32],
                        vec![5u8; 32],
                        postcard::to_stdvec(&old).unwrap()
                    ],
                )
                .unwrap();
            store
                .conn
                .execute(
                    "UPDATE meta SET value = ?1 WHERE key = 'state_digest'",
                    [vec![5u8; 32]],
                )
                .unwrap();
            store
                .conn
                .execute_batch("ALTER TABLE nodes DROP COLUMN from_peer")
                .unwrap();
            store.conn.pragma_update(None, "user_version", 5).unwrap();
        }
        let store = Store::open(&path).unwrap();
        let nodes = store.nodes().unwrap();
        assert_eq!(nodes.len(), 1);
        let node = &nodes[0];
        assert_eq!((node.name.as_str(), node.counter), ("nas", 9));
        assert_eq!((&node.preferences, &node.proof), (&preferences, &None));
        assert_eq!(store.state_digest().unwrap(), node.digest());
    }
}
