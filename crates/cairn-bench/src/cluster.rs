//! Several relay nodes on one log (`spec/cluster.md`): durable ingest
//! through two relay nodes on a three-server NATS JetStream cluster
//! (R3, `sync_interval: always`), against one redb relay taking the same
//! publishers in the same run; and the write stall when the server leading
//! the log's stream is killed under load, with what was lost (must be 0).
//!
//! The NATS servers are the pinned nats-server (`cargo xtask nats-server`)
//! on loopback; the relays run in this process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cairn_client::Connection;
use cairn_relay::config::{Backend, JetStream};
use cairn_testkit::nats::NatsCluster;
use cairn_wire::{Envelope, Fingerprint, Response, Scope, StreamId};
use tempfile::TempDir;

use crate::ident::{Device, User, stamped_payload};
use crate::relay::InProcess;
use crate::report::{Figure, Latencies, P99, Report, Target, rate};
use crate::requests::{append_stored, open, request};

const SCENARIO: &str = "cluster";
/// Identity domain of this scenario's users.
const DOMAIN: u8 = 7;

/// How much to ingest.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// Concurrent publishers, spread over the nodes.
    pub publishers: usize,
    /// Envelopes each appends in the ingest figure.
    pub per_publisher: u64,
    /// Envelopes each appends while the leader is killed.
    pub during_kill: u64,
}

impl Size {
    /// The figure of record.
    pub const FULL: Self = Self {
        publishers: 64,
        per_publisher: 100,
        during_kill: 200,
    };
    /// A quick check that the scenario still works.
    pub const SMOKE: Self = Self {
        publishers: 4,
        per_publisher: 5,
        during_kill: 150,
    };
}

/// Runs the scenario and its baseline.
pub async fn run(size: Size) -> Result<Report> {
    let publishers = publishers(size)?;
    let single = ingest_into_one_redb_relay(&publishers, size).await?;
    let mut nats = NatsCluster::start(3);
    let nodes = [node(&nats, "a").await?, node(&nats, "b").await?];
    let cluster = ingest(&nodes, &publishers, 1..=size.per_publisher).await?;
    let kill = ingest_through_a_kill(&mut nats, &nodes, &publishers, size).await?;
    let lost = lost(&nodes, &publishers, size).await?;
    // Each node is read: every acknowledged envelope counts once per node.
    let acknowledged =
        nodes.len() * publishers.len() * usize::try_from(size.per_publisher + size.during_kill)?;
    for node in nodes {
        node.stop().await;
    }
    if lost > 0 {
        bail!("{lost} acknowledged envelopes were lost when the log's leader died");
    }
    let total = publishers.len() * usize::try_from(size.per_publisher)?;
    let figures = vec![
        Figure::plain(
            SCENARIO,
            "durable ingest through 2 relay nodes on a 3-server JetStream cluster (R3)",
            rate(total, cluster.elapsed),
            "envelopes/s",
        )
        .against(
            "1 redb relay, the same publishers, the same run",
            rate(total, single),
            Some("envelopes/s"),
        ),
        Figure::plain(
            SCENARIO,
            "write stall when the log's leader is killed (slowest acknowledgement)",
            kill.ingested.stall.as_secs_f64() * 1000.0,
            "ms",
        ),
        Figure::plain(
            SCENARIO,
            "a new leader of the log's stream named after the kill",
            kill.elected.as_secs_f64() * 1000.0,
            "ms",
        ),
        Figure::plain(
            SCENARIO,
            "ack latency p99 without faults",
            cluster.p99_ms,
            "ms",
        ),
        Figure::plain(
            SCENARIO,
            "acknowledged envelopes read back at their positions, through both nodes",
            (acknowledged - lost) as f64,
            "envelopes",
        )
        .target(Target::AtLeast(1.0))
        .against("envelopes acknowledged", acknowledged as f64, None),
    ];
    let notes = vec![format!(
        "{} publishers x {} envelopes, one per Append request, one in flight each, half \
         through each node; then {} more each while the server leading the log's stream \
         is SIGKILLed; every acknowledged envelope was then read back at its position \
         through both nodes. NATS servers, relays and load generator share the same two \
         cores",
        size.publishers, size.per_publisher, size.during_kill
    )];
    Ok(Report { figures, notes })
}

type Publisher = (Device, Vec<Envelope>);

/// One user and device per publisher, with every envelope signed ahead.
fn publishers(size: Size) -> Result<Vec<Publisher>> {
    let count = u32::try_from(size.publishers)?;
    let last = size.per_publisher + size.during_kill;
    (0..count)
        .map(|n| {
            let device = User::in_domain(DOMAIN, n).device(0);
            let envelopes = (1..=last)
                .map(|seq| device.envelope(seq, Scope::Private, &stamped_payload()))
                .collect();
            Ok((device, envelopes))
        })
        .collect()
}

/// A relay node on `nats`.
async fn node(nats: &NatsCluster, name: &str) -> Result<InProcess> {
    let urls = nats.urls();
    let name = name.to_owned();
    InProcess::start_with(TempDir::new()?, move |config| {
        config.storage.backend = Backend::Jetstream;
        config.storage.jetstream = Some(JetStream {
            urls,
            replicas: 3,
            node_id: name,
            ..JetStream::default()
        });
    })
    .await
}

/// The baseline: the same publishers into one redb relay.
async fn ingest_into_one_redb_relay(publishers: &[Publisher], size: Size) -> Result<Duration> {
    let relay = InProcess::start().await?;
    let done = ingest(
        std::slice::from_ref(&relay),
        publishers,
        1..=size.per_publisher,
    )
    .await?;
    relay.stop().await;
    Ok(done.elapsed)
}

/// What one ingest run measured.
struct Ingested {
    elapsed: Duration,
    p99_ms: f64,
    stall: Duration,
}

/// Every publisher appends its envelopes with seqs in `seqs`, publisher
/// `n` through node `n` modulo the nodes.
async fn ingest(
    nodes: &[InProcess],
    publishers: &[Publisher],
    seqs: std::ops::RangeInclusive<u64>,
) -> Result<Ingested> {
    let connections = connect_all(nodes, publishers).await?;
    appending(connections, publishers, seqs, &Arc::default())
        .await
        .finish()
        .await
}

/// A connection per publisher, to its node.
async fn connect_all(nodes: &[InProcess], publishers: &[Publisher]) -> Result<Vec<Connection>> {
    let mut connections = Vec::with_capacity(publishers.len());
    for ((device, _), node) in publishers.iter().zip(nodes.iter().cycle()) {
        connections.push(open(node.addr(), node.pin(), device).await?);
    }
    Ok(connections)
}

/// Publishers appending, each in its own task.
struct Appending {
    started: Instant,
    tasks: Vec<tokio::task::JoinHandle<Result<(Latencies, Duration)>>>,
}

/// Starts every publisher appending its envelopes with seqs in `seqs`;
/// `acked` counts the acknowledgements as they come.
async fn appending(
    connections: Vec<Connection>,
    publishers: &[Publisher],
    seqs: std::ops::RangeInclusive<u64>,
    acked: &Arc<AtomicU64>,
) -> Appending {
    let first = usize::try_from(*seqs.start() - 1).unwrap_or(0);
    let last = usize::try_from(*seqs.end()).unwrap_or(0);
    let tasks = connections
        .into_iter()
        .zip(publishers)
        .map(|(connection, (_, envelopes))| {
            let mine = envelopes.get(first..last).unwrap_or_default().to_vec();
            tokio::spawn(append_all(connection, mine, Arc::clone(acked)))
        })
        .collect();
    Appending {
        started: Instant::now(),
        tasks,
    }
}

impl Appending {
    /// Waits for every publisher; what they measured.
    async fn finish(self) -> Result<Ingested> {
        let mut latencies = Latencies::default();
        let mut stall = Duration::ZERO;
        for task in self.tasks {
            let (mine, slowest) = task.await??;
            latencies.merge(mine);
            stall = stall.max(slowest);
        }
        Ok(Ingested {
            elapsed: self.started.elapsed(),
            p99_ms: latencies.quantile_ms(P99),
            stall,
        })
    }
}

async fn append_all(
    connection: Connection,
    envelopes: Vec<Envelope>,
    acked: Arc<AtomicU64>,
) -> Result<(Latencies, Duration)> {
    let mut latencies = Latencies::with_capacity(envelopes.len());
    let mut slowest = Duration::ZERO;
    for envelope in envelopes {
        let sent = Instant::now();
        append_stored(&connection, vec![envelope]).await?;
        acked.fetch_add(1, Ordering::Relaxed);
        let took = sent.elapsed();
        latencies.record(took);
        slowest = slowest.max(took);
    }
    connection.close().await;
    Ok((latencies, slowest))
}

/// What the run through the kill measured.
struct Killed {
    ingested: Ingested,
    /// From the kill until a surviving server named another leader.
    elected: Duration,
}

/// The rest of the envelopes, while the server leading the log's stream
/// is killed a moment after they start.
async fn ingest_through_a_kill(
    nats: &mut NatsCluster,
    nodes: &[InProcess; 2],
    publishers: &[Publisher],
    size: Size,
) -> Result<Killed> {
    let first = size.per_publisher + 1;
    let last = size.per_publisher + size.during_kill;
    let killed = nats
        .stream_leader(0, "CAIRN_LOG")
        .context("the log's stream has no leader")?;
    let leader = nats
        .index_of(&killed)
        .context("the leader is not one of the servers")?;
    // Every publisher connected and appending, a tenth of the run acked:
    // then the leader dies, with appends in flight.
    let connections = connect_all(nodes, publishers).await?;
    let acked = Arc::new(AtomicU64::new(0));
    let run = appending(connections, publishers, first..=last, &acked).await;
    let total = u64::try_from(publishers.len())? * size.during_kill;
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::Relaxed) < total / 10 {
        if Instant::now() > deadline {
            bail!("the publishers acknowledged nothing for a minute");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let run = run.finish();
    tokio::pin!(run);
    let killed_at = Instant::now();
    nats.kill(leader);
    let survivor = (leader + 1) % nats.size();
    let mut elected = None;
    let ingested = loop {
        tokio::select! {
            done = &mut run => break done?,
            () = tokio::time::sleep(Duration::from_millis(20)), if elected.is_none() => {
                let now = nats.stream_leader(survivor, "CAIRN_LOG");
                if now.is_some_and(|name| name != killed) {
                    elected = Some(killed_at.elapsed());
                }
            }
        }
    };
    Ok(Killed {
        ingested,
        elected: elected.context("no new leader was elected while the load ran")?,
    })
}

/// Acknowledged envelopes not found at their position through both nodes.
async fn lost(nodes: &[InProcess; 2], publishers: &[Publisher], size: Size) -> Result<usize> {
    let expected = size.per_publisher + size.during_kill;
    let mut lost = 0;
    for node in nodes {
        for (device, envelopes) in publishers {
            lost += missing(node.addr(), node.pin(), device, envelopes, expected).await?;
        }
    }
    Ok(lost)
}

async fn missing(
    addr: SocketAddr,
    pin: Fingerprint,
    device: &Device,
    envelopes: &[Envelope],
    expected: u64,
) -> Result<usize> {
    let connection = open(addr, pin, device).await?;
    let stream = StreamId::new(device.user, Scope::Private);
    let read = cairn_wire::Request::Read(cairn_wire::ReadRequest {
        stream,
        after: 0,
        limit: u32::try_from(expected)?,
    });
    let Response::Page(page) = request(&connection, &read).await? else {
        bail!("a read of a publisher's stream was refused");
    };
    connection.close().await;
    let found = envelopes
        .iter()
        .zip(1u64..)
        .filter(|(envelope, position)| {
            page.entries
                .iter()
                .any(|e| e.position == *position && e.envelope.id() == envelope.id())
        })
        .count();
    Ok(envelopes.len() - found)
}
