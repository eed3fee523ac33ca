//! The rules of every write, applied inside one redb write transaction.
//!
//! Each function first decides, reading only, whether the item is refused,
//! and writes only once it is accepted: a refused item never changes stored
//! data. Reads inside the transaction see the writes of earlier items of
//! the same group commit, so items are judged in commit order.

use std::collections::HashMap;

use cairn_wire::{
    Cursor, DeviceCertificate, DeviceId, DeviceRevocation, Envelope, EnvelopeHeader, EnvelopeId,
    FIRST_IN_STREAM, FriendGrant, FriendRevocation, Signed, Statement, StreamId, UserId,
};
use redb::{ReadableTable, Table, WriteTransaction};

use crate::api::{
    Committed, Invite, InviteId, ItemOutcome, MAX_DEVICES_PER_USER, MAX_FRIENDS_PER_USER, Quota,
    Redemption, Refusal, StatementOutcome, StatementRefusal, Usage,
};
use crate::keys;
use crate::schema;
use lazy::Lazy;

/// An envelope with its encoding and id, computed by the caller's task so
/// that the writer thread only writes.
#[derive(Debug)]
pub struct Prepared {
    /// The envelope.
    pub envelope: Envelope,
    /// Its canonical encoding.
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`.
    pub id: EnvelopeId,
}

impl Prepared {
    /// Encodes and hashes `envelope`.
    pub fn new(envelope: Envelope) -> Self {
        let bytes = envelope.encode();
        let id = Envelope::id_of_encoding(&bytes);
        Self {
            envelope,
            bytes,
            id,
        }
    }
}

/// A change to the devices the operator banned on every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanOp {
    /// Ban a device, at a time (Unix ms).
    Ban(DeviceId, u64),
    /// Lift its ban.
    Unban(DeviceId),
}

/// A signed statement to apply.
#[derive(Debug, Clone)]
pub enum StatementIn {
    /// Register a device.
    Certificate(DeviceCertificate),
    /// Revoke a device.
    DeviceRevocation(DeviceRevocation),
    /// Grant a friend.
    Grant(FriendGrant),
    /// Revoke a friend.
    FriendRevocation(FriendRevocation),
}

mod expire;
mod lazy;
mod remove;
mod restore;

type T<'t> = Table<'t, &'static [u8], &'static [u8]>;

/// Every table of the schema in one write transaction, each opened when
/// first used: a group opens only the tables its requests touch, and redb
/// stages a root update at commit for every table opened.
pub struct WriteTables<'t> {
    meta: Lazy<'t>,
    envelopes: Lazy<'t>,
    envelope_ids: Lazy<'t>,
    streams: Lazy<'t>,
    direct_streams: Lazy<'t>,
    device_seqs: Lazy<'t>,
    device_certs: Lazy<'t>,
    device_revocations: Lazy<'t>,
    device_users: Lazy<'t>,
    users: Lazy<'t>,
    friends: Lazy<'t>,
    friends_by_grantee: Lazy<'t>,
    acks: Lazy<'t>,
    user_usage: Lazy<'t>,
    invites: Lazy<'t>,
    chain_heads: Lazy<'t>,
    floors: Lazy<'t>,
    removed_users: Lazy<'t>,
    expired_heads: Lazy<'t>,
    bans: Lazy<'t>,
    added_bytes: u64,
    removed_bytes: u64,
    quota: Quota,
    /// Usage of the authors seen in this group, as updated by it.
    usage: HashMap<UserId, Usage>,
}

impl<'t> WriteTables<'t> {
    /// The schema's tables in `txn`, opened as they are used; appends are
    /// held to `quota` per author.
    pub fn open(txn: &'t WriteTransaction, quota: Quota) -> Self {
        Self {
            meta: Lazy::new(txn, schema::META),
            envelopes: Lazy::new(txn, schema::ENVELOPES),
            envelope_ids: Lazy::new(txn, schema::ENVELOPE_IDS),
            streams: Lazy::new(txn, schema::STREAMS),
            direct_streams: Lazy::new(txn, schema::DIRECT_STREAMS),
            device_seqs: Lazy::new(txn, schema::DEVICE_SEQS),
            device_certs: Lazy::new(txn, schema::DEVICE_CERTS),
            device_revocations: Lazy::new(txn, schema::DEVICE_REVOCATIONS),
            device_users: Lazy::new(txn, schema::DEVICE_USERS),
            users: Lazy::new(txn, schema::USERS),
            friends: Lazy::new(txn, schema::FRIENDS),
            friends_by_grantee: Lazy::new(txn, schema::FRIENDS_BY_GRANTEE),
            acks: Lazy::new(txn, schema::ACKS),
            user_usage: Lazy::new(txn, schema::USER_USAGE),
            invites: Lazy::new(txn, schema::INVITES),
            chain_heads: Lazy::new(txn, schema::CHAIN_HEADS),
            floors: Lazy::new(txn, schema::FLOORS),
            removed_users: Lazy::new(txn, schema::REMOVED_USERS),
            expired_heads: Lazy::new(txn, schema::EXPIRED_HEADS),
            bans: Lazy::new(txn, schema::BANS),
            added_bytes: 0,
            removed_bytes: 0,
            quota,
            usage: HashMap::new(),
        }
    }

    /// Judges one envelope and stores it if accepted.
    pub fn append(
        &mut self,
        item: Prepared,
    ) -> Result<(ItemOutcome, Option<Committed>), redb::Error> {
        let header = item.envelope.header();
        let (author, device, seq) = (header.author, header.device, header.seq);
        if let Some(refusal) = self.registry_refusal(&author, &device)? {
            return Ok((ItemOutcome::Refused(refusal), None));
        }
        if let Some(position) = self.position_of(&item.id)? {
            let outcome = ItemOutcome::Duplicate {
                id: item.id,
                position,
            };
            return Ok((outcome, None));
        }
        if let Some(refusal) = self.seq_refusal(&author, &device, seq)? {
            return Ok((ItemOutcome::Refused(refusal), None));
        }
        if let Some(refusal) = self.chain_refusal(header)? {
            return Ok((ItemOutcome::Refused(refusal), None));
        }
        let used = self.usage_of(author)?;
        let size = item.bytes.len() as u64;
        if !self.quota.admits(used, size) {
            return Ok((ItemOutcome::Refused(Refusal::QuotaExceeded), None));
        }
        self.usage.insert(author, used.plus(size));
        let committed = self.store(item)?;
        let outcome = ItemOutcome::Stored {
            id: committed.id,
            position: committed.position,
        };
        Ok((outcome, Some(committed)))
    }

    /// Like [`Self::append`], with `quota` instead of the store's own (a
    /// write from a replicated log carries its publisher's).
    pub fn append_under(
        &mut self,
        item: Prepared,
        quota: Quota,
    ) -> Result<(ItemOutcome, Option<Committed>), redb::Error> {
        let own = std::mem::replace(&mut self.quota, quota);
        let judged = self.append(item);
        self.quota = own;
        judged
    }

    /// The last sequence of the replicated log applied to this store (0:
    /// none).
    pub fn log_applied(&self) -> Result<u64, redb::Error> {
        match self.meta.read()?.get(schema::META_LOG_APPLIED)? {
            Some(v) => read_u64(v.value(), "log_applied"),
            None => Ok(0),
        }
    }

    /// Records that the replicated log is applied up to `seq`.
    pub fn set_log_applied(&mut self, seq: u64) -> Result<(), redb::Error> {
        self.meta
            .write()?
            .insert(schema::META_LOG_APPLIED, seq.to_be_bytes().as_slice())?;
        Ok(())
    }

    /// Applies a statement under the ordering rules of `spec/storage.md`.
    pub fn statement(&mut self, statement: &StatementIn) -> Result<StatementOutcome, redb::Error> {
        match statement {
            StatementIn::Certificate(cert) => self.certificate(cert),
            StatementIn::DeviceRevocation(rev) => self.device_revocation(rev),
            StatementIn::Grant(grant) => self.friend_statement(grant, FriendKind::Grant),
            StatementIn::FriendRevocation(rev) => {
                self.friend_statement(rev, FriendKind::Revocation)
            }
        }
    }

    /// Moves `device`'s cursor on a stream forward, never back, never past
    /// the head.
    pub fn ack(&mut self, device: &DeviceId, cursor: &Cursor) -> Result<u64, redb::Error> {
        let head = self.head(&keys::stream_key(&cursor.stream))?;
        let key = keys::ack_key(device, &cursor.stream);
        let old = match self.acks.read()?.get(key.as_slice())? {
            Some(v) => read_u64(v.value(), "acked position")?,
            None => 0,
        };
        let new = old.max(cursor.position.min(head));
        if new > old {
            self.acks
                .write()?
                .insert(key.as_slice(), new.to_be_bytes().as_slice())?;
        }
        Ok(new)
    }

    /// Writes the counters the group changed; call once before commit.
    pub fn finish(mut self) -> Result<(), redb::Error> {
        for (user, used) in std::mem::take(&mut self.usage) {
            // A user whose last envelope expired has no usage row, as one
            // who never stored anything (what `verify` counts).
            if used == Usage::default() {
                self.user_usage
                    .write()?
                    .remove(user.as_bytes().as_slice())?;
                continue;
            }
            self.user_usage.write()?.insert(
                user.as_bytes().as_slice(),
                keys::usage_value(used).as_slice(),
            )?;
        }
        if self.added_bytes == 0 && self.removed_bytes == 0 {
            return Ok(());
        }
        let old = match self.meta.read()?.get(schema::META_ENVELOPE_BYTES)? {
            Some(v) => read_u64(v.value(), "envelope byte count")?,
            None => 0,
        };
        let new = old
            .saturating_add(self.added_bytes)
            .saturating_sub(self.removed_bytes);
        self.meta
            .write()?
            .insert(schema::META_ENVELOPE_BYTES, new.to_be_bytes().as_slice())?;
        Ok(())
    }

    /// What `author` has stored, counting this group's earlier items.
    fn usage_of(&mut self, author: UserId) -> Result<Usage, redb::Error> {
        if let Some(used) = self.usage.get(&author) {
            return Ok(*used);
        }
        let used = match self.user_usage.read()?.get(author.as_bytes().as_slice())? {
            Some(v) => keys::parse_usage(v.value()).map_err(corrupt)?,
            None => Usage::default(),
        };
        Ok(used)
    }

    fn registry_refusal(
        &self,
        author: &UserId,
        device: &DeviceId,
    ) -> Result<Option<Refusal>, redb::Error> {
        let key = keys::pair_key(author.as_bytes(), device.as_bytes());
        if self
            .device_revocations
            .read()?
            .get(key.as_slice())?
            .is_some()
        {
            return Ok(Some(Refusal::DeviceRevoked));
        }
        if self.device_certs.read()?.get(key.as_slice())?.is_some() {
            return Ok(None);
        }
        let range = keys::prefix_range(device.as_bytes());
        let other_owner = self
            .device_users
            .read()?
            .range::<&[u8]>(keys::as_slices(&range))?
            .next();
        Ok(Some(match other_owner {
            Some(_) => Refusal::NotAuthor,
            None => Refusal::UnknownDevice,
        }))
    }

    fn position_of(&self, id: &EnvelopeId) -> Result<Option<u64>, redb::Error> {
        let Some(location) = self.envelope_ids.read()?.get(id.as_bytes().as_slice())? else {
            return Ok(None);
        };
        let (_, position) = keys::parse_entry_key(location.value()).map_err(corrupt)?;
        Ok(Some(position))
    }

    fn seq_refusal(
        &self,
        author: &UserId,
        device: &DeviceId,
        seq: u64,
    ) -> Result<Option<Refusal>, redb::Error> {
        let last = last_seq(self.device_seqs.read()?, author, device)?;
        let expected = last.saturating_add(1);
        if seq == expected {
            return Ok(None);
        }
        if seq == 0 || seq > expected {
            return Ok(Some(Refusal::SeqGap { expected }));
        }
        let key = keys::device_seq_key(author, device, seq);
        match self.device_seqs.read()?.get(key.as_slice())? {
            Some(existing) => Ok(Some(Refusal::Equivocation {
                existing: keys::parse_envelope_id(existing.value()).map_err(corrupt)?,
            })),
            None => Err(corrupt_msg("device sequence has a gap")),
        }
    }

    /// The envelope must follow its device's last one in its stream.
    fn chain_refusal(&self, header: &EnvelopeHeader) -> Result<Option<Refusal>, redb::Error> {
        let key = keys::chain_key(&header.author, &header.device, &header.stream());
        let last = match self.chain_heads.read()?.get(key.as_slice())? {
            Some(id) => keys::parse_envelope_id(id.value()).map_err(corrupt)?,
            None => FIRST_IN_STREAM,
        };
        Ok((header.prev != last).then_some(Refusal::BrokenChain { last }))
    }

    fn store(&mut self, item: Prepared) -> Result<Committed, redb::Error> {
        let header = item.envelope.header();
        let stream = header.stream();
        let stream_key = keys::stream_key(&stream);
        let position = self.head(&stream_key)?.saturating_add(1);
        let entry_key = keys::entry_key(&stream, position);
        let seq_key = keys::device_seq_key(&header.author, &header.device, header.seq);
        self.envelopes
            .write()?
            .insert(entry_key.as_slice(), item.bytes.as_slice())?;
        self.envelope_ids
            .write()?
            .insert(item.id.as_bytes().as_slice(), entry_key.as_slice())?;
        self.device_seqs
            .write()?
            .insert(seq_key.as_slice(), item.id.as_bytes().as_slice())?;
        let chain_key = keys::chain_key(&header.author, &header.device, &stream);
        self.chain_heads
            .write()?
            .insert(chain_key.as_slice(), item.id.as_bytes().as_slice())?;
        self.streams
            .write()?
            .insert(stream_key.as_slice(), position.to_be_bytes().as_slice())?;
        if position == 1 {
            self.index_direct(&stream)?;
        }
        self.added_bytes = self.added_bytes.saturating_add(item.bytes.len() as u64);
        Ok(Committed {
            stream,
            position,
            id: item.id,
            envelope: item.envelope,
        })
    }

    fn index_direct(&mut self, stream: &StreamId) -> Result<(), redb::Error> {
        if let Some(recipient) = stream.scope.recipient() {
            let key = keys::pair_key(recipient.as_bytes(), stream.owner.as_bytes());
            self.direct_streams
                .write()?
                .insert(key.as_slice(), [].as_slice())?;
        }
        Ok(())
    }

    fn head(&self, stream_key: &[u8]) -> Result<u64, redb::Error> {
        match self.streams.read()?.get(stream_key)? {
            Some(v) => read_u64(v.value(), "stream head"),
            None => Ok(0),
        }
    }

    fn certificate(&mut self, cert: &DeviceCertificate) -> Result<StatementOutcome, redb::Error> {
        let body = cert.body();
        if self
            .removed_users
            .read()?
            .get(body.user.as_bytes().as_slice())?
            .is_some()
        {
            return Ok(StatementOutcome::Refused(StatementRefusal::UserRemoved));
        }
        let key = keys::pair_key(body.user.as_bytes(), body.device.as_bytes());
        if self
            .device_revocations
            .read()?
            .get(key.as_slice())?
            .is_some()
        {
            return Ok(StatementOutcome::Refused(StatementRefusal::DeviceRevoked));
        }
        let encoded = cert.encode();
        if let Some(stored) = self.device_certs.read()?.get(key.as_slice())? {
            let stored = DeviceCertificate::decode(stored.value()).map_err(corrupt)?;
            if stored == *cert {
                return Ok(StatementOutcome::Unchanged);
            }
            if stored.body().issued_ms >= body.issued_ms {
                return Ok(StatementOutcome::Refused(StatementRefusal::Stale));
            }
        } else if count_prefix(
            self.device_certs.read()?,
            body.user.as_bytes(),
            MAX_DEVICES_PER_USER,
        )? >= MAX_DEVICES_PER_USER
        {
            return Ok(StatementOutcome::Refused(StatementRefusal::TooMany));
        }
        self.device_certs
            .write()?
            .insert(key.as_slice(), encoded.as_slice())?;
        let owner_key = keys::pair_key(body.device.as_bytes(), body.user.as_bytes());
        self.device_users
            .write()?
            .insert(owner_key.as_slice(), [].as_slice())?;
        self.users
            .write()?
            .insert(body.user.as_bytes().as_slice(), [].as_slice())?;
        Ok(StatementOutcome::Applied)
    }

    /// A revocation is final and wins over its device's certificate
    /// whatever either is dated: a device certified with a future date
    /// can still be revoked at once. A user can revoke only a device they
    /// certified, so a revocation never names another user's device.
    fn device_revocation(
        &mut self,
        rev: &DeviceRevocation,
    ) -> Result<StatementOutcome, redb::Error> {
        let body = rev.body();
        let key = keys::pair_key(body.user.as_bytes(), body.device.as_bytes());
        if self
            .device_revocations
            .read()?
            .get(key.as_slice())?
            .is_some()
        {
            return Ok(StatementOutcome::Unchanged);
        }
        if self.device_certs.read()?.get(key.as_slice())?.is_none() {
            return Ok(StatementOutcome::Refused(StatementRefusal::UnknownDevice));
        }
        self.device_revocations
            .write()?
            .insert(key.as_slice(), rev.encode().as_slice())?;
        Ok(StatementOutcome::Applied)
    }

    fn friend_statement<B: FriendBody>(
        &mut self,
        statement: &Signed<B>,
        kind: FriendKind,
    ) -> Result<StatementOutcome, redb::Error> {
        let body = statement.body();
        let (granter, grantee) = (body.granter(), body.grantee());
        let key = keys::pair_key(granter.as_bytes(), grantee.as_bytes());
        let mut record = vec![kind.tag()];
        record.extend_from_slice(&statement.encode());
        if let Some(stored) = self.friends.read()?.get(key.as_slice())? {
            let stored = stored.value();
            if stored == record.as_slice() {
                return Ok(StatementOutcome::Unchanged);
            }
            if friend_order(stored)? >= (body.at_ms(), kind) {
                return Ok(StatementOutcome::Refused(StatementRefusal::Stale));
            }
        } else if count_prefix(
            self.friends.read()?,
            granter.as_bytes(),
            MAX_FRIENDS_PER_USER,
        )? >= MAX_FRIENDS_PER_USER
        {
            return Ok(StatementOutcome::Refused(StatementRefusal::TooMany));
        }
        self.friends
            .write()?
            .insert(key.as_slice(), record.as_slice())?;
        let reverse = keys::pair_key(grantee.as_bytes(), granter.as_bytes());
        match kind {
            FriendKind::Grant => {
                self.friends_by_grantee
                    .write()?
                    .insert(reverse.as_slice(), [].as_slice())?;
            }
            FriendKind::Revocation => {
                self.friends_by_grantee
                    .write()?
                    .remove(reverse.as_slice())?;
            }
        }
        Ok(StatementOutcome::Applied)
    }
}

/// How many keys of `table` start with `prefix`, counting no further than
/// `limit`: a bound check costs at most `limit` steps.
fn count_prefix(table: &T<'_>, prefix: &[u8], limit: usize) -> Result<usize, redb::Error> {
    let range = keys::prefix_range(prefix);
    Ok(table
        .range::<&[u8]>(keys::as_slices(&range))?
        .take(limit)
        .count())
}

/// The last sequence number stored for a device (0: none), by a reverse
/// range scan over its `device_seqs` prefix.
pub fn last_seq<R: ReadableTable<&'static [u8], &'static [u8]>>(
    device_seqs: &R,
    user: &UserId,
    device: &DeviceId,
) -> Result<u64, redb::Error> {
    let range = keys::prefix_range(&keys::pair_key(user.as_bytes(), device.as_bytes()));
    let Some(last) = device_seqs
        .range::<&[u8]>(keys::as_slices(&range))?
        .next_back()
    else {
        return Ok(0);
    };
    let (key, _) = last?;
    let (_, _, seq) = keys::parse_device_seq_key(key.value()).map_err(corrupt)?;
    Ok(seq)
}

/// A change to the operator's invites.
#[derive(Debug, Clone, Copy)]
pub enum InviteOp {
    /// Store a new invite.
    Create(Invite),
    /// Delete one.
    Revoke(InviteId),
    /// Spend one use at a time.
    Redeem {
        /// Which.
        id: InviteId,
        /// The relay's time (Unix ms).
        now_ms: u64,
    },
}

/// What an [`InviteOp`] did.
#[derive(Debug, Clone, Copy)]
pub enum InviteAnswer {
    /// Stored.
    Created,
    /// Whether there was one to delete.
    Revoked(bool),
    /// What redeeming did.
    Redeemed(Redemption),
}

impl WriteTables<'_> {
    /// Bans or unbans a device; whether that changed anything.
    pub fn ban(&mut self, op: BanOp) -> Result<bool, redb::Error> {
        match op {
            BanOp::Ban(device, at_ms) => {
                if self
                    .bans
                    .read()?
                    .get(device.as_bytes().as_slice())?
                    .is_some()
                {
                    return Ok(false);
                }
                self.bans
                    .write()?
                    .insert(device.as_bytes().as_slice(), at_ms.to_be_bytes().as_slice())?;
                Ok(true)
            }
            BanOp::Unban(device) => Ok(self
                .bans
                .write()?
                .remove(device.as_bytes().as_slice())?
                .is_some()),
        }
    }

    /// Applies an invite change.
    pub fn invite(&mut self, op: InviteOp) -> Result<InviteAnswer, redb::Error> {
        match op {
            InviteOp::Create(invite) => {
                let value = keys::invite_value(&invite);
                self.invites
                    .write()?
                    .insert(invite.id.0.as_slice(), value.as_slice())?;
                Ok(InviteAnswer::Created)
            }
            InviteOp::Revoke(id) => Ok(InviteAnswer::Revoked(
                self.invites.write()?.remove(id.0.as_slice())?.is_some(),
            )),
            InviteOp::Redeem { id, now_ms } => self.redeem(id, now_ms).map(InviteAnswer::Redeemed),
        }
    }

    fn redeem(&mut self, id: InviteId, now_ms: u64) -> Result<Redemption, redb::Error> {
        let stored = match self.invites.read()?.get(id.0.as_slice())? {
            Some(v) => keys::parse_invite(id.0.as_slice(), v.value()).map_err(corrupt)?,
            None => return Ok(Redemption::Unknown),
        };
        if now_ms >= stored.expires_ms {
            return Ok(Redemption::Expired);
        }
        let left = stored.uses_left.saturating_sub(1);
        if left == 0 {
            self.invites.write()?.remove(id.0.as_slice())?;
        } else {
            let spent = Invite {
                uses_left: left,
                ..stored
            };
            self.invites
                .write()?
                .insert(id.0.as_slice(), keys::invite_value(&spent).as_slice())?;
        }
        Ok(Redemption::Spent)
    }
}

/// Grants and revocations of one pair, ordered: at equal times a
/// revocation wins, so a grant issued at or before a revocation is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum FriendKind {
    Grant,
    Revocation,
}

impl FriendKind {
    fn tag(self) -> u8 {
        match self {
            Self::Grant => keys::FRIEND_GRANT,
            Self::Revocation => keys::FRIEND_REVOCATION,
        }
    }
}

/// What grants and friend revocations have in common.
trait FriendBody: Statement {
    fn granter(&self) -> UserId;
    fn grantee(&self) -> UserId;
    fn at_ms(&self) -> u64;
}

impl FriendBody for cairn_wire::FriendGrantBody {
    fn granter(&self) -> UserId {
        self.granter
    }
    fn grantee(&self) -> UserId {
        self.grantee
    }
    fn at_ms(&self) -> u64 {
        self.issued_ms
    }
}

impl FriendBody for cairn_wire::FriendRevocationBody {
    fn granter(&self) -> UserId {
        self.granter
    }
    fn grantee(&self) -> UserId {
        self.grantee
    }
    fn at_ms(&self) -> u64 {
        self.revoked_ms
    }
}

/// The (time, kind) of a stored `friends` record.
fn friend_order(record: &[u8]) -> Result<(u64, FriendKind), redb::Error> {
    match record.split_first() {
        Some((&keys::FRIEND_GRANT, bytes)) => {
            let grant = FriendGrant::decode(bytes).map_err(corrupt)?;
            Ok((grant.body().issued_ms, FriendKind::Grant))
        }
        Some((&keys::FRIEND_REVOCATION, bytes)) => {
            let rev = FriendRevocation::decode(bytes).map_err(corrupt)?;
            Ok((rev.body().revoked_ms, FriendKind::Revocation))
        }
        _ => Err(corrupt_msg("unknown friend record tag")),
    }
}

fn read_u64(bytes: &[u8], what: &'static str) -> Result<u64, redb::Error> {
    keys::parse_u64(bytes, what).map_err(corrupt)
}

fn corrupt(err: impl std::fmt::Display) -> redb::Error {
    redb::Error::Corrupted(err.to_string())
}

fn corrupt_msg(msg: &str) -> redb::Error {
    redb::Error::Corrupted(msg.to_string())
}
