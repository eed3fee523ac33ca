//! Writes from a replicated log (`spec/cluster.md`): copies that apply the
//! same log hold the same state whatever their groups, that state is what
//! one store reaches through its own API, the last sequence applied commits
//! with the writes, and a group that would skip or repeat records changes
//! nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

mod common;

use std::sync::Arc;

use cairn_store::backend::{Failure, Faults, Operation, Rule};
use cairn_store::{
    Config, Cutoffs, ItemOutcome, LogAnswer, LogWrite, OpenError, OutOfOrder, Quota, RedbStore,
    StatementOutcome, Store, adopt_log,
};
use cairn_wire::{Cursor, LogId, Scope, StreamId};
use common::{Device, User, fast, temp_store};
use proptest::prelude::*;

const USERS: usize = 3;
const DEVICES: usize = 2;

/// One step of a generated log, by small indexes into the cast.
#[derive(Debug, Clone)]
enum Step {
    Append {
        u: usize,
        d: usize,
        count: usize,
        scope: u8,
    },
    Certify {
        u: usize,
        d: usize,
        when: u64,
    },
    Revoke {
        u: usize,
        d: usize,
        when: u64,
    },
    Grant {
        u: usize,
        friend: usize,
        when: u64,
    },
    Unfriend {
        u: usize,
        friend: usize,
        when: u64,
    },
    Ack {
        u: usize,
        d: usize,
        scope: u8,
        position: u64,
    },
    Remove {
        u: usize,
        when: u64,
    },
    Expire {
        before: u64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let u = 0..USERS;
    let d = 0..DEVICES;
    let when = 1u64..50;
    prop_oneof![
        6 => (u.clone(), d.clone(), 1usize..4, 0u8..4)
            .prop_map(|(u, d, count, scope)| Step::Append { u, d, count, scope }),
        2 => (u.clone(), d.clone(), when.clone()).prop_map(|(u, d, when)| Step::Certify { u, d, when }),
        1 => (u.clone(), d.clone(), when.clone()).prop_map(|(u, d, when)| Step::Revoke { u, d, when }),
        1 => (u.clone(), u.clone(), when.clone())
            .prop_map(|(u, friend, when)| Step::Grant { u, friend, when }),
        1 => (u.clone(), u.clone(), when.clone())
            .prop_map(|(u, friend, when)| Step::Unfriend { u, friend, when }),
        1 => (u.clone(), d, 0u8..4, 0u64..6)
            .prop_map(|(u, d, scope, position)| Step::Ack { u, d, scope, position }),
        1 => (u, when.clone()).prop_map(|(u, when)| Step::Remove { u, when: when * 1000 }),
        1 => when.prop_map(|before| Step::Expire { before }),
    ]
}

struct Cast {
    users: Vec<User>,
    devices: Vec<Vec<Device>>,
}

impl Cast {
    fn new() -> Self {
        let users: Vec<User> = (0..USERS as u32).map(|n| User::in_domain(21, n)).collect();
        let devices = users
            .iter()
            .map(|u| (0..DEVICES as u32).map(|d| u.device(d)).collect())
            .collect();
        Self { users, devices }
    }

    fn scope(&self, selector: u8, u: usize) -> Scope {
        match selector % 4 {
            0 => Scope::Private,
            1 => Scope::Friends,
            2 => Scope::Direct(self.users[u].id),
            _ => Scope::Direct(self.users[(u + 1) % USERS].id),
        }
    }

    /// The log the steps make: every device certified first, then the
    /// steps, with each device's envelopes numbered in order.
    fn log(&self, steps: &[Step]) -> Vec<LogWrite> {
        let mut next_seq = [[1u64; DEVICES]; USERS];
        let mut log = vec![LogWrite::Genesis];
        for (u, user) in self.users.iter().enumerate() {
            for device in &self.devices[u] {
                log.push(LogWrite::Certificate(user.certify(device.id, 1)));
            }
        }
        for step in steps {
            log.push(match *step {
                Step::Append { u, d, count, scope } => {
                    let envelopes = (0..count)
                        .map(|i| {
                            let seq = next_seq[u][d];
                            next_seq[u][d] += 1;
                            self.devices[u][d].envelope(seq, self.scope(scope, u), &[i as u8; 24])
                        })
                        .collect();
                    LogWrite::Append {
                        envelopes,
                        quota: Quota::UNLIMITED,
                    }
                }
                Step::Certify { u, d, when } => {
                    LogWrite::Certificate(self.users[u].certify(self.devices[u][d].id, when))
                }
                Step::Revoke { u, d, when } => {
                    LogWrite::DeviceRevocation(self.users[u].revoke_at(self.devices[u][d].id, when))
                }
                Step::Grant { u, friend, when } => {
                    LogWrite::Grant(self.users[u].grant_at(self.users[friend].id, when))
                }
                Step::Unfriend { u, friend, when } => LogWrite::FriendRevocation(
                    self.users[u].unfriend_at(self.users[friend].id, when),
                ),
                Step::Ack {
                    u,
                    d,
                    scope,
                    position,
                } => LogWrite::Ack(
                    self.devices[u][d].id,
                    Cursor {
                        stream: StreamId::new(self.users[u].id, self.scope(scope, u)),
                        position,
                    },
                ),
                Step::Remove { u, when } => LogWrite::RemoveUser(self.users[u].id, when),
                Step::Expire { before } => LogWrite::Expire(
                    Cutoffs {
                        friends_before_ms: Some(cairn_testkit::ident::ENVELOPE_EPOCH_MS + before),
                        direct_before_ms: None,
                    },
                    u64::MAX,
                ),
            });
        }
        log
    }
}

/// The same write through the store's own API, answered as the log would.
async fn direct(store: &RedbStore, write: LogWrite) -> LogAnswer {
    match write {
        LogWrite::Genesis => LogAnswer::Genesis,
        LogWrite::Append { envelopes, .. } => {
            LogAnswer::Appended(store.append(envelopes).await.unwrap())
        }
        LogWrite::Certificate(c) => LogAnswer::Statement(store.register_device(c).await.unwrap()),
        LogWrite::DeviceRevocation(r) => {
            LogAnswer::Statement(store.revoke_device(r).await.unwrap())
        }
        LogWrite::Grant(g) => LogAnswer::Statement(store.grant_friend(g).await.unwrap()),
        LogWrite::FriendRevocation(r) => {
            LogAnswer::Statement(store.revoke_friend(r).await.unwrap())
        }
        LogWrite::Ack(device, cursor) => LogAnswer::Acked(store.ack(device, cursor).await.unwrap()),
        LogWrite::RemoveUser(user, when) => {
            LogAnswer::Removed(store.remove_user(user, when).await.unwrap())
        }
        LogWrite::Expire(cutoffs, budget) => {
            LogAnswer::Expired(store.expire(cutoffs, budget).await.unwrap())
        }
        other => panic!("not generated: {other:?}"),
    }
}

/// Applies `log` to `store` in groups whose sizes `cuts` picks.
async fn apply_in_groups(store: &RedbStore, log: &[LogWrite], cuts: &[usize]) -> Vec<LogAnswer> {
    let mut answers = Vec::new();
    let mut at = 0;
    let mut cut = cuts.iter().cycle();
    while at < log.len() {
        let size = (*cut.next().unwrap()).clamp(1, log.len() - at);
        let group = log[at..at + size].to_vec();
        let applied = store
            .apply_log(at as u64 + 1, group)
            .await
            .unwrap()
            .unwrap();
        answers.extend(applied);
        at += size;
    }
    answers
}

/// Everything a client or an export could see of a store.
async fn state(store: &RedbStore) -> String {
    let mut out = String::new();
    for head in store.all_streams().await.unwrap() {
        let read = store.read_stream(head.stream, 0, usize::MAX).await.unwrap();
        out += &format!("{head:?} floor {} {:?}\n", read.floor, read.expired);
        for entry in read.entries {
            out += &format!("  {} {:?}\n", entry.position, entry.envelope.id());
        }
    }
    out += &format!(
        "{:?}\n{:?}\n",
        store.statements().await.unwrap(),
        store.usage().await.unwrap()
    );
    let report = store.verify().await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    out
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Two copies apply one log in different groups, and a third store
    /// takes the same writes through its API: the same answers, the same
    /// state, and each copy records the whole log as applied.
    #[test]
    fn copies_that_apply_one_log_agree_with_each_other_and_with_one_store(
        steps in prop::collection::vec(step(), 1..40),
        cuts_a in prop::collection::vec(1usize..6, 1..4),
        cuts_b in prop::collection::vec(1usize..9, 1..4),
    ) {
        let cast = Cast::new();
        let log = cast.log(&steps);
        runtime().block_on(async {
            let (_a_dir, a) = temp_store(fast());
            let (_b_dir, b) = temp_store(fast());
            let (_c_dir, single) = temp_store(fast());
            let answers_a = apply_in_groups(&a, &log, &cuts_a).await;
            let answers_b = apply_in_groups(&b, &log, &cuts_b).await;
            let mut answers_single = Vec::new();
            for write in log.iter().cloned() {
                answers_single.push(direct(&single, write).await);
            }
            assert_eq!(answers_a, answers_b);
            assert_eq!(answers_a, answers_single);
            let state_a = state(&a).await;
            assert_eq!(state_a, state(&b).await);
            assert_eq!(state_a, state(&single).await);
            assert_eq!(a.log_applied().await.unwrap(), log.len() as u64);
            assert_eq!(b.log_applied().await.unwrap(), log.len() as u64);
            assert_eq!(single.log_applied().await.unwrap(), 0);
        });
    }
}

#[tokio::test]
async fn a_group_that_would_skip_or_repeat_records_is_refused_and_changes_nothing() {
    let cast = Cast::new();
    let log = cast.log(&[Step::Append {
        u: 0,
        d: 0,
        count: 2,
        scope: 0,
    }]);
    let (_dir, store) = temp_store(fast());
    store
        .apply_log(1, log[..3].to_vec())
        .await
        .unwrap()
        .unwrap();
    let before = state(&store).await;
    let append = log[log.len() - 1].clone();
    for first in [0, 1, 3, 5] {
        let refused = store.apply_log(first, vec![append.clone()]).await.unwrap();
        assert_eq!(refused, Err(OutOfOrder { applied: 3, first }));
    }
    let empty = store.apply_log(4, vec![]).await.unwrap();
    assert_eq!(
        empty,
        Err(OutOfOrder {
            applied: 3,
            first: 4
        })
    );
    assert_eq!(state(&store).await, before);
    assert_eq!(store.log_applied().await.unwrap(), 3);
    // The next record in order is taken.
    let answers = store
        .apply_log(4, log[3..].to_vec())
        .await
        .unwrap()
        .unwrap();
    let (last, statements) = answers.split_last().unwrap();
    assert!(
        statements
            .iter()
            .all(|a| *a == LogAnswer::Statement(StatementOutcome::Applied)),
        "{answers:?}"
    );
    let LogAnswer::Appended(outcomes) = last else {
        panic!("{answers:?}");
    };
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, ItemOutcome::Stored { .. }))
    );
    assert_eq!(store.log_applied().await.unwrap(), log.len() as u64);
}

#[tokio::test]
async fn the_last_record_applied_survives_a_restart_and_the_copy_resumes_after_it() {
    let cast = Cast::new();
    let log = cast.log(&[
        Step::Append {
            u: 0,
            d: 0,
            count: 3,
            scope: 1,
        },
        Step::Append {
            u: 1,
            d: 1,
            count: 2,
            scope: 0,
        },
    ]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cairn.redb");
    let store = RedbStore::open(&path).unwrap();
    store
        .apply_log(1, log[..5].to_vec())
        .await
        .unwrap()
        .unwrap();
    store.close().await;
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.log_applied().await.unwrap(), 5);
    let again = store.apply_log(5, log[4..5].to_vec()).await.unwrap();
    assert_eq!(
        again,
        Err(OutOfOrder {
            applied: 5,
            first: 5
        })
    );
    store
        .apply_log(6, log[5..].to_vec())
        .await
        .unwrap()
        .unwrap();
    let heads: Vec<u64> = store
        .all_streams()
        .await
        .unwrap()
        .iter()
        .map(|h| h.head)
        .collect();
    assert_eq!(heads.iter().sum::<u64>(), 5, "{heads:?}");
    assert_eq!(store.log_applied().await.unwrap(), log.len() as u64);
}

#[tokio::test]
async fn a_failed_commit_applies_no_record_and_leaves_the_last_applied_where_it_was() {
    let cast = Cast::new();
    let log = cast.log(&[Step::Append {
        u: 2,
        d: 0,
        count: 2,
        scope: 1,
    }]);
    let faults = Faults::new();
    let config = Config {
        faults: Some(Arc::clone(&faults)),
        ..Config::default()
    };
    let (_dir, store) = temp_store(config);
    store
        .apply_log(1, log[..7].to_vec())
        .await
        .unwrap()
        .unwrap();
    let before = state(&store).await;
    faults.set(Operation::Write, Rule::Once(1), Failure::Io);
    assert!(store.apply_log(8, log[7..].to_vec()).await.is_err());
    assert_eq!(faults.injected(), 1);
    assert_eq!(store.log_applied().await.unwrap(), 7);
    assert_eq!(state(&store).await, before);
    let answers = store
        .apply_log(8, log[7..].to_vec())
        .await
        .unwrap()
        .unwrap();
    let LogAnswer::Appended(outcomes) = &answers[0] else {
        panic!("{answers:?}");
    };
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, ItemOutcome::Stored { .. })),
        "{outcomes:?}"
    );
    assert_eq!(store.log_applied().await.unwrap(), 8);
}

#[tokio::test]
async fn the_quota_of_an_append_is_the_one_its_record_carries() {
    let cast = Cast::new();
    let mut log = cast.log(&[Step::Append {
        u: 0,
        d: 1,
        count: 3,
        scope: 0,
    }]);
    let last = log.len() - 1;
    let LogWrite::Append { quota, .. } = &mut log[last] else {
        panic!("an append");
    };
    *quota = Quota {
        bytes: u64::MAX,
        envelopes: 2,
    };
    // The copy's own configuration allows everything.
    let (_dir, store) = temp_store(fast());
    let answers = store.apply_log(1, log).await.unwrap().unwrap();
    let LogAnswer::Appended(outcomes) = &answers[last] else {
        panic!("{answers:?}");
    };
    assert!(matches!(
        outcomes[..2],
        [ItemOutcome::Stored { .. }, ItemOutcome::Stored { .. }]
    ));
    assert!(
        matches!(
            outcomes[2],
            ItemOutcome::Refused(cairn_store::Refusal::QuotaExceeded)
        ),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn a_copy_takes_the_log_id_of_its_cluster_unless_it_follows_another_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cairn.redb");
    RedbStore::open(&path).unwrap().close().await;
    let cluster = LogId::from_bytes([7; 16]);
    adopt_log(&path, cluster).unwrap();
    adopt_log(&path, cluster).unwrap();
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.log_id(), cluster);
    store
        .apply_log(1, vec![LogWrite::Genesis])
        .await
        .unwrap()
        .unwrap();
    store.close().await;
    let other = LogId::from_bytes([9; 16]);
    match adopt_log(&path, other) {
        Err(OpenError::AnotherLog { ours, log, .. }) => {
            assert_eq!((ours, log), (cluster, other));
        }
        wrong => panic!("{wrong:?}"),
    }
    assert_eq!(RedbStore::open(&path).unwrap().log_id(), cluster);
}

/// A copy that applied nothing of a log but holds data (a single relay's
/// database) cannot join a cluster: the other nodes would never have it.
#[tokio::test]
async fn a_copy_holding_data_from_elsewhere_does_not_take_a_clusters_log_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cairn.redb");
    let store = RedbStore::open(&path).unwrap();
    let alice = User::in_domain(21, 9);
    store
        .register_device(alice.certify(alice.device(0).id, 1))
        .await
        .unwrap();
    let own = store.log_id();
    store.close().await;
    match adopt_log(&path, LogId::from_bytes([7; 16])) {
        Err(OpenError::NotFromTheLog { .. }) => {}
        wrong => panic!("{wrong:?}"),
    }
    assert_eq!(RedbStore::open(&path).unwrap().log_id(), own);
}
