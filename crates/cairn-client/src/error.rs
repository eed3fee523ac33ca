//! The client's one error type, with a [`ErrorKind`] that front ends map
//! to exit codes: every failure a person can act on has its own kind (or
//! variant), so that a front end can say what to do in its own terms. The
//! messages say what happened and never name a front end's commands.

use std::path::PathBuf;

use cairn_wire::{ErrorCode, UserId, WireError};

use crate::connection::{ConnectError, RequestError};

/// Anything the client library can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The home directory holds no identity.
    #[error("no cairn identity in {}", home.display())]
    NotInitialised {
        /// The home directory.
        home: PathBuf,
    },
    /// `init` or `join` on a home that already holds an identity.
    #[error("{} already holds a cairn identity; use another --home", home.display())]
    AlreadyInitialised {
        /// The home directory.
        home: PathBuf,
    },
    /// The passphrase does not open the local store.
    #[error("wrong passphrase (or the local store is damaged)")]
    WrongPassphrase,
    /// No passphrase was available.
    #[error("{0}")]
    PassphraseRequired(String),
    /// Connecting failed (unreachable, pin mismatch, refused at auth).
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A request failed on the way.
    #[error("the connection to the relay failed: {0}")]
    Request(#[from] RequestError),
    /// The relay refused a request.
    #[error("the relay refused: {}", describe_refusal(.0))]
    Refused(WireError),
    /// The relay broke the protocol.
    #[error("the relay broke the protocol: {0}")]
    Protocol(String),

    /// What the relay served breaks what devices signed (`chain.rs`).
    #[error("{0}")]
    History(Box<crate::HistoryBreak>),
    /// No friend by that name.
    #[error("no friend named {0:?}")]
    UnknownFriend(String),
    /// No audience by that name.
    #[error("no audience named {0:?}")]
    UnknownAudience(String),
    /// No note with that id (or prefix).
    #[error("no note {0:?}")]
    UnknownNote(String),
    /// A prefix names more than one note (or device).
    #[error("{prefix:?} matches {}: {}; give more of the id", .matches.len(), .matches.join(", "))]
    Ambiguous {
        /// What was given.
        prefix: String,
        /// Everything it matches.
        matches: Vec<String>,
    },
    /// The name is taken.
    #[error("{0}")]
    Exists(String),
    /// A friend's exchange key has not been seen yet.
    #[error("{name}'s key is not known yet: {name} has not added you as a friend")]
    ExchangeKeyUnknown {
        /// The friend's name.
        name: String,
        /// This user's id, which the friend needs to add them.
        you: UserId,
    },
    /// The device has joined but no linked device has approved it yet.
    #[error("this device is not approved yet")]
    NotLinked,
    /// A command that needs a linked device ran on a pending one.
    #[error("this device is waiting for approval")]
    Pending,
    /// A pending device was prepared by an older version, whose way of
    /// linking is gone; it holds nothing but its own keys.
    #[error("this device was prepared to join by an older version of cairn and cannot finish")]
    OutdatedJoin,
    /// Speaking for the user (approving or revoking a device, adding or
    /// removing a friend) takes the root key, which this device does not
    /// hold.
    #[error("this device does not hold your root key, which this takes")]
    NoRootKey,
    /// This device was revoked by its user (the relay said so): it writes
    /// nothing more.
    #[error("this device has been revoked by its user: it can no longer write or sync")]
    DeviceRevoked,
    /// The link code was approved already.
    #[error("the device {device} was approved already")]
    AlreadyApproved {
        /// The device (`cd1…`).
        device: String,
    },
    /// Invalid user input.
    #[error("{0}")]
    Invalid(String),
    /// The local store failed.
    #[error("local store: {0}")]
    Store(String),
    /// The local store is in use by another cairn process for too long.
    #[error("the local store {} is busy (another cairn process holds it)", .0.display())]
    Busy(PathBuf),
    /// Cryptography refused something (too long, too many audiences...).
    #[error(transparent)]
    Crypto(#[from] cairn_crypto::Error),
}

/// What kind of failure, for exit codes and scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// See [`Error::NotInitialised`].
    NotInitialised,
    /// The relay could not be reached.
    Unreachable,
    /// The relay's certificate is not the pinned one (or, for a home that
    /// trusts the system's certificate authorities, not one they vouch
    /// for).
    FingerprintMismatch,
    /// The relay refused a read or write as outside the device's scope.
    Forbidden,
    /// This device has been revoked by its user.
    Revoked,
    /// The relay's operator has banned this device, or removed its user.
    Banned,
    /// An unknown friend, audience or note.
    Unknown,
    /// Wrong or missing passphrase.
    Passphrase,
    /// The device is not approved yet.
    NotLinked,
    /// What the relay served breaks what devices signed: it left something
    /// out, or a device signed two histories.
    History,
    /// Bad input or a name clash.
    Invalid,
    /// Anything else.
    Other,
}

impl Error {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotInitialised { .. } => ErrorKind::NotInitialised,
            Self::Connect(ConnectError::Unreachable { .. }) => ErrorKind::Unreachable,
            Self::Connect(
                ConnectError::FingerprintMismatch { .. } | ConnectError::Untrusted { .. },
            ) => ErrorKind::FingerprintMismatch,
            Self::Connect(ConnectError::Refused(e)) | Self::Refused(e) => refusal_kind(e),
            Self::Request(RequestError::Closed(e)) => match refusal_kind(e) {
                ErrorKind::Other => ErrorKind::Unreachable,
                kind => kind,
            },
            Self::Request(_) => ErrorKind::Unreachable,
            Self::UnknownFriend(_) | Self::UnknownAudience(_) | Self::UnknownNote(_) => {
                ErrorKind::Unknown
            }
            Self::ExchangeKeyUnknown { .. } => ErrorKind::Unknown,
            Self::WrongPassphrase | Self::PassphraseRequired(_) => ErrorKind::Passphrase,
            Self::NotLinked | Self::Pending => ErrorKind::NotLinked,
            Self::DeviceRevoked => ErrorKind::Revoked,
            Self::History(_) => ErrorKind::History,
            Self::Invalid(_)
            | Self::Exists(_)
            | Self::AlreadyInitialised { .. }
            | Self::OutdatedJoin
            | Self::Ambiguous { .. }
            | Self::NoRootKey
            | Self::AlreadyApproved { .. } => ErrorKind::Invalid,
            _ => ErrorKind::Other,
        }
    }

    /// Whether the relay could not be reached (so work stays queued).
    pub fn is_unreachable(&self) -> bool {
        self.kind() == ErrorKind::Unreachable
    }

    pub(crate) fn store(e: impl std::fmt::Display) -> Self {
        Self::Store(e.to_string())
    }
}

fn refusal_kind(error: &WireError) -> ErrorKind {
    match error.code {
        ErrorCode::FORBIDDEN | ErrorCode::REGISTRATION_REFUSED => ErrorKind::Forbidden,
        ErrorCode::DEVICE_REVOKED | ErrorCode::UNKNOWN_DEVICE => ErrorKind::Revoked,
        ErrorCode::DEVICE_BANNED | ErrorCode::USER_REMOVED => ErrorKind::Banned,
        _ => ErrorKind::Other,
    }
}

/// A refusal in words a person can act on.
fn describe_refusal(error: &WireError) -> String {
    match error.code {
        ErrorCode::FORBIDDEN => format!("forbidden: this device may not do that ({error})"),
        ErrorCode::DEVICE_REVOKED => {
            "this device has been revoked by its user and can no longer sync".to_owned()
        }
        ErrorCode::DEVICE_BANNED => {
            "this device was banned by the relay operator and can no longer use this relay"
                .to_owned()
        }
        ErrorCode::USER_REMOVED => {
            "the relay's operator removed your user from this relay, with everything it stored \
             there; what this device holds is untouched, and `cairn relay set` moves it to \
             another relay"
                .to_owned()
        }
        ErrorCode::REGISTRATION_REFUSED => format!(
            "the relay does not admit this new user: it asks for an invite, or admits only \
             the users on its list ({error})"
        ),
        ErrorCode::STORAGE_FULL => "the relay is out of storage space and stored nothing; \
             tell its operator, and try again later"
            .to_owned(),
        _ => error.to_string(),
    }
}

impl From<redb::Error> for Error {
    fn from(e: redb::Error) -> Self {
        Self::store(e)
    }
}

macro_rules! store_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Self::store(e)
            }
        }
    )*};
}

store_errors!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::DatabaseError
);

macro_rules! crypto_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Self::Crypto(e.into())
            }
        }
    )*};
}

crypto_errors!(
    cairn_crypto::AudienceError,
    cairn_crypto::SealError,
    cairn_crypto::GrantError
);
