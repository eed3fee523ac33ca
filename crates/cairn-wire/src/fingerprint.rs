//! The pin a client holds for a relay: SHA-256 of the relay's public key
//! (the DER SubjectPublicKeyInfo of its TLS certificate), written `sha256:`
//! and 64 lowercase hex digits. Pinning the key rather than the whole
//! certificate lets a relay renew its certificate with the same key.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Text form prefix.
const PREFIX: &str = "sha256:";

/// A relay certificate fingerprint.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a public key: its DER SubjectPublicKeyInfo.
    pub fn of_public_key(spki: &[u8]) -> Self {
        Self(Sha256::digest(spki).into())
    }

    /// The trust anchor of a home that verifies its relay with the
    /// system's certificate authorities rather than a pinned key:
    /// SHA-256 of `cairn/relay-name/v1 || 0x00 || host`. It stands where a
    /// pin stands (in a home's settings and in link codes), so that two
    /// devices of one user agree on their relay; no key hashes to it.
    pub fn of_relay_name(host: &str) -> Self {
        let mut hash = Sha256::new();
        hash.update(b"cairn/relay-name/v1\x00");
        hash.update(host.as_bytes());
        Self(hash.finalize().into())
    }

    /// SHA-256 of a whole DER certificate: the pin of cairn before it
    /// pinned keys, still accepted for the certificate it names.
    pub fn of_certificate(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// A fingerprint from a stored digest.
    pub const fn from_bytes(digest: [u8; 32]) -> Self {
        Self(digest)
    }

    /// The digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Text that is not `sha256:` followed by 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a fingerprint is `sha256:` followed by 64 hex digits, as `cairn-relay fingerprint` prints it"
)]
pub struct FingerprintParseError;

impl FromStr for Fingerprint {
    type Err = FingerprintParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let digits = text
            .trim()
            .strip_prefix(PREFIX)
            .ok_or(FingerprintParseError)?;
        if digits.len() != 64 {
            return Err(FingerprintParseError);
        }
        let mut out = [0u8; 32];
        for (slot, pair) in out.iter_mut().zip(digits.as_bytes().chunks_exact(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| FingerprintParseError)?;
            *slot = u8::from_str_radix(pair, 16).map_err(|_| FingerprintParseError)?;
        }
        Ok(Self(out))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PREFIX)?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_and_rejects_near_misses() {
        let fp = Fingerprint::of_certificate(b"certificate");
        let text = fp.to_string();
        assert_eq!(text.len(), 7 + 64);
        assert_eq!(text.parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(Fingerprint::from_bytes(*fp.as_bytes()), fp);
        assert_eq!(
            text.to_uppercase()
                .replace("SHA256:", "sha256:")
                .parse::<Fingerprint>()
                .unwrap(),
            fp
        );
        assert!(text[..text.len() - 1].parse::<Fingerprint>().is_err());
        assert!(text.replace("sha256:", "").parse::<Fingerprint>().is_err());
        assert!(format!("{text}0").parse::<Fingerprint>().is_err());
        let not_hex = format!("{}g", &text[..text.len() - 1]);
        assert!(not_hex.parse::<Fingerprint>().is_err());
        assert!("sha256:+1".parse::<Fingerprint>().is_err());
    }
}
