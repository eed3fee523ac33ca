//! Durable ingest: concurrent publishers, each its own user and device on
//! its own connection, append 1 KiB envelopes one per request and wait for
//! each acknowledgement (which the relay sends only after the durable
//! commit) before sending the next.
//!
//! Baselines, on the same disk in the same run: the same rows inserted into
//! a raw redb file in durable transactions of one row set per publisher
//! (the largest group the relay's group commit can form when every
//! publisher has one append in flight), and the same envelopes' signatures
//! checked with `verify_strict` on one core (the relay's own per-envelope
//! work).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cairn_client::Connection;
use cairn_wire::{Envelope, Scope};
use redb::{Database, TableDefinition};
use tempfile::TempDir;

use crate::ident::{PAYLOAD_LEN, User, stamped_payload};
use crate::relay::InProcess;
use crate::report::{Figure, Latencies, P50, P99, Report, Target, rate};
use crate::requests::{append_stored, open};

const SCENARIO: &str = "ingest";
/// Identity domain of this scenario's users.
const DOMAIN: u8 = 1;

/// How much to ingest.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// Concurrent publishers.
    pub publishers: usize,
    /// Envelopes each publisher appends.
    pub per_publisher: u64,
}

impl Size {
    /// The figure of record: 64 publishers.
    pub const FULL: Self = Self {
        publishers: 64,
        per_publisher: 250,
    };
    /// A quick check that the scenario still works.
    pub const SMOKE: Self = Self {
        publishers: 4,
        per_publisher: 5,
    };
}

/// Runs the scenario and its baselines.
pub async fn run(size: Size) -> Result<Report> {
    let publishers = publishers(size)?;
    let relay = InProcess::start().await?;
    let mut connections = Vec::with_capacity(publishers.len());
    for (device, _) in &publishers {
        connections.push(open(relay.addr(), relay.pin(), device).await?);
    }
    let envelopes: Vec<Vec<Envelope>> = publishers.into_iter().map(|(_, e)| e).collect();
    let (elapsed, mut acks) = publish(connections, envelopes.clone()).await?;
    relay.stop().await;

    let total = envelopes.iter().map(Vec::len).sum::<usize>();
    let ingest = rate(total, elapsed);
    let raw = raw_redb_rate(&envelopes, size.publishers)?;
    let verify = verify_rate(&envelopes)?;
    let label = format!(
        "durable ingest, {} publishers, 1 KiB payloads",
        size.publishers
    );
    let figures = vec![
        Figure::plain(SCENARIO, &label, ingest, "envelopes/s")
            .target(Target::AtLeast(0.5))
            .against(
                &format!(
                    "raw redb durable batch inserts of the same rows, {} per transaction",
                    size.publishers
                ),
                raw,
                Some("rows/s"),
            ),
        Figure::plain(SCENARIO, &label, ingest, "envelopes/s").against(
            "ed25519 verify_strict of the same envelopes, one core",
            verify,
            Some("verifies/s"),
        ),
        Figure::plain(SCENARIO, "ack latency p50", acks.quantile_ms(P50), "ms"),
        Figure::plain(SCENARIO, "ack latency p99", acks.quantile_ms(P99), "ms"),
    ];
    let notes = vec![format!(
        "{} publishers x {} envelopes of {PAYLOAD_LEN} B payload, one envelope per Append \
         request, one request in flight per publisher; the relay runs in the load \
         generator's process, on the same two cores",
        size.publishers, size.per_publisher
    )];
    Ok(Report { figures, notes })
}

type Publisher = (crate::ident::Device, Vec<Envelope>);

/// One user and device per publisher, with its envelopes signed ahead.
fn publishers(size: Size) -> Result<Vec<Publisher>> {
    let count = u32::try_from(size.publishers)?;
    (0..count)
        .map(|n| {
            let device = User::in_domain(DOMAIN, n).device(0);
            let envelopes = (1..=size.per_publisher)
                .map(|seq| device.envelope(seq, Scope::Friends, &stamped_payload()))
                .collect();
            Ok((device, envelopes))
        })
        .collect()
}

/// Every publisher appends its envelopes one by one; returns the wall time
/// and every acknowledgement's latency.
async fn publish(
    connections: Vec<Connection>,
    envelopes: Vec<Vec<Envelope>>,
) -> Result<(Duration, Latencies)> {
    let started = Instant::now();
    let tasks: Vec<_> = connections
        .into_iter()
        .zip(envelopes)
        .map(|(connection, envelopes)| tokio::spawn(publish_one(connection, envelopes)))
        .collect();
    let mut latencies = Latencies::default();
    for task in tasks {
        latencies.merge(task.await??);
    }
    Ok((started.elapsed(), latencies))
}

async fn publish_one(connection: Connection, envelopes: Vec<Envelope>) -> Result<Latencies> {
    let mut latencies = Latencies::with_capacity(envelopes.len());
    for envelope in envelopes {
        let sent = Instant::now();
        append_stored(&connection, vec![envelope]).await?;
        latencies.record(sent.elapsed());
    }
    connection.close().await;
    Ok(latencies)
}

type Raw = TableDefinition<'static, &'static [u8], &'static [u8]>;
const ENVELOPES: Raw = TableDefinition::new("envelopes");
const IDS: Raw = TableDefinition::new("envelope_ids");
const SEQS: Raw = TableDefinition::new("device_seqs");
const STREAMS: Raw = TableDefinition::new("streams");

/// Rows per second of raw redb durable transactions carrying the rows the
/// store writes per envelope (entry, id index, device sequence, stream
/// head), `batch` envelopes per transaction, in the order concurrent
/// publishers interleave.
fn raw_redb_rate(envelopes: &[Vec<Envelope>], batch: usize) -> Result<f64> {
    let rows: Vec<[Vec<u8>; 4]> = interleave(envelopes).map(raw_rows).collect();
    let dir = TempDir::new()?;
    let db = Database::create(dir.path().join("raw.redb"))?;
    let started = Instant::now();
    for chunk in rows.chunks(batch.max(1)) {
        insert_durably(&db, chunk)?;
    }
    let elapsed = started.elapsed();
    drop(db);
    Ok(rate(rows.len(), elapsed))
}

fn insert_durably(db: &Database, rows: &[[Vec<u8>; 4]]) -> Result<()> {
    let mut txn = db.begin_write()?;
    txn.set_quick_repair(true);
    {
        let mut envelopes = txn.open_table(ENVELOPES)?;
        let mut ids = txn.open_table(IDS)?;
        let mut seqs = txn.open_table(SEQS)?;
        let mut streams = txn.open_table(STREAMS)?;
        for [entry, bytes, id, seq] in rows {
            envelopes.insert(entry.as_slice(), bytes.as_slice())?;
            ids.insert(id.as_slice(), entry.as_slice())?;
            seqs.insert(seq.as_slice(), id.as_slice())?;
            streams.insert(entry.get(..33).unwrap_or_default(), entry.as_slice())?;
        }
    }
    txn.commit()?;
    Ok(())
}

/// Envelopes in the order concurrent publishers would commit them.
fn interleave(envelopes: &[Vec<Envelope>]) -> impl Iterator<Item = &Envelope> {
    let longest = envelopes.iter().map(Vec::len).max().unwrap_or(0);
    (0..longest).flat_map(move |i| envelopes.iter().filter_map(move |e| e.get(i)))
}

/// `[entry key, envelope bytes, id, device sequence key]`.
fn raw_rows(envelope: &Envelope) -> [Vec<u8>; 4] {
    let header = envelope.header();
    let bytes = envelope.encode();
    let id = Envelope::id_of_encoding(&bytes).as_bytes().to_vec();
    let mut entry = header.author.as_bytes().to_vec();
    entry.push(0x01);
    entry.extend_from_slice(&header.seq.to_be_bytes());
    let mut seq = header.author.as_bytes().to_vec();
    seq.extend_from_slice(header.device.as_bytes());
    seq.extend_from_slice(&header.seq.to_be_bytes());
    [entry, bytes, id, seq]
}

/// Strict verifications per second on one core (this thread).
fn verify_rate(envelopes: &[Vec<Envelope>]) -> Result<f64> {
    let all: Vec<&Envelope> = envelopes.iter().flatten().collect();
    let started = Instant::now();
    for envelope in &all {
        envelope
            .verify()
            .context("a benchmark envelope does not verify")?;
    }
    Ok(rate(all.len(), started.elapsed()))
}
