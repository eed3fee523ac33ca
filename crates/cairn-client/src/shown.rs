//! What this home has shown its user, so that `watch` prints everything
//! that arrived since (`spec/client.md` section 7): items `watch` printed,
//! posts `feed` listed, messages `inbox` listed and note operations `note
//! list` listed. A home that never showed anything takes what it holds
//! when it first does as shown.

use std::collections::HashSet;

use cairn_wire::EnvelopeId;

use crate::client::Client;
use crate::error::Error;
use crate::open::Item;
use crate::record::RecordBody;

/// What a listing showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    /// `feed`: posts.
    Posts,
    /// `note list`: note operations.
    Notes,
    /// `inbox`: direct messages.
    Messages,
}

impl Client {
    /// Records that a listing showed every item of its kind held now.
    pub fn mark_listed(&self, listed: Listed) -> Result<(), Error> {
        let ids: Vec<EnvelopeId> = self
            .items()?
            .iter()
            .filter(|item| {
                matches!(
                    (&item.record.body, listed),
                    (RecordBody::Post { .. }, Listed::Posts)
                        | (RecordBody::Note(_), Listed::Notes)
                        | (RecordBody::Message { .. }, Listed::Messages)
                )
            })
            .map(|item| item.id)
            .collect();
        self.local.store().mark_shown(&ids)
    }

    /// Records that `ids` were printed.
    pub(crate) fn mark_printed(&self, ids: &[EnvelopeId]) -> Result<(), Error> {
        self.local.store().mark_shown(ids)
    }

    /// Of `items`, those not shown yet, and those created at or after
    /// `since` (Unix ms) whether shown or not. The first time anything is
    /// shown, what is held counts as shown.
    pub(crate) fn not_shown(&self, items: &[Item], since: Option<u64>) -> Result<Vec<Item>, Error> {
        let shown: HashSet<EnvelopeId> = match self.local.store().shown()? {
            Some(shown) => shown,
            None => {
                let held: Vec<EnvelopeId> = items.iter().map(|item| item.id).collect();
                self.local.store().mark_shown(&held)?;
                held.into_iter().collect()
            }
        };
        Ok(items
            .iter()
            .filter(|item| {
                !shown.contains(&item.id) || since.is_some_and(|s| item.header.timestamp_ms >= s)
            })
            .cloned()
            .collect())
    }
}
