//! The records of a cluster's log (`spec/cluster.md` section 2), as a node
//! reads them from NATS: any bytes decode to a record or a clear error,
//! never a panic; a record that decodes re-encodes to the same bytes, and
//! makes a store write.
#![no_main]

use cairn_cluster::LogRecord;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = LogRecord::decode(data) {
        assert_eq!(
            record.encode(),
            data,
            "a decoded record re-encodes to its bytes"
        );
        let _ = record.body.to_write();
    }
});
