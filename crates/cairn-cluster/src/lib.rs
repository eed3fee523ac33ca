//! cairn relay nodes that share one log on NATS JetStream
//! (`spec/cluster.md`).
//!
//! Every node keeps its own redb copy of the store and applies the
//! cluster's log to it in order, with the store's own rules; the rules are
//! deterministic, so every copy that has applied the same records holds
//! the same state. A node publishes each write as a record and answers it
//! once its own applier has applied it.
//!
//! - [`record`]: the log's records, their encoding and the store write
//!   each makes.
//! - [`jetstream`]: the log on JetStream: connecting, the stream,
//!   publishing with retries under one message id, following in order.
//! - [`applier`]: the task that applies the log to the node's copy.
//! - [`store`]: [`ClusterStore`], the node's `Store`.
#![forbid(unsafe_code)]

#[cfg(feature = "nats")]
pub mod applier;
pub mod error;
#[cfg(feature = "nats")]
pub mod jetstream;
pub mod record;
#[cfg(feature = "nats")]
pub mod store;

pub use error::ClusterError;
#[cfg(feature = "nats")]
pub use jetstream::{JetStreamConfig, JetStreamLog};
pub use record::{Body, LogRecord, MAX_RECORD_LEN};
#[cfg(feature = "nats")]
pub use store::ClusterStore;
