//! Live fan-out: routes each durable commit to the subscribers of its
//! stream.
//!
//! The store publishes every commit once it is durable, in position order
//! per stream (see `cairn_store::Committed`). One hub task reads that feed
//! and offers each entry to the stream's subscribers with `try_send` into
//! their bounded queues. A subscriber whose queue is full, or a feed that
//! lagged, is *detached*: its queue closes, and the subscription catches up
//! from storage, re-registers, and goes on. So one slow reader never slows
//! the hub or other readers, memory stays bounded by the queue sizes, and
//! nothing is lost, because storage is the source of truth.
//!
//! A queue is bounded twice: in entries and in bytes (each entry counted
//! as its envelope's size plus a fixed overhead). A queued entry holds its
//! own envelope only, never the rest of the commit it came in, so a
//! subscriber that stops reading keeps at most its byte budget alive.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use cairn_store::{CommitBatch, Committed};
use cairn_wire::frames::encode_entry;
use cairn_wire::{StreamId, UserId};
use tokio::sync::{broadcast, mpsc};

use crate::metrics;

/// One committed entry, shared between all subscribers it goes to, with
/// its wire encoding, made once: each subscriber's frame refers to these
/// bytes instead of encoding (and holding) a copy of its own, so that what
/// a thousand subscribers still have to be sent is held once.
#[derive(Debug, Clone)]
pub struct LiveEntry {
    position: u64,
    encoded: Bytes,
}

impl LiveEntry {
    /// The entry of `committed`, encoded.
    pub fn new(committed: &Committed) -> Self {
        Self {
            position: committed.position,
            encoded: Bytes::from(encode_entry(committed.position, &committed.envelope)),
        }
    }

    /// An entry already encoded (read from storage as stored).
    pub fn from_encoding(position: u64, encoded: Bytes) -> Self {
        Self { position, encoded }
    }

    /// Its position in its stream.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Its wire encoding (`cairn_wire::frames::encode_entry`).
    pub fn encoded(&self) -> &Bytes {
        &self.encoded
    }

    /// What it counts against a subscriber's byte budget.
    fn cost(&self) -> usize {
        self.encoded.len() + ENTRY_COST_OVERHEAD
    }
}

/// Bytes counted per queued entry besides its encoding: the bookkeeping
/// around it.
const ENTRY_COST_OVERHEAD: usize = 256;

/// The registry of live subscribers.
#[derive(Debug, Default)]
pub struct Hub {
    streams: Mutex<HashMap<StreamId, Vec<Slot>>>,
    next_id: AtomicU64,
}

#[derive(Debug)]
struct Slot {
    id: u64,
    reader: UserId,
    queue: mpsc::Sender<LiveEntry>,
    bytes: Arc<QueuedBytes>,
}

/// The bytes a subscriber's queue holds, against its budget.
#[derive(Debug)]
struct QueuedBytes {
    held: AtomicUsize,
    budget: usize,
}

impl QueuedBytes {
    /// Counts `cost` more bytes unless that would pass the budget.
    fn take(&self, cost: usize) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                let total = held.saturating_add(cost);
                (total <= self.budget).then_some(total)
            })
            .is_ok()
    }

    fn give_back(&self, cost: usize) {
        self.held.fetch_sub(cost, Ordering::AcqRel);
    }
}

/// A subscriber's end: live entries of one stream, until detached. Dropping
/// it unregisters the subscriber.
#[derive(Debug)]
pub struct Registration {
    /// Entries in position order; closes when the hub detaches the
    /// subscriber (its queue overflowed, the feed lagged, or its access was
    /// withdrawn).
    queue: mpsc::Receiver<LiveEntry>,
    bytes: Arc<QueuedBytes>,
    hub: Arc<Hub>,
    stream: StreamId,
    id: u64,
}

impl Registration {
    /// The next live entry; `None` once the hub has detached this
    /// subscriber and its queue is empty.
    pub async fn recv(&mut self) -> Option<LiveEntry> {
        let entry = self.queue.recv().await?;
        self.bytes.give_back(entry.cost());
        Some(entry)
    }

    /// The next live entry if one is queued now.
    pub fn try_recv(&mut self) -> Option<LiveEntry> {
        let entry = self.queue.try_recv().ok()?;
        self.bytes.give_back(entry.cost());
        Some(entry)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.remove(self.stream, self.id);
    }
}

impl Hub {
    /// Registers `reader` for live entries of `stream`, with a queue of
    /// at most `capacity` entries and `byte_budget` bytes.
    pub fn register(
        self: &Arc<Self>,
        stream: StreamId,
        reader: UserId,
        capacity: usize,
        byte_budget: usize,
    ) -> Registration {
        let (queue, receiver) = mpsc::channel(capacity.max(1));
        let bytes = Arc::new(QueuedBytes {
            held: AtomicUsize::new(0),
            budget: byte_budget,
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().entry(stream).or_default().push(Slot {
            id,
            reader,
            queue,
            bytes: bytes.clone(),
        });
        Registration {
            queue: receiver,
            bytes,
            hub: self.clone(),
            stream,
            id,
        }
    }

    /// Number of registered subscribers, for tests and metrics.
    pub fn subscriber_count(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    fn remove(&self, stream: StreamId, id: u64) {
        let mut streams = self.lock();
        if let Some(slots) = streams.get_mut(&stream) {
            slots.retain(|slot| slot.id != id);
            if slots.is_empty() {
                streams.remove(&stream);
            }
        }
    }

    /// Detaches every subscriber `reader` holds on `stream`, e.g. when the
    /// stream's owner revokes the reader's friend grant.
    pub fn detach_reader(&self, stream: StreamId, reader: UserId) {
        if let Some(slots) = self.lock().get_mut(&stream) {
            slots.retain(|slot| slot.reader != reader);
        }
    }

    /// Detaches everyone; each catches up from storage.
    pub fn detach_all(&self) {
        self.lock().clear();
    }

    /// Reads the store's commit feed until it closes.
    pub async fn run(&self, mut feed: broadcast::Receiver<CommitBatch>) {
        loop {
            match feed.recv().await {
                Ok(batch) => self.dispatch(&batch),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "fan-out fell behind the commit feed; subscribers catch up from storage"
                    );
                    self.detach_all();
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    fn dispatch(&self, batch: &CommitBatch) {
        let mut streams = self.lock();
        for committed in batch.iter() {
            let Some(slots) = streams.get_mut(&committed.stream) else {
                continue;
            };
            let entry = LiveEntry::new(committed);
            slots.retain(|slot| offer(slot, entry.clone()));
            if slots.is_empty() {
                streams.remove(&committed.stream);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<StreamId, Vec<Slot>>> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Offers an entry; false (detach) when the queue is full, in entries or
/// in bytes, or closed.
fn offer(slot: &Slot, entry: LiveEntry) -> bool {
    let cost = entry.cost();
    if !slot.bytes.take(cost) {
        return detach_full(slot);
    }
    match slot.queue.try_send(entry) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            slot.bytes.give_back(cost);
            detach_full(slot)
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

fn detach_full(slot: &Slot) -> bool {
    tracing::debug!(
        subscriber = slot.id,
        "subscriber queue full; switching it to storage"
    );
    metrics::counter(metrics::SUBSCRIBER_CATCH_UPS);
    false
}
