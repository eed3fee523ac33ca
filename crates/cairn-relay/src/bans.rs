//! Devices the operator has banned from the relay.
//!
//! Revoking a device is its user's act (a statement signed by the user's
//! root key). An operator, who holds no user's key, can instead ban a
//! device: the relay refuses its authentication from then on and closes
//! its open connections. Bans are kept in `banned-devices.txt` in the data
//! directory, one device id per line, written atomically.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cairn_wire::DeviceId;

/// File name inside the data directory.
pub const BANS_FILE: &str = "banned-devices.txt";

/// The set of banned devices: this relay's own, persisted in its ban
/// file; and, on a node of a cluster, the cluster's, which the store keeps
/// on every node (`spec/cluster.md`) and which this holds a copy of.
#[derive(Debug)]
pub struct Bans {
    path: PathBuf,
    devices: Mutex<BTreeSet<DeviceId>>,
    cluster: Mutex<BTreeSet<DeviceId>>,
}

/// Reading or writing the ban list failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BansError {
    /// The file could not be read or written.
    #[error("{path}")]
    Io {
        /// Which file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not a device id.
    #[error("{path}, line {line}: {reason}")]
    BadLine {
        /// Which file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Why.
        reason: String,
    },
}

/// What reading the ban list again changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BanChanges {
    /// Devices banned now that were not.
    pub banned: Vec<DeviceId>,
    /// Devices no longer banned.
    pub unbanned: Vec<DeviceId>,
}

impl Bans {
    /// Loads the ban list of `data_dir` (empty when there is none).
    pub fn load(data_dir: &Path) -> Result<Self, BansError> {
        let path = data_dir.join(BANS_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(BansError::Io { path, source }),
        };
        let devices = parse(&path, &text)?;
        Ok(Self {
            path,
            devices: Mutex::new(devices),
            cluster: Mutex::default(),
        })
    }

    /// Whether `device` is banned, here or on the whole cluster.
    pub fn contains(&self, device: &DeviceId) -> bool {
        self.lock().contains(device) || self.lock_cluster().contains(device)
    }

    /// The cluster's bans are now `devices` (as the store holds them).
    pub fn set_cluster(&self, devices: impl IntoIterator<Item = DeviceId>) {
        *self.lock_cluster() = devices.into_iter().collect();
    }

    /// The cluster banned `device`, or lifted its ban.
    pub fn set_cluster_ban(&self, device: DeviceId, banned: bool) {
        let mut cluster = self.lock_cluster();
        if banned {
            cluster.insert(device);
        } else {
            cluster.remove(&device);
        }
    }

    /// Bans `device` and persists the list; returns whether it was new.
    pub fn add(&self, device: DeviceId) -> Result<bool, BansError> {
        let mut devices = self.lock();
        if !devices.insert(device) {
            return Ok(false);
        }
        write_atomically(&self.path, &render(&devices))?;
        Ok(true)
    }

    /// Lifts the ban of `device` and persists the list; returns whether
    /// it was banned.
    pub fn remove(&self, device: &DeviceId) -> Result<bool, BansError> {
        let mut devices = self.lock();
        if !devices.remove(device) {
            return Ok(false);
        }
        write_atomically(&self.path, &render(&devices))?;
        Ok(true)
    }

    /// Reads the list again from its file (the operator may have edited
    /// it): what it bans now that it did not, and what it no longer bans.
    /// A file that does not parse changes nothing.
    pub fn reload(&self) -> Result<BanChanges, BansError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(BansError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let fresh = parse(&self.path, &text)?;
        let mut devices = self.lock();
        let changes = BanChanges {
            banned: fresh.difference(&devices).copied().collect(),
            unbanned: devices.difference(&fresh).copied().collect(),
        };
        *devices = fresh;
        Ok(changes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<DeviceId>> {
        self.devices
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_cluster(&self) -> std::sync::MutexGuard<'_, BTreeSet<DeviceId>> {
        self.cluster
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn parse(path: &Path, text: &str) -> Result<BTreeSet<DeviceId>, BansError> {
    let mut devices = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let device = line
            .parse()
            .map_err(|e: cairn_wire::IdParseError| BansError::BadLine {
                path: path.to_owned(),
                line: i + 1,
                reason: e.to_string(),
            })?;
        devices.insert(device);
    }
    Ok(devices)
}

fn render(devices: &BTreeSet<DeviceId>) -> String {
    let mut text = String::from("# Devices banned by the operator, one per line.\n");
    for device in devices {
        text.push_str(&device.to_text());
        text.push('\n');
    }
    text
}

fn write_atomically(path: &Path, text: &str) -> Result<(), BansError> {
    let io = |source| BansError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut file = fs::File::create(&tmp).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}
