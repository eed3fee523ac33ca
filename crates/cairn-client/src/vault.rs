//! Secrets at rest: `cairn_crypto::vault` with this client's choices, the
//! Argon2id cost (OWASP's recommendation, or the minimum when
//! [`INSECURE_FAST_KDF_ENV`] is set for tests) and the operating system's
//! generator, and its errors in the client's terms.

use cairn_crypto::os;
pub use cairn_crypto::vault::Passphrase;
use cairn_crypto::vault::{self, KdfCost, VaultError};
use zeroize::Zeroizing;

use crate::error::Error;

/// Set (to anything) when creating a store to use minimal Argon2id costs.
/// For tests only: it makes a stolen store's passphrase cheap to guess.
pub const INSECURE_FAST_KDF_ENV: &str = "CAIRN_INSECURE_FAST_KDF";

/// The key that encrypts the store's secrets.
#[derive(Debug)]
pub(crate) struct DataKey(vault::DataKey);

impl DataKey {
    /// A fresh data key and the header that stores it under `passphrase`.
    pub(crate) fn create(passphrase: &Passphrase) -> Result<(Self, Vec<u8>), Error> {
        let cost = match std::env::var_os(INSECURE_FAST_KDF_ENV) {
            Some(_) => KdfCost::INSECURE_MINIMUM,
            None => KdfCost::RECOMMENDED,
        };
        let (key, header) =
            vault::DataKey::create(&mut os::rng(), passphrase, cost).map_err(local)?;
        Ok((Self(key), header))
    }

    /// Recovers the data key from a stored header.
    pub(crate) fn unlock(header: &[u8], passphrase: &Passphrase) -> Result<Self, Error> {
        vault::DataKey::unlock(header, passphrase)
            .map(Self)
            .map_err(local)
    }

    /// Encrypts `plaintext` for the slot `label`.
    pub(crate) fn seal(&self, label: &str, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        self.0.seal(&mut os::rng(), label, plaintext).map_err(local)
    }

    /// Decrypts what [`DataKey::seal`] made for the slot `label`.
    pub(crate) fn open(&self, label: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.0.open(label, sealed).map_err(local)
    }
}

fn local(error: VaultError) -> Error {
    match error {
        VaultError::WrongPassphrase => Error::WrongPassphrase,
        other => Error::store(other.to_string()),
    }
}
