//! cairn's relay-visible data model and its canonical encoding.
//!
//! Everything here is synchronous and free of I/O: it parses, encodes and
//! verifies, so that it can be fuzzed and property-tested. Every decoder is
//! total (it returns an error, never panics) and bounded (it refuses input
//! over the limits in [`limits`] before allocating for it).
#![forbid(unsafe_code)]

pub mod bounded;
pub mod codec;
pub mod envelope;
pub mod error_code;
mod fingerprint;
mod fixed;
pub mod frames;
pub mod ids;
pub mod limits;
pub mod scope;
pub mod signing;
pub mod statements;
mod verify_memo;

pub use bounded::{BoundedBytes, BoundedString, BoundedVec, TooLong};
pub use codec::DecodeError;
pub use envelope::{
    ENVELOPE_VERSION, Envelope, EnvelopeHeader, FIRST_IN_STREAM, Payload, UnsignedEnvelope,
};
pub use error_code::{CATALOGUE, ErrorCode, ErrorInfo};
pub use fingerprint::{Fingerprint, FingerprintParseError};
pub use frames::{
    AppendAck, AppendOutcome, AppendRequest, AuthOk, AuthRequest, Cursor, DeviceStatus,
    EnrolRequest, Enrolment, Entry, ErrorDetail, Expired, ExpiredHead, FrameError, HelloRequest,
    ReadRequest, Request, Response, StatusResponse, StreamPage, SubscribeRequest,
    SubscriptionEvent, SyncResponse, WireError,
};
pub use ids::{DeviceId, EnvelopeId, ExchangeKey, IdParseError, LogId, Signature, UserId};
pub use scope::{Scope, StreamId};
pub use signing::{BadSignature, PublicKey};
pub use statements::{
    DeviceCertificate, DeviceCertificateBody, DeviceRevocation, DeviceRevocationBody, FriendGrant,
    FriendGrantBody, FriendRevocation, FriendRevocationBody, Signed, Statement,
};

/// Re-exported so that callers sign with the same ed25519 implementation.
pub use ed25519_dalek::SigningKey;
