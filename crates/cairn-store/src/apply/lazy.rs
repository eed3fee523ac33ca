//! A table of a write transaction, opened when first used.

use std::cell::OnceCell;

use redb::{TableHandle, WriteTransaction};

use super::T;
use crate::schema::Def;

/// One table of the schema in a group's transaction. Opening a table
/// costs a lookup in redb's table tree, and each table opened costs a
/// root update at commit, so a group opens only the tables its requests
/// use.
pub(super) struct Lazy<'t> {
    txn: &'t WriteTransaction,
    definition: Def,
    table: OnceCell<T<'t>>,
}

impl<'t> Lazy<'t> {
    pub(super) fn new(txn: &'t WriteTransaction, definition: Def) -> Self {
        Self {
            txn,
            definition,
            table: OnceCell::new(),
        }
    }

    /// The table, to read.
    pub(super) fn read(&self) -> Result<&T<'t>, redb::Error> {
        if let Some(table) = self.table.get() {
            return Ok(table);
        }
        let opened = self.txn.open_table(self.definition)?;
        Ok(self.table.get_or_init(|| opened))
    }

    /// The table, to write.
    pub(super) fn write(&mut self) -> Result<&mut T<'t>, redb::Error> {
        if self.table.get().is_none() {
            let opened = self.txn.open_table(self.definition)?;
            // Cannot be taken: it was empty, and `&mut self` is held.
            let _ = self.table.set(opened);
        }
        let name = self.definition.name();
        self.table
            .get_mut()
            .ok_or_else(|| redb::Error::Corrupted(format!("table {name} did not open")))
    }
}
