//! The user's state as a fold of their records in author order: notes,
//! friends, audiences, device names, and the feed. Nothing here is stored
//! on its own: replaying the log rebuilds it.

use std::collections::{BTreeMap, BTreeSet};

use cairn_crypto::identity::verify_statement;
use cairn_crypto::{Audience, AudienceId};
use cairn_wire::{DeviceId, EnvelopeId, ExchangeKey, Scope, UserId};

use crate::direct::{self, Message, RawMessage};
use crate::open::Item;
use crate::record::{FriendOp, NoteOp, RecordBody};
use crate::revoked::Revoked;

/// Who wrote a post or belongs to an audience, as this user knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Author {
    /// This user.
    Me,
    /// A friend, by the name this user gave them.
    Friend(String),
    /// A user who is not (or no longer) a friend.
    Stranger(UserId),
}

/// How an audience a post was sealed to is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudienceLabel {
    /// One of this user's audiences, by its name.
    Named(String),
    /// Another user's audience (its name is theirs alone), or one of this
    /// user's that no longer exists.
    Id(AudienceId),
}

/// A note, as folded from its operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The id of the envelope that added it.
    pub id: EnvelopeId,
    /// The current text.
    pub text: String,
    /// When it was added (ms since the Unix epoch, author's clock).
    pub created: u64,
    /// When it was last edited, if ever.
    pub edited: Option<u64>,
    /// The device that added it.
    pub device: DeviceId,
}

/// A friend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Friend {
    /// The local name.
    pub name: String,
    /// Their user id.
    pub user: UserId,
    /// Whether their exchange key has been seen (needed to add them to
    /// an audience).
    pub key_known: bool,
}

/// One of the user's audiences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudienceView {
    /// Its name.
    pub name: String,
    /// Its current epoch.
    pub epoch: u32,
    /// Its members.
    pub members: Vec<Author>,
}

/// A post in the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedItem {
    /// The post's envelope id.
    pub id: EnvelopeId,
    /// The author's user id.
    pub author: UserId,
    /// The author as this user knows them.
    pub from: Author,
    /// The text.
    pub text: String,
    /// The audiences it was sealed to.
    pub audiences: Vec<AudienceLabel>,
    /// When it was written (ms since the Unix epoch, author's clock).
    pub created: u64,
}

/// A post before its author and audiences are named, which needs the
/// whole fold.
#[derive(Debug, Clone)]
struct Post {
    id: EnvelopeId,
    author: UserId,
    text: String,
    audiences: Vec<AudienceId>,
    created: u64,
}

/// Everything folded.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub notes: Vec<Note>,
    /// Friend name → user, in name order.
    pub friends: BTreeMap<String, UserId>,
    /// Exchange keys announced by users (latest wins).
    pub exchange_keys: BTreeMap<UserId, (u64, ExchangeKey)>,
    /// The user's audiences: the snapshot of the latest epoch, or the
    /// merge of concurrent ones (see [`State::apply_audience`]).
    pub audiences: BTreeMap<AudienceId, Audience>,
    /// Audiences deleted: gone for good, whatever snapshot comes later.
    deleted: BTreeSet<AudienceId>,
    /// Audiences whose latest epoch was started twice at once with
    /// different members: their key was granted to a member set that is
    /// not the merged one, so they must rotate before the next post.
    pub forked: BTreeSet<AudienceId>,
    /// Per audience, the members before its latest epoch: what a
    /// concurrent edit started from.
    parents: BTreeMap<AudienceId, BTreeSet<UserId>>,
    pub device_names: BTreeMap<DeviceId, String>,
    /// Exchange keys of the user's devices, from their certificates.
    pub device_keys: BTreeMap<DeviceId, ExchangeKey>,
    pub feed: Vec<FeedItem>,
    /// Direct messages sent and received, in author order.
    pub messages: Vec<Message>,
    /// The revoked devices of this user and of the users it reads.
    pub revoked: Revoked,
    posts: Vec<Post>,
    raw_messages: Vec<RawMessage>,
}

impl State {
    /// Folds `items` (any order) as seen by `me`. Revocations are folded
    /// first, so that what a revoked device signed past its cutoff counts
    /// for nothing whatever order it arrived in.
    pub fn fold(me: UserId, mut items: Vec<Item>) -> Self {
        items.sort_by(Item::author_order);
        let revoked = Revoked::from_items(&items);
        items.retain(|item| !revoked.excludes(&item.header));
        let mut state = Self::default();
        let mut notes = NoteFold::default();
        for item in &items {
            state.apply(me, item, &mut notes);
        }
        state.notes = notes.finish();
        // Nothing is ever sealed to a revoked device again.
        state
            .device_keys
            .retain(|device, _| !revoked.is_revoked(&me, device));
        state.revoked = revoked;
        // Only the user's posts and their friends' are shown: a post from
        // anyone else (a friend since removed, or a stranger whom a relay
        // routed here) stays out of the feed.
        let posts = std::mem::take(&mut state.posts);
        state.feed = posts
            .into_iter()
            .filter_map(|post| {
                let from = state.author(me, post.author);
                if matches!(from, Author::Stranger(_)) {
                    return None;
                }
                let audiences = post
                    .audiences
                    .iter()
                    .map(|a| state.audience_label(me, post.author, *a))
                    .collect();
                Some(FeedItem {
                    id: post.id,
                    author: post.author,
                    from,
                    text: post.text,
                    audiences,
                    created: post.created,
                })
            })
            .collect();
        let raw = std::mem::take(&mut state.raw_messages);
        state.messages = direct::name_messages(&state, me, raw);
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
            (RecordBody::Audience(audience), true) => self.apply_audience(audience),
            (RecordBody::AudienceDeleted { audience }, true) => self.delete_audience(*audience),
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
                self.posts.push(Post {
                    id: item.id,
                    author: header.author,
                    text: text.clone(),
                    audiences: item.audiences.clone(),
                    created: header.timestamp_ms,
                });
            }
            (RecordBody::Message { text }, _) => self.apply_message(me, item, text),
            _ => {}
        }
    }

    /// Takes a direct message: one this user sent to another user, or one
    /// sent to this user by someone else. Any other direct scope (a user's
    /// message to themselves, which the client never writes) is ignored.
    fn apply_message(&mut self, me: UserId, item: &Item, text: &str) {
        let header = &item.header;
        let Scope::Direct(to) = header.scope else {
            return;
        };
        let (with, sent) = match (header.author == me, to == me) {
            (true, false) => (to, true),
            (false, true) => (header.author, false),
            _ => return,
        };
        self.raw_messages.push(RawMessage {
            id: item.id,
            with,
            sent,
            text: text.to_owned(),
            created: header.timestamp_ms,
        });
    }

    /// Deletes an audience for good.
    fn delete_audience(&mut self, id: AudienceId) {
        self.deleted.insert(id);
        self.audiences.remove(&id);
        self.forked.remove(&id);
        self.parents.remove(&id);
    }

    /// Takes an audience snapshot (they come in author order). Epochs
    /// only move forward: a snapshot of an older epoch than the one held
    /// changes nothing (a stale device's edit, or a relay withholding a
    /// rotation from it, cannot bring back a removed member). A snapshot
    /// of a later epoch replaces the one held. Two snapshots of the same
    /// epoch were made at once by two devices (every edit rotates): their
    /// members merge, an addition in either counting and a removal in
    /// either winning, and if the two member sets differ the audience is
    /// marked forked, to rotate before anything is sealed to it.
    fn apply_audience(&mut self, audience: &Audience) {
        let id = audience.id();
        if self.deleted.contains(&id) {
            return;
        }
        let members = |a: &Audience| a.members().map(|m| m.user).collect::<BTreeSet<_>>();
        let Some(held) = self.audiences.get(&id) else {
            self.parents.insert(id, BTreeSet::new());
            self.audiences.insert(id, audience.clone());
            return;
        };
        if audience.epoch() > held.epoch() {
            self.parents.insert(id, members(held));
            self.forked.remove(&id);
            self.audiences.insert(id, audience.clone());
        } else if audience.epoch() == held.epoch() && members(held) != members(audience) {
            let parent = self.parents.get(&id).cloned().unwrap_or_default();
            let merged = merge(held, audience, &parent);
            self.forked.insert(id);
            self.audiences.insert(id, merged);
        } else if audience.epoch() == held.epoch() {
            self.audiences.insert(id, audience.clone());
        }
    }

    /// The friend named `name`.
    pub fn friend(&self, name: &str) -> Option<UserId> {
        self.friends.get(name).copied()
    }

    /// The audience named `name` (one the user made: direct audiences
    /// have no name a user can give).
    pub fn audience(&self, name: &str) -> Option<&Audience> {
        self.audiences
            .values()
            .find(|a| a.name() == name && !direct::is_direct_audience(a))
    }

    /// This user's direct audience for `friend`, if a message was ever
    /// sent to them.
    pub fn direct_audience(&self, friend: &UserId) -> Option<&Audience> {
        let name = direct::direct_audience_name(friend);
        self.audiences.values().find(|a| a.name() == name)
    }

    /// `user` as this user knows them.
    pub fn author(&self, me: UserId, user: UserId) -> Author {
        if user == me {
            return Author::Me;
        }
        self.friends
            .iter()
            .find(|(_, u)| **u == user)
            .map_or(Author::Stranger(user), |(name, _)| {
                Author::Friend(name.clone())
            })
    }

    fn audience_label(&self, me: UserId, author: UserId, id: AudienceId) -> AudienceLabel {
        match self.audiences.get(&id) {
            Some(audience) if author == me => AudienceLabel::Named(audience.name().to_owned()),
            _ => AudienceLabel::Id(id),
        }
    }

    /// The audiences as shown to the user.
    pub fn audience_views(&self, me: UserId) -> Vec<AudienceView> {
        let mut views: Vec<AudienceView> = self
            .audiences
            .values()
            .filter(|a| !direct::is_direct_audience(a))
            .map(|a| {
                let members = a.members().map(|m| self.author(me, m.user)).collect();
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
                user: *user,
                key_known: self.exchange_keys.contains_key(user),
            })
            .collect()
    }
}

/// Two snapshots of one epoch merged: `later`'s keys and structure, with
/// the members either added since `parent`, less those either removed.
fn merge(earlier: &Audience, later: &Audience, parent: &BTreeSet<UserId>) -> Audience {
    let mut merged = later.clone();
    for member in earlier.members() {
        let added_there = !parent.contains(&member.user);
        if added_there && !merged.is_member(&member.user) && merged.add_member(member).is_err() {
            tracing::warn!(
                audience = merged.name(),
                "two concurrent edits added more members than an audience holds; \
                 one addition was dropped"
            );
        }
    }
    for user in parent {
        if !earlier.is_member(user) {
            merged.forget_member(user);
        }
    }
    merged
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
                        id: item.id,
                        text: text.clone(),
                        created: at,
                        edited: None,
                        device: item.header.device,
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

    struct Writer {
        root: RootKey,
        device: DeviceKeys,
    }

    impl Writer {
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
                cairn_wire::FIRST_IN_STREAM,
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
        let me = Writer::new();
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
        let me = Writer::new();
        let stranger = Writer::new();
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
        let me = Writer::new();
        let friend = Writer::new().root.user_id();
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

    #[test]
    fn authors_are_typed_so_a_friend_named_me_is_not_the_user_and_strangers_are_not_shown() {
        let me = Writer::new();
        let (friend, stranger) = (Writer::new(), Writer::new());
        let post = |writer: &Writer, id: u8, text: &str| {
            let mut item =
                writer.item(id, 1, u64::from(id), RecordBody::Post { text: text.into() });
            item.header.scope = Scope::Friends;
            item
        };
        let items = vec![
            me.item(
                1,
                1,
                1,
                RecordBody::Friend(FriendOp::Add {
                    name: "me".into(),
                    user: friend.root.user_id(),
                }),
            ),
            post(&me, 2, "mine"),
            post(&friend, 3, "the friend's"),
            post(&stranger, 4, "a stranger's"),
        ];
        let state = State::fold(me.root.user_id(), items);
        let authors: Vec<(&str, &Author)> = state
            .feed
            .iter()
            .map(|p| (p.text.as_str(), &p.from))
            .collect();
        assert_eq!(
            authors,
            [
                ("mine", &Author::Me),
                ("the friend's", &Author::Friend("me".into()))
            ]
        );
    }

    #[test]
    fn an_audience_snapshot_of_an_older_epoch_never_replaces_a_newer_one() {
        let me = Writer::new();
        let mut audience = Audience::new(&mut os::rng(), "fam").unwrap();
        let stale = audience.clone();
        audience.rotate(&mut os::rng()).unwrap();
        let items = vec![
            me.item(1, 1, 10, RecordBody::Audience(audience.clone())),
            me.item(2, 2, 20, RecordBody::Audience(stale)),
        ];
        let state = State::fold(me.root.user_id(), items);
        assert_eq!(state.audience("fam").unwrap().epoch(), audience.epoch());
    }

    #[test]
    fn a_revoked_devices_records_past_its_cutoff_count_for_nothing_in_any_order() {
        let laptop = Writer::new();
        let phone = Writer {
            root: laptop.root.clone(),
            device: DeviceKeys::generate(&mut os::rng()),
        };
        let me = laptop.root.user_id();
        let add = |text: &str| {
            note(NoteOp::Add {
                text: text.to_owned(),
            })
        };
        let revocation = laptop.root.revoke_device(phone.device.device_id(), 50);
        let revoked = RecordBody::DeviceRevoked {
            revocation,
            last_seq: 1,
        };
        let planted = || {
            vec![
                phone.item(1, 1, 10, add("before")),
                phone.item(2, 2, 60, add("planted")),
                phone.item(3, 3, 5, add("backdated")),
            ]
        };
        let mut revoked_last = planted();
        revoked_last.push(laptop.item(9, 1, 50, revoked.clone()));
        let mut revoked_first = vec![laptop.item(9, 1, 50, revoked)];
        revoked_first.extend(planted());
        for items in [revoked_last, revoked_first] {
            let state = State::fold(me, items);
            let texts: Vec<&str> = state.notes.iter().map(|n| n.text.as_str()).collect();
            assert_eq!(texts, ["before"]);
            assert!(state.revoked.is_revoked(&me, &phone.device.device_id()));
        }
        let forged = laptop.root.revoke_device(phone.device.device_id(), 50);
        let strangers = Writer::new();
        let claimed = strangers.item(
            9,
            1,
            50,
            RecordBody::DeviceRevoked {
                revocation: forged,
                last_seq: 0,
            },
        );
        let state = State::fold(me, vec![claimed, phone.item(1, 1, 10, add("kept"))]);
        assert_eq!(
            state.notes.len(),
            1,
            "only a user's own root revokes its devices"
        );
    }

    #[test]
    fn two_edits_of_one_epoch_merge_with_additions_kept_and_removals_winning() {
        use cairn_crypto::Member;
        let me = Writer::new();
        let member = |n: u8| Member {
            user: UserId::from_bytes([n; 32]),
            exchange_key: ExchangeKey::from_bytes([n; 32]),
        };
        let (bob, carol, dave) = (member(1), member(2), member(3));
        let mut start = Audience::new(&mut os::rng(), "fam").unwrap();
        start.add_member(bob).unwrap();
        start.add_member(carol).unwrap();
        let mut removal = start.clone();
        removal.remove_member(&mut os::rng(), &bob.user).unwrap();
        let mut addition = start.clone();
        addition.add_member(dave).unwrap();
        addition.rotate(&mut os::rng()).unwrap();
        assert_eq!(removal.epoch(), addition.epoch());
        for (first, second) in [(&removal, &addition), (&addition, &removal)] {
            let items = vec![
                me.item(1, 1, 10, RecordBody::Audience(start.clone())),
                me.item(2, 2, 20, RecordBody::Audience(first.clone())),
                me.item(3, 3, 30, RecordBody::Audience(second.clone())),
            ];
            let state = State::fold(me.root.user_id(), items);
            let fam = state.audience("fam").unwrap();
            let members: Vec<_> = fam.members().map(|m| m.user).collect();
            assert_eq!(members, [carol.user, dave.user]);
            assert!(
                state.forked.contains(&fam.id()),
                "it must rotate before a post"
            );
        }
        // The same members on both sides: no fork to resolve.
        let mut twin = start.clone();
        twin.rotate(&mut os::rng()).unwrap();
        let mut other = start.clone();
        other.rotate(&mut os::rng()).unwrap();
        let items = vec![
            me.item(1, 1, 10, RecordBody::Audience(start)),
            me.item(2, 2, 20, RecordBody::Audience(twin)),
            me.item(3, 3, 30, RecordBody::Audience(other)),
        ];
        assert!(State::fold(me.root.user_id(), items).forked.is_empty());
    }
}
