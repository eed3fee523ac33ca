//! Durable ingest: 64 concurrent callers append pre-signed envelopes with
//! 1 KiB payloads to a fresh store, each waiting for its acknowledgement
//! before the next append. In the same run, on the same disk, the same rows
//! are inserted into a raw redb file in batches of the size group commit
//! reached, with the same durability; and the envelopes' signatures are
//! verified, for the relay's other per-envelope cost. Prints rates, ratios
//! and commit latencies.
//!
//! `cargo bench -p cairn-store --bench ingest` (or `cargo xtask bench`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_store::{Config, ItemOutcome, RedbStore, StatementOutcome, Store};
use cairn_wire::{
    DeviceCertificateBody, DeviceId, Envelope, EnvelopeHeader, ExchangeKey, Payload, Scope, Signed,
    SigningKey, UnsignedEnvelope, UserId,
};
use redb::{Database, TableDefinition};

const CALLERS: usize = 64;
const PER_CALLER: u64 = 250;
const PAYLOAD: usize = 1024;

type Raw = TableDefinition<'static, &'static [u8], &'static [u8]>;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let callers = make_callers();
    let total = CALLERS as u64 * PER_CALLER;
    println!(
        "cairn-store ingest: {CALLERS} callers x {PER_CALLER} envelopes, {PAYLOAD} B payloads"
    );

    let dir = tempfile::tempdir().unwrap();
    let store_run = runtime.block_on(run_store(&dir.path().join("store.redb"), &callers));
    let group = store_run.envelopes as f64 / store_run.commits.max(1) as f64;
    let batch = group.round().max(1.0) as usize;
    let raw_secs = run_raw(&dir.path().join("raw.redb"), &callers, batch);
    let verify_secs = run_verify(&callers);

    let store_rate = total as f64 / store_run.elapsed.as_secs_f64();
    let raw_rate = total as f64 / raw_secs;
    let verify_rate = total as f64 / verify_secs;
    println!("store durable appends/s : {store_rate:>10.0}");
    println!(
        "raw redb inserts/s      : {raw_rate:>10.0}  (batches of {batch}, same rows, same durability)"
    );
    println!(
        "ratio store/raw         : {:>10.2}  (aim >= 0.5)",
        store_rate / raw_rate
    );
    println!("ed25519 verifies/s      : {verify_rate:>10.0}  (one core)");
    println!(
        "ratio store/verify      : {:>10.2}",
        store_rate / verify_rate
    );
    println!(
        "commits                 : {:>10}  ({group:.1} envelopes per commit)",
        store_run.commits
    );
    print_latencies("commit latency (writer)", &store_run.commit_us);
    print_latencies("append latency (caller)", &store_run.append_us);
}

/// One caller: a device of its own user, its certificate and envelopes.
struct Caller {
    certificate: cairn_wire::DeviceCertificate,
    envelopes: Vec<Envelope>,
}

fn make_callers() -> Vec<Caller> {
    (0..CALLERS)
        .map(|i| {
            let root = SigningKey::from_bytes(&[i as u8 + 1; 32]);
            let key = SigningKey::from_bytes(&[i as u8 + 101; 32]);
            let user = UserId::from_bytes(root.verifying_key().to_bytes());
            let device = DeviceId::from_bytes(key.verifying_key().to_bytes());
            let body =
                DeviceCertificateBody::new(user, device, ExchangeKey::from_bytes([0; 32]), 1);
            let mut prev = cairn_wire::FIRST_IN_STREAM;
            let envelopes = (1..=PER_CALLER)
                .map(|seq| {
                    let header = EnvelopeHeader::new(user, device, seq, prev, seq, Scope::Friends);
                    let payload = Payload::new(vec![seq as u8; PAYLOAD]).unwrap();
                    let envelope = UnsignedEnvelope { header, payload }.sign(&key);
                    prev = envelope.id();
                    envelope
                })
                .collect();
            Caller {
                certificate: Signed::sign(body, &root),
                envelopes,
            }
        })
        .collect()
}

struct StoreRun {
    elapsed: Duration,
    commits: u64,
    envelopes: u64,
    commit_us: Vec<u32>,
    append_us: Vec<u32>,
}

async fn run_store(path: &std::path::Path, callers: &[Caller]) -> StoreRun {
    let config = Config {
        record_latencies: true,
        ..Config::default()
    };
    let store = Arc::new(RedbStore::open_with(path, config).unwrap());
    for caller in callers {
        let outcome = store
            .register_device(caller.certificate.clone())
            .await
            .unwrap();
        assert_eq!(outcome, StatementOutcome::Applied);
    }
    let before = store.commit_counters();
    let skip = store.commit_latencies().len();
    let started = Instant::now();
    let tasks: Vec<_> = callers
        .iter()
        .map(|caller| {
            let store = Arc::clone(&store);
            let envelopes = caller.envelopes.clone();
            tokio::spawn(async move { append_all(&store, envelopes).await })
        })
        .collect();
    let mut append_us = Vec::new();
    for task in tasks {
        append_us.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    let after = store.commit_counters();
    let commit_us = store.commit_latencies().split_off(skip);
    StoreRun {
        elapsed,
        commits: after.commits - before.commits,
        envelopes: after.envelopes - before.envelopes,
        commit_us,
        append_us,
    }
}

async fn append_all(store: &RedbStore, envelopes: Vec<Envelope>) -> Vec<u32> {
    let mut latencies = Vec::with_capacity(envelopes.len());
    for envelope in envelopes {
        let started = Instant::now();
        let outcome = store.append(vec![envelope]).await.unwrap();
        assert!(matches!(outcome[0], ItemOutcome::Stored { .. }));
        latencies.push(started.elapsed().as_micros() as u32);
    }
    latencies
}

/// The rows the store writes per envelope (see `spec/storage.md`), in raw
/// redb, `batch` envelopes per durable transaction.
fn run_raw(path: &std::path::Path, callers: &[Caller], batch: usize) -> f64 {
    const ENVELOPES: Raw = TableDefinition::new("envelopes");
    const IDS: Raw = TableDefinition::new("envelope_ids");
    const SEQS: Raw = TableDefinition::new("device_seqs");
    const STREAMS: Raw = TableDefinition::new("streams");
    let rows: Vec<[Vec<u8>; 5]> = interleave(callers)
        .into_iter()
        .map(|e| raw_rows(&e))
        .collect();
    let db = Database::create(path).unwrap();
    let started = Instant::now();
    for chunk in rows.chunks(batch) {
        let mut txn = db.begin_write().unwrap();
        txn.set_quick_repair(true);
        {
            let mut envelopes = txn.open_table(ENVELOPES).unwrap();
            let mut ids = txn.open_table(IDS).unwrap();
            let mut seqs = txn.open_table(SEQS).unwrap();
            let mut streams = txn.open_table(STREAMS).unwrap();
            for [entry, bytes, id, seq, stream] in chunk {
                envelopes
                    .insert(entry.as_slice(), bytes.as_slice())
                    .unwrap();
                ids.insert(id.as_slice(), entry.as_slice()).unwrap();
                seqs.insert(seq.as_slice(), id.as_slice()).unwrap();
                streams
                    .insert(stream.as_slice(), entry[33..].as_ref())
                    .unwrap();
            }
        }
        txn.commit().unwrap();
    }
    started.elapsed().as_secs_f64()
}

/// Envelopes in the order concurrent callers would commit them.
fn interleave(callers: &[Caller]) -> Vec<Envelope> {
    (0..PER_CALLER as usize)
        .flat_map(|i| callers.iter().map(move |c| c.envelopes[i].clone()))
        .collect()
}

/// `[entry key, envelope bytes, id, device seq key, stream key]`.
fn raw_rows(envelope: &Envelope) -> [Vec<u8>; 5] {
    let h = envelope.header();
    let bytes = envelope.encode();
    let id = Envelope::id_of_encoding(&bytes).as_bytes().to_vec();
    let mut stream = h.author.as_bytes().to_vec();
    stream.push(0x01);
    let mut entry = stream.clone();
    entry.extend_from_slice(&h.seq.to_be_bytes());
    let mut seq = h.author.as_bytes().to_vec();
    seq.extend_from_slice(h.device.as_bytes());
    seq.extend_from_slice(&h.seq.to_be_bytes());
    [entry, bytes, id, seq, stream]
}

fn run_verify(callers: &[Caller]) -> f64 {
    let started = Instant::now();
    for caller in callers {
        for envelope in &caller.envelopes {
            envelope.verify().unwrap();
        }
    }
    started.elapsed().as_secs_f64()
}

fn print_latencies(name: &str, micros: &[u32]) {
    let mut sorted = micros.to_vec();
    sorted.sort_unstable();
    let at = |q: f64| {
        let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
        sorted.get(i).map_or(0.0, |&us| f64::from(us) / 1000.0)
    };
    println!(
        "{name}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)",
        at(0.50),
        at(0.99),
        at(1.0),
        sorted.len()
    );
}
