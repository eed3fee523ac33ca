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
