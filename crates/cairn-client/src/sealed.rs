//! [`Sealed`]: the local store together with the data key that seals its
//! secrets. It is the only way to the sealed slots (the identity, the
//! keyring of received grants, the decrypted items): what reaches the disk
//! through it is encrypted under the data key, and what it reads back is
//! authenticated. The plain tables (outbox, envelopes, cursors, waiting
//! set) hold nothing the relay does not already see, and are reached
//! through [`Sealed::store`].

use std::path::Path;

use cairn_crypto::Keyring;

use crate::error::Error;
use crate::identity::Identity;
use crate::local::{Batch, LocalStore, meta};
use crate::open::Item;
use crate::vault::{DataKey, Passphrase};

/// Associated-data labels of the store's sealed slots.
const LABEL_IDENTITY: &str = "cairn/local/identity/v1";
const LABEL_KEYRING: &str = "cairn/local/keyring/v1";
const LABEL_ITEM: &str = "cairn/local/item/v1";

/// The local store and its data key.
#[derive(Debug)]
pub(crate) struct Sealed {
    store: LocalStore,
    key: DataKey,
}

impl Sealed {
    /// Writes a fresh store in `home` under `passphrase`, holding
    /// `identity`.
    pub(crate) fn create(
        home: &Path,
        passphrase: &Passphrase,
        identity: &Identity,
    ) -> Result<Self, Error> {
        let store = LocalStore::create(home)?;
        let (key, vault) = DataKey::create(passphrase)?;
        let sealed = Self { store, key };
        let mut batch = Batch::default();
        batch.meta.push((meta::VAULT, vault));
        sealed.save_identity(identity, &mut batch)?;
        sealed.store.commit(batch)?;
        Ok(sealed)
    }

    /// Unlocks the store in `home` with `passphrase`, and the identity it
    /// holds.
    pub(crate) fn unlock(home: &Path, passphrase: &Passphrase) -> Result<(Self, Identity), Error> {
        let store = LocalStore::open(home)?;
        let vault = store
            .meta(meta::VAULT)?
            .ok_or_else(|| Error::NotInitialised {
                home: home.to_owned(),
            })?;
        let key = DataKey::unlock(&vault, passphrase)?;
        let sealed_identity = store
            .meta(meta::IDENTITY)?
            .ok_or_else(|| Error::store("the store holds no identity"))?;
        let identity = Identity::decode(&key.open(LABEL_IDENTITY, &sealed_identity)?)?;
        Ok((Self { store, key }, identity))
    }

    /// The plain tables.
    pub(crate) fn store(&self) -> &LocalStore {
        &self.store
    }

    /// Adds the sealed `identity` to `batch`.
    pub(crate) fn save_identity(
        &self,
        identity: &Identity,
        batch: &mut Batch,
    ) -> Result<(), Error> {
        let sealed = self.key.seal(LABEL_IDENTITY, &identity.encode())?;
        batch.meta.push((meta::IDENTITY, sealed));
        Ok(())
    }

    /// The keyring of received grants (empty before the first).
    pub(crate) fn keyring(&self) -> Result<Keyring, Error> {
        match self.store.meta(meta::KEYRING)? {
            Some(sealed) => Keyring::decode(&self.key.open(LABEL_KEYRING, &sealed)?)
                .map_err(|e| Error::store(format!("keyring: {e}"))),
            None => Ok(Keyring::new()),
        }
    }

    /// Adds the sealed keyring of received grants to `batch`.
    pub(crate) fn save_keyring(&self, keyring: &Keyring, batch: &mut Batch) -> Result<(), Error> {
        let sealed = self.key.seal(LABEL_KEYRING, &keyring.encode())?;
        batch.meta.push((meta::KEYRING, sealed));
        Ok(())
    }

    /// Adds the sealed `item` to `batch`.
    pub(crate) fn save_item(&self, item: &Item, batch: &mut Batch) -> Result<(), Error> {
        let sealed = self
            .key
            .seal(LABEL_ITEM, &zeroize::Zeroizing::new(item.encode()))?;
        batch.items.push((item.id, sealed));
        Ok(())
    }

    /// Every decrypted item held.
    pub(crate) fn items(&self) -> Result<Vec<Item>, Error> {
        let mut items = Vec::new();
        for (_, sealed) in self.store.items()? {
            let plain = self.key.open(LABEL_ITEM, &sealed)?;
            let item = Item::decode(&plain).ok_or_else(|| Error::store("undecodable item"))?;
            items.push(item);
        }
        Ok(items)
    }
}
