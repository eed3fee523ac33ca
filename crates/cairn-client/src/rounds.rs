//! The sync engine's decisions, without I/O: after each hello, which
//! streams to catch up by subscription, whether another hello is needed,
//! and when to acknowledge and stop. `sync.rs` is the driver that carries
//! out each [`Next`] step (the relay, the local store, decryption); the
//! tests below drive this core against a simulated relay that pages,
//! re-sends, interleaves new appends, cuts catch-ups short and carries
//! streams of users not added.

use std::collections::{BTreeMap, VecDeque};

use cairn_wire::{Cursor, StreamId, WireError};

/// What the driver must do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Say hello with the cursors and the outbox, settle and ingest the
    /// answer, then call [`Rounds::answered`].
    Hello,
    /// Catch `stream` up from `after` by subscription, then call
    /// [`Rounds::caught_up`].
    CatchUp {
        /// The stream.
        stream: StreamId,
        /// The last position its page carried.
        after: u64,
    },
    /// Tell the relay the cursors, then call [`Rounds::acknowledged`].
    Acknowledge,
    /// The sync is over.
    Done,
}

/// What one hello came to, once settled and ingested.
#[derive(Debug, Clone, Default)]
pub(crate) struct Answered {
    /// Outbox envelopes the relay acknowledged.
    pub pushed: u64,
    /// Envelopes queued again because the relay had lost them.
    pub requeued: u64,
    /// Entries that moved a cursor.
    pub accepted: u64,
    /// Entries of streams by users not added: they move no cursor, but
    /// the next hello asks past them.
    pub passed_over: u64,
    /// Those streams, with the last position their page carried.
    pub passed_over_streams: Vec<(StreamId, u64)>,
    /// Streams whose page said more, with the last position it carried,
    /// among those not ignored.
    pub behind: Vec<(StreamId, u64)>,
    /// Whether the relay said it holds more than it sent.
    pub more: bool,
    /// Envelopes still in the outbox.
    pub outbox_left: u64,
    /// The first refusal of an outbox envelope, if any.
    pub refusal: Option<WireError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Hello,
    CatchingUp { again: bool },
    Acknowledge,
    Done,
}

/// One sync's progress.
#[derive(Debug, Clone)]
pub(crate) struct Rounds {
    hellos_left: usize,
    phase: Phase,
    behind: VecDeque<(StreamId, u64)>,
    /// Streams of users not added, and how far this sync has seen them.
    passed_over: BTreeMap<StreamId, u64>,
}

impl Rounds {
    /// A sync of at most `max_hellos` hellos.
    pub fn new(max_hellos: usize) -> Self {
        Self {
            hellos_left: max_hellos,
            phase: Phase::Hello,
            behind: VecDeque::new(),
            passed_over: BTreeMap::new(),
        }
    }

    /// The cursors to say hello with: the `committed` ones, except that a
    /// stream this sync passed over is asked past what it has seen of it,
    /// so that ignored pages cannot fill every answer and starve the
    /// streams that are read. A stream that `reads` now (its owner was
    /// added during this sync) is asked from its committed cursor again:
    /// nothing it holds may be skipped.
    pub fn hello_cursors(
        &mut self,
        mut committed: Vec<Cursor>,
        reads: impl Fn(&StreamId) -> bool,
    ) -> Vec<Cursor> {
        self.passed_over.retain(|stream, _| !reads(stream));
        committed.retain(|c| !self.passed_over.contains_key(&c.stream));
        committed.extend(self.passed_over.iter().map(|(stream, position)| Cursor {
            stream: *stream,
            position: *position,
        }));
        committed
    }

    /// The next step.
    pub fn poll(&self) -> Next {
        match self.phase {
            Phase::Hello => Next::Hello,
            Phase::CatchingUp { .. } => match self.behind.front() {
                Some(&(stream, after)) => Next::CatchUp { stream, after },
                None => Next::Acknowledge,
            },
            Phase::Acknowledge => Next::Acknowledge,
            Phase::Done => Next::Done,
        }
    }

    /// A hello was answered. A refusal of an outbox envelope ends the
    /// sync (after what the answer carried was kept). Another hello
    /// follows the catch-ups unless the round moved nothing at all, or the
    /// relay has nothing more and the outbox is empty.
    pub fn answered(&mut self, answered: Answered) -> Result<(), WireError> {
        if let Some(refusal) = answered.refusal {
            self.phase = Phase::Done;
            return Err(refusal);
        }
        self.hellos_left = self.hellos_left.saturating_sub(1);
        self.passed_over.extend(answered.passed_over_streams);
        let idle = answered.pushed == 0
            && answered.accepted == 0
            && answered.passed_over == 0
            && answered.requeued == 0;
        let finished = idle || (!answered.more && answered.outbox_left == 0);
        let again = !finished && self.hellos_left > 0;
        self.behind = answered.behind.into();
        self.phase = Phase::CatchingUp { again };
        self.after_catch_ups();
        Ok(())
    }

    /// The first stream behind was caught up (or its subscription ended
    /// early: the next hello carries on from the committed cursors).
    pub fn caught_up(&mut self) {
        self.behind.pop_front();
        self.after_catch_ups();
    }

    /// The cursors were acknowledged.
    pub fn acknowledged(&mut self) {
        self.phase = Phase::Done;
    }

    fn after_catch_ups(&mut self) {
        if let Phase::CatchingUp { again } = self.phase
            && self.behind.is_empty()
        {
            self.phase = match again {
                true => Phase::Hello,
                false => Phase::Acknowledge,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

    use std::collections::BTreeMap;

    use cairn_wire::{Scope, UserId};
    use proptest::prelude::*;

    use super::*;

    /// A stream of the simulated relay: its head, and whether the reader
    /// added its owner (if not, its pages are ignored).
    #[derive(Debug, Clone)]
    struct SimStream {
        head: u64,
        added: bool,
    }

    /// A relay that pages (`page` entries a page, `pages` pages a hello),
    /// takes up to `batch` outbox envelopes a hello, and cuts catch-ups
    /// short when told; and a client's committed state.
    #[derive(Debug)]
    struct Pair {
        streams: Vec<SimStream>,
        page: u64,
        pages: usize,
        batch: u64,
        cut_catch_ups: bool,
        outbox: u64,
        cursors: BTreeMap<usize, u64>,
        received: BTreeMap<usize, Vec<u64>>,
        hellos: usize,
    }

    fn stream_id(index: usize) -> StreamId {
        let byte = u8::try_from(index).unwrap();
        StreamId::new(UserId::from_bytes([byte; 32]), Scope::Friends)
    }

    fn index_of(stream: StreamId) -> usize {
        usize::from(stream.owner.as_bytes()[0])
    }

    impl Pair {
        fn cursor(&self, index: usize) -> u64 {
            self.cursors.get(&index).copied().unwrap_or(0)
        }

        /// Takes entries `from..=to` of a stream, as the client's ingest
        /// does: an added stream's entries move its cursor.
        fn take(&mut self, index: usize, from: u64, to: u64) -> u64 {
            if !self.streams[index].added || to < from {
                return 0;
            }
            let received = self.received.entry(index).or_default();
            for position in from..=to {
                if position > received.len() as u64 {
                    received.push(position);
                }
            }
            self.cursors.insert(index, to);
            to - from + 1
        }

        /// The committed cursors, as the local store lists them.
        fn committed(&self) -> Vec<Cursor> {
            self.cursors
                .iter()
                .map(|(index, position)| Cursor {
                    stream: stream_id(*index),
                    position: *position,
                })
                .collect()
        }

        fn hello(&mut self, cursors: &[Cursor]) -> Answered {
            self.hellos += 1;
            let pushed = self.outbox.min(self.batch);
            self.outbox -= pushed;
            let mut answered = Answered {
                pushed,
                outbox_left: self.outbox,
                ..Answered::default()
            };
            let mut sent = 0;
            for index in 0..self.streams.len() {
                let cursor = cursors
                    .iter()
                    .find(|c| index_of(c.stream) == index)
                    .map_or(0, |c| c.position);
                let head = self.streams[index].head;
                if head <= cursor {
                    continue;
                }
                if sent == self.pages {
                    answered.more = true;
                    break;
                }
                sent += 1;
                let last = head.min(cursor + self.page);
                let page_more = last < head;
                answered.more |= page_more;
                if !self.streams[index].added {
                    answered.passed_over += last - cursor;
                    answered.passed_over_streams.push((stream_id(index), last));
                    continue;
                }
                answered.accepted += self.take(index, cursor + 1, last);
                if page_more {
                    answered.behind.push((stream_id(index), last));
                }
            }
            answered
        }

        fn catch_up(&mut self, stream: StreamId, after: u64) {
            let index = index_of(stream);
            let head = self.streams[index].head;
            let to = match self.cut_catch_ups {
                true => head.min(after + self.page),
                false => head,
            };
            // A subscription starts at the page's last position, which the
            // cursor already covers.
            let from = self.cursor(index).max(after) + 1;
            self.take(index, from, to);
        }

        /// One sync, interrupted after `cut` steps if given (the next sync
        /// starts over from the committed state). Whether it finished.
        fn sync(&mut self, cut: Option<usize>, appends: &mut dyn FnMut(&mut Self)) -> bool {
            let mut rounds = Rounds::new(1000);
            for step in 0.. {
                if cut == Some(step) {
                    return false;
                }
                assert!(step < 10_000, "the sync never ended");
                appends(self);
                match rounds.poll() {
                    Next::Hello => {
                        let streams = self.streams.clone();
                        let cursors = rounds.hello_cursors(self.committed(), |stream| {
                            streams[index_of(*stream)].added
                        });
                        let answered = self.hello(&cursors);
                        rounds.answered(answered).unwrap();
                    }
                    Next::CatchUp { stream, after } => {
                        self.catch_up(stream, after);
                        rounds.caught_up();
                    }
                    Next::Acknowledge => rounds.acknowledged(),
                    Next::Done => return true,
                }
            }
            unreachable!()
        }
    }

    fn streams() -> impl Strategy<Value = Vec<SimStream>> {
        proptest::collection::vec(
            (0u64..40, proptest::bool::weighted(0.8))
                .prop_map(|(head, added)| SimStream { head, added }),
            1..6,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever the paging, interruptions, appends during a sync,
        /// short catch-ups and ignored streams: every sync ends, the
        /// client's positions of each added stream are 1, 2, 3... without
        /// a gap or a repeat, a sync with no appends during it leaves every
        /// added stream caught up and the outbox empty, and ignored streams
        /// are never taken.
        #[test]
        fn syncs_end_and_leave_every_added_stream_caught_up(
            streams in streams(),
            page in 1u64..8,
            pages in 1usize..4,
            batch in 1u64..5,
            outbox in 0u64..12,
            cut_catch_ups in any::<bool>(),
            cuts in proptest::collection::vec(0usize..12, 0..4),
            appends in proptest::collection::vec((0usize..6, 1u64..4), 0..6),
            adds in proptest::collection::vec(0usize..6, 0..3),
        ) {
            let mut pair = Pair {
                streams,
                page,
                pages,
                batch,
                cut_catch_ups,
                outbox,
                cursors: BTreeMap::new(),
                received: BTreeMap::new(),
                hellos: 0,
            };
            let (mut pending, mut adding) = (appends, adds);
            // During a sync: new appends, and owners becoming added (their
            // friend record arriving in the user's own stream).
            let mut during = |pair: &mut Pair| {
                if let Some((index, count)) = pending.pop() {
                    let index = index % pair.streams.len();
                    pair.streams[index].head += count;
                }
                if let Some(index) = adding.pop() {
                    let index = index % pair.streams.len();
                    pair.streams[index].added = true;
                }
            };
            for cut in cuts {
                pair.sync(Some(cut), &mut during);
            }
            let finished = pair.sync(None, &mut |_| ());
            prop_assert!(finished);
            for (index, stream) in pair.streams.iter().enumerate() {
                let received = pair.received.get(&index).cloned().unwrap_or_default();
                match stream.added {
                    true => {
                        let all: Vec<u64> = (1..=stream.head).collect();
                        prop_assert_eq!(received, all, "stream {}", index);
                    }
                    false => prop_assert!(received.is_empty()),
                }
            }
            prop_assert_eq!(pair.outbox, 0);
        }
    }

    #[test]
    fn a_refused_outbox_envelope_ends_the_sync_without_acknowledging() {
        let mut rounds = Rounds::new(10);
        let refusal = WireError::new(cairn_wire::ErrorCode::SEQ_GAP, "gap");
        let answered = Answered {
            refusal: Some(refusal.clone()),
            ..Answered::default()
        };
        assert_eq!(rounds.answered(answered), Err(refusal));
        assert_eq!(rounds.poll(), Next::Done);
    }

    #[test]
    fn a_round_that_moved_nothing_ends_the_sync() {
        let mut rounds = Rounds::new(10);
        let answered = Answered {
            more: true,
            ..Answered::default()
        };
        rounds.answered(answered).unwrap();
        assert_eq!(rounds.poll(), Next::Acknowledge);
    }
}
