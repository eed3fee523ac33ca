//! Crash safety: a child process ingests concurrently and prints each
//! acknowledged envelope; the parent kills it with SIGKILL at a random
//! moment, reopens the store and checks that every acknowledged envelope is
//! there at its acknowledged position, that positions are gap-free and that
//! the file opened without repair. Many times over.
//!
//! The child is this test binary run again with `CAIRN_CRASH_CHILD` set,
//! so no extra build is needed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_store::{Config, ItemOutcome, RedbStore, StatementOutcome, Store};
use cairn_wire::{Cursor, EnvelopeId, Scope, StreamId};
use common::User;

const CHILD_ENV: &str = "CAIRN_CRASH_CHILD";
const ITERATIONS: usize = 25;
const WRITERS: u32 = 16;

#[test]
fn acknowledged_envelopes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let started = Instant::now();
    let mut acked_total = 0;
    for iteration in 0..ITERATIONS {
        let acks = run_and_kill_child(&path, iteration);
        acked_total += acks.len();
        check_after_crash(&path, &acks);
    }
    assert!(acked_total > 0, "the children never acknowledged anything");
    println!(
        "{ITERATIONS} crashes, {acked_total} acknowledged envelopes checked in {:?}",
        started.elapsed()
    );
}

/// The child side, which the test above starts as its own process (an
/// ignored test, so that it never counts as a passing one).
#[test]
#[ignore = "the child process of acknowledged_envelopes_survive_sigkill, which runs it"]
fn crash_child() {
    let path = std::env::var(CHILD_ENV).expect("started by the crash test, with the store path");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(ingest_forever(Path::new(&path)));
}

/// Starts a child, kills it after a random delay, returns what it acked.
fn run_and_kill_child(path: &Path, iteration: usize) -> Vec<(EnvelopeId, u64)> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || read_acks(stdout));
    // Early kills land during open and registration, later ones mid-ingest.
    let delay = match iteration % 5 {
        0 => rand::random_range(5..60),
        _ => rand::random_range(60..400),
    };
    std::thread::sleep(Duration::from_millis(delay));
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    reader.join().unwrap()
}

/// Lines `ACK <id> <position>`; a line cut by the kill is ignored.
fn read_acks(stdout: impl std::io::Read) -> Vec<(EnvelopeId, u64)> {
    let mut acks = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let mut words = line.split_whitespace();
        if words.next() != Some("ACK") {
            continue;
        }
        let (Some(id), Some(position)) = (words.next(), words.next()) else {
            continue;
        };
        if let (Ok(id), Ok(position)) = (id.parse(), position.parse()) {
            acks.push((id, position));
        }
    }
    acks
}

fn check_after_crash(path: &Path, acks: &[(EnvelopeId, u64)]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = RedbStore::open(path).unwrap();
        assert!(!store.repaired_on_open(), "the store needed a repair");
        for (id, position) in acks {
            let found = store.envelope(*id).await.unwrap();
            let found = found.unwrap_or_else(|| panic!("acknowledged {id} is missing"));
            assert_eq!(found.position, *position, "{id} moved");
        }
        let report = store.verify().await.unwrap();
        assert!(report.is_ok(), "{:?}", report.problems);
        store.close().await;
    });
}

async fn ingest_forever(path: &Path) {
    let store = Arc::new(RedbStore::open_with(path, Config::default()).unwrap());
    let alice = User::new(1);
    let mut tasks = Vec::new();
    for n in 0..WRITERS {
        let device = alice.device(n);
        let outcome = store
            .register_device(alice.certify(device.id, 1))
            .await
            .unwrap();
        assert!(matches!(
            outcome,
            StatementOutcome::Applied | StatementOutcome::Unchanged
        ));
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let record = store.device(alice_id(), device.id).await.unwrap().unwrap();
            let mut seq = record.last_seq;
            loop {
                let scope = if n % 2 == 0 {
                    Scope::Private
                } else {
                    Scope::Friends
                };
                let count = 1 + u64::from(n % 3);
                let batch = (1..=count)
                    .map(|i| device.envelope(seq + i, scope, &[u8::try_from(n).unwrap(); 1024]))
                    .collect();
                let outcomes = store.append(batch).await.unwrap();
                report(&outcomes);
                seq += count;
                let stream = StreamId::new(alice_id(), scope);
                store
                    .ack(
                        device.id,
                        Cursor {
                            stream,
                            position: seq,
                        },
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    // The writers run until the parent kills this process.
    let _writers = tasks;
    std::future::pending::<()>().await;
}

fn alice_id() -> cairn_wire::UserId {
    User::new(1).id
}

fn report(outcomes: &[ItemOutcome]) {
    let mut out = std::io::stdout().lock();
    for outcome in outcomes {
        match outcome {
            ItemOutcome::Stored { id, position } | ItemOutcome::Duplicate { id, position } => {
                writeln!(out, "ACK {id} {position}").unwrap();
            }
            ItemOutcome::Refused(refusal) => panic!("refused: {refusal}"),
        }
    }
    out.flush().unwrap();
}
