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
pub struct SmallContent {
    pub hash: ContentHash,
    pub size: u64,
    pub targets: Vec<Placed>,
    pub holders: Vec<NodeId>,
    /// Holders that said they cannot serve it now.
    pub refused_by: Refusals,
}

/// Holders that refused a job, each with why (in words for the user,
/// starting with the holder's name).
pub type Refusals = Vec<(NodeId, String)>;

/// Why `id` refused, if it did.
fn refusal<'a>(refusals: &'a [(NodeId, String)], id: &NodeId) -> Option<&'a str> {
    refusals
        .iter()
        .find(|(by, _)| by == id)
        .map(|(_, why)| why.as_str())
}

/// A large content being fetched chunk by chunk.
pub struct LargeFetch {
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
pub enum Job {
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
pub struct Schedule {
    state: Mutex<State>,
    wake: Notify,
}

impl Schedule {
    /// A schedule served by lanes for the holders `live`; `unreachable`:
    /// the other holders, with why (reported like dropped ones).
    pub fn new(
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
    pub fn reachable(&self, holders: &[NodeId]) -> bool {
        let state = self.lock();
        holders.iter().any(|h| state.live.contains(h))
    }

    /// Queues small contents, in jobs of a request each.
    pub fn push_small(&self, contents: Vec<SmallContent>) {
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
    pub fn push_spans(&self, fetch: Arc<LargeFetch>, missing: &[usize], span_bytes: u64) {
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
    pub fn cancel(&self, key: u64) {
        self.lock()
            .jobs
            .retain(|job| !matches!(job, Job::Span { fetch, .. } if fetch.key == key));
    }

    /// The next job holder `id` can serve; waits while there is none but
    /// more may come; `None` when the transfer is over for this holder.
    pub async fn take(&self, id: NodeId) -> Option<Job> {
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
    pub fn try_take(&self, id: NodeId) -> Option<Job> {
        let mut state = self.lock();
        if !state.live.contains(&id) {
            return None;
        }
        state.take_for(&id)
    }

    /// A job taken is done; `refused`: what of it holder `by` could not
    /// serve, and why, to be asked of the others.
    pub fn settle(&self, by: NodeId, refused: Option<(Job, String)>) {
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
    pub fn holder_gone(&self, id: NodeId, why: String, unfinished: Vec<Job>) {
        self.update(|state| {
            state.active -= unfinished.len();
            for job in unfinished.into_iter().rev() {
                state.jobs.push_front(job);
            }
            state.live.remove(&id);
            state.dropped.entry(id).or_insert(why);
        });
    }

    /// No more jobs will be added.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_waiters();
    }

    /// Small contents that could not be fetched, with the reason.
    pub fn take_failed(&self) -> Vec<(SmallContent, String)> {
        std::mem::take(&mut self.lock().failed)
    }

    /// Why each dropped holder was dropped.
    pub fn dropped(&self) -> HashMap<NodeId, String> {
        self.lock().dropped.clone()
    }
}

/// Why a content held by `holders` cannot be fetched, given why some
/// holders are unreachable or dropped (`reasons`) and which refused it.
pub fn no_holder(
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
