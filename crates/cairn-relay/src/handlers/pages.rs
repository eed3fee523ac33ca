//! Reading streams in pages that always fit in one frame.

use cairn_store::Store;
use cairn_wire::limits::{MAX_FRAME_LEN, MAX_PAGE_ENTRIES};
use cairn_wire::{BoundedVec, Entry, ErrorCode, ReadRequest, Response, StreamPage};

use super::{error, internal};
use crate::access::can_read;
use crate::server::Shared;
use crate::session::Session;

/// Bytes of entries one answer may carry: the frame limit less room for
/// the rest of the answer (acks, stream ids, flags).
pub const PAGE_BUDGET: usize = MAX_FRAME_LEN - 128 * 1024;

/// Upper bound of an entry's encoded size: payload plus header, signature,
/// position and length prefixes.
pub fn entry_size(entry: &Entry) -> usize {
    entry.envelope.payload().len() + 256
}

/// Answers a read: forbidden unless the scope admits the reader.
pub async fn read<S: Store>(
    shared: &Shared<S>,
    session: &Session,
    request: ReadRequest,
) -> Response {
    if !can_read(&shared.store, session.user, request.stream).await {
        return error(ErrorCode::FORBIDDEN, "forbidden");
    }
    let limit = usize::try_from(request.limit)
        .unwrap_or(usize::MAX)
        .clamp(1, MAX_PAGE_ENTRIES);
    let mut budget = PAGE_BUDGET;
    match read_page(shared, request.stream, request.after, limit, &mut budget).await {
        Ok(page) => Response::Page(page),
        Err(e) => internal(&e),
    }
}

/// Reads at most `limit` entries after `after` that fit in `budget` bytes
/// (at least one, whatever its size), and takes their size off `budget`.
///
/// It reads in chunks sized from what it has seen, so that memory stays
/// near the budget whatever the entries' sizes: asking storage for 4096
/// entries of 64 KiB at once would load 256 MiB to send 1 MiB.
pub async fn read_page<S: Store>(
    shared: &Shared<S>,
    stream: cairn_wire::StreamId,
    after: u64,
    limit: usize,
    budget: &mut usize,
) -> Result<StreamPage, cairn_store::ReadError> {
    let mut entries = Vec::new();
    let mut largest = FIRST_CHUNK_ENTRY_SIZE;
    let more = loop {
        let last = entries.last().map_or(after, |e: &Entry| e.position);
        let chunk = (*budget / largest)
            .clamp(1, MAX_CHUNK)
            .min(limit - entries.len());
        let read = shared.store.read_stream(stream, last, chunk).await?;
        let more_in_store = read.more();
        largest = largest.max(read.entries.iter().map(entry_size).max().unwrap_or(0));
        let mut budget_left = *budget;
        let (kept, cut) = take_within(read.entries, &mut budget_left, entries.is_empty());
        *budget = budget_left;
        entries.extend(kept);
        if cut || !more_in_store || entries.len() >= limit {
            break cut || more_in_store;
        }
    };
    Ok(StreamPage {
        stream,
        entries: BoundedVec::new(entries).unwrap_or_default(),
        more,
    })
}

/// The entry size assumed before any is seen: the largest possible, so
/// that the first chunk cannot overshoot the budget.
const FIRST_CHUNK_ENTRY_SIZE: usize = cairn_wire::limits::MAX_PAYLOAD_LEN + 256;
/// Most entries asked of storage at once.
const MAX_CHUNK: usize = 1024;

/// Keeps the longest prefix of `entries` within `budget` and takes its
/// size off; returns it and whether anything was cut. `first` says whether
/// these would be the answer's first entries: one of those is kept even
/// over budget, so that every entry can be delivered.
fn take_within(entries: Vec<Entry>, budget: &mut usize, first: bool) -> (Vec<Entry>, bool) {
    let mut kept = Vec::with_capacity(entries.len());
    let total = entries.len();
    for entry in entries {
        let size = entry_size(&entry);
        if size > *budget && (!kept.is_empty() || !first) {
            break;
        }
        *budget = budget.saturating_sub(size);
        kept.push(entry);
    }
    let cut = kept.len() < total;
    (kept, cut)
}
