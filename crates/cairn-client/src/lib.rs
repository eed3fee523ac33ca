//! cairn's client library.
//!
//! [`connection`] opens a QUIC connection to a relay pinned to its
//! certificate fingerprint, authenticates a device on it, and speaks the
//! request/response protocol of `spec/protocol.md`. [`Client`] is one
//! device of a user on top of it: a local redb store per home directory
//! with its secrets encrypted at rest, an offline outbox, a sync engine,
//! notes, friends, audiences, posts, device linking and live updates, as
//! specified in `spec/client.md`.
//!
//! The client never trusts the relay for confidentiality or integrity: it
//! pins the relay only so that a stranger cannot impersonate it to collect
//! metadata or drop writes, checks every envelope's signature itself, and
//! accepts a record only when the certificate inside it shows that the
//! signing device is its author's.
#![forbid(unsafe_code)]

mod added;
mod adopt;
mod chain;
mod client;
pub mod connection;
mod devices;
mod direct;
mod error;
mod frame_io;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod history;
mod identity;
mod link;
mod local;
mod notes;
mod open;
pub mod pin;
mod reach;
pub mod record;
mod recovery;
mod rekey;
mod relog;
mod revoke;
mod revoked;
mod rounds;
mod sealed;
mod shown;
mod social;
mod state;
mod status;
mod sync;
mod unopened;
mod vault;
mod watch;
mod write;

pub use chain::HistoryBreak;
pub use client::{Client, Whoami, now_ms};
pub use connection::{ConnectError, Connection, RequestError, Subscription};
pub use devices::{Approval, DeviceView, LinkOffer};
pub use direct::Message;
pub use error::{Error, ErrorKind};
pub use frame_io::FrameReadError;
pub use history::{LogEntry, LogEvent};
pub use link::{Confirmation, LINK_CODE_LIFETIME, LinkCode};
pub use local::STORE_FILE;
pub use notes::MAX_TEXT_LEN;
pub use reach::{DEFAULT_PUSH_WAIT, Options, RelayTarget, Trust, host_of, trusts_authorities};
pub use recovery::RecoveryCode;
pub use relog::Relogged;
pub use shown::Listed;
pub use state::{AudienceLabel, AudienceView, Author, FeedItem, Friend, Note};
pub use status::{Contact, LastContact, RETRY_AFTER, Status};
pub use sync::{NoProgress, Progress, SyncReport};
pub use unopened::Unopened;
pub use vault::{INSECURE_FAST_KDF_ENV, Passphrase, UnlockedKey};
pub use watch::{NoteChange, WatchEvent};
