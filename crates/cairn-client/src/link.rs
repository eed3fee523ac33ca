//! The one-line link code a joining device prints and a linked device
//! approves: Bech32m (prefix `cairnlink`) over a small versioned postcard
//! struct. It holds nothing secret: the new device's public keys, the
//! issue time it asks to be certified with, and the rendezvous user it
//! listens as until the user's keys arrive.

use std::fmt;
use std::str::FromStr;

use bech32::primitives::decode::CheckedHrpstring;
use bech32::{Bech32m, Hrp};
use cairn_wire::codec::{self, V1};
use cairn_wire::{BoundedString, DeviceId, ExchangeKey, UserId};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Human-readable part of a link code.
pub const LINK_PREFIX: &str = "cairnlink";
/// Longest device name a link code carries, in bytes.
pub const MAX_DEVICE_NAME_LEN: usize = 64;

/// What an approving device needs to certify a new one and reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkCode {
    version: V1,
    /// The new device.
    pub device: DeviceId,
    /// Its X25519 key: the certificate's, and where the bundle is sealed.
    pub exchange_key: ExchangeKey,
    /// The `issued_ms` to certify it with, so that the new device can
    /// rebuild the very same certificate once it holds the root key.
    pub issued_ms: u64,
    /// The throwaway user the new device reads its bundle as.
    pub rendezvous: UserId,
    /// The new device's name.
    pub name: BoundedString<MAX_DEVICE_NAME_LEN>,
}

impl LinkCode {
    /// A code in the current version.
    pub fn new(
        device: DeviceId,
        exchange_key: ExchangeKey,
        issued_ms: u64,
        rendezvous: UserId,
        name: &str,
    ) -> Self {
        Self {
            version: V1,
            device,
            exchange_key,
            issued_ms,
            rendezvous,
            name: BoundedString::truncating(name),
        }
    }
}

impl fmt::Display for LinkCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hrp = Hrp::parse(LINK_PREFIX).map_err(|_| fmt::Error)?;
        let text = bech32::encode::<Bech32m>(hrp, &codec::encode(self)).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl FromStr for LinkCode {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let invalid = |why: &dyn fmt::Display| Error::Invalid(format!("not a link code ({why})"));
        let checked = CheckedHrpstring::new::<Bech32m>(text.trim()).map_err(|e| invalid(&e))?;
        if checked.hrp().as_str() != LINK_PREFIX {
            return Err(invalid(&"wrong prefix"));
        }
        let bytes: Vec<u8> = checked.byte_iter().collect();
        codec::decode(&bytes, 1024).map_err(|e| invalid(&e))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn link_code_round_trips_and_detects_typos() {
        let code = LinkCode::new(
            DeviceId::from_bytes([1; 32]),
            ExchangeKey::from_bytes([2; 32]),
            1_700_000_000_000,
            UserId::from_bytes([3; 32]),
            "phone",
        );
        let text = code.to_string();
        assert!(text.starts_with("cairnlink1"));
        assert_eq!(text.parse::<LinkCode>().unwrap(), code);
        let typo = text.replacen('q', "p", 1);
        assert!(typo == text || typo.parse::<LinkCode>().is_err());
    }
}
