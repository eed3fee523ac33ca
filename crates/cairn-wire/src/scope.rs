//! Scopes and streams: the unencrypted routing information the relay
//! enforces.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::UserId;

/// Who may read an envelope. The relay enforces it and fails closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    /// Only the author's own certified, unrevoked devices.
    Private,
    /// The author's devices and every user the author has granted.
    Friends,
    /// The recipient's devices and the author's.
    Direct(UserId),
}

impl Scope {
    /// The recipient of a direct envelope.
    pub fn recipient(&self) -> Option<UserId> {
        match self {
            Self::Direct(user) => Some(*user),
            Self::Private | Self::Friends => None,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Private => f.write_str("private"),
            Self::Friends => f.write_str("friends"),
            Self::Direct(user) => write!(f, "direct:{user}"),
        }
    }
}

/// One append-only log: everything one user wrote under one scope. Only
/// the owner's devices write to it; the relay numbers its entries 1, 2, 3...
/// without gaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamId {
    /// The author of every envelope in the stream.
    pub owner: UserId,
    /// The scope of every envelope in the stream.
    pub scope: Scope,
}

impl StreamId {
    /// The stream of `owner`'s envelopes under `scope`.
    pub fn new(owner: UserId, scope: Scope) -> Self {
        Self { owner, scope }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.scope)
    }
}
