//! The metrics recorder keeps every timing it is given until it folds
//! them into their histograms' buckets. A relay nobody scrapes must still
//! hold a bounded amount for them, however many requests it answers.
//!
//! Its own test binary: the allocator that counts the bytes held is
//! global, and so is the recorder.
#![forbid(unsafe_code)]

use std::alloc::System;
use std::time::Duration;

use cairn_relay::metrics;
use cap::Cap;

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// Timings recorded per round, and rounds.
const PER_ROUND: usize = 100_000;
const ROUNDS: usize = 6;

fn record(n: usize) {
    for i in 0..n {
        metrics::request_took("append", Duration::from_micros(100 + (i % 1000) as u64));
    }
}

/// A round of timings, then time for the upkeep to fold them in. The
/// memory it frees is reclaimed once later recordings move the
/// recorder's epoch on, hence the few timings after.
fn round() {
    record(PER_ROUND);
    std::thread::sleep(metrics::UPKEEP_EVERY + Duration::from_millis(300));
    record(1_000);
}

#[test]
fn timings_do_not_pile_up_in_a_relay_nobody_scrapes() {
    assert!(metrics::prometheus().is_some(), "the recorder installs");
    round();
    let after_first = ALLOCATOR.allocated();
    for _ in 1..ROUNDS {
        round();
    }
    let grown = ALLOCATOR.allocated().saturating_sub(after_first);
    // Kept as samples, each round's timings would be more than 1.5 MB.
    assert!(
        grown < 1 << 20,
        "{} more timings, never scraped, left {grown} more bytes held",
        PER_ROUND * (ROUNDS - 1)
    );
}
