//! The log of refused untrusted nodes, bounded: a stranger dialing again and
//! again (or a flood of fresh identities) must not turn `serve`'s log into
//! the bottleneck. Measured before (`examples/bench_refuse.rs`): two lines,
//! ~640 bytes, per refused handshake, 1.7 MB/s at ~1,000 refusals a second.
//!
//! Each node is named once, with the `peer add` line its owner would need;
//! after that, and past [`MAX_NAMED`] distinct nodes, refusals are counted
//! and summed up in one line at most every [`SUMMARY_EVERY`].

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::model::NodeId;

/// Distinct untrusted nodes named in full; more are only counted.
pub(crate) const MAX_NAMED: usize = 256;
/// Shortest time between two summary lines.
pub(crate) const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// What to log for one refusal.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// Name the node, with the command that would let it in.
    Name,
    /// Nothing now: counted for the next summary.
    Counted,
    /// Sum up this refusal and the ones counted since the last line.
    Summary(u64),
}

/// Which refusals were logged; shared by every handshake of one node.
#[derive(Debug)]
pub(crate) struct RefusalLog {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    named: HashSet<NodeId>,
    counted: u64,
    last_line: Instant,
}

impl RefusalLog {
    pub(crate) fn new(now: Instant) -> RefusalLog {
        RefusalLog {
            state: Mutex::new(State {
                named: HashSet::new(),
                counted: 0,
                last_line: now,
            }),
        }
    }

    /// Records that `node` was refused at `now`, and says what to log.
    pub(crate) fn refused(&self, node: NodeId, now: Instant) -> Entry {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.named.len() < MAX_NAMED && state.named.insert(node) {
            state.last_line = now;
            return Entry::Name;
        }
        state.counted += 1;
        if now.duration_since(state.last_line) < SUMMARY_EVERY {
            return Entry::Counted;
        }
        state.last_line = now;
        Entry::Summary(std::mem::take(&mut state.counted))
    }

    /// Logs the refusal of `node` as [`RefusalLog::refused`] decides.
    pub(crate) fn log(&self, node: NodeId) {
        match self.refused(node, Instant::now()) {
            Entry::Name => tracing::warn!(
                "refused a connection from node {node}: it is not a trusted peer \
                 (add it with `harmony peer add NAME {node} ADDR` if you trust it)"
            ),
            Entry::Counted => {
                tracing::debug!("refused a connection from node {node}: not a trusted peer")
            }
            Entry::Summary(count) => tracing::warn!(
                "refused {count} more connections from untrusted nodes (each named once above) \
                 since the last such line"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(i: u8) -> NodeId {
        NodeId([i; 32])
    }

    #[test]
    fn each_node_is_named_once_and_repeats_are_summed_up_at_most_once_a_minute() {
        let start = Instant::now();
        let log = RefusalLog::new(start);
        assert_eq!(log.refused(node(1), start), Entry::Name);
        assert_eq!(log.refused(node(2), start), Entry::Name);
        for _ in 0..1000 {
            assert_eq!(log.refused(node(1), start), Entry::Counted);
        }
        let later = start + SUMMARY_EVERY;
        assert_eq!(log.refused(node(2), later), Entry::Summary(1001));
        assert_eq!(log.refused(node(2), later), Entry::Counted);
        assert_eq!(
            log.refused(node(3), later),
            Entry::Name,
            "a new node is named"
        );
    }

    #[test]
    fn a_flood_of_new_identities_is_counted_past_the_bound() {
        let start = Instant::now();
        let log = RefusalLog::new(start);
        let named = (0..=u8::MAX)
            .chain(0..=u8::MAX)
            .map(|i| NodeId([i, 1, 2, 3].repeat(8).try_into().unwrap()))
            .filter(|&id| log.refused(id, start) == Entry::Name)
            .count();
        assert_eq!(named, MAX_NAMED);
        let fresh = NodeId([9; 32]);
        assert_eq!(log.refused(fresh, start), Entry::Counted);
        assert_eq!(
            log.refused(fresh, start + SUMMARY_EVERY),
            Entry::Summary(258)
        );
    }
}
