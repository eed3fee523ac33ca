//! Secrets at rest under a passphrase (`spec/crypto.md` §11).
//!
//! A random 256-bit data key encrypts every secret a client keeps (its
//! identity, keyring, decrypted items) with XChaCha20-Poly1305 under a
//! random 192-bit nonce, with a label naming the slot as associated data,
//! so that a value moved to another slot does not open. The data key is
//! itself stored encrypted under a key derived from the passphrase with
//! Argon2id, whose cost and salt are stored next to it (the header), so
//! that the cost can be raised later without re-encrypting the store.

use std::fmt;

use argon2::{Algorithm, Argon2, Params, Version};
use cairn_wire::codec::{self, V1};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The slot label the data key is wrapped under.
pub const LABEL_DATA_KEY: &str = "cairn/local/data-key/v1";
/// Bytes of a nonce, at the start of every sealed value.
pub const NONCE_LEN: usize = 24;
/// Largest header [`DataKey::unlock`] reads.
const MAX_HEADER_LEN: usize = 4096;
/// Most memory (KiB), passes and lanes a header may ask Argon2id for: a
/// tampered header must not make unlocking exhaust the machine.
const MAX_M_COST: u32 = 1024 * 1024;
const MAX_T_COST: u32 = 16;
const MAX_P_COST: u32 = 8;

/// A passphrase, wiped from memory when dropped.
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Wraps a passphrase.
    pub fn new(text: String) -> Self {
        Self(Zeroizing::new(text))
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

/// What Argon2id spends deriving the key-encryption key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfCost {
    /// Memory, in KiB.
    pub m_cost: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfCost {
    /// What clients use: 64 MiB, 3 passes, 1 lane (RFC 9106 section 4's
    /// second recommended option, with the lanes this single-threaded
    /// derivation can use).
    pub const RECOMMENDED: Self = Self {
        m_cost: 64 * 1024,
        t_cost: 3,
        p_cost: 1,
    };
    /// What clients used before: OWASP's minimum for Argon2id, 19 MiB, 2
    /// passes, 1 lane. Stores made with it are raised on their next unlock.
    pub const PREVIOUS: Self = Self {
        m_cost: 19 * 1024,
        t_cost: 2,
        p_cost: 1,
    };
    /// The least Argon2id allows. For tests only: a store made with it
    /// has a passphrase that is cheap to guess.
    pub const INSECURE_MINIMUM: Self = Self {
        m_cost: Params::MIN_M_COST,
        t_cost: 1,
        p_cost: 1,
    };
}

impl KdfCost {
    /// Whether this spends less than `other` in memory or passes, so that
    /// a store kept with it should be raised to `other`.
    pub fn is_weaker_than(self, other: Self) -> bool {
        self.m_cost < other.m_cost || self.t_cost < other.t_cost
    }
}

/// Opening the vault failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The passphrase does not open the data key.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// The header or a sealed value is not what this module writes.
    #[error("{0}")]
    Malformed(String),
    /// A value did not decrypt under the data key and its label.
    #[error("a local secret does not decrypt")]
    DoesNotOpen,
    /// Key derivation or encryption failed.
    #[error("{0}")]
    Crypto(String),
}

/// What the store keeps to recover the data key from the passphrase.
#[derive(Serialize, Deserialize)]
struct VaultHeader {
    version: V1,
    salt: [u8; 16],
    m_cost: u32,
    t_cost: u32,
    p_cost: u32,
    wrapped: Vec<u8>,
}

/// The key that encrypts a store's secrets.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

impl DataKey {
    /// A data key handed over whole (by the passphrase agent, which holds
    /// an unlocked key so that commands need not ask). A wrong key fails
    /// at the first [`DataKey::open`].
    pub fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> Self {
        Self(bytes)
    }

    /// The key itself, for the passphrase agent to hold.
    pub fn expose(&self) -> Zeroizing<[u8; 32]> {
        self.0.clone()
    }

    /// A fresh data key and the header that keeps it under `passphrase`.
    /// Draws the key, the salt and the wrapping nonce from `rng`, in that
    /// order.
    pub fn create(
        rng: &mut impl CryptoRng,
        passphrase: &Passphrase,
        cost: KdfCost,
    ) -> Result<(Self, Vec<u8>), VaultError> {
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(key.as_mut());
        let key = Self(key);
        let header = key.rewrap(rng, passphrase, cost)?;
        Ok((key, header))
    }

    /// A new header keeping this same data key under `passphrase` with
    /// `cost` and a fresh salt (drawn from `rng`, then the wrap nonce): to
    /// raise the cost of an existing store without re-encrypting it.
    pub fn rewrap(
        &self,
        rng: &mut impl CryptoRng,
        passphrase: &Passphrase,
        cost: KdfCost,
    ) -> Result<Vec<u8>, VaultError> {
        let mut salt = [0u8; 16];
        rng.fill_bytes(&mut salt);
        let kek = Self(derive(passphrase, &salt, cost)?);
        let wrapped = kek.seal(rng, LABEL_DATA_KEY, self.0.as_slice())?;
        Ok(codec::encode(&VaultHeader {
            version: V1,
            salt,
            m_cost: cost.m_cost,
            t_cost: cost.t_cost,
            p_cost: cost.p_cost,
            wrapped,
        }))
    }

    /// The cost a stored header asks for.
    pub fn header_cost(header: &[u8]) -> Result<KdfCost, VaultError> {
        Ok(decode_header(header)?.1)
    }

    /// Recovers the data key from a stored header.
    pub fn unlock(header: &[u8], passphrase: &Passphrase) -> Result<Self, VaultError> {
        let (header, cost) = decode_header(header)?;
        let kek = Self(derive(passphrase, &header.salt, cost)?);
        let key = kek
            .open(LABEL_DATA_KEY, &header.wrapped)
            .map_err(|_| VaultError::WrongPassphrase)?;
        let key: [u8; 32] = key
            .as_slice()
            .try_into()
            .map_err(|_| VaultError::Malformed("data key of the wrong length".into()))?;
        Ok(Self(Zeroizing::new(key)))
    }

    /// Encrypts `plaintext` for the slot `label`: `nonce || ciphertext`,
    /// the nonce drawn from `rng`.
    pub fn seal(
        &self,
        rng: &mut impl CryptoRng,
        label: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let cipher = XChaCha20Poly1305::new(&(*self.0).into());
        let payload = Payload {
            msg: plaintext,
            aad: label.as_bytes(),
        };
        let sealed = cipher
            .encrypt(&XNonce::from(nonce), payload)
            .map_err(|_| VaultError::Crypto("cannot encrypt a local secret".into()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Decrypts what [`DataKey::seal`] made for the slot `label`.
    pub fn open(&self, label: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let (nonce, ciphertext) = sealed
            .split_first_chunk::<NONCE_LEN>()
            .ok_or_else(|| VaultError::Malformed("truncated local secret".into()))?;
        let cipher = XChaCha20Poly1305::new(&(*self.0).into());
        let payload = Payload {
            msg: ciphertext,
            aad: label.as_bytes(),
        };
        cipher
            .decrypt(&XNonce::from(*nonce), payload)
            .map(Zeroizing::new)
            .map_err(|_| VaultError::DoesNotOpen)
    }
}

fn decode_header(header: &[u8]) -> Result<(VaultHeader, KdfCost), VaultError> {
    let header: VaultHeader = codec::decode(header, MAX_HEADER_LEN)
        .map_err(|e| VaultError::Malformed(format!("vault header: {e}")))?;
    let cost = KdfCost {
        m_cost: header.m_cost,
        t_cost: header.t_cost,
        p_cost: header.p_cost,
    };
    Ok((header, cost))
}

fn derive(
    passphrase: &Passphrase,
    salt: &[u8; 16],
    cost: KdfCost,
) -> Result<Zeroizing<[u8; 32]>, VaultError> {
    if cost.m_cost > MAX_M_COST || cost.t_cost > MAX_T_COST || cost.p_cost > MAX_P_COST {
        return Err(VaultError::Malformed(format!(
            "key derivation cost {cost:?} is beyond what this client spends"
        )));
    }
    let params = Params::new(cost.m_cost, cost.t_cost, cost.p_cost, Some(32))
        .map_err(|e| VaultError::Malformed(format!("bad key derivation parameters: {e}")))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.0.as_bytes(), salt, out.as_mut())
        .map_err(|e| VaultError::Crypto(format!("key derivation failed: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::os;

    #[test]
    fn the_data_key_opens_with_the_right_passphrase_and_label_only() {
        let right = Passphrase::new("right".into());
        let (key, header) =
            DataKey::create(&mut os::rng(), &right, KdfCost::INSECURE_MINIMUM).unwrap();
        let sealed = key.seal(&mut os::rng(), "slot", b"secret").unwrap();
        let again = DataKey::unlock(&header, &right).unwrap();
        assert_eq!(again.open("slot", &sealed).unwrap().as_slice(), b"secret");
        assert!(matches!(
            again.open("other slot", &sealed),
            Err(VaultError::DoesNotOpen)
        ));
        assert!(matches!(
            DataKey::unlock(&header, &Passphrase::new("wrong".into())),
            Err(VaultError::WrongPassphrase)
        ));
    }

    #[test]
    fn a_rewrapped_header_keeps_the_same_data_key_at_the_new_cost() {
        let passphrase = Passphrase::new("right".into());
        let (key, old) =
            DataKey::create(&mut os::rng(), &passphrase, KdfCost::INSECURE_MINIMUM).unwrap();
        let sealed = key.seal(&mut os::rng(), "slot", b"secret").unwrap();
        let raised = KdfCost {
            m_cost: 64,
            t_cost: 2,
            p_cost: 1,
        };
        let new = key.rewrap(&mut os::rng(), &passphrase, raised).unwrap();
        assert_eq!(
            DataKey::header_cost(&old).unwrap(),
            KdfCost::INSECURE_MINIMUM
        );
        assert_eq!(DataKey::header_cost(&new).unwrap(), raised);
        let again = DataKey::unlock(&new, &passphrase).unwrap();
        assert_eq!(again.open("slot", &sealed).unwrap().as_slice(), b"secret");
        assert!(KdfCost::INSECURE_MINIMUM.is_weaker_than(raised));
        assert!(KdfCost::PREVIOUS.is_weaker_than(KdfCost::RECOMMENDED));
        assert!(!KdfCost::RECOMMENDED.is_weaker_than(KdfCost::RECOMMENDED));
    }

    #[test]
    fn a_header_asking_for_an_absurd_cost_is_refused_before_deriving() {
        let header = VaultHeader {
            version: V1,
            salt: [0; 16],
            m_cost: u32::MAX,
            t_cost: 1,
            p_cost: 1,
            wrapped: vec![0; 72],
        };
        let err = DataKey::unlock(&codec::encode(&header), &Passphrase::new("x".into()));
        assert!(matches!(err, Err(VaultError::Malformed(_))), "{err:?}");
    }
}
