//! Metric names and the Prometheus recorder. Metrics are counts, sizes and
//! timings only, with no per-user or per-device labels: an operator learns
//! how busy the relay is, not who uses it.
//!
//! Every series is described (`# HELP`) and exposed at zero when the
//! recorder is installed, so that a fresh relay's `/metrics` already shows
//! everything it will ever show, and dashboards and alerts can be written
//! before the first connection (`spec/relay.md` §7.2).

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Connections accepted.
pub const CONNECTIONS: &str = "cairn_connections_total";
/// Connections open now.
pub const CONNECTIONS_OPEN: &str = "cairn_connections_open";
/// Successful authentications.
pub const AUTHENTICATED: &str = "cairn_authenticated_total";
/// Requests by kind.
pub const REQUESTS: &str = "cairn_requests_total";
/// Time from a request's last byte to its answer, by kind.
pub const REQUEST_SECONDS: &str = "cairn_request_duration_seconds";
/// Refusals by error code name.
pub const REFUSALS: &str = "cairn_refusals_total";
/// Envelopes stored.
pub const ENVELOPES_STORED: &str = "cairn_envelopes_stored_total";
/// Envelopes removed by the retention policy.
pub const ENVELOPES_EXPIRED: &str = "cairn_envelopes_expired_total";
/// Live entries delivered to subscribers.
pub const LIVE_DELIVERIES: &str = "cairn_live_deliveries_total";
/// Subscribers switched to catching up from storage.
pub const SUBSCRIBER_CATCH_UPS: &str = "cairn_subscriber_catch_ups_total";
/// Subscriptions open now.
pub const SUBSCRIPTIONS_OPEN: &str = "cairn_subscriptions_open";
/// Connection attempts asked to prove their address (QUIC retry).
pub const RETRIES: &str = "cairn_address_validations_total";
/// Connection attempts refused before their handshake, by reason.
pub const ATTEMPTS_REFUSED: &str = "cairn_connection_attempts_refused_total";
/// New users registered.
pub const REGISTRATIONS: &str = "cairn_registrations_total";
/// New users refused by the per-address registration rate limit.
pub const REGISTRATIONS_RATE_LIMITED: &str = "cairn_registrations_rate_limited_total";
/// The running build: always 1, with the version as a label.
pub const BUILD_INFO: &str = "cairn_build_info";
/// The relay process's resident memory.
pub const RESIDENT_BYTES: &str = "cairn_process_resident_memory_bytes";
/// File descriptors the relay process holds open.
pub const OPEN_FDS: &str = "cairn_process_open_fds";
/// The database file's size.
pub const DATABASE_BYTES: &str = "cairn_database_bytes";
/// 1 while the database is out of space, else 0.
pub const STORAGE_FULL: &str = "cairn_storage_full";

/// Request kinds, as `cairn_requests_total` and the latency histogram
/// label them.
pub const REQUEST_KINDS: [&str; 12] = [
    "authenticate",
    "hello",
    "append",
    "read",
    "subscribe",
    "ack",
    "register_device",
    "revoke_device",
    "grant_friend",
    "revoke_friend",
    "status",
    "enrol",
];

/// Upper bounds of the latency histogram's buckets, in seconds: from a
/// cached read (well under a millisecond) to a commit on a slow disk.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// How often recorded timings are folded into their histograms' buckets.
/// The recorder keeps every sample it is given until then (or until a
/// scrape): without this, a relay nobody scrapes would hold eight bytes
/// more for every request it ever answered.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(1);

/// Installs the process-wide recorder once, describes every series and
/// returns its handle.
pub fn prometheus() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(REQUEST_SECONDS.to_owned()), &LATENCY_BUCKETS)
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe_all();
            keep_up(handle.clone());
            Some(handle)
        })
        .clone()
}

/// Folds recorded samples into their buckets every [`UPKEEP_EVERY`], on a
/// thread of its own for as long as the process (and its recorder) lives.
fn keep_up(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("cairn-metrics".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                handle.run_upkeep();
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "could not start the metrics upkeep thread; timings are kept until a scrape");
    }
}

/// The Prometheus text for a scrape, with the process and database
/// figures taken now.
pub fn render(handle: &PrometheusHandle, database: &Path) -> String {
    if let Some(bytes) = resident_bytes() {
        metrics::gauge!(RESIDENT_BYTES).set(bytes as f64);
    }
    if let Some(count) = open_fds() {
        metrics::gauge!(OPEN_FDS).set(count as f64);
    }
    if let Ok(meta) = std::fs::metadata(database) {
        metrics::gauge!(DATABASE_BYTES).set(meta.len() as f64);
    }
    handle.render()
}

fn describe_all() {
    let counters = [
        (CONNECTIONS, "QUIC connections accepted"),
        (AUTHENTICATED, "Connections authenticated as a device"),
        (ENVELOPES_STORED, "Envelopes stored durably"),
        (
            ENVELOPES_EXPIRED,
            "Envelopes removed by the retention policy",
        ),
        (LIVE_DELIVERIES, "Live entries delivered to subscribers"),
        (
            SUBSCRIBER_CATCH_UPS,
            "Subscribers too slow for the live feed, switched to reading from storage",
        ),
        (RETRIES, "Connection attempts asked to prove their address"),
        (REGISTRATIONS, "New users registered"),
        (
            REGISTRATIONS_RATE_LIMITED,
            "New users refused by the per-address registration rate limit",
        ),
    ];
    for (name, help) in counters {
        describe_counter!(name, help);
        metrics::counter!(name).increment(0);
    }
    describe_counter!(REQUESTS, "Requests received, by kind");
    describe_histogram!(
        REQUEST_SECONDS,
        Unit::Seconds,
        "Time from a request's last byte to its answer written, by kind (subscriptions, \
         which last as long as their subscriber, are not timed)"
    );
    for kind in REQUEST_KINDS {
        metrics::counter!(REQUESTS, "kind" => kind).increment(0);
        if kind != "subscribe" {
            // Registered without a sample: exposed with every bucket at 0.
            let _ = metrics::histogram!(REQUEST_SECONDS, "kind" => kind);
        }
    }
    describe_counter!(REFUSALS, "Requests and envelopes refused, by error code");
    for info in cairn_wire::CATALOGUE {
        metrics::counter!(REFUSALS, "code" => info.name).increment(0);
    }
    describe_counter!(
        ATTEMPTS_REFUSED,
        "Connection attempts refused before their handshake, by reason"
    );
    metrics::counter!(ATTEMPTS_REFUSED, "reason" => "pressure").increment(0);
    describe_gauges();
}

fn describe_gauges() {
    let gauges = [
        (CONNECTIONS_OPEN, Unit::Count, "QUIC connections open now"),
        (SUBSCRIPTIONS_OPEN, Unit::Count, "Subscriptions open now"),
        (
            RESIDENT_BYTES,
            Unit::Bytes,
            "Resident memory of the relay process",
        ),
        (
            OPEN_FDS,
            Unit::Count,
            "File descriptors the relay process holds open",
        ),
        (DATABASE_BYTES, Unit::Bytes, "Size of the database file"),
        (
            STORAGE_FULL,
            Unit::Count,
            "1 while the database is out of space and writes are refused, else 0",
        ),
    ];
    for (name, unit, help) in gauges {
        describe_gauge!(name, unit, help);
        metrics::gauge!(name).increment(0.0);
    }
    describe_gauge!(BUILD_INFO, "The running build; always 1");
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// Resident memory from `/proc/self/status` (Linux); none elsewhere.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// Open file descriptors from `/proc/self/fd` (Linux); none elsewhere.
fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

/// Counts a refusal under its catalogue name.
pub fn refusal(code: cairn_wire::ErrorCode) {
    metrics::counter!(REFUSALS, "code" => code.name()).increment(1);
}

/// Counts a connection attempt refused before its handshake.
pub fn refused_attempt(why: crate::admission::Refused) {
    let reason = match why {
        crate::admission::Refused::Pressure => "pressure",
    };
    metrics::counter!(ATTEMPTS_REFUSED, "reason" => reason).increment(1);
}

/// Increments a counter without labels.
pub fn counter(name: &'static str) {
    metrics::counter!(name).increment(1);
}

/// Counts a request under its kind.
pub fn request(kind: &'static str) {
    metrics::counter!(REQUESTS, "kind" => kind).increment(1);
}

/// Records how long a request of `kind` took.
pub fn request_took(kind: &'static str, took: Duration) {
    metrics::histogram!(REQUEST_SECONDS, "kind" => kind).record(took.as_secs_f64());
}

/// Adds to a counter without labels.
pub fn counter_by(name: &'static str, n: usize) {
    metrics::counter!(name).increment(u64::try_from(n).unwrap_or(u64::MAX));
}

/// Sets a gauge without labels.
pub fn gauge_set(name: &'static str, value: f64) {
    metrics::gauge!(name).set(value);
}

/// Moves a gauge without labels.
pub fn gauge_add(name: &'static str, delta: f64) {
    metrics::gauge!(name).increment(delta);
}
