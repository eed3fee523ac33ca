//! Kill -9 under load: a relay process is SIGKILLed again and again while
//! 64 clients append and 8 live subscribers follow some of their streams.
//! After each kill the stopped database must pass `cairn-relay check`;
//! after each restart the clients reconnect and resend what was in flight,
//! and the subscribers resume from the last position they got. In the end
//! every acknowledged envelope is stored at the position it was
//! acknowledged with, streams have no gaps, and every subscriber got its
//! stream in order, gap-free, exactly as stored.
//!
//! CI kills 5 times; `cargo xtask kills [N]` (default 100) runs the
//! campaign and prints its figures (`CAIRN_KILLS=N` here).

// Test code: a panic is the failure report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cairn_client::Connection;
use cairn_wire::*;
use rand::RngExt;
use support::*;
use tokio::sync::watch;

const CLIENTS: u16 = 64;
/// Clients whose stream a live subscriber follows.
const FOLLOWED: u16 = 8;

/// How many times the relay is killed: `CAIRN_KILLS`, else 5.
fn kills() -> usize {
    std::env::var("CAIRN_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5)
}
/// Resends that found their envelope already committed: the relay died
/// after the commit but before the answer reached the client.
static RESENT_ALREADY_STORED: AtomicUsize = AtomicUsize::new(0);
/// Clients that got an append through after the last restart.
static RESUMED: AtomicUsize = AtomicUsize::new(0);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Each client's pause between appends: about 1 300 appends/s from all
/// of them, so that the database `check` reads after every kill stays
/// small enough for a campaign of a hundred kills.
const PACE: Duration = Duration::from_millis(50);
/// Payload bytes per envelope: small, for the same reason.
const PAYLOAD: usize = 64;

/// Where clients find the relay: its address and fingerprint, or `None`
/// while it is down.
type Target = watch::Receiver<Option<(std::net::SocketAddr, Fingerprint, usize)>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_envelope_is_lost_when_the_relay_is_killed_under_load() {
    let dir = tempfile::TempDir::new().unwrap();
    let listen = free_udp_port();
    let mut relay = RelayProcess::spawn(dir.path(), listen);
    let (target_tx, target) = watch::channel(Some((relay.addr, relay.fingerprint, 0)));
    let stop = Arc::new(tokio::sync::Notify::new());
    let kills = kills();
    for i in 0..FOLLOWED {
        register_follower(&relay, &User::new(u32::from(i))).await;
    }
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            tokio::spawn(client(
                User::new(u32::from(i)).device(1),
                target.clone(),
                stop.clone(),
                kills,
            ))
        })
        .collect();
    let followers: Vec<_> = (0..FOLLOWED)
        .map(|i| {
            tokio::spawn(follower(
                User::new(u32::from(i)).device(2),
                target.clone(),
                stop.clone(),
            ))
        })
        .collect();

    let started = Instant::now();
    for generation in 1..=kills {
        let pause = rand::rng().random_range(1000..2000);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        target_tx.send_replace(None);
        relay.kill9();
        cairn_testkit::data::assert_check_passes(dir.path());
        if generation % 10 == 0 {
            eprintln!(
                "{generation} kills in {:.0?}, `check` clean after each",
                started.elapsed()
            );
        }
        relay = RelayProcess::spawn(dir.path(), listen);
        target_tx.send_replace(Some((relay.addr, relay.fingerprint, generation)));
    }
    // Every client must resume after the last restart.
    let deadline = Instant::now() + WAIT;
    while RESUMED.load(Ordering::Relaxed) < usize::from(CLIENTS) {
        assert!(
            Instant::now() < deadline,
            "only {} clients resumed after the last restart",
            RESUMED.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.notify_waiters();
    let mut followed = Vec::new();
    for follower in followers {
        followed.push(
            tokio::time::timeout(WAIT, follower)
                .await
                .expect("subscriber stuck")
                .unwrap(),
        );
    }
    let mut acknowledged = Vec::new();
    for client in clients {
        acknowledged.push(
            tokio::time::timeout(WAIT, client)
                .await
                .expect("client stuck")
                .unwrap(),
        );
    }
    let total: usize = acknowledged.iter().map(|(_, acks)| acks.len()).sum();
    let idle = acknowledged
        .iter()
        .filter(|(_, acks)| acks.is_empty())
        .count();
    assert_eq!(idle, 0, "{idle} clients never got an append through");
    let delivered: usize = followed.iter().map(|(_, got)| got.len()).sum();
    assert!(
        followed.iter().all(|(_, got)| !got.is_empty()),
        "a subscriber got nothing"
    );
    eprintln!(
        "kill campaign: {kills} kills in {:.0?}, {total} acknowledged appends by {CLIENTS} \
         clients, {} resends answered duplicate, 0 lost, `check` clean after every kill, \
         {delivered} entries delivered live to {FOLLOWED} subscribers, in order and gap-free",
        started.elapsed(),
        RESENT_ALREADY_STORED.load(Ordering::Relaxed)
    );

    // Every acknowledged envelope is where it was acknowledged, gap-free.
    for (device, acks) in &acknowledged {
        let connection = cairn_testkit::raw::connect(&relay, device).await;
        let stream = StreamId::new(device.user, Scope::Private);
        // Gap-free by the kit's own check: the id at index i is at i + 1.
        let stored = cairn_testkit::raw::read_ids(&connection, stream).await;
        for (position, id) in acks {
            assert_eq!(
                stored.get(usize::try_from(*position - 1).unwrap()),
                Some(id),
                "acknowledged envelope missing"
            );
        }
        // What a subscriber got is the stream as stored, from its start.
        if let Some((_, got)) = followed.iter().find(|(d, _)| d.user == device.user) {
            assert!(got.len() <= stored.len());
            assert_eq!(
                got[..],
                stored[..got.len()],
                "a subscriber got another history"
            );
        }
    }
    relay.kill9();
    cairn_testkit::data::assert_check_passes(dir.path());
}

/// Appends envelope after envelope, reconnecting whenever the relay goes
/// away and resending the one in flight, until told to stop. Returns the
/// acknowledged (position, id) pairs.
async fn client(
    device: Device,
    mut target: Target,
    stop: Arc<tokio::sync::Notify>,
    kills: usize,
) -> (Device, Vec<(u64, EnvelopeId)>) {
    let mut acks = Vec::new();
    let mut restarts_seen = 0;
    let mut resumed = false;
    let mut seq = 1;
    let mut connection: Option<Connection> = None;
    // The envelope in flight is kept until acknowledged: a resend must be
    // the same bytes, or the relay rightly calls it equivocation.
    let mut in_flight: Option<Envelope> = None;
    let stopped = stop.notified();
    tokio::pin!(stopped);
    loop {
        let envelope = in_flight
            .get_or_insert_with(|| device.envelope(seq, Scope::Private, &[0x42; PAYLOAD]))
            .clone();
        let current = match connection.take() {
            Some(current) => current,
            None => tokio::select! {
                (fresh, generation) = reconnect(&device, &mut target) => {
                    restarts_seen = generation;
                    fresh
                }
                () = &mut stopped => return (device, acks),
            },
        };
        let request = Request::Append(AppendRequest {
            envelopes: BoundedVec::new(vec![envelope.clone()]).unwrap(),
        });
        let answer = tokio::select! {
            // A killed relay never answers: give up on the connection after
            // a while, as a client's sync engine does, and reconnect.
            answer = tokio::time::timeout(REQUEST_TIMEOUT, current.request(&request)) => answer.ok().and_then(Result::ok),
            // The harness restarted the relay: this connection is dead.
            _ = target.changed() => None,
            () = &mut stopped => return (device, acks),
        };
        let Some(answer) = answer else { continue };
        match answer {
            Response::Appended(outcomes) => match outcomes.as_slice() {
                [outcome @ (AppendOutcome::Stored(ack) | AppendOutcome::Duplicate(ack))] => {
                    if matches!(outcome, AppendOutcome::Duplicate(_)) {
                        RESENT_ALREADY_STORED.fetch_add(1, Ordering::Relaxed);
                    }
                    assert_eq!(ack.id, envelope.id());
                    acks.push((ack.position, ack.id));
                    seq += 1;
                    in_flight = None;
                    tokio::time::sleep(PACE).await;
                    if restarts_seen == kills && !resumed {
                        resumed = true;
                        RESUMED.fetch_add(1, Ordering::Relaxed);
                    }
                }
                other => panic!("append refused: {other:?}"),
            },
            other => panic!("unexpected answer {other:?}"),
        }
        connection = Some(current);
    }
}

/// Registers the user (through device 1) and certifies their device 2,
/// the one that follows their stream.
async fn register_follower(relay: &RelayProcess, user: &User) {
    let connection = cairn_testkit::raw::connect(relay, &user.device(1)).await;
    let certificate = user.certify(user.device(2).id, 1);
    let answer =
        cairn_testkit::raw::request(&connection, &Request::RegisterDevice(certificate)).await;
    assert_eq!(answer, Response::Done, "registering the follower");
    connection.close().await;
}

/// Follows `device`'s user's private stream live, resubscribing after
/// each restart from the last position it got, until told to stop.
/// Returns the ids it got, position 1 first; panics on a gap, a
/// repetition or a reordering.
async fn follower(
    device: Device,
    mut target: Target,
    stop: Arc<tokio::sync::Notify>,
) -> (Device, Vec<EnvelopeId>) {
    let stream = StreamId::new(device.user, Scope::Private);
    let mut got: Vec<EnvelopeId> = Vec::new();
    let stopped = stop.notified();
    tokio::pin!(stopped);
    loop {
        let connection = tokio::select! {
            (fresh, _) = reconnect(&device, &mut target) => fresh,
            () = &mut stopped => return (device, got),
        };
        let after = u64::try_from(got.len()).unwrap();
        let Ok(mut subscription) = connection
            .subscribe(SubscribeRequest { stream, after })
            .await
        else {
            continue;
        };
        loop {
            let event = tokio::select! {
                event = subscription.next() => event,
                _ = target.changed() => break,
                () = &mut stopped => return (device, got),
            };
            match event {
                Ok(Some(SubscriptionEvent::Entries(entries))) => {
                    for entry in entries.as_slice() {
                        let next = u64::try_from(got.len()).unwrap() + 1;
                        assert_eq!(entry.position, next, "a subscriber got a gap or a repeat");
                        got.push(entry.envelope.id());
                    }
                }
                Ok(Some(SubscriptionEvent::Live { .. })) => {}
                // Ended (the relay went away, or shut down): resubscribe.
                _ => break,
            }
        }
    }
}

/// Connects to the current relay; returns the connection and how many
/// restarts that relay has been through.
/// While the relay is down (being checked, restarting) this waits for
/// the harness; once it is up, connecting must succeed within [`WAIT`].
async fn reconnect(device: &Device, target: &mut Target) -> (Connection, usize) {
    let mut up_since: Option<(usize, Instant)> = None;
    loop {
        let current = *target.borrow_and_update();
        if let Some((addr, fingerprint, generation)) = current {
            let since = match up_since {
                Some((seen, since)) if seen == generation => since,
                _ => Instant::now(),
            };
            up_since = Some((generation, since));
            assert!(since.elapsed() < WAIT, "the relay is up but never answers");
            if let Ok(connection) =
                cairn_testkit::raw::try_connect_to(addr, fingerprint, device, None).await
            {
                return (connection, generation);
            }
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), target.changed()).await;
    }
}
