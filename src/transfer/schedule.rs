//! The work of one `get`, shared by the lanes (one per reachable holder):
//! a queue of jobs that each lane takes from as fast as its holder answers,
//! so that several holders send in parallel and the faster ones send more.
//!
//! A job is either many small contents (one `Files` request) or a run of a
//! large content's missing chunks (one `Chunks` request). A job a holder
//! could not serve goes back to the queue for the others; a holder that
//! lied (a bad chunk, a bad manifest, a broken answer) is dropped for the
//! whole transfer; a job no live holder can serve any more fails.
//!
//! A holder that is slow but alive is never dropped (a lossy link must not
//! cost a get its holders). Instead, once a lane has nothing left to take,
//! it may ask its holder for what is still missing of a job that has been
//! at another holder for [`ENDGAME_AFTER`] (BitTorrent's endgame): the
//! first to deliver each content or chunk writes it, and when one copy of a
//! job is done the other is told to stop. So a get ends at the pace of its
//! fastest holders, and a holder dripping a byte a second holds up nothing.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// How long a job must have been at one holder before a lane with nothing
/// else to do asks its own holder for the rest of it too. Long enough that
/// on a healthy link a job is done first (a span of 16 MiB takes 0.2 s at
/// 100 MB/s), so the endgame costs nothing there; short enough that a
/// stalled holder delays a get by about this much.
pub(super) const ENDGAME_AFTER: Duration = Duration::from_secs(1);

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
    /// Which chunks a lane has received and handed to the writer.
    delivered: Vec<AtomicBool>,
}

impl LargeFetch {
    pub(super) fn new(
        key: u64,
        hash: ContentHash,
        manifest: Arc<Manifest>,
        offsets: Vec<u64>,
        holders: Vec<NodeId>,
        failed: mpsc::UnboundedSender<String>,
    ) -> LargeFetch {
        LargeFetch {
            key,
            hash,
            offsets,
            delivered: manifest
                .chunks
                .iter()
                .map(|_| AtomicBool::new(false))
                .collect(),
            manifest,
            holders,
            failed,
        }
    }

    /// Claims chunk `index` for the lane that received it: false when
    /// another lane delivered it first (two holders were asked for it).
    pub(super) fn deliver(&self, index: usize) -> bool {
        !self.delivered[index].swap(true, Ordering::AcqRel)
    }

    /// The first chunk of `chunks` no lane has delivered yet.
    fn first_undelivered(&self, chunks: Range<usize>) -> Option<usize> {
        chunks
            .into_iter()
            .find(|&i| !self.delivered[i].load(Ordering::Acquire))
    }
}

/// Work for one request.
#[derive(Clone)]
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

/// A job handed to a lane, which settles it with this ticket and is told
/// through it when another holder did the job first.
pub(super) struct Ticket {
    id: u64,
    superseded: Arc<Superseded>,
}

#[derive(Default)]
struct Superseded {
    flag: AtomicBool,
    wake: Notify,
}

impl Ticket {
    /// Resolves once another copy of this job is done: the lane may stop
    /// reading its answer.
    pub(super) async fn superseded(&self) {
        loop {
            let notified = self.superseded.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.superseded.flag.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

/// A job a lane has taken and not settled.
struct InFlight {
    holder: NodeId,
    /// The ticket of the job's first copy, shared by its endgame copy.
    group: u64,
    since: Instant,
    job: Job,
    superseded: Arc<Superseded>,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    /// Jobs handed to a lane and not settled yet, by ticket.
    inflight: HashMap<u64, InFlight>,
    next_ticket: u64,
    /// Small contents a lane has received and handed to the writer.
    delivered: HashSet<ContentHash>,
    /// What copies of a job left undone while another copy of it was still
    /// in flight, by group: queued again, with their refusals, only if the
    /// last copy does not finish the job either.
    deferred: HashMap<u64, Vec<Job>>,
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

    /// The next job holder `id` can serve, or one it can help with (the
    /// endgame, for a lane with nothing in flight); waits while there is
    /// none but more may come; `None` when the transfer is over for this
    /// holder.
    pub(super) async fn take(&self, id: NodeId) -> Option<(Job, Ticket)> {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let endgame_at = {
                let mut state = self.lock();
                if !state.live.contains(&id) {
                    return None;
                }
                if let Some(taken) = state.take_for(id, Instant::now(), true) {
                    return Some(taken);
                }
                if state.closed && state.inflight.is_empty() && state.jobs.is_empty() {
                    return None;
                }
                state.endgame_at(id)
            };
            match endgame_at {
                Some(at) => {
                    tokio::select! {
                        () = &mut notified => {}
                        () = tokio::time::sleep_until(at.into()) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// The next job holder `id` can serve, if one is queued now.
    pub(super) fn try_take(&self, id: NodeId) -> Option<(Job, Ticket)> {
        let mut state = self.lock();
        if !state.live.contains(&id) {
            return None;
        }
        state.take_for(id, Instant::now(), false)
    }

    /// Claims small content `hash` for the lane that received it: false
    /// when another lane delivered it first (two holders were asked).
    pub(super) fn deliver(&self, hash: ContentHash) -> bool {
        self.lock().delivered.insert(hash)
    }

    /// A job taken is over: done (`None`; any other copy of it is told to
    /// stop), or `refused`: what of it the ticket's holder could not serve,
    /// and why, to be asked of the others.
    pub(super) fn settle(&self, ticket: &Ticket, refused: Option<(Job, String)>) {
        self.update(|state| {
            let Some(taken) = state.inflight.remove(&ticket.id) else {
                return;
            };
            match refused {
                None => state.supersede(taken.group),
                Some((mut job, why)) => {
                    let refusal = (taken.holder, why);
                    match &mut job {
                        Job::Files(contents) => contents
                            .iter_mut()
                            .for_each(|c| c.refused_by.push(refusal.clone())),
                        Job::Span { refused_by, .. } => refused_by.push(refusal),
                    }
                    state.give_back(taken.group, job);
                }
            }
        });
    }

    /// Holder `id` is gone (its connection failed) or dropped for lying:
    /// what it had taken and not done (`unfinished`) goes back for others.
    pub(super) fn holder_gone(&self, id: NodeId, why: String, unfinished: Vec<(Ticket, Job)>) {
        self.update(|state| {
            for (ticket, job) in unfinished.into_iter().rev() {
                if let Some(taken) = state.inflight.remove(&ticket.id) {
                    state.give_back(taken.group, job);
                }
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
    /// A queued job for holder `id`, or (with `endgame`) the rest of a job
    /// stalled at another holder; handed out with its ticket.
    fn take_for(&mut self, id: NodeId, now: Instant, endgame: bool) -> Option<(Job, Ticket)> {
        let (job, group) = match self.take_queued(&id) {
            Some(job) => (job, None),
            None if endgame => {
                let (group, job) = self.endgame_job(id, now)?;
                (job, Some(group))
            }
            None => return None,
        };
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let superseded = Arc::new(Superseded::default());
        self.inflight.insert(
            ticket,
            InFlight {
                holder: id,
                group: group.unwrap_or(ticket),
                since: now,
                job: job.clone(),
                superseded: superseded.clone(),
            },
        );
        Some((
            job,
            Ticket {
                id: ticket,
                superseded,
            },
        ))
    }

    /// The jobs at other holders that `id` could help with: the only copy
    /// of its job, not done, with something undelivered, all of which `id`
    /// may serve. (Checked without building the rest: lanes waiting for
    /// work ask this at every change of the schedule.)
    fn helpable(&self, id: NodeId) -> impl Iterator<Item = &InFlight> + '_ {
        self.inflight.values().filter(move |taken| {
            if taken.holder == id
                || taken.superseded.flag.load(Ordering::Acquire)
                || self.copies(taken.group) > 1
            {
                return false;
            }
            match &taken.job {
                Job::Files(contents) => {
                    let mut rest = contents
                        .iter()
                        .filter(|c| !self.delivered.contains(&c.hash))
                        .peekable();
                    rest.peek().is_some() && rest.all(|c| c.servable_by(&id))
                }
                Job::Span { fetch, chunks, .. } => {
                    taken.job.servable_by(&id) && fetch.first_undelivered(chunks.clone()).is_some()
                }
            }
        })
    }

    /// The rest of the longest-running job at another holder that has been
    /// there for [`ENDGAME_AFTER`], for `id` to fetch too.
    fn endgame_job(&self, id: NodeId, now: Instant) -> Option<(u64, Job)> {
        let taken = self
            .helpable(id)
            .filter(|taken| now.saturating_duration_since(taken.since) >= ENDGAME_AFTER)
            .min_by_key(|taken| taken.since)?;
        Some((taken.group, self.undelivered(&taken.job)?))
    }

    /// When the next job `id` could help with becomes stalled.
    fn endgame_at(&self, id: NodeId) -> Option<Instant> {
        self.helpable(id)
            .map(|taken| taken.since + ENDGAME_AFTER)
            .min()
    }

    /// Copies of the job `group` in flight.
    fn copies(&self, group: u64) -> usize {
        self.inflight.values().filter(|t| t.group == group).count()
    }

    /// What of `job` no lane has delivered yet; `None` if nothing.
    fn undelivered(&self, job: &Job) -> Option<Job> {
        match job {
            Job::Files(contents) => {
                let rest: Vec<SmallContent> = contents
                    .iter()
                    .filter(|c| !self.delivered.contains(&c.hash))
                    .cloned()
                    .collect();
                (!rest.is_empty()).then_some(Job::Files(rest))
            }
            Job::Span {
                fetch,
                chunks,
                refused_by,
            } => {
                let from = fetch.first_undelivered(chunks.clone())?;
                Some(Job::Span {
                    fetch: fetch.clone(),
                    chunks: from..chunks.end,
                    refused_by: refused_by.clone(),
                })
            }
        }
    }

    /// One copy of the job `group` is done: the others may stop.
    fn supersede(&mut self, group: u64) {
        self.deferred.remove(&group);
        for other in self.inflight.values().filter(|t| t.group == group) {
            other.superseded.flag.store(true, Ordering::Release);
            other.superseded.wake.notify_waiters();
        }
    }

    /// Queues again what a copy of the job `group` left undone. While
    /// another copy is in flight, that copy covers it (it asked for all
    /// that was not delivered when it was made, or is the first copy,
    /// which asked for everything), so it waits in `deferred`; the last
    /// copy to end unfinished queues its rest with every copy's refusals.
    fn give_back(&mut self, group: u64, job: Job) {
        if self.copies(group) > 0 {
            self.deferred.entry(group).or_default().push(job);
            return;
        }
        let earlier = self.deferred.remove(&group).unwrap_or_default();
        if let Some(job) = self.merged(job, earlier) {
            self.jobs.push_front(job);
        }
    }

    /// `last`, the rest of a job's last copy, with the refusals of the
    /// `earlier` copies' rests, less what was delivered since; `None` if
    /// nothing is left.
    fn merged(&self, last: Job, earlier: Vec<Job>) -> Option<Job> {
        match last {
            Job::Files(mut contents) => {
                for job in earlier {
                    let Job::Files(more) = job else { continue };
                    for content in more {
                        match contents.iter_mut().find(|c| c.hash == content.hash) {
                            Some(c) => c.refused_by.extend(content.refused_by),
                            None => contents.push(content),
                        }
                    }
                }
                contents.retain(|c| !self.delivered.contains(&c.hash));
                (!contents.is_empty()).then_some(Job::Files(contents))
            }
            Job::Span {
                fetch,
                chunks,
                mut refused_by,
            } => {
                for job in earlier {
                    if let Job::Span {
                        refused_by: more, ..
                    } = job
                    {
                        refused_by.extend(more);
                    }
                }
                let from = fetch.first_undelivered(chunks.clone())?;
                Some(Job::Span {
                    fetch,
                    chunks: from..chunks.end,
                    refused_by,
                })
            }
        }
    }

    fn take_queued(&mut self, id: &NodeId) -> Option<Job> {
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

    fn hashes((job, _): &(Job, Ticket)) -> Vec<u8> {
        match job {
            Job::Files(contents) => contents.iter().map(|c| c.hash.0[0]).collect(),
            Job::Span { .. } => panic!("a span, not files"),
        }
    }

    fn span((job, _): &(Job, Ticket)) -> Range<usize> {
        match job {
            Job::Span { chunks, .. } => chunks.clone(),
            Job::Files(_) => panic!("files, not a span"),
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
        let offsets = manifest.offsets();
        let fetch = LargeFetch::new(
            7,
            ContentHash([9; 32]),
            Arc::new(manifest),
            offsets,
            holders.to_vec(),
            failed,
        );
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
        let (job, ticket) = schedule.try_take(a).unwrap();
        schedule.settle(&ticket, Some((job, "a: busy".into())));
        assert!(schedule.try_take(a).is_none(), "not asked of a again");
        let taken = schedule.try_take(b).unwrap();
        assert_eq!(hashes(&taken), [1]);
        let (job, ticket) = taken;
        schedule.settle(&ticket, Some((job, "b: gone".into())));
        let failed = schedule.take_failed();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].1, "no holder could provide it (a: busy; b: gone)");
    }

    #[test]
    fn a_dropped_holder_gives_back_its_work_and_is_not_asked_again() {
        let (a, b) = (node(1), node(2));
        let schedule = Schedule::new([a, b], HashMap::new());
        schedule.push_small(vec![small(1, 10, &[a, b]), small(2, 10, &[a])]);
        let taken = schedule.try_take(a).unwrap();
        assert_eq!(hashes(&taken), [1, 2]);
        let (job, ticket) = taken;
        schedule.holder_gone(a, "a: sent a bad chunk".into(), vec![(ticket, job)]);
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
        while let Some(taken) = schedule.try_take(a) {
            runs.push(span(&taken));
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
            tokio::spawn(async move { schedule.take(a).await })
        };
        tokio::task::yield_now().await;
        schedule.push_small(vec![small(1, 10, &[a])]);
        let taken = taker.await.unwrap().unwrap();
        assert_eq!(hashes(&taken), [1]);
        let (_, ticket) = taken;
        schedule.close();
        let waiting = {
            let schedule = schedule.clone();
            tokio::spawn(async move { schedule.take(a).await.is_none() })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the taken job may still come back");
        schedule.settle(&ticket, None);
        assert!(waiting.await.unwrap(), "nothing left: the lane ends");
    }

    /// Takes with the endgame, as a lane with nothing in flight does, at
    /// the moment `at`.
    fn take_at(schedule: &Schedule, id: NodeId, at: Instant) -> Option<(Job, Ticket)> {
        schedule.lock().take_for(id, at, true)
    }

    fn is_superseded(ticket: &Ticket) -> bool {
        ticket.superseded.flag.load(Ordering::Acquire)
    }

    #[test]
    fn a_job_stalled_at_one_holder_is_also_asked_of_an_idle_one_and_the_first_wins() {
        let (a, b, c) = (node(1), node(2), node(3));
        let schedule = Schedule::new([a, b, c], HashMap::new());
        schedule.push_small(vec![
            small(1, 10, &[a, b, c]),
            small(2, 10, &[a, b, c]),
            small(3, 10, &[a, b, c]),
        ]);
        let start = Instant::now();
        let at_a = take_at(&schedule, a, start).unwrap();
        assert!(schedule.deliver(ContentHash([1; 32])), "a sent the first");

        // Not stalled yet: b waits, and knows until when.
        assert!(take_at(&schedule, b, start + ENDGAME_AFTER / 2).is_none());
        assert_eq!(schedule.lock().endgame_at(b), Some(start + ENDGAME_AFTER));
        // Without the endgame (a lane with work in flight) b gets nothing.
        assert!(schedule.try_take(b).is_none());

        // Stalled: b is asked for what a has not delivered; c for nothing
        // (one extra copy at most).
        let at_b = take_at(&schedule, b, start + ENDGAME_AFTER).unwrap();
        assert_eq!(hashes(&at_b), [2, 3]);
        assert!(take_at(&schedule, c, start + 4 * ENDGAME_AFTER).is_none());
        assert!(schedule.deliver(ContentHash([2; 32])));
        assert!(!schedule.deliver(ContentHash([2; 32])), "written once");
        assert!(schedule.deliver(ContentHash([3; 32])));

        // b is done first: a is told to stop, and nothing is queued again.
        schedule.settle(&at_b.1, None);
        assert!(is_superseded(&at_a.1) && !is_superseded(&at_b.1));
        schedule.settle(&at_a.1, None);
        assert!(schedule.lock().inflight.is_empty());
        assert!(schedule.try_take(a).is_none() && schedule.try_take(c).is_none());
    }

    #[test]
    fn the_endgame_asks_only_a_holder_that_can_serve_all_that_is_left() {
        let (a, b) = (node(1), node(2));
        let schedule = Schedule::new([a, b], HashMap::new());
        schedule.push_small(vec![small(1, 10, &[a, b]), small(2, 10, &[a])]);
        let start = Instant::now();
        let _at_a = take_at(&schedule, a, start).unwrap();
        assert!(take_at(&schedule, b, start + 2 * ENDGAME_AFTER).is_none());
        assert_eq!(schedule.lock().endgame_at(b), None, "nothing to wait for");
        // Once what only a holds is delivered, b can help with the rest.
        schedule.deliver(ContentHash([2; 32]));
        let at_b = take_at(&schedule, b, start + 2 * ENDGAME_AFTER).unwrap();
        assert_eq!(hashes(&at_b), [1]);
    }

    #[test]
    fn a_span_copy_asks_from_the_first_chunk_not_delivered_and_one_left_covers_a_failure() {
        let (a, b) = (node(1), node(2));
        let schedule = Schedule::new([a, b], HashMap::new());
        let (fetch, mut failures) = large(&[a, b], &[10, 10, 10, 10]);
        schedule.push_spans(fetch.clone(), &[0, 1, 2, 3], 40);
        let start = Instant::now();
        let (job_a, ticket_a) = take_at(&schedule, a, start).unwrap();
        assert!(fetch.deliver(0) && fetch.deliver(1));
        let at_b = take_at(&schedule, b, start + ENDGAME_AFTER).unwrap();
        assert_eq!(span(&at_b), 2..4);
        assert!(fetch.deliver(2));

        // b is lost: a still covers the rest, so nothing is queued again.
        let (job_b, ticket_b) = at_b;
        schedule.holder_gone(b, "b: gone".into(), vec![(ticket_b, job_b)]);
        assert!(schedule.lock().jobs.is_empty());
        // a refuses the rest: now it is queued again, and no live holder
        // may serve it, so its content fails.
        let Job::Span { fetch: f, .. } = job_a else {
            panic!("a span")
        };
        let rest = Job::Span {
            fetch: f,
            chunks: 3..4,
            refused_by: Vec::new(),
        };
        schedule.settle(&ticket_a, Some((rest, "a: changed".into())));
        assert_eq!(
            failures.try_recv().unwrap(),
            "no holder could provide it (a: changed; b: gone)"
        );
    }

    #[test]
    fn a_copy_that_ends_unfinished_leaves_the_job_to_the_copy_in_flight() {
        let (a, b) = (node(1), node(2));
        let schedule = Schedule::new([a, b], HashMap::new());
        schedule.push_small(vec![small(1, 10, &[a, b]), small(2, 10, &[a, b])]);
        let start = Instant::now();
        let (job_a, ticket_a) = take_at(&schedule, a, start).unwrap();
        let (job_b, ticket_b) = take_at(&schedule, b, start + ENDGAME_AFTER).unwrap();
        // a refuses both while b's copy is in flight: b covers them.
        schedule.settle(&ticket_a, Some((job_a, "a: busy".into())));
        assert!(schedule.lock().jobs.is_empty());
        // b sends the first, then is lost: the second is queued again with
        // a's refusal, so a is not asked again: it fails.
        assert!(schedule.deliver(ContentHash([1; 32])));
        schedule.holder_gone(b, "b: gone".into(), vec![(ticket_b, job_b)]);
        let failed = schedule.take_failed();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0.hash, ContentHash([2; 32]));
    }
}
