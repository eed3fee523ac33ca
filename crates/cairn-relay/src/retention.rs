//! Applying the retention policy (`[retention]`, `spec/relay.md` §9): a
//! background pass at every `retention.every`, and `cairn-relay compact`
//! on demand. Each pass expires in commits of a bounded size, so appends
//! never wait long behind it.

use std::sync::Arc;
use std::time::Duration;

use cairn_store::{Cutoffs, Expiry, Store, WriteError};
use serde::{Deserialize, Serialize};

use crate::config::Retention;
use crate::metrics;
use crate::server::Shared;

/// Most envelopes one commit of a pass expires.
const BUDGET: u64 = 4096;

/// What a pass removed, as the operator API and CLI show it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compacted {
    /// Streams that lost envelopes.
    pub streams: u64,
    /// Envelopes removed.
    pub envelopes: u64,
    /// Bytes they took.
    pub bytes: u64,
}

/// The cutoffs `retention` sets at `now_ms`.
pub fn cutoffs(retention: &Retention, now_ms: u64) -> Cutoffs {
    let before = |keep: Option<Duration>| {
        keep.map(|keep| now_ms.saturating_sub(u64::try_from(keep.as_millis()).unwrap_or(u64::MAX)))
    };
    Cutoffs {
        friends_before_ms: before(retention.friends),
        direct_before_ms: before(retention.direct),
    }
}

/// Expires everything `retention` says is due at `now_ms`, commit after
/// commit; logs and counts what it removed.
pub async fn compact<S: Store>(
    store: &S,
    retention: &Retention,
    now_ms: u64,
) -> Result<Compacted, WriteError> {
    let cutoffs = cutoffs(retention, now_ms);
    let mut total = Compacted::default();
    if cutoffs == Cutoffs::default() {
        return Ok(total);
    }
    loop {
        let Expiry {
            streams,
            envelopes,
            bytes,
            more,
        } = store.expire(cutoffs, BUDGET).await?;
        total.streams += streams;
        total.envelopes += envelopes;
        total.bytes += bytes;
        if !more {
            break;
        }
    }
    if total.envelopes > 0 {
        metrics::counter_by(
            metrics::ENVELOPES_EXPIRED,
            usize::try_from(total.envelopes).unwrap_or(usize::MAX),
        );
        tracing::info!(
            streams = total.streams,
            envelopes = total.envelopes,
            bytes = total.bytes,
            "expired envelopes"
        );
    }
    Ok(total)
}

/// Runs a pass at every `retention.every` (read again each time, so a
/// reload changes it) until the relay shuts down.
pub async fn run_periodically<S: Store>(shared: Arc<Shared<S>>) {
    loop {
        let every = shared
            .live
            .config()
            .retention
            .every
            .max(Duration::from_secs(1));
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shared.shutdown.cancelled() => return,
        }
        let retention = shared.live.config().retention.clone();
        if let Err(e) = compact(&shared.store, &retention, crate::clock::now_ms()).await {
            tracing::error!(error = %e, "expiring envelopes failed; retrying at the next pass");
        }
    }
}
