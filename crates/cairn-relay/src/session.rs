//! A connection's phases as types: an [`Unauthenticated`] connection can
//! only authenticate; a [`Session`] (an authenticated device) can serve
//! requests.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use cairn_store::{StatementOutcome, Store};
use cairn_wire::frames::{AUTH_EXPORTER_LABEL, AUTH_EXPORTER_LEN};
use cairn_wire::limits::MAX_AUTH_FRAME_LEN;
use cairn_wire::{
    AuthOk, AuthRequest, DeviceId, EnrolRequest, Enrolment, ErrorCode, PublicKey, Request,
    Response, UserId, WireError,
};
use tokio::sync::Semaphore;

use crate::admission::{self, Login, Standing};
use crate::clock;
use crate::frame_io::{self, ReadFailure};
use crate::handlers;
use crate::metrics;
use crate::registration;
use crate::server::Shared;

/// How long a session lingers at shutdown for its client to leave.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// A connection that has not proven which device it is.
#[derive(Debug)]
pub struct Unauthenticated {
    connection: quinn::Connection,
    ip: IpAddr,
}

/// An authenticated device on one connection.
///
/// Its fields are private: only [`Unauthenticated::authenticate`] makes
/// one, so no other module can build an authenticated session.
#[derive(Debug)]
pub struct Session {
    connection: quinn::Connection,
    caller: Caller,
    subscriptions: Arc<Semaphore>,
}

/// Who sent a request, as the request handlers see it: the authenticated
/// user and device of a [`Session`], and its address. Only a session
/// makes one (or, with the `fuzzing` feature, a fuzz target, which drives
/// the handlers without QUIC).
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    user: UserId,
    device: DeviceId,
    /// The device's key, decoded once for every envelope it sends.
    key: PublicKey,
    ip: IpAddr,
}

impl Caller {
    /// The authenticated user.
    pub fn user(&self) -> UserId {
        self.user
    }

    /// The authenticated device.
    pub fn device(&self) -> DeviceId {
        self.device
    }

    /// The authenticated device's key.
    pub fn key(&self) -> &PublicKey {
        &self.key
    }

    /// The peer's address, for per-IP limits.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// A caller taken as authenticated, for fuzz targets; `None` if
    /// `device` is not a key.
    #[cfg(feature = "fuzzing")]
    pub fn assumed(user: UserId, device: DeviceId, ip: IpAddr) -> Option<Self> {
        let key = PublicKey::from_bytes(device.as_bytes()).ok()?;
        Some(Self {
            user,
            device,
            key,
            ip,
        })
    }
}

/// A refusal that ends the connection.
#[derive(Debug)]
pub struct Fatal(pub WireError);

impl Fatal {
    pub(crate) fn new(code: ErrorCode, message: &str) -> Self {
        Self(WireError::new(code, message))
    }
}

impl Unauthenticated {
    /// Wraps a freshly accepted connection.
    pub fn new(connection: quinn::Connection) -> Self {
        let ip = connection.remote_address().ip();
        Self { connection, ip }
    }

    /// Waits for the authenticate request on the first stream, checks it,
    /// answers it, and becomes a session; or refuses and closes. Opening
    /// the stream and sending the frame each have the request timeout, so
    /// a peer that opened a stream and then stalls is told why in a frame.
    pub async fn authenticate<S: Store>(self, shared: &Shared<S>) -> Option<Session> {
        let accepted = tokio::time::timeout(shared.request_timeout(), self.connection.accept_bi());
        let (mut send, mut recv) = match accepted.await {
            Ok(Ok(streams)) => streams,
            Ok(Err(_)) => return None,
            Err(_) => {
                metrics::refusal(ErrorCode::UNAUTHENTICATED);
                self.connection.close(
                    u32::from(ErrorCode::UNAUTHENTICATED.0).into(),
                    b"no authentication in time",
                );
                return None;
            }
        };
        let read = frame_io::read_request(&mut recv, shared.request_timeout(), MAX_AUTH_FRAME_LEN);
        let outcome = match read.await {
            Ok(body) => self.check(shared, &body).await,
            Err(ReadFailure::TooLarge { len, limit }) => Err(Fatal::new(
                ErrorCode::FRAME_TOO_LARGE,
                &ReadFailure::too_large_message(len, limit),
            )),
            Err(ReadFailure::TimedOut) => Err(Fatal::new(
                ErrorCode::UNAUTHENTICATED,
                "no authentication in time",
            )),
            Err(ReadFailure::Gone) => return None,
        };
        // The proof verified with the device's key, so it decodes; kept
        // decoded for the session's envelopes.
        let outcome = outcome.and_then(|(ok, answer)| {
            let key = PublicKey::from_bytes(ok.device.as_bytes()).map_err(|_| bad_proof())?;
            Ok((ok, key, answer))
        });
        match outcome {
            Ok((ok, key, answer)) => {
                // Opened up before the answer, so that the client's next
                // streams find their credit waiting.
                crate::server::open_up(&self.connection, &shared.live.limits());
                frame_io::answer(&mut send, &answer).await;
                metrics::counter(metrics::AUTHENTICATED);
                tracing::info!(
                    user = %ok.user,
                    device = %ok.device,
                    registered = ok.registered,
                    ip = %self.ip,
                    "authenticated"
                );
                Some(self.into_session(shared, ok, key))
            }
            Err(Fatal(error)) => {
                tracing::info!(code = %error.code, ip = %self.ip, "authentication refused");
                close_with(&self.connection, &mut send, error).await;
                None
            }
        }
    }

    /// Checks the first request: who the device is, and the answer that
    /// says so.
    async fn check<S: Store>(
        &self,
        shared: &Shared<S>,
        body: &[u8],
    ) -> Result<(AuthOk, Response), Fatal> {
        let request = Request::decode(body)
            .map_err(|e| Fatal::new(ErrorCode::MALFORMED_FRAME, &e.to_string()))?;
        let exporter = self.exporter()?;
        let started = std::time::Instant::now();
        match request {
            Request::Authenticate(auth) => {
                metrics::request("authenticate");
                let ok = self.check_certified(shared, &auth, &exporter).await;
                metrics::request_took("authenticate", started.elapsed());
                let ok = ok?;
                Ok((ok.clone(), Response::Authenticated(ok)))
            }
            Request::Enrol(enrol) => {
                metrics::request("enrol");
                let enrolment = check_enrolment(shared, &enrol, &exporter).await;
                metrics::request_took("enrol", started.elapsed());
                let enrolment = enrolment?;
                Ok((
                    enrolment.ok.clone(),
                    Response::Enrolled(Box::new(enrolment)),
                ))
            }
            _ => Err(Fatal::new(ErrorCode::UNAUTHENTICATED, "authenticate first")),
        }
    }

    /// A device with its certificate: registered, or a new user.
    async fn check_certified<S: Store>(
        &self,
        shared: &Shared<S>,
        auth: &AuthRequest,
        exporter: &[u8; AUTH_EXPORTER_LEN],
    ) -> Result<AuthOk, Fatal> {
        auth.verify_proof(exporter).map_err(|_| bad_proof())?;
        let body = auth
            .certificate
            .verify()
            .map_err(|_| {
                Fatal::new(
                    ErrorCode::BAD_CERTIFICATE,
                    "certificate not signed by the user's root key",
                )
            })?
            .clone();
        refuse_banned(shared, &body.device)?;
        refuse_removed(shared, body.user).await?;
        let registered = admit(shared, auth, self.ip).await?;
        Ok(AuthOk {
            user: body.user,
            device: body.device,
            registered,
            log: shared.store.log_id(),
        })
    }

    fn exporter(&self) -> Result<[u8; AUTH_EXPORTER_LEN], Fatal> {
        let mut exporter = [0u8; AUTH_EXPORTER_LEN];
        self.connection
            .export_keying_material(&mut exporter, AUTH_EXPORTER_LABEL, b"")
            .map_err(|_| Fatal::new(ErrorCode::INTERNAL, "no keying material"))?;
        Ok(exporter)
    }

    fn into_session<S: Store>(self, shared: &Shared<S>, ok: AuthOk, key: PublicKey) -> Session {
        let permits = usize::try_from(shared.live.limits().subscriptions_per_connection)
            .unwrap_or(usize::MAX);
        Session {
            connection: self.connection,
            caller: Caller {
                user: ok.user,
                device: ok.device,
                key,
                ip: self.ip,
            },
            subscriptions: Arc::new(Semaphore::new(permits)),
        }
    }
}

/// The refusal of a proof that does not verify.
fn bad_proof() -> Fatal {
    Fatal::new(
        ErrorCode::AUTH_FAILED,
        "proof does not verify for this connection",
    )
}

/// Refuses a device the operator banned, before any registry read.
fn refuse_banned<S: Store>(shared: &Shared<S>, device: &DeviceId) -> Result<(), Fatal> {
    if shared.bans.contains(device) {
        return Err(Fatal::new(
            ErrorCode::DEVICE_BANNED,
            "device banned by the relay operator",
        ));
    }
    Ok(())
}

/// Refuses the devices of a user the operator removed. Only a holder of
/// a certificate signed by the user's root key learns it: a device being
/// linked is refused like any unknown one.
async fn refuse_removed<S: Store>(shared: &Shared<S>, user: UserId) -> Result<(), Fatal> {
    match shared.store.removed(user).await {
        Ok(None) => Ok(()),
        Ok(Some(_)) => Err(Fatal::new(
            ErrorCode::USER_REMOVED,
            "this user was removed from the relay by its operator",
        )),
        Err(e) => {
            tracing::error!(error = %e, "registry lookup failed");
            Err(Fatal::new(ErrorCode::INTERNAL, "registry unavailable"))
        }
    }
}

/// A device without its certificate (being linked): the proof must be by
/// the device key it names, and another device of the user must have
/// registered it, not revoked; the answer carries that certificate. A
/// stranger learns nothing from a refusal: an unknown user and an unknown
/// device get the same answer, and only after the proof.
async fn check_enrolment<S: Store>(
    shared: &Shared<S>,
    enrol: &EnrolRequest,
    exporter: &[u8; AUTH_EXPORTER_LEN],
) -> Result<Enrolment, Fatal> {
    enrol.verify_proof(exporter).map_err(|_| bad_proof())?;
    refuse_banned(shared, &enrol.device)?;
    let devices = shared.store.devices(enrol.user).await.map_err(|e| {
        tracing::error!(error = %e, "registry lookup failed");
        Fatal::new(ErrorCode::INTERNAL, "registry unavailable")
    })?;
    let certificate = admission::enrolment(&devices, enrol.device)
        .map_err(|(code, message)| Fatal::new(code, message))?;
    Ok(Enrolment {
        ok: AuthOk {
            user: enrol.user,
            device: enrol.device,
            registered: false,
            log: shared.store.log_id(),
        },
        certificate,
    })
}

/// Carries out [`admission::login`]'s decision for the certified device:
/// reads the registry, and registers a new user when the registration
/// budget and policy admit them. Returns whether this registered the user.
async fn admit<S: Store>(
    shared: &Shared<S>,
    auth: &AuthRequest,
    ip: IpAddr,
) -> Result<bool, Fatal> {
    let body = auth.certificate.body();
    let internal = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "registry lookup failed");
        Fatal::new(ErrorCode::INTERNAL, "registry unavailable")
    };
    let devices = shared
        .store
        .devices(body.user)
        .await
        .map_err(|e| internal(&e))?;
    let dated = clock::check_dated(body.issued_ms, clock::now_ms(), shared.max_clock_skew());
    match admission::login(Standing::of(&devices, body.device), dated.is_ok()) {
        Login::Admit => return Ok(false),
        Login::Refuse(code, message) => {
            // The clock's own message says by how much.
            return Err(dated
                .err()
                .filter(|e| e.code == code)
                .map_or_else(|| Fatal::new(code, message), Fatal));
        }
        Login::Register => {}
    }
    registration::budget(shared, ip)?;
    registration::admits(shared, auth).await?;
    match shared
        .store
        .register_device(auth.certificate.clone())
        .await
        .map_err(|e| internal(&e))?
    {
        StatementOutcome::Applied | StatementOutcome::Unchanged => {
            metrics::counter(metrics::REGISTRATIONS);
            Ok(true)
        }
        StatementOutcome::Refused(refusal) => {
            Err(Fatal::new(refusal.code(), "registration refused"))
        }
    }
}

impl Session {
    /// The QUIC connection.
    pub fn connection(&self) -> &quinn::Connection {
        &self.connection
    }

    /// The authenticated user.
    pub fn user(&self) -> UserId {
        self.caller.user
    }

    /// The authenticated device.
    pub fn device(&self) -> DeviceId {
        self.caller.device
    }

    /// The peer's address, for per-IP limits.
    pub fn ip(&self) -> IpAddr {
        self.caller.ip
    }

    /// Who sends this session's requests.
    pub fn caller(&self) -> Caller {
        self.caller
    }

    /// Permits for concurrent subscriptions.
    pub fn subscriptions(&self) -> &Arc<Semaphore> {
        &self.subscriptions
    }

    /// Serves request streams until the connection ends or the relay shuts
    /// down; each request runs in its own task, so a slow one never holds
    /// up another.
    pub async fn serve<S: Store>(self, shared: Arc<Shared<S>>) {
        let session = Arc::new(self);
        let _registered = shared.sessions.register(&session);
        loop {
            let accepted = tokio::select! {
                accepted = session.connection.accept_bi() => accepted,
                () = shared.shutdown.cancelled() => break,
            };
            let Ok((send, recv)) = accepted else { break };
            let (shared, session) = (shared.clone(), session.clone());
            shared
                .tasks
                .clone()
                .spawn(async move { handlers::handle_stream(&shared, &session, send, recv).await });
        }
        if shared.shutdown.is_cancelled() {
            // Subscribers are being sent `End(shutting_down)`: give the
            // client a moment to read it and leave, then close explicitly
            // so that it learns why even if it did not read.
            let _ = tokio::time::timeout(CLOSE_GRACE, session.connection.closed()).await;
            session.close(ErrorCode::SHUTTING_DOWN, "relay shutting down");
        }
    }

    /// Closes the connection with a catalogue code.
    pub fn close(&self, code: ErrorCode, reason: &str) {
        self.connection
            .close(u32::from(code.0).into(), reason.as_bytes());
    }
}

/// Sends a fatal error on `send`, lets it arrive, and closes the connection
/// with the same code.
pub async fn close_with(
    connection: &quinn::Connection,
    send: &mut quinn::SendStream,
    error: WireError,
) {
    metrics::refusal(error.code);
    frame_io::answer(send, &Response::Error(error.clone())).await;
    frame_io::flush(send).await;
    connection.close(
        u32::from(error.code.0).into(),
        error.message.as_str().as_bytes(),
    );
}

/// Open sessions by (user, device), so that revoking or banning a device
/// closes its connections at once. Keyed by the pair: a revocation names
/// its signer's device, and must never reach another user's sessions that
/// use the same device id.
#[derive(Debug, Default)]
pub struct Sessions {
    by_device: Mutex<ByDevice>,
    next_id: AtomicU64,
}

/// Each (user, device)'s open connections, each with its session's id.
type ByDevice = HashMap<(UserId, DeviceId), Vec<(u64, quinn::Connection)>>;

/// Unregisters a session when dropped.
#[derive(Debug)]
pub struct SessionEntry<'a> {
    sessions: &'a Sessions,
    key: (UserId, DeviceId),
    id: u64,
}

impl Sessions {
    fn register(&self, session: &Session) -> SessionEntry<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let key = (session.user(), session.device());
        self.lock()
            .entry(key)
            .or_default()
            .push((id, session.connection.clone()));
        SessionEntry {
            sessions: self,
            key,
            id,
        }
    }

    /// Closes every connection of `user`'s `device` with `code`.
    pub fn close_device(&self, user: UserId, device: DeviceId, code: ErrorCode, reason: &str) {
        if let Some(connections) = self.lock().remove(&(user, device)) {
            close_each(connections, code, reason);
        }
    }

    /// Closes every connection of `device`, whichever user it is
    /// authenticated as: an operator's ban is of the device key itself.
    pub fn close_banned(&self, device: DeviceId, code: ErrorCode, reason: &str) {
        let mut by_device = self.lock();
        let keys: Vec<_> = by_device
            .keys()
            .filter(|(_, d)| *d == device)
            .copied()
            .collect();
        for key in keys {
            if let Some(connections) = by_device.remove(&key) {
                close_each(connections, code, reason);
            }
        }
    }

    /// Closes every connection of `user`'s devices with `code`; how many
    /// devices had one.
    pub fn close_user(&self, user: UserId, code: ErrorCode, reason: &str) -> usize {
        let mut by_device = self.lock();
        let keys: Vec<_> = by_device
            .keys()
            .filter(|(u, _)| *u == user)
            .copied()
            .collect();
        for key in &keys {
            if let Some(connections) = by_device.remove(key) {
                close_each(connections, code, reason);
            }
        }
        keys.len()
    }

    /// Every (user, device) with a connection now.
    pub fn connected(&self) -> Vec<(UserId, DeviceId)> {
        self.lock().keys().copied().collect()
    }

    /// How many of `user`'s devices are connected now.
    pub fn connected_devices(&self, user: UserId) -> usize {
        self.lock().keys().filter(|(u, _)| *u == user).count()
    }

    /// Closes every connection with `code`.
    pub fn close_all(&self, code: ErrorCode, reason: &str) {
        for (_, connections) in self.lock().drain() {
            close_each(connections, code, reason);
        }
    }

    fn lock(&self) -> MutexGuard<'_, ByDevice> {
        self.by_device
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn close_each(connections: Vec<(u64, quinn::Connection)>, code: ErrorCode, reason: &str) {
    for (_, connection) in connections {
        connection.close(u32::from(code.0).into(), reason.as_bytes());
    }
}

impl Drop for SessionEntry<'_> {
    fn drop(&mut self) {
        let mut by_device = self.sessions.lock();
        if let Some(list) = by_device.get_mut(&self.key) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                by_device.remove(&self.key);
            }
        }
    }
}
