//! Per-device sync positions of the connection's user.

use cairn_store::Store;
use cairn_wire::{BoundedVec, DeviceStatus, Response, StatusResponse};

use super::internal;
use crate::server::Shared;
use crate::session::Caller;

/// Lists the user's devices with their last seq and acknowledged cursors.
pub async fn status<S: Store>(shared: &Shared<S>, caller: &Caller) -> Response {
    let records = match shared.store.devices(caller.user()).await {
        Ok(records) => records,
        Err(e) => return internal(&e),
    };
    let mut devices = Vec::with_capacity(records.len());
    for record in records {
        let acked = match shared.store.acked(record.device).await {
            Ok(acked) => acked,
            Err(e) => return internal(&e),
        };
        devices.push(DeviceStatus {
            device: record.device,
            revoked: record.revocation.is_some(),
            last_seq: record.last_seq,
            acked: listed(acked, "acknowledged cursors"),
        });
    }
    Response::Status(StatusResponse {
        devices: listed(devices, "devices"),
    })
}

/// The first `N` items, in the store's order (`spec/protocol.md`: a
/// status lists at most 256 devices, which is all a user may certify, and
/// 1024 acknowledged cursors per device); the rest are left out of the
/// answer, and the relay logs that it did.
fn listed<T, const N: usize>(items: Vec<T>, what: &str) -> BoundedVec<T, N> {
    let (shown, beyond) = BoundedVec::take_front(items);
    if !beyond.is_empty() {
        tracing::info!(
            left_out = beyond.len(),
            what,
            "a status answer lists the first {N}"
        );
    }
    shown
}
