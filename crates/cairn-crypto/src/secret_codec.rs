//! cairn-wire's canonical postcard rules, for encodings that hold secrets:
//! every buffer this module makes (including the re-encoding that checks
//! canonical form) is zeroized when dropped.

use cairn_wire::DecodeError;
use cairn_wire::codec::FORMAT_VERSION;
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

/// Encodes `value` into a buffer that zeroizes on drop.
pub(crate) fn encode<T: Serialize>(value: &T) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(cairn_wire::codec::encode(value))
}

/// Decodes a versioned value of at most `max` bytes, insisting on the
/// canonical form, like `cairn_wire::codec::decode_versioned`.
pub(crate) fn decode<T: DeserializeOwned + Serialize>(
    bytes: &[u8],
    max: usize,
) -> Result<T, DecodeError> {
    decode_version(bytes, max, FORMAT_VERSION)
}

/// [`decode`] for a value whose first byte is `version` (a format that
/// moved past the first version).
pub(crate) fn decode_version<T: DeserializeOwned + Serialize>(
    bytes: &[u8],
    max: usize,
    version: u8,
) -> Result<T, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    if let Some(&v) = bytes.first().filter(|v| **v != version) {
        return Err(DecodeError::UnsupportedVersion(v));
    }
    let (value, rest) =
        postcard::take_from_bytes::<T>(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    if encode(&value).as_slice() != bytes {
        return Err(DecodeError::NonCanonical);
    }
    Ok(value)
}
