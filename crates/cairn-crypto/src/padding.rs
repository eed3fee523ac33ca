//! Padmé padding (Nikitin et al., "Reducing Metadata Leakage from Encrypted
//! Files and Communication with PURBs", PETS 2019), so that the relay sees
//! only bucketed sizes.
//!
//! A plaintext of `n` bytes becomes `plaintext || 0x80 || 0x00...` of
//! [`bucket`]`(n)` bytes: the marker byte makes the padding removable
//! without a length field, and Padmé rounds the length up so that at most
//! O(log log n) bits of it show, at a cost of at most 12% overhead.

use zeroize::Zeroizing;

/// Smallest padded length: every short post looks the same.
pub const MIN_PADDED_LEN: usize = 64;

/// The byte that ends the plaintext inside the padded buffer.
pub const MARKER: u8 = 0x80;

/// Padmé: rounds `len` up so that only its top ~log2(log2(len)) + 1
/// bits may be non-zero.
pub const fn padme(len: usize) -> usize {
    if len < 2 {
        return len;
    }
    let e = usize::BITS - 1 - len.leading_zeros(); // floor(log2(len))
    let s = u32::BITS - e.leading_zeros(); // floor(log2(e)) + 1
    let mask = (1usize << (e - s)) - 1;
    (len + mask) & !mask
}

/// The padded length of a plaintext of `len` bytes.
pub const fn bucket(len: usize) -> usize {
    let with_marker = len + 1;
    if with_marker < MIN_PADDED_LEN {
        MIN_PADDED_LEN
    } else {
        padme(with_marker)
    }
}

/// `plaintext || 0x80 || 0x00...`, [`bucket`]`(plaintext.len())` bytes long.
pub fn pad(plaintext: &[u8]) -> Zeroizing<Vec<u8>> {
    let len = bucket(plaintext.len());
    let mut out = Zeroizing::new(Vec::with_capacity(len));
    out.extend_from_slice(plaintext);
    out.push(MARKER);
    out.resize(len, 0);
    out
}

/// The plaintext inside a padded buffer, or `None` unless the buffer is
/// exactly what [`pad`] makes of it.
pub fn unpad(padded: &[u8]) -> Option<&[u8]> {
    let marker = padded.iter().rposition(|b| *b != 0)?;
    let (plaintext, rest) = padded.split_at(marker);
    let canonical = rest.first() == Some(&MARKER) && bucket(plaintext.len()) == padded.len();
    canonical.then_some(plaintext)
}
