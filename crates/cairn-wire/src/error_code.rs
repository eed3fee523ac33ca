//! The error-code catalogue. `spec/errors.md` lists the same rows; a test
//! fails when the two disagree.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A machine-readable refusal code. Unknown codes decode fine (a newer
/// relay may send them) and show as `unknown`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ErrorCode(pub u16);

/// One row of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorInfo {
    /// The code.
    pub code: ErrorCode,
    /// Its stable snake_case name.
    pub name: &'static str,
    /// Whether the relay closes the connection after sending it.
    pub closes_connection: bool,
    /// What it means, in one sentence.
    pub meaning: &'static str,
}

macro_rules! catalogue {
    ($($konst:ident = $code:literal, $name:literal, $closes:literal, $meaning:literal;)*) => {
        impl ErrorCode {
            $(
                #[doc = $meaning]
                pub const $konst: ErrorCode = ErrorCode($code);
            )*
        }

        /// Every error code, in code order.
        pub const CATALOGUE: &[ErrorInfo] = &[
            $(ErrorInfo {
                code: ErrorCode($code),
                name: $name,
                closes_connection: $closes,
                meaning: $meaning,
            },)*
        ];
    };
}

catalogue! {
    MALFORMED_FRAME = 1, "malformed_frame", true, "A frame body is not the canonical encoding of a frame of the expected kind, or a request frame did not arrive whole within the request timeout.";
    FRAME_TOO_LARGE = 2, "frame_too_large", true, "A frame's length prefix exceeds the frame size limit.";
    UNSUPPORTED_VERSION = 3, "unsupported_version", false, "A structure carries a format version the relay does not speak.";
    UNEXPECTED_FRAME = 4, "unexpected_frame", true, "A well-formed frame that is not valid at this point of the protocol.";
    UNAUTHENTICATED = 10, "unauthenticated", true, "A request came before the connection authenticated.";
    AUTH_FAILED = 11, "auth_failed", true, "The auth proof does not verify against this connection's keying material.";
    BAD_CERTIFICATE = 12, "bad_certificate", true, "The device certificate is not signed by the user's root key.";
    DEVICE_REVOKED = 13, "device_revoked", true, "The device has been revoked by its user.";
    UNKNOWN_DEVICE = 14, "unknown_device", false, "The device is not registered for that user.";
    REGISTRATION_REFUSED = 15, "registration_refused", true, "The relay's registration policy does not admit this new user.";
    DEVICE_BANNED = 16, "device_banned", true, "The relay's operator has banned the device from this relay.";
    USER_REMOVED = 17, "user_removed", true, "The relay's operator has removed the user, and everything its devices stored, from this relay.";
    FORBIDDEN = 20, "forbidden", false, "The device may not read or write that stream.";
    BAD_SIGNATURE = 30, "bad_signature", false, "The envelope's signature does not verify against its device key.";
    NOT_AUTHOR = 31, "not_author", false, "The envelope was not made by the authenticated device.";
    EQUIVOCATION = 32, "equivocation", false, "Another envelope with the same device and sequence number is already stored.";
    SEQ_GAP = 33, "seq_gap", false, "The envelope's sequence number is not the device's next one; the expected one is attached.";
    BROKEN_CHAIN = 34, "broken_chain", false, "The envelope's `prev` is not its device's last envelope in that stream; that envelope's id is attached.";
    BAD_STATEMENT = 40, "bad_statement", false, "A signed statement does not verify or is not the connection user's to make.";
    STALE_STATEMENT = 41, "stale_statement", false, "A statement is older than one already applied for the same subject.";
    FUTURE_STATEMENT = 42, "future_statement", false, "A statement is dated further ahead of the relay's clock than the allowed clock skew.";
    RATE_LIMITED = 50, "rate_limited", false, "Too many requests; the delay before a retry is attached.";
    TOO_MANY_STREAMS = 51, "too_many_streams", true, "Reserved: QUIC stream credit already stops a peer from opening more request streams than allowed.";
    TOO_MANY_SUBSCRIPTIONS = 52, "too_many_subscriptions", false, "The connection holds the most live subscriptions allowed.";
    TOO_MANY_CONNECTIONS = 53, "too_many_connections", true, "The peer's address holds the most connections allowed.";
    IDLE_TIMEOUT = 54, "idle_timeout", true, "Reserved: the QUIC idle timeout closes a silent connection at the transport level.";
    QUOTA_EXCEEDED = 55, "quota_exceeded", false, "The author's storage quota on this relay is used up; the envelope was not stored.";
    INTERNAL = 60, "internal", false, "The relay failed to carry out a valid request; nothing was changed.";
    SHUTTING_DOWN = 61, "shutting_down", true, "The relay is shutting down; reconnect later.";
    STORAGE_FULL = 62, "storage_full", false, "The relay's storage is full (its disk, or the size its operator allows); nothing was stored. Reads and subscriptions go on; try again later.";
}

impl ErrorCode {
    /// The catalogue row, if this code is known.
    pub fn info(self) -> Option<&'static ErrorInfo> {
        CATALOGUE.iter().find(|info| info.code == self)
    }

    /// The stable name, or `unknown`.
    pub fn name(self) -> &'static str {
        self.info().map_or("unknown", |info| info.name)
    }

    /// Whether the relay closes the connection after sending this code
    /// (the catalogue's *closes* column; an unknown code does not).
    pub fn closes_connection(self) -> bool {
        self.info().is_some_and(|info| info.closes_connection)
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}
