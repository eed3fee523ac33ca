//! cairn's end-to-end cryptography, all of it client-side, synchronous and
//! free of I/O.
//!
//! - [`keys`]: the user's root key, device keys, exchange keys and
//!   symmetric keys, as newtypes that zeroize on drop and never print.
//! - [`identity`]: signing device certificates, revocations and friend
//!   grants with the root key, and the verification rules that the relay and
//!   clients share.
//! - [`audience`]: audiences with members and one symmetric key per epoch,
//!   rotated when a member leaves; the keyring a reader opens posts with.
//! - [`post`]: sealing a post under a fresh key, padded to a Padmé bucket,
//!   with that key wrapped once per target audience.
//! - [`grant`]: sealing audience keys and device-link bundles to an X25519
//!   key with HPKE (RFC 9180).
//! - [`payload`]: the versioned payload format and its total, bounded
//!   decoder.
//! - [`public`]: the public audience, whose key anyone who can read the
//!   stream derives (for what is not secret but must be a post).
//! - [`vault`]: secrets at rest under a passphrase (Argon2id, then
//!   XChaCha20-Poly1305 per labelled slot).
//!
//! Every core function takes its randomness as a `&mut impl CryptoRng`, so
//! that the known-answer vectors in `spec/vectors/crypto` can fix every
//! random byte; [`os`] wraps them with the operating system's generator.
//! The byte-level format is specified in `spec/crypto.md`.
#![forbid(unsafe_code)]

pub mod audience;
pub mod error;
pub mod grant;
pub mod identity;
pub mod keys;
pub mod os;
pub mod padding;
pub mod payload;
pub mod post;
pub mod public;
mod secret_codec;
pub mod vault;

pub use audience::{
    Audience, AudienceId, Epoch, KeyConflict, KeyGrant, KeyLookup, Keyring, Member, WrapTarget,
};
pub use error::{
    AudienceError, DecryptionFailed, Error, GrantError, KeyDecodeError, SealError, VerifyError,
};
pub use grant::{
    LinkBundle, LinkSecret, OpenedGrant, open_grant, open_link, open_link_for_code, seal_grant,
    seal_link, seal_link_for_code,
};
pub use identity::{ExchangeKeyAnnouncement, ExchangeKeyBody, FriendSet, UserDevices};
pub use keys::{AudienceKey, DeviceKeys, ExchangeSecret, RootKey};
pub use payload::{PayloadBody, SealedPayload};
pub use post::{MAX_AUDIENCES_PER_POST, MAX_PLAINTEXT_LEN, open_envelope, open_post, seal_post};
