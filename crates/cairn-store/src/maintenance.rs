//! Online backup and the invariant check behind `cairn-relay check`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use cairn_wire::{DeviceId, Envelope, EnvelopeId, FIRST_IN_STREAM, StreamId, UserId};
use redb::{Database, ReadTransaction, ReadableTable, ReadableTableMetadata, TableHandle};

use crate::api::{Usage, VerifyReport};
use crate::error::{BackendError, BackupError, ReadError};
use crate::keys;
use crate::reader::{self, Ro, backend, table};
use crate::schema::{self, Def};

/// Rows copied per write transaction of a backup, so that a large store
/// never needs one huge transaction in memory.
const BACKUP_CHUNK_ROWS: usize = 8192;

/// Most problems a verify report lists; past that it says how many more.
const MAX_PROBLEMS: usize = 100;

/// Copies one read snapshot of every table to a new file at `target`.
///
/// The copy goes to `target` with a `.partial` suffix first and is renamed
/// into place after its final durable commit, so `target` either does not
/// exist or is a complete, consistent store.
pub fn backup(db: &Database, target: &Path) -> Result<(), BackupError> {
    if target.exists() {
        return Err(BackupError::Exists(target.to_path_buf()));
    }
    let partial = partial_path(target);
    let write_err = |e: redb::Error| BackupError::Write {
        path: target.to_path_buf(),
        source: BackendError::new(e),
    };
    let _ = fs::remove_file(&partial);
    let snapshot = reader::begin(db)?;
    let copy = Database::create(&partial).map_err(|e| write_err(e.into()))?;
    for def in schema::TABLES {
        copy_table(&snapshot, &copy, def)?;
    }
    drop(copy);
    fs::rename(&partial, target).map_err(|e| write_err(e.into()))?;
    sync_parent(target);
    Ok(())
}

/// Checks every invariant of `spec/storage.md` in one snapshot.
pub fn verify(db: &Database) -> Result<VerifyReport, ReadError> {
    let txn = reader::begin(db)?;
    let mut check = Check::new(&txn)?;
    check.streams()?;
    check.device_seqs()?;
    check.counts()?;
    check.direct_index()?;
    check.registry()?;
    check.friends()?;
    check.acks()?;
    check.chain_heads()?;
    Ok(check.finish())
}

fn copy_table(snapshot: &ReadTransaction, copy: &Database, def: Def) -> Result<(), BackupError> {
    let write_err = |e: redb::Error| BackupError::Write {
        path: PathBuf::from(def.name()),
        source: BackendError::new(e),
    };
    let source = table(snapshot, def)?;
    let mut rows = source.iter().map_err(backend)?.peekable();
    loop {
        let txn = copy.begin_write().map_err(|e| write_err(e.into()))?;
        {
            let mut dest = txn.open_table(def).map_err(|e| write_err(e.into()))?;
            for row in rows.by_ref().take(BACKUP_CHUNK_ROWS) {
                let (key, value) = row.map_err(backend)?;
                dest.insert(key.value(), value.value())
                    .map_err(|e| write_err(e.into()))?;
            }
        }
        txn.commit().map_err(|e| write_err(e.into()))?;
        if rows.peek().is_none() {
            return Ok(());
        }
    }
}

fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Makes the rename durable where the platform allows; a failure here
/// leaves a complete file that may, after a power cut, be missing.
fn sync_parent(target: &Path) {
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty())
        && let Ok(dir) = fs::File::open(parent)
    {
        let _ = dir.sync_all();
    }
}

/// An invariant check in progress: the tables of one snapshot, and what
/// was found so far (apart, so that a scan over a table can record problems).
struct Check {
    t: Tables,
    found: Found,
}

struct Tables {
    envelopes: Ro,
    envelope_ids: Ro,
    streams: Ro,
    direct_streams: Ro,
    device_seqs: Ro,
    device_certs: Ro,
    device_users: Ro,
    users: Ro,
    friends: Ro,
    friends_by_grantee: Ro,
    acks: Ro,
    user_usage: Ro,
    meta: Ro,
    chain_heads: Ro,
    floors: Ro,
    removed_users: Ro,
    expired_heads: Ro,
}

#[derive(Default)]
struct Found {
    report: VerifyReport,
    more_problems: u64,
    bytes: u64,
    /// What each stream owner stored, counted from the log.
    usage: BTreeMap<UserId, Usage>,
    /// Each device's last envelope in each stream, from the log.
    chains: BTreeMap<Vec<u8>, EnvelopeId>,
}

impl Found {
    fn problem(&mut self, text: String) {
        if self.report.problems.len() < MAX_PROBLEMS {
            self.report.problems.push(text);
        } else {
            self.more_problems += 1;
        }
    }

    fn finish(mut self) -> VerifyReport {
        if self.more_problems > 0 {
            let more = self.more_problems;
            self.report.problems.push(format!("... and {more} more"));
        }
        self.report
    }
}

impl Check {
    fn new(txn: &ReadTransaction) -> Result<Self, ReadError> {
        let t = Tables {
            envelopes: table(txn, schema::ENVELOPES)?,
            envelope_ids: table(txn, schema::ENVELOPE_IDS)?,
            streams: table(txn, schema::STREAMS)?,
            direct_streams: table(txn, schema::DIRECT_STREAMS)?,
            device_seqs: table(txn, schema::DEVICE_SEQS)?,
            device_certs: table(txn, schema::DEVICE_CERTS)?,
            device_users: table(txn, schema::DEVICE_USERS)?,
            users: table(txn, schema::USERS)?,
            friends: table(txn, schema::FRIENDS)?,
            friends_by_grantee: table(txn, schema::FRIENDS_BY_GRANTEE)?,
            acks: table(txn, schema::ACKS)?,
            user_usage: table(txn, schema::USER_USAGE)?,
            meta: table(txn, schema::META)?,
            chain_heads: table(txn, schema::CHAIN_HEADS)?,
            floors: table(txn, schema::FLOORS)?,
            removed_users: table(txn, schema::REMOVED_USERS)?,
            expired_heads: table(txn, schema::EXPIRED_HEADS)?,
        };
        Ok(Self {
            t,
            found: Found::default(),
        })
    }

    fn finish(self) -> VerifyReport {
        self.found.finish()
    }

    /// Every stream holds exactly positions 1..=head, each envelope decodes,
    /// belongs to the stream and is indexed by id and by device sequence.
    fn streams(&mut self) -> Result<(), ReadError> {
        let mut heads = Vec::new();
        for row in self.t.streams.iter().map_err(backend)? {
            let (key, value) = row.map_err(backend)?;
            let stream = keys::parse_stream_key(key.value())?;
            heads.push((stream, keys::parse_u64(value.value(), "stream head")?));
        }
        for (stream, head) in heads {
            self.found.report.streams += 1;
            self.stream(&stream, head)?;
        }
        Ok(())
    }

    fn stream(&mut self, stream: &StreamId, head: u64) -> Result<(), ReadError> {
        let stream_key = keys::stream_key(stream);
        let floor = match self.t.floors.get(stream_key.as_slice()).map_err(backend)? {
            Some(value) => keys::parse_u64(value.value(), "stream floor")?,
            None => 0,
        };
        if floor > head {
            self.found
                .problem(format!("{stream}: floor {floor} is past its head {head}"));
        }
        let range = keys::prefix_range(&stream_key);
        let mut expected = floor.saturating_add(1);
        for row in self
            .t
            .envelopes
            .range::<&[u8]>(keys::as_slices(&range))
            .map_err(backend)?
        {
            let (key, value) = row.map_err(backend)?;
            let (in_stream, position) = keys::parse_entry_key(key.value())?;
            if in_stream != *stream || position != expected {
                self.found.problem(format!(
                    "{stream}: expected position {expected}, found {position}"
                ));
            }
            expected = position.saturating_add(1);
            self.t
                .entry(&mut self.found, stream, key.value(), value.value())?;
        }
        let last = expected.saturating_sub(1);
        if last != head {
            self.found
                .problem(format!("{stream}: head is {head}, last entry is {last}"));
        }
        Ok(())
    }

    /// The chain heads are each device's last envelope in each stream.
    fn chain_heads(&mut self) -> Result<(), ReadError> {
        let mut stored = BTreeMap::new();
        for row in self.t.chain_heads.iter().map_err(backend)? {
            let (key, value) = row.map_err(backend)?;
            stored.insert(
                key.value().to_vec(),
                keys::parse_envelope_id(value.value())?,
            );
        }
        // A device whose envelopes in a stream all expired still has its
        // last one as its chain head there.
        let mut expected = self.found.chains.clone();
        for row in self.t.expired_heads.iter().map_err(backend)? {
            let (key, value) = row.map_err(backend)?;
            let stream_len = key.value().len().saturating_sub(32);
            let stream = keys::parse_stream_key(key.value().get(..stream_len).unwrap_or_default())?;
            let head = keys::parse_expired_head(key.value(), value.value())?;
            let chain = keys::chain_key(&stream.owner, &head.device, &stream);
            expected.entry(chain).or_insert(head.id);
        }
        if stored != expected {
            self.found
                .problem("the chain heads do not match the devices' last envelopes".into());
        }
        Ok(())
    }

    /// Every device's sequence numbers are exactly 1..=last.
    fn device_seqs(&mut self) -> Result<(), ReadError> {
        let mut last: Option<([u8; 64], u64)> = None;
        let mut problems = Vec::new();
        for row in self.t.device_seqs.iter().map_err(backend)? {
            let (key, _) = row.map_err(backend)?;
            let (user, device, seq) = keys::parse_device_seq_key(key.value())?;
            let mut pair = [0u8; 64];
            pair.copy_from_slice(&keys::pair_key(user.as_bytes(), device.as_bytes()));
            let expected = match last {
                Some((p, s)) if p == pair => s.saturating_add(1),
                _ => 1,
            };
            if seq != expected {
                problems.push(format!(
                    "device {device} of {user}: expected seq {expected}, found {seq}"
                ));
            }
            last = Some((pair, seq));
        }
        problems.into_iter().for_each(|p| self.found.problem(p));
        Ok(())
    }

    fn counts(&mut self) -> Result<(), ReadError> {
        let envelopes = self.found.report.envelopes;
        let tombstones = self.tombstones()?;
        let indexed = envelopes + tombstones;
        let tables = [
            (
                "envelopes",
                self.t.envelopes.len().map_err(backend)?,
                envelopes,
            ),
            (
                "envelope id index",
                self.t.envelope_ids.len().map_err(backend)?,
                indexed,
            ),
            (
                "device sequence index",
                self.t.device_seqs.len().map_err(backend)?,
                indexed,
            ),
        ];
        for (name, len, expected) in tables {
            if len != expected {
                self.found.problem(format!(
                    "{name} holds {len} rows, streams hold {envelopes} (and {tombstones} expired)"
                ));
            }
        }
        let stored = reader::envelope_bytes(&self.t.meta)?;
        if stored != self.found.bytes {
            let bytes = self.found.bytes;
            self.found
                .problem(format!("byte counter is {stored}, envelopes take {bytes}"));
        }
        self.usage()
    }

    /// Ids of expired envelopes, which stay indexed (by id and by seq) with
    /// their entry gone: those whose position is at or below their stream's
    /// floor.
    fn tombstones(&mut self) -> Result<u64, ReadError> {
        let mut tombstones = 0;
        for row in self.t.envelope_ids.iter().map_err(backend)? {
            let (_, location) = row.map_err(backend)?;
            let (stream, position) = keys::parse_entry_key(location.value())?;
            if position <= reader::floor(&self.t.floors, &stream)? {
                tombstones += 1;
            }
        }
        Ok(tombstones)
    }

    /// Each user's usage counters match what their streams hold.
    fn usage(&mut self) -> Result<(), ReadError> {
        let mut stored = BTreeMap::new();
        for row in self.t.user_usage.iter().map_err(backend)? {
            let (key, value) = row.map_err(backend)?;
            let user = keys::key_owner(key.value())?;
            stored.insert(user, keys::parse_usage(value.value())?);
        }
        if stored != self.found.usage {
            self.found
                .problem("users' usage counters do not match their streams".into());
        }
        Ok(())
    }

    /// The direct index lists exactly the direct streams.
    fn direct_index(&mut self) -> Result<(), ReadError> {
        let mut indexed = BTreeSet::new();
        for row in self.t.direct_streams.iter().map_err(backend)? {
            let (key, _) = row.map_err(backend)?;
            let (recipient, owner) = keys::parse_pair_key(key.value())?;
            indexed.insert((owner, recipient));
        }
        let mut direct = BTreeSet::new();
        for row in self.t.streams.iter().map_err(backend)? {
            let (key, _) = row.map_err(backend)?;
            let stream = keys::parse_stream_key(key.value())?;
            if let Some(recipient) = stream.scope.recipient() {
                direct.insert((*stream.owner.as_bytes(), *recipient.as_bytes()));
            }
        }
        if indexed != direct {
            self.found
                .problem("direct stream index does not match the direct streams".into());
        }
        Ok(())
    }

    /// Device owners and users match the certificates.
    fn registry(&mut self) -> Result<(), ReadError> {
        let mut owners = BTreeSet::new();
        let mut users = BTreeSet::new();
        for row in self.t.device_certs.iter().map_err(backend)? {
            let (key, _) = row.map_err(backend)?;
            let (user, device) = keys::parse_pair_key(key.value())?;
            owners.insert((device, user));
            users.insert(user);
            self.found.report.devices += 1;
        }
        let indexed_owners = pairs(&self.t.device_users)?;
        let mut indexed_users = BTreeSet::new();
        for row in self.t.users.iter().map_err(backend)? {
            let (key, _) = row.map_err(backend)?;
            indexed_users.insert(keys::parse_32(key.value(), "user key")?);
        }
        if owners != indexed_owners {
            self.found
                .problem("device owner index does not match the certificates".into());
        }
        if users != indexed_users {
            self.found
                .problem("user index does not match the certificates".into());
        }
        for row in self.t.removed_users.iter().map_err(backend)? {
            let (key, _) = row.map_err(backend)?;
            let user = keys::parse_32(key.value(), "removed user")?;
            if users.contains(&user) {
                self.found.problem(format!(
                    "removed user {} still has device certificates",
                    UserId::from_bytes(user)
                ));
            }
        }
        Ok(())
    }

    /// The grantee index lists exactly the pairs whose latest statement is a
    /// grant.
    fn friends(&mut self) -> Result<(), ReadError> {
        let mut granted = BTreeSet::new();
        for row in self.t.friends.iter().map_err(backend)? {
            let (key, value) = row.map_err(backend)?;
            let (granter, grantee) = keys::parse_pair_key(key.value())?;
            if value.value().first() == Some(&keys::FRIEND_GRANT) {
                granted.insert((grantee, granter));
            }
            reader::friend_record(value.value())?;
        }
        if granted != pairs(&self.t.friends_by_grantee)? {
            self.found
                .problem("grantee index does not match the friend grants".into());
        }
        Ok(())
    }

    /// No acknowledged cursor is past its stream's head.
    fn acks(&mut self) -> Result<(), ReadError> {
        let mut cursors = BTreeMap::new();
        for row in self.t.acks.iter().map_err(backend)? {
            let (key, value) = row.map_err(backend)?;
            let (device, stream) = keys::parse_ack_key(key.value())?;
            let position = keys::parse_u64(value.value(), "acked position")?;
            cursors.insert((device, stream), position);
        }
        for ((device, stream), position) in cursors {
            let head = reader::head(&self.t.streams, &stream)?;
            if position > head {
                self.found.problem(format!(
                    "{device} acked {stream} at {position}, head is {head}"
                ));
            }
        }
        Ok(())
    }
}

impl Tables {
    fn entry(
        &self,
        found: &mut Found,
        stream: &StreamId,
        key: &[u8],
        bytes: &[u8],
    ) -> Result<(), ReadError> {
        found.report.envelopes += 1;
        found.bytes = found.bytes.saturating_add(bytes.len() as u64);
        let used = found.usage.entry(stream.owner).or_default();
        *used = used.plus(bytes.len() as u64);
        let id = Envelope::id_of_encoding(bytes);
        let envelope = match Envelope::decode(bytes) {
            Ok(envelope) => envelope,
            Err(err) => {
                found.problem(format!("{stream}: entry {id} does not decode: {err}"));
                return Ok(());
            }
        };
        if envelope.stream() != *stream {
            found.problem(format!(
                "{id}: stored in {stream}, belongs to {}",
                envelope.stream()
            ));
        }
        let indexed = self
            .envelope_ids
            .get(id.as_bytes().as_slice())
            .map_err(backend)?;
        if indexed.as_ref().map(|v| v.value()) != Some(key) {
            found.problem(format!("{id}: id index does not point at its entry"));
        }
        let h = envelope.header();
        let chain = keys::chain_key(&h.author, &h.device, stream);
        let before = match found.chains.insert(chain, id) {
            Some(before) => before,
            None => self.last_expired(stream, &h.device)?,
        };
        if h.prev != before {
            found.problem(format!(
                "{id}: names {} as its device's previous envelope in {stream}, which is {before}",
                h.prev
            ));
        }
        let seq_key = keys::device_seq_key(&h.author, &h.device, h.seq);
        let by_seq = self.device_seqs.get(seq_key.as_slice()).map_err(backend)?;
        if by_seq.as_ref().map(|v| v.value()) != Some(id.as_bytes().as_slice()) {
            found.problem(format!("{id}: device sequence index does not point at it"));
        }
        Ok(())
    }
}

impl Tables {
    /// The device's last expired envelope in `stream`, which its first
    /// envelope left there names; [`FIRST_IN_STREAM`] if none expired.
    fn last_expired(&self, stream: &StreamId, device: &DeviceId) -> Result<EnvelopeId, ReadError> {
        let key = keys::expired_head_key(stream, device);
        match self.expired_heads.get(key.as_slice()).map_err(backend)? {
            Some(value) => Ok(keys::parse_expired_head(&key, value.value())?.id),
            None => Ok(FIRST_IN_STREAM),
        }
    }
}

/// A set of 32-byte id pairs, as the pair-keyed indexes hold them.
type Pairs = BTreeSet<([u8; 32], [u8; 32])>;

fn pairs(index: &Ro) -> Result<Pairs, ReadError> {
    let mut set = BTreeSet::new();
    for row in index.iter().map_err(backend)? {
        let (key, _) = row.map_err(backend)?;
        set.insert(keys::parse_pair_key(key.value())?);
    }
    Ok(set)
}

/// Files a backup carries beside the log (the relay's TLS identity and ban
/// list), by name: only ever in backup files, and taken out on restore.
const BACKUP_FILES: Def = redb::TableDefinition::new("cairn_backup_files");

/// Adds `files` to the backup at `path` (closed), in one commit.
pub fn attach_files(path: &Path, files: &[(&str, Vec<u8>)]) -> Result<(), BackupError> {
    let write_err = |e: redb::Error| BackupError::Write {
        path: path.to_path_buf(),
        source: BackendError::new(e),
    };
    let db = Database::open(path).map_err(|e| write_err(e.into()))?;
    let txn = schema::begin_write(&db, true).map_err(write_err)?;
    {
        let mut table = txn
            .open_table(BACKUP_FILES)
            .map_err(|e| write_err(e.into()))?;
        for (name, bytes) in files {
            table
                .insert(name.as_bytes(), bytes.as_slice())
                .map_err(|e| write_err(e.into()))?;
        }
    }
    txn.commit().map_err(|e| write_err(e.into()))
}

/// Takes the files a backup at `path` (closed) carries out of it: what
/// [`attach_files`] put there, none for a backup made without them.
pub fn take_files(path: &Path) -> Result<Vec<(String, Vec<u8>)>, BackupError> {
    let write_err = |e: redb::Error| BackupError::Write {
        path: path.to_path_buf(),
        source: BackendError::new(e),
    };
    let db = Database::open(path).map_err(|e| write_err(e.into()))?;
    let txn = schema::begin_write(&db, true).map_err(write_err)?;
    let mut files = Vec::new();
    {
        let table = match txn.open_table(BACKUP_FILES) {
            Ok(table) => table,
            Err(e) => return Err(write_err(e.into())),
        };
        for row in table.iter().map_err(|e| write_err(e.into()))? {
            let (name, bytes) = row.map_err(|e| write_err(e.into()))?;
            let name = String::from_utf8_lossy(name.value()).into_owned();
            files.push((name, bytes.value().to_vec()));
        }
    }
    txn.delete_table(BACKUP_FILES)
        .map_err(|e| write_err(e.into()))?;
    txn.commit().map_err(|e| write_err(e.into()))?;
    Ok(files)
}
