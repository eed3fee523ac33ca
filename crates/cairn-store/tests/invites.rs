//! The operator's invites: each use is spent once, an expired or revoked
//! invite admits nobody, and a used-up one is gone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cairn_store::{Invite, InviteId, Redemption, Store};
use common::{fast, temp_store};

fn invite(n: u8, uses_left: u32, expires_ms: u64) -> Invite {
    Invite {
        id: InviteId([n; 32]),
        uses_left,
        expires_ms,
        created_ms: 1,
    }
}

#[tokio::test]
async fn each_use_is_spent_once_and_a_used_up_invite_is_gone() {
    let (_dir, store) = temp_store(fast());
    let twice = invite(1, 2, u64::MAX);
    store.create_invite(twice).await.unwrap();
    assert_eq!(store.invites().await.unwrap(), [twice]);
    assert_eq!(
        store.redeem_invite(twice.id, 10).await.unwrap(),
        Redemption::Spent
    );
    let left = store.invites().await.unwrap();
    assert_eq!(left.first().map(|i| i.uses_left), Some(1));
    assert_eq!(
        store.redeem_invite(twice.id, 11).await.unwrap(),
        Redemption::Spent
    );
    assert_eq!(
        store.redeem_invite(twice.id, 12).await.unwrap(),
        Redemption::Unknown
    );
    assert!(store.invites().await.unwrap().is_empty());
}

#[tokio::test]
async fn expired_and_revoked_invites_admit_nobody() {
    let (_dir, store) = temp_store(fast());
    let expiring = invite(1, 5, 100);
    let revoked = invite(2, 5, u64::MAX);
    store.create_invite(expiring).await.unwrap();
    store.create_invite(revoked).await.unwrap();
    assert_eq!(
        store.redeem_invite(expiring.id, 99).await.unwrap(),
        Redemption::Spent
    );
    assert_eq!(
        store.redeem_invite(expiring.id, 100).await.unwrap(),
        Redemption::Expired
    );
    assert!(store.revoke_invite(revoked.id).await.unwrap());
    assert!(!store.revoke_invite(revoked.id).await.unwrap());
    assert_eq!(
        store.redeem_invite(revoked.id, 1).await.unwrap(),
        Redemption::Unknown
    );
    assert_eq!(
        store.redeem_invite(InviteId([9; 32]), 1).await.unwrap(),
        Redemption::Unknown
    );
}
