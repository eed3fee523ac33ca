//! The attacks a hostile review demonstrated against a relay process with
//! its default configuration, each replayed here: the attacker gets a
//! catalogued refusal, the victim keeps being served, and the data
//! directory holds exactly what honest requests stored.

// Test code: a panic is the failure report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use cairn_wire::*;
use support::hostile::*;
use support::{Device, now_ms};

/// Ten years, in milliseconds.
const TEN_YEARS_MS: u64 = 10 * 365 * 24 * 3600 * 1000;

/// Mallory, a user the relay has not seen, and her first device.
fn mallory() -> (User, Device) {
    let user = User::new(66);
    let device = user.device(1);
    (user, device)
}

fn code_of(response: &Response) -> Option<ErrorCode> {
    match response {
        Response::Error(error) => Some(error.code),
        _ => None,
    }
}

/// A request on `victim`'s connection is still answered: it was not
/// closed. (A close happens before the statement that causes it is
/// answered, so by now it would have arrived.)
async fn assert_still_served(victim: &RawConnection, stream: StreamId) {
    assert!(
        matches!(victim.read(stream, 0).await.response(), Response::Page(_)),
        "the victim's connection no longer serves"
    );
    assert!(victim.is_open(), "the victim's connection was closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_disconnect_another_users_device() {
    let mut scene = Scene::start().await;
    let (mallory, device) = mallory();
    let hostile = scene.newcomer(&device).await;
    let victim = RawConnection::authenticated(&scene.relay, &scene.laptop).await;
    let private = StreamId::new(scene.alice.id, Scope::Private);
    let laptop = scene.laptop.id;

    // Mallory revokes Alice's laptop as if it were hers, twice.
    let revocation = mallory.revoke(laptop);
    for attempt in ["first", "repeated"] {
        let answer = hostile
            .request(&Request::RevokeDevice(revocation.clone()))
            .await;
        assert_eq!(
            answer.error_code(),
            ErrorCode::UNKNOWN_DEVICE,
            "{attempt} revocation of a device Mallory never certified"
        );
        assert_still_served(&victim, private).await;
    }

    // Mallory certifies Alice's device id as her own, then revokes it:
    // both are her own statements about her own account, and touch no
    // session of Alice's.
    let claimed = mallory.certify(laptop, now_ms());
    let answer = hostile
        .request(&Request::RegisterDevice(claimed.clone()))
        .await;
    assert_eq!(answer.response(), &Response::Done);
    scene.expect_statement(claimed.encode());
    for attempt in ["applied", "unchanged"] {
        let answer = hostile
            .request(&Request::RevokeDevice(revocation.clone()))
            .await;
        assert_eq!(answer.response(), &Response::Done, "{attempt}");
        assert_still_served(&victim, private).await;
    }
    scene.expect_statement(revocation.encode());

    scene.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_wins_over_a_future_dated_certificate() {
    let mut scene = Scene::start().await;
    let alice = &scene.alice;
    let phone = alice.device(2);
    // Ten years ahead: refused outright.
    let far = alice.certify(phone.id, now_ms() + TEN_YEARS_MS);
    let answer = scene.honest_request(Request::RegisterDevice(far)).await;
    assert_eq!(code_of(&answer), Some(ErrorCode::FUTURE_STATEMENT));

    // A minute ahead (within the allowed skew): accepted, and a
    // revocation dated now, before the certificate, still wins.
    let mut skewed = phone.clone();
    skewed.certificate = scene.alice.certify(phone.id, now_ms() + 60_000);
    let answer = scene
        .honest_request(Request::RegisterDevice(skewed.certificate.clone()))
        .await;
    assert_eq!(answer, Response::Done);
    scene.expect_statement(skewed.certificate.encode());
    let connection = RawConnection::authenticated(&scene.relay, &skewed).await;
    let revocation = scene.alice.revoke(phone.id);
    let answer = scene
        .honest_request(Request::RevokeDevice(revocation.clone()))
        .await;
    assert_eq!(answer, Response::Done);
    scene.expect_statement(revocation.encode());
    assert_eq!(connection.closed_with().await, ErrorCode::DEVICE_REVOKED);
    let again = RawConnection::dial(&scene.relay).await;
    let refused = again.request(&again.authenticate_request(&skewed)).await;
    assert_eq!(refused.error_code(), ErrorCode::DEVICE_REVOKED);
    scene.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_dated_far_ahead_of_the_relays_clock_are_refused() {
    let mut scene = Scene::start().await;
    let (mallory, device) = mallory();
    // A new user whose first certificate is dated ten years ahead.
    let mut future = device.clone();
    future.certificate = mallory.certify(device.id, now_ms() + TEN_YEARS_MS);
    let raw = RawConnection::dial(&scene.relay).await;
    let answer = raw.request(&raw.authenticate_request(&future)).await;
    assert_eq!(answer.error_code(), ErrorCode::FUTURE_STATEMENT);
    assert_eq!(raw.closed_with().await, ErrorCode::FUTURE_STATEMENT);

    // Grants and friend revocations of a registered user.
    let hostile = scene.newcomer(&device).await;
    let friend = scene.alice.id;
    let ahead = now_ms() + TEN_YEARS_MS;
    let grant = FriendGrant::sign(
        FriendGrantBody::new(mallory.id, friend, ahead),
        &mallory.root,
    );
    let unfriend = FriendRevocation::sign(
        FriendRevocationBody::new(mallory.id, friend, ahead),
        &mallory.root,
    );
    for request in [Request::GrantFriend(grant), Request::RevokeFriend(unfriend)] {
        let answer = hostile.request(&request).await;
        assert_eq!(
            answer.error_code(),
            ErrorCode::FUTURE_STATEMENT,
            "{request:?}"
        );
    }
    // An honest grant and its revocation follow each other as usual.
    let grant = mallory.grant(friend);
    assert_eq!(
        hostile
            .request(&Request::GrantFriend(grant))
            .await
            .response(),
        &Response::Done
    );
    let unfriend = FriendRevocation::sign(
        FriendRevocationBody::new(mallory.id, friend, now_ms() + 1),
        &mallory.root,
    );
    assert_eq!(
        hostile
            .request(&Request::RevokeFriend(unfriend.clone()))
            .await
            .response(),
        &Response::Done
    );
    scene.expect_statement(unfriend.encode());
    scene.finish().await;
}
