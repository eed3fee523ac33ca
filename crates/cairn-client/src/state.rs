//! The user's state as a fold of their records in author order: notes,
//! friends, audiences, device names, and the feed. Nothing here is stored
//! on its own: replaying the log rebuilds it.

use std::collections::{BTreeMap, HashSet};

use cairn_crypto::identity::verify_statement;
use cairn_crypto::{Audience, AudienceId};
use cairn_wire::{DeviceId, EnvelopeId, ExchangeKey, Scope, UserId};
use serde::Serialize;

use crate::open::Item;
use crate::record::{FriendOp, NoteOp, RecordBody};

/// A note, as folded from its operations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    /// The id of the envelope that added it (`ce1…`).
    pub id: String,
    /// The current text.
    pub text: String,
    /// When it was added (ms since the Unix epoch, author's clock).
    pub created: u64,
    /// When it was last edited, if ever.
    pub edited: Option<u64>,
    /// The device that added it.
    pub device: String,
}

/// A friend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Friend {
    /// The local name.
    pub name: String,
    /// Their user id.
    pub user: String,
    /// Whether their exchange key has been seen (needed to add them to
    /// an audience).
    pub key_known: bool,
}

/// One of the user's audiences.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AudienceView {
    /// Its name.
    pub name: String,
    /// Its current epoch.
    pub epoch: u32,
    /// Members, by friend name (or user id when not a friend any more).
    pub members: Vec<String>,
}

/// A post in the feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedItem {
    /// The post's envelope id.
    pub id: String,
    /// The author's user id.
    pub author: String,
    /// The author's friend name, or `me`.
    pub from: String,
    /// The text.
    pub text: String,
    /// The audiences it was sealed to: names for the user's own posts,
    /// audience ids for friends' posts (their names are the author's).
    pub audiences: Vec<String>,
    /// When it was written (ms since the Unix epoch, author's clock).
    pub created: u64,
}

/// Everything folded.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub notes: Vec<Note>,
    /// Friend name → user, in name order.
    pub friends: BTreeMap<String, UserId>,
    /// Exchange keys announced by users (latest wins).
    pub exchange_keys: BTreeMap<UserId, (u64, ExchangeKey)>,
    /// The user's audiences, latest snapshot in author order.
    pub audiences: BTreeMap<AudienceId, Audience>,
    pub device_names: BTreeMap<DeviceId, String>,
    /// Exchange keys of the user's devices, from their certificates.
    pub device_keys: BTreeMap<DeviceId, ExchangeKey>,
    pub feed: Vec<FeedItem>,
}

impl State {
    /// Folds `items` (any order) as seen by `me`.
    pub fn fold(me: UserId, mut items: Vec<Item>) -> Self {
        items.sort_by(Item::author_order);
        let mut state = Self::default();
        let mut notes = NoteFold::default();
        for item in &items {
            state.apply(me, item, &mut notes);
        }
        state.notes = notes.finish();
        let mut feed = std::mem::take(&mut state.feed);
        // Only the user's posts and their friends' are shown: a post from
        // anyone else (a friend since removed, or a stranger whom a relay
        // routed here) stays out of the feed.
        let shown: HashSet<String> = state
            .friends
            .values()
            .chain([&me])
            .map(UserId::to_text)
            .collect();
        feed.retain(|post| shown.contains(&post.author));
        for post in &mut feed {
            post.from = state.name_of(me, &post.author);
            post.audiences = post
                .audiences
                .iter()
                .map(|a| state.audience_label(me, &post.author, a))
                .collect();
        }
        state.feed = feed;
        state
    }

    fn apply(&mut self, me: UserId, item: &Item, notes: &mut NoteFold) {
        let header = &item.header;
        let own_private = header.author == me && header.scope == Scope::Private;
        if own_private {
            let body = item.record.certificate.body();
            self.device_keys.insert(body.device, body.exchange_key);
        }
        match (&item.record.body, own_private) {
            (RecordBody::Note(op), true) => notes.apply(item, op),
            (RecordBody::Friend(op), true) => apply_friend(&mut self.friends, op),
            (RecordBody::Audience(audience), true) => {
                self.audiences.insert(audience.id(), audience.clone());
            }
            (RecordBody::Device { certificate, name }, true) => {
                let body = certificate.body();
                if certificate.verify().is_ok() && body.user == me {
                    self.device_names.insert(body.device, name.clone());
                    self.device_keys.insert(body.device, body.exchange_key);
                }
            }
            (RecordBody::ExchangeKey(announcement), _) => {
                let Ok(body) = verify_statement(announcement, &header.author) else {
                    return;
                };
                let newer = self
                    .exchange_keys
                    .get(&body.user)
                    .is_none_or(|(at, _)| *at <= body.issued_ms);
                if newer {
                    self.exchange_keys
                        .insert(body.user, (body.issued_ms, body.exchange_key));
                }
            }
            (RecordBody::Post { text }, _) if header.scope == Scope::Friends => {
                self.feed.push(FeedItem {
                    id: item.id.to_text(),
                    author: header.author.to_text(),
                    from: String::new(),
                    text: text.clone(),
                    audiences: item.audiences.iter().map(|a| a.to_string()).collect(),
                    created: header.timestamp_ms,
                });
            }
            _ => {}
        }
    }

    /// The friend named `name`.
    pub fn friend(&self, name: &str) -> Option<UserId> {
        self.friends.get(name).copied()
    }

    /// The audience named `name`.
    pub fn audience(&self, name: &str) -> Option<&Audience> {
        self.audiences.values().find(|a| a.name() == name)
    }

    /// A user's display name: `me`, a friend's name, or their id.
    pub fn name_of(&self, me: UserId, user: &str) -> String {
        if user == me.to_text() {
            return "me".to_owned();
        }
        self.friends
            .iter()
            .find(|(_, u)| u.to_text() == user)
            .map_or_else(|| user.to_owned(), |(name, _)| name.clone())
    }

    fn audience_label(&self, me: UserId, author: &str, id_hex: &str) -> String {
        if author != me.to_text() {
            return id_hex.to_owned();
        }
        self.audiences
            .values()
            .find(|a| a.id().to_string() == id_hex)
            .map_or_else(|| id_hex.to_owned(), |a| a.name().to_owned())
    }

    /// The audiences as shown to the user.
    pub fn audience_views(&self, me: UserId) -> Vec<AudienceView> {
        let mut views: Vec<AudienceView> = self
            .audiences
            .values()
            .map(|a| {
                let mut members: Vec<String> = a
                    .members()
                    .map(|m| self.name_of(me, &m.user.to_text()))
                    .collect();
                members.sort();
                AudienceView {
                    name: a.name().to_owned(),
                    epoch: a.epoch().0,
                    members,
                }
            })
            .collect();
        views.sort_by(|a, b| a.name.cmp(&b.name));
        views
    }

    /// The friends as shown to the user.
    pub fn friend_views(&self) -> Vec<Friend> {
        self.friends
            .iter()
            .map(|(name, user)| Friend {
                name: name.clone(),
                user: user.to_text(),
                key_known: self.exchange_keys.contains_key(user),
            })
            .collect()
    }
}

/// Applies one friend record to the friend list (name → user): a name
/// names one user, and a user has one name.
pub(crate) fn apply_friend(friends: &mut BTreeMap<String, UserId>, op: &FriendOp) {
    match op {
        FriendOp::Add { name, user } => {
            friends.retain(|_, u| u != user);
            friends.insert(name.clone(), *user);
        }
        FriendOp::Remove { user } => friends.retain(|_, u| u != user),
    }
}

/// Folds note operations: adds first define notes; edits and removals
/// then apply in author order, and a removal is final.
#[derive(Default)]
struct NoteFold {
    order: Vec<EnvelopeId>,
    notes: BTreeMap<EnvelopeId, Note>,
    changes: Vec<(EnvelopeId, Option<String>, u64)>,
}

impl NoteFold {
    fn apply(&mut self, item: &Item, op: &NoteOp) {
        let at = item.header.timestamp_ms;
        match op {
            NoteOp::Add { text } => {
                self.order.push(item.id);
                self.notes.insert(
                    item.id,
                    Note {
                        id: item.id.to_text(),
                        text: text.clone(),
                        created: at,
                        edited: None,
                        device: item.header.device.to_text(),
                    },
                );
            }
            NoteOp::Edit { target, text } => self.changes.push((*target, Some(text.clone()), at)),
            NoteOp::Remove { target } => self.changes.push((*target, None, at)),
        }
    }

    fn finish(mut self) -> Vec<Note> {
        for (target, text, at) in std::mem::take(&mut self.changes) {
            match text {
                Some(text) => {
                    if let Some(note) = self.notes.get_mut(&target) {
                        note.text = text;
                        note.edited = Some(at);
                    }
                }
                None => {
                    self.notes.remove(&target);
                }
            }
        }
        self.order
            .iter()
            .filter_map(|id| self.notes.remove(id))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use cairn_crypto::{DeviceKeys, RootKey, os};
    use cairn_wire::{EnvelopeHeader, EnvelopeId};

    use super::*;
    use crate::record::Record;

    struct Author {
        root: RootKey,
        device: DeviceKeys,
    }

    impl Author {
        fn new() -> Self {
            Self {
                root: RootKey::generate(&mut os::rng()),
                device: DeviceKeys::generate(&mut os::rng()),
            }
        }

        fn item(&self, id: u8, seq: u64, at: u64, body: RecordBody) -> Item {
            let cert =
                self.root
                    .certify_device(self.device.device_id(), self.device.exchange_key(), 1);
            let header = EnvelopeHeader::new(
                self.root.user_id(),
                self.device.device_id(),
                seq,
                at,
                Scope::Private,
            );
            Item::new(
                EnvelopeId::from_bytes([id; 32]),
                header,
                vec![],
                Record::new(
                    cert,
                    RecordBody::Note(NoteOp::Add {
                        text: String::new(),
                    }),
                )
                .with_body(body),
            )
        }
    }

    fn note(op: NoteOp) -> RecordBody {
        RecordBody::Note(op)
    }

    #[test]
    fn notes_fold_in_author_order_whatever_the_arrival_order() {
        let me = Author::new();
        let a = EnvelopeId::from_bytes([1; 32]);
        let items = vec![
            me.item(
                3,
                3,
                30,
                note(NoteOp::Edit {
                    target: a,
                    text: "second".into(),
                }),
            ),
            me.item(
                1,
                1,
                10,
                note(NoteOp::Add {
                    text: "first".into(),
                }),
            ),
            me.item(
                2,
                2,
                20,
                note(NoteOp::Add {
                    text: "other".into(),
                }),
            ),
            me.item(
                4,
                4,
                40,
                note(NoteOp::Remove {
                    target: EnvelopeId::from_bytes([2; 32]),
                }),
            ),
        ];
        let state = State::fold(me.root.user_id(), items);
        assert_eq!(state.notes.len(), 1);
        assert_eq!(state.notes[0].text, "second");
        assert_eq!(state.notes[0].edited, Some(30));
        assert_eq!(state.notes[0].created, 10);
    }

    #[test]
    fn a_removal_is_final_and_foreign_private_records_do_not_count() {
        let me = Author::new();
        let stranger = Author::new();
        let a = EnvelopeId::from_bytes([1; 32]);
        let items = vec![
            me.item(
                1,
                1,
                10,
                note(NoteOp::Add {
                    text: "first".into(),
                }),
            ),
            me.item(2, 2, 20, note(NoteOp::Remove { target: a })),
            me.item(
                3,
                3,
                30,
                note(NoteOp::Edit {
                    target: a,
                    text: "again".into(),
                }),
            ),
            stranger.item(
                9,
                1,
                5,
                note(NoteOp::Add {
                    text: "not mine".into(),
                }),
            ),
        ];
        let state = State::fold(me.root.user_id(), items);
        assert!(state.notes.is_empty());
    }

    #[test]
    fn friends_are_renamed_and_removed() {
        let me = Author::new();
        let friend = Author::new().root.user_id();
        let items = vec![
            me.item(
                1,
                1,
                10,
                RecordBody::Friend(FriendOp::Add {
                    name: "bob".into(),
                    user: friend,
                }),
            ),
            me.item(
                2,
                2,
                20,
                RecordBody::Friend(FriendOp::Add {
                    name: "robert".into(),
                    user: friend,
                }),
            ),
        ];
        let state = State::fold(me.root.user_id(), items.clone());
        assert_eq!(state.friend("robert"), Some(friend));
        assert_eq!(state.friend("bob"), None);
        let mut more = items;
        more.push(me.item(
            3,
            3,
            30,
            RecordBody::Friend(FriendOp::Remove { user: friend }),
        ));
        assert!(State::fold(me.root.user_id(), more).friends.is_empty());
    }
}
