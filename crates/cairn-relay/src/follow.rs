//! The subscription follower's decisions, without I/O: which position the
//! client is owed next, when to (re)register with the hub, when to read
//! storage, when to announce that the backlog is over, and what to do with
//! each live entry. `handlers/subscribe.rs` is the thin async driver that
//! carries out each [`Next`] step; the tests below drive this core against
//! a simulated hub and log that drops, duplicates and reorders deliveries.
//!
//! The order that makes a subscription gap-free: register with the hub
//! *before* reading storage, so that every entry committed after the read
//! is also queued; skip queued entries below the owed position (already
//! sent from storage); and on one above it, read storage first.

/// What the driver must do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Register with the hub, then call [`Follow::registered`].
    Register,
    /// Read the stream after `after`, send what it holds, then call
    /// [`Follow::page`].
    Read {
        /// The last position already sent.
        after: u64,
    },
    /// Tell the client the backlog is over at `position`, then call
    /// [`Follow::announced`].
    Announce {
        /// The last position sent.
        position: u64,
    },
    /// Wait for live entries and pass each to [`Follow::live`]; call
    /// [`Follow::detached`] when the hub lets go.
    AwaitLive,
}

/// What to do with one live entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Live {
    /// Send it: it is the one owed.
    Send,
    /// Already sent (from storage, or a duplicate): drop it.
    Skip,
    /// It is ahead of what is owed: keep it, send what is collected, and
    /// follow [`Follow::poll`] (a read of storage) before offering it again.
    Gap,
}

/// Storage does not hold what the subscription is owed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    /// A page did not start at the owed position.
    #[error("a page starts at {got}, but {owed} is owed")]
    PageGap {
        /// The position owed.
        owed: u64,
        /// The first position of the page.
        got: u64,
    },
    /// Storage ended before a position the hub has committed.
    #[error("storage ends at {stored}, but {committed} was committed")]
    Missing {
        /// The last position storage holds.
        stored: u64,
        /// The committed position it should reach.
        committed: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Unregistered,
    CatchingUp,
    Announcing,
    Live,
}

/// One subscription's state.
#[derive(Debug, Clone)]
pub struct Follow {
    /// The next position owed to the client.
    next: u64,
    phase: Phase,
    announced: bool,
    /// A live entry ahead of what was owed, waiting for a catch-up.
    ahead: Option<u64>,
}

impl Follow {
    /// A subscription that has sent everything up to `after`.
    pub fn new(after: u64) -> Self {
        Self {
            next: after.saturating_add(1),
            phase: Phase::Unregistered,
            announced: false,
            ahead: None,
        }
    }

    /// The next position owed.
    pub fn owed(&self) -> u64 {
        self.next
    }

    /// The next step.
    pub fn poll(&self) -> Next {
        match self.phase {
            Phase::Unregistered => Next::Register,
            Phase::CatchingUp => Next::Read {
                after: self.next - 1,
            },
            Phase::Announcing => Next::Announce {
                position: self.next - 1,
            },
            Phase::Live => Next::AwaitLive,
        }
    }

    /// The hub has the subscription registered.
    pub fn registered(&mut self) {
        if self.phase == Phase::Unregistered {
            self.phase = Phase::CatchingUp;
        }
    }

    /// Storage no longer holds positions up to `through` (expired or
    /// removed), and the client was told: what is owed next follows them.
    pub fn expired(&mut self, through: u64) {
        self.next = self.next.max(through.saturating_add(1));
    }

    /// A page was read and sent: its first and last positions (`None` if
    /// empty), and whether storage holds more.
    pub fn page(&mut self, range: Option<(u64, u64)>, more: bool) -> Result<(), Broken> {
        if let Some((first, last)) = range {
            if first != self.next {
                return Err(Broken::PageGap {
                    owed: self.next,
                    got: first,
                });
            }
            self.next = last + 1;
        }
        if range.is_some() && more {
            return Ok(());
        }
        if let Some(committed) = self.ahead.take()
            && self.next < committed
        {
            return Err(Broken::Missing {
                stored: self.next - 1,
                committed,
            });
        }
        self.phase = match self.announced {
            true => Phase::Live,
            false => Phase::Announcing,
        };
        Ok(())
    }

    /// The client was told the backlog is over.
    pub fn announced(&mut self) {
        self.announced = true;
        if self.phase == Phase::Announcing {
            self.phase = Phase::Live;
        }
    }

    /// A live entry at `position` arrived.
    pub fn live(&mut self, position: u64) -> Live {
        if position < self.next {
            return Live::Skip;
        }
        if position > self.next {
            self.ahead = Some(position);
            self.phase = Phase::CatchingUp;
            return Live::Gap;
        }
        self.next = position + 1;
        Live::Send
    }

    /// The hub let go (queue full, feed lagged, access to re-check):
    /// register again and catch up from storage.
    pub fn detached(&mut self) {
        self.phase = Phase::Unregistered;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

    use std::collections::VecDeque;

    use proptest::prelude::*;

    use super::*;

    /// What the simulated relay does next.
    #[derive(Debug, Clone)]
    enum Event {
        /// An append commits the next position.
        Commit,
        /// The driver takes one step.
        Step,
        /// The hub delivers the newest queued entry twice.
        Duplicate,
        /// The hub swaps its two oldest queued entries.
        Swap,
        /// The hub detaches the subscriber (its queue is gone).
        Detach,
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            4 => Just(Event::Commit),
            6 => Just(Event::Step),
            1 => Just(Event::Duplicate),
            1 => Just(Event::Swap),
            1 => Just(Event::Detach),
        ]
    }

    /// A stream's log, a hub queue of capacity `capacity`, the client's
    /// received positions, and the driver: what `handlers/subscribe.rs`
    /// does, with storage pages of at most `page` entries.
    struct Pair {
        committed: u64,
        queue: Option<VecDeque<u64>>,
        capacity: usize,
        page: u64,
        follow: Follow,
        pending: VecDeque<u64>,
        received: Vec<u64>,
        live_marker: Option<u64>,
    }

    impl Pair {
        fn new(after: u64, committed: u64, capacity: usize, page: u64) -> Self {
            Self {
                committed,
                queue: None,
                capacity,
                page,
                follow: Follow::new(after),
                pending: VecDeque::new(),
                received: (1..=after).collect(),
                live_marker: None,
            }
        }

        fn commit(&mut self) {
            self.committed += 1;
            let position = self.committed;
            let full = match &mut self.queue {
                Some(queue) => {
                    queue.push_back(position);
                    queue.len() > self.capacity
                }
                None => false,
            };
            if full {
                self.queue = None;
            }
        }

        fn send(&mut self, position: u64) {
            self.received.push(position);
        }

        fn step(&mut self) {
            match self.follow.poll() {
                Next::Register => {
                    self.queue = Some(VecDeque::new());
                    self.follow.registered();
                }
                Next::Read { after } => {
                    let last = self.committed.min(after + self.page);
                    let range = (after < last).then_some((after + 1, last));
                    if let Some((first, last)) = range {
                        (first..=last).for_each(|p| self.send(p));
                    }
                    self.follow.page(range, last < self.committed).unwrap();
                }
                Next::Announce { position } => {
                    self.live_marker = Some(position);
                    self.follow.announced();
                }
                Next::AwaitLive => {
                    let next = match self.pending.pop_front() {
                        Some(position) => Some(position),
                        None => match &mut self.queue {
                            Some(queue) => queue.pop_front(),
                            None => {
                                self.follow.detached();
                                return;
                            }
                        },
                    };
                    let Some(position) = next else { return };
                    match self.follow.live(position) {
                        Live::Send => self.send(position),
                        Live::Skip => {}
                        Live::Gap => self.pending.push_front(position),
                    }
                }
            }
        }

        fn apply(&mut self, event: &Event) {
            match event {
                Event::Commit => self.commit(),
                Event::Step => self.step(),
                Event::Duplicate => {
                    if let Some(queue) = &mut self.queue
                        && let Some(last) = queue.back().copied()
                    {
                        queue.push_back(last);
                    }
                }
                Event::Swap => {
                    if let Some(queue) = &mut self.queue
                        && queue.len() >= 2
                    {
                        queue.swap(0, 1);
                    }
                }
                Event::Detach => self.queue = None,
            }
        }

        /// Steps until the driver waits on an empty queue.
        fn settle(&mut self) {
            for _ in 0..100_000 {
                let waiting = self.follow.poll() == Next::AwaitLive
                    && self.pending.is_empty()
                    && self.queue.as_ref().is_some_and(VecDeque::is_empty);
                if waiting {
                    return;
                }
                self.step();
            }
            panic!("the follower never settled");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever the interleaving of commits, steps, duplicated and
        /// reordered deliveries and detachments, the client receives every
        /// position after its cursor exactly once, in order, and the live
        /// marker names a position it had received.
        #[test]
        fn the_client_gets_every_position_once_in_order(
            after in 0u64..5,
            backlog in 0u64..20,
            capacity in 1usize..6,
            page in 1u64..8,
            events in proptest::collection::vec(event(), 0..300),
        ) {
            let mut pair = Pair::new(after, after + backlog, capacity, page);
            for event in &events {
                pair.apply(event);
                let expected: Vec<u64> = (1..=pair.received.len() as u64).collect();
                prop_assert_eq!(&pair.received, &expected);
            }
            pair.settle();
            let all: Vec<u64> = (1..=pair.committed).collect();
            prop_assert_eq!(&pair.received, &all);
            let marker = pair.live_marker.unwrap();
            prop_assert!(marker >= after + backlog && marker <= pair.committed);
        }
    }

    #[test]
    fn a_page_that_skips_the_owed_position_is_broken_storage() {
        let mut follow = Follow::new(3);
        follow.registered();
        assert_eq!(follow.poll(), Next::Read { after: 3 });
        assert_eq!(
            follow.page(Some((5, 6)), false),
            Err(Broken::PageGap { owed: 4, got: 5 })
        );
    }

    #[test]
    fn a_page_past_an_expired_floor_follows_once_the_client_was_told() {
        let mut follow = Follow::new(3);
        follow.registered();
        follow.expired(6);
        assert_eq!(follow.owed(), 7);
        follow.page(Some((7, 8)), false).unwrap();
        // A floor below what was sent changes nothing.
        follow.expired(2);
        assert_eq!(follow.owed(), 9);
    }

    #[test]
    fn a_committed_entry_storage_does_not_hold_is_broken_storage() {
        let mut follow = Follow::new(0);
        follow.registered();
        follow.page(None, false).unwrap();
        follow.announced();
        assert_eq!(follow.live(3), Live::Gap);
        assert_eq!(follow.poll(), Next::Read { after: 0 });
        assert_eq!(
            follow.page(Some((1, 1)), false),
            Err(Broken::Missing {
                stored: 1,
                committed: 3
            })
        );
    }
}
