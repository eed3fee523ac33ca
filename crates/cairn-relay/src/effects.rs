//! Acting on what committed writes change for connected clients
//! ([`Effect`]): a revoked device's connections close, a former friend's
//! subscriptions to the friends stream end, a removed user's devices are
//! disconnected, a device banned on a cluster is refused by this node too.
//!
//! The handler that received a revocation already does this on its own
//! node, before it answers. This task does it for every write the store
//! commits, so that on a cluster a revocation received by one node takes
//! effect on every node as it applies the log. Acting twice is harmless:
//! what is closed stays closed.

use std::sync::Arc;

use cairn_store::{Effect, Store};
use cairn_wire::{ErrorCode, Scope, StreamId};
use tokio::sync::broadcast::error::RecvError;

use crate::server::Shared;

/// Reads the store's effects until the store closes.
pub async fn run<S: Store>(shared: Arc<Shared<S>>) {
    let mut effects = shared.store.effects();
    loop {
        match effects.recv().await {
            Ok(effect) => act(&shared, effect),
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "fell behind the store's effects; checking every session"
                );
                recheck(&shared).await;
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Acts on one effect.
pub fn act<S: Store>(shared: &Shared<S>, effect: Effect) {
    match effect {
        Effect::DeviceRevoked { user, device } => shared.sessions.close_device(
            user,
            device,
            ErrorCode::DEVICE_REVOKED,
            "device revoked by its user",
        ),
        Effect::FriendRevoked { granter, grantee } => shared
            .hub
            .detach_reader(StreamId::new(granter, Scope::Friends), grantee),
        Effect::UserRemoved(user) => {
            shared.sessions.close_user(
                user,
                ErrorCode::USER_REMOVED,
                "this user was removed from the relay by its operator",
            );
        }
        Effect::DeviceBanned(device) => {
            shared.bans.set_cluster_ban(device, true);
            shared.sessions.close_banned(
                device,
                ErrorCode::DEVICE_BANNED,
                "device banned by the relay operator",
            );
        }
        Effect::DeviceUnbanned(device) => shared.bans.set_cluster_ban(device, false),
    }
}

/// After missing effects: closes every connection whose device the store
/// no longer holds active, and has every subscriber catch up from storage,
/// where the access rules are asked again.
async fn recheck<S: Store>(shared: &Shared<S>) {
    if let Ok(banned) = shared.store.banned_devices().await {
        shared.bans.set_cluster(banned);
    }
    for (user, device) in shared.sessions.connected() {
        let active = matches!(shared.store.device(user, device).await, Ok(Some(record)) if record.is_active());
        let removed = matches!(shared.store.removed(user).await, Ok(Some(_)));
        if removed {
            act(shared, Effect::UserRemoved(user));
        } else if shared.bans.contains(&device) {
            act(shared, Effect::DeviceBanned(device));
        } else if !active {
            act(shared, Effect::DeviceRevoked { user, device });
        }
    }
    shared.hub.detach_all();
}
