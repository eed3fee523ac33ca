//! A relay on a failing disk: its database file's writes, syncs or reads
//! fail as a schedule says (`cairn_store::backend::Faults`), under real
//! QUIC on loopback. A failed commit is refused with `internal` and
//! stores nothing; a live subscriber sees no entry of it; the next commit
//! succeeds once the disk works, without a restart; the file checks clean.
//! (A full disk, refused as `storage_full`, is `tests/selfhost.rs`.)

// Test code: a panic is the failure report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::sync::Arc;

use cairn_relay::start_on_faulty_disk;
use cairn_store::backend::{Failure, Faults, Operation, Rule};
use cairn_store::{RedbStore, Store};
use cairn_wire::*;
use support::*;
use tempfile::TempDir;

async fn start_faulty(faults: &Arc<Faults>) -> TestRelay {
    let dir = TempDir::new().unwrap();
    let config = config_in(dir.path(), |_| {});
    let handle = start_on_faulty_disk(config, Arc::clone(faults))
        .await
        .unwrap();
    TestRelay { handle, dir }
}

/// Shuts the relay down and checks its database file.
async fn check_file(relay: TestRelay) -> Vec<u64> {
    let path = relay.dir.path().join(cairn_relay::config::DATABASE_FILE);
    relay.handle.shutdown().await;
    let store = RedbStore::open(&path).unwrap();
    let report = store.verify().await.unwrap();
    assert!(
        report.is_ok(),
        "check after the faults: {:?}",
        report.problems
    );
    let heads: Vec<u64> = store
        .all_streams()
        .await
        .unwrap()
        .iter()
        .map(|h| h.head)
        .collect();
    store.close().await;
    heads
}

fn refused_code(outcomes: &[AppendOutcome]) -> ErrorCode {
    match outcomes {
        [AppendOutcome::Refused(error)] => error.code,
        other => panic!("expected one refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_failed_commit_is_refused_with_internal_stores_nothing_and_the_next_succeeds() {
    let faults = Faults::new();
    let relay = start_faulty(&faults).await;
    let alice = User::new(1);
    let laptop = alice.device(2);
    let writer = relay.connect(&laptop).await;
    let reader = relay.connect(&laptop).await;
    let stream = StreamId::new(alice.id, Scope::Private);
    let mut live = reader
        .subscribe(SubscribeRequest { stream, after: 0 })
        .await
        .unwrap();
    assert_eq!(
        append_one(&writer, laptop.envelope(1, Scope::Private, b"before")).await,
        1
    );

    // Each fault fails exactly one commit: a write of a page, a write torn
    // in half, the sync that makes the commit durable.
    let schedules = [
        (Operation::Write, Failure::Io),
        (Operation::Write, Failure::Short),
        (Operation::Sync, Failure::Io),
    ];
    let mut next_position = 2;
    for (seq, (operation, failure)) in (2u64..).zip(schedules) {
        let injected = faults.injected();
        faults.set(operation, Rule::Once(1), failure);
        let envelope = laptop.envelope(seq, Scope::Private, b"during a fault");
        let refused = append(&writer, vec![envelope.clone()]).await;
        assert_eq!(
            refused_code(&refused),
            ErrorCode::INTERNAL,
            "{operation:?} {failure:?}"
        );
        assert_eq!(faults.injected(), injected + 1, "one fault struck");

        // Reads go on, and the refused envelope is not among them: a
        // failed write never reaches the file; a failed sync may have (its
        // outcome is unknown), and then the resend is a duplicate at the
        // position it took.
        let stored = positions(&read(&writer, stream, 0).await);
        let reached_the_disk = match stored.last() {
            Some(&last) if last == next_position => true,
            Some(&last) if last == next_position - 1 => false,
            _ => panic!("positions after a failed commit: {stored:?}"),
        };
        assert!(
            !reached_the_disk || operation == Operation::Sync,
            "a failed {operation:?} stored its envelope"
        );

        // The same connection, no restart: sending it again succeeds.
        match append(&writer, vec![envelope]).await.as_slice() {
            [AppendOutcome::Stored(ack)] if !reached_the_disk => {
                assert_eq!(ack.position, next_position);
            }
            [AppendOutcome::Duplicate(ack)] if reached_the_disk => {
                assert_eq!(ack.position, next_position);
            }
            other => panic!("resend after {operation:?} {failure:?}: {other:?}"),
        }
        next_position += 1;
    }
    let last = next_position - 1;
    assert_eq!(
        positions(&read(&writer, stream, 0).await),
        (1..=last).collect::<Vec<_>>()
    );
    assert_eq!(
        positions_until(&mut live, last).await,
        (1..=last).collect::<Vec<_>>(),
        "the live subscriber saw each stored entry once, in order, and nothing else"
    );
    drop(live);
    writer.close().await;
    reader.close().await;
    assert_eq!(check_file(relay).await, vec![last]);
}

#[tokio::test]
async fn a_failing_disk_refuses_every_write_until_it_heals_then_takes_them_without_a_restart() {
    let faults = Faults::new();
    let relay = start_faulty(&faults).await;
    let alice = User::new(1);
    let laptop = alice.device(2);
    let connection = relay.connect(&laptop).await;
    let stream = StreamId::new(alice.id, Scope::Private);
    append_one(&connection, laptop.envelope(1, Scope::Private, b"before")).await;

    faults.set(Operation::Write, Rule::Always, Failure::Io);
    let envelope = laptop.envelope(2, Scope::Private, b"while failing");
    for _ in 0..3 {
        let refused = append(&connection, vec![envelope.clone()]).await;
        assert_eq!(refused_code(&refused), ErrorCode::INTERNAL);
    }
    assert!(faults.injected() >= 3);

    faults.heal();
    assert_eq!(append_one(&connection, envelope).await, 2);
    assert_eq!(
        append_one(&connection, laptop.envelope(3, Scope::Private, b"after")).await,
        3
    );
    assert_eq!(
        positions(&read(&connection, stream, 0).await),
        vec![1, 2, 3]
    );
    connection.close().await;
    assert_eq!(check_file(relay).await, vec![3]);
}
