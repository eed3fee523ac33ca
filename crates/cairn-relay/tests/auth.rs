//! Authentication over real loopback QUIC: success, and every refusal.

// Test code: a panic is the failure report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use cairn_client::ConnectError;
use cairn_client::connection::{auth_exporter, dial, request_on};
use cairn_relay::config::{AllowedUser, RegistrationPolicy};
use cairn_wire::*;
use support::*;

#[tokio::test]
async fn first_device_registers_its_user_and_later_connects_again() {
    let relay = TestRelay::start().await;
    let alice = User::new(1);
    let laptop = alice.device(2);
    let first = relay.connect(&laptop).await;
    assert_eq!(first.auth().user, alice.id);
    assert!(first.auth().registered);
    first.close().await;
    let again = relay.connect(&laptop).await;
    assert!(!again.auth().registered);
}

#[tokio::test]
async fn a_proof_from_another_connection_is_refused() {
    let relay = TestRelay::start().await;
    let device = User::new(1).device(2);
    let (_e1, first) = dial(relay.handle.addr, relay.handle.fingerprint)
        .await
        .unwrap();
    let (_e2, second) = dial(relay.handle.addr, relay.handle.fingerprint)
        .await
        .unwrap();
    // A proof made for the first connection, replayed on the second.
    let proof = AuthRequest::prove(&device.key, &auth_exporter(&first).unwrap());
    let replay = Request::Authenticate(AuthRequest {
        certificate: device.certificate.clone(),
        proof,
        invite: None,
    });
    let answer = request_on(&second, &replay).await.unwrap();
    assert_eq!(error_code(&answer), ErrorCode::AUTH_FAILED);
    assert_closed_with(&second, ErrorCode::AUTH_FAILED).await;
}

#[tokio::test]
async fn a_certificate_not_signed_by_the_root_key_is_refused() {
    let relay = TestRelay::start().await;
    let alice = User::new(1);
    let mallory = User::new(9);
    let mut device = alice.device(2);
    let body = device.certificate.body().clone();
    let forged = DeviceCertificate::sign(body.clone(), &mallory.root);
    device.certificate = DeviceCertificate::from_parts(body, *forged.signature());
    assert_refused(
        relay.try_connect(&device, None).await,
        ErrorCode::BAD_CERTIFICATE,
    );
}

#[tokio::test]
async fn an_unregistered_device_of_a_known_user_is_refused_until_registered() {
    let relay = TestRelay::start().await;
    let alice = User::new(1);
    let laptop = relay.connect(&alice.device(2)).await;
    let phone = alice.device(3);
    assert_refused(
        relay.try_connect(&phone, None).await,
        ErrorCode::UNKNOWN_DEVICE,
    );
    assert_eq!(
        request(&laptop, Request::RegisterDevice(phone.certificate.clone())).await,
        Response::Done
    );
    relay.connect(&phone).await;
}

#[tokio::test]
async fn a_revoked_device_is_disconnected_and_refused() {
    let relay = TestRelay::start().await;
    let alice = User::new(1);
    let laptop = relay.connect(&alice.device(2)).await;
    let phone = alice.device(3);
    request(&laptop, Request::RegisterDevice(phone.certificate.clone())).await;
    let phone_connection = relay.connect(&phone).await;
    assert_eq!(
        request(&laptop, Request::RevokeDevice(alice.revoke(phone.id))).await,
        Response::Done
    );
    assert_closed_with(phone_connection.quic(), ErrorCode::DEVICE_REVOKED).await;
    assert_refused(
        relay.try_connect(&phone, None).await,
        ErrorCode::DEVICE_REVOKED,
    );
    // Registering it again is refused: revocation is final.
    let answer = request(&laptop, Request::RegisterDevice(phone.certificate.clone())).await;
    assert_eq!(error_code(&answer), ErrorCode::STALE_STATEMENT);
}

#[tokio::test]
async fn invite_policy_admits_only_new_users_with_a_valid_code() {
    let relay = TestRelay::start_with(|c| {
        c.registration.policy = RegistrationPolicy::Invite;
        c.registration.invites = vec!["let-me-in".into()];
    })
    .await;
    let device = User::new(1).device(2);
    assert_refused(
        relay.try_connect(&device, None).await,
        ErrorCode::REGISTRATION_REFUSED,
    );
    assert_refused(
        relay.try_connect(&device, Some("wrong")).await,
        ErrorCode::REGISTRATION_REFUSED,
    );
    assert!(
        relay
            .try_connect(&device, Some("let-me-in"))
            .await
            .unwrap()
            .auth()
            .registered
    );
    // Once registered, no code is needed.
    relay.connect(&device).await;
}

#[tokio::test]
async fn allow_list_policy_admits_only_listed_users() {
    let alice = User::new(1);
    let relay = TestRelay::start_with(|c| {
        c.registration.policy = RegistrationPolicy::AllowList;
        c.registration.allow = vec![AllowedUser(alice.id)];
    })
    .await;
    relay.connect(&alice.device(2)).await;
    assert_refused(
        relay.try_connect(&User::new(3).device(4), None).await,
        ErrorCode::REGISTRATION_REFUSED,
    );
}

#[tokio::test]
async fn a_request_before_authentication_is_refused_and_closes() {
    let relay = TestRelay::start().await;
    let (_endpoint, connection) = dial(relay.handle.addr, relay.handle.fingerprint)
        .await
        .unwrap();
    let answer = request_on(&connection, &Request::Status).await.unwrap();
    assert_eq!(error_code(&answer), ErrorCode::UNAUTHENTICATED);
    assert_closed_with(&connection, ErrorCode::UNAUTHENTICATED).await;
}

#[tokio::test]
async fn a_wrong_pin_is_a_fingerprint_mismatch() {
    let relay = TestRelay::start().await;
    let wrong = Fingerprint::of_certificate(b"some other relay");
    let device = User::new(1).device(2);
    let result = cairn_client::Connection::open(
        relay.handle.addr,
        wrong,
        &device.key,
        device.certificate,
        None,
    )
    .await;
    assert!(
        matches!(result, Err(ConnectError::FingerprintMismatch { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn connections_per_address_are_limited() {
    let relay = TestRelay::start_with(|c| c.limits.connections_per_ip = 1).await;
    let alice = User::new(1);
    let _first = relay.connect(&alice.device(2)).await;
    let second = relay.try_connect(&alice.device(2), None).await;
    assert_refused(second, ErrorCode::TOO_MANY_CONNECTIONS);
}

fn assert_refused(result: Result<cairn_client::Connection, ConnectError>, code: ErrorCode) {
    match result {
        Err(ConnectError::Refused(error)) => assert_eq!(error.code, code, "{error}"),
        other => panic!("expected a refusal with {code}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_configured_pem_certificate_is_served_instead_of_the_self_signed_one() {
    let pem_dir = tempfile::TempDir::new().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["relay.example".to_owned()]).unwrap();
    let (cert, key) = (
        pem_dir.path().join("cert.pem"),
        pem_dir.path().join("key.pem"),
    );
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    let relay = TestRelay::start_with(|c| {
        c.tls = Some(cairn_relay::config::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        });
    })
    .await;
    assert_eq!(
        relay.handle.fingerprint,
        Fingerprint::of_public_key(&rcgen::PublicKeyData::subject_public_key_info(
            &generated.signing_key
        )),
        "the pin is the certificate's public key"
    );
    relay.connect(&User::new(1).device(2)).await;
    assert!(
        !relay.dir.path().join("relay-cert.pem").exists(),
        "no self-signed certificate when one is configured"
    );
}

/// What a stranger can do with `Enrol`: nothing that tells them who is
/// registered. An unregistered device of a real user and a device of a
/// user who does not exist get byte-identical refusals, a bad proof is
/// refused before any registry read, a revoked device gets no
/// certificate, and `Enrol` on an authenticated connection is refused
/// and closes it. Only a device its user registered is enrolled, with
/// exactly the certificate its user registered.
#[tokio::test]
async fn enrolment_admits_only_registered_devices_and_tells_strangers_nothing() {
    use cairn_testkit::raw::RawConnection;
    let relay = TestRelay::start().await;
    let (addr, pin) = (relay.handle.addr, relay.handle.fingerprint);
    let alice = User::new(1);
    let laptop = relay.connect(&alice.device(2)).await;
    let (phone, old) = (alice.device(3), alice.device(4));
    request(&laptop, Request::RegisterDevice(old.certificate.clone())).await;
    request(&laptop, Request::RevokeDevice(alice.revoke(old.id))).await;

    let enrol = |raw: &RawConnection, user: UserId, device: &Device| {
        Request::Enrol(EnrolRequest {
            user,
            device: device.id,
            proof: raw.proof(&device.key),
        })
    };
    let raw = RawConnection::dial_to(addr, pin).await;
    let unknown_device = raw.request(&enrol(&raw, alice.id, &phone)).await;
    let unknown_device = unknown_device.body().to_vec();
    let nobody = User::new(9);
    let raw = RawConnection::dial_to(addr, pin).await;
    let unknown_user = raw
        .request(&enrol(&raw, nobody.id, &nobody.device(1)))
        .await;
    let unknown_user = unknown_user.body().to_vec();
    assert_eq!(
        unknown_device, unknown_user,
        "no oracle of who is registered"
    );
    let decoded = Response::decode(&unknown_device).unwrap();
    assert!(matches!(&decoded, Response::Error(e) if e.code == ErrorCode::UNKNOWN_DEVICE));

    let forged = RawConnection::dial_to(addr, pin).await;
    let bad = Request::Enrol(EnrolRequest {
        user: alice.id,
        device: phone.id,
        proof: forged.proof(&nobody.device(1).key),
    });
    assert_eq!(
        forged.request(&bad).await.error_code(),
        ErrorCode::AUTH_FAILED
    );

    let revoked = RawConnection::dial_to(addr, pin).await;
    let answer = revoked.request(&enrol(&revoked, alice.id, &old)).await;
    assert_eq!(answer.error_code(), ErrorCode::DEVICE_REVOKED);

    request(&laptop, Request::RegisterDevice(phone.certificate.clone())).await;
    let enrolled = RawConnection::dial_to(addr, pin).await;
    match enrolled
        .request(&enrol(&enrolled, alice.id, &phone))
        .await
        .response()
    {
        Response::Enrolled(enrolment) => {
            assert_eq!(enrolment.certificate, phone.certificate);
            assert_eq!(enrolment.ok.device, phone.id);
            assert!(!enrolment.ok.registered);
        }
        other => panic!("a registered device was not enrolled: {other:?}"),
    }
    let again = enrol(&enrolled, alice.id, &phone);
    assert_eq!(
        enrolled.request(&again).await.error_code(),
        ErrorCode::UNEXPECTED_FRAME
    );
}
