//! One task per request stream: read the frame, check limits, dispatch,
//! answer. Every refusal carries a catalogue code and changes nothing.

mod append;
mod pages;
mod statements;
mod status;
mod subscribe;
mod sync;

use cairn_store::Store;
use cairn_wire::limits::MAX_FRAME_LEN;
use cairn_wire::{ErrorCode, ErrorDetail, Request, Response, WireError};
use quinn::{RecvStream, SendStream};

use crate::frame_io::{self, ReadFailure};
use crate::metrics;
use crate::server::Shared;
use crate::session::{Caller, Session, close_with};

pub use append::append;

/// Serves one request stream.
pub async fn handle_stream<S: Store>(
    shared: &Shared<S>,
    session: &Session,
    mut send: SendStream,
    mut recv: RecvStream,
) {
    let body =
        match frame_io::read_request(&mut recv, shared.request_timeout(), MAX_FRAME_LEN).await {
            Ok(body) => body,
            Err(ReadFailure::TooLarge { len, limit }) => {
                let message = ReadFailure::too_large_message(len, limit);
                let error = WireError::new(ErrorCode::FRAME_TOO_LARGE, &message);
                return refuse(session, &mut send, error).await;
            }
            // A frame trickled in slower than the request timeout holds a
            // stream and its buffer for nothing: treated as a broken frame.
            Err(ReadFailure::TimedOut) => {
                let message = "request frame not received in time";
                let error = WireError::new(ErrorCode::MALFORMED_FRAME, message);
                return refuse(session, &mut send, error).await;
            }
            Err(ReadFailure::Gone) => return,
        };
    let request = match Request::decode(&body) {
        Ok(request) => request,
        Err(e) => {
            let error = WireError::new(ErrorCode::MALFORMED_FRAME, &e.to_string());
            return refuse(session, &mut send, error).await;
        }
    };
    let kind = kind(&request);
    metrics::request(kind);
    let started = std::time::Instant::now();
    match request {
        Request::Subscribe(_) | Request::Authenticate(_) | Request::Enrol(_) => {
            if let Err(error) = admit(shared, &session.caller(), &request) {
                return refuse(session, &mut send, error).await;
            }
            if let Request::Subscribe(request) = request {
                subscribe::run(shared, session, request, send).await;
            }
        }
        other => {
            match answer(shared, &session.caller(), other).await {
                Response::Error(error) => refuse(session, &mut send, error).await,
                response => frame_io::answer(&mut send, &response).await,
            }
            metrics::request_took(kind, started.elapsed());
        }
    }
}

/// The rate limits, and the requests that have no place on a request
/// stream of an authenticated session.
fn admit<S: Store>(
    shared: &Shared<S>,
    caller: &Caller,
    request: &Request,
) -> Result<(), WireError> {
    if let Err(wait) = shared.live.rates().check(caller.user(), caller.ip()) {
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
        return Err(WireError::new(ErrorCode::RATE_LIMITED, "too many requests")
            .with_detail(ErrorDetail::RetryAfterMs(ms)));
    }
    match request {
        Request::Authenticate(_) | Request::Enrol(_) => Err(WireError::new(
            ErrorCode::UNEXPECTED_FRAME,
            "already authenticated",
        )),
        _ => Ok(()),
    }
}

/// The answer to a request that has one answer (every request but a
/// subscription): what a request stream sends back, without the stream.
pub async fn answer<S: Store>(shared: &Shared<S>, caller: &Caller, request: Request) -> Response {
    if let Err(error) = admit(shared, caller, &request) {
        return Response::Error(error);
    }
    match request {
        Request::Hello(hello) => sync::hello(shared, caller, hello).await,
        Request::Append(append) => {
            Response::Appended(append::append(shared, caller, append.envelopes.into_vec()).await)
        }
        Request::Read(read) => pages::read(shared, caller, read).await,
        Request::Ack(cursor) => sync::ack(shared, caller, cursor).await,
        Request::RegisterDevice(c) => statements::register_device(shared, caller, c).await,
        Request::RevokeDevice(r) => statements::revoke_device(shared, caller, r).await,
        Request::GrantFriend(g) => statements::grant_friend(shared, caller, g).await,
        Request::RevokeFriend(r) => statements::revoke_friend(shared, caller, r).await,
        Request::Status => status::status(shared, caller).await,
        Request::Authenticate(_) | Request::Enrol(_) | Request::Subscribe(_) => {
            error(ErrorCode::UNEXPECTED_FRAME, "not here")
        }
    }
}

/// The metric label of a request.
fn kind(request: &Request) -> &'static str {
    match request {
        Request::Authenticate(_) => "authenticate",
        Request::Hello(_) => "hello",
        Request::Append(_) => "append",
        Request::Read(_) => "read",
        Request::Subscribe(_) => "subscribe",
        Request::Ack(_) => "ack",
        Request::RegisterDevice(_) => "register_device",
        Request::RevokeDevice(_) => "revoke_device",
        Request::GrantFriend(_) => "grant_friend",
        Request::RevokeFriend(_) => "revoke_friend",
        Request::Status => "status",
        Request::Enrol(_) => "enrol",
    }
}

/// An error answer.
pub(crate) fn error(code: ErrorCode, message: &str) -> Response {
    Response::Error(WireError::new(code, message))
}

/// The answer when the store fails: nothing was changed.
pub(crate) fn internal(e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "storage failed");
    error(
        ErrorCode::INTERNAL,
        "storage unavailable; nothing was changed",
    )
}

/// Sends a refusal, counted; the catalogue decides whether the connection
/// closes after it (`spec/errors.md`, *closes*), so no handler decides.
async fn refuse(session: &Session, send: &mut SendStream, error: WireError) {
    metrics::refusal(error.code);
    if error.code.closes_connection() {
        tracing::debug!(device = %session.device(), code = %error.code, message = %error.message, "closing a misbehaving connection");
        close_with(session.connection(), send, error).await;
    } else {
        frame_io::answer(send, &Response::Error(error)).await;
    }
}
