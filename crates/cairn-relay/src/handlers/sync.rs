//! Hello/sync and acknowledgements.

use std::collections::HashMap;

use cairn_store::{Store, StreamHead};
use cairn_wire::limits::{MAX_CURSORS, MAX_MESSAGE_LEN, MAX_PAGE_ENTRIES};
use cairn_wire::{
    BoundedVec, Cursor, ErrorCode, HelloRequest, Response, StreamId, StreamPage, SyncResponse,
};

use super::pages::{PAGE_BUDGET, read_page};
use super::{append, error, internal};
use crate::access::{can_read, readable_streams};
use crate::server::Shared;
use crate::session::Caller;

/// Room one append outcome may take in the answer.
const OUTCOME_SIZE: usize = MAX_MESSAGE_LEN + 64;
/// Below this many bytes left, the answer stops adding pages.
const MIN_PAGE_ROOM: usize = 64 * 1024;

/// Pushes the outbox, then pulls what is new past the device's cursors in
/// every stream it may read.
pub async fn hello<S: Store>(shared: &Shared<S>, caller: &Caller, hello: HelloRequest) -> Response {
    let acks = append(shared, caller, hello.outbox.into_vec()).await;
    let mut budget = PAGE_BUDGET.saturating_sub(acks.len() * OUTCOME_SIZE);
    let cursors = match cursors(shared, caller, hello.cursors.into_vec()).await {
        Ok(cursors) => cursors,
        Err(e) => return internal(&e),
    };
    let streams = match readable_streams(&shared.store, caller.user()).await {
        Ok(streams) => streams,
        Err(e) => return internal(&e),
    };
    match pages(shared, &streams, &cursors, &mut budget).await {
        Ok((pages, more)) => Response::Synced(SyncResponse { acks, pages, more }),
        Err(e) => internal(&e),
    }
}

/// Records an acknowledgement, for a stream the device may read.
pub async fn ack<S: Store>(shared: &Shared<S>, caller: &Caller, cursor: Cursor) -> Response {
    if !can_read(&shared.store, caller.user(), cursor.stream).await {
        return error(ErrorCode::FORBIDDEN, "forbidden");
    }
    match shared.store.ack(caller.device(), cursor).await {
        Ok(_) => Response::Done,
        Err(e) => internal(&e),
    }
}

/// The device's cursors: what it sent, else what it last acknowledged.
async fn cursors<S: Store>(
    shared: &Shared<S>,
    caller: &Caller,
    sent: Vec<Cursor>,
) -> Result<HashMap<StreamId, u64>, cairn_store::ReadError> {
    let mut cursors: HashMap<StreamId, u64> = shared
        .store
        .acked(caller.device())
        .await?
        .into_iter()
        .map(|c| (c.stream, c.position))
        .collect();
    cursors.extend(sent.into_iter().map(|c| (c.stream, c.position)));
    Ok(cursors)
}

async fn pages<S: Store>(
    shared: &Shared<S>,
    streams: &[StreamHead],
    cursors: &HashMap<StreamId, u64>,
    budget: &mut usize,
) -> Result<(BoundedVec<StreamPage, MAX_CURSORS>, bool), cairn_store::ReadError> {
    let mut pages = Vec::new();
    let mut more = false;
    for head in streams {
        let after = cursors.get(&head.stream).copied().unwrap_or(0);
        if head.head <= after {
            continue;
        }
        if pages.len() == MAX_CURSORS || *budget < MIN_PAGE_ROOM {
            more = true;
            break;
        }
        let page = read_page(shared, head.stream, after, MAX_PAGE_ENTRIES, budget).await?;
        more |= page.more;
        pages.push(page);
    }
    // The loop stops at `MAX_CURSORS` pages; were there more, the answer
    // would say more and the next hello would carry on.
    let (pages, beyond) = BoundedVec::take_front(pages);
    Ok((pages, more || !beyond.is_empty()))
}
