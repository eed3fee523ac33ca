//! Fuzz builds only: signature checks remembered by what they checked.
//!
//! The structure-aware fuzz targets (`store_ops`, `requests`) sign with a
//! few keys and keep sending the same envelopes and statements, so that an
//! input's time went mostly to verifying signatures already verified, in
//! curve arithmetic that coverage instrumentation slows several times. A
//! check is remembered by a SHA-256 digest of everything it covers (key,
//! domain, body, signature), so a remembered answer is the answer the
//! check gave for those exact bytes: no outcome changes, only its cost.
//! Every other build runs the check each time; `cfg(fuzzing)` is set by
//! cargo-fuzz alone.

use crate::ids::Signature;
use crate::signing::BadSignature;

/// `check()`, the verification by `key` of `signature` over `body` under
/// `domain`; in fuzz builds, remembered.
#[cfg(not(fuzzing))]
#[inline]
pub(crate) fn remembered(
    _key: &[u8; 32],
    _domain: &str,
    _body: &[u8],
    _signature: &Signature,
    check: impl FnOnce() -> Result<(), BadSignature>,
) -> Result<(), BadSignature> {
    check()
}

/// `check()`, the verification by `key` of `signature` over `body` under
/// `domain`; in fuzz builds, remembered.
#[cfg(fuzzing)]
pub(crate) fn remembered(
    key: &[u8; 32],
    domain: &str,
    body: &[u8],
    signature: &Signature,
    check: impl FnOnce() -> Result<(), BadSignature>,
) -> Result<(), BadSignature> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock, PoisonError};

    use sha2::{Digest, Sha256};

    /// Past this many remembered checks the memo starts over (a few
    /// megabytes).
    const ENTRIES: usize = 100_000;
    static MEMO: OnceLock<Mutex<HashMap<[u8; 32], bool>>> = OnceLock::new();

    let mut hasher = Sha256::new();
    hasher.update(key);
    // The domain's length first, so that no two (domain, body) pairs
    // hash the same bytes.
    hasher.update((domain.len() as u64).to_le_bytes());
    hasher.update(domain.as_bytes());
    hasher.update(signature.as_bytes());
    hasher.update(body);
    let digest: [u8; 32] = hasher.finalize().into();
    let memo = MEMO.get_or_init(Mutex::default);
    let known = memo
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&digest)
        .copied();
    let valid = match known {
        Some(valid) => valid,
        None => {
            let valid = check().is_ok();
            let mut memo = memo.lock().unwrap_or_else(PoisonError::into_inner);
            if memo.len() >= ENTRIES {
                memo.clear();
            }
            memo.insert(digest, valid);
            valid
        }
    };
    if valid { Ok(()) } else { Err(BadSignature) }
}
