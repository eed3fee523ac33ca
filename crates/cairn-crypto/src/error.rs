//! One error type per operation, each convertible into the crate-wide
//! [`Error`].
//!
//! Every failure to open something (a post, a grant, a device-link bundle)
//! is the one opaque [`DecryptionFailed`]: a malformed payload, a missing
//! key, a wrong header, a flipped bit and a truncation all look the same,
//! so that a reader's answers teach an attacker nothing.

use cairn_wire::DecodeError;

/// Something could not be opened. Deliberately says nothing about why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("decryption failed")]
pub struct DecryptionFailed;

/// A post could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The plaintext is longer than [`crate::MAX_PLAINTEXT_LEN`].
    #[error("plaintext of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// Plaintext length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A post must target at least one audience.
    #[error("a post must target at least one audience")]
    NoAudience,
    /// More target audiences than [`crate::MAX_AUDIENCES_PER_POST`].
    #[error("{count} target audiences exceed the limit of {max}")]
    TooManyAudiences {
        /// Number of targets.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The same audience appears twice among the targets.
    #[error("an audience is targeted twice")]
    DuplicateAudience,
    /// The cipher refused its input. Cannot happen within the size limits;
    /// kept so that a library bug surfaces as an error, not a panic.
    #[error("the cipher refused its input")]
    Cipher,
}

/// A key grant or device-link bundle could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GrantError {
    /// A grant must carry at least one key.
    #[error("a grant must carry at least one key")]
    Empty,
    /// More keys than one grant or bundle may carry.
    #[error("{count} keys exceed the limit of {max}")]
    TooManyKeys {
        /// Number of keys.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The sealed message does not fit in an envelope payload.
    #[error("sealed message of {len} bytes exceeds the payload limit of {max}")]
    TooLarge {
        /// Encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Key grants travel in direct envelopes only.
    #[error("a key grant must travel in a direct envelope")]
    NotDirect,
    /// The recipient's exchange key is unusable (a low-order point).
    #[error("the recipient's exchange key is unusable")]
    BadRecipientKey,
    /// A device-link bundle's root key is not the envelope author's.
    #[error("the bundle's root key does not belong to the envelope author")]
    WrongUser,
    /// A grant's certificate is not the envelope's device's, certified by
    /// the envelope's author.
    #[error("the grant's certificate is not that of the envelope's device and author")]
    WrongCertificate,
}

/// An audience operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AudienceError {
    /// The user is not a member.
    #[error("not a member of the audience")]
    NotAMember,
    /// The audience already has [`crate::audience::MAX_MEMBERS`] members.
    #[error("the audience is full ({max} members)")]
    TooManyMembers {
        /// The limit.
        max: usize,
    },
    /// The name is longer than [`crate::audience::MAX_NAME_LEN`] bytes.
    #[error("audience name of {len} bytes exceeds the limit of {max}")]
    NameTooLong {
        /// Name length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The epoch counter is exhausted; make a new audience.
    #[error("no epochs left")]
    EpochsExhausted,
    /// The audience holds [`crate::audience::MAX_EPOCHS`] epoch keys already.
    #[error("the audience holds the maximum of {max} epochs")]
    TooManyEpochs {
        /// The limit.
        max: usize,
    },
}

/// Stored secret material could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyDecodeError {
    /// Not a canonical encoding of the current version.
    #[error("malformed secret encoding: {0}")]
    Malformed(#[from] DecodeError),
    /// A valid encoding of another kind of secret.
    #[error("expected a {expected}, found another kind of secret")]
    WrongKind {
        /// What was expected.
        expected: &'static str,
    },
}

/// A signed statement or envelope does not establish what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// Signed by, or about, another user than expected.
    #[error("statement is about another user")]
    WrongUser,
    /// The device has no valid certificate.
    #[error("device is not certified")]
    UnknownDevice,
    /// The device was revoked; it stays revoked.
    #[error("device is revoked")]
    Revoked,
}

impl From<cairn_wire::BadSignature> for VerifyError {
    fn from(_: cairn_wire::BadSignature) -> Self {
        Self::BadSignature
    }
}

/// Any error of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// See [`DecryptionFailed`].
    #[error(transparent)]
    DecryptionFailed(#[from] DecryptionFailed),
    /// See [`SealError`].
    #[error(transparent)]
    Seal(#[from] SealError),
    /// See [`GrantError`].
    #[error(transparent)]
    Grant(#[from] GrantError),
    /// See [`AudienceError`].
    #[error(transparent)]
    Audience(#[from] AudienceError),
    /// See [`KeyDecodeError`].
    #[error(transparent)]
    KeyDecode(#[from] KeyDecodeError),
    /// See [`VerifyError`].
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// A public structure (payload, statement) did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}
