//! `serve`'s watcher: the working tree watched through `notify` (inotify on
//! Linux, with `notify-debouncer-full` pairing the two halves of a rename)
//! and committed by [`Repo::commit`] when the [`Pacer`] says so.
//!
//! A commit scans the whole tree, so an editor's save through a temporary
//! file and a rename, seen within one quiet period, is one edit of the file
//! (its temporary name is never recorded), and a watcher that lost events
//! costs nothing but a commit at once. Without a watcher (the inotify watch
//! limit hit, inotify unavailable), `serve` says so once and rescans every
//! [`BLIND_RESCAN`](super::pace::BLIND_RESCAN); a reloaded config tries to
//! watch again (after the limit was raised, say).

use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};
use tokio::sync::{mpsc, watch};

use super::events::{observe, Filter, Seen};
use super::pace::{Due, Pacer, RETRY};
use super::StateChanged;
use crate::repo::{CommitOptions, CommitReport, Config, Repo};
use crate::scan::NoProgress;

/// How long the debouncer holds events back: enough to pair a rename's two
/// halves (inotify reports them back to back) and fold repeats. The quiet
/// period is the pacer's, so a reloaded one needs no new watcher.
const DEBOUNCE: Duration = Duration::from_millis(100);

type Watcher = Debouncer<RecommendedWatcher, RecommendedCache>;

/// Watches the working tree at `root` and commits it after each quiet
/// period with changes, at start, every `rescan_interval`, and at once when
/// the watcher lost events; raises `changed` after each commit that
/// recorded something. Takes each new [`Config`] sent on `config` (quiet
/// period, rescan interval; `watch` itself is read once, by the caller).
/// Returns when `stop` completes, after the commit under way, if any, is
/// done.
pub async fn watch_and_commit(
    root: PathBuf,
    mut config: watch::Receiver<Config>,
    changed: StateChanged,
    stop: impl Future<Output = ()>,
) {
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    let pacer = Pacer::new(Instant::now(), &config.borrow_and_update());
    let mut watching = Watching {
        root,
        seen_tx,
        watcher: None,
        pacer,
        limit_warned: false,
        warnings: BTreeSet::new(),
        changed,
    };
    watching.arm().await;
    let mut config_open = true;
    tokio::pin!(stop);
    loop {
        let (at, due) = watching.pacer.next();
        tokio::select! {
            biased;
            () = &mut stop => break,
            Some(seen) = seen_rx.recv() => watching.take(seen),
            open = config.changed(), if config_open => match open {
                Ok(()) => {
                    let new = config.borrow_and_update().clone();
                    watching.pacer.configure(&new);
                    if watching.watcher.is_none() {
                        watching.arm().await;
                    }
                }
                // Nobody sends configs any more: keep the last one.
                Err(_) => config_open = false,
            },
            () = tokio::time::sleep_until(at.into()) => watching.commit(due).await,
        }
    }
}

/// The state of one watched tree between events.
struct Watching {
    root: PathBuf,
    /// Where the watcher's thread sends what it saw.
    seen_tx: mpsc::UnboundedSender<Seen>,
    /// `None`: not watching; the pacer rescans instead.
    watcher: Option<Watcher>,
    pacer: Pacer,
    limit_warned: bool,
    /// The last commit's warnings, so each is logged once, not per commit.
    warnings: BTreeSet<String>,
    changed: StateChanged,
}

impl Watching {
    /// Starts watching (a walk that adds one inotify watch per folder, in a
    /// blocking thread); on failure, says why and how long between rescans.
    async fn arm(&mut self) {
        let started = Instant::now();
        let root = self.root.clone();
        let tx = self.seen_tx.clone();
        let armed = tokio::task::spawn_blocking(move || start_watcher(&root, tx)).await;
        match armed {
            Ok(Ok(watcher)) => {
                tracing::info!(
                    "watching {} (set up in {:.2} s)",
                    self.root.display(),
                    started.elapsed().as_secs_f64()
                );
                self.watcher = Some(watcher);
                self.pacer.set_watching(true);
            }
            Ok(Err(e)) => self.blind(&e),
            Err(e) => self.blind(&notify::Error::generic(&e.to_string())),
        }
    }

    /// No watcher from now on: rescans instead, said once for the limit.
    fn blind(&mut self, error: &notify::Error) {
        self.watcher = None;
        self.pacer.set_watching(false);
        let every = humantime::format_duration(self.pacer.rescan_every());
        let root = self.root.display();
        match &error.kind {
            notify::ErrorKind::MaxFilesWatch if self.limit_warned => {
                tracing::info!("inotify watch limit still reached: rescanning {root} every {every}")
            }
            notify::ErrorKind::MaxFilesWatch => {
                self.limit_warned = true;
                tracing::warn!(
                    "cannot watch {root}: the inotify watch limit is reached (one watch per \
                     folder); rescanning every {every} instead, so changes show up that much \
                     later. Raise the sysctl fs.inotify.max_user_watches (e.g. `sysctl \
                     fs.inotify.max_user_watches=524288`, and in /etc/sysctl.d/ to keep it), \
                     then restart serve or send it SIGHUP"
                )
            }
            notify::ErrorKind::Io(e) if e.raw_os_error() == Some(too_many_instances()) => {
                tracing::warn!(
                    "cannot watch {root}: the inotify instance limit is reached; rescanning \
                     every {every} instead. Raise the sysctl fs.inotify.max_user_instances, \
                     then restart serve or send it SIGHUP"
                )
            }
            _ => tracing::warn!("cannot watch {root} ({error}); rescanning every {every} instead"),
        }
    }

    /// Takes what the watcher saw.
    fn take(&mut self, seen: Seen) {
        if let Some(at) = seen.changed {
            self.pacer.changed(at);
        }
        if let Some(why) = seen.lost {
            tracing::warn!("{why}: rescanning {} at once", self.root.display());
            self.pacer.lost(Instant::now());
        }
        if seen.limit && self.watcher.is_some() {
            // A new folder went past the limit: what is watched is no
            // longer the whole tree, so nothing is (the watches are freed
            // for other programs) and every change waits for a rescan.
            self.blind(&notify::Error::new(notify::ErrorKind::MaxFilesWatch));
            self.pacer.lost(Instant::now());
        }
    }

    /// Commits the tree in a blocking thread and tells the pacer.
    async fn commit(&mut self, due: Due) {
        let started = Instant::now();
        let root = self.root.clone();
        let result = tokio::task::spawn_blocking(move || -> crate::Result<CommitReport> {
            Repo::open(&root)?.commit(&CommitOptions::default(), &NoProgress)
        })
        .await;
        let report = match result {
            Ok(Ok(report)) => report,
            Ok(Err(e)) => return self.failed(&e.to_string()),
            Err(e) => return self.failed(&e.to_string()),
        };
        self.pacer.committed(started);
        let warnings: BTreeSet<String> = report.warnings.iter().cloned().collect();
        for warning in warnings.difference(&self.warnings) {
            tracing::warn!("{warning}");
        }
        self.warnings = warnings;
        if report.changed() == 0 {
            tracing::debug!(
                "{due:?}: nothing to commit ({} unchanged)",
                report.unchanged
            );
            return;
        }
        tracing::info!(
            "committed ({due:?}): {} added, {} edited, {} renamed, {} deleted in {:.2} s",
            report.added,
            report.edited,
            report.renamed,
            report.deleted,
            report.duration.as_secs_f64()
        );
        self.changed.raise();
    }

    fn failed(&mut self, why: &str) {
        tracing::warn!(
            "commit of {} failed: {why}; trying again in {}",
            self.root.display(),
            humantime::format_duration(RETRY)
        );
        self.pacer.failed(Instant::now());
    }
}

/// A debounced watcher of the whole tree under `root`, each batch filtered
/// on the watcher's own thread and sent on `tx` when it says something.
fn start_watcher(root: &Path, tx: mpsc::UnboundedSender<Seen>) -> notify::Result<Watcher> {
    let mut filter = Filter::new(root);
    let handler = move |batch: DebounceEventResult| {
        let seen = observe(batch, |event| filter.relevant(event));
        if !seen.is_empty() {
            // The receiver is gone only when serve stops.
            let _ = tx.send(seen);
        }
    };
    let mut watcher = new_debouncer(DEBOUNCE, Some(DEBOUNCE), handler)?;
    // On failure (the limit hit halfway), dropping the watcher frees the
    // watches it did add.
    watcher.watch(root, RecursiveMode::Recursive)?;
    Ok(watcher)
}

/// EMFILE, which inotify_init returns at the per-user instance limit.
fn too_many_instances() -> i32 {
    rustix::io::Errno::MFILE.raw_os_error()
}
