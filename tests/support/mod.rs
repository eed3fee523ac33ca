//! Support for end-to-end scenarios: the test kit, and the hostile scene.
#![allow(dead_code, unused_imports)]

pub mod hostile;

pub use cairn_testkit::process::free_udp_port;
pub use cairn_testkit::{Device, RelayProcess, User, WAIT, now_ms, relay_binary};
