//! Noticing changes made here by other commands while `serve` runs: a
//! `harmony commit` (with `--no-watch`), `get`, `drop` or `resolve` in
//! another process changes the state database, not this process's memory.
//! Reading the change sequence once a second costs one indexed query, and
//! passes such a change on as fast as the watcher's own commits.

use std::path::PathBuf;
use std::time::Duration;

use super::Inbox;
use crate::model::STATE_DIR;
use crate::store::{Store, DB_FILE};

/// How often the change sequence is read.
const EVERY: Duration = Duration::from_secs(1);

/// Raises `inbox` whenever the change sequence of the location at `root`
/// moves; runs until dropped.
pub(super) async fn notice_local_changes(root: PathBuf, inbox: Inbox) {
    let db = root.join(STATE_DIR).join(DB_FILE);
    let mut last = None;
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let path = db.clone();
        let read = tokio::task::spawn_blocking(move || Store::open(&path)?.change_seq()).await;
        let Ok(Ok(seq)) = read else {
            continue;
        };
        if last.is_some_and(|last| last != seq) {
            inbox.local_change();
        }
        last = Some(seq);
    }
}
