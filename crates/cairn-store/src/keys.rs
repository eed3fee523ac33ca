//! Byte layouts of every key and fixed-width value, as `spec/storage.md`
//! describes them.
//!
//! Keys are plain concatenations of fixed-width fields with integers in
//! big-endian order, so that redb's byte order is the order the relay reads
//! in: every read is a range over a common prefix. Decoders are total: a
//! malformed key or value from the file is a [`Malformed`] error, never a
//! panic.

use std::ops::Bound;

use cairn_wire::{DeviceId, EnvelopeId, Scope, StreamId, UserId};

use crate::api::{ExpiredHead, Invite, InviteId, Usage};

/// Tag byte of a private stream key.
pub const TAG_PRIVATE: u8 = 0x00;
/// Tag byte of a friends stream key.
pub const TAG_FRIENDS: u8 = 0x01;
/// Tag byte of a direct stream key; the recipient follows.
pub const TAG_DIRECT: u8 = 0x02;

/// Tag byte of a friend grant in the `friends` table.
pub const FRIEND_GRANT: u8 = 0x01;
/// Tag byte of a friend revocation in the `friends` table.
pub const FRIEND_REVOCATION: u8 = 0x02;

/// Bytes read from the file do not have the layout the schema gives them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what} in the store")]
pub struct Malformed {
    /// What was being decoded.
    pub what: &'static str,
}

const fn malformed(what: &'static str) -> Malformed {
    Malformed { what }
}

/// `owner(32) || tag(1) [|| recipient(32)]`.
pub fn stream_key(stream: &StreamId) -> Vec<u8> {
    let mut key = Vec::with_capacity(65);
    key.extend_from_slice(stream.owner.as_bytes());
    match stream.scope {
        Scope::Private => key.push(TAG_PRIVATE),
        Scope::Friends => key.push(TAG_FRIENDS),
        Scope::Direct(recipient) => {
            key.push(TAG_DIRECT);
            key.extend_from_slice(recipient.as_bytes());
        }
    }
    key
}

/// Splits a stream key off the front of `bytes`, returning the rest.
pub fn split_stream_key(bytes: &[u8]) -> Result<(StreamId, &[u8]), Malformed> {
    let (owner, rest) = split_array::<32>(bytes).ok_or(malformed("stream key"))?;
    let (tag, rest) = rest.split_first().ok_or(malformed("stream key"))?;
    let (scope, rest) = match *tag {
        TAG_PRIVATE => (Scope::Private, rest),
        TAG_FRIENDS => (Scope::Friends, rest),
        TAG_DIRECT => {
            let (recipient, rest) = split_array::<32>(rest).ok_or(malformed("stream key"))?;
            (Scope::Direct(UserId::from_bytes(recipient)), rest)
        }
        _ => return Err(malformed("stream key")),
    };
    Ok((StreamId::new(UserId::from_bytes(owner), scope), rest))
}

/// A whole stream key, with nothing after it.
pub fn parse_stream_key(bytes: &[u8]) -> Result<StreamId, Malformed> {
    match split_stream_key(bytes)? {
        (stream, []) => Ok(stream),
        _ => Err(malformed("stream key")),
    }
}

/// `stream_key || position(u64 BE)`: the key of the `envelopes` table and
/// the value of the `envelope_ids` table.
pub fn entry_key(stream: &StreamId, position: u64) -> Vec<u8> {
    let mut key = stream_key(stream);
    key.extend_from_slice(&position.to_be_bytes());
    key
}

/// Parses an [`entry_key`].
pub fn parse_entry_key(bytes: &[u8]) -> Result<(StreamId, u64), Malformed> {
    let (stream, rest) = split_stream_key(bytes)?;
    Ok((stream, parse_u64(rest, "entry key")?))
}

/// `a(32) || b(32)`: keys of the device registry (user, device), of the
/// direct index (recipient, owner), of the device owners (device, user) and
/// of the friend tables.
pub fn pair_key(a: &[u8; 32], b: &[u8; 32]) -> Vec<u8> {
    let mut key = Vec::with_capacity(64);
    key.extend_from_slice(a);
    key.extend_from_slice(b);
    key
}

/// Parses a [`pair_key`].
pub fn parse_pair_key(bytes: &[u8]) -> Result<([u8; 32], [u8; 32]), Malformed> {
    let (a, rest) = split_array::<32>(bytes).ok_or(malformed("pair key"))?;
    match split_array::<32>(rest) {
        Some((b, [])) => Ok((a, b)),
        _ => Err(malformed("pair key")),
    }
}

/// `user(32) || device(32) || seq(u64 BE)`: the key of `device_seqs`.
pub fn device_seq_key(user: &UserId, device: &DeviceId, seq: u64) -> Vec<u8> {
    let mut key = pair_key(user.as_bytes(), device.as_bytes());
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// `user || device || stream_key`: a device's chain in one stream.
pub fn chain_key(user: &UserId, device: &DeviceId, stream: &StreamId) -> Vec<u8> {
    let mut key = pair_key(user.as_bytes(), device.as_bytes());
    key.extend_from_slice(&stream_key(stream));
    key
}

/// Parses a [`device_seq_key`].
pub fn parse_device_seq_key(bytes: &[u8]) -> Result<(UserId, DeviceId, u64), Malformed> {
    let (user, rest) = split_array::<32>(bytes).ok_or(malformed("device seq key"))?;
    let (device, rest) = split_array::<32>(rest).ok_or(malformed("device seq key"))?;
    let seq = parse_u64(rest, "device seq key")?;
    Ok((UserId::from_bytes(user), DeviceId::from_bytes(device), seq))
}

/// `device(32) || stream_key`: the key of the `acks` table.
pub fn ack_key(device: &DeviceId, stream: &StreamId) -> Vec<u8> {
    let mut key = device.as_bytes().to_vec();
    key.extend_from_slice(&stream_key(stream));
    key
}

/// Parses an [`ack_key`].
pub fn parse_ack_key(bytes: &[u8]) -> Result<(DeviceId, StreamId), Malformed> {
    let (device, rest) = split_array::<32>(bytes).ok_or(malformed("ack key"))?;
    Ok((DeviceId::from_bytes(device), parse_stream_key(rest)?))
}

/// A 32-byte value (an envelope id) or key (a user id).
pub fn parse_32(bytes: &[u8], what: &'static str) -> Result<[u8; 32], Malformed> {
    <[u8; 32]>::try_from(bytes).map_err(|_| malformed(what))
}

/// Parses an envelope id.
pub fn parse_envelope_id(bytes: &[u8]) -> Result<EnvelopeId, Malformed> {
    parse_32(bytes, "envelope id").map(EnvelopeId::from_bytes)
}

/// A big-endian u64 that is the whole of `bytes`.
pub fn parse_u64(bytes: &[u8], what: &'static str) -> Result<u64, Malformed> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| malformed(what))
}

/// A `cairn_user_usage` value: `bytes (u64 BE) || envelopes (u64 BE)`.
pub fn usage_value(usage: Usage) -> [u8; 16] {
    let mut value = [0u8; 16];
    value[..8].copy_from_slice(&usage.bytes.to_be_bytes());
    value[8..].copy_from_slice(&usage.envelopes.to_be_bytes());
    value
}

/// Parses a [`usage_value`].
pub fn parse_usage(bytes: &[u8]) -> Result<Usage, Malformed> {
    let (high, low) = bytes.split_first_chunk::<8>().ok_or(malformed("usage"))?;
    Ok(Usage {
        bytes: u64::from_be_bytes(*high),
        envelopes: parse_u64(low, "usage")?,
    })
}

/// A `cairn_invites` value.
pub fn invite_value(invite: &Invite) -> [u8; 20] {
    let mut value = [0u8; 20];
    value[..4].copy_from_slice(&invite.uses_left.to_be_bytes());
    value[4..12].copy_from_slice(&invite.expires_ms.to_be_bytes());
    value[12..].copy_from_slice(&invite.created_ms.to_be_bytes());
    value
}

/// Parses a `cairn_invites` row.
pub fn parse_invite(key: &[u8], value: &[u8]) -> Result<Invite, Malformed> {
    let id = <[u8; 32]>::try_from(key).map_err(|_| malformed("invite id"))?;
    let (uses, rest) = value.split_first_chunk::<4>().ok_or(malformed("invite"))?;
    let (expires, created) = rest.split_first_chunk::<8>().ok_or(malformed("invite"))?;
    Ok(Invite {
        id: InviteId(id),
        uses_left: u32::from_be_bytes(*uses),
        expires_ms: u64::from_be_bytes(*expires),
        created_ms: parse_u64(created, "invite")?,
    })
}

/// The owner of a stream or entry key: its first 32 bytes.
pub fn key_owner(key: &[u8]) -> Result<UserId, Malformed> {
    key.first_chunk::<32>()
        .map(|owner| UserId::from_bytes(*owner))
        .ok_or(malformed("stream key"))
}

/// A big-endian u32 that is the whole of `bytes`.
pub fn parse_u32(bytes: &[u8], what: &'static str) -> Result<u32, Malformed> {
    <[u8; 4]>::try_from(bytes)
        .map(u32::from_be_bytes)
        .map_err(|_| malformed(what))
}

/// The bounds of every key that starts with `prefix`.
pub fn prefix_range(prefix: &[u8]) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let start = Bound::Included(prefix.to_vec());
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return (start, Bound::Excluded(end));
        }
    }
    (start, Bound::Unbounded)
}

/// Borrows a pair of owned bounds as the slice bounds redb takes.
pub fn as_slices(range: &(Bound<Vec<u8>>, Bound<Vec<u8>>)) -> (Bound<&[u8]>, Bound<&[u8]>) {
    (as_slice(&range.0), as_slice(&range.1))
}

fn as_slice(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(key) => Bound::Included(key.as_slice()),
        Bound::Excluded(key) => Bound::Excluded(key.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn split_array<const N: usize>(bytes: &[u8]) -> Option<([u8; N], &[u8])> {
    let (head, rest) = bytes.split_at_checked(N)?;
    Some((<[u8; N]>::try_from(head).ok()?, rest))
}

/// `stream_key || device`: a device's last expired envelope in a stream.
pub fn expired_head_key(stream: &StreamId, device: &DeviceId) -> Vec<u8> {
    let mut key = stream_key(stream);
    key.extend_from_slice(device.as_bytes());
    key
}

/// `seq (u64 BE) || id (32)`.
pub fn expired_head_value(seq: u64, id: &EnvelopeId) -> [u8; 40] {
    let mut value = [0u8; 40];
    let (seq_part, id_part) = value.split_at_mut(8);
    seq_part.copy_from_slice(&seq.to_be_bytes());
    id_part.copy_from_slice(id.as_bytes());
    value
}

/// Parses an [`expired_head_key`] and its value.
pub fn parse_expired_head(key: &[u8], value: &[u8]) -> Result<ExpiredHead, Malformed> {
    let device_at = key
        .len()
        .checked_sub(32)
        .ok_or(malformed("expired head key"))?;
    let (stream, device) = key.split_at(device_at);
    parse_stream_key(stream)?;
    let device = DeviceId::from_bytes(parse_32(device, "expired head device")?);
    let (seq, id) = value.split_at_checked(8).ok_or(malformed("expired head"))?;
    Ok(ExpiredHead {
        device,
        seq: parse_u64(seq, "expired head seq")?,
        id: parse_envelope_id(id)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(b: u8) -> UserId {
        UserId::from_bytes([b; 32])
    }

    #[test]
    fn stream_keys_round_trip() {
        for scope in [Scope::Private, Scope::Friends, Scope::Direct(user(9))] {
            let stream = StreamId::new(user(1), scope);
            assert_eq!(parse_stream_key(&stream_key(&stream)), Ok(stream));
            assert_eq!(parse_entry_key(&entry_key(&stream, 77)), Ok((stream, 77)));
        }
    }

    #[test]
    fn entry_keys_sort_by_position() {
        let stream = StreamId::new(user(1), Scope::Friends);
        assert!(entry_key(&stream, 255) < entry_key(&stream, 256));
    }

    #[test]
    fn prefix_range_carries() {
        let (_, end) = prefix_range(&[1, 0xff]);
        assert_eq!(end, Bound::Excluded(vec![2]));
        let (_, end) = prefix_range(&[0xff, 0xff]);
        assert_eq!(end, Bound::Unbounded);
    }

    #[test]
    fn malformed_keys_are_errors() {
        assert!(parse_stream_key(&[0; 33 + 1]).is_err());
        assert!(parse_stream_key(&[[0u8; 32].as_slice(), &[7]].concat()).is_err());
        assert!(parse_entry_key(&[0; 40]).is_err());
        assert!(parse_pair_key(&[0; 63]).is_err());
    }
}
