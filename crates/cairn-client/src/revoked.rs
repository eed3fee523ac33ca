//! Which devices' envelopes no longer count: folded from the
//! `DeviceRevoked` records of this user and of the users it reads. A
//! revoked device keeps its signing key, and a relay that helps it can
//! still store what it signs; readers refuse every envelope it signed past
//! the last one its user had seen from it when revoking, so nothing it
//! writes afterwards (a note, a post, an audience, a grant, a link bundle)
//! is taken in.

use std::collections::BTreeMap;

use cairn_wire::{DeviceId, EnvelopeHeader, UserId};

use crate::open::Item;
use crate::record::RecordBody;

/// The revoked devices of the users read, each with its last envelope that
/// still counts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Revoked {
    cutoffs: BTreeMap<(UserId, DeviceId), u64>,
}

impl Revoked {
    /// Folded from `items`, in any order.
    pub fn from_items<'a>(items: impl IntoIterator<Item = &'a Item>) -> Self {
        let mut revoked = Self::default();
        for item in items {
            revoked.note(item);
        }
        revoked
    }

    /// Takes in one item; whether it revoked a device. A revocation counts
    /// only when the author's root key signed it for the author's own
    /// device; of two for one device, the lower cutoff holds.
    pub fn note(&mut self, item: &Item) -> bool {
        let RecordBody::DeviceRevoked {
            revocation,
            last_seq,
        } = &item.record.body
        else {
            return false;
        };
        let Ok(body) = revocation.verify() else {
            return false;
        };
        if body.user != item.header.author {
            return false;
        }
        let cutoff = self
            .cutoffs
            .entry((body.user, body.device))
            .or_insert(*last_seq);
        *cutoff = (*cutoff).min(*last_seq);
        true
    }

    /// Whether an envelope with `header` comes from a revoked device after
    /// its cutoff.
    pub fn excludes(&self, header: &EnvelopeHeader) -> bool {
        self.cutoffs
            .get(&(header.author, header.device))
            .is_some_and(|last| header.seq > *last)
    }

    /// Whether `device` of `user` is revoked.
    pub fn is_revoked(&self, user: &UserId, device: &DeviceId) -> bool {
        self.cutoffs.contains_key(&(*user, *device))
    }
}
