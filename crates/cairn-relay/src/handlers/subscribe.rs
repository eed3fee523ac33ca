//! Subscriptions: the backlog after a cursor, then live entries, with no
//! gap and no duplicate, in position order. The decisions (when to
//! register, read, announce; what to do with each live entry) are
//! [`crate::follow::Follow`]'s; this is its async driver: the hub, storage,
//! the QUIC stream, access checks and shutdown.

use std::collections::VecDeque;

use bytes::Bytes;
use cairn_store::Store;
use cairn_wire::frames::live_entries_frame_header;
use cairn_wire::limits::MAX_PAGE_ENTRIES;
use cairn_wire::{ErrorCode, Response, StreamId, SubscribeRequest, SubscriptionEvent, WireError};
use quinn::SendStream;

use super::pages::{PAGE_BUDGET, read_encoded_page};
use crate::access::can_read;
use crate::fanout::{LiveEntry, Registration};
use crate::follow::{Follow, Live, Next};
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
    if !can_read(&shared.store, session.user(), request.stream).await {
        metrics::refusal(ErrorCode::FORBIDDEN);
        return frame_io::refuse(&mut send, ErrorCode::FORBIDDEN, "forbidden").await;
    }
    let Ok(_permit) = session.subscriptions().clone().try_acquire_owned() else {
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
        follow: Follow::new(request.after),
        registration: None,
        pending: VecDeque::new(),
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
    follow: Follow,
    registration: Option<Registration>,
    /// Live entries received and not yet offered: the rest of a batch
    /// after a gap, kept until storage has caught up.
    pending: VecDeque<LiveEntry>,
}

/// Why following stopped: `Some(error)` to tell the client, `None` when the
/// client is gone.
type End = Option<WireError>;

impl<S: Store> Follower<'_, S> {
    async fn follow(mut self) -> End {
        loop {
            let step = match self.follow.poll() {
                Next::Register => self.register().await,
                Next::Read { after } => self.read(after).await,
                Next::Announce { position } => self.announce(position).await,
                Next::AwaitLive => self.await_live().await,
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// Registers with the hub, before storage is read, so that nothing
    /// committed after the read is missed. After a detachment, access is
    /// checked again first.
    async fn register(&mut self) -> Result<(), End> {
        let detached = self.registration.take().is_some();
        if detached && !can_read(&self.shared.store, self.session.user(), self.stream).await {
            return Err(Some(WireError::new(
                ErrorCode::FORBIDDEN,
                "access withdrawn",
            )));
        }
        let limits = self.shared.live.limits();
        self.registration = Some(self.shared.hub.register(
            self.stream,
            self.session.user(),
            limits.subscriber_queue,
            limits.subscriber_queue_bytes,
        ));
        self.follow.registered();
        Ok(())
    }

    /// Sends one page of storage after `after`, its entries as stored.
    async fn read(&mut self, after: u64) -> Result<(), End> {
        let page = read_encoded_page(
            self.shared,
            self.stream,
            after,
            MAX_PAGE_ENTRIES,
            PAGE_BUDGET,
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "subscription read failed");
            Some(WireError::new(ErrorCode::INTERNAL, "storage unavailable"))
        })?;
        if let Some(expired) = page.expired
            && expired.through >= self.follow.owed()
        {
            let through = expired.through;
            self.send_event(SubscriptionEvent::Expired(*expired))
                .await?;
            self.follow.expired(through);
        }
        let range = page
            .entries
            .first()
            .zip(page.entries.last())
            .map(|(f, l)| (f.position(), l.position()));
        let more = page.more;
        if range.is_some() {
            self.send_entries(page.entries).await?;
        }
        self.follow.page(range, more).map_err(|broken| {
            tracing::error!(stream = %self.stream, %broken, "storage does not hold what a subscription is owed");
            Some(WireError::new(ErrorCode::INTERNAL, "storage unavailable"))
        })
    }

    async fn announce(&mut self, position: u64) -> Result<(), End> {
        self.send_event(SubscriptionEvent::Live { position })
            .await?;
        self.follow.announced();
        Ok(())
    }

    /// Offers live entries (those kept from a gap first, then a batch from
    /// the queue) and sends what is owed; on a gap, keeps the rest for
    /// after the catch-up the follower then asks for.
    async fn await_live(&mut self) -> Result<(), End> {
        if self.pending.is_empty() {
            match self.receive_batch().await? {
                Some(batch) => self.pending.extend(batch),
                None => {
                    self.follow.detached();
                    return Ok(());
                }
            }
        }
        let mut entries = Vec::with_capacity(self.pending.len());
        while let Some(live) = self.pending.pop_front() {
            match self.follow.live(live.position()) {
                Live::Send => entries.push(live),
                Live::Skip => {}
                Live::Gap => {
                    self.pending.push_front(live);
                    break;
                }
            }
        }
        let delivered = entries.len();
        self.send_entries(entries).await?;
        metrics::counter_by(metrics::LIVE_DELIVERIES, delivered);
        Ok(())
    }

    /// Up to [`LIVE_BATCH`] queued entries; `None` when the hub detached
    /// this subscriber.
    async fn receive_batch(&mut self) -> Result<Option<Vec<LiveEntry>>, End> {
        let Some(queue) = self.registration.as_mut() else {
            return Ok(None);
        };
        let first = tokio::select! {
            entry = queue.recv() => entry,
            () = self.shared.shutdown.cancelled() => return Err(Some(WireError::new(ErrorCode::SHUTTING_DOWN, "relay shutting down"))),
            _ = self.send.stopped() => return Err(None),
        };
        let Some(first) = first else { return Ok(None) };
        let mut batch = vec![first];
        while batch.len() < LIVE_BATCH {
            match queue.try_recv() {
                Some(entry) => batch.push(entry),
                None => break,
            }
        }
        Ok(Some(batch))
    }

    /// Sends live entries in as few frames as their limits allow, each
    /// frame a header and the entries' shared encodings.
    async fn send_entries(&mut self, entries: Vec<LiveEntry>) -> Result<(), End> {
        for chunk in chunk_by_size(entries) {
            let len = chunk.iter().map(|e| e.encoded().len()).sum();
            let Some(header) = live_entries_frame_header(chunk.len(), len) else {
                tracing::error!(
                    entries = chunk.len(),
                    bytes = len,
                    "live entries cut into a frame past its limits"
                );
                return Err(Some(WireError::new(ErrorCode::INTERNAL, "internal error")));
            };
            let mut parts = Vec::with_capacity(chunk.len() + 1);
            parts.push(Bytes::from(header));
            parts.extend(chunk.iter().map(|e| e.encoded().clone()));
            if !frame_io::write_parts(self.send, &mut parts).await {
                return Err(None);
            }
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

/// Splits entries into frames of at most [`MAX_PAGE_ENTRIES`] entries and
/// [`PAGE_BUDGET`] bytes (an entry alone always fits: it is far smaller).
fn chunk_by_size(entries: Vec<LiveEntry>) -> Vec<Vec<LiveEntry>> {
    let mut chunks = Vec::new();
    let mut current = Vec::new();
    let mut budget = PAGE_BUDGET;
    for entry in entries {
        let size = entry.encoded().len();
        if !current.is_empty() && (size > budget || current.len() == MAX_PAGE_ENTRIES) {
            chunks.push(std::mem::take(&mut current));
            budget = PAGE_BUDGET;
        }
        budget = budget.saturating_sub(size);
        current.push(entry);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use cairn_store::Committed;
    use cairn_testkit::User;
    use cairn_wire::Scope;

    use super::*;

    fn entries(count: usize, payload_len: usize) -> Vec<LiveEntry> {
        let user = User::new(1);
        let device = user.device(1);
        let payload = vec![7; payload_len];
        (1..=count as u64)
            .map(|position| {
                let envelope = device.envelope(position, Scope::Private, &payload);
                LiveEntry::new(&Committed {
                    stream: StreamId::new(user.id, Scope::Private),
                    position,
                    id: envelope.id(),
                    envelope,
                })
            })
            .collect()
    }

    fn positions(chunks: &[Vec<LiveEntry>]) -> Vec<u64> {
        chunks
            .iter()
            .flat_map(|chunk| chunk.iter().map(LiveEntry::position))
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
            let bytes: usize = chunk.iter().map(|e| e.encoded().len()).sum();
            assert!(chunk.len() == 1 || bytes <= PAGE_BUDGET);
            let header = live_entries_frame_header(chunk.len(), bytes);
            assert!(header.is_some(), "a chunk fits in a frame");
        }
        assert_eq!(positions(&chunks), (1..=40).collect::<Vec<_>>());
    }
}
