//! [`RedbStore`]: the embedded backend, one redb file.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use cairn_wire::{
    Cursor, DeviceCertificate, DeviceId, DeviceRevocation, Envelope, EnvelopeId, FriendGrant,
    FriendRevocation, LogId, StreamId, UserId,
};
use redb::Database;
use tokio::sync::{Semaphore, broadcast, oneshot};

use crate::api::{
    CommitBatch, CommitCounters, Cutoffs, DeviceRecord, Effect, EncodedRead, Expiry, Gone, Invite,
    InviteId, ItemOutcome, Quota, Redemption, Removal, Restore, StatementOutcome, Stats, Store,
    StoredEnvelope, StoredStatement, StreamHead, StreamRead, Usage, VerifyReport,
};
use crate::apply::{BanOp, InviteAnswer, InviteOp, Prepared, StatementIn};
use crate::backend::{Faults, SizeLimit};
use crate::error::{AppendError, BackendError, BackupError, OpenError, ReadError, WriteError};
use crate::log::{LogAnswer, LogWrite, OutOfOrder};
use crate::schema::FileOptions;
use crate::slot::{DbSlot, Failure, classify};
use crate::writer::{CommitFailed, Counters, GroupLimits, Queued, Replier, Request, Writer};
use crate::{maintenance, reader, schema};

/// Tuning of a [`RedbStore`]. The defaults suit a relay.
#[derive(Debug, Clone)]
pub struct Config {
    /// Most envelopes one commit carries (default 1024).
    pub max_batch_envelopes: usize,
    /// Most envelope bytes one commit carries (default 8 MiB).
    pub max_batch_bytes: usize,
    /// How long the writer lingers for more requests once the queue is
    /// empty (default 0: requests that arrive during a commit make the next
    /// group, which is what groups under load).
    pub max_wait: Duration,
    /// Most write requests waiting for the writer; callers past it wait
    /// asynchronously (default 4096).
    pub queue_depth: usize,
    /// Commit publications a subscriber may fall behind before it lags
    /// (default 1024).
    pub notify_capacity: usize,
    /// Whether commits are durable (default true). Turn off only in tests.
    pub durable: bool,
    /// Record every commit's latency, for benchmarks (default false).
    pub record_latencies: bool,
    /// The most memory redb's page cache may hold (default 256 MiB; redb's
    /// own default is 1 GiB).
    pub cache_bytes: usize,
    /// What each author may store (default: no limit).
    pub quota: Quota,
    /// The most bytes the database file may grow to (default: no limit;
    /// past it, commits fail as on a full disk). Shared, so that the
    /// owner can change it while the store runs.
    pub size_limit: Arc<SizeLimit>,
    /// Faults to inject into the file's reads, writes and syncs (tests).
    pub faults: Option<Arc<Faults>>,
    /// Run every write and read on the caller's thread, without the
    /// writer thread or tokio's blocking pool (default false). Each call
    /// then blocks its caller's thread for the whole commit or read, so
    /// this is only for a caller that has nothing else to do meanwhile: a
    /// fuzz target, where handing every request to another thread and back
    /// costs more than the request. Writes still go through the same group
    /// commit, one caller's queue at a time, and `max_wait` is ignored.
    pub inline: bool,
}

/// Effects a slow listener may fall behind by before it is told it lagged.
const EFFECTS_CAPACITY: usize = 4096;

/// The page cache a store gets unless told otherwise.
pub const DEFAULT_CACHE_BYTES: usize = 256 * 1024 * 1024;

impl Default for Config {
    fn default() -> Self {
        Self {
            max_batch_envelopes: 1024,
            max_batch_bytes: 8 * 1024 * 1024,
            max_wait: Duration::ZERO,
            queue_depth: 4096,
            notify_capacity: 1024,
            durable: true,
            record_latencies: false,
            cache_bytes: DEFAULT_CACHE_BYTES,
            quota: Quota::UNLIMITED,
            size_limit: Arc::default(),
            faults: None,
            inline: false,
        }
    }
}

/// The relay's store in one redb file, written by one thread with group
/// commit and read on tokio's blocking pool (or, in [`Config::inline`]
/// mode, written and read on the caller's thread).
///
/// Dropping it stops the writer once queued requests are done; [`close`]
/// also waits for that.
///
/// [`close`]: RedbStore::close
#[derive(Debug)]
pub struct RedbStore {
    slot: Arc<DbSlot>,
    path: PathBuf,
    requests: Mutex<Option<mpsc::Sender<Queued>>>,
    room: Arc<Semaphore>,
    commits: broadcast::Sender<CommitBatch>,
    effects: broadcast::Sender<Effect>,
    counters: Arc<Counters>,
    latencies: Option<Arc<Mutex<Vec<u32>>>>,
    writer: Mutex<Engine>,
    inline: bool,
    repaired: bool,
    log: LogId,
}

impl RedbStore {
    /// Opens the store at `path`, creating it if missing, with defaults.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open_with(path, Config::default())
    }

    /// Opens the store at `path`, creating it if missing. Refuses a file
    /// with another schema version, a damaged file and a non-store file.
    pub fn open_with(path: impl AsRef<Path>, config: Config) -> Result<Self, OpenError> {
        let path = path.as_ref().to_path_buf();
        let options = FileOptions {
            cache_bytes: config.cache_bytes,
            limit: Arc::clone(&config.size_limit),
            faults: config.faults.clone(),
        };
        let opened = schema::open(&path, &options)?;
        let (repaired, log) = (opened.repaired, opened.log);
        let slot = Arc::new(DbSlot::new(path.clone(), options, opened.db));
        let (tx, rx) = mpsc::channel();
        let (commits, _) = broadcast::channel(config.notify_capacity.max(1));
        let (effects, _) = broadcast::channel(EFFECTS_CAPACITY);
        let counters = Arc::new(Counters::default());
        let latencies = config.record_latencies.then(Arc::default);
        let writer = Writer {
            slot: Arc::clone(&slot),
            requests: rx,
            limits: limits(&config),
            publish: commits.clone(),
            effects: effects.clone(),
            counters: Arc::clone(&counters),
            latencies: latencies.clone(),
        };
        let engine = if config.inline {
            Engine::Inline(Box::new(writer))
        } else {
            let handle = std::thread::Builder::new()
                .name("cairn-store-writer".into())
                .spawn(move || writer.run())
                .map_err(OpenError::Thread)?;
            Engine::Thread(Some(handle))
        };
        Ok(Self {
            slot,
            path,
            requests: Mutex::new(Some(tx)),
            room: Arc::new(Semaphore::new(config.queue_depth.max(1))),
            commits,
            effects,
            counters,
            latencies,
            writer: Mutex::new(engine),
            inline: config.inline,
            repaired,
            log,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether opening had to repair the file (it should not: every commit
    /// records what a crash recovery needs).
    pub fn repaired_on_open(&self) -> bool {
        self.repaired
    }

    /// Commit latencies recorded so far, in microseconds, if
    /// [`Config::record_latencies`] is on.
    pub fn commit_latencies(&self) -> Vec<u32> {
        self.latencies
            .as_ref()
            .and_then(|l| l.lock().ok().map(|l| l.clone()))
            .unwrap_or_default()
    }

    /// Stops taking writes, lets the writer finish what is queued, and
    /// waits for it. Reads in flight finish on their own.
    pub async fn close(self) {
        if let Ok(mut requests) = self.requests.lock() {
            requests.take();
        }
        let handle = self
            .writer
            .lock()
            .ok()
            .and_then(|mut engine| match &mut *engine {
                Engine::Thread(handle) => handle.take(),
                Engine::Inline(_) => None,
            });
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }

    /// Applies records of a replicated log, the first at sequence
    /// `first`, in one transaction that also records the last one as
    /// applied (`spec/cluster.md`). Refused, changing nothing, unless
    /// `first` follows what this copy has applied.
    pub async fn apply_log(
        &self,
        first: u64,
        writes: Vec<LogWrite>,
    ) -> Result<Result<Vec<LogAnswer>, OutOfOrder>, WriteError> {
        let (reply, rx) = Replier::new();
        self.submit(Request::Log(first, writes, reply), rx)
            .await
            .map_err(Submit::into_write)
    }

    /// The last sequence of a replicated log applied to this copy (0:
    /// none, as for every single-node store).
    pub async fn log_applied(&self) -> Result<u64, ReadError> {
        self.read(reader::log_applied).await
    }

    /// Queues `request` for the writer and waits for its answer.
    async fn submit<A>(
        &self,
        request: Request,
        answer: oneshot::Receiver<Result<A, CommitFailed>>,
    ) -> Result<A, Submit> {
        let permit = Arc::clone(&self.room)
            .acquire_owned()
            .await
            .map_err(|_| Submit::Closed)?;
        let queued = Queued { request, permit };
        let sender = self.requests.lock().ok().and_then(|s| s.clone());
        match sender {
            Some(sender) => sender.send(queued).map_err(|_| Submit::Closed)?,
            None => return Err(Submit::Closed),
        }
        self.write_inline();
        match answer.await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(failure)) => Err(Submit::Failed(failure)),
            Err(_) => Err(Submit::Closed),
        }
    }

    async fn invite(&self, op: InviteOp) -> Result<InviteAnswer, WriteError> {
        let (reply, rx) = Replier::new();
        self.submit(Request::Invite(op, reply), rx)
            .await
            .map_err(Submit::into_write)
    }

    async fn removal(&self, user: UserId, now_ms: u64) -> Result<Removal, WriteError> {
        let (reply, rx) = Replier::new();
        self.submit(Request::RemoveUser(user, now_ms, reply), rx)
            .await
            .map_err(Submit::into_write)
    }

    async fn ban_op(&self, op: BanOp) -> Result<bool, WriteError> {
        let (reply, rx) = Replier::new();
        self.submit(Request::Ban(op, reply), rx)
            .await
            .map_err(Submit::into_write)
    }

    async fn statement(&self, statement: StatementIn) -> Result<StatementOutcome, WriteError> {
        let (reply, rx) = Replier::new();
        self.submit(Request::Statement(statement, reply), rx)
            .await
            .map_err(Submit::into_write)
    }

    /// In inline mode, commits what is queued on this thread; otherwise
    /// the writer thread does.
    fn write_inline(&self) {
        if let Ok(engine) = self.writer.lock()
            && let Engine::Inline(writer) = &*engine
        {
            writer.drain();
        }
    }

    /// Runs a read with the database: on the blocking pool, or on this
    /// thread in inline mode.
    async fn read<R, F>(&self, read: F) -> Result<R, ReadError>
    where
        R: Send + 'static,
        F: Fn(&Database) -> Result<R, ReadError> + Send + 'static,
    {
        let slot = Arc::clone(&self.slot);
        if self.inline {
            return read_once_reopened(&slot, read);
        }
        tokio::task::spawn_blocking(move || read_once_reopened(&slot, read))
            .await
            .map_err(|e| ReadError::Task(e.to_string()))?
    }
}

/// Who runs the writer.
#[derive(Debug)]
enum Engine {
    /// Its own thread, until the store closes.
    Thread(Option<JoinHandle<()>>),
    /// Each caller, on its own thread ([`Config::inline`]).
    Inline(Box<Writer>),
}

/// Runs `read`. A read that meets an I/O failure has the file opened
/// again and is tried once more (a failed write elsewhere leaves the
/// handle refusing everything until then).
fn read_once_reopened<R>(
    slot: &DbSlot,
    read: impl Fn(&Database) -> Result<R, ReadError>,
) -> Result<R, ReadError> {
    let (db, generation) = slot.get()?;
    match read(&db) {
        Err(ReadError::Backend(e)) if classify(&e) != Failure::Other => {
            drop(db);
            slot.reopen(generation)
                .map_err(|open| ReadError::Backend(BackendError::new(open)))?;
            let (db, _) = slot.get()?;
            read(&db)
        }
        outcome => outcome,
    }
}

/// The writer answers each invite operation with its own kind of answer;
/// another kind is a bug in this crate, reported, never read as a default.
fn mismatched(answer: &InviteAnswer) -> WriteError {
    WriteError::Backend(BackendError::new(format!(
        "the writer answered an invite operation with {answer:?}"
    )))
}

impl Store for RedbStore {
    async fn append(&self, batch: Vec<Envelope>) -> Result<Vec<ItemOutcome>, AppendError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let items = batch.into_iter().map(Prepared::new).collect();
        let (reply, rx) = Replier::new();
        self.submit(Request::Append(items, reply), rx)
            .await
            .map_err(|e| match e {
                Submit::Closed => AppendError::Closed,
                Submit::Failed(failure) if failure.is_full() => AppendError::StorageFull,
                Submit::Failed(failure) => AppendError::Backend(BackendError::new(failure)),
            })
    }

    async fn read_stream_within(
        &self,
        stream: StreamId,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<StreamRead, ReadError> {
        self.read(move |db| reader::read_stream(db, &stream, after, limit, max_bytes))
            .await
    }

    async fn read_stream_encoded(
        &self,
        stream: StreamId,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<EncodedRead, ReadError> {
        self.read(move |db| reader::read_stream_encoded(db, &stream, after, limit, max_bytes))
            .await
    }

    async fn stream_head(&self, stream: StreamId) -> Result<u64, ReadError> {
        self.read(move |db| reader::stream_head(db, &stream)).await
    }

    async fn envelope(&self, id: EnvelopeId) -> Result<Option<StoredEnvelope>, ReadError> {
        self.read(move |db| reader::envelope(db, &id)).await
    }

    async fn streams_of(&self, owner: UserId) -> Result<Vec<StreamHead>, ReadError> {
        self.read(move |db| reader::streams_with_prefix(db, owner.as_bytes()))
            .await
    }

    async fn direct_streams_to(&self, recipient: UserId) -> Result<Vec<StreamHead>, ReadError> {
        self.read(move |db| reader::direct_streams_to(db, &recipient))
            .await
    }

    async fn register_device(
        &self,
        certificate: DeviceCertificate,
    ) -> Result<StatementOutcome, WriteError> {
        self.statement(StatementIn::Certificate(certificate)).await
    }

    async fn revoke_device(
        &self,
        revocation: DeviceRevocation,
    ) -> Result<StatementOutcome, WriteError> {
        self.statement(StatementIn::DeviceRevocation(revocation))
            .await
    }

    async fn grant_friend(&self, grant: FriendGrant) -> Result<StatementOutcome, WriteError> {
        self.statement(StatementIn::Grant(grant)).await
    }

    async fn revoke_friend(
        &self,
        revocation: FriendRevocation,
    ) -> Result<StatementOutcome, WriteError> {
        self.statement(StatementIn::FriendRevocation(revocation))
            .await
    }

    async fn device(
        &self,
        user: UserId,
        device: DeviceId,
    ) -> Result<Option<DeviceRecord>, ReadError> {
        self.read(move |db| reader::device(db, &user, &device))
            .await
    }

    async fn devices(&self, user: UserId) -> Result<Vec<DeviceRecord>, ReadError> {
        self.read(move |db| reader::devices(db, &user)).await
    }

    async fn grants_by(&self, granter: UserId) -> Result<Vec<FriendGrant>, ReadError> {
        self.read(move |db| reader::grants_by(db, &granter)).await
    }

    async fn granters_of(&self, grantee: UserId) -> Result<Vec<UserId>, ReadError> {
        self.read(move |db| reader::granters_of(db, &grantee)).await
    }

    async fn ack(&self, device: DeviceId, cursor: Cursor) -> Result<u64, WriteError> {
        let (reply, rx) = Replier::new();
        self.submit(Request::Ack(device, cursor, reply), rx)
            .await
            .map_err(Submit::into_write)
    }

    async fn acked(&self, device: DeviceId) -> Result<Vec<Cursor>, ReadError> {
        self.read(move |db| reader::acked(db, &device)).await
    }

    async fn stats(&self) -> Result<Stats, ReadError> {
        self.read(reader::stats).await
    }

    async fn usage(&self) -> Result<Vec<(UserId, Usage)>, ReadError> {
        self.read(reader::usage).await
    }

    async fn create_invite(&self, invite: Invite) -> Result<(), WriteError> {
        self.invite(InviteOp::Create(invite)).await.map(|_| ())
    }

    async fn remove_user(&self, user: UserId, now_ms: u64) -> Result<Removal, WriteError> {
        self.removal(user, now_ms).await
    }

    async fn expire(&self, cutoffs: Cutoffs, budget: u64) -> Result<Expiry, WriteError> {
        let (reply, rx) = Replier::new();
        self.submit(Request::Expire(cutoffs, budget, reply), rx)
            .await
            .map_err(Submit::into_write)
    }

    async fn gone(&self) -> Result<Gone, ReadError> {
        self.read(reader::gone).await
    }

    async fn restore(&self, what: Restore) -> Result<Result<(), &'static str>, WriteError> {
        let (reply, rx) = Replier::new();
        self.submit(Request::Restore(what, reply), rx)
            .await
            .map_err(Submit::into_write)
    }

    async fn removed(&self, user: UserId) -> Result<Option<u64>, ReadError> {
        self.read(move |db| reader::removed(db, &user)).await
    }

    async fn invites(&self) -> Result<Vec<Invite>, ReadError> {
        self.read(reader::invites).await
    }

    async fn revoke_invite(&self, id: InviteId) -> Result<bool, WriteError> {
        match self.invite(InviteOp::Revoke(id)).await? {
            InviteAnswer::Revoked(existed) => Ok(existed),
            other => Err(mismatched(&other)),
        }
    }

    async fn redeem_invite(&self, id: InviteId, now_ms: u64) -> Result<Redemption, WriteError> {
        match self.invite(InviteOp::Redeem { id, now_ms }).await? {
            InviteAnswer::Redeemed(redemption) => Ok(redemption),
            other => Err(mismatched(&other)),
        }
    }

    fn commit_counters(&self) -> CommitCounters {
        self.counters.snapshot()
    }

    fn subscribe(&self) -> broadcast::Receiver<CommitBatch> {
        self.commits.subscribe()
    }

    fn effects(&self) -> broadcast::Receiver<Effect> {
        self.effects.subscribe()
    }

    async fn all_streams(&self) -> Result<Vec<StreamHead>, ReadError> {
        self.read(|db| reader::streams_with_prefix(db, &[])).await
    }

    async fn statements(&self) -> Result<Vec<StoredStatement>, ReadError> {
        self.read(reader::statements).await
    }

    async fn backup(&self, path: &Path) -> Result<(), BackupError> {
        let slot = Arc::clone(&self.slot);
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let (db, _) = slot.get().map_err(ReadError::Backend)?;
            maintenance::backup(&db, &path)
        })
        .await
        .map_err(|e| BackupError::Read(ReadError::Task(e.to_string())))?
    }

    async fn verify(&self) -> Result<VerifyReport, ReadError> {
        self.read(maintenance::verify).await
    }

    async fn ban_device(&self, device: DeviceId, at_ms: u64) -> Result<bool, WriteError> {
        self.ban_op(BanOp::Ban(device, at_ms)).await
    }

    async fn unban_device(&self, device: DeviceId) -> Result<bool, WriteError> {
        self.ban_op(BanOp::Unban(device)).await
    }

    async fn banned_devices(&self) -> Result<Vec<DeviceId>, ReadError> {
        self.read(reader::banned).await
    }

    fn log_id(&self) -> LogId {
        self.log
    }
}

/// Why a queued write got no answer.
enum Submit {
    Closed,
    Failed(CommitFailed),
}

impl Submit {
    fn into_write(self) -> WriteError {
        match self {
            Self::Closed => WriteError::Closed,
            Self::Failed(failure) if failure.is_full() => WriteError::StorageFull,
            Self::Failed(failure) => WriteError::Backend(BackendError::new(failure)),
        }
    }
}

fn limits(config: &Config) -> GroupLimits {
    GroupLimits {
        max_batch_envelopes: config.max_batch_envelopes.max(1),
        max_batch_bytes: config.max_batch_bytes.max(1),
        quota: config.quota,
        max_wait: if config.inline {
            Duration::ZERO
        } else {
            config.max_wait
        },
        durable: config.durable,
    }
}
