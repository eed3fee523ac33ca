//! `admin.json` in the data directory: where the running relay's admin
//! API listens and the token its operator requests must carry. The relay
//! writes it on every start (readable by its owner only); the token is
//! made once and kept, so scripts that read it keep working across
//! restarts. The `cairn-relay` subcommands read it to reach the relay.

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name inside the data directory.
pub const ADMIN_FILE: &str = "admin.json";
/// Random bytes in a token (hex-encoded in the file and the header).
const TOKEN_BYTES: usize = 32;

/// What the running relay tells its operator's tools.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    /// The address the admin API is bound to.
    pub listen: SocketAddr,
    /// The bearer token every `/admin/` request must carry.
    pub token: String,
}

/// Reading or writing `admin.json` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminFileError {
    /// The file could not be read or written.
    #[error("{path}")]
    Io {
        /// Which file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not what the relay writes.
    #[error("{path}: {reason}")]
    Invalid {
        /// Which file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The operating system gave no random bytes.
    #[error("no randomness for the admin token: {0}")]
    Random(String),
}

impl AdminFile {
    /// The file of `data_dir`, if the relay has written one.
    pub fn read(data_dir: &Path) -> Result<Option<Self>, AdminFileError> {
        let path = data_dir.join(ADMIN_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(AdminFileError::Io { path, source }),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| AdminFileError::Invalid {
                path,
                reason: e.to_string(),
            })
    }

    /// Records that the admin API listens on `listen`, keeping the token
    /// of an earlier start (or making one), and returns what was written.
    pub fn publish(data_dir: &Path, listen: SocketAddr) -> Result<Self, AdminFileError> {
        let token = match Self::read(data_dir) {
            Ok(Some(existing)) if is_token(&existing.token) => existing.token,
            _ => new_token()?,
        };
        let file = Self { listen, token };
        file.write(data_dir)?;
        Ok(file)
    }

    fn write(&self, data_dir: &Path) -> Result<(), AdminFileError> {
        let path = data_dir.join(ADMIN_FILE);
        let io = |source| AdminFileError::Io {
            path: path.clone(),
            source,
        };
        let tmp = path.with_extension("json.tmp");
        let _ = fs::remove_file(&tmp);
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(io)?;
        let text = serde_json::to_string_pretty(self).map_err(|e| AdminFileError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        fs::rename(&tmp, &path).map_err(io)
    }
}

fn new_token() -> Result<String, AdminFileError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| AdminFileError::Random(e.to_string()))?;
    Ok(hex::encode(bytes))
}

/// Whether `token` has the shape [`new_token`] gives.
fn is_token(token: &str) -> bool {
    token.len() == TOKEN_BYTES * 2 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_token_survives_a_restart_and_the_file_is_private() {
        let dir = tempfile::TempDir::new().unwrap();
        assert_eq!(AdminFile::read(dir.path()).unwrap(), None);
        let first = AdminFile::publish(dir.path(), "127.0.0.1:1".parse().unwrap()).unwrap();
        assert!(is_token(&first.token));
        let second = AdminFile::publish(dir.path(), "127.0.0.1:2".parse().unwrap()).unwrap();
        assert_eq!(second.token, first.token);
        assert_eq!(AdminFile::read(dir.path()).unwrap(), Some(second));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = fs::metadata(dir.path().join(ADMIN_FILE)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        }
    }
}
