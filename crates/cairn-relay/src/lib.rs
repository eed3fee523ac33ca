//! cairn's relay: a zero-knowledge QUIC server that stores opaque signed
//! envelopes and routes them to the devices their scope admits.
//!
//! A connection starts unauthenticated ([`session::Unauthenticated`]); a
//! device proves its key over the TLS exporter and becomes a
//! [`session::Session`], which alone can serve requests. Every request is a
//! frame on its own QUIC stream; the handlers in [`handlers`] check access
//! ([`access`]), call the [`cairn_store::Store`], and answer. Appends
//! publish after their durable commit; the [`fanout`] hub routes each
//! commit to live subscribers, whose bounded queues fall back to reading
//! storage when full.
#![forbid(unsafe_code)]

pub mod access;
pub mod admin;
pub mod admin_file;
mod admin_guard;
pub mod admission;
pub mod backend;
pub mod bans;
pub mod carry;
pub mod clock;
pub mod config;
pub mod disk;
pub mod effects;
pub mod export;
pub mod fanout;
pub mod follow;
mod frame_io;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod handlers;
pub mod invites;
pub mod limits;
pub mod live;
pub mod metrics;
pub mod ops;
pub mod ready;
mod registration;
pub mod removal;
pub mod retention;
pub mod server;
pub mod session;
pub mod tables;
pub mod tls;

pub use config::RelayConfig;
pub use server::{RelayHandle, StartError, start, start_on_faulty_disk};
