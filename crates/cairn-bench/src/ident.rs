//! Users, devices and envelopes for the scenarios, made deterministically
//! from an index so that a run needs no randomness and no files.

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow};
use cairn_wire::{
    DeviceCertificate, DeviceCertificateBody, DeviceId, Envelope, EnvelopeHeader, ExchangeKey,
    FriendGrant, FriendGrantBody, Payload, Scope, SigningKey, UnsignedEnvelope, UserId,
};

/// Payload size of every scenario's envelopes.
pub const PAYLOAD_LEN: usize = 1024;

/// Bytes at the start of a payload that carry its send time.
pub const STAMP_LEN: usize = 8;

/// A user: a root key.
#[derive(Debug)]
pub struct User {
    root: SigningKey,
    /// The user id (the root public key).
    pub id: UserId,
}

/// One device of a user, certified by the user's root key.
#[derive(Debug, Clone)]
pub struct Device {
    /// The device's signing key.
    pub key: SigningKey,
    /// Its user.
    pub user: UserId,
    /// Its id (the signing public key).
    pub id: DeviceId,
    /// Its certificate.
    pub certificate: DeviceCertificate,
}

impl User {
    /// The user number `n` of a scenario (`domain` keeps scenarios'
    /// identities apart).
    pub fn new(domain: u8, n: u32) -> Self {
        let root = SigningKey::from_bytes(&seed(domain, 0, n));
        let id = UserId::from_bytes(root.verifying_key().to_bytes());
        Self { root, id }
    }

    /// The user's device number `n`.
    pub fn device(&self, n: u32) -> Device {
        let mut material = self.id.as_bytes().to_owned();
        overwrite(&mut material, &n.to_le_bytes());
        let key = SigningKey::from_bytes(&material);
        let id = DeviceId::from_bytes(key.verifying_key().to_bytes());
        let body = DeviceCertificateBody::new(self.id, id, ExchangeKey::from_bytes(material), 1);
        Device {
            key,
            user: self.id,
            id,
            certificate: DeviceCertificate::sign(body, &self.root),
        }
    }

    /// A grant letting `friend` read this user's friends stream.
    pub fn grant(&self, friend: UserId) -> FriendGrant {
        FriendGrant::sign(FriendGrantBody::new(self.id, friend, now_ms()), &self.root)
    }
}

impl Device {
    /// An envelope by this device with `payload`.
    pub fn envelope(&self, seq: u64, scope: Scope, payload: Vec<u8>) -> Result<Envelope> {
        let header = EnvelopeHeader::new(self.user, self.id, seq, now_ms(), scope);
        let payload = Payload::new(payload).map_err(|_| anyhow!("payload too long"))?;
        Ok(UnsignedEnvelope { header, payload }.sign(&self.key))
    }
}

/// A distinct 32-byte seed per (domain, role, index).
fn seed(domain: u8, role: u8, n: u32) -> [u8; 32] {
    let mut seed = [0x5a; 32];
    let [a, b, c, d] = n.to_le_bytes();
    overwrite(&mut seed, &[domain, role, a, b, c, d]);
    seed
}

/// Copies `src` over the start of `dst` (as much as fits).
pub fn overwrite(dst: &mut [u8], src: &[u8]) {
    dst.iter_mut().zip(src).for_each(|(d, s)| *d = *s);
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The process-wide start every stamp counts from, so that a stamp made by
/// a publisher task can be compared with a clock read by a subscriber task.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Microseconds since [`epoch`]: a monotonic clock shared by every task.
pub fn stamp_now() -> u64 {
    u64::try_from(epoch().elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// A payload of [`PAYLOAD_LEN`] bytes that starts with the current stamp.
pub fn stamped_payload() -> Vec<u8> {
    let mut payload = vec![0xa5; PAYLOAD_LEN];
    overwrite(&mut payload, &stamp_now().to_le_bytes());
    payload
}

/// How long ago the payload's stamp was made; `None` if it has none.
pub fn age_of_stamp(payload: &[u8]) -> Option<Duration> {
    let bytes: [u8; STAMP_LEN] = payload.get(..STAMP_LEN)?.try_into().ok()?;
    let sent = u64::from_le_bytes(bytes);
    Some(Duration::from_micros(stamp_now().saturating_sub(sent)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_distinct_and_certified() {
        let (a, b) = (User::new(1, 0), User::new(1, 1));
        assert_ne!(a.id, b.id);
        assert_ne!(a.id, User::new(2, 0).id);
        let (d0, d1) = (a.device(0), a.device(1));
        assert_ne!(d0.id, d1.id);
        assert!(d0.certificate.verify().is_ok());
        let envelope = d0
            .envelope(1, Scope::Friends, stamped_payload())
            .expect("payload fits");
        assert!(envelope.verify().is_ok());
    }

    #[test]
    fn stamps_measure_age() {
        let payload = stamped_payload();
        std::thread::sleep(Duration::from_millis(2));
        let age = age_of_stamp(&payload).expect("stamped");
        assert!(age >= Duration::from_millis(2) && age < Duration::from_secs(5));
        assert_eq!(age_of_stamp(&[1, 2]), None);
    }
}
