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
//! divided by the connection count is the cost of one.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::task::JoinSet;

use crate::ident::{Device, User};
use crate::net;
use crate::relay::{Child, InProcess};
use crate::report::{Figure, Report, Target, rate};

const SCENARIO: &str = "connect";
/// Identity domain of the connecting devices.
const DOMAIN: u8 = 4;
/// Identity domain of the idle connections' users.
const IDLE_DOMAIN: u8 = 5;

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
    let (authenticated, bare) = connect_rates(size).await?;
    let idle = idle_memory(size, relay_bin).await?;
    let per_connection_kib = idle.growth as f64 / size.idle.max(1) as f64 / 1024.0;
    let figures = vec![
        Figure::plain(
            SCENARIO,
            "authenticated connects (connect, authenticate, close)",
            authenticated,
            "connects/s",
        )
        .target(Target::AtLeast(0.7))
        .against(
            "bare quinn handshakes (connect, close), same TLS set-up",
            bare,
            Some("handshakes/s"),
        ),
        Figure::plain(
            SCENARIO,
            &format!(
                "relay memory per idle authenticated connection, {} open",
                size.idle
            ),
            per_connection_kib,
            "KiB",
        ),
        Figure::plain(
            SCENARIO,
            &format!("relay resident set with {} idle connections", size.idle),
            idle.total as f64 / f64::from(1 << 20),
            "MiB",
        ),
    ];
    let notes = vec![
        format!(
            "connects: {} workers on one client endpoint, {} connects per round cycling \
             through {} registered devices, best of {} alternating rounds",
            size.workers, size.connects, size.devices, size.rounds
        ),
        format!(
            "memory: {} relay process, VmRSS {:.1} MiB before (one connection open) and \
             {:.1} MiB after {} more authenticated connections of new users, opened {} at \
             a time in {:.1} s, then idle for {:.1} s",
            if relay_bin.is_some() {
                "a `cairn-relay serve`"
            } else {
                "a child (`cairn-load serve-relay`)"
            },
            idle.before as f64 / f64::from(1 << 20),
            idle.total as f64 / f64::from(1 << 20),
            size.idle,
            size.idle_workers,
            idle.opening.as_secs_f64(),
            size.settle.as_secs_f64()
        ),
    ];
    Ok(Report { figures, notes })
}

/// Best authenticated and bare connect rates over alternating rounds.
async fn connect_rates(size: Size) -> Result<(f64, f64)> {
    let relay = InProcess::start().await?;
    let (server, bare_pin) = net::bare_server()?;
    let acceptor = tokio::spawn(accept_and_hold(server.clone()));
    let devices: Arc<Vec<Device>> = Arc::new(
        (0..u32::try_from(size.devices)?)
            .map(|n| User::new(DOMAIN, n).device(0))
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
    for _ in 0..size.rounds.max(1) {
        let peer = Peer::Bare(server.local_addr()?);
        bare = bare.max(round(&bare_endpoint, peer, &devices, size).await?);
        let peer = Peer::Relay(relay.addr());
        authenticated = authenticated.max(round(&relay_endpoint, peer, &devices, size).await?);
    }
    for endpoint in [relay_endpoint, bare_endpoint] {
        let _ = tokio::time::timeout(size.settle, endpoint.wait_idle()).await;
    }
    acceptor.abort();
    server.close(0u32.into(), b"done");
    relay.stop().await;
    Ok((authenticated, bare))
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

/// The bare server's side: complete each handshake and hold the
/// connection until the client closes it.
async fn accept_and_hold(server: quinn::Endpoint) {
    while let Some(incoming) = server.accept().await {
        tokio::spawn(async move {
            if let Ok(connection) = incoming.await {
                connection.closed().await;
            }
        });
    }
}

/// The child relay's resident set before and after the idle connections.
struct IdleMemory {
    before: u64,
    total: u64,
    growth: u64,
    opening: Duration,
}

async fn idle_memory(size: Size, relay_bin: Option<&Path>) -> Result<IdleMemory> {
    let relay = Child::spawn(relay_bin)?;
    let endpoint = net::client_endpoint(relay.pin)?;
    let first = User::new(IDLE_DOMAIN, 0).device(0);
    let warm = net::connect_authenticated(&endpoint, relay.addr, &first).await?;
    tokio::time::sleep(size.settle).await;
    let before = relay.rss_bytes()?;
    let started = Instant::now();
    let held = open_idle(&endpoint, relay.addr, size).await?;
    let opening = started.elapsed();
    tokio::time::sleep(size.settle).await;
    let total = relay.rss_bytes()?;
    for connection in held.iter().chain([&warm]) {
        connection.close(0u32.into(), b"done");
    }
    let _ = tokio::time::timeout(size.settle, endpoint.wait_idle()).await;
    drop(relay);
    Ok(IdleMemory {
        before,
        total,
        growth: total.saturating_sub(before),
        opening,
    })
}

/// Opens `size.idle` authenticated connections, each as the first device
/// of a new user, `size.idle_workers` at a time.
async fn open_idle(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    size: Size,
) -> Result<Vec<quinn::Connection>> {
    let workers = size.idle_workers.max(1);
    let mut tasks = JoinSet::new();
    for worker in 0..workers {
        let endpoint = endpoint.clone();
        tasks.spawn(async move {
            let mut held = Vec::new();
            for n in (worker..size.idle).step_by(workers) {
                let device = User::new(IDLE_DOMAIN, u32::try_from(n + 1)?).device(0);
                held.push(net::connect_authenticated(&endpoint, addr, &device).await?);
            }
            anyhow::Ok(held)
        });
    }
    let mut all = Vec::with_capacity(size.idle);
    while let Some(done) = tasks.join_next().await {
        all.extend(done??);
    }
    Ok(all)
}
