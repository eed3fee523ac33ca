//! Secrets at rest: `cairn_crypto::vault` with this client's choices, the
//! Argon2id cost (OWASP's recommendation, or the minimum when
//! [`INSECURE_FAST_KDF_ENV`] is set for tests) and the operating system's
//! generator, and its errors in the client's terms.

use cairn_crypto::os;
pub(crate) use cairn_crypto::vault::KdfCost;
pub use cairn_crypto::vault::Passphrase;
use cairn_crypto::vault::{self, VaultError};
use zeroize::Zeroizing;

use crate::error::Error;

/// Set (to anything) when creating a store to use minimal Argon2id costs.
/// For tests only: it makes a stolen store's passphrase cheap to guess.
pub const INSECURE_FAST_KDF_ENV: &str = "CAIRN_INSECURE_FAST_KDF";

/// The key that encrypts the store's secrets.
#[derive(Debug)]
pub(crate) struct DataKey(vault::DataKey);

/// A home's unlocked data key, as the passphrase agent holds it: whoever
/// has it reads the home without the passphrase. Zeroed when dropped.
pub struct UnlockedKey(Zeroizing<[u8; 32]>);

impl UnlockedKey {
    /// The key from its 32 bytes.
    pub fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> Self {
        Self(bytes)
    }

    /// Its 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for UnlockedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnlockedKey(<redacted>)")
    }
}

impl DataKey {
    /// The cost this client keeps stores at: [`KdfCost::RECOMMENDED`], or
    /// the minimum when [`INSECURE_FAST_KDF_ENV`] is set.
    pub(crate) fn target_cost() -> KdfCost {
        match std::env::var_os(INSECURE_FAST_KDF_ENV) {
            Some(_) => KdfCost::INSECURE_MINIMUM,
            None => KdfCost::RECOMMENDED,
        }
    }

    /// A fresh data key and the header that stores it under `passphrase`.
    pub(crate) fn create(passphrase: &Passphrase) -> Result<(Self, Vec<u8>), Error> {
        let (key, header) = vault::DataKey::create(&mut os::rng(), passphrase, Self::target_cost())
            .map_err(local)?;
        Ok((Self(key), header))
    }

    /// A new header for this key at `cost`, if the stored `header` costs
    /// less: how an older store is raised on unlock.
    pub(crate) fn raise(
        &self,
        header: &[u8],
        passphrase: &Passphrase,
        cost: KdfCost,
    ) -> Result<Option<Vec<u8>>, Error> {
        if !vault::DataKey::header_cost(header)
            .map_err(local)?
            .is_weaker_than(cost)
        {
            return Ok(None);
        }
        self.0
            .rewrap(&mut os::rng(), passphrase, cost)
            .map(Some)
            .map_err(local)
    }

    /// The data key itself, for the passphrase agent.
    pub(crate) fn expose(&self) -> UnlockedKey {
        UnlockedKey(self.0.expose())
    }

    /// A data key the passphrase agent held.
    pub(crate) fn from_unlocked(key: &UnlockedKey) -> Self {
        Self(vault::DataKey::from_bytes(key.0.clone()))
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
