//! Canonical postcard encoding.
//!
//! Every value has exactly one encoding. A decoder refuses input longer than
//! the limit for its type before parsing, refuses trailing bytes, and refuses
//! any input that does not re-encode to the same bytes (for example an
//! over-long varint), so that ids and signatures computed over encodings are
//! unambiguous.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The only format version this crate speaks.
pub const FORMAT_VERSION: u8 = 1;

/// Bytes could not be decoded into the expected value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is longer than the limit for its type.
    #[error("{len} bytes exceed the limit of {max}")]
    TooLarge {
        /// Input length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The leading version byte names a format this crate does not speak.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u8),
    /// The bytes are not an encoding of the expected type (truncated, a bad
    /// tag or varint, a length over its field's limit, invalid UTF-8...).
    #[error("malformed encoding: {0}")]
    Malformed(String),
    /// A complete value was followed by more bytes.
    #[error("{0} trailing bytes after a complete value")]
    TrailingBytes(usize),
    /// The value decoded but does not re-encode to the same bytes.
    #[error("encoding is not canonical")]
    NonCanonical,
}

impl DecodeError {
    /// A stable name for the kind of error, as used by the test vectors.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::UnsupportedVersion(_) => "unsupported_version",
            Self::Malformed(_) => "malformed",
            Self::TrailingBytes(_) => "trailing_bytes",
            Self::NonCanonical => "non_canonical",
        }
    }
}

/// Encodes `value` canonically.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialization into a growable buffer only fails for serde features that
    // postcard lacks (sequences of unknown length, `serialize_any`), which no
    // type in this crate uses; a failure here is a bug in this crate, never
    // something a peer can cause.
    #[allow(clippy::expect_used)]
    postcard::to_allocvec(value).expect("cairn-wire types always serialize")
}

/// Decodes a value of at most `max` bytes, insisting on the canonical form.
pub fn decode<T: DeserializeOwned + Serialize>(bytes: &[u8], max: usize) -> Result<T, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    let (value, rest) =
        postcard::take_from_bytes::<T>(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    if encode(&value) != bytes {
        return Err(DecodeError::NonCanonical);
    }
    Ok(value)
}

/// Like [`decode`], for types whose encoding starts with a version byte:
/// an unknown version is reported as such rather than as malformed.
pub fn decode_versioned<T: DeserializeOwned + Serialize>(
    bytes: &[u8],
    max: usize,
) -> Result<T, DecodeError> {
    match bytes.first() {
        Some(&v) if v != FORMAT_VERSION && bytes.len() <= max => {
            Err(DecodeError::UnsupportedVersion(v))
        }
        _ => decode(bytes, max),
    }
}

/// The version field of a versioned structure: encodes as the byte `0x01`
/// and decodes from nothing else, so a value of a versioned type cannot
/// exist with another version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct V1;

impl Serialize for V1 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(FORMAT_VERSION)
    }
}

impl<'de> Deserialize<'de> for V1 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match u8::deserialize(deserializer)? {
            FORMAT_VERSION => Ok(V1),
            other => Err(serde::de::Error::custom(format_args!(
                "unsupported format version {other}"
            ))),
        }
    }
}
