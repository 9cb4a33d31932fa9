//! The fuzz targets: every decoder that reads bytes from a peer or from a
//! file, each with the invariants its result must keep. A check returns
//! whether the decoder accepted the input (for the statistics) or what
//! broke; a panic inside it is caught by the runner.
//!
//! The invariants, for every decoder: accepted means the limits hold
//! (`validate()` passes) and the value encodes back to the same bytes and
//! decodes to itself; rejected means a typed error; and what the library
//! does next with an accepted value (normalise and merge an entry, page a
//! manifest, negotiate a hello) does not panic either.

use std::fmt::Debug;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use arbitrary::Unstructured;
use serde::de::DeserializeOwned;
use serde::Serialize;

use harmony::chunk::{hash_reader, ChunkParams, Manifest, PAGE_MAX_CHUNKS};
use harmony::model::{
    ContentHash, FileEntry, FileId, NodeId, NodeRecord, RepoId, RepoPath, MAX_NAME_BYTES,
    MAX_PATH_BYTES, STATE_DIR,
};
use harmony::proto::discovery::{
    Beacon, BeaconError, BEACON_LEN, BEACON_VERSION, FLAG_QUERY, MAGIC,
};
use harmony::proto::{
    check_hello, compatible, decode_body, decode_frame, encode_frame, frame_len, hello_versions,
    negotiate, Batch, Hello, HelloMismatch, ProtoError, Request, Response, Validate,
    FRAME_HEADER_LEN, MAX_CHUNKS_BYTES, MAX_FRAME, MAX_PAGE_CHUNKS_SENT,
};

use super::gen;

/// What a check concludes about one input: accepted or rejected by the
/// decoder, or an invariant broken (the text says which).
pub type Verdict = Result<bool, String>;

/// One decoder under test.
pub struct Target {
    /// Its name on the command line and in reports.
    pub name: &'static str,
    /// A valid (or well-formed but hostile) input, to mutate.
    pub make: fn(&mut Unstructured) -> arbitrary::Result<Vec<u8>>,
    /// Inputs start with a frame's 4-byte length header.
    pub framed: bool,
    /// Decodes the input and checks the invariants.
    pub check: fn(&[u8]) -> Verdict,
}

/// Every target, in the order reports list them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "frame",
        make: make_frames,
        framed: true,
        check: check_frames,
    },
    Target {
        name: "hello",
        make: |u| Ok(encode(&gen::hello(u)?)),
        framed: false,
        check: check_hello_body,
    },
    Target {
        name: "request",
        make: |u| Ok(encode(&gen::request(u)?)),
        framed: false,
        check: check_request,
    },
    Target {
        name: "response",
        make: |u| Ok(encode(&gen::response(u)?)),
        framed: false,
        check: check_response,
    },
    Target {
        name: "batch",
        make: |u| Ok(encode(&gen::batch(u)?)),
        framed: false,
        check: check_batch,
    },
    Target {
        name: "stored-entry",
        make: |u| Ok(encode(&gen::raw_entry(u)?)),
        framed: false,
        check: check_stored_entry,
    },
    Target {
        name: "stored-node",
        make: |u| Ok(encode(&gen::stored_node(u)?)),
        framed: false,
        check: check_stored_node,
    },
    Target {
        name: "manifest",
        make: |u| Ok(encode(&gen::manifest(u)?)),
        framed: false,
        check: check_manifest,
    },
    Target {
        name: "chunking",
        make: |u| Ok(encode(&gen::chunking(u)?)),
        framed: false,
        check: check_chunking,
    },
    Target {
        name: "repo-path",
        make: |u| Ok(gen::path_text(u)?.into_bytes()),
        framed: false,
        check: check_repo_path,
    },
    Target {
        name: "id-text",
        make: |u| Ok(gen::id_text(u)?.into_bytes()),
        framed: false,
        check: check_ids,
    },
    Target {
        name: "beacon",
        make: |u| Ok(gen::beacon(u)?.to_vec()),
        framed: false,
        check: check_beacon,
    },
];

/// Fails the check with `what` unless `cond`.
macro_rules! ensure {
    ($cond:expr, $($what:tt)+) => {
        if !$cond {
            return Err(format!($($what)+));
        }
    };
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("generated values encode")
}

/// One frame per message: one to three messages of one kind back to back,
/// as a stream carries them (a hello, requests, responses or batches).
fn make_frames(u: &mut Unstructured) -> arbitrary::Result<Vec<u8>> {
    let kind = u.int_in_range(0..=3)?;
    let mut out = Vec::new();
    for _ in 0..u.int_in_range(1..=3)? {
        let body = match kind {
            0 => encode(&gen::hello(u)?),
            1 => encode(&gen::request(u)?),
            2 => encode(&gen::response(u)?),
            _ => encode(&gen::batch(u)?),
        };
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
    }
    Ok(out)
}

/// A message body through `decode_body`: accepted only within the limits
/// and in its one canonical encoding, which frames and decodes back to the
/// same message.
fn body<T>(bytes: &[u8]) -> Result<Option<T>, String>
where
    T: DeserializeOwned + Serialize + Validate + Debug + PartialEq + Clone,
{
    let message = match decode_body::<T>(bytes) {
        Ok(message) => message,
        Err(ProtoError::Oversized { len, max }) => {
            ensure!(len > max as u64, "oversized at {len} bytes, within {max}");
            return Ok(None);
        }
        Err(_) => return Ok(None),
    };
    message
        .validate()
        .map_err(|e| format!("accepted {message:?} breaks a limit: {e}"))?;
    let again = postcard::to_stdvec(&message).map_err(|e| format!("does not encode: {e}"))?;
    ensure!(
        again == bytes,
        "accepted a non-canonical encoding of {message:?}"
    );
    let frame = encode_frame(&message).map_err(|e| format!("accepted but unsendable: {e}"))?;
    let back = decode_frame::<T>(&frame);
    ensure!(
        back == Ok(Some((message.clone(), frame.len()))),
        "its frame decodes to {back:?}"
    );
    Ok(Some(message))
}

/// Frames read one after another from a stream, as `net::stream` does.
fn frame_stream<T>(bytes: &[u8]) -> Verdict
where
    T: DeserializeOwned + Serialize + Validate + Debug + PartialEq + Clone,
{
    let mut rest = bytes;
    let mut accepted = false;
    while !rest.is_empty() {
        let header: Option<[u8; FRAME_HEADER_LEN]> =
            rest.get(..FRAME_HEADER_LEN).map(|h| h.try_into().unwrap());
        match decode_frame::<T>(rest) {
            Ok(Some((message, used))) => {
                ensure!(
                    used >= FRAME_HEADER_LEN && used <= rest.len(),
                    "used {used} bytes"
                );
                let body_verdict = body::<T>(&rest[FRAME_HEADER_LEN..used])?;
                ensure!(
                    body_verdict.as_ref() == Some(&message),
                    "frame and body decoders disagree: {message:?} vs {body_verdict:?}"
                );
                accepted = true;
                rest = &rest[used..];
            }
            Ok(None) => {
                if let Some(header) = header {
                    let len = frame_len(header).map_err(|e| format!("waits on {e}"))?;
                    ensure!(
                        rest.len() < FRAME_HEADER_LEN + len,
                        "waits for more with a whole frame"
                    );
                }
                break;
            }
            Err(error) => {
                let header = header.ok_or_else(|| format!("{error} without a header"))?;
                match frame_len(header) {
                    Err(e) => ensure!(e == error, "header says {e}, frame says {error}"),
                    Ok(len) => {
                        let verdict = decode_body::<T>(&rest[FRAME_HEADER_LEN..][..len]);
                        ensure!(
                            verdict.as_ref().err() == Some(&error),
                            "frame says {error}, body says {verdict:?}"
                        );
                    }
                }
                break;
            }
        }
    }
    Ok(accepted)
}

fn check_frames(bytes: &[u8]) -> Verdict {
    if let Some(header) = bytes.get(..FRAME_HEADER_LEN) {
        let announced = u32::from_be_bytes(header.try_into().unwrap()) as usize;
        let len = frame_len(header.try_into().unwrap());
        ensure!(
            (announced <= MAX_FRAME) == (len == Ok(announced)),
            "header {announced} read as {len:?}"
        );
    }
    Ok(frame_stream::<Hello>(bytes)?
        | frame_stream::<Request>(bytes)?
        | frame_stream::<Response>(bytes)?
        | frame_stream::<Batch>(bytes)?)
}

fn check_hello_body(bytes: &[u8]) -> Verdict {
    let decoded = body::<Hello>(bytes)?;
    let range = hello_versions(bytes);
    if let Some(hello) = &decoded {
        ensure!(
            range == Ok((hello.version, hello.min_version)),
            "the version prefix reads {range:?}, the hello says {hello:?}"
        );
    }
    let us = NodeId([1; 32]);
    for fresh in [false, true] {
        let ours = Hello {
            fresh,
            ..Hello::new(RepoId([1; 16]), us, "us")
        };
        let ours_range = (ours.version, ours.min_version);
        for proven in [us, NodeId([2; 32])] {
            match check_hello(bytes, &ours, proven) {
                Ok(Ok((hello, version))) => {
                    ensure!(
                        decoded.as_ref() == Some(&hello),
                        "check_hello accepted {hello:?}"
                    );
                    let theirs = (hello.version, hello.min_version);
                    ensure!(
                        negotiate(ours_range, theirs) == Some(version),
                        "negotiated {version}"
                    );
                    ensure!(hello.node_id == proven, "accepted a false identity");
                    ensure!(
                        compatible(hello.membership(), ours.membership()),
                        "accepted another repository"
                    );
                }
                Ok(Err(mismatch)) => {
                    let _ = mismatch.describe("peer");
                    match mismatch {
                        HelloMismatch::Version { theirs, .. } => ensure!(
                            range == Ok(theirs) && negotiate(ours_range, theirs).is_none(),
                            "refused version {theirs:?}"
                        ),
                        HelloMismatch::Identity { claimed, .. } => ensure!(
                            decoded.as_ref().map(|h| h.node_id) == Some(claimed)
                                && claimed != proven,
                            "refused identity {claimed:?}"
                        ),
                        HelloMismatch::Repository { .. } => ensure!(
                            decoded
                                .as_ref()
                                .is_some_and(|h| !compatible(h.membership(), ours.membership())),
                            "refused a compatible repository"
                        ),
                    }
                }
                Err(_) => ensure!(
                    decoded.is_none()
                        && range
                            .as_ref()
                            .is_ok_and(|r| negotiate(ours_range, *r).is_some())
                        || range.is_err(),
                    "check_hello refused what decodes: {decoded:?}"
                ),
            }
        }
    }
    Ok(decoded.is_some())
}

/// The variant index a request is encoded with.
fn request_kind(request: &Request) -> u32 {
    match request {
        Request::Ping { .. } => 0,
        Request::Bulk { .. } => 1,
        Request::Sync(_) => 2,
        Request::Manifest { .. } => 3,
        Request::Chunks(_) => 4,
        Request::Has { .. } => 5,
        Request::ManifestPages { .. } => 6,
        Request::Files { .. } => 7,
        Request::Refine { .. } => 8,
        Request::Notify { .. } => 9,
        Request::Join(_) => 10,
    }
}

fn check_request(bytes: &[u8]) -> Verdict {
    let Some(request) = body::<Request>(bytes)? else {
        return Ok(false);
    };
    let kind = request_kind(&request);
    ensure!(
        Request::kind_of(bytes) == Some(kind) && kind < Request::KNOWN_KINDS,
        "kind_of says {:?} for {request:?}",
        Request::kind_of(bytes)
    );
    if let Request::Chunks(ranges) = &request {
        ensure!(
            ranges.total_len() <= MAX_CHUNKS_BYTES,
            "{ranges:?} asks too much"
        );
    }
    Ok(true)
}

fn check_response(bytes: &[u8]) -> Verdict {
    let Some(response) = body::<Response>(bytes)? else {
        return Ok(false);
    };
    match &response {
        Response::Manifest(index) => ensure!(
            u64::from(index.first) + index.pages.len() as u64 <= u64::from(index.total)
                && index
                    .pages
                    .iter()
                    .all(|p| (1..=PAGE_MAX_CHUNKS as u32).contains(&p.chunks)),
            "accepted {index:?}"
        ),
        Response::ManifestPages(pages) => ensure!(
            pages.iter().map(Vec::len).sum::<usize>() <= MAX_PAGE_CHUNKS_SENT,
            "accepted {} chunk references",
            pages.iter().map(Vec::len).sum::<usize>()
        ),
        _ => {}
    }
    Ok(true)
}

/// What sync does with an entry it received (`sync::merge_batch`), or the
/// store with one it read: normalise it, merge it, show it, digest it.
fn use_entry(entry: &FileEntry) -> Result<(), String> {
    let normal = entry.clone().normalized();
    ensure!(
        normal.clone().normalized() == normal,
        "normalising {normal:?} twice changes it"
    );
    for version in normal.path.versions() {
        let path = version.value.as_str();
        ensure!(
            RepoPath::new(path).is_ok(),
            "an entry holds the path {path:?}"
        );
    }
    let _ = (normal.current_path(), normal.resolved(), normal.digest());
    let me = NodeId([1; 32]);
    let _ = normal.deletion_is_stable(&[me, NodeId([2; 32])]);
    let mut twice = normal.clone();
    twice.merge_remote(&normal, me);
    ensure!(twice == normal, "merging {normal:?} into itself changes it");
    let mut into_empty = normal.clone();
    into_empty.holders.clear();
    into_empty.merge(&normal);
    ensure!(
        into_empty.holders == normal.holders,
        "holders lost in a merge"
    );
    let stored: FileEntry = postcard::from_bytes(&encode(&normal))
        .map_err(|e| format!("a normalised entry does not decode: {e}"))?;
    ensure!(
        stored == normal,
        "a normalised entry is stored as {stored:?}"
    );
    Ok(())
}

/// What a node record from a peer or the store goes through.
fn use_node(record: &NodeRecord) -> Result<(), String> {
    let _ = record.digest();
    let mut same = record.clone();
    same.merge(record);
    ensure!(&same == record, "merging {record:?} into itself changes it");
    Ok(())
}

fn check_batch(bytes: &[u8]) -> Verdict {
    let Some(batch) = body::<Batch>(bytes)? else {
        return Ok(false);
    };
    for entry in &batch.entries {
        use_entry(entry)?;
    }
    for record in &batch.nodes {
        ensure!(record.is_valid(), "accepted {record:?}");
        use_node(record)?;
    }
    let _ = batch.is_last(batch.upto);
    Ok(true)
}

/// A row of the state database, read as `store` reads it (postcard, no
/// frame limits: the row was written by this node, but the file may be
/// damaged).
fn stored<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    postcard::from_bytes(bytes).ok()
}

fn check_stored_entry(bytes: &[u8]) -> Verdict {
    let Some(entry) = stored::<FileEntry>(bytes) else {
        return Ok(false);
    };
    // The store hands entries out as read; its callers show and merge them.
    let _ = (entry.current_path(), entry.resolved(), entry.digest());
    let mut merged = entry.clone();
    merged.merge(&entry);
    use_entry(&entry)?;
    Ok(true)
}

fn check_stored_node(bytes: &[u8]) -> Verdict {
    let Some(record) = stored::<NodeRecord>(bytes) else {
        return Ok(false);
    };
    use_node(&record)?;
    Ok(true)
}

/// A manifest from the store: its pages cover it in order, within the page
/// limit, and its offsets add up.
fn check_manifest(bytes: &[u8]) -> Verdict {
    let Some(manifest) = stored::<Manifest>(bytes) else {
        return Ok(false);
    };
    let pages = manifest.pages();
    let joined: Vec<_> = pages.iter().flat_map(|p| p.iter().copied()).collect();
    ensure!(joined == manifest.chunks, "pages do not cover the manifest");
    ensure!(
        pages
            .iter()
            .all(|p| (1..=PAGE_MAX_CHUNKS).contains(&p.len())),
        "a page outside 1..={PAGE_MAX_CHUNKS} chunks"
    );
    let index = manifest.page_index();
    ensure!(index.len() == pages.len(), "index of {} pages", index.len());
    let offsets = manifest.offsets();
    let end = offsets
        .last()
        .map_or(0, |o| o + u64::from(manifest.chunks.last().unwrap().len));
    ensure!(end == manifest.total_len(), "offsets end at {end}");
    Ok(true)
}

/// The chunking setting from the store: what `ChunkParams::is_valid` (the
/// store's check) lets through, the chunker cuts without a panic, in
/// chunks within the sizes, covering the content.
fn check_chunking(bytes: &[u8]) -> Verdict {
    let Some(params) = stored::<ChunkParams>(bytes) else {
        return Ok(false);
    };
    if !params.is_valid() {
        return Ok(false);
    }
    // Past `max` (so that cuts are made with a full window), within 256 KiB.
    let content: Vec<u8> = (0..(params.max as usize + 1000).min(1 << 18))
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
        .collect();
    let mut scratch = vec![0; 4 * params.max as usize];
    let summary = hash_reader(&mut &content[..], params, &mut scratch)
        .map_err(|e| format!("chunking failed: {e}"))?;
    let lens: Vec<u32> = summary.manifest.chunks.iter().map(|c| c.len).collect();
    ensure!(
        lens.iter().map(|l| u64::from(*l)).sum::<u64>() == content.len() as u64,
        "chunks of {params:?} do not cover the content"
    );
    ensure!(
        lens.iter().all(|l| *l <= params.max),
        "a chunk longer than {}",
        params.max
    );
    Ok(true)
}

/// The rules of a repository path, said through `std::path` (independently
/// of `RepoPath::new`): plain components only, none dropped by
/// normalisation, the first not `.harmony`, within the length limits.
fn follows_path_rules(text: &str) -> bool {
    let path = Path::new(text);
    let names: Vec<_> = path.components().collect();
    !text.is_empty()
        && text.len() <= MAX_PATH_BYTES
        && !text.contains('\0')
        && names.len() == text.split('/').count()
        && names
            .iter()
            .all(|c| matches!(c, Component::Normal(name) if name.len() <= MAX_NAME_BYTES))
        && names.first() != Some(&Component::Normal(STATE_DIR.as_ref()))
}

fn check_repo_path(bytes: &[u8]) -> Verdict {
    let Ok(text) = std::str::from_utf8(bytes) else {
        let verdict = RepoPath::from_relative(Path::new(std::ffi::OsStr::from_bytes(bytes)));
        ensure!(
            verdict.is_err(),
            "accepted a name that is not UTF-8: {verdict:?}"
        );
        return Ok(false);
    };
    let verdict = RepoPath::new(text);
    ensure!(
        verdict.is_ok() == follows_path_rules(text),
        "RepoPath::new({text:?}) is {verdict:?}"
    );
    let wire: Result<RepoPath, _> = postcard::from_bytes(&encode(&text));
    ensure!(
        wire.is_ok() == verdict.is_ok(),
        "decoding {text:?} gives {wire:?}"
    );
    let Ok(path) = verdict else {
        return Ok(false);
    };
    ensure!(path.as_str() == text, "{text:?} became {path:?}");
    ensure!(wire == Ok(path.clone()), "decodes as {wire:?}");
    ensure!(
        RepoPath::from_relative(Path::new(text)).as_ref() == Ok(&path),
        "from_relative disagrees on {text:?}"
    );
    let root = Path::new("/location");
    let on_disk = path.to_path(root);
    let inside = on_disk
        .strip_prefix(root)
        .map_err(|_| format!("{on_disk:?} is outside"))?;
    ensure!(
        inside
            .components()
            .all(|c| matches!(c, Component::Normal(_))),
        "{on_disk:?} leaves the location"
    );
    ensure!(
        path.starts_with(&path),
        "{path:?} does not start with itself"
    );
    Ok(true)
}

fn check_ids(bytes: &[u8]) -> Verdict {
    let text = String::from_utf8_lossy(bytes);
    let mut accepted = false;
    if let Ok(id) = text.parse::<NodeId>() {
        let printed = id.to_string();
        let compact: String = text
            .trim()
            .chars()
            .filter(|c| *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        ensure!(
            compact == printed.replace('-', ""),
            "{text:?} read as {printed}"
        );
        ensure!(
            printed.parse::<NodeId>() == Ok(id),
            "{printed} does not read back"
        );
        let _ = id.short();
        accepted = true;
    }
    fn hex_id<T: std::str::FromStr + std::fmt::Display>(text: &str) -> Result<bool, String> {
        let Ok(id) = text.parse::<T>() else {
            return Ok(false);
        };
        ensure!(
            id.to_string() == text.trim().to_ascii_lowercase(),
            "{text:?} read as {id}"
        );
        Ok(true)
    }
    accepted |= hex_id::<RepoId>(&text)?;
    accepted |= hex_id::<FileId>(&text)?;
    accepted |= hex_id::<ContentHash>(&text)?;
    Ok(accepted)
}

fn check_beacon(bytes: &[u8]) -> Verdict {
    let verdict = Beacon::decode(bytes);
    // The first rule the datagram breaks, in the order the format is read.
    let expected = if bytes.len() <= MAGIC.len() {
        Err(BeaconError::Length(bytes.len()))
    } else if bytes[..4] != MAGIC {
        Err(BeaconError::Magic)
    } else if bytes[4] != BEACON_VERSION {
        Err(BeaconError::Version(bytes[4]))
    } else if bytes.len() != BEACON_LEN {
        Err(BeaconError::Length(bytes.len()))
    } else if bytes[6..8] == [0, 0] && bytes[5] & FLAG_QUERY == 0 {
        Err(BeaconError::Port)
    } else {
        Ok(())
    };
    ensure!(
        verdict.as_ref().map(|_| ()) == expected.as_ref().map(|_| ()),
        "decoded as {verdict:?}, expected {expected:?}"
    );
    let Ok(beacon) = verdict else {
        return Ok(false);
    };
    let mut known_flags = bytes.to_vec();
    known_flags[5] &= FLAG_QUERY;
    ensure!(
        beacon.encode()[..] == known_flags[..],
        "{beacon:?} encodes otherwise"
    );
    ensure!(
        Beacon::decode(&beacon.encode()) == Ok(beacon),
        "does not round-trip"
    );
    let sender = beacon.sender_among((1..=6).map(|n| NodeId([n; 32])));
    ensure!(
        sender.is_none_or(|n| beacon.is_from(n)),
        "names a sender it is not from"
    );
    Ok(true)
}
