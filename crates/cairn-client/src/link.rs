//! The one-line link code a joining device prints and a linked device
//! approves: Bech32m (prefix `cairnlink`) over a small versioned postcard
//! struct. It carries the new device's public keys, the issue time it asks
//! to be certified with, the first bytes of the relay's fingerprint, the
//! device's name, and a one-time secret: the approving device seals the
//! user's keys under that secret (HPKE PSK mode), so only someone who saw
//! the code can make a bundle the new device accepts. The code is shown on
//! the new device and typed or scanned on the approving one; it is worth
//! nothing after its lifetime.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use bech32::primitives::decode::CheckedHrpstring;
use bech32::{Bech32m, Hrp};
use cairn_crypto::{DeviceKeys, LinkSecret};
use cairn_wire::codec::{self, V1};
use cairn_wire::{BoundedString, DeviceId, ExchangeKey, Fingerprint, UserId};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Human-readable part of a link code.
pub const LINK_PREFIX: &str = "cairnlink";
/// Longest device name a link code carries, in bytes.
pub const MAX_DEVICE_NAME_LEN: usize = 64;
/// How long a link code can be approved after it was issued.
pub const LINK_CODE_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// How far ahead of the approving device's clock a code may be dated.
const LINK_CODE_SKEW: Duration = Duration::from_secs(5 * 60);
/// Bytes of the relay's fingerprint a code carries: enough to tell relays
/// apart, not to pin one (the approving device has its own pin).
const RELAY_TAG_LEN: usize = 8;

/// What an approving device needs to certify a new one and reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkCode {
    version: V1,
    /// The new device.
    pub device: DeviceId,
    /// Its X25519 key: the certificate's, and where the bundle is sealed.
    pub exchange_key: ExchangeKey,
    /// The `issued_ms` to certify it with; also when the code was made.
    pub issued_ms: u64,
    /// The one-time secret the bundle is sealed under.
    pub secret: LinkSecret,
    /// The first bytes of the relay's fingerprint.
    relay: [u8; RELAY_TAG_LEN],
    /// The new device's name.
    pub name: BoundedString<MAX_DEVICE_NAME_LEN>,
}

impl LinkCode {
    /// A code for `device` on the relay pinned to `relay`, issued at
    /// `issued_ms`, with a fresh `secret`.
    pub fn new(
        device: &DeviceKeys,
        issued_ms: u64,
        secret: LinkSecret,
        relay: &Fingerprint,
        name: &str,
    ) -> Self {
        Self {
            version: V1,
            device: device.device_id(),
            exchange_key: device.exchange_key(),
            issued_ms,
            secret,
            relay: relay_tag(relay),
            name: BoundedString::truncating(name),
        }
    }

    /// Whether the code was made for the relay pinned to `relay`.
    pub fn is_for(&self, relay: &Fingerprint) -> bool {
        self.relay == relay_tag(relay)
    }

    /// Whether the code may still be approved at `now_ms`, or why not.
    pub fn check_fresh(&self, now_ms: u64) -> Result<(), Error> {
        let lifetime = millis(LINK_CODE_LIFETIME);
        if now_ms.saturating_sub(self.issued_ms) > lifetime {
            let minutes = now_ms.saturating_sub(self.issued_ms) / 60_000;
            return Err(Error::Invalid(format!(
                "this link code expired: it was made {minutes} minutes ago and lasts {} \
                 minutes; the new device can show a fresh one",
                lifetime / 60_000
            )));
        }
        if self.issued_ms.saturating_sub(now_ms) > millis(LINK_CODE_SKEW) {
            return Err(Error::Invalid(
                "this link code is dated ahead of this device's clock; check both clocks".into(),
            ));
        }
        Ok(())
    }

    /// Whether the code is still within its lifetime at `now_ms`.
    pub fn is_fresh(&self, now_ms: u64) -> bool {
        self.check_fresh(now_ms).is_ok()
    }

    /// The confirmation both devices show once `user` approved this code.
    pub fn confirmation(&self, user: &UserId) -> Confirmation {
        Confirmation(
            self.secret
                .confirmation(user, &self.device, &self.exchange_key),
        )
    }
}

/// Six digits both devices show after an approval, to compare by eye.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirmation(u32);

impl fmt::Display for Confirmation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03} {:03}", self.0 / 1000, self.0 % 1000)
    }
}

fn relay_tag(relay: &Fingerprint) -> [u8; RELAY_TAG_LEN] {
    let mut tag = [0u8; RELAY_TAG_LEN];
    for (slot, byte) in tag.iter_mut().zip(relay.as_bytes()) {
        *slot = *byte;
    }
    tag
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
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
        // Bech32 is case-insensitive; a scanned QR code is upper case.
        let text = text.trim().to_lowercase();
        let checked = CheckedHrpstring::new::<Bech32m>(&text).map_err(|e| invalid(&e))?;
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
    use cairn_crypto::ExchangeSecret;

    use super::*;

    fn code(issued_ms: u64) -> LinkCode {
        let device = DeviceKeys::from_parts(&[1; 32], ExchangeSecret::from_bytes(&[2; 32]));
        let relay = Fingerprint::from_bytes([7; 32]);
        LinkCode::new(
            &device,
            issued_ms,
            LinkSecret::from_bytes([3; 32]),
            &relay,
            "phone",
        )
    }

    #[test]
    fn link_code_round_trips_and_detects_typos() {
        let code = code(1_700_000_000_000);
        let text = code.to_string();
        assert!(text.starts_with("cairnlink1"));
        assert!(text.len() <= 210, "{} characters", text.len());
        assert_eq!(text.parse::<LinkCode>().unwrap(), code);
        assert_eq!(text.to_uppercase().parse::<LinkCode>().unwrap(), code);
        let typo = text.replacen('q', "p", 1);
        assert!(typo == text || typo.parse::<LinkCode>().is_err());
    }

    #[test]
    fn a_code_names_its_relay_and_lasts_fifteen_minutes() {
        let issued = 1_700_000_000_000;
        let code = code(issued);
        assert!(code.is_for(&Fingerprint::from_bytes([7; 32])));
        assert!(!code.is_for(&Fingerprint::from_bytes([8; 32])));
        assert!(code.is_fresh(issued));
        assert!(code.is_fresh(issued + 15 * 60_000));
        assert!(!code.is_fresh(issued + 15 * 60_000 + 1));
        assert!(code.is_fresh(issued - 60_000), "a little clock skew");
        assert!(!code.is_fresh(issued - 6 * 60_000));
    }

    #[test]
    fn the_confirmation_depends_on_the_user_and_shows_six_digits() {
        let code = code(1);
        let (alice, mallory) = (UserId::from_bytes([4; 32]), UserId::from_bytes([5; 32]));
        let shown = code.confirmation(&alice).to_string();
        assert_eq!(shown.len(), 7);
        assert!(shown.chars().all(|c| c.is_ascii_digit() || c == ' '));
        assert_eq!(shown, code.confirmation(&alice).to_string());
        assert_ne!(code.confirmation(&alice), code.confirmation(&mallory));
    }
}
