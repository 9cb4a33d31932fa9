use proptest::prelude::*;

use super::*;
use crate::model::{NodeId, RepoId};

fn hello() -> Hello {
    Hello::new(RepoId([7; 16]), NodeId([9; 32]), "laptop")
}

#[test]
fn frames_round_trip() {
    let frame = encode_frame(&hello()).unwrap();
    assert_eq!(
        u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize,
        frame.len() - 4
    );
    let (back, used) = decode_frame::<Hello>(&frame).unwrap().unwrap();
    assert_eq!(back, hello());
    assert_eq!(used, frame.len());
}

#[test]
fn partial_frames_wait_for_more() {
    let frame = encode_frame(&Request::Ping {
        payload: vec![1, 2, 3],
    })
    .unwrap();
    for cut in 0..frame.len() {
        assert_eq!(
            decode_frame::<Request>(&frame[..cut]),
            Ok(None),
            "cut {cut}"
        );
    }
}

#[test]
fn oversized_header_is_refused_before_reading() {
    let header = ((MAX_FRAME + 1) as u32).to_be_bytes();
    assert!(matches!(
        frame_len(header),
        Err(ProtoError::Oversized { .. })
    ));
    assert!(matches!(
        decode_frame::<Request>(&header),
        Err(ProtoError::Oversized { .. })
    ));
    assert_eq!(frame_len((MAX_FRAME as u32).to_be_bytes()), Ok(MAX_FRAME));
}

#[test]
fn trailing_bytes_are_refused() {
    let mut frame = encode_frame(&Request::Bulk { len: 5 }).unwrap();
    frame.push(0);
    let len = (frame.len() - 4) as u32;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    assert_eq!(
        decode_frame::<Request>(&frame),
        Err(ProtoError::Trailing { trailing: 1 })
    );
}

#[test]
fn limits_are_enforced_both_ways() {
    let long_name = Hello {
        node_name: "x".repeat(MAX_NAME + 1),
        ..hello()
    };
    assert!(matches!(
        encode_frame(&long_name),
        Err(ProtoError::TooLong { .. })
    ));
    // Encoded by hand (postcard directly), it is refused on decoding.
    let body = postcard::to_stdvec(&long_name).unwrap();
    assert!(matches!(
        decode_body::<Hello>(&body),
        Err(ProtoError::TooLong { .. })
    ));
    let big_ping = Request::Ping {
        payload: vec![0; MAX_PING_PAYLOAD + 1],
    };
    let body = postcard::to_stdvec(&big_ping).unwrap();
    assert!(matches!(
        decode_body::<Request>(&body),
        Err(ProtoError::TooLong { .. })
    ));
    let bulk = postcard::to_stdvec(&Request::Bulk { len: MAX_BULK + 1 }).unwrap();
    assert!(decode_body::<Request>(&bulk).is_err());
}

#[test]
fn a_huge_declared_length_inside_a_small_frame_fails_cleanly() {
    // Variant 0 (Ping), then a payload length of u32::MAX as varint, then nothing.
    let body = [0x00, 0xff, 0xff, 0xff, 0xff, 0x0f];
    assert!(matches!(
        decode_body::<Request>(&body),
        Err(ProtoError::Malformed(_))
    ));
}

#[test]
fn versions_negotiate_to_the_highest_common() {
    assert_eq!(negotiate((1, 1), (1, 1)), Some(1));
    assert_eq!(negotiate((3, 1), (2, 2)), Some(2));
    assert_eq!(negotiate((1, 1), (3, 3)), None);
    assert_eq!(negotiate((3, 3), (2, 1)), None);
}

#[test]
fn hello_checks_give_readable_reasons() {
    let ours = hello();
    let proven = ours.node_id;
    let same = postcard::to_stdvec(&ours).unwrap();
    let v = crate::proto::PROTOCOL_VERSION;
    assert_eq!(check_hello(&same, &ours, proven), Ok(Ok((ours.clone(), v))));

    // A future version whose Hello layout after the version range is unknown.
    let next = v as u8 + 1;
    let future = [next, next, 0xde, 0xad];
    let mismatch = check_hello(&future, &ours, proven).unwrap().unwrap_err();
    assert_eq!(
        mismatch.describe("nas"),
        format!("peer nas speaks protocol {next}, we speak {v}; upgrade the older harmony")
    );
    assert_eq!(mismatch.close_code(), close::VERSION_MISMATCH);

    let other_repo = Hello {
        repo_id: RepoId([1; 16]),
        ..ours.clone()
    };
    let body = postcard::to_stdvec(&other_repo).unwrap();
    let mismatch = check_hello(&body, &ours, proven).unwrap().unwrap_err();
    assert!(mismatch
        .describe("nas")
        .starts_with("peer nas belongs to repository 01010101"));
    // A fresh node (either side) joins the other's repository.
    let fresh = Hello {
        fresh: true,
        ..other_repo.clone()
    };
    let body = postcard::to_stdvec(&fresh).unwrap();
    assert!(check_hello(&body, &ours, proven).unwrap().is_ok());
    let fresh_ours = Hello {
        fresh: true,
        ..ours.clone()
    };
    let body = postcard::to_stdvec(&other_repo).unwrap();
    assert!(check_hello(&body, &fresh_ours, proven).unwrap().is_ok());

    let liar = postcard::to_stdvec(&ours).unwrap();
    let mismatch = check_hello(&liar, &ours, NodeId([1; 32]))
        .unwrap()
        .unwrap_err();
    assert_eq!(mismatch.close_code(), close::IDENTITY_MISMATCH);

    assert!(check_hello(&[], &ours, proven).is_err());
}

#[test]
fn unknown_request_kinds_are_recognised() {
    let body = [Request::KNOWN_KINDS as u8, 1, 2, 3];
    assert!(decode_body::<Request>(&body).is_err());
    assert_eq!(Request::kind_of(&body), Some(Request::KNOWN_KINDS));
    assert!(Request::kind_of(&body).unwrap() >= Request::KNOWN_KINDS);
}

fn arb_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300)
            .prop_map(|payload| Request::Ping { payload }),
        (0..=MAX_BULK).prop_map(|len| Request::Bulk { len }),
        (
            any::<[u8; 32]>(),
            any::<[u8; 8]>(),
            any::<u64>(),
            any::<Option<([u8; 8], u64)>>(),
            any::<([u8; 16], bool, bool, Option<u8>)>()
        )
            .prop_map(
                |(
                    digest,
                    incarnation,
                    seq,
                    merged_yours,
                    (repo, fresh, whole_entries, buckets),
                )| {
                    Request::Sync(crate::proto::SyncHello {
                        digest,
                        incarnation,
                        seq,
                        merged_yours,
                        membership: crate::proto::Membership {
                            repo_id: crate::model::RepoId(repo),
                            fresh,
                        },
                        whole_entries,
                        summary: buckets
                            .map(|log| crate::model::digest::Summary::new(1 << (log % 13))),
                    })
                }
            ),
        (any::<[u8; 32]>(), any::<u32>()).prop_map(|(hash, first)| Request::Manifest {
            hash: crate::model::ContentHash(hash),
            first
        }),
        (
            any::<[u8; 32]>(),
            proptest::collection::vec((any::<u64>(), 0..=(16u64 << 20)), 0..16)
        )
            .prop_map(|(hash, ranges)| Request::Chunks(crate::proto::ChunkRanges {
                hash: crate::model::ContentHash(hash),
                ranges
            })),
        any::<[u8; 32]>().prop_map(|hash| Request::Has {
            hash: crate::model::ContentHash(hash)
        }),
        (
            any::<[u8; 32]>(),
            proptest::collection::vec(any::<u32>(), 0..20)
        )
            .prop_map(|(hash, pages)| Request::ManifestPages {
                hash: crate::model::ContentHash(hash),
                pages
            }),
        proptest::collection::vec(any::<[u8; 32]>(), 0..20).prop_map(|hashes| Request::Files {
            hashes: hashes.into_iter().map(crate::model::ContentHash).collect()
        }),
    ]
}

fn arb_response() -> impl Strategy<Value = Response> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300)
            .prop_map(|payload| Response::Pong { payload }),
        (0..=MAX_BULK).prop_map(|len| Response::Bulk { len }),
        (any::<u32>(), "\\PC{0,200}").prop_map(|(code, message)| Response::Error {
            code: ErrorCode(code),
            message
        }),
        any::<u64>().prop_map(|len| Response::Chunks { len }),
        any::<bool>().prop_map(Response::Has),
        proptest::collection::vec(
            proptest::collection::vec(
                (any::<[u8; 32]>(), any::<u32>()).prop_map(|(hash, len)| crate::chunk::ChunkRef {
                    hash: crate::model::ContentHash(hash),
                    len
                }),
                0..5
            ),
            0..5
        )
        .prop_map(Response::ManifestPages),
        proptest::collection::vec(
            proptest::option::of(0..=crate::proto::MAX_WHOLE_FILE),
            0..20
        )
        .prop_map(|lens| Response::Files { lens }),
    ]
}

fn arb_hello() -> impl Strategy<Value = Hello> {
    (
        1u32..10,
        any::<[u8; 16]>(),
        any::<[u8; 32]>(),
        "[a-z0-9._-]{0,64}",
    )
        .prop_map(|(version, repo, node, node_name)| Hello {
            version,
            min_version: version,
            repo_id: RepoId(repo),
            node_id: NodeId(node),
            node_name,
            fresh: version % 2 == 0,
            serves: version % 3 == 0,
        })
}

/// Decodes `bytes` as each message type: must never panic, and anything
/// accepted must respect the limits and re-encode to the same bytes.
fn decode_everything(bytes: &[u8]) {
    fn one<T>(bytes: &[u8])
    where
        T: serde::de::DeserializeOwned + serde::Serialize + Validate + std::fmt::Debug,
    {
        match decode_frame::<T>(bytes) {
            Ok(Some((message, used))) => {
                assert!(used <= bytes.len());
                assert!(used - FRAME_HEADER_LEN <= MAX_FRAME);
                message
                    .validate()
                    .expect("accepted messages respect limits");
                assert_eq!(encode_frame(&message).unwrap(), bytes[..used]);
            }
            Ok(None) => {
                if bytes.len() >= FRAME_HEADER_LEN {
                    let len = frame_len(bytes[..4].try_into().unwrap()).unwrap();
                    assert!(bytes.len() < FRAME_HEADER_LEN + len);
                }
            }
            Err(_) => {}
        }
        if let Ok(message) = decode_body::<T>(bytes) {
            assert_eq!(postcard::to_stdvec(&message).unwrap(), bytes);
        }
    }
    one::<Hello>(bytes);
    one::<Request>(bytes);
    one::<Response>(bytes);
    let _ = hello_versions(bytes);
    let _ = Request::kind_of(bytes);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_everything(&bytes);
    }

    #[test]
    fn random_bodies_behind_a_valid_header_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..512)
    ) {
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        decode_everything(&frame);
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        request in arb_request(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut frame = encode_frame(&request).unwrap();
        for (at, byte) in flips {
            let i = at.index(frame.len());
            frame[i] = byte;
        }
        decode_everything(&frame);
    }

    #[test]
    fn requests_round_trip(request in arb_request()) {
        let frame = encode_frame(&request).unwrap();
        let (back, used) = decode_frame::<Request>(&frame).unwrap().unwrap();
        prop_assert_eq!(back, request);
        prop_assert_eq!(used, frame.len());
    }

    #[test]
    fn responses_round_trip(response in arb_response()) {
        let frame = encode_frame(&response).unwrap();
        let (back, _) = decode_frame::<Response>(&frame).unwrap().unwrap();
        prop_assert_eq!(back, response);
    }

    #[test]
    fn hellos_round_trip(hello in arb_hello()) {
        let frame = encode_frame(&hello).unwrap();
        let (back, _) = decode_frame::<Hello>(&frame).unwrap().unwrap();
        prop_assert_eq!(&back, &hello);
        prop_assert_eq!(hello_versions(&frame[4..]).unwrap(), (hello.version, hello.min_version));
    }
}
