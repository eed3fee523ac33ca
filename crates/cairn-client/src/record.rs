//! What cairn clients put inside sealed posts: a [`Record`], a small
//! versioned postcard value that also carries the author device's
//! certificate, so that a reader can check that the device which signed
//! the envelope speaks for its author without trusting the relay.

use cairn_crypto::{Audience, AudienceId, ExchangeKeyAnnouncement};
use cairn_wire::codec::{self, V1};
use cairn_wire::limits::MAX_DEVICES;
use cairn_wire::{
    BoundedVec, DecodeError, DeviceCertificate, DeviceId, DeviceRevocation, EnvelopeHeader,
    EnvelopeId, UserId,
};
use serde::{Deserialize, Serialize};

/// Largest record plaintext (what a post can carry).
pub const MAX_RECORD_LEN: usize = cairn_crypto::MAX_PLAINTEXT_LEN;

/// One item of a user's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    version: V1,
    /// The certificate of the device that signed the envelope.
    pub certificate: DeviceCertificate,
    /// What it says.
    pub body: RecordBody,
    /// In a private record: the newest envelope the signing device held
    /// of each other device of its user, for the user's devices to compare
    /// with what the relay served them (`spec/client.md` section 6.2).
    pub seen: BoundedVec<Head, MAX_DEVICES>,
}

/// The newest envelope a device held of one of its user's devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The device it is of.
    pub device: DeviceId,
    /// Its seq.
    pub seq: u64,
    /// Its id.
    pub id: EnvelopeId,
}

/// The kinds of record. Private-scope records keep the user's own state;
/// friends-scope records are posts and the exchange key announcement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordBody {
    /// A note operation (private scope).
    Note(NoteOp),
    /// A post (friends scope, sealed to one or more audiences).
    Post {
        /// The text.
        text: String,
    },
    /// A friend added or removed (private scope).
    Friend(FriendOp),
    /// The whole state of one of the user's audiences after a change,
    /// keys included (private scope); the latest in author order wins.
    Audience(Audience),
    /// The user exchange key, for friends to seal audience keys to
    /// (friends scope, sealed to the public audience).
    ExchangeKey(ExchangeKeyAnnouncement),
    /// A device certified and named (private scope).
    Device {
        /// Its certificate.
        certificate: DeviceCertificate,
        /// Its name.
        name: String,
    },
    /// A device of the author revoked: readers refuse its envelopes past
    /// `last_seq`, the last the revoking device had seen from it (private
    /// scope for the user's devices; friends scope, sealed to the public
    /// audience, for friends).
    DeviceRevoked {
        /// The revocation, signed by the author's root key.
        revocation: DeviceRevocation,
        /// The device's last envelope that still counts.
        last_seq: u64,
    },
    /// A direct message to one friend (direct scope `Direct(friend)`,
    /// sealed to the private audience and to the author's direct audience
    /// for that friend, `spec/client.md` section 4.1).
    Message {
        /// The text.
        text: String,
    },
    /// One of the user's audiences deleted (private scope): it is gone for
    /// good, whatever snapshot of it comes later in author order.
    AudienceDeleted {
        /// The audience.
        audience: AudienceId,
    },
}

/// A note operation; notes are the fold of these in author order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoteOp {
    /// A new note; its id is this envelope's id.
    Add {
        /// The text.
        text: String,
    },
    /// Replaces a note's text.
    Edit {
        /// The note.
        target: EnvelopeId,
        /// The new text.
        text: String,
    },
    /// Removes a note.
    Remove {
        /// The note.
        target: EnvelopeId,
    },
}

/// A friend added or removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FriendOp {
    /// `name` is `user`.
    Add {
        /// The local name.
        name: String,
        /// The friend.
        user: UserId,
    },
    /// `user` is no longer a friend.
    Remove {
        /// The former friend.
        user: UserId,
    },
}

impl Record {
    /// A record in the current version.
    pub fn new(certificate: DeviceCertificate, body: RecordBody) -> Self {
        Self {
            version: V1,
            certificate,
            body,
            seen: BoundedVec::default(),
        }
    }

    /// The same record with another body.
    #[cfg(test)]
    pub fn with_body(mut self, body: RecordBody) -> Self {
        self.body = body;
        self
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes a record plaintext.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode(bytes, MAX_RECORD_LEN)
    }

    /// Whether the embedded certificate shows that `header.device` is a
    /// device of `header.author`, signed by the author's root key.
    pub fn vouches_for(&self, header: &EnvelopeHeader) -> bool {
        let Ok(body) = self.certificate.verify() else {
            return false;
        };
        body.user == header.author && body.device == header.device
    }
}
