//! Frame decoding (length prefix and body, requests and responses) never
//! panics, and whatever decodes re-encodes to the same bytes.
#![no_main]

use cairn_wire::{Request, Response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = Request::from_frame(data) {
        assert_eq!(request.to_frame(), data);
        if let cairn_wire::Request::Authenticate(auth) = &request {
            let _ = auth.verify_proof(&[0; 32]);
            let _ = auth.certificate.verify();
        }
    }
    if let Ok(response) = Response::from_frame(data) {
        assert_eq!(response.to_frame(), data);
    }
    if let Ok(request) = Request::decode(data) {
        assert_eq!(request.encode(), data);
    }
    if let Ok(response) = Response::decode(data) {
        assert_eq!(response.encode(), data);
    }
});
