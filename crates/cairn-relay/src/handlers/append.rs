//! Appending envelopes: the relay checks what needs no state (authorship,
//! signature); the store checks the rest and commits durably.

use cairn_store::Store;
use cairn_wire::{
    AppendOutcome, BoundedVec, Envelope, ErrorCode, PublicKey, UserId, WireError, limits::MAX_BATCH,
};

use crate::metrics;
use crate::server::Shared;
use crate::session::Caller;

/// Appends envelopes by the caller's device; one outcome per envelope, in
/// order. Refused envelopes change nothing; the store judges the rest.
pub async fn append<S: Store>(
    shared: &Shared<S>,
    caller: &Caller,
    envelopes: Vec<Envelope>,
) -> BoundedVec<AppendOutcome, MAX_BATCH> {
    let batch_len = envelopes.len();
    let Some(checked) = prechecked(caller.user(), *caller.key(), envelopes).await else {
        let refused = (0..batch_len).map(|_| internal_refusal()).collect();
        return one_per_envelope(refused);
    };
    let checked = with_consent(shared, caller.user(), checked).await;
    let mut outcomes: Vec<Option<AppendOutcome>> = Vec::with_capacity(checked.len());
    let mut accepted = Vec::with_capacity(checked.len());
    for (envelope, verdict) in checked {
        match verdict {
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
    one_per_envelope(merged)
}

/// The outcomes as the answer carries them. There is one per envelope and
/// a request holds at most `MAX_BATCH` envelopes, so nothing is ever left
/// over; if that broke, the client would see fewer outcomes than it sent
/// envelopes and stop with a protocol error, and the relay logs it.
fn one_per_envelope(outcomes: Vec<AppendOutcome>) -> BoundedVec<AppendOutcome, MAX_BATCH> {
    let (answer, beyond) = BoundedVec::take_front(outcomes);
    if !beyond.is_empty() {
        tracing::error!(
            beyond = beyond.len(),
            "more append outcomes than a request holds envelopes"
        );
    }
    answer
}

/// Batches larger than this are verified on the blocking pool, so that
/// signature checks never stall the async workers.
const VERIFY_INLINE_AT_MOST: usize = 4;

type Checked = Vec<(Envelope, Result<(), WireError>)>;

/// Runs [`precheck`] on every envelope; `None` if the check itself failed.
async fn prechecked(user: UserId, key: PublicKey, envelopes: Vec<Envelope>) -> Option<Checked> {
    let check = move |envelopes: Vec<Envelope>| -> Checked {
        envelopes
            .into_iter()
            .map(|e| {
                let verdict = precheck(user, &key, &e);
                (e, verdict)
            })
            .collect()
    };
    if envelopes.len() <= VERIFY_INLINE_AT_MOST {
        return Some(check(envelopes));
    }
    tokio::task::spawn_blocking(move || check(envelopes))
        .await
        .inspect_err(|e| tracing::error!(error = %e, "signature check task failed"))
        .ok()
}

/// Checks that need no stored state, with the caller's device `key`.
fn precheck(user: UserId, key: &PublicKey, envelope: &Envelope) -> Result<(), WireError> {
    let header = envelope.header();
    if header.author != user || header.device.as_bytes() != key.as_bytes() {
        return Err(WireError::new(
            ErrorCode::NOT_AUTHOR,
            "envelope not made by this device",
        ));
    }
    envelope.verify_by(key).map_err(|_| {
        WireError::new(
            ErrorCode::BAD_SIGNATURE,
            "envelope signature does not verify",
        )
    })
}

/// A user's direct stream takes envelopes only from the user's own devices
/// and from users the recipient has granted (added as friends): a stranger
/// cannot write into anyone's inbox.
async fn with_consent<S: Store>(shared: &Shared<S>, author: UserId, checked: Checked) -> Checked {
    let writes_to_others = checked
        .iter()
        .any(|(envelope, verdict)| verdict.is_ok() && other_recipient(author, envelope).is_some());
    if !writes_to_others {
        return checked;
    }
    let granters = shared.store.granters_of(author).await;
    checked
        .into_iter()
        .map(|(envelope, verdict)| {
            let verdict = verdict.and_then(|()| match other_recipient(author, &envelope) {
                None => Ok(()),
                Some(recipient) => consented(granters.as_deref(), recipient),
            });
            (envelope, verdict)
        })
        .collect()
}

/// The recipient of a direct envelope addressed to someone else.
fn other_recipient(author: UserId, envelope: &Envelope) -> Option<UserId> {
    envelope
        .header()
        .scope
        .recipient()
        .filter(|recipient| *recipient != author)
}

fn consented(
    granters: Result<&[UserId], &cairn_store::ReadError>,
    recipient: UserId,
) -> Result<(), WireError> {
    match granters {
        Ok(granters) if granters.contains(&recipient) => Ok(()),
        Ok(_) => Err(WireError::new(
            ErrorCode::FORBIDDEN,
            "the recipient has not added this user; direct envelopes need their grant",
        )),
        Err(e) => {
            tracing::error!(error = %e, "grant lookup failed; refusing the direct envelope");
            Err(WireError::new(
                ErrorCode::INTERNAL,
                "storage unavailable; nothing was stored",
            ))
        }
    }
}

async fn store<S: Store>(shared: &Shared<S>, accepted: Vec<Envelope>) -> Vec<AppendOutcome> {
    if accepted.is_empty() {
        return Vec::new();
    }
    let count = accepted.len();
    match shared.store.append(accepted).await {
        Ok(outcomes) => {
            shared.disk.wrote();
            outcomes
                .iter()
                .map(cairn_store::ItemOutcome::to_wire)
                .collect()
        }
        Err(cairn_store::AppendError::StorageFull) => {
            shared.disk.refused();
            (0..count)
                .map(|_| AppendOutcome::Refused(crate::disk::storage_full()))
                .collect()
        }
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
