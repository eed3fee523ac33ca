//! The local store: one redb file per home directory.
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | name | vault header, sealed identity, sealed keyring, next seq |
//! | `outbox` | seq (u64) | envelope encoding, not yet acknowledged by the relay |
//! | `envelopes` | envelope id | envelope encoding: every envelope known here |
//! | `items` | envelope id | decrypted record, sealed under the data key |
//! | `pending` | envelope id | nothing: envelopes not openable yet (keys missing) |
//! | `cursors` | stream id encoding | last position synced |
//! | `chains` | stream id encoding | this device's last envelope in the stream |
//! | `set_aside` | seq (u64) | envelope id \|\| sealed item: a change this home made on a history the relay had moved past (`adopt.rs`) |
//! | `seqs` | device id | highest seq \|\| number of envelopes held of that device of this user (`chain.rs`) |
//! | `seq_ids` | device id \|\| seq | the envelope of that seq, for the user's own devices |
//! | `claims` | device id \|\| seq \|\| claimant | what another device of the user said it held of that device (a `Head` in its record): the envelope id |
//! | `links` | device \|\| stream id encoding \|\| prev | the envelope held that follows `prev` (`chain.rs`) |
//!
//! Every change of one sync step is one [`Batch`], committed in one write
//! transaction, so that an interruption never leaves a cursor ahead of the
//! envelopes it covers or an acknowledged envelope still in the outbox.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cairn_wire::codec;
use cairn_wire::{Cursor, DeviceId, Envelope, EnvelopeId, StreamId};
use redb::{
    Database, DatabaseError, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition,
};

use crate::error::Error;

type Bytes = TableDefinition<'static, &'static [u8], &'static [u8]>;

const META: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("meta");
const OUTBOX: TableDefinition<'static, u64, &'static [u8]> = TableDefinition::new("outbox");
const ENVELOPES: Bytes = TableDefinition::new("envelopes");
const ITEMS: Bytes = TableDefinition::new("items");
const PENDING: Bytes = TableDefinition::new("pending");
const CURSORS: TableDefinition<'static, &'static [u8], u64> = TableDefinition::new("cursors");
const CHAINS: Bytes = TableDefinition::new("chains");
const LINKS: Bytes = TableDefinition::new("links");
const SEQS: Bytes = TableDefinition::new("seqs");
const SEQ_IDS: Bytes = TableDefinition::new("seq_ids");
const CLAIMS: Bytes = TableDefinition::new("claims");
const SET_ASIDE: TableDefinition<'static, u64, &'static [u8]> = TableDefinition::new("set_aside");
/// Envelopes the relay said it no longer serves (each device's last in a
/// stream whose oldest entries expired): id -> ().
const EXPIRED_IDS: Bytes = TableDefinition::new("expired_ids");
/// Items this home has shown its user (`watch` printed them, or `feed` or
/// `note list` listed them): id -> (). Absent until something is shown.
const SHOWN: Bytes = TableDefinition::new("shown");
/// Per device, the highest seq the relay said expired.
const EXPIRED_SEQS: TableDefinition<'static, &'static [u8], u64> =
    TableDefinition::new("expired_seqs");

/// File name of the store in the home directory.
pub const STORE_FILE: &str = "cairn.redb";
/// How long to wait for another cairn process (e.g. `cairn watch`) to
/// release the store.
const BUSY_WAIT: Duration = Duration::from_secs(15);

/// [`meta::ITEM_FORMAT`] of stores whose items are sealed under a label
/// naming their envelope id.
pub(crate) const ITEMS_BOUND_TO_IDS: &[u8] = &[2];

/// Meta keys.
pub(crate) mod meta {
    pub const VAULT: &str = "vault";
    pub const IDENTITY: &str = "identity";
    pub const KEYRING: &str = "keyring";
    pub const NEXT_SEQ: &str = "next_seq";
    /// How items are sealed: absent in stores made before items were
    /// bound to their envelope id, [`super::ITEMS_BOUND_TO_IDS`] since.
    pub const ITEM_FORMAT: &str = "item_format";
    /// Present once the relay said this device is revoked: it writes
    /// nothing more.
    pub const REVOKED: &str = "revoked";
    /// When a sync last completed (u64, big-endian ms).
    pub const LAST_SYNC: &str = "last_sync";
    /// How the last try of the relay went (`status.rs`).
    pub const LAST_CONTACT: &str = "last_contact";
    /// The id of the relay's log this device last read (`relog.rs`).
    pub const RELAY_LOG: &str = "relay_log";
}

/// The local store. The redb file is opened on first use and kept open
/// until [`LocalStore::release`]: a long-running `cairn watch` releases it
/// between writes and the sync engine before each network round trip, so
/// that other cairn commands on the same home are never locked out for
/// long.
#[derive(Debug)]
pub(crate) struct LocalStore {
    path: PathBuf,
    db: Mutex<Option<Arc<Database>>>,
}

/// Changes committed together.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub envelopes: Vec<(EnvelopeId, Vec<u8>)>,
    pub items: Vec<(EnvelopeId, Vec<u8>)>,
    pub pending_add: Vec<EnvelopeId>,
    pub pending_remove: Vec<EnvelopeId>,
    pub cursors: Vec<(StreamId, u64)>,
    /// Cursors moved back (the relay's log changed), before `cursors`
    /// move any forward.
    pub rewound: Vec<(StreamId, u64)>,
    pub meta: Vec<(&'static str, Vec<u8>)>,
    pub outbox_add: Vec<(u64, Vec<u8>)>,
    pub outbox_remove: Vec<u64>,
    /// This device's new last envelope in a stream.
    pub chains: Vec<(StreamId, EnvelopeId)>,
    /// Envelopes held, by what they follow (`chain::link_key`).
    pub links: Vec<(Vec<u8>, EnvelopeId)>,
    /// Setting aside a history this home made (`adopt.rs`): what leaves.
    pub forget: Forget,
    /// Changes set aside, by their old seq: envelope id and sealed item.
    pub set_aside_add: Vec<(u64, Vec<u8>)>,
    /// Changes written again.
    pub set_aside_remove: Vec<u64>,
    /// Envelopes of this user's devices newly held: device, seq, id.
    pub seqs: Vec<(DeviceId, u64, EnvelopeId)>,
    /// What other devices of the user said they held (`claims` keys).
    pub claims_add: Vec<(Vec<u8>, EnvelopeId)>,
    /// Claims checked and settled.
    pub claims_remove: Vec<Vec<u8>>,
    /// Envelopes the relay said expired: device, seq, id.
    pub expired: Vec<(DeviceId, u64, EnvelopeId)>,
}

/// What a set-aside history takes out of the store, before the rest of
/// the batch goes in.
#[derive(Debug, Default)]
pub(crate) struct Forget {
    pub envelopes: Vec<EnvelopeId>,
    pub links: Vec<Vec<u8>>,
    /// Envelopes of this device no longer held: they were its tail.
    pub seqs: Vec<(DeviceId, u64)>,
    /// Streams whose chain goes back: to an envelope, or to nothing.
    pub chains: Vec<(StreamId, Option<EnvelopeId>)>,
}

impl LocalStore {
    /// Whether `home` holds a store.
    pub fn exists(home: &Path) -> bool {
        home.join(STORE_FILE).is_file()
    }

    /// Creates the store (and the home directory).
    pub fn create(home: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(home)
            .map_err(|e| Error::store(format!("cannot create {}: {e}", home.display())))?;
        restrict(home);
        let path = home.join(STORE_FILE);
        drop(Database::create(&path)?);
        let store = Self {
            path,
            db: Mutex::new(None),
        };
        store.create_tables()?;
        Ok(store)
    }

    /// An existing store.
    pub fn open(home: &Path) -> Result<Self, Error> {
        let path = home.join(STORE_FILE);
        if !path.is_file() {
            return Err(Error::NotInitialised {
                home: home.to_owned(),
            });
        }
        Ok(Self {
            path,
            db: Mutex::new(None),
        })
    }

    /// Closes the file until the next operation, letting other processes
    /// in.
    pub fn release(&self) {
        self.lock().take();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<Database>>> {
        self.db.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The open database, opening it if needed.
    fn db(&self) -> Result<Arc<Database>, Error> {
        let mut slot = self.lock();
        if let Some(db) = &*slot {
            return Ok(db.clone());
        }
        let db = Arc::new(self.open_file()?);
        *slot = Some(db.clone());
        Ok(db)
    }

    /// Opens the file, waiting a while if another process holds it.
    fn open_file(&self) -> Result<Database, Error> {
        let started = Instant::now();
        loop {
            match Database::open(&self.path) {
                Ok(db) => return Ok(db),
                Err(DatabaseError::DatabaseAlreadyOpen) if started.elapsed() < BUSY_WAIT => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(DatabaseError::DatabaseAlreadyOpen) => {
                    return Err(Error::Busy(self.path.clone()));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn create_tables(&self) -> Result<(), Error> {
        let db = self.db()?;
        let txn = db.begin_write()?;
        txn.open_table(META)?;
        txn.open_table(OUTBOX)?;
        txn.open_table(ENVELOPES)?;
        txn.open_table(ITEMS)?;
        txn.open_table(PENDING)?;
        txn.open_table(CURSORS)?;
        txn.open_table(CHAINS)?;
        txn.open_table(LINKS)?;
        txn.open_table(SET_ASIDE)?;
        txn.open_table(SEQS)?;
        txn.open_table(SEQ_IDS)?;
        txn.open_table(CLAIMS)?;
        txn.commit()?;
        Ok(())
    }

    /// A meta value.
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let table = txn.open_table(META)?;
        Ok(table.get(key)?.map(|v| v.value().to_vec()))
    }

    /// The next sequence number this device signs with.
    pub fn next_seq(&self) -> Result<u64, Error> {
        let bytes = self.meta(meta::NEXT_SEQ)?;
        Ok(bytes
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map_or(1, u64::from_be_bytes))
    }

    /// Commits a batch of changes in one transaction. Cursors only move
    /// forward, but for the ones the batch rewinds.
    pub fn commit(&self, batch: Batch) -> Result<(), Error> {
        let db = self.db()?;
        let txn = db.begin_write()?;
        {
            let mut envelopes = txn.open_table(ENVELOPES)?;
            let mut items = txn.open_table(ITEMS)?;
            let mut links = txn.open_table(LINKS)?;
            let mut chains = txn.open_table(CHAINS)?;
            for id in &batch.forget.envelopes {
                envelopes.remove(id.as_bytes().as_slice())?;
                items.remove(id.as_bytes().as_slice())?;
            }
            for key in &batch.forget.links {
                links.remove(key.as_slice())?;
            }
            for (stream, before) in &batch.forget.chains {
                let key = codec::encode(stream);
                match before {
                    Some(id) => chains.insert(key.as_slice(), id.as_bytes().as_slice())?,
                    None => chains.remove(key.as_slice())?,
                };
            }
            for (id, bytes) in &batch.envelopes {
                envelopes.insert(id.as_bytes().as_slice(), bytes.as_slice())?;
            }
            for (id, sealed) in &batch.items {
                items.insert(id.as_bytes().as_slice(), sealed.as_slice())?;
            }
            let mut pending = txn.open_table(PENDING)?;
            for id in &batch.pending_add {
                pending.insert(id.as_bytes().as_slice(), [].as_slice())?;
            }
            for id in &batch.pending_remove {
                pending.remove(id.as_bytes().as_slice())?;
            }
            let mut cursors = txn.open_table(CURSORS)?;
            for (stream, position) in &batch.rewound {
                cursors.insert(codec::encode(stream).as_slice(), *position)?;
            }
            for (stream, position) in &batch.cursors {
                let key = codec::encode(stream);
                let old = cursors.get(key.as_slice())?.map_or(0, |v| v.value());
                if *position > old {
                    cursors.insert(key.as_slice(), *position)?;
                }
            }
            let mut meta = txn.open_table(META)?;
            for (key, value) in &batch.meta {
                meta.insert(*key, value.as_slice())?;
            }
            let mut outbox = txn.open_table(OUTBOX)?;
            for (seq, bytes) in &batch.outbox_add {
                outbox.insert(*seq, bytes.as_slice())?;
            }
            for seq in &batch.outbox_remove {
                outbox.remove(*seq)?;
            }
            for (stream, id) in &batch.chains {
                chains.insert(codec::encode(stream).as_slice(), id.as_bytes().as_slice())?;
            }
            for (key, id) in &batch.links {
                links.insert(key.as_slice(), id.as_bytes().as_slice())?;
            }
            let mut seqs = txn.open_table(SEQS)?;
            let mut seq_ids = txn.open_table(SEQ_IDS)?;
            for (device, seq) in &batch.forget.seqs {
                let (max, count) = seq_row(&seqs, device)?;
                let row = seq_value(max.min(seq.saturating_sub(1)), count.saturating_sub(1));
                seqs.insert(device.as_bytes().as_slice(), row.as_slice())?;
                seq_ids.remove(seq_key(device, *seq).as_slice())?;
            }
            for (device, seq, id) in &batch.seqs {
                let (max, count) = seq_row(&seqs, device)?;
                let row = seq_value(max.max(*seq), count.saturating_add(1));
                seqs.insert(device.as_bytes().as_slice(), row.as_slice())?;
                seq_ids.insert(seq_key(device, *seq).as_slice(), id.as_bytes().as_slice())?;
            }
            let mut claims = txn.open_table(CLAIMS)?;
            for (key, id) in &batch.claims_add {
                claims.insert(key.as_slice(), id.as_bytes().as_slice())?;
            }
            for key in &batch.claims_remove {
                claims.remove(key.as_slice())?;
            }
            let mut expired_ids = txn.open_table(EXPIRED_IDS)?;
            let mut expired_seqs = txn.open_table(EXPIRED_SEQS)?;
            for (device, seq, id) in &batch.expired {
                expired_ids.insert(id.as_bytes().as_slice(), [].as_slice())?;
                let key = device.as_bytes().as_slice();
                let old = expired_seqs.get(key)?.map_or(0, |v| v.value());
                expired_seqs.insert(key, old.max(*seq))?;
            }
            let mut set_aside = txn.open_table(SET_ASIDE)?;
            for (seq, value) in &batch.set_aside_add {
                set_aside.insert(*seq, value.as_slice())?;
            }
            for seq in &batch.set_aside_remove {
                set_aside.remove(*seq)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The sealed item held for `id`, as stored.
    pub fn sealed_item(&self, id: &EnvelopeId) -> Result<Option<Vec<u8>>, Error> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let table = txn.open_table(ITEMS)?;
        Ok(table
            .get(id.as_bytes().as_slice())?
            .map(|v| v.value().to_vec()))
    }

    /// The changes set aside, by old seq: envelope id and sealed item.
    pub fn set_aside(&self) -> Result<Vec<(u64, EnvelopeId, Vec<u8>)>, Error> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let Some(table) = made(&txn, SET_ASIDE)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for row in table.iter()? {
            let (seq, value) = row?;
            let value = value.value();
            let (id, sealed) = value
                .split_at_checked(32)
                .ok_or_else(|| Error::store("a set-aside change too short"))?;
            out.push((seq.value(), id_from(id)?, sealed.to_vec()));
        }
        Ok(out)
    }

    /// This device's last envelope in `stream`, if it wrote there.
    pub fn chain_head(&self, stream: &StreamId) -> Result<Option<EnvelopeId>, Error> {
        self.id_at(CHAINS, &codec::encode(stream))
    }

    /// The envelope held that follows what `key` names (`chain::link_key`).
    pub fn link(&self, key: &[u8]) -> Result<Option<EnvelopeId>, Error> {
        self.id_at(LINKS, key)
    }

    fn id_at(&self, table: Bytes, key: &[u8]) -> Result<Option<EnvelopeId>, Error> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let Some(table) = made(&txn, table)? else {
            return Ok(None);
        };
        let Some(value) = table.get(key)? else {
            return Ok(None);
        };
        id_from(value.value()).map(Some)
    }

    /// Per device of this user: the highest seq held and how many of its
    /// envelopes are held.
    pub fn seqs(&self) -> Result<Vec<(DeviceId, u64, u64)>, Error> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let Some(table) = made(&txn, SEQS)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for row in table.iter()? {
            let (device, value) = row?;
            let device = <[u8; 32]>::try_from(device.value())
                .map_err(|_| Error::store("a seqs key of the wrong length"))?;
            let (max, count) = parse_seq_value(value.value())?;
            out.push((DeviceId::from_bytes(device), max, count));
        }
        Ok(out)
    }

    /// The envelope held of one of this user's devices at `seq`.
    pub fn seq_id(&self, device: &DeviceId, seq: u64) -> Result<Option<EnvelopeId>, Error> {
        self.id_at(SEQ_IDS, &seq_key(device, seq))
    }

    /// What other devices of the user said they held and this device has
    /// not checked yet: (key, device, seq, claimant record, envelope id).
    pub fn claims(&self) -> Result<Vec<Claim>, Error> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let Some(table) = made(&txn, CLAIMS)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for row in table.iter()? {
            let (key, value) = row?;
            out.push(Claim::parse(key.value(), value.value())?);
        }
        Ok(out)
    }

    /// The envelopes held of `device`, as (seq, id), by seq (a scan of
    /// every envelope: only to find the evidence of a break).
    pub fn envelopes_of(&self, device: &DeviceId) -> Result<Vec<(u64, EnvelopeId)>, Error> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let table = txn.open_table(ENVELOPES)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (key, value) = row?;
            let envelope = decode_envelope(value.value())?;
            if envelope.header().device == *device {
                out.push((envelope.header().seq, id_from(key.value())?));
            }
        }
        out.sort();
        Ok(out)
    }

    /// The ids of every envelope known here: held, or said by the relay
    /// to have expired (what follows those still checks).
    pub fn known_ids(&self) -> Result<std::collections::HashSet<EnvelopeId>, Error> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let table = txn.open_table(ENVELOPES)?;
        let mut out = std::collections::HashSet::new();
        for row in table.iter()? {
            let (key, _) = row?;
            out.insert(id_from(key.value())?);
        }
        if let Some(expired) = made(&txn, EXPIRED_IDS)? {
            for row in expired.iter()? {
                let (key, _) = row?;
                out.insert(id_from(key.value())?);
            }
        }
        Ok(out)
    }

    /// The items this home has shown its user; `None` before it first
    /// showed anything.
    pub fn shown(&self) -> Result<Option<std::collections::HashSet<EnvelopeId>>, Error> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let Some(table) = made(&txn, SHOWN)? else {
            return Ok(None);
        };
        let mut out = std::collections::HashSet::new();
        for row in table.iter()? {
            let (key, _) = row?;
            out.insert(id_from(key.value())?);
        }
        Ok(Some(out))
    }

    /// Records that `ids` were shown to the user.
    pub fn mark_shown(&self, ids: &[EnvelopeId]) -> Result<(), Error> {
        let db = self.db()?;
        let txn = db.begin_write()?;
        {
            let mut table = txn.open_table(SHOWN)?;
            for id in ids {
                table.insert(id.as_bytes().as_slice(), [].as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The highest seq of `device` the relay said expired (0: none).
    pub fn expired_seq(&self, device: &DeviceId) -> Result<u64, Error> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let Some(table) = made(&txn, EXPIRED_SEQS)? else {
            return Ok(0);
        };
        Ok(table
            .get(device.as_bytes().as_slice())?
            .map_or(0, |v| v.value()))
    }

    /// The encodings of this device's own envelopes with `from <= seq <
    /// to`, by seq (a scan of every envelope held: for the rare repair of
    /// a relay that lost some, never on the usual path).
    pub fn own_envelopes(
        &self,
        device: &DeviceId,
        from: u64,
        to: u64,
    ) -> Result<std::collections::BTreeMap<u64, Vec<u8>>, Error> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let table = txn.open_table(ENVELOPES)?;
        let mut out = std::collections::BTreeMap::new();
        for row in table.iter()? {
            let (_, value) = row?;
            let envelope = decode_envelope(value.value())?;
            let header = envelope.header();
            if header.device == *device && (from..to).contains(&header.seq) {
                out.insert(header.seq, value.value().to_vec());
            }
        }
        Ok(out)
    }

    /// The oldest outbox envelopes, at most `count` and about `max_bytes`.
    pub fn outbox(&self, count: usize, max_bytes: usize) -> Result<Vec<(u64, Envelope)>, Error> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let table = txn.open_table(OUTBOX)?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for row in table.iter()? {
            let (seq, value) = row?;
            let value = value.value();
            if out.len() == count || (!out.is_empty() && bytes + value.len() > max_bytes) {
                break;
            }
            bytes += value.len();
            out.push((seq.value(), decode_envelope(value)?));
        }
        Ok(out)
    }

    /// Number of envelopes waiting to be pushed.
    pub fn outbox_len(&self) -> Result<u64, Error> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        Ok(txn.open_table(OUTBOX)?.len()?)
    }

    /// Every cursor held.
    pub fn cursors(&self) -> Result<Vec<Cursor>, Error> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let table = txn.open_table(CURSORS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (key, position) = row?;
            let stream: StreamId = codec::decode(key.value(), 256)
                .map_err(|e| Error::store(format!("cursor key: {e}")))?;
            out.push(Cursor {
                stream,
                position: position.value(),
            });
        }
        Ok(out)
    }

    /// Every sealed item.
    pub fn items(&self) -> Result<Vec<(EnvelopeId, Vec<u8>)>, Error> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let table = txn.open_table(ITEMS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (key, value) = row?;
            out.push((id_from(key.value())?, value.value().to_vec()));
        }
        Ok(out)
    }

    /// Up to `limit` envelopes that could not be opened yet, in id order,
    /// starting after `after`: the waiting set is read a page at a time,
    /// never whole.
    pub fn pending_page(
        &self,
        after: Option<EnvelopeId>,
        limit: usize,
    ) -> Result<Vec<Envelope>, Error> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let ids = txn.open_table(PENDING)?;
        let envelopes = txn.open_table(ENVELOPES)?;
        let start = after.map(|id| *id.as_bytes());
        let rows = match &start {
            Some(start) => ids.range::<&[u8]>((
                std::ops::Bound::Excluded(start.as_slice()),
                std::ops::Bound::Unbounded,
            ))?,
            None => ids.range::<&[u8]>(..)?,
        };
        let mut out = Vec::new();
        for row in rows.take(limit) {
            let (key, _) = row?;
            if let Some(bytes) = envelopes.get(key.value())? {
                out.push(decode_envelope(bytes.value())?);
            }
        }
        Ok(out)
    }

    /// How many envelopes wait for keys.
    pub fn pending_len(&self) -> Result<u64, Error> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        Ok(txn.open_table(PENDING)?.len()?)
    }
}

fn decode_envelope(bytes: &[u8]) -> Result<Envelope, Error> {
    Envelope::decode(bytes).map_err(|e| Error::store(format!("stored envelope: {e}")))
}

/// What another device of the user said it held of one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim {
    /// The device it is of.
    pub device: DeviceId,
    /// Its seq.
    pub seq: u64,
    /// The record that said it.
    pub claimant: EnvelopeId,
    /// The envelope it named.
    pub id: EnvelopeId,
}

impl Claim {
    /// The key of the claim in `claims`.
    pub fn key(&self) -> Vec<u8> {
        [
            seq_key(&self.device, self.seq).as_slice(),
            self.claimant.as_bytes().as_slice(),
        ]
        .concat()
    }

    fn parse(key: &[u8], value: &[u8]) -> Result<Self, Error> {
        let bad = || Error::store("a claims row of the wrong length");
        let (device, rest) = key.split_at_checked(32).ok_or_else(bad)?;
        let (seq, claimant) = rest.split_at_checked(8).ok_or_else(bad)?;
        Ok(Self {
            device: DeviceId::from_bytes(device.try_into().map_err(|_| bad())?),
            seq: u64::from_be_bytes(seq.try_into().map_err(|_| bad())?),
            claimant: id_from(claimant)?,
            id: id_from(value)?,
        })
    }
}

fn seq_key(device: &DeviceId, seq: u64) -> Vec<u8> {
    [device.as_bytes().as_slice(), &seq.to_be_bytes()].concat()
}

/// A table, or `None` in a home made before it existed (chains, heads and
/// set-aside changes came later): such a home reads it as empty.
fn made<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    table: TableDefinition<'static, K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, Error> {
    match txn.open_table(table) {
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        other => Ok(Some(other?)),
    }
}

fn seq_row(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    device: &DeviceId,
) -> Result<(u64, u64), Error> {
    match table.get(device.as_bytes().as_slice())? {
        Some(value) => parse_seq_value(value.value()),
        None => Ok((0, 0)),
    }
}

fn seq_value(max: u64, count: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&max.to_be_bytes());
    out[8..].copy_from_slice(&count.to_be_bytes());
    out
}

fn parse_seq_value(bytes: &[u8]) -> Result<(u64, u64), Error> {
    let bytes = <[u8; 16]>::try_from(bytes).map_err(|_| Error::store("a seqs row of 16 bytes"))?;
    let (max, count) = bytes.split_at(8);
    let number = |b: &[u8]| <[u8; 8]>::try_from(b).map(u64::from_be_bytes);
    Ok((
        number(max).map_err(|_| Error::store("seqs row"))?,
        number(count).map_err(|_| Error::store("seqs row"))?,
    ))
}

fn id_from(bytes: &[u8]) -> Result<EnvelopeId, Error> {
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| Error::store("envelope id of the wrong length"))?;
    Ok(EnvelopeId::from_bytes(bytes))
}

/// Makes the home directory private to its owner where that means
/// something.
fn restrict(home: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700));
    }
    #[cfg(not(unix))]
    let _ = home;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use cairn_wire::{
        DeviceId, EnvelopeHeader, Payload, Scope, SigningKey, UnsignedEnvelope, UserId,
    };

    use super::*;

    #[test]
    fn waiting_envelopes_are_read_a_page_at_a_time_in_id_order() {
        let home = tempfile::TempDir::new().unwrap();
        let store = LocalStore::create(home.path()).unwrap();
        let key = SigningKey::from_bytes(&[9; 32]);
        let (user, device) = (
            UserId::from_bytes([1; 32]),
            DeviceId::from_bytes(key.verifying_key().to_bytes()),
        );
        let mut batch = Batch::default();
        for seq in 1..=600 {
            let envelope = UnsignedEnvelope {
                header: EnvelopeHeader::new(
                    user,
                    device,
                    seq,
                    cairn_wire::FIRST_IN_STREAM,
                    seq,
                    Scope::Friends,
                ),
                payload: Payload::new(vec![0; 8]).unwrap(),
            }
            .sign(&key);
            batch.envelopes.push((envelope.id(), envelope.encode()));
            batch.pending_add.push(envelope.id());
        }
        let mut expected: Vec<EnvelopeId> = batch.pending_add.clone();
        expected.sort();
        store.commit(batch).unwrap();
        assert_eq!(store.pending_len().unwrap(), 600);
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = store.pending_page(after, 256).unwrap();
            assert!(page.len() <= 256);
            let Some(last) = page.last() else { break };
            after = Some(last.id());
            seen.extend(page.iter().map(Envelope::id));
        }
        assert_eq!(seen, expected);
    }
}
