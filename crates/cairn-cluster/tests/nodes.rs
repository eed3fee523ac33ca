//! Relay nodes' stores on a real NATS JetStream cluster on loopback: what
//! one node writes, every node applies, in the same order, with the same
//! outcomes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::time::Duration;

use cairn_cluster::{ClusterStore, JetStreamConfig};
use cairn_store::{Config, ItemOutcome, StatementOutcome, Store};
use cairn_testkit::nats::NatsCluster;
use cairn_testkit::{User, WAIT};
use cairn_wire::{Scope, StreamId};

fn config(nats: &NatsCluster, node: &str) -> JetStreamConfig {
    JetStreamConfig {
        urls: nats.urls(),
        credentials: None,
        stream: "CAIRN_LOG".into(),
        replicas: nats.size().min(3),
        log_retention: Duration::from_secs(3600),
        node_id: node.into(),
        request_timeout: Duration::from_secs(15),
    }
}

fn fast() -> Config {
    Config {
        durable: false,
        ..Config::default()
    }
}

async fn node(nats: &NatsCluster, dir: &Path, name: &str) -> ClusterStore {
    let path = dir.join(format!("{name}.redb"));
    match ClusterStore::open(&path, fast(), config(nats, name)).await {
        Ok(node) => node,
        Err(e) => panic!(
            "{e}\nthe servers' logs:\n{}\n{}\n{}",
            nats.log(0),
            nats.log(1),
            nats.log(2)
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_node_stores_another_delivers_live_in_order_and_both_copies_agree() {
    let nats = NatsCluster::start(3);
    let dir = tempfile::tempdir().unwrap();
    let a = node(&nats, dir.path(), "a").await;
    let b = node(&nats, dir.path(), "b").await;
    assert_eq!(a.log_id(), b.log_id(), "one log, one id");

    let alice = User::new(1);
    let phone = alice.device(1);
    let laptop = alice.device(2);
    for device in [&phone, &laptop] {
        let outcome = a
            .register_device(alice.certify(device.id, 1))
            .await
            .unwrap();
        assert_eq!(outcome, StatementOutcome::Applied);
    }
    let mut live = b.subscribe();
    // Appends through both nodes, in turn.
    let stream = StreamId::new(alice.id, Scope::Private);
    for seq in 1..=20u64 {
        let (through, device) = if seq % 2 == 0 {
            (&a, &phone)
        } else {
            (&b, &laptop)
        };
        let envelope = device.envelope(seq.div_ceil(2), Scope::Private, &seq.to_le_bytes());
        let outcomes = through.append(vec![envelope]).await.unwrap();
        assert!(
            matches!(outcomes[..], [ItemOutcome::Stored { position, .. }] if position == seq),
            "{outcomes:?}"
        );
    }
    // B's live feed carried every entry, gapless and in order.
    let mut seen = Vec::new();
    while seen.len() < 20 {
        let batch = tokio::time::timeout(WAIT, live.recv())
            .await
            .unwrap()
            .unwrap();
        seen.extend(
            batch
                .iter()
                .filter(|c| c.stream == stream)
                .map(|c| c.position),
        );
    }
    assert_eq!(seen, (1..=20).collect::<Vec<_>>());
    // A write through A is read through B at once.
    let read = b.read_stream(stream, 0, 100).await.unwrap();
    assert_eq!(read.head, 20);
    assert_eq!(a.applied(), b.applied());
    let (state_a, state_b) = (dump(&a).await, dump(&b).await);
    assert_eq!(state_a, state_b);
    assert!(a.verify().await.unwrap().is_ok());
    assert!(b.verify().await.unwrap().is_ok());
}

/// A client whose append got no answer sends it again through the other
/// node: it is a duplicate at the position it took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_sent_again_through_the_other_node_is_a_duplicate_at_its_position() {
    let nats = NatsCluster::start(1);
    let dir = tempfile::tempdir().unwrap();
    let a = node(&nats, dir.path(), "a").await;
    let b = node(&nats, dir.path(), "b").await;
    let alice = User::new(2);
    let phone = alice.device(1);
    a.register_device(alice.certify(phone.id, 1)).await.unwrap();
    let envelope = phone.envelope(1, Scope::Friends, b"once");
    let first = a.append(vec![envelope.clone()]).await.unwrap();
    let again = b.append(vec![envelope.clone()]).await.unwrap();
    let ItemOutcome::Stored { id, position } = first[0] else {
        panic!("{first:?}");
    };
    assert_eq!(again, [ItemOutcome::Duplicate { id, position }]);
}

/// A node that stops and starts again applies what it missed, from its
/// last applied record; a new node applies the whole log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_catches_up_from_its_last_applied_record_and_a_new_node_from_the_start() {
    let nats = NatsCluster::start(1);
    let dir = tempfile::tempdir().unwrap();
    let a = node(&nats, dir.path(), "a").await;
    let b = node(&nats, dir.path(), "b").await;
    let alice = User::new(3);
    let phone = alice.device(1);
    a.register_device(alice.certify(phone.id, 1)).await.unwrap();
    a.append(vec![phone.envelope(1, Scope::Private, b"1")])
        .await
        .unwrap();
    b.close().await;
    for seq in 2..=5 {
        a.append(vec![phone.envelope(seq, Scope::Private, b"n")])
            .await
            .unwrap();
    }
    let b = node(&nats, dir.path(), "b").await;
    assert_eq!(b.applied(), a.applied());
    let c = node(&nats, dir.path(), "c").await;
    assert_eq!(c.applied(), a.applied());
    let stream = StreamId::new(alice.id, Scope::Private);
    for n in [&a, &b, &c] {
        assert_eq!(n.stream_head(stream).await.unwrap(), 5);
    }
    assert_eq!(dump(&a).await, dump(&b).await);
    assert_eq!(dump(&a).await, dump(&c).await);
}

/// A copy of another cluster's log is refused, with what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_another_clusters_log_is_refused() {
    let first = NatsCluster::start(1);
    let dir = tempfile::tempdir().unwrap();
    let a = node(&first, dir.path(), "a").await;
    let alice = User::new(4);
    a.register_device(alice.certify(alice.device(1).id, 1))
        .await
        .unwrap();
    a.close().await;
    let second = NatsCluster::start(1);
    let refused =
        ClusterStore::open(&dir.path().join("a.redb"), fast(), config(&second, "a")).await;
    let error = refused.expect_err("refused").to_string();
    assert!(error.contains("not of the cluster's log"), "{error}");
}

/// Every stream's entries and every statement, as text.
async fn dump(store: &ClusterStore) -> String {
    let mut out = String::new();
    for head in store.all_streams().await.unwrap() {
        let read = store.read_stream(head.stream, 0, usize::MAX).await.unwrap();
        out += &format!("{head:?}\n");
        for entry in read.entries {
            out += &format!("  {} {:?}\n", entry.position, entry.envelope.id());
        }
    }
    out += &format!("{:?}\n", store.statements().await.unwrap());
    out
}

/// A new node seeded from a backup of another node's copy starts from the
/// record the backup had applied and applies only the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_seeded_from_a_backup_applies_the_log_after_it() {
    let nats = NatsCluster::start(1);
    let dir = tempfile::tempdir().unwrap();
    let a = node(&nats, dir.path(), "a").await;
    let alice = User::new(5);
    let phone = alice.device(1);
    a.register_device(alice.certify(phone.id, 1)).await.unwrap();
    for seq in 1..=3 {
        a.append(vec![phone.envelope(seq, Scope::Friends, b"before")])
            .await
            .unwrap();
    }
    let seed = dir.path().join("seed.redb");
    a.backup(&seed).await.unwrap();
    let at_backup = a.applied();
    for seq in 4..=6 {
        a.append(vec![phone.envelope(seq, Scope::Friends, b"after")])
            .await
            .unwrap();
    }
    std::fs::rename(&seed, dir.path().join("c.redb")).unwrap();
    let c = node(&nats, dir.path(), "c").await;
    assert_eq!(c.log_id(), a.log_id());
    assert_eq!(c.applied(), a.applied());
    assert!(c.applied() > at_backup);
    // It applied only what followed the backup: its copy's writer stored
    // the three envelopes appended after it, not the log from its start.
    assert_eq!(c.commit_counters().envelopes, 3);
    assert_eq!(dump(&a).await, dump(&c).await);
    assert!(c.verify().await.unwrap().is_ok());
}

/// async-nats makes an ordered consumer that failed before it delivered
/// anything again from the log's first record, not from the record it was
/// asked to start at: a restarted node whose consumer is deleted under it
/// goes on from where it was, and applies nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_whose_consumer_is_deleted_goes_on_from_where_it_was() {
    use futures_util::TryStreamExt;

    let nats = NatsCluster::start(1);
    let dir = tempfile::tempdir().unwrap();
    let a = node(&nats, dir.path(), "a").await;
    let alice = User::new(6);
    let phone = alice.device(1);
    a.register_device(alice.certify(phone.id, 1)).await.unwrap();
    for seq in 1..=3 {
        a.append(vec![phone.envelope(seq, Scope::Private, b"before")])
            .await
            .unwrap();
    }
    a.close().await;
    let a = node(&nats, dir.path(), "a").await;
    let applied = a.applied();
    assert!(applied >= 4, "{applied}");

    let client = async_nats::connect(nats.urls().join(",")).await.unwrap();
    let log = async_nats::jetstream::new(client)
        .get_stream("CAIRN_LOG")
        .await
        .unwrap();
    let consumers: Vec<String> = log.consumer_names().try_collect().await.unwrap();
    assert!(!consumers.is_empty(), "the node follows the log");
    for consumer in &consumers {
        log.delete_consumer(consumer).await.unwrap();
    }

    let appended = tokio::time::timeout(
        WAIT,
        a.append(vec![phone.envelope(4, Scope::Private, b"after")]),
    )
    .await
    .expect("the node still applies the log")
    .unwrap();
    assert!(
        matches!(appended[..], [ItemOutcome::Stored { .. }]),
        "{appended:?}"
    );
    assert_eq!(a.applied(), applied + 1, "nothing applied twice");
    let stream = StreamId::new(alice.id, Scope::Private);
    assert_eq!(a.stream_head(stream).await.unwrap(), 4);
    assert!(a.verify().await.unwrap().is_ok());
}
