//! The relay's configuration, layered: built-in defaults < TOML file <
//! `CAIRN_RELAY_*` environment variables < command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_wire::UserId;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Everything the relay can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// Holds the database, the certificate and the key.
    pub data_dir: PathBuf,
    /// QUIC listen address.
    pub listen: SocketAddr,
    /// Admin HTTP listen address (metrics, health, admin); loopback by
    /// default. `/admin/` requests carry the token the relay keeps in
    /// `admin.json` in the data directory.
    pub admin_listen: SocketAddr,
    /// A listener serving `/metrics` and `/healthz` alone, without the
    /// operator API, for exposing to a monitoring system (none by default).
    pub metrics_listen: Option<SocketAddr>,
    /// A PEM certificate chain and key to use instead of the self-signed one.
    pub tls: Option<TlsFiles>,
    /// Who may register.
    pub registration: Registration,
    /// Bounds on what peers may use.
    pub limits: Limits,
    /// The database.
    pub storage: Storage,
    /// How long envelopes to friends and to other users are kept.
    pub retention: Retention,
    /// `text` or `json` log lines.
    pub log_format: LogFormat,
}

/// How long the relay keeps what users send to their friends and to one
/// another (`spec/relay.md` §9). Private streams, and each user's direct
/// stream to their own devices, are kept for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// Friends streams (posts) lose envelopes dated longer ago than this
    /// (e.g. `"365d"`); unset: kept.
    #[serde(with = "optional_duration")]
    pub friends: Option<Duration>,
    /// Direct streams to other users lose envelopes dated longer ago than
    /// this (e.g. `"30d"`); unset: kept. They carry audience keys to
    /// members too: a member offline for longer misses keys granted
    /// meanwhile.
    #[serde(with = "optional_duration")]
    pub direct: Option<Duration>,
    /// How often the relay removes what expired.
    #[serde(with = "humantime_duration")]
    pub every: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            friends: None,
            direct: None,
            every: Duration::from_secs(600),
        }
    }
}

/// A duration written as `humantime` text (`"30d"`, `"90s"`).
mod humantime_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(*value).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!("{text:?} is not a duration like \"30d\": {e}"))
        })
    }
}

/// An optional [`humantime_duration`].
mod optional_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => super::humantime_duration::serialize(duration, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(deserializer)? {
            None => Ok(None),
            Some(text) => humantime::parse_duration(&text).map(Some).map_err(|e| {
                serde::de::Error::custom(format!("{text:?} is not a duration like \"30d\": {e}"))
            }),
        }
    }
}

/// The database's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Storage {
    /// The most memory the database's page cache may hold, in bytes.
    pub cache_bytes: usize,
    /// The most bytes the database file may grow to (none: as much as the
    /// disk holds). Past it, writes are refused with `storage_full` as on
    /// a full disk. Reloadable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_database_bytes: Option<u64>,
    /// `redb` (one node, the default) or `jetstream` (one node of a
    /// cluster sharing one log, `spec/cluster.md`).
    pub backend: Backend,
    /// Where the cluster's log is, for the `jetstream` backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jetstream: Option<JetStream>,
}

impl Default for Storage {
    fn default() -> Self {
        Self {
            cache_bytes: cairn_store::DEFAULT_CACHE_BYTES,
            max_database_bytes: None,
            backend: Backend::Redb,
            jetstream: None,
        }
    }
}

/// Which store the relay runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// One redb file: a relay of one node.
    Redb,
    /// A redb copy following a log on NATS JetStream shared with other
    /// nodes.
    Jetstream,
}

/// `[storage.jetstream]`: the NATS servers holding the cluster's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JetStream {
    /// The servers' URLs (`nats://host:4222`).
    pub urls: Vec<String>,
    /// A NATS credentials file, if the servers ask for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<PathBuf>,
    /// The stream holding the log.
    pub stream: String,
    /// Its replicas: 3 on a three-server cluster.
    pub replicas: usize,
    /// How long the log keeps records, in days; a node seeded from a
    /// backup older than this cannot catch up.
    pub log_retention_days: u64,
    /// This node's name, unique in the cluster.
    pub node_id: String,
}

impl Default for JetStream {
    fn default() -> Self {
        Self {
            urls: vec!["nats://127.0.0.1:4222".into()],
            credentials: None,
            stream: "CAIRN_LOG".into(),
            replicas: 3,
            log_retention_days: 30,
            node_id: String::new(),
        }
    }
}

/// Paths of a configured certificate chain and its private key (PEM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// Certificate chain, end-entity first.
    pub cert: PathBuf,
    /// Private key (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
}

/// Registration policy for users the relay has not seen.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Registration {
    /// `open`, `invite` or `allow-list`.
    pub policy: RegistrationPolicy,
    /// Accepted invite codes (policy `invite`); each may be used again.
    pub invites: Vec<String>,
    /// Admitted users (policy `allow-list`), as user ids in text form
    /// (`cu1…`); a configuration with anything else does not load.
    pub allow: Vec<AllowedUser>,
}

/// A user id in the allow-list, written and read in its text form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowedUser(pub UserId);

impl Serialize for AllowedUser {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0.to_text())
    }
}

impl<'de> Deserialize<'de> for AllowedUser {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map(Self).map_err(|e| {
            serde::de::Error::custom(format!(
                "registration.allow: {text:?} is not a user id: {e}"
            ))
        })
    }
}

/// How new users are admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RegistrationPolicy {
    /// Anyone with a valid certificate.
    #[default]
    Open,
    /// Anyone presenting one of the configured invite codes.
    Invite,
    /// Only the configured user ids.
    AllowList,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Bounds on what peers may use. Defaults suit a small community relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Concurrent connections from one IP address.
    pub connections_per_ip: u32,
    /// Concurrent request streams per connection.
    pub streams_per_connection: u32,
    /// Concurrent subscriptions per connection.
    pub subscriptions_per_connection: u32,
    /// Seconds of silence before a connection is closed.
    pub idle_timeout_secs: u64,
    /// Seconds a peer has to authenticate or to send a whole request frame.
    pub request_timeout_secs: u64,
    /// Sustained requests per second per user.
    pub requests_per_second_per_user: u32,
    /// Burst of requests per user.
    pub request_burst_per_user: u32,
    /// Sustained requests per second per IP address.
    pub requests_per_second_per_ip: u32,
    /// Burst of requests per IP address.
    pub request_burst_per_ip: u32,
    /// Live entries queued for one subscriber before it is switched to
    /// catching up from storage.
    pub subscriber_queue: usize,
    /// Bytes of live entries queued for one subscriber before it is
    /// switched to catching up from storage.
    pub subscriber_queue_bytes: usize,
    /// How far ahead of the relay's clock a signed statement may be dated
    /// (seconds); later ones get `future_statement`.
    pub max_clock_skew_secs: u64,
    /// Sustained new connections (handshakes, and so authentications:
    /// one per connection) per second per IP address.
    pub handshakes_per_second_per_ip: u32,
    /// Burst of new connections per IP address.
    pub handshake_burst_per_ip: u32,
    /// Sustained new users registered per hour per IP address.
    pub registrations_per_hour_per_ip: u32,
    /// Burst of new users registered per IP address.
    pub registration_burst_per_ip: u32,
    /// Connections not yet authenticated, relay-wide, past which a new
    /// one must first prove its address (a QUIC retry).
    pub validate_addresses_above: u32,
    /// Connections not yet authenticated, relay-wide, past which new ones
    /// are refused.
    pub max_pending_logins: u32,
    /// Bytes of envelopes one user's devices may store, in all streams.
    pub user_quota_bytes: u64,
    /// Envelopes one user's devices may store, in all streams.
    pub user_quota_envelopes: u64,
    /// Bytes an authenticated connection may have in flight to the relay
    /// that the relay has not read yet (QUIC's connection receive window).
    /// Before authentication the window is one `Authenticate` frame.
    pub receive_window_per_connection: u32,
    /// Bytes the relay keeps for one connection that the peer has not
    /// acknowledged yet (QUIC's send window): what a reader that stops
    /// reading can make the relay hold in its send buffers. Bounds each
    /// connection's throughput to this much per round trip.
    pub send_window_per_connection: u32,
}

impl Limits {
    /// What each user may store.
    pub fn quota(&self) -> cairn_store::Quota {
        cairn_store::Quota {
            bytes: self.user_quota_bytes,
            envelopes: self.user_quota_envelopes,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connections_per_ip: 64,
            streams_per_connection: 64,
            subscriptions_per_connection: 32,
            idle_timeout_secs: 60,
            request_timeout_secs: 20,
            requests_per_second_per_user: 500,
            request_burst_per_user: 1000,
            requests_per_second_per_ip: 1000,
            request_burst_per_ip: 2000,
            subscriber_queue: 1024,
            subscriber_queue_bytes: 4 * 1024 * 1024,
            max_clock_skew_secs: 120,
            handshakes_per_second_per_ip: 20,
            handshake_burst_per_ip: 64,
            registrations_per_hour_per_ip: 60,
            registration_burst_per_ip: 10,
            validate_addresses_above: 128,
            max_pending_logins: 1024,
            receive_window_per_connection: 4 * 1024 * 1024,
            send_window_per_connection: 2 * 1024 * 1024,
            user_quota_bytes: 1024 * 1024 * 1024,
            user_quota_envelopes: 1_000_000,
        }
    }
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_ADMIN_PORT)),
            metrics_listen: None,
            tls: None,
            registration: Registration::default(),
            limits: Limits::default(),
            storage: Storage::default(),
            retention: Retention::default(),
            log_format: LogFormat::Text,
        }
    }
}

/// The database file in the data directory (`spec/storage.md`).
pub const DATABASE_FILE: &str = "relay.redb";
/// The default QUIC port.
pub const DEFAULT_PORT: u16 = 7439;
/// Default admin HTTP port.
pub const DEFAULT_ADMIN_PORT: u16 = 7440;

/// Prefix of the environment variables the relay reads; nested keys use
/// `__`, e.g. `CAIRN_RELAY_LIMITS__CONNECTIONS_PER_IP`.
pub const ENV_PREFIX: &str = "CAIRN_RELAY_";

/// Values given as command-line flags; only the ones given override.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FlagOverrides {
    /// `--data-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `--listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// `--admin-listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_listen: Option<SocketAddr>,
    /// `--metrics-listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// `--log-format`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

/// Where a running relay's configuration came from: read again, the same
/// way, on reload.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    /// The TOML file, if one was named.
    pub file: Option<PathBuf>,
    /// The flags given at start.
    pub flags: FlagOverrides,
}

impl ConfigSource {
    /// Layers defaults, the file, the environment and the flags again.
    pub fn load(&self) -> Result<RelayConfig, ConfigError> {
        RelayConfig::load(self.file.as_deref(), &self.flags)
    }
}

/// Configuration could not be assembled.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl RelayConfig {
    /// Layers defaults, the TOML file (if given), the environment and the
    /// flags, in that order.
    pub fn load(file: Option<&Path>, flags: &FlagOverrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Self::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file(file));
        }
        figment
            // `CAIRN_RELAY_CONFIG` names the file itself (a flag's
            // variable), not a setting in it.
            .merge(Env::prefixed(ENV_PREFIX).split("__").ignore(&["config"]))
            .merge(Serialized::defaults(flags))
            .extract()
            .map_err(|e| ConfigError(e.to_string()))
    }

    /// The defaults with the TOML `text` on top (no environment, no
    /// flags): how a configuration file's contents are read, for checks
    /// and for the fuzz target `config`.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Figment::from(Serialized::defaults(Self::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| ConfigError(e.to_string()))
    }

    /// The database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join(DATABASE_FILE)
    }
}

/// `$XDG_DATA_HOME/cairn-relay` (or the platform's equivalent), else
/// `./cairn-relay-data`.
fn default_data_dir() -> PathBuf {
    dirs::data_dir().map_or_else(
        || PathBuf::from("cairn-relay-data"),
        |d| d.join("cairn-relay"),
    )
}

#[cfg(test)]
// figment's `Jail` closures return its own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use figment::Jail;

    use super::*;

    #[test]
    fn defaults_file_environment_and_flags_layer_in_that_order() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "relay.toml",
                r#"
                    data_dir = "/from/file"
                    listen = "127.0.0.1:1111"
                    admin_listen = "127.0.0.1:2222"
                    [limits]
                    connections_per_ip = 5
                    [registration]
                    policy = "invite"
                    invites = ["abc"]
                "#,
            )?;
            jail.set_env("CAIRN_RELAY_LISTEN", "127.0.0.1:3333");
            jail.set_env("CAIRN_RELAY_LIMITS__CONNECTIONS_PER_IP", "7");
            let flags = FlagOverrides {
                admin_listen: Some("127.0.0.1:4444".parse().unwrap()),
                ..FlagOverrides::default()
            };
            let config = RelayConfig::load(Some(Path::new("relay.toml")), &flags).unwrap();
            assert_eq!(config.data_dir, PathBuf::from("/from/file")); // file over default
            assert_eq!(config.listen, "127.0.0.1:3333".parse().unwrap()); // env over file
            assert_eq!(config.admin_listen, "127.0.0.1:4444".parse().unwrap()); // flag over file
            assert_eq!(config.limits.connections_per_ip, 7); // nested env over file
            assert_eq!(
                config.limits.streams_per_connection,
                Limits::default().streams_per_connection
            );
            assert_eq!(config.registration.policy, RegistrationPolicy::Invite);
            Ok(())
        });
    }

    #[test]
    fn without_file_or_environment_the_defaults_hold() {
        Jail::expect_with(|_| {
            let config = RelayConfig::load(None, &FlagOverrides::default()).unwrap();
            assert_eq!(config.listen.port(), DEFAULT_PORT);
            assert!(
                config.admin_listen.ip().is_loopback(),
                "the admin API must default to loopback"
            );
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_missing_files_are_clear_errors() {
        Jail::expect_with(|jail| {
            jail.create_file("typo.toml", "listen_addr = \"127.0.0.1:1\"\n")?;
            let err = RelayConfig::load(Some(Path::new("typo.toml")), &FlagOverrides::default())
                .unwrap_err();
            assert!(err.to_string().contains("listen_addr"), "{err}");
            let err = RelayConfig::load(Some(Path::new("missing.toml")), &FlagOverrides::default())
                .unwrap_err();
            assert!(err.to_string().contains("does not exist"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn the_allow_list_holds_user_ids_and_refuses_anything_else() {
        let user = UserId::from_bytes([1; 32]);
        Jail::expect_with(|jail| {
            jail.create_file(
                "allow.toml",
                &format!(
                    "[registration]\npolicy = \"allow-list\"\nallow = [\"{}\"]\n",
                    user.to_text()
                ),
            )?;
            let config =
                RelayConfig::load(Some(Path::new("allow.toml")), &FlagOverrides::default())
                    .unwrap();
            assert_eq!(config.registration.allow, [AllowedUser(user)]);
            jail.create_file(
                "typo.toml",
                "[registration]\npolicy = \"allow-list\"\nallow = [\"alice\"]\n",
            )?;
            let err = RelayConfig::load(Some(Path::new("typo.toml")), &FlagOverrides::default())
                .unwrap_err();
            assert!(err.to_string().contains("is not a user id"), "{err}");
            Ok(())
        });
    }
}
