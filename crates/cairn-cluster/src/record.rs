//! The records of the cluster's log (`spec/cluster.md` section 2): one
//! request each, postcard-encoded in canonical form, decoded by a total,
//! bounded parser.

use cairn_store::{Cutoffs, Invite, InviteId, LogWrite, Quota};
use cairn_wire::codec::{self, DecodeError};
use cairn_wire::limits::{MAX_BATCH, MAX_FRAME_LEN};
use cairn_wire::{
    BoundedVec, Cursor, DeviceCertificate, DeviceId, DeviceRevocation, Envelope, FriendGrant,
    FriendRevocation, LogId, UserId,
};
use serde::{Deserialize, Serialize};

/// The most bytes a record takes: one request (at most one frame) and
/// what describes it. The NATS servers must accept messages this large.
pub const MAX_RECORD_LEN: usize = MAX_FRAME_LEN + 4096;

/// Who published a record: a node's process (a random id drawn at start)
/// and its request counter. A node answers its own clients when it
/// applies a record with its own origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Origin {
    /// The publishing process, random per start.
    pub process: u64,
    /// The request, counted from 1 by that process.
    pub request: u64,
}

/// One record of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Who published it.
    pub origin: Origin,
    /// What it writes.
    pub body: Body,
}

/// What a record writes. The variant numbers are the format: never
/// reorder them, only add at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// 0: the first record of every log.
    Genesis {
        /// The cluster's log id, which every node's copy takes.
        log: LogId,
        /// The store schema the log was started with.
        schema: u32,
    },
    /// 1: one request's envelopes.
    Append {
        /// The envelopes, in request order.
        envelopes: BoundedVec<Envelope, MAX_BATCH>,
        /// The author's quota as the publishing node is configured: bytes.
        quota_bytes: u64,
        /// And envelopes.
        quota_envelopes: u64,
    },
    /// 2: a signed statement.
    Statement(StatementRecord),
    /// 3: a device's acknowledged cursor.
    Ack {
        /// The device.
        device: DeviceId,
        /// Its cursor.
        cursor: Cursor,
    },
    /// 4: the operator removes a user.
    RemoveUser {
        /// Who.
        user: UserId,
        /// When (Unix ms, the publishing node's clock).
        at_ms: u64,
    },
    /// 5: retention.
    Expire {
        /// Friends envelopes dated before this (Unix ms) go.
        friends_before_ms: Option<u64>,
        /// Direct envelopes dated before this go.
        direct_before_ms: Option<u64>,
        /// At most this many envelopes.
        budget: u64,
    },
    /// 6: the operator bans a device, on every node.
    Ban {
        /// The device.
        device: DeviceId,
        /// When (Unix ms, the publishing node's clock).
        at_ms: u64,
    },
    /// 7: and lifts the ban.
    Unban(DeviceId),
    /// 8: the operator's invites.
    Invite(InviteRecord),
}

/// A signed statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatementRecord {
    /// A device certificate.
    Certificate(DeviceCertificate),
    /// A device revocation.
    DeviceRevocation(DeviceRevocation),
    /// A friend grant.
    Grant(FriendGrant),
    /// A friend revocation.
    FriendRevocation(FriendRevocation),
}

/// A change to the invites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InviteRecord {
    /// A new invite.
    Create {
        /// SHA-256 of its code.
        id: [u8; 32],
        /// Registrations it admits.
        uses_left: u32,
        /// When it stops admitting (Unix ms).
        expires_ms: u64,
        /// When it was made.
        created_ms: u64,
    },
    /// An invite revoked.
    Revoke([u8; 32]),
    /// A registration spends one use.
    Redeem {
        /// Which invite.
        id: [u8; 32],
        /// When (Unix ms, the publishing node's clock).
        at_ms: u64,
    },
}

impl LogRecord {
    /// The record's canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes a record of at most [`MAX_RECORD_LEN`] bytes in canonical
    /// form.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode(bytes, MAX_RECORD_LEN)
    }
}

impl Body {
    /// The store write this record makes.
    pub fn to_write(&self) -> LogWrite {
        match self {
            Self::Genesis { .. } => LogWrite::Genesis,
            Self::Append {
                envelopes,
                quota_bytes,
                quota_envelopes,
            } => LogWrite::Append {
                envelopes: envelopes.as_slice().to_vec(),
                quota: Quota {
                    bytes: *quota_bytes,
                    envelopes: *quota_envelopes,
                },
            },
            Self::Statement(StatementRecord::Certificate(c)) => LogWrite::Certificate(c.clone()),
            Self::Statement(StatementRecord::DeviceRevocation(r)) => {
                LogWrite::DeviceRevocation(r.clone())
            }
            Self::Statement(StatementRecord::Grant(g)) => LogWrite::Grant(g.clone()),
            Self::Statement(StatementRecord::FriendRevocation(r)) => {
                LogWrite::FriendRevocation(r.clone())
            }
            Self::Ack { device, cursor } => LogWrite::Ack(*device, *cursor),
            Self::RemoveUser { user, at_ms } => LogWrite::RemoveUser(*user, *at_ms),
            Self::Expire {
                friends_before_ms,
                direct_before_ms,
                budget,
            } => LogWrite::Expire(
                Cutoffs {
                    friends_before_ms: *friends_before_ms,
                    direct_before_ms: *direct_before_ms,
                },
                *budget,
            ),
            Self::Ban { device, at_ms } => LogWrite::Ban(*device, *at_ms),
            Self::Unban(device) => LogWrite::Unban(*device),
            Self::Invite(InviteRecord::Create {
                id,
                uses_left,
                expires_ms,
                created_ms,
            }) => LogWrite::CreateInvite(Invite {
                id: InviteId(*id),
                uses_left: *uses_left,
                expires_ms: *expires_ms,
                created_ms: *created_ms,
            }),
            Self::Invite(InviteRecord::Revoke(id)) => LogWrite::RevokeInvite(InviteId(*id)),
            Self::Invite(InviteRecord::Redeem { id, at_ms }) => {
                LogWrite::RedeemInvite(InviteId(*id), *at_ms)
            }
        }
    }
}
