//! Errors: one enum per operation, each converting into [`StoreError`].
//!
//! None of them names a redb type, so that another backend can return them.
//! A refusal of an envelope or a statement is not an error: it is an
//! outcome ([`crate::ItemOutcome`], [`crate::StatementOutcome`]). Errors are
//! failures of the store itself, after which nothing was changed.

use std::error::Error as StdError;
use std::path::PathBuf;

/// A failure of the storage engine underneath (I/O, a full disk, a lock).
/// It carries the engine's own error as its source.
#[derive(Debug, thiserror::Error)]
#[error("storage engine failed: {source}")]
pub struct BackendError {
    #[source]
    source: Box<dyn StdError + Send + Sync>,
}

impl BackendError {
    /// Wraps an engine error.
    pub fn new(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self {
            source: source.into(),
        }
    }
}

/// Opening a store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The file was written by a cairn store with a schema this version does
    /// not know (a newer one, or a future migration that did not finish).
    #[error(
        "{path}: unsupported cairn store schema version {found} (this build reads version {supported}); \
         upgrade cairn-relay or restore a backup"
    )]
    UnsupportedSchema {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// The store holds envelopes of format 1, from before envelopes named
    /// their predecessor; this build cannot read them.
    #[error(
        "{path}: holds envelopes of format 1, from a pre-release cairn, which this build \
         cannot read; keep this file with the cairn-relay that wrote it, or start a new data \
         directory"
    )]
    OldEnvelopes {
        /// The file.
        path: PathBuf,
    },
    /// The file is a database, but not a cairn store (it has tables and no
    /// cairn schema record).
    #[error("{path}: not a cairn store (no schema record)")]
    NotAStore {
        /// The file.
        path: PathBuf,
    },
    /// The file is damaged or is not a database at all.
    #[error("{path}: corrupt or not a cairn store: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the engine reported.
        #[source]
        source: BackendError,
    },
    /// The copy has applied records of another replicated log than the
    /// one it is asked to follow (`spec/cluster.md`).
    #[error(
        "{path}: holds records of log {ours}, not of the cluster's log {log}; seed this node \
         from a backup of another node of the cluster, or start it with an empty data directory"
    )]
    AnotherLog {
        /// The file.
        path: PathBuf,
        /// The log this copy follows.
        ours: cairn_wire::LogId,
        /// The log it was asked to follow.
        log: cairn_wire::LogId,
    },
    /// The copy holds data that did not come from the cluster's log (an
    /// import, or a single relay's backup).
    #[error(
        "{path}: holds data that is not from the cluster's log; a node starts empty or from a \
         backup of another node of the same cluster (clients moved from a single relay to a \
         cluster send again what they hold when they see the cluster's log id)"
    )]
    NotFromTheLog {
        /// The file.
        path: PathBuf,
    },
    /// Another process (or another handle) has the store open.
    #[error("{path}: the store is already open")]
    AlreadyOpen {
        /// The file.
        path: PathBuf,
    },
    /// The engine failed otherwise (I/O, permissions).
    #[error("{path}: {source}")]
    Backend {
        /// The file.
        path: PathBuf,
        /// What the engine reported.
        #[source]
        source: BackendError,
    },
    /// The writer thread could not be started.
    #[error("could not start the writer thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Appending a batch failed as a whole; nothing of it was stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The store is shutting down or its writer stopped.
    #[error("the store is closed")]
    Closed,
    /// The disk, or the database's size limit, is full. Reads go on, and
    /// writes succeed again once there is room.
    #[error("the store is out of space")]
    StorageFull,
    /// The commit failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Applying a signed statement or an acknowledgement failed; nothing was
/// changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The store is shutting down or its writer stopped.
    #[error("the store is closed")]
    Closed,
    /// The disk, or the database's size limit, is full.
    #[error("the store is out of space")]
    StorageFull,
    /// The commit failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// A read failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Stored bytes do not decode: the file is damaged.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The engine failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The blocking read task was cancelled or panicked.
    #[error("read task failed: {0}")]
    Task(String),
}

/// Writing a backup failed; the target path was not created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The target already exists; a backup never overwrites.
    #[error("{0}: already exists")]
    Exists(PathBuf),
    /// Reading the store failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Writing the copy failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The target.
        path: PathBuf,
        /// What failed.
        #[source]
        source: BackendError,
    },
}

/// Every error of the crate, for callers that handle them alike.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// See [`OpenError`].
    #[error(transparent)]
    Open(#[from] OpenError),
    /// See [`AppendError`].
    #[error(transparent)]
    Append(#[from] AppendError),
    /// See [`WriteError`].
    #[error(transparent)]
    Write(#[from] WriteError),
    /// See [`ReadError`].
    #[error(transparent)]
    Read(#[from] ReadError),
    /// See [`BackupError`].
    #[error(transparent)]
    Backup(#[from] BackupError),
}

impl From<crate::keys::Malformed> for ReadError {
    fn from(err: crate::keys::Malformed) -> Self {
        Self::Corrupt(err.to_string())
    }
}

impl From<cairn_wire::DecodeError> for ReadError {
    fn from(err: cairn_wire::DecodeError) -> Self {
        Self::Corrupt(format!("stored record does not decode: {err}"))
    }
}
