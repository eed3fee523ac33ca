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

use cairn_wire::{DeviceId, EnvelopeId, FIRST_IN_STREAM, StreamId, UserId};

use crate::local::{Batch, LocalStore};
use crate::open::Item;

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
        let mut expected = 1;
        for (seq, id) in held {
            if seq != expected {
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
    use cairn_wire::{Envelope, EnvelopeHeader, Payload, Scope, SigningKey, UnsignedEnvelope};

    use super::*;

    fn envelope(key: &SigningKey, user: UserId, seq: u64, scope: Scope, text: &[u8]) -> Envelope {
        let device = DeviceId::from_bytes(key.verifying_key().to_bytes());
        let header = EnvelopeHeader::new(user, device, seq, FIRST_IN_STREAM, seq, scope);
        let payload = Payload::new(text.to_vec()).unwrap();
        UnsignedEnvelope { header, payload }.sign(key)
    }

    /// Holds `envelopes` as a sync would, counting their seqs.
    fn hold(store: &LocalStore, envelopes: &[Envelope]) {
        let mut batch = Batch::default();
        for e in envelopes {
            batch.envelopes.push((e.id(), e.encode()));
            batch.seqs.push((e.header().device, e.header().seq));
        }
        store.commit(batch).unwrap();
    }

    #[test]
    fn the_seqs_held_of_a_users_device_are_whole_or_the_break_is_named() {
        let home = tempfile::TempDir::new().unwrap();
        let store = LocalStore::create(home.path()).unwrap();
        let key = SigningKey::from_bytes(&[7; 32]);
        let user = UserId::from_bytes([1; 32]);
        let device = DeviceId::from_bytes(key.verifying_key().to_bytes());
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
