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

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cairn_client::Connection;
use cairn_wire::{Envelope, Scope};
use redb::{Database, TableDefinition};
use tempfile::TempDir;

use crate::ident::{PAYLOAD_LEN, User, stamped_payload};
use crate::relay::{Cost, Placement, UnderTest, cpu_seconds};
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

/// Runs the scenario against a relay in this process and against one in
/// a process of its own (`relay_bin`, else this program's `serve-relay`),
/// and the baselines.
pub async fn run(size: Size, relay_bin: Option<&Path>) -> Result<Report> {
    let publishers = publishers(size)?;
    let mut in_process = ingest(&publishers, Placement::InProcess).await?;
    let mut process = ingest(&publishers, Placement::Process(relay_bin)).await?;
    let envelopes: Vec<Vec<Envelope>> = publishers.into_iter().map(|(_, e)| e).collect();
    let total = envelopes.iter().map(Vec::len).sum::<usize>();
    let raw = raw_redb(&envelopes, size.publishers)?;
    let verify = verify_rate(&envelopes)?;
    let label = format!(
        "durable ingest, {} publishers, 1 KiB payloads",
        size.publishers
    );
    let raw_name = format!(
        "raw redb durable batch inserts of the same rows, {} per transaction",
        size.publishers
    );
    let verify_name = "ed25519 verify_strict of the same envelopes, one core";
    let cpu_us = process.cost.cpu_seconds * 1e6 / total.max(1) as f64;
    let floor_us = 1e6 / verify + raw.cpu_us_per_row;
    let figures = vec![
        Figure::plain(
            SCENARIO,
            &label,
            rate(total, in_process.elapsed),
            "envelopes/s",
        )
        .target(Target::AtLeast(INGEST_TARGET))
        .against(&raw_name, raw.rows_per_second, Some("rows/s")),
        Figure::plain(
            SCENARIO,
            &label,
            rate(total, in_process.elapsed),
            "envelopes/s",
        )
        .against(verify_name, verify, Some("verifies/s")),
        Figure::plain(
            SCENARIO,
            "ack latency p50",
            in_process.acks.quantile_ms(P50),
            "ms",
        ),
        Figure::plain(
            SCENARIO,
            "ack latency p99",
            in_process.acks.quantile_ms(P99),
            "ms",
        ),
        Figure::plain(
            SCENARIO,
            &format!("relay process: {label}"),
            rate(total, process.elapsed),
            "envelopes/s",
        )
        .target(Target::AtLeast(INGEST_TARGET))
        .against(&raw_name, raw.rows_per_second, Some("rows/s")),
        Figure::plain(SCENARIO, "relay process: CPU per envelope", cpu_us, "us")
            .target(Target::AtMost(CPU_TARGET))
            .against(
                "one verify_strict plus raw redb's CPU per row set, same run",
                floor_us,
                None,
            ),
        Figure::plain(
            SCENARIO,
            "relay process: the publishers' own CPU per envelope",
            process.load_cpu_seconds * 1e6 / total.max(1) as f64,
            "us",
        ),
        Figure::plain(
            SCENARIO,
            "relay process: ack latency p99",
            process.acks.quantile_ms(P99),
            "ms",
        ),
        Figure::plain(
            SCENARIO,
            "relay process: peak resident set",
            process.cost.peak_rss as f64 / f64::from(1 << 20),
            "MiB",
        ),
    ];
    let notes = vec![
        format!(
            "{} publishers x {} envelopes of {PAYLOAD_LEN} B payload, one envelope per Append \
             request, one request in flight per publisher; first against a relay in the load \
             generator's process, on the same two cores, then against a fresh relay in a \
             process of its own",
            size.publishers, size.per_publisher
        ),
        format!(
            "CPU per envelope: what the relay process used while the publishers ran, over the \
             envelopes; against one verify_strict ({:.1} us) plus what raw redb's durable batch \
             inserts cost this process per row set ({:.1} us)",
            1e6 / verify,
            raw.cpu_us_per_row
        ),
    ];
    Ok(Report { figures, notes })
}

/// Ingest should reach this share of raw redb's rate.
const INGEST_TARGET: f64 = 0.8;
/// The relay's CPU per envelope should stay within this multiple of one
/// signature check plus the commit's share.
const CPU_TARGET: f64 = 1.5;

/// What one ingest run measured.
struct Ingested {
    elapsed: Duration,
    acks: Latencies,
    cost: Cost,
    /// CPU this process (the publishers, and the relay when it runs here)
    /// used meanwhile.
    load_cpu_seconds: f64,
}

/// Every publisher appends its envelopes to a fresh relay placed as
/// `placement` says.
async fn ingest(publishers: &[Publisher], placement: Placement<'_>) -> Result<Ingested> {
    let relay = UnderTest::start(placement).await?;
    let mut connections = Vec::with_capacity(publishers.len());
    for (device, _) in publishers {
        connections.push(open(relay.addr(), relay.pin(), device).await?);
    }
    let envelopes: Vec<Vec<Envelope>> = publishers.iter().map(|(_, e)| e.clone()).collect();
    let (cpu, own_cpu, ready_rss) = (relay.cpu_seconds()?, cpu_seconds()?, relay.rss()?);
    let (elapsed, acks) = publish(connections, envelopes).await?;
    let cost = Cost {
        cpu_seconds: relay.cpu_seconds()? - cpu,
        peak_rss: relay.peak_rss()?,
        ready_rss,
    };
    let load_cpu_seconds = cpu_seconds()? - own_cpu;
    relay.stop().await;
    Ok(Ingested {
        elapsed,
        acks,
        cost,
        load_cpu_seconds,
    })
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

/// What raw redb did with the same rows.
struct RawRedb {
    rows_per_second: f64,
    /// CPU this process spent per row set, in microseconds.
    cpu_us_per_row: f64,
}

/// Raw redb durable transactions carrying the rows the store writes per
/// envelope (entry, id index, device sequence, stream head), `batch`
/// envelopes per transaction, in the order concurrent publishers
/// interleave: rows per second, and CPU per row set.
fn raw_redb(envelopes: &[Vec<Envelope>], batch: usize) -> Result<RawRedb> {
    let rows: Vec<[Vec<u8>; 4]> = interleave(envelopes).map(raw_rows).collect();
    let dir = TempDir::new()?;
    let db = Database::create(dir.path().join("raw.redb"))?;
    let cpu = cpu_seconds()?;
    let started = Instant::now();
    for chunk in rows.chunks(batch.max(1)) {
        insert_durably(&db, chunk)?;
    }
    let elapsed = started.elapsed();
    let cpu = cpu_seconds()? - cpu;
    drop(db);
    Ok(RawRedb {
        rows_per_second: rate(rows.len(), elapsed),
        cpu_us_per_row: cpu * 1e6 / rows.len().max(1) as f64,
    })
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
