//! The public audience (`spec/client.md` §4): audience id 16 zero bytes,
//! epoch 0, and a key anyone can derive from the author's user id. It
//! protects nothing beyond the relay's scope check, which is all a public
//! value (the exchange key announcement) needs; it exists so that such a
//! value is a post like any other.

use cairn_wire::UserId;
use sha2::{Digest, Sha256};

use crate::audience::AudienceId;
use crate::keys::AudienceKey;

/// Domain of the public audience's key.
pub const DOMAIN_PUBLIC_AUDIENCE: &str = "cairn/public-audience/v1";
/// The public audience's id.
pub const PUBLIC_AUDIENCE: AudienceId = AudienceId::from_bytes([0; 16]);

/// The key of `author`'s public audience:
/// `SHA-256(DOMAIN_PUBLIC_AUDIENCE || 0x00 || author)`.
pub fn public_audience_key(author: &UserId) -> AudienceKey {
    let mut hash = Sha256::new();
    hash.update(DOMAIN_PUBLIC_AUDIENCE.as_bytes());
    hash.update([0u8]);
    hash.update(author.as_bytes());
    AudienceKey::from_bytes(&hash.finalize().into())
}
