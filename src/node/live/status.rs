//! What a running `serve` is doing, for `harmony status`: its peers
//! (connected or not, the last sync and how it ended) and the transfer in
//! progress, kept in memory and written to `.harmony/serve.json`.
//!
//! Why a file and not a socket: `status` then needs no protocol, no
//! connection and no running event loop to answer, and a stopped `serve`
//! is told apart from a running one by the process id the file names. The
//! file is written whole and renamed into place (a reader never sees half of
//! it), readable by the owner only, at most a few times a second however
//! busy the node is, and removed when `serve` stops.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::model::{NodeId, STATE_DIR};
use crate::repo::now_ms;
use crate::transfer::TransferProgress;

/// The file inside `.harmony/`.
pub const STATUS_FILE: &str = "serve.json";

/// How often the file is rewritten at most.
const WRITE_EVERY: Duration = Duration::from_millis(250);

/// A running `serve`, as its status file tells it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ServeStatus {
    /// The process id of `serve`.
    pub pid: u32,
    /// The address it listens on.
    pub listen: String,
    /// When it started (ms since the Unix epoch).
    pub started_ms: i64,
    /// Each trusted peer, by name.
    pub peers: BTreeMap<String, PeerStatus>,
    /// The content transfer in progress, if any.
    pub transfer: Option<TransferStatus>,
}

/// One peer, as `serve` sees it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerStatus {
    /// The peer's node id.
    pub id: String,
    /// Whether `serve` has a connection to it now.
    pub connected: bool,
    /// When the last sync with it ended (ms since the Unix epoch).
    pub last_sync_ms: Option<i64>,
    /// How it ended: `ok` with what changed, or the error.
    pub last_result: Option<String>,
    /// Syncs with it since `serve` started.
    pub syncs: u64,
}

/// The content transfer in progress.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TransferStatus {
    /// Files being fetched.
    pub files: u64,
    /// Bytes to fetch in all.
    pub bytes_total: u64,
    /// Bytes fetched so far.
    pub bytes_done: u64,
    /// Bytes per second since the transfer started.
    pub rate: f64,
}

impl ServeStatus {
    /// The status of the `serve` running at the location whose state
    /// folder is `state_dir`, or `None` when none runs there (no file, or a
    /// file left by a `serve` that died).
    pub fn read(state_dir: &Path) -> Option<ServeStatus> {
        let text = std::fs::read(state_dir.join(STATUS_FILE)).ok()?;
        let status: ServeStatus = serde_json::from_slice(&text).ok()?;
        process_runs(status.pid).then_some(status)
    }
}

/// Whether a process `pid` runs (signal 0 reaches it).
fn process_runs(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    // EPERM also means it exists (another user's): not ours, so no.
    rustix::process::test_kill_process(pid).is_ok()
}

/// The live node's status, shared by its tasks, written by [`StatusBoard::keep_written`].
#[derive(Clone, Debug, Default)]
pub struct StatusBoard(Arc<Board>);

#[derive(Debug, Default)]
struct Board {
    status: Mutex<ServeStatus>,
    /// When the transfer in progress started.
    transfer_started: Mutex<Option<Instant>>,
    changed: Notify,
}

impl StatusBoard {
    /// A board for this process, listening on `listen`.
    pub fn new(listen: String) -> Self {
        let board = StatusBoard::default();
        board.update(|status| {
            status.pid = std::process::id();
            status.listen = listen;
            status.started_ms = now_ms();
        });
        board
    }

    fn update(&self, change: impl FnOnce(&mut ServeStatus)) {
        change(&mut self.0.status.lock().unwrap_or_else(|e| e.into_inner()));
        self.0.changed.notify_one();
    }

    /// What the board says now.
    pub fn snapshot(&self) -> ServeStatus {
        self.0
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The trusted peers are these (by name); others are forgotten.
    pub fn set_peers(&self, peers: &[(String, NodeId)]) {
        self.update(|status| {
            status
                .peers
                .retain(|name, _| peers.iter().any(|(n, _)| n == name));
            for (name, id) in peers {
                status.peers.entry(name.clone()).or_default().id = id.to_string();
            }
        });
    }

    /// The connection to `peer` came up or went down.
    pub fn connected(&self, peer: &str, up: bool) {
        self.update(|status| {
            if let Some(p) = status.peers.get_mut(peer) {
                p.connected = up;
            }
        });
    }

    /// A sync with `peer` ended with `result`.
    pub fn synced(&self, peer: &str, result: String) {
        self.update(|status| {
            if let Some(p) = status.peers.get_mut(peer) {
                p.last_sync_ms = Some(now_ms());
                p.last_result = Some(result);
                p.syncs += 1;
            }
        });
    }

    /// The transfer in progress ended.
    pub fn transfer_ended(&self) {
        *self
            .0
            .transfer_started
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
        self.update(|status| status.transfer = None);
    }

    /// Writes the status file at the location `root` whenever the board
    /// changes (at most every [`WRITE_EVERY`]), until dropped; the caller
    /// removes the file with [`StatusBoard::remove_file`] on the way out.
    pub async fn keep_written(self, root: PathBuf) {
        let path = root.join(STATE_DIR).join(STATUS_FILE);
        loop {
            let status = self.snapshot();
            let write_to = path.clone();
            let written = tokio::task::spawn_blocking(move || write(&write_to, &status)).await;
            if let Ok(Err(e)) = written {
                tracing::warn!("cannot write {}: {e}", path.display());
            }
            tokio::time::sleep(WRITE_EVERY).await;
            self.0.changed.notified().await;
        }
    }

    /// Writes the status file at the location `root` now: before `serve`
    /// says it started, so that a command run as soon as it did (`invite`)
    /// already finds it running.
    pub fn write_now(&self, root: &Path) -> std::io::Result<()> {
        write(&root.join(STATE_DIR).join(STATUS_FILE), &self.snapshot())
    }

    /// Removes the status file of the location `root`: `serve` stopped.
    pub fn remove_file(root: &Path) {
        let _ = std::fs::remove_file(root.join(STATE_DIR).join(STATUS_FILE));
    }
}

/// Writes `status` to `path` whole: a temporary file (owner-only) renamed
/// over it.
fn write(path: &Path, status: &ServeStatus) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(&serde_json::to_vec_pretty(status)?)?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

impl TransferProgress for StatusBoard {
    fn start(&self, files: u64, bytes: u64) {
        *self
            .0
            .transfer_started
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        self.update(|status| {
            status.transfer = Some(TransferStatus {
                files,
                bytes_total: bytes,
                ..TransferStatus::default()
            })
        });
    }

    fn advance(&self, bytes: u64) {
        let started = *self
            .0
            .transfer_started
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.update(|status| {
            if let Some(transfer) = &mut status.transfer {
                transfer.bytes_done += bytes;
                let secs = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
                if secs > 0.0 {
                    transfer.rate = transfer.bytes_done as f64 / secs;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_file_tells_a_running_serve_and_not_a_dead_one() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join(STATE_DIR);
        std::fs::create_dir(&state).unwrap();
        assert_eq!(ServeStatus::read(&state), None);
        let board = StatusBoard::new("127.0.0.1:7447".into());
        let a = NodeId([1; 32]);
        board.set_peers(&[("nas".into(), a)]);
        board.connected("nas", true);
        board.synced("nas", "ok".into());
        board.start(2, 1000);
        board.advance(400);
        let writer = tokio::spawn(board.clone().keep_written(dir.path().to_path_buf()));
        let read = loop {
            match ServeStatus::read(&state) {
                Some(read) if read.transfer.is_some() => break read,
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        writer.abort();
        let nas = &read.peers["nas"];
        assert!(nas.connected);
        assert_eq!((nas.syncs, nas.last_result.as_deref()), (1, Some("ok")));
        assert_eq!(nas.id, a.to_string());
        let transfer = read.transfer.clone().unwrap();
        assert_eq!((transfer.bytes_done, transfer.bytes_total), (400, 1000));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(state.join(STATUS_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "owner only");
        // A file left by a process that is gone tells nothing.
        let mut dead = read.clone();
        dead.pid = i32::MAX as u32;
        write(&state.join(STATUS_FILE), &dead).unwrap();
        assert_eq!(ServeStatus::read(&state), None);
        StatusBoard::remove_file(dir.path());
        assert!(!state.join(STATUS_FILE).exists());
    }
}
