//! Fixtures shared by the integration tests: deterministic users and
//! devices, signed statements and envelopes.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use cairn_store::{Config, RedbStore, StatementOutcome, Store};
use cairn_wire::{
    DeviceCertificate, DeviceCertificateBody, DeviceId, DeviceRevocation, DeviceRevocationBody,
    Envelope, EnvelopeHeader, ExchangeKey, FriendGrant, FriendGrantBody, FriendRevocation,
    FriendRevocationBody, Payload, Scope, Signed, SigningKey, UnsignedEnvelope, UserId,
};

/// A user with a root key.
#[derive(Debug, Clone)]
pub struct User {
    pub root: SigningKey,
    pub id: UserId,
}

/// A device key of some user.
#[derive(Debug, Clone)]
pub struct Device {
    pub user: UserId,
    pub key: SigningKey,
    pub id: DeviceId,
}

impl User {
    pub fn new(seed: u8) -> Self {
        let root = SigningKey::from_bytes(&[seed; 32]);
        let id = UserId::from_bytes(root.verifying_key().to_bytes());
        Self { root, id }
    }

    pub fn device(&self, seed: u8) -> Device {
        let key = SigningKey::from_bytes(&[seed.wrapping_add(128); 32]);
        let id = DeviceId::from_bytes(key.verifying_key().to_bytes());
        Device {
            user: self.id,
            key,
            id,
        }
    }

    pub fn certify(&self, device: &Device, issued_ms: u64) -> DeviceCertificate {
        let body = DeviceCertificateBody::new(
            self.id,
            device.id,
            ExchangeKey::from_bytes([7; 32]),
            issued_ms,
        );
        Signed::sign(body, &self.root)
    }

    pub fn revoke(&self, device: &Device, revoked_ms: u64) -> DeviceRevocation {
        Signed::sign(
            DeviceRevocationBody::new(self.id, device.id, revoked_ms),
            &self.root,
        )
    }

    pub fn grant(&self, grantee: UserId, issued_ms: u64) -> FriendGrant {
        Signed::sign(
            FriendGrantBody::new(self.id, grantee, issued_ms),
            &self.root,
        )
    }

    pub fn unfriend(&self, grantee: UserId, revoked_ms: u64) -> FriendRevocation {
        Signed::sign(
            FriendRevocationBody::new(self.id, grantee, revoked_ms),
            &self.root,
        )
    }
}

impl Device {
    /// An envelope by this device for its own user.
    pub fn envelope(&self, seq: u64, scope: Scope, payload: &[u8]) -> Envelope {
        self.envelope_as(self.user, seq, scope, payload)
    }

    /// An envelope claiming `author`.
    pub fn envelope_as(&self, author: UserId, seq: u64, scope: Scope, payload: &[u8]) -> Envelope {
        UnsignedEnvelope {
            header: EnvelopeHeader::new(author, self.id, seq, 1_000 + seq, scope),
            payload: Payload::new(payload.to_vec()).unwrap(),
        }
        .sign(&self.key)
    }
}

/// A fresh store in a temp dir (kept alive by the returned guard).
pub fn temp_store(config: Config) -> (tempfile::TempDir, RedbStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open_with(dir.path().join("cairn.redb"), config).unwrap();
    (dir, store)
}

/// A non-durable config: tests of semantics need no fsync.
pub fn fast() -> Config {
    Config {
        durable: false,
        ..Config::default()
    }
}

/// Registers `device` (issued at 1).
pub async fn register(store: &impl Store, user: &User, device: &Device) {
    let outcome = store
        .register_device(user.certify(device, 1))
        .await
        .unwrap();
    assert_eq!(outcome, StatementOutcome::Applied);
}
