-- Harmony state database, schema version 6.
-- Replicated state lives in `entries`; everything else is this location's own.

-- Small settings and counters: repo_id, node_name, listen, chunking,
-- incarnation (random, new with every database), write_counter (this node's
-- version-vector counter), change_seq (the last change sequence given to an
-- entry) and state_digest (XOR of every entry's digest).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;

-- One row per file of the repository (also files not held here, and
-- tombstones), as a postcard-encoded model::FileEntry. `path` and `deleted`
-- mirror the entry for lookups; `seq` is this node's change sequence at the
-- row's last change, so "everything changed since N" is one index range;
-- `body_seq` is the change sequence of its last change other than in its
-- holder slots, and `body_from` the peer that change was taken from whole
-- (its version, merged here, left as it was), NULL for any other change: a
-- peer that has merged up to `body_seq`, or is `body_from`, needs only the
-- slots, sent as compact runs; `digest` is the entry's fingerprint, kept to
-- update state_digest.
CREATE TABLE entries (
    file_id   BLOB PRIMARY KEY,
    path      TEXT NOT NULL,
    deleted   INTEGER NOT NULL,
    seq       INTEGER NOT NULL,
    digest    BLOB NOT NULL,
    data      BLOB NOT NULL,
    body_seq  INTEGER NOT NULL,
    body_from BLOB
) WITHOUT ROWID;
CREATE INDEX entries_by_path ON entries(path);
CREATE INDEX entries_by_seq ON entries(seq);
CREATE INDEX tombstones ON entries(file_id) WHERE deleted = 1;

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
    dev      INTEGER NOT NULL,
    -- model::Kind::code: 0 regular file, 1 executable, 2 symbolic link
    kind     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX local_files_by_hash ON local_files(hash);
CREATE INDEX local_files_by_id ON local_files(file_id);

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

-- Every known node's record (model::NodeRecord, postcard, signed by its
-- node), replicated like entries: `seq` and `digest` as there; `from_peer`
-- the peer it was taken from as that peer sent it (NULL if written here or
-- changed by a merge), which is not sent it back.
CREATE TABLE nodes (
    node_id   BLOB PRIMARY KEY,
    seq       INTEGER NOT NULL,
    digest    BLOB NOT NULL,
    data      BLOB NOT NULL,
    from_peer BLOB
) WITHOUT ROWID;
CREATE INDEX nodes_by_seq ON nodes(seq);

-- How far this node has merged each peer's changes: every entry the peer
-- had given a change sequence <= seq, in the peer's database `incarnation`.
-- `whole` is set when a compact holder run of the peer could not be placed
-- here: the next session asks for the peer's changes after `seq` as whole
-- entries.
CREATE TABLE peer_progress (
    node_id     BLOB PRIMARY KEY,
    incarnation BLOB NOT NULL,
    seq         INTEGER NOT NULL,
    whole       INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- How far each peer has merged this node's changes, as it said in its last
-- sync hello: a tombstone is removed only once every peer has it.
CREATE TABLE peer_has_mine (
    node_id BLOB PRIMARY KEY,
    seq     INTEGER NOT NULL
) WITHOUT ROWID;

-- Live files that lost a clash for their path (model::placement) and the
-- conflict name each lives under in every tree. Derived from `entries` and
-- kept up to date with it: the same on every location that knows the same
-- state. A file not listed here lives at its `entries.path`.
CREATE TABLE displaced (
    file_id BLOB PRIMARY KEY,
    placed  TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX displaced_by_path ON displaced(placed);

-- Which files have (or had, in some holder's slot) which content, so that
-- holders are found per content (DESIGN.md, invariant 9): any location
-- holding a hash can serve it, whichever file it holds it for. Derived
-- from the holder slots of `entries`.
CREATE TABLE content_files (
    hash    BLOB NOT NULL,
    file_id BLOB NOT NULL,
    PRIMARY KEY (hash, file_id)
) WITHOUT ROWID;

-- Remote changes that could not be applied to this working tree (a file in
-- the way, permission denied, a full disk...): retried at the next sync or
-- get, shown by `status` until then.
CREATE TABLE blocked (
    file_id BLOB PRIMARY KEY,
    path    TEXT NOT NULL,
    reason  TEXT NOT NULL,
    at_ms   INTEGER NOT NULL
) WITHOUT ROWID;

-- What `.harmony/trash/` keeps: each file there (by its name), the version
-- it is (path, content, size), when and why it was kept.
CREATE TABLE trash (
    name   TEXT PRIMARY KEY,
    path   TEXT NOT NULL,
    hash   BLOB NOT NULL,
    size   INTEGER NOT NULL,
    at_ms  INTEGER NOT NULL,
    -- repo::trash::Reason::code: 0 deleted elsewhere, 1 replaced by a newer
    -- version, 2 a conflict settled for another version
    reason INTEGER NOT NULL
) WITHOUT ROWID;

-- Invites this node made (`harmony invite`; proto::pair): `id` is derived
-- from `secret`; `used_by` is the node that paired with it, once used
-- (single use: consuming it and trusting that node is one transaction).
CREATE TABLE invites (
    id         BLOB PRIMARY KEY,
    secret     BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    used_by    BLOB,
    used_ms    INTEGER
) WITHOUT ROWID;
