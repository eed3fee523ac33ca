//! Editing a stopped relay's database behind its back, the way whoever
//! holds the file (or a relay that lies) could: the tables as
//! `spec/storage.md` lays them out, read and written with redb directly.

use std::path::Path;

use cairn_wire::{Envelope, EnvelopeId};
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition};

type Bytes = TableDefinition<'static, &'static [u8], &'static [u8]>;
type Rows<'t> = Table<'t, &'static [u8], &'static [u8]>;

const ENVELOPES: Bytes = TableDefinition::new("cairn_envelopes");
const ENVELOPE_IDS: Bytes = TableDefinition::new("cairn_envelope_ids");
const STREAMS: Bytes = TableDefinition::new("cairn_streams");

/// The log's three tables, open for writing.
struct Log<'t> {
    envelopes: Rows<'t>,
    ids: Rows<'t>,
    streams: Rows<'t>,
}

impl Log<'_> {
    /// The entry key (`stream_key || position`) of the envelope `id`.
    fn entry_of(&self, id: EnvelopeId) -> Vec<u8> {
        let entry = self.ids.get(id.as_bytes().as_slice()).unwrap().unwrap();
        entry.value().to_vec()
    }

    fn head_of(&self, stream: &[u8]) -> u64 {
        let head = self.streams.get(stream).unwrap().unwrap();
        u64::from_be_bytes(head.value().try_into().unwrap())
    }

    fn set_head(&mut self, stream: &[u8], head: u64) {
        self.streams
            .insert(stream, head.to_be_bytes().as_slice())
            .unwrap();
    }

    /// Puts `bytes` at `entry` and indexes it there.
    fn put(&mut self, entry: &[u8], bytes: &[u8]) {
        self.envelopes.insert(entry, bytes).unwrap();
        let id = Envelope::id_of_encoding(bytes);
        self.ids.insert(id.as_bytes().as_slice(), entry).unwrap();
    }
}

/// Runs `change` on the log of the relay stopped in `data_dir`, in one
/// transaction.
fn edit(data_dir: &Path, change: impl FnOnce(&mut Log<'_>)) {
    let db = Database::open(data_dir.join("relay.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut log = Log {
            envelopes: txn.open_table(ENVELOPES).unwrap(),
            ids: txn.open_table(ENVELOPE_IDS).unwrap(),
            streams: txn.open_table(STREAMS).unwrap(),
        };
        change(&mut log);
    }
    txn.commit().unwrap();
}

/// Removes the envelope `id` from its stream and moves every later entry
/// down one position, so that the stream reads without a gap, as a relay
/// withholding it from whoever reads next would serve it.
pub fn withhold(data_dir: &Path, id: EnvelopeId) {
    edit(data_dir, |log| {
        let entry = log.entry_of(id);
        log.ids.remove(id.as_bytes().as_slice()).unwrap();
        let (stream, at) = split_entry(&entry);
        let head = log.head_of(stream);
        for position in at + 1..=head {
            let moved = log
                .envelopes
                .remove(entry_key(stream, position).as_slice())
                .unwrap()
                .unwrap()
                .value()
                .to_vec();
            log.put(&entry_key(stream, position - 1), &moved);
        }
        if at == head {
            log.envelopes.remove(entry.as_slice()).unwrap();
        }
        log.set_head(stream, head - 1);
    });
}

/// Puts `envelope` in place of the stored envelope `id`, at its position.
pub fn replace(data_dir: &Path, id: EnvelopeId, envelope: &[u8]) {
    edit(data_dir, |log| {
        let entry = log.entry_of(id);
        log.ids.remove(id.as_bytes().as_slice()).unwrap();
        log.put(&entry, envelope);
    });
}

/// Appends `envelope` at the end of `id`'s stream, past every check the
/// relay makes: a second history of its device, served to every reader.
pub fn append_beside(data_dir: &Path, id: EnvelopeId, envelope: &[u8]) {
    edit(data_dir, |log| {
        let entry = log.entry_of(id);
        let (stream, _) = split_entry(&entry);
        let head = log.head_of(stream);
        log.put(&entry_key(stream, head + 1), envelope);
        log.set_head(stream, head + 1);
    });
}

/// The envelopes waiting in a stopped `cairn` home's outbox, by seq.
pub fn outbox(home: &Path) -> Vec<Vec<u8>> {
    let outbox: TableDefinition<'static, u64, &'static [u8]> = TableDefinition::new("outbox");
    let db = Database::open(home.join(cairn_client::STORE_FILE)).unwrap();
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(outbox).unwrap();
    table
        .iter()
        .unwrap()
        .map(|row| row.unwrap().1.value().to_vec())
        .collect()
}

fn split_entry(entry: &[u8]) -> (&[u8], u64) {
    let (stream, position) = entry.split_at(entry.len() - 8);
    (stream, u64::from_be_bytes(position.try_into().unwrap()))
}

fn entry_key(stream: &[u8], position: u64) -> Vec<u8> {
    [stream, &position.to_be_bytes()].concat()
}

const FLOORS: Bytes = TableDefinition::new("cairn_floors");

/// Deletes the stream of envelope `id` up to it and records that much as
/// gone (a floor), as a relay claiming its retention expired them would.
pub fn expire_through(data_dir: &Path, id: EnvelopeId) {
    let db = Database::open(data_dir.join("relay.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let ids = txn.open_table(ENVELOPE_IDS).unwrap();
        let entry = ids
            .get(id.as_bytes().as_slice())
            .unwrap()
            .unwrap()
            .value()
            .to_vec();
        let (stream, at) = split_entry(&entry);
        let mut envelopes = txn.open_table(ENVELOPES).unwrap();
        for position in 1..=at {
            envelopes
                .remove(entry_key(stream, position).as_slice())
                .unwrap();
        }
        let mut floors = txn.open_table(FLOORS).unwrap();
        floors.insert(stream, at.to_be_bytes().as_slice()).unwrap();
    }
    txn.commit().unwrap();
}
