//! Expiring old envelopes of friends and direct streams (`spec/storage.md`
//! section 5.5), in the writer's transaction like any other write.
//!
//! A stream loses a prefix: its floor moves past every leading entry
//! dated before its scope's cutoff, so that readers see `floor+1..=head`
//! with no hole. An entry's id and seq rows stay behind as tombstones (a
//! resend of an expired envelope is a duplicate, and a device's seqs stay
//! gap-free), and each device's last expired envelope is kept for readers.

use cairn_wire::{Envelope, Scope};
use redb::ReadableTable;

use super::{WriteTables, corrupt, read_u64};
use crate::api::{Cutoffs, Expiry};
use crate::keys;

impl WriteTables<'_> {
    /// Expires what `cutoffs` say, at most `budget` envelopes; says
    /// whether more is due.
    pub fn expire(&mut self, cutoffs: Cutoffs, budget: u64) -> Result<Expiry, redb::Error> {
        let mut expiry = Expiry::default();
        let mut streams = Vec::new();
        for row in self.streams.read()?.iter()? {
            let (key, head) = row?;
            streams.push((key.value().to_vec(), read_u64(head.value(), "stream head")?));
        }
        for (stream_key, head) in streams {
            let stream = keys::parse_stream_key(&stream_key).map_err(corrupt)?;
            let cutoff = match stream.scope {
                // A user's own direct stream carries their keys to their
                // own devices: it never expires, like their private one.
                Scope::Direct(to) if to == stream.owner => None,
                Scope::Private => None,
                Scope::Friends => cutoffs.friends_before_ms,
                Scope::Direct(_) => cutoffs.direct_before_ms,
            };
            let Some(cutoff) = cutoff else { continue };
            let floor = self.floor(&stream_key)?;
            if floor >= head {
                continue;
            }
            let left = budget.saturating_sub(expiry.envelopes);
            let (moved, stopped) =
                self.expire_prefix(&stream_key, floor, cutoff, left, &mut expiry)?;
            if moved > floor {
                expiry.streams += 1;
                self.floors
                    .write()?
                    .insert(stream_key.as_slice(), moved.to_be_bytes().as_slice())?;
            }
            if stopped {
                expiry.more = true;
                break;
            }
        }
        Ok(expiry)
    }

    /// Removes the leading entries of one stream dated before `cutoff`, at
    /// most `left`; the new floor, and whether the budget stopped it.
    fn expire_prefix(
        &mut self,
        stream_key: &[u8],
        floor: u64,
        cutoff: u64,
        left: u64,
        expiry: &mut Expiry,
    ) -> Result<(u64, bool), redb::Error> {
        let stream = keys::parse_stream_key(stream_key).map_err(corrupt)?;
        let start = keys::entry_key(&stream, floor.saturating_add(1));
        let end = keys::entry_key(&stream, u64::MAX);
        let mut due = Vec::new();
        let mut stopped = false;
        for row in self
            .envelopes
            .read()?
            .range(start.as_slice()..=end.as_slice())?
        {
            let (key, value) = row?;
            let envelope = Envelope::decode(value.value()).map_err(corrupt)?;
            if envelope.header().timestamp_ms >= cutoff {
                break;
            }
            if due.len() as u64 >= left {
                stopped = true;
                break;
            }
            due.push((key.value().to_vec(), value.value().len() as u64, envelope));
        }
        let mut moved = floor;
        for (key, size, envelope) in due {
            let (_, position) = keys::parse_entry_key(&key).map_err(corrupt)?;
            let header = envelope.header();
            self.envelopes.write()?.remove(key.as_slice())?;
            let head_key = keys::expired_head_key(&stream, &header.device);
            let value = keys::expired_head_value(header.seq, &envelope.id());
            self.expired_heads
                .write()?
                .insert(head_key.as_slice(), value.as_slice())?;
            let used = self.usage_of(header.author)?;
            self.usage.insert(header.author, used.minus(size));
            self.removed_bytes = self.removed_bytes.saturating_add(size);
            expiry.envelopes += 1;
            expiry.bytes = expiry.bytes.saturating_add(size);
            moved = position;
        }
        Ok((moved, stopped))
    }

    fn floor(&self, stream_key: &[u8]) -> Result<u64, redb::Error> {
        match self.floors.read()?.get(stream_key)? {
            Some(v) => read_u64(v.value(), "stream floor"),
            None => Ok(0),
        }
    }
}
