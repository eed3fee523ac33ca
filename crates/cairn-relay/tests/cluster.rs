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
    clippy::indexing_slicing,
    clippy::print_stdout
)]

mod support;

use cairn_relay::config::{Backend, JetStream};
use cairn_testkit::RelayProcess;
use cairn_testkit::nats::NatsCluster;
use cairn_wire::*;
use support::*;

/// A relay node named `node` on `nats`.
async fn node(nats: &NatsCluster, node: &str) -> TestRelay {
    let urls = nats.urls();
    let replicas = nats.size().min(3);
    let node = node.to_owned();
    TestRelay::start_with(move |config| {
        config.limits.connections_per_ip = 1000;
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

/// Clients appending at once through the two nodes.
const CLIENTS: usize = 64;
/// Envelopes each appends.
const APPENDS: u64 = 24;

/// What one client saw: each of its envelopes' id and acknowledged
/// position, the slowest acknowledgement, and how many it had to send
/// again.
struct Acked {
    user: User,
    ids: Vec<(EnvelopeId, u64)>,
    slowest: std::time::Duration,
    resent: u32,
}

/// Appends `APPENDS` envelopes to the user's private stream, each until
/// acknowledged, through `first` and, when a request fails, the other
/// node.
async fn client(n: usize, relays: [(std::net::SocketAddr, Fingerprint); 2]) -> Acked {
    let user = User::in_domain(40, u32::try_from(n).unwrap());
    let device = user.device(0);
    let mut which = n % 2;
    let mut connection = connect_to(relays[which], &device).await;
    let mut acked = Acked {
        user,
        ids: Vec::new(),
        slowest: std::time::Duration::ZERO,
        resent: 0,
    };
    for seq in 1..=APPENDS {
        let envelope = device.envelope(seq, Scope::Private, &seq.to_le_bytes());
        let started = std::time::Instant::now();
        loop {
            let request = Request::Append(AppendRequest {
                envelopes: BoundedVec::new(vec![envelope.clone()]).unwrap(),
            });
            let answer = tokio::time::timeout(WAIT, connection.request(&request)).await;
            if let Ok(Ok(Response::Appended(outcomes))) = &answer
                && let [AppendOutcome::Stored(ack) | AppendOutcome::Duplicate(ack)] =
                    outcomes.as_slice()
            {
                acked.ids.push((envelope.id(), ack.position));
                break;
            }
            assert!(
                started.elapsed() < 3 * WAIT,
                "client {n}: no acknowledgement: {answer:?}"
            );
            acked.resent += 1;
            which = 1 - which;
            connection = connect_to(relays[which], &device).await;
        }
        acked.slowest = acked.slowest.max(started.elapsed());
    }
    acked
}

async fn connect_to(
    (addr, fingerprint): (std::net::SocketAddr, Fingerprint),
    device: &Device,
) -> cairn_client::Connection {
    cairn_testkit::raw::try_connect_to(addr, fingerprint, device, None)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_envelope_is_lost_when_the_logs_leader_is_killed_under_load() {
    let mut nats = NatsCluster::start(3);
    let (a, b) = (node(&nats, "a").await, node(&nats, "b").await);
    let relays = [
        (a.handle.addr, a.handle.fingerprint),
        (b.handle.addr, b.handle.fingerprint),
    ];
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| tokio::spawn(client(n, relays)))
        .collect();
    // Once the load runs, kill the server leading the log's stream.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let leader = nats
        .stream_leader(0, "CAIRN_LOG")
        .and_then(|name| nats.index_of(&name))
        .expect("the log's stream has a leader");
    let killed_at = std::time::Instant::now();
    nats.kill(leader);

    let mut all = Vec::new();
    for task in clients {
        all.push(task.await.unwrap());
    }
    let stall = all.iter().map(|a| a.slowest).max().unwrap_or_default();
    let resent: u32 = all.iter().map(|a| a.resent).sum();
    println!(
        "leader n{leader} killed; {} envelopes acknowledged by {CLIENTS} clients; slowest \
         acknowledgement {stall:?}; {resent} sent again; all done {:?} after the kill",
        all.len() as u64 * APPENDS,
        killed_at.elapsed()
    );
    // Every acknowledged envelope is at its position on both nodes, and
    // each stream runs 1..n without a gap.
    for acked in &all {
        assert_eq!(acked.ids.len() as u64, APPENDS);
        let stream = StreamId::new(acked.user.id, Scope::Private);
        for relay in [&a, &b] {
            let own = relay.connect(&acked.user.device(0)).await;
            let page = read(&own, stream, 0).await;
            let Response::Page(page) = page else {
                panic!("{page:?}");
            };
            let stored: Vec<(EnvelopeId, u64)> = page
                .entries
                .iter()
                .map(|e| (e.envelope.id(), e.position))
                .collect();
            assert_eq!(
                stored, acked.ids,
                "acknowledged envelopes at their positions, 1..n"
            );
            own.close().await;
        }
    }
    assert!(stall < 2 * WAIT);
    // Both copies check clean and hold the same entries.
    let (dir_a, dir_b) = (a.dir, b.dir);
    a.handle.shutdown().await;
    b.handle.shutdown().await;
    let file = cairn_relay::config::DATABASE_FILE;
    let dumps = [
        checked_dump(&dir_a.path().join(file)).await,
        checked_dump(&dir_b.path().join(file)).await,
    ];
    assert_eq!(dumps[0], dumps[1], "both nodes' copies hold the same log");
}

/// A stopped node's copy, checked, as text.
async fn checked_dump(path: &std::path::Path) -> String {
    use cairn_store::{RedbStore, Store};
    let store = RedbStore::open(path).unwrap();
    let report = store.verify().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    let mut out = String::new();
    for head in store.all_streams().await.unwrap() {
        let read = store.read_stream(head.stream, 0, usize::MAX).await.unwrap();
        out += &format!("{head:?}\n");
        for entry in read.entries {
            out += &format!("  {} {:?}\n", entry.position, entry.envelope.id());
        }
    }
    out += &format!("{:?}\n", store.statements().await.unwrap());
    store.close().await;
    out
}

/// The variables that make a `cairn-relay serve` process node `node` of
/// the cluster on `nats`.
fn node_env(nats: &NatsCluster, node: &str) -> Vec<(String, String)> {
    let urls: Vec<String> = nats.urls().iter().map(|u| format!("\"{u}\"")).collect();
    vec![
        ("CAIRN_RELAY_STORAGE__BACKEND".into(), "jetstream".into()),
        (
            "CAIRN_RELAY_STORAGE__JETSTREAM__URLS".into(),
            format!("[{}]", urls.join(",")),
        ),
        (
            "CAIRN_RELAY_STORAGE__JETSTREAM__NODE_ID".into(),
            node.into(),
        ),
    ]
}

fn spawn_node(nats: &NatsCluster, dir: &std::path::Path, node: &str) -> RelayProcess {
    let env = node_env(nats, node);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    RelayProcess::spawn_with_env(dir, "127.0.0.1:0".parse().unwrap(), &env)
}

/// How long a client waits for an answer from a node before it takes the
/// node for dead.
const UNANSWERED: std::time::Duration = std::time::Duration::from_secs(3);

/// Appends through `relay` until it stops answering; what each client had
/// acknowledged, and the envelope it was sending when the relay died.
async fn append_until_dead(
    relay: (std::net::SocketAddr, Fingerprint),
    device: Device,
    mut seq: u64,
) -> (u64, Option<Envelope>) {
    let Ok(connection) = cairn_testkit::raw::try_connect_to(relay.0, relay.1, &device, None).await
    else {
        return (seq, None);
    };
    loop {
        let envelope = device.envelope(seq, Scope::Private, b"while the node dies");
        let request = Request::Append(AppendRequest {
            envelopes: BoundedVec::new(vec![envelope.clone()]).unwrap(),
        });
        // A killed node sends no close: its clients notice by the wait.
        match tokio::time::timeout(UNANSWERED, connection.request(&request)).await {
            Ok(Ok(Response::Appended(outcomes)))
                if matches!(outcomes.as_slice(), [AppendOutcome::Stored(_)]) =>
            {
                seq += 1;
            }
            _ => return (seq, Some(envelope)),
        }
    }
}

/// A relay node killed (SIGKILL) while its clients append: each client
/// sends the envelope that got no answer again through the other node,
/// and gets it stored, or `duplicate` at the position it took when the
/// dead node had published it. Nothing acknowledged is lost; the killed
/// node, started again, catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_left_unanswered_by_a_killed_node_is_a_duplicate_through_the_other() {
    let nats = NatsCluster::start(3);
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let b = spawn_node(&nats, dir_b.path(), "b");
    let users: Vec<User> = (0..8).map(|n| User::in_domain(41, n)).collect();
    let mut next_seq = vec![1u64; users.len()];
    let mut duplicates = 0;
    for round in 0..5 {
        let a = spawn_node(&nats, dir_a.path(), "a");
        let writers: Vec<_> = users
            .iter()
            .zip(&next_seq)
            .map(|(user, &seq)| {
                tokio::spawn(append_until_dead(
                    (a.addr, a.fingerprint),
                    user.device(0),
                    seq,
                ))
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        a.kill9();
        for (n, writer) in writers.into_iter().enumerate() {
            let (seq, unanswered) = writer.await.unwrap();
            next_seq[n] = seq;
            let Some(envelope) = unanswered else { continue };
            let device = users[n].device(0);
            let through_b =
                cairn_testkit::raw::try_connect_to(b.addr, b.fingerprint, &device, None)
                    .await
                    .unwrap();
            match append(&through_b, vec![envelope]).await.as_slice() {
                [AppendOutcome::Stored(ack)] => assert_eq!(ack.position, seq),
                [AppendOutcome::Duplicate(ack)] => {
                    assert_eq!(ack.position, seq);
                    duplicates += 1;
                }
                other => panic!("round {round}, client {n}: {other:?}"),
            }
            next_seq[n] = seq + 1;
        }
        if duplicates > 0 {
            break;
        }
    }
    assert!(
        duplicates > 0,
        "no kill left a published append unanswered in 5 rounds"
    );
    // Every client's stream runs 1..n on B, and on A once it is back.
    let a = spawn_node(&nats, dir_a.path(), "a");
    for relay in [(b.addr, b.fingerprint), (a.addr, a.fingerprint)] {
        for (user, &next) in users.iter().zip(&next_seq) {
            let own = cairn_testkit::raw::try_connect_to(relay.0, relay.1, &user.device(0), None)
                .await
                .unwrap();
            let stream = StreamId::new(user.id, Scope::Private);
            assert_eq!(
                positions(&read(&own, stream, 0).await),
                (1..next).collect::<Vec<_>>()
            );
            own.close().await;
        }
    }
    drop(a);
    drop(b);
}

/// Runs `cairn-relay ARGS --data-dir DIR` (an operator command against the
/// running node on `dir`); its stdout.
async fn operate(dir: &std::path::Path, args: &[&str]) -> String {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cairn-relay"));
    command.args(args).arg("--data-dir").arg(dir);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        output.status.success(),
        "cairn-relay {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A device the operator bans through one node is disconnected from the
/// other and refused by both; lifting the ban through the other node lets
/// it back in everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_banned_through_one_node_is_refused_by_every_node() {
    let nats = NatsCluster::start(3);
    let (a, b) = (node(&nats, "a").await, node(&nats, "b").await);
    let mallory = User::new(6);
    let device = mallory.device(1);
    let on_b = b.connect(&device).await;
    let id = device.id.to_text();
    operate(a.dir.path(), &["ban", &id]).await;
    assert_closed_with(on_b.quic(), ErrorCode::DEVICE_BANNED).await;
    for relay in [&a, &b] {
        match relay.try_connect(&device, None).await {
            Err(cairn_client::ConnectError::Refused(e)) => {
                assert_eq!(e.code, ErrorCode::DEVICE_BANNED);
            }
            other => panic!("a banned device connected: {other:?}"),
        }
    }
    operate(b.dir.path(), &["unban", &id]).await;
    for relay in [&a, &b] {
        let mut connected = relay.try_connect(&device, None).await;
        // The other node applies the lifting as it follows the log.
        for _ in 0..50 {
            if connected.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            connected = relay.try_connect(&device, None).await;
        }
        connected
            .expect("the ban was lifted on every node")
            .close()
            .await;
    }
}

/// A node of a cluster refuses to import an export: its data comes from
/// the log only.
#[test]
fn a_cluster_node_refuses_to_import() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cairn-relay"))
        .args(["import", "--from", "export.jsonl", "--data-dir"])
        .arg(dir.path())
        .env("CAIRN_RELAY_STORAGE__BACKEND", "jetstream")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("does not import"), "{stderr}");
    assert!(!dir.path().join(cairn_relay::config::DATABASE_FILE).exists());
}
