//! Operations on a relay's data: stats, users, check, backup, restore,
//! export and import.

use std::collections::BTreeMap;

use cairn_store::{Store, StoredStatement};
use serde::Serialize;

/// Store counts as JSON-friendly values.
#[derive(Debug, Serialize)]
pub struct StatsJson {
    /// Users with at least one device.
    pub users: u64,
    /// Devices registered (revoked included).
    pub devices: u64,
    /// Revoked devices.
    pub revoked_devices: u64,
    /// Non-empty streams.
    pub streams: u64,
    /// Stored envelopes.
    pub envelopes: u64,
    /// Their encoded bytes.
    pub envelope_bytes: u64,
}

/// The store's counts.
pub async fn stats_json<S: Store>(store: &S) -> Result<StatsJson, cairn_store::ReadError> {
    let s = store.stats().await?;
    Ok(StatsJson {
        users: s.users,
        devices: s.devices,
        revoked_devices: s.revoked_devices,
        streams: s.streams,
        envelopes: s.envelopes,
        envelope_bytes: s.envelope_bytes,
    })
}

/// One user as the operator sees them: ids only, never content.
#[derive(Debug, Serialize)]
pub struct UserJson {
    /// The user id.
    pub user: String,
    /// Their devices.
    pub devices: Vec<DeviceJson>,
}

/// One device as the operator sees it.
#[derive(Debug, Serialize)]
pub struct DeviceJson {
    /// The device id.
    pub device: String,
    /// Whether its user revoked it.
    pub revoked: bool,
}

/// Every registered user with their devices, from the stored statements.
pub async fn users<S: Store>(store: &S) -> Result<Vec<UserJson>, cairn_store::ReadError> {
    let mut users: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    for statement in store.statements().await? {
        match statement {
            StoredStatement::DeviceCertificate(c) => {
                let body = c.body();
                users
                    .entry(body.user.to_text())
                    .or_default()
                    .entry(body.device.to_text())
                    .or_insert(false);
            }
            StoredStatement::DeviceRevocation(r) => {
                let body = r.body();
                users
                    .entry(body.user.to_text())
                    .or_default()
                    .insert(body.device.to_text(), true);
            }
            StoredStatement::FriendGrant(_) | StoredStatement::FriendRevocation(_) => {}
        }
    }
    Ok(users
        .into_iter()
        .map(|(user, devices)| UserJson {
            user,
            devices: devices
                .into_iter()
                .map(|(device, revoked)| DeviceJson { device, revoked })
                .collect(),
        })
        .collect())
}
