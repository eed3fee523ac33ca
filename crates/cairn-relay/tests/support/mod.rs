//! Test support: in-process relays on loopback, identities, envelopes.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_client::Connection;
use cairn_relay::config::RelayConfig;
use cairn_relay::{RelayHandle, start};
use cairn_wire::*;
use tempfile::TempDir;

/// Every wait in these tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(20);

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
        let connect = Connection::open(
            self.handle.addr,
            self.handle.fingerprint,
            &device.key,
            device.certificate.clone(),
            invite,
        );
        tokio::time::timeout(WAIT, connect)
            .await
            .expect("connect timed out")
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

/// A user: a root key.
pub struct User {
    pub root: SigningKey,
    pub id: UserId,
}

/// One device of a user, certified by the user's root key.
#[derive(Clone)]
pub struct Device {
    pub key: SigningKey,
    pub user: UserId,
    pub id: DeviceId,
    pub certificate: DeviceCertificate,
}

impl User {
    pub fn new(seed: u8) -> Self {
        let root = SigningKey::from_bytes(&[seed; 32]);
        let id = UserId::from_bytes(root.verifying_key().to_bytes());
        Self { root, id }
    }

    /// A device of this user, certified by its root key.
    pub fn device(&self, seed: u8) -> Device {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let id = DeviceId::from_bytes(key.verifying_key().to_bytes());
        let body =
            DeviceCertificateBody::new(self.id, id, ExchangeKey::from_bytes([seed; 32]), now_ms());
        Device {
            key,
            user: self.id,
            id,
            certificate: DeviceCertificate::sign(body, &self.root),
        }
    }

    pub fn revoke(&self, device: &Device) -> DeviceRevocation {
        DeviceRevocation::sign(
            DeviceRevocationBody::new(self.id, device.id, now_ms()),
            &self.root,
        )
    }

    pub fn grant(&self, friend: &User) -> FriendGrant {
        FriendGrant::sign(
            FriendGrantBody::new(self.id, friend.id, now_ms()),
            &self.root,
        )
    }

    pub fn unfriend(&self, friend: &User) -> FriendRevocation {
        FriendRevocation::sign(
            FriendRevocationBody::new(self.id, friend.id, now_ms() + 1),
            &self.root,
        )
    }
}

impl Device {
    /// An envelope by this device.
    pub fn envelope(&self, seq: u64, scope: Scope, payload: &[u8]) -> Envelope {
        let header = EnvelopeHeader::new(self.user, self.id, seq, now_ms(), scope);
        UnsignedEnvelope {
            header,
            payload: Payload::new(payload.to_vec()).unwrap(),
        }
        .sign(&self.key)
    }
}

pub fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
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
    let url = format!("http://{}{path}", relay.handle.admin_addr);
    ureq::get(&url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap()
}

/// The value of an unlabelled metric in Prometheus text, 0 when absent.
pub fn metric_value(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .next()
        .unwrap_or(0.0)
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
