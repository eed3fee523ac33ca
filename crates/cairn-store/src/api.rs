//! The storage trait the relay programs against, and the values it passes.
//!
//! Nothing here names redb: a second backend (NATS JetStream is the planned
//! one) implements the same trait. What the trait asks of a backend is what
//! a replicated log can give: one writer per stream assigns positions at
//! commit, an append is acknowledged only once durable, and commits are
//! published after they are durable, in position order per stream.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use cairn_wire::{
    AppendAck, AppendOutcome, Cursor, DeviceCertificate, DeviceId, DeviceRevocation, Entry,
    Envelope, EnvelopeId, ErrorCode, ErrorDetail, FriendGrant, FriendRevocation, LogId, StreamId,
    UserId, WireError,
};
use tokio::sync::broadcast;

use crate::error::{AppendError, BackupError, ReadError, WriteError};

/// The relay's storage.
///
/// The relay verifies envelope and statement signatures before it calls
/// the store; the store enforces everything that depends on stored state:
/// the device registry, device sequence numbers, equivocation, duplicates
/// and the order of statements. Every method returns a `Send` future that
/// never blocks the async runtime.
pub trait Store: Send + Sync + 'static {
    /// Appends a batch of verified envelopes and returns one outcome per
    /// envelope, in batch order, once the stored ones are durable.
    ///
    /// Envelopes of one device are considered in batch order; a refused
    /// envelope does not stop the ones after it from being considered (the
    /// next one of the same device then usually is a gap). A refused
    /// envelope changes nothing.
    fn append(
        &self,
        batch: Vec<Envelope>,
    ) -> impl Future<Output = Result<Vec<ItemOutcome>, AppendError>> + Send;

    /// Entries of `stream` after position `after`, at most `limit`, in
    /// position order with no gaps.
    fn read_stream(
        &self,
        stream: StreamId,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<StreamRead, ReadError>> + Send {
        self.read_stream_within(stream, after, limit, usize::MAX)
    }

    /// Like [`Store::read_stream`], stopping before the entries' sizes
    /// (each its canonical encoding plus [`ENTRY_OVERHEAD`]) would pass
    /// `max_bytes`, but always returning the first entry if there is one.
    /// The relay reads a page that fits one frame in one call, without
    /// loading what it would not send.
    fn read_stream_within(
        &self,
        stream: StreamId,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> impl Future<Output = Result<StreamRead, ReadError>> + Send;

    /// [`Store::read_stream_within`] with each entry as its wire encoding
    /// (`cairn_wire::frames::entry_encoding`), made from the stored bytes
    /// without decoding them: what the relay sends as it is. (The stored
    /// bytes were checked when they were appended; `verify` checks them
    /// again, and clients check every signature anyway.) This default
    /// decodes and encodes again; a store that keeps encodings overrides
    /// it.
    fn read_stream_encoded(
        &self,
        stream: StreamId,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> impl Future<Output = Result<EncodedRead, ReadError>> + Send {
        async move {
            let read = self
                .read_stream_within(stream, after, limit, max_bytes)
                .await?;
            Ok(EncodedRead::from(read))
        }
    }

    /// The last position of `stream` (0: empty or unknown).
    fn stream_head(&self, stream: StreamId) -> impl Future<Output = Result<u64, ReadError>> + Send;

    /// An envelope by id, with where it is stored.
    fn envelope(
        &self,
        id: EnvelopeId,
    ) -> impl Future<Output = Result<Option<StoredEnvelope>, ReadError>> + Send;

    /// Every stream `owner` has written to, with its head.
    fn streams_of(
        &self,
        owner: UserId,
    ) -> impl Future<Output = Result<Vec<StreamHead>, ReadError>> + Send;

    /// Every direct stream addressed to `recipient`, with its head.
    fn direct_streams_to(
        &self,
        recipient: UserId,
    ) -> impl Future<Output = Result<Vec<StreamHead>, ReadError>> + Send;

    /// Registers a device certificate (already verified).
    fn register_device(
        &self,
        certificate: DeviceCertificate,
    ) -> impl Future<Output = Result<StatementOutcome, WriteError>> + Send;

    /// Applies a device revocation (already verified). A revoked device
    /// stays revoked for good.
    fn revoke_device(
        &self,
        revocation: DeviceRevocation,
    ) -> impl Future<Output = Result<StatementOutcome, WriteError>> + Send;

    /// Applies a friend grant (already verified).
    fn grant_friend(
        &self,
        grant: FriendGrant,
    ) -> impl Future<Output = Result<StatementOutcome, WriteError>> + Send;

    /// Applies a friend revocation (already verified).
    fn revoke_friend(
        &self,
        revocation: FriendRevocation,
    ) -> impl Future<Output = Result<StatementOutcome, WriteError>> + Send;

    /// The registration of one device of one user.
    fn device(
        &self,
        user: UserId,
        device: DeviceId,
    ) -> impl Future<Output = Result<Option<DeviceRecord>, ReadError>> + Send;

    /// Every device `user` has certified or revoked.
    fn devices(
        &self,
        user: UserId,
    ) -> impl Future<Output = Result<Vec<DeviceRecord>, ReadError>> + Send;

    /// The grants `granter` has made and not revoked: who may read the
    /// granter's friends stream.
    fn grants_by(
        &self,
        granter: UserId,
    ) -> impl Future<Output = Result<Vec<FriendGrant>, ReadError>> + Send;

    /// The users who have granted `grantee`: whose friends streams the
    /// grantee may read.
    fn granters_of(
        &self,
        grantee: UserId,
    ) -> impl Future<Output = Result<Vec<UserId>, ReadError>> + Send;

    /// Records that `device` has seen `cursor.stream` up to
    /// `cursor.position`. Monotonic: a lower position never moves the
    /// stored one back; a position past the head is clamped to the head.
    /// Returns the stored position.
    fn ack(
        &self,
        device: DeviceId,
        cursor: Cursor,
    ) -> impl Future<Output = Result<u64, WriteError>> + Send;

    /// Every cursor `device` has acknowledged.
    fn acked(
        &self,
        device: DeviceId,
    ) -> impl Future<Output = Result<Vec<Cursor>, ReadError>> + Send;

    /// Counts for `cairn-relay stats` and metrics.
    fn stats(&self) -> impl Future<Output = Result<Stats, ReadError>> + Send;

    /// Stores a new operator invite.
    fn create_invite(&self, invite: Invite) -> impl Future<Output = Result<(), WriteError>> + Send;

    /// Every stored invite, by id.
    fn invites(&self) -> impl Future<Output = Result<Vec<Invite>, ReadError>> + Send;

    /// Deletes an invite; whether there was one.
    fn revoke_invite(&self, id: InviteId) -> impl Future<Output = Result<bool, WriteError>> + Send;

    /// Spends one use of an invite at `now_ms`, if it is stored, unexpired
    /// and not used up; an invite with no use left is deleted.
    fn redeem_invite(
        &self,
        id: InviteId,
        now_ms: u64,
    ) -> impl Future<Output = Result<Redemption, WriteError>> + Send;

    /// What each user who stored anything has stored, by user id.
    fn usage(&self) -> impl Future<Output = Result<Vec<(UserId, Usage)>, ReadError>> + Send;

    /// Counters of the commit path since the store was opened.
    fn commit_counters(&self) -> CommitCounters;

    /// Live commits: see [`Committed`] for the contract.
    fn subscribe(&self) -> broadcast::Receiver<CommitBatch>;

    /// What committed writes change for connected clients ([`Effect`]),
    /// published after each commit: on a cluster node, the writes of every
    /// node, so that each closes its own connections.
    fn effects(&self) -> broadcast::Receiver<Effect>;

    /// Every stream with its head, in key order, for export.
    fn all_streams(&self) -> impl Future<Output = Result<Vec<StreamHead>, ReadError>> + Send;

    /// Every stored signed statement, for export.
    fn statements(&self) -> impl Future<Output = Result<Vec<StoredStatement>, ReadError>> + Send;

    /// Writes a consistent copy of the whole store to `path` (which must not
    /// exist) while the store keeps serving.
    fn backup(&self, path: &Path) -> impl Future<Output = Result<(), BackupError>> + Send;

    /// Checks the store's invariants: positions gap-free, indexes consistent
    /// with the log, device sequences gap-free, counters right.
    fn verify(&self) -> impl Future<Output = Result<VerifyReport, ReadError>> + Send;

    /// Removes `user` and everything their devices stored, at `now_ms`
    /// (`spec/storage.md` section 5.4); their devices are refused from
    /// then on.
    fn remove_user(
        &self,
        user: UserId,
        now_ms: u64,
    ) -> impl Future<Output = Result<Removal, WriteError>> + Send;

    /// Expires envelopes of friends and direct streams dated before their
    /// scope's cutoff (`spec/storage.md` section 5.5), at most `budget` in
    /// one commit; [`Expiry::more`] says when another pass is due.
    fn expire(
        &self,
        cutoffs: Cutoffs,
        budget: u64,
    ) -> impl Future<Output = Result<Expiry, WriteError>> + Send;

    /// What is gone from the store (floors, expired envelopes, removed
    /// users), for export.
    fn gone(&self) -> impl Future<Output = Result<Gone, ReadError>> + Send;

    /// Puts back one thing an export says is gone (import only); `Err`
    /// with a reason when it does not follow what is stored.
    fn restore(
        &self,
        what: Restore,
    ) -> impl Future<Output = Result<Result<(), &'static str>, WriteError>> + Send;

    /// When `user` was removed (Unix ms), if they were.
    fn removed(&self, user: UserId) -> impl Future<Output = Result<Option<u64>, ReadError>> + Send;

    /// Bans `device` at `at_ms` in the store, which on a cluster is on
    /// every node (a single relay keeps its operator's bans in its ban
    /// file instead); whether it was new.
    fn ban_device(
        &self,
        device: DeviceId,
        at_ms: u64,
    ) -> impl Future<Output = Result<bool, WriteError>> + Send;

    /// Lifts a ban [`Store::ban_device`] made; whether there was one.
    fn unban_device(
        &self,
        device: DeviceId,
    ) -> impl Future<Output = Result<bool, WriteError>> + Send;

    /// The devices [`Store::ban_device`] banned.
    fn banned_devices(&self) -> impl Future<Output = Result<Vec<DeviceId>, ReadError>> + Send;

    /// The log's id: random at creation, new after a restore, so that
    /// clients can tell when positions they read were given again.
    fn log_id(&self) -> LogId;
}

/// Bytes counted per entry on top of its envelope's encoding by
/// [`Store::read_stream_within`]: room for its position.
pub const ENTRY_OVERHEAD: usize = 10;

/// The outcome of one envelope of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Stored by this append, durably.
    Stored {
        /// The envelope's id.
        id: EnvelopeId,
        /// Its position in its stream.
        position: u64,
    },
    /// The same envelope was stored before; this is its original position.
    Duplicate {
        /// The envelope's id.
        id: EnvelopeId,
        /// Its position in its stream.
        position: u64,
    },
    /// Refused; nothing was stored.
    Refused(Refusal),
}

/// The most one user may store on the relay: the envelopes their devices
/// wrote, in any stream, counted by number and by encoded bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Most bytes of envelope encodings.
    pub bytes: u64,
    /// Most envelopes.
    pub envelopes: u64,
}

impl Quota {
    /// No limit.
    pub const UNLIMITED: Self = Self {
        bytes: u64::MAX,
        envelopes: u64::MAX,
    };

    /// Whether `usage` has used it up: no envelope fits any more.
    pub fn is_reached_by(&self, usage: Usage) -> bool {
        usage.envelopes >= self.envelopes || usage.bytes >= self.bytes
    }

    /// Whether `usage` plus one envelope of `bytes` stays within it.
    pub fn admits(&self, usage: Usage, bytes: u64) -> bool {
        usage.envelopes < self.envelopes && usage.bytes.saturating_add(bytes) <= self.bytes
    }
}

/// What one user has stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes of envelope encodings.
    pub bytes: u64,
    /// Envelopes.
    pub envelopes: u64,
}

impl Usage {
    /// This usage with one more envelope of `bytes`.
    pub fn plus(self, bytes: u64) -> Self {
        Self {
            bytes: self.bytes.saturating_add(bytes),
            envelopes: self.envelopes.saturating_add(1),
        }
    }

    /// This usage with one envelope of `bytes` fewer.
    pub fn minus(self, bytes: u64) -> Self {
        Self {
            bytes: self.bytes.saturating_sub(bytes),
            envelopes: self.envelopes.saturating_sub(1),
        }
    }
}

/// Dates before which envelopes of each scope expire: an envelope
/// expires when its own `timestamp_ms` is earlier than its scope's cutoff.
/// Private streams, and each user's direct stream to themselves, never
/// expire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cutoffs {
    /// For friends streams; none: kept.
    pub friends_before_ms: Option<u64>,
    /// For direct streams; none: kept.
    pub direct_before_ms: Option<u64>,
}

/// What one expiry pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expiry {
    /// Streams whose floor moved.
    pub streams: u64,
    /// Envelopes removed.
    pub envelopes: u64,
    /// Bytes of their encodings.
    pub bytes: u64,
    /// Whether the pass stopped at its budget with more to expire.
    pub more: bool,
}

/// An expired envelope as the store remembers it: where it was, whose it
/// was, and its id (`spec/storage.md` section 5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tombstone {
    /// Its stream (its author is the stream's owner).
    pub stream: StreamId,
    /// Its position there.
    pub position: u64,
    /// Its device.
    pub device: DeviceId,
    /// Its seq.
    pub seq: u64,
    /// Its id.
    pub id: EnvelopeId,
}

/// Everything gone from a store that an export carries so that an import
/// reproduces it (`spec/relay.md` section 8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gone {
    /// Streams with a floor, and the floor.
    pub floors: Vec<(StreamId, u64)>,
    /// Expired envelopes, by stream and position.
    pub tombstones: Vec<Tombstone>,
    /// Users removed, and when.
    pub removed: Vec<(UserId, u64)>,
}

/// Putting back what an export says is gone; each is checked like an
/// append and refused with a reason when it does not follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restore {
    /// An expired envelope at the next position of its stream and the
    /// next seq of its device.
    Tombstone(Tombstone),
    /// An empty stream whose positions up to `through` are gone (its user
    /// was removed).
    Floor {
        /// The stream.
        stream: StreamId,
        /// Its floor and head.
        through: u64,
    },
    /// A removed user.
    Removed {
        /// The user.
        user: UserId,
        /// When (Unix ms).
        at_ms: u64,
    },
}

/// A device's last envelope that expired from a stream: what readers need
/// to check the envelopes that follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiredHead {
    /// The device.
    pub device: DeviceId,
    /// Its seq.
    pub seq: u64,
    /// Its id.
    pub id: EnvelopeId,
}

/// An invite's id: SHA-256 of its code. The store never holds the code
/// itself, so a copy of the database reveals no usable invite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InviteId(pub [u8; 32]);

/// An invite the operator made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invite {
    /// Its id.
    pub id: InviteId,
    /// Registrations it still admits.
    pub uses_left: u32,
    /// When it stops admitting (Unix ms; `u64::MAX`: never).
    pub expires_ms: u64,
    /// When it was made (Unix ms).
    pub created_ms: u64,
}

/// What redeeming an invite did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redemption {
    /// One use was spent.
    Spent,
    /// No such invite (never made, revoked, or used up).
    Unknown,
    /// It has expired.
    Expired,
}

/// Why an envelope was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// Another envelope with the same device and sequence number is stored.
    Equivocation {
        /// The id of the stored one.
        existing: EnvelopeId,
    },
    /// The sequence number is not the device's next one.
    SeqGap {
        /// The sequence number the store expects next from the device.
        expected: u64,
    },
    /// `prev` is not the device's last envelope in the stream.
    BrokenChain {
        /// That envelope's id ([`cairn_wire::FIRST_IN_STREAM`] if none).
        last: EnvelopeId,
    },
    /// The device is not registered for anyone.
    UnknownDevice,
    /// The device is registered, but for another user than the author.
    NotAuthor,
    /// The author has revoked the device.
    DeviceRevoked,
    /// Storing it would take the author past their quota.
    QuotaExceeded,
}

/// The outcome of a signed statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementOutcome {
    /// Applied now.
    Applied,
    /// Already in effect (the same statement, or the device is already
    /// revoked by an earlier revocation); nothing changed.
    Unchanged,
    /// Refused; nothing changed.
    Refused(StatementRefusal),
}

/// Why a statement was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatementRefusal {
    /// Older than the statement stored for the same subject.
    Stale,
    /// A certificate for a device its user has revoked.
    DeviceRevoked,
    /// A revocation of a device its user never certified.
    UnknownDevice,
    /// A new subject past the most one user may have: [`MAX_DEVICES_PER_USER`]
    /// device certificates or [`MAX_FRIENDS_PER_USER`] friend statements.
    TooMany,
    /// A certificate of a user the operator removed.
    UserRemoved,
}

/// What removing a user took away.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removal {
    /// Streams emptied (they keep their heads).
    pub streams: u64,
    /// Envelopes deleted.
    pub envelopes: u64,
    /// Bytes of their encodings.
    pub bytes: u64,
    /// Device certificates deleted.
    pub devices: u64,
    /// Whether the user had been removed before (nothing was done).
    pub already: bool,
}

/// Most devices one user may certify (what a status answer can list).
pub const MAX_DEVICES_PER_USER: usize = cairn_wire::limits::MAX_DEVICES;
/// Most users one user may grant or revoke (each pair keeps one record).
pub const MAX_FRIENDS_PER_USER: usize = 4096;

/// One page of a stream; its entries decoded ([`Entry`]) or as their wire
/// encodings ([`EncodedEntry`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRead<E = Entry> {
    /// Entries in position order, consecutive.
    pub entries: Vec<E>,
    /// The stream's last position when read (0: empty).
    pub head: u64,
    /// Positions `1..=floor` are gone (expired or removed): a read from
    /// below the floor starts after it.
    pub floor: u64,
    /// When the read started below the floor: each device's last envelope
    /// that expired from the stream.
    pub expired: Vec<ExpiredHead>,
}

impl StreamRead {
    /// Whether entries past this page exist.
    pub fn more(&self) -> bool {
        self.entries.last().is_some_and(|e| e.position < self.head)
    }
}

/// An entry as its wire encoding, `cairn_wire::frames::entry_encoding`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedEntry {
    /// Its position.
    pub position: u64,
    /// `Entry { position, envelope }`, encoded.
    pub encoding: Vec<u8>,
}

/// A page of a stream whose entries are their wire encodings.
pub type EncodedRead = StreamRead<EncodedEntry>;

impl EncodedRead {
    /// Whether entries past this page exist.
    pub fn more(&self) -> bool {
        self.entries.last().is_some_and(|e| e.position < self.head)
    }
}

impl From<StreamRead> for EncodedRead {
    fn from(read: StreamRead) -> Self {
        let entries = read
            .entries
            .iter()
            .map(|e| EncodedEntry {
                position: e.position,
                encoding: cairn_wire::frames::encode_entry(e.position, &e.envelope),
            })
            .collect();
        Self {
            entries,
            head: read.head,
            floor: read.floor,
            expired: read.expired,
        }
    }
}

/// An envelope with where it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEnvelope {
    /// Its stream.
    pub stream: StreamId,
    /// Its position there.
    pub position: u64,
    /// The envelope.
    pub envelope: Envelope,
}

/// A stream and its last position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamHead {
    /// The stream.
    pub stream: StreamId,
    /// Its last position (at least 1: streams exist from their first entry).
    pub head: u64,
}

/// What the store holds about one device of one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// The user.
    pub user: UserId,
    /// The device.
    pub device: DeviceId,
    /// Its certificate, if one was registered.
    pub certificate: Option<DeviceCertificate>,
    /// Its revocation, if revoked.
    pub revocation: Option<DeviceRevocation>,
    /// Its last stored sequence number (0: none).
    pub last_seq: u64,
}

impl DeviceRecord {
    /// Certified and not revoked: may authenticate and append.
    pub fn is_active(&self) -> bool {
        self.certificate.is_some() && self.revocation.is_none()
    }
}

/// A stored signed statement, for export.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StoredStatement {
    /// A device certificate.
    DeviceCertificate(DeviceCertificate),
    /// A device revocation.
    DeviceRevocation(DeviceRevocation),
    /// The current friend grant of a pair.
    FriendGrant(FriendGrant),
    /// The current friend revocation of a pair.
    FriendRevocation(FriendRevocation),
}

/// Counts of what the store holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Users with at least one registered device.
    pub users: u64,
    /// Registered devices (revoked ones included).
    pub devices: u64,
    /// Revoked devices.
    pub revoked_devices: u64,
    /// Streams with at least one envelope.
    pub streams: u64,
    /// Stored envelopes.
    pub envelopes: u64,
    /// Sum of the encoded sizes of the stored envelopes.
    pub envelope_bytes: u64,
}

/// Counters of the commit path since the store was opened; they show
/// whether group commit groups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitCounters {
    /// Durable commits made.
    pub commits: u64,
    /// Write requests (appends, statements, acks) carried by them.
    pub requests: u64,
    /// Envelopes stored by them.
    pub envelopes: u64,
    /// Commits that failed.
    pub failed_commits: u64,
}

/// What one commit published: each envelope in its own `Arc`, so that a
/// subscriber that holds on to one entry keeps that envelope alive, not
/// the whole commit (up to `max_batch_bytes`).
pub type CommitBatch = Arc<[Arc<Committed>]>;

/// One envelope made durable, as published to [`Store::subscribe`]rs.
///
/// Contract: the store publishes one [`CommitBatch`] per commit, only
/// after the commit is durable and before the appending callers are
/// answered, in commit order. Within one publication and across
/// publications, the entries of one stream come in position order with no
/// gap. A receiver that falls behind gets `RecvError::Lagged` and must read
/// the missing positions from storage; storage is the source of truth.
/// To go from a backlog to live without gap or duplicate, subscribe first,
/// then read the backlog, then skip live entries at or below the last
/// position read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The stream.
    pub stream: StreamId,
    /// The position assigned.
    pub position: u64,
    /// The envelope's id.
    pub id: EnvelopeId,
    /// The envelope.
    pub envelope: Envelope,
}

/// What a committed write changes for clients already connected, which
/// the relay acts on: a revoked device's connections close, a former
/// friend's subscriptions to the friends stream end, a removed user's
/// devices are disconnected. Published only when the write changed
/// something (a revocation already in force has no effect).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// `user` revoked `device`.
    DeviceRevoked {
        /// The device's user.
        user: UserId,
        /// The device.
        device: DeviceId,
    },
    /// `granter` withdrew its grant to `grantee`.
    FriendRevoked {
        /// Whose friends stream.
        granter: UserId,
        /// Who may no longer read it.
        grantee: UserId,
    },
    /// The operator removed `user`.
    UserRemoved(UserId),
    /// The operator banned a device on every node.
    DeviceBanned(DeviceId),
    /// And lifted the ban.
    DeviceUnbanned(DeviceId),
}

/// The result of [`Store::verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Streams checked.
    pub streams: u64,
    /// Envelopes checked.
    pub envelopes: u64,
    /// Devices checked.
    pub devices: u64,
    /// Every broken invariant found, in words; empty when the store is
    /// consistent.
    pub problems: Vec<String>,
}

impl VerifyReport {
    /// Whether every invariant holds.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl ItemOutcome {
    /// The wire form of the outcome, for append and hello answers.
    pub fn to_wire(&self) -> AppendOutcome {
        match *self {
            Self::Stored { id, position } => AppendOutcome::Stored(AppendAck { id, position }),
            Self::Duplicate { id, position } => {
                AppendOutcome::Duplicate(AppendAck { id, position })
            }
            Self::Refused(refusal) => AppendOutcome::Refused(refusal.to_wire()),
        }
    }
}

impl Refusal {
    /// The catalogue code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Equivocation { .. } => ErrorCode::EQUIVOCATION,
            Self::SeqGap { .. } => ErrorCode::SEQ_GAP,
            Self::BrokenChain { .. } => ErrorCode::BROKEN_CHAIN,
            Self::UnknownDevice => ErrorCode::UNKNOWN_DEVICE,
            Self::NotAuthor => ErrorCode::NOT_AUTHOR,
            Self::DeviceRevoked => ErrorCode::DEVICE_REVOKED,
            Self::QuotaExceeded => ErrorCode::QUOTA_EXCEEDED,
        }
    }

    /// The wire error, with the expected sequence number for a gap and
    /// the stored envelope for an equivocation or a broken chain.
    pub fn to_wire(&self) -> WireError {
        let error = WireError::new(self.code(), &self.to_string());
        match self {
            Self::SeqGap { expected } => error.with_detail(ErrorDetail::ExpectedSeq(*expected)),
            Self::Equivocation { existing } => error.with_detail(ErrorDetail::Stored(*existing)),
            Self::BrokenChain { last } => error.with_detail(ErrorDetail::Stored(*last)),
            _ => error,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Equivocation { .. } => {
                f.write_str("another envelope with this device and sequence number is stored")
            }
            Self::SeqGap { expected } => write!(f, "sequence gap: expected {expected}"),
            Self::BrokenChain { .. } => {
                f.write_str("prev is not this device's last envelope in the stream (attached)")
            }
            Self::UnknownDevice => f.write_str("device not registered"),
            Self::NotAuthor => f.write_str("device registered to another user"),
            Self::DeviceRevoked => f.write_str("device revoked"),
            Self::QuotaExceeded => {
                f.write_str("the author's storage quota on this relay is used up")
            }
        }
    }
}

impl StatementRefusal {
    /// The catalogue code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Stale => ErrorCode::STALE_STATEMENT,
            Self::DeviceRevoked => ErrorCode::DEVICE_REVOKED,
            Self::UnknownDevice => ErrorCode::UNKNOWN_DEVICE,
            Self::TooMany => ErrorCode::QUOTA_EXCEEDED,
            Self::UserRemoved => ErrorCode::USER_REMOVED,
        }
    }
}
