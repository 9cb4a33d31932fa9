//! One holder's lane: takes jobs from the schedule, keeps [`IN_FLIGHT`]
//! requests open on the holder's connection (so the holder prepares the
//! next answer while it sends this one), reads each answer, checks every
//! chunk and every small content against its blake3 before handing it to
//! the writer (unless another lane delivered it first), and says how each
//! job ended. A job another holder finished first is dropped unread.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::rate::RateLimit;
use super::schedule::{Job, Refusals, Schedule, SmallContent, Ticket};
use super::writer::WriteOp;
use super::{Shared, TransferProgress};
use crate::model::{ContentHash, NodeId};
use crate::net::{remote_reason, FramedStream, NetError, PeerConnection};
use crate::proto::{ChunkRanges, ErrorCode, Request, Response};

/// Requests open at once per holder. Answers are read oldest first, so the
/// later one may fill its stream window (4 MiB) while the oldest still has
/// the rest of the connection window (8 MiB).
const IN_FLIGHT: usize = 2;
const _: () = assert!(
    (IN_FLIGHT as u64 - 1) * (crate::net::STREAM_RECEIVE_WINDOW as u64)
        < crate::net::CONNECTION_RECEIVE_WINDOW as u64
);

/// How an answer went wrong.
enum Failure {
    /// The holder cannot serve `rest` now (`why`); it goes to others.
    Refused { why: String, rest: Job },
    /// The connection failed: the holder is gone for this transfer.
    Lost { why: String, rest: Job },
    /// The holder sent something false or broken: dropped for this transfer.
    Lied { why: String, rest: Job },
}

/// A lane for the holder on `conn`.
pub(super) struct Lane {
    pub id: NodeId,
    pub conn: PeerConnection,
    pub schedule: Arc<Schedule>,
    pub writer: mpsc::Sender<WriteOp>,
    pub shared: Arc<Shared>,
    pub progress: Arc<dyn TransferProgress>,
    /// Content bytes received, by every lane together.
    pub receiving: RateLimit,
}

impl Lane {
    fn name(&self) -> &str {
        &self.conn.peer().name
    }

    /// Serves jobs until the transfer is over or the holder is gone.
    pub(super) async fn run(self) {
        let mut inflight: VecDeque<(Job, Ticket, FramedStream)> = VecDeque::new();
        loop {
            while inflight.len() < IN_FLIGHT {
                let taken = if inflight.is_empty() {
                    self.schedule.take(self.id).await
                } else {
                    self.schedule.try_take(self.id)
                };
                let Some((job, ticket)) = taken else { break };
                match self.conn.open(&request_for(&job)).await {
                    Ok(stream) => inflight.push_back((job, ticket, stream)),
                    Err(e) => {
                        let mut unfinished: Vec<(Ticket, Job)> =
                            inflight.into_iter().map(|(j, t, _)| (t, j)).collect();
                        unfinished.push((ticket, job));
                        self.gone(e.reason(), unfinished);
                        return;
                    }
                }
            }
            let Some((job, ticket, mut stream)) = inflight.pop_front() else {
                return;
            };
            let receive = async {
                match job {
                    Job::Files(contents) => self.receive_files(contents, &mut stream).await,
                    Job::Span {
                        fetch,
                        chunks,
                        refused_by,
                    } => {
                        self.receive_span(fetch, chunks, refused_by, &mut stream)
                            .await
                    }
                }
            };
            // Done elsewhere: the stream is dropped, which asks the holder
            // to stop sending.
            let outcome = tokio::select! {
                outcome = receive => outcome,
                () = ticket.superseded() => Ok(()),
            };
            match outcome {
                Ok(()) => self.schedule.settle(&ticket, None),
                Err(Failure::Refused { why, rest }) => {
                    let why = format!("{}: {why}", self.name());
                    self.schedule.settle(&ticket, Some((rest, why)));
                }
                Err(Failure::Lost { why, rest } | Failure::Lied { why, rest }) => {
                    let mut unfinished = vec![(ticket, rest)];
                    unfinished.extend(inflight.into_iter().map(|(j, t, _)| (t, j)));
                    self.gone(why, unfinished);
                    return;
                }
            }
        }
    }

    fn gone(&self, why: String, unfinished: Vec<(Ticket, Job)>) {
        tracing::warn!("dropping {} for this transfer: {why}", self.name());
        let why = format!("{}: {why}", self.name());
        self.schedule.holder_gone(self.id, why, unfinished);
    }

    /// `bytes` were received and checked; `delivered`: this lane was the
    /// first to, so they count as progress (not only as bytes fetched).
    fn received(&self, bytes: u64, delivered: bool) {
        if delivered {
            self.progress.advance(bytes);
        }
        self.shared.fetched(self.name(), bytes);
    }

    /// Reads the answer to a `Chunks` request for `chunks` of a content.
    async fn receive_span(
        &self,
        fetch: Arc<super::schedule::LargeFetch>,
        chunks: std::ops::Range<usize>,
        refused_by: Refusals,
        stream: &mut FramedStream,
    ) -> Result<(), Failure> {
        let rest = |from: usize| Job::Span {
            fetch: fetch.clone(),
            chunks: from..chunks.end,
            refused_by: refused_by.clone(),
        };
        let expected: u64 = fetch.manifest.chunks[chunks.clone()]
            .iter()
            .map(|c| u64::from(c.len))
            .sum();
        match stream.recv_frame().await {
            Ok(Response::Chunks { len }) if len == expected => {}
            Ok(Response::Chunks { len }) => {
                return Err(Failure::Lied {
                    why: format!("announced {len} bytes, {expected} were asked"),
                    rest: rest(chunks.start),
                })
            }
            Ok(other) => return Err(unexpected(other, rest(chunks.start))),
            Err(e) => return Err(net_failure(e, rest(chunks.start))),
        }
        for index in chunks.clone() {
            let chunk = fetch.manifest.chunks[index];
            let mut bytes = vec![0; chunk.len as usize];
            if let Err(e) = self.receiving.recv_exact(stream, &mut bytes).await {
                return Err(net_failure(e, rest(index)));
            }
            if ContentHash::from(blake3::hash(&bytes)) != chunk.hash {
                return Err(Failure::Lied {
                    why: format!("sent a corrupted chunk (#{index} of {})", fetch.hash),
                    rest: rest(index),
                });
            }
            let delivered = fetch.deliver(index);
            self.received(bytes.len() as u64, delivered);
            if !delivered {
                continue;
            }
            let op = WriteOp::Chunk {
                key: fetch.key,
                index,
                bytes,
            };
            if self.writer.send(op).await.is_err() {
                return Ok(()); // the transfer is being torn down
            }
        }
        Ok(())
    }

    /// Reads the answer to a `Files` request.
    async fn receive_files(
        &self,
        contents: Vec<SmallContent>,
        stream: &mut FramedStream,
    ) -> Result<(), Failure> {
        let lens = match stream.recv_frame().await {
            Ok(Response::Files { lens }) if lens.len() == contents.len() => lens,
            Ok(Response::Files { lens }) => {
                return Err(Failure::Lied {
                    why: format!("answered {} files of {}", lens.len(), contents.len()),
                    rest: Job::Files(contents),
                })
            }
            Ok(other) => return Err(unexpected(other, Job::Files(contents))),
            Err(e) => return Err(net_failure(e, Job::Files(contents))),
        };
        let mut items: VecDeque<(SmallContent, Option<u64>)> =
            contents.into_iter().zip(lens).collect();
        let mut refused = Vec::new();
        // What is left of the job when reading stops at the front of `items`.
        let rest = |items: VecDeque<(SmallContent, Option<u64>)>, refused: Vec<SmallContent>| {
            Job::Files(items.into_iter().map(|(c, _)| c).chain(refused).collect())
        };
        while let Some((content, len)) = items.pop_front() {
            let Some(len) = len else {
                refused.push(content);
                continue;
            };
            if len != content.size {
                let why = format!("offered {len} bytes of a content of {}", content.size);
                items.push_front((content, Some(len)));
                return Err(Failure::Lied {
                    why,
                    rest: rest(items, refused),
                });
            }
            let mut bytes = vec![0; len as usize];
            if let Err(e) = self.receiving.recv_exact(stream, &mut bytes).await {
                items.push_front((content, Some(len)));
                return Err(net_failure(e, rest(items, refused)));
            }
            if ContentHash::from(blake3::hash(&bytes)) != content.hash {
                let why = format!("sent a corrupted file ({})", content.hash);
                items.push_front((content, Some(len)));
                return Err(Failure::Lied {
                    why,
                    rest: rest(items, refused),
                });
            }
            let delivered = self.schedule.deliver(content.hash);
            self.received(len, delivered);
            if !delivered {
                continue;
            }
            let op = WriteOp::Whole {
                hash: content.hash,
                bytes,
                targets: content.targets,
            };
            if self.writer.send(op).await.is_err() {
                return Ok(());
            }
        }
        if refused.is_empty() {
            Ok(())
        } else {
            Err(Failure::Refused {
                why: "refused: it does not hold that content as recorded now".to_owned(),
                rest: Job::Files(refused),
            })
        }
    }
}

fn request_for(job: &Job) -> Request {
    match job {
        Job::Files(contents) => Request::Files {
            hashes: contents.iter().map(|c| c.hash).collect(),
        },
        Job::Span { fetch, chunks, .. } => {
            let offset = fetch.offsets[chunks.start];
            let len = fetch.manifest.chunks[chunks.clone()]
                .iter()
                .map(|c| u64::from(c.len))
                .sum();
            Request::Chunks(ChunkRanges {
                hash: fetch.hash,
                ranges: vec![(offset, len)],
            })
        }
    }
}

/// An answer that is neither the one expected nor an error.
fn unexpected(response: Response, rest: Job) -> Failure {
    match response {
        Response::Error { code, message } if code == ErrorCode::REFUSED => Failure::Refused {
            why: remote_reason(code, &message),
            rest,
        },
        Response::Error { code, message } => Failure::Lost {
            why: remote_reason(code, &message),
            rest,
        },
        other => Failure::Lied {
            why: format!("unexpected answer {other:?}"),
            rest,
        },
    }
}

/// A failure to read an answer: the holder's file changed while it was sent
/// (ask elsewhere), a broken frame (a lie), or a lost connection.
fn net_failure(e: NetError, rest: Job) -> Failure {
    match e {
        NetError::StreamReset { code, .. } if code == u64::from(crate::proto::stream::CHANGED) => {
            Failure::Refused {
                why: "refused: its copy changed while it was being sent".to_owned(),
                rest,
            }
        }
        NetError::Protocol { .. } => Failure::Lied {
            why: e.reason(),
            rest,
        },
        other => Failure::Lost {
            why: other.reason(),
            rest,
        },
    }
}
