//! The store a relay runs on, as `[storage] backend` says: one redb file
//! (the default), or a redb copy following a cluster's log on NATS
//! JetStream (`spec/cluster.md`). Both are a [`Store`]; this type lets one
//! relay binary serve either.

use std::path::Path;
use std::time::Duration;

use cairn_cluster::{ClusterError, ClusterStore, JetStreamConfig};
use cairn_store::{
    AppendError, BackupError, CommitBatch, CommitCounters, Cutoffs, DeviceRecord, Effect,
    EncodedRead, Expiry, Gone, Invite, InviteId, ItemOutcome, ReadError, RedbStore, Redemption,
    Removal, Restore, StatementOutcome, Stats, Store, StoredEnvelope, StoredStatement, StreamHead,
    StreamRead, Usage, VerifyReport, WriteError,
};
use cairn_wire::{
    Cursor, DeviceCertificate, DeviceId, DeviceRevocation, Envelope, EnvelopeId, FriendGrant,
    FriendRevocation, LogId, StreamId, UserId,
};
use tokio::sync::broadcast;

use crate::config::{Backend, RelayConfig};

/// Seconds in a day.
const DAY_SECS: u64 = 24 * 60 * 60;

/// The relay's store.
#[derive(Debug)]
pub enum RelayStore {
    /// One redb file.
    Redb(RedbStore),
    /// One node of a cluster.
    Cluster(Box<ClusterStore>),
}

/// Why the store did not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenStoreError {
    /// The redb file.
    #[error("cannot open the database: {0}")]
    Redb(#[from] cairn_store::OpenError),
    /// The cluster's log, or this node's copy of it.
    #[error("cannot join the cluster's log: {0}")]
    Cluster(#[from] ClusterError),
    /// Reading what the store holds at start (the cluster's bans).
    #[error("cannot read the store: {0}")]
    Read(#[from] ReadError),
    /// `backend = "jetstream"` without what it needs.
    #[error("[storage] backend = \"jetstream\" needs [storage.jetstream] with {0}")]
    Incomplete(&'static str),
}

impl RelayStore {
    /// Opens the store `config` names, with `storage` for the redb file
    /// (or copy).
    pub async fn open(
        config: &RelayConfig,
        storage: cairn_store::Config,
    ) -> Result<Self, OpenStoreError> {
        match config.storage.backend {
            Backend::Redb => Ok(Self::Redb(RedbStore::open_with(
                config.database_path(),
                storage,
            )?)),
            Backend::Jetstream => {
                let cluster = jetstream_config(config)?;
                let store = ClusterStore::open(&config.database_path(), storage, cluster).await?;
                Ok(Self::Cluster(Box::new(store)))
            }
        }
    }

    /// Lets the writer finish and releases the file.
    pub async fn close(self) {
        match self {
            Self::Redb(store) => store.close().await,
            Self::Cluster(store) => (*store).close().await,
        }
    }

    /// Whether this is a node of a cluster (whose operator's bans are
    /// kept in the store, on every node).
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// The last record of the cluster's log this node applied, if it is
    /// a node of a cluster.
    pub fn log_applied(&self) -> Option<u64> {
        match self {
            Self::Redb(_) => None,
            Self::Cluster(store) => Some(store.applied()),
        }
    }
}

/// What `[storage.jetstream]` says, checked.
fn jetstream_config(config: &RelayConfig) -> Result<JetStreamConfig, OpenStoreError> {
    let settings = config
        .storage
        .jetstream
        .clone()
        .ok_or(OpenStoreError::Incomplete("the NATS urls and node_id"))?;
    if settings.urls.is_empty() {
        return Err(OpenStoreError::Incomplete("at least one of the NATS urls"));
    }
    if settings.node_id.is_empty() {
        return Err(OpenStoreError::Incomplete(
            "node_id, this node's name, unique in the cluster",
        ));
    }
    Ok(JetStreamConfig {
        urls: settings.urls,
        credentials: settings.credentials,
        stream: settings.stream,
        replicas: settings.replicas.max(1),
        log_retention: Duration::from_secs(settings.log_retention_days.saturating_mul(DAY_SECS)),
        node_id: settings.node_id,
        request_timeout: Duration::from_secs(config.limits.request_timeout_secs.max(1)),
    })
}

/// Runs `$body` with `$s` bound to whichever store it is.
macro_rules! each {
    ($self:ident, $s:ident => $body:expr) => {
        match $self {
            RelayStore::Redb($s) => $body,
            RelayStore::Cluster($s) => $body,
        }
    };
}

impl Store for RelayStore {
    async fn append(&self, batch: Vec<Envelope>) -> Result<Vec<ItemOutcome>, AppendError> {
        each!(self, s => s.append(batch).await)
    }

    async fn read_stream_within(
        &self,
        stream: StreamId,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<StreamRead, ReadError> {
        each!(self, s => s.read_stream_within(stream, after, limit, max_bytes).await)
    }

    async fn read_stream_encoded(
        &self,
        stream: StreamId,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<EncodedRead, ReadError> {
        each!(self, s => s.read_stream_encoded(stream, after, limit, max_bytes).await)
    }

    async fn stream_head(&self, stream: StreamId) -> Result<u64, ReadError> {
        each!(self, s => s.stream_head(stream).await)
    }

    async fn envelope(&self, id: EnvelopeId) -> Result<Option<StoredEnvelope>, ReadError> {
        each!(self, s => s.envelope(id).await)
    }

    async fn streams_of(&self, owner: UserId) -> Result<Vec<StreamHead>, ReadError> {
        each!(self, s => s.streams_of(owner).await)
    }

    async fn direct_streams_to(&self, recipient: UserId) -> Result<Vec<StreamHead>, ReadError> {
        each!(self, s => s.direct_streams_to(recipient).await)
    }

    async fn register_device(
        &self,
        certificate: DeviceCertificate,
    ) -> Result<StatementOutcome, WriteError> {
        each!(self, s => s.register_device(certificate).await)
    }

    async fn revoke_device(
        &self,
        revocation: DeviceRevocation,
    ) -> Result<StatementOutcome, WriteError> {
        each!(self, s => s.revoke_device(revocation).await)
    }

    async fn grant_friend(&self, grant: FriendGrant) -> Result<StatementOutcome, WriteError> {
        each!(self, s => s.grant_friend(grant).await)
    }

    async fn revoke_friend(
        &self,
        revocation: FriendRevocation,
    ) -> Result<StatementOutcome, WriteError> {
        each!(self, s => s.revoke_friend(revocation).await)
    }

    async fn device(
        &self,
        user: UserId,
        device: DeviceId,
    ) -> Result<Option<DeviceRecord>, ReadError> {
        each!(self, s => s.device(user, device).await)
    }

    async fn devices(&self, user: UserId) -> Result<Vec<DeviceRecord>, ReadError> {
        each!(self, s => s.devices(user).await)
    }

    async fn grants_by(&self, granter: UserId) -> Result<Vec<FriendGrant>, ReadError> {
        each!(self, s => s.grants_by(granter).await)
    }

    async fn granters_of(&self, grantee: UserId) -> Result<Vec<UserId>, ReadError> {
        each!(self, s => s.granters_of(grantee).await)
    }

    async fn ack(&self, device: DeviceId, cursor: Cursor) -> Result<u64, WriteError> {
        each!(self, s => s.ack(device, cursor).await)
    }

    async fn acked(&self, device: DeviceId) -> Result<Vec<Cursor>, ReadError> {
        each!(self, s => s.acked(device).await)
    }

    async fn stats(&self) -> Result<Stats, ReadError> {
        each!(self, s => s.stats().await)
    }

    async fn create_invite(&self, invite: Invite) -> Result<(), WriteError> {
        each!(self, s => s.create_invite(invite).await)
    }

    async fn invites(&self) -> Result<Vec<Invite>, ReadError> {
        each!(self, s => s.invites().await)
    }

    async fn revoke_invite(&self, id: InviteId) -> Result<bool, WriteError> {
        each!(self, s => s.revoke_invite(id).await)
    }

    async fn redeem_invite(&self, id: InviteId, now_ms: u64) -> Result<Redemption, WriteError> {
        each!(self, s => s.redeem_invite(id, now_ms).await)
    }

    async fn usage(&self) -> Result<Vec<(UserId, Usage)>, ReadError> {
        each!(self, s => s.usage().await)
    }

    fn commit_counters(&self) -> CommitCounters {
        each!(self, s => s.commit_counters())
    }

    fn subscribe(&self) -> broadcast::Receiver<CommitBatch> {
        each!(self, s => s.subscribe())
    }

    fn effects(&self) -> broadcast::Receiver<Effect> {
        each!(self, s => s.effects())
    }

    async fn all_streams(&self) -> Result<Vec<StreamHead>, ReadError> {
        each!(self, s => s.all_streams().await)
    }

    async fn statements(&self) -> Result<Vec<StoredStatement>, ReadError> {
        each!(self, s => s.statements().await)
    }

    async fn backup(&self, path: &Path) -> Result<(), BackupError> {
        each!(self, s => s.backup(path).await)
    }

    async fn verify(&self) -> Result<VerifyReport, ReadError> {
        each!(self, s => s.verify().await)
    }

    async fn remove_user(&self, user: UserId, now_ms: u64) -> Result<Removal, WriteError> {
        each!(self, s => s.remove_user(user, now_ms).await)
    }

    async fn expire(&self, cutoffs: Cutoffs, budget: u64) -> Result<Expiry, WriteError> {
        each!(self, s => s.expire(cutoffs, budget).await)
    }

    async fn gone(&self) -> Result<Gone, ReadError> {
        each!(self, s => s.gone().await)
    }

    async fn restore(&self, what: Restore) -> Result<Result<(), &'static str>, WriteError> {
        each!(self, s => s.restore(what).await)
    }

    async fn removed(&self, user: UserId) -> Result<Option<u64>, ReadError> {
        each!(self, s => s.removed(user).await)
    }

    async fn ban_device(&self, device: DeviceId, at_ms: u64) -> Result<bool, WriteError> {
        each!(self, s => s.ban_device(device, at_ms).await)
    }

    async fn unban_device(&self, device: DeviceId) -> Result<bool, WriteError> {
        each!(self, s => s.unban_device(device).await)
    }

    async fn banned_devices(&self) -> Result<Vec<DeviceId>, ReadError> {
        each!(self, s => s.banned_devices().await)
    }

    fn log_id(&self) -> LogId {
        each!(self, s => s.log_id())
    }
}
