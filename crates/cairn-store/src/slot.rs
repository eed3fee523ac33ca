//! The open database, opened again after an I/O failure.
//!
//! After one failed read, write or sync, redb refuses every later
//! operation (`PreviousIo`) until the file is closed and opened again.
//! The store does that by itself: whoever meets an I/O failure asks the
//! slot to reopen the generation it used, the slot waits for the reads
//! still holding the old handle, drops it and opens the file again (the
//! last commit is intact: a failed commit never reaches the file's
//! header). So a full disk or a passing I/O error fails the commits it
//! hits and nothing else: reads go on, and writes succeed again once the
//! fault is gone, without a restart.

use std::error::Error as StdError;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use redb::Database;

use crate::error::{BackendError, OpenError};
use crate::schema::{self, FileOptions};

/// Longest a reopen waits for reads still using the old handle.
const DRAIN_WAIT: Duration = Duration::from_secs(10);

/// The database handle and its generation (how many times it was opened).
#[derive(Debug)]
pub struct DbSlot {
    path: PathBuf,
    options: FileOptions,
    current: RwLock<Option<Arc<Database>>>,
    generation: AtomicU64,
}

/// What an engine error means for the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The disk (or the database's size limit) is full.
    Full,
    /// Another I/O failure: the handle must be opened again.
    Io,
    /// Anything else (a bug, corruption): reported as it is.
    Other,
}

impl DbSlot {
    /// A slot holding `db`, just opened from `path` with `options`.
    pub fn new(path: PathBuf, options: FileOptions, db: Database) -> Self {
        Self {
            path,
            options,
            current: RwLock::new(Some(Arc::new(db))),
            generation: AtomicU64::new(0),
        }
    }

    /// The database and its generation; an error while the file cannot be
    /// opened again (tried at most once per call).
    pub fn get(&self) -> Result<(Arc<Database>, u64), BackendError> {
        let generation = self.generation.load(Ordering::Acquire);
        let held = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(db) = held {
            return Ok((db, generation));
        }
        self.reopen(generation).map_err(BackendError::new)?;
        let held = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        held.map(|db| (db, self.generation.load(Ordering::Acquire)))
            .ok_or_else(|| BackendError::new("the database could not be opened again"))
    }

    /// Opens the file again, unless someone already did since generation
    /// `seen`. Blocks: call it from the writer thread or the blocking pool.
    pub fn reopen(&self, seen: u64) -> Result<(), OpenError> {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if self.generation.load(Ordering::Acquire) != seen {
            return Ok(());
        }
        if let Some(old) = current.take()
            && let Err(old) = drain(old)
        {
            *current = Some(old);
            return Err(OpenError::Backend {
                path: self.path.clone(),
                source: BackendError::new("reads held the database too long to open it again"),
            });
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        let opened = schema::open(&self.path, &self.options)?;
        *current = Some(Arc::new(opened.db));
        Ok(())
    }
}

/// Drops `db` once no read holds it any more; gives it back if reads
/// still do after [`DRAIN_WAIT`].
fn drain(mut db: Arc<Database>) -> Result<(), Arc<Database>> {
    let deadline = Instant::now() + DRAIN_WAIT;
    loop {
        match Arc::try_unwrap(db) {
            Ok(db) => {
                drop(db);
                return Ok(());
            }
            Err(shared) if Instant::now() >= deadline => return Err(shared),
            Err(shared) => {
                db = shared;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// What `error` (or one of its sources) says about the disk.
pub fn classify(error: &(dyn StdError + 'static)) -> Failure {
    let mut next = Some(error);
    let mut found = Failure::Other;
    while let Some(error) = next {
        match kind_of(error) {
            Failure::Full => return Failure::Full,
            Failure::Io => found = Failure::Io,
            Failure::Other => {}
        }
        next = error.source();
    }
    found
}

fn kind_of(error: &(dyn StdError + 'static)) -> Failure {
    if let Some(io) = error.downcast_ref::<std::io::Error>() {
        return io_kind(io);
    }
    if let Some(error) = error.downcast_ref::<redb::Error>() {
        return match error {
            redb::Error::Io(io) => io_kind(io),
            redb::Error::PreviousIo | redb::Error::DatabaseClosed => Failure::Io,
            _ => Failure::Other,
        };
    }
    if let Some(error) = error.downcast_ref::<redb::StorageError>() {
        return match error {
            redb::StorageError::Io(io) => io_kind(io),
            redb::StorageError::PreviousIo | redb::StorageError::DatabaseClosed => Failure::Io,
            _ => Failure::Other,
        };
    }
    Failure::Other
}

fn io_kind(io: &std::io::Error) -> Failure {
    match io.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => Failure::Full,
        _ => Failure::Io,
    }
}
