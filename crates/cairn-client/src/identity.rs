//! Who this device is: its keys, its relay, and either the user's keys
//! (a linked device) or what it needs to finish joining (a pending one).
//! Stored only encrypted under the data key (see [`crate::vault`]).

use cairn_crypto::{Audience, DeviceKeys, ExchangeSecret, RootKey};

use crate::link::LinkCode;
use cairn_wire::codec::{self, V1};
use cairn_wire::{DeviceCertificate, DeviceId, Fingerprint, UserId};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::Error;

/// Largest stored identity (keys, name, relay, private audience state).
const MAX_IDENTITY_LEN: usize = 8 * 1024 * 1024;

/// This device's identity.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    /// `HOST:PORT` of the relay.
    pub relay: String,
    /// The relay's pinned certificate fingerprint.
    pub fingerprint: Fingerprint,
    /// This device's signing and exchange keys.
    pub device: DeviceKeys,
    /// A name for this device, shown in `device list`.
    pub name: String,
    /// Linked, or still waiting for approval.
    pub state: LinkState,
}

/// Whether the device holds the user's keys yet.
#[derive(Debug, Clone)]
pub(crate) enum LinkState {
    /// A full device of the user.
    Linked(Box<Linked>),
    /// Joined, waiting for another device's approval.
    Pending(Box<Pending>),
}

/// The user's keys, shared by all linked devices; the root key only on
/// the devices trusted with it.
#[derive(Debug, Clone)]
pub(crate) struct Linked {
    pub user: UserId,
    pub root: Option<RootKey>,
    pub exchange: ExchangeSecret,
    pub private: Audience,
    pub certificate: DeviceCertificate,
}

impl Linked {
    /// The root key, or [`Error::NoRootKey`] on a device without it.
    pub fn root(&self) -> Result<&RootKey, Error> {
        self.root.as_ref().ok_or(Error::NoRootKey)
    }
}

/// A joining device: it waits until a linked device of `user` registers
/// it and seals it the user's keys under its link code's secret (see
/// `spec/client.md` section 5).
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    /// The user this device joins: the only one whose approval it accepts.
    pub user: UserId,
    /// The code it shows; its secret authenticates the approval.
    pub code: LinkCode,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    version: V1,
    relay: String,
    fingerprint: String,
    device: Vec<u8>,
    name: String,
    state: StoredState,
}

// Lives only while being encoded or decoded.
#[allow(clippy::large_enum_variant)]
#[derive(Serialize, Deserialize)]
enum StoredState {
    Linked {
        root: RootKey,
        exchange: ExchangeSecret,
        private: Audience,
        certificate: DeviceCertificate,
    },
    Pending {
        issued_ms: u64,
        root: RootKey,
        device: Vec<u8>,
    },
    /// A pending device of an older version, which named the user it
    /// joins (kept so that such homes decode and say what they are).
    PendingFor {
        user: UserId,
        issued_ms: u64,
        root: RootKey,
        device: Vec<u8>,
    },
    /// A joining device with its link code.
    Joining { user: UserId, code: LinkCode },
    /// A linked device without the root key.
    Member {
        user: UserId,
        exchange: ExchangeSecret,
        private: Audience,
        certificate: DeviceCertificate,
    },
}

impl Identity {
    /// This device's id.
    pub fn device_id(&self) -> DeviceId {
        self.device.device_id()
    }

    /// The user's keys, or [`Error::Pending`].
    pub fn linked(&self) -> Result<&Linked, Error> {
        match &self.state {
            LinkState::Linked(linked) => Ok(linked),
            LinkState::Pending(_) => Err(Error::Pending),
        }
    }

    /// The user's keys, mutably.
    pub fn linked_mut(&mut self) -> Result<&mut Linked, Error> {
        match &mut self.state {
            LinkState::Linked(linked) => Ok(linked),
            LinkState::Pending(_) => Err(Error::Pending),
        }
    }

    /// The user id, once linked.
    pub fn user(&self) -> Result<UserId, Error> {
        Ok(self.linked()?.user)
    }

    /// The secret encoding (wipe it after use).
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let state = match &self.state {
            LinkState::Linked(l) => match &l.root {
                Some(root) => StoredState::Linked {
                    root: root.clone(),
                    exchange: l.exchange.clone(),
                    private: l.private.clone(),
                    certificate: l.certificate.clone(),
                },
                None => StoredState::Member {
                    user: l.user,
                    exchange: l.exchange.clone(),
                    private: l.private.clone(),
                    certificate: l.certificate.clone(),
                },
            },
            LinkState::Pending(p) => StoredState::Joining {
                user: p.user,
                code: p.code.clone(),
            },
        };
        let stored = Stored {
            version: V1,
            relay: self.relay.clone(),
            fingerprint: self.fingerprint.to_string(),
            device: self.device.encode().to_vec(),
            name: self.name.clone(),
            state,
        };
        let encoded = Zeroizing::new(codec::encode(&stored));
        wipe(stored);
        encoded
    }

    /// Loads what [`Identity::encode`] made.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let bad = |e: &dyn std::fmt::Display| Error::store(format!("identity: {e}"));
        let stored: Stored = codec::decode(bytes, MAX_IDENTITY_LEN).map_err(|e| bad(&e))?;
        let device = DeviceKeys::decode(&stored.device).map_err(|e| bad(&e))?;
        let fingerprint = stored.fingerprint.parse().map_err(|e| bad(&e))?;
        let state = match &stored.state {
            StoredState::Linked {
                root,
                exchange,
                private,
                certificate,
            } => LinkState::Linked(Box::new(Linked {
                user: root.user_id(),
                root: Some(root.clone()),
                exchange: exchange.clone(),
                private: private.clone(),
                certificate: certificate.clone(),
            })),
            StoredState::Member {
                user,
                exchange,
                private,
                certificate,
            } => LinkState::Linked(Box::new(Linked {
                user: *user,
                root: None,
                exchange: exchange.clone(),
                private: private.clone(),
                certificate: certificate.clone(),
            })),
            StoredState::Pending { .. } | StoredState::PendingFor { .. } => {
                wipe(stored);
                return Err(Error::OutdatedJoin);
            }
            StoredState::Joining { user, code } => LinkState::Pending(Box::new(Pending {
                user: *user,
                code: code.clone(),
            })),
        };
        let identity = Self {
            relay: stored.relay.clone(),
            fingerprint,
            device,
            name: stored.name.clone(),
            state,
        };
        wipe(stored);
        Ok(identity)
    }
}

/// Overwrites the encoded secrets of a stored identity before dropping it.
fn wipe(mut stored: Stored) {
    use zeroize::Zeroize;
    stored.device.zeroize();
    if let StoredState::Pending { device, .. } | StoredState::PendingFor { device, .. } =
        &mut stored.state
    {
        device.zeroize();
    }
}
