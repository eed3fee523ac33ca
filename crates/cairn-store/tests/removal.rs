//! Removing a user: their data goes, positions stay, they stay out.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use cairn_store::{ItemOutcome, Refusal, Removal, StatementOutcome, StatementRefusal, Store};
use cairn_wire::{Cursor, Scope, StreamId};
use common::{User, fast, register, temp_store};

#[tokio::test]
async fn a_removed_user_s_data_goes_their_positions_stay_and_they_stay_out() {
    let (dir, store) = temp_store(fast());
    let (alice, bob) = (User::new(1), User::new(2));
    let (laptop, phone) = (alice.device(1), bob.device(1));
    register(&store, &alice, &laptop).await;
    register(&store, &bob, &phone).await;
    store
        .append(vec![
            laptop.envelope(1, Scope::Private, b"note"),
            laptop.envelope(2, Scope::Private, b"another"),
            laptop.envelope(3, Scope::Friends, b"post"),
            laptop.envelope(4, Scope::Direct(bob.id), b"hi bob"),
        ])
        .await
        .unwrap();
    store
        .append(vec![phone.envelope(1, Scope::Friends, b"bob's post")])
        .await
        .unwrap();
    store.grant_friend(alice.grant_at(bob.id, 5)).await.unwrap();
    store.grant_friend(bob.grant_at(alice.id, 5)).await.unwrap();
    let alice_friends = StreamId::new(alice.id, Scope::Friends);
    let seen = Cursor {
        stream: alice_friends,
        position: 1,
    };
    store.ack(phone.id, seen).await.unwrap();
    let before = store.stats().await.unwrap();

    let removal = store.remove_user(alice.id, 1_000).await.unwrap();
    assert_eq!(removal.streams, 3);
    assert_eq!(removal.envelopes, 4);
    assert_eq!(removal.devices, 1);
    assert!(removal.bytes > 0 && !removal.already);

    // Nothing of hers is served, and her streams keep their heads.
    let private = StreamId::new(alice.id, Scope::Private);
    let read = store.read_stream(private, 0, 10).await.unwrap();
    assert!(read.entries.is_empty());
    assert_eq!(read.head, 2, "positions are never given twice");
    assert_eq!(store.stream_head(alice_friends).await.unwrap(), 1);
    let after = store.stats().await.unwrap();
    assert_eq!(after.users, before.users - 1);
    let usage = store.usage().await.unwrap();
    assert_eq!(usage.iter().map(|(u, _)| *u).collect::<Vec<_>>(), [bob.id]);
    assert!(store.granters_of(bob.id).await.unwrap().is_empty());
    // Bob's grant to her is his statement, and stays.
    assert_eq!(store.granters_of(alice.id).await.unwrap(), [bob.id]);
    assert_eq!(
        store.acked(phone.id).await.unwrap(),
        [seen],
        "bob's cursor stays"
    );
    assert!(store.devices(alice.id).await.unwrap().is_empty());
    assert_eq!(store.removed(alice.id).await.unwrap(), Some(1_000));
    assert_eq!(store.removed(bob.id).await.unwrap(), None);
    let report = store.verify().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);

    // She cannot come back, and a second removal changes nothing.
    let again = store
        .register_device(alice.certify(laptop.id, 2))
        .await
        .unwrap();
    assert_eq!(
        again,
        StatementOutcome::Refused(StatementRefusal::UserRemoved)
    );
    let late = store
        .append(vec![laptop.envelope(5, Scope::Private, b"late")])
        .await
        .unwrap();
    assert!(matches!(
        late[0],
        ItemOutcome::Refused(Refusal::UnknownDevice)
    ));
    let twice = store.remove_user(alice.id, 2_000).await.unwrap();
    assert_eq!(
        twice,
        Removal {
            already: true,
            ..Removal::default()
        }
    );
    assert_eq!(store.removed(alice.id).await.unwrap(), Some(1_000));
    store.close().await;

    let reopened = cairn_store::RedbStore::open(dir.path().join("cairn.redb")).unwrap();
    assert!(reopened.verify().await.unwrap().is_ok());
    let read = reopened.read_stream(private, 0, 10).await.unwrap();
    assert!(read.entries.is_empty() && read.head == 2);
    reopened.close().await;
}
