//! Connections: how fast registered devices connect and authenticate, and
//! what an idle authenticated connection costs the relay in memory.
//!
//! Connect rate: workers on one shared client endpoint each connect,
//! authenticate (exporter proof, certificate, registry lookup) and close,
//! over and over, cycling through devices registered beforehand. Baseline,
//! same run: the same workers doing bare quinn handshakes (connect and
//! close, no request) against a bare server with the relay's TLS set-up.
//! The two alternate for a few rounds and each keeps its best round, the
//! one least disturbed by other work on the machine.
//!
//! Memory: a `cairn-relay serve` child process (so that only the relay's
//! memory is counted) is sent thousands of authenticated connections of
//! distinct new users that then stay idle; the growth of its resident set
//! divided by the connection count is the cost of one. A bare quinn server
//! in a child process, sent as many handshakes, shows how much of that is
//! QUIC and TLS state that any server on quinn holds.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cairn_relay::config::Limits;
use tokio::task::JoinSet;

use crate::ident::{Device, User};
use crate::net;
use crate::net::BareTransport;
use crate::relay::{Child, Placement, Serves, Setup, UnderTest, bench_limits};
use crate::report::{Figure, Report, Target, rate};

const SCENARIO: &str = "connect";
/// Identity domain of the connecting devices.
const DOMAIN: u8 = 4;
/// Identity domain of the idle connections' users.
const IDLE_DOMAIN: u8 = 5;
/// What an idle authenticated connection may cost the relay, in KiB.
const IDLE_CONNECTION_KIB: f64 = 40.0;
/// Authenticated connects should reach this share of bare handshakes.
const CONNECT_TARGET: f64 = 0.9;
/// The baseline of the connect rate.
const BARE: &str = "bare quinn handshakes (connect, close), same TLS set-up";

/// How many connections.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// Registered devices the connects cycle through.
    pub devices: usize,
    /// Concurrent connecting workers.
    pub workers: usize,
    /// Connects per round.
    pub connects: usize,
    /// Rounds of each kind, alternating.
    pub rounds: usize,
    /// Idle authenticated connections held for the memory figure.
    pub idle: usize,
    /// Concurrent connects while opening the idle connections.
    pub idle_workers: usize,
    /// How long the relay settles before its memory is read.
    pub settle: Duration,
}

impl Size {
    /// The figures of record: 5k idle connections.
    pub const FULL: Self = Self {
        devices: 64,
        workers: 16,
        connects: 2000,
        rounds: 3,
        idle: 5000,
        idle_workers: 64,
        settle: Duration::from_secs(2),
    };
    /// A quick check that the scenario still works.
    pub const SMOKE: Self = Self {
        devices: 4,
        workers: 2,
        connects: 16,
        rounds: 1,
        idle: 16,
        idle_workers: 8,
        settle: Duration::from_millis(100),
    };
}

/// Runs the connect-rate comparison and the idle memory measurement.
pub async fn run(size: Size, relay_bin: Option<&Path>) -> Result<Report> {
    let here = connect_rates(size, Placement::InProcess).await?;
    let apart = connect_rates(size, Placement::Process(relay_bin)).await?;
    let relay = idle_memory(size, Serves::Relay(relay_bin), BareTransport::RelayDefault).await?;
    let quinn = idle_memory(size, Serves::Bare, BareTransport::RelayDefault).await?;
    let quinn_default = idle_memory(size, Serves::Bare, BareTransport::QuinnDefault).await?;
    let per_connection = relay.per_connection_kib(size.idle);
    let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    let figures = vec![
        Figure::plain(
            SCENARIO,
            "authenticated connects (connect, authenticate, close)",
            here.authenticated,
            "connects/s",
        )
        .target(Target::AtLeast(CONNECT_TARGET))
        .against(BARE, here.bare, Some("handshakes/s")),
        Figure::plain(
            SCENARIO,
            "relay process: authenticated connects (connect, authenticate, close)",
            apart.authenticated,
            "connects/s",
        )
        .target(Target::AtLeast(CONNECT_TARGET))
        .against(BARE, apart.bare, Some("handshakes/s")),
        Figure::plain(
            SCENARIO,
            "relay process: its CPU per authenticated connect",
            apart.relay_cpu_us,
            "us",
        ),
        Figure::plain(
            SCENARIO,
            &format!(
                "relay memory per idle authenticated connection, {} open",
                size.idle
            ),
            per_connection,
            "KiB",
        )
        .target(Target::ValueAtMost(IDLE_CONNECTION_KIB))
        .against(
            "bare quinn server with the relay's transport settings, per idle connection",
            quinn.per_connection_kib(size.idle),
            None,
        ),
        Figure::plain(
            SCENARIO,
            "relay memory per idle authenticated connection, as above",
            per_connection,
            "KiB",
        )
        .against(
            "bare quinn server with quinn's default transport, per idle connection",
            quinn_default.per_connection_kib(size.idle),
            None,
        ),
        Figure::plain(
            SCENARIO,
            &format!("relay resident set with {} idle connections", size.idle),
            mib(relay.total),
            "MiB",
        ),
    ];
    let relay_process = match relay_bin {
        Some(_) => "a `cairn-relay serve` child process",
        None => "a child process (`cairn-load serve-relay`)",
    };
    let notes = vec![
        format!(
            "connects: {} workers on one client endpoint, full handshakes (no session \
             resumption, as `cairn-client` makes none), {} connects per round cycling \
             through {} registered devices, best of {} alternating rounds",
            size.workers, size.connects, size.devices, size.rounds
        ),
        format!(
            "memory: {relay_process}, VmRSS {:.1} MiB with one connection open, {:.1} MiB \
             after {} more authenticated connections of new users (each registers its \
             user), opened {} at a time in {:.1} s, then idle for {:.1} s; the relay runs \
             its default transport limits ({} streams per connection, no datagrams); the \
             bare quinn server (`cairn-load serve-bare`, same TLS set-up) went from {:.1} \
             to {:.1} MiB with the same number of handshakes with the relay's transport \
             settings, and from {:.1} to {:.1} MiB with quinn's defaults (100 streams each \
             way, datagrams on)",
            mib(relay.before),
            mib(relay.total),
            size.idle,
            size.idle_workers,
            relay.opening.as_secs_f64(),
            size.settle.as_secs_f64(),
            Limits::default().streams_per_connection,
            mib(quinn.before),
            mib(quinn.total),
            mib(quinn_default.before),
            mib(quinn_default.total),
        ),
    ];
    Ok(Report { figures, notes })
}

/// What the connect rounds measured.
struct Rates {
    /// Best authenticated connects per second.
    authenticated: f64,
    /// Best bare handshakes per second.
    bare: f64,
    /// The relay process's CPU per authenticated connect, in microseconds
    /// (0 in this process).
    relay_cpu_us: f64,
}

/// Best authenticated and bare connect rates over alternating rounds,
/// against a relay placed as `placement` says.
async fn connect_rates(size: Size, placement: Placement<'_>) -> Result<Rates> {
    let relay = UnderTest::start(placement).await?;
    let (server, bare_pin) = net::bare_server()?;
    let acceptor = tokio::spawn(net::accept_and_hold(server.clone()));
    let devices: Arc<Vec<Device>> = Arc::new(
        (0..u32::try_from(size.devices)?)
            .map(|n| User::in_domain(DOMAIN, n).device(0))
            .collect(),
    );
    let relay_endpoint = net::client_endpoint(relay.pin())?;
    for device in devices.iter() {
        net::connect_authenticated(&relay_endpoint, relay.addr(), device)
            .await?
            .close(0u32.into(), b"registered");
    }
    let bare_endpoint = net::client_endpoint(bare_pin)?;
    let (mut authenticated, mut bare) = (0f64, 0f64);
    let mut relay_cpu = 0.0;
    let rounds = size.rounds.max(1);
    for _ in 0..rounds {
        let peer = Peer::Bare(server.local_addr()?);
        bare = bare.max(round(&bare_endpoint, peer, &devices, size).await?);
        let peer = Peer::Relay(relay.addr());
        let cpu = relay.cpu_seconds()?;
        authenticated = authenticated.max(round(&relay_endpoint, peer, &devices, size).await?);
        relay_cpu += relay.cpu_seconds()? - cpu;
    }
    for endpoint in [relay_endpoint, bare_endpoint] {
        let _ = tokio::time::timeout(size.settle, endpoint.wait_idle()).await;
    }
    acceptor.abort();
    server.close(0u32.into(), b"done");
    relay.stop().await;
    Ok(Rates {
        authenticated,
        bare,
        relay_cpu_us: relay_cpu * 1e6 / (rounds * size.connects).max(1) as f64,
    })
}

/// Where a round connects.
#[derive(Debug, Clone, Copy)]
enum Peer {
    /// The relay: connect and authenticate.
    Relay(SocketAddr),
    /// The bare server: connect only.
    Bare(SocketAddr),
}

/// One round of connects; returns connects per second.
async fn round(
    endpoint: &quinn::Endpoint,
    peer: Peer,
    devices: &Arc<Vec<Device>>,
    size: Size,
) -> Result<f64> {
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for worker in 0..size.workers.max(1) {
        let (endpoint, devices) = (endpoint.clone(), devices.clone());
        workers.spawn(async move {
            for i in (worker..size.connects).step_by(size.workers.max(1)) {
                let device = devices.get(i % devices.len()).context("no devices")?;
                connect_once(&endpoint, peer, device).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    Ok(rate(size.connects, started.elapsed()))
}

async fn connect_once(endpoint: &quinn::Endpoint, peer: Peer, device: &Device) -> Result<()> {
    let connection = match peer {
        Peer::Relay(addr) => net::connect_authenticated(endpoint, addr, device).await?,
        Peer::Bare(addr) => net::connect(endpoint, addr).await?,
    };
    connection.close(0u32.into(), b"bye");
    Ok(())
}

/// A child server's resident set before and after the idle connections.
struct IdleMemory {
    before: u64,
    total: u64,
    opening: Duration,
}

impl IdleMemory {
    /// Growth per connection, in KiB.
    fn per_connection_kib(&self, connections: usize) -> f64 {
        self.total.saturating_sub(self.before) as f64 / connections.max(1) as f64 / 1024.0
    }
}

/// Opens one connection, lets the server settle and reads its memory,
/// opens `size.idle` more, lets it settle and reads it again.
async fn idle_memory(size: Size, serves: Serves<'_>, bare: BareTransport) -> Result<IdleMemory> {
    // The relay's rates stay out of the way, but its transport limits are
    // the ones it ships with: those are what an operator's relay holds.
    let defaults = Limits::default();
    let limits = Limits {
        streams_per_connection: defaults.streams_per_connection,
        subscriptions_per_connection: defaults.subscriptions_per_connection,
        ..bench_limits()
    };
    let setup = Setup {
        limits,
        bare,
        ..Setup::default()
    };
    let server = Child::spawn_with(serves, setup)?;
    let endpoint = net::client_endpoint(server.pin)?;
    let warm = open_idle(&endpoint, server.addr, serves, 0..1, 1).await?;
    tokio::time::sleep(size.settle).await;
    let before = server.rss_bytes()?;
    let started = Instant::now();
    let held = open_idle(
        &endpoint,
        server.addr,
        serves,
        1..size.idle + 1,
        size.idle_workers,
    )
    .await?;
    let opening = started.elapsed();
    tokio::time::sleep(size.settle).await;
    let total = server.rss_bytes()?;
    for connection in held.iter().chain(&warm) {
        connection.close(0u32.into(), b"done");
    }
    let _ = tokio::time::timeout(size.settle, endpoint.wait_idle()).await;
    drop(server);
    Ok(IdleMemory {
        before,
        total,
        opening,
    })
}

/// Opens a connection for each user number in `users`, `workers` at a
/// time: to a relay, authenticated as the first device of a new user; to
/// a bare server, handshake only.
async fn open_idle(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    serves: Serves<'_>,
    users: std::ops::Range<usize>,
    workers: usize,
) -> Result<Vec<quinn::Connection>> {
    let authenticate = matches!(serves, Serves::Relay(_));
    let workers = workers.max(1);
    let mut tasks = JoinSet::new();
    for worker in 0..workers {
        let (endpoint, users) = (endpoint.clone(), users.clone());
        tasks.spawn(async move {
            let mut held = Vec::new();
            for n in users.skip(worker).step_by(workers) {
                let device = User::in_domain(IDLE_DOMAIN, u32::try_from(n)?).device(0);
                held.push(match authenticate {
                    true => net::connect_authenticated(&endpoint, addr, &device).await?,
                    false => net::connect(&endpoint, addr).await?,
                });
            }
            anyhow::Ok(held)
        });
    }
    let mut all = Vec::with_capacity(users.len());
    while let Some(done) = tasks.join_next().await {
        all.extend(done??);
    }
    Ok(all)
}
