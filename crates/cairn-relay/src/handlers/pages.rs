//! Reading streams in pages that always fit in one frame.

use cairn_store::Store;
use cairn_wire::limits::{MAX_DEVICES, MAX_FRAME_LEN, MAX_PAGE_ENTRIES};
use cairn_wire::{
    BoundedVec, Entry, ErrorCode, Expired, ExpiredHead, ReadRequest, Response, StreamPage,
};

use bytes::Bytes;

use super::{error, internal};
use crate::access::can_read;
use crate::fanout::LiveEntry;
use crate::server::Shared;
use crate::session::Caller;

/// Bytes of entries one answer may carry: the frame limit less room for
/// the rest of the answer (acks, stream ids, flags).
pub const PAGE_BUDGET: usize = MAX_FRAME_LEN - 128 * 1024;

/// Upper bound of an [`Expired`]'s encoded size: its position, the heads'
/// count and [`MAX_DEVICES`] heads (device, seq varint, id). A page read
/// leaves room for one.
pub const MAX_EXPIRED_LEN: usize = 10 + 3 + MAX_DEVICES * (32 + 10 + 32);

/// Upper bound of an entry's encoded size in an answer: payload plus
/// header (at most 118 bytes), payload length prefix (3), signature (64)
/// and position (10). It is never below what the store counts for the same
/// entry (`encoding + ENTRY_OVERHEAD`), so a page the store cut to a budget
/// fits that budget here too.
pub fn entry_size(entry: &Entry) -> usize {
    entry.envelope.payload().len() + 118 + 3 + 64 + 10
}

/// Answers a read: forbidden unless the scope admits the reader.
pub async fn read<S: Store>(shared: &Shared<S>, caller: &Caller, request: ReadRequest) -> Response {
    if !can_read(&shared.store, caller.user(), request.stream).await {
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
/// One storage read: the store stops at the budget before decoding what
/// would not be sent.
pub async fn read_page<S: Store>(
    shared: &Shared<S>,
    stream: cairn_wire::StreamId,
    after: u64,
    limit: usize,
    budget: &mut usize,
) -> Result<StreamPage, cairn_store::ReadError> {
    let room = budget.saturating_sub(MAX_EXPIRED_LEN);
    let read = shared
        .store
        .read_stream_within(stream, after, limit, room)
        .await?;
    let more = read.more();
    let expired = expired_below(after, read.floor, &read.expired);
    // The store returns at most `limit` entries; should it return more
    // than a page holds, the page ends there and says more.
    let (entries, beyond) = BoundedVec::take_front(read.entries);
    let spent: usize = entries.iter().map(entry_size).sum::<usize>()
        + expired.as_ref().map_or(0, |_| MAX_EXPIRED_LEN);
    *budget = budget.saturating_sub(spent);
    Ok(StreamPage {
        stream,
        entries,
        more: more || !beyond.is_empty(),
        expired,
    })
}

/// A page of a stream for a subscription: its entries as stored, sent as
/// they are, each its own frame part ([`LiveEntry`]).
pub struct EncodedPage {
    /// Entries in position order, consecutive.
    pub entries: Vec<LiveEntry>,
    /// Whether entries past this page exist.
    pub more: bool,
    /// What the relay no longer serves, when the read started below it.
    pub expired: Option<Box<Expired>>,
}

/// [`read_page`] without decoding: at most `limit` entries after `after`
/// within `budget` (at least one), as their stored encodings.
pub async fn read_encoded_page<S: Store>(
    shared: &Shared<S>,
    stream: cairn_wire::StreamId,
    after: u64,
    limit: usize,
    budget: usize,
) -> Result<EncodedPage, cairn_store::ReadError> {
    let room = budget.saturating_sub(MAX_EXPIRED_LEN);
    let read = shared
        .store
        .read_stream_encoded(stream, after, limit, room)
        .await?;
    let more = read.more();
    let expired = expired_below(after, read.floor, &read.expired);
    let entries = read
        .entries
        .into_iter()
        .map(|e| LiveEntry::from_encoding(e.position, Bytes::from(e.encoding)))
        .collect();
    Ok(EncodedPage {
        entries,
        more,
        expired,
    })
}

/// What a read from `after` is told is gone: nothing unless it started
/// below the stream's floor.
fn expired_below(
    after: u64,
    floor: u64,
    heads: &[cairn_store::ExpiredHead],
) -> Option<Box<Expired>> {
    (after < floor).then(|| {
        Box::new(Expired {
            through: floor,
            heads: BoundedVec::take_front(heads.iter().map(wire_head).collect()).0,
        })
    })
}

fn wire_head(head: &cairn_store::ExpiredHead) -> ExpiredHead {
    ExpiredHead {
        device: head.device,
        seq: head.seq,
        id: head.id,
    }
}
