//! Users, devices, statements and envelopes, made deterministically from
//! small numbers so that a test needs no randomness and can make the same
//! envelope twice.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use cairn_wire::{
    DeviceCertificate, DeviceCertificateBody, DeviceId, DeviceRevocation, DeviceRevocationBody,
    Envelope, EnvelopeHeader, EnvelopeId, ExchangeKey, FIRST_IN_STREAM, FriendGrant,
    FriendGrantBody, FriendRevocation, FriendRevocationBody, Payload, Scope, Signed, SigningKey,
    StreamId, UnsignedEnvelope, UserId,
};

use crate::now_ms;

/// The author time of the envelope with `seq` 0: envelopes are stamped
/// `ENVELOPE_EPOCH_MS + seq`, so the same arguments make the same envelope.
pub const ENVELOPE_EPOCH_MS: u64 = 1_000;

/// A user: a root key.
#[derive(Debug, Clone)]
pub struct User {
    /// The root signing key.
    pub root: SigningKey,
    /// The user id (the root public key).
    pub id: UserId,
}

/// One device of a user, certified by the user's root key.
///
/// It remembers the envelopes it made (clones share the memory), so that
/// each names as `prev` the one made for the stream with the highest lower
/// seq, as a real device's would; of two made for one seq (a test of
/// equivocation), the first counts. The same calls in the same order make
/// the same envelopes.
#[derive(Debug, Clone)]
pub struct Device {
    /// The device's signing key.
    pub key: SigningKey,
    /// Its user.
    pub user: UserId,
    /// Its id (the signing public key).
    pub id: DeviceId,
    /// Its certificate, issued when the device was made.
    pub certificate: DeviceCertificate,
    /// The envelopes made so far, by stream and seq.
    made: Arc<Mutex<BTreeMap<(StreamId, u64), EnvelopeId>>>,
}

impl User {
    /// User number `n`.
    pub fn new(n: u32) -> Self {
        Self::in_domain(0, n)
    }

    /// User number `n` of `domain`: domains keep the identities of
    /// different scenarios apart.
    pub fn in_domain(domain: u8, n: u32) -> Self {
        let mut seed = [0x5a; 32];
        overwrite(&mut seed, &[domain]);
        overwrite(&mut seed[1..], &n.to_le_bytes());
        let root = SigningKey::from_bytes(&seed);
        let id = UserId::from_bytes(root.verifying_key().to_bytes());
        Self { root, id }
    }

    /// The user's device number `n`, certified now.
    pub fn device(&self, n: u32) -> Device {
        let mut seed = *self.id.as_bytes();
        overwrite(&mut seed, &n.to_le_bytes());
        seed[4] ^= 0xa5;
        let key = SigningKey::from_bytes(&seed);
        let id = DeviceId::from_bytes(key.verifying_key().to_bytes());
        Device {
            key,
            user: self.id,
            id,
            certificate: self.certify(id, now_ms()),
            made: Arc::default(),
        }
    }

    /// A certificate for `device`, issued at `issued_ms`.
    pub fn certify(&self, device: DeviceId, issued_ms: u64) -> DeviceCertificate {
        let exchange_key = ExchangeKey::from_bytes(*device.as_bytes());
        let body = DeviceCertificateBody::new(self.id, device, exchange_key, issued_ms);
        Signed::sign(body, &self.root)
    }

    /// Revokes `device` now.
    pub fn revoke(&self, device: DeviceId) -> DeviceRevocation {
        self.revoke_at(device, now_ms())
    }

    /// Revokes `device` at `revoked_ms`.
    pub fn revoke_at(&self, device: DeviceId, revoked_ms: u64) -> DeviceRevocation {
        Signed::sign(
            DeviceRevocationBody::new(self.id, device, revoked_ms),
            &self.root,
        )
    }

    /// Lets `friend` read this user's friends stream (and write to them), now.
    pub fn grant(&self, friend: UserId) -> FriendGrant {
        self.grant_at(friend, now_ms())
    }

    /// A grant to `friend` dated `issued_ms`.
    pub fn grant_at(&self, friend: UserId, issued_ms: u64) -> FriendGrant {
        Signed::sign(FriendGrantBody::new(self.id, friend, issued_ms), &self.root)
    }

    /// Withdraws a grant to `friend`, dated a millisecond from now so that
    /// it is newer than a grant made just before.
    pub fn unfriend(&self, friend: UserId) -> FriendRevocation {
        self.unfriend_at(friend, now_ms() + 1)
    }

    /// Withdraws a grant to `friend` at `revoked_ms`.
    pub fn unfriend_at(&self, friend: UserId, revoked_ms: u64) -> FriendRevocation {
        Signed::sign(
            FriendRevocationBody::new(self.id, friend, revoked_ms),
            &self.root,
        )
    }
}

impl Device {
    /// An envelope by this device for its user.
    pub fn envelope(&self, seq: u64, scope: Scope, payload: &[u8]) -> Envelope {
        self.envelope_as(self.user, seq, scope, payload)
    }

    /// An envelope signed by this device that claims `author`.
    pub fn envelope_as(&self, author: UserId, seq: u64, scope: Scope, payload: &[u8]) -> Envelope {
        let stream = StreamId::new(author, scope);
        let prev = self.prev(stream, seq);
        self.envelope_after(author, seq, prev, scope, payload)
    }

    /// An envelope that names `prev` as its predecessor, whatever this
    /// device made before.
    pub fn envelope_after(
        &self,
        author: UserId,
        seq: u64,
        prev: EnvelopeId,
        scope: Scope,
        payload: &[u8],
    ) -> Envelope {
        let stamp = ENVELOPE_EPOCH_MS.saturating_add(seq);
        let header = EnvelopeHeader::new(author, self.id, seq, prev, stamp, scope);
        let payload = Payload::new(payload.to_vec()).expect("payload within the limit");
        let envelope = UnsignedEnvelope { header, payload }.sign(&self.key);
        let mut made = self.made.lock().unwrap_or_else(PoisonError::into_inner);
        made.entry((StreamId::new(author, scope), seq))
            .or_insert_with(|| envelope.id());
        envelope
    }

    /// The latest envelope made for `stream` with a lower seq than `seq`.
    fn prev(&self, stream: StreamId, seq: u64) -> EnvelopeId {
        let made = self.made.lock().unwrap_or_else(PoisonError::into_inner);
        made.range((stream, 0)..(stream, seq))
            .next_back()
            .map_or(FIRST_IN_STREAM, |(_, id)| *id)
    }
}

/// Copies `src` over the start of `dst` (as much as fits).
pub fn overwrite(dst: &mut [u8], src: &[u8]) {
    dst.iter_mut().zip(src).for_each(|(d, s)| *d = *s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_distinct_certified_and_repeatable() {
        let (a, b) = (User::new(1), User::new(2));
        assert_ne!(a.id, b.id);
        assert_ne!(a.id, User::in_domain(1, 1).id);
        assert_eq!(a.id, User::new(1).id);
        let (d1, d2) = (a.device(1), a.device(2));
        assert_ne!(d1.id, d2.id);
        assert_ne!(d1.id, b.device(1).id);
        assert_eq!(d1.certificate.verify().unwrap().user, a.id);
        let envelope = d1.envelope(1, Scope::Friends, b"x");
        assert!(envelope.verify().is_ok());
        assert_eq!(envelope, d1.envelope(1, Scope::Friends, b"x"));
        assert!(a.grant(b.id).verify().is_ok());
        assert!(a.revoke(d1.id).verify().is_ok());
        assert!(a.unfriend(b.id).verify().is_ok());
    }
}
