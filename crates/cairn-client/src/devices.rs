//! Devices: joining, approving, listing, revoking.
//!
//! A joining device makes its keys and a link code (its public keys, a
//! one-time secret, the relay it uses) and contacts nobody. A linked
//! device of the user approves the code: it certifies the new device,
//! registers it with the relay, and seals the user's keys to the new
//! device under the code's secret (HPKE PSK mode) in the user's own direct
//! stream. The new device then enrols with the relay (authenticates as the
//! registered device and receives its certificate), finds the bundle that
//! opens with its code, and checks both against the user it joins. Both
//! devices show the same six-digit confirmation. No other user is
//! involved, so linking works under every registration policy; whoever
//! did not see the code cannot make a bundle the new device accepts, and
//! an approval by any other user never reaches it, because it enrols only
//! as a device of the user it named.

use std::collections::BTreeMap;
use std::path::Path;

use cairn_crypto::{DeviceKeys, ExchangeSecret, LinkBundle, LinkSecret, open_link_for_code, os};
use cairn_wire::{
    DeviceCertificate, DeviceId, ErrorCode, Fingerprint, ReadRequest, Request, Response, Scope,
    StatusResponse, StreamId, UserId,
};

use crate::client::{Client, now_ms};
use crate::connection::ConnectError;
use crate::error::Error;
use crate::identity::{Identity, LinkState, Linked, Pending};
use crate::link::{Confirmation, LinkCode};
use crate::local::{Batch, LocalStore};
use crate::reach::{Options, enrol_as, resolve};
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
    /// Prepares this home as a new device of `user`: makes its keys and
    /// the link code to approve on one of the user's linked devices.
    /// Nothing reaches the relay before the approval.
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
        resolve(relay).await?;
        let mut rng = os::rng();
        let device = DeviceKeys::generate(&mut rng);
        let secret = LinkSecret::generate(&mut rng);
        let code = LinkCode::new(&device, now_ms(), secret, &fingerprint, name);
        let identity = Identity {
            relay: relay.to_owned(),
            fingerprint,
            device,
            name: name.to_owned(),
            state: LinkState::Pending(Box::new(Pending {
                user,
                code: code.clone(),
            })),
        };
        let client = Self::create(home, passphrase, identity, options)?;
        Ok((client, code))
    }

    /// The link code of this pending device: the one it showed, while it
    /// lasts; after that a fresh one (a new secret and issue time).
    pub fn link_code(&mut self) -> Result<LinkCode, Error> {
        let LinkState::Pending(pending) = &mut self.identity.state else {
            return Err(Error::Invalid("this device is linked already".into()));
        };
        if pending.code.is_fresh(now_ms()) {
            return Ok(pending.code.clone());
        }
        let secret = LinkSecret::generate(&mut os::rng());
        let code = LinkCode::new(
            &self.identity.device,
            now_ms(),
            secret,
            &self.identity.fingerprint,
            &self.identity.name,
        );
        pending.code = code.clone();
        let mut batch = Batch::default();
        self.save_identity(&mut batch)?;
        self.local.store().commit(batch)?;
        Ok(code)
    }

    /// Approves a joining device: checks that its code is for this relay,
    /// still fresh and not approved yet; certifies and registers the
    /// device; seals it the user's keys under the code's secret.
    /// The new device gets the root key only `with_root`: without it, it
    /// cannot speak for the user, so a lost or revoked device costs less.
    pub async fn approve(&mut self, code: &LinkCode, with_root: bool) -> Result<Approval, Error> {
        if !code.is_for(&self.identity.fingerprint) {
            return Err(Error::Invalid(
                "this link code was made for another relay than this device's".into(),
            ));
        }
        code.check_fresh(now_ms())?;
        self.identity.linked()?.root()?;
        let connection = self.connect().await?;
        self.sync_on(&connection, &mut NoProgress).await?;
        if self.state()?.device_keys.contains_key(&code.device) {
            connection.close().await;
            return Err(Error::AlreadyApproved {
                device: code.device.to_text(),
            });
        }
        let linked = self.identity.linked()?;
        let certificate =
            linked
                .root()?
                .certify_device(code.device, code.exchange_key, code.issued_ms);
        match connection
            .request(&Request::RegisterDevice(certificate.clone()))
            .await?
        {
            Response::Done => {}
            Response::Error(e) => return Err(Error::Refused(e)),
            other => return Err(Error::Protocol(format!("register answered {other:?}"))),
        }
        self.append_link_for_code(code, with_root)?;
        let name = code.name.as_str().to_owned();
        self.append_private(RecordBody::Device { certificate, name })?;
        self.sync_on(&connection, &mut NoProgress).await?;
        connection.close().await;
        Ok(Approval {
            device: code.device,
            confirmation: code.confirmation(&self.user()?),
        })
    }

    /// Gives one of the user's devices (by name, id or unique prefix)
    /// another name, for every device of the user: a `Device` record with
    /// its certificate and the new name, the latest of which counts. Works
    /// offline; the change is queued like any other.
    pub fn rename_device(&mut self, device: &str, name: &str) -> Result<DeviceId, Error> {
        crate::social::check_name(name)?;
        let id = self.find_device(device)?;
        let state = self.state()?;
        if state
            .device_names
            .iter()
            .any(|(other, taken)| *other != id && taken == name)
        {
            return Err(Error::Exists(format!("a device is already named {name:?}")));
        }
        let certificate = self.certificate_of(&id)?;
        self.append_private(RecordBody::Device {
            certificate,
            name: name.to_owned(),
        })?;
        Ok(id)
    }

    /// The certificate of one of the user's devices, from the private
    /// records: its `Device` record, or any record it signed.
    fn certificate_of(&self, device: &DeviceId) -> Result<DeviceCertificate, Error> {
        let me = self.user()?;
        let items = self.items()?;
        let own = items
            .iter()
            .filter(|i| i.header.author == me && i.header.scope == Scope::Private);
        for item in own {
            let certificates = match &item.record.body {
                RecordBody::Device { certificate, .. } => {
                    vec![certificate, &item.record.certificate]
                }
                _ => vec![&item.record.certificate],
            };
            if let Some(found) = certificates
                .into_iter()
                .find(|c| c.body().device == *device)
            {
                return Ok(found.clone());
            }
        }
        if *device == self.device() {
            return Ok(self.identity.linked()?.certificate.clone());
        }
        Err(Error::Invalid(format!(
            "this device holds no certificate of {} yet: it has not synced since that device \
             was linked",
            device.to_text()
        )))
    }

    /// The user's device named `name`, or whose id is or starts with
    /// `name`, among those the private log certifies.
    pub fn find_device(&self, name: &str) -> Result<DeviceId, Error> {
        let name = name.trim();
        if let Ok(id) = name.parse::<DeviceId>() {
            return Ok(id);
        }
        let state = self.state()?;
        let mut known: Vec<DeviceId> = state.device_names.keys().copied().collect();
        known.push(self.device());
        known.sort();
        known.dedup();
        let named: Vec<DeviceId> = state
            .device_names
            .iter()
            .filter(|(_, n)| n.as_str() == name)
            .map(|(id, _)| *id)
            .collect();
        let matches = match named.is_empty() {
            false => named,
            true => known
                .into_iter()
                .filter(|id| !name.is_empty() && id.to_text().starts_with(name))
                .collect(),
        };
        crate::notes::the_one(name, matches, DeviceId::to_text, || {
            Error::Invalid(format!(
                "no device named {name:?} or whose id starts with it"
            ))
        })
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

    /// On a pending device: what its approval offers (the user, the
    /// confirmation both devices show), without adopting it yet; or
    /// [`Error::NotLinked`] while no device of the user approved it.
    pub async fn link_offer(&self) -> Result<LinkOffer, Error> {
        let LinkState::Pending(pending) = &self.identity.state else {
            return Err(Error::Invalid("this device is linked already".into()));
        };
        let (user, code) = (pending.user, &pending.code);
        let enrolled = enrol_as(
            &self.identity.relay,
            self.identity.fingerprint,
            self.identity.device.signing_key(),
            user,
            &self.options,
        )
        .await;
        let (connection, certificate) = match enrolled {
            Err(Error::Connect(ConnectError::Refused(e)))
                if e.code == ErrorCode::UNKNOWN_DEVICE =>
            {
                return Err(Error::NotLinked);
            }
            other => other?,
        };
        let found = self.check_enrolment(user, &certificate);
        let bundle = match found {
            Ok(()) => {
                find_bundle(
                    &connection,
                    user,
                    code,
                    self.identity.device.exchange_secret(),
                )
                .await
            }
            Err(e) => Err(e),
        };
        connection.close().await;
        Ok(LinkOffer {
            user,
            confirmation: code.confirmation(&user),
            bundle: bundle?.ok_or(Error::NotLinked)?,
            certificate,
        })
    }

    /// Adopts what [`Client::link_offer`] found: this device becomes a
    /// linked device of the user.
    pub fn accept_link(&mut self, offer: LinkOffer) -> Result<(), Error> {
        let LinkOffer {
            bundle,
            certificate,
            ..
        } = offer;
        self.identity.state = LinkState::Linked(Box::new(Linked {
            user: bundle.user,
            root: bundle.root,
            exchange: bundle.exchange,
            private: bundle.private,
            certificate,
        }));
        let mut batch = Batch::default();
        self.save_identity(&mut batch)?;
        self.local.store().commit(batch)
    }

    /// The certificate the relay returned must be this device's, with its
    /// keys, signed by the root key of the user it joins: a relay cannot
    /// hand it a certificate of its own making.
    fn check_enrolment(&self, user: UserId, certificate: &DeviceCertificate) -> Result<(), Error> {
        let body = certificate
            .verify()
            .map_err(|_| Error::Protocol("the relay returned a forged certificate".into()))?;
        let mine = body.user == user
            && body.device == self.device()
            && body.exchange_key == self.identity.device.exchange_key();
        if !mine {
            return Err(Error::Protocol(
                "the relay returned a certificate for another device".into(),
            ));
        }
        Ok(())
    }
}

/// What a pending device found once approved: whose device it becomes,
/// and the confirmation to compare with the approving device's.
#[derive(Debug)]
pub struct LinkOffer {
    /// The user who approved it (the one it joins).
    pub user: UserId,
    /// The six digits the approving device showed too.
    pub confirmation: Confirmation,
    bundle: LinkBundle,
    certificate: DeviceCertificate,
}

/// An approved device, with the confirmation its screen will show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Approval {
    /// The new device.
    pub device: DeviceId,
    /// The six digits the new device shows once linked.
    pub confirmation: Confirmation,
}

/// Reads the user's own direct stream for the bundle sealed under `code`
/// by a device of `user`: the first that verifies and opens with the
/// code's secret. Bundles of other modes or codes do not open.
async fn find_bundle(
    connection: &crate::Connection,
    user: UserId,
    code: &LinkCode,
    secret: &ExchangeSecret,
) -> Result<Option<LinkBundle>, Error> {
    let stream = StreamId::new(user, Scope::Direct(user));
    let mut after = 0;
    loop {
        let read = Request::Read(ReadRequest {
            stream,
            after,
            limit: BUNDLE_PAGE,
        });
        let page = match connection.request(&read).await? {
            Response::Page(page) => page,
            Response::Error(e) => return Err(Error::Refused(e)),
            other => return Err(Error::Protocol(format!("read answered {other:?}"))),
        };
        for entry in page.entries.iter() {
            after = entry.position;
            let envelope = &entry.envelope;
            let header = envelope.header();
            if header.author != user || envelope.verify().is_err() {
                continue;
            }
            let opened =
                open_link_for_code(header, envelope.payload().as_slice(), secret, &code.secret);
            if let Ok(bundle) = opened
                && bundle.user == user
            {
                return Ok(Some(bundle));
            }
        }
        if !page.more || page.entries.is_empty() {
            return Ok(None);
        }
    }
}

/// Entries read at a time while looking for the bundle.
const BUNDLE_PAGE: u32 = 256;
