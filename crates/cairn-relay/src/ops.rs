//! Operations on a relay's data: stats, users, check, backup, restore,
//! export and import.

use std::collections::BTreeMap;

use cairn_store::{Quota, Store, StoredStatement, Usage};
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
    /// What each user may store.
    pub quota: QuotaJson,
    /// Users who have used up their quota.
    pub users_at_quota: u64,
    /// The users who store the most, largest first (at most
    /// [`LARGEST_USERS`]): who uses the disk.
    pub largest_users: Vec<UsageJson>,
}

/// How many users `stats` names by what they store.
pub const LARGEST_USERS: usize = 5;

/// What one user stores.
#[derive(Debug, Clone, Serialize)]
pub struct UsageJson {
    /// The user (`cu1…`).
    pub user: String,
    /// Bytes of envelopes.
    pub bytes: u64,
    /// Envelopes.
    pub envelopes: u64,
}

/// A per-user quota.
#[derive(Debug, Serialize)]
pub struct QuotaJson {
    /// Bytes of envelopes.
    pub bytes: u64,
    /// Envelopes.
    pub envelopes: u64,
}

/// The store's counts, and how users stand against `quota`.
pub async fn stats_json<S: Store>(
    store: &S,
    quota: Quota,
) -> Result<StatsJson, cairn_store::ReadError> {
    let s = store.stats().await?;
    let mut usage = store.usage().await?;
    let users_at_quota = usage
        .iter()
        .filter(|(_, used)| quota.is_reached_by(*used))
        .count() as u64;
    usage.sort_by_key(|(_, used)| std::cmp::Reverse(used.bytes));
    let largest_users = usage
        .iter()
        .take(LARGEST_USERS)
        .map(|(user, used)| UsageJson {
            user: user.to_text(),
            bytes: used.bytes,
            envelopes: used.envelopes,
        })
        .collect();
    Ok(StatsJson {
        users: s.users,
        devices: s.devices,
        revoked_devices: s.revoked_devices,
        streams: s.streams,
        envelopes: s.envelopes,
        envelope_bytes: s.envelope_bytes,
        quota: QuotaJson {
            bytes: quota.bytes,
            envelopes: quota.envelopes,
        },
        users_at_quota,
        largest_users,
    })
}

/// One user as the operator sees them: ids only, never content.
#[derive(Debug, Serialize)]
pub struct UserJson {
    /// The user id.
    pub user: String,
    /// Their devices.
    pub devices: Vec<DeviceJson>,
    /// Bytes of envelopes their devices stored.
    pub stored_bytes: u64,
    /// Envelopes their devices stored.
    pub stored_envelopes: u64,
    /// Whether they have used up their quota.
    pub at_quota: bool,
}

/// One device as the operator sees it.
#[derive(Debug, Serialize)]
pub struct DeviceJson {
    /// The device id.
    pub device: String,
    /// Whether its user revoked it.
    pub revoked: bool,
}

/// Every registered user with their devices, from the stored statements,
/// and what they stored against `quota`.
pub async fn users<S: Store>(
    store: &S,
    quota: Quota,
) -> Result<Vec<UserJson>, cairn_store::ReadError> {
    let usage: BTreeMap<String, Usage> = store
        .usage()
        .await?
        .into_iter()
        .map(|(user, used)| (user.to_text(), used))
        .collect();
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
        .map(|(user, devices)| {
            let used = usage.get(&user).copied().unwrap_or_default();
            UserJson {
                user,
                devices: devices
                    .into_iter()
                    .map(|(device, revoked)| DeviceJson { device, revoked })
                    .collect(),
                stored_bytes: used.bytes,
                stored_envelopes: used.envelopes,
                at_quota: quota.is_reached_by(used),
            }
        })
        .collect())
}

/// What a restored database lacks that the one it replaces held: the
/// positions of each stream past the restored head, and the statements
/// only the replaced one held. Clients that hold what is lacking send it
/// again (`spec/client.md` section 6.1).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Lacking {
    /// Entries past the restored heads, summed over streams.
    pub envelopes: u64,
    /// Streams that lack entries.
    pub streams: u64,
    /// Signed statements (certificates, revocations, grants) only the
    /// replaced database held.
    pub statements: u64,
}

impl Lacking {
    /// Whether the restored database holds everything the replaced one did.
    pub fn is_nothing(&self) -> bool {
        *self == Self::default()
    }
}

/// Compares a restored database with the one it replaces.
pub async fn lacking<S: Store, T: Store>(
    replaced: &S,
    restored: &T,
) -> Result<Lacking, cairn_store::ReadError> {
    let heads: std::collections::HashMap<_, _> = restored
        .all_streams()
        .await?
        .into_iter()
        .map(|s| (s.stream, s.head))
        .collect();
    let mut lacking = Lacking::default();
    for old in replaced.all_streams().await? {
        let now = heads.get(&old.stream).copied().unwrap_or(0);
        if old.head > now {
            lacking.envelopes += old.head - now;
            lacking.streams += 1;
        }
    }
    let kept: std::collections::HashSet<StoredStatement> =
        restored.statements().await?.into_iter().collect();
    lacking.statements = replaced
        .statements()
        .await?
        .iter()
        .filter(|s| !kept.contains(*s))
        .count() as u64;
    Ok(lacking)
}
