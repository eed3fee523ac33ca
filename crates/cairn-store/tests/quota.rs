//! Per-user quotas: what a user's devices store is counted, and past the
//! quota an envelope is refused and nothing changes; a store of schema
//! version 1 is migrated with its usage counted from the log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use cairn_store::{Config, ItemOutcome, Quota, RedbStore, Refusal, Store, Usage};
use cairn_wire::{ErrorCode, Scope, UserId};
use common::{User, fast, register, temp_store};

fn stored(outcome: &ItemOutcome) -> bool {
    matches!(outcome, ItemOutcome::Stored { .. })
}

fn usage_of(all: &[(UserId, Usage)], user: UserId) -> Usage {
    all.iter()
        .find(|(u, _)| *u == user)
        .map_or_else(Usage::default, |(_, used)| *used)
}

#[tokio::test]
async fn past_the_quota_envelopes_are_refused_and_nothing_changes() {
    let quota = Quota {
        bytes: u64::MAX,
        envelopes: 3,
    };
    let (_dir, store) = temp_store(Config { quota, ..fast() });
    let (alice, bob) = (User::new(1), User::new(2));
    let (laptop, phone) = (alice.device(1), bob.device(1));
    register(&store, &alice, &laptop).await;
    register(&store, &bob, &phone).await;
    let batch: Vec<_> = (1..=4)
        .map(|seq| laptop.envelope(seq, Scope::Direct(bob.id), b"hello"))
        .collect();
    let outcomes = store.append(batch.clone()).await.unwrap();
    assert!(outcomes[..3].iter().all(stored));
    assert_eq!(outcomes[3], ItemOutcome::Refused(Refusal::QuotaExceeded));
    assert_eq!(Refusal::QuotaExceeded.code(), ErrorCode::QUOTA_EXCEEDED);
    // A duplicate of a stored envelope is still answered as one.
    let again = store.append(vec![batch[0].clone()]).await.unwrap();
    assert!(matches!(again[0], ItemOutcome::Duplicate { .. }));
    // The author's quota, not the recipient's: Bob still writes.
    let bobs = store
        .append(vec![phone.envelope(1, Scope::Private, b"mine")])
        .await
        .unwrap();
    assert!(stored(&bobs[0]));
    let usage = store.usage().await.unwrap();
    let alices = usage_of(&usage, alice.id);
    assert_eq!(alices.envelopes, 3);
    assert_eq!(
        alices.bytes,
        batch[..3]
            .iter()
            .map(|e| e.encode().len() as u64)
            .sum::<u64>()
    );
    assert!(quota.is_reached_by(alices));
    assert_eq!(usage_of(&usage, bob.id).envelopes, 1);
    assert_eq!(store.stats().await.unwrap().envelopes, 4);
    assert!(store.verify().await.unwrap().is_ok());
}

#[tokio::test]
async fn a_byte_quota_counts_encoded_envelopes() {
    let probe = User::new(1)
        .device(1)
        .envelope(1, Scope::Private, &[0; 100]);
    let size = probe.encode().len() as u64;
    let quota = Quota {
        bytes: 2 * size,
        envelopes: u64::MAX,
    };
    let (_dir, store) = temp_store(Config { quota, ..fast() });
    let alice = User::new(1);
    let laptop = alice.device(1);
    register(&store, &alice, &laptop).await;
    let batch: Vec<_> = (1..=3)
        .map(|seq| laptop.envelope(seq, Scope::Private, &[0; 100]))
        .collect();
    let outcomes = store.append(batch).await.unwrap();
    assert!(stored(&outcomes[0]) && stored(&outcomes[1]));
    assert_eq!(outcomes[2], ItemOutcome::Refused(Refusal::QuotaExceeded));
}

#[tokio::test]
async fn a_version_1_store_is_migrated_with_its_usage_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.redb");
    let (alice, bob) = (User::new(1), User::new(2));
    {
        let store = RedbStore::open_with(&path, fast()).unwrap();
        let (laptop, phone) = (alice.device(1), bob.device(1));
        register(&store, &alice, &laptop).await;
        register(&store, &bob, &phone).await;
        let mut notes: Vec<_> = (1..=5)
            .map(|seq| laptop.envelope(seq, Scope::Private, b"note"))
            .collect();
        notes.push(phone.envelope(1, Scope::Friends, b"post"));
        store.append(notes).await.unwrap();
        store.close().await;
    }
    downgrade_to_version_1(&path);

    let store = RedbStore::open(&path).unwrap();
    let usage = store.usage().await.unwrap();
    assert_eq!(usage_of(&usage, alice.id).envelopes, 5);
    assert_eq!(usage_of(&usage, bob.id).envelopes, 1);
    assert!(store.verify().await.unwrap().is_ok());
    store.close().await;
    let kept = dir.path().join("relay.redb.schema-1.bak");
    assert!(kept.exists(), "the version 1 file was not kept");
}

/// Rewrites a store as schema version 1 had it: no usage table.
fn downgrade_to_version_1(path: &std::path::Path) {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    let usage: redb::TableDefinition<'static, &[u8], &[u8]> =
        redb::TableDefinition::new("cairn_user_usage");
    assert!(txn.delete_table(usage).unwrap());
    let meta: redb::TableDefinition<'static, &[u8], &[u8]> =
        redb::TableDefinition::new("cairn_meta");
    let mut table = txn.open_table(meta).unwrap();
    table
        .insert(b"schema_version".as_slice(), 1u32.to_be_bytes().as_slice())
        .unwrap();
    drop(table);
    txn.commit().unwrap();
}

/// The `n`th of many devices of `user`.
fn nth_device(user: &User, n: usize) -> common::Device {
    user.device(u32::try_from(n).unwrap())
}

/// The `n`th of many user ids.
fn nth_user(n: usize) -> UserId {
    let mut bytes = [0x24; 32];
    bytes[..8].copy_from_slice(&(n as u64).to_be_bytes());
    UserId::from_bytes(bytes)
}

#[tokio::test]
async fn a_user_has_at_most_so_many_devices_and_friend_records() {
    use cairn_store::{
        MAX_DEVICES_PER_USER, MAX_FRIENDS_PER_USER, StatementOutcome, StatementRefusal,
    };
    let (_dir, store) = temp_store(fast());
    let alice = User::new(1);
    for n in 0..MAX_DEVICES_PER_USER {
        register(&store, &alice, &nth_device(&alice, n)).await;
    }
    let one_more = nth_device(&alice, MAX_DEVICES_PER_USER);
    let outcome = store
        .register_device(alice.certify(one_more.id, 1))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        StatementOutcome::Refused(StatementRefusal::TooMany)
    );
    // A newer certificate of a device already registered still applies.
    let renewed = store
        .register_device(alice.certify(nth_device(&alice, 0).id, 2))
        .await
        .unwrap();
    assert_eq!(renewed, StatementOutcome::Applied);

    for n in 0..MAX_FRIENDS_PER_USER {
        let outcome = store
            .grant_friend(alice.grant_at(nth_user(n), 1))
            .await
            .unwrap();
        assert_eq!(outcome, StatementOutcome::Applied);
    }
    let stranger = nth_user(MAX_FRIENDS_PER_USER);
    let outcome = store
        .grant_friend(alice.grant_at(stranger, 1))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        StatementOutcome::Refused(StatementRefusal::TooMany)
    );
    // Revoking an existing grant is always possible.
    let outcome = store
        .revoke_friend(alice.unfriend_at(nth_user(0), 2))
        .await
        .unwrap();
    assert_eq!(outcome, StatementOutcome::Applied);
}
