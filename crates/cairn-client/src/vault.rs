//! Secrets at rest.
//!
//! A random 256-bit data key encrypts everything secret in the local store
//! (the identity, the keyring, decrypted items) with XChaCha20-Poly1305
//! under a random 192-bit nonce and a label naming the slot as associated
//! data, so a value moved to another slot does not open. The data key is
//! itself stored encrypted under a key derived from the passphrase with
//! Argon2id, whose parameters and salt are stored next to it, so the
//! passphrase can be strengthened later without re-encrypting the store.

use std::fmt;

use argon2::{Algorithm, Argon2, Params, Version};
use cairn_crypto::os;
use cairn_wire::codec::{self, V1};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::Rng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::Error;

/// Argon2id memory cost in KiB (OWASP's recommended 19 MiB).
const M_COST: u32 = 19 * 1024;
/// Argon2id passes.
const T_COST: u32 = 2;
/// Set (to anything) when creating a store to use minimal Argon2id costs.
/// For tests only: it makes a stolen store's passphrase cheap to guess.
pub const INSECURE_FAST_KDF_ENV: &str = "CAIRN_INSECURE_FAST_KDF";

const NONCE_LEN: usize = 24;
const LABEL_DATA_KEY: &str = "cairn/local/data-key/v1";

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

/// The key that encrypts the store's secrets.
pub(crate) struct DataKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
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

impl DataKey {
    /// A fresh data key and the header that stores it under `passphrase`.
    pub(crate) fn create(passphrase: &Passphrase) -> Result<(Self, Vec<u8>), Error> {
        let mut key = Zeroizing::new([0u8; 32]);
        os::rng().fill_bytes(key.as_mut());
        let mut salt = [0u8; 16];
        os::rng().fill_bytes(&mut salt);
        let (m_cost, t_cost) = match std::env::var_os(INSECURE_FAST_KDF_ENV) {
            Some(_) => (Params::MIN_M_COST, 1),
            None => (M_COST, T_COST),
        };
        let kek = Self(derive(passphrase, &salt, m_cost, t_cost, 1)?);
        let wrapped = kek.seal(LABEL_DATA_KEY, key.as_slice())?;
        let header = VaultHeader {
            version: V1,
            salt,
            m_cost,
            t_cost,
            p_cost: 1,
            wrapped,
        };
        Ok((Self(key), codec::encode(&header)))
    }

    /// Recovers the data key from a stored header.
    pub(crate) fn unlock(header: &[u8], passphrase: &Passphrase) -> Result<Self, Error> {
        let header: VaultHeader =
            codec::decode(header, 4096).map_err(|e| Error::store(format!("vault header: {e}")))?;
        let kek = Self(derive(
            passphrase,
            &header.salt,
            header.m_cost,
            header.t_cost,
            header.p_cost,
        )?);
        let key = kek
            .open(LABEL_DATA_KEY, &header.wrapped)
            .map_err(|_| Error::WrongPassphrase)?;
        let key: [u8; 32] = key
            .as_slice()
            .try_into()
            .map_err(|_| Error::store("data key of the wrong length"))?;
        Ok(Self(Zeroizing::new(key)))
    }

    /// Encrypts `plaintext` for the slot `label`: `nonce || ciphertext`.
    pub(crate) fn seal(&self, label: &str, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        os::rng().fill_bytes(&mut nonce);
        let cipher = XChaCha20Poly1305::new(&(*self.0).into());
        let payload = Payload {
            msg: plaintext,
            aad: label.as_bytes(),
        };
        let sealed = cipher
            .encrypt(&XNonce::from(nonce), payload)
            .map_err(|_| Error::store("cannot encrypt a local secret"))?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Decrypts what [`DataKey::seal`] made for the slot `label`.
    pub(crate) fn open(&self, label: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        let (nonce, ciphertext) = sealed
            .split_first_chunk::<NONCE_LEN>()
            .ok_or_else(|| Error::store("truncated local secret"))?;
        let cipher = XChaCha20Poly1305::new(&(*self.0).into());
        let payload = Payload {
            msg: ciphertext,
            aad: label.as_bytes(),
        };
        cipher
            .decrypt(&XNonce::from(*nonce), payload)
            .map(Zeroizing::new)
            .map_err(|_| Error::store("a local secret does not decrypt"))
    }
}

fn derive(
    passphrase: &Passphrase,
    salt: &[u8; 16],
    m_cost: u32,
    t_cost: u32,
    p_cost: u32,
) -> Result<Zeroizing<[u8; 32]>, Error> {
    let params = Params::new(m_cost, t_cost, p_cost, Some(32))
        .map_err(|e| Error::store(format!("bad key derivation parameters: {e}")))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.0.as_bytes(), salt, out.as_mut())
        .map_err(|e| Error::store(format!("key derivation failed: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn data_key_opens_with_the_right_passphrase_only() {
        let (key, header) = DataKey::create(&Passphrase::new("right".into())).unwrap();
        let sealed = key.seal("slot", b"secret").unwrap();
        let again = DataKey::unlock(&header, &Passphrase::new("right".into())).unwrap();
        assert_eq!(again.open("slot", &sealed).unwrap().as_slice(), b"secret");
        assert!(again.open("other slot", &sealed).is_err());
        assert!(matches!(
            DataKey::unlock(&header, &Passphrase::new("wrong".into())),
            Err(Error::WrongPassphrase)
        ));
    }
}
