//! Metric names and the Prometheus recorder. Metrics are counts only, with
//! no per-user or per-device labels: an operator learns how busy the relay
//! is, not who uses it.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Connections accepted.
pub const CONNECTIONS: &str = "cairn_connections_total";
/// Connections open now.
pub const CONNECTIONS_OPEN: &str = "cairn_connections_open";
/// Successful authentications.
pub const AUTHENTICATED: &str = "cairn_authenticated_total";
/// Requests by kind.
pub const REQUESTS: &str = "cairn_requests_total";
/// Refusals by error code name.
pub const REFUSALS: &str = "cairn_refusals_total";
/// Envelopes stored.
pub const ENVELOPES_STORED: &str = "cairn_envelopes_stored_total";
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

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once and returns its handle.
pub fn prometheus() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok().map(|()| handle)
        })
        .clone()
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

/// Adds to a counter without labels.
pub fn counter_by(name: &'static str, n: usize) {
    metrics::counter!(name).increment(u64::try_from(n).unwrap_or(u64::MAX));
}

/// Moves a gauge without labels.
pub fn gauge_add(name: &'static str, delta: f64) {
    metrics::gauge!(name).increment(delta);
}
