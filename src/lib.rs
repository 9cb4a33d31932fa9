//! Harmony: peer-to-peer synchronisation of one repository of files spread
//! over many locations, no location holding every file.
//!
//! The crate is split like quinn's proto/shell: [`model`] holds the pure rules
//! (no I/O), and the other modules are shells around it: [`store`] keeps the
//! state on disk, [`scan`] connects the working tree to the state, [`chunk`]
//! cuts and hashes content, [`net`] holds identities and the transport.
//! [`Repo`] is the API the command line, the tests and the examples use;
//! [`node`] puts a running node of a location together above [`sync`] and
//! [`transfer`].

#![forbid(unsafe_code)]
// A dropped Result or must-use value is a lost error: refuse to build.
#![deny(unused_must_use)]
// The public API is what the CLI, the tests and the examples build on: each
// item says what it is for. And `pub` means "part of that API": an item only
// the crate uses says so with `pub(crate)`, so a reader knows what may change
// freely.
#![warn(missing_docs, unreachable_pub)]

pub mod chunk;
mod disk;
mod error;
pub mod model;
pub mod net;
pub mod node;
pub mod proto;
mod repo;
pub mod scan;
pub mod store;
pub mod sync;
pub mod transfer;
pub mod tree;

pub use error::{Error, Result};
pub use repo::{
    ApplyReport, CommitOptions, CommitReport, Config, ConfigSource, ConfigValue, Conflict,
    ConflictKind, ConflictSide, FileState, GetPlan, Holder, InitOptions, Keep, ListedFile, Repo,
    Resolution, RuleVerdict, Selection, StatusLine, TrashEmptied, TrashReason, TrashedFile,
    WantedContent, Whereabouts, CONFIG_FILE, CONFIG_KEYS, DEFAULT_PORT, TRASH_DIR,
};
