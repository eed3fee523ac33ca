//! Identifiers and public keys, each with one human text form.
//!
//! The text form is Bech32m (BIP-350): a prefix naming the kind of value,
//! the separator `1`, the bytes in base32 and a six-character checksum that
//! catches any typo of up to four characters. Parsing demands the right
//! prefix, the Bech32m checksum and the exact byte length.

use std::fmt;
use std::str::FromStr;

use bech32::primitives::decode::CheckedHrpstring;
use bech32::{Bech32m, Hrp};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::fixed;

/// A text form was not a valid id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdParseError {
    /// Not Bech32m text, or its checksum does not match (a typo).
    #[error("not a valid {kind}: {reason}")]
    Invalid {
        /// What was expected, e.g. "user id".
        kind: &'static str,
        /// What the decoder found wrong.
        reason: String,
    },
    /// A well-formed id of another kind, e.g. a device id where a user id
    /// was expected.
    #[error("expected a {kind} (prefix `{expected}1`), found prefix `{found}1`")]
    WrongPrefix {
        /// What was expected.
        kind: &'static str,
        /// The prefix that kind uses.
        expected: &'static str,
        /// The prefix that was found.
        found: String,
    },
    /// The right prefix and checksum but the wrong number of bytes.
    #[error("a {kind} has {expected} bytes, found {found}")]
    WrongLength {
        /// What was expected.
        kind: &'static str,
        /// The byte length of that kind.
        expected: usize,
        /// The byte length found.
        found: usize,
    },
}

macro_rules! byte_id {
    ($(#[$meta:meta])* $name:ident, $len:expr, $hrp:literal, $kind:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;
            /// Prefix of the text form.
            pub const PREFIX: &'static str = $hrp;

            /// Wraps raw bytes.
            pub const fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// The text form, e.g. for the CLI and for logs.
            pub fn to_text(&self) -> String {
                encode_text($hrp, &self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_text())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_text())
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                decode_text::<$len>($hrp, $kind, text).map(Self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                fixed::serialize(&self.0, serializer)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                fixed::deserialize(deserializer).map(Self)
            }
        }
    };
}

byte_id!(
    /// A user: the user's ed25519 root public key.
    UserId, 32, "cu", "user id"
);
byte_id!(
    /// A device: the device's ed25519 signing public key, certified by the
    /// user's root key.
    DeviceId, 32, "cd", "device id"
);
byte_id!(
    /// An envelope: SHA-256 of its canonical encoding.
    EnvelopeId, 32, "ce", "envelope id"
);
byte_id!(
    /// An X25519 public key to which key grants are sealed: a device's own,
    /// or the exchange key a user shares across their devices.
    ExchangeKey, 32, "cx", "exchange key"
);
byte_id!(
    /// A relay's log: random, chosen when its database is created and
    /// chosen again when a backup is restored, so that clients can tell a
    /// log that went back in time from the one they read.
    LogId, 16, "cl", "log id"
);
byte_id!(
    /// An Ed25519 signature (R || S).
    Signature, 64, "cs", "signature"
);

fn encode_text(hrp: &'static str, bytes: &[u8]) -> String {
    // Every prefix is a short lowercase ASCII literal and every id is far
    // below Bech32m's length limit, so neither step can fail for our types;
    // the fallback keeps this total anyway.
    match Hrp::parse(hrp) {
        Ok(hrp) => bech32::encode::<Bech32m>(hrp, bytes).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

fn decode_text<const N: usize>(
    hrp: &'static str,
    kind: &'static str,
    text: &str,
) -> Result<[u8; N], IdParseError> {
    let checked = CheckedHrpstring::new::<Bech32m>(text).map_err(|e| IdParseError::Invalid {
        kind,
        reason: e.to_string(),
    })?;
    let found = checked.hrp();
    if found.as_str() != hrp {
        return Err(IdParseError::WrongPrefix {
            kind,
            expected: hrp,
            found: found.to_lowercase(),
        });
    }
    let bytes: Vec<u8> = checked.byte_iter().collect();
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| IdParseError::WrongLength {
        kind,
        expected: N,
        found: bytes.len(),
    })
}
