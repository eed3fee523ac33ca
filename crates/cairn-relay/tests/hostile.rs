//! A peer flooding an in-process relay configured with a low rate limit.
//! The other hostile peers (forged and replayed proofs, bad frames, stream
//! limits, reads out of scope, a subscriber that never reads) play against
//! a relay process in `cairn-e2e`'s `tests/hostile.rs`, with an honest user
//! served alongside and the data directory checked afterwards.

// Test code: a panic is the failure report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use cairn_wire::*;
use support::*;

#[tokio::test]
async fn requests_over_the_rate_limit_are_refused_with_a_retry_delay() {
    let relay = TestRelay::start_with(|c| {
        c.limits.requests_per_second_per_user = 1;
        c.limits.request_burst_per_user = 3;
    })
    .await;
    let connection = relay.connect(&User::new(1).device(2)).await;
    let mut refused = None;
    for _ in 0..10 {
        if let Response::Error(e) = request(&connection, Request::Status).await {
            refused = Some(e);
            break;
        }
    }
    let refused = refused.expect("no request was rate limited");
    assert_eq!(refused.code, ErrorCode::RATE_LIMITED);
    assert!(
        matches!(refused.detail, ErrorDetail::RetryAfterMs(ms) if ms > 0 && ms <= 1000),
        "{refused:?}"
    );
}
