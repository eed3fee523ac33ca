//! What users paste or scan: link codes, recovery codes and relay
//! fingerprints parse totally, and a link code or fingerprint that parses
//! prints back to a text that parses to the same value.
#![no_main]

use std::str::FromStr;

use cairn_client::{LinkCode, RecoveryCode};
use cairn_wire::Fingerprint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(code) = LinkCode::from_str(text) {
        let again = LinkCode::from_str(&code.to_string()).expect("a printed link code parses");
        assert_eq!(again.to_string(), code.to_string());
    }
    let _ = RecoveryCode::from_str(text);
    if let Ok(fingerprint) = Fingerprint::from_str(text) {
        assert_eq!(
            Fingerprint::from_str(&fingerprint.to_string()).ok(),
            Some(fingerprint)
        );
    }
});
