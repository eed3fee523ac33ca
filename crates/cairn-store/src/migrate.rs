//! Migrations between schema versions (`spec/storage.md` section 7). Each
//! runs once, at open, before the writer starts, in one write transaction
//! that also sets the new version: a crash leaves the old schema or the
//! new one, never a mix. The file as it was is copied aside first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cairn_wire::{Envelope, UserId};
use redb::{Database, ReadableTable, WriteTransaction};

use crate::api::Usage;
use crate::error::{BackendError, OpenError};
use crate::{keys, schema};

/// Version 1 to 2: adds `cairn_user_usage`, counted from the log, and an
/// empty `cairn_invites`.
pub fn from_v1(db: &Database, path: &Path) -> Result<(), OpenError> {
    let backend = |e: redb::Error| OpenError::Backend {
        path: path.to_path_buf(),
        source: BackendError::new(e),
    };
    keep_copy(path, 1)?;
    let txn = schema::begin_write(db, true).map_err(backend)?;
    add_usage(&txn).map_err(backend)?;
    txn.open_table(schema::INVITES)
        .map_err(|e| backend(e.into()))?;
    set_version(&txn, 2u32).map_err(backend)?;
    txn.commit().map_err(|e| backend(e.into()))?;
    Ok(())
}

/// Version 2 to 3: adds the log id (`cairn_meta` `log_id`), a new random
/// one, so that clients that read this relay before see a new log once and
/// re-read from the positions the relay holds of theirs; and
/// `cairn_chain_heads`, from the log. An envelope of format 1 (before
/// `prev`), which this build cannot read, stops the migration.
pub fn from_v2(db: &Database, path: &Path) -> Result<(), OpenError> {
    let backend = |e: redb::Error| OpenError::Backend {
        path: path.to_path_buf(),
        source: BackendError::new(e),
    };
    keep_copy(path, 2)?;
    let log = schema::new_log_id().map_err(|e| backend(e.into()))?;
    let txn = schema::begin_write(db, true).map_err(backend)?;
    schema::write_log_id(&txn, log).map_err(backend)?;
    add_chain_heads(&txn).map_err(|e| match e {
        Migration::Backend(e) => backend(e),
        Migration::OldEnvelope => OpenError::OldEnvelopes {
            path: path.to_path_buf(),
        },
    })?;
    set_version(&txn, 3u32).map_err(backend)?;
    txn.commit().map_err(|e| backend(e.into()))?;
    Ok(())
}

/// Version 3 to 4: adds empty `cairn_floors`, `cairn_removed_users` and
/// `cairn_expired_heads` (nothing was removed or expired before them).
pub fn from_v3(db: &Database, path: &Path) -> Result<(), OpenError> {
    let backend = |e: redb::Error| OpenError::Backend {
        path: path.to_path_buf(),
        source: BackendError::new(e),
    };
    keep_copy(path, 3)?;
    let txn = schema::begin_write(db, true).map_err(backend)?;
    for table in [schema::FLOORS, schema::REMOVED_USERS, schema::EXPIRED_HEADS] {
        txn.open_table(table).map_err(|e| backend(e.into()))?;
    }
    set_version(&txn, 4u32).map_err(backend)?;
    txn.commit().map_err(|e| backend(e.into()))?;
    Ok(())
}

/// Records the schema version a migration brings the file to, in its
/// transaction.
fn set_version(txn: &WriteTransaction, version: u32) -> Result<(), redb::Error> {
    let mut meta = txn.open_table(schema::META)?;
    meta.insert(
        schema::META_SCHEMA_VERSION,
        version.to_be_bytes().as_slice(),
    )?;
    Ok(())
}

/// Where the file as it was before migrating from `version` is kept.
pub fn copy_path(path: &Path, version: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".schema-{version}.bak"));
    PathBuf::from(name)
}

/// Copies the file aside, unless an earlier, interrupted migration did.
/// Nothing writes to it meanwhile: the writer has not started.
fn keep_copy(path: &Path, version: u32) -> Result<(), OpenError> {
    let copy = copy_path(path, version);
    if copy.exists() {
        return Ok(());
    }
    let io = |e: std::io::Error| OpenError::Backend {
        path: path.to_path_buf(),
        source: BackendError::new(e),
    };
    let partial = copy.with_extension("partial");
    std::fs::copy(path, &partial).map_err(io)?;
    std::fs::File::open(&partial)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    std::fs::rename(&partial, &copy).map_err(io)
}

/// Why a migration step failed.
enum Migration {
    Backend(redb::Error),
    /// An envelope this build cannot decode.
    OldEnvelope,
}

impl From<redb::Error> for Migration {
    fn from(e: redb::Error) -> Self {
        Self::Backend(e)
    }
}

impl From<redb::StorageError> for Migration {
    fn from(e: redb::StorageError) -> Self {
        Self::Backend(e.into())
    }
}

impl From<redb::TableError> for Migration {
    fn from(e: redb::TableError) -> Self {
        Self::Backend(e.into())
    }
}

/// Each device's last envelope in each stream, read from the log in
/// position order.
fn add_chain_heads(txn: &WriteTransaction) -> Result<(), Migration> {
    let mut heads = BTreeMap::new();
    {
        let envelopes = txn.open_table(schema::ENVELOPES)?;
        for row in envelopes.iter()? {
            let (_, value) = row?;
            let envelope = Envelope::decode(value.value()).map_err(|_| Migration::OldEnvelope)?;
            let header = envelope.header();
            let key = keys::chain_key(&header.author, &header.device, &header.stream());
            heads.insert(key, Envelope::id_of_encoding(value.value()));
        }
    }
    let mut table = txn.open_table(schema::CHAIN_HEADS)?;
    for (key, id) in heads {
        table.insert(key.as_slice(), id.as_bytes().as_slice())?;
    }
    Ok(())
}

fn add_usage(txn: &WriteTransaction) -> Result<(), redb::Error> {
    let mut usage: BTreeMap<UserId, Usage> = BTreeMap::new();
    {
        let envelopes = txn.open_table(schema::ENVELOPES)?;
        for row in envelopes.iter()? {
            let (key, value) = row?;
            let owner =
                keys::key_owner(key.value()).map_err(|e| redb::Error::Corrupted(e.to_string()))?;
            let entry = usage.entry(owner).or_default();
            *entry = entry.plus(value.value().len() as u64);
        }
    }
    let mut table = txn.open_table(schema::USER_USAGE)?;
    for (user, used) in usage {
        table.insert(
            user.as_bytes().as_slice(),
            keys::usage_value(used).as_slice(),
        )?;
    }
    Ok(())
}
