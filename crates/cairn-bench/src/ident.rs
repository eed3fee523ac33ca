//! Users, devices and envelopes for the scenarios (the test kit's, made
//! deterministically from an index so that a run needs no randomness and
//! no files), and the stamps that measure delivery latency.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use cairn_testkit::ident::overwrite;
pub use cairn_testkit::{Device, User};

/// Payload size of every scenario's envelopes.
pub const PAYLOAD_LEN: usize = 1024;

/// Bytes at the start of a payload that carry its send time.
pub const STAMP_LEN: usize = 8;

/// The process-wide start every stamp counts from, so that a stamp made by
/// a publisher task can be compared with a clock read by a subscriber task.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Microseconds since [`epoch`]: a monotonic clock shared by every task.
pub fn stamp_now() -> u64 {
    u64::try_from(epoch().elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// A payload of [`PAYLOAD_LEN`] bytes that starts with the current stamp.
pub fn stamped_payload() -> Vec<u8> {
    let mut payload = vec![0xa5; PAYLOAD_LEN];
    overwrite(&mut payload, &stamp_now().to_le_bytes());
    payload
}

/// How long ago the payload's stamp was made; `None` if it has none.
pub fn age_of_stamp(payload: &[u8]) -> Option<Duration> {
    let bytes: [u8; STAMP_LEN] = payload.get(..STAMP_LEN)?.try_into().ok()?;
    let sent = u64::from_le_bytes(bytes);
    Some(Duration::from_micros(stamp_now().saturating_sub(sent)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_measure_age() {
        let payload = stamped_payload();
        std::thread::sleep(Duration::from_millis(2));
        let age = age_of_stamp(&payload).expect("stamped");
        assert!(age >= Duration::from_millis(2) && age < Duration::from_secs(5));
        assert_eq!(age_of_stamp(&[1, 2]), None);
    }
}
