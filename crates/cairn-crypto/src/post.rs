//! Sealing and opening posts.
//!
//! A post gets a fresh random 256-bit key. Its plaintext is padded to a
//! Padmé bucket and encrypted with XChaCha20-Poly1305 under that key, with
//! the envelope header bound in as associated data, so the payload cannot
//! be replayed under another author, device, sequence number, time or
//! scope. The post key is then wrapped once per target audience under that
//! audience's current epoch key, with the audience id, the epoch and the
//! header bound in. Sealing costs one content encryption plus one small
//! wrap per audience, whatever the number of members.

use cairn_wire::limits::MAX_PAYLOAD_LEN;
use cairn_wire::{BoundedBytes, BoundedVec, Envelope, EnvelopeHeader, Payload};
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::audience::{KeyLookup, WrapTarget};
use crate::error::{DecryptionFailed, SealError};
use crate::keys::{AudienceKey, PostKey};
use crate::padding;
use crate::payload::{self, KeyWrap, MAX_WRAPS, PayloadBody, SealedPayload, SealedPost, TAG_LEN};

/// Domain separator of the content's associated data.
pub const DOMAIN_POST_CONTENT: &str = "cairn/post-content/v1";
/// Domain separator of a key wrap's associated data.
pub const DOMAIN_POST_KEY_WRAP: &str = "cairn/post-key-wrap/v1";

/// Most audiences one post may target.
pub const MAX_AUDIENCES_PER_POST: usize = MAX_WRAPS;

/// Longest plaintext a post may carry, whatever its targets: its Padmé
/// bucket plus the largest possible overhead fits in `MAX_PAYLOAD_LEN`.
pub const MAX_PLAINTEXT_LEN: usize = 63_487;

/// Bytes a payload adds to the padded content, at most: version, kind,
/// wrap count, [`MAX_WRAPS`] wraps of at most 93 bytes, nonce, a 3-byte
/// length and the tag.
pub const MAX_POST_OVERHEAD: usize = 3 + MAX_WRAPS * 93 + 24 + 3 + TAG_LEN;

const _: () = assert!(padding::bucket(MAX_PLAINTEXT_LEN) + MAX_POST_OVERHEAD <= MAX_PAYLOAD_LEN);
const _: () = assert!(padding::bucket(MAX_PLAINTEXT_LEN + 1) + MAX_POST_OVERHEAD > MAX_PAYLOAD_LEN);

/// Seals `plaintext` for `targets` under `header`. Draws from `rng`, in
/// order: the post key (32 bytes), the content nonce (24), and one wrap
/// nonce (24) per target, in the order given.
pub fn seal_post(
    rng: &mut impl CryptoRng,
    header: &EnvelopeHeader,
    plaintext: &[u8],
    targets: &[WrapTarget<'_>],
) -> Result<Payload, SealError> {
    check_targets(targets)?;
    if plaintext.len() > MAX_PLAINTEXT_LEN {
        return Err(SealError::TooLong {
            len: plaintext.len(),
            max: MAX_PLAINTEXT_LEN,
        });
    }
    let header = header.encode();
    let post_key = PostKey::generate(rng);
    let nonce = random_nonce(rng);
    let ciphertext = seal_content(&post_key, &nonce, &header, plaintext)?;
    let wraps = targets
        .iter()
        .map(|target| wrap_key(rng, &post_key, target, &header))
        .collect::<Result<Vec<_>, _>>()?;
    let post = SealedPost {
        wraps: BoundedVec::new(wraps).map_err(|_| SealError::Cipher)?,
        nonce,
        ciphertext,
    };
    let len_error = |len| SealError::TooLong {
        len,
        max: MAX_PAYLOAD_LEN,
    };
    SealedPayload::new(PayloadBody::Post(post))
        .to_payload()
        .map_err(len_error)
}

/// Opens a post sealed under `header`, with the first key `keys` holds
/// for one of its wraps that unwraps it. Every failure is the same [`DecryptionFailed`].
pub fn open_post(
    header: &EnvelopeHeader,
    payload: &[u8],
    keys: &impl KeyLookup,
) -> Result<Vec<u8>, DecryptionFailed> {
    let decoded = payload::decode(payload).map_err(|_| DecryptionFailed)?;
    let PayloadBody::Post(post) = decoded.body() else {
        return Err(DecryptionFailed);
    };
    let header_bytes = header.encode();
    let post_key = post
        .wraps
        .iter()
        .flat_map(|wrap| {
            keys.audience_keys(&header.author, &wrap.audience, wrap.epoch)
                .into_iter()
                .map(move |key| (key, wrap))
        })
        .find_map(|(key, wrap)| unwrap_key(key, wrap, &header_bytes))
        .ok_or(DecryptionFailed)?;
    open_content(&post_key, post, &header_bytes)
}

/// [`open_post`] on an envelope's own header and payload. Does not check
/// the envelope's signature: do that (and the device's certificate) first.
pub fn open_envelope(
    envelope: &Envelope,
    keys: &impl KeyLookup,
) -> Result<Vec<u8>, DecryptionFailed> {
    open_post(envelope.header(), envelope.payload().as_slice(), keys)
}

fn check_targets(targets: &[WrapTarget<'_>]) -> Result<(), SealError> {
    if targets.is_empty() {
        return Err(SealError::NoAudience);
    }
    if targets.len() > MAX_AUDIENCES_PER_POST {
        return Err(SealError::TooManyAudiences {
            count: targets.len(),
            max: MAX_AUDIENCES_PER_POST,
        });
    }
    let mut ids: Vec<_> = targets.iter().map(|t| t.audience).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != targets.len() {
        return Err(SealError::DuplicateAudience);
    }
    Ok(())
}

fn seal_content(
    post_key: &PostKey,
    nonce: &[u8; 24],
    header: &[u8],
    plaintext: &[u8],
) -> Result<BoundedBytes<MAX_PAYLOAD_LEN>, SealError> {
    let mut buffer = padding::pad(plaintext);
    let cipher = XChaCha20Poly1305::new(&post_key.0.into());
    let ad = associated_data(DOMAIN_POST_CONTENT, &[], header);
    cipher
        .encrypt_in_place(&XNonce::from(*nonce), &ad, &mut *buffer)
        .map_err(|_| SealError::Cipher)?;
    BoundedBytes::new(buffer.to_vec()).map_err(|_| SealError::Cipher)
}

fn open_content(
    post_key: &PostKey,
    post: &SealedPost,
    header: &[u8],
) -> Result<Vec<u8>, DecryptionFailed> {
    let mut buffer = Zeroizing::new(post.ciphertext.as_slice().to_vec());
    let cipher = XChaCha20Poly1305::new(&post_key.0.into());
    let ad = associated_data(DOMAIN_POST_CONTENT, &[], header);
    cipher
        .decrypt_in_place(&XNonce::from(post.nonce), &ad, &mut *buffer)
        .map_err(|_| DecryptionFailed)?;
    padding::unpad(&buffer)
        .map(<[u8]>::to_vec)
        .ok_or(DecryptionFailed)
}

fn wrap_key(
    rng: &mut impl CryptoRng,
    post_key: &PostKey,
    target: &WrapTarget<'_>,
    header: &[u8],
) -> Result<KeyWrap, SealError> {
    let nonce = random_nonce(rng);
    let mut wrapped_key = post_key.0;
    let ad = wrap_associated_data(target.audience, target.epoch, header);
    let tag = cipher_for(target.key)
        .encrypt_inout_detached(&XNonce::from(nonce), &ad, wrapped_key.as_mut_slice().into())
        .map_err(|_| SealError::Cipher)?;
    Ok(KeyWrap {
        audience: target.audience,
        epoch: target.epoch,
        nonce,
        wrapped_key,
        tag: tag.into(),
    })
}

fn unwrap_key(key: &AudienceKey, wrap: &KeyWrap, header: &[u8]) -> Option<PostKey> {
    let mut post_key = PostKey(wrap.wrapped_key);
    let ad = wrap_associated_data(wrap.audience, wrap.epoch, header);
    cipher_for(key)
        .decrypt_inout_detached(
            &XNonce::from(wrap.nonce),
            &ad,
            post_key.0.as_mut_slice().into(),
            &wrap.tag.into(),
        )
        .ok()?;
    Some(post_key)
}

fn cipher_for(key: &AudienceKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&(*key.as_bytes()).into())
}

/// `audience id (16) || epoch (u32, big-endian)`, between the domain and
/// the header.
fn wrap_associated_data(
    audience: crate::audience::AudienceId,
    epoch: crate::audience::Epoch,
    header: &[u8],
) -> Vec<u8> {
    let mut binding = [0u8; 20];
    let (id, ep) = binding.split_at_mut(16);
    id.copy_from_slice(audience.as_bytes());
    ep.copy_from_slice(&epoch.0.to_be_bytes());
    associated_data(DOMAIN_POST_KEY_WRAP, &binding, header)
}

/// `domain || 0x00 || binding || header encoding`.
pub(crate) fn associated_data(domain: &str, binding: &[u8], header: &[u8]) -> Vec<u8> {
    let mut ad = Vec::with_capacity(domain.len() + 1 + binding.len() + header.len());
    ad.extend_from_slice(domain.as_bytes());
    ad.push(0);
    ad.extend_from_slice(binding);
    ad.extend_from_slice(header);
    ad
}

fn random_nonce(rng: &mut impl CryptoRng) -> [u8; 24] {
    let mut nonce = [0u8; 24];
    rng.fill_bytes(&mut nonce);
    nonce
}
