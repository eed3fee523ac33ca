//! Writes that come from a replicated log (`spec/cluster.md`): applied in
//! the log's order, each group in one transaction that also records the
//! last log sequence applied (`cairn_meta.log_applied`), so a node that
//! stops however it stops resumes exactly after it.
//!
//! Applying is deterministic: everything a rule needs that is not in the
//! store (the time of a removal or a redemption, expiry cutoffs, the
//! author's quota) is in the write itself, put there by the node that
//! published it.

use cairn_wire::{
    Cursor, DeviceCertificate, DeviceId, DeviceRevocation, Envelope, FriendGrant, FriendRevocation,
    UserId,
};

use crate::api::{
    Cutoffs, Expiry, Invite, InviteId, ItemOutcome, Quota, Redemption, Removal, StatementOutcome,
};
use crate::apply::{BanOp, InviteOp, Prepared, StatementIn, WriteTables};
use crate::writer::Changes;

/// One write of the log.
#[derive(Debug, Clone)]
pub enum LogWrite {
    /// The log's first record: its id. Changes nothing here (a node adopts
    /// the id before it applies anything, `crate::adopt_log`).
    Genesis,
    /// One request's envelopes, judged against `quota` per author.
    Append {
        /// The envelopes, in request order.
        envelopes: Vec<Envelope>,
        /// What each author may store, as the publishing node's
        /// configuration says.
        quota: Quota,
    },
    /// Register a device.
    Certificate(DeviceCertificate),
    /// Revoke a device.
    DeviceRevocation(DeviceRevocation),
    /// Grant a friend.
    Grant(FriendGrant),
    /// Withdraw a grant.
    FriendRevocation(FriendRevocation),
    /// A device's acknowledged cursor.
    Ack(DeviceId, Cursor),
    /// The operator makes an invite.
    CreateInvite(Invite),
    /// The operator revokes one.
    RevokeInvite(InviteId),
    /// A registration spends one use, at a time (Unix ms).
    RedeemInvite(InviteId, u64),
    /// The operator removes a user, at a time (Unix ms).
    RemoveUser(UserId, u64),
    /// Expire what is older than the cutoffs, at most `budget` envelopes.
    Expire(Cutoffs, u64),
    /// The operator bans a device on every node, at a time (Unix ms).
    Ban(DeviceId, u64),
    /// And lifts the ban.
    Unban(DeviceId),
}

/// A group of log writes was not the continuation of what this copy has
/// applied: applying it would skip or repeat records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the log is applied up to {applied}, so the next record is {}, not {first}", applied + 1)]
pub struct OutOfOrder {
    /// What this copy has applied.
    pub applied: u64,
    /// The first sequence of the group offered.
    pub first: u64,
}

/// What applying one [`LogWrite`] did: what the same write would have
/// answered on a single store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogAnswer {
    /// A genesis record.
    Genesis,
    /// One outcome per envelope.
    Appended(Vec<ItemOutcome>),
    /// A statement's outcome.
    Statement(StatementOutcome),
    /// The cursor's position now.
    Acked(u64),
    /// An invite was made.
    InviteCreated,
    /// Whether there was an invite to revoke.
    InviteRevoked(bool),
    /// What redeeming did.
    Redeemed(Redemption),
    /// What the removal did.
    Removed(Removal),
    /// What expiry did.
    Expired(Expiry),
    /// Whether a ban or unban changed anything.
    Banned(bool),
}

impl LogWrite {
    /// Applies the write with the rules of a single store.
    pub(crate) fn apply(
        self,
        tables: &mut WriteTables<'_>,
        changes: &mut Changes,
    ) -> Result<LogAnswer, redb::Error> {
        Ok(match self {
            Self::Genesis => LogAnswer::Genesis,
            Self::Append { envelopes, quota } => {
                let mut outcomes: Vec<ItemOutcome> = Vec::with_capacity(envelopes.len());
                for envelope in envelopes {
                    let (outcome, stored) = tables.append_under(Prepared::new(envelope), quota)?;
                    outcomes.push(outcome);
                    changes.committed.extend(stored);
                }
                LogAnswer::Appended(outcomes)
            }
            Self::Certificate(c) => statement(tables, changes, StatementIn::Certificate(c))?,
            Self::DeviceRevocation(r) => {
                statement(tables, changes, StatementIn::DeviceRevocation(r))?
            }
            Self::Grant(g) => statement(tables, changes, StatementIn::Grant(g))?,
            Self::FriendRevocation(r) => {
                statement(tables, changes, StatementIn::FriendRevocation(r))?
            }
            Self::Ack(device, cursor) => LogAnswer::Acked(tables.ack(&device, &cursor)?),
            Self::CreateInvite(invite) => {
                tables.invite(InviteOp::Create(invite))?;
                LogAnswer::InviteCreated
            }
            Self::RevokeInvite(id) => match tables.invite(InviteOp::Revoke(id))? {
                crate::apply::InviteAnswer::Revoked(existed) => LogAnswer::InviteRevoked(existed),
                other => return Err(mismatched(&other)),
            },
            Self::RedeemInvite(id, now_ms) => {
                match tables.invite(InviteOp::Redeem { id, now_ms })? {
                    crate::apply::InviteAnswer::Redeemed(r) => LogAnswer::Redeemed(r),
                    other => return Err(mismatched(&other)),
                }
            }
            Self::RemoveUser(user, now_ms) => {
                let removal = tables.remove_user(user, now_ms)?;
                changes.removal(user, &removal);
                LogAnswer::Removed(removal)
            }
            Self::Expire(cutoffs, budget) => LogAnswer::Expired(tables.expire(cutoffs, budget)?),
            Self::Ban(device, at_ms) => ban(tables, changes, BanOp::Ban(device, at_ms))?,
            Self::Unban(device) => ban(tables, changes, BanOp::Unban(device))?,
        })
    }

    /// Roughly what it weighs in a group commit.
    pub(crate) fn weight(&self) -> (usize, usize) {
        match self {
            Self::Append { envelopes, .. } => (
                envelopes.len(),
                envelopes.iter().map(cairn_wire::codec::encoded_len).sum(),
            ),
            _ => (1, 256),
        }
    }
}

fn statement(
    tables: &mut WriteTables<'_>,
    changes: &mut Changes,
    s: StatementIn,
) -> Result<LogAnswer, redb::Error> {
    let outcome = tables.statement(&s)?;
    changes.statement(&s, outcome);
    Ok(LogAnswer::Statement(outcome))
}

fn ban(
    tables: &mut WriteTables<'_>,
    changes: &mut Changes,
    op: BanOp,
) -> Result<LogAnswer, redb::Error> {
    let changed = tables.ban(op)?;
    changes.ban(op, changed);
    Ok(LogAnswer::Banned(changed))
}

/// The invite rules answer each operation with its own kind of answer;
/// another kind is a bug in this crate, reported, never read as a default.
fn mismatched(answer: &crate::apply::InviteAnswer) -> redb::Error {
    redb::Error::Corrupted(format!(
        "the invite rules answered with {answer:?}, not the operation's kind"
    ))
}
