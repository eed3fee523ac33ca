//! A bounded soak: minutes of mixed load on a relay in its own process
//! (publishers that reconnect every so often, live subscribers, slow
//! readers that fall behind and catch up from storage), reading the
//! relay's resident memory every second. Memory must not grow with time:
//! the figure is the end's RSS against the start's, and the slope over
//! the second half.
//!
//! The relay is as near a steady state as the store's rules allow:
//! publishers post to their friends streams, which the relay's retention
//! empties of what is older than [`KEPT`]. (Without it the database grew
//! by 1.6 GB in two minutes, and the relay's memory with it.) The file
//! still grows, more slowly: an expired envelope leaves its id and seq
//! rows as a tombstone, so that a resend of it stays a duplicate
//! (`spec/storage.md` 5.5).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use cairn_relay::config::Retention;
use cairn_wire::{Scope, StreamId, SubscribeRequest, SubscriptionEvent};
use tokio::task::JoinSet;

use crate::ident::{Device, PAYLOAD_LEN, User};
use crate::relay::{Child, Serves, Setup};
use crate::report::{Figure, Report, Target};
use crate::requests;

/// Users of this scenario.
const DOMAIN: u8 = 6;

/// How long and how hard.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// The load's duration.
    pub duration: Duration,
    /// Publishers, each its own user.
    pub publishers: u32,
    /// Live subscribers (one per publisher, round robin).
    pub subscribers: u32,
    /// Of them, readers that take one event per [`SLOW_READ`].
    pub slow: u32,
    /// A publisher opens a new connection after this many appends.
    pub reconnect_every: u64,
    /// Load before the first memory reading counts.
    pub warmup: Duration,
}

impl Size {
    /// Six minutes, as `cargo xtask bench` runs it; the first two are the
    /// warm-up, in which the first posts expire and the relay's caches and
    /// buffers fill.
    pub const FULL: Self = Self {
        duration: Duration::from_secs(360),
        publishers: 16,
        subscribers: 16,
        slow: 4,
        reconnect_every: 200,
        warmup: Duration::from_secs(120),
    };
    /// A few seconds, to keep the scenario working.
    pub const SMOKE: Self = Self {
        duration: Duration::from_secs(3),
        publishers: 2,
        subscribers: 2,
        slow: 1,
        reconnect_every: 20,
        warmup: Duration::from_secs(1),
    };
}

/// How long the relay keeps a post.
const KEPT: Duration = Duration::from_secs(10);

/// How often it expires what is older.
const EXPIRY_EVERY: Duration = Duration::from_secs(2);

/// The scope published to and followed: one that expires.
const SCOPE: Scope = Scope::Friends;

/// How long a slow reader takes per event.
const SLOW_READ: Duration = Duration::from_millis(100);

/// Runs the soak; `relay_bin` is the relay to run (else this program's
/// own `serve-relay`).
pub async fn run(size: Size, relay_bin: Option<&Path>) -> Result<Report> {
    let retention = Retention {
        friends: Some(KEPT),
        direct: None,
        every: EXPIRY_EVERY,
    };
    let setup = Setup {
        retention,
        ..Setup::default()
    };
    let relay = Child::spawn_with(Serves::Relay(relay_bin), setup)?;
    let stop = Arc::new(AtomicBool::new(false));
    let appends = Arc::new(AtomicU64::new(0));
    let delivered = Arc::new(AtomicU64::new(0));
    // Each device is made once (its certificate carries the time it was
    // made) and registered before the load starts.
    let devices: Vec<Device> = (0..size.publishers)
        .map(|n| User::in_domain(DOMAIN, n).device(0))
        .collect();
    for device in &devices {
        requests::open(relay.addr, relay.pin, device)
            .await?
            .close()
            .await;
    }
    let mut load = JoinSet::new();
    for device in devices.iter().cloned() {
        let (stop, appends) = (Arc::clone(&stop), Arc::clone(&appends));
        let (addr, pin) = (relay.addr, relay.pin);
        load.spawn(async move { publish(addr, pin, device, size, &stop, &appends).await });
    }
    for n in 0..size.subscribers {
        let Some(device) = devices.get(n as usize % devices.len().max(1)).cloned() else {
            break;
        };
        let slow = n < size.slow;
        let (stop, delivered) = (Arc::clone(&stop), Arc::clone(&delivered));
        let (addr, pin) = (relay.addr, relay.pin);
        load.spawn(async move { follow(addr, pin, device, slow, &stop, &delivered).await });
    }
    let samples = sample_memory(&relay, size.duration).await?;
    stop.store(true, Ordering::Relaxed);
    while let Some(done) = load.join_next().await {
        done??;
    }
    report(
        size,
        &samples,
        appends.load(Ordering::Relaxed),
        delivered.load(Ordering::Relaxed),
    )
}

/// The relay's RSS every second for `duration`: (seconds since start,
/// bytes).
async fn sample_memory(relay: &Child, duration: Duration) -> Result<Vec<(f64, f64)>> {
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < duration {
        tokio::time::sleep(Duration::from_secs(1).min(duration)).await;
        samples.push((started.elapsed().as_secs_f64(), relay.rss_bytes()? as f64));
    }
    Ok(samples)
}

/// Appends one envelope at a time to the device's friends stream, on a
/// new connection every `size.reconnect_every` appends, until stopped.
async fn publish(
    addr: std::net::SocketAddr,
    pin: cairn_wire::Fingerprint,
    device: Device,
    size: Size,
    stop: &AtomicBool,
    appends: &AtomicU64,
) -> Result<()> {
    let mut seq = 1;
    let payload = vec![0x5a; PAYLOAD_LEN];
    while !stop.load(Ordering::Relaxed) {
        let connection = requests::open(addr, pin, &device).await?;
        for _ in 0..size.reconnect_every {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let envelope = device.envelope(seq, SCOPE, &payload);
            requests::append_stored(&connection, vec![envelope]).await?;
            appends.fetch_add(1, Ordering::Relaxed);
            seq += 1;
        }
        connection.close().await;
    }
    Ok(())
}

/// Follows the device's friends stream live from the start, slowly if
/// `slow`, until stopped; a reader that falls behind the retention
/// horizon is told what expired and goes on after it.
async fn follow(
    addr: std::net::SocketAddr,
    pin: cairn_wire::Fingerprint,
    device: Device,
    slow: bool,
    stop: &AtomicBool,
    delivered: &AtomicU64,
) -> Result<()> {
    let connection = requests::open(addr, pin, &device).await?;
    let stream = StreamId::new(device.user, SCOPE);
    let mut subscription = connection
        .subscribe(SubscribeRequest { stream, after: 0 })
        .await?;
    while !stop.load(Ordering::Relaxed) {
        let event = tokio::time::timeout(Duration::from_millis(500), subscription.next()).await;
        if let Ok(event) = event {
            if let Some(SubscriptionEvent::Entries(entries)) = event? {
                delivered.fetch_add(entries.len() as u64, Ordering::Relaxed);
            }
            if slow {
                tokio::time::sleep(SLOW_READ).await;
            }
        }
    }
    connection.close().await;
    Ok(())
}

/// Least-squares slope of `samples`, in bytes per second.
fn slope(samples: &[(f64, f64)]) -> f64 {
    let n = samples.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mean_t, mean_y) = samples
        .iter()
        .fold((0.0, 0.0), |(t, y), (st, sy)| (t + st / n, y + sy / n));
    let (num, den) = samples.iter().fold((0.0, 0.0), |(num, den), (t, y)| {
        (
            num + (t - mean_t) * (y - mean_y),
            den + (t - mean_t).powi(2),
        )
    });
    if den == 0.0 { 0.0 } else { num / den }
}

fn report(size: Size, samples: &[(f64, f64)], appends: u64, delivered: u64) -> Result<Report> {
    let warm = size.warmup.as_secs_f64();
    let counted: Vec<(f64, f64)> = samples
        .iter()
        .copied()
        .filter(|(t, _)| *t >= warm)
        .collect();
    let mib = |bytes: f64| bytes / (1024.0 * 1024.0);
    let start = counted.first().map_or(0.0, |(_, y)| *y);
    let end = counted.last().map_or(0.0, |(_, y)| *y);
    let half = counted.len() / 2;
    let second_half = counted.get(half..).unwrap_or_default();
    let per_minute = slope(second_half) * 60.0;
    let minutes = size.duration.as_secs_f64() / 60.0;
    let mut report = Report::default();
    report.figures.push(
        Figure::plain("soak", "relay RSS at the end of the soak", mib(end), "MiB")
            .against("relay RSS after warm-up", mib(start), Some("MiB"))
            .target(Target::AtMost(1.25)),
    );
    report.figures.push(Figure::plain(
        "soak",
        "appends during the soak",
        appends as f64 / size.duration.as_secs_f64(),
        "envelopes/s",
    ));
    report.notes.push(format!(
        "{minutes:.1} min of load on a relay process (page cache {} MiB, posts kept {} s, expired every {} s): \
         {} publishers reconnecting every {} appends, {} live subscribers of which {} read one event per {} ms; \
         {appends} appends, \
         {delivered} entries delivered; RSS sampled every second, the first {:.0} s not counted; \
         RSS slope over the second half {:+.0} KiB/min (a slope, so it may be negative)",
        crate::relay::CHILD_CACHE_BYTES / (1024 * 1024),
        KEPT.as_secs(),
        EXPIRY_EVERY.as_secs(),
        size.publishers,
        size.reconnect_every,
        size.subscribers,
        size.slow,
        SLOW_READ.as_millis(),
        warm,
        per_minute / 1024.0,
    ));
    Ok(report)
}
