//! Who this device is: its keys, its relay, and either the user's keys
//! (a linked device) or what it needs to finish joining (a pending one).
//! Stored only encrypted under the data key (see [`crate::vault`]).

use cairn_crypto::{Audience, DeviceKeys, ExchangeSecret, RootKey};
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

/// The user's keys, shared by all linked devices.
#[derive(Debug, Clone)]
pub(crate) struct Linked {
    pub root: RootKey,
    pub exchange: ExchangeSecret,
    pub private: Audience,
    pub certificate: DeviceCertificate,
}

/// A joining device: it authenticates as a throwaway rendezvous user until
/// a linked device seals it the user's keys (see `spec/client.md`).
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    /// The user this device joins: the only one whose link bundle it
    /// accepts, and the one its rendezvous user lets write to it. `None`
    /// for a device prepared before joins named their user.
    pub user: Option<UserId>,
    pub issued_ms: u64,
    pub rendezvous_root: RootKey,
    pub rendezvous_device: DeviceKeys,
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
    /// A pending device that names the user it joins (appended, so that
    /// homes stored before it still decode).
    PendingFor {
        user: UserId,
        issued_ms: u64,
        root: RootKey,
        device: Vec<u8>,
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
        Ok(self.linked()?.root.user_id())
    }

    /// The secret encoding (wipe it after use).
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let state = match &self.state {
            LinkState::Linked(l) => StoredState::Linked {
                root: l.root.clone(),
                exchange: l.exchange.clone(),
                private: l.private.clone(),
                certificate: l.certificate.clone(),
            },
            LinkState::Pending(p) => match p.user {
                Some(user) => StoredState::PendingFor {
                    user,
                    issued_ms: p.issued_ms,
                    root: p.rendezvous_root.clone(),
                    device: p.rendezvous_device.encode().to_vec(),
                },
                None => StoredState::Pending {
                    issued_ms: p.issued_ms,
                    root: p.rendezvous_root.clone(),
                    device: p.rendezvous_device.encode().to_vec(),
                },
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
                root: root.clone(),
                exchange: exchange.clone(),
                private: private.clone(),
                certificate: certificate.clone(),
            })),
            StoredState::Pending {
                issued_ms,
                root,
                device,
            } => LinkState::Pending(Box::new(Pending {
                user: None,
                issued_ms: *issued_ms,
                rendezvous_root: root.clone(),
                rendezvous_device: DeviceKeys::decode(device).map_err(|e| bad(&e))?,
            })),
            StoredState::PendingFor {
                user,
                issued_ms,
                root,
                device,
            } => LinkState::Pending(Box::new(Pending {
                user: Some(*user),
                issued_ms: *issued_ms,
                rendezvous_root: root.clone(),
                rendezvous_device: DeviceKeys::decode(device).map_err(|e| bad(&e))?,
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
