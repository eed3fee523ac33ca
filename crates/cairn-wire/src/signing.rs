//! Ed25519 signing inputs with versioned domain separators, and strict
//! verification.
//!
//! Every signing input is `DOMAIN || 0x00 || body`, where `DOMAIN` is an
//! ASCII constant naming what is signed and its version. No domain contains
//! a NUL byte, so no signature made for one purpose verifies for another.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use crate::ids::Signature;
use crate::verify_memo::remembered;

/// Domain of envelope signatures (made by the author's device key).
pub const DOMAIN_ENVELOPE: &str = "cairn/envelope/v1";
/// Domain of device certificates (made by the user's root key).
pub const DOMAIN_DEVICE_CERTIFICATE: &str = "cairn/device-certificate/v1";
/// Domain of device revocations (made by the user's root key).
pub const DOMAIN_DEVICE_REVOCATION: &str = "cairn/device-revocation/v1";
/// Domain of friend grants (made by the granting user's root key).
pub const DOMAIN_FRIEND_GRANT: &str = "cairn/friend-grant/v1";
/// Domain of friend revocations (made by the granting user's root key).
pub const DOMAIN_FRIEND_REVOCATION: &str = "cairn/friend-revocation/v1";
/// Domain of the connection-bound auth proof (made by the device key).
pub const DOMAIN_AUTH: &str = "cairn/auth/v1";

/// A signature did not verify: wrong key, wrong message, a weak or
/// malformed key, or a non-canonical signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("signature does not verify")]
pub struct BadSignature;

/// `domain || 0x00 || body`.
pub fn signing_input(domain: &str, body: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(domain.len() + 1 + body.len());
    input.extend_from_slice(domain.as_bytes());
    input.push(0);
    input.extend_from_slice(body);
    input
}

/// Signs `body` under `domain`.
pub fn sign(key: &SigningKey, domain: &str, body: &[u8]) -> Signature {
    Signature::from_bytes(key.sign(&signing_input(domain, body)).to_bytes())
}

/// Verifies a signature by the ed25519 public key `signer` over `body`
/// under `domain`, with RFC 8032 strict checks (canonical S, no small-order
/// keys or R), so that one message has one valid signature per key.
pub fn verify(
    signer: &[u8; 32],
    domain: &str,
    body: &[u8],
    signature: &Signature,
) -> Result<(), BadSignature> {
    remembered(signer, domain, body, signature, || {
        PublicKey::from_bytes(signer)?.verify_now(domain, body, signature)
    })
}

/// An ed25519 public key, decoded (decompressed) once, for checking many
/// signatures by one signer: decoding is a fifth of a verification, and a
/// relay checks every envelope a connected device sends with the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Decodes a public key; refused if it is not a point on the curve.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, BadSignature> {
        VerifyingKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| BadSignature)
    }

    /// Its 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// Verifies a signature by this key over `body` under `domain`, with
    /// the strict checks [`verify`] makes.
    pub fn verify(
        &self,
        domain: &str,
        body: &[u8],
        signature: &Signature,
    ) -> Result<(), BadSignature> {
        remembered(self.as_bytes(), domain, body, signature, || {
            self.verify_now(domain, body, signature)
        })
    }

    fn verify_now(
        &self,
        domain: &str,
        body: &[u8],
        signature: &Signature,
    ) -> Result<(), BadSignature> {
        let signature = ed25519_dalek::Signature::from_bytes(signature.as_bytes());
        self.0
            .verify_strict(&signing_input(domain, body), &signature)
            .map_err(|_| BadSignature)
    }
}
