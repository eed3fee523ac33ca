//! Live updates: catch up with a sync, then subscribe to every stream this
//! device follows (its own private, friends and direct streams, each
//! friend's friends stream and direct stream to this user) and report each
//! new note operation, post and direct message as it arrives. A lost connection is retried with
//! bounded backoff; the local cursors make the resumed subscriptions start
//! where the last ones stopped, and what the catch-up sync after a
//! reconnection brings in is reported too, so that every item that appears
//! while watching is reported once: none lost, none twice.

use std::collections::HashSet;
use std::time::Duration;

use cairn_wire::{
    BoundedVec, EnvelopeId, ErrorCode, Scope, StreamId, StreamPage, SubscribeRequest,
    SubscriptionEvent, UserId,
};
use tokio::sync::mpsc;

use crate::client::Client;
use crate::connection::{Connection, RequestError, Subscription};
use crate::direct::Message;
use crate::error::Error;
use crate::local::Batch;
use crate::open::Item;
use crate::record::{NoteOp, RecordBody};
use crate::state::{FeedItem, State};
use crate::sync::NoProgress;

/// First pause before reconnecting; it doubles with each failed attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What happened to a note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteChange {
    /// It was added.
    Add,
    /// Its text was replaced.
    Edit,
    /// It was removed.
    Remove,
}

/// Something new, for `cairn watch` to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// Caught up and subscribed: everything from now on is reported.
    Live,
    /// The relay cannot be reached; the next attempt is after this long.
    Reconnecting {
        /// The pause before the next attempt.
        after: Duration,
    },
    /// A post in the feed.
    Post(FeedItem),
    /// A note added, edited or removed.
    Note {
        /// What happened to it.
        change: NoteChange,
        /// The note's id.
        id: EnvelopeId,
        /// Its text (none for a removal).
        text: Option<String>,
        /// When the operation was made (ms since the Unix epoch).
        created: u64,
    },
    /// A direct message sent or received.
    Message(Message),
}

type Event = (StreamId, Result<Option<SubscriptionEvent>, RequestError>);

impl Client {
    /// Reports to `on_event` every item not shown to the user yet (and,
    /// with `since`, every one created since then), then new items as
    /// they arrive, until an error that retrying cannot fix (revoked,
    /// forbidden at auth...). Runs until dropped otherwise.
    pub async fn watch(
        &mut self,
        since: Option<u64>,
        on_event: &mut dyn FnMut(WatchEvent),
    ) -> Result<(), Error> {
        let mut reported = None;
        let mut delay = FIRST_BACKOFF;
        loop {
            match self.watch_once(&mut reported, since, on_event).await {
                Err(e) if !e.is_unreachable() => return Err(e),
                Err(e) => {
                    tracing::debug!(error = %e, "watch connection lost; retrying");
                    on_event(WatchEvent::Reconnecting { after: delay });
                }
                Ok(()) => delay = FIRST_BACKOFF,
            }
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2).min(MAX_BACKOFF);
        }
    }

    /// One connection's worth of watching. `reported` holds the ids of
    /// every item held or reported since watching began (`None` until the
    /// first catch-up sets that baseline).
    async fn watch_once(
        &mut self,
        reported: &mut Option<HashSet<EnvelopeId>>,
        since: Option<u64>,
        on_event: &mut dyn FnMut(WatchEvent),
    ) -> Result<(), Error> {
        let connection = self.connect().await?;
        self.sync_reporting_new(&connection, reported, since, on_event)
            .await?;
        let reported = reported.get_or_insert_with(HashSet::new);
        let (tx, mut rx) = mpsc::channel::<Event>(64);
        for stream in self.watched_streams()? {
            let after = self.cursor(stream)?;
            let subscription = connection
                .subscribe(SubscribeRequest { stream, after })
                .await?;
            tokio::spawn(forward(stream, subscription, tx.clone()));
        }
        drop(tx);
        on_event(WatchEvent::Live);
        let mut keys = self.key_state()?;
        let mut known = self.local.store().known_ids()?;
        self.local.store().release();
        while let Some((stream, event)) = rx.recv().await {
            let (entries, expired) = match event? {
                Some(SubscriptionEvent::Entries(entries)) => (entries, None),
                Some(SubscriptionEvent::Expired(expired)) => {
                    (BoundedVec::default(), Some(Box::new(expired)))
                }
                Some(SubscriptionEvent::End(e)) if e.code == ErrorCode::FORBIDDEN => continue,
                Some(SubscriptionEvent::End(e))
                    if matches!(e.code, ErrorCode::DEVICE_REVOKED | ErrorCode::DEVICE_BANNED) =>
                {
                    return Err(Error::Refused(e));
                }
                Some(SubscriptionEvent::End(_)) => break,
                Some(SubscriptionEvent::Live { .. }) | None => continue,
            };
            let page = StreamPage {
                stream,
                entries,
                more: false,
                expired,
            };
            let mut batch = Batch::default();
            let ingested = self.ingest(&mut keys, &mut known, vec![page], &mut batch)?;
            self.local.store().commit(batch)?;
            if !ingested.items.is_empty() {
                let state = self.state()?;
                let ids: Vec<EnvelopeId> = ingested.items.iter().map(|item| item.id).collect();
                report(&state, ingested.items, reported, on_event);
                self.mark_printed(&ids)?;
            }
            self.local.store().release();
        }
        Ok(())
    }

    /// Syncs before subscribing. The first time, what was not shown to
    /// the user yet (or was created since `since`) is reported; after a
    /// reconnection, the items the sync brought in (posts made while the
    /// connection was down) are, since no subscription carried them.
    async fn sync_reporting_new(
        &mut self,
        connection: &Connection,
        reported: &mut Option<HashSet<EnvelopeId>>,
        since: Option<u64>,
        on_event: &mut dyn FnMut(WatchEvent),
    ) -> Result<(), Error> {
        self.follow_relay_log(connection).await?;
        self.sync_on(connection, &mut NoProgress).await?;
        let items = self.items()?;
        let new: Vec<Item> = match reported.as_ref() {
            None => self.not_shown(&items, since)?,
            Some(seen) => items
                .iter()
                .filter(|item| !seen.contains(&item.id))
                .cloned()
                .collect(),
        };
        let new_ids: HashSet<EnvelopeId> = new.iter().map(|item| item.id).collect();
        let seen = reported.get_or_insert_with(|| {
            items
                .iter()
                .map(|item| item.id)
                .filter(|id| !new_ids.contains(id))
                .collect()
        });
        if !new.is_empty() {
            let state = State::fold(self.user()?, items);
            report(&state, new, seen, on_event);
            self.mark_printed(&new_ids.into_iter().collect::<Vec<_>>())?;
        }
        Ok(())
    }

    /// The streams to follow: the user's own (the direct streams to each
    /// friend carry what this user's other devices send them), and each
    /// friend's friends stream and direct stream to this user.
    fn watched_streams(&self) -> Result<Vec<StreamId>, Error> {
        let me = self.user()?;
        let friends: Vec<UserId> = self.state()?.friends.values().copied().collect();
        let mut streams = vec![
            StreamId::new(me, Scope::Private),
            StreamId::new(me, Scope::Friends),
            StreamId::new(me, Scope::Direct(me)),
        ];
        for friend in friends {
            streams.push(StreamId::new(friend, Scope::Friends));
            streams.push(StreamId::new(friend, Scope::Direct(me)));
            streams.push(StreamId::new(me, Scope::Direct(friend)));
        }
        Ok(streams)
    }
}

/// Relays a subscription's events to the watch loop until it ends.
async fn forward(stream: StreamId, mut subscription: Subscription, tx: mpsc::Sender<Event>) {
    loop {
        let event = subscription.next().await;
        let goes_on = matches!(
            event,
            Ok(Some(
                SubscriptionEvent::Entries(_)
                    | SubscriptionEvent::Live { .. }
                    | SubscriptionEvent::Expired(_)
            ))
        );
        if tx.send((stream, event)).await.is_err() || !goes_on {
            return;
        }
    }
}

/// Reports the items not reported yet, in author order.
fn report(
    state: &State,
    mut items: Vec<Item>,
    reported: &mut HashSet<EnvelopeId>,
    on_event: &mut dyn FnMut(WatchEvent),
) {
    items.retain(|item| reported.insert(item.id));
    items.sort_by(Item::author_order);
    items
        .iter()
        .filter_map(|item| event_of(state, item))
        .for_each(on_event);
}

/// What to report for a new item.
fn event_of(state: &State, item: &Item) -> Option<WatchEvent> {
    let created = item.header.timestamp_ms;
    let note = |change: NoteChange, id: EnvelopeId, text: Option<String>| WatchEvent::Note {
        change,
        id,
        text,
        created,
    };
    match &item.record.body {
        RecordBody::Post { .. } => {
            let post = state.feed.iter().find(|p| p.id == item.id)?;
            Some(WatchEvent::Post(post.clone()))
        }
        RecordBody::Message { .. } => {
            let message = state.messages.iter().find(|m| m.id == item.id)?;
            Some(WatchEvent::Message(message.clone()))
        }
        RecordBody::Note(NoteOp::Add { text }) => {
            Some(note(NoteChange::Add, item.id, Some(text.clone())))
        }
        RecordBody::Note(NoteOp::Edit { target, text }) => {
            Some(note(NoteChange::Edit, *target, Some(text.clone())))
        }
        RecordBody::Note(NoteOp::Remove { target }) => {
            Some(note(NoteChange::Remove, *target, None))
        }
        _ => None,
    }
}
