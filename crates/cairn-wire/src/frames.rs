//! Request and response frames of the relay protocol.
//!
//! Each request travels on its own bidirectional QUIC stream as one frame:
//! a 4-byte big-endian body length, then the canonical postcard encoding of
//! a [`Request`]. The relay answers on the same stream with one [`Response`]
//! frame, or, for a subscription, a sequence of them.

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::bounded::{BoundedString, BoundedVec};
use crate::codec::{self, DecodeError};
use crate::envelope::Envelope;
use crate::error_code::ErrorCode;
use crate::ids::{DeviceId, EnvelopeId, LogId, Signature, UserId};
use crate::limits::{
    MAX_BATCH, MAX_CURSORS, MAX_DEVICES, MAX_FRAME_LEN, MAX_INVITE_LEN, MAX_MESSAGE_LEN,
    MAX_PAGE_ENTRIES,
};
use crate::scope::StreamId;
use crate::signing::{self, BadSignature, DOMAIN_AUTH};
use crate::statements::{DeviceCertificate, DeviceRevocation, FriendGrant, FriendRevocation};

/// ALPN protocol id; its number is the protocol's major version.
pub const ALPN: &[u8] = b"cairn/1";

/// TLS exporter label for the auth proof (RFC 8446 section 7.5).
pub const AUTH_EXPORTER_LABEL: &[u8] = b"EXPORTER-cairn-auth-v1";

/// Bytes of exporter keying material the device signs.
pub const AUTH_EXPORTER_LEN: usize = 32;

/// Length of the frame length prefix.
pub const FRAME_HEADER_LEN: usize = 4;

/// A frame's framing is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix exceeds [`MAX_FRAME_LEN`].
    #[error("frame of {len} bytes exceeds the limit of {MAX_FRAME_LEN}")]
    TooLarge {
        /// The announced length.
        len: usize,
    },
    /// Fewer bytes than the prefix announced, or no complete prefix.
    #[error("frame is truncated")]
    Truncated,
    /// The body is not a canonical frame.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl FrameError {
    /// The catalogue code a relay answers this with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::TooLarge { .. } => ErrorCode::FRAME_TOO_LARGE,
            Self::Decode(DecodeError::TooLarge { .. }) => ErrorCode::FRAME_TOO_LARGE,
            Self::Truncated | Self::Decode(_) => ErrorCode::MALFORMED_FRAME,
        }
    }
}

/// Reads a length prefix, refusing lengths over [`MAX_FRAME_LEN`].
pub fn frame_body_len(header: [u8; FRAME_HEADER_LEN]) -> Result<usize, FrameError> {
    let len = usize::try_from(u32::from_be_bytes(header)).unwrap_or(usize::MAX);
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge { len });
    }
    Ok(len)
}

/// Splits one frame off the front of `bytes`: its body and what follows.
pub fn split_frame(bytes: &[u8]) -> Result<(&[u8], &[u8]), FrameError> {
    let (header, rest) = bytes
        .split_first_chunk::<FRAME_HEADER_LEN>()
        .ok_or(FrameError::Truncated)?;
    let len = frame_body_len(*header)?;
    if rest.len() < len {
        return Err(FrameError::Truncated);
    }
    Ok(rest.split_at(len))
}

/// Prefixes an encoded body with its length.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out
}

macro_rules! frame_codec {
    ($ty:ty) => {
        impl $ty {
            /// Decodes a frame body (without its length prefix).
            pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
                codec::decode(body, MAX_FRAME_LEN)
            }

            /// The canonical encoding of the body.
            pub fn encode(&self) -> Vec<u8> {
                codec::encode(self)
            }

            /// The length-prefixed frame, encoded in place after its
            /// prefix rather than copied behind it.
            pub fn to_frame(&self) -> Vec<u8> {
                let len = codec::encoded_len(self);
                let mut out = Vec::with_capacity(FRAME_HEADER_LEN + len);
                out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
                codec::encode_into(self, &mut out);
                out
            }

            /// Decodes exactly one whole length-prefixed frame.
            pub fn from_frame(bytes: &[u8]) -> Result<Self, FrameError> {
                let (body, rest) = split_frame(bytes)?;
                if !rest.is_empty() {
                    return Err(DecodeError::TrailingBytes(rest.len()).into());
                }
                Ok(Self::decode(body)?)
            }
        }
    };
}

/// What a device asks of the relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Prove possession of a certified device key; must be the first request.
    Authenticate(AuthRequest),
    /// Push an outbox and pull everything new past the device's cursors.
    Hello(HelloRequest),
    /// Append envelopes by this device.
    Append(AppendRequest),
    /// Read a page of a stream.
    Read(ReadRequest),
    /// Read a stream's backlog, then follow it live.
    Subscribe(SubscribeRequest),
    /// Remember that this device has seen a stream up to a position.
    Ack(Cursor),
    /// Register another device of the connection's user.
    RegisterDevice(DeviceCertificate),
    /// Revoke a device of the connection's user.
    RevokeDevice(DeviceRevocation),
    /// Let a user read the connection user's friends scope.
    GrantFriend(FriendGrant),
    /// Withdraw such a grant.
    RevokeFriend(FriendRevocation),
    /// Per-device sync positions of the connection's user.
    Status,
    /// Prove possession of a device key that another device of the user
    /// registered, without holding its certificate yet (a device being
    /// linked); must be the first request. Answered with
    /// [`Response::Enrolled`].
    Enrol(EnrolRequest),
}

frame_codec!(Request);

/// What the relay answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The connection is authenticated.
    Authenticated(AuthOk),
    /// The answer to a hello.
    Synced(SyncResponse),
    /// One outcome per appended envelope, in request order.
    Appended(BoundedVec<AppendOutcome, MAX_BATCH>),
    /// A page of a stream.
    Page(StreamPage),
    /// One step of a subscription.
    Subscription(SubscriptionEvent),
    /// A request without a result succeeded.
    Done,
    /// The answer to a status request.
    Status(StatusResponse),
    /// The whole request was refused.
    Error(WireError),
    /// The answer to an enrolment: authenticated, with the certificate
    /// the user's other device registered.
    Enrolled(Box<Enrolment>),
}

frame_codec!(Response);

/// A connection-bound proof that the device holds its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRequest {
    /// The device's certificate from its user's root key.
    pub certificate: DeviceCertificate,
    /// The device key's signature over the connection's exporter keying
    /// material (see [`auth_signing_body`]).
    pub proof: Signature,
    /// An invite code, for relays whose registration policy asks for one.
    pub invite: Option<BoundedString<MAX_INVITE_LEN>>,
}

impl AuthRequest {
    /// The proof a device makes: its key's signature over
    /// `cairn/auth/v1 || 0x00 || exporter`, where `exporter` is
    /// [`AUTH_EXPORTER_LEN`] bytes exported from the TLS session with label
    /// [`AUTH_EXPORTER_LABEL`] and no context, so the proof is worthless on
    /// any other connection.
    pub fn prove(device_key: &SigningKey, exporter: &[u8; AUTH_EXPORTER_LEN]) -> Signature {
        signing::sign(device_key, DOMAIN_AUTH, exporter)
    }

    /// Checks the proof against this connection's exporter keying material.
    /// The certificate is checked separately, against the user's root key.
    pub fn verify_proof(&self, exporter: &[u8; AUTH_EXPORTER_LEN]) -> Result<(), BadSignature> {
        let device = self.certificate.body().device;
        signing::verify(device.as_bytes(), DOMAIN_AUTH, exporter, &self.proof)
    }
}

/// A connection-bound proof by a device that has no certificate yet: its
/// user registered it from another device, and the relay holds the
/// certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolRequest {
    /// The user the device was registered for.
    pub user: UserId,
    /// The device (its public signing key).
    pub device: DeviceId,
    /// The device key's signature over the connection's exporter keying
    /// material, exactly as in [`AuthRequest`].
    pub proof: Signature,
}

impl EnrolRequest {
    /// Checks the proof against this connection's exporter keying material
    /// and the device key the request names.
    pub fn verify_proof(&self, exporter: &[u8; AUTH_EXPORTER_LEN]) -> Result<(), BadSignature> {
        signing::verify(self.device.as_bytes(), DOMAIN_AUTH, exporter, &self.proof)
    }
}

/// An enrolled device: authenticated, and the certificate it can
/// authenticate with from now on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolment {
    /// As for [`Request::Authenticate`] (`registered` is always false).
    pub ok: AuthOk,
    /// The certificate registered for the device.
    pub certificate: DeviceCertificate,
}

/// The connection is authenticated as this device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthOk {
    /// The user.
    pub user: UserId,
    /// The device.
    pub device: DeviceId,
    /// Whether this connection registered the user.
    pub registered: bool,
    /// The relay's log: another id than last time means the relay's
    /// positions no longer continue the ones the client read
    /// (`spec/client.md` section 6.1).
    pub log: LogId,
}

/// A position in one stream: the last position seen (0: nothing yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cursor {
    /// The stream.
    pub stream: StreamId,
    /// The last position seen.
    pub position: u64,
}

/// Push an outbox and pull what is new.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloRequest {
    /// Cursors the device holds; for streams it omits, the relay uses the
    /// positions this device last acknowledged.
    pub cursors: BoundedVec<Cursor, MAX_CURSORS>,
    /// Envelopes by this device, in sequence order.
    pub outbox: BoundedVec<Envelope, MAX_BATCH>,
}

/// The answer to a hello.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// One outcome per outbox envelope, in order.
    pub acks: BoundedVec<AppendOutcome, MAX_BATCH>,
    /// What is new, per readable stream, past the cursors.
    pub pages: BoundedVec<StreamPage, MAX_CURSORS>,
    /// Whether more is waiting: say hello again with the new cursors.
    pub more: bool,
}

/// Append envelopes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendRequest {
    /// Envelopes by this device, in sequence order.
    pub envelopes: BoundedVec<Envelope, MAX_BATCH>,
}

/// The fate of one appended envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppendOutcome {
    /// Durably stored now.
    Stored(AppendAck),
    /// Already stored earlier; this is its original position.
    Duplicate(AppendAck),
    /// Refused; nothing was stored.
    Refused(WireError),
}

/// Where an envelope was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendAck {
    /// The envelope's id.
    pub id: EnvelopeId,
    /// Its position in its stream.
    pub position: u64,
}

/// Read a stream after a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadRequest {
    /// The stream.
    pub stream: StreamId,
    /// Entries after this position (0: from the start).
    pub after: u64,
    /// Most entries wanted; the relay may return fewer.
    pub limit: u32,
}

/// Read a stream after a position, then follow it live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeRequest {
    /// The stream.
    pub stream: StreamId,
    /// Entries after this position (0: from the start).
    pub after: u64,
}

/// One stored envelope and its position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The position in its stream.
    pub position: u64,
    /// The envelope.
    pub envelope: Envelope,
}

/// An [`Entry`] by reference, for encoding without a copy of its envelope.
#[derive(Serialize)]
struct EntryRef<'a> {
    position: u64,
    envelope: &'a Envelope,
}

/// The encoding of `Entry { position, envelope }`, made without copying
/// the envelope: a relay encodes each live entry once, whatever the number
/// of subscribers it goes to.
pub fn encode_entry(position: u64, envelope: &Envelope) -> Vec<u8> {
    codec::encode(&EntryRef { position, envelope })
}

/// The encoding of `Entry { position, envelope }` from the envelope's own
/// encoding (`Envelope::encode`), without decoding it: a relay serves
/// stored envelopes as they were stored.
pub fn entry_encoding(position: u64, envelope_encoding: &[u8]) -> Vec<u8> {
    let position = codec::encode(&position);
    let mut out = Vec::with_capacity(position.len() + envelope_encoding.len());
    out.extend(position);
    out.extend_from_slice(envelope_encoding);
    out
}

/// The start of the frame of `Response::Subscription(SubscriptionEvent::
/// Entries(..))` for `count` entries whose encodings ([`encode_entry`])
/// take `entries_len` bytes together: the length prefix and the body up to
/// the first entry. It followed by those encodings, in order, is byte for
/// byte that frame's `to_frame()`, so that a relay can send entries
/// encoded once to every subscriber without encoding or copying them for
/// each. `None` past [`MAX_PAGE_ENTRIES`] entries or [`MAX_FRAME_LEN`]
/// bytes, which no frame may carry.
pub fn live_entries_frame_header(count: usize, entries_len: usize) -> Option<Vec<u8>> {
    if count > MAX_PAGE_ENTRIES {
        return None;
    }
    let none = Response::Subscription(SubscriptionEvent::Entries(BoundedVec::empty()));
    let mut prefix = codec::encode(&none);
    // The empty sequence's length, one byte (0); postcard writes a
    // sequence's length as the varint a u64 of the same value takes.
    prefix.pop();
    prefix.extend(codec::encode(&u64::try_from(count).ok()?));
    let body = prefix.len().checked_add(entries_len)?;
    if body > MAX_FRAME_LEN {
        return None;
    }
    let mut header = Vec::with_capacity(FRAME_HEADER_LEN + prefix.len());
    header.extend_from_slice(&u32::try_from(body).ok()?.to_be_bytes());
    header.extend(prefix);
    Some(header)
}

/// Consecutive entries of one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamPage {
    /// The stream.
    pub stream: StreamId,
    /// Entries in position order, with no gaps (after `expired.through`
    /// when the read started below it).
    pub entries: BoundedVec<Entry, MAX_PAGE_ENTRIES>,
    /// Whether entries past this page exist.
    pub more: bool,
    /// Present when the read started below what the relay still holds:
    /// what it no longer serves.
    pub expired: Option<Box<Expired>>,
}

/// Positions of a stream the relay no longer serves: removed by its
/// retention policy, or with their user (`spec/protocol.md` section 7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expired {
    /// Positions `1..=through` are gone.
    pub through: u64,
    /// Each device's last envelope among them, which the first envelope
    /// the device has past `through` names as its predecessor.
    pub heads: BoundedVec<ExpiredHead, MAX_DEVICES>,
}

/// A device's last envelope that the relay no longer serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiredHead {
    /// The device.
    pub device: DeviceId,
    /// Its seq.
    pub seq: u64,
    /// Its id.
    pub id: EnvelopeId,
}

/// One step of a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubscriptionEvent {
    /// Entries in position order, continuing the previous ones with no gap.
    Entries(BoundedVec<Entry, MAX_PAGE_ENTRIES>),
    /// The backlog is delivered up to this position; what follows is live.
    Live {
        /// The last position delivered.
        position: u64,
    },
    /// The relay ends the subscription (access revoked, shutting down...).
    End(WireError),
    /// The positions owed next are gone (see [`StreamPage::expired`]);
    /// entries continue after `through`.
    Expired(Expired),
}

/// Sync positions of the connection user's devices.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// One row per device ever registered.
    pub devices: BoundedVec<DeviceStatus, MAX_DEVICES>,
}

/// One device's registration and sync positions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceStatus {
    /// The device.
    pub device: DeviceId,
    /// Whether it is revoked.
    pub revoked: bool,
    /// Its last stored sequence number (0: none).
    pub last_seq: u64,
    /// The positions it has acknowledged, per stream.
    pub acked: BoundedVec<Cursor, MAX_CURSORS>,
}

/// A refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// The catalogue code.
    pub code: ErrorCode,
    /// Human-readable detail; never secret, never about other users' data.
    pub message: BoundedString<MAX_MESSAGE_LEN>,
    /// Machine-readable detail for codes that carry one.
    pub detail: ErrorDetail,
}

impl WireError {
    /// A refusal with a message and no detail.
    pub fn new(code: ErrorCode, message: &str) -> Self {
        Self {
            code,
            message: BoundedString::truncating(message),
            detail: ErrorDetail::None,
        }
    }

    /// Attaches machine-readable detail.
    pub fn with_detail(mut self, detail: ErrorDetail) -> Self {
        self.detail = detail;
        self
    }
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for WireError {}

/// Machine-readable detail of a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorDetail {
    /// Nothing more.
    None,
    /// With `seq_gap`: the sequence number the relay expects next.
    ExpectedSeq(u64),
    /// With `rate_limited`: milliseconds to wait before retrying.
    RetryAfterMs(u64),
    /// With `equivocation`: the stored envelope of that device and seq;
    /// with `broken_chain`: the device's last stored envelope in that
    /// stream. Evidence a client can show and act on.
    Stored(EnvelopeId),
}
