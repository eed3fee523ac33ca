//! Record decoding (what a friend or another device of the user sealed
//! into a post) never panics, and whatever decodes is canonical:
//! encode(decode(b)) == b. The certificate check is total.
#![no_main]

use cairn_client::record::Record;
use cairn_wire::{EnvelopeHeader, FIRST_IN_STREAM, Scope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = Record::decode(data) {
        assert_eq!(record.encode(), data);
        let body = record.certificate.body();
        let header = EnvelopeHeader::new(
            body.user,
            body.device,
            1,
            FIRST_IN_STREAM,
            0,
            Scope::Private,
        );
        let _ = record.vouches_for(&header);
    }
});
