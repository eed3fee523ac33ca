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

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use cairn_store::Committed;
use cairn_wire::{Entry, StreamId, UserId};
use tokio::sync::{broadcast, mpsc};

use crate::metrics;

/// One committed entry, shared between all subscribers it goes to.
#[derive(Debug, Clone)]
pub struct LiveEntry {
    batch: Arc<[Committed]>,
    index: usize,
}

impl LiveEntry {
    /// Its position in its stream.
    pub fn position(&self) -> u64 {
        self.committed().map_or(0, |c| c.position)
    }

    /// The wire entry (clones the envelope).
    pub fn to_entry(&self) -> Option<Entry> {
        self.committed().map(|c| Entry {
            position: c.position,
            envelope: c.envelope.clone(),
        })
    }

    fn committed(&self) -> Option<&Committed> {
        self.batch.get(self.index)
    }
}

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
}

/// A subscriber's end: live entries of one stream, until detached. Dropping
/// it unregisters the subscriber.
#[derive(Debug)]
pub struct Registration {
    /// Entries in position order; closes when the hub detaches the
    /// subscriber (its queue overflowed, the feed lagged, or its access was
    /// withdrawn).
    pub queue: mpsc::Receiver<LiveEntry>,
    hub: Arc<Hub>,
    stream: StreamId,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.remove(self.stream, self.id);
    }
}

impl Hub {
    /// Registers `reader` for live entries of `stream`, with a queue of
    /// `capacity` entries.
    pub fn register(
        self: &Arc<Self>,
        stream: StreamId,
        reader: UserId,
        capacity: usize,
    ) -> Registration {
        let (queue, receiver) = mpsc::channel(capacity.max(1));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock()
            .entry(stream)
            .or_default()
            .push(Slot { id, reader, queue });
        Registration {
            queue: receiver,
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
    pub async fn run(&self, mut feed: broadcast::Receiver<Arc<[Committed]>>) {
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

    fn dispatch(&self, batch: &Arc<[Committed]>) {
        let mut streams = self.lock();
        for (index, committed) in batch.iter().enumerate() {
            let Some(slots) = streams.get_mut(&committed.stream) else {
                continue;
            };
            slots.retain(|slot| {
                offer(
                    slot,
                    LiveEntry {
                        batch: batch.clone(),
                        index,
                    },
                )
            });
            if slots.is_empty() {
                streams.remove(&committed.stream);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<StreamId, Vec<Slot>>> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Offers an entry; false (detach) when the queue is full or closed.
fn offer(slot: &Slot, entry: LiveEntry) -> bool {
    match slot.queue.try_send(entry) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            tracing::debug!(
                subscriber = slot.id,
                "subscriber queue full; switching it to storage"
            );
            metrics::counter(metrics::SUBSCRIBER_CATCH_UPS);
            false
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}
