//! The export format: a versioned, line-oriented dump of a relay's log and
//! statements, for moving a relay between machines or backends. See
//! `spec/export.md`.
//!
//! An export is untrusted input when imported: every line is bounded,
//! every statement and envelope is decoded canonically and its signature
//! verified, and the import must reproduce every exported position.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, Write};

use cairn_store::{ItemOutcome, StatementOutcome, Store, StoredStatement};
use cairn_wire::limits::{MAX_BATCH, MAX_ENVELOPE_LEN, MAX_PAGE_ENTRIES};
use cairn_wire::{
    DeviceCertificate, DeviceId, DeviceRevocation, Envelope, FriendGrant, FriendRevocation,
    StreamId,
};
use serde::{Deserialize, Serialize};

/// The `format` of the header line.
pub const FORMAT: &str = "cairn-relay-export";
/// The `version` of the header line this build writes and reads.
pub const VERSION: u32 = 1;
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
    /// Last line: counts, so that a truncated export is detected.
    End {
        /// Statement lines written.
        statements: u64,
        /// Envelope lines written.
        envelopes: u64,
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
    for head in store.all_streams().await.map_err(store_error)? {
        counts.envelopes += export_stream(store, head.stream, out).await?;
    }
    write_line(
        out,
        &Line::End {
            statements: counts.statements,
            envelopes: counts.envelopes,
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

#[derive(Debug, Default)]
struct Parsed {
    certificates: Vec<DeviceCertificate>,
    revocations: Vec<DeviceRevocation>,
    friendships: Vec<Friendship>,
    streams: BTreeMap<StreamId, VecDeque<(u64, Envelope)>>,
    statements: u64,
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
        Line::Header { format, version } if format == FORMAT && version == VERSION => {}
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
            Line::End {
                statements,
                envelopes: expected,
            } => {
                if statements != parsed.statements || expected != envelopes {
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
    let entries = parsed.streams.entry(envelope.stream()).or_default();
    let expected = entries.back().map_or(1, |(p, _)| p + 1);
    if position != expected {
        return Err(bad(
            n,
            &format!("position {position} where {expected} was expected"),
        ));
    }
    entries.push_back((position, envelope));
    Ok(())
}

/// Appends every stream so that each device's sequence numbers and each
/// stream's positions both come in order. The original commit order is
/// one such order, so picking any envelope that is next in its stream and
/// next for its device always makes progress.
async fn import_envelopes<S: Store>(
    store: &S,
    mut streams: BTreeMap<StreamId, VecDeque<(u64, Envelope)>>,
) -> Result<u64, ExportError> {
    let mut next_seq: HashMap<DeviceId, u64> = HashMap::new();
    let mut imported = 0;
    loop {
        let batch = ready_batch(&mut streams, &mut next_seq);
        if batch.is_empty() {
            break;
        }
        let positions: Vec<u64> = batch.iter().map(|(p, _)| *p).collect();
        let outcomes = store
            .append(batch.into_iter().map(|(_, e)| e).collect())
            .await
            .map_err(store_error)?;
        for (expected, outcome) in positions.iter().zip(&outcomes) {
            match outcome {
                ItemOutcome::Stored { position, .. } if position == expected => imported += 1,
                other => {
                    return Err(ExportError::Inconsistent(format!(
                        "expected position {expected}, got {other:?}"
                    )));
                }
            }
        }
    }
    if streams.values().any(|entries| !entries.is_empty()) {
        return Err(ExportError::Inconsistent(
            "some envelopes do not follow their device's sequence".into(),
        ));
    }
    Ok(imported)
}

fn ready_batch(
    streams: &mut BTreeMap<StreamId, VecDeque<(u64, Envelope)>>,
    next_seq: &mut HashMap<DeviceId, u64>,
) -> Vec<(u64, Envelope)> {
    let mut batch = Vec::new();
    for entries in streams.values_mut() {
        while batch.len() < MAX_BATCH {
            let Some((_, envelope)) = entries.front() else {
                break;
            };
            let header = envelope.header();
            let next = next_seq.entry(header.device).or_insert(1);
            if header.seq != *next {
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
