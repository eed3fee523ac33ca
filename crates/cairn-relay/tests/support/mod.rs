//! Test support: in-process relays on loopback, and requests through the
//! client library's connection. Identities, envelopes and the rest come
//! from the test kit.
#![allow(
    dead_code,
    unused_imports,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use cairn_client::{Connection, Subscription};
use cairn_relay::config::RelayConfig;
use cairn_relay::{RelayHandle, start};
pub use cairn_testkit::metrics::Metrics;
pub use cairn_testkit::{Device, User, WAIT, now_ms};
use cairn_wire::*;
use tempfile::TempDir;

/// A relay on loopback with its own data directory.
pub struct TestRelay {
    pub handle: RelayHandle,
    pub dir: TempDir,
}

impl TestRelay {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut RelayConfig)) -> Self {
        let dir = TempDir::new().unwrap();
        let handle = start(config_in(dir.path(), tweak)).await.unwrap();
        Self { handle, dir }
    }

    /// Restarts on the same data directory.
    pub async fn restart(self) -> Self {
        let dir = self.dir;
        self.handle.shutdown().await;
        let handle = start(config_in(dir.path(), |_| {})).await.unwrap();
        Self { handle, dir }
    }

    pub async fn connect(&self, device: &Device) -> Connection {
        self.try_connect(device, None).await.unwrap()
    }

    pub async fn try_connect(
        &self,
        device: &Device,
        invite: Option<&str>,
    ) -> Result<Connection, cairn_client::ConnectError> {
        cairn_testkit::raw::try_connect_to(
            self.handle.addr,
            self.handle.fingerprint,
            device,
            invite,
        )
        .await
    }
}

pub fn config_in(dir: &std::path::Path, tweak: impl FnOnce(&mut RelayConfig)) -> RelayConfig {
    let mut config = RelayConfig {
        data_dir: dir.to_owned(),
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        ..RelayConfig::default()
    };
    // Every test connects from one address; the limits on new connections
    // and users per address are tested where they are the point.
    config.limits.handshakes_per_second_per_ip = 1_000_000;
    config.limits.handshake_burst_per_ip = 1_000_000;
    config.limits.registrations_per_hour_per_ip = 1_000_000;
    config.limits.registration_burst_per_ip = 1_000_000;
    tweak(&mut config);
    config
}

/// Sends a request with a bounded wait.
pub async fn request(connection: &Connection, request: Request) -> Response {
    tokio::time::timeout(WAIT, connection.request(&request))
        .await
        .expect("request timed out")
        .unwrap()
}

/// Appends and returns the outcomes.
pub async fn append(connection: &Connection, envelopes: Vec<Envelope>) -> Vec<AppendOutcome> {
    let request_ = Request::Append(AppendRequest {
        envelopes: BoundedVec::new(envelopes).unwrap(),
    });
    match request(connection, request_).await {
        Response::Appended(outcomes) => outcomes.into_vec(),
        other => panic!("expected Appended, got {other:?}"),
    }
}

/// Appends one envelope that must be stored; returns its position.
pub async fn append_one(connection: &Connection, envelope: Envelope) -> u64 {
    match append(connection, vec![envelope]).await.as_slice() {
        [AppendOutcome::Stored(ack)] => ack.position,
        other => panic!("expected Stored, got {other:?}"),
    }
}

/// Reads a stream page.
pub async fn read(connection: &Connection, stream: StreamId, after: u64) -> Response {
    request(
        connection,
        Request::Read(ReadRequest {
            stream,
            after,
            limit: 1000,
        }),
    )
    .await
}

/// The code of an error answer.
pub fn error_code(response: &Response) -> ErrorCode {
    match response {
        Response::Error(e) => e.code,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Positions of a page answer.
pub fn positions(response: &Response) -> Vec<u64> {
    match response {
        Response::Page(page) => page.entries.iter().map(|e| e.position).collect(),
        other => panic!("expected a page, got {other:?}"),
    }
}

/// GETs an admin path and returns the body.
pub fn admin_get(relay: &TestRelay, path: &str) -> String {
    let (status, body) = cairn_testkit::process::http_get(relay.handle.admin_addr, path);
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// Waits (bounded) until the relay closes `connection` with `code`.
pub async fn assert_closed_with(connection: &quinn::Connection, code: ErrorCode) {
    let reason = tokio::time::timeout(WAIT, connection.closed())
        .await
        .expect("connection not closed");
    match reason {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code, u32::from(code.0).into())
        }
        other => panic!("expected an application close with {code}, got {other:?}"),
    }
}

/// Reads a subscription's entries, skipping its live markers, while
/// `more` says the positions read so far are not enough; every wait is
/// bounded, and any other event fails the test.
pub async fn positions_while(
    subscription: &mut Subscription,
    mut more: impl FnMut(&[u64]) -> bool,
) -> Vec<u64> {
    let mut positions = Vec::new();
    while more(&positions) {
        let event = tokio::time::timeout(WAIT, subscription.next())
            .await
            .expect("the subscriber waited too long")
            .unwrap();
        match event {
            Some(SubscriptionEvent::Entries(entries)) => {
                positions.extend(entries.iter().map(|e| e.position));
            }
            Some(SubscriptionEvent::Live { .. }) => {}
            other => panic!("unexpected subscription event {other:?}"),
        }
    }
    positions
}

/// The positions of the next `count` entries.
pub async fn collect(subscription: &mut Subscription, count: usize) -> Vec<u64> {
    positions_while(subscription, |p| p.len() < count).await
}

/// The positions of the entries up to position `last`.
pub async fn positions_until(subscription: &mut Subscription, last: u64) -> Vec<u64> {
    positions_while(subscription, |p| p.last().copied().unwrap_or(0) < last).await
}
