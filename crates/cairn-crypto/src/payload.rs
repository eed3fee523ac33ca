//! The payload format: what cairn-crypto puts in `Envelope.payload`.
//!
//! A canonical postcard encoding whose first byte is the format version
//! (`0x01`), then the kind of payload. `spec/crypto.md` gives it byte for
//! byte. [`decode`] is total and bounded: it refuses more than
//! [`MAX_PAYLOAD_LEN`] bytes before parsing, every length prefix is checked
//! against its field's limit, and non-canonical encodings are refused.

use cairn_wire::codec::{self, V1};
use cairn_wire::limits::MAX_PAYLOAD_LEN;
use cairn_wire::{BoundedBytes, BoundedVec, DecodeError, Payload};
use serde::{Deserialize, Serialize};

use crate::audience::{AudienceId, Epoch};

/// Most key wraps one post may carry: one per target audience.
pub const MAX_WRAPS: usize = 16;

/// Length of an XChaCha20-Poly1305 nonce.
pub const XNONCE_LEN: usize = 24;
/// Length of a Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// Length of an X25519 HPKE encapsulated key.
pub const ENC_LEN: usize = 32;

/// A decoded payload. Decoding proves only that the bytes are well formed;
/// opening it is what authenticates them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedPayload {
    version: V1,
    body: PayloadBody,
}

/// The kinds of payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PayloadBody {
    /// Tag 0: a post, readable by the members of its target audiences.
    Post(SealedPost),
    /// Tag 1: audience keys sealed to a member's exchange key.
    Grant(HpkeSealed),
    /// Tag 2: a device-link bundle sealed to a new device's exchange key.
    Link(HpkeSealed),
}

/// A post: its key wrapped per audience, and its padded content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedPost {
    /// One wrap of the post key per target audience.
    pub wraps: BoundedVec<KeyWrap, MAX_WRAPS>,
    /// The content's XChaCha20-Poly1305 nonce.
    pub nonce: [u8; XNONCE_LEN],
    /// The padded content, encrypted, followed by its tag.
    pub ciphertext: BoundedBytes<MAX_PAYLOAD_LEN>,
}

/// The post key, encrypted under one audience's key at one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyWrap {
    /// The audience.
    pub audience: AudienceId,
    /// The epoch whose key wraps.
    pub epoch: Epoch,
    /// The wrap's XChaCha20-Poly1305 nonce.
    pub nonce: [u8; XNONCE_LEN],
    /// The encrypted 32-byte post key.
    pub wrapped_key: [u8; 32],
    /// The wrap's tag.
    pub tag: [u8; TAG_LEN],
}

/// An HPKE single-shot ciphertext (RFC 9180 base mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HpkeSealed {
    /// The encapsulated key: the sender's ephemeral X25519 public key.
    pub enc: [u8; ENC_LEN],
    /// The sealed plaintext, followed by its tag.
    pub ciphertext: BoundedBytes<MAX_PAYLOAD_LEN>,
}

/// Decodes a payload of at most [`MAX_PAYLOAD_LEN`] bytes. Total: any input
/// gives a value or an error, never a panic.
pub fn decode(bytes: &[u8]) -> Result<SealedPayload, DecodeError> {
    codec::decode_versioned(bytes, MAX_PAYLOAD_LEN)
}

impl SealedPayload {
    /// A payload in the current version.
    pub fn new(body: PayloadBody) -> Self {
        Self { version: V1, body }
    }

    /// What kind of payload this is, and its fields.
    pub fn body(&self) -> &PayloadBody {
        &self.body
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// The encoding as an envelope payload, or its length if too long.
    pub fn to_payload(&self) -> Result<Payload, usize> {
        let bytes = self.encode();
        let len = bytes.len();
        Payload::new(bytes).map_err(|_| len)
    }
}
