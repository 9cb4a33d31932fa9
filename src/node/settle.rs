//! Syncing with one peer until settled: a session can leave news for the
//! peer (applying what arrived changes this side's holder slots), which one
//! more session carries back.

use std::future::Future;
use std::path::Path;

use crate::net::PeerConnection;
use crate::sync::{sync_with, SessionReport, SyncError};

/// Sessions with one peer at most: the second carries back what applying
/// the first changed here (holder slots); a third is never needed in tests
/// and is the safety bound.
pub const MAX_SESSIONS: usize = 3;

/// Runs `session` again while the last one left news for the peer, at most
/// [`MAX_SESSIONS`] times. Returns the reports of the sessions that
/// completed and how the last one ended.
pub async fn settle<F, Fut, E>(mut session: F) -> (Vec<SessionReport>, Result<(), E>)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<SessionReport, E>>,
{
    let mut reports = Vec::new();
    for _ in 0..MAX_SESSIONS {
        match session().await {
            Ok(report) => {
                let again = report.left_news();
                reports.push(report);
                if !again {
                    break;
                }
            }
            Err(e) => return (reports, Err(e)),
        }
    }
    (reports, Ok(()))
}

/// Syncs the location at `root` with the peer of `conn` until settled (see
/// [`settle`]). The caller commits first if it wants local changes included.
pub async fn sync_until_settled(
    conn: &PeerConnection,
    root: &Path,
) -> (Vec<SessionReport>, Result<(), SyncError>) {
    settle(|| sync_with(conn, root.to_path_buf())).await
}
