//! `cairn-relay user remove USER [--force]`: removing a user and what
//! their devices stored (`spec/storage.md` section 5.4). While the relay
//! runs, a user with a connected device is removed only when forced, and
//! then disconnected with `user_removed`.

use cairn_store::{Removal, Store};
use cairn_wire::{ErrorCode, UserId};
use serde::{Deserialize, Serialize};

use crate::session::Sessions;

/// The body of `POST /admin/users/{user}/remove`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct RemoveRequest {
    /// Remove the user even while devices of theirs are connected.
    #[serde(default)]
    pub force: bool,
}

/// What a removal did, as the operator API and CLI show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// The user (`cu1…`).
    pub user: String,
    /// Whether the user had been removed before (nothing was done now).
    pub already: bool,
    /// Streams emptied (they keep their positions).
    pub streams: u64,
    /// Envelopes deleted.
    pub envelopes: u64,
    /// Bytes they took.
    pub bytes: u64,
    /// Device certificates deleted.
    pub devices: u64,
    /// Devices whose connections were closed.
    pub disconnected: usize,
}

/// Why a removal did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoveError {
    /// Devices of the user are connected and the removal was not forced.
    #[error("{0} device(s) of this user are connected; remove with --force to disconnect them")]
    Connected(usize),
    /// The store failed; nothing was removed.
    #[error("storage: {0}")]
    Store(String),
}

/// Removes `user` at `now_ms`; with `sessions` (a running relay), refuses
/// while their devices are connected unless `force`, and disconnects them
/// once the removal is committed.
pub async fn remove<S: Store>(
    store: &S,
    sessions: Option<&Sessions>,
    user: UserId,
    force: bool,
    now_ms: u64,
) -> Result<Removed, RemoveError> {
    let connected = sessions.map_or(0, |s| s.connected_devices(user));
    if connected > 0 && !force {
        return Err(RemoveError::Connected(connected));
    }
    let removal = store
        .remove_user(user, now_ms)
        .await
        .map_err(|e| RemoveError::Store(e.to_string()))?;
    // Closed after the commit: a device that logged in meanwhile goes too.
    // The relay's effects task may have closed them first (it acts on
    // every committed removal): those connected at the removal count.
    let closed = sessions.map_or(0, |s| {
        s.close_user(
            user,
            ErrorCode::USER_REMOVED,
            "this user was removed from the relay by its operator",
        )
    });
    let disconnected = connected.max(closed);
    tracing::info!(
        %user,
        envelopes = removal.envelopes,
        bytes = removal.bytes,
        disconnected,
        already = removal.already,
        "user removed by the operator"
    );
    Ok(view(user, removal, disconnected))
}

fn view(user: UserId, removal: Removal, disconnected: usize) -> Removed {
    Removed {
        user: user.to_text(),
        already: removal.already,
        streams: removal.streams,
        envelopes: removal.envelopes,
        bytes: removal.bytes,
        devices: removal.devices,
        disconnected,
    }
}
