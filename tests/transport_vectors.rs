//! The example encodings of protocol.md, read from the document itself:
//! each decodes to the message it describes and re-encodes byte for byte.

use std::collections::BTreeMap;

use harmony::chunk::{
    page_hash, ChunkParams, ChunkRef, PageRef, PAGE_AVG_CHUNKS, PAGE_MAX_CHUNKS, REFINE_PARAMS,
};
use harmony::model::digest::Summary;
use harmony::model::{
    ContentHash, NodeId, NodeRecord, NumCopiesSetting, Preferences, RecordProof, RepoId,
};
use harmony::proto::{
    self, Batch, ChunkRanges, ErrorCode, Hello, ManifestIndex, Request, Response, SyncHello,
};

/// The batch of protocol.md's `batch-entry` example: one file whose content
/// is in conflict between an executable file and a symbolic link.
fn entry_batch() -> Batch {
    use harmony::model::{Content, FileEntry, FileId, LinkTarget, RepoPath, Stamp};
    let (a, b) = (NodeId([0xaa; 32]), NodeId([0xbb; 32]));
    let stamp = |node, counter, at_ms| Stamp {
        node,
        counter,
        at_ms,
    };
    let script = |executable| Content::File {
        hash: ContentHash([0x11; 32]),
        size: 5,
        mtime_ns: 1_000_000_000,
        executable,
    };
    let mut entry = FileEntry::new_file(
        FileId([0x0f; 16]),
        RepoPath::new("run").unwrap(),
        script(false),
        stamp(a, 1, 1000),
    );
    // a makes it executable while b, concurrently, makes it a link.
    let mut other = entry.clone();
    entry.set_content(script(true), stamp(a, 2, 1500));
    other.set_content(
        Content::Link {
            target: LinkTarget::new("../bin/run").unwrap(),
        },
        stamp(b, 1, 2000),
    );
    entry.merge(&other);
    Batch {
        entries: vec![entry],
        nodes: vec![],
        upto: 7,
        runs: vec![],
    }
}

/// The batch of protocol.md's `batch-runs` example: node `bb…` holds the
/// current content of three consecutive files, its check computed as a
/// receiver computes it.
fn runs_batch() -> Batch {
    use harmony::model::FileId;
    let ids: Vec<FileId> = (0..3u8)
        .map(|i| {
            let mut id = [0x0f; 16];
            id[12..].copy_from_slice(&u32::from(i).to_be_bytes());
            FileId(id)
        })
        .collect();
    let hashes = [0x11, 0x22, 0x33].map(|b| Some(ContentHash([b; 32])));
    Batch {
        entries: vec![],
        nodes: vec![],
        upto: 12,
        runs: vec![proto::HolderRun {
            node: NodeId([0xbb; 32]),
            holds: true,
            first: ids[0],
            counters: vec![300, 301, 302],
            check: proto::holdings::check(ids.into_iter().zip(hashes)),
        }],
    }
}

/// `name -> bytes` for every fenced block opened with "```hex vector=NAME".
fn vectors() -> BTreeMap<String, Vec<u8>> {
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/protocol.md"))
        .expect("protocol.md at the top of the repository");
    let mut out = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in spec.lines() {
        if let Some((name, hex)) = &mut current {
            if line.trim_start().starts_with("```") {
                let bytes = hex::decode(&*hex).unwrap_or_else(|e| panic!("vector {name}: {e}"));
                assert!(
                    out.insert(name.clone(), bytes).is_none(),
                    "duplicate {name}"
                );
                current = None;
            } else {
                let data = line.split('#').next().unwrap();
                hex.extend(data.chars().filter(|c| !c.is_whitespace()));
            }
        } else if let Some(name) = line.trim().strip_prefix("```hex vector=") {
            current = Some((name.trim().to_owned(), String::new()));
        }
    }
    assert!(current.is_none(), "unterminated vector block");
    out
}

fn round_trip<T>(name: &str, bytes: &[u8], expected: &T)
where
    T: serde::de::DeserializeOwned
        + serde::Serialize
        + proto::Validate
        + PartialEq
        + std::fmt::Debug,
{
    let (decoded, used) = proto::decode_frame::<T>(bytes)
        .unwrap_or_else(|e| panic!("vector {name} does not decode: {e}"))
        .unwrap_or_else(|| panic!("vector {name} is not a whole frame"));
    assert_eq!(used, bytes.len(), "vector {name} has bytes after its frame");
    assert_eq!(
        &decoded, expected,
        "vector {name} decodes to another message"
    );
    assert_eq!(
        proto::encode_frame(&decoded).unwrap(),
        bytes,
        "vector {name} does not re-encode byte for byte"
    );
}

#[test]
fn protocol_md_examples_decode_and_reencode_exactly() {
    let vectors = vectors();
    let get = |name: &str| {
        vectors
            .get(name)
            .unwrap_or_else(|| panic!("protocol.md lacks vector {name}"))
            .clone()
    };
    let mut node = [0u8; 32];
    for (i, b) in node.iter_mut().enumerate() {
        *b = i as u8;
    }
    let hello = Hello {
        version: 6,
        min_version: 6,
        repo_id: RepoId::from_hex("00112233445566778899aabbccddeeff").unwrap(),
        node_id: NodeId(node),
        node_name: "laptop".into(),
        fresh: false,
        serves: true,
    };
    round_trip("hello", &get("hello"), &hello);
    assert_eq!(proto::hello_versions(&get("hello")[4..]).unwrap(), (6, 6));
    round_trip(
        "request-ping",
        &get("request-ping"),
        &Request::Ping {
            payload: b"hi".to_vec(),
        },
    );
    round_trip(
        "request-bulk",
        &get("request-bulk"),
        &Request::Bulk { len: 1 << 30 },
    );
    round_trip(
        "response-pong",
        &get("response-pong"),
        &Response::Pong {
            payload: b"hi".to_vec(),
        },
    );
    round_trip(
        "response-bulk",
        &get("response-bulk"),
        &Response::Bulk { len: 1 << 30 },
    );
    round_trip(
        "response-error",
        &get("response-error"),
        &Response::Error {
            code: ErrorCode::UNSUPPORTED,
            message: "unknown request kind".into(),
        },
    );
    let mut digest = [0u8; 32];
    for (i, b) in digest.iter_mut().enumerate() {
        *b = i as u8;
    }
    round_trip(
        "request-sync",
        &get("request-sync"),
        &Request::Sync(SyncHello {
            digest,
            incarnation: [0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7],
            seq: 300,
            merged_yours: Some(([0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7], 5)),
            membership: proto::Membership {
                repo_id: RepoId::from_hex("00112233445566778899aabbccddeeff").unwrap(),
                fresh: true,
            },
            whole_entries: true,
            summary: Summary::from_buckets(vec![
                [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08],
                [0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18],
            ]),
        }),
    );
    round_trip(
        "batch-last",
        &get("batch-last"),
        &Batch {
            entries: vec![],
            nodes: vec![],
            upto: 300,
            runs: vec![],
        },
    );
    round_trip("batch-entry", &get("batch-entry"), &entry_batch());
    round_trip("batch-runs", &get("batch-runs"), &runs_batch());
    round_trip(
        "batch-node",
        &get("batch-node"),
        &Batch {
            entries: vec![],
            nodes: vec![NodeRecord {
                id: NodeId([0x11; 32]),
                name: "nas".into(),
                addrs: vec!["10.0.0.2:7447".into()],
                counter: 5,
                preferences: Preferences {
                    wanted: Some("standard".into()),
                    groups: ["backup".to_owned()].into(),
                    numcopies: Some(NumCopiesSetting {
                        copies: 2,
                        at_ms: 1_700_000_000_000,
                    }),
                },
                // Shortened: a real key is 91 bytes, a signature 70-72.
                proof: Some(RecordProof {
                    key: vec![0x30, 0x59, 0x30, 0x13],
                    signature: vec![0x30, 0x44, 0x02],
                }),
            }],
            upto: 9,
            runs: vec![],
        },
    );
    round_trip(
        "request-has",
        &get("request-has"),
        &Request::Has {
            hash: ContentHash(digest),
        },
    );
    round_trip(
        "request-notify",
        &get("request-notify"),
        &Request::Notify { digest },
    );
    round_trip("response-noted", &get("response-noted"), &Response::Noted);
    round_trip(
        "request-chunks",
        &get("request-chunks"),
        &Request::Chunks(ChunkRanges {
            hash: ContentHash(digest),
            ranges: vec![(0, 32768), (5 << 30, 16 << 20)],
        }),
    );
    round_trip(
        "response-chunks",
        &get("response-chunks"),
        &Response::Chunks {
            len: 32768 + (16 << 20),
        },
    );
    round_trip(
        "request-manifest",
        &get("request-manifest"),
        &Request::Manifest {
            hash: ContentHash(digest),
            first: 0,
        },
    );
    // The page of the page-hash example, and an index of it alone.
    let chunk = ChunkRef {
        hash: ContentHash([7; 32]),
        len: 0x0102_0304,
    };
    round_trip(
        "response-manifest",
        &get("response-manifest"),
        &Response::Manifest(ManifestIndex {
            total: 1,
            first: 0,
            pages: vec![PageRef {
                hash: page_hash(&[chunk]),
                chunks: 1,
            }],
        }),
    );
    round_trip(
        "request-manifest-pages",
        &get("request-manifest-pages"),
        &Request::ManifestPages {
            hash: ContentHash(digest),
            pages: vec![0, 300],
        },
    );
    round_trip(
        "response-manifest-pages",
        &get("response-manifest-pages"),
        &Response::ManifestPages(vec![vec![chunk]]),
    );
    let mut second = [0u8; 32];
    for (i, b) in second.iter_mut().enumerate() {
        *b = 0x20 + i as u8;
    }
    round_trip(
        "request-files",
        &get("request-files"),
        &Request::Files {
            hashes: vec![ContentHash(digest), ContentHash(second)],
        },
    );
    round_trip(
        "response-files",
        &get("response-files"),
        &Response::Files {
            lens: vec![Some(4096), None],
        },
    );
    round_trip(
        "request-refine",
        &get("request-refine"),
        &Request::Refine {
            hash: ContentHash(digest),
            offset: 32 << 20,
            len: 57_000,
        },
    );
    round_trip(
        "response-refined",
        &get("response-refined"),
        &Response::Refined(vec![
            ChunkRef {
                hash: ContentHash([0x11; 32]),
                len: 2048,
            },
            ChunkRef {
                hash: ContentHash([0x22; 32]),
                len: 5000,
            },
        ]),
    );
    // Not frames: the bytes a page hash covers, and the hash.
    let mut input = vec![7u8; 32];
    input.extend_from_slice(&[4, 3, 2, 1]);
    assert_eq!(get("page-hash-input"), input, "page-hash-input");
    assert_eq!(
        get("page-hash"),
        blake3::hash(&input).as_bytes().to_vec(),
        "page-hash is blake3 of page-hash-input"
    );
    assert_eq!(
        page_hash(&[chunk]).0.to_vec(),
        get("page-hash"),
        "page-hash is the code's page hash"
    );
    // 26 here, the 2 beacons in protocol_md_beacon_is_the_codes, the 3 of
    // pairing in protocol_md_pairing_is_the_codes.
    assert_eq!(vectors.len(), 31, "every vector in protocol.md is checked");
}

#[test]
fn protocol_md_pairing_is_the_codes() {
    use harmony::model::{InviteCode, InviteSecret};
    use harmony::proto::{pair, JoinAnswer, JoinRefusal, JoinRequest};
    let vectors = vectors();
    // The inputs protocol.md states: secret 00..0f, inviter 00..1f, joiner 20..3f.
    let secret = InviteSecret(std::array::from_fn(|i| i as u8));
    let inviter = NodeId(std::array::from_fn(|i| i as u8));
    let joiner = NodeId(std::array::from_fn(|i| 0x20 + i as u8));
    let key = blake3::derive_key("harmony 2026-12 invite mac v1", &secret.0);
    let keyed = |label: &[u8]| {
        let input = [label, &inviter.0, &joiner.0].concat();
        *blake3::keyed_hash(&key, &input).as_bytes()
    };
    // The MACs as protocol.md defines them are the code's.
    assert_eq!(pair::join_mac(&secret, inviter, joiner), keyed(b"join"));
    assert_eq!(
        pair::welcome_mac(&secret, inviter, joiner),
        keyed(b"welcome")
    );
    let id = blake3::derive_key("harmony 2026-12 invite id v1", &secret.0);
    assert_eq!(secret.id().0, id[..8]);
    round_trip(
        "join-request",
        &vectors["join-request"],
        &Request::Join(JoinRequest {
            invite: secret.id(),
            port: 7447,
            mac: keyed(b"join"),
        }),
    );
    round_trip(
        "join-welcome",
        &vectors["join-welcome"],
        &Response::Join(JoinAnswer::Welcome {
            mac: keyed(b"welcome"),
        }),
    );
    round_trip(
        "join-refused",
        &vectors["join-refused"],
        &Response::Join(JoinAnswer::Refused(JoinRefusal::Used)),
    );
    // The example code is this secret's and inviter's.
    let spec =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/protocol.md")).unwrap();
    let code = InviteCode {
        inviter,
        addrs: vec!["192.168.1.20:7447".into()],
        secret,
    };
    assert!(
        spec.contains(&format!("\n{code}\n")),
        "protocol.md shows {code}"
    );
}

#[test]
fn protocol_md_states_the_constants_of_the_code() {
    let spec =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/protocol.md")).unwrap();
    assert!(spec.contains(&format!("ALPN: `{}`", String::from_utf8_lossy(proto::ALPN))));
    assert!(spec.contains("# Harmony wire protocol, version 6"));
    assert_eq!(proto::PROTOCOL_VERSION, 6);
    assert_eq!(proto::MAX_FRAME, 1 << 20);
    assert!(spec.contains("`length` ≤ **1 MiB** (1,048,576)"));
    assert_eq!(proto::MAX_NAME, 64);
    assert_eq!(proto::MAX_PING_PAYLOAD, 64 << 10);
    assert_eq!(proto::MAX_ERROR_TEXT, 1024);
    assert_eq!(proto::MAX_BULK, 16 << 30);
    assert_eq!(Request::KNOWN_KINDS, 11);
    assert!(spec.contains("(≥ 11 in version 6)"));
    // Content transfer.
    // The page cut rule: protocol.md must state the code's constants.
    assert!(
        spec.contains(&format!("are a multiple of **{PAGE_AVG_CHUNKS}**")),
        "page cut: PAGE_AVG_CHUNKS = {PAGE_AVG_CHUNKS}"
    );
    assert!(
        spec.contains(&format!("the page holds **{PAGE_MAX_CHUNKS}** chunks")),
        "page cut: PAGE_MAX_CHUNKS = {PAGE_MAX_CHUNKS}"
    );
    assert!(
        spec.contains(&format!(
            "| chunks per manifest page | 1 to {PAGE_MAX_CHUNKS} ({PAGE_AVG_CHUNKS} on average) |"
        )),
        "limits table row: chunks per manifest page"
    );
    assert!(spec.contains(&format!("each `chunks` from 1 to {PAGE_MAX_CHUNKS} |")));
    assert!(spec.contains(&format!("each ≤ {PAGE_MAX_CHUNKS} chunk references")));
    assert_eq!(proto::MAX_INDEX_PAGES, 16_384);
    assert_eq!(proto::MAX_PAGES_ASKED, 256);
    assert_eq!(proto::MAX_PAGE_CHUNKS_SENT, 16_384);
    assert_eq!(proto::MAX_RANGES, 1024);
    assert_eq!(proto::MAX_CHUNKS_BYTES, 1 << 30);
    assert_eq!(proto::MAX_FILES, 4096);
    assert_eq!(proto::MAX_WHOLE_FILE, 256 << 10);
    assert_eq!(proto::MAX_REFINE, 1 << 20);
    assert_eq!(proto::MAX_SUB_CHUNKS, 2048);
    // The sub-chunk cut of `Refine`.
    assert_eq!(
        REFINE_PARAMS,
        ChunkParams {
            min: 512,
            avg: 2048,
            max: 8192,
        }
    );
    let ChunkParams { min, avg, max } = REFINE_PARAMS;
    assert!(
        spec.contains(&format!(
            "`v2020::FastCDC::new(bytes, {min}, {avg}, {max})`"
        )),
        "sub-chunk cut: REFINE_PARAMS"
    );
    assert!(
        spec.contains(&format!("**{min} / {avg} / {max}** bytes")),
        "sub-chunk cut: REFINE_PARAMS"
    );
    assert!(spec.contains(&format!(
        "≤ {} sub-chunk references (`MAX_SUB_CHUNKS`)",
        proto::MAX_SUB_CHUNKS
    )));
    for row in [
        "| page references per `Manifest` answer | 16,384 |",
        "| pages per `ManifestPages` request / chunk references per answer | 256 / 16,384 |",
        "| ranges / bytes per `Chunks` request | 1024 / 1 GiB |",
        "| contents per `Files` request / bytes of each | 4096 / 256 KiB |",
        "| bytes per `Refine` request / sub-chunk references per `Refined` answer | 1 MiB / 2048 |",
    ] {
        assert!(spec.contains(row), "limits table row {row}");
    }
    // The server's limits, as `NodeConfig` sets them by default.
    let served = harmony::net::NodeConfig::new(
        harmony::model::RepoId::random(),
        "n",
        "127.0.0.1:0".parse().unwrap(),
    );
    for row in [
        format!(
            "| concurrent connections per server / from one node | {} / {} |",
            served.max_connections, served.max_connections_per_peer
        ),
        format!(
            "| concurrent request streams per connection | {} |",
            served.max_streams
        ),
    ] {
        assert!(spec.contains(&row), "limits table row {row}");
    }
    for (code, name) in [
        (proto::close::DONE, "DONE"),
        (proto::close::PROTOCOL_ERROR, "PROTOCOL_ERROR"),
        (proto::close::VERSION_MISMATCH, "VERSION_MISMATCH"),
        (proto::close::REPO_MISMATCH, "REPO_MISMATCH"),
        (proto::close::IDENTITY_MISMATCH, "IDENTITY_MISMATCH"),
        (proto::close::HANDSHAKE_TIMEOUT, "HANDSHAKE_TIMEOUT"),
        (proto::close::SHUTDOWN, "SHUTDOWN"),
        (proto::close::BUSY, "BUSY"),
    ] {
        assert!(
            spec.contains(&format!("| {code} | `{name}` |")),
            "close code {name}"
        );
    }
    for (code, name) in [
        (proto::stream::MALFORMED, "MALFORMED"),
        (proto::stream::TIMEOUT, "TIMEOUT"),
        (proto::stream::SHUTDOWN, "SHUTDOWN"),
        (proto::stream::INTERNAL, "INTERNAL"),
        (proto::stream::CHANGED, "CHANGED"),
    ] {
        assert!(
            spec.contains(&format!("| {code} | `{name}` |")),
            "stream code {name}"
        );
    }
    for (code, name) in [
        (ErrorCode::MALFORMED, "MALFORMED"),
        (ErrorCode::UNSUPPORTED, "UNSUPPORTED"),
        (ErrorCode::INTERNAL, "INTERNAL"),
        (ErrorCode::SHUTDOWN, "SHUTDOWN"),
        (ErrorCode::REFUSED, "REFUSED"),
    ] {
        assert!(
            spec.contains(&format!("| {} | `{name}` |", code.0)),
            "error code {name}"
        );
    }
}

/// The `batch-entry` vector with a node index past its node table (the
/// path version's writer, index 0 of 2, made 2) is refused, not looked up.
#[test]
fn a_batch_naming_a_node_past_its_table_is_refused() {
    let frame = vectors()["batch-entry"].clone();
    let mut body = frame[proto::FRAME_HEADER_LEN..].to_vec();
    // Table, entry count, id, path count, vector (3 bytes), "run" (4).
    let by = 1 + 64 + 1 + 16 + 1 + 3 + 4;
    assert_eq!(body[by], 0, "the path version's writer is node 0");
    body[by] = 2;
    let verdict = proto::decode_body::<Batch>(&body);
    assert!(verdict.is_err(), "{verdict:?}");
}

/// The `batch-entry` vector with its path register emptied (a count of no
/// versions, the one version's bytes gone) is refused, as protocol.md says:
/// every reader of a register relies on its having a version. Found by the
/// fuzz driver (examples/fuzz) in a stored entry, where it panicked.
#[test]
fn a_batch_with_an_empty_register_is_refused() {
    let frame = vectors()["batch-entry"].clone();
    let body = &frame[proto::FRAME_HEADER_LEN..];
    // The node table (1 + 2 × 32 bytes), the entry count (1) and the id
    // (16) come before the path's count.
    let at = 1 + 64 + 1 + 16;
    assert_eq!(body[at], 1, "the path register holds one version");
    // A vector of one node (1 + 1 + 1), "run" (1 + 3), by (1), at_ms (2).
    let version_len = 3 + 4 + 1 + 2;
    let mut emptied = body[..at].to_vec();
    emptied.push(0);
    emptied.extend_from_slice(&body[at + 1 + version_len..]);
    assert!(proto::decode_body::<Batch>(body).is_ok());
    let verdict = proto::decode_body::<Batch>(&emptied);
    assert!(
        matches!(verdict, Err(proto::ProtoError::Malformed(_))),
        "{verdict:?}"
    );
}

/// The page cut rule as protocol.md states it, applied by hand, gives the
/// pages the code cuts.
#[test]
fn protocol_md_page_cut_rule_is_the_codes() {
    let spec =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/protocol.md")).unwrap();
    // "that is, the low N bits of the hash's first byte are zero" holds only
    // for a power of two up to 256.
    assert!(PAGE_AVG_CHUNKS.is_power_of_two() && PAGE_AVG_CHUNKS <= 256);
    let bits = PAGE_AVG_CHUNKS.trailing_zeros();
    assert!(spec.contains(&format!("the low {bits} bits of the hash's first byte")));
    // Chunks whose hashes end a page or not, including a run long enough to
    // be cut at PAGE_MAX_CHUNKS.
    let chunk = |n: usize, ends: bool| {
        let mut hash = [0u8; 32];
        hash[0] = if ends { 0 } else { 1 };
        hash[1] = (n % 251) as u8;
        hash[2..10].copy_from_slice(&(n as u64).to_le_bytes());
        ChunkRef {
            hash: ContentHash(hash),
            len: 1000 + n as u32,
        }
    };
    let mut chunks = Vec::new();
    for n in 0..3 * PAGE_MAX_CHUNKS + 50 {
        chunks.push(chunk(n, n % 97 == 5 && n < PAGE_MAX_CHUNKS));
    }
    let mut expected: Vec<Vec<ChunkRef>> = vec![vec![]];
    for c in &chunks {
        let page = expected.last_mut().unwrap();
        page.push(*c);
        let first_two = u16::from_le_bytes([c.hash.0[0], c.hash.0[1]]);
        if first_two % PAGE_AVG_CHUNKS == 0 || page.len() == PAGE_MAX_CHUNKS {
            expected.push(vec![]);
        }
    }
    if expected.last().unwrap().is_empty() {
        expected.pop();
    }
    let manifest = harmony::chunk::Manifest { chunks };
    let cut: Vec<Vec<ChunkRef>> = manifest.pages().iter().map(|p| p.to_vec()).collect();
    assert_eq!(cut, expected);
    assert!(
        cut.iter().any(|p| p.len() == PAGE_MAX_CHUNKS),
        "a forced cut"
    );
    assert!(
        cut.iter().any(|p| p.len() < PAGE_MAX_CHUNKS),
        "a cut by hash"
    );
    let index: Vec<PageRef> = cut
        .iter()
        .map(|p| PageRef {
            hash: page_hash(p),
            chunks: p.len() as u32,
        })
        .collect();
    assert_eq!(manifest.page_index(), index);
}

#[test]
fn protocol_md_beacon_is_the_codes() {
    use harmony::node::live::discovery::INTERVAL;
    use harmony::proto::discovery::{Beacon, BEACON_LEN, DISCOVERY_PORT, GROUP_V4, GROUP_V6};
    let spec =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/protocol.md")).unwrap();
    for stated in [
        format!("UDP port **{DISCOVERY_PORT}**"),
        format!("**{GROUP_V4}**"),
        format!("**{GROUP_V6}**"),
        format!("**{BEACON_LEN} bytes**"),
        format!("every **{} s**", INTERVAL.as_secs()),
    ] {
        assert!(spec.contains(&stated), "protocol.md does not say {stated}");
    }
    let vectors = vectors();
    let node = NodeId(std::array::from_fn(|i| i as u8));
    let nonce = std::array::from_fn(|i| 0xa0 + i as u8);
    for (name, query) in [("beacon", false), ("beacon-query", true)] {
        let bytes = &vectors[name];
        let beacon = Beacon::new(node, 7447, query, nonce);
        assert_eq!(
            hex::encode(beacon.encode()),
            hex::encode(bytes),
            "vector {name} is not the code's encoding"
        );
        assert_eq!(Beacon::decode(bytes), Ok(beacon), "vector {name}");
        assert!(beacon.is_from(node) && !beacon.is_from(NodeId([0; 32])));
    }
}
