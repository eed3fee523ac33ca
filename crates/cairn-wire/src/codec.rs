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
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(value));
    encode_into(value, &mut out);
    out
}

/// Appends the canonical encoding of `value` to `out`. Callers reserve
/// [`encoded_len`] first, so that a large frame is written in one
/// allocation instead of being copied again and again while it grows.
pub(crate) fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    // Serialization only fails for serde features that postcard lacks
    // (sequences of unknown length, `serialize_any`), which no type in this
    // crate uses, and `Append` never refuses a byte; a failure here is a
    // bug in this crate, never something a peer can cause.
    #[allow(clippy::expect_used)]
    postcard::serialize_with_flavor(value, Append(out)).expect("cairn-wire types always serialize");
}

/// Length of the canonical encoding of `value`, without making it.
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> usize {
    postcard::serialize_with_flavor(value, Count(0)).unwrap_or(0)
}

/// Whether `bytes` is exactly the canonical encoding of `value`, checked
/// while serializing, without making a copy.
fn encodes_to<T: Serialize + ?Sized>(value: &T, bytes: &[u8]) -> bool {
    postcard::serialize_with_flavor(value, Compare(bytes)).unwrap_or(false)
}

/// Appends to a vector, copying slices whole.
struct Append<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Counts bytes instead of writing them.
struct Count(usize);

impl postcard::ser_flavors::Flavor for Count {
    type Output = usize;

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0 = self.0.saturating_add(data.len());
        Ok(())
    }

    fn try_push(&mut self, _: u8) -> postcard::Result<()> {
        self.0 = self.0.saturating_add(1);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.0)
    }
}

/// Compares each byte written with the next expected one and stops at the
/// first difference; finishes true only if every expected byte was written.
struct Compare<'a>(&'a [u8]);

impl postcard::ser_flavors::Flavor for Compare<'_> {
    type Output = bool;

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        match self.0.split_at_checked(data.len()) {
            Some((head, rest)) if head == data => {
                self.0 = rest;
                Ok(())
            }
            _ => Err(postcard::Error::SerializeBufferFull),
        }
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        match self.0.split_first() {
            Some((&head, rest)) if head == data => {
                self.0 = rest;
                Ok(())
            }
            _ => Err(postcard::Error::SerializeBufferFull),
        }
    }

    fn finalize(self) -> postcard::Result<bool> {
        Ok(self.0.is_empty())
    }
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
    if !encodes_to(&value, bytes) {
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
    decode_version(bytes, max, FORMAT_VERSION)
}

/// Like [`decode_versioned`], for a structure in its format `version`.
pub fn decode_version<T: DeserializeOwned + Serialize>(
    bytes: &[u8],
    max: usize,
    version: u8,
) -> Result<T, DecodeError> {
    match bytes.first() {
        Some(&v) if v != version && bytes.len() <= max => Err(DecodeError::UnsupportedVersion(v)),
        _ => decode(bytes, max),
    }
}

/// The version field of a versioned structure: encodes as the byte `N`
/// and decodes from nothing else, so a value of a versioned type cannot
/// exist with another version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version<const N: u8>;

/// The first version of a structure.
pub type V1 = Version<FORMAT_VERSION>;

/// The first version, as a value.
#[allow(non_upper_case_globals)]
pub const V1: V1 = Version;

impl<const N: u8> Serialize for Version<N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(N)
    }
}

impl<'de, const N: u8> Deserialize<'de> for Version<N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match u8::deserialize(deserializer)? {
            v if v == N => Ok(Self),
            other => Err(serde::de::Error::custom(format_args!(
                "unsupported format version {other}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_comparison_accepts_only_the_exact_encoding() {
        let value = (7u32, vec![1u8, 2, 3], String::from("cairn"));
        let bytes = postcard::to_allocvec(&value).unwrap_or_default();
        assert!(encodes_to(&value, &bytes));
        assert!(!encodes_to(&value, &bytes[..bytes.len() - 1]));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(!encodes_to(&value, &longer));
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 1;
            assert!(!encodes_to(&value, &flipped), "byte {i} flipped");
        }
    }

    #[test]
    fn encode_matches_postcard_and_its_announced_length() {
        let value = (u64::MAX, vec![9u8; 300], Some(-5i32));
        let expected = postcard::to_allocvec(&value).unwrap_or_default();
        assert_eq!(encode(&value), expected);
        assert_eq!(encoded_len(&value), expected.len());
    }
}
