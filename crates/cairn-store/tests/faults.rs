//! Injected storage faults: the store on a file whose reads, writes and
//! syncs fail on a random schedule (`cairn_store::backend::Faults`: an I/O
//! error, a full disk, a write torn in half).
//!
//! Invariants, over many schedules:
//! - an acknowledged append is never lost, before or after reopening;
//! - a failed commit fails every caller in it (`StorageFull` for a full
//!   disk) and stores nothing: sending the same envelopes again stores
//!   them (a failed sync may have reached the disk, so there a retry may
//!   find them already stored, at a consistent position);
//! - reads keep working while the disk is full (writes that would grow
//!   the file fail, as on a real full disk); a failing device (I/O errors
//!   on every write or sync) may fail reads too until it heals, since
//!   opening the file again needs a write;
//! - once faults stop, appends succeed again without a restart;
//! - `verify` stays clean.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::cast_possible_truncation
)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use cairn_store::backend::{Failure, Faults, Operation, Rule, SizeLimit};
use cairn_store::{AppendError, Config, ItemOutcome, RedbStore, Store};
use cairn_wire::{Envelope, EnvelopeId, Scope, StreamId};
use common::{Device, User, register};
use proptest::prelude::*;
use proptest::strategy::Strategy;

const DEVICES: usize = 2;

#[derive(Debug, Clone)]
enum Step {
    /// A batch of `count` envelopes from one device.
    Append { device: usize, count: u64 },
    /// Faults from now on.
    Fault {
        operation: Operation,
        rule: Rule,
        failure: Failure,
    },
    /// No more faults.
    Heal,
    /// A read of each device's stream head.
    Read,
}

fn step() -> impl Strategy<Value = Step> {
    let operation = prop_oneof![
        Just(Operation::Read),
        Just(Operation::Write),
        Just(Operation::Sync)
    ];
    let rule = prop_oneof![Just(Rule::Always), (1u64..8).prop_map(Rule::Once)];
    let failure = prop_oneof![Just(Failure::Io), Just(Failure::Full), Just(Failure::Short)];
    prop_oneof![
        4 => (0..DEVICES, 1u64..4).prop_map(|(device, count)| Step::Append { device, count }),
        2 => (operation, rule, failure).prop_map(|(operation, rule, failure)| Step::Fault {
            operation,
            rule,
            failure
        }),
        1 => Just(Step::Heal),
        1 => Just(Step::Read),
    ]
}

/// What the test knows the store must hold.
struct Ledger {
    user: User,
    devices: Vec<Device>,
    next_seq: Vec<u64>,
    /// A batch whose commit failed, per device: sent again first.
    failed: Vec<Option<Vec<Envelope>>>,
    acked: HashMap<EnvelopeId, u64>,
    /// Whether a sync fault may have struck the failed batch.
    sync_faulted: bool,
    /// Commits that failed.
    failed_commits: u64,
    /// Whether a fault in force may fail reads: any but a full disk.
    reads_fail: bool,
}

impl Ledger {
    fn batch(&mut self, device: usize, count: u64) -> Vec<Envelope> {
        if let Some(batch) = self.failed[device].take() {
            return batch;
        }
        let first = self.next_seq[device];
        self.next_seq[device] += count;
        (first..first + count)
            .map(|seq| {
                self.devices[device].envelope(seq, Scope::Private, format!("{seq}").as_bytes())
            })
            .collect()
    }

    fn stream(&self) -> StreamId {
        StreamId::new(self.user.id, Scope::Private)
    }
}

async fn append(store: &RedbStore, ledger: &mut Ledger, device: usize, batch: Vec<Envelope>) {
    match store.append(batch.clone()).await {
        Ok(outcomes) => {
            for outcome in outcomes {
                match outcome {
                    ItemOutcome::Stored { id, position } => {
                        assert!(ledger.acked.insert(id, position).is_none(), "{id} twice");
                    }
                    ItemOutcome::Duplicate { id, position } => {
                        assert!(
                            ledger.sync_faulted,
                            "a failed commit stored {id} though no sync failed"
                        );
                        if let Some(held) = ledger.acked.insert(id, position) {
                            assert_eq!(held, position, "{id} moved");
                        }
                    }
                    ItemOutcome::Refused(refusal) => panic!("refused: {refusal:?}"),
                }
            }
        }
        Err(AppendError::StorageFull | AppendError::Backend(_)) => {
            ledger.failed_commits += 1;
            ledger.failed[device] = Some(batch);
        }
        Err(other) => panic!("unexpected failure: {other}"),
    }
}

/// Runs one schedule; the faults injected, commits failed and appends
/// acknowledged.
async fn run(schedule: Vec<Step>) -> (u64, u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("faults.redb");
    let faults = Faults::new();
    let config = Config {
        faults: Some(Arc::clone(&faults)),
        ..Config::default()
    };
    let store = RedbStore::open_with(&path, config).unwrap();
    let user = User::new(1);
    let devices: Vec<Device> = (0..DEVICES as u32).map(|n| user.device(n)).collect();
    for device in &devices {
        register(&store, &user, device).await;
    }
    let mut ledger = Ledger {
        user,
        devices,
        next_seq: vec![1; DEVICES],
        failed: vec![None; DEVICES],
        acked: HashMap::new(),
        sync_faulted: false,
        failed_commits: 0,
        reads_fail: false,
    };
    for step in schedule {
        match step {
            Step::Append { device, count } => {
                let batch = ledger.batch(device, count);
                append(&store, &mut ledger, device, batch).await;
            }
            Step::Fault {
                operation,
                rule,
                failure,
            } => {
                ledger.sync_faulted |= operation == Operation::Sync;
                ledger.reads_fail |= !(operation == Operation::Write && failure == Failure::Full);
                faults.set(operation, rule, failure);
            }
            Step::Heal => {
                faults.heal();
                ledger.reads_fail = false;
            }
            Step::Read => {
                let head = store.stream_head(ledger.stream()).await;
                if !ledger.reads_fail {
                    let head = head.expect("reads work while the disk is full");
                    assert!(head >= ledger.acked.len() as u64, "the head went back");
                }
            }
        }
    }
    // Faults stop: what failed goes in, and so does more, without a restart.
    faults.heal();
    for device in 0..DEVICES {
        let batch = ledger.batch(device, 1);
        append(&store, &mut ledger, device, batch).await;
        assert!(ledger.failed[device].is_none(), "still failing once healed");
        let batch = ledger.batch(device, 1);
        append(&store, &mut ledger, device, batch).await;
        assert!(ledger.failed[device].is_none(), "still failing once healed");
    }
    check(&store, &ledger).await;
    store.close().await;
    let store = RedbStore::open(&path).unwrap();
    check(&store, &ledger).await;
    store.close().await;
    let acked = ledger.acked.len() as u64;
    (faults.injected(), ledger.failed_commits, acked)
}

async fn check(store: &RedbStore, ledger: &Ledger) {
    for (id, position) in &ledger.acked {
        let found = store.envelope(*id).await.unwrap();
        let found = found.unwrap_or_else(|| panic!("acknowledged {id} is lost"));
        assert_eq!(found.position, *position, "{id} moved");
    }
    assert_eq!(
        store.stream_head(ledger.stream()).await.unwrap(),
        ledger.acked.len() as u64,
        "positions are 1..n with nothing else"
    );
    let report = store.verify().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
}

/// What the schedules came to, summed: so that the test fails if they
/// stop injecting anything.
#[derive(Debug, Default)]
struct Totals {
    injected: u64,
    failed_commits: u64,
    acknowledged: u64,
}

#[test]
fn faults_lose_nothing_acknowledged_and_heal_without_a_restart() {
    use proptest::test_runner::{Config as RunnerConfig, TestRunner};

    const CASES: u32 = 64;
    let totals = std::sync::Mutex::new(Totals::default());
    let mut runner = TestRunner::new(RunnerConfig {
        cases: CASES,
        ..RunnerConfig::default()
    });
    let schedules = proptest::collection::vec(step(), 1..24);
    runner
        .run(&schedules, |schedule| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let (injected, failed, acked) = runtime.block_on(run(schedule));
            let mut totals = totals.lock().unwrap();
            totals.injected += injected;
            totals.failed_commits += failed;
            totals.acknowledged += acked;
            Ok(())
        })
        .unwrap();
    let totals = totals.into_inner().unwrap();
    println!("{CASES} schedules: {totals:?}");
    assert!(totals.injected > 0 && totals.failed_commits > 0 && totals.acknowledged > 0);
}

/// A size limit fails commits as a full disk does (`StorageFull`), keeps
/// reads going, and a higher limit lets writes in again at once.
#[tokio::test]
async fn a_full_database_refuses_appends_as_storage_full_and_recovers_when_room_returns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.redb");
    let limit = Arc::new(SizeLimit::new(None));
    let config = Config {
        size_limit: Arc::clone(&limit),
        ..Config::default()
    };
    let store = RedbStore::open_with(&path, config).unwrap();
    let user = User::new(1);
    let device = user.device(0);
    register(&store, &user, &device).await;
    let len = std::fs::metadata(&path).unwrap().len();
    limit.set(Some(len));
    let payload = vec![7u8; 16 * 1024];
    let mut seq = 1;
    let mut stored = 0;
    let failed = loop {
        let envelope = device.envelope(seq, Scope::Private, &payload);
        match store.append(vec![envelope.clone()]).await {
            Ok(_) => {
                stored += 1;
                seq += 1;
                assert!(stored < 10_000, "the limit never bit");
            }
            Err(AppendError::StorageFull) => break envelope,
            Err(other) => panic!("a full database failed as {other}"),
        }
    };
    let stream = StreamId::new(user.id, Scope::Private);
    assert_eq!(store.stream_head(stream).await.unwrap(), stored);
    limit.set(None);
    let outcomes = store.append(vec![failed]).await.unwrap();
    assert!(
        matches!(outcomes[..], [ItemOutcome::Stored { position, .. }] if position == stored + 1)
    );
    assert!(store.verify().await.unwrap().is_ok());
    store.close().await;
}
