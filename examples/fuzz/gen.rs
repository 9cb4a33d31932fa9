//! Structure-aware inputs: every message and stored value built from an
//! [`arbitrary::Unstructured`] stream, so that most inputs get past the
//! length header and the variant index and reach the fields behind them.
//!
//! Lengths and counts are mostly small (so that an execution is cheap) and
//! sometimes exactly at a limit or one past it (so that every limit check is
//! met from both sides). Values a hostile peer would pick (paths with `..`,
//! empty registers, `u64::MAX` counters) are made on purpose: a `Batch` is
//! built as a mirror of the library's types ([`RawBatch`]) whose registers
//! and paths are plain data, encoded exactly as the real types are (checked
//! by [`check_mirror`]).

use std::collections::BTreeMap;

use arbitrary::{Result, Unstructured};
use serde::Serialize;

use harmony::chunk::{ChunkParams, ChunkRef, Manifest, PageRef, PAGE_MAX_CHUNKS};
use harmony::model::digest::{Summary, MAX_SUMMARY_BUCKETS};
use harmony::model::preferred::{MAX_EXPR_BYTES, MAX_GROUP_NAME};
use harmony::model::{
    Content, ContentHash, FileId, Holding, InviteId, NodeId, NodeRecord, NumCopiesSetting,
    Preferences, RecordProof, RepoId, VersionVector, MAX_ADDR_LEN, MAX_GROUPS, MAX_NODE_ADDRS,
    MAX_NODE_NAME, MAX_NUMCOPIES, MAX_PROOF_KEY, MAX_PROOF_SIGNATURE,
};
use harmony::proto::discovery::Beacon;
use harmony::proto::holdings::MAX_RUN_SLOTS;
use harmony::proto::{
    ChunkRanges, ErrorCode, Hello, HolderRun, JoinAnswer, JoinRefusal, JoinRequest, ManifestIndex,
    Membership, Request, Response, SyncHello, MAX_BATCH_ENTRIES, MAX_BATCH_NODES, MAX_FILES,
    MAX_INDEX_PAGES, MAX_NAME, MAX_NODES_PER_ENTRY, MAX_PAGES_ASKED, MAX_PING_PAYLOAD, MAX_RANGES,
    MAX_SIBLINGS, MAX_SUB_CHUNKS, MAX_WHOLE_FILE, PROTOCOL_VERSION,
};

/// True `numerator` times in `denominator`; false once the entropy is used
/// up (where `Unstructured::ratio` says true), so that an input whose
/// entropy ran out stays small instead of growing to every limit.
fn chance(u: &mut Unstructured, numerator: u8, denominator: u8) -> Result<bool> {
    Ok(!u.is_empty() && u.ratio(numerator, denominator)?)
}

/// A length or count: usually up to `typical`, now and then `limit` or
/// `limit + 1` (1 in 32).
fn count(u: &mut Unstructured, typical: usize, limit: usize) -> Result<usize> {
    if chance(u, 1, 32)? {
        return Ok(limit + usize::from(u.arbitrary::<bool>()?));
    }
    u.int_in_range(0..=typical)
}

/// A number where limits and overflows hide: 0, 1, near a power of two or
/// the type's maximum, or anything.
fn number(u: &mut Unstructured) -> Result<u64> {
    Ok(match u.int_in_range(0..=5)? {
        0 => 0,
        1 => 1,
        2 => u64::MAX - u.int_in_range(0..=1)?,
        3 => (1u64 << u.int_in_range(0..=63)?)
            .wrapping_add(u.int_in_range(0..=2)?)
            .wrapping_sub(1),
        _ => u.arbitrary()?,
    })
}

/// A counter or size limited to `max`, at or around its limit now and then.
fn bounded(u: &mut Unstructured, max: u64) -> Result<u64> {
    if chance(u, 1, 8)? {
        return Ok(max.saturating_add(u.int_in_range(0..=1)?));
    }
    u.int_in_range(0..=max)
}

/// One of a few node ids (so that vectors and holder maps share nodes, as
/// in a real repository) or any 32 bytes.
pub fn node_id(u: &mut Unstructured) -> Result<NodeId> {
    if chance(u, 3, 4)? {
        return Ok(NodeId([u.int_in_range(1..=6)?; 32]));
    }
    Ok(NodeId(u.arbitrary()?))
}

fn hash(u: &mut Unstructured) -> Result<ContentHash> {
    Ok(ContentHash(u.arbitrary()?))
}

/// Text of `len` bytes or so, mostly name-like, sometimes any UTF-8.
fn text(u: &mut Unstructured, len: usize) -> Result<String> {
    if chance(u, 1, 4)? {
        let s: String = u.arbitrary()?;
        return Ok(s.chars().take(len).collect());
    }
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789._-";
    (0..len)
        .map(|_| u.choose(alphabet).map(|c| *c as char))
        .collect()
}

/// A path as a peer might send it: mostly a valid repository path, now and
/// then one that breaks a rule (escapes, empty parts, NUL, `.harmony`, too
/// long).
pub fn path_text(u: &mut Unstructured) -> Result<String> {
    const NAMES: &[&str] = &[
        "a",
        "b",
        "docs",
        "x.txt",
        ".hidden",
        "ünï",
        "a..b",
        "dir",
        "photo.jpg",
        "src",
    ];
    const HOSTILE: &[&str] = &["", ".", "..", ".harmony", "a\0b", "/", "x/"];
    let parts = u.int_in_range(1..=4)?;
    let mut out = Vec::with_capacity(parts);
    for _ in 0..parts {
        let name = match u.int_in_range(0..=15)? {
            0 => u.choose(HOSTILE)?.to_string(),
            1 => "n".repeat(u.int_in_range(250..=260)?),
            2 => text(u, 12)?,
            _ => u.choose(NAMES)?.to_string(),
        };
        out.push(name);
    }
    let mut path = out.join("/");
    if chance(u, 1, 40)? {
        path = format!("{path}/{}", ["y"; 2100].join("/"));
    }
    if chance(u, 1, 30)? {
        path.insert(0, '/');
    }
    Ok(path)
}

/// The `i`th of many distinct nodes, for maps at their size limit (which
/// the entropy of one input could not fill with random ids).
fn many(i: usize) -> NodeId {
    let mut id = [0xee; 32];
    id[..8].copy_from_slice(&(i as u64).to_le_bytes());
    NodeId(id)
}

/// `n` node ids: from the small pool for a short map, else distinct.
fn nodes(u: &mut Unstructured, n: usize) -> Result<Vec<NodeId>> {
    if n > 16 {
        return Ok((0..n).map(many).collect());
    }
    (0..n).map(|_| node_id(u)).collect()
}

fn version_vector(u: &mut Unstructured) -> Result<VersionVector> {
    let mut vector = VersionVector::new();
    let n = count(u, 4, MAX_NODES_PER_ENTRY)?;
    for node in nodes(u, n)? {
        vector.record(node, number(u)?);
    }
    Ok(vector)
}

/// One version of a register, encoded as `model::Versioned<T>` is.
#[derive(Clone, Debug, Serialize)]
pub struct RawVersioned<T> {
    version: VersionVector,
    value: T,
    by: NodeId,
    at_ms: i64,
}

/// A link target or path as plain text: what a hostile peer controls.
#[derive(Clone, Debug, Serialize)]
pub enum RawContent {
    /// As `Content::File`.
    File {
        hash: ContentHash,
        size: u64,
        mtime_ns: i64,
        executable: bool,
    },
    /// As `Content::Deleted`.
    Deleted,
    /// As `Content::Link`, with a target that may break its rules.
    Link { target: String },
}

/// A file entry as the wire carries it, registers as plain lists (possibly
/// empty, unsorted or with dominated versions), encoded as `FileEntry` is.
#[derive(Clone, Debug, Serialize)]
pub struct RawEntry {
    id: FileId,
    path: Vec<RawVersioned<String>>,
    content: Vec<RawVersioned<RawContent>>,
    holders: BTreeMap<NodeId, Holding>,
    deletion_seen: BTreeMap<NodeId, VersionVector>,
}

/// A `Batch` as the wire carries it: encoded with the node ids of its
/// entries in a table, and indices into it (protocol.md, `Batch`).
#[derive(Clone, Debug)]
pub struct RawBatch {
    entries: Vec<RawEntry>,
    nodes: Vec<NodeRecord>,
    upto: u64,
    runs: Vec<HolderRun>,
}

/// A version vector as (node index, counter) pairs.
type IndexedVector = Vec<(u32, u64)>;

#[derive(Serialize)]
struct IndexedVersioned<'a, T> {
    version: IndexedVector,
    value: &'a T,
    by: u32,
    at_ms: i64,
}

#[derive(Serialize)]
struct IndexedEntry<'a> {
    id: FileId,
    path: Vec<IndexedVersioned<'a, String>>,
    content: Vec<IndexedVersioned<'a, RawContent>>,
    holders: Vec<(u32, &'a Holding)>,
    deletion_seen: Vec<(u32, IndexedVector)>,
}

impl Serialize for RawBatch {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        let mut table: Vec<NodeId> = Vec::new();
        for e in &self.entries {
            for (version, by) in e
                .path
                .iter()
                .map(|v| (&v.version, v.by))
                .chain(e.content.iter().map(|v| (&v.version, v.by)))
            {
                table.push(by);
                table.extend(version.iter().map(|(n, _)| *n));
            }
            table.extend(e.holders.keys().copied());
            for (node, seen) in &e.deletion_seen {
                table.push(*node);
                table.extend(seen.iter().map(|(n, _)| *n));
            }
        }
        table.sort_unstable();
        table.dedup();
        let index = |node: &NodeId| table.binary_search(node).expect("in the table") as u32;
        let vector = |v: &VersionVector| v.iter().map(|(n, c)| (index(n), *c)).collect();
        fn versions<'a, T>(
            list: &'a [RawVersioned<T>],
            index: &impl Fn(&NodeId) -> u32,
            vector: &impl Fn(&VersionVector) -> IndexedVector,
        ) -> Vec<IndexedVersioned<'a, T>> {
            list.iter()
                .map(|v| IndexedVersioned {
                    version: vector(&v.version),
                    value: &v.value,
                    by: index(&v.by),
                    at_ms: v.at_ms,
                })
                .collect()
        }
        let entries: Vec<IndexedEntry> = self
            .entries
            .iter()
            .map(|e| IndexedEntry {
                id: e.id,
                path: versions(&e.path, &index, &vector),
                content: versions(&e.content, &index, &vector),
                holders: e.holders.iter().map(|(n, h)| (index(n), h)).collect(),
                deletion_seen: e
                    .deletion_seen
                    .iter()
                    .map(|(n, seen)| (index(n), vector(seen)))
                    .collect(),
            })
            .collect();
        (&table, entries, &self.nodes, self.upto, &self.runs).serialize(serializer)
    }
}

/// A holder run: over the usual ids or near the last one (where a run
/// would run past it), of any length around its limit.
fn holder_run(u: &mut Unstructured) -> Result<HolderRun> {
    let first = if chance(u, 1, 8)? {
        u128::MAX - u.int_in_range(0..=2)?
    } else {
        u.int_in_range(0..=64)?
    };
    Ok(HolderRun {
        node: node_id(u)?,
        holds: u.arbitrary()?,
        first: FileId(first.to_be_bytes()),
        counters: (0..count(u, 8, MAX_RUN_SLOTS)?)
            .map(|_| number(u))
            .collect::<Result<_>>()?,
        check: u.arbitrary()?,
    })
}

fn versions<T>(
    u: &mut Unstructured,
    value: impl Fn(&mut Unstructured) -> Result<T>,
) -> Result<Vec<RawVersioned<T>>> {
    // Mostly one version, as in a repository without conflicts; an empty
    // register now and then (which no correct peer sends).
    let n = if chance(u, 1, 16)? {
        count(u, 3, MAX_SIBLINGS)?
    } else {
        1
    };
    (0..n)
        .map(|_| {
            Ok(RawVersioned {
                version: version_vector(u)?,
                value: value(u)?,
                by: node_id(u)?,
                at_ms: number(u)? as i64,
            })
        })
        .collect()
}

fn raw_content(u: &mut Unstructured) -> Result<RawContent> {
    Ok(match u.int_in_range(0..=7)? {
        0 => RawContent::Deleted,
        1 => RawContent::Link {
            target: if chance(u, 1, 8)? {
                "t".repeat(u.int_in_range(4095..=4097)?)
            } else {
                path_text(u)?
            },
        },
        _ => RawContent::File {
            hash: hash(u)?,
            size: number(u)?,
            mtime_ns: number(u)? as i64,
            executable: u.arbitrary()?,
        },
    })
}

pub fn raw_entry(u: &mut Unstructured) -> Result<RawEntry> {
    let mut holders = BTreeMap::new();
    let n = count(u, 3, MAX_NODES_PER_ENTRY)?;
    for node in nodes(u, n)? {
        let holding = Holding {
            hash: if u.arbitrary()? { Some(hash(u)?) } else { None },
            counter: number(u)?,
        };
        holders.insert(node, holding);
    }
    let mut deletion_seen = BTreeMap::new();
    let n = count(u, 2, 8)?;
    for node in nodes(u, n)? {
        deletion_seen.insert(node, version_vector(u)?);
    }
    Ok(RawEntry {
        id: FileId(u.arbitrary()?),
        path: versions(u, path_text)?,
        content: versions(u, raw_content)?,
        holders,
        deletion_seen,
    })
}

pub fn node_record(u: &mut Unstructured) -> Result<NodeRecord> {
    let name_len = count(u, 12, MAX_NODE_NAME)?;
    let addrs = (0..count(u, 2, MAX_NODE_ADDRS)?)
        .map(|_| {
            if chance(u, 1, 16)? {
                Ok("1".repeat(MAX_ADDR_LEN + usize::from(u.arbitrary::<bool>()?)))
            } else {
                Ok(format!(
                    "127.0.0.{}:{}",
                    u.arbitrary::<u8>()?,
                    u.arbitrary::<u16>()?
                ))
            }
        })
        .collect::<Result<_>>()?;
    Ok(NodeRecord {
        id: node_id(u)?,
        name: text(u, name_len)?,
        addrs,
        counter: number(u)?,
        preferences: preferences(u)?,
        proof: proof(u)?,
    })
}

/// A record's proof: mostly none or one of plausible sizes (its signature
/// is never checked by a decoder), now and then over a limit.
fn proof(u: &mut Unstructured) -> Result<Option<RecordProof>> {
    if chance(u, 1, 2)? {
        return Ok(None);
    }
    let mut bytes = |typical, limit| -> Result<Vec<u8>> {
        let len = count(u, typical, limit)?;
        (0..len).map(|_| u.arbitrary::<u8>()).collect()
    };
    Ok(Some(RecordProof {
        key: bytes(91, MAX_PROOF_KEY)?,
        signature: bytes(72, MAX_PROOF_SIGNATURE)?,
    }))
}

/// A node's placement preferences: mostly none or a few, sometimes at a
/// bound or one past it (an expression's length, the groups' count and
/// names, numcopies).
fn preferences(u: &mut Unstructured) -> Result<Preferences> {
    let wanted = if chance(u, 1, 2)? {
        None
    } else {
        let len = count(u, 24, MAX_EXPR_BYTES)?;
        Some(text(u, len)?)
    };
    let groups = (0..count(u, 2, MAX_GROUPS)?)
        .map(|_| {
            let len = count(u, 8, MAX_GROUP_NAME)?;
            text(u, len)
        })
        .collect::<Result<_>>()?;
    let numcopies = if chance(u, 1, 2)? {
        None
    } else {
        let copies = match u.int_in_range(0..=3)? {
            0 => 0,
            1 => MAX_NUMCOPIES + 1,
            _ => u.int_in_range(1..=MAX_NUMCOPIES)?,
        };
        Some(NumCopiesSetting {
            copies,
            at_ms: u.arbitrary()?,
        })
    };
    Ok(Preferences {
        wanted,
        groups,
        numcopies,
    })
}

pub fn batch(u: &mut Unstructured) -> Result<RawBatch> {
    // A batch at its entry limit is big and slow to make: rare.
    let entries = if chance(u, 1, 64)? {
        count(u, 4, MAX_BATCH_ENTRIES)?
    } else {
        u.int_in_range(0..=4)?
    };
    Ok(RawBatch {
        entries: (0..entries).map(|_| raw_entry(u)).collect::<Result<_>>()?,
        nodes: (0..count(u, 3, MAX_BATCH_NODES)?)
            .map(|_| node_record(u))
            .collect::<Result<_>>()?,
        upto: number(u)?,
        runs: (0..count(u, 3, 16)?)
            .map(|_| holder_run(u))
            .collect::<Result<_>>()?,
    })
}

/// A version range around ours (so that both negotiation and the fields
/// behind the range are reached), or any.
fn version(u: &mut Unstructured) -> Result<u32> {
    if chance(u, 3, 4)? {
        return u.int_in_range(PROTOCOL_VERSION - 2..=PROTOCOL_VERSION + 1);
    }
    u.arbitrary()
}

pub fn hello(u: &mut Unstructured) -> Result<Hello> {
    let version = version(u)?;
    let min_version = if chance(u, 7, 8)? {
        version.min(PROTOCOL_VERSION)
    } else {
        self::version(u)?
    };
    let name_len = count(u, 16, MAX_NAME)?;
    Ok(Hello {
        version,
        min_version,
        repo_id: repo_id(u)?,
        node_id: node_id(u)?,
        node_name: text(u, name_len)?,
        fresh: u.arbitrary()?,
        serves: u.arbitrary()?,
    })
}

fn repo_id(u: &mut Unstructured) -> Result<RepoId> {
    if chance(u, 3, 4)? {
        return Ok(RepoId([u.int_in_range(1..=2)?; 16]));
    }
    Ok(RepoId(u.arbitrary()?))
}

fn sync_hello(u: &mut Unstructured) -> Result<SyncHello> {
    Ok(SyncHello {
        digest: u.arbitrary()?,
        incarnation: u.arbitrary()?,
        seq: number(u)?,
        merged_yours: if u.arbitrary()? {
            Some((u.arbitrary()?, number(u)?))
        } else {
            None
        },
        membership: Membership {
            repo_id: repo_id(u)?,
            fresh: u.arbitrary()?,
        },
        whole_entries: u.arbitrary()?,
        summary: if u.arbitrary()? {
            let buckets = count(u, 16, MAX_SUMMARY_BUCKETS)?;
            Summary::from_buckets((0..buckets).map(|_| u.arbitrary()).collect::<Result<_>>()?)
        } else {
            None
        },
    })
}

fn chunk_ref(u: &mut Unstructured) -> Result<ChunkRef> {
    Ok(ChunkRef {
        hash: hash(u)?,
        len: number(u)? as u32,
    })
}

fn chunk_refs(u: &mut Unstructured, typical: usize, limit: usize) -> Result<Vec<ChunkRef>> {
    (0..count(u, typical, limit)?)
        .map(|_| chunk_ref(u))
        .collect()
}

fn payload(u: &mut Unstructured) -> Result<Vec<u8>> {
    let len = count(u, 32, MAX_PING_PAYLOAD)?;
    Ok((0..len).map(|i| i as u8).collect())
}

pub fn request(u: &mut Unstructured) -> Result<Request> {
    Ok(match u.int_in_range(0..=10)? {
        0 => Request::Ping {
            payload: payload(u)?,
        },
        1 => Request::Bulk {
            len: bounded(u, harmony::proto::MAX_BULK)?,
        },
        2 => Request::Sync(sync_hello(u)?),
        3 => Request::Manifest {
            hash: hash(u)?,
            first: number(u)? as u32,
        },
        4 => Request::Chunks(ChunkRanges {
            hash: hash(u)?,
            ranges: (0..count(u, 4, MAX_RANGES)?)
                .map(|_| Ok((number(u)?, bounded(u, 1 << 20)?)))
                .collect::<Result<_>>()?,
        }),
        5 => Request::Has { hash: hash(u)? },
        6 => Request::ManifestPages {
            hash: hash(u)?,
            pages: (0..count(u, 4, MAX_PAGES_ASKED)?)
                .map(|_| Ok(number(u)? as u32))
                .collect::<Result<_>>()?,
        },
        7 => Request::Files {
            hashes: (0..count(u, 4, MAX_FILES)?)
                .map(|_| hash(u))
                .collect::<Result<_>>()?,
        },
        8 => Request::Refine {
            hash: hash(u)?,
            offset: number(u)?,
            len: bounded(u, u64::from(harmony::proto::MAX_REFINE))? as u32,
        },
        9 => Request::Notify {
            digest: u.arbitrary()?,
        },
        _ => Request::Join(JoinRequest {
            invite: InviteId(u.arbitrary()?),
            port: u.arbitrary()?,
            mac: u.arbitrary()?,
        }),
    })
}

fn manifest_index(u: &mut Unstructured) -> Result<ManifestIndex> {
    let pages: Vec<PageRef> = (0..count(u, 4, MAX_INDEX_PAGES)?)
        .map(|_| {
            Ok(PageRef {
                hash: hash(u)?,
                chunks: bounded(u, PAGE_MAX_CHUNKS as u64)? as u32,
            })
        })
        .collect::<Result<_>>()?;
    let first = if chance(u, 7, 8)? {
        u.int_in_range(0..=3)?
    } else {
        number(u)? as u32
    };
    let total = if chance(u, 7, 8)? {
        first
            .saturating_add(pages.len() as u32)
            .saturating_add(u.int_in_range(0..=2)?)
    } else {
        number(u)? as u32
    };
    Ok(ManifestIndex {
        total,
        first,
        pages,
    })
}

pub fn response(u: &mut Unstructured) -> Result<Response> {
    Ok(match u.int_in_range(0..=11)? {
        0 => Response::Pong {
            payload: payload(u)?,
        },
        1 => Response::Bulk {
            len: bounded(u, harmony::proto::MAX_BULK)?,
        },
        2 => {
            let len = count(u, 40, harmony::proto::MAX_ERROR_TEXT)?;
            Response::Error {
                code: ErrorCode(number(u)? as u32),
                message: text(u, len)?,
            }
        }
        3 => Response::Sync(sync_hello(u)?),
        4 => Response::Manifest(manifest_index(u)?),
        5 => Response::Chunks { len: number(u)? },
        6 => Response::Has(u.arbitrary()?),
        7 => Response::ManifestPages(
            (0..count(u, 3, MAX_PAGES_ASKED)?)
                .map(|_| chunk_refs(u, 4, PAGE_MAX_CHUNKS))
                .collect::<Result<_>>()?,
        ),
        8 => Response::Files {
            lens: (0..count(u, 4, MAX_FILES)?)
                .map(|_| {
                    Ok(if u.arbitrary()? {
                        Some(bounded(u, MAX_WHOLE_FILE)?)
                    } else {
                        None
                    })
                })
                .collect::<Result<_>>()?,
        },
        9 => Response::Refined(chunk_refs(u, 8, MAX_SUB_CHUNKS)?),
        10 => Response::Noted,
        _ => Response::Join(match u.int_in_range(0..=3)? {
            0 => JoinAnswer::Welcome {
                mac: u.arbitrary()?,
            },
            1 => JoinAnswer::Refused(JoinRefusal::Unknown),
            2 => JoinAnswer::Refused(JoinRefusal::Expired),
            _ => JoinAnswer::Refused(JoinRefusal::Used),
        }),
    })
}

/// A manifest as the store keeps it: chunks of sizes the chunker makes, or
/// any (a damaged row).
pub fn manifest(u: &mut Unstructured) -> Result<Manifest> {
    Ok(Manifest {
        chunks: chunk_refs(u, 300, 20_000)?,
    })
}

/// The chunking setting as the store keeps it: sizes at and around the
/// chunker's bounds, or any.
pub fn chunking(u: &mut Unstructured) -> Result<ChunkParams> {
    let mut size = |bounds: [u32; 2]| -> Result<u32> {
        Ok(match u.int_in_range(0..=5)? {
            0 => bounds[0].saturating_sub(u.int_in_range(0..=1)?),
            1 => bounds[1].saturating_add(u.int_in_range(0..=1)?),
            2 => number(u)? as u32,
            // Even, as the chunker needs, most of the time.
            _ => u.int_in_range(bounds[0]..=bounds[1])? & !u32::from(chance(u, 7, 8)?),
        })
    };
    Ok(ChunkParams {
        min: size([64, 1 << 20])?,
        avg: size([256, 4 << 20])?,
        max: size([1024, 16 << 20])?,
    })
}

/// A node record as the store keeps it.
pub fn stored_node(u: &mut Unstructured) -> Result<NodeRecord> {
    node_record(u)
}

/// A datagram on the discovery port: a beacon of one of our nodes.
pub fn beacon(u: &mut Unstructured) -> Result<[u8; harmony::proto::discovery::BEACON_LEN]> {
    let port = if chance(u, 1, 8)? { 0 } else { u.arbitrary()? };
    Ok(Beacon::new(node_id(u)?, port, u.arbitrary()?, u.arbitrary()?).encode())
}

/// An id as a user types or pastes it, or a config file holds it: a node
/// id's printed form (dashed or not, any case), or the hex of a repository
/// id, file id or content hash.
pub fn id_text(u: &mut Unstructured) -> Result<String> {
    Ok(match u.int_in_range(0..=4)? {
        0 => {
            let text = node_id(u)?.to_string();
            match u.int_in_range(0..=2)? {
                0 => text.replace('-', ""),
                1 => text.to_lowercase(),
                _ => format!(" {text}\n"),
            }
        }
        1 => repo_id(u)?.to_string(),
        2 => FileId(u.arbitrary()?).to_string(),
        3 => hash(u)?.to_string(),
        _ => node_id(u)?.to_string(),
    })
}

/// Checks that the mirror types encode as the library's own: a valid
/// entry made both ways must give the same bytes, else the batch inputs
/// would test another format than the wire's.
pub fn check_mirror() {
    let node = NodeId([1; 32]);
    let mut vector = VersionVector::new();
    vector.record(node, 7);
    let content = Content::Link {
        target: harmony::model::LinkTarget::new("../t").unwrap(),
    };
    let real = harmony::model::FileEntry::new_file(
        FileId([2; 16]),
        harmony::model::RepoPath::new("a/b").unwrap(),
        content,
        harmony::model::Stamp {
            node,
            counter: 7,
            at_ms: -3,
        },
    );
    let raw = RawEntry {
        id: FileId([2; 16]),
        path: vec![RawVersioned {
            version: vector.clone(),
            value: "a/b".into(),
            by: node,
            at_ms: -3,
        }],
        content: vec![RawVersioned {
            version: vector,
            value: RawContent::Link {
                target: "../t".into(),
            },
            by: node,
            at_ms: -3,
        }],
        holders: real.holders.clone(),
        deletion_seen: BTreeMap::new(),
    };
    let record = NodeRecord {
        id: node,
        name: "n".into(),
        addrs: vec![],
        counter: 1,
        preferences: Preferences::default(),
        proof: None,
    };
    let run = HolderRun {
        node,
        holds: true,
        first: FileId([1; 16]),
        counters: vec![3, 4],
        check: [5; 8],
    };
    let real_batch = harmony::proto::Batch {
        entries: vec![real],
        nodes: vec![record.clone()],
        upto: 9,
        runs: vec![run.clone()],
    };
    let raw_batch = RawBatch {
        entries: vec![raw],
        nodes: vec![record],
        upto: 9,
        runs: vec![run],
    };
    let contents = [
        (
            Content::File {
                hash: ContentHash([3; 32]),
                size: 5,
                mtime_ns: -1,
                executable: true,
            },
            RawContent::File {
                hash: ContentHash([3; 32]),
                size: 5,
                mtime_ns: -1,
                executable: true,
            },
        ),
        (Content::Deleted, RawContent::Deleted),
    ];
    let same = contents
        .iter()
        .all(|(real, raw)| postcard::to_stdvec(real).unwrap() == postcard::to_stdvec(raw).unwrap());
    assert!(
        same && postcard::to_stdvec(&raw_batch).unwrap()
            == postcard::to_stdvec(&real_batch).unwrap(),
        "the fuzz driver's mirror of Batch no longer encodes as Batch: update examples/fuzz/gen.rs"
    );
}
