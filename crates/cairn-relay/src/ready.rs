//! The ready file: `cairn-relay serve --ready-file PATH` writes where the
//! relay listens and what its fingerprint is, as one JSON document, once
//! every listener is bound. Scripts and supervisors wait for the file
//! instead of parsing log lines; it is written whole or not at all (a
//! temporary file renamed into place).

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::RelayHandle;

/// What a running relay announces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ready {
    /// The QUIC address clients connect to.
    pub listen: SocketAddr,
    /// The admin HTTP address.
    pub admin: SocketAddr,
    /// The metrics-only HTTP address, if configured.
    pub metrics: Option<SocketAddr>,
    /// The certificate fingerprint clients pin.
    pub fingerprint: String,
    /// The relay's process id.
    pub pid: u32,
}

impl Ready {
    /// What `relay`, running in this process, announces.
    pub fn of(relay: &RelayHandle) -> Self {
        Self {
            listen: relay.addr,
            admin: relay.admin_addr,
            metrics: relay.metrics_addr,
            fingerprint: relay.fingerprint.to_string(),
            pid: std::process::id(),
        }
    }

    /// Writes the file at `path`: whole, or not at all.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        let mut file = fs::File::create(&temporary)?;
        file.write_all(&serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    }

    /// Reads the file at `path`; `None` while it does not exist yet.
    pub fn read(path: &Path) -> std::io::Result<Option<Self>> {
        match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_written_file_reads_back_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ready.json");
        assert_eq!(Ready::read(&path).unwrap(), None);
        let ready = Ready {
            listen: "127.0.0.1:7443".parse().unwrap(),
            admin: "127.0.0.1:7440".parse().unwrap(),
            metrics: None,
            fingerprint: "sha256:00".into(),
            pid: 42,
        };
        ready.write(&path).unwrap();
        assert_eq!(Ready::read(&path).unwrap(), Some(ready));
        assert!(!dir.path().join("ready.json.tmp").exists());
    }
}
