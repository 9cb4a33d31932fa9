//! The example encodings of protocol.md, read from the document itself:
//! each decodes to the message it describes and re-encodes byte for byte.

use std::collections::BTreeMap;

use harmony::model::{ContentHash, NodeId, RepoId};
use harmony::proto::{self, Batch, ChunkRanges, ErrorCode, Hello, Request, Response, SyncHello};

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
        version: 1,
        min_version: 1,
        repo_id: RepoId::from_hex("00112233445566778899aabbccddeeff").unwrap(),
        node_id: NodeId(node),
        node_name: "laptop".into(),
        fresh: false,
    };
    round_trip("hello", &get("hello"), &hello);
    assert_eq!(proto::hello_versions(&get("hello")[4..]).unwrap(), (1, 1));
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
        }),
    );
    round_trip(
        "batch-last",
        &get("batch-last"),
        &Batch {
            entries: vec![],
            nodes: vec![],
            upto: 300,
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
        "request-chunks",
        &get("request-chunks"),
        &Request::Chunks(ChunkRanges {
            hash: ContentHash(digest),
            ranges: vec![(0, 32768), (32768, 16384)],
        }),
    );
    assert_eq!(vectors.len(), 10, "every vector in protocol.md is checked");
}

#[test]
fn protocol_md_states_the_constants_of_the_code() {
    let spec =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/protocol.md")).unwrap();
    assert!(spec.contains(&format!("ALPN: `{}`", String::from_utf8_lossy(proto::ALPN))));
    assert!(spec.contains("# Harmony wire protocol, version 1"));
    assert_eq!(proto::PROTOCOL_VERSION, 1);
    assert_eq!(proto::MAX_FRAME, 1 << 20);
    assert!(spec.contains("`length` ≤ **1 MiB** (1,048,576)"));
    assert_eq!(proto::MAX_NAME, 64);
    assert_eq!(proto::MAX_PING_PAYLOAD, 64 << 10);
    assert_eq!(proto::MAX_ERROR_TEXT, 1024);
    assert_eq!(proto::MAX_BULK, 16 << 30);
    assert!(
        spec.contains("\"harmony node id v1\"") && spec.contains("\"harmony node id checksum v1\"")
    );
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
