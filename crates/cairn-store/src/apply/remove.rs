//! Removing a user and everything their devices stored (`spec/storage.md`
//! section 5.4), in the writer's transaction like any other write.
//!
//! Streams keep their rows and heads, with a floor at the head: positions
//! are never given twice, so a friend's cursor on a removed stream stays
//! meaningful. Device revocations stay (a revoked key stays revoked), and
//! so do statements other users made about the removed one.

use cairn_wire::UserId;
use redb::ReadableTable;

use super::{T, WriteTables, read_u64};
use crate::api::Removal;
use crate::keys;

impl WriteTables<'_> {
    /// Removes `user`'s streams, registry, grants, cursors and usage, and
    /// remembers the user as removed at `now_ms`. A user removed before
    /// is left as is.
    pub fn remove_user(&mut self, user: UserId, now_ms: u64) -> Result<Removal, redb::Error> {
        let owner = user.as_bytes().as_slice();
        if self.removed_users.read()?.get(owner)?.is_some() {
            return Ok(Removal {
                already: true,
                ..Removal::default()
            });
        }
        let mut removal = self.remove_streams(owner)?;
        removal.devices = self.remove_registry(&user)?;
        self.remove_grants(&user)?;
        for (key, _) in rows_with_prefix(self.chain_heads.read()?, owner)? {
            self.chain_heads.write()?.remove(key.as_slice())?;
        }
        self.user_usage.write()?.remove(owner)?;
        // Appends of this commit before the removal must not write a usage
        // row back when the commit finishes.
        self.usage.remove(&user);
        self.removed_bytes = self.removed_bytes.saturating_add(removal.bytes);
        self.removed_users
            .write()?
            .insert(owner, now_ms.to_be_bytes().as_slice())?;
        Ok(removal)
    }

    /// Deletes every entry of the owner's streams and its indexes, setting
    /// each stream's floor to its head.
    fn remove_streams(&mut self, owner: &[u8]) -> Result<Removal, redb::Error> {
        let mut removal = Removal::default();
        for (stream_key, head) in rows_with_prefix(self.streams.read()?, owner)? {
            removal.streams += 1;
            for (entry_key, size) in entry_sizes(self.envelopes.read()?, &stream_key)? {
                self.envelopes.write()?.remove(entry_key.as_slice())?;
                removal.envelopes += 1;
                removal.bytes = removal.bytes.saturating_add(size);
            }
            for (key, _) in rows_with_prefix(self.expired_heads.read()?, &stream_key)? {
                self.expired_heads.write()?.remove(key.as_slice())?;
            }
            let head = read_u64(&head, "stream head")?;
            self.floors
                .write()?
                .insert(stream_key.as_slice(), head.to_be_bytes().as_slice())?;
        }
        // Every envelope the user's devices stored, expired ones included,
        // is indexed by seq: its id goes with it.
        for (key, id) in rows_with_prefix(self.device_seqs.read()?, owner)? {
            self.envelope_ids.write()?.remove(id.as_slice())?;
            self.device_seqs.write()?.remove(key.as_slice())?;
        }
        Ok(removal)
    }

    /// Deletes the owner's device certificates and what indexes them, and
    /// the cursors of devices no other user certified. Returns how many
    /// devices were certified.
    fn remove_registry(&mut self, user: &UserId) -> Result<u64, redb::Error> {
        let owner = user.as_bytes();
        let mut devices = 0;
        for (key, _) in rows_with_prefix(self.device_certs.read()?, owner)? {
            let (_, device) = keys::parse_pair_key(&key).map_err(super::corrupt)?;
            self.device_certs.write()?.remove(key.as_slice())?;
            self.device_users
                .write()?
                .remove(keys::pair_key(&device, owner).as_slice())?;
            devices += 1;
            if rows_with_prefix(self.device_users.read()?, &device)?.is_empty() {
                for (ack, _) in rows_with_prefix(self.acks.read()?, &device)? {
                    self.acks.write()?.remove(ack.as_slice())?;
                }
            }
        }
        self.users.write()?.remove(owner.as_slice())?;
        Ok(devices)
    }

    /// Deletes the friend statements the owner made, and the grants they
    /// indexed.
    fn remove_grants(&mut self, user: &UserId) -> Result<(), redb::Error> {
        let owner = user.as_bytes();
        for (key, value) in rows_with_prefix(self.friends.read()?, owner)? {
            let (_, grantee) = keys::parse_pair_key(&key).map_err(super::corrupt)?;
            if value.first() == Some(&keys::FRIEND_GRANT) {
                self.friends_by_grantee
                    .write()?
                    .remove(keys::pair_key(&grantee, owner).as_slice())?;
            }
            self.friends.write()?.remove(key.as_slice())?;
        }
        Ok(())
    }
}

/// The keys and value sizes of the entries under `prefix`: the envelopes
/// themselves are never copied out (a user may store a gigabyte).
fn entry_sizes(table: &T<'_>, prefix: &[u8]) -> Result<Vec<(Vec<u8>, u64)>, redb::Error> {
    let range = keys::prefix_range(prefix);
    let mut rows = Vec::new();
    for row in table.range::<&[u8]>(keys::as_slices(&range))? {
        let (key, value) = row?;
        rows.push((key.value().to_vec(), value.value().len() as u64));
    }
    Ok(rows)
}

/// A key and its value, copied out of a table.
type Row = (Vec<u8>, Vec<u8>);

/// Every row whose key starts with `prefix`, copied out so that the table
/// can be changed while they are walked.
fn rows_with_prefix(table: &T<'_>, prefix: &[u8]) -> Result<Vec<Row>, redb::Error> {
    let range = keys::prefix_range(prefix);
    let mut rows = Vec::new();
    for row in table.range::<&[u8]>(keys::as_slices(&range))? {
        let (key, value) = row?;
        rows.push((key.value().to_vec(), value.value().to_vec()));
    }
    Ok(rows)
}
