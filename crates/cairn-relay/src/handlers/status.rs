//! Per-device sync positions of the connection's user.

use cairn_store::Store;
use cairn_wire::{BoundedVec, DeviceStatus, Response, StatusResponse};

use super::internal;
use crate::server::Shared;
use crate::session::Session;

/// Lists the user's devices with their last seq and acknowledged cursors.
pub async fn status<S: Store>(shared: &Shared<S>, session: &Session) -> Response {
    let records = match shared.store.devices(session.user).await {
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
            acked: BoundedVec::new(acked).unwrap_or_default(),
        });
    }
    Response::Status(StatusResponse {
        devices: BoundedVec::new(devices).unwrap_or_default(),
    })
}
