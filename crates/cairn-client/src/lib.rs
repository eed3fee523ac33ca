//! cairn's client library.
//!
//! [`connection`] opens a QUIC connection to a relay pinned to its
//! certificate fingerprint, authenticates a device on it, and speaks the
//! request/response protocol of `spec/protocol.md`. The client never trusts
//! the relay for confidentiality or integrity: it pins the relay only so
//! that a stranger cannot impersonate it to collect metadata or drop
//! writes, and checks every envelope's signature itself.
#![forbid(unsafe_code)]

pub mod connection;
mod frame_io;
mod pin;

pub use connection::{ConnectError, Connection, RequestError, Subscription};
pub use frame_io::FrameReadError;
