//! Behaviour of the redb store, one rule per test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::sync::Arc;

use cairn_store::{
    Config, ItemOutcome, OpenError, RedbStore, Refusal, StatementOutcome, StatementRefusal, Store,
    StoredStatement,
};
use cairn_wire::{Cursor, ErrorCode, ErrorDetail, Scope, StreamId};
use common::{User, fast, register, temp_store};

fn stored(position: u64) -> impl Fn(&ItemOutcome) -> bool {
    move |o| matches!(o, ItemOutcome::Stored { position: p, .. } if *p == position)
}

#[tokio::test]
async fn positions_are_gap_free_per_stream() {
    let (_dir, store) = temp_store(fast());
    let alice = User::new(1);
    let laptop = alice.device(1);
    register(&store, &alice, &laptop).await;
    let batch = vec![
        laptop.envelope(1, Scope::Private, b"a"),
        laptop.envelope(2, Scope::Friends, b"b"),
        laptop.envelope(3, Scope::Private, b"c"),
    ];
    let outcomes = store.append(batch).await.unwrap();
    assert!(stored(1)(&outcomes[0]));
    assert!(stored(1)(&outcomes[1]));
    assert!(stored(2)(&outcomes[2]));
    let private = StreamId::new(alice.id, Scope::Private);
    let read = store.read_stream(private, 0, 10).await.unwrap();
    let positions: Vec<u64> = read.entries.iter().map(|e| e.position).collect();
    assert_eq!(positions, [1, 2]);
    assert_eq!(read.head, 2);
    assert!(!read.more());
    let page = store.read_stream(private, 0, 1).await.unwrap();
    assert!(page.more());
    assert_eq!(store.read_stream(private, 2, 10).await.unwrap().entries, []);
    assert_eq!(
        store
            .read_stream(private, u64::MAX, 10)
            .await
            .unwrap()
            .entries,
        []
    );
}

#[tokio::test]
async fn reads_stop_at_a_byte_budget_but_always_return_one_entry() {
    let (_dir, store) = temp_store(fast());
    let alice = User::new(1);
    let laptop = alice.device(1);
    register(&store, &alice, &laptop).await;
    let batch: Vec<_> = (1..=10)
        .map(|seq| laptop.envelope(seq, Scope::Private, &[7; 1000]))
        .collect();
    let cost = batch[0].encode().len() + cairn_store::ENTRY_OVERHEAD;
    store.append(batch).await.unwrap();
    let private = StreamId::new(alice.id, Scope::Private);
    let three = store
        .read_stream_within(private, 0, 100, 3 * cost + cost / 2)
        .await
        .unwrap();
    assert_eq!(
        three.entries.iter().map(|e| e.position).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(three.more());
    let exact = store
        .read_stream_within(private, 3, 100, 2 * cost)
        .await
        .unwrap();
    assert_eq!(exact.entries.len(), 2);
    let tiny = store.read_stream_within(private, 5, 100, 1).await.unwrap();
    assert_eq!(
        tiny.entries.iter().map(|e| e.position).collect::<Vec<_>>(),
        [6],
        "one entry even over budget"
    );
    let limited = store
        .read_stream_within(private, 0, 4, usize::MAX)
        .await
        .unwrap();
    assert_eq!(limited.entries.len(), 4, "the entry limit still applies");
}

#[tokio::test]
async fn identical_envelope_returns_its_original_position() {
    let (_dir, store) = temp_store(fast());
    let alice = User::new(1);
    let laptop = alice.device(1);
    register(&store, &alice, &laptop).await;
    let first = laptop.envelope(1, Scope::Private, b"a");
    let id = first.id();
    store.append(vec![first.clone()]).await.unwrap();
    let again = store.append(vec![first.clone(), first]).await.unwrap();
    let dup = ItemOutcome::Duplicate { id, position: 1 };
    assert_eq!(again, [dup, dup]);
    assert_eq!(store.stats().await.unwrap().envelopes, 1);
    let found = store.envelope(id).await.unwrap().unwrap();
    assert_eq!(found.position, 1);
}

#[tokio::test]
async fn same_seq_with_other_bytes_is_equivocation() {
    let (_dir, store) = temp_store(fast());
    let alice = User::new(1);
    let laptop = alice.device(1);
    register(&store, &alice, &laptop).await;
    let original = laptop.envelope(1, Scope::Private, b"a");
    store.append(vec![original.clone()]).await.unwrap();
    let forked = laptop.envelope(1, Scope::Friends, b"b");
    let outcome = store.append(vec![forked]).await.unwrap();
    let refusal = Refusal::Equivocation {
        existing: original.id(),
    };
    assert_eq!(outcome, [ItemOutcome::Refused(refusal)]);
    assert_eq!(refusal.code(), ErrorCode::EQUIVOCATION);
    assert_eq!(store.stats().await.unwrap().envelopes, 1);
    assert_eq!(store.all_streams().await.unwrap().len(), 1);
}

#[tokio::test]
async fn seq_gap_names_the_expected_seq_and_later_items_still_count() {
    let (_dir, store) = temp_store(fast());
    let alice = User::new(1);
    let (laptop, phone) = (alice.device(1), alice.device(2));
    register(&store, &alice, &laptop).await;
    register(&store, &alice, &phone).await;
    let batch = vec![
        laptop.envelope(1, Scope::Private, b"a"),
        laptop.envelope(3, Scope::Private, b"gap"),
        phone.envelope(1, Scope::Private, b"other device goes on"),
        laptop.envelope(4, Scope::Private, b"still a gap"),
        laptop.envelope(2, Scope::Private, b"b"),
        laptop.envelope(0, Scope::Private, b"zero"),
    ];
    let outcomes = store.append(batch).await.unwrap();
    let gap = ItemOutcome::Refused(Refusal::SeqGap { expected: 2 });
    assert!(stored(1)(&outcomes[0]));
    assert_eq!(outcomes[1], gap);
    assert!(stored(2)(&outcomes[2]));
    assert_eq!(outcomes[3], gap);
    assert!(stored(3)(&outcomes[4]));
    assert_eq!(
        outcomes[5],
        ItemOutcome::Refused(Refusal::SeqGap { expected: 3 })
    );
    let wire = Refusal::SeqGap { expected: 2 }.to_wire();
    assert_eq!(wire.code, ErrorCode::SEQ_GAP);
    assert_eq!(wire.detail, ErrorDetail::ExpectedSeq(2));
}

#[tokio::test]
async fn unknown_foreign_and_revoked_devices_are_refused() {
    let (_dir, store) = temp_store(fast());
    let (alice, bob) = (User::new(1), User::new(2));
    let (laptop, stranger) = (alice.device(1), alice.device(9));
    register(&store, &alice, &laptop).await;
    let outcomes = store
        .append(vec![
            stranger.envelope(1, Scope::Private, b"x"),
            laptop.envelope_as(bob.id, 1, Scope::Private, b"y"),
        ])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            ItemOutcome::Refused(Refusal::UnknownDevice),
            ItemOutcome::Refused(Refusal::NotAuthor)
        ]
    );
    store
        .append(vec![laptop.envelope(1, Scope::Private, b"ok")])
        .await
        .unwrap();
    let revoked = store
        .revoke_device(alice.revoke_at(laptop.id, 5))
        .await
        .unwrap();
    assert_eq!(revoked, StatementOutcome::Applied);
    let outcomes = store
        .append(vec![laptop.envelope(2, Scope::Private, b"late")])
        .await
        .unwrap();
    assert_eq!(outcomes, [ItemOutcome::Refused(Refusal::DeviceRevoked)]);
    let again = store
        .register_device(alice.certify(laptop.id, 99))
        .await
        .unwrap();
    assert_eq!(
        again,
        StatementOutcome::Refused(StatementRefusal::DeviceRevoked)
    );
    let record = store.device(alice.id, laptop.id).await.unwrap().unwrap();
    assert!(!record.is_active());
    assert_eq!(record.last_seq, 1);
    assert_eq!(store.stats().await.unwrap().envelopes, 1);
}

#[tokio::test]
async fn device_statements_follow_their_order() {
    let (_dir, store) = temp_store(fast());
    let alice = User::new(1);
    let (laptop, phone) = (alice.device(1), alice.device(2));
    let cert = alice.certify(laptop.id, 10);
    assert_eq!(
        store.register_device(cert.clone()).await.unwrap(),
        StatementOutcome::Applied
    );
    assert_eq!(
        store.register_device(cert).await.unwrap(),
        StatementOutcome::Unchanged
    );
    let older = store
        .register_device(alice.certify(laptop.id, 5))
        .await
        .unwrap();
    assert_eq!(older, StatementOutcome::Refused(StatementRefusal::Stale));
    let newer = store
        .register_device(alice.certify(laptop.id, 20))
        .await
        .unwrap();
    assert_eq!(newer, StatementOutcome::Applied);
    // A revocation wins over the certificate whatever their dates.
    let revoke = alice.revoke_at(laptop.id, 19);
    assert_eq!(
        store.revoke_device(revoke.clone()).await.unwrap(),
        StatementOutcome::Applied
    );
    assert_eq!(
        store.revoke_device(revoke).await.unwrap(),
        StatementOutcome::Unchanged
    );
    // Revocation is final: a later or earlier one changes nothing.
    for at in [5, 25] {
        let again = store
            .revoke_device(alice.revoke_at(laptop.id, at))
            .await
            .unwrap();
        assert_eq!(again, StatementOutcome::Unchanged);
    }
    // A device the user never certified cannot be revoked.
    assert_eq!(
        store
            .revoke_device(alice.revoke_at(phone.id, 1))
            .await
            .unwrap(),
        StatementOutcome::Refused(StatementRefusal::UnknownDevice)
    );
    store
        .register_device(alice.certify(phone.id, 2))
        .await
        .unwrap();
    store
        .revoke_device(alice.revoke_at(phone.id, 1))
        .await
        .unwrap();
    let late_cert = store
        .register_device(alice.certify(phone.id, 3))
        .await
        .unwrap();
    assert_eq!(
        late_cert,
        StatementOutcome::Refused(StatementRefusal::DeviceRevoked)
    );
    let devices = store.devices(alice.id).await.unwrap();
    assert_eq!(devices.len(), 2);
    assert!(devices.iter().all(|d| !d.is_active()));
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.users, stats.devices, stats.revoked_devices),
        (1, 2, 2)
    );
}

#[tokio::test]
async fn friend_grants_and_revocations_follow_their_order() {
    let (_dir, store) = temp_store(fast());
    let (alice, bob, carol) = (User::new(1), User::new(2), User::new(3));
    let grant = alice.grant_at(bob.id, 10);
    assert_eq!(
        store.grant_friend(grant.clone()).await.unwrap(),
        StatementOutcome::Applied
    );
    assert_eq!(
        store.grant_friend(grant.clone()).await.unwrap(),
        StatementOutcome::Unchanged
    );
    store
        .grant_friend(alice.grant_at(carol.id, 10))
        .await
        .unwrap();
    store.grant_friend(carol.grant_at(bob.id, 3)).await.unwrap();
    assert_eq!(store.grants_by(alice.id).await.unwrap().len(), 2);
    let mut granters = store.granters_of(bob.id).await.unwrap();
    granters.sort();
    let mut expected = vec![alice.id, carol.id];
    expected.sort();
    assert_eq!(granters, expected);

    let stale = store
        .revoke_friend(alice.unfriend_at(bob.id, 9))
        .await
        .unwrap();
    assert_eq!(stale, StatementOutcome::Refused(StatementRefusal::Stale));
    // At the same time, a revocation wins.
    let revoked = store
        .revoke_friend(alice.unfriend_at(bob.id, 10))
        .await
        .unwrap();
    assert_eq!(revoked, StatementOutcome::Applied);
    assert_eq!(store.granters_of(bob.id).await.unwrap(), [carol.id]);
    let at_revocation = store
        .grant_friend(alice.grant_at(bob.id, 10))
        .await
        .unwrap();
    assert_eq!(
        at_revocation,
        StatementOutcome::Refused(StatementRefusal::Stale)
    );
    let regrant = store
        .grant_friend(alice.grant_at(bob.id, 11))
        .await
        .unwrap();
    assert_eq!(regrant, StatementOutcome::Applied);
    assert_eq!(store.granters_of(bob.id).await.unwrap().len(), 2);
    let statements = store.statements().await.unwrap();
    assert_eq!(statements.len(), 3);
    assert!(statements.contains(&StoredStatement::FriendGrant(alice.grant_at(bob.id, 11))));
}

#[tokio::test]
async fn direct_streams_are_found_by_recipient() {
    let (_dir, store) = temp_store(fast());
    let (alice, bob, carol) = (User::new(1), User::new(2), User::new(3));
    let (a, c) = (alice.device(1), carol.device(1));
    register(&store, &alice, &a).await;
    register(&store, &carol, &c).await;
    store
        .append(vec![
            a.envelope(1, Scope::Direct(bob.id), b"hi bob"),
            a.envelope(2, Scope::Direct(bob.id), b"again"),
            a.envelope(3, Scope::Direct(carol.id), b"hi carol"),
        ])
        .await
        .unwrap();
    store
        .append(vec![c.envelope(1, Scope::Direct(bob.id), b"hey")])
        .await
        .unwrap();
    let mut to_bob = store.direct_streams_to(bob.id).await.unwrap();
    to_bob.sort_by_key(|h| h.stream);
    let mut expected = vec![
        (StreamId::new(alice.id, Scope::Direct(bob.id)), 2),
        (StreamId::new(carol.id, Scope::Direct(bob.id)), 1),
    ];
    expected.sort();
    let got: Vec<_> = to_bob.iter().map(|h| (h.stream, h.head)).collect();
    assert_eq!(got, expected);
    assert_eq!(store.streams_of(alice.id).await.unwrap().len(), 2);
    assert!(store.direct_streams_to(alice.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn acked_cursors_only_move_forward_and_stop_at_the_head() {
    let (_dir, store) = temp_store(fast());
    let alice = User::new(1);
    let (laptop, phone) = (alice.device(1), alice.device(2));
    register(&store, &alice, &laptop).await;
    let envelopes = (1..=5)
        .map(|s| laptop.envelope(s, Scope::Private, b"n"))
        .collect();
    store.append(envelopes).await.unwrap();
    let stream = StreamId::new(alice.id, Scope::Private);
    let at = |position| Cursor { stream, position };
    assert_eq!(store.ack(phone.id, at(3)).await.unwrap(), 3);
    assert_eq!(store.ack(phone.id, at(2)).await.unwrap(), 3);
    assert_eq!(store.ack(phone.id, at(99)).await.unwrap(), 5);
    let other = StreamId::new(alice.id, Scope::Friends);
    assert_eq!(
        store
            .ack(
                phone.id,
                Cursor {
                    stream: other,
                    position: 4
                }
            )
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.acked(phone.id).await.unwrap(), [at(5)]);
    assert!(store.acked(laptop.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn commits_are_published_after_commit_in_position_order() {
    let (_dir, store) = temp_store(fast());
    let alice = User::new(1);
    let laptop = alice.device(1);
    register(&store, &alice, &laptop).await;
    let mut live = store.subscribe();
    let first = laptop.envelope(1, Scope::Private, b"a");
    store
        .append(vec![
            first.clone(),
            laptop.envelope(2, Scope::Private, b"b"),
        ])
        .await
        .unwrap();
    store.append(vec![first]).await.unwrap(); // a duplicate publishes nothing
    store
        .append(vec![laptop.envelope(3, Scope::Private, b"c")])
        .await
        .unwrap();
    let mut positions = Vec::new();
    while let Ok(batch) = live.try_recv() {
        positions.extend(batch.iter().map(|c| c.position));
    }
    assert_eq!(positions, [1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_share_commits() {
    let (_dir, store) = temp_store(Config::default());
    let store = Arc::new(store);
    let alice = User::new(1);
    let mut devices = Vec::new();
    for i in 0..64u32 {
        let device = alice.device(i);
        register(store.as_ref(), &alice, &device).await;
        devices.push(device);
    }
    let before = store.commit_counters();
    let tasks: Vec<_> = devices
        .into_iter()
        .map(|device| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for seq in 1..=10 {
                    let e = device.envelope(seq, Scope::Private, &[0; 256]);
                    let outcome = store.append(vec![e]).await.unwrap();
                    assert!(matches!(outcome[0], ItemOutcome::Stored { .. }));
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let after = store.commit_counters();
    let commits = after.commits - before.commits;
    let envelopes = after.envelopes - before.envelopes;
    assert_eq!(envelopes, 640);
    assert!(
        commits * 4 < envelopes,
        "{commits} commits for {envelopes} envelopes"
    );
    let report = store.verify().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.envelopes, 640);
}

#[tokio::test]
async fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cairn.redb");
    let alice = User::new(1);
    let laptop = alice.device(1);
    let store = RedbStore::open(&path).unwrap();
    register(&store, &alice, &laptop).await;
    store
        .append(vec![laptop.envelope(1, Scope::Friends, b"a")])
        .await
        .unwrap();
    assert!(matches!(
        RedbStore::open(&path),
        Err(OpenError::AlreadyOpen { .. })
    ));
    store.close().await;
    let store = RedbStore::open(&path).unwrap();
    assert!(!store.repaired_on_open());
    let outcome = store
        .append(vec![laptop.envelope(2, Scope::Friends, b"b")])
        .await
        .unwrap();
    assert!(stored(2)(&outcome[0]));
    assert!(store.verify().await.unwrap().is_ok());
}

#[tokio::test]
async fn unknown_schema_versions_and_foreign_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<'_, &[u8], &[u8]> =
                redb::TableDefinition::new("cairn_meta");
            let mut meta = txn.open_table(def).unwrap();
            meta.insert(b"schema_version".as_slice(), 5u32.to_be_bytes().as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let err = RedbStore::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::UnsupportedSchema {
                found: 5,
                supported: 4,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("schema version 5"));

    let other = dir.path().join("other.redb");
    {
        let db = redb::Database::create(&other).unwrap();
        let txn = db.begin_write().unwrap();
        let def: redb::TableDefinition<'_, u64, u64> = redb::TableDefinition::new("something");
        txn.open_table(def).unwrap().insert(1, 1).unwrap();
        txn.commit().unwrap();
    }
    assert!(matches!(
        RedbStore::open(&other),
        Err(OpenError::NotAStore { .. })
    ));

    let garbage = dir.path().join("garbage.redb");
    std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
    assert!(matches!(
        RedbStore::open(&garbage),
        Err(OpenError::Corrupt { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_writing_is_a_consistent_prefix() {
    let (dir, store) = temp_store(fast());
    let store = Arc::new(store);
    let alice = User::new(1);
    let laptop = alice.device(1);
    register(store.as_ref(), &alice, &laptop).await;
    store
        .grant_friend(alice.grant_at(User::new(2).id, 1))
        .await
        .unwrap();
    let writer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for seq in 1..=300 {
                let e = laptop.envelope(seq, Scope::Friends, &[1; 100]);
                store.append(vec![e]).await.unwrap();
            }
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let target = dir.path().join("backup.redb");
    store.backup(&target).await.unwrap();
    assert!(store.backup(&target).await.is_err(), "never overwrites");
    writer.await.unwrap();

    let copy = RedbStore::open(&target).unwrap();
    let report = copy.verify().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    let stream = StreamId::new(alice.id, Scope::Friends);
    let copied = copy.read_stream(stream, 0, 1000).await.unwrap();
    let original = store.read_stream(stream, 0, 1000).await.unwrap();
    assert!(copied.entries.len() <= original.entries.len());
    assert_eq!(copied.entries[..], original.entries[..copied.entries.len()]);
    assert_eq!(
        copy.statements().await.unwrap(),
        store.statements().await.unwrap()
    );
}

#[tokio::test]
async fn verify_finds_a_gap_and_reads_report_corrupt_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cairn.redb");
    let alice = User::new(1);
    let laptop = alice.device(1);
    let store = RedbStore::open_with(&path, fast()).unwrap();
    register(&store, &alice, &laptop).await;
    let envelopes = (1..=3)
        .map(|s| laptop.envelope(s, Scope::Private, b"x"))
        .collect();
    store.append(envelopes).await.unwrap();
    assert!(store.verify().await.unwrap().is_ok());
    store.close().await;

    let stream = StreamId::new(alice.id, Scope::Private);
    let mut key = alice.id.as_bytes().to_vec();
    key.push(0x00);
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<'_, &[u8], &[u8]> =
                redb::TableDefinition::new("cairn_envelopes");
            let mut envelopes = txn.open_table(def).unwrap();
            let second = [key.as_slice(), &2u64.to_be_bytes()].concat();
            envelopes.remove(second.as_slice()).unwrap();
            let third = [key.as_slice(), &3u64.to_be_bytes()].concat();
            envelopes
                .insert(third.as_slice(), b"garbage".as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let store = RedbStore::open_with(&path, fast()).unwrap();
    assert!(matches!(
        store.read_stream(stream, 0, 10).await,
        Err(cairn_store::ReadError::Corrupt(_))
    ));
    let report = store.verify().await.unwrap();
    assert!(!report.is_ok());
    let problems = report.problems.join("\n");
    assert!(
        problems.contains("expected position 2, found 3"),
        "{problems}"
    );
    assert!(problems.contains("does not decode"), "{problems}");
    let first = store.read_stream(stream, 0, 1).await.unwrap();
    assert_eq!(first.entries.len(), 1);
}

/// A new database holds every user's envelopes and registry: only its
/// owner may read it, whatever the umask.
#[cfg(unix)]
#[tokio::test]
async fn a_new_database_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, store) = temp_store(fast());
    drop(store);
    let mode = std::fs::metadata(dir.path().join("cairn.redb"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}

#[tokio::test]
async fn a_log_keeps_its_id_until_a_new_one_is_started_and_older_stores_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.redb");
    let first = RedbStore::open(&path).unwrap();
    let log = first.log_id();
    first.close().await;
    let again = RedbStore::open(&path).unwrap();
    assert_eq!(again.log_id(), log, "reopening changed the log id");
    again.close().await;

    let restarted = cairn_store::start_new_log(&path).unwrap();
    assert_ne!(restarted, log);
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.log_id(), restarted);
    store.close().await;

    let other = RedbStore::open(dir.path().join("other.redb")).unwrap();
    assert_ne!(other.log_id(), restarted, "two stores share a log id");
    other.close().await;

    // A schema version 2 store had no log id: opening it gives it one.
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let meta: redb::TableDefinition<'static, &[u8], &[u8]> =
            redb::TableDefinition::new("cairn_meta");
        let mut table = txn.open_table(meta).unwrap();
        table.remove(b"log_id".as_slice()).unwrap();
        table
            .insert(b"schema_version".as_slice(), 2u32.to_be_bytes().as_slice())
            .unwrap();
        drop(table);
        txn.commit().unwrap();
    }
    let migrated = RedbStore::open(&path).unwrap();
    assert_ne!(migrated.log_id(), restarted);
    assert!(migrated.verify().await.unwrap().is_ok());
    migrated.close().await;
    assert!(dir.path().join("relay.redb.schema-2.bak").exists());
    assert!(dir.path().join("relay.redb.schema-3.bak").exists());
}
