//! Live fan-out: one publisher appends to its friends stream, and every
//! subscription to that stream receives every entry.
//!
//! Subscribers are friend users (granted by the publisher), a few
//! subscriptions per connection. Each payload starts with the time it was
//! made, so that each subscriber measures publish-to-delivery latency as
//! it decodes the entry. Two phases on the same subscriptions:
//! - paced: one envelope per append every [`PACE`], so that latency is
//!   what a reader sees on a relay that is not saturated;
//! - burst: batches of envelopes, one append in flight, as fast as the
//!   relay acknowledges them; deliveries per second run from the first
//!   append to the last delivery.
//!
//! Baseline, same run, same connection layout and phases: a bare quinn
//! server writes the same frames (the relay's encoding of a one-entry
//! subscription event, stamped the same way) on one stream per
//! subscriber, from one task per stream that writes whatever is queued in
//! one go, as the relay's subscriptions do.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use cairn_client::{Connection, Subscription};
use cairn_wire::frames::FRAME_HEADER_LEN;
use cairn_wire::limits::MAX_FRAME_LEN;
use cairn_wire::{
    BoundedVec, Entry, Envelope, Request, Response, Scope, StreamId, SubscribeRequest,
    SubscriptionEvent,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::ident::{
    Device, PAYLOAD_LEN, User, age_of_stamp, overwrite, stamp_now, stamped_payload,
};
use crate::net;
use crate::relay::{Cost, Placement, Setup, UnderTest};
use crate::report::{Figure, Latencies, P50, P99, Report, Target, rate};
use crate::requests::{WAIT, append_stored, grant_friend, open};

const SCENARIO: &str = "fanout";
/// Identity domain of this scenario's users.
const DOMAIN: u8 = 2;
/// Signature bytes at the end of an encoded envelope.
const SIGNATURE_LEN: usize = 64;
/// Time between two envelopes of the paced phase.
const PACE: Duration = Duration::from_millis(20);
/// What a subscriber of a relay process should wait for a paced envelope
/// at worst (p99), in ms.
const PACED_P99_MS: f64 = 10.0;
/// The most memory a relay process should hold while it fans out, in MiB.
const PEAK_RSS_MIB: f64 = 64.0;
/// Batches a raw writer may have queued: 1024 entries, as many as a
/// relay subscriber's queue holds.
const RAW_QUEUE: usize = 64;

/// How much to fan out.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// Subscriptions in all.
    pub subscribers: usize,
    /// Subscriptions per connection.
    pub per_connection: usize,
    /// Envelopes published one at a time, [`PACE`] apart.
    pub paced: usize,
    /// Envelopes published as fast as possible.
    pub messages: usize,
    /// Envelopes per append request, as fast as possible.
    pub batch: usize,
}

impl Size {
    /// 100 subscribers, each on a connection of its own, as 100 users'
    /// devices would be.
    pub const FULL_100: Self = Self {
        subscribers: 100,
        per_connection: 1,
        paced: 50,
        messages: 1000,
        batch: 64,
    };
    /// 1000 subscribers, each on a connection of its own.
    pub const FULL_1000: Self = Self {
        subscribers: 1000,
        per_connection: 1,
        paced: 50,
        messages: 200,
        batch: 64,
    };
    /// A quick check that the scenario still works.
    pub const SMOKE: Self = Self {
        subscribers: 6,
        per_connection: 4,
        paced: 2,
        messages: 8,
        batch: 3,
    };

    fn connections(self) -> usize {
        self.subscribers.div_ceil(self.per_connection.max(1))
    }

    /// How many subscriptions connection `c` carries.
    fn on_connection(self, c: usize) -> usize {
        let before = c * self.per_connection;
        self.per_connection
            .min(self.subscribers.saturating_sub(before))
    }

    fn per_subscriber(self) -> usize {
        self.paced + self.messages
    }
}

/// What one side of the comparison measured.
struct Run {
    /// From the first burst append to the last burst delivery.
    burst: Duration,
    /// Latencies of the paced phase.
    paced: Latencies,
}

/// Runs the relay fan-out, in this process and as a process of its own
/// (`relay_bin`, else this program's `serve-relay`), and its raw quinn
/// baseline.
pub async fn run(size: Size, relay_bin: Option<&Path>) -> Result<Report> {
    let (mut relay, _) = relay_run(size, Placement::InProcess).await?;
    let (mut process, cost) = relay_run(size, Placement::Process(relay_bin)).await?;
    let mut raw = raw_run(size).await?;
    let deliveries = size.subscribers * size.messages;
    let n = size.subscribers;
    let mut figures = vec![
        Figure::plain(
            SCENARIO,
            &format!("fan-out to {n} subscribers, burst"),
            rate(deliveries, relay.burst),
            "deliveries/s",
        )
        .target(Target::AtLeast(0.5))
        .against(
            "raw quinn: same frames, one server stream per subscriber",
            rate(deliveries, raw.burst),
            None,
        ),
        Figure::plain(
            SCENARIO,
            &format!("fan-out to {n}, paced: publish-to-delivery p50"),
            relay.paced.quantile_ms(P50),
            "ms",
        )
        .against("raw quinn p50", raw.paced.quantile_ms(P50), None),
        Figure::plain(
            SCENARIO,
            &format!("fan-out to {n}, paced: publish-to-delivery p99"),
            relay.paced.quantile_ms(P99),
            "ms",
        )
        .against("raw quinn p99", raw.paced.quantile_ms(P99), None),
    ];
    figures.extend(process_figures(size, &mut process, cost, &mut raw));
    let mut notes = vec![format!(
        "fan-out to {n}: {} connections of {} subscriptions; paced phase: {} envelopes of \
         {PAYLOAD_LEN} B payload, one per append, {} ms apart, latency from making the \
         envelope (before signing and the durable commit) to decoding it at the \
         subscriber, over all {} deliveries; burst phase: {} envelopes in appends of {}, \
         one append in flight",
        size.connections(),
        size.per_connection,
        size.paced,
        PACE.as_millis(),
        size.paced * n,
        size.messages,
        size.batch
    )];
    notes.push(format!(
        "fan-out to {n}, relay as its own process: {} (as deployed), the same phases; its \
         CPU is what the process used from the first paced append to the last delivery, \
         its peak resident set the most it held at any time (VmHWM)",
        match relay_bin {
            Some(_) => "`cairn-relay serve`",
            None => "`cairn-load serve-relay`",
        }
    ));
    Ok(Report { figures, notes })
}

/// The figures of the run against a relay process.
fn process_figures(size: Size, process: &mut Run, cost: Cost, raw: &mut Run) -> Vec<Figure> {
    let n = size.subscribers;
    let deliveries = size.subscribers * size.per_subscriber();
    let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    vec![
        Figure::plain(
            SCENARIO,
            &format!("relay process: fan-out to {n} subscribers, burst"),
            rate(size.subscribers * size.messages, process.burst),
            "deliveries/s",
        )
        .target(Target::AtLeast(0.5))
        .against(
            "raw quinn: same frames, one server stream per subscriber",
            rate(size.subscribers * size.messages, raw.burst),
            None,
        ),
        Figure::plain(
            SCENARIO,
            &format!("relay process: fan-out to {n}, paced: publish-to-delivery p50"),
            process.paced.quantile_ms(P50),
            "ms",
        )
        .against("raw quinn p50", raw.paced.quantile_ms(P50), None),
        Figure::plain(
            SCENARIO,
            &format!("relay process: fan-out to {n}, paced: publish-to-delivery p99"),
            process.paced.quantile_ms(P99),
            "ms",
        )
        .target(Target::ValueAtMost(PACED_P99_MS))
        .against("raw quinn p99", raw.paced.quantile_ms(P99), None),
        Figure::plain(
            SCENARIO,
            &format!("relay process: peak resident set, {n} subscribers"),
            mib(cost.peak_rss),
            "MiB",
        )
        .target(Target::ValueAtMost(PEAK_RSS_MIB)),
        Figure::plain(
            SCENARIO,
            &format!(
                "relay process: resident set with {n} subscribers connected, before publishing"
            ),
            mib(cost.ready_rss),
            "MiB",
        ),
        Figure::plain(
            SCENARIO,
            &format!("relay process: CPU per delivery, {n} subscribers"),
            cost.cpu_seconds * 1e6 / deliveries.max(1) as f64,
            "us",
        ),
    ]
}

/// What one subscriber saw.
struct Tally {
    size: Size,
    seen: usize,
    paced: Latencies,
    last: Instant,
    /// Paced deliveries by all subscribers, so that the publisher knows
    /// when the paced phase is over.
    progress: Arc<AtomicUsize>,
}

impl Tally {
    fn new(size: Size, progress: Arc<AtomicUsize>) -> Self {
        Self {
            size,
            seen: 0,
            paced: Latencies::with_capacity(size.paced),
            last: Instant::now(),
            progress,
        }
    }

    /// Counts one delivery whose payload starts with `payload`.
    fn record(&mut self, payload: &[u8]) -> Result<()> {
        let age = age_of_stamp(payload).context("unstamped payload")?;
        if self.seen < self.size.paced {
            self.paced.record(age);
            self.progress.fetch_add(1, Ordering::Relaxed);
        }
        self.seen += 1;
        self.last = Instant::now();
        Ok(())
    }

    fn done(&self) -> bool {
        self.seen >= self.size.per_subscriber()
    }
}

/// Waits until every subscriber has every paced envelope.
async fn paced_delivered(progress: &AtomicUsize, size: Size) -> Result<()> {
    let expected = size.paced * size.subscribers;
    let waiting = Instant::now();
    while progress.load(Ordering::Relaxed) < expected {
        if waiting.elapsed() > WAIT {
            bail!("paced envelopes never all arrived");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

fn pacer() -> tokio::time::Interval {
    let mut tick = tokio::time::interval(PACE);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick
}

type Reader = JoinHandle<Result<Tally>>;

/// Joins the readers: the paced latencies, and the time from `started`
/// until the last delivery.
async fn gather(readers: Vec<Reader>, started: Instant) -> Result<Run> {
    let mut paced = Latencies::default();
    let mut last = started;
    for reader in readers {
        let tally = reader.await??;
        paced.merge(tally.paced);
        last = last.max(tally.last);
    }
    Ok(Run {
        burst: last - started,
        paced,
    })
}

// ---- through the relay ----

async fn relay_run(size: Size, placement: Placement<'_>) -> Result<(Run, Cost)> {
    let setup = Setup::shipped_transport(size.per_connection);
    let relay = UnderTest::start_with(placement, setup).await?;
    let publisher = User::in_domain(DOMAIN, 0);
    let device = publisher.device(0);
    let connection = open(relay.addr(), relay.pin(), &device).await?;
    let stream = StreamId::new(publisher.id, Scope::Friends);
    let progress = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    let mut held = Vec::new();
    for c in 0..size.connections() {
        let friend = User::in_domain(DOMAIN, u32::try_from(c + 1)?);
        grant_friend(&connection, publisher.grant(friend.id)).await?;
        let subscriber = open(relay.addr(), relay.pin(), &friend.device(0)).await?;
        for _ in 0..size.on_connection(c) {
            let subscription = subscribe_live(&subscriber, stream).await?;
            let tally = Tally::new(size, progress.clone());
            readers.push(tokio::spawn(read_entries(subscription, tally)));
        }
        held.push(subscriber);
    }
    let (cpu, ready_rss) = (relay.cpu_seconds()?, relay.rss()?);
    let started = publish(&connection, &device, size, &progress).await?;
    let run = gather(readers, started).await?;
    let cost = Cost {
        cpu_seconds: relay.cpu_seconds()? - cpu,
        peak_rss: relay.peak_rss()?,
        ready_rss,
    };
    for subscriber in held {
        subscriber.close().await;
    }
    connection.close().await;
    relay.stop().await;
    Ok((run, cost))
}

/// Subscribes from the start of the stream and waits until it is live.
async fn subscribe_live(connection: &Connection, stream: StreamId) -> Result<Subscription> {
    let mut subscription = connection
        .subscribe(SubscribeRequest { stream, after: 0 })
        .await?;
    match next_event(&mut subscription).await? {
        SubscriptionEvent::Live { .. } => Ok(subscription),
        SubscriptionEvent::Entries(_) => bail!("entries before anything was published"),
        SubscriptionEvent::Expired(_) => bail!("a stream expired in a relay without retention"),
        SubscriptionEvent::End(error) => bail!("subscription refused: {error:?}"),
    }
}

async fn next_event(subscription: &mut Subscription) -> Result<SubscriptionEvent> {
    tokio::time::timeout(WAIT, subscription.next())
        .await
        .context("subscription stalled")??
        .ok_or_else(|| anyhow!("subscription ended"))
}

/// Reads until every envelope arrived.
async fn read_entries(mut subscription: Subscription, mut tally: Tally) -> Result<Tally> {
    while !tally.done() {
        match next_event(&mut subscription).await? {
            SubscriptionEvent::Entries(entries) => {
                for entry in entries.iter() {
                    tally.record(entry.envelope.payload().as_slice())?;
                }
            }
            SubscriptionEvent::Live { .. } => {}
            SubscriptionEvent::Expired(_) => bail!("a stream expired in a relay without retention"),
            SubscriptionEvent::End(error) => bail!("subscription ended: {error:?}"),
        }
    }
    Ok(tally)
}

/// Publishes the paced phase, waits until it is delivered, then the burst;
/// returns when the burst started.
async fn publish(
    connection: &Connection,
    device: &Device,
    size: Size,
    progress: &AtomicUsize,
) -> Result<Instant> {
    let mut seq = 0u64;
    let mut sign = || {
        seq += 1;
        device.envelope(seq, Scope::Friends, &stamped_payload())
    };
    let mut tick = pacer();
    for _ in 0..size.paced {
        tick.tick().await;
        append_stored(connection, vec![sign()]).await?;
    }
    paced_delivered(progress, size).await?;
    let started = Instant::now();
    let mut left = size.messages;
    while left > 0 {
        let count = left.min(size.batch.max(1));
        let batch = (0..count).map(|_| sign()).collect::<Vec<_>>();
        append_stored(connection, batch).await?;
        left -= count;
    }
    Ok(started)
}

// ---- raw quinn ----

async fn raw_run(size: Size) -> Result<Run> {
    let (server, pin) = net::bare_server()?;
    let addr = server.local_addr()?;
    let (register, mut registered) = mpsc::channel(size.subscribers.max(1));
    let acceptor = tokio::spawn(accept_subscribers(server.clone(), register));
    let template = template_frame()?;
    let progress = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    let mut held = Vec::new();
    for c in 0..size.connections() {
        let endpoint = net::client_endpoint(pin)?;
        let connection = net::connect(&endpoint, addr).await?;
        for _ in 0..size.on_connection(c) {
            let (mut send, recv) = connection.open_bi().await?;
            send.write_all(&subscribe_frame()).await?;
            let tally = Tally::new(size, progress.clone());
            readers.push(tokio::spawn(read_raw(send, recv, tally)));
        }
        held.push((endpoint, connection));
    }
    let mut writers = Vec::with_capacity(size.subscribers);
    for _ in 0..size.subscribers {
        let send = registered
            .recv()
            .await
            .context("a subscriber never arrived")?;
        writers.push(spawn_writer(send));
    }
    let started = produce(&writers, &template, size, &progress).await?;
    let run = gather(readers, started).await?;
    drop(writers);
    for (endpoint, connection) in held {
        connection.close(0u32.into(), b"done");
        endpoint.wait_idle().await;
    }
    acceptor.abort();
    server.close(0u32.into(), b"done");
    Ok(run)
}

/// The request a subscriber sends, so that the baseline's streams carry
/// the same first bytes as the relay's.
fn subscribe_frame() -> Vec<u8> {
    let stream = StreamId::new(User::in_domain(DOMAIN, 0).id, Scope::Friends);
    Request::Subscribe(SubscribeRequest { stream, after: 0 }).to_frame()
}

/// The relay's frame for one live entry of this scenario; the producer
/// copies it and writes the stamp into the payload.
fn template_frame() -> Result<Vec<u8>> {
    let envelope: Envelope =
        User::in_domain(DOMAIN, 0)
            .device(0)
            .envelope(1, Scope::Friends, &[0xa5; PAYLOAD_LEN]);
    let entries = BoundedVec::new(vec![Entry {
        position: 1,
        envelope,
    }])
    .map_err(|_| anyhow!("one entry fits"))?;
    Ok(Response::Subscription(SubscriptionEvent::Entries(entries)).to_frame())
}

/// Where the payload starts in a frame: it is followed only by the
/// envelope's signature.
fn stamp_offset(frame_len: usize) -> usize {
    frame_len.saturating_sub(SIGNATURE_LEN + PAYLOAD_LEN)
}

/// Accepts connections and their streams; passes on each stream's send
/// half once its subscribe frame has been read.
async fn accept_subscribers(server: quinn::Endpoint, register: mpsc::Sender<quinn::SendStream>) {
    while let Some(incoming) = server.accept().await {
        let register = register.clone();
        tokio::spawn(async move {
            let Ok(connection) = incoming.await else {
                return;
            };
            while let Ok((send, mut recv)) = connection.accept_bi().await {
                if read_frame(&mut recv).await.is_ok_and(|f| f.is_some()) {
                    let _ = register.send(send).await;
                }
            }
        });
    }
}

type Batch = Arc<Vec<Vec<u8>>>;

/// One task per subscriber stream; it writes everything queued in one
/// go, as a relay subscription sends every queued entry in one frame.
fn spawn_writer(mut send: quinn::SendStream) -> mpsc::Sender<Batch> {
    let (tx, mut rx) = mpsc::channel::<Batch>(RAW_QUEUE);
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut bytes: Vec<u8> = first.concat();
            while let Ok(more) = rx.try_recv() {
                more.iter().for_each(|frame| bytes.extend_from_slice(frame));
            }
            if send.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = send.finish();
    });
    tx
}

/// Produces the paced phase, waits until it is delivered, then the burst
/// in the relay run's batches; returns when the burst started.
async fn produce(
    writers: &[mpsc::Sender<Batch>],
    template: &[u8],
    size: Size,
    progress: &AtomicUsize,
) -> Result<Instant> {
    let mut tick = pacer();
    for _ in 0..size.paced {
        tick.tick().await;
        hand_out(writers, stamped_frames(template, 1)).await?;
    }
    paced_delivered(progress, size).await?;
    let started = Instant::now();
    let mut left = size.messages;
    while left > 0 {
        let count = left.min(size.batch.max(1));
        hand_out(writers, stamped_frames(template, count)).await?;
        left -= count;
    }
    Ok(started)
}

/// `count` copies of the template, stamped now.
fn stamped_frames(template: &[u8], count: usize) -> Batch {
    let offset = stamp_offset(template.len());
    Arc::new(
        (0..count)
            .map(|_| {
                let mut frame = template.to_vec();
                if let Some(payload) = frame.get_mut(offset..) {
                    overwrite(payload, &stamp_now().to_le_bytes());
                }
                frame
            })
            .collect(),
    )
}

async fn hand_out(writers: &[mpsc::Sender<Batch>], batch: Batch) -> Result<()> {
    for writer in writers {
        writer
            .send(batch.clone())
            .await
            .map_err(|_| anyhow!("a writer stopped"))?;
    }
    Ok(())
}

/// Reads every frame, measuring each one's stamp.
async fn read_raw(
    _send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    mut tally: Tally,
) -> Result<Tally> {
    while !tally.done() {
        let frame = tokio::time::timeout(WAIT, read_frame(&mut recv))
            .await
            .context("raw stream stalled")??
            .context("raw stream ended early")?;
        tally.record(frame.get(stamp_offset(frame.len())..).unwrap_or_default())?;
    }
    Ok(tally)
}

/// One length-prefixed frame body; `None` at the end of the stream.
pub async fn read_frame(recv: &mut quinn::RecvStream) -> Result<Option<Vec<u8>>> {
    let mut header = [0u8; FRAME_HEADER_LEN];
    match recv.read_exact(&mut header).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = usize::try_from(u32::from_be_bytes(header))?;
    if len > MAX_FRAME_LEN {
        bail!("frame of {len} bytes");
    }
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body).await?;
    Ok(Some(body))
}
