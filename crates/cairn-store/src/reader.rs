//! Reads, each in one redb read transaction (a consistent snapshot), each
//! a point lookup or a range scan over a key prefix. They run on tokio's
//! blocking pool, never on the async runtime.

use cairn_wire::frames::entry_encoding;
use cairn_wire::{
    Cursor, DeviceCertificate, DeviceId, DeviceRevocation, Entry, Envelope, EnvelopeId,
    FriendGrant, FriendRevocation, Scope, StreamId, UserId,
};
use redb::{
    Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata,
};

use crate::api::{
    DeviceRecord, ENTRY_OVERHEAD, EncodedEntry, EncodedRead, ExpiredHead, Gone, Invite, Stats,
    StoredEnvelope, StoredStatement, StreamHead, StreamRead, Tombstone, Usage,
};
use crate::apply::last_seq;
use crate::error::{BackendError, ReadError};
use crate::keys;
use crate::schema::{self, Def};

/// A read-only table of the schema.
pub type Ro = ReadOnlyTable<&'static [u8], &'static [u8]>;

/// Starts a read transaction.
pub fn begin(db: &Database) -> Result<ReadTransaction, ReadError> {
    db.begin_read().map_err(backend)
}

/// Opens a table in a read transaction.
pub fn table(txn: &ReadTransaction, def: Def) -> Result<Ro, ReadError> {
    txn.open_table(def).map_err(backend)
}

/// Maps any engine error to a read error.
pub fn backend(err: impl Into<redb::Error>) -> ReadError {
    match err.into() {
        redb::Error::Corrupted(message) => ReadError::Corrupt(message),
        other => ReadError::Backend(BackendError::new(other)),
    }
}

/// Entries of a stream after `after`, at most `limit`, decoded.
pub fn read_stream(
    db: &Database,
    stream: &StreamId,
    after: u64,
    limit: usize,
    max_bytes: usize,
) -> Result<StreamRead, ReadError> {
    read_stream_as(db, stream, after, limit, max_bytes, |position, stored| {
        Ok(Entry {
            position,
            envelope: Envelope::decode(stored)?,
        })
    })
}

/// Entries of a stream after `after`, at most `limit`, as their wire
/// encodings, from the stored bytes as they are.
pub fn read_stream_encoded(
    db: &Database,
    stream: &StreamId,
    after: u64,
    limit: usize,
    max_bytes: usize,
) -> Result<EncodedRead, ReadError> {
    read_stream_as(db, stream, after, limit, max_bytes, |position, stored| {
        Ok(EncodedEntry {
            position,
            encoding: entry_encoding(position, stored),
        })
    })
}

/// Entries of a stream after `after`, at most `limit` and within
/// `max_bytes` (but at least one), each made by `make` from its position
/// and stored bytes.
fn read_stream_as<E>(
    db: &Database,
    stream: &StreamId,
    after: u64,
    limit: usize,
    max_bytes: usize,
    make: impl Fn(u64, &[u8]) -> Result<E, ReadError>,
) -> Result<StreamRead<E>, ReadError> {
    let txn = begin(db)?;
    let head = head(&table(&txn, schema::STREAMS)?, stream)?;
    let envelopes = table(&txn, schema::ENVELOPES)?;
    let mut entries = Vec::new();
    let mut bytes = 0usize;
    if let Some(first) = after.checked_add(1) {
        let start = keys::entry_key(stream, first);
        let end = keys::entry_key(stream, u64::MAX);
        for row in envelopes
            .range(start.as_slice()..=end.as_slice())
            .map_err(backend)?
            .take(limit)
        {
            let (key, value) = row.map_err(backend)?;
            // The stored length is known before decoding: stop before an
            // entry that would pass the budget, never before the first.
            bytes = bytes.saturating_add(value.value().len() + ENTRY_OVERHEAD);
            if bytes > max_bytes && !entries.is_empty() {
                break;
            }
            let (_, position) = keys::parse_entry_key(key.value())?;
            entries.push(make(position, value.value())?);
        }
    }
    let floor = floor(&table(&txn, schema::FLOORS)?, stream)?;
    let expired = match after < floor {
        true => expired_heads(&table(&txn, schema::EXPIRED_HEADS)?, stream)?,
        false => Vec::new(),
    };
    Ok(StreamRead {
        entries,
        head,
        floor,
        expired,
    })
}

/// Everything gone from the store, for export.
pub fn gone(db: &Database) -> Result<Gone, ReadError> {
    let txn = begin(db)?;
    let mut gone = Gone::default();
    for row in table(&txn, schema::FLOORS)?.iter().map_err(backend)? {
        let (key, value) = row.map_err(backend)?;
        let stream = keys::parse_stream_key(key.value())?;
        gone.floors
            .push((stream, keys::parse_u64(value.value(), "stream floor")?));
    }
    for row in table(&txn, schema::REMOVED_USERS)?
        .iter()
        .map_err(backend)?
    {
        let (key, value) = row.map_err(backend)?;
        let user = UserId::from_bytes(keys::parse_32(key.value(), "removed user")?);
        gone.removed
            .push((user, keys::parse_u64(value.value(), "removal time")?));
    }
    gone.tombstones = tombstones(&txn, &gone.floors)?;
    Ok(gone)
}

/// The expired envelopes: the seq index names every stored envelope of a
/// device, and those whose place is at or below their stream's floor are
/// expired.
fn tombstones(
    txn: &ReadTransaction,
    floors: &[(StreamId, u64)],
) -> Result<Vec<Tombstone>, ReadError> {
    let floors: std::collections::HashMap<StreamId, u64> = floors.iter().copied().collect();
    let ids = table(txn, schema::ENVELOPE_IDS)?;
    let mut out = Vec::new();
    for row in table(txn, schema::DEVICE_SEQS)?.iter().map_err(backend)? {
        let (key, value) = row.map_err(backend)?;
        let (_, device, seq) = keys::parse_device_seq_key(key.value())?;
        let id = keys::parse_envelope_id(value.value())?;
        let Some(location) = ids.get(id.as_bytes().as_slice()).map_err(backend)? else {
            continue;
        };
        let (stream, position) = keys::parse_entry_key(location.value())?;
        if floors.get(&stream).is_some_and(|floor| position <= *floor) {
            out.push(Tombstone {
                stream,
                position,
                device,
                seq,
                id,
            });
        }
    }
    out.sort_by_key(|t| (t.stream, t.position));
    Ok(out)
}

/// The floor of one stream (0: nothing removed).
pub fn floor(floors: &Ro, stream: &StreamId) -> Result<u64, ReadError> {
    match floors
        .get(keys::stream_key(stream).as_slice())
        .map_err(backend)?
    {
        Some(v) => Ok(keys::parse_u64(v.value(), "stream floor")?),
        None => Ok(0),
    }
}

/// Each device's last envelope that expired from `stream`.
pub fn expired_heads(table: &Ro, stream: &StreamId) -> Result<Vec<ExpiredHead>, ReadError> {
    let range = keys::prefix_range(&keys::stream_key(stream));
    let mut heads = Vec::new();
    for row in table
        .range::<&[u8]>(keys::as_slices(&range))
        .map_err(backend)?
    {
        let (key, value) = row.map_err(backend)?;
        heads.push(keys::parse_expired_head(key.value(), value.value())?);
    }
    Ok(heads)
}

/// The head of one stream.
pub fn stream_head(db: &Database, stream: &StreamId) -> Result<u64, ReadError> {
    let txn = begin(db)?;
    head(&table(&txn, schema::STREAMS)?, stream)
}

/// An envelope by id.
pub fn envelope(db: &Database, id: &EnvelopeId) -> Result<Option<StoredEnvelope>, ReadError> {
    let txn = begin(db)?;
    let ids = table(&txn, schema::ENVELOPE_IDS)?;
    let Some(location) = ids.get(id.as_bytes().as_slice()).map_err(backend)? else {
        return Ok(None);
    };
    let (stream, position) = keys::parse_entry_key(location.value())?;
    let envelopes = table(&txn, schema::ENVELOPES)?;
    let bytes = envelopes
        .get(location.value())
        .map_err(backend)?
        .ok_or_else(|| ReadError::Corrupt(format!("envelope {id} indexed but missing")))?;
    let envelope = Envelope::decode(bytes.value())?;
    Ok(Some(StoredEnvelope {
        stream,
        position,
        envelope,
    }))
}

/// Streams whose key starts with `prefix` (empty: all).
pub fn streams_with_prefix(db: &Database, prefix: &[u8]) -> Result<Vec<StreamHead>, ReadError> {
    let txn = begin(db)?;
    let streams = table(&txn, schema::STREAMS)?;
    let range = keys::prefix_range(prefix);
    let mut heads = Vec::new();
    for row in streams
        .range::<&[u8]>(keys::as_slices(&range))
        .map_err(backend)?
    {
        let (key, value) = row.map_err(backend)?;
        heads.push(StreamHead {
            stream: keys::parse_stream_key(key.value())?,
            head: keys::parse_u64(value.value(), "stream head")?,
        });
    }
    Ok(heads)
}

/// Direct streams addressed to `recipient`.
pub fn direct_streams_to(db: &Database, recipient: &UserId) -> Result<Vec<StreamHead>, ReadError> {
    let txn = begin(db)?;
    let index = table(&txn, schema::DIRECT_STREAMS)?;
    let streams = table(&txn, schema::STREAMS)?;
    let range = keys::prefix_range(recipient.as_bytes());
    let mut heads = Vec::new();
    for row in index
        .range::<&[u8]>(keys::as_slices(&range))
        .map_err(backend)?
    {
        let (key, _) = row.map_err(backend)?;
        let (_, owner) = keys::parse_pair_key(key.value())?;
        let stream = StreamId::new(UserId::from_bytes(owner), Scope::Direct(*recipient));
        heads.push(StreamHead {
            stream,
            head: head(&streams, &stream)?,
        });
    }
    Ok(heads)
}

/// One device's record.
pub fn device(
    db: &Database,
    user: &UserId,
    device: &DeviceId,
) -> Result<Option<DeviceRecord>, ReadError> {
    let txn = begin(db)?;
    let tables = DeviceTables::open(&txn)?;
    let record = tables.record(user, device)?;
    Ok(Some(record).filter(|r| r.certificate.is_some() || r.revocation.is_some()))
}

/// Every device of `user`.
pub fn devices(db: &Database, user: &UserId) -> Result<Vec<DeviceRecord>, ReadError> {
    let txn = begin(db)?;
    let tables = DeviceTables::open(&txn)?;
    let mut ids = tables.devices_in(&tables.certs, user)?;
    ids.extend(tables.devices_in(&tables.revocations, user)?);
    ids.sort();
    ids.dedup();
    ids.iter().map(|d| tables.record(user, d)).collect()
}

/// Active grants made by `granter`.
pub fn grants_by(db: &Database, granter: &UserId) -> Result<Vec<FriendGrant>, ReadError> {
    let txn = begin(db)?;
    let friends = table(&txn, schema::FRIENDS)?;
    let range = keys::prefix_range(granter.as_bytes());
    let mut grants = Vec::new();
    for row in friends
        .range::<&[u8]>(keys::as_slices(&range))
        .map_err(backend)?
    {
        let (_, value) = row.map_err(backend)?;
        if let StoredStatement::FriendGrant(grant) = friend_record(value.value())? {
            grants.push(grant);
        }
    }
    Ok(grants)
}

/// Users who granted `grantee`.
pub fn granters_of(db: &Database, grantee: &UserId) -> Result<Vec<UserId>, ReadError> {
    let txn = begin(db)?;
    let index = table(&txn, schema::FRIENDS_BY_GRANTEE)?;
    let range = keys::prefix_range(grantee.as_bytes());
    let mut granters = Vec::new();
    for row in index
        .range::<&[u8]>(keys::as_slices(&range))
        .map_err(backend)?
    {
        let (key, _) = row.map_err(backend)?;
        let (_, granter) = keys::parse_pair_key(key.value())?;
        granters.push(UserId::from_bytes(granter));
    }
    Ok(granters)
}

/// Cursors acknowledged by `device`.
/// When `user` was removed, if they were.
pub fn removed(db: &Database, user: &UserId) -> Result<Option<u64>, ReadError> {
    let txn = begin(db)?;
    let removed = table(&txn, schema::REMOVED_USERS)?;
    match removed.get(user.as_bytes().as_slice()).map_err(backend)? {
        Some(value) => Ok(Some(keys::parse_u64(value.value(), "removal time")?)),
        None => Ok(None),
    }
}

pub fn acked(db: &Database, device: &DeviceId) -> Result<Vec<Cursor>, ReadError> {
    let txn = begin(db)?;
    let acks = table(&txn, schema::ACKS)?;
    let range = keys::prefix_range(device.as_bytes());
    let mut cursors = Vec::new();
    for row in acks
        .range::<&[u8]>(keys::as_slices(&range))
        .map_err(backend)?
    {
        let (key, value) = row.map_err(backend)?;
        let (_, stream) = keys::parse_ack_key(key.value())?;
        let position = keys::parse_u64(value.value(), "acked position")?;
        cursors.push(Cursor { stream, position });
    }
    Ok(cursors)
}

/// Counts.
pub fn stats(db: &Database) -> Result<Stats, ReadError> {
    let txn = begin(db)?;
    let len = |def: Def| -> Result<u64, ReadError> { table(&txn, def)?.len().map_err(backend) };
    Ok(Stats {
        users: len(schema::USERS)?,
        devices: len(schema::DEVICE_CERTS)?,
        revoked_devices: len(schema::DEVICE_REVOCATIONS)?,
        streams: len(schema::STREAMS)?,
        envelopes: len(schema::ENVELOPES)?,
        envelope_bytes: envelope_bytes(&table(&txn, schema::META)?)?,
    })
}

/// What each user has stored, by user id.
pub fn usage(db: &Database) -> Result<Vec<(UserId, Usage)>, ReadError> {
    let txn = begin(db)?;
    let mut all = Vec::new();
    for row in table(&txn, schema::USER_USAGE)?.iter().map_err(backend)? {
        let (key, value) = row.map_err(backend)?;
        let user = keys::key_owner(key.value())?;
        all.push((user, keys::parse_usage(value.value())?));
    }
    Ok(all)
}

/// Every stored invite, by id.
pub fn invites(db: &Database) -> Result<Vec<Invite>, ReadError> {
    let txn = begin(db)?;
    let mut all = Vec::new();
    for row in table(&txn, schema::INVITES)?.iter().map_err(backend)? {
        let (key, value) = row.map_err(backend)?;
        all.push(keys::parse_invite(key.value(), value.value())?);
    }
    Ok(all)
}

/// Every stored statement: certificates, device revocations, then the
/// current friend statement of each pair.
pub fn statements(db: &Database) -> Result<Vec<StoredStatement>, ReadError> {
    let txn = begin(db)?;
    let mut out = Vec::new();
    for row in table(&txn, schema::DEVICE_CERTS)?.iter().map_err(backend)? {
        let (_, value) = row.map_err(backend)?;
        out.push(StoredStatement::DeviceCertificate(
            DeviceCertificate::decode(value.value())?,
        ));
    }
    for row in table(&txn, schema::DEVICE_REVOCATIONS)?
        .iter()
        .map_err(backend)?
    {
        let (_, value) = row.map_err(backend)?;
        out.push(StoredStatement::DeviceRevocation(DeviceRevocation::decode(
            value.value(),
        )?));
    }
    for row in table(&txn, schema::FRIENDS)?.iter().map_err(backend)? {
        let (_, value) = row.map_err(backend)?;
        out.push(friend_record(value.value())?);
    }
    Ok(out)
}

/// The stored envelope byte count.
pub fn envelope_bytes(meta: &Ro) -> Result<u64, ReadError> {
    match meta.get(schema::META_ENVELOPE_BYTES).map_err(backend)? {
        Some(v) => Ok(keys::parse_u64(v.value(), "envelope byte count")?),
        None => Ok(0),
    }
}

/// The head of `stream` in an open `streams` table.
pub fn head(streams: &Ro, stream: &StreamId) -> Result<u64, ReadError> {
    match streams
        .get(keys::stream_key(stream).as_slice())
        .map_err(backend)?
    {
        Some(v) => Ok(keys::parse_u64(v.value(), "stream head")?),
        None => Ok(0),
    }
}

/// Decodes a `friends` record.
pub fn friend_record(record: &[u8]) -> Result<StoredStatement, ReadError> {
    match record.split_first() {
        Some((&keys::FRIEND_GRANT, bytes)) => {
            Ok(StoredStatement::FriendGrant(FriendGrant::decode(bytes)?))
        }
        Some((&keys::FRIEND_REVOCATION, bytes)) => Ok(StoredStatement::FriendRevocation(
            FriendRevocation::decode(bytes)?,
        )),
        _ => Err(ReadError::Corrupt("unknown friend record tag".into())),
    }
}

/// The registry tables, open in one snapshot.
struct DeviceTables {
    certs: Ro,
    revocations: Ro,
    seqs: Ro,
}

impl DeviceTables {
    fn open(txn: &ReadTransaction) -> Result<Self, ReadError> {
        Ok(Self {
            certs: table(txn, schema::DEVICE_CERTS)?,
            revocations: table(txn, schema::DEVICE_REVOCATIONS)?,
            seqs: table(txn, schema::DEVICE_SEQS)?,
        })
    }

    fn record(&self, user: &UserId, device: &DeviceId) -> Result<DeviceRecord, ReadError> {
        let key = keys::pair_key(user.as_bytes(), device.as_bytes());
        let certificate = match self.certs.get(key.as_slice()).map_err(backend)? {
            Some(v) => Some(DeviceCertificate::decode(v.value())?),
            None => None,
        };
        let revocation = match self.revocations.get(key.as_slice()).map_err(backend)? {
            Some(v) => Some(DeviceRevocation::decode(v.value())?),
            None => None,
        };
        Ok(DeviceRecord {
            user: *user,
            device: *device,
            certificate,
            revocation,
            last_seq: last_seq(&self.seqs, user, device).map_err(backend)?,
        })
    }

    fn devices_in(&self, table: &Ro, user: &UserId) -> Result<Vec<DeviceId>, ReadError> {
        let range = keys::prefix_range(user.as_bytes());
        let mut ids = Vec::new();
        for row in table
            .range::<&[u8]>(keys::as_slices(&range))
            .map_err(backend)?
        {
            let (key, _) = row.map_err(backend)?;
            let (_, device) = keys::parse_pair_key(key.value())?;
            ids.push(DeviceId::from_bytes(device));
        }
        Ok(ids)
    }
}

/// The last sequence of a replicated log applied to this copy (0: none).
pub fn log_applied(db: &Database) -> Result<u64, ReadError> {
    let txn = begin(db)?;
    let meta = table(&txn, schema::META)?;
    match meta.get(schema::META_LOG_APPLIED).map_err(backend)? {
        Some(v) => {
            keys::parse_u64(v.value(), "log_applied").map_err(|e| ReadError::Corrupt(e.to_string()))
        }
        None => Ok(0),
    }
}

/// The devices banned in the store.
pub fn banned(db: &Database) -> Result<Vec<DeviceId>, ReadError> {
    let txn = begin(db)?;
    let bans = table(&txn, schema::BANS)?;
    let mut devices = Vec::new();
    for row in bans.iter().map_err(backend)? {
        let (key, _) = row.map_err(backend)?;
        let bytes = <[u8; 32]>::try_from(key.value())
            .map_err(|_| ReadError::Corrupt("a banned device id is 32 bytes".into()))?;
        devices.push(DeviceId::from_bytes(bytes));
    }
    Ok(devices)
}
