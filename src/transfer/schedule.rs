//! The work of one `get`, shared by the lanes (one per reachable holder):
//! a queue of jobs that each lane takes from as fast as its holder answers,
//! so that several holders send in parallel and the faster ones send more.
//!
//! A job is either many small contents (one `Files` request) or a run of a
//! large content's missing chunks (one `Chunks` request). A job a holder
//! could not serve goes back to the queue for the others; a holder that
//! lied (a bad chunk, a bad manifest, a broken answer) is dropped for the
//! whole transfer; a job no live holder can serve any more fails.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, Notify};

use crate::chunk::Manifest;
use crate::model::{ContentHash, NodeId, Placed};

/// A content small enough to fetch whole.
#[derive(Clone, Debug)]
pub(super) struct SmallContent {
    pub hash: ContentHash,
    pub size: u64,
    pub targets: Vec<Placed>,
    pub holders: Vec<NodeId>,
    /// Holders that said they cannot serve it now.
    pub refused_by: Refusals,
}

/// Holders that refused a job, each with why (in words for the user,
/// starting with the holder's name).
pub(super) type Refusals = Vec<(NodeId, String)>;

/// Why `id` refused, if it did.
fn refusal<'a>(refusals: &'a [(NodeId, String)], id: &NodeId) -> Option<&'a str> {
    refusals
        .iter()
        .find(|(by, _)| by == id)
        .map(|(_, why)| why.as_str())
}

/// A large content being fetched chunk by chunk.
pub(super) struct LargeFetch {
    /// Its key with the writer.
    pub key: u64,
    pub hash: ContentHash,
    pub manifest: Arc<Manifest>,
    pub offsets: Vec<u64>,
    pub holders: Vec<NodeId>,
    /// Told why, when a part of it can no longer be fetched.
    pub failed: mpsc::UnboundedSender<String>,
}

/// Work for one request.
pub(super) enum Job {
    Files(Vec<SmallContent>),
    Span {
        fetch: Arc<LargeFetch>,
        chunks: Range<usize>,
        refused_by: Refusals,
    },
}

/// Contents per `Files` request, and their bytes, at most.
const FILES_PER_JOB: usize = 1024;
const FILES_BYTES_PER_JOB: u64 = 8 << 20;

impl Job {
    /// Whether holder `id` may be asked for this job.
    fn servable_by(&self, id: &NodeId) -> bool {
        match self {
            Job::Files(contents) => contents.iter().any(|c| c.servable_by(id)),
            Job::Span {
                fetch, refused_by, ..
            } => fetch.holders.contains(id) && refusal(refused_by, id).is_none(),
        }
    }
}

impl SmallContent {
    fn servable_by(&self, id: &NodeId) -> bool {
        self.holders.contains(id) && refusal(&self.refused_by, id).is_none()
    }
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    /// Jobs handed to a lane and not settled yet.
    active: usize,
    /// No more jobs will be added (but some may come back).
    closed: bool,
    live: HashSet<NodeId>,
    /// Holders dropped for this transfer, with the reason.
    dropped: HashMap<NodeId, String>,
    /// Small contents no holder could serve, with the reason.
    failed: Vec<(SmallContent, String)>,
}

/// The shared queue.
#[derive(Default)]
pub(super) struct Schedule {
    state: Mutex<State>,
    wake: Notify,
}

impl Schedule {
    /// A schedule served by lanes for the holders `live`; `unreachable`:
    /// the other holders, with why (reported like dropped ones).
    pub(super) fn new(
        live: impl IntoIterator<Item = NodeId>,
        unreachable: HashMap<NodeId, String>,
    ) -> Self {
        Schedule {
            state: Mutex::new(State {
                live: live.into_iter().collect(),
                dropped: unreachable,
                ..State::default()
            }),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the state, fails what no live holder may serve any more,
    /// and wakes the lanes waiting for work.
    fn update(&self, change: impl FnOnce(&mut State)) {
        let mut state = self.lock();
        change(&mut state);
        state.settle_unservable();
        drop(state);
        self.wake.notify_waiters();
    }

    /// Whether some live holder may serve a content held by `holders`.
    pub(super) fn reachable(&self, holders: &[NodeId]) -> bool {
        let state = self.lock();
        holders.iter().any(|h| state.live.contains(h))
    }

    /// Queues small contents, in jobs of a request each.
    pub(super) fn push_small(&self, contents: Vec<SmallContent>) {
        let mut jobs: Vec<Vec<SmallContent>> = Vec::new();
        let mut bytes = 0;
        for content in contents {
            match jobs.last_mut() {
                Some(job)
                    if job.len() < FILES_PER_JOB && bytes + content.size <= FILES_BYTES_PER_JOB =>
                {
                    bytes += content.size;
                    job.push(content);
                }
                _ => {
                    bytes = content.size;
                    jobs.push(vec![content]);
                }
            }
        }
        self.update(|state| state.jobs.extend(jobs.into_iter().map(Job::Files)));
    }

    /// Queues the missing chunks of a large content, in runs of contiguous
    /// chunks of up to `span_bytes`.
    pub(super) fn push_spans(&self, fetch: Arc<LargeFetch>, missing: &[usize], span_bytes: u64) {
        let mut runs: Vec<Range<usize>> = Vec::new();
        let mut bytes = 0;
        for &index in missing {
            let len = u64::from(fetch.manifest.chunks[index].len);
            match runs.last_mut() {
                Some(run) if run.end == index && bytes + len <= span_bytes => {
                    run.end += 1;
                    bytes += len;
                }
                _ => {
                    bytes = len;
                    runs.push(index..index + 1);
                }
            }
        }
        self.update(|state| {
            state.jobs.extend(runs.into_iter().map(|chunks| Job::Span {
                fetch: fetch.clone(),
                chunks,
                refused_by: Vec::new(),
            }))
        });
    }

    /// Removes what is queued of large content `key` (it failed).
    pub(super) fn cancel(&self, key: u64) {
        self.lock()
            .jobs
            .retain(|job| !matches!(job, Job::Span { fetch, .. } if fetch.key == key));
    }

    /// The next job holder `id` can serve; waits while there is none but
    /// more may come; `None` when the transfer is over for this holder.
    pub(super) async fn take(&self, id: NodeId) -> Option<Job> {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.lock();
                if !state.live.contains(&id) {
                    return None;
                }
                if let Some(job) = state.take_for(&id) {
                    return Some(job);
                }
                if state.closed && state.active == 0 && state.jobs.is_empty() {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// The next job holder `id` can serve, if one is queued now.
    pub(super) fn try_take(&self, id: NodeId) -> Option<Job> {
        let mut state = self.lock();
        if !state.live.contains(&id) {
            return None;
        }
        state.take_for(&id)
    }

    /// A job taken is done; `refused`: what of it holder `by` could not
    /// serve, and why, to be asked of the others.
    pub(super) fn settle(&self, by: NodeId, refused: Option<(Job, String)>) {
        self.update(|state| {
            state.active -= 1;
            if let Some((mut job, why)) = refused {
                let refusal = (by, why);
                match &mut job {
                    Job::Files(contents) => contents
                        .iter_mut()
                        .for_each(|c| c.refused_by.push(refusal.clone())),
                    Job::Span { refused_by, .. } => refused_by.push(refusal),
                }
                state.jobs.push_front(job);
            }
        });
    }

    /// Holder `id` is gone (its connection failed) or dropped for lying:
    /// what it had taken and not done (`unfinished`) goes back for others.
    pub(super) fn holder_gone(&self, id: NodeId, why: String, unfinished: Vec<Job>) {
        self.update(|state| {
            state.active -= unfinished.len();
            for job in unfinished.into_iter().rev() {
                state.jobs.push_front(job);
            }
            state.live.remove(&id);
            state.dropped.entry(id).or_insert(why);
        });
    }

    /// Ends the transfer for every holder (the disk is full, say): the
    /// lanes take no more jobs, and what is queued fails with `why`.
    pub(super) fn abort(&self, why: &str) {
        self.update(|state| {
            for id in std::mem::take(&mut state.live) {
                state.dropped.entry(id).or_insert_with(|| why.to_owned());
            }
        });
    }

    /// No more jobs will be added.
    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_waiters();
    }

    /// Small contents that could not be fetched, with the reason.
    pub(super) fn take_failed(&self) -> Vec<(SmallContent, String)> {
        std::mem::take(&mut self.lock().failed)
    }

    /// Why each dropped holder was dropped.
    pub(super) fn dropped(&self) -> HashMap<NodeId, String> {
        self.lock().dropped.clone()
    }
}

/// Why a content held by `holders` cannot be fetched, given why some
/// holders are unreachable or dropped (`reasons`) and which refused it.
pub(super) fn no_holder(
    holders: &[NodeId],
    reasons: &HashMap<NodeId, String>,
    refusals: &[(NodeId, String)],
) -> String {
    let known: Vec<&str> = holders
        .iter()
        .filter_map(|h| {
            reasons
                .get(h)
                .map(String::as_str)
                .or_else(|| refusal(refusals, h))
        })
        .collect();
    if known.is_empty() {
        "no reachable location holds its newest content".to_owned()
    } else {
        format!("no holder could provide it ({})", known.join("; "))
    }
}

impl State {
    fn take_for(&mut self, id: &NodeId) -> Option<Job> {
        let at = self.jobs.iter().position(|job| job.servable_by(id))?;
        let job = match &mut self.jobs[at] {
            Job::Files(contents) if contents.iter().any(|c| !c.servable_by(id)) => {
                // Take what this holder can serve; leave the rest queued.
                let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(contents)
                    .into_iter()
                    .partition(|c| c.servable_by(id));
                *contents = rest;
                Job::Files(mine)
            }
            _ => self.jobs.remove(at)?,
        };
        self.jobs
            .retain(|job| !matches!(job, Job::Files(c) if c.is_empty()));
        self.active += 1;
        Some(job)
    }

    /// Fails the queued jobs no live holder may serve.
    fn settle_unservable(&mut self) {
        let live = &self.live;
        let why = |holders: &[NodeId], refusals: &[(NodeId, String)]| {
            no_holder(holders, &self.dropped, refusals)
        };
        let mut kept = VecDeque::with_capacity(self.jobs.len());
        for job in self.jobs.drain(..) {
            if live.iter().any(|id| job.servable_by(id)) {
                match job {
                    Job::Files(contents) => {
                        let (ok, lost): (Vec<_>, Vec<_>) = contents
                            .into_iter()
                            .partition(|c| live.iter().any(|id| c.servable_by(id)));
                        for content in lost {
                            let reason = why(&content.holders, &content.refused_by);
                            self.failed.push((content, reason));
                        }
                        kept.push_back(Job::Files(ok));
                    }
                    span => kept.push_back(span),
                }
                continue;
            }
            match job {
                Job::Files(contents) => {
                    for content in contents {
                        let reason = why(&content.holders, &content.refused_by);
                        self.failed.push((content, reason));
                    }
                }
                Job::Span {
                    fetch, refused_by, ..
                } => {
                    let _ = fetch.failed.send(why(&fetch.holders, &refused_by));
                }
            }
        }
        self.jobs = kept;
    }
}

/// The schedule driven in memory: jobs pushed, taken by holders, refused,
/// given back, and failed when no live holder may serve them.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::ChunkRef;

    fn node(n: u8) -> NodeId {
        NodeId([n; 32])
    }

    fn small(n: u8, size: u64, holders: &[NodeId]) -> SmallContent {
        SmallContent {
            hash: ContentHash([n; 32]),
            size,
            targets: Vec::new(),
            holders: holders.to_vec(),
            refused_by: Vec::new(),
        }
    }

    fn hashes(job: &Job) -> Vec<u8> {
        match job {
            Job::Files(contents) => contents.iter().map(|c| c.hash.0[0]).collect(),
            Job::Span { .. } => panic!("a span, not files"),
        }
    }

    fn large(
        holders: &[NodeId],
        lens: &[u32],
    ) -> (Arc<LargeFetch>, mpsc::UnboundedReceiver<String>) {
        let (failed, failures) = mpsc::unbounded_channel();
        let chunks: Vec<ChunkRef> = lens
            .iter()
            .enumerate()
            .map(|(i, len)| ChunkRef {
                hash: ContentHash([i as u8; 32]),
                len: *len,
            })
            .collect();
        let manifest = Manifest { chunks };
        let fetch = LargeFetch {
            key: 7,
            hash: ContentHash([9; 32]),
            offsets: manifest.offsets(),
            manifest: Arc::new(manifest),
            holders: holders.to_vec(),
            failed,
        };
        (Arc::new(fetch), failures)
    }

    #[test]
    fn small_contents_are_grouped_within_the_request_limits() {
        let (a, b) = (node(1), node(2));
        let schedule = Schedule::new([a, b], HashMap::new());
        let half = FILES_BYTES_PER_JOB / 2;
        schedule.push_small(vec![
            small(1, half, &[a]),
            small(2, half, &[a]),
            small(3, 1, &[a]),
        ]);
        // The third does not fit the first request's bytes.
        assert_eq!(hashes(&schedule.try_take(a).unwrap()), [1, 2]);
        assert_eq!(hashes(&schedule.try_take(a).unwrap()), [3]);
        assert!(schedule.try_take(a).is_none());
        assert!(schedule.try_take(b).is_none(), "b holds none of them");
    }

    #[test]
    fn a_holder_takes_only_what_it_holds_and_leaves_the_rest_queued() {
        let (a, b) = (node(1), node(2));
        let schedule = Schedule::new([a, b], HashMap::new());
        schedule.push_small(vec![
            small(1, 10, &[a]),
            small(2, 10, &[b]),
            small(3, 10, &[a, b]),
        ]);
        assert_eq!(hashes(&schedule.try_take(b).unwrap()), [2, 3]);
        assert_eq!(hashes(&schedule.try_take(a).unwrap()), [1]);
        assert!(schedule.try_take(a).is_none());
    }

    #[test]
    fn a_refused_job_goes_to_another_holder_and_fails_when_none_is_left() {
        let (a, b) = (node(1), node(2));
        let schedule = Schedule::new([a, b], HashMap::new());
        schedule.push_small(vec![small(1, 10, &[a, b])]);
        let job = schedule.try_take(a).unwrap();
        schedule.settle(a, Some((job, "a: busy".into())));
        assert!(schedule.try_take(a).is_none(), "not asked of a again");
        let job = schedule.try_take(b).unwrap();
        assert_eq!(hashes(&job), [1]);
        schedule.settle(b, Some((job, "b: gone".into())));
        let failed = schedule.take_failed();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].1, "no holder could provide it (a: busy; b: gone)");
    }

    #[test]
    fn a_dropped_holder_gives_back_its_work_and_is_not_asked_again() {
        let (a, b) = (node(1), node(2));
        let schedule = Schedule::new([a, b], HashMap::new());
        schedule.push_small(vec![small(1, 10, &[a, b]), small(2, 10, &[a])]);
        let job = schedule.try_take(a).unwrap();
        assert_eq!(hashes(&job), [1, 2]);
        schedule.holder_gone(a, "a: sent a bad chunk".into(), vec![job]);
        assert!(schedule.try_take(a).is_none());
        // What only a held fails at once, with a's reason; the rest goes to b.
        let failed = schedule.take_failed();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0.hash, ContentHash([2; 32]));
        assert_eq!(
            failed[0].1,
            "no holder could provide it (a: sent a bad chunk)"
        );
        assert_eq!(hashes(&schedule.try_take(b).unwrap()), [1]);
        assert_eq!(schedule.dropped()[&a], "a: sent a bad chunk");
        assert!(!schedule.reachable(&[a]) && schedule.reachable(&[a, b]));
    }

    #[test]
    fn missing_chunks_are_queued_in_contiguous_runs_within_the_span() {
        let a = node(1);
        let schedule = Schedule::new([a], HashMap::new());
        let (fetch, _failures) = large(&[a], &[10, 10, 10, 10, 10, 10]);
        schedule.push_spans(fetch, &[0, 1, 2, 4, 5], 20);
        let mut runs = Vec::new();
        while let Some(job) = schedule.try_take(a) {
            match job {
                Job::Span { chunks, .. } => runs.push(chunks),
                Job::Files(_) => panic!("files, not a span"),
            }
        }
        assert_eq!(runs, [0..2, 2..3, 4..6]);
    }

    #[test]
    fn a_span_no_live_holder_can_serve_fails_its_content_and_cancel_removes_it() {
        let (a, b) = (node(1), node(2));
        let schedule = Schedule::new([a, b], HashMap::new());
        let (fetch, mut failures) = large(&[a], &[10, 10]);
        schedule.push_spans(fetch.clone(), &[0], 10);
        schedule.push_spans(fetch, &[1], 10);
        schedule.cancel(7);
        assert!(schedule.try_take(a).is_none(), "cancelled");
        let (fetch, mut failures2) = large(&[a], &[10]);
        schedule.push_spans(fetch, &[0], 10);
        schedule.holder_gone(a, "a: unreachable".into(), Vec::new());
        assert_eq!(
            failures2.try_recv().unwrap(),
            "no holder could provide it (a: unreachable)"
        );
        assert!(
            failures.try_recv().is_err(),
            "the cancelled spans did not fail"
        );
    }

    #[tokio::test]
    async fn an_abort_ends_every_lane_and_fails_what_is_queued() {
        let (a, b) = (node(1), node(2));
        let schedule = Schedule::new([a, b], HashMap::new());
        schedule.push_small(vec![small(1, 10, &[a]), small(2, 10, &[b])]);
        let (fetch, mut failures) = large(&[a, b], &[10]);
        schedule.push_spans(fetch, &[0], 10);
        schedule.abort("the disk is full");
        assert!(schedule.take(a).await.is_none() && schedule.take(b).await.is_none());
        assert_eq!(schedule.take_failed().len(), 2);
        assert_eq!(
            failures.try_recv().unwrap(),
            "no holder could provide it (the disk is full; the disk is full)"
        );
    }

    #[tokio::test]
    async fn take_waits_for_work_and_ends_once_closed_and_settled() {
        let a = node(1);
        let schedule = Arc::new(Schedule::new([a], HashMap::new()));
        let taker = {
            let schedule = schedule.clone();
            tokio::spawn(async move { schedule.take(a).await.map(|job| hashes(&job)) })
        };
        tokio::task::yield_now().await;
        schedule.push_small(vec![small(1, 10, &[a])]);
        assert_eq!(taker.await.unwrap(), Some(vec![1]));
        schedule.close();
        let waiting = {
            let schedule = schedule.clone();
            tokio::spawn(async move { schedule.take(a).await.is_none() })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the taken job may still come back");
        schedule.settle(a, None);
        assert!(waiting.await.unwrap(), "nothing left: the lane ends");
    }
}
