//! [`Sealed`]: the local store together with the data key that seals its
//! secrets. It is the only way to the sealed slots (the identity, the
//! keyring of received grants, the decrypted items): what reaches the disk
//! through it is encrypted under the data key, and what it reads back is
//! authenticated. The plain tables (outbox, envelopes, cursors, waiting
//! set) hold nothing the relay does not already see, and are reached
//! through [`Sealed::store`].

use std::path::Path;

use cairn_crypto::Keyring;
use cairn_wire::EnvelopeId;

use crate::error::Error;
use crate::identity::Identity;
use crate::local::{Batch, ITEMS_BOUND_TO_IDS, LocalStore, meta};
use crate::open::Item;
use crate::vault::{DataKey, KdfCost, Passphrase, UnlockedKey};

/// Associated-data labels of the store's sealed slots.
const LABEL_IDENTITY: &str = "cairn/local/identity/v1";
const LABEL_KEYRING: &str = "cairn/local/keyring/v1";
/// Items of stores made before items were bound to their envelope id.
const LABEL_ITEM_UNBOUND: &str = "cairn/local/item/v1";

/// The label of the item of envelope `id`: a sealed item moved under
/// another envelope's id does not open.
fn item_label(id: &EnvelopeId) -> String {
    format!("cairn/local/item/v2/{}", id.to_text())
}

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
        batch
            .meta
            .push((meta::ITEM_FORMAT, ITEMS_BOUND_TO_IDS.to_vec()));
        sealed.save_identity(identity, &mut batch)?;
        sealed.store.commit(batch)?;
        Ok(sealed)
    }

    /// Unlocks the store in `home` with `passphrase`, and the identity it
    /// holds, bringing an older store up to date first.
    pub(crate) fn unlock(home: &Path, passphrase: &Passphrase) -> Result<(Self, Identity), Error> {
        Self::unlock_at(home, passphrase, DataKey::target_cost())
    }

    /// Unlocks the store in `home` with a data key the passphrase agent
    /// held; a wrong key fails on the identity. An older store's vault is
    /// raised only by a passphrase unlock.
    pub(crate) fn unlock_with_key(
        home: &Path,
        key: &UnlockedKey,
    ) -> Result<(Self, Identity), Error> {
        let store = LocalStore::open(home)?;
        let key = DataKey::from_unlocked(key);
        let sealed_identity = store
            .meta(meta::IDENTITY)?
            .ok_or_else(|| Error::NotInitialised {
                home: home.to_owned(),
            })?;
        let identity = Identity::decode(&key.open(LABEL_IDENTITY, &sealed_identity)?)?;
        Ok((Self { store, key }, identity))
    }

    /// The data key, for the passphrase agent.
    pub(crate) fn unlocked_key(&self) -> UnlockedKey {
        self.key.expose()
    }

    /// [`Sealed::unlock`], raising the passphrase's cost to `cost`.
    fn unlock_at(
        home: &Path,
        passphrase: &Passphrase,
        cost: KdfCost,
    ) -> Result<(Self, Identity), Error> {
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
        let sealed = Self { store, key };
        sealed.migrate(&vault, passphrase, cost)?;
        Ok((sealed, identity))
    }

    /// Brings a store made by an older version up to date, in one commit:
    /// the data key kept at today's passphrase cost, and every item
    /// sealed under a label that binds its envelope id.
    fn migrate(&self, vault: &[u8], passphrase: &Passphrase, cost: KdfCost) -> Result<(), Error> {
        let mut batch = Batch::default();
        if let Some(raised) = self.key.raise(vault, passphrase, cost)? {
            batch.meta.push((meta::VAULT, raised));
        }
        if self.store.meta(meta::ITEM_FORMAT)?.is_none() {
            for (id, sealed) in self.store.items()? {
                let item = self.open_item(LABEL_ITEM_UNBOUND, &id, &sealed)?;
                self.save_item(&item, &mut batch)?;
            }
            batch
                .meta
                .push((meta::ITEM_FORMAT, ITEMS_BOUND_TO_IDS.to_vec()));
        }
        if batch.meta.is_empty() {
            return Ok(());
        }
        tracing::info!(
            items = batch.items.len(),
            "brought the local store up to date"
        );
        self.store.commit(batch)
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
        let sealed = self.key.seal(
            &item_label(&item.id),
            &zeroize::Zeroizing::new(item.encode()),
        )?;
        batch.items.push((item.id, sealed));
        Ok(())
    }

    /// Every decrypted item held.
    pub(crate) fn items(&self) -> Result<Vec<Item>, Error> {
        let mut items = Vec::new();
        for (id, sealed) in self.store.items()? {
            items.push(self.open_item(&item_label(&id), &id, &sealed)?);
        }
        Ok(items)
    }

    /// The changes set aside (`adopt.rs`), by their old seq, opened.
    pub(crate) fn set_aside(&self) -> Result<Vec<(u64, Item)>, Error> {
        let mut out = Vec::new();
        for (seq, id, sealed) in self.store.set_aside()? {
            out.push((seq, self.open_item(&item_label(&id), &id, &sealed)?));
        }
        Ok(out)
    }

    /// The item stored under `id`, sealed under `label`; it must be that
    /// envelope's.
    fn open_item(&self, label: &str, id: &EnvelopeId, sealed: &[u8]) -> Result<Item, Error> {
        let plain = self.key.open(label, sealed)?;
        let item = Item::decode(&plain).ok_or_else(|| Error::store("undecodable item"))?;
        if item.id != *id {
            return Err(Error::store(format!(
                "the item stored under {} is another envelope's",
                id.to_text()
            )));
        }
        Ok(item)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use cairn_crypto::{DeviceKeys, LinkSecret, RootKey, os, vault};
    use cairn_wire::{EnvelopeHeader, Fingerprint, Scope};

    use super::*;
    use crate::identity::{LinkState, Pending};
    use crate::link::LinkCode;
    use crate::record::{NoteOp, Record, RecordBody};

    /// A cost above the minimum that stays cheap in a test.
    const RAISED: KdfCost = KdfCost {
        m_cost: 64,
        t_cost: 2,
        p_cost: 1,
    };

    fn identity() -> Identity {
        let device = DeviceKeys::generate(&mut os::rng());
        let fingerprint = Fingerprint::from_bytes([1; 32]);
        let code = LinkCode::new(
            &device,
            1,
            LinkSecret::generate(&mut os::rng()),
            &fingerprint,
            "phone",
        );
        Identity {
            relay: "127.0.0.1:1".into(),
            fingerprint,
            device,
            name: "phone".into(),
            state: LinkState::Pending(Box::new(Pending {
                user: cairn_wire::UserId::from_bytes([2; 32]),
                code,
            })),
        }
    }

    fn note(seq: u64, text: &str) -> Item {
        let mut rng = os::rng();
        let (root, device) = (RootKey::generate(&mut rng), DeviceKeys::generate(&mut rng));
        let certificate = root.certify_device(device.device_id(), device.exchange_key(), 1);
        let header = EnvelopeHeader::new(
            root.user_id(),
            device.device_id(),
            seq,
            cairn_wire::FIRST_IN_STREAM,
            1,
            Scope::Private,
        );
        let id = EnvelopeId::from_bytes([u8::try_from(seq).unwrap(); 32]);
        let body = RecordBody::Note(NoteOp::Add { text: text.into() });
        Item::new(id, header, Vec::new(), Record::new(certificate, body))
    }

    /// A store as the previous version wrote it: the passphrase at the
    /// minimum cost, items sealed under one label for all.
    fn old_store(home: &Path, passphrase: &Passphrase, items: &[Item]) {
        let store = LocalStore::create(home).unwrap();
        let (key, header) =
            vault::DataKey::create(&mut os::rng(), passphrase, KdfCost::INSECURE_MINIMUM).unwrap();
        let mut batch = Batch::default();
        batch.meta.push((meta::VAULT, header));
        let identity = key
            .seal(&mut os::rng(), LABEL_IDENTITY, &identity().encode())
            .unwrap();
        batch.meta.push((meta::IDENTITY, identity));
        for item in items {
            let sealed = key
                .seal(&mut os::rng(), LABEL_ITEM_UNBOUND, &item.encode())
                .unwrap();
            batch.items.push((item.id, sealed));
        }
        store.commit(batch).unwrap();
    }

    #[test]
    fn an_older_store_is_raised_and_its_items_bound_to_their_ids_on_unlock() {
        let home = tempfile::TempDir::new().unwrap();
        let passphrase = Passphrase::new("right".into());
        let items = [note(1, "one"), note(2, "two")];
        old_store(home.path(), &passphrase, &items);

        let (sealed, _) = Sealed::unlock_at(home.path(), &passphrase, RAISED).unwrap();
        assert_eq!(sealed.items().unwrap(), items);
        let header = sealed.store.meta(meta::VAULT).unwrap().unwrap();
        assert_eq!(vault::DataKey::header_cost(&header).unwrap(), RAISED);
        assert_eq!(
            sealed.store.meta(meta::ITEM_FORMAT).unwrap().as_deref(),
            Some(ITEMS_BOUND_TO_IDS)
        );
        for (id, blob) in sealed.store.items().unwrap() {
            assert!(
                sealed.key.open(LABEL_ITEM_UNBOUND, &blob).is_err(),
                "resealed"
            );
            assert!(sealed.key.open(&item_label(&id), &blob).is_ok());
        }
        drop(sealed);
        let (again, _) = Sealed::unlock_at(home.path(), &passphrase, RAISED).unwrap();
        assert_eq!(again.items().unwrap(), items, "unlocks as it is now");
        drop(again);
        assert!(matches!(
            Sealed::unlock_at(home.path(), &Passphrase::new("wrong".into()), RAISED),
            Err(Error::WrongPassphrase)
        ));
    }

    #[test]
    fn an_item_moved_under_another_envelopes_id_does_not_open() {
        let home = tempfile::TempDir::new().unwrap();
        let passphrase = Passphrase::new("right".into());
        let sealed = Sealed::create(home.path(), &passphrase, &identity()).unwrap();
        let (one, two) = (note(1, "one"), note(2, "two"));
        let mut batch = Batch::default();
        sealed.save_item(&one, &mut batch).unwrap();
        sealed.save_item(&two, &mut batch).unwrap();
        sealed.store.commit(batch).unwrap();
        assert_eq!(sealed.items().unwrap(), [one.clone(), two.clone()]);

        let blobs = sealed.store.items().unwrap();
        let mut swapped = Batch::default();
        swapped.items.push((blobs[0].0, blobs[1].1.clone()));
        swapped.items.push((blobs[1].0, blobs[0].1.clone()));
        sealed.store.commit(swapped).unwrap();
        assert!(sealed.items().is_err(), "swapped items must not open");
    }
}
