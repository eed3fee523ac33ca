//! The shipped example configuration parses and matches the defaults it
//! claims, so that it cannot drift from the code.

// Test code: a panic is the failure report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use cairn_relay::config::{FlagOverrides, RelayConfig};

#[test]
fn the_example_config_parses_and_its_limits_are_the_defaults() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/relay.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let parsed: RelayConfig = toml::from_str(&text).unwrap();
    let defaults = RelayConfig::default();
    assert_eq!(parsed.limits, defaults.limits);
    assert_eq!(parsed.registration, defaults.registration);
    assert_eq!(parsed.listen, defaults.listen);
    assert_eq!(parsed.admin_listen, defaults.admin_listen);
    assert!(RelayConfig::load(Some(&path), &FlagOverrides::default()).is_ok());
}

/// `CAIRN_RELAY_CONFIG`, which `--help` advertises, names the config file
/// (it used to be read as a setting and refused), and the systemd unit
/// hands the relay its config.
#[test]
fn the_config_file_comes_from_the_environment_and_the_unit_passes_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relay.toml");
    std::fs::write(&config, "[limits]\nconnections_per_ip = \"many\"\n").unwrap();
    let fingerprint = |with_config: bool| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cairn-relay"));
        command
            .args(["fingerprint", "--data-dir"])
            .arg(dir.path())
            .env_remove("CAIRN_RELAY_CONFIG");
        if with_config {
            command.env("CAIRN_RELAY_CONFIG", &config);
        }
        command.output().unwrap()
    };
    assert!(fingerprint(false).status.success());
    let refused = fingerprint(true);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "the file's bad value was not read"
    );
    assert!(stderr.contains("connections_per_ip"), "{stderr}");
    std::fs::write(&config, "[limits]\nconnections_per_ip = 3\n").unwrap();
    assert!(fingerprint(true).status.success());

    let unit =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/cairn-relay.service");
    let unit = std::fs::read_to_string(unit).unwrap();
    let exec = unit.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
    assert!(
        exec.contains("--config ${CONFIGURATION_DIRECTORY}/relay.toml"),
        "{exec}"
    );
}

/// The cluster example (`deploy/cluster/`): each relay node's file parses
/// into a `jetstream` node with its own name on the three servers, each
/// server's file is one the pinned nats-server accepts with the settings
/// the log needs, and the compose file runs them all.
#[test]
fn the_cluster_example_parses_and_its_servers_take_their_files() {
    use cairn_relay::config::Backend;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/cluster");
    let mut names = Vec::new();
    for node in ["a", "b"] {
        let path = dir.join(format!("relay-{node}.toml"));
        let config = RelayConfig::load(Some(&path), &FlagOverrides::default()).unwrap();
        assert_eq!(config.storage.backend, Backend::Jetstream);
        let jetstream = config.storage.jetstream.unwrap();
        assert_eq!(jetstream.urls.len(), 3);
        assert_eq!(jetstream.replicas, 3);
        names.push(jetstream.node_id);
    }
    assert_ne!(names[0], names[1], "each node has its own name");
    let nats = cairn_testkit::nats::nats_server_binary();
    for server in 1..=3 {
        let path = dir.join(format!("nats-{server}.conf"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("sync_interval: always"), "{text}");
        assert!(text.contains("max_payload: 8MB"), "{text}");
        let checked = std::process::Command::new(&nats)
            .arg("-t")
            .arg("-c")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            checked.status.success(),
            "{}",
            String::from_utf8_lossy(&checked.stderr)
        );
    }
    let compose = std::fs::read_to_string(dir.join("compose.yaml")).unwrap();
    for file in [
        "nats-1.conf",
        "nats-2.conf",
        "nats-3.conf",
        "relay-a.toml",
        "relay-b.toml",
    ] {
        assert!(compose.contains(file), "compose.yaml does not mount {file}");
    }
}
