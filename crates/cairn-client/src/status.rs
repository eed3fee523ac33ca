//! What this device knows without the network: what is queued, what
//! waits for keys, when a sync last succeeded, and whether the relay
//! answered the last time it was tried. The last outcome is kept in the
//! local store; a change made within a short while of the relay failing
//! to answer tries it only briefly before queueing.

use std::time::Duration;

use cairn_wire::codec::{self, V1};
use serde::{Deserialize, Serialize};

use crate::client::{Client, now_ms};
use crate::error::Error;
use crate::local::{Batch, meta};

/// After the relay failed to answer, changes try it only briefly for this
/// long; `sync` always tries in full.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);

/// The last time the relay was tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastContact {
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
    /// How it went.
    pub outcome: Contact,
}

/// How a try of the relay went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Contact {
    /// The sync completed.
    Synced,
    /// The relay did not answer.
    Unreachable(String),
    /// It answered, and the sync failed.
    Failed(String),
}

/// [`LastContact`] as stored.
#[derive(Serialize, Deserialize)]
struct StoredContact {
    version: V1,
    at_ms: u64,
    outcome: Contact,
}

/// This device's state, without the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Envelopes waiting to be pushed.
    pub queued: u64,
    /// Envelopes held that do not open yet.
    pub waiting: u64,
    /// When a sync last succeeded.
    pub last_sync_ms: Option<u64>,
    /// The last time the relay was tried, and how it went.
    pub last_contact: Option<LastContact>,
}

impl Client {
    /// What this device knows without asking the relay.
    pub fn status(&self) -> Result<Status, Error> {
        let store = self.local.store();
        let last_sync_ms = store
            .meta(meta::LAST_SYNC)?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map(u64::from_be_bytes);
        Ok(Status {
            queued: store.outbox_len()?,
            waiting: store.pending_len()?,
            last_sync_ms,
            last_contact: self.last_contact()?,
        })
    }

    fn last_contact(&self) -> Result<Option<LastContact>, Error> {
        let Some(bytes) = self.local.store().meta(meta::LAST_CONTACT)? else {
            return Ok(None);
        };
        // A record this version cannot read says nothing: the next
        // contact rewrites it.
        Ok(codec::decode::<StoredContact>(&bytes, 4096)
            .ok()
            .map(|stored| LastContact {
                at_ms: stored.at_ms,
                outcome: stored.outcome,
            }))
    }

    /// Records how the last try of the relay went.
    pub(crate) fn record_contact(&self, outcome: Result<(), &Error>) -> Result<(), Error> {
        let at_ms = now_ms();
        let outcome = match outcome {
            Ok(()) => Contact::Synced,
            Err(e) if e.is_unreachable() => Contact::Unreachable(e.to_string()),
            Err(e) => Contact::Failed(e.to_string()),
        };
        let synced = outcome == Contact::Synced;
        let stored = StoredContact {
            version: V1,
            at_ms,
            outcome,
        };
        let mut batch = Batch::default();
        batch
            .meta
            .push((meta::LAST_CONTACT, codec::encode(&stored)));
        if synced {
            batch
                .meta
                .push((meta::LAST_SYNC, at_ms.to_be_bytes().to_vec()));
        }
        self.local.store().commit(batch)
    }

    /// Whether the relay failed to answer within [`RETRY_AFTER`], so that
    /// a change is queued at once.
    pub(crate) fn recently_unreachable(&self) -> Result<bool, Error> {
        let retry = u64::try_from(RETRY_AFTER.as_millis()).unwrap_or(u64::MAX);
        Ok(self.last_contact()?.is_some_and(|c| {
            matches!(c.outcome, Contact::Unreachable(_)) && now_ms().saturating_sub(c.at_ms) < retry
        }))
    }
}
