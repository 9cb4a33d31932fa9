//! Keeping held files current and acting on the preferred-content rules:
//! when a file this location holds has a newer version elsewhere, or the
//! rules want a file here that it lacks, the live node fetches it with the
//! same verified, resumable `get` a user types (`harmony get --auto`); then
//! it drops what the rules no longer want, each file only once numcopies
//! other copies are confirmed (`harmony drop --auto`). A location that set
//! no rules and is in no group wants what it holds: nothing new is fetched
//! and nothing dropped.
//!
//! A local edit is never overwritten: the watcher commits it as a version
//! of its own, concurrent with the newer one, so the file is a conflict and
//! `get` leaves it alone, as it does for a user.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::{Inbox, StatusBoard};
use crate::model::FileId;
use crate::node::{trusted_holders, PlannedGet};
use crate::transfer::{drop_files, GetReport, Holders};
use crate::{Repo, Selection};

/// The first wait before fetching again after a fetch that could not get
/// everything (a holder away); it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(300);

/// Fetches the outdated held files each time `wanted` is raised, one get at
/// a time; raises `inbox` when files were fetched (this location's holder
/// slots changed, which its peers should hear).
pub(super) async fn keep_fetching(
    root: PathBuf,
    wanted: Arc<Notify>,
    inbox: Inbox,
    status: StatusBoard,
    handshake_timeout: Duration,
) {
    let mut retry = RETRY_FIRST;
    loop {
        wanted.notified().await;
        let fetched = fetch_outdated(&root, &status, handshake_timeout).await;
        status.transfer_ended();
        let complete = match fetched {
            Ok(None) => true,
            Ok(Some(report)) => {
                tracing::info!(
                    "fetched {} files ({} bytes received, {} reused){}",
                    report.files,
                    report.bytes_fetched,
                    report.bytes_reused,
                    if report.failed.is_empty() {
                        String::new()
                    } else {
                        format!("; not fetched: {}", report.failed.join("; "))
                    }
                );
                if report.files > 0 {
                    inbox.local_change();
                }
                report.failed.is_empty()
            }
            Err(e) => {
                tracing::warn!("cannot fetch the outdated held files: {e}");
                false
            }
        };
        if complete {
            retry = RETRY_FIRST;
        } else {
            let again = wanted.clone();
            let wait = retry;
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                again.notify_one();
            });
            retry = (retry * 2).min(RETRY_MAX);
        }
    }
}

/// One `get` of every outdated held file and every file the rules want
/// here, then the drop of what they no longer want; `None` when there is
/// nothing to do (or another get runs here: it fetches them).
async fn fetch_outdated(
    root: &std::path::Path,
    status: &StatusBoard,
    handshake_timeout: Duration,
) -> anyhow::Result<Option<GetReport>> {
    let at = root.to_path_buf();
    let prepared = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let repo = Repo::open(&at)?;
        let (wanted, unwanted) = repo.auto_targets(&[])?;
        let planned = match PlannedGet::of(&repo, Selection::OutdatedAnd(&wanted)) {
            Ok(planned) => planned,
            Err(crate::Error::GetRunning(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if planned.plan().contents.is_empty() && unwanted.is_empty() {
            return Ok(None);
        }
        let holders = trusted_holders(&repo, handshake_timeout)?;
        Ok(Some((planned, holders, unwanted)))
    })
    .await??;
    let Some((planned, mut holders, unwanted)) = prepared else {
        return Ok(None);
    };
    let report = planned.run(&mut holders, Arc::new(status.clone())).await;
    drop_unwanted(root, &unwanted, &mut holders).await;
    holders.close().await;
    Ok(Some(report?))
}

/// Drops the files the rules no longer want here; one whose other copies
/// are not confirmed stays (it is tried again at the next change).
async fn drop_unwanted(root: &std::path::Path, unwanted: &[FileId], holders: &mut Holders) {
    if unwanted.is_empty() {
        return;
    }
    match drop_files(root, unwanted, holders, false).await {
        Ok(report) => {
            if !report.dropped.is_empty() {
                tracing::info!(
                    "dropped {} files the preferred-content rules no longer want here",
                    report.dropped.len()
                );
            }
            for refusal in &report.refused {
                tracing::debug!("kept, though not wanted: {refusal}");
            }
        }
        Err(e) => tracing::warn!("cannot drop the files the rules no longer want: {e}"),
    }
}
