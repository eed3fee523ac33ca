//! What an export (version 2) carries of what is gone from the relay:
//! removed users, streams emptied with their user, and expired envelopes
//! as tombstones (where they were and whose, never their content), so
//! that an import keeps every position, seq and chain where it was.

use cairn_store::{Gone, Tombstone};
use cairn_wire::{DeviceId, EnvelopeId, StreamId, UserId, codec};

use super::{ExportError, Line, bad, decode_hex};

/// The `removed` lines.
pub fn removed_lines(gone: &Gone) -> Vec<Line> {
    gone.removed
        .iter()
        .map(|(user, at_ms)| Line::Removed {
            user: user.to_text(),
            at_ms: *at_ms,
        })
        .collect()
}

/// The lines of what is gone from `stream`, before its envelopes: a
/// `floor` line when nothing of it is carried, else its tombstones.
pub fn stream_lines(gone: &Gone, stream: &StreamId) -> Vec<Line> {
    let hex = hex::encode(codec::encode(stream));
    let tombstones: Vec<Line> = gone
        .tombstones
        .iter()
        .filter(|t| t.stream == *stream)
        .map(|t| Line::Expired {
            stream: hex.clone(),
            position: t.position,
            device: t.device.to_text(),
            seq: t.seq,
            id: hex::encode(t.id.as_bytes()),
        })
        .collect();
    let floor = gone
        .floors
        .iter()
        .find(|(s, _)| s == stream)
        .map(|(_, f)| *f);
    match floor {
        Some(through) if tombstones.is_empty() => vec![Line::Floor {
            stream: hex,
            through,
        }],
        _ => tombstones,
    }
}

/// A stream from its hex encoding on line `n`.
pub fn parse_stream(n: usize, text: &str) -> Result<StreamId, ExportError> {
    let bytes = decode_hex(n, text)?;
    codec::decode(&bytes, 128).map_err(|e| bad(n, &format!("stream: {e}")))
}

/// A user from its text on line `n`.
pub fn parse_user(n: usize, text: &str) -> Result<UserId, ExportError> {
    text.parse().map_err(|e| bad(n, &format!("user: {e}")))
}

/// A tombstone from an `expired` line's fields, on line `n`.
pub fn parse_tombstone(
    n: usize,
    (stream, position, device, seq, id): (&str, u64, &str, u64, &str),
) -> Result<Tombstone, ExportError> {
    let device: DeviceId = device
        .parse()
        .map_err(|e| bad(n, &format!("device: {e}")))?;
    let id = <[u8; 32]>::try_from(decode_hex(n, id)?.as_slice())
        .map_err(|_| bad(n, "an envelope id is 32 bytes"))?;
    Ok(Tombstone {
        stream: parse_stream(n, stream)?,
        position,
        device,
        seq,
        id: EnvelopeId::from_bytes(id),
    })
}
