//! Opening envelopes: check the signature, then decrypt with the keys this
//! device holds. Nothing from the relay is trusted: an envelope whose
//! signature fails is dropped, and a record counts only if its embedded
//! certificate shows the signing device is its author's.

use std::cmp::Ordering;
use std::collections::HashSet;

use cairn_crypto::payload::{self, PayloadBody};
use cairn_crypto::{
    Audience, AudienceId, AudienceKey, Epoch, ExchangeSecret, KeyGrant, KeyLookup, Keyring,
    LinkBundle,
};
use cairn_wire::codec::{self, V1};
use cairn_wire::{DeviceId, Envelope, EnvelopeHeader, EnvelopeId, Scope, UserId};
use serde::{Deserialize, Serialize};

use cairn_crypto::public::{PUBLIC_AUDIENCE, public_audience_key};

use crate::added::Added;
use crate::record::Record;
use crate::revoked::Revoked;

/// A decrypted record with the envelope it came in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Item {
    version: V1,
    pub id: EnvelopeId,
    pub header: EnvelopeHeader,
    /// The audiences the post's key was wrapped for.
    pub audiences: Vec<AudienceId>,
    pub record: Record,
}

impl Item {
    pub fn new(
        id: EnvelopeId,
        header: EnvelopeHeader,
        audiences: Vec<AudienceId>,
        record: Record,
    ) -> Self {
        Self {
            version: V1,
            id,
            header,
            audiences,
            record,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        codec::decode(bytes, 2 * cairn_wire::limits::MAX_PAYLOAD_LEN).ok()
    }

    /// Author order: timestamp, device seq, device id.
    pub fn author_order(&self, other: &Self) -> Ordering {
        author_order(&self.header, &other.header)
    }
}

/// The total order clients show items in.
pub(crate) fn author_order(a: &EnvelopeHeader, b: &EnvelopeHeader) -> Ordering {
    (a.timestamp_ms, a.seq, a.device).cmp(&(b.timestamp_ms, b.seq, b.device))
}

/// What an envelope turned out to be.
#[derive(Debug)]
pub(crate) enum Opened {
    /// A record to keep.
    Item(Box<Item>),
    /// Audience keys granted to this user by the envelope's author.
    Keys(UserId, Vec<KeyGrant>),
    /// A device-link bundle sealed to this device.
    Link(Box<LinkBundle>),
    /// Genuine but not for this device (a grant to someone else...).
    Foreign,
    /// Not openable with the keys held now; try again when keys arrive.
    Pending,
    /// Forged or malformed: dropped.
    Invalid,
    /// By a user this user has not added: dropped unread.
    Stranger,
    /// By a revoked device, past the last envelope of it that counts:
    /// dropped unread.
    Revoked,
}

/// The keys a device opens envelopes with.
#[derive(Debug, Clone)]
pub(crate) struct KeyState {
    pub me: UserId,
    /// Every key held: received grants and the user's own audiences.
    pub keyring: Keyring,
    /// Only the received grants: what is stored (own audiences are in
    /// private records and the identity).
    pub grants: Keyring,
    pub user_exchange: ExchangeSecret,
    pub device_exchange: ExchangeSecret,
    /// Whose envelopes this device reads.
    pub added: Added,
    /// Whose devices no longer count.
    pub revoked: Revoked,
    /// Devices known to be their user's: each record carries its device's
    /// certificate. A grant of the first version, which carried none, is
    /// trusted only from one of these.
    pub vouched: HashSet<(UserId, DeviceId)>,
}

impl KeyState {
    /// Adds every key of one of this user's audiences.
    pub fn add_own(&mut self, audience: &Audience) {
        report(self.keyring.insert_audience(self.me, audience));
    }

    /// Takes note that `item`'s device is its author's (its record's
    /// certificate says so; opening checked it).
    pub fn vouch(&mut self, item: &Item) {
        self.vouched
            .insert((item.header.author, item.header.device));
    }

    fn is_vouched(&self, header: &EnvelopeHeader) -> bool {
        self.vouched.contains(&(header.author, header.device))
    }

    /// Adds keys that `owner` granted to this user.
    /// A key already held for the same audience and epoch is kept: a
    /// different one is reported, never applied.
    pub fn add_grants(&mut self, owner: UserId, keys: Vec<KeyGrant>) {
        report(self.grants.insert(owner, keys.iter().cloned()));
        report(self.keyring.insert(owner, keys));
    }

    /// Opens one envelope. One by a user this user has not added is not
    /// opened at all: whatever it holds (a post, keys) is not for here.
    pub fn open(&self, envelope: &Envelope) -> Opened {
        if !self.added.reads_from(&envelope.header().author) {
            return Opened::Stranger;
        }
        if self.revoked.excludes(envelope.header()) {
            return Opened::Revoked;
        }
        if envelope.verify().is_err() {
            return Opened::Invalid;
        }
        let Ok(decoded) = payload::decode(envelope.payload().as_slice()) else {
            return Opened::Invalid;
        };
        let header = envelope.header();
        let to_me = header.scope == Scope::Direct(self.me);
        match decoded.body() {
            PayloadBody::Post(post) => {
                let audiences = post.wraps.iter().map(|w| w.audience).collect();
                self.open_post(envelope, audiences)
            }
            PayloadBody::Grant(_) if to_me && header.author != self.me => {
                let payload = envelope.payload().as_slice();
                match cairn_crypto::open_grant(header, payload, &self.user_exchange) {
                    Ok(grant) if grant.certified || self.is_vouched(header) => {
                        Opened::Keys(header.author, grant.keys)
                    }
                    Ok(_) => Opened::Pending,
                    Err(_) => Opened::Foreign,
                }
            }
            PayloadBody::Link(_) => {
                let payload = envelope.payload().as_slice();
                match cairn_crypto::open_link(header, payload, &self.device_exchange) {
                    Ok(bundle) => Opened::Link(Box::new(bundle)),
                    Err(_) => Opened::Foreign,
                }
            }
            PayloadBody::Grant(_) => Opened::Foreign,
        }
    }

    fn open_post(&self, envelope: &Envelope, audiences: Vec<AudienceId>) -> Opened {
        let header = envelope.header();
        let lookup = Lookup {
            keys: self,
            author: header.author,
            public: public_audience_key(&header.author),
        };
        let Ok(plaintext) = cairn_crypto::open_envelope(envelope, &lookup) else {
            return Opened::Pending;
        };
        let Ok(record) = Record::decode(&plaintext) else {
            return Opened::Invalid;
        };
        if !record.vouches_for(header) {
            return Opened::Invalid;
        }
        Opened::Item(Box::new(Item::new(
            envelope.id(),
            header.clone(),
            audiences,
            record,
        )))
    }
}

/// Logs keys offered for a slot that already holds another: the first key
/// stays, the other is kept beside it (`cairn_crypto::Keyring::insert`).
fn report(conflicts: Vec<cairn_crypto::KeyConflict>) {
    for conflict in conflicts {
        tracing::warn!(
            owner = %conflict.owner,
            audience = %conflict.audience,
            epoch = conflict.epoch.0,
            "another key was offered for an audience epoch already held; both are kept"
        );
    }
}

struct Lookup<'a> {
    keys: &'a KeyState,
    author: UserId,
    public: AudienceKey,
}

impl KeyLookup for Lookup<'_> {
    fn audience_key(
        &self,
        author: &UserId,
        audience: &AudienceId,
        epoch: Epoch,
    ) -> Option<&AudienceKey> {
        self.audience_keys(author, audience, epoch)
            .into_iter()
            .next()
    }

    fn audience_keys(
        &self,
        author: &UserId,
        audience: &AudienceId,
        epoch: Epoch,
    ) -> Vec<&AudienceKey> {
        if *audience == PUBLIC_AUDIENCE && epoch == Epoch::FIRST && *author == self.author {
            return vec![&self.public];
        }
        self.keys.keyring.audience_keys(author, audience, epoch)
    }
}
