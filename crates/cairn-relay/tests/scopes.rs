//! Scope routing and append semantics over real loopback QUIC.

// Test code: a panic is the failure report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use cairn_wire::*;
use support::*;

#[tokio::test]
async fn private_streams_are_readable_only_by_the_authors_devices() {
    let relay = TestRelay::start().await;
    let alice = User::new(1);
    let (laptop, phone) = (alice.device(2), alice.device(3));
    let laptop_c = relay.connect(&laptop).await;
    request(
        &laptop_c,
        Request::RegisterDevice(phone.certificate.clone()),
    )
    .await;
    append_one(&laptop_c, laptop.envelope(1, Scope::Private, b"note")).await;
    let stream = StreamId::new(alice.id, Scope::Private);

    let phone_c = relay.connect(&phone).await;
    assert_eq!(positions(&read(&phone_c, stream, 0).await), vec![1]);

    let bob = relay.connect(&User::new(4).device(5)).await;
    assert_eq!(
        error_code(&read(&bob, stream, 0).await),
        ErrorCode::FORBIDDEN
    );
}

#[tokio::test]
async fn forbidden_reveals_nothing_about_existence() {
    let relay = TestRelay::start().await;
    let alice = User::new(1);
    let laptop = alice.device(2);
    let laptop_c = relay.connect(&laptop).await;
    append_one(&laptop_c, laptop.envelope(1, Scope::Private, b"note")).await;
    let bob = relay.connect(&User::new(4).device(5)).await;
    let existing = read(&bob, StreamId::new(alice.id, Scope::Private), 0).await;
    let empty = read(&bob, StreamId::new(alice.id, Scope::Friends), 0).await;
    let unknown = read(&bob, StreamId::new(User::new(7).id, Scope::Private), 0).await;
    assert_eq!(existing, empty);
    assert_eq!(existing, unknown);
}

#[tokio::test]
async fn friends_streams_follow_grants_and_revocations() {
    let relay = TestRelay::start().await;
    let (alice, bob) = (User::new(1), User::new(4));
    let alice_device = alice.device(2);
    let alice_c = relay.connect(&alice_device).await;
    let bob_c = relay.connect(&bob.device(5)).await;
    let stream = StreamId::new(alice.id, Scope::Friends);
    append_one(&alice_c, alice_device.envelope(1, Scope::Friends, b"post")).await;

    assert_eq!(
        error_code(&read(&bob_c, stream, 0).await),
        ErrorCode::FORBIDDEN
    );
    assert_eq!(
        request(&alice_c, Request::GrantFriend(alice.grant(bob.id))).await,
        Response::Done
    );
    assert_eq!(positions(&read(&bob_c, stream, 0).await), vec![1]);
    assert_eq!(
        request(&alice_c, Request::RevokeFriend(alice.unfriend(bob.id))).await,
        Response::Done
    );
    assert_eq!(
        error_code(&read(&bob_c, stream, 0).await),
        ErrorCode::FORBIDDEN
    );
}

#[tokio::test]
async fn statements_must_be_the_connection_users_own() {
    let relay = TestRelay::start().await;
    let (alice, bob, carol) = (User::new(1), User::new(4), User::new(6));
    let bob_c = relay.connect(&bob.device(5)).await;
    // Bob relays a grant Alice signed: not his to make.
    let answer = request(&bob_c, Request::GrantFriend(alice.grant(carol.id))).await;
    assert_eq!(error_code(&answer), ErrorCode::BAD_STATEMENT);
    // A grant with a forged signature.
    let body = bob.grant(carol.id).body().clone();
    let forged = FriendGrant::from_parts(body, *alice.grant(carol.id).signature());
    assert_eq!(
        error_code(&request(&bob_c, Request::GrantFriend(forged)).await),
        ErrorCode::BAD_STATEMENT
    );
}

#[tokio::test]
async fn direct_streams_reach_the_recipient_only() {
    let relay = TestRelay::start().await;
    let (alice, bob, carol) = (User::new(1), User::new(4), User::new(6));
    let alice_device = alice.device(2);
    let alice_c = relay.connect(&alice_device).await;
    let bob_c = relay.connect(&bob.device(5)).await;
    let carol_c = relay.connect(&carol.device(7)).await;
    let strangers = alice_device.envelope(1, Scope::Direct(bob.id), b"key grant");
    match append(&alice_c, vec![strangers.clone()]).await.as_slice() {
        [AppendOutcome::Refused(e)] => assert_eq!(e.code, ErrorCode::FORBIDDEN),
        other => panic!("bob has not added alice yet: {other:?}"),
    }
    request(&bob_c, Request::GrantFriend(bob.grant(alice.id))).await;
    append_one(&alice_c, strangers).await;
    let stream = StreamId::new(alice.id, Scope::Direct(bob.id));
    assert_eq!(positions(&read(&bob_c, stream, 0).await), vec![1]);
    assert_eq!(positions(&read(&alice_c, stream, 0).await), vec![1]);
    assert_eq!(
        error_code(&read(&carol_c, stream, 0).await),
        ErrorCode::FORBIDDEN
    );
}

#[tokio::test]
async fn retries_are_idempotent_and_equivocation_and_gaps_are_refused() {
    let relay = TestRelay::start().await;
    let device = User::new(1).device(2);
    let c = relay.connect(&device).await;
    let first = device.envelope(1, Scope::Private, b"one");
    let position = append_one(&c, first.clone()).await;
    match append(&c, vec![first.clone()]).await.as_slice() {
        [AppendOutcome::Duplicate(ack)] => {
            assert_eq!((ack.position, ack.id), (position, first.id()))
        }
        other => panic!("expected a duplicate, got {other:?}"),
    }
    let other_bytes = device.envelope(1, Scope::Private, b"something else");
    assert_eq!(
        refusal(&append(&c, vec![other_bytes]).await),
        (ErrorCode::EQUIVOCATION, ErrorDetail::Stored(first.id()))
    );
    // The next seq, but not following the device's last envelope in the
    // stream: the refusal names the one it should follow.
    let restarted = device.envelope_after(
        device.user,
        2,
        FIRST_IN_STREAM,
        Scope::Private,
        b"a second first",
    );
    assert_eq!(
        refusal(&append(&c, vec![restarted]).await),
        (ErrorCode::BROKEN_CHAIN, ErrorDetail::Stored(first.id()))
    );
    // In another stream the device starts a chain of its own.
    let elsewhere =
        device.envelope_after(device.user, 2, FIRST_IN_STREAM, Scope::Friends, b"friends");
    assert!(matches!(
        append(&c, vec![elsewhere]).await.as_slice(),
        [AppendOutcome::Stored(_)]
    ));
    let skipped = device.envelope(5, Scope::Private, b"five");
    assert_eq!(
        refusal(&append(&c, vec![skipped]).await),
        (ErrorCode::SEQ_GAP, ErrorDetail::ExpectedSeq(3))
    );
    // Nothing refused was stored.
    assert_eq!(positions(&read(&c, first.stream(), 0).await), vec![1]);
}

#[tokio::test]
async fn envelopes_not_by_this_device_or_badly_signed_are_refused() {
    let relay = TestRelay::start().await;
    let alice = User::new(1);
    let (laptop, phone) = (alice.device(2), alice.device(3));
    let c = relay.connect(&laptop).await;
    request(&c, Request::RegisterDevice(phone.certificate.clone())).await;
    let by_phone = phone.envelope(1, Scope::Private, b"relayed");
    assert_eq!(
        refusal(&append(&c, vec![by_phone]).await).0,
        ErrorCode::NOT_AUTHOR
    );
    let good = laptop.envelope(1, Scope::Private, b"mine");
    let bad = UnsignedEnvelope {
        header: good.header().clone(),
        payload: Payload::new(b"tampered".to_vec()).unwrap(),
    }
    .with_signature(*good.signature());
    assert_eq!(
        refusal(&append(&c, vec![bad]).await).0,
        ErrorCode::BAD_SIGNATURE
    );
    // A refused item in a batch leaves the others to be judged alone.
    let outcomes = append(
        &c,
        vec![
            laptop.envelope(1, Scope::Private, b"a"),
            laptop.envelope(3, Scope::Private, b"c"),
        ],
    )
    .await;
    assert!(matches!(outcomes[0], AppendOutcome::Stored(_)));
    assert!(matches!(&outcomes[1], AppendOutcome::Refused(e) if e.code == ErrorCode::SEQ_GAP));
}

#[tokio::test]
async fn hello_pushes_the_outbox_and_pulls_everything_new_then_resumes_from_acks() {
    let relay = TestRelay::start().await;
    let (alice, bob) = (User::new(1), User::new(4));
    let (laptop, phone) = (alice.device(2), alice.device(3));
    let bob_device = bob.device(5);
    let laptop_c = relay.connect(&laptop).await;
    request(
        &laptop_c,
        Request::RegisterDevice(phone.certificate.clone()),
    )
    .await;
    let bob_c = relay.connect(&bob_device).await;
    request(&bob_c, Request::GrantFriend(bob.grant(alice.id))).await;
    // Alice adds Bob back: a hello carries only friends she added.
    request(&laptop_c, Request::GrantFriend(alice.grant(bob.id))).await;
    append_one(
        &bob_c,
        bob_device.envelope(1, Scope::Friends, b"bob's post"),
    )
    .await;
    append_one(
        &bob_c,
        bob_device.envelope(2, Scope::Private, b"bob's secret"),
    )
    .await;
    append_one(
        &laptop_c,
        laptop.envelope(1, Scope::Private, b"laptop note"),
    )
    .await;

    let phone_c = relay.connect(&phone).await;
    let outbox = BoundedVec::new(vec![phone.envelope(1, Scope::Private, b"phone note")]).unwrap();
    let synced = hello(
        &phone_c,
        HelloRequest {
            cursors: BoundedVec::empty(),
            outbox,
        },
    )
    .await;
    assert!(matches!(synced.acks.as_slice(), [AppendOutcome::Stored(ack)] if ack.position == 2));
    let mut seen: Vec<(StreamId, Vec<u64>)> = synced
        .pages
        .iter()
        .map(|p| (p.stream, p.entries.iter().map(|e| e.position).collect()))
        .collect();
    seen.sort();
    let mut expected = vec![
        (StreamId::new(alice.id, Scope::Private), vec![1, 2]),
        (StreamId::new(bob.id, Scope::Friends), vec![1]),
    ];
    expected.sort();
    assert_eq!(seen, expected, "bob's private stream must not be served");
    assert!(!synced.more);

    // After acknowledging, a hello without cursors returns nothing old.
    for (stream, positions) in &seen {
        let cursor = Cursor {
            stream: *stream,
            position: *positions.last().unwrap(),
        };
        assert_eq!(
            request(&phone_c, Request::Ack(cursor)).await,
            Response::Done
        );
    }
    let again = hello(&phone_c, HelloRequest::default()).await;
    assert!(again.pages.is_empty(), "{again:?}");
    // Acknowledging a stream one may not read is forbidden.
    let forbidden = Cursor {
        stream: StreamId::new(bob.id, Scope::Private),
        position: 1,
    };
    assert_eq!(
        error_code(&request(&phone_c, Request::Ack(forbidden)).await),
        ErrorCode::FORBIDDEN
    );
    // Status shows both devices and their positions.
    match request(&laptop_c, Request::Status).await {
        Response::Status(status) => {
            let phone_row = status
                .devices
                .iter()
                .find(|d| d.device == phone.id)
                .unwrap();
            assert_eq!(phone_row.last_seq, 1);
            assert_eq!(phone_row.acked.len(), 2);
        }
        other => panic!("expected status, got {other:?}"),
    }
}

async fn hello(c: &cairn_client::Connection, hello: HelloRequest) -> SyncResponse {
    match request(c, Request::Hello(hello)).await {
        Response::Synced(synced) => synced,
        other => panic!("expected Synced, got {other:?}"),
    }
}

fn refusal(outcomes: &[AppendOutcome]) -> (ErrorCode, ErrorDetail) {
    match outcomes {
        [AppendOutcome::Refused(e)] => (e.code, e.detail),
        other => panic!("expected one refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn pages_of_large_envelopes_fit_a_frame_and_continue_without_gaps() {
    let relay = TestRelay::start().await;
    let alice = User::new(1);
    let device = alice.device(2);
    let c = relay.connect(&device).await;
    let big = vec![0x33; 60 * 1024];
    let batch: Vec<Envelope> = (1..=40)
        .map(|seq| device.envelope(seq, Scope::Private, &big))
        .collect();
    for chunk in batch.chunks(8) {
        assert!(
            append(&c, chunk.to_vec())
                .await
                .iter()
                .all(|o| matches!(o, AppendOutcome::Stored(_)))
        );
    }
    let stream = StreamId::new(alice.id, Scope::Private);
    let (mut after, mut pages, mut seen) = (0, 0, Vec::new());
    loop {
        let Response::Page(page) = read(&c, stream, after).await else {
            panic!("expected a page")
        };
        assert!(
            page.entries.len() < 40,
            "a page of 40 × 60 KiB would exceed the frame limit"
        );
        seen.extend(page.entries.iter().map(|e| e.position));
        after = *seen.last().unwrap();
        pages += 1;
        if !page.more {
            break;
        }
    }
    assert_eq!(seen, (1..=40).collect::<Vec<_>>());
    assert!(pages >= 3, "{pages} pages");
}
