//! Cold sync: a user's new device pulls the whole backlog of the user's
//! private stream as the client's sync engine does: a hello, and when its
//! page says more is waiting, a subscription from there up to the live
//! marker, which the relay answers with page after page on one stream
//! without a round trip per page; then hellos until nothing more is
//! waiting. For comparison, another new device pulls the same backlog
//! with hellos alone, one page per round trip, as the sync engine did
//! before.
//!
//! The backlog is loaded into the relay's database with the store
//! directly (signed envelopes, 256 per durable commit) before the relay
//! starts, because what is measured is the pull, not the load.
//!
//! Baseline, same run: a bare quinn server pushes the same number of bytes
//! on one stream to a client that asked for them.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cairn_client::Connection;
use cairn_relay::config::Storage;
use cairn_store::{ItemOutcome, RedbStore, StatementOutcome, Store};
use cairn_wire::{
    BoundedVec, Cursor, HelloRequest, Request, Response, Scope, StreamId, SubscribeRequest,
    SubscriptionEvent,
};
use tempfile::TempDir;

use crate::fanout::read_frame;
use crate::ident::{Device, PAYLOAD_LEN, User, stamped_payload};
use crate::net;
use crate::relay::{
    Child, InProcess, Serves, Setup, UnderTest, config_in, context_switches, cpu_seconds,
};
use crate::report::{Figure, Report, Target};
use crate::requests::{WAIT, open, register_device, request};

const SCENARIO: &str = "sync";
/// Identity domain of this scenario's users.
const DOMAIN: u8 = 3;
/// Envelopes per durable commit while loading the backlog.
const LOAD_BATCH: usize = 256;
/// Bytes per write on the baseline's stream.
const RAW_CHUNK: usize = 1 << 20;

/// How much to pull.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// Envelopes in the backlog.
    pub envelopes: usize,
}

impl Size {
    /// The figure of record: 100k envelopes.
    pub const FULL: Self = Self { envelopes: 100_000 };
    /// A quick check: still several pages.
    pub const SMOKE: Self = Self { envelopes: 800 };
}

/// Runs the cold sync against a relay in this process and against one in
/// a process of its own (`relay_bin`, else this program's `serve-relay`),
/// each on a copy of the same backlog, and the raw quinn baseline.
pub async fn run(size: Size, relay_bin: Option<&Path>) -> Result<Report> {
    let user = User::in_domain(DOMAIN, 0);
    let dir = TempDir::new()?;
    let loading = Instant::now();
    let bytes = preload(dir.path(), &user.device(0), size.envelopes).await?;
    let load_time = loading.elapsed();
    let copy = TempDir::new()?;
    let database = config_in(dir.path()).database_path();
    let name = database.file_name().context("the database's file name")?;
    std::fs::copy(&database, copy.path().join(name))?;

    let in_process = UnderTest::InProcess(InProcess::start_in(dir).await?);
    let here = pull_through(in_process, &user, size).await?;
    // The page cache the relay ships with, as the relay in this process
    // has: a pull reads the whole backlog, which a small cache would
    // read from the file again and again.
    let setup = Setup {
        data_dir: Some(copy.path().to_owned()),
        cache_bytes: Storage::default().cache_bytes,
        ..Setup::default()
    };
    let child = UnderTest::Process(Child::spawn_with(Serves::Relay(relay_bin), setup)?);
    let apart = pull_through(child, &user, size).await?;

    let (cpu, switches) = (cpu_seconds()?, context_switches()?);
    let raw = raw_push(bytes).await?;
    let (raw_cpu, raw_switches) = (cpu_seconds()? - cpu, context_switches()? - switches);
    let megabytes = bytes as f64 / 1e6;
    let busy = |cpu: f64, wall: Duration| cpu / wall.as_secs_f64();
    let raw_name = "raw quinn: the same bytes on one stream";
    let raw_rate = megabytes / raw.as_secs_f64();
    let label = format!("cold sync of {} envelopes", size.envelopes);
    let figures = vec![
        Figure::plain(
            SCENARIO,
            &label,
            megabytes / here.cold.as_secs_f64(),
            "MB/s",
        )
        .target(Target::AtLeast(SYNC_TARGET))
        .against(raw_name, raw_rate, None),
        Figure::plain(
            SCENARIO,
            &format!("{label}: time"),
            here.cold.as_secs_f64(),
            "s",
        ),
        Figure::plain(
            SCENARIO,
            "the same backlog by hellos alone, one page per round trip (before)",
            megabytes / here.hellos_only.as_secs_f64(),
            "MB/s",
        )
        .against(raw_name, raw_rate, None),
        Figure::plain(
            SCENARIO,
            &format!("relay process: {label}"),
            megabytes / apart.cold.as_secs_f64(),
            "MB/s",
        )
        .target(Target::AtLeast(SYNC_TARGET))
        .against(raw_name, raw_rate, None),
        Figure::plain(
            SCENARIO,
            "relay process: its CPU per MB pulled",
            apart.relay_cpu * 1e3 / megabytes,
            "ms",
        ),
        Figure::plain(
            SCENARIO,
            "relay process: peak resident set",
            apart.peak_rss as f64 / f64::from(1 << 20),
            "MiB",
        ),
    ];
    let notes = vec![
        format!(
            "{} envelopes of {PAYLOAD_LEN} B payload ({megabytes:.1} MB of envelope \
             encodings, MB = 10^6 bytes) pulled by a new device with {} hellos and \
             one subscription up to its live marker (by hellos alone: {} hellos); the \
             client decodes every answer but does not verify signatures; loading the \
             backlog took {:.1} s and is not timed; one untimed pull warms the caches \
             first; then the same against a relay process on a copy of the database",
            size.envelopes,
            here.hellos,
            here.rounds,
            load_time.as_secs_f64()
        ),
        format!(
            "CPU time of the whole process (relay and client, 2 cores at most) while \
             pulling: cold sync {:.2} s ({:.2} cores busy, {} context \
             switches), hellos alone {:.2} s ({:.2} cores), raw quinn \
             {raw_cpu:.2} s ({:.2} cores, {raw_switches} context switches); against the \
             relay process, the client used {:.2} s and the relay {:.2} s",
            here.sync_cpu,
            busy(here.sync_cpu, here.cold),
            here.sync_switches,
            here.hello_cpu,
            busy(here.hello_cpu, here.hellos_only),
            busy(raw_cpu, raw),
            apart.sync_cpu,
            apart.relay_cpu,
        ),
    ];
    Ok(Report { figures, notes })
}

/// Cold sync should reach this share of raw quinn's rate.
const SYNC_TARGET: f64 = 0.8;

/// What the pulls through one relay measured.
struct Pulls {
    /// The cold sync (hello, subscription, hellos).
    cold: Duration,
    hellos: usize,
    /// This process's CPU and context switches during it.
    sync_cpu: f64,
    sync_switches: u64,
    /// The relay process's CPU during it (0 in this process).
    relay_cpu: f64,
    peak_rss: u64,
    /// The pull by hellos alone.
    hellos_only: Duration,
    rounds: usize,
    hello_cpu: f64,
}

/// Registers the user's new devices on `relay`, warms its caches with an
/// untimed pull, then times a cold sync and a pull by hellos alone.
async fn pull_through(relay: UnderTest, user: &User, size: Size) -> Result<Pulls> {
    let (old, new, other, warm) = (
        user.device(0),
        user.device(1),
        user.device(2),
        user.device(3),
    );
    let existing = open(relay.addr(), relay.pin(), &old).await?;
    register_device(&existing, new.certificate.clone()).await?;
    register_device(&existing, other.certificate.clone()).await?;
    register_device(&existing, warm.certificate.clone()).await?;
    let stream = StreamId::new(user.id, Scope::Private);
    // One untimed pull first, so that both timed pulls find the database
    // equally warm in the relay's and the system's caches.
    let warming = open(relay.addr(), relay.pin(), &warm).await?;
    pull_all(&warming, stream, size.envelopes, Catch::No).await?;
    warming.close().await;
    let puller = open(relay.addr(), relay.pin(), &new).await?;
    let (cpu, switches, relay_cpu) = (cpu_seconds()?, context_switches()?, relay.cpu_seconds()?);
    let (cold, hellos) = pull_all(&puller, stream, size.envelopes, Catch::Up).await?;
    let (sync_cpu, sync_switches) = (cpu_seconds()? - cpu, context_switches()? - switches);
    let relay_cpu = relay.cpu_seconds()? - relay_cpu;
    puller.close().await;
    let by_hellos = open(relay.addr(), relay.pin(), &other).await?;
    let cpu = cpu_seconds()?;
    let (hellos_only, rounds) = pull_all(&by_hellos, stream, size.envelopes, Catch::No).await?;
    let hello_cpu = cpu_seconds()? - cpu;
    by_hellos.close().await;
    existing.close().await;
    let peak_rss = relay.peak_rss()?;
    relay.stop().await;
    Ok(Pulls {
        cold,
        hellos,
        sync_cpu,
        sync_switches,
        relay_cpu,
        peak_rss,
        hellos_only,
        rounds,
        hello_cpu,
    })
}

/// Loads `count` envelopes by `device` into the database the relay will
/// open in `dir`; returns the bytes of their encodings.
async fn preload(dir: &Path, device: &Device, count: usize) -> Result<u64> {
    let store = RedbStore::open(config_in(dir).database_path())?;
    match store.register_device(device.certificate.clone()).await? {
        StatementOutcome::Applied => {}
        other => bail!("registering the loading device: {other:?}"),
    }
    let mut bytes = 0u64;
    let mut seq = 0u64;
    while usize::try_from(seq)? < count {
        let take = (count - usize::try_from(seq)?).min(LOAD_BATCH);
        let batch = (0..take)
            .map(|_| {
                seq += 1;
                device.envelope(seq, Scope::Private, &stamped_payload())
            })
            .collect::<Vec<_>>();
        bytes += batch.iter().map(|e| e.encode().len() as u64).sum::<u64>();
        for outcome in store.append(batch).await? {
            if !matches!(outcome, ItemOutcome::Stored { .. }) {
                bail!("loading the backlog: {outcome:?}");
            }
        }
    }
    store.close().await;
    Ok(bytes)
}

/// Whether a hello page that says more is followed by a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Catch {
    /// Subscribe from the page's end up to the live marker.
    Up,
    /// Say hello again.
    No,
}

/// Says hello with the cursor until nothing more is waiting, catching up
/// by subscription in between if asked to; returns the time it took and
/// how many hellos.
async fn pull_all(
    connection: &Connection,
    stream: StreamId,
    expected: usize,
    catch: Catch,
) -> Result<(Duration, usize)> {
    let started = Instant::now();
    let (mut position, mut received, mut hellos) = (0u64, 0usize, 0usize);
    loop {
        let cursors = BoundedVec::new(vec![Cursor { stream, position }])
            .map_err(|_| anyhow::anyhow!("one cursor fits"))?;
        let hello = Request::Hello(HelloRequest {
            cursors,
            outbox: BoundedVec::empty(),
        });
        hellos += 1;
        let Response::Synced(synced) = request(connection, &hello).await? else {
            bail!("unexpected answer to hello");
        };
        let mut behind = false;
        for page in synced.pages.iter().filter(|p| p.stream == stream) {
            received += page.entries.len();
            if let Some(last) = page.entries.as_slice().last() {
                position = last.position;
            }
            behind |= page.more;
        }
        if behind && catch == Catch::Up {
            let (count, last) = pull_subscribed(connection, stream, position).await?;
            received += count;
            position = last;
        }
        if !synced.more && !behind {
            break;
        }
    }
    if received != expected || usize::try_from(position)? != expected {
        bail!("pulled {received} entries up to {position}, expected {expected}");
    }
    Ok((started.elapsed(), hellos))
}

/// Subscribes after `after` and reads until the relay says the
/// subscription is live; returns the entries received and the live
/// position.
async fn pull_subscribed(
    connection: &Connection,
    stream: StreamId,
    after: u64,
) -> Result<(usize, u64)> {
    let mut subscription = connection
        .subscribe(SubscribeRequest { stream, after })
        .await?;
    let mut received = 0usize;
    loop {
        let event = tokio::time::timeout(WAIT, subscription.next())
            .await
            .context("subscription stalled")??
            .context("subscription ended")?;
        match event {
            SubscriptionEvent::Entries(entries) => received += entries.len(),
            SubscriptionEvent::Live { position } => return Ok((received, position)),
            SubscriptionEvent::Expired(_) => bail!("a stream expired in a relay without retention"),
            SubscriptionEvent::End(error) => bail!("subscription ended: {error:?}"),
        }
    }
}

/// The time a bare quinn server takes to push `bytes` on one stream to a
/// client that asked with one small frame.
async fn raw_push(bytes: u64) -> Result<Duration> {
    let (server, pin) = net::bare_server()?;
    let addr = server.local_addr()?;
    let pusher = tokio::spawn(serve_push(server.clone(), bytes));
    let endpoint = net::client_endpoint(pin)?;
    let connection = net::connect(&endpoint, addr).await?;
    let started = Instant::now();
    let (mut send, mut recv) = connection.open_bi().await?;
    send.write_all(&Request::Status.to_frame()).await?;
    let mut received = 0u64;
    while let Some(chunk) = tokio::time::timeout(WAIT, recv.read_chunk(usize::MAX, true))
        .await
        .context("raw push stalled")??
    {
        received += chunk.bytes.len() as u64;
    }
    let elapsed = started.elapsed();
    connection.close(0u32.into(), b"done");
    endpoint.wait_idle().await;
    pusher.await??;
    server.close(0u32.into(), b"done");
    if received != bytes {
        bail!("raw push delivered {received} of {bytes} bytes");
    }
    Ok(elapsed)
}

async fn serve_push(server: quinn::Endpoint, bytes: u64) -> Result<()> {
    let incoming = server.accept().await.context("no client")?;
    let connection = incoming.await?;
    let (mut send, mut recv) = connection.accept_bi().await?;
    read_frame(&mut recv).await?.context("no request")?;
    let chunk = vec![0x5a; RAW_CHUNK];
    let mut left = bytes;
    while left > 0 {
        let take = usize::try_from(left)?.min(RAW_CHUNK);
        send.write_all(chunk.get(..take).unwrap_or_default())
            .await?;
        left -= take as u64;
    }
    send.finish()?;
    connection.closed().await;
    Ok(())
}
