//! Starting, running and stopping the relay.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use cairn_store::Store;
use cairn_wire::frames::FRAME_HEADER_LEN;
use cairn_wire::limits::{MAX_AUTH_FRAME_LEN, MAX_FRAME_LEN};
use cairn_wire::{ErrorCode, Fingerprint};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin;
use crate::admin_file::{AdminFile, AdminFileError};
use crate::admission::{self, Attempt, Gate, PendingLogin, PendingLogins};
use crate::backend::{OpenStoreError, RelayStore};
use crate::bans::{BanChanges, Bans, BansError};
use crate::config::{ConfigError, ConfigSource, Limits, RelayConfig};
use crate::disk::DiskState;
use crate::fanout::Hub;
use crate::limits::ConnectionCounts;
use crate::live::{ConfigChanges, Live};
use crate::metrics;
use crate::session::{Sessions, Unauthenticated};
use crate::tls::{TlsError, TlsIdentity};

/// How long shutdown waits for in-flight requests before closing anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often idle rate-limiter keys are forgotten.
const LIMITER_HOUSEKEEPING: Duration = Duration::from_secs(60);

/// What every connection task shares.
#[derive(Debug)]
pub struct Shared<S: Store> {
    /// The log.
    pub store: S,
    /// The configuration the relay started with; [`Shared::live`] holds
    /// the parts a reload changes.
    pub config: RelayConfig,
    /// Registration and limits, as last reloaded.
    pub live: Live,
    /// Where the configuration was read from, to read it again on reload
    /// (none: started from a configuration built in code).
    pub source: Option<ConfigSource>,
    /// Live subscribers.
    pub hub: Arc<Hub>,
    /// Open sessions by device.
    pub sessions: Sessions,
    /// Devices the operator banned.
    pub bans: Bans,
    /// Whether the database is out of space.
    pub disk: DiskState,
    /// Cancelled when the relay begins to shut down.
    pub shutdown: CancellationToken,
    /// Every request task, so shutdown can drain them.
    pub tasks: TaskTracker,
}

impl<S: Store> Shared<S> {
    /// Reads the configuration and the ban list again (`SIGHUP`,
    /// `cairn-relay reload`): puts the reloadable settings in force,
    /// closes the connections of every device newly banned, and logs what
    /// changed. A configuration or ban list that does not load changes
    /// nothing.
    pub fn reload(&self) -> Result<Reloaded, ReloadError> {
        let config = match &self.source {
            Some(source) => Some(source.load()?),
            None => None,
        };
        let bans = self.reload_bans()?;
        let config = config.map_or_else(ConfigChanges::default, |c| self.live.replace(&c));
        for change in &config.applied {
            tracing::info!(%change, "configuration reloaded");
        }
        for change in &config.at_restart {
            tracing::warn!(%change, "configuration changed; takes effect at the next start");
        }
        Ok(Reloaded { bans, config })
    }

    fn reload_bans(&self) -> Result<BanChanges, BansError> {
        let changes = self.bans.reload()?;
        for device in &changes.banned {
            self.sessions.close_banned(
                *device,
                ErrorCode::DEVICE_BANNED,
                "device banned by the relay operator",
            );
        }
        tracing::info!(
            banned = changes.banned.len(),
            unbanned = changes.unbanned.len(),
            "reloaded the ban list"
        );
        Ok(changes)
    }

    /// How long a peer has to send a whole request frame.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.live.limits().request_timeout_secs.max(1))
    }

    /// How far ahead of the relay's clock a statement may be dated.
    pub fn max_clock_skew(&self) -> Duration {
        Duration::from_secs(self.live.limits().max_clock_skew_secs)
    }
}

/// The relay could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}")]
    DataDir {
        /// Which directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS identity could not be loaded or created.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] OpenStoreError),
    /// The ban list could not be read.
    #[error(transparent)]
    Bans(#[from] BansError),
    /// `admin.json` could not be written.
    #[error(transparent)]
    AdminFile(#[from] AdminFileError),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// Which address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A running relay.
#[derive(Debug)]
pub struct RelayHandle {
    /// The QUIC address it listens on.
    pub addr: SocketAddr,
    /// The admin HTTP address.
    pub admin_addr: SocketAddr,
    /// The address serving `/metrics` and `/healthz` alone, if configured.
    pub metrics_addr: Option<SocketAddr>,
    /// The certificate fingerprint clients pin.
    pub fingerprint: Fingerprint,
    shutdown: CancellationToken,
    done: tokio::task::JoinHandle<()>,
    shared: Weak<Shared<RelayStore>>,
}

/// Makes a running relay read its ban list again, from a signal handler or
/// anywhere else that outlives a borrow of the [`RelayHandle`]. It holds
/// the relay weakly: a stopped relay closes its store whatever reloaders
/// are left.
#[derive(Clone)]
pub struct Reloader(Weak<Shared<RelayStore>>);

/// What a reload changed.
#[derive(Debug, Clone, Default)]
pub struct Reloaded {
    /// Devices banned and unbanned.
    pub bans: BanChanges,
    /// Settings changed.
    pub config: ConfigChanges,
}

/// Why a reload did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The relay has stopped.
    #[error("the relay has stopped")]
    Stopped,
    /// The configuration could not be read; nothing changed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The ban list could not be read; nothing changed.
    #[error(transparent)]
    Bans(#[from] BansError),
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reloader")
    }
}

impl Reloader {
    /// See [`Shared::reload`].
    pub fn reload(&self) -> Result<Reloaded, ReloadError> {
        let shared = self.0.upgrade().ok_or(ReloadError::Stopped)?;
        shared.reload()
    }
}

impl RelayHandle {
    /// A handle that reloads this relay; see [`Shared::reload`].
    pub fn reloader(&self) -> Reloader {
        Reloader(self.shared.clone())
    }

    /// Begins a graceful shutdown and waits until it is complete.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.done.await;
    }

    /// Waits until the relay has stopped (after [`RelayHandle::trigger`]).
    pub async fn wait(self) {
        let _ = self.done.await;
    }

    /// A token that, when cancelled, shuts the relay down.
    pub fn trigger(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Starts a relay on `config`: creates the data directory, the TLS identity
/// and the database if needed, binds both listeners, and serves until shut
/// down.
pub async fn start(config: RelayConfig) -> Result<RelayHandle, StartError> {
    start_with(config, None).await
}

/// [`start`], keeping where `config` was read from so that a reload reads
/// it again.
pub async fn start_with(
    config: RelayConfig,
    source: Option<ConfigSource>,
) -> Result<RelayHandle, StartError> {
    start_on(config, source, None).await
}

/// [`start`] on a database file whose reads, writes and syncs fail as
/// `faults` schedules (`cairn_store::backend`): how tests drive a relay
/// over a failing disk.
pub async fn start_on_faulty_disk(
    config: RelayConfig,
    faults: Arc<cairn_store::backend::Faults>,
) -> Result<RelayHandle, StartError> {
    start_on(config, None, Some(faults)).await
}

async fn start_on(
    config: RelayConfig,
    source: Option<ConfigSource>,
    faults: Option<Arc<cairn_store::backend::Faults>>,
) -> Result<RelayHandle, StartError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let identity = TlsIdentity::load_or_create(&config)?;
    if metrics::prometheus().is_none() {
        tracing::warn!("another metrics recorder is installed; /metrics will be empty");
    }
    let live = Live::new(&config);
    let storage = cairn_store::Config {
        cache_bytes: config.storage.cache_bytes,
        quota: config.limits.quota(),
        size_limit: live.size_limit(),
        faults,
        ..cairn_store::Config::default()
    };
    let store = RelayStore::open(&config, storage).await?;
    let bans = Bans::load(&config.data_dir)?;
    // A cluster's bans are in the store, on every node.
    bans.set_cluster(store.banned_devices().await.map_err(OpenStoreError::from)?);
    let endpoint = bind_quic(&identity, &config)?;
    let addr = endpoint.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let (admin_listener, admin_addr) = bind_tcp(config.admin_listen).await?;
    let metrics = match config.metrics_listen {
        Some(listen) => Some(bind_tcp(listen).await?),
        None => None,
    };
    let metrics_addr = metrics.as_ref().map(|(_, addr)| *addr);
    let admin = AdminFile::publish(&config.data_dir, admin_addr)?;
    let fingerprint = identity.fingerprint()?;
    tracing::info!(listen = %addr, admin = %admin_addr, metrics = ?metrics_addr, fingerprint = %fingerprint, data_dir = %config.data_dir.display(), "cairn relay listening");

    let shutdown = CancellationToken::new();
    let shared = Arc::new(Shared {
        live,
        hub: Arc::new(Hub::default()),
        sessions: Sessions::default(),
        tasks: TaskTracker::new(),
        shutdown: shutdown.clone(),
        bans,
        disk: DiskState::default(),
        config,
        source,
        store,
    });
    let listeners = Listeners {
        admin: admin_listener,
        admin_token: admin.token,
        metrics: metrics.map(|(listener, _)| listener),
    };
    let weak = Arc::downgrade(&shared);
    let done = tokio::spawn(run(shared, endpoint, listeners));
    Ok(RelayHandle {
        addr,
        admin_addr,
        metrics_addr,
        fingerprint,
        shutdown,
        done,
        shared: weak,
    })
}

async fn bind_tcp(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let bind = |source| StartError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind)?;
    let bound = listener.local_addr().map_err(bind)?;
    Ok((listener, bound))
}

fn bind_quic(identity: &TlsIdentity, config: &RelayConfig) -> Result<quinn::Endpoint, StartError> {
    let crypto = identity.quic_server_config()?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(Arc::new(transport(&config.limits)));
    quinn::Endpoint::server(server, config.listen).map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })
}

/// Transport limits as a connection starts: before it authenticates, a
/// peer may open one stream and have one `Authenticate` frame in flight,
/// nothing more, so a stranger costs the relay a bounded number of bytes.
/// [`open_up`] raises both once the device has authenticated. No
/// unidirectional streams; the idle timeout. What the relay buffers to
/// send is bounded by the send window (quinn's default, 10 MB, let each
/// slow reader hold that much of the relay's memory).
///
/// No datagrams either way: cairn sends none, and quinn's default would
/// let any peer, authenticated or not, park 1.25 MB of unread datagrams
/// on every connection it opens.
fn transport(limits: &Limits) -> quinn::TransportConfig {
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_bidi_streams(1u32.into());
    transport.max_concurrent_uni_streams(0u32.into());
    transport.datagram_receive_buffer_size(None);
    transport.datagram_send_buffer_size(0);
    transport.receive_window(window(MAX_AUTH_FRAME_LEN + FRAME_HEADER_LEN));
    transport.stream_receive_window(window(MAX_FRAME_LEN + FRAME_HEADER_LEN));
    transport.send_window(u64::from(limits.send_window_per_connection.max(1)));
    transport.max_idle_timeout(
        Duration::from_secs(limits.idle_timeout_secs.max(1))
            .try_into()
            .ok(),
    );
    transport
}

/// Gives an authenticated connection its request streams and its receive
/// window.
pub fn open_up(connection: &quinn::Connection, limits: &Limits) {
    connection.set_max_concurrent_bi_streams(limits.streams_per_connection.into());
    connection.set_receive_window(window(authenticated_receive_window(limits)));
}

/// What an authenticated connection ends up with: [`transport`] after
/// [`open_up`]. A bare quinn server set up with it does the QUIC part of
/// the relay's work, like for like (the benchmarks' baseline).
pub fn authenticated_transport(limits: &Limits) -> quinn::TransportConfig {
    let mut transport = transport(limits);
    transport.max_concurrent_bidi_streams(limits.streams_per_connection.into());
    transport.receive_window(window(authenticated_receive_window(limits)));
    transport
}

/// The configured receive window, never less than one whole frame.
fn authenticated_receive_window(limits: &Limits) -> usize {
    let floor = MAX_FRAME_LEN + FRAME_HEADER_LEN;
    let bytes = usize::try_from(limits.receive_window_per_connection).unwrap_or(floor);
    bytes.max(floor)
}

fn window(bytes: usize) -> quinn::VarInt {
    quinn::VarInt::from_u32(u32::try_from(bytes).unwrap_or(u32::MAX))
}

/// The HTTP listeners, bound before the relay reports that it runs.
struct Listeners {
    admin: TcpListener,
    admin_token: String,
    metrics: Option<TcpListener>,
}

async fn run(shared: Arc<Shared<RelayStore>>, endpoint: quinn::Endpoint, listeners: Listeners) {
    let hub = shared.hub.clone();
    let feed = shared.store.subscribe();
    let mut background = vec![
        tokio::spawn(async move { hub.run(feed).await }),
        tokio::spawn(admin::serve(
            shared.clone(),
            listeners.admin,
            listeners.admin_token,
        )),
        tokio::spawn(forget_idle_limiter_keys(shared.clone())),
        tokio::spawn(crate::retention::run_periodically(shared.clone())),
        tokio::spawn(crate::effects::run(shared.clone())),
    ];
    if let Some(metrics) = listeners.metrics {
        background.push(tokio::spawn(admin::serve_metrics(shared.clone(), metrics)));
    }
    accept_loop(&shared, &endpoint).await;
    drain(&shared, &endpoint).await;
    for task in background {
        task.abort();
        let _ = task.await;
    }
    close_store(shared).await;
    tracing::info!("cairn relay stopped");
}

/// Waits for the writer to finish its last commit and releases the file.
async fn close_store(shared: Arc<Shared<RelayStore>>) {
    match Arc::try_unwrap(shared) {
        Ok(shared) => shared.store.close().await,
        Err(_) => tracing::warn!(
            "the store is still in use at shutdown; it closes when the last user lets go"
        ),
    }
}

async fn accept_loop<S: Store>(shared: &Arc<Shared<S>>, endpoint: &quinn::Endpoint) {
    let connections = ConnectionCounts::default();
    let pending = PendingLogins::default();
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            () = shared.shutdown.cancelled() => return,
        };
        let Some(incoming) = incoming else { return };
        let attempt = Attempt {
            pending: pending.now(),
            validated: incoming.remote_address_validated(),
            may_retry: incoming.may_retry(),
        };
        match admission::gate(attempt, &shared.live.limits()) {
            Gate::Accept => {}
            Gate::Retry => {
                metrics::counter(metrics::RETRIES);
                let _ = incoming.retry();
                continue;
            }
            Gate::Refuse(why) => {
                metrics::refused_attempt(why);
                incoming.refuse();
                continue;
            }
        }
        let login = pending.begin();
        let (shared, connections) = (shared.clone(), connections.clone());
        shared
            .tasks
            .clone()
            .spawn(async move { connection(shared, connections, incoming, login).await });
    }
}

async fn connection<S: Store>(
    shared: Arc<Shared<S>>,
    counts: ConnectionCounts,
    incoming: quinn::Incoming,
    mut login: PendingLogin,
) {
    let Ok(connection) = incoming.await else {
        return;
    };
    metrics::counter(metrics::CONNECTIONS);
    let ip = connection.remote_address().ip();
    if let Err(code) = admit_address(&shared, &connection, ip) {
        metrics::refusal(code);
        return;
    }
    let Some(_slot) = counts.acquire(ip, shared.live.limits().connections_per_ip) else {
        metrics::refusal(ErrorCode::TOO_MANY_CONNECTIONS);
        connection.close(
            u32::from(ErrorCode::TOO_MANY_CONNECTIONS.0).into(),
            b"too many connections from this address",
        );
        return;
    };
    metrics::gauge_add(metrics::CONNECTIONS_OPEN, 1.0);
    // Boxed: a task is as large as its largest state for its whole life,
    // and logging in needs far more room than an idle session does.
    let authenticate = Box::pin(Unauthenticated::new(connection.clone()).authenticate(&shared));
    // `authenticate` bounds each of its waits itself and says why it gives
    // up; this outer bound only keeps a stuck login from living forever.
    let login_bound = shared.request_timeout() * 3;
    let outcome = tokio::select! {
        outcome = tokio::time::timeout(login_bound, authenticate) => outcome,
        // A login still under way at shutdown has nothing to drain.
        () = shared.shutdown.cancelled() => Ok(None),
    };
    login.settle();
    match outcome {
        Ok(Some(session)) => {
            let device = session.device();
            Box::pin(session.serve(shared.clone())).await;
            tracing::info!(%device, %ip, "connection closed");
        }
        Ok(None) if shared.shutdown.is_cancelled() => connection.close(
            u32::from(ErrorCode::SHUTTING_DOWN.0).into(),
            b"relay shutting down",
        ),
        Ok(None) => {}
        Err(_) => connection.close(
            u32::from(ErrorCode::UNAUTHENTICATED.0).into(),
            b"no authentication in time",
        ),
    }
    metrics::gauge_add(metrics::CONNECTIONS_OPEN, -1.0);
}

/// Charges a new connection to its address's handshake budget; the
/// address is proven by now (the handshake completed), so a forged one
/// cannot spend another's budget.
fn admit_address<S: Store>(
    shared: &Shared<S>,
    connection: &quinn::Connection,
    ip: std::net::IpAddr,
) -> Result<(), ErrorCode> {
    if shared.live.rates().check_handshake(ip).is_err() {
        connection.close(
            u32::from(ErrorCode::RATE_LIMITED.0).into(),
            b"too many new connections from this address; retry later",
        );
        return Err(ErrorCode::RATE_LIMITED);
    }
    Ok(())
}

/// Stops accepting, lets subscribers and in-flight requests finish (they
/// see the cancelled token), then closes every connection.
async fn drain<S: Store>(shared: &Shared<S>, endpoint: &quinn::Endpoint) {
    tracing::info!("shutting down: draining requests");
    endpoint.set_server_config(None);
    shared.tasks.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, shared.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after the drain timeout; closing anyway");
    }
    shared
        .sessions
        .close_all(ErrorCode::SHUTTING_DOWN, "relay shutting down");
    endpoint.close(
        u32::from(ErrorCode::SHUTTING_DOWN.0).into(),
        b"relay shutting down",
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
}

async fn forget_idle_limiter_keys<S: Store>(shared: Arc<Shared<S>>) {
    let mut tick = tokio::time::interval(LIMITER_HOUSEKEEPING);
    loop {
        tick.tick().await;
        shared.live.rates().forget_idle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// quinn keeps its settings private; its `Debug` output is the one
    /// place they can be read back.
    fn setting(transport: &quinn::TransportConfig, name: &str) -> Option<String> {
        let text = format!("{transport:?}");
        let rest = text.split(&format!("{name}: ")).nth(1)?;
        Some(rest.split([',', ' ', '}']).next()?.to_owned())
    }

    #[test]
    fn what_the_relay_buffers_to_send_per_connection_is_the_configured_send_window() {
        let limits = Limits {
            send_window_per_connection: 123_456,
            ..Limits::default()
        };
        let configured = transport(&limits);
        assert_eq!(
            setting(&configured, "send_window").as_deref(),
            Some("123456")
        );
        // quinn's own default is 10 MB per connection.
        let default = transport(&Limits::default());
        assert_eq!(setting(&default, "send_window").as_deref(), Some("2097152"));
    }

    #[test]
    fn the_relay_takes_no_datagrams() {
        let configured = transport(&Limits::default());
        assert_eq!(
            setting(&configured, "datagram_receive_buffer_size").as_deref(),
            Some("None")
        );
        assert_eq!(
            setting(&configured, "datagram_send_buffer_size").as_deref(),
            Some("0")
        );
    }
}
