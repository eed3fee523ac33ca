//! The relay's clock, and the one rule that reads it: a signed statement
//! may not be dated ahead of the relay's time by more than the allowed
//! skew. Statements of one subject are ordered by their dates, so a
//! statement dated years ahead would otherwise outrank every honest one
//! that follows it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_wire::{ErrorCode, WireError};

/// The relay's time in Unix milliseconds (0 before 1970, saturating far
/// in the future).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Refuses a statement dated more than `skew` after `now_ms`.
pub fn check_dated(dated_ms: u64, now_ms: u64, skew: Duration) -> Result<(), WireError> {
    let skew_ms = u64::try_from(skew.as_millis()).unwrap_or(u64::MAX);
    if dated_ms > now_ms.saturating_add(skew_ms) {
        return Err(WireError::new(
            ErrorCode::FUTURE_STATEMENT,
            &format!(
                "statement dated {} s ahead of the relay's clock; at most {} s allowed",
                (dated_ms - now_ms) / 1000,
                skew.as_secs()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SKEW: Duration = Duration::from_secs(120);

    #[test]
    fn a_statement_within_the_skew_passes() {
        let now = 1_700_000_000_000;
        assert!(check_dated(now, now, SKEW).is_ok());
        assert!(check_dated(now - 10_000_000, now, SKEW).is_ok());
        assert!(check_dated(now + 120_000, now, SKEW).is_ok());
    }

    #[test]
    fn a_statement_past_the_skew_is_refused_with_its_code() {
        let now = 1_700_000_000_000;
        for ahead in [120_001, 3_600_000, u64::MAX - now] {
            let refusal = check_dated(now + ahead, now, SKEW).err();
            assert_eq!(refusal.map(|e| e.code), Some(ErrorCode::FUTURE_STATEMENT));
        }
    }
}
