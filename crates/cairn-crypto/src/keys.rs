//! Secret keys as newtypes: each zeroizes on drop, prints as `<redacted>`,
//! has a `LEN`, and stores as `0x01 || kind || key bytes` so that a stored
//! secret says which version and which kind of key it is.

use std::fmt;

use cairn_wire::{DeviceId, ExchangeKey, SigningKey, UserId};
use rand_core::CryptoRng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use x25519_dalek::StaticSecret;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::KeyDecodeError;

/// Version byte of every stored secret.
pub const SECRET_VERSION: u8 = 1;

/// The user's ed25519 root key: its public half is the [`UserId`]. It signs
/// device certificates, revocations and friend grants, and is shared with
/// the user's linked devices inside the sealed device-link bundle.
#[derive(Clone)]
pub struct RootKey(SigningKey);

impl RootKey {
    /// Length of the secret in bytes.
    pub const LEN: usize = 32;
    const KIND: u8 = 0x01;

    /// A fresh random root key.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        Self::from_bytes(&random_32(rng))
    }

    /// The key with this 32-byte ed25519 seed.
    pub fn from_bytes(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// The 32-byte seed.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The user this key is the root of.
    pub fn user_id(&self) -> UserId {
        UserId::from_bytes(self.0.verifying_key().to_bytes())
    }

    /// The ed25519 key, for `cairn_wire::Signed::sign`.
    pub fn signing_key(&self) -> &SigningKey {
        &self.0
    }

    /// The versioned storage encoding: `0x01 || 0x01 || seed`.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        encode_stored(Self::KIND, &[self.0.as_bytes()])
    }

    /// Loads a key stored by [`RootKey::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, KeyDecodeError> {
        let parts = decode_stored::<1>(Self::KIND, "root key", bytes)?;
        let [seed] = &*parts;
        Ok(Self::from_bytes(seed))
    }
}

/// A device's secrets: its ed25519 signing key (public half = [`DeviceId`])
/// and its X25519 exchange key (public half in its device certificate, the
/// key a device-link bundle is sealed to).
#[derive(Clone)]
pub struct DeviceKeys {
    signing: SigningKey,
    exchange: ExchangeSecret,
}

impl DeviceKeys {
    /// Length of the stored secrets in bytes (signing seed, exchange secret).
    pub const LEN: usize = 64;
    const KIND: u8 = 0x02;

    /// Fresh random device keys. Draws the signing seed, then the exchange
    /// secret.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let signing = SigningKey::from_bytes(&random_32(rng));
        Self {
            signing,
            exchange: ExchangeSecret::generate(rng),
        }
    }

    /// Device keys from their two 32-byte secrets.
    pub fn from_parts(signing_seed: &[u8; 32], exchange: ExchangeSecret) -> Self {
        Self {
            signing: SigningKey::from_bytes(signing_seed),
            exchange,
        }
    }

    /// The device id (ed25519 public key).
    pub fn device_id(&self) -> DeviceId {
        DeviceId::from_bytes(self.signing.verifying_key().to_bytes())
    }

    /// The device's X25519 public key.
    pub fn exchange_key(&self) -> ExchangeKey {
        self.exchange.public_key()
    }

    /// The signing key, for `UnsignedEnvelope::sign`.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// The X25519 secret, to open what was sealed to this device.
    pub fn exchange_secret(&self) -> &ExchangeSecret {
        &self.exchange
    }

    /// The versioned storage encoding: `0x01 || 0x02 || seed || exchange`.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        encode_stored(
            Self::KIND,
            &[self.signing.as_bytes(), self.exchange.0.as_bytes()],
        )
    }

    /// Loads keys stored by [`DeviceKeys::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, KeyDecodeError> {
        let parts = decode_stored::<2>(Self::KIND, "device key", bytes)?;
        let [seed, exchange] = &*parts;
        Ok(Self::from_parts(seed, ExchangeSecret::from_bytes(exchange)))
    }
}

/// An X25519 secret: a device's own, or the user exchange key that all the
/// user's devices share and that audience keys are granted to.
#[derive(Clone)]
pub struct ExchangeSecret(StaticSecret);

impl ExchangeSecret {
    /// Length of the secret in bytes.
    pub const LEN: usize = 32;
    const KIND: u8 = 0x03;

    /// A fresh random secret.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        Self::from_bytes(&random_32(rng))
    }

    /// The secret with these bytes (clamped when used, as RFC 7748 says).
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(StaticSecret::from(*bytes))
    }

    /// The secret's bytes.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The public key that things are sealed to.
    pub fn public_key(&self) -> ExchangeKey {
        ExchangeKey::from_bytes(x25519_dalek::PublicKey::from(&self.0).to_bytes())
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// The versioned storage encoding: `0x01 || 0x03 || secret`.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        encode_stored(Self::KIND, &[self.0.as_bytes()])
    }

    /// Loads a secret stored by [`ExchangeSecret::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, KeyDecodeError> {
        let parts = decode_stored::<1>(Self::KIND, "exchange secret", bytes)?;
        let [secret] = &*parts;
        Ok(Self::from_bytes(secret))
    }
}

/// A 256-bit symmetric key: an audience's key for one epoch.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct AudienceKey([u8; 32]);

impl AudienceKey {
    /// Length of the key in bytes.
    pub const LEN: usize = 32;
    const KIND: u8 = 0x04;

    /// A fresh random key.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        Self(*random_32(rng))
    }

    /// The key with these bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(*bytes)
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The versioned storage encoding: `0x01 || 0x04 || key`.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        encode_stored(Self::KIND, &[&self.0])
    }

    /// Loads a key stored by [`AudienceKey::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, KeyDecodeError> {
        let parts = decode_stored::<1>(Self::KIND, "audience key", bytes)?;
        let [key] = &*parts;
        Ok(Self::from_bytes(key))
    }
}

/// The fresh key of one post. Never stored, never leaves this crate.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct PostKey(pub(crate) [u8; 32]);

impl PostKey {
    pub(crate) fn generate(rng: &mut impl CryptoRng) -> Self {
        Self(*random_32(rng))
    }
}

// Every field of these zeroizes itself on drop.
impl ZeroizeOnDrop for RootKey {}
impl ZeroizeOnDrop for DeviceKeys {}
impl ZeroizeOnDrop for ExchangeSecret {}

macro_rules! redacted_debug {
    ($($name:ident),*) => {$(
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    )*};
}

redacted_debug!(RootKey, DeviceKeys, ExchangeSecret, AudienceKey, PostKey);

/// Secrets inside larger encodings (audience state, bundles, grants) are
/// their raw 32 bytes.
macro_rules! raw_serde {
    ($name:ident, $bytes:expr) => {
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                #[allow(clippy::redundant_closure_call)]
                ($bytes)(self).serialize(serializer)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let bytes = Zeroizing::new(<[u8; 32]>::deserialize(deserializer)?);
                Ok(Self::from_bytes(&bytes))
            }
        }
    };
}

raw_serde!(RootKey, |k: &RootKey| *k.0.as_bytes());
raw_serde!(ExchangeSecret, |k: &ExchangeSecret| *k.0.as_bytes());
raw_serde!(AudienceKey, |k: &AudienceKey| k.0);

fn random_32(rng: &mut impl CryptoRng) -> Zeroizing<[u8; 32]> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(bytes.as_mut());
    bytes
}

fn encode_stored(kind: u8, parts: &[&[u8; 32]]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(2 + 32 * parts.len()));
    out.push(SECRET_VERSION);
    out.push(kind);
    for part in parts {
        out.extend_from_slice(part.as_slice());
    }
    out
}

fn decode_stored<const N: usize>(
    kind: u8,
    expected: &'static str,
    bytes: &[u8],
) -> Result<Zeroizing<[[u8; 32]; N]>, KeyDecodeError> {
    use cairn_wire::DecodeError;
    let (head, body) = bytes
        .split_at_checked(2)
        .ok_or_else(|| malformed("truncated"))?;
    match head {
        [SECRET_VERSION, k] if *k == kind => {}
        [SECRET_VERSION, _] => return Err(KeyDecodeError::WrongKind { expected }),
        [v, _] => return Err(DecodeError::UnsupportedVersion(*v).into()),
        _ => return Err(malformed("truncated")),
    }
    if body.len() != 32 * N {
        return Err(malformed("wrong length"));
    }
    let mut out = Zeroizing::new([[0u8; 32]; N]);
    for (slot, chunk) in out.iter_mut().zip(body.chunks_exact(32)) {
        slot.copy_from_slice(chunk);
    }
    Ok(out)
}

fn malformed(why: &str) -> KeyDecodeError {
    KeyDecodeError::Malformed(cairn_wire::DecodeError::Malformed(why.to_owned()))
}

/// Same key, compared by public key (which the secret determines).
impl PartialEq for RootKey {
    fn eq(&self, other: &Self) -> bool {
        self.user_id() == other.user_id()
    }
}

impl Eq for RootKey {}

/// Same key, compared by public key (which the secret determines).
impl PartialEq for ExchangeSecret {
    fn eq(&self, other: &Self) -> bool {
        self.public_key() == other.public_key()
    }
}

impl Eq for ExchangeSecret {}
