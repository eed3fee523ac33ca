//! [`Client`]: one device's view of its user, backed by the local store.
//!
//! Every change is an envelope signed by this device and appended to the
//! outbox first, so it succeeds offline; [`Client::sync`] pushes the outbox
//! and pulls what is new. What the user sees (notes, friends, audiences,
//! feed) is folded from the decrypted records in author order.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use cairn_crypto::{Audience, os};
use cairn_wire::{DeviceId, ErrorCode, Fingerprint, UserId};

use crate::added::Added;
use crate::connection::{ConnectError, Connection};
use crate::error::Error;
use crate::identity::{Identity, LinkState};
use crate::local::{Batch, LocalStore, meta};
use crate::open::{Item, KeyState};
use crate::reach::{Options, connect_identity};
use crate::record::RecordBody;
use crate::revoked::Revoked;
use crate::sealed::Sealed;
use crate::state::State;
use crate::vault::{Passphrase, UnlockedKey};

/// Who this device is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Whoami {
    /// The user id (`cu1…`), once linked.
    pub user: Option<String>,
    /// This device's id (`cd1…`).
    pub device: String,
    /// This device's name.
    pub name: String,
    /// The relay, `HOST:PORT`.
    pub relay: String,
    /// Whether the device still waits for approval.
    pub pending: bool,
    /// Whether it holds the user's root key.
    pub root_key: bool,
}

/// One device, linked or pending, with its local store.
#[derive(Debug)]
pub struct Client {
    home: PathBuf,
    /// The local store and the key sealing its secrets.
    pub(crate) local: Sealed,
    /// This device's keys and, once linked, its user's.
    pub(crate) identity: Identity,
    /// How to reach the relay.
    pub(crate) options: Options,
}

impl Client {
    /// Opens the identity in `home` with `passphrase`.
    pub fn open(home: &Path, passphrase: &Passphrase, options: Options) -> Result<Self, Error> {
        let (local, identity) = Sealed::unlock(home, passphrase)?;
        Ok(Self {
            home: home.to_owned(),
            local,
            identity,
            options,
        })
    }

    /// Opens the identity in `home` with a data key the passphrase agent
    /// held (`cairn unlock`).
    pub fn open_with_key(home: &Path, key: &UnlockedKey, options: Options) -> Result<Self, Error> {
        let (local, identity) = Sealed::unlock_with_key(home, key)?;
        Ok(Self {
            home: home.to_owned(),
            local,
            identity,
            options,
        })
    }

    /// This home's unlocked data key, for the passphrase agent to hold.
    pub fn unlocked_key(&self) -> UnlockedKey {
        self.local.unlocked_key()
    }

    /// Whether `home` holds an identity.
    pub fn exists(home: &Path) -> bool {
        LocalStore::exists(home)
    }

    /// Creates a new user and this, their first device; registers it with
    /// the relay (nothing is written locally if that fails).
    pub async fn init(
        home: &Path,
        passphrase: &Passphrase,
        relay: &str,
        fingerprint: Fingerprint,
        name: &str,
        options: Options,
    ) -> Result<Self, Error> {
        if LocalStore::exists(home) {
            return Err(Error::AlreadyInitialised {
                home: home.to_owned(),
            });
        }
        let mut rng = os::rng();
        let root = cairn_crypto::RootKey::generate(&mut rng);
        let exchange = cairn_crypto::ExchangeSecret::generate(&mut rng);
        let private = Audience::new(&mut rng, "private")?;
        let device = cairn_crypto::DeviceKeys::generate(&mut rng);
        let certificate = root.certify_device(device.device_id(), device.exchange_key(), now_ms());
        let identity = Identity {
            relay: relay.to_owned(),
            fingerprint,
            device,
            name: name.to_owned(),
            state: LinkState::Linked(Box::new(crate::identity::Linked {
                user: root.user_id(),
                root: Some(root),
                exchange,
                private,
                certificate,
            })),
        };
        let connection = connect_identity(&identity, &options).await?;
        let mut client = Self::create(home, passphrase, identity, options)?;
        client.append_first_records()?;
        client.sync_on(&connection, &mut crate::NoProgress).await?;
        connection.close().await;
        Ok(client)
    }

    /// Writes a fresh store holding `identity`.
    pub(crate) fn create(
        home: &Path,
        passphrase: &Passphrase,
        identity: Identity,
        options: Options,
    ) -> Result<Self, Error> {
        let local = Sealed::create(home, passphrase, &identity)?;
        Ok(Self {
            home: home.to_owned(),
            local,
            identity,
            options,
        })
    }

    /// The records a new user starts with: this device's name and
    /// certificate (private), and the exchange key announcement (friends).
    fn append_first_records(&mut self) -> Result<(), Error> {
        let linked = self.identity.linked()?;
        let device = RecordBody::Device {
            certificate: linked.certificate.clone(),
            name: self.identity.name.clone(),
        };
        let announcement = linked
            .root()?
            .announce_exchange_key(linked.exchange.public_key(), now_ms());
        self.append_private(device)?;
        self.append_public(RecordBody::ExchangeKey(announcement))
    }

    /// Who this device is.
    pub fn whoami(&self) -> Whoami {
        Whoami {
            user: self.identity.user().ok().map(|u| u.to_text()),
            device: self.identity.device_id().to_text(),
            name: self.identity.name.clone(),
            relay: self.identity.relay.clone(),
            pending: matches!(self.identity.state, LinkState::Pending(_)),
            root_key: self.holds_root(),
        }
    }

    /// The user id (linked devices only).
    pub fn user(&self) -> Result<UserId, Error> {
        self.identity.user()
    }

    /// This device's id.
    pub fn device(&self) -> DeviceId {
        self.identity.device_id()
    }

    /// Adds the sealed identity to `batch`, after a change to it.
    pub(crate) fn save_identity(&self, batch: &mut Batch) -> Result<(), Error> {
        self.local.save_identity(&self.identity, batch)
    }

    /// The home directory.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Envelopes waiting to be pushed.
    pub fn queued(&self) -> Result<u64, Error> {
        self.local.store().outbox_len()
    }

    /// Every decrypted item held.
    pub(crate) fn items(&self) -> Result<Vec<Item>, Error> {
        self.local.items()
    }

    /// The user's state, folded from every item.
    pub(crate) fn state(&self) -> Result<State, Error> {
        Ok(State::fold(self.user()?, self.items()?))
    }

    /// The keys to open envelopes with: received grants, the private
    /// audience, and every epoch of the user's own audiences.
    pub(crate) fn key_state(&self) -> Result<KeyState, Error> {
        let linked = self.identity.linked()?;
        let grants = self.local.keyring()?;
        let me = linked.user;
        let items = self.items()?;
        let revoked = Revoked::from_items(&items);
        let mut keys = KeyState {
            me,
            keyring: grants.clone(),
            grants,
            user_exchange: linked.exchange.clone(),
            device_exchange: self.identity.device.exchange_secret().clone(),
            added: Added::from_items(me, &items),
            revoked,
            vouched: items
                .iter()
                .map(|item| (item.header.author, item.header.device))
                .collect(),
        };
        keys.add_own(&linked.private);
        for item in &items {
            if let RecordBody::Audience(audience) = &item.record.body
                && item.header.author == keys.me
                && !keys.revoked.excludes(&item.header)
            {
                keys.add_own(audience);
            }
        }
        Ok(keys)
    }

    /// Connects and authenticates as this (linked) device, retrying with
    /// backoff while the relay is unreachable. Public for requests this
    /// client does not make itself, e.g. to ask the relay what it serves
    /// this device.
    pub async fn connect(&self) -> Result<Connection, Error> {
        let connected = connect_identity(&self.identity, &self.options).await;
        if let Err(Error::Connect(ConnectError::Refused(e))) = &connected
            && e.code == ErrorCode::DEVICE_REVOKED
        {
            self.remember_revoked()?;
        }
        connected
    }

    /// Remembers that the relay said this device is revoked, so that it
    /// refuses new writes up front instead of queueing what can never be
    /// sent.
    fn remember_revoked(&self) -> Result<(), Error> {
        let mut batch = Batch::default();
        batch.meta.push((meta::REVOKED, vec![1]));
        self.local.store().commit(batch)
    }

    /// Refuses a write on a device the relay said is revoked.
    pub(crate) fn check_not_revoked(&self) -> Result<(), Error> {
        match self.local.store().meta(meta::REVOKED)? {
            Some(_) => Err(Error::DeviceRevoked),
            None => Ok(()),
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
