//! Envelope decoding never panics, and whatever decodes is canonical:
//! encode(decode(b)) == b, with a stable id and a total verify.
#![no_main]

use cairn_wire::Envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = Envelope::decode(data) {
        assert_eq!(envelope.encode(), data);
        assert_eq!(envelope.id(), Envelope::id_of_encoding(data));
        let _ = envelope.verify();
    }
});
