//! Identities: what the root key signs, and the rules by which the relay
//! and clients decide which devices speak for a user and whom a user has
//! granted their friends scope.
//!
//! The root key signs device certificates, device revocations, friend
//! grants and friend revocations (cairn-wire's statements), and the user
//! exchange key announcement defined here. A revocation is final: a revoked
//! device never becomes valid again, whatever certificate comes later. For
//! friends, the statement with the latest timestamp wins, and a revocation
//! wins a tie.

use std::collections::BTreeMap;

use cairn_wire::codec::V1;
use cairn_wire::{
    DeviceCertificate, DeviceCertificateBody, DeviceId, DeviceRevocation, DeviceRevocationBody,
    Envelope, ExchangeKey, FriendGrant, FriendGrantBody, FriendRevocation, FriendRevocationBody,
    Signed, Statement, UserId,
};
use serde::{Deserialize, Serialize};

use crate::error::VerifyError;
use crate::keys::RootKey;

/// Domain of user exchange key announcements (made by the root key).
pub const DOMAIN_EXCHANGE_KEY: &str = "cairn/user-exchange-key/v1";

/// The user's root key vouches that `exchange_key` is the user exchange
/// key, the one audience keys are granted to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExchangeKeyBody {
    version: V1,
    /// The user.
    pub user: UserId,
    /// The user exchange key.
    pub exchange_key: ExchangeKey,
    /// Milliseconds since the Unix epoch; the latest announcement wins.
    pub issued_ms: u64,
}

impl ExchangeKeyBody {
    /// An announcement body in the current version.
    pub fn new(user: UserId, exchange_key: ExchangeKey, issued_ms: u64) -> Self {
        Self {
            version: V1,
            user,
            exchange_key,
            issued_ms,
        }
    }
}

impl Statement for ExchangeKeyBody {
    const DOMAIN: &'static str = DOMAIN_EXCHANGE_KEY;

    fn signer(&self) -> UserId {
        self.user
    }

    fn dated_ms(&self) -> u64 {
        self.issued_ms
    }
}

/// A signed user exchange key announcement.
pub type ExchangeKeyAnnouncement = Signed<ExchangeKeyBody>;

impl RootKey {
    /// Certifies a device of this user.
    pub fn certify_device(
        &self,
        device: DeviceId,
        exchange_key: ExchangeKey,
        issued_ms: u64,
    ) -> DeviceCertificate {
        let body = DeviceCertificateBody::new(self.user_id(), device, exchange_key, issued_ms);
        Signed::sign(body, self.signing_key())
    }

    /// Revokes a device of this user, for good.
    pub fn revoke_device(&self, device: DeviceId, revoked_ms: u64) -> DeviceRevocation {
        let body = DeviceRevocationBody::new(self.user_id(), device, revoked_ms);
        Signed::sign(body, self.signing_key())
    }

    /// Lets `grantee` read this user's friends scope.
    pub fn grant_friend(&self, grantee: UserId, issued_ms: u64) -> FriendGrant {
        Signed::sign(
            FriendGrantBody::new(self.user_id(), grantee, issued_ms),
            self.signing_key(),
        )
    }

    /// Withdraws `grantee`'s access to this user's friends scope.
    pub fn revoke_friend(&self, grantee: UserId, revoked_ms: u64) -> FriendRevocation {
        Signed::sign(
            FriendRevocationBody::new(self.user_id(), grantee, revoked_ms),
            self.signing_key(),
        )
    }

    /// Announces the user exchange key.
    pub fn announce_exchange_key(
        &self,
        exchange_key: ExchangeKey,
        issued_ms: u64,
    ) -> ExchangeKeyAnnouncement {
        let body = ExchangeKeyBody::new(self.user_id(), exchange_key, issued_ms);
        Signed::sign(body, self.signing_key())
    }
}

/// Checks that `statement` is validly signed by `user`'s root key.
pub fn verify_statement<'a, B: Statement>(
    statement: &'a Signed<B>,
    user: &UserId,
) -> Result<&'a B, VerifyError> {
    if statement.body().signer() != *user {
        return Err(VerifyError::WrongUser);
    }
    Ok(statement.verify()?)
}

/// The devices of one user, built from verified certificates and
/// revocations.
#[derive(Debug, Clone)]
pub struct UserDevices {
    user: UserId,
    devices: BTreeMap<DeviceId, DeviceState>,
}

#[derive(Debug, Clone)]
enum DeviceState {
    Active(DeviceCertificateBody),
    Revoked,
}

impl UserDevices {
    /// No devices yet.
    pub fn new(user: UserId) -> Self {
        Self {
            user,
            devices: BTreeMap::new(),
        }
    }

    /// The user.
    pub fn user(&self) -> UserId {
        self.user
    }

    /// Adds a device certificate after checking it. A certificate for a
    /// revoked device is refused; a newer one for an active device
    /// replaces the older.
    pub fn certify(&mut self, certificate: &DeviceCertificate) -> Result<(), VerifyError> {
        let body = verify_statement(certificate, &self.user)?;
        match self.devices.get(&body.device) {
            Some(DeviceState::Revoked) => Err(VerifyError::Revoked),
            Some(DeviceState::Active(old)) if old.issued_ms > body.issued_ms => Ok(()),
            _ => {
                let state = DeviceState::Active(body.clone());
                self.devices.insert(body.device, state);
                Ok(())
            }
        }
    }

    /// Applies a device revocation after checking it. Final.
    pub fn revoke(&mut self, revocation: &DeviceRevocation) -> Result<(), VerifyError> {
        let body = verify_statement(revocation, &self.user)?;
        self.devices.insert(body.device, DeviceState::Revoked);
        Ok(())
    }

    /// The certificate of an active device.
    pub fn device(&self, device: &DeviceId) -> Result<&DeviceCertificateBody, VerifyError> {
        match self.devices.get(device) {
            Some(DeviceState::Active(body)) => Ok(body),
            Some(DeviceState::Revoked) => Err(VerifyError::Revoked),
            None => Err(VerifyError::UnknownDevice),
        }
    }

    /// The certificates of all active devices, e.g. to rotate the private
    /// audience after a revocation and seal it to each of them.
    pub fn active(&self) -> impl Iterator<Item = &DeviceCertificateBody> {
        self.devices.values().filter_map(|state| match state {
            DeviceState::Active(body) => Some(body),
            DeviceState::Revoked => None,
        })
    }

    /// Checks that `envelope` is by this user, signed by one of their
    /// active devices.
    pub fn verify_envelope(&self, envelope: &Envelope) -> Result<(), VerifyError> {
        if envelope.header().author != self.user {
            return Err(VerifyError::WrongUser);
        }
        self.device(&envelope.header().device)?;
        Ok(envelope.verify()?)
    }
}

/// Whom one user has granted their friends scope, from verified grants and
/// revocations.
#[derive(Debug, Clone)]
pub struct FriendSet {
    granter: UserId,
    latest: BTreeMap<UserId, (u64, bool)>,
}

impl FriendSet {
    /// Nobody granted yet.
    pub fn new(granter: UserId) -> Self {
        Self {
            granter,
            latest: BTreeMap::new(),
        }
    }

    /// Applies a friend grant after checking it.
    pub fn grant(&mut self, grant: &FriendGrant) -> Result<(), VerifyError> {
        let body = verify_statement(grant, &self.granter)?;
        self.apply(body.grantee, body.issued_ms, true);
        Ok(())
    }

    /// Applies a friend revocation after checking it.
    pub fn revoke(&mut self, revocation: &FriendRevocation) -> Result<(), VerifyError> {
        let body = verify_statement(revocation, &self.granter)?;
        self.apply(body.grantee, body.revoked_ms, false);
        Ok(())
    }

    /// Whether `user` may read the granter's friends scope.
    pub fn is_friend(&self, user: &UserId) -> bool {
        self.latest.get(user).is_some_and(|(_, granted)| *granted)
    }

    /// Everyone currently granted.
    pub fn friends(&self) -> impl Iterator<Item = &UserId> {
        self.latest
            .iter()
            .filter_map(|(user, (_, granted))| granted.then_some(user))
    }

    /// Later wins; on a tie, revocation wins.
    fn apply(&mut self, grantee: UserId, at_ms: u64, granted: bool) {
        let entry = self.latest.entry(grantee).or_insert((at_ms, granted));
        let later = at_ms > entry.0;
        let tie_revokes = at_ms == entry.0 && !granted;
        if later || tie_revokes {
            *entry = (at_ms, granted);
        }
    }
}
