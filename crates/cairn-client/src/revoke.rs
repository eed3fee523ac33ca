//! Revoking a device: the relay refuses it from then on, and everything it
//! could read with is replaced. The private audience, the user exchange
//! key (announced again to friends, who re-grant to the new key and rotate
//! their audiences that hold this user, `social.rs`) and every audience the
//! user owns move to new keys, sealed only to the remaining devices and
//! members. A `DeviceRevoked` record, in the private log and to friends,
//! says which of the device's envelopes still count, so that no reader
//! takes in what it signs afterwards, even through a relay that helps it.

use cairn_crypto::public::{PUBLIC_AUDIENCE, public_audience_key};
use cairn_crypto::{Epoch, ExchangeSecret, WrapTarget, os};
use cairn_wire::{DeviceId, DeviceRevocation, Request, Response, Scope};

use crate::client::{Client, now_ms};
use crate::error::Error;
use crate::local::Batch;
use crate::record::RecordBody;
use crate::state::State;
use crate::sync::NoProgress;

impl Client {
    /// Revokes another device of the user for good and rotates every key
    /// it held (see the module documentation).
    pub async fn revoke_device(&mut self, device: DeviceId) -> Result<(), Error> {
        if device == self.device() {
            return Err(Error::Invalid(
                "this is the current device; revoke it from another one".into(),
            ));
        }
        let connection = self.connect().await?;
        // Everything the relay holds from the device now still counts:
        // pull it first, so the cutoff covers it.
        self.sync_on(&connection, &mut NoProgress).await?;
        let last_seq = self.last_seen_seq(device)?;
        let revocation = self
            .identity
            .linked()?
            .root()?
            .revoke_device(device, now_ms());
        match connection
            .request(&Request::RevokeDevice(revocation.clone()))
            .await?
        {
            Response::Done => {}
            Response::Error(e) => return Err(Error::Refused(e)),
            other => return Err(Error::Protocol(format!("revoke answered {other:?}"))),
        }
        self.rotate_after_revoking(&revocation, last_seq)?;
        self.sync_on(&connection, &mut NoProgress).await?;
        connection.close().await;
        Ok(())
    }

    /// The highest sequence number of `device`'s envelopes this device
    /// holds as items.
    fn last_seen_seq(&self, device: DeviceId) -> Result<u64, Error> {
        let me = self.user()?;
        Ok(self
            .items()?
            .iter()
            .filter(|item| item.header.author == me && item.header.device == device)
            .map(|item| item.header.seq)
            .max()
            .unwrap_or(0))
    }

    /// New private epoch and user exchange key, announced; the revocation
    /// recorded for the user's devices and for friends; every owned
    /// audience rotated and granted to its members; the new keys sealed to
    /// each remaining device.
    fn rotate_after_revoking(
        &mut self,
        revocation: &DeviceRevocation,
        last_seq: u64,
    ) -> Result<(), Error> {
        let revoked = revocation.body().device;
        let state = self.state()?;
        self.rotate_own_keys()?;
        let record = RecordBody::DeviceRevoked {
            revocation: revocation.clone(),
            last_seq,
        };
        self.append_private(record.clone())?;
        self.append_public(record)?;
        self.announce_exchange_key()?;
        self.rotate_audiences(&state)?;
        let me = self.user()?;
        let this = self.device();
        for (device, key) in &state.device_keys {
            if *device != revoked && *device != this {
                self.append_link(me, key)?;
            }
        }
        Ok(())
    }

    /// A new private epoch and a new user exchange secret, stored.
    fn rotate_own_keys(&mut self) -> Result<(), Error> {
        let linked = self.identity.linked_mut()?;
        linked.private.rotate(&mut os::rng())?;
        linked.exchange = ExchangeSecret::generate(&mut os::rng());
        let mut batch = Batch::default();
        self.save_identity(&mut batch)?;
        self.local.store().commit(batch)
    }

    /// Announces the current user exchange key to friends, signed by the
    /// root key.
    pub(crate) fn announce_exchange_key(&mut self) -> Result<(), Error> {
        let linked = self.identity.linked()?;
        let announcement = linked
            .root()?
            .announce_exchange_key(linked.exchange.public_key(), now_ms());
        self.append_public(RecordBody::ExchangeKey(announcement))?;
        Ok(())
    }

    /// Appends a friends-scope record sealed to the user's public audience:
    /// readable by every friend.
    pub(crate) fn append_public(&mut self, body: RecordBody) -> Result<(), Error> {
        let public = public_audience_key(&self.user()?);
        let target = WrapTarget {
            audience: PUBLIC_AUDIENCE,
            epoch: Epoch::FIRST,
            key: &public,
        };
        self.append_record(Scope::Friends, &[target], body)?;
        Ok(())
    }

    /// A new epoch of every audience the user owns, granted to its members.
    fn rotate_audiences(&mut self, state: &State) -> Result<(), Error> {
        for audience in state.audiences.values() {
            self.rotate_granting(audience.clone(), &[])?;
        }
        Ok(())
    }
}
