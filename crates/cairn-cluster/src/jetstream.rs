//! The log on NATS JetStream: one stream, one subject, records published
//! with a message id (so a retried publish is stored once) and read back
//! in order.

use std::error::Error as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::context::{Context, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{
    Config as StreamConfig, DiscardPolicy, LastRawMessageErrorKind, StorageType,
};
use async_nats::jetstream::{self, stream::Stream};
use bytes::Bytes;

use crate::error::ClusterError;
use crate::record::{LogRecord, MAX_RECORD_LEN};

/// Where the log lives and how a node reaches it (`[store.jetstream]`).
#[derive(Debug, Clone)]
pub struct JetStreamConfig {
    /// The NATS servers' URLs.
    pub urls: Vec<String>,
    /// A NATS credentials file, if the servers ask for one.
    pub credentials: Option<PathBuf>,
    /// The stream's name.
    pub stream: String,
    /// Its replicas (3 on a three-server cluster).
    pub replicas: usize,
    /// How long the log keeps records (JetStream `max_age`).
    pub log_retention: Duration,
    /// This node's name, in the message ids it publishes.
    pub node_id: String,
    /// How long a write waits for the log (through a leader election)
    /// before it fails.
    pub request_timeout: Duration,
}

impl JetStreamConfig {
    /// The subject records are published on.
    pub fn subject(&self) -> String {
        format!("cairn.log.{}", self.stream)
    }
}

/// The oldest nats-server a node works with: older ones ignore options
/// the log relies on without saying so.
const MIN_SERVER: (u64, u64) = (2, 10);

/// How long JetStream remembers message ids to drop a retried publish.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// JetStream's error code for a publish whose earlier attempt with the
/// same message id is still being stored.
const IN_FLIGHT_DUPLICATE: u64 = 10158;

/// How long one pull of the log's consumer waits; its heartbeat follows.
const FOLLOW_EXPIRES: Duration = Duration::from_secs(2);

/// Pause between two attempts of a request that may succeed later.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// How long one attempt of a request to JetStream waits for its answer.
/// Short, so that a request sent while the cluster has no leader (which
/// answers nothing) is sent again within the caller's deadline.
const ATTEMPT: Duration = Duration::from_secs(2);

/// The log, reached through one NATS connection.
#[derive(Debug, Clone)]
pub struct JetStreamLog {
    js: Context,
    stream_name: String,
    subject: String,
    timeout: Duration,
}

impl JetStreamLog {
    /// Connects, checks the server, and makes the stream if it is missing.
    pub async fn connect(config: &JetStreamConfig) -> Result<Self, ClusterError> {
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("cairn-relay {}", config.node_id))
            .connection_timeout(config.request_timeout)
            .request_timeout(Some(ATTEMPT));
        if let Some(path) = &config.credentials {
            options = options
                .credentials_file(path)
                .await
                .map_err(|e| ClusterError::Credentials(path.clone(), e))?;
        }
        let urls = config.urls.join(",");
        let servers = config
            .urls
            .iter()
            .map(|url| url.parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ClusterError::Connect(urls.clone(), e.to_string()))?;
        let client = options
            .connect(servers)
            .await
            .map_err(|e| ClusterError::Connect(urls.clone(), e.to_string()))?;
        check_server(&client.server_info())?;
        let js = jetstream::context::ContextBuilder::new()
            .timeout(ATTEMPT)
            .build(client);
        let log = Self {
            js,
            stream_name: config.stream.clone(),
            subject: config.subject(),
            timeout: config.request_timeout,
        };
        log.make_stream(config).await?;
        Ok(log)
    }

    async fn make_stream(&self, config: &JetStreamConfig) -> Result<Stream, ClusterError> {
        let stream = StreamConfig {
            name: self.stream_name.clone(),
            subjects: vec![self.subject.clone()],
            num_replicas: config.replicas,
            storage: StorageType::File,
            max_age: config.log_retention,
            duplicate_window: DUPLICATE_WINDOW,
            max_message_size: i32::try_from(MAX_RECORD_LEN).unwrap_or(i32::MAX),
            discard: DiscardPolicy::Old,
            allow_direct: true,
            ..StreamConfig::default()
        };
        self.retrying(|| async { self.js.get_or_create_stream(stream.clone()).await })
            .await
    }

    /// Runs `request` until it succeeds or the log's request timeout has
    /// passed: a cluster electing a leader answers nothing for a few
    /// seconds.
    async fn retrying<T, E, F, Fut>(&self, request: F) -> Result<T, ClusterError>
    where
        E: std::fmt::Display,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let deadline = Instant::now() + self.timeout;
        loop {
            match request().await {
                Ok(answer) => return Ok(answer),
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, "a JetStream request failed; trying again");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(e) => return Err(ClusterError::Stream(e.to_string())),
            }
        }
    }

    /// Publishes `record` as message `id` and returns its sequence. A
    /// publish that may succeed later (no leader yet, a timeout, a lost
    /// connection, an attempt still in flight) is tried again with the same
    /// id until `deadline`; JetStream stores it once.
    pub async fn publish(
        &self,
        id: &str,
        record: &LogRecord,
        deadline: Instant,
    ) -> Result<u64, ClusterError> {
        let payload = Bytes::from(record.encode());
        self.publish_bytes(id, payload, None, deadline).await
    }

    /// Publishes `record` only if the log is empty: `Ok(None)` when it is
    /// not (another node started it first).
    pub async fn publish_first(
        &self,
        id: &str,
        record: &LogRecord,
        deadline: Instant,
    ) -> Result<Option<u64>, ClusterError> {
        let payload = Bytes::from(record.encode());
        match self.publish_bytes(id, payload, Some(0), deadline).await {
            Ok(seq) => Ok(Some(seq)),
            Err(ClusterError::NotFirst) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn publish_bytes(
        &self,
        id: &str,
        payload: Bytes,
        expected_last: Option<u64>,
        deadline: Instant,
    ) -> Result<u64, ClusterError> {
        loop {
            let mut message = PublishMessage::build()
                .payload(payload.clone())
                .message_id(id);
            if let Some(last) = expected_last {
                message = message.expected_last_sequence(last);
            }
            let attempt = match self.js.send_publish(self.subject.clone(), message).await {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            let error = match attempt {
                Ok(ack) => return Ok(ack.sequence),
                Err(e) => e,
            };
            if error.kind() == PublishErrorKind::WrongLastSequence {
                return Err(ClusterError::NotFirst);
            }
            if !may_succeed_later(&error) || Instant::now() >= deadline {
                return Err(ClusterError::Publish(error.to_string()));
            }
            tracing::debug!(%error, id, "publish to the log failed; trying again");
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// The first and last sequence the log holds now (`(0, 0)` or
    /// `(n + 1, n)` when it holds none).
    pub async fn bounds(&self) -> Result<(u64, u64), ClusterError> {
        let info = self
            .retrying(|| async {
                let mut stream = self
                    .js
                    .get_stream(&self.stream_name)
                    .await
                    .map_err(|e| e.to_string())?;
                stream
                    .info()
                    .await
                    .map(|i| i.state.clone())
                    .map_err(|e| e.to_string())
            })
            .await?;
        Ok((info.first_sequence, info.last_sequence))
    }

    /// The record at `seq`, if the log still holds it.
    pub async fn record(&self, seq: u64) -> Result<Option<LogRecord>, ClusterError> {
        let found = self
            .retrying(|| async {
                let stream = self
                    .js
                    .get_stream(&self.stream_name)
                    .await
                    .map_err(|e| e.to_string())?;
                match stream.get_raw_message(seq).await {
                    Ok(message) => Ok(Some(message.payload)),
                    Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
                    Err(e) => Err(e.to_string()),
                }
            })
            .await?;
        found
            .map(|payload| LogRecord::decode(&payload))
            .transpose()
            .map_err(|e| ClusterError::Record(seq, e.to_string()))
    }

    /// An ordered consumer of the log from `start` on: every record once,
    /// in sequence order, recreated by the client after a failure.
    pub async fn follow(
        &self,
        start: u64,
    ) -> Result<jetstream::consumer::pull::Ordered, ClusterError> {
        self.retrying(|| async {
            let stream = self
                .js
                .get_stream(&self.stream_name)
                .await
                .map_err(|e| e.to_string())?;
            let consumer = stream
                .create_consumer(OrderedConfig {
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: start,
                    },
                    // Pulls expire, and heartbeats come, within this: a
                    // consumer lost with its server (a killed stream
                    // leader) is noticed and made again in about this long
                    // rather than the client's default of 30 seconds.
                    max_expires: FOLLOW_EXPIRES,
                    ..OrderedConfig::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            consumer.messages().await.map_err(|e| e.to_string())
        })
        .await
    }
}

/// Whether a failed publish may succeed if tried again with the same id.
/// Matched by kind and by JetStream's numeric code, not by message.
fn may_succeed_later(error: &jetstream::context::PublishError) -> bool {
    match error.kind() {
        PublishErrorKind::StreamNotFound
        | PublishErrorKind::TimedOut
        | PublishErrorKind::BrokenPipe
        | PublishErrorKind::MaxAckPending => true,
        PublishErrorKind::Other => error
            .source()
            .and_then(|s| s.downcast_ref::<jetstream::Error>())
            .is_some_and(|e| e.error_code().0 == IN_FLIGHT_DUPLICATE),
        _ => false,
    }
}

/// Refuses a server too old for the log, or one that would refuse its
/// largest records.
fn check_server(info: &async_nats::ServerInfo) -> Result<(), ClusterError> {
    let mut parts = info
        .version
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u64>().ok());
    let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if version < MIN_SERVER {
        return Err(ClusterError::OldServer(info.version.clone()));
    }
    if info.max_payload < MAX_RECORD_LEN {
        return Err(ClusterError::SmallPayload {
            max_payload: info.max_payload,
            needed: MAX_RECORD_LEN,
        });
    }
    Ok(())
}
