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
