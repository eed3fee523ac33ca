//! The store publishes what its commits change for connected clients, once
//! per change, after the commit: a device revoked, a friend grant
//! withdrawn, a user removed. A statement that changes nothing (already in
//! force, or stale) has no effect.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cairn_store::{Effect, LogWrite, Store};
use common::{User, fast, register, temp_store};

#[tokio::test]
async fn each_revocation_and_removal_is_published_once_after_its_commit() {
    let (_dir, store) = temp_store(fast());
    let mut effects = store.effects();
    let (alice, bob) = (User::new(1), User::new(2));
    let phone = alice.device(1);
    register(&store, &alice, &phone).await;
    store
        .grant_friend(alice.grant_at(bob.id, 10))
        .await
        .unwrap();
    // Registrations and grants change nothing for connected clients.
    assert!(effects.try_recv().is_err());

    store
        .revoke_device(alice.revoke_at(phone.id, 20))
        .await
        .unwrap();
    store
        .revoke_device(alice.revoke_at(phone.id, 21))
        .await
        .unwrap();
    store
        .revoke_friend(alice.unfriend_at(bob.id, 30))
        .await
        .unwrap();
    store
        .revoke_friend(alice.unfriend_at(bob.id, 5))
        .await
        .unwrap();
    store.remove_user(alice.id, 40).await.unwrap();
    store.remove_user(alice.id, 41).await.unwrap();

    let mut seen = Vec::new();
    while let Ok(effect) = effects.try_recv() {
        seen.push(effect);
    }
    assert_eq!(
        seen,
        [
            Effect::DeviceRevoked {
                user: alice.id,
                device: phone.id
            },
            Effect::FriendRevoked {
                granter: alice.id,
                grantee: bob.id
            },
            Effect::UserRemoved(alice.id),
        ]
    );
}

/// A copy applying a cluster's log publishes the effects of every node's
/// writes.
#[tokio::test]
async fn writes_from_the_log_have_their_effects_too() {
    let (_dir, store) = temp_store(fast());
    let mut effects = store.effects();
    let alice = User::new(3);
    let phone = alice.device(1);
    let log = vec![
        LogWrite::Genesis,
        LogWrite::Certificate(alice.certify(phone.id, 1)),
        LogWrite::DeviceRevocation(alice.revoke_at(phone.id, 2)),
    ];
    store.apply_log(1, log).await.unwrap().unwrap();
    assert_eq!(
        effects.try_recv().unwrap(),
        Effect::DeviceRevoked {
            user: alice.id,
            device: phone.id
        }
    );
    assert!(effects.try_recv().is_err());
}
