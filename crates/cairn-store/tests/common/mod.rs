//! Store fixtures: temporary stores and registrations. Users, devices,
//! statements and envelopes come from the test kit.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use cairn_store::{Config, RedbStore, StatementOutcome, Store};
pub use cairn_testkit::{Device, User};

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
        .register_device(user.certify(device.id, 1))
        .await
        .unwrap();
    assert_eq!(outcome, StatementOutcome::Applied);
}
