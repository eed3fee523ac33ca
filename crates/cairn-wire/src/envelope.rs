//! The envelope: everything the relay sees of a post.

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bounded::BoundedBytes;
use crate::codec::{self, DecodeError, Version};
use crate::ids::{DeviceId, EnvelopeId, Signature, UserId};
use crate::limits::{MAX_ENVELOPE_LEN, MAX_HEADER_LEN, MAX_PAYLOAD_LEN};
use crate::scope::{Scope, StreamId};
use crate::signing::{self, BadSignature, DOMAIN_ENVELOPE, PublicKey};

/// The opaque, client-encrypted content of an envelope.
pub type Payload = BoundedBytes<MAX_PAYLOAD_LEN>;

/// The envelope's format version: 2 added `prev`, the chain of each
/// device's envelopes in a stream (`spec/protocol.md` section 4).
pub const ENVELOPE_VERSION: u8 = 2;

/// The `prev` of a device's first envelope in a stream: 32 zero bytes.
pub const FIRST_IN_STREAM: EnvelopeId = EnvelopeId::from_bytes([0; 32]);

/// The relay-visible fields of an envelope, in encoding order. Clients bind
/// its encoding into their ciphertext as associated data.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EnvelopeHeader {
    version: Version<ENVELOPE_VERSION>,
    /// The author.
    pub author: UserId,
    /// The author's device that signed the envelope.
    pub device: DeviceId,
    /// The device's sequence number: 1 for its first envelope, then +1.
    pub seq: u64,
    /// The id of the same device's previous envelope in the same stream,
    /// [`FIRST_IN_STREAM`] for its first there: readers tell from it
    /// whether the relay left anything out.
    pub prev: EnvelopeId,
    /// Milliseconds since the Unix epoch, by the author's clock.
    pub timestamp_ms: u64,
    /// Who may read it.
    pub scope: Scope,
}

impl EnvelopeHeader {
    /// A header in the current format version.
    pub fn new(
        author: UserId,
        device: DeviceId,
        seq: u64,
        prev: EnvelopeId,
        timestamp_ms: u64,
        scope: Scope,
    ) -> Self {
        Self {
            version: Version,
            author,
            device,
            seq,
            prev,
            timestamp_ms,
            scope,
        }
    }

    /// The stream the envelope belongs to.
    pub fn stream(&self) -> StreamId {
        StreamId::new(self.author, self.scope)
    }

    /// The canonical encoding of the header alone.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes a header encoded alone, of at most [`MAX_HEADER_LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode_version(bytes, MAX_HEADER_LEN, ENVELOPE_VERSION)
    }
}

/// An envelope before its device signs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedEnvelope {
    /// The relay-visible fields.
    pub header: EnvelopeHeader,
    /// The opaque content.
    pub payload: Payload,
}

impl UnsignedEnvelope {
    /// The bytes the device signs: the envelope's domain separator followed
    /// by the encoding of header and payload.
    pub fn signing_body(&self) -> Vec<u8> {
        signing_body(&self.header, &self.payload)
    }

    /// Signs with the device key. The key must be the one `header.device`
    /// names, or the envelope will not verify.
    pub fn sign(self, device_key: &SigningKey) -> Envelope {
        let signature = signing::sign(device_key, DOMAIN_ENVELOPE, &self.signing_body());
        self.with_signature(signature)
    }

    /// Attaches a signature made elsewhere.
    pub fn with_signature(self, signature: Signature) -> Envelope {
        Envelope {
            header: self.header,
            payload: self.payload,
            signature,
        }
    }
}

/// A signed envelope. Decoding one proves its bytes were a canonical
/// encoding of the current version within the size limits; [`Envelope::verify`]
/// checks the signature.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Envelope {
    header: EnvelopeHeader,
    payload: Payload,
    signature: Signature,
}

impl Envelope {
    /// Decodes one envelope of at most [`MAX_ENVELOPE_LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode_version(bytes, MAX_ENVELOPE_LEN, ENVELOPE_VERSION)
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// The id: SHA-256 of the canonical encoding.
    pub fn id(&self) -> EnvelopeId {
        Self::id_of_encoding(&self.encode())
    }

    /// The id of an envelope from its canonical encoding, for callers that
    /// already hold the bytes.
    pub fn id_of_encoding(bytes: &[u8]) -> EnvelopeId {
        EnvelopeId::from_bytes(Sha256::digest(bytes).into())
    }

    /// Checks the device's signature (strict Ed25519). It does not check
    /// that the device belongs to the author: that takes the device
    /// certificate.
    pub fn verify(&self) -> Result<(), BadSignature> {
        signing::verify(
            self.header.device.as_bytes(),
            DOMAIN_ENVELOPE,
            &signing_body(&self.header, &self.payload),
            &self.signature,
        )
    }

    /// [`Envelope::verify`] with the device's key decoded already;
    /// refused if `key` is not the key of the header's device.
    pub fn verify_by(&self, key: &PublicKey) -> Result<(), BadSignature> {
        if key.as_bytes() != self.header.device.as_bytes() {
            return Err(BadSignature);
        }
        key.verify(
            DOMAIN_ENVELOPE,
            &signing_body(&self.header, &self.payload),
            &self.signature,
        )
    }

    /// The relay-visible fields.
    pub fn header(&self) -> &EnvelopeHeader {
        &self.header
    }

    /// The opaque content.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }

    /// The device's signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The stream the envelope belongs to.
    pub fn stream(&self) -> StreamId {
        self.header.stream()
    }
}

/// Header and payload borrowed, so that signing and verifying encode them
/// without copying the payload first.
#[derive(Serialize)]
struct SigningBody<'a> {
    header: &'a EnvelopeHeader,
    payload: &'a Payload,
}

fn signing_body(header: &EnvelopeHeader, payload: &Payload) -> Vec<u8> {
    codec::encode(&SigningBody { header, payload })
}
