//! Subscriptions: the backlog after a cursor, then live entries, with no
//! gap and no duplicate, in position order.
//!
//! The subscription registers with the hub *before* it reads storage, so
//! every entry committed after the read is also in its queue. It tracks the
//! next position it owes the client: queued entries below it are skipped
//! (already sent from storage), an entry above it means a gap, which is
//! filled from storage before going on. When the hub detaches it (queue
//! full, feed lagged, access withdrawn) its queue closes; it re-checks
//! access, re-registers and catches up from storage again.

use cairn_store::Store;
use cairn_wire::limits::MAX_PAGE_ENTRIES;
use cairn_wire::{
    BoundedVec, Entry, ErrorCode, Response, StreamId, SubscribeRequest, SubscriptionEvent,
    WireError,
};
use quinn::SendStream;

use super::pages::{PAGE_BUDGET, entry_size, read_page};
use crate::access::can_read;
use crate::fanout::{LiveEntry, Registration};
use crate::frame_io;
use crate::metrics;
use crate::server::Shared;
use crate::session::Session;

/// Live entries sent in one frame at most, when several are queued.
const LIVE_BATCH: usize = 256;

/// Serves a subscription until the client leaves, access ends, or the relay
/// shuts down.
pub async fn run<S: Store>(
    shared: &Shared<S>,
    session: &Session,
    request: SubscribeRequest,
    mut send: SendStream,
) {
    if !can_read(&shared.store, session.user, request.stream).await {
        metrics::refusal(ErrorCode::FORBIDDEN);
        return frame_io::refuse(&mut send, ErrorCode::FORBIDDEN, "forbidden").await;
    }
    let Ok(_permit) = session.subscriptions.clone().try_acquire_owned() else {
        metrics::refusal(ErrorCode::TOO_MANY_SUBSCRIPTIONS);
        return frame_io::refuse(
            &mut send,
            ErrorCode::TOO_MANY_SUBSCRIPTIONS,
            "too many subscriptions",
        )
        .await;
    };
    metrics::gauge_add(metrics::SUBSCRIPTIONS_OPEN, 1.0);
    let end = Follower {
        shared,
        session,
        stream: request.stream,
        send: &mut send,
        next: request.after.saturating_add(1),
    }
    .follow()
    .await;
    metrics::gauge_add(metrics::SUBSCRIPTIONS_OPEN, -1.0);
    if let Some(error) = end {
        frame_io::answer(
            &mut send,
            &Response::Subscription(SubscriptionEvent::End(error)),
        )
        .await;
    }
}

struct Follower<'a, S: Store> {
    shared: &'a Shared<S>,
    session: &'a Session,
    stream: StreamId,
    send: &'a mut SendStream,
    /// The next position owed to the client.
    next: u64,
}

/// Why following stopped: `Some(error)` to tell the client, `None` when the
/// client is gone.
type End = Option<WireError>;

impl<S: Store> Follower<'_, S> {
    async fn follow(mut self) -> End {
        match self.follow_until_stopped().await {
            Err(end) => end,
            Ok(never) => match never {},
        }
    }

    async fn follow_until_stopped(&mut self) -> Result<std::convert::Infallible, End> {
        let mut announced_live = false;
        loop {
            let limits = &self.shared.config.limits;
            let mut registration = self.shared.hub.register(
                self.stream,
                self.session.user,
                limits.subscriber_queue,
                limits.subscriber_queue_bytes,
            );
            self.catch_up().await?;
            if !announced_live {
                self.send_event(SubscriptionEvent::Live {
                    position: self.next - 1,
                })
                .await?;
                announced_live = true;
            }
            self.follow_queue(&mut registration).await?;
            // Detached by the hub: go back to storage, if still allowed.
            if !can_read(&self.shared.store, self.session.user, self.stream).await {
                return Err(Some(WireError::new(
                    ErrorCode::FORBIDDEN,
                    "access withdrawn",
                )));
            }
        }
    }

    /// Sends live entries until the queue closes (`Ok`) or following must
    /// stop (`Err`).
    async fn follow_queue(&mut self, queue: &mut Registration) -> Result<(), End> {
        loop {
            let first = tokio::select! {
                entry = queue.recv() => entry,
                () = self.shared.shutdown.cancelled() => return Err(Some(WireError::new(ErrorCode::SHUTTING_DOWN, "relay shutting down"))),
                _ = self.send.stopped() => return Err(None),
            };
            let Some(first) = first else { return Ok(()) };
            let mut batch = vec![first];
            while batch.len() < LIVE_BATCH {
                match queue.try_recv() {
                    Some(entry) => batch.push(entry),
                    None => break,
                }
            }
            self.deliver(batch).await?;
        }
    }

    /// Sends queued entries in order, skipping what was already sent and
    /// filling any gap from storage first.
    async fn deliver(&mut self, batch: Vec<LiveEntry>) -> Result<(), End> {
        let mut entries = Vec::with_capacity(batch.len());
        for live in batch {
            let position = live.position();
            if position < self.next {
                continue;
            }
            if position > self.next {
                self.send_entries(std::mem::take(&mut entries)).await?;
                self.catch_up().await?;
                if position < self.next {
                    continue;
                }
            }
            entries.push(live.to_entry());
            self.next = position + 1;
        }
        let delivered = entries.len();
        self.send_entries(entries).await?;
        metrics::counter_by(metrics::LIVE_DELIVERIES, delivered);
        Ok(())
    }

    /// Sends everything stored from `next` on, page by page.
    async fn catch_up(&mut self) -> Result<(), End> {
        loop {
            let mut budget = PAGE_BUDGET;
            let page = read_page(
                self.shared,
                self.stream,
                self.next - 1,
                MAX_PAGE_ENTRIES,
                &mut budget,
            )
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "subscription read failed");
                Some(WireError::new(ErrorCode::INTERNAL, "storage unavailable"))
            })?;
            let Some(last) = page.entries.as_slice().last().map(|e| e.position) else {
                return Ok(());
            };
            let more = page.more;
            self.send_event(SubscriptionEvent::Entries(page.entries))
                .await?;
            self.next = last + 1;
            if !more {
                return Ok(());
            }
        }
    }

    async fn send_entries(&mut self, entries: Vec<Entry>) -> Result<(), End> {
        for chunk in chunk_by_size(entries) {
            self.send_event(SubscriptionEvent::Entries(chunk)).await?;
        }
        Ok(())
    }

    async fn send_event(&mut self, event: SubscriptionEvent) -> Result<(), End> {
        match frame_io::write_response(self.send, &Response::Subscription(event)).await {
            true => Ok(()),
            false => Err(None),
        }
    }
}

/// Splits entries into frames within the page budget.
fn chunk_by_size(entries: Vec<Entry>) -> Vec<BoundedVec<Entry, MAX_PAGE_ENTRIES>> {
    let mut chunks = Vec::new();
    let mut current = Vec::new();
    let mut budget = PAGE_BUDGET;
    for entry in entries {
        let size = entry_size(&entry);
        if !current.is_empty() && (size > budget || current.len() == MAX_PAGE_ENTRIES) {
            seal_chunks(&mut chunks, std::mem::take(&mut current));
            budget = PAGE_BUDGET;
        }
        budget = budget.saturating_sub(size);
        current.push(entry);
    }
    seal_chunks(&mut chunks, current);
    chunks
}

/// Appends `entries` as frames of at most `MAX_PAGE_ENTRIES`: one, as
/// `chunk_by_size` cuts them, but never dropping any should that change.
fn seal_chunks(chunks: &mut Vec<BoundedVec<Entry, MAX_PAGE_ENTRIES>>, mut entries: Vec<Entry>) {
    while !entries.is_empty() {
        let (chunk, rest) = BoundedVec::take_front(entries);
        chunks.push(chunk);
        entries = rest;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use cairn_testkit::User;
    use cairn_wire::{Entry, Scope};

    use super::*;

    fn entries(count: usize, payload_len: usize) -> Vec<Entry> {
        let device = User::new(1).device(1);
        let payload = vec![7; payload_len];
        (1..=count as u64)
            .map(|position| Entry {
                position,
                envelope: device.envelope(position, Scope::Private, &payload),
            })
            .collect()
    }

    fn positions(chunks: &[BoundedVec<Entry, MAX_PAGE_ENTRIES>]) -> Vec<u64> {
        chunks
            .iter()
            .flat_map(|chunk| chunk.iter().map(|e| e.position))
            .collect()
    }

    #[test]
    fn entries_are_cut_into_frames_by_count_and_size_and_none_is_lost() {
        let many = entries(2 * MAX_PAGE_ENTRIES + 1, 1);
        let chunks = chunk_by_size(many);
        assert_eq!(chunks.len(), 3);
        assert_eq!(
            positions(&chunks),
            (1..=2 * MAX_PAGE_ENTRIES as u64 + 1).collect::<Vec<_>>()
        );

        let big = entries(40, 60 * 1024);
        let chunks = chunk_by_size(big);
        assert!(
            chunks.len() > 1,
            "40 entries of 60 KiB fill more than a frame"
        );
        for chunk in &chunks {
            let bytes: usize = chunk.iter().map(entry_size).sum();
            assert!(chunk.len() == 1 || bytes <= PAGE_BUDGET);
        }
        assert_eq!(positions(&chunks), (1..=40).collect::<Vec<_>>());
    }
}
