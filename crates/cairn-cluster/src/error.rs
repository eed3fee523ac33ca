//! What can go wrong between a node, its copy and the log.

use std::path::PathBuf;

/// A node could not reach, start or follow the log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The credentials file could not be read.
    #[error("reading NATS credentials {0}: {1}")]
    Credentials(PathBuf, #[source] std::io::Error),
    /// No NATS server answered.
    #[error("connecting to NATS at {0}: {1}")]
    Connect(String, String),
    /// The server is older than the log needs.
    #[error(
        "nats-server {0} is too old: the log needs 2.10 or newer (older servers ignore options \
         it relies on without saying so)"
    )]
    OldServer(String),
    /// The server refuses messages as large as a record.
    #[error(
        "the NATS servers' max_payload is {max_payload} bytes; records need {needed}: set max_payload: 8MB"
    )]
    SmallPayload {
        /// What the server accepts.
        max_payload: usize,
        /// What a record may take.
        needed: usize,
    },
    /// The stream could not be made or read.
    #[error("the JetStream log: {0}")]
    Stream(String),
    /// A publish failed for good, or did not succeed before its deadline.
    #[error("publishing to the log: {0}")]
    Publish(String),
    /// A first record was offered to a log that already has one.
    #[error("the log already has a first record")]
    NotFirst,
    /// A record does not decode: a node older than the log's writers.
    #[error("log record {0} does not decode ({1}); upgrade this node, it never skips a record")]
    Record(u64, String),
    /// The log has no genesis record and this copy cannot say which log it is.
    #[error(
        "the log starts at record {first} and this copy has applied up to {applied}: seed this \
         node from a newer backup of another node"
    )]
    TooFarBehind {
        /// The log's first record.
        first: u64,
        /// What this copy has applied.
        applied: u64,
    },
    /// The first record of the log is not a genesis record.
    #[error("record 1 of the log is not its genesis record")]
    NoGenesis,
    /// The node's copy could not be opened or made to follow the log.
    #[error(transparent)]
    Open(#[from] cairn_store::OpenError),
    /// Reading the copy failed.
    #[error(transparent)]
    Read(#[from] cairn_store::ReadError),
    /// The applier stopped; the node serves no writes until restarted.
    #[error("the log applier stopped: {0}")]
    Stopped(String),
    /// The log was not applied up to what a read must see in time.
    #[error("this node has not applied the log up to record {0} in time")]
    Behind(u64),
}
