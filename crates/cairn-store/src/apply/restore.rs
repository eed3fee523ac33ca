//! Putting back what an export says is gone (`spec/relay.md` section 8):
//! expired envelopes as tombstones, floors of emptied streams, removed
//! users. Each is judged against what is stored, as an append is, so an
//! import that does not follow is refused rather than stored half-right.

use cairn_wire::FIRST_IN_STREAM;
use redb::ReadableTable;

use super::{WriteTables, last_seq};
use crate::api::{Restore, Tombstone};
use crate::keys;

impl WriteTables<'_> {
    /// Applies one [`Restore`]; `Err` says why it does not follow.
    pub fn restore(&mut self, what: Restore) -> Result<Result<(), &'static str>, redb::Error> {
        match what {
            Restore::Tombstone(tombstone) => self.restore_tombstone(&tombstone),
            Restore::Floor { stream, through } => {
                let stream_key = keys::stream_key(&stream);
                if self.head(&stream_key)? != 0 {
                    return Ok(Err("a removed user's stream already holds positions"));
                }
                let position = through.to_be_bytes();
                self.streams
                    .write()?
                    .insert(stream_key.as_slice(), position.as_slice())?;
                self.floors
                    .write()?
                    .insert(stream_key.as_slice(), position.as_slice())?;
                self.index_direct(&stream)?;
                Ok(Ok(()))
            }
            Restore::Removed { user, at_ms } => {
                let key = user.as_bytes().as_slice();
                if self
                    .device_certs
                    .read()?
                    .range::<&[u8]>(keys::as_slices(&keys::prefix_range(key)))?
                    .next()
                    .is_some()
                {
                    return Ok(Err("a removed user holds device certificates"));
                }
                self.removed_users
                    .write()?
                    .insert(key, at_ms.to_be_bytes().as_slice())?;
                Ok(Ok(()))
            }
        }
    }

    /// An expired envelope takes the next position of its stream and the
    /// next seq of its device, and becomes the device's chain head there
    /// and its last expired envelope.
    fn restore_tombstone(
        &mut self,
        t: &Tombstone,
    ) -> Result<Result<(), &'static str>, redb::Error> {
        let author = t.stream.owner;
        let stream_key = keys::stream_key(&t.stream);
        if self.head(&stream_key)?.saturating_add(1) != t.position {
            return Ok(Err("an expired envelope out of position order"));
        }
        let pair = keys::pair_key(author.as_bytes(), t.device.as_bytes());
        if self.device_certs.read()?.get(pair.as_slice())?.is_none() {
            return Ok(Err(
                "an expired envelope of a device its author never certified",
            ));
        }
        if last_seq(self.device_seqs.read()?, &author, &t.device)?.saturating_add(1) != t.seq {
            return Ok(Err("an expired envelope out of its device's seq order"));
        }
        if self
            .envelope_ids
            .read()?
            .get(t.id.as_bytes().as_slice())?
            .is_some()
            || t.id == FIRST_IN_STREAM
        {
            return Ok(Err("an expired envelope whose id is already stored"));
        }
        let entry_key = keys::entry_key(&t.stream, t.position);
        self.envelope_ids
            .write()?
            .insert(t.id.as_bytes().as_slice(), entry_key.as_slice())?;
        let seq_key = keys::device_seq_key(&author, &t.device, t.seq);
        self.device_seqs
            .write()?
            .insert(seq_key.as_slice(), t.id.as_bytes().as_slice())?;
        let chain_key = keys::chain_key(&author, &t.device, &t.stream);
        self.chain_heads
            .write()?
            .insert(chain_key.as_slice(), t.id.as_bytes().as_slice())?;
        let position = t.position.to_be_bytes();
        self.streams
            .write()?
            .insert(stream_key.as_slice(), position.as_slice())?;
        self.floors
            .write()?
            .insert(stream_key.as_slice(), position.as_slice())?;
        let head_key = keys::expired_head_key(&t.stream, &t.device);
        self.expired_heads.write()?.insert(
            head_key.as_slice(),
            keys::expired_head_value(t.seq, &t.id).as_slice(),
        )?;
        if t.position == 1 {
            self.index_direct(&t.stream)?;
        }
        Ok(Ok(()))
    }
}
