-- Harmony state database, schema version 1.
-- Replicated state lives in `entries`; everything else is this location's own.

-- Small settings and counters: repo_id, node_name, listen, counters, chunking.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;

-- One row per file of the repository (also files not held here, and
-- tombstones), as a postcard-encoded model::FileEntry. `path` and `deleted`
-- mirror the entry for lookups; `seq` is this node's change sequence at the
-- row's last change, so "everything changed since N" is one index range.
CREATE TABLE entries (
    file_id BLOB PRIMARY KEY,
    path    TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    data    BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX entries_by_path ON entries(path);
CREATE INDEX entries_by_seq ON entries(seq);

-- The working tree as last recorded here: which file id and content each
-- path holds, and the stat fields that let a rescan skip unchanged files.
CREATE TABLE local_files (
    path     TEXT PRIMARY KEY,
    file_id  BLOB NOT NULL,
    hash     BLOB NOT NULL,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    inode    INTEGER NOT NULL,
    dev      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX local_files_by_hash ON local_files(hash);

-- Chunk manifests of contents cut into more than one chunk (a content of one
-- chunk is its own manifest: its chunk hash is its content hash).
CREATE TABLE manifests (
    hash   BLOB PRIMARY KEY,
    chunks BLOB NOT NULL
) WITHOUT ROWID;

-- Trusted peers.
CREATE TABLE peers (
    name     TEXT PRIMARY KEY,
    node_id  BLOB NOT NULL UNIQUE,
    addr     TEXT NOT NULL,
    added_ms INTEGER NOT NULL
) WITHOUT ROWID;
