//! Keeping held files current: when a file this location holds has a newer
//! version elsewhere, the live node fetches it with the same verified,
//! resumable `get` a user types (`harmony get` with no path). Nothing else is
//! fetched: which new files a location wants is for placement rules.
//!
//! A local edit is never overwritten: the watcher commits it as a version
//! of its own, concurrent with the newer one, so the file is a conflict and
//! `get` leaves it alone, as it does for a user.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::{Inbox, StatusBoard};
use crate::node::{trusted_holders, PlannedGet};
use crate::transfer::GetReport;
use crate::Repo;

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

/// One `get` of every outdated held file; `None` when there is none (or
/// another get runs here: it fetches them).
async fn fetch_outdated(
    root: &std::path::Path,
    status: &StatusBoard,
    handshake_timeout: Duration,
) -> anyhow::Result<Option<GetReport>> {
    let at = root.to_path_buf();
    let prepared = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let repo = Repo::open(&at)?;
        let planned = match PlannedGet::new(&repo, None) {
            Ok(planned) => planned,
            Err(crate::Error::GetRunning(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if planned.plan().contents.is_empty() {
            return Ok(None);
        }
        let holders = trusted_holders(&repo, handshake_timeout)?;
        Ok(Some((planned, holders)))
    })
    .await??;
    let Some((planned, mut holders)) = prepared else {
        return Ok(None);
    };
    let report = planned.run(&mut holders, Arc::new(status.clone())).await;
    holders.close().await;
    Ok(Some(report?))
}
