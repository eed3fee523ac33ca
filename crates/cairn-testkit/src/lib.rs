//! cairn's test kit: what every test and the load generator share.
//!
//! - [`ident`]: deterministic users, devices, statements and envelopes.
//! - [`process`]: the workspace's binaries, and `cairn-relay serve`
//!   processes that say where they listen through their ready file.
//! - [`raw`]: a peer that writes whatever frames it likes over real QUIC.
//! - [`metrics`]: the relay's Prometheus text, scraped and read.
//! - [`data`]: what a stopped relay's data directory holds (`check`,
//!   `export`).
//! - [`nats`]: NATS servers with JetStream on loopback, one or a cluster,
//!   for relay nodes that share one log.
//!
//! Test code: a panic is the failure report, so helpers panic with a
//! message rather than return errors. Every wait is bounded by [`WAIT`].
#![forbid(unsafe_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod data;
pub mod ident;
pub mod metrics;
pub mod nats;
pub mod process;
pub mod raw;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use ident::{Device, User};
pub use process::{RelayProcess, cairn_binary, relay_binary};

/// Every wait in a test is bounded by this.
pub const WAIT: Duration = Duration::from_secs(30);

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
