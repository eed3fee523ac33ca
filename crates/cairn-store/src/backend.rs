//! The file under the store: redb's [`FileBackend`] with a size limit,
//! and faults injected on a schedule for tests.
//!
//! The size limit makes a database that would grow past it fail the way a
//! full disk does (`ErrorKind::StorageFull`), so an operator can keep the
//! relay from filling a disk it shares, and so that the full-disk path is
//! the same code whichever way it is reached. [`Faults`] fails reads,
//! writes or syncs (an I/O error, a full disk, or a write torn in half),
//! so that tests can check what a failed commit leaves behind.

use std::fmt;
use std::io;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

/// The most bytes the database file may hold; 0 for no limit. Shared with
/// whoever may change it while the store runs (a configuration reload).
#[derive(Debug, Default)]
pub struct SizeLimit(AtomicU64);

impl SizeLimit {
    /// A limit of `bytes` (`None`: no limit).
    pub fn new(bytes: Option<u64>) -> Self {
        Self(AtomicU64::new(bytes.unwrap_or(0)))
    }

    /// Sets the limit (`None`: no limit).
    pub fn set(&self, bytes: Option<u64>) {
        self.0.store(bytes.unwrap_or(0), Ordering::Relaxed);
    }

    /// The limit, if any.
    pub fn get(&self) -> Option<u64> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            bytes => Some(bytes),
        }
    }

    fn allows(&self, end: u64) -> bool {
        self.get().is_none_or(|limit| end <= limit)
    }
}

/// Which operations fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Reading pages.
    Read,
    /// Writing pages or growing the file.
    Write,
    /// Making what was written durable.
    Sync,
}

/// How an operation fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// An I/O error (`EIO`).
    Io,
    /// No space left on the device (`ENOSPC`). As on a real full disk,
    /// only writes that grow the file fail; writes within it succeed.
    Full,
    /// A write of which only the first half reaches the file, then an I/O
    /// error (a torn write); other operations fail as [`Failure::Io`].
    Short,
}

/// When an operation fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Never.
    Never,
    /// Every time.
    Always,
    /// Once, at the `n`th operation of its kind from now (1 is the next).
    Once(u64),
}

/// A schedule of faults, shared between a test and the store's file.
#[derive(Debug, Default)]
pub struct Faults {
    plan: Mutex<Plan>,
    injected: AtomicU64,
}

/// Each operation's rule and failure.
#[derive(Debug, Clone, Copy)]
struct Plan {
    read: (Rule, Failure),
    write: (Rule, Failure),
    sync: (Rule, Failure),
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            read: (Rule::Never, Failure::Io),
            write: (Rule::Never, Failure::Io),
            sync: (Rule::Never, Failure::Io),
        }
    }
}

impl Plan {
    fn of(&mut self, operation: Operation) -> &mut (Rule, Failure) {
        match operation {
            Operation::Read => &mut self.read,
            Operation::Write => &mut self.write,
            Operation::Sync => &mut self.sync,
        }
    }
}

impl Faults {
    /// No faults yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Makes `operation` fail as `failure` by `rule`.
    pub fn set(&self, operation: Operation, rule: Rule, failure: Failure) {
        if let Ok(mut plan) = self.plan.lock() {
            *plan.of(operation) = (rule, failure);
        }
    }

    /// Stops every fault.
    pub fn heal(&self) {
        if let Ok(mut plan) = self.plan.lock() {
            *plan = Plan::default();
        }
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    /// Whether this `operation` fails, and how; `grows` says whether it
    /// would grow the file (a full disk refuses only those).
    fn strike(&self, operation: Operation, grows: bool) -> Option<Failure> {
        let mut plan = self.plan.lock().ok()?;
        let (rule, failure) = plan.of(operation);
        if *failure == Failure::Full && !grows {
            return None;
        }
        let fails = match rule {
            Rule::Never => false,
            Rule::Always => true,
            Rule::Once(1) => {
                *rule = Rule::Never;
                true
            }
            Rule::Once(n) => {
                *n = n.saturating_sub(1);
                false
            }
        };
        fails.then(|| {
            self.injected.fetch_add(1, Ordering::Relaxed);
            *failure
        })
    }
}

fn error(failure: Failure) -> io::Error {
    match failure {
        Failure::Full => io::Error::new(io::ErrorKind::StorageFull, "no space left on device"),
        Failure::Io | Failure::Short => io::Error::other("input/output error (injected)"),
    }
}

fn too_big(limit: Option<u64>) -> io::Error {
    io::Error::new(
        io::ErrorKind::StorageFull,
        format!(
            "the database would grow past its limit of {} bytes",
            limit.unwrap_or(0)
        ),
    )
}

/// redb's file backend, bounded in size and open to injected faults.
pub struct GuardedFile {
    file: FileBackend,
    limit: Arc<SizeLimit>,
    faults: Option<Arc<Faults>>,
}

impl fmt::Debug for GuardedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedFile")
            .field("limit", &self.limit.get())
            .field("faults", &self.faults.is_some())
            .finish_non_exhaustive()
    }
}

impl GuardedFile {
    /// Wraps `file`.
    pub fn new(
        file: std::fs::File,
        limit: Arc<SizeLimit>,
        faults: Option<Arc<Faults>>,
    ) -> Result<Self, redb::DatabaseError> {
        Ok(Self {
            file: FileBackend::new(file)?,
            limit,
            faults,
        })
    }

    fn fault(&self, operation: Operation, grows: bool) -> Option<Failure> {
        self.faults.as_ref()?.strike(operation, grows)
    }
}

impl StorageBackend for GuardedFile {
    fn len(&self) -> Result<u64, io::Error> {
        self.file.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        if let Some(failure) = self.fault(Operation::Read, false) {
            return Err(error(failure));
        }
        self.file.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let grows = len > self.file.len()?;
        if grows && !self.limit.allows(len) {
            return Err(too_big(self.limit.get()));
        }
        if let Some(failure) = self.fault(Operation::Write, grows) {
            return Err(error(failure));
        }
        self.file.set_len(len)
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        if let Some(failure) = self.fault(Operation::Sync, true) {
            return Err(error(failure));
        }
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let end = offset.saturating_add(u64::try_from(data.len()).unwrap_or(u64::MAX));
        let grows = end > self.file.len()?;
        if grows && !self.limit.allows(end) {
            return Err(too_big(self.limit.get()));
        }
        match self.fault(Operation::Write, grows) {
            None => self.file.write(offset, data),
            Some(Failure::Short) => {
                let half = data.get(..data.len() / 2).unwrap_or_default();
                self.file.write(offset, half)?;
                Err(error(Failure::Short))
            }
            Some(failure) => Err(error(failure)),
        }
    }

    fn close(&self) -> Result<(), io::Error> {
        self.file.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.file.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.query_lock_range(start, end)
    }
}
