//! Checking what the relay served against what devices signed
//! (`spec/client.md` section 6.2). Each envelope names its device's
//! previous envelope in the same stream (`prev`); the relay cannot sign, so
//! it can leave envelopes out or show different readers different
//! envelopes only in ways these checks see:
//!
//! - an envelope whose `prev` this device does not hold: the relay left
//!   that one out (or lost it) while serving what follows it;
//! - two envelopes of one device that name the same `prev`: the device
//!   signed two histories (a home restored from an older copy, or a key in
//!   other hands), and a relay that serves each to different readers keeps
//!   them apart.
//!
//! Only envelopes that opened are checked: their record carries the
//! certificate that shows the device is the author's, so a relay cannot
//! raise a false alarm with envelopes of a device it made up.

use std::collections::{HashMap, HashSet};
use std::fmt;

use cairn_wire::limits::MAX_DEVICES;
use cairn_wire::{BoundedVec, DeviceId, EnvelopeId, FIRST_IN_STREAM, Scope, StreamId, UserId};

use crate::local::{Batch, Claim, LocalStore};
use crate::open::Item;
use crate::record::Head;

/// Where the history served breaks, with what shows it: envelopes signed
/// by the device concerned, which this device holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryBreak {
    /// The relay served `envelope` but not the envelope it names as its
    /// predecessor.
    Withheld {
        /// The author.
        author: UserId,
        /// The device that signed both.
        device: DeviceId,
        /// The stream.
        stream: StreamId,
        /// The envelope served, held here.
        envelope: EnvelopeId,
        /// Its seq.
        seq: u64,
        /// What it names as its predecessor, never served.
        missing: EnvelopeId,
    },
    /// The relay served an envelope of one of this user's devices but not
    /// one with a lower seq (which may be in any of the user's streams).
    Skipped {
        /// This user.
        author: UserId,
        /// The device.
        device: DeviceId,
        /// The seq never served.
        missing: u64,
        /// The envelope served past it, held here.
        envelope: EnvelopeId,
        /// Its seq.
        seq: u64,
    },
    /// Two envelopes of one of this user's devices with one seq.
    SignedTwice {
        /// This user.
        author: UserId,
        /// The device.
        device: DeviceId,
        /// The seq.
        seq: u64,
        /// One envelope.
        first: EnvelopeId,
        /// The other.
        second: EnvelopeId,
    },
    /// Another device of the user said it held an envelope of `device`
    /// that the relay has not served this one.
    Unserved {
        /// This user.
        author: UserId,
        /// The device the envelope is of.
        device: DeviceId,
        /// Its seq.
        seq: u64,
        /// The envelope the other device named.
        claimed: EnvelopeId,
        /// The private record, signed by the other device, that said so.
        claimant: EnvelopeId,
    },
    /// Another device of the user holds another envelope of `device` at a
    /// seq than this one does.
    Disagree {
        /// This user.
        author: UserId,
        /// The device the envelopes are of.
        device: DeviceId,
        /// The seq.
        seq: u64,
        /// The envelope held here.
        held: EnvelopeId,
        /// The envelope the other device named.
        claimed: EnvelopeId,
        /// The private record, signed by the other device, that said so.
        claimant: EnvelopeId,
    },
    /// The relay says it no longer serves positions of a stream that
    /// never expires: a user's private stream, or their direct stream to
    /// their own devices.
    Unexpirable {
        /// The stream.
        stream: StreamId,
        /// Positions up to this one are said to be gone.
        through: u64,
    },
    /// Two envelopes signed by one device name the same predecessor.
    Forked {
        /// The author.
        author: UserId,
        /// The device that signed both.
        device: DeviceId,
        /// The stream.
        stream: StreamId,
        /// The predecessor both name.
        prev: EnvelopeId,
        /// The envelope held before.
        held: EnvelopeId,
        /// The envelope served now.
        served: EnvelopeId,
    },
}

/// Checks that this device holds every envelope of each of its user's
/// devices up to the highest it holds, and no two at one seq: its user's
/// devices read every stream of their user, so a seq missing below one
/// held is an envelope the relay left out (in any stream), and two at one
/// seq are a device that signed twice. Run at the end of a sync.
pub(crate) fn check_seqs(
    store: &LocalStore,
    user: UserId,
) -> Result<Result<(), HistoryBreak>, crate::Error> {
    for (device, max, count) in store.seqs()? {
        if count == max {
            continue;
        }
        let held = store.envelopes_of(&device)?;
        let twice = held
            .iter()
            .zip(held.iter().skip(1))
            .find(|(a, b)| a.0 == b.0);
        if let Some((first, second)) = twice {
            return Ok(Err(HistoryBreak::SignedTwice {
                author: user,
                device,
                seq: first.0,
                first: first.1,
                second: second.1,
            }));
        }
        // Seqs at or below the highest the relay said expired may be
        // missing: they can be envelopes that expired from a friends or
        // direct stream.
        let expired = store.expired_seq(&device)?;
        let mut expected = 1;
        for (seq, id) in held {
            if seq != expected && seq.saturating_sub(1) > expired {
                return Ok(Err(HistoryBreak::Skipped {
                    author: user,
                    device,
                    missing: expected,
                    envelope: id,
                    seq,
                }));
            }
            expected = seq.saturating_add(1);
        }
    }
    Ok(Ok(()))
}

/// Bytes a [`Head`] takes at most: two 32-byte ids and a seq varint.
const MAX_HEAD_LEN: usize = 32 + 10 + 32;

/// The newest envelope this device holds of each other device of its
/// user, to put in the private records it writes: as many as fit in
/// `room` bytes (a long note leaves less room).
pub(crate) fn heads(
    store: &LocalStore,
    me: &DeviceId,
    room: usize,
) -> Result<BoundedVec<Head, MAX_DEVICES>, crate::Error> {
    let mut heads = Vec::new();
    for (device, max, _) in store.seqs()? {
        if device == *me || max == 0 {
            continue;
        }
        if let Some(id) = store.seq_id(&device, max)? {
            heads.push(Head {
                device,
                seq: max,
                id,
            });
        }
    }
    // The count's varint takes at most 2 bytes for 256 heads.
    heads.truncate(MAX_DEVICES.min(room.saturating_sub(2) / MAX_HEAD_LEN));
    BoundedVec::new(heads).map_err(|_| crate::Error::store("too many devices"))
}

/// Queues what the private records of the user's other devices among
/// `items` say they held, to be checked at the end of the sync.
pub(crate) fn note_claims(items: &[Item], me: &UserId, batch: &mut Batch) {
    let private = items
        .iter()
        .filter(|i| i.header.author == *me && i.header.scope == Scope::Private);
    for item in private {
        for head in item.record.seen.iter() {
            let claim = Claim {
                device: head.device,
                seq: head.seq,
                claimant: item.id,
                id: head.id,
            };
            batch.claims_add.push((claim.key(), head.id));
        }
    }
}

/// Checks what the user's other devices said they held against what this
/// device holds after a sync; settles the claims that hold. A claim of a
/// seq this device does not hold is an envelope the relay did not serve
/// it; of another envelope at a seq it holds, two histories.
pub(crate) fn check_claims(
    store: &LocalStore,
    user: UserId,
) -> Result<Result<(), HistoryBreak>, crate::Error> {
    let mut settled = Batch::default();
    let mut outcome = Ok(());
    for claim in store.claims()? {
        match store.seq_id(&claim.device, claim.seq)? {
            Some(held) if held == claim.id => settled.claims_remove.push(claim.key()),
            // Claimed, not held, and at or below what the relay said
            // expired of that device: it may have expired.
            None if claim.seq <= store.expired_seq(&claim.device)? => {
                settled.claims_remove.push(claim.key());
            }
            Some(held) => {
                outcome = Err(HistoryBreak::Disagree {
                    author: user,
                    device: claim.device,
                    seq: claim.seq,
                    held,
                    claimed: claim.id,
                    claimant: claim.claimant,
                });
                break;
            }
            None => {
                outcome = Err(HistoryBreak::Unserved {
                    author: user,
                    device: claim.device,
                    seq: claim.seq,
                    claimed: claim.id,
                    claimant: claim.claimant,
                });
                break;
            }
        }
    }
    if !settled.claims_remove.is_empty() {
        store.commit(settled)?;
    }
    Ok(outcome)
}

impl fmt::Display for HistoryBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Withheld {
                author,
                device,
                stream,
                envelope,
                seq,
                missing,
            } => write!(
                f,
                "the relay left out an envelope: device {device} of {author} signed {envelope} \
                 (its seq {seq}) in {stream} as following {missing}, which the relay has not \
                 served; the relay is withholding it or lost it"
            ),
            Self::Skipped {
                author,
                device,
                missing,
                envelope,
                seq,
            } => write!(
                f,
                "the relay left out an envelope: device {device} of {author} signed {envelope} \
                 as its seq {seq}, and the relay has not served its seq {missing}; the relay is \
                 withholding it or lost it"
            ),
            Self::SignedTwice {
                author,
                device,
                seq,
                first,
                second,
            } => write!(
                f,
                "a device signed two histories: device {device} of {author} signed both {first} \
                 and {second} as its seq {seq}; that device's home was copied or restored from \
                 an older copy, or its key is in other hands"
            ),
            Self::Unserved {
                author,
                device,
                seq,
                claimed,
                claimant,
            } => write!(
                f,
                "the relay left out an envelope: another device of {author} said (in its record \
                 {claimant}) that it holds {claimed}, device {device}'s seq {seq}, which the \
                 relay has not served to this device"
            ),
            Self::Disagree {
                author,
                device,
                seq,
                held,
                claimed,
                claimant,
            } => write!(
                f,
                "the relay showed two devices two histories: this device holds {held} as device \
                 {device}'s seq {seq}, and another device of {author} said (in its record \
                 {claimant}) that it holds {claimed} there"
            ),
            Self::Unexpirable { stream, through } => write!(
                f,
                "the relay says it no longer serves positions 1 to {through} of {stream}, which \
                 never expire; the relay is withholding them or lost them"
            ),
            Self::Forked {
                author,
                device,
                stream,
                prev,
                held,
                served,
            } => write!(
                f,
                "a device signed two histories: device {device} of {author} signed both {held} \
                 and {served} as following {prev} in {stream}; that device's home was copied or \
                 restored from an older copy, or its key is in other hands"
            ),
        }
    }
}

/// Whether a relay may stop serving a stream's oldest envelopes: friends
/// streams, and direct streams to another user. A user's private stream
/// and their direct stream to their own devices carry their notes and
/// keys, and never expire.
pub(crate) fn may_expire(stream: &StreamId) -> bool {
    match stream.scope {
        Scope::Private => false,
        Scope::Friends => true,
        Scope::Direct(to) => to != stream.owner,
    }
}

/// The key of a link: who signed, where, and what it follows.
pub(crate) fn link_key(device: &DeviceId, stream: &StreamId, prev: &EnvelopeId) -> Vec<u8> {
    let mut key = device.as_bytes().to_vec();
    key.extend_from_slice(&cairn_wire::codec::encode(stream));
    key.extend_from_slice(prev.as_bytes());
    key
}

/// Checks the chains of `items`, which opened in this step, in the order
/// they opened, against what `store` holds and what `known` (every
/// envelope held, this step's included) says; queues their links in
/// `batch`. The first break found stops it.
pub(crate) fn check(
    store: &LocalStore,
    items: &[Item],
    known: &HashSet<EnvelopeId>,
    batch: &mut Batch,
) -> Result<Result<(), HistoryBreak>, crate::Error> {
    let mut linked: HashMap<Vec<u8>, EnvelopeId> = HashMap::new();
    for item in items {
        let header = &item.header;
        let stream = header.stream();
        let key = link_key(&header.device, &stream, &header.prev);
        let held = match linked.get(&key) {
            Some(id) => Some(*id),
            None => store.link(&key)?,
        };
        if let Some(held) = held.filter(|held| *held != item.id) {
            return Ok(Err(HistoryBreak::Forked {
                author: header.author,
                device: header.device,
                stream,
                prev: header.prev,
                held,
                served: item.id,
            }));
        }
        if header.prev != FIRST_IN_STREAM && !known.contains(&header.prev) {
            return Ok(Err(HistoryBreak::Withheld {
                author: header.author,
                device: header.device,
                stream,
                envelope: item.id,
                seq: header.seq,
                missing: header.prev,
            }));
        }
        linked.insert(key.clone(), item.id);
        batch.links.push((key, item.id));
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use cairn_wire::{Envelope, EnvelopeHeader, Payload, SigningKey, UnsignedEnvelope};

    use super::*;

    fn envelope(key: &SigningKey, user: UserId, seq: u64, scope: Scope, text: &[u8]) -> Envelope {
        let device = DeviceId::from_bytes(key.verifying_key().to_bytes());
        let header = EnvelopeHeader::new(user, device, seq, FIRST_IN_STREAM, seq, scope);
        let payload = Payload::new(text.to_vec()).unwrap();
        UnsignedEnvelope { header, payload }.sign(key)
    }

    /// A new local store, and a device of a user.
    fn one_device() -> (tempfile::TempDir, LocalStore, SigningKey, UserId, DeviceId) {
        let home = tempfile::TempDir::new().unwrap();
        let store = LocalStore::create(home.path()).unwrap();
        let key = SigningKey::from_bytes(&[7; 32]);
        let device = DeviceId::from_bytes(key.verifying_key().to_bytes());
        (home, store, key, UserId::from_bytes([1; 32]), device)
    }

    /// Holds `envelopes` as a sync would, counting their seqs.
    fn hold(store: &LocalStore, envelopes: &[Envelope]) {
        let mut batch = Batch::default();
        for e in envelopes {
            batch.envelopes.push((e.id(), e.encode()));
            batch.seqs.push((e.header().device, e.header().seq, e.id()));
        }
        store.commit(batch).unwrap();
    }

    /// A record by `author` in `scope` that says it holds `head`.
    fn claiming(author: UserId, scope: Scope, head: Head) -> Item {
        let root = cairn_crypto::RootKey::generate(&mut cairn_crypto::os::rng());
        let device = cairn_crypto::DeviceKeys::generate(&mut cairn_crypto::os::rng());
        let certificate = root.certify_device(device.device_id(), device.exchange_key(), 1);
        let header = EnvelopeHeader::new(author, device.device_id(), 1, FIRST_IN_STREAM, 1, scope);
        let mut record = crate::record::Record::new(
            certificate,
            crate::record::RecordBody::Post { text: "x".into() },
        );
        record.seen = BoundedVec::new(vec![head]).unwrap();
        Item::new(EnvelopeId::from_bytes([3; 32]), header, vec![], record)
    }

    #[test]
    fn only_the_users_own_private_records_make_claims() {
        let me = UserId::from_bytes([1; 32]);
        let friend = UserId::from_bytes([2; 32]);
        let head = Head {
            device: DeviceId::from_bytes([4; 32]),
            seq: 9,
            id: EnvelopeId::from_bytes([5; 32]),
        };
        let mut batch = Batch::default();
        let planted = [
            claiming(friend, Scope::Private, head),
            claiming(friend, Scope::Friends, head),
            claiming(me, Scope::Friends, head),
        ];
        note_claims(&planted, &me, &mut batch);
        assert!(
            batch.claims_add.is_empty(),
            "a friend or a post planted a claim"
        );
        note_claims(&[claiming(me, Scope::Private, head)], &me, &mut batch);
        assert_eq!(batch.claims_add.len(), 1);
    }

    #[test]
    fn what_another_device_said_it_held_is_checked_and_settled() {
        let (_home, store, key, user, device) = one_device();
        let one = envelope(&key, user, 1, Scope::Private, b"one");
        hold(&store, std::slice::from_ref(&one));
        let claimant = EnvelopeId::from_bytes([5; 32]);
        let claim = |seq, id| {
            let mut batch = Batch::default();
            let claim = Claim {
                device,
                seq,
                claimant,
                id,
            };
            batch.claims_add.push((claim.key(), id));
            store.commit(batch).unwrap();
        };

        // A claim that holds is settled and not checked again.
        claim(1, one.id());
        assert_eq!(check_claims(&store, user).unwrap(), Ok(()));
        assert!(store.claims().unwrap().is_empty());

        // Another envelope where this device holds one: two histories.
        let other = EnvelopeId::from_bytes([6; 32]);
        claim(1, other);
        assert_eq!(
            check_claims(&store, user).unwrap(),
            Err(HistoryBreak::Disagree {
                author: user,
                device,
                seq: 1,
                held: one.id(),
                claimed: other,
                claimant,
            })
        );
        let mut batch = Batch::default();
        batch.claims_remove.push(
            Claim {
                device,
                seq: 1,
                claimant,
                id: other,
            }
            .key(),
        );
        store.commit(batch).unwrap();

        // An envelope this device was never served.
        claim(2, other);
        assert_eq!(
            check_claims(&store, user).unwrap(),
            Err(HistoryBreak::Unserved {
                author: user,
                device,
                seq: 2,
                claimed: other,
                claimant,
            })
        );
    }

    #[test]
    fn the_seqs_held_of_a_users_device_are_whole_or_the_break_is_named() {
        let (_home, store, key, user, device) = one_device();
        let one = envelope(&key, user, 1, Scope::Private, b"one");
        let three = envelope(&key, user, 3, Scope::Friends, b"three");
        hold(&store, &[one]);
        assert_eq!(check_seqs(&store, user).unwrap(), Ok(()));

        hold(&store, std::slice::from_ref(&three));
        assert_eq!(
            check_seqs(&store, user).unwrap(),
            Err(HistoryBreak::Skipped {
                author: user,
                device,
                missing: 2,
                envelope: three.id(),
                seq: 3,
            })
        );

        let two = envelope(&key, user, 2, Scope::Private, b"two");
        hold(&store, std::slice::from_ref(&two));
        assert_eq!(check_seqs(&store, user).unwrap(), Ok(()));

        // The same seq signed again, in another stream: no chain names
        // both, the count does.
        let twin = envelope(&key, user, 2, Scope::Friends, b"two again");
        hold(&store, std::slice::from_ref(&twin));
        let (first, second) = match two.id() < twin.id() {
            true => (two.id(), twin.id()),
            false => (twin.id(), two.id()),
        };
        assert_eq!(
            check_seqs(&store, user).unwrap(),
            Err(HistoryBreak::SignedTwice {
                author: user,
                device,
                seq: 2,
                first,
                second,
            })
        );
    }
}
