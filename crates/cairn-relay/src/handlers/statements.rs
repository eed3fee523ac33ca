//! Statements signed by the connection user's root key: device
//! registration and revocation, friend grants and their revocation.

use cairn_store::{StatementOutcome, StatementRefusal, Store};
use cairn_wire::{
    DeviceCertificate, DeviceRevocation, ErrorCode, FriendGrant, FriendRevocation, Response, Scope,
    Signed, Statement, StreamId, UserId,
};

use super::{error, internal};
use crate::clock;
use crate::server::Shared;
use crate::session::Caller;

/// Registers another device of the user.
pub async fn register_device<S: Store>(
    shared: &Shared<S>,
    caller: &Caller,
    certificate: DeviceCertificate,
) -> Response {
    if let Err(refusal) = check(shared, caller, &certificate) {
        return refusal;
    }
    answer(shared.store.register_device(certificate).await).0
}

/// Revokes a device of the user; when the revocation is newly applied,
/// closes that device's connections at once. A repeated revocation changes
/// nothing and closes nothing.
pub async fn revoke_device<S: Store>(
    shared: &Shared<S>,
    caller: &Caller,
    revocation: DeviceRevocation,
) -> Response {
    if let Err(refusal) = check(shared, caller, &revocation) {
        return refusal;
    }
    let device = revocation.body().device;
    let (response, applied) = answer(shared.store.revoke_device(revocation).await);
    if applied {
        shared.sessions.close_device(
            caller.user(),
            device,
            ErrorCode::DEVICE_REVOKED,
            "device revoked by its user",
        );
    }
    response
}

/// Lets a user read the connection user's friends stream.
pub async fn grant_friend<S: Store>(
    shared: &Shared<S>,
    caller: &Caller,
    grant: FriendGrant,
) -> Response {
    if let Err(refusal) = check(shared, caller, &grant) {
        return refusal;
    }
    answer(shared.store.grant_friend(grant).await).0
}

/// Withdraws a grant; the former friend's open subscriptions to the
/// friends stream end at once.
pub async fn revoke_friend<S: Store>(
    shared: &Shared<S>,
    caller: &Caller,
    revocation: FriendRevocation,
) -> Response {
    if let Err(refusal) = check(shared, caller, &revocation) {
        return refusal;
    }
    let grantee: UserId = revocation.body().grantee;
    let (response, applied) = answer(shared.store.revoke_friend(revocation).await);
    if applied {
        shared
            .hub
            .detach_reader(StreamId::new(caller.user(), Scope::Friends), grantee);
    }
    response
}

/// The statement must verify, be the connection user's own, and not be
/// dated ahead of the relay's clock by more than the allowed skew.
fn check<S: Store, B: Statement>(
    shared: &Shared<S>,
    caller: &Caller,
    statement: &Signed<B>,
) -> Result<(), Response> {
    let body = statement.verify().map_err(|_| {
        error(
            ErrorCode::BAD_STATEMENT,
            "statement signature does not verify",
        )
    })?;
    if body.signer() != caller.user() {
        return Err(error(
            ErrorCode::BAD_STATEMENT,
            "statement is not signed by this connection's user",
        ));
    }
    clock::check_dated(body.dated_ms(), clock::now_ms(), shared.max_clock_skew())
        .map_err(Response::Error)
}

/// The answer, and whether the statement was newly applied.
fn answer(outcome: Result<StatementOutcome, cairn_store::WriteError>) -> (Response, bool) {
    let response = match outcome {
        Ok(StatementOutcome::Applied) => return (Response::Done, true),
        Ok(StatementOutcome::Unchanged) => Response::Done,
        // A certificate for a device its user revoked is superseded by the
        // revocation: answered as stale, since `device_revoked` would close
        // the connection of a device that did nothing wrong.
        Ok(StatementOutcome::Refused(StatementRefusal::DeviceRevoked)) => error(
            ErrorCode::STALE_STATEMENT,
            "that device was revoked; revocation is final",
        ),
        Ok(StatementOutcome::Refused(StatementRefusal::TooMany)) => error(
            ErrorCode::QUOTA_EXCEEDED,
            "this user has the most devices or friend records a user may have",
        ),
        Ok(StatementOutcome::Refused(StatementRefusal::UnknownDevice)) => error(
            ErrorCode::UNKNOWN_DEVICE,
            "that device was never certified by this user",
        ),
        Ok(StatementOutcome::Refused(refusal)) => {
            error(refusal.code(), "statement older than the one in effect")
        }
        Err(cairn_store::WriteError::StorageFull) => Response::Error(crate::disk::storage_full()),
        Err(e) => internal(&e),
    };
    (response, false)
}
