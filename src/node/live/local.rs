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
/// moves; runs until dropped. The database stays open between reads (an
/// open costs more than the read), and is opened again after a failure.
pub(super) async fn notice_local_changes(root: PathBuf, inbox: Inbox) {
    let db = root.join(STATE_DIR).join(DB_FILE);
    let mut store: Option<Store> = None;
    let mut last = None;
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let path = db.clone();
        let open = store.take();
        let read = tokio::task::spawn_blocking(move || {
            let store = match open {
                Some(store) => store,
                None => Store::open(&path)?,
            };
            let seq = store.change_seq()?;
            Ok::<_, crate::store::StoreError>((store, seq))
        })
        .await;
        let Ok(Ok((open, seq))) = read else {
            continue;
        };
        store = Some(open);
        if last.is_some_and(|last| last != seq) {
            inbox.local_change();
        }
        last = Some(seq);
    }
}
