//! The relay's importer reads an export (a file an operator may have
//! been handed) as untrusted input: every line is checked, it never
//! panics, and its memory is bounded by its line limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cairn_relay::export::validate(data);
});
