//! Statements signed by a user's root key that the relay must check:
//! which devices belong to a user, which are revoked, and whom a user has
//! granted read access to their friends scope.

use ed25519_dalek::SigningKey;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::codec::{self, DecodeError, V1};
use crate::ids::{DeviceId, ExchangeKey, Signature, UserId};
use crate::limits::MAX_STATEMENT_LEN;
use crate::signing::{self, BadSignature};

/// The body of something a user's root key signs.
pub trait Statement: Serialize + DeserializeOwned + Clone {
    /// The domain separator of its signatures.
    const DOMAIN: &'static str;

    /// The user whose root key must have signed it.
    fn signer(&self) -> UserId;

    /// The time its signer dated it (Unix milliseconds): when a
    /// certificate was issued, a revocation or grant made.
    fn dated_ms(&self) -> u64;
}

/// A statement with the root key's signature over it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(bound = "B: Statement")]
pub struct Signed<B> {
    body: B,
    signature: Signature,
}

impl<B: Statement> Signed<B> {
    /// Signs `body` with the root key of `body.signer()`.
    pub fn sign(body: B, root_key: &SigningKey) -> Self {
        let signature = signing::sign(root_key, B::DOMAIN, &codec::encode(&body));
        Self { body, signature }
    }

    /// Attaches a signature made elsewhere.
    pub fn from_parts(body: B, signature: Signature) -> Self {
        Self { body, signature }
    }

    /// Checks that the signer's root key signed the body.
    pub fn verify(&self) -> Result<&B, BadSignature> {
        let signer = self.body.signer();
        signing::verify(
            signer.as_bytes(),
            B::DOMAIN,
            &codec::encode(&self.body),
            &self.signature,
        )?;
        Ok(&self.body)
    }

    /// The body, whether or not it verifies.
    pub fn body(&self) -> &B {
        &self.body
    }

    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Decodes a statement of at most [`MAX_STATEMENT_LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode_versioned(bytes, MAX_STATEMENT_LEN)
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }
}

/// The user's root key vouches that `device` is one of theirs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeviceCertificateBody {
    version: V1,
    /// The user.
    pub user: UserId,
    /// The device's ed25519 signing key.
    pub device: DeviceId,
    /// The device's X25519 key, to which key grants are sealed.
    pub exchange_key: ExchangeKey,
    /// Milliseconds since the Unix epoch.
    pub issued_ms: u64,
}

impl DeviceCertificateBody {
    /// A certificate body in the current version.
    pub fn new(user: UserId, device: DeviceId, exchange_key: ExchangeKey, issued_ms: u64) -> Self {
        Self {
            version: V1,
            user,
            device,
            exchange_key,
            issued_ms,
        }
    }
}

impl Statement for DeviceCertificateBody {
    const DOMAIN: &'static str = signing::DOMAIN_DEVICE_CERTIFICATE;

    fn signer(&self) -> UserId {
        self.user
    }

    fn dated_ms(&self) -> u64 {
        self.issued_ms
    }
}

/// The user's root key withdraws `device`, for good.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeviceRevocationBody {
    version: V1,
    /// The user.
    pub user: UserId,
    /// The device that is no longer theirs.
    pub device: DeviceId,
    /// Milliseconds since the Unix epoch.
    pub revoked_ms: u64,
}

impl DeviceRevocationBody {
    /// A revocation body in the current version.
    pub fn new(user: UserId, device: DeviceId, revoked_ms: u64) -> Self {
        Self {
            version: V1,
            user,
            device,
            revoked_ms,
        }
    }
}

impl Statement for DeviceRevocationBody {
    const DOMAIN: &'static str = signing::DOMAIN_DEVICE_REVOCATION;

    fn signer(&self) -> UserId {
        self.user
    }

    fn dated_ms(&self) -> u64 {
        self.revoked_ms
    }
}

/// `granter` lets `grantee` read the granter's friends scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FriendGrantBody {
    version: V1,
    /// Whose friends scope.
    pub granter: UserId,
    /// Who may read it.
    pub grantee: UserId,
    /// Milliseconds since the Unix epoch; a later revocation overrides it.
    pub issued_ms: u64,
}

impl FriendGrantBody {
    /// A grant body in the current version.
    pub fn new(granter: UserId, grantee: UserId, issued_ms: u64) -> Self {
        Self {
            version: V1,
            granter,
            grantee,
            issued_ms,
        }
    }
}

impl Statement for FriendGrantBody {
    const DOMAIN: &'static str = signing::DOMAIN_FRIEND_GRANT;

    fn signer(&self) -> UserId {
        self.granter
    }

    fn dated_ms(&self) -> u64 {
        self.issued_ms
    }
}

/// `granter` withdraws `grantee`'s access to the granter's friends scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FriendRevocationBody {
    version: V1,
    /// Whose friends scope.
    pub granter: UserId,
    /// Who may no longer read it.
    pub grantee: UserId,
    /// Milliseconds since the Unix epoch; overrides earlier grants.
    pub revoked_ms: u64,
}

impl FriendRevocationBody {
    /// A friend revocation body in the current version.
    pub fn new(granter: UserId, grantee: UserId, revoked_ms: u64) -> Self {
        Self {
            version: V1,
            granter,
            grantee,
            revoked_ms,
        }
    }
}

impl Statement for FriendRevocationBody {
    const DOMAIN: &'static str = signing::DOMAIN_FRIEND_REVOCATION;

    fn signer(&self) -> UserId {
        self.granter
    }

    fn dated_ms(&self) -> u64 {
        self.revoked_ms
    }
}

/// A device certificate.
pub type DeviceCertificate = Signed<DeviceCertificateBody>;
/// A device revocation.
pub type DeviceRevocation = Signed<DeviceRevocationBody>;
/// A friend grant.
pub type FriendGrant = Signed<FriendGrantBody>;
/// A friend revocation.
pub type FriendRevocation = Signed<FriendRevocationBody>;
