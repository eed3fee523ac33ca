//! Whose envelopes this device reads: its own user's, and those of the
//! users this user has added as friends. An honest relay routes nothing
//! else (it checks the grants), but the client does not trust it to: a
//! page of any other user's stream is ignored, never stored and never kept
//! waiting for keys, and its cursor stays where it was, so that adding
//! that user later reads their stream from there.

use std::collections::{BTreeMap, HashSet};

use cairn_wire::{EnvelopeHeader, Scope, UserId};

use crate::open::{Item, author_order};
use crate::record::{FriendOp, RecordBody};
use crate::state::apply_friend;

/// The users this user has added, folded from the user's own private
/// friend records in author order (the same fold as the friend list), and
/// kept current while a sync brings in new records.
#[derive(Debug, Clone)]
pub(crate) struct Added {
    me: UserId,
    /// Every friend record seen, in author order.
    records: Vec<(EnvelopeHeader, FriendOp)>,
    users: HashSet<UserId>,
}

impl Added {
    /// Nobody added yet.
    pub fn new(me: UserId) -> Self {
        Self {
            me,
            records: Vec::new(),
            users: HashSet::new(),
        }
    }

    /// Folded from the items a device holds.
    pub fn from_items<'a>(me: UserId, items: impl IntoIterator<Item = &'a Item>) -> Self {
        let mut added = Self::new(me);
        for item in items {
            if let Some(op) = added.friend_record(item) {
                added.records.push((item.header.clone(), op.clone()));
            }
        }
        added.refold();
        added
    }

    /// Takes in a newly opened item; whether it changed who is added.
    pub fn note(&mut self, item: &Item) -> bool {
        let Some(op) = self.friend_record(item) else {
            return false;
        };
        self.records.push((item.header.clone(), op.clone()));
        let before = self.users.clone();
        self.refold();
        before != self.users
    }

    /// Whether this device reads envelopes by `user`: the user itself or
    /// someone it added.
    pub fn reads_from(&self, user: &UserId) -> bool {
        *user == self.me || self.users.contains(user)
    }

    /// The friend operation of one of this user's own private records.
    fn friend_record<'a>(&self, item: &'a Item) -> Option<&'a FriendOp> {
        let own_private = item.header.author == self.me && item.header.scope == Scope::Private;
        match &item.record.body {
            RecordBody::Friend(op) if own_private => Some(op),
            _ => None,
        }
    }

    fn refold(&mut self) {
        self.records.sort_by(|(a, _), (b, _)| author_order(a, b));
        let mut named = BTreeMap::new();
        for (_, op) in &self.records {
            apply_friend(&mut named, op);
        }
        self.users = named.into_values().collect();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use cairn_crypto::{DeviceKeys, RootKey, os};
    use cairn_wire::EnvelopeId;

    use super::*;
    use crate::record::{NoteOp, Record};

    fn user() -> UserId {
        RootKey::generate(&mut os::rng()).user_id()
    }

    struct Me {
        root: RootKey,
        device: DeviceKeys,
    }

    impl Me {
        fn new() -> Self {
            Self {
                root: RootKey::generate(&mut os::rng()),
                device: DeviceKeys::generate(&mut os::rng()),
            }
        }

        fn id(&self) -> UserId {
            self.root.user_id()
        }

        fn record(&self, at: u64, scope: Scope, op: FriendOp) -> Item {
            let certificate =
                self.root
                    .certify_device(self.device.device_id(), self.device.exchange_key(), 1);
            let header = EnvelopeHeader::new(
                self.id(),
                self.device.device_id(),
                at,
                cairn_wire::FIRST_IN_STREAM,
                at,
                scope,
            );
            let record = Record::new(
                certificate,
                RecordBody::Note(NoteOp::Add {
                    text: String::new(),
                }),
            )
            .with_body(RecordBody::Friend(op));
            let id = EnvelopeId::from_bytes([u8::try_from(at).unwrap(); 32]);
            Item::new(id, header, vec![], record)
        }
    }

    fn add(name: &str, user: UserId) -> FriendOp {
        FriendOp::Add {
            name: name.to_owned(),
            user,
        }
    }

    #[test]
    fn reads_only_from_itself_and_added_users() {
        let me = Me::new();
        let (bob, mallory) = (user(), user());
        let mut added = Added::new(me.id());
        assert!(added.reads_from(&me.id()));
        assert!(!added.reads_from(&bob));
        assert!(added.note(&me.record(1, Scope::Private, add("bob", bob))));
        assert!(added.reads_from(&bob));
        assert!(!added.reads_from(&mallory));
        assert!(added.note(&me.record(2, Scope::Private, FriendOp::Remove { user: bob })));
        assert!(!added.reads_from(&bob));
    }

    #[test]
    fn records_count_in_author_order_whatever_order_they_arrive_in() {
        let me = Me::new();
        let bob = user();
        let remove = me.record(5, Scope::Private, FriendOp::Remove { user: bob });
        let add_earlier = me.record(3, Scope::Private, add("bob", bob));
        let mut added = Added::new(me.id());
        added.note(&remove);
        assert!(!added.note(&add_earlier), "the removal came later");
        assert!(!added.reads_from(&bob));
        let folded = Added::from_items(me.id(), [&add_earlier, &remove]);
        assert!(!folded.reads_from(&bob));
    }

    #[test]
    fn only_the_users_own_private_records_add_anyone() {
        let me = Me::new();
        let other = Me::new();
        let bob = user();
        let mut added = Added::new(me.id());
        assert!(!added.note(&me.record(1, Scope::Friends, add("bob", bob))));
        assert!(!added.note(&other.record(2, Scope::Private, add("bob", bob))));
        assert!(!added.reads_from(&bob));
    }
}
