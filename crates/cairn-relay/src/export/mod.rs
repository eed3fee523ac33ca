//! The export format: a versioned, line-oriented dump of a relay's log and
//! statements, for moving a relay between machines or backends. See
//! `spec/relay.md` section 8.
//!
//! An export is untrusted input when imported: every line is bounded,
//! every statement and envelope is decoded canonically and its signature
//! verified, and the import must reproduce every exported position.

mod gone;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, Write};

use cairn_store::{ItemOutcome, Restore, StatementOutcome, Store, StoredStatement, Tombstone};
use cairn_wire::limits::{MAX_BATCH, MAX_ENVELOPE_LEN, MAX_PAGE_ENTRIES};
use cairn_wire::{
    DeviceCertificate, DeviceId, DeviceRevocation, Envelope, FriendGrant, FriendRevocation,
    StreamId,
};
use serde::{Deserialize, Serialize};

/// The `format` of the header line.
pub const FORMAT: &str = "cairn-relay-export";
/// The `version` of the header line this build writes; it reads 1 too
/// (an export from before anything could be gone).
pub const VERSION: u32 = 2;
/// Longest line accepted on import: a maximal envelope in hex plus room.
pub const MAX_LINE_LEN: usize = 2 * MAX_ENVELOPE_LEN + 1024;

/// One line of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Line {
    /// First line.
    Header {
        /// Always [`FORMAT`].
        format: String,
        /// Format version.
        version: u32,
    },
    /// A signed statement, canonical encoding in hex.
    Statement {
        /// `device_certificate`, `device_revocation`, `friend_grant` or `friend_revocation`.
        kind: String,
        /// The encoding.
        hex: String,
    },
    /// An envelope at its position, canonical encoding in hex.
    Envelope {
        /// Position in its stream (the stream follows from the envelope).
        position: u64,
        /// The encoding.
        hex: String,
    },
    /// A user the operator removed (version 2).
    Removed {
        /// The user (`cu1…`).
        user: String,
        /// When (Unix ms).
        at_ms: u64,
    },
    /// A stream emptied with its user (version 2): positions up to
    /// `through` are gone and nothing of them is carried.
    Floor {
        /// The stream's canonical encoding, in hex.
        stream: String,
        /// Its floor and head.
        through: u64,
    },
    /// An envelope that expired (version 2): where it was and whose, not
    /// its content.
    Expired {
        /// Its stream's canonical encoding, in hex.
        stream: String,
        /// Its position there.
        position: u64,
        /// Its device (`cd1…`).
        device: String,
        /// Its seq.
        seq: u64,
        /// Its id, in hex.
        id: String,
    },
    /// Last line: counts, so that a truncated export is detected.
    End {
        /// Statement lines written.
        statements: u64,
        /// Envelope lines written.
        envelopes: u64,
        /// `removed`, `floor` and `expired` lines written (version 2).
        #[serde(default)]
        gone: u64,
    },
}

/// Exporting or importing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Reading or writing the file failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The store failed.
    #[error("store: {0}")]
    Store(String),
    /// A line is not valid.
    #[error("line {line}: {reason}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The import did not reproduce the export.
    #[error("import inconsistent: {0}")]
    Inconsistent(String),
}

/// What an export or import moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Statements.
    pub statements: u64,
    /// Envelopes.
    pub envelopes: u64,
}

/// Writes every statement, then every stream in key order.
pub async fn export<S: Store>(store: &S, out: &mut impl Write) -> Result<Counts, ExportError> {
    let mut counts = Counts::default();
    write_line(
        out,
        &Line::Header {
            format: FORMAT.into(),
            version: VERSION,
        },
    )?;
    for statement in store.statements().await.map_err(store_error)? {
        let (kind, bytes) = statement_parts(&statement);
        write_line(
            out,
            &Line::Statement {
                kind: kind.into(),
                hex: hex::encode(bytes),
            },
        )?;
        counts.statements += 1;
    }
    let gone = store.gone().await.map_err(store_error)?;
    let mut gone_lines = 0;
    for line in gone::removed_lines(&gone) {
        write_line(out, &line)?;
        gone_lines += 1;
    }
    for head in store.all_streams().await.map_err(store_error)? {
        for line in gone::stream_lines(&gone, &head.stream) {
            write_line(out, &line)?;
            gone_lines += 1;
        }
        counts.envelopes += export_stream(store, head.stream, out).await?;
    }
    write_line(
        out,
        &Line::End {
            statements: counts.statements,
            envelopes: counts.envelopes,
            gone: gone_lines,
        },
    )?;
    out.flush()?;
    Ok(counts)
}

async fn export_stream<S: Store>(
    store: &S,
    stream: StreamId,
    out: &mut impl Write,
) -> Result<u64, ExportError> {
    let (mut after, mut written) = (0, 0);
    loop {
        let read = store
            .read_stream(stream, after, MAX_PAGE_ENTRIES)
            .await
            .map_err(store_error)?;
        for entry in &read.entries {
            write_line(
                out,
                &Line::Envelope {
                    position: entry.position,
                    hex: hex::encode(entry.envelope.encode()),
                },
            )?;
            after = entry.position;
            written += 1;
        }
        if !read.more() {
            return Ok(written);
        }
    }
}

/// Reads an export into an empty store, checking everything as untrusted
/// input, and checks that every envelope landed at its exported position.
pub async fn import<S: Store>(store: &S, input: impl BufRead) -> Result<Counts, ExportError> {
    let parsed = parse(input)?;
    for certificate in &parsed.certificates {
        apply(
            store.register_device(certificate.clone()).await,
            "device certificate",
        )?;
    }
    for &(user, at_ms) in &parsed.removed {
        restore(store, Restore::Removed { user, at_ms }).await?;
    }
    for &(stream, through) in &parsed.floors {
        restore(store, Restore::Floor { stream, through }).await?;
    }
    let envelopes = import_envelopes(store, parsed.streams).await?;
    for revocation in parsed.revocations {
        apply(store.revoke_device(revocation).await, "device revocation")?;
    }
    for grant in parsed.friendships {
        match grant {
            Friendship::Grant(g) => apply(store.grant_friend(g).await, "friend grant")?,
            Friendship::Revocation(r) => apply(store.revoke_friend(r).await, "friend revocation")?,
        }
    }
    Ok(Counts {
        statements: parsed.statements,
        envelopes,
    })
}

/// Reads an export as `import` does, checking every line as untrusted
/// input (formats, signatures, positions, counts) without a store: what
/// the fuzz target `export` drives. The counts of what it holds.
pub fn validate(input: impl BufRead) -> Result<Counts, ExportError> {
    let parsed = parse(input)?;
    let envelopes = parsed
        .streams
        .values()
        .flatten()
        .filter(|(_, item)| matches!(item, Item::Envelope(_)))
        .count();
    Ok(Counts {
        statements: parsed.statements,
        envelopes: u64::try_from(envelopes).unwrap_or(u64::MAX),
    })
}

#[derive(Debug, Default)]
struct Parsed {
    certificates: Vec<DeviceCertificate>,
    revocations: Vec<DeviceRevocation>,
    friendships: Vec<Friendship>,
    streams: BTreeMap<StreamId, VecDeque<(u64, Item)>>,
    statements: u64,
    removed: Vec<(cairn_wire::UserId, u64)>,
    /// Streams emptied with their user: their floor, where their
    /// positions resume.
    floors: Vec<(StreamId, u64)>,
    /// `removed`, `floor` and `expired` lines read.
    gone: u64,
}

/// One position of a stream in an export: an envelope, or an expired
/// envelope's tombstone.
#[derive(Debug)]
enum Item {
    Envelope(Envelope),
    Expired(Tombstone),
}

impl Item {
    fn device_seq(&self) -> (DeviceId, u64) {
        match self {
            Self::Envelope(e) => (e.header().device, e.header().seq),
            Self::Expired(t) => (t.device, t.seq),
        }
    }
}

#[derive(Debug)]
enum Friendship {
    Grant(FriendGrant),
    Revocation(FriendRevocation),
}

impl Friendship {
    fn time(&self) -> u64 {
        match self {
            Self::Grant(g) => g.body().issued_ms,
            Self::Revocation(r) => r.body().revoked_ms,
        }
    }
}

fn parse(input: impl BufRead) -> Result<Parsed, ExportError> {
    let mut parsed = Parsed::default();
    let mut lines = BoundedLines::new(input);
    let header = lines.next_line()?.ok_or_else(|| bad(1, "empty file"))?;
    match serde_json::from_str(&header).map_err(|e| bad(1, &e.to_string()))? {
        Line::Header { format, version }
            if format == FORMAT && (1..=VERSION).contains(&version) => {}
        Line::Header { format, version } => {
            return Err(bad(
                1,
                &format!("unsupported export {format} version {version}"),
            ));
        }
        _ => return Err(bad(1, "missing header line")),
    }
    let mut envelopes = 0u64;
    while let Some(text) = lines.next_line()? {
        let n = lines.number;
        match serde_json::from_str(&text).map_err(|e| bad(n, &e.to_string()))? {
            Line::Statement { kind, hex } => {
                parse_statement(&mut parsed, n, &kind, &decode_hex(n, &hex)?)?
            }
            Line::Envelope { position, hex } => {
                parse_envelope(&mut parsed, n, position, &decode_hex(n, &hex)?)?;
                envelopes += 1;
            }
            Line::Removed { user, at_ms } => {
                parsed.removed.push((gone::parse_user(n, &user)?, at_ms));
                parsed.gone += 1;
            }
            Line::Floor { stream, through } => {
                let stream = gone::parse_stream(n, &stream)?;
                if parsed.streams.contains_key(&stream)
                    || parsed.floors.iter().any(|f| f.0 == stream)
                {
                    return Err(bad(n, "a floor after positions of its stream"));
                }
                parsed.floors.push((stream, through));
                parsed.gone += 1;
            }
            Line::Expired {
                stream,
                position,
                device,
                seq,
                id,
            } => {
                let fields = (stream.as_str(), position, device.as_str(), seq, id.as_str());
                let tombstone = gone::parse_tombstone(n, fields)?;
                push_item(
                    &mut parsed,
                    n,
                    tombstone.stream,
                    position,
                    Item::Expired(tombstone),
                )?;
                parsed.gone += 1;
            }
            Line::End {
                statements,
                envelopes: expected,
                gone,
            } => {
                if statements != parsed.statements || expected != envelopes || gone != parsed.gone {
                    return Err(bad(
                        n,
                        "counts do not match the lines read: the export is incomplete",
                    ));
                }
                parsed.friendships.sort_by_key(Friendship::time);
                return Ok(parsed);
            }
            Line::Header { .. } => return Err(bad(n, "a second header")),
        }
    }
    Err(bad(lines.number, "no end line: the export is truncated"))
}

fn parse_statement(
    parsed: &mut Parsed,
    n: usize,
    kind: &str,
    bytes: &[u8],
) -> Result<(), ExportError> {
    let invalid = |e: &dyn std::fmt::Display| bad(n, &format!("{kind}: {e}"));
    match kind {
        "device_certificate" => {
            let s = DeviceCertificate::decode(bytes).map_err(|e| invalid(&e))?;
            s.verify().map_err(|e| invalid(&e))?;
            parsed.certificates.push(s);
        }
        "device_revocation" => {
            let s = DeviceRevocation::decode(bytes).map_err(|e| invalid(&e))?;
            s.verify().map_err(|e| invalid(&e))?;
            parsed.revocations.push(s);
        }
        "friend_grant" => {
            let s = FriendGrant::decode(bytes).map_err(|e| invalid(&e))?;
            s.verify().map_err(|e| invalid(&e))?;
            parsed.friendships.push(Friendship::Grant(s));
        }
        "friend_revocation" => {
            let s = FriendRevocation::decode(bytes).map_err(|e| invalid(&e))?;
            s.verify().map_err(|e| invalid(&e))?;
            parsed.friendships.push(Friendship::Revocation(s));
        }
        other => return Err(bad(n, &format!("unknown statement kind `{other}`"))),
    }
    parsed.statements += 1;
    Ok(())
}

fn parse_envelope(
    parsed: &mut Parsed,
    n: usize,
    position: u64,
    bytes: &[u8],
) -> Result<(), ExportError> {
    let envelope = Envelope::decode(bytes).map_err(|e| bad(n, &format!("envelope: {e}")))?;
    envelope
        .verify()
        .map_err(|e| bad(n, &format!("envelope: {e}")))?;
    push_item(
        parsed,
        n,
        envelope.stream(),
        position,
        Item::Envelope(envelope),
    )
}

/// Queues `item` at `position` of `stream`, which must be the next one
/// (after the stream's floor, if it has one).
fn push_item(
    parsed: &mut Parsed,
    n: usize,
    stream: StreamId,
    position: u64,
    item: Item,
) -> Result<(), ExportError> {
    let floor = parsed
        .floors
        .iter()
        .find(|f| f.0 == stream)
        .map_or(0, |f| f.1);
    let entries = parsed.streams.entry(stream).or_default();
    let expected = entries.back().map_or(floor + 1, |(p, _)| p + 1);
    if position != expected {
        return Err(bad(
            n,
            &format!("position {position} where {expected} was expected"),
        ));
    }
    entries.push_back((position, item));
    Ok(())
}

/// Appends every stream so that each device's sequence numbers and each
/// stream's positions both come in order. The original commit order is
/// one such order, so picking any envelope that is next in its stream and
/// next for its device always makes progress.
async fn import_envelopes<S: Store>(
    store: &S,
    mut streams: BTreeMap<StreamId, VecDeque<(u64, Item)>>,
) -> Result<u64, ExportError> {
    let mut next_seq: HashMap<DeviceId, u64> = HashMap::new();
    let mut imported = 0;
    loop {
        let ready = ready_batch(&mut streams, &mut next_seq);
        if ready.is_empty() {
            break;
        }
        // In their order: appends gathered until a tombstone, which goes
        // in after them.
        let mut batch = Vec::new();
        for (position, item) in ready {
            match item {
                Item::Envelope(envelope) => batch.push((position, envelope)),
                Item::Expired(tombstone) => {
                    imported += append_checked(store, std::mem::take(&mut batch)).await?;
                    restore(store, Restore::Tombstone(tombstone)).await?;
                }
            }
        }
        imported += append_checked(store, batch).await?;
    }
    if streams.values().any(|entries| !entries.is_empty()) {
        return Err(ExportError::Inconsistent(
            "some envelopes do not follow their device's sequence".into(),
        ));
    }
    Ok(imported)
}

/// Appends `batch` and checks that each envelope landed at its exported
/// position; how many did.
async fn append_checked<S: Store>(
    store: &S,
    batch: Vec<(u64, Envelope)>,
) -> Result<u64, ExportError> {
    if batch.is_empty() {
        return Ok(0);
    }
    let positions: Vec<u64> = batch.iter().map(|(p, _)| *p).collect();
    let outcomes = store
        .append(batch.into_iter().map(|(_, e)| e).collect())
        .await
        .map_err(store_error)?;
    for (expected, outcome) in positions.iter().zip(&outcomes) {
        match outcome {
            ItemOutcome::Stored { position, .. } if position == expected => {}
            other => {
                return Err(ExportError::Inconsistent(format!(
                    "expected position {expected}, got {other:?}"
                )));
            }
        }
    }
    Ok(positions.len() as u64)
}

/// Puts back what the export says is gone, or says why it does not follow.
async fn restore<S: Store>(store: &S, what: Restore) -> Result<(), ExportError> {
    store
        .restore(what)
        .await
        .map_err(store_error)?
        .map_err(|why| ExportError::Inconsistent(why.to_owned()))
}

fn ready_batch(
    streams: &mut BTreeMap<StreamId, VecDeque<(u64, Item)>>,
    next_seq: &mut HashMap<DeviceId, u64>,
) -> Vec<(u64, Item)> {
    let mut batch = Vec::new();
    for entries in streams.values_mut() {
        while batch.len() < MAX_BATCH {
            let Some((_, item)) = entries.front() else {
                break;
            };
            let (device, seq) = item.device_seq();
            let next = next_seq.entry(device).or_insert(1);
            if seq != *next {
                break;
            }
            *next += 1;
            if let Some(entry) = entries.pop_front() {
                batch.push(entry);
            }
        }
    }
    batch
}

fn apply(
    outcome: Result<StatementOutcome, cairn_store::WriteError>,
    what: &str,
) -> Result<(), ExportError> {
    match outcome.map_err(store_error)? {
        StatementOutcome::Applied | StatementOutcome::Unchanged => Ok(()),
        StatementOutcome::Refused(r) => {
            Err(ExportError::Inconsistent(format!("{what} refused: {r:?}")))
        }
    }
}

fn statement_parts(statement: &StoredStatement) -> (&'static str, Vec<u8>) {
    match statement {
        StoredStatement::DeviceCertificate(s) => ("device_certificate", s.encode()),
        StoredStatement::DeviceRevocation(s) => ("device_revocation", s.encode()),
        StoredStatement::FriendGrant(s) => ("friend_grant", s.encode()),
        StoredStatement::FriendRevocation(s) => ("friend_revocation", s.encode()),
    }
}

fn write_line(out: &mut impl Write, line: &Line) -> Result<(), ExportError> {
    serde_json::to_writer(&mut *out, line).map_err(std::io::Error::other)?;
    out.write_all(b"\n")?;
    Ok(())
}

fn decode_hex(n: usize, text: &str) -> Result<Vec<u8>, ExportError> {
    hex::decode(text).map_err(|e| bad(n, &format!("bad hex: {e}")))
}

fn bad(line: usize, reason: &str) -> ExportError {
    ExportError::BadLine {
        line,
        reason: reason.to_owned(),
    }
}

fn store_error(e: impl std::fmt::Display) -> ExportError {
    ExportError::Store(e.to_string())
}

/// Lines of at most [`MAX_LINE_LEN`] bytes, so that a hostile file cannot
/// make the importer buffer without bound.
struct BoundedLines<R> {
    input: R,
    number: usize,
}

impl<R: BufRead> BoundedLines<R> {
    fn new(input: R) -> Self {
        Self { input, number: 0 }
    }

    fn next_line(&mut self) -> Result<Option<String>, ExportError> {
        let mut buf = Vec::new();
        let limit = u64::try_from(MAX_LINE_LEN + 1).unwrap_or(u64::MAX);
        let read = std::io::Read::take(&mut self.input, limit).read_until(b'\n', &mut buf)?;
        self.number += 1;
        if read == 0 {
            return Ok(None);
        }
        if buf.last() != Some(&b'\n') && buf.len() > MAX_LINE_LEN {
            return Err(bad(self.number, "line too long"));
        }
        let text = String::from_utf8(buf).map_err(|_| bad(self.number, "not UTF-8"))?;
        Ok(Some(text.trim_end().to_owned()))
    }
}
