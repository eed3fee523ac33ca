//! The tables of the schema and opening a file: creating the schema
//! in a new file, refusing a file whose schema this build does not know.
//! `spec/storage.md` is the normative description.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{
    Database, DatabaseError, ReadableDatabase, ReadableTable, TableDefinition, TableHandle,
    WriteTransaction,
};

use cairn_wire::LogId;

use crate::backend::{Faults, GuardedFile, SizeLimit};
use crate::error::{BackendError, OpenError};
use crate::{keys, migrate};

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: u32 = 4;

/// Every table is bytes to bytes; `keys` gives the layouts.
pub type Def = TableDefinition<'static, &'static [u8], &'static [u8]>;

/// `name -> value`: the schema version and counters.
pub const META: Def = TableDefinition::new("cairn_meta");
/// `stream_key || position -> envelope bytes`: the log.
pub const ENVELOPES: Def = TableDefinition::new("cairn_envelopes");
/// `envelope id -> stream_key || position`: idempotency.
pub const ENVELOPE_IDS: Def = TableDefinition::new("cairn_envelope_ids");
/// `stream_key -> head (u64 BE)`: every stream and its last position.
pub const STREAMS: Def = TableDefinition::new("cairn_streams");
/// `recipient || owner -> ()`: direct streams by recipient.
pub const DIRECT_STREAMS: Def = TableDefinition::new("cairn_direct_streams");
/// `user || device || seq -> envelope id`: device sequences.
pub const DEVICE_SEQS: Def = TableDefinition::new("cairn_device_seqs");
/// `user || device -> certificate bytes`.
pub const DEVICE_CERTS: Def = TableDefinition::new("cairn_device_certs");
/// `user || device -> revocation bytes`.
pub const DEVICE_REVOCATIONS: Def = TableDefinition::new("cairn_device_revocations");
/// `device || user -> ()`: which users certified a device.
pub const DEVICE_USERS: Def = TableDefinition::new("cairn_device_users");
/// `user -> ()`: users with at least one certificate.
pub const USERS: Def = TableDefinition::new("cairn_users");
/// `granter || grantee -> tag || statement bytes`: the latest friend
/// statement of each pair.
pub const FRIENDS: Def = TableDefinition::new("cairn_friends");
/// `grantee || granter -> ()`: the pairs whose latest statement is a grant.
pub const FRIENDS_BY_GRANTEE: Def = TableDefinition::new("cairn_friends_by_grantee");
/// `device || stream_key -> position (u64 BE)`: acknowledged cursors.
pub const ACKS: Def = TableDefinition::new("cairn_acks");
/// `user -> bytes (u64 BE) || envelopes (u64 BE)`: what each user's
/// devices stored, for quotas (schema version 2).
pub const USER_USAGE: Def = TableDefinition::new("cairn_user_usage");
/// `invite id (32) -> uses_left (u32 BE) || expires_ms (u64 BE) ||
/// created_ms (u64 BE)`: the operator's invites (schema version 2).
pub const INVITES: Def = TableDefinition::new("cairn_invites");

/// `user || device || stream_key -> envelope id`: each device's last
/// envelope in each stream, which its next one there must name as `prev`
/// (schema version 3).
pub const CHAIN_HEADS: Def = TableDefinition::new("cairn_chain_heads");

/// `stream_key -> floor (u64 BE)`: positions `1..=floor` of the stream
/// were removed (schema version 4); it holds `floor+1..=head`.
pub const FLOORS: Def = TableDefinition::new("cairn_floors");

/// `user -> removed_ms (u64 BE)`: users the operator removed, whose
/// devices the relay no longer admits (schema version 4).
pub const REMOVED_USERS: Def = TableDefinition::new("cairn_removed_users");

/// `stream_key || device -> seq (u64 BE) || id (32)`: each device's last
/// envelope that expired from the stream (schema version 4), which readers
/// are told so that what follows it still checks (`spec/storage.md` 5.5).
pub const EXPIRED_HEADS: Def = TableDefinition::new("cairn_expired_heads");

/// Devices the operator banned on every node of a cluster: device ->
/// when (Unix ms, u64 BE). Added to version 4 files when they are opened.
pub const BANS: Def = TableDefinition::new("cairn_bans");

/// Every table of the schema, in the order `spec/storage.md` lists them.
pub const TABLES: [Def; 20] = [
    META,
    ENVELOPES,
    ENVELOPE_IDS,
    STREAMS,
    DIRECT_STREAMS,
    DEVICE_SEQS,
    DEVICE_CERTS,
    DEVICE_REVOCATIONS,
    DEVICE_USERS,
    USERS,
    FRIENDS,
    FRIENDS_BY_GRANTEE,
    ACKS,
    USER_USAGE,
    INVITES,
    CHAIN_HEADS,
    FLOORS,
    REMOVED_USERS,
    EXPIRED_HEADS,
    BANS,
];

/// Meta key of the schema version (u32 BE).
pub const META_SCHEMA_VERSION: &[u8] = b"schema_version";
/// Meta key of the sum of stored envelope sizes (u64 BE).
pub const META_ENVELOPE_BYTES: &[u8] = b"envelope_bytes";
/// Meta key of the log id (16 random bytes, schema version 3): chosen at
/// creation and again by [`start_new_log`].
pub const META_LOG_ID: &[u8] = b"log_id";
/// Meta key of the last sequence of a replicated log applied to this copy
/// (u64 BE; absent: none, and for a single-node store always absent).
pub const META_LOG_APPLIED: &[u8] = b"log_applied";

/// An open database and whether opening it had to repair it.
#[derive(Debug)]
pub struct Opened {
    /// The database, with its schema checked.
    pub db: Database,
    /// Whether the engine repaired the file on open (it should not, even
    /// after a crash, since every commit records the allocator state).
    pub repaired: bool,
    /// The log id.
    pub log: LogId,
}

/// How the database file is opened: its page cache, its size limit, and
/// faults to inject (tests).
#[derive(Debug, Clone, Default)]
pub struct FileOptions {
    /// The most memory redb's page cache may hold.
    pub cache_bytes: usize,
    /// The most bytes the file may grow to.
    pub limit: Arc<SizeLimit>,
    /// Faults to inject, if any.
    pub faults: Option<Arc<Faults>>,
}

/// Opens or creates the store at `path` with `options`, and checks its
/// schema.
///
/// A new store is made under a temporary name and renamed into place once
/// its schema is durable, so a crash while creating never leaves a partial
/// file at `path`.
pub fn open(path: &Path, options: &FileOptions) -> Result<Opened, OpenError> {
    if !path.exists() {
        create_fresh(path)?;
    }
    let repaired = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&repaired);
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| OpenError::Backend {
            path: path.to_path_buf(),
            source: BackendError::new(e),
        })?;
    let backend = GuardedFile::new(file, Arc::clone(&options.limit), options.faults.clone())
        .map_err(|e| open_error(path, e))?;
    let db = Database::builder()
        .set_cache_size(options.cache_bytes)
        .set_repair_callback(move |_| flag.store(true, Ordering::Relaxed))
        .create_with_backend(backend)
        .map_err(|e| open_error(path, e))?;
    init_or_check(&db, path)?;
    let log = read_log_id(&db, path)?;
    Ok(Opened {
        db,
        repaired: repaired.load(Ordering::Relaxed),
        log,
    })
}

/// Creates every table and the schema record in a new file, or checks the
/// schema record of an existing one (migrating an older one), then adds
/// any table the file lacks: tables added within a schema version (such
/// as `cairn_bans`) start empty.
pub fn init_or_check(db: &Database, path: &Path) -> Result<(), OpenError> {
    check_or_create(db, path)?;
    let backend = |e: redb::Error| OpenError::Backend {
        path: path.to_path_buf(),
        source: BackendError::new(e),
    };
    let present: Vec<String> = db
        .begin_read()
        .map_err(|e| backend(e.into()))?
        .list_tables()
        .map_err(|e| backend(e.into()))?
        .map(|t| t.name().to_owned())
        .collect();
    if TABLES.iter().all(|t| present.iter().any(|p| p == t.name())) {
        return Ok(());
    }
    // Written like every other commit, so that a crash right after it
    // needs no repair on the next open.
    let txn = begin_write(db, true).map_err(backend)?;
    for table in TABLES {
        txn.open_table(table).map_err(|e| backend(e.into()))?;
    }
    txn.commit().map_err(|e| backend(e.into()))
}

fn check_or_create(db: &Database, path: &Path) -> Result<(), OpenError> {
    let backend = |e: redb::Error| OpenError::Backend {
        path: path.to_path_buf(),
        source: BackendError::new(e),
    };
    let txn = db.begin_write().map_err(|e| backend(e.into()))?;
    match stored_version(&txn, path)? {
        Some(SCHEMA_VERSION) => Ok(()),
        Some(found @ 1..=3) => {
            drop(txn);
            if found == 1 {
                migrate::from_v1(db, path)?;
            }
            if found <= 2 {
                migrate::from_v2(db, path)?;
            }
            migrate::from_v3(db, path)
        }
        Some(found) => Err(OpenError::UnsupportedSchema {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        }),
        None => {
            let log = new_log_id().map_err(|e| backend(e.into()))?;
            create_tables(&txn, log).map_err(backend)?;
            txn.commit().map_err(|e| backend(e.into()))
        }
    }
}

/// Starts a write transaction the way every write of the store does:
/// durable, and recording the allocator state so that a crash never needs a
/// repair on the next open.
pub fn begin_write(db: &Database, durable: bool) -> Result<WriteTransaction, redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_quick_repair(true);
    if !durable {
        txn.set_durability(redb::Durability::None)?;
    }
    Ok(txn)
}

fn create_fresh(path: &Path) -> Result<(), OpenError> {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".init-{}", std::process::id()));
    let temp = PathBuf::from(name);
    let io = |e: std::io::Error| OpenError::Backend {
        path: path.to_path_buf(),
        source: BackendError::new(e),
    };
    match fs::remove_file(&temp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        _ => {}
    }
    let db = Database::create(&temp).map_err(|e| open_error(&temp, e))?;
    owner_only(&temp).map_err(io)?;
    init_or_check(&db, &temp)?;
    drop(db);
    fs::File::open(&temp)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    fs::rename(&temp, path).map_err(io)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

/// Makes a new database file readable by its owner only: it holds every
/// user's envelopes and registry.
fn owner_only(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

fn stored_version(txn: &WriteTransaction, path: &Path) -> Result<Option<u32>, OpenError> {
    let corrupt = |e: redb::Error| OpenError::Corrupt {
        path: path.to_path_buf(),
        source: BackendError::new(e),
    };
    let has_meta = txn
        .list_tables()
        .map_err(|e| corrupt(e.into()))?
        .any(|t| t.name() == META.name());
    if !has_meta {
        let empty = txn
            .list_tables()
            .map_err(|e| corrupt(e.into()))?
            .next()
            .is_none();
        return if empty {
            Ok(None)
        } else {
            Err(OpenError::NotAStore {
                path: path.to_path_buf(),
            })
        };
    }
    let meta = txn.open_table(META).map_err(|e| corrupt(e.into()))?;
    let value = meta
        .get(META_SCHEMA_VERSION)
        .map_err(|e| corrupt(e.into()))?
        .ok_or_else(|| OpenError::NotAStore {
            path: path.to_path_buf(),
        })?;
    keys::parse_u32(value.value(), "schema version")
        .map(Some)
        .map_err(|e| corrupt(redb::Error::Corrupted(e.to_string())))
}

fn create_tables(txn: &WriteTransaction, log: LogId) -> Result<(), redb::Error> {
    for table in TABLES {
        txn.open_table(table)?;
    }
    let mut meta = txn.open_table(META)?;
    meta.insert(META_SCHEMA_VERSION, SCHEMA_VERSION.to_be_bytes().as_slice())?;
    meta.insert(META_ENVELOPE_BYTES, 0u64.to_be_bytes().as_slice())?;
    meta.insert(META_LOG_ID, log.as_bytes().as_slice())?;
    Ok(())
}

/// A new random log id.
pub fn new_log_id() -> Result<LogId, std::io::Error> {
    let mut bytes = [0u8; LogId::LEN];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(LogId::from_bytes(bytes))
}

/// Writes `log` as the log id, in the caller's transaction.
pub fn write_log_id(txn: &WriteTransaction, log: LogId) -> Result<(), redb::Error> {
    let mut meta = txn.open_table(META)?;
    meta.insert(META_LOG_ID, log.as_bytes().as_slice())?;
    Ok(())
}

fn read_log_id(db: &Database, path: &Path) -> Result<LogId, OpenError> {
    let corrupt = |e: redb::Error| OpenError::Corrupt {
        path: path.to_path_buf(),
        source: BackendError::new(e),
    };
    let txn = db.begin_read().map_err(|e| corrupt(e.into()))?;
    let meta = txn.open_table(META).map_err(|e| corrupt(e.into()))?;
    let value = meta
        .get(META_LOG_ID)
        .map_err(|e| corrupt(e.into()))?
        .ok_or_else(|| corrupt(redb::Error::Corrupted("no log id".into())))?;
    <[u8; LogId::LEN]>::try_from(value.value())
        .map(LogId::from_bytes)
        .map_err(|_| corrupt(redb::Error::Corrupted("a log id is 16 bytes".into())))
}

/// Gives the store at `path` a new log id, so that its clients see that
/// its positions no longer continue the log they read: what `restore` does
/// to a backup it puts in place (`spec/storage.md` section 8). The store
/// must not be open elsewhere.
pub fn start_new_log(path: &Path) -> Result<LogId, OpenError> {
    let backend = |e: redb::Error| OpenError::Backend {
        path: path.to_path_buf(),
        source: BackendError::new(e),
    };
    let options = FileOptions {
        cache_bytes: 16 * 1024 * 1024,
        ..FileOptions::default()
    };
    let opened = open(path, &options)?;
    let log = new_log_id().map_err(|e| backend(e.into()))?;
    let txn = begin_write(&opened.db, true).map_err(backend)?;
    write_log_id(&txn, log).map_err(backend)?;
    txn.commit().map_err(|e| backend(e.into()))?;
    Ok(log)
}

/// Makes the store at `path` follow the replicated log `log`: a copy that
/// has applied nothing of any log takes its id; a copy that follows `log`
/// already is left as it is; a copy that has applied records of another
/// log is refused. The store must not be open elsewhere.
pub fn adopt_log(path: &Path, log: LogId) -> Result<(), OpenError> {
    let backend = |e: redb::Error| OpenError::Backend {
        path: path.to_path_buf(),
        source: BackendError::new(e),
    };
    let options = FileOptions {
        cache_bytes: 16 * 1024 * 1024,
        ..FileOptions::default()
    };
    let opened = open(path, &options)?;
    if opened.log == log {
        return Ok(());
    }
    let txn = begin_write(&opened.db, true).map_err(backend)?;
    let applied = {
        let meta = txn.open_table(META).map_err(|e| backend(e.into()))?;
        meta.get(META_LOG_APPLIED)
            .map_err(|e| backend(e.into()))?
            .is_some()
    };
    if applied {
        return Err(OpenError::AnotherLog {
            path: path.to_path_buf(),
            ours: opened.log,
            log,
        });
    }
    // A copy that applied nothing must hold nothing: data imported or
    // restored from a single relay is not in the cluster's log, and the
    // other nodes would never have it.
    if holds_anything(&txn).map_err(backend)? {
        return Err(OpenError::NotFromTheLog {
            path: path.to_path_buf(),
        });
    }
    write_log_id(&txn, log).map_err(backend)?;
    txn.commit().map_err(|e| backend(e.into()))
}

/// Whether the store holds any stream, device, grant or invite.
fn holds_anything(txn: &WriteTransaction) -> Result<bool, redb::Error> {
    use redb::ReadableTableMetadata;
    for def in [
        STREAMS,
        DEVICE_CERTS,
        DEVICE_REVOCATIONS,
        FRIENDS,
        INVITES,
        REMOVED_USERS,
    ] {
        if !txn.open_table(def)?.is_empty()? {
            return Ok(true);
        }
    }
    Ok(false)
}

fn open_error(path: &Path, err: DatabaseError) -> OpenError {
    let path = path.to_path_buf();
    match err {
        DatabaseError::DatabaseAlreadyOpen => OpenError::AlreadyOpen { path },
        DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() != std::io::ErrorKind::InvalidData =>
        {
            OpenError::Backend {
                path,
                source: BackendError::new(io),
            }
        }
        other => OpenError::Corrupt {
            path,
            source: BackendError::new(other),
        },
    }
}
