//! `node::live::watch_and_commit` in process, as the live orchestrator
//! calls it: it raises `StateChanged` after a commit that recorded
//! something, takes a new config from its watch channel, and returns when
//! told to stop.

#[path = "support/mod.rs"]
mod support;

use std::fs;
use std::time::Duration;

use harmony::node::live::{watch_and_commit, StateChanged};
use harmony::Config;
use support::Location;
use tokio::sync::{oneshot, watch};
use tokio::time::timeout;

/// A bound for a stuck test, not a measure of speed.
const STUCK: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_raise_state_changed_and_a_new_quiet_period_applies_at_once() {
    let loc = Location::new("alpha");
    let root = loc.root();
    fs::write(root.join("before.txt"), b"there at start").unwrap();
    // A quiet period of an hour: only the commit at start, or a config
    // taken while running, can commit anything within this test.
    let config = Config {
        quiet_period: Duration::from_secs(3600),
        ..Config::default()
    };
    let (config_tx, config_rx) = watch::channel(config.clone());
    let changed = StateChanged::default();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(watch_and_commit(
        root.clone(),
        config_rx,
        changed.clone(),
        async {
            let _ = stop_rx.await;
        },
    ));

    timeout(STUCK, changed.inbox().take())
        .await
        .expect("the commit at start");
    assert_eq!(loc.paths(), ["before.txt"]);

    fs::write(root.join("later.txt"), b"written while watched").unwrap();
    config_tx
        .send(Config {
            quiet_period: Duration::from_millis(100),
            ..config
        })
        .unwrap();
    timeout(STUCK, changed.inbox().take())
        .await
        .expect("committed a tenth of a second after the change, not an hour");
    assert_eq!(loc.paths(), ["before.txt", "later.txt"]);

    stop_tx.send(()).unwrap();
    timeout(STUCK, task).await.expect("stops").unwrap();
}
