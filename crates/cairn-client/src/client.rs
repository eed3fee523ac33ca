//! [`Client`]: one device's view of its user, backed by the local store.
//!
//! Every change is an envelope signed by this device and appended to the
//! outbox first, so it succeeds offline; [`Client::sync`] pushes the outbox
//! and pulls what is new. What the user sees (notes, friends, audiences,
//! feed) is folded from the decrypted records in author order.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_crypto::{Audience, KeyGrant, Keyring, LinkBundle, WrapTarget, os};
use cairn_wire::{
    DeviceId, Envelope, EnvelopeHeader, EnvelopeId, ExchangeKey, Fingerprint, Payload, Scope,
    UnsignedEnvelope, UserId,
};

use crate::added::Added;
use crate::connection::{ConnectError, Connection};
use crate::error::Error;
use crate::identity::{Identity, LinkState};
use crate::local::{Batch, LocalStore, meta};
use cairn_crypto::public::{PUBLIC_AUDIENCE, public_audience_key};

use crate::open::{Item, KeyState};
use crate::record::{Record, RecordBody};
use crate::state::State;
use crate::vault::{DataKey, Passphrase};

/// Associated-data labels of the store's sealed slots.
pub(crate) const LABEL_IDENTITY: &str = "cairn/local/identity/v1";
pub(crate) const LABEL_KEYRING: &str = "cairn/local/keyring/v1";
pub(crate) const LABEL_ITEM: &str = "cairn/local/item/v1";

/// How the client reaches the relay.
#[derive(Debug, Clone)]
pub struct Options {
    /// Give up on one connection attempt after this long.
    pub connect_timeout: Duration,
    /// Connection attempts before a sync gives up (with backoff between).
    pub attempts: u32,
    /// Invite code for relays that require one for new users.
    pub invite: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            attempts: 3,
            invite: None,
        }
    }
}

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
}

/// One device, linked or pending, with its local store.
#[derive(Debug)]
pub struct Client {
    pub(crate) home: PathBuf,
    pub(crate) store: LocalStore,
    pub(crate) key: DataKey,
    pub(crate) identity: Identity,
    pub(crate) options: Options,
}

impl Client {
    /// Opens the identity in `home` with `passphrase`.
    pub fn open(home: &Path, passphrase: &Passphrase, options: Options) -> Result<Self, Error> {
        let store = LocalStore::open(home)?;
        let vault = store
            .meta(meta::VAULT)?
            .ok_or_else(|| Error::NotInitialised {
                home: home.to_owned(),
            })?;
        let key = DataKey::unlock(&vault, passphrase)?;
        let sealed = store
            .meta(meta::IDENTITY)?
            .ok_or_else(|| Error::store("the store holds no identity"))?;
        let identity = Identity::decode(&key.open(LABEL_IDENTITY, &sealed)?)?;
        Ok(Self {
            home: home.to_owned(),
            store,
            key,
            identity,
            options,
        })
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
                root,
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
        let store = LocalStore::create(home)?;
        let (key, vault) = DataKey::create(passphrase)?;
        let client = Self {
            home: home.to_owned(),
            store,
            key,
            identity,
            options,
        };
        let mut batch = Batch::default();
        batch.meta.push((meta::VAULT, vault));
        client.save_identity(&mut batch)?;
        client.store.commit(batch)?;
        Ok(client)
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
            .root
            .announce_exchange_key(linked.exchange.public_key(), now_ms());
        self.append_private(device)?;
        let public = public_audience_key(&self.user()?);
        let target = WrapTarget {
            audience: PUBLIC_AUDIENCE,
            epoch: cairn_crypto::Epoch::FIRST,
            key: &public,
        };
        self.append_record(
            Scope::Friends,
            &[target],
            RecordBody::ExchangeKey(announcement),
        )?;
        Ok(())
    }

    /// Who this device is.
    pub fn whoami(&self) -> Whoami {
        Whoami {
            user: self.identity.user().ok().map(|u| u.to_text()),
            device: self.identity.device_id().to_text(),
            name: self.identity.name.clone(),
            relay: self.identity.relay.clone(),
            pending: matches!(self.identity.state, LinkState::Pending(_)),
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

    /// The home directory.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Envelopes waiting to be pushed.
    pub fn queued(&self) -> Result<u64, Error> {
        self.store.outbox_len()
    }

    /// Appends a record sealed to the private audience.
    pub(crate) fn append_private(&mut self, body: RecordBody) -> Result<EnvelopeId, Error> {
        let private = self.identity.linked()?.private.clone();
        self.append_record(Scope::Private, &[private.target()], body)
    }

    /// Appends a record sealed to `targets` under `scope`.
    pub(crate) fn append_record(
        &mut self,
        scope: Scope,
        targets: &[WrapTarget<'_>],
        body: RecordBody,
    ) -> Result<EnvelopeId, Error> {
        let record = Record::new(self.identity.linked()?.certificate.clone(), body);
        let plaintext = zeroize::Zeroizing::new(record.encode());
        let audiences = targets.iter().map(|t| t.audience).collect();
        let envelope = self.sign(scope, |header| {
            os::seal_post(header, &plaintext, targets).map_err(Error::from)
        })?;
        let item = Item::new(envelope.id(), envelope.header().clone(), audiences, record);
        self.append(&envelope, Some(&item))
    }

    /// Appends audience keys sealed to `member`'s exchange key.
    pub(crate) fn append_grant(
        &mut self,
        member: UserId,
        exchange_key: &ExchangeKey,
        keys: &[KeyGrant],
    ) -> Result<EnvelopeId, Error> {
        let envelope = self.sign(Scope::Direct(member), |header| {
            os::seal_grant(header, exchange_key, keys).map_err(Error::from)
        })?;
        self.append(&envelope, None)
    }

    /// Appends the user's keys sealed to a device's exchange key.
    pub(crate) fn append_link(
        &mut self,
        recipient: UserId,
        device_key: &ExchangeKey,
    ) -> Result<EnvelopeId, Error> {
        let linked = self.identity.linked()?;
        let bundle = LinkBundle::new(
            linked.root.clone(),
            linked.exchange.clone(),
            linked.private.clone(),
        );
        let envelope = self.sign(Scope::Direct(recipient), |header| {
            os::seal_link(header, device_key, &bundle).map_err(Error::from)
        })?;
        self.append(&envelope, None)
    }

    /// Signs the next envelope of this device with the payload `seal`
    /// makes for its header.
    fn sign(
        &self,
        scope: Scope,
        seal: impl FnOnce(&EnvelopeHeader) -> Result<Payload, Error>,
    ) -> Result<Envelope, Error> {
        let user = self.user()?;
        let seq = self.store.next_seq()?;
        let header = EnvelopeHeader::new(user, self.device(), seq, now_ms(), scope);
        let payload = seal(&header)?;
        Ok(UnsignedEnvelope { header, payload }.sign(self.identity.device.signing_key()))
    }

    /// Queues a signed envelope (and its decrypted item) in one commit,
    /// with the device's next sequence number.
    fn append(&mut self, envelope: &Envelope, item: Option<&Item>) -> Result<EnvelopeId, Error> {
        let id = envelope.id();
        let seq = envelope.header().seq;
        let bytes = envelope.encode();
        let mut batch = Batch::default();
        batch.outbox_add.push((seq, bytes.clone()));
        batch.envelopes.push((id, bytes));
        batch
            .meta
            .push((meta::NEXT_SEQ, seq.saturating_add(1).to_be_bytes().to_vec()));
        if let Some(item) = item {
            batch.items.push((id, self.seal_item(item)?));
        }
        self.store.commit(batch)?;
        Ok(id)
    }

    pub(crate) fn seal_item(&self, item: &Item) -> Result<Vec<u8>, Error> {
        self.key
            .seal(LABEL_ITEM, &zeroize::Zeroizing::new(item.encode()))
    }

    /// Adds the sealed identity to `batch`.
    pub(crate) fn save_identity(&self, batch: &mut Batch) -> Result<(), Error> {
        let sealed = self.key.seal(LABEL_IDENTITY, &self.identity.encode())?;
        batch.meta.push((meta::IDENTITY, sealed));
        Ok(())
    }

    /// Adds the sealed keyring of received grants to `batch`.
    pub(crate) fn save_keyring(&self, keyring: &Keyring, batch: &mut Batch) -> Result<(), Error> {
        let sealed = self.key.seal(LABEL_KEYRING, &keyring.encode())?;
        batch.meta.push((meta::KEYRING, sealed));
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

    /// The user's state, folded from every item.
    pub(crate) fn state(&self) -> Result<State, Error> {
        Ok(State::fold(self.user()?, self.items()?))
    }

    /// The keys to open envelopes with: received grants, the private
    /// audience, and every epoch of the user's own audiences.
    pub(crate) fn key_state(&self) -> Result<KeyState, Error> {
        let linked = self.identity.linked()?;
        let grants = match self.store.meta(meta::KEYRING)? {
            Some(sealed) => Keyring::decode(&self.key.open(LABEL_KEYRING, &sealed)?)
                .map_err(|e| Error::store(format!("keyring: {e}")))?,
            None => Keyring::new(),
        };
        let me = linked.root.user_id();
        let items = self.items()?;
        let mut keys = KeyState {
            me,
            keyring: grants.clone(),
            grants,
            user_exchange: linked.exchange.clone(),
            device_exchange: self.identity.device.exchange_secret().clone(),
            added: Added::from_items(me, &items),
        };
        keys.add_own(&linked.private);
        for item in &items {
            if let RecordBody::Audience(audience) = &item.record.body
                && item.header.author == keys.me
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
        connect_identity(&self.identity, &self.options).await
    }
}

/// Connects and authenticates as `identity`'s device, retrying with
/// backoff while the relay is unreachable.
pub(crate) async fn connect_identity(
    identity: &Identity,
    options: &Options,
) -> Result<Connection, Error> {
    let linked = identity.linked()?;
    connect_as(
        &identity.relay,
        identity.fingerprint,
        identity.device.signing_key(),
        linked.certificate.clone(),
        options,
    )
    .await
}

/// Connects to `relay` and authenticates with `certificate`.
pub(crate) async fn connect_as(
    relay: &str,
    fingerprint: Fingerprint,
    key: &cairn_wire::SigningKey,
    certificate: cairn_wire::DeviceCertificate,
    options: &Options,
) -> Result<Connection, Error> {
    let addr = resolve(relay).await?;
    let mut delay = Duration::from_millis(200);
    let attempts = options.attempts.max(1);
    for attempt in 1..=attempts {
        let open = Connection::open(
            addr,
            fingerprint,
            key,
            certificate.clone(),
            options.invite.as_deref(),
        );
        let error = match tokio::time::timeout(options.connect_timeout, open).await {
            Ok(Ok(connection)) => return Ok(connection),
            Ok(Err(ConnectError::Unreachable { reason, .. })) => reason,
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => format!("no answer within {:?}", options.connect_timeout),
        };
        if attempt == attempts {
            return Err(ConnectError::Unreachable {
                addr,
                reason: error,
            }
            .into());
        }
        tracing::debug!(%error, attempt, "relay unreachable; retrying");
        tokio::time::sleep(delay).await;
        delay = delay.saturating_mul(2);
    }
    Err(Error::Invalid("no connection attempt made".into()))
}

/// Resolves `HOST:PORT`.
pub(crate) async fn resolve(relay: &str) -> Result<std::net::SocketAddr, Error> {
    let invalid = || {
        Error::Invalid(format!(
            "cannot resolve the relay address {relay:?} (HOST:PORT)"
        ))
    };
    let mut addrs = tokio::net::lookup_host(relay)
        .await
        .map_err(|_| invalid())?;
    addrs.next().ok_or_else(invalid)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
