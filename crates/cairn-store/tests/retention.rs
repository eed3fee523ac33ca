//! Expiry: a friends or direct stream loses its oldest entries behind a
//! floor; positions, duplicates and chains stay consistent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use cairn_store::{Cutoffs, ExpiredHead, ItemOutcome, Store};
use cairn_testkit::ident::ENVELOPE_EPOCH_MS;
use cairn_wire::{Scope, StreamId};
use common::{User, fast, register, temp_store};

fn positions(read: &cairn_store::StreamRead) -> Vec<u64> {
    read.entries.iter().map(|e| e.position).collect()
}

#[tokio::test]
async fn expired_envelopes_leave_a_floor_their_last_heads_and_a_clean_check() {
    let (dir, store) = temp_store(fast());
    let (alice, bob) = (User::new(1), User::new(2));
    let laptop = alice.device(1);
    register(&store, &alice, &laptop).await;
    let to_bob = Scope::Direct(bob.id);
    let old = laptop.envelope(2, to_bob, b"old");
    let batch = vec![
        laptop.envelope(1, Scope::Private, b"note"),
        old.clone(),
        laptop.envelope(3, to_bob, b"older than the cutoff"),
        laptop.envelope(4, Scope::Friends, b"post"),
        laptop.envelope(5, to_bob, b"recent"),
        laptop.envelope(6, Scope::Private, b"another note"),
    ];
    let third = batch[2].id();
    store.append(batch).await.unwrap();
    let before = store.usage().await.unwrap()[0].1;

    // Direct messages dated before seq 4's date expire; friends are kept.
    let cutoffs = Cutoffs {
        direct_before_ms: Some(ENVELOPE_EPOCH_MS + 4),
        friends_before_ms: None,
    };
    let expiry = store.expire(cutoffs, 100).await.unwrap();
    assert_eq!(
        (expiry.streams, expiry.envelopes, expiry.more),
        (1, 2, false)
    );
    let direct = StreamId::new(alice.id, to_bob);
    let read = store.read_stream(direct, 0, 10).await.unwrap();
    assert_eq!(positions(&read), [3]);
    assert_eq!((read.floor, read.head), (2, 3));
    let head = ExpiredHead {
        device: laptop.id,
        seq: 3,
        id: third,
    };
    assert_eq!(
        read.expired,
        [head],
        "a reader from below the floor is told"
    );
    assert!(
        store
            .read_stream(direct, 2, 10)
            .await
            .unwrap()
            .expired
            .is_empty()
    );
    let after = store.usage().await.unwrap()[0].1;
    assert_eq!(after.envelopes, before.envelopes - 2);
    assert_eq!(before.bytes - after.bytes, expiry.bytes);
    let report = store.verify().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);

    // A resend of an expired envelope is a duplicate at its old position,
    // and the device's chain goes on.
    let resent = store.append(vec![old]).await.unwrap();
    assert!(matches!(
        resent[0],
        ItemOutcome::Duplicate { position: 1, .. }
    ));
    let next = store
        .append(vec![laptop.envelope(7, to_bob, b"next")])
        .await
        .unwrap();
    assert!(matches!(next[0], ItemOutcome::Stored { position: 4, .. }));

    // A budget stops a pass; private streams never expire.
    let everything = Cutoffs {
        direct_before_ms: Some(u64::MAX),
        friends_before_ms: Some(u64::MAX),
    };
    assert!(store.expire(everything, 0).await.unwrap().more);
    let all = store.expire(everything, 100).await.unwrap();
    assert_eq!((all.streams, all.envelopes, all.more), (2, 3, false));
    let read = store.read_stream(direct, 0, 10).await.unwrap();
    assert!(read.entries.is_empty());
    assert_eq!((read.floor, read.head), (4, 4));
    assert_eq!(read.expired[0].seq, 7);
    let private = StreamId::new(alice.id, Scope::Private);
    assert_eq!(
        positions(&store.read_stream(private, 0, 10).await.unwrap()),
        [1, 2]
    );
    let report = store.verify().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    store.close().await;

    let reopened = cairn_store::RedbStore::open(dir.path().join("cairn.redb")).unwrap();
    assert!(reopened.verify().await.unwrap().is_ok());
    // Removing the user takes the expired envelopes' ids too.
    reopened.remove_user(alice.id, 9).await.unwrap();
    let report = reopened.verify().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    reopened.close().await;
}

/// An import's tombstones carry no signature: the store takes one only at
/// the next position of its stream and the next seq of a device its
/// author certified, and a removed user's streams only while empty.
#[tokio::test]
async fn restored_tombstones_must_follow_what_is_stored() {
    use cairn_store::{Restore, Tombstone};
    let (_dir, store) = temp_store(fast());
    let (alice, mallory) = (User::new(1), User::new(9));
    let laptop = alice.device(1);
    register(&store, &alice, &laptop).await;
    let friends = StreamId::new(alice.id, Scope::Friends);
    let tombstone = |position, seq, device| Tombstone {
        stream: friends,
        position,
        device,
        seq,
        id: cairn_wire::EnvelopeId::from_bytes([u8::try_from(position).unwrap() + 1; 32]),
    };
    let restore = |t| store.restore(Restore::Tombstone(t));
    assert!(
        restore(tombstone(2, 1, laptop.id)).await.unwrap().is_err(),
        "position"
    );
    assert!(
        restore(tombstone(1, 2, laptop.id)).await.unwrap().is_err(),
        "seq"
    );
    let stranger = mallory.device(1).id;
    assert!(
        restore(tombstone(1, 1, stranger)).await.unwrap().is_err(),
        "registry"
    );
    assert_eq!(restore(tombstone(1, 1, laptop.id)).await.unwrap(), Ok(()));
    let floor = Restore::Floor {
        stream: friends,
        through: 5,
    };
    assert!(store.restore(floor).await.unwrap().is_err(), "not empty");
    let removed = Restore::Removed {
        user: alice.id,
        at_ms: 1,
    };
    assert!(store.restore(removed).await.unwrap().is_err(), "certified");
    let read = store.read_stream(friends, 0, 10).await.unwrap();
    assert_eq!((read.floor, read.head), (1, 1));
    let report = store.verify().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
}

/// A user whose every envelope expired uses nothing, and the store checks
/// clean: the usage row goes, as for a user who never stored anything.
#[tokio::test]
async fn a_user_whose_last_envelope_expires_uses_nothing_and_the_store_checks_clean() {
    let (_dir, store) = temp_store(fast());
    let alice = User::new(1);
    let laptop = alice.device(1);
    register(&store, &alice, &laptop).await;
    store
        .append(vec![laptop.envelope(1, Scope::Friends, b"only post")])
        .await
        .unwrap();
    let cutoffs = Cutoffs {
        friends_before_ms: Some(ENVELOPE_EPOCH_MS + 2),
        direct_before_ms: None,
    };
    assert_eq!(store.expire(cutoffs, 100).await.unwrap().envelopes, 1);
    assert_eq!(store.usage().await.unwrap(), []);
    let report = store.verify().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    // The user stores again from nothing.
    let outcomes = store
        .append(vec![laptop.envelope(2, Scope::Friends, b"next")])
        .await
        .unwrap();
    assert!(matches!(outcomes[..], [ItemOutcome::Stored { .. }]));
    assert_eq!(store.usage().await.unwrap()[0].1.envelopes, 1);
    assert!(store.verify().await.unwrap().is_ok());
}
