//! Support for end-to-end scenarios: real `cairn-relay` processes on
//! loopback, identities and envelopes.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod hostile;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_wire::*;

/// Every wait in these scenarios is bounded by this.
pub const WAIT: Duration = Duration::from_secs(30);

/// The `cairn-relay` binary of this workspace, built once per test binary.
pub fn relay_binary() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let built = escargot::CargoBuild::new()
            .package("cairn-relay")
            .bin("cairn-relay")
            .current_release()
            .run()
            .unwrap();
        built.path().to_owned()
    })
}

/// A `cairn-relay serve` process.
pub struct RelayProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub fingerprint: Fingerprint,
}

impl RelayProcess {
    /// Starts a relay on `data_dir`, listening on `listen` (port 0 for any).
    pub fn spawn(data_dir: &Path, listen: SocketAddr) -> Self {
        Self::spawn_with_env(data_dir, listen, &[])
    }

    /// Starts a relay like [`RelayProcess::spawn`], with extra `CAIRN_RELAY_*`
    /// configuration variables (later ones win over the defaults here).
    pub fn spawn_with_env(data_dir: &Path, listen: SocketAddr, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(relay_binary())
            .args([
                "serve",
                "--admin-listen",
                "127.0.0.1:0",
                "--listen",
                &listen.to_string(),
                "--data-dir",
            ])
            .arg(data_dir)
            .env("CAIRN_RELAY_LIMITS__REQUESTS_PER_SECOND_PER_IP", "1000000")
            .env("CAIRN_RELAY_LIMITS__REQUEST_BURST_PER_IP", "1000000")
            .env("CAIRN_RELAY_LIMITS__CONNECTIONS_PER_IP", "1000")
            .env(
                "CAIRN_RELAY_LIMITS__HANDSHAKES_PER_SECOND_PER_IP",
                "1000000",
            )
            .env("CAIRN_RELAY_LIMITS__HANDSHAKE_BURST_PER_IP", "1000000")
            .env(
                "CAIRN_RELAY_LIMITS__REGISTRATIONS_PER_HOUR_PER_IP",
                "1000000",
            )
            .env("CAIRN_RELAY_LIMITS__REGISTRATION_BURST_PER_IP", "1000000")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let listening = lines.next().expect("relay printed nothing").unwrap();
        let fingerprint = lines.next().unwrap().unwrap();
        let words: Vec<&str> = listening.split_whitespace().collect();
        Self {
            child,
            addr: words[4].parse().unwrap(),
            admin: words[6].trim_end_matches(')').parse().unwrap(),
            fingerprint: fingerprint
                .strip_prefix("fingerprint ")
                .unwrap()
                .parse()
                .unwrap(),
        }
    }

    /// SIGTERM, and waits (bounded) for a graceful exit; returns its status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let terminated = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(terminated.success(), "could not signal the relay");
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "relay did not stop within {WAIT:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, and reap.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback UDP port that was free a moment ago.
pub fn free_udp_port() -> SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A user with one certified device.
#[derive(Clone)]
pub struct Device {
    pub key: SigningKey,
    pub user: UserId,
    pub id: DeviceId,
    pub certificate: DeviceCertificate,
}

impl Device {
    /// A new user (root key from `seed`) and their first device.
    pub fn new_user(seed: u16) -> Self {
        let mut root_seed = [0x5a; 32];
        root_seed[..2].copy_from_slice(&seed.to_be_bytes());
        let mut device_seed = [0xa5; 32];
        device_seed[..2].copy_from_slice(&seed.to_be_bytes());
        let root = SigningKey::from_bytes(&root_seed);
        let key = SigningKey::from_bytes(&device_seed);
        let user = UserId::from_bytes(root.verifying_key().to_bytes());
        let id = DeviceId::from_bytes(key.verifying_key().to_bytes());
        let body = DeviceCertificateBody::new(user, id, ExchangeKey::from_bytes([1; 32]), now_ms());
        Self {
            key,
            user,
            id,
            certificate: DeviceCertificate::sign(body, &root),
        }
    }

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
