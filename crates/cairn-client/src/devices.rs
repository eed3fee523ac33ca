//! Devices: joining, approving, listing, revoking.
//!
//! A joining device cannot authenticate as the user before it holds a
//! certificate, and cannot read anything before it authenticates. So it
//! makes a throwaway *rendezvous* user of its own (one root key, one
//! device), registers it, lets the user it joins (named with `--user`)
//! write to it (a friend grant: the relay takes direct envelopes only from
//! users the recipient granted), and prints a link code naming it. It
//! accepts a bundle from that user only. The approving
//! device certifies the new device with exactly the `issued_ms` from the
//! code, registers it, and sends the user's keys sealed to the new
//! device's exchange key in a direct envelope to the rendezvous user. The
//! new device's next sync reads that envelope as the rendezvous user,
//! opens the bundle, and signs its own certificate with the root key it
//! now holds: Ed25519 is deterministic, so it is the very certificate the
//! approver registered.

use std::collections::BTreeMap;
use std::path::Path;

use cairn_crypto::{DeviceKeys, RootKey, os};
use cairn_wire::{
    DeviceId, Fingerprint, HelloRequest, Request, Response, Scope, StatusResponse, StreamId, UserId,
};

use crate::client::{Client, now_ms};
use crate::error::Error;
use crate::identity::{Identity, LinkState, Linked, Pending};
use crate::link::LinkCode;
use crate::local::{Batch, LocalStore};
use crate::reach::{Options, connect_as};
use crate::record::RecordBody;
use crate::sync::NoProgress;
use crate::vault::Passphrase;

/// One of the user's devices, as the relay and the private log know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceView {
    /// The device id.
    pub device: DeviceId,
    /// Its name, if a linked device recorded one.
    pub name: Option<String>,
    /// Whether it is revoked.
    pub revoked: bool,
    /// Whether it is this device.
    pub this: bool,
    /// The last sequence number the relay stored from it.
    pub last_seq: u64,
    /// The position it acknowledged in the user's private stream.
    pub private_position: u64,
    /// The positions it acknowledged, per stream.
    pub positions: BTreeMap<StreamId, u64>,
}

impl Client {
    /// Prepares this home as a new device of an existing user: registers
    /// a rendezvous user with the relay and returns the link code to
    /// approve on a linked device.
    pub async fn join(
        home: &Path,
        passphrase: &Passphrase,
        relay: &str,
        fingerprint: Fingerprint,
        user: UserId,
        name: &str,
        options: Options,
    ) -> Result<(Self, LinkCode), Error> {
        if LocalStore::exists(home) {
            return Err(Error::AlreadyInitialised {
                home: home.to_owned(),
            });
        }
        let mut rng = os::rng();
        let device = DeviceKeys::generate(&mut rng);
        let pending = Pending {
            user: Some(user),
            issued_ms: now_ms(),
            rendezvous_root: RootKey::generate(&mut rng),
            rendezvous_device: DeviceKeys::generate(&mut rng),
        };
        let connection = connect_pending(relay, fingerprint, &pending, &options).await?;
        let consent = pending
            .rendezvous_root
            .grant_friend(user, pending.issued_ms);
        let answer = connection.request(&Request::GrantFriend(consent)).await?;
        connection.close().await;
        match answer {
            Response::Done => {}
            Response::Error(e) => return Err(Error::Refused(e)),
            other => return Err(Error::Protocol(format!("grant answered {other:?}"))),
        }
        let code = LinkCode::new(
            device.device_id(),
            device.exchange_key(),
            pending.issued_ms,
            pending.rendezvous_root.user_id(),
            name,
        );
        let identity = Identity {
            relay: relay.to_owned(),
            fingerprint,
            device,
            name: name.to_owned(),
            state: LinkState::Pending(Box::new(pending)),
        };
        let client = Self::create(home, passphrase, identity, options)?;
        Ok((client, code))
    }

    /// Approves a joining device: certifies and registers it, then seals
    /// it the user's keys through the relay.
    pub async fn approve(&mut self, code: &LinkCode) -> Result<DeviceId, Error> {
        let linked = self.identity.linked()?;
        let certificate =
            linked
                .root
                .certify_device(code.device, code.exchange_key, code.issued_ms);
        let connection = self.connect().await?;
        match connection
            .request(&Request::RegisterDevice(certificate.clone()))
            .await?
        {
            Response::Done => {}
            Response::Error(e) => return Err(Error::Refused(e)),
            other => return Err(Error::Protocol(format!("register answered {other:?}"))),
        }
        self.append_link(code.rendezvous, &code.exchange_key)?;
        let name = code.name.as_str().to_owned();
        self.append_private(RecordBody::Device { certificate, name })?;
        self.sync_on(&connection, &mut NoProgress).await?;
        connection.close().await;
        Ok(code.device)
    }

    /// Lists the user's devices with their sync positions (asks the relay).
    pub async fn devices(&mut self) -> Result<Vec<DeviceView>, Error> {
        let connection = self.connect().await?;
        let status = match connection.request(&Request::Status).await? {
            Response::Status(status) => status,
            Response::Error(e) => return Err(Error::Refused(e)),
            other => return Err(Error::Protocol(format!("status answered {other:?}"))),
        };
        connection.close().await;
        self.device_views(status)
    }

    fn device_views(&self, status: StatusResponse) -> Result<Vec<DeviceView>, Error> {
        let state = self.state()?;
        let private = StreamId::new(self.user()?, Scope::Private);
        let me = self.device();
        Ok(status
            .devices
            .into_vec()
            .into_iter()
            .map(|d| DeviceView {
                device: d.device,
                name: state.device_names.get(&d.device).cloned(),
                revoked: d.revoked,
                this: d.device == me,
                last_seq: d.last_seq,
                private_position: d
                    .acked
                    .iter()
                    .find(|c| c.stream == private)
                    .map_or(0, |c| c.position),
                positions: d.acked.iter().map(|c| (c.stream, c.position)).collect(),
            })
            .collect())
    }

    /// Revokes another device of the user for good, rotates the private
    /// audience, and seals the new key to every remaining device.
    pub async fn revoke_device(&mut self, device: DeviceId) -> Result<(), Error> {
        if device == self.device() {
            return Err(Error::Invalid(
                "this is the current device; revoke it from another one".into(),
            ));
        }
        let connection = self.connect().await?;
        let revocation = self.identity.linked()?.root.revoke_device(device, now_ms());
        match connection
            .request(&Request::RevokeDevice(revocation))
            .await?
        {
            Response::Done => {}
            Response::Error(e) => return Err(Error::Refused(e)),
            other => return Err(Error::Protocol(format!("revoke answered {other:?}"))),
        }
        self.rotate_private(device)?;
        self.sync_on(&connection, &mut NoProgress).await?;
        connection.close().await;
        Ok(())
    }

    /// A new private epoch, sealed (as a link bundle) to each device
    /// other than `revoked` that the private log has certified.
    fn rotate_private(&mut self, revoked: DeviceId) -> Result<(), Error> {
        let state = self.state()?;
        let me = self.user()?;
        let linked = self.identity.linked_mut()?;
        linked.private.rotate(&mut os::rng())?;
        let mut batch = Batch::default();
        self.save_identity(&mut batch)?;
        self.local.store().commit(batch)?;
        let this = self.device();
        for (device, key) in state.device_keys {
            if device != revoked && device != this {
                self.append_link(me, &key)?;
            }
        }
        Ok(())
    }

    /// On a pending device: reads the bundle as the rendezvous user and
    /// becomes a linked device, or says it is not approved yet.
    pub(crate) async fn complete_link(&mut self) -> Result<(), Error> {
        let LinkState::Pending(pending) = &self.identity.state else {
            return Ok(());
        };
        let pending = (**pending).clone();
        let Some(sponsor) = pending.user else {
            return Err(Error::JoinedWithoutUser);
        };
        let connection = connect_pending(
            &self.identity.relay,
            self.identity.fingerprint,
            &pending,
            &self.options,
        )
        .await?;
        let hello = Request::Hello(HelloRequest::default());
        let response = connection.request(&hello).await?;
        connection.close().await;
        let Response::Synced(synced) = response else {
            return Err(Error::Protocol("the rendezvous hello failed".into()));
        };
        let rendezvous = Scope::Direct(pending.rendezvous_root.user_id());
        let secret = self.identity.device.exchange_secret().clone();
        let bundle = synced
            .pages
            .iter()
            .flat_map(|page| page.entries.iter())
            .map(|entry| &entry.envelope)
            .filter(|e| {
                let header = e.header();
                header.scope == rendezvous && header.author == sponsor && e.verify().is_ok()
            })
            .filter_map(|e| {
                cairn_crypto::open_link(e.header(), e.payload().as_slice(), &secret).ok()
            })
            // The header's author is only what the envelope claims; the
            // bundle's root key must be that user's too, or a relay could
            // seal a root of its own choosing under the sponsor's name.
            .find(|bundle| bundle.root.user_id() == sponsor)
            .ok_or(Error::NotLinked)?;
        let certificate = bundle.root.certify_device(
            self.device(),
            self.identity.device.exchange_key(),
            pending.issued_ms,
        );
        self.identity.state = LinkState::Linked(Box::new(Linked {
            root: bundle.root,
            exchange: bundle.exchange,
            private: bundle.private,
            certificate,
        }));
        let mut batch = Batch::default();
        self.save_identity(&mut batch)?;
        self.local.store().commit(batch)
    }
}

/// Connects as the rendezvous user of a pending device (registering it
/// on first use, as any new user).
async fn connect_pending(
    relay: &str,
    fingerprint: Fingerprint,
    pending: &Pending,
    options: &Options,
) -> Result<crate::Connection, Error> {
    let device = &pending.rendezvous_device;
    let certificate = pending.rendezvous_root.certify_device(
        device.device_id(),
        device.exchange_key(),
        pending.issued_ms,
    );
    connect_as(
        relay,
        fingerprint,
        device.signing_key(),
        certificate,
        options,
    )
    .await
}
