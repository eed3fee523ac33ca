//! Every size a peer can influence, as named constants.
//!
//! Decoders check these before they allocate: an input longer than its limit
//! is refused before parsing, and every length prefix inside it is checked
//! against the limit of the field it describes.

/// Largest opaque payload an envelope may carry (64 KiB).
pub const MAX_PAYLOAD_LEN: usize = 64 * 1024;

/// Largest encoded envelope: the payload plus a header, the payload's
/// length and the signature, which take at most 217 bytes; the slack keeps
/// the bound simple to state.
pub const MAX_ENVELOPE_LEN: usize = MAX_PAYLOAD_LEN + 256;

/// Largest encoded envelope header: version, two 32-byte ids, a seq
/// varint of at most 10 bytes, the previous envelope's 32-byte id, a
/// timestamp varint of at most 10 bytes and a direct scope of 33 bytes.
pub const MAX_HEADER_LEN: usize = 1 + 32 + 32 + 10 + 32 + 10 + 1 + 32;

/// Largest frame body on a stream, not counting its 4-byte length prefix.
pub const MAX_FRAME_LEN: usize = 1024 * 1024;

/// Largest `Authenticate` frame body: a statement, a signature and an
/// invite code fit with room to spare. It is all a peer may send before it
/// has authenticated, so it is all the relay buffers for a stranger.
pub const MAX_AUTH_FRAME_LEN: usize = 1024;

/// Most envelopes in one append or hello outbox batch.
pub const MAX_BATCH: usize = 256;

/// Most cursors a hello may carry, and most streams a sync answer may cover.
pub const MAX_CURSORS: usize = 1024;

/// Most entries in one page of a stream.
pub const MAX_PAGE_ENTRIES: usize = 4096;

/// Most devices a status answer lists.
pub const MAX_DEVICES: usize = 256;

/// Longest human-readable error message in an error frame, in bytes.
pub const MAX_MESSAGE_LEN: usize = 256;

/// Longest registration invite code, in bytes.
pub const MAX_INVITE_LEN: usize = 128;

/// Largest encoded signed statement (certificate, revocation, grant).
pub const MAX_STATEMENT_LEN: usize = 256;
