//! Whether the database is out of space (a full disk, or `[storage]
//! max_database_bytes` reached). Appends and statements are then refused
//! with `storage_full` while reads and subscriptions go on; the state is
//! logged once when it starts and once when it ends, shown by
//! `cairn_storage_full` and `/healthz`, and ends by itself with the first
//! write that succeeds.

use std::sync::atomic::{AtomicBool, Ordering};

use cairn_wire::{ErrorCode, WireError};

use crate::metrics;

/// The database's space, as the last writes found it.
#[derive(Debug, Default)]
pub struct DiskState {
    full: AtomicBool,
}

impl DiskState {
    /// A write was refused for want of space.
    pub fn refused(&self) {
        if !self.full.swap(true, Ordering::AcqRel) {
            tracing::error!(
                "the database is out of space (the disk is full, or [storage] max_database_bytes \
                 is reached): appends and statements are refused with storage_full until there \
                 is room; reads and subscriptions go on"
            );
            metrics::gauge_set(metrics::STORAGE_FULL, 1.0);
        }
    }

    /// A write succeeded: there is room (again).
    pub fn wrote(&self) {
        if self.full.load(Ordering::Acquire) && self.full.swap(false, Ordering::AcqRel) {
            tracing::info!("the database has room again: appends and statements are stored");
            metrics::gauge_set(metrics::STORAGE_FULL, 0.0);
        }
    }

    /// Whether the last write found no space.
    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::Acquire)
    }
}

/// The refusal of a write the database has no room for.
pub fn storage_full() -> WireError {
    WireError::new(
        ErrorCode::STORAGE_FULL,
        "the relay's storage is full; nothing was stored (reads go on; try again later)",
    )
}
