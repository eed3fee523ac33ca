//! Appending envelopes: the relay checks what needs no state (authorship,
//! signature); the store checks the rest and commits durably.

use cairn_store::Store;
use cairn_wire::{AppendOutcome, BoundedVec, Envelope, ErrorCode, WireError, limits::MAX_BATCH};

use crate::metrics;
use crate::server::Shared;
use crate::session::Session;

/// Appends envelopes by the session's device; one outcome per envelope, in
/// order. Refused envelopes change nothing; the store judges the rest.
pub async fn append<S: Store>(
    shared: &Shared<S>,
    session: &Session,
    envelopes: Vec<Envelope>,
) -> BoundedVec<AppendOutcome, MAX_BATCH> {
    let mut outcomes: Vec<Option<AppendOutcome>> = Vec::with_capacity(envelopes.len());
    let mut accepted = Vec::with_capacity(envelopes.len());
    for envelope in envelopes {
        match precheck(session, &envelope) {
            Ok(()) => {
                outcomes.push(None);
                accepted.push(envelope);
            }
            Err(refusal) => outcomes.push(Some(AppendOutcome::Refused(refusal))),
        }
    }
    let stored = store(shared, accepted).await;
    let mut stored = stored.into_iter();
    let merged = outcomes
        .into_iter()
        .map(|o| o.or_else(|| stored.next()).unwrap_or_else(internal_refusal))
        .collect::<Vec<_>>();
    count(&merged);
    BoundedVec::new(merged).unwrap_or_default()
}

/// Checks that need no stored state.
fn precheck(session: &Session, envelope: &Envelope) -> Result<(), WireError> {
    let header = envelope.header();
    if header.author != session.user || header.device != session.device {
        return Err(WireError::new(
            ErrorCode::NOT_AUTHOR,
            "envelope not made by this device",
        ));
    }
    envelope.verify().map_err(|_| {
        WireError::new(
            ErrorCode::BAD_SIGNATURE,
            "envelope signature does not verify",
        )
    })
}

async fn store<S: Store>(shared: &Shared<S>, accepted: Vec<Envelope>) -> Vec<AppendOutcome> {
    if accepted.is_empty() {
        return Vec::new();
    }
    let count = accepted.len();
    match shared.store.append(accepted).await {
        Ok(outcomes) => outcomes
            .iter()
            .map(cairn_store::ItemOutcome::to_wire)
            .collect(),
        Err(e) => {
            tracing::error!(error = %e, "append failed; nothing was stored");
            (0..count).map(|_| internal_refusal()).collect()
        }
    }
}

fn internal_refusal() -> AppendOutcome {
    AppendOutcome::Refused(WireError::new(
        ErrorCode::INTERNAL,
        "storage unavailable; nothing was stored",
    ))
}

fn count(outcomes: &[AppendOutcome]) {
    for outcome in outcomes {
        match outcome {
            AppendOutcome::Stored(_) => metrics::counter(metrics::ENVELOPES_STORED),
            AppendOutcome::Duplicate(_) => {}
            AppendOutcome::Refused(error) => metrics::refusal(error.code),
        }
    }
}
