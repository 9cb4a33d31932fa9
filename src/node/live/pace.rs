//! When the watched tree is committed: the decisions of
//! [`watch_and_commit`](super::watch_and_commit) with no watcher, clock or
//! file system in them, so that each rule is tested in memory (as
//! quinn-proto is tested without sockets).
//!
//! Every commit scans the whole tree (unchanged files by their stat fields
//! only), so a "rescan" is simply a commit that no event asked for: one
//! after `rescan_interval` without any commit, one at once after the watcher
//! lost events, and one every [`BLIND_RESCAN`] while there is no watcher.

use std::time::{Duration, Instant};

use crate::repo::Config;

/// How long a burst of changes may postpone its commit, in quiet periods: a
/// file written without a pause (a download, a log) is still recorded ten
/// quiet periods after the first change, rather than never.
const MAX_DELAY_QUIET_PERIODS: u32 = 10;

/// Without a watcher (the inotify watch limit was hit), the whole tree is
/// rescanned this often, or every `rescan_interval` when that is shorter.
/// A minute is Syncthing's old default for unwatched folders: changes are
/// seen within a minute, and the cost, a walk that stats every file (about
/// a second of one core for 100,000 files), stays near 1 % of one core.
pub(super) const BLIND_RESCAN: Duration = Duration::from_secs(60);

/// After a commit failed (the database busy, the tree unmounted and the
/// deletion of everything refused), wait this long before the next try, so
/// the log gets one line per try and not one per event.
pub(super) const RETRY: Duration = Duration::from_secs(30);

/// Why a commit is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Due {
    /// The watcher saw changes and the tree has been quiet since (or the
    /// changes went on for too long).
    Changes,
    /// The watcher lost events (its queue overflowed, it failed): only a
    /// rescan knows what changed.
    Lost,
    /// The periodic rescan: at start, after `rescan_interval` (or
    /// [`BLIND_RESCAN`] without a watcher) with no commit, or a retry.
    Rescan,
}

/// The pace of commits of one watched tree.
#[derive(Clone, Debug)]
pub(super) struct Pacer {
    quiet: Duration,
    rescan_interval: Duration,
    watching: bool,
    /// The first and the last change seen since the last commit started.
    first_change: Option<Instant>,
    last_change: Option<Instant>,
    /// When the watcher said it lost events, if it did since.
    lost: Option<Instant>,
    /// When the last commit started; the first one is due at `created`.
    last_scan: Option<Instant>,
    created: Instant,
    /// No commit before this (after a failed one).
    not_before: Option<Instant>,
}

impl Pacer {
    /// A pacer whose first commit is due at once: the tree may have changed
    /// while nothing watched it.
    pub(super) fn new(now: Instant, config: &Config) -> Pacer {
        Pacer {
            quiet: config.quiet_period,
            rescan_interval: config.rescan_interval,
            watching: false,
            first_change: None,
            last_change: None,
            lost: None,
            last_scan: None,
            created: now,
            not_before: None,
        }
    }

    /// Takes the new quiet period and rescan interval (a reloaded config).
    pub(super) fn configure(&mut self, config: &Config) {
        self.quiet = config.quiet_period;
        self.rescan_interval = config.rescan_interval;
    }

    /// Whether a watcher is in place; without one, rescans come every
    /// [`BLIND_RESCAN`] at most.
    pub(super) fn set_watching(&mut self, watching: bool) {
        self.watching = watching;
    }

    /// The watcher saw a change (one that a commit may record) at `at`.
    pub(super) fn changed(&mut self, at: Instant) {
        self.first_change = Some(self.first_change.map_or(at, |first| first.min(at)));
        self.last_change = Some(self.last_change.map_or(at, |last| last.max(at)));
    }

    /// The watcher lost events at `at`: a rescan is due at once.
    pub(super) fn lost(&mut self, at: Instant) {
        self.lost = Some(self.lost.map_or(at, |lost| lost.min(at)));
    }

    /// The time between two rescans that no event asked for.
    pub(super) fn rescan_every(&self) -> Duration {
        if self.watching {
            self.rescan_interval
        } else {
            self.rescan_interval.min(BLIND_RESCAN)
        }
    }

    /// When the next commit is due, and why (the earliest reason).
    pub(super) fn next(&self) -> (Instant, Due) {
        let rescan = self
            .last_scan
            .map_or(self.created, |at| at + self.rescan_every());
        let mut next = (rescan, Due::Rescan);
        if let (Some(first), Some(last)) = (self.first_change, self.last_change) {
            let changes = (last + self.quiet).min(first + self.quiet * MAX_DELAY_QUIET_PERIODS);
            if changes < next.0 {
                next = (changes, Due::Changes);
            }
        }
        if let Some(lost) = self.lost {
            if lost <= next.0 {
                next = (lost, Due::Lost);
            }
        }
        match self.not_before {
            Some(retry) if retry > next.0 => (retry, next.1),
            _ => next,
        }
    }

    /// A commit that started at `started` finished: what was seen before it
    /// started is recorded; what came since is still to be.
    pub(super) fn committed(&mut self, started: Instant) {
        self.last_scan = Some(started);
        self.not_before = None;
        if self.lost.is_some_and(|lost| lost <= started) {
            self.lost = None;
        }
        match self.last_change {
            Some(last) if last > started => self.first_change = Some(started),
            _ => {
                self.first_change = None;
                self.last_change = None;
            }
        }
    }

    /// A commit failed at `now`: everything it was due for is still due,
    /// after [`RETRY`].
    pub(super) fn failed(&mut self, now: Instant) {
        self.not_before = Some(now + RETRY);
    }
}

#[cfg(test)]
mod tests {
    use super::{Due, Pacer, BLIND_RESCAN, RETRY};
    use crate::repo::Config;
    use std::time::{Duration, Instant};

    const QUIET: Duration = Duration::from_secs(1);
    const HOUR: Duration = Duration::from_secs(3600);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A watching pacer whose first commit (at start) is done.
    fn watching(t0: Instant) -> Pacer {
        let mut pacer = Pacer::new(t0, &Config::default());
        pacer.set_watching(true);
        assert_eq!(pacer.next(), (t0, Due::Rescan), "first commit at once");
        pacer.committed(t0);
        pacer
    }

    #[test]
    fn idle_means_the_hourly_rescan_only() {
        let t0 = Instant::now();
        let pacer = watching(t0);
        assert_eq!(pacer.next(), (t0 + HOUR, Due::Rescan));
    }

    #[test]
    fn a_burst_is_one_commit_a_quiet_period_after_its_last_change() {
        let t0 = Instant::now();
        let mut pacer = watching(t0);
        // An editor's save: a temp file written, then renamed over.
        pacer.changed(t0 + ms(5_000));
        pacer.changed(t0 + ms(5_002));
        pacer.changed(t0 + ms(5_300));
        assert_eq!(pacer.next(), (t0 + ms(6_300), Due::Changes));
        pacer.committed(t0 + ms(6_300));
        assert_eq!(pacer.next(), (t0 + ms(6_300) + HOUR, Due::Rescan));
    }

    #[test]
    fn a_change_that_never_stops_is_committed_after_ten_quiet_periods() {
        let t0 = Instant::now();
        let mut pacer = watching(t0);
        for i in 0..200 {
            pacer.changed(t0 + ms(100 * i));
        }
        assert_eq!(pacer.next(), (t0 + QUIET * 10, Due::Changes));
    }

    #[test]
    fn a_change_during_a_commit_is_committed_after_it() {
        let t0 = Instant::now();
        let mut pacer = watching(t0);
        pacer.changed(t0 + ms(100));
        let started = t0 + ms(1_100);
        pacer.changed(started + ms(50));
        pacer.committed(started);
        assert_eq!(pacer.next(), (started + ms(50) + QUIET, Due::Changes));
        // A change seen before the commit started is not committed twice.
        let mut pacer = watching(t0);
        pacer.changed(t0 + ms(100));
        pacer.committed(t0 + ms(1_100));
        assert_eq!(pacer.next().1, Due::Rescan);
    }

    #[test]
    fn lost_events_mean_a_rescan_at_once() {
        let t0 = Instant::now();
        let mut pacer = watching(t0);
        pacer.changed(t0 + ms(10));
        pacer.lost(t0 + ms(20));
        assert_eq!(pacer.next(), (t0 + ms(20), Due::Lost));
        pacer.committed(t0 + ms(25));
        assert_eq!(pacer.next(), (t0 + ms(25) + HOUR, Due::Rescan));
    }

    #[test]
    fn without_a_watcher_the_tree_is_rescanned_every_minute() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(t0, &Config::default());
        pacer.set_watching(false);
        pacer.committed(t0);
        assert_eq!(pacer.next(), (t0 + BLIND_RESCAN, Due::Rescan));
        // A shorter rescan interval wins.
        let config = Config {
            rescan_interval: Duration::from_secs(5),
            ..Config::default()
        };
        pacer.configure(&config);
        assert_eq!(pacer.next(), (t0 + Duration::from_secs(5), Due::Rescan));
        // Watching again: back to the rescan interval.
        pacer.configure(&Config::default());
        pacer.set_watching(true);
        assert_eq!(pacer.next(), (t0 + HOUR, Due::Rescan));
    }

    #[test]
    fn a_failed_commit_is_retried_later_with_all_it_was_due_for() {
        let t0 = Instant::now();
        let mut pacer = watching(t0);
        pacer.changed(t0 + ms(10));
        pacer.failed(t0 + ms(1_010));
        assert_eq!(pacer.next(), (t0 + ms(1_010) + RETRY, Due::Changes));
        pacer.lost(t0 + ms(2_000));
        assert_eq!(pacer.next().0, t0 + ms(1_010) + RETRY);
        pacer.committed(t0 + ms(1_010) + RETRY);
        assert_eq!(pacer.next().1, Due::Rescan);
    }

    #[test]
    fn a_new_quiet_period_applies_to_what_is_pending() {
        let t0 = Instant::now();
        let mut pacer = watching(t0);
        pacer.changed(t0 + ms(100));
        let config = Config {
            quiet_period: ms(250),
            ..Config::default()
        };
        pacer.configure(&config);
        assert_eq!(pacer.next(), (t0 + ms(350), Due::Changes));
    }
}
