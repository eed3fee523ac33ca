//! cairn's relay storage: the [`Store`] trait the relay programs against,
//! and [`RedbStore`], its embedded implementation on one redb file.
//!
//! The store keeps one append-only log per stream (an author and a scope),
//! numbers its entries 1, 2, 3... at commit, and keeps the indexes the relay
//! reads through: envelopes by id (idempotent appends), device sequence
//! numbers (gaps and equivocation), the device registry, friend grants,
//! direct streams by recipient and acknowledged cursors. Every write goes
//! through one writer thread that commits many callers' requests in one
//! durable transaction (group commit) and answers them only after it.
//!
//! It never interprets payloads. `spec/storage.md` gives the file layout
//! byte by byte.
#![forbid(unsafe_code)]

mod api;
mod apply;
pub mod backend;
mod error;
mod keys;
mod log;
mod maintenance;
mod migrate;
mod reader;
mod redb_store;
mod schema;
mod slot;
mod writer;

pub use api::{
    CommitBatch, CommitCounters, Committed, Cutoffs, DeviceRecord, ENTRY_OVERHEAD, Effect,
    EncodedEntry, EncodedRead, ExpiredHead, Expiry, Gone, Invite, InviteId, ItemOutcome,
    MAX_DEVICES_PER_USER, MAX_FRIENDS_PER_USER, Quota, Redemption, Refusal, Removal, Restore,
    StatementOutcome, StatementRefusal, Stats, Store, StoredEnvelope, StoredStatement, StreamHead,
    StreamRead, Tombstone, Usage, VerifyReport,
};
pub use error::{
    AppendError, BackendError, BackupError, OpenError, ReadError, StoreError, WriteError,
};
pub use log::{LogAnswer, LogWrite, OutOfOrder};
pub use maintenance::{attach_files, take_files};
pub use redb_store::{Config, DEFAULT_CACHE_BYTES, RedbStore};
pub use schema::{SCHEMA_VERSION, adopt_log, start_new_log};
