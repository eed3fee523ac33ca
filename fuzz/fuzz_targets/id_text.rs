//! Id text parsing never panics, and what parses prints back the same
//! (modulo case, which Bech32m allows in all-uppercase form).
#![no_main]

use cairn_wire::{DeviceId, EnvelopeId, UserId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = text.parse::<UserId>() {
        assert_eq!(id.to_text(), text.to_lowercase());
    }
    if let Ok(id) = text.parse::<DeviceId>() {
        assert_eq!(id.to_text(), text.to_lowercase());
    }
    if let Ok(id) = text.parse::<EnvelopeId>() {
        assert_eq!(id.to_text(), text.to_lowercase());
    }
});
