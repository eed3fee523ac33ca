//! Live subscriptions: gapless under racing writers, a slow subscriber
//! that holds nobody back, revocation, and graceful shutdown.

// Test code: a panic is the failure report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::time::Duration;

use cairn_client::Subscription;
use cairn_wire::*;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_stays_gapless_while_eight_writers_race_it() {
    const WRITERS: u32 = 8;
    const PER_WRITER: u64 = 40;
    let relay = TestRelay::start().await;
    let alice = User::new(1);
    let devices: Vec<Device> = (0..WRITERS).map(|i| alice.device(10 + i)).collect();
    let first = relay.connect(&devices[0]).await;
    for device in &devices[1..] {
        assert_eq!(
            request(&first, Request::RegisterDevice(device.certificate.clone())).await,
            Response::Done
        );
    }
    let stream = StreamId::new(alice.id, Scope::Private);
    // Some backlog before the subscription starts.
    for seq in 1..=5 {
        append_one(&first, devices[0].envelope(seq, Scope::Private, b"early")).await;
    }
    let reader = relay.connect(&devices[0]).await;
    let mut writers = Vec::new();
    for (i, device) in devices.iter().enumerate() {
        let connection = relay.connect(device).await;
        let device = device.clone();
        let start = if i == 0 { 6 } else { 1 };
        writers.push(tokio::spawn(async move {
            for seq in start..start + PER_WRITER {
                append_one(&connection, device.envelope(seq, Scope::Private, b"racing")).await;
            }
        }));
    }
    // Subscribe from position 2 while the writers are going.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut subscription = reader
        .subscribe(SubscribeRequest { stream, after: 2 })
        .await
        .unwrap();
    let total = 5 + u64::from(WRITERS) * PER_WRITER;
    let positions = collect(&mut subscription, usize::try_from(total - 2).unwrap()).await;
    assert_eq!(
        positions,
        (3..=total).collect::<Vec<_>>(),
        "no gap, no duplicate, in order"
    );
    for writer in writers {
        writer.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_holds_nobody_back_and_loses_nothing() {
    const COUNT: u64 = 200;
    let relay = TestRelay::start_with(|c| c.limits.subscriber_queue = 4).await;
    let alice = User::new(1);
    let device = alice.device(2);
    let writer = relay.connect(&device).await;
    let stream = StreamId::new(alice.id, Scope::Private);
    let fast_c = relay.connect(&device).await;
    let slow_c = relay.connect(&device).await;
    let mut fast = fast_c
        .subscribe(SubscribeRequest { stream, after: 0 })
        .await
        .unwrap();
    let mut slow = slow_c
        .subscribe(SubscribeRequest { stream, after: 0 })
        .await
        .unwrap();
    collect_live_marker(&mut fast).await;
    collect_live_marker(&mut slow).await;
    // 16 KiB payloads fill QUIC flow-control windows, so the relay's writes to
    // the slow subscriber block while it does not read.
    let payload = vec![7u8; 16 * 1024];
    let reading =
        tokio::spawn(async move { collect(&mut fast, usize::try_from(COUNT).unwrap()).await });
    for seq in 1..=COUNT {
        append_one(&writer, device.envelope(seq, Scope::Private, &payload)).await;
    }
    let fast_positions = tokio::time::timeout(WAIT, reading)
        .await
        .expect("fast subscriber held back")
        .unwrap();
    assert_eq!(fast_positions, (1..=COUNT).collect::<Vec<_>>());
    // Now the slow one reads: it gets everything, from storage where needed.
    let slow_positions = collect(&mut slow, usize::try_from(COUNT).unwrap()).await;
    assert_eq!(slow_positions, (1..=COUNT).collect::<Vec<_>>());
    // And it did so by falling back to storage, not by queueing everything.
    let metrics = admin_get(&relay, "/metrics");
    let catch_ups = Metrics::from_text(metrics.clone()).value("cairn_subscriber_catch_ups_total");
    assert!(
        catch_ups >= 1.0,
        "the slow subscriber was never switched to storage:\n{metrics}"
    );
}

async fn collect_live_marker(subscription: &mut Subscription) {
    let event = tokio::time::timeout(WAIT, subscription.next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(event, Some(SubscriptionEvent::Live { position: 0 })),
        "{event:?}"
    );
}

#[tokio::test]
async fn revoking_a_friend_ends_their_open_subscription() {
    let relay = TestRelay::start().await;
    let (alice, bob) = (User::new(1), User::new(4));
    let alice_device = alice.device(2);
    let alice_c = relay.connect(&alice_device).await;
    let bob_c = relay.connect(&bob.device(5)).await;
    request(&alice_c, Request::GrantFriend(alice.grant(bob.id))).await;
    let stream = StreamId::new(alice.id, Scope::Friends);
    let mut subscription = bob_c
        .subscribe(SubscribeRequest { stream, after: 0 })
        .await
        .unwrap();
    collect_live_marker(&mut subscription).await;
    append_one(
        &alice_c,
        alice_device.envelope(1, Scope::Friends, b"for friends"),
    )
    .await;
    assert_eq!(collect(&mut subscription, 1).await, vec![1]);
    request(&alice_c, Request::RevokeFriend(alice.unfriend(bob.id))).await;
    let event = tokio::time::timeout(WAIT, subscription.next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(event, Some(SubscriptionEvent::End(ref e)) if e.code == ErrorCode::FORBIDDEN),
        "{event:?}"
    );
    append_one(
        &alice_c,
        alice_device.envelope(2, Scope::Friends, b"after removal"),
    )
    .await;
    // Nothing written after the removal reaches Bob, however he asks.
    assert_eq!(
        error_code(&read(&bob_c, stream, 1).await),
        ErrorCode::FORBIDDEN
    );
    let hello = Request::Hello(HelloRequest {
        cursors: BoundedVec::new(vec![Cursor {
            stream,
            position: 1,
        }])
        .unwrap(),
        outbox: BoundedVec::default(),
    });
    match request(&bob_c, hello).await {
        Response::Synced(synced) => assert!(
            synced.pages.iter().all(|page| page.stream != stream),
            "a hello still carries the friends stream: {synced:?}"
        ),
        other => panic!("hello answered {other:?}"),
    }
    let mut again = bob_c
        .subscribe(SubscribeRequest { stream, after: 1 })
        .await
        .unwrap();
    let event = tokio::time::timeout(WAIT, again.next()).await.unwrap();
    assert!(
        matches!(event, Ok(Some(SubscriptionEvent::End(ref e))) if e.code == ErrorCode::FORBIDDEN),
        "a new subscription was not refused: {event:?}"
    );
}

#[tokio::test]
async fn subscriptions_per_connection_are_limited() {
    let relay = TestRelay::start_with(|c| c.limits.subscriptions_per_connection = 1).await;
    let alice = User::new(1);
    let c = relay.connect(&alice.device(2)).await;
    let stream = StreamId::new(alice.id, Scope::Private);
    let mut first = c
        .subscribe(SubscribeRequest { stream, after: 0 })
        .await
        .unwrap();
    collect_live_marker(&mut first).await;
    let mut second = c
        .subscribe(SubscribeRequest { stream, after: 0 })
        .await
        .unwrap();
    let event = tokio::time::timeout(WAIT, second.next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(event, Some(SubscriptionEvent::End(ref e)) if e.code == ErrorCode::TOO_MANY_SUBSCRIPTIONS),
        "{event:?}"
    );
}

#[tokio::test]
async fn shutdown_tells_subscribers_and_keeps_every_acknowledged_envelope() {
    let relay = TestRelay::start().await;
    let alice = User::new(1);
    let device = alice.device(2);
    let c = relay.connect(&device).await;
    let stream = StreamId::new(alice.id, Scope::Private);
    let mut subscription = c
        .subscribe(SubscribeRequest { stream, after: 0 })
        .await
        .unwrap();
    collect_live_marker(&mut subscription).await;
    for seq in 1..=10 {
        append_one(&c, device.envelope(seq, Scope::Private, b"kept")).await;
    }
    assert_eq!(
        collect(&mut subscription, 10).await,
        (1..=10).collect::<Vec<_>>()
    );
    let restarted = tokio::spawn(async move { relay.restart().await });
    let event = tokio::time::timeout(WAIT, subscription.next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(event, Some(SubscriptionEvent::End(ref e)) if e.code == ErrorCode::SHUTTING_DOWN),
        "{event:?}"
    );
    let relay = restarted.await.unwrap();
    let c = relay.connect(&device).await;
    assert_eq!(
        positions(&read(&c, stream, 0).await),
        (1..=10).collect::<Vec<_>>()
    );
    // The device resumes at its next sequence number.
    assert_eq!(
        append_one(&c, device.envelope(11, Scope::Private, b"after restart")).await,
        11
    );
}

/// Waits until a read of `stream` from the start says positions expired.
async fn until_expired(connection: &cairn_client::Connection, stream: StreamId) -> StreamPage {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Response::Page(page) = read(connection, stream, 0).await
            && page.expired.is_some()
        {
            return page;
        }
        assert!(tokio::time::Instant::now() < deadline, "nothing expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Retention expires a friends stream's old envelopes (the test kit dates
/// them in 1970): a read or a subscription from below the floor is told,
/// with each device's last expired envelope, and goes on past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_subscriptions_from_below_an_expired_floor_are_told_and_go_on() {
    let relay = TestRelay::start_with(|c| {
        c.retention.friends = Some(Duration::from_secs(86_400));
        c.retention.every = Duration::from_secs(1);
    })
    .await;
    let alice = User::new(1);
    let laptop = alice.device(2);
    let connection = relay.connect(&laptop).await;
    let stream = StreamId::new(alice.id, Scope::Friends);
    let mut last = None;
    for seq in 1..=3 {
        let envelope = laptop.envelope(seq, Scope::Friends, b"old");
        last = Some(envelope.id());
        append_one(&connection, envelope).await;
    }
    let page = until_expired(&connection, stream).await;
    let expired = page.expired.unwrap();
    assert_eq!(expired.through, 3);
    let head = ExpiredHead {
        device: laptop.id,
        seq: 3,
        id: last.unwrap(),
    };
    assert_eq!(expired.heads.as_slice(), [head]);
    assert!(page.entries.is_empty());

    let mut subscription = connection
        .subscribe(SubscribeRequest { stream, after: 0 })
        .await
        .unwrap();
    let first = tokio::time::timeout(WAIT, subscription.next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&first, Some(SubscriptionEvent::Expired(e)) if e.through == 3),
        "{first:?}"
    );
    let live = tokio::time::timeout(WAIT, subscription.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(live, Some(SubscriptionEvent::Live { position: 3 }));
    append_one(&connection, laptop.envelope(4, Scope::Friends, b"new")).await;
    let positions = collect(&mut subscription, 1).await;
    assert_eq!(positions, [4], "the chain goes on past what expired");
    let Response::Page(from_floor) = read(&connection, stream, 3).await else {
        panic!("a page");
    };
    assert!(
        from_floor.expired.is_none(),
        "a reader past the floor is not told"
    );
}
