//! [`ClusterStore`]: the store of one relay node of a cluster. Writes go
//! to the log and are answered once this node's applier has applied them;
//! reads are served by the node's copy once it has applied the log as far
//! as it went when the read began.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use cairn_store::{
    AppendError, BackendError, BackupError, CommitBatch, CommitCounters, Config, Cutoffs,
    DeviceRecord, Effect, EncodedRead, Expiry, Gone, Invite, InviteId, ItemOutcome, LogAnswer,
    Quota, ReadError, RedbStore, Redemption, Removal, Restore, StatementOutcome, Stats, Store,
    StoredEnvelope, StoredStatement, StreamHead, StreamRead, Usage, VerifyReport, WriteError,
    adopt_log,
};
use cairn_wire::{
    BoundedVec, Cursor, DeviceCertificate, DeviceId, DeviceRevocation, Envelope, EnvelopeId,
    FriendGrant, FriendRevocation, LogId, StreamId, UserId,
};
use tokio::sync::{broadcast, oneshot, watch};
use tokio::task::JoinHandle;

use crate::applier::{Applier, Waiting};
use crate::error::ClusterError;
use crate::jetstream::{JetStreamConfig, JetStreamLog};
use crate::record::{Body, InviteRecord, LogRecord, Origin, StatementRecord};

/// One node's store: its own redb copy, following the cluster's log.
#[derive(Debug)]
pub struct ClusterStore {
    local: Arc<RedbStore>,
    log: JetStreamLog,
    config: JetStreamConfig,
    quota: Quota,
    process: u64,
    next_request: AtomicU64,
    waiting: Waiting,
    applied: watch::Receiver<u64>,
    stopped: Arc<Mutex<Option<String>>>,
    applier: Mutex<Option<JoinHandle<()>>>,
}

impl ClusterStore {
    /// Opens the node's copy at `path` (made if missing), joins the log
    /// (starting it if it is empty), and applies it up to where it was
    /// when the node started. Refuses a copy of another cluster's log, and
    /// a copy so far behind that the log no longer holds what it missed.
    pub async fn open(
        path: &Path,
        store: Config,
        config: JetStreamConfig,
    ) -> Result<Self, ClusterError> {
        let log = JetStreamLog::connect(&config).await?;
        let (first, last) = log.bounds().await?;
        if let Some(cluster) = cluster_log_id(&log, &config, first, last).await? {
            adopt_log(path, cluster)?;
        }
        let quota = store.quota;
        let local = Arc::new(RedbStore::open_with(path, store)?);
        let applied = local.log_applied().await?;
        if first > applied.saturating_add(1) && last >= first {
            return Err(ClusterError::TooFarBehind { first, applied });
        }
        let process = random_u64()?;
        let waiting = Waiting::default();
        let (applied_tx, applied_rx) = watch::channel(applied);
        let stopped = Arc::new(Mutex::new(None));
        let applier = Applier {
            local: Arc::clone(&local),
            log: log.clone(),
            process,
            waiting: Arc::clone(&waiting),
            applied: applied_tx,
        };
        let handle = tokio::spawn(watch_applier(applier, applied, Arc::clone(&stopped)));
        let node = Self {
            local,
            log,
            config,
            quota,
            process,
            next_request: AtomicU64::new(0),
            waiting,
            applied: applied_rx,
            stopped,
            applier: Mutex::new(Some(handle)),
        };
        node.catch_up(last, None).await?;
        Ok(node)
    }

    /// The node's copy (backup, check).
    pub fn local(&self) -> &RedbStore {
        &self.local
    }

    /// The last record this node has applied.
    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Stops applying the log and closes the copy.
    pub async fn close(self) {
        let handle = self
            .applier
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            handle.abort();
            let _ = handle.await;
        }
        if let Ok(local) = Arc::try_unwrap(self.local) {
            local.close().await;
        }
    }

    /// Waits until the applier has applied record `seq`, until `deadline`
    /// if there is one.
    async fn catch_up(&self, seq: u64, deadline: Option<Instant>) -> Result<(), ClusterError> {
        let mut applied = self.applied.clone();
        loop {
            if *applied.borrow_and_update() >= seq {
                return Ok(());
            }
            if let Some(reason) = self.stopped_reason() {
                return Err(ClusterError::Stopped(reason));
            }
            let changed = applied.changed();
            match deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline.into(), changed).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Err(ClusterError::Stopped("applier gone".into())),
                    Err(_) => return Err(ClusterError::Behind(seq)),
                },
                None => {
                    if changed.await.is_err() {
                        return Err(ClusterError::Stopped("applier gone".into()));
                    }
                }
            }
        }
    }

    fn stopped_reason(&self) -> Option<String> {
        self.stopped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Before a read: the log's last record as of now is applied here, so
    /// a client that wrote through another node reads its write here.
    async fn barrier(&self) -> Result<(), ReadError> {
        let deadline = Instant::now() + self.config.request_timeout;
        let (_, last) = self.log.bounds().await.map_err(read_error)?;
        self.catch_up(last, Some(deadline))
            .await
            .map_err(read_error)
    }

    /// Publishes `body` and waits for this node to apply it.
    async fn write(&self, body: Body) -> Result<LogAnswer, ClusterError> {
        if let Some(reason) = self.stopped_reason() {
            return Err(ClusterError::Stopped(reason));
        }
        let request = self.next_request.fetch_add(1, Ordering::Relaxed) + 1;
        let (reply, answer) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(request, reply);
        let record = LogRecord {
            origin: Origin {
                process: self.process,
                request,
            },
            body,
        };
        let id = format!("{}-{:016x}-{request}", self.config.node_id, self.process);
        let deadline = Instant::now() + self.config.request_timeout;
        let outcome = match self.log.publish(&id, &record, deadline).await {
            Ok(seq) => self.await_answer(seq, answer, deadline).await,
            Err(e) => Err(e),
        };
        if outcome.is_err() {
            self.waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&request);
        }
        outcome
    }

    async fn await_answer(
        &self,
        seq: u64,
        answer: oneshot::Receiver<LogAnswer>,
        deadline: Instant,
    ) -> Result<LogAnswer, ClusterError> {
        // Applying may lag the publish: give it the request's time again.
        let deadline = deadline.max(Instant::now()) + self.config.request_timeout;
        match tokio::time::timeout_at(deadline.into(), answer).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(ClusterError::Stopped(
                self.stopped_reason()
                    .unwrap_or_else(|| "applier gone".into()),
            )),
            Err(_) => Err(ClusterError::Behind(seq)),
        }
    }

    async fn statement(&self, record: StatementRecord) -> Result<StatementOutcome, WriteError> {
        match self.write(Body::Statement(record)).await {
            Ok(LogAnswer::Statement(outcome)) => Ok(outcome),
            Ok(other) => Err(mismatched(&other)),
            Err(e) => Err(write_error(e)),
        }
    }

    async fn invite(&self, record: InviteRecord) -> Result<LogAnswer, WriteError> {
        self.write(Body::Invite(record)).await.map_err(write_error)
    }
}

/// The cluster's log id: from the genesis record, which this node writes
/// first if the log is empty. `None` when the log no longer holds it
/// (records older than its retention are gone): the copy's own id then
/// stands, and the copy must have applied what was dropped.
async fn cluster_log_id(
    log: &JetStreamLog,
    config: &JetStreamConfig,
    first: u64,
    last: u64,
) -> Result<Option<LogId>, ClusterError> {
    if last == 0 {
        let candidate = LogId::from_bytes(random_bytes()?);
        let genesis = LogRecord {
            origin: Origin {
                process: 0,
                request: 0,
            },
            body: Body::Genesis {
                log: candidate,
                schema: cairn_store::SCHEMA_VERSION,
            },
        };
        let id = format!("{}-genesis", config.node_id);
        let deadline = Instant::now() + config.request_timeout;
        log.publish_first(&id, &genesis, deadline).await?;
    } else if first > 1 {
        return Ok(None);
    }
    match log.record(1).await? {
        Some(LogRecord {
            body: Body::Genesis { log, .. },
            ..
        }) => Ok(Some(log)),
        Some(_) => Err(ClusterError::NoGenesis),
        None => Ok(None),
    }
}

/// Runs the applier and, when it stops, records why (every write after
/// that is refused with it).
async fn watch_applier(applier: Applier, applied: u64, stopped: Arc<Mutex<Option<String>>>) {
    let error = applier.run(applied).await;
    tracing::error!(%error, "the log applier stopped");
    *stopped.lock().unwrap_or_else(PoisonError::into_inner) = Some(error.to_string());
}

fn random_bytes<const N: usize>() -> Result<[u8; N], ClusterError> {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).map_err(|e| ClusterError::Stopped(e.to_string()))?;
    Ok(bytes)
}

fn random_u64() -> Result<u64, ClusterError> {
    random_bytes().map(u64::from_le_bytes)
}

fn read_error(e: ClusterError) -> ReadError {
    ReadError::Backend(BackendError::new(e))
}

fn write_error(e: ClusterError) -> WriteError {
    WriteError::Backend(BackendError::new(e))
}

/// The applier answers each record with the answer of its kind; another
/// is a bug, reported, never read as a default.
fn mismatched(answer: &LogAnswer) -> WriteError {
    WriteError::Backend(BackendError::new(format!(
        "the log answered a request with {answer:?}, not the request's kind"
    )))
}

impl Store for ClusterStore {
    async fn append(&self, batch: Vec<Envelope>) -> Result<Vec<ItemOutcome>, AppendError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let envelopes =
            BoundedVec::new(batch).map_err(|e| AppendError::Backend(BackendError::new(e)))?;
        let body = Body::Append {
            envelopes,
            quota_bytes: self.quota.bytes,
            quota_envelopes: self.quota.envelopes,
        };
        match self.write(body).await {
            Ok(LogAnswer::Appended(outcomes)) => Ok(outcomes),
            Ok(other) => Err(AppendError::Backend(BackendError::new(format!(
                "the log answered an append with {other:?}"
            )))),
            Err(e) => Err(AppendError::Backend(BackendError::new(e))),
        }
    }

    async fn read_stream_within(
        &self,
        stream: StreamId,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<StreamRead, ReadError> {
        self.barrier().await?;
        self.local
            .read_stream_within(stream, after, limit, max_bytes)
            .await
    }

    async fn read_stream_encoded(
        &self,
        stream: StreamId,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<EncodedRead, ReadError> {
        self.barrier().await?;
        self.local
            .read_stream_encoded(stream, after, limit, max_bytes)
            .await
    }

    async fn stream_head(&self, stream: StreamId) -> Result<u64, ReadError> {
        self.barrier().await?;
        self.local.stream_head(stream).await
    }

    async fn envelope(&self, id: EnvelopeId) -> Result<Option<StoredEnvelope>, ReadError> {
        self.barrier().await?;
        self.local.envelope(id).await
    }

    async fn streams_of(&self, owner: UserId) -> Result<Vec<StreamHead>, ReadError> {
        self.barrier().await?;
        self.local.streams_of(owner).await
    }

    async fn direct_streams_to(&self, recipient: UserId) -> Result<Vec<StreamHead>, ReadError> {
        self.barrier().await?;
        self.local.direct_streams_to(recipient).await
    }

    async fn register_device(
        &self,
        certificate: DeviceCertificate,
    ) -> Result<StatementOutcome, WriteError> {
        self.statement(StatementRecord::Certificate(certificate))
            .await
    }

    async fn revoke_device(
        &self,
        revocation: DeviceRevocation,
    ) -> Result<StatementOutcome, WriteError> {
        self.statement(StatementRecord::DeviceRevocation(revocation))
            .await
    }

    async fn grant_friend(&self, grant: FriendGrant) -> Result<StatementOutcome, WriteError> {
        self.statement(StatementRecord::Grant(grant)).await
    }

    async fn revoke_friend(
        &self,
        revocation: FriendRevocation,
    ) -> Result<StatementOutcome, WriteError> {
        self.statement(StatementRecord::FriendRevocation(revocation))
            .await
    }

    async fn device(
        &self,
        user: UserId,
        device: DeviceId,
    ) -> Result<Option<DeviceRecord>, ReadError> {
        self.barrier().await?;
        self.local.device(user, device).await
    }

    async fn devices(&self, user: UserId) -> Result<Vec<DeviceRecord>, ReadError> {
        self.barrier().await?;
        self.local.devices(user).await
    }

    async fn grants_by(&self, granter: UserId) -> Result<Vec<FriendGrant>, ReadError> {
        self.barrier().await?;
        self.local.grants_by(granter).await
    }

    async fn granters_of(&self, grantee: UserId) -> Result<Vec<UserId>, ReadError> {
        self.barrier().await?;
        self.local.granters_of(grantee).await
    }

    async fn ack(&self, device: DeviceId, cursor: Cursor) -> Result<u64, WriteError> {
        match self.write(Body::Ack { device, cursor }).await {
            Ok(LogAnswer::Acked(position)) => Ok(position),
            Ok(other) => Err(mismatched(&other)),
            Err(e) => Err(write_error(e)),
        }
    }

    async fn acked(&self, device: DeviceId) -> Result<Vec<Cursor>, ReadError> {
        self.barrier().await?;
        self.local.acked(device).await
    }

    async fn stats(&self) -> Result<Stats, ReadError> {
        self.local.stats().await
    }

    async fn create_invite(&self, invite: Invite) -> Result<(), WriteError> {
        let record = InviteRecord::Create {
            id: invite.id.0,
            uses_left: invite.uses_left,
            expires_ms: invite.expires_ms,
            created_ms: invite.created_ms,
        };
        match self.invite(record).await? {
            LogAnswer::InviteCreated => Ok(()),
            other => Err(mismatched(&other)),
        }
    }

    async fn invites(&self) -> Result<Vec<Invite>, ReadError> {
        self.barrier().await?;
        self.local.invites().await
    }

    async fn revoke_invite(&self, id: InviteId) -> Result<bool, WriteError> {
        match self.invite(InviteRecord::Revoke(id.0)).await? {
            LogAnswer::InviteRevoked(existed) => Ok(existed),
            other => Err(mismatched(&other)),
        }
    }

    async fn redeem_invite(&self, id: InviteId, now_ms: u64) -> Result<Redemption, WriteError> {
        let record = InviteRecord::Redeem {
            id: id.0,
            at_ms: now_ms,
        };
        match self.invite(record).await? {
            LogAnswer::Redeemed(redemption) => Ok(redemption),
            other => Err(mismatched(&other)),
        }
    }

    async fn usage(&self) -> Result<Vec<(UserId, Usage)>, ReadError> {
        self.barrier().await?;
        self.local.usage().await
    }

    fn commit_counters(&self) -> CommitCounters {
        self.local.commit_counters()
    }

    fn subscribe(&self) -> broadcast::Receiver<CommitBatch> {
        self.local.subscribe()
    }

    /// The copy's effects: those of every node's writes, as this node
    /// applies them.
    fn effects(&self) -> broadcast::Receiver<Effect> {
        self.local.effects()
    }

    async fn all_streams(&self) -> Result<Vec<StreamHead>, ReadError> {
        self.barrier().await?;
        self.local.all_streams().await
    }

    async fn statements(&self) -> Result<Vec<StoredStatement>, ReadError> {
        self.barrier().await?;
        self.local.statements().await
    }

    async fn backup(&self, path: &Path) -> Result<(), BackupError> {
        self.local.backup(path).await
    }

    async fn verify(&self) -> Result<VerifyReport, ReadError> {
        self.local.verify().await
    }

    async fn remove_user(&self, user: UserId, now_ms: u64) -> Result<Removal, WriteError> {
        match self
            .write(Body::RemoveUser {
                user,
                at_ms: now_ms,
            })
            .await
        {
            Ok(LogAnswer::Removed(removal)) => Ok(removal),
            Ok(other) => Err(mismatched(&other)),
            Err(e) => Err(write_error(e)),
        }
    }

    async fn expire(&self, cutoffs: Cutoffs, budget: u64) -> Result<Expiry, WriteError> {
        let body = Body::Expire {
            friends_before_ms: cutoffs.friends_before_ms,
            direct_before_ms: cutoffs.direct_before_ms,
            budget,
        };
        match self.write(body).await {
            Ok(LogAnswer::Expired(expiry)) => Ok(expiry),
            Ok(other) => Err(mismatched(&other)),
            Err(e) => Err(write_error(e)),
        }
    }

    async fn gone(&self) -> Result<Gone, ReadError> {
        self.barrier().await?;
        self.local.gone().await
    }

    async fn restore(&self, _what: Restore) -> Result<Result<(), &'static str>, WriteError> {
        Ok(Err(
            "a cluster node does not import: import into a single-node relay, then seed the \
             cluster's nodes from its backup",
        ))
    }

    async fn removed(&self, user: UserId) -> Result<Option<u64>, ReadError> {
        self.barrier().await?;
        self.local.removed(user).await
    }

    async fn ban_device(&self, device: DeviceId, at_ms: u64) -> Result<bool, WriteError> {
        match self.write(Body::Ban { device, at_ms }).await {
            Ok(LogAnswer::Banned(changed)) => Ok(changed),
            Ok(other) => Err(mismatched(&other)),
            Err(e) => Err(write_error(e)),
        }
    }

    async fn unban_device(&self, device: DeviceId) -> Result<bool, WriteError> {
        match self.write(Body::Unban(device)).await {
            Ok(LogAnswer::Banned(changed)) => Ok(changed),
            Ok(other) => Err(mismatched(&other)),
            Err(e) => Err(write_error(e)),
        }
    }

    async fn banned_devices(&self) -> Result<Vec<DeviceId>, ReadError> {
        self.barrier().await?;
        self.local.banned_devices().await
    }

    fn log_id(&self) -> LogId {
        self.local.log_id()
    }
}
