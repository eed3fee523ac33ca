//! Convenience wrappers that draw from the operating system's generator.
//!
//! The core functions take an explicit `&mut impl CryptoRng`; these call
//! them with [`rng`]. If the operating system cannot provide randomness,
//! the generator panics rather than let a key or nonce be predictable.

use cairn_wire::{DeviceCertificate, EnvelopeHeader, ExchangeKey, Payload};
use getrandom::SysRng;
use rand_core::{CryptoRng, UnwrapErr};

use crate::audience::{KeyGrant, WrapTarget};
use crate::error::{GrantError, SealError};
use crate::grant::{LinkBundle, LinkSecret};

/// The operating system's generator.
pub fn rng() -> impl CryptoRng {
    UnwrapErr(SysRng)
}

/// [`crate::seal_post`] with the OS generator.
pub fn seal_post(
    header: &EnvelopeHeader,
    plaintext: &[u8],
    targets: &[WrapTarget<'_>],
) -> Result<Payload, SealError> {
    crate::post::seal_post(&mut rng(), header, plaintext, targets)
}

/// [`crate::seal_grant`] with the OS generator.
pub fn seal_grant(
    header: &EnvelopeHeader,
    recipient: &ExchangeKey,
    certificate: &DeviceCertificate,
    keys: &[KeyGrant],
) -> Result<Payload, GrantError> {
    crate::grant::seal_grant(&mut rng(), header, recipient, certificate, keys)
}

/// [`crate::seal_link`] with the OS generator.
pub fn seal_link(
    header: &EnvelopeHeader,
    new_device: &ExchangeKey,
    bundle: &LinkBundle,
) -> Result<Payload, GrantError> {
    crate::grant::seal_link(&mut rng(), header, new_device, bundle)
}

/// [`crate::seal_link_for_code`] with the OS generator.
pub fn seal_link_for_code(
    header: &EnvelopeHeader,
    new_device: &ExchangeKey,
    code: &LinkSecret,
    bundle: &LinkBundle,
) -> Result<Payload, GrantError> {
    crate::grant::seal_link_for_code(&mut rng(), header, new_device, code, bundle)
}
