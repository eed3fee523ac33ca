//! What a backup carries beside the database, so that a relay restored
//! from it comes back as itself (`spec/relay.md` §8): the certificate and
//! key it serves, which its clients pinned, and the operator's ban list.
//! Invites are in the database already.

use std::path::Path;

use crate::bans::BANS_FILE;
use crate::config::RelayConfig;
use crate::tls::{self, SELF_SIGNED_CERT, SELF_SIGNED_KEY};

/// The files the relay keeps beside its database, read from where it
/// keeps them, by the name a backup carries them under. Missing ones (no
/// ban list yet) are left out.
pub fn gather(config: &RelayConfig) -> std::io::Result<Vec<(&'static str, Vec<u8>)>> {
    let (cert, key) = tls::identity_paths(config);
    let places = [
        (SELF_SIGNED_CERT, cert),
        (SELF_SIGNED_KEY, key),
        (BANS_FILE, config.data_dir.join(BANS_FILE)),
    ];
    let mut files = Vec::new();
    for (name, path) in places {
        match std::fs::read(&path) {
            Ok(bytes) => files.push((name, bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(files)
}

/// Puts what a restored backup carried back into the data directory,
/// never over a file that is there; one line per file saying what was
/// done. With `[tls]` files configured, the certificate and key are the
/// operator's to place.
pub fn put_back(config: &RelayConfig, files: &[(String, Vec<u8>)]) -> std::io::Result<Vec<String>> {
    let mut said = Vec::new();
    for (name, bytes) in files {
        let identity = name == SELF_SIGNED_CERT || name == SELF_SIGNED_KEY;
        if identity && config.tls.is_some() {
            said.push(format!(
                "{name}: not written (the config names its own [tls] files)"
            ));
            continue;
        }
        if ![SELF_SIGNED_CERT, SELF_SIGNED_KEY, BANS_FILE].contains(&name.as_str()) {
            said.push(format!("{name}: unknown to this version, not written"));
            continue;
        }
        let path = config.data_dir.join(name);
        said.push(put_one(&path, name, bytes)?);
    }
    Ok(said)
}

fn put_one(path: &Path, name: &str, bytes: &[u8]) -> std::io::Result<String> {
    match std::fs::read(path) {
        Ok(held) if held == bytes => return Ok(format!("{name}: the same as the backup's")),
        Ok(_) => {
            return Ok(format!(
                "{name}: kept the data directory's own, which differs from the backup's"
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    tls::write_private(path, bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(format!("{name}: restored from the backup"))
}
