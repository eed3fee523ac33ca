//! The relay's configuration file parses totally: any text is a
//! configuration or a clear error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(config) = cairn_relay::RelayConfig::from_toml(text)
    {
        let _ = config.limits.quota();
        let _ = config.database_path();
    }
});
