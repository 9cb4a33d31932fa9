//! Reading a location's state database from async code: one blocking read
//! on a thread of its own, its failure (a store error, or the thread lost)
//! as one readable text, so each caller only says what it does without it.

use std::path::Path;

use crate::model::STATE_DIR;
use crate::store::{Store, StoreError, DB_FILE};

/// Opens the state database of the location at `root` and runs `read` on
/// it, on a blocking thread.
pub(crate) async fn read_state<T: Send + 'static>(
    root: &Path,
    read: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, String> {
    let db = root.join(STATE_DIR).join(DB_FILE);
    tokio::task::spawn_blocking(move || read(&Store::open(&db)?))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}
