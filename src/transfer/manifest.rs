//! The client side of a content's manifest: from the first holder whose
//! answers hold up, assembled by [`paging`](super::paging).

use std::collections::HashMap;

use super::get::Context;
use super::paging::{IndexPaging, ManifestBounds};
use super::{ask, AskError, Misbehaved};
use crate::chunk::{page_hash, ChunkRef, Manifest};
use crate::model::{ContentHash, NodeId};
use crate::net::PeerConnection;
use crate::proto::{Request, Response};
use crate::WantedContent as Wanted;

/// The manifest of `want`, from the first holder (not distrusted) that gives
/// one covering the content's size. Returns it with who gave it.
pub(super) async fn manifest_from_holders(
    ctx: &Context,
    want: &Wanted,
    distrusted: &mut Vec<NodeId>,
) -> Result<(Manifest, NodeId), String> {
    // Pages of the versions held here of the same files: an edited file's
    // manifest differs from the old one in a page or two.
    let known: HashMap<ContentHash, &[ChunkRef]> = want
        .targets
        .iter()
        .filter_map(|t| ctx.copies.manifest_of(t.entry.id))
        .flat_map(|m| m.pages())
        .map(|page| (page_hash(page), page))
        .collect();
    let mut why_not = Vec::new();
    for holder in &want.holders {
        let Some(conn) = ctx.conns.get(holder) else {
            continue;
        };
        if distrusted.contains(holder) || !ctx.schedule.reachable(&[*holder]) {
            continue;
        }
        let bounds = ManifestBounds::new(want.size, ctx.chunking);
        match fetch_manifest(conn, want.hash, bounds, &known).await {
            Ok(manifest) if manifest.total_len() == want.size => return Ok((manifest, *holder)),
            Ok(manifest) => {
                let wrong = Misbehaved::ManifestSize {
                    covers: manifest.total_len(),
                    size: want.size,
                };
                let why = format!("{}: {wrong}", conn.peer().name);
                ctx.schedule.holder_gone(*holder, why.clone(), Vec::new());
                distrusted.push(*holder);
                why_not.push(why);
            }
            Err(AskError::Unavailable(e)) => why_not.push(format!("{}: {e}", conn.peer().name)),
            Err(AskError::Lied(e)) => {
                let why = format!("{}: {e}", conn.peer().name);
                ctx.schedule.holder_gone(*holder, why.clone(), Vec::new());
                distrusted.push(*holder);
                why_not.push(why);
            }
        }
    }
    for (id, why) in ctx.schedule.dropped() {
        if want.holders.contains(&id) && !why_not.contains(&why) {
            why_not.push(why);
        }
    }
    Err(format!(
        "no holder could provide it ({})",
        why_not.join("; ")
    ))
}

/// A content's manifest from `conn`: its index, then only the pages not
/// in `known`; every page checked against its hash in the index, the index
/// bounded by what the content's size and the repository's chunking allow
/// (a chunk is received into memory whole: a lying length of 1 GiB would
/// be allocated). The checks and
/// the paging are [`paging`](super::paging)'s; this moves the messages.
async fn fetch_manifest(
    conn: &PeerConnection,
    hash: ContentHash,
    bounds: ManifestBounds,
    known: &HashMap<ContentHash, &[ChunkRef]>,
) -> Result<Manifest, AskError> {
    let lie = AskError::Lied;
    let mut index = IndexPaging::new(bounds);
    loop {
        let request = Request::Manifest {
            hash,
            first: index.next_first(),
        };
        let page = match ask(conn, &request).await?.0 {
            Response::Manifest(page) => page,
            other => return Err(lie(Misbehaved::unexpected(&other))),
        };
        if index.take(page).map_err(lie)? {
            break;
        }
    }
    let mut pages = index.into_pages(known).map_err(lie)?;
    for asked in pages.requests() {
        let request = Request::ManifestPages {
            hash,
            pages: asked.clone(),
        };
        let answer = match ask(conn, &request).await?.0 {
            Response::ManifestPages(answer) if answer.len() == asked.len() => answer,
            other => return Err(lie(Misbehaved::unexpected(&other))),
        };
        pages.take(&asked, answer).map_err(lie)?;
    }
    Ok(pages.finish())
}
