//! Signed statements decode totally and canonically, and verify totally.
#![no_main]

use cairn_wire::{DeviceCertificate, DeviceRevocation, FriendGrant, FriendRevocation};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = DeviceCertificate::decode(data) {
        assert_eq!(s.encode(), data);
        let _ = s.verify();
    }
    if let Ok(s) = DeviceRevocation::decode(data) {
        assert_eq!(s.encode(), data);
        let _ = s.verify();
    }
    if let Ok(s) = FriendGrant::decode(data) {
        assert_eq!(s.encode(), data);
        let _ = s.verify();
    }
    if let Ok(s) = FriendRevocation::decode(data) {
        assert_eq!(s.encode(), data);
        let _ = s.verify();
    }
});
