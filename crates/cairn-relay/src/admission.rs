//! What a new connection costs the relay before it has authenticated, and
//! when the relay declines to pay it. A QUIC `Initial` packet is cheap to
//! send and its source address can be forged; a handshake and the state of
//! a connection that has not authenticated are not cheap to keep. So the
//! relay counts connections that have not authenticated yet, relay-wide;
//! past one bound it asks a new peer to prove its address first (a QUIC
//! retry, which a forged address cannot answer), past another it refuses.
//! Per-address limits (new connections per second, connections held) apply
//! once the handshake has proven the address, so that a forged source
//! address cannot spend another's budget; they close the connection with
//! their catalogue code.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::config::Limits;

/// What to do with a new connection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Go on with the handshake.
    Accept,
    /// Ask the peer to prove its address first.
    Retry,
    /// Refuse it.
    Refuse(Refused),
}

/// Why a connection attempt was refused before its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Too many connections relay-wide have not authenticated.
    Pressure,
}

/// A connection attempt as the gate sees it.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// Connections that have not authenticated yet, relay-wide.
    pub pending: u32,
    /// Whether the peer has proven its address (answered a retry).
    pub validated: bool,
    /// Whether a retry may still be asked of it.
    pub may_retry: bool,
}

/// Decides, without I/O, what a new connection attempt gets.
pub fn gate(attempt: Attempt, limits: &Limits) -> Gate {
    if attempt.pending >= limits.max_pending_logins {
        return Gate::Refuse(Refused::Pressure);
    }
    if attempt.pending >= limits.validate_addresses_above && !attempt.validated {
        return match attempt.may_retry {
            true => Gate::Retry,
            false => Gate::Refuse(Refused::Pressure),
        };
    }
    Gate::Accept
}

/// Counts connections that have not authenticated yet.
#[derive(Debug, Clone, Default)]
pub struct PendingLogins {
    count: Arc<AtomicU32>,
}

/// One connection counted as pending until it authenticates or ends.
#[derive(Debug)]
pub struct PendingLogin {
    count: Option<Arc<AtomicU32>>,
}

impl PendingLogins {
    /// How many are pending now.
    pub fn now(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }

    /// Counts one more until the returned guard is settled or dropped.
    pub fn begin(&self) -> PendingLogin {
        self.count.fetch_add(1, Ordering::Relaxed);
        PendingLogin {
            count: Some(self.count.clone()),
        }
    }
}

impl PendingLogin {
    /// The connection authenticated (or ended): it is no longer pending.
    pub fn settle(&mut self) {
        if let Some(count) = self.count.take() {
            count.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for PendingLogin {
    fn drop(&mut self) {
        self.settle();
    }
}

/// Where a certified device stands with the relay when it logs in: what
/// the registry holds for its user and for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// A registered, unrevoked device.
    Active,
    /// A device its user revoked.
    Revoked,
    /// The user is known but this device is not: another of their devices
    /// must register it first.
    UnknownDevice,
    /// Neither the user nor the device is known: a registration.
    NewUser,
}

impl Standing {
    /// From the registry's records of the device's user.
    pub fn of(records: &[cairn_store::DeviceRecord], device: cairn_wire::DeviceId) -> Self {
        match records.iter().find(|r| r.device == device) {
            Some(record) if record.is_active() => Self::Active,
            Some(_) => Self::Revoked,
            None if records.is_empty() => Self::NewUser,
            None => Self::UnknownDevice,
        }
    }
}

/// What a login comes to, decided without I/O from what the relay knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    /// Admit the device as it is registered.
    Admit,
    /// Register a new user with this device first, if the registration
    /// budget and policy allow (checked by the driver, which owns them).
    Register,
    /// Refuse with this code (and close: `spec/relay.md` §1).
    Refuse(cairn_wire::ErrorCode, &'static str),
}

/// Decides the login of a device that is not banned (the driver checks
/// bans first, before any registry read): a revoked device never gets in,
/// an unknown device of a known user must be registered by another of
/// their devices, and a new user's certificate must not be dated ahead of
/// the relay's clock.
pub fn login(standing: Standing, dated_in_time: bool) -> Login {
    use cairn_wire::ErrorCode;
    match standing {
        Standing::Active => Login::Admit,
        Standing::Revoked => Login::Refuse(ErrorCode::DEVICE_REVOKED, "device revoked by its user"),
        Standing::UnknownDevice => Login::Refuse(
            ErrorCode::UNKNOWN_DEVICE,
            "device not registered; approve it from another device",
        ),
        Standing::NewUser if !dated_in_time => Login::Refuse(
            ErrorCode::FUTURE_STATEMENT,
            "the certificate is dated ahead of the relay's clock",
        ),
        Standing::NewUser => Login::Register,
    }
}

/// Decides the enrolment of a device that proved its key and is not
/// banned: only a device that another device of its user registered, and
/// that is not revoked, gets its certificate. Nothing distinguishes an
/// unknown user from an unknown device.
pub fn enrolment(
    records: &[cairn_store::DeviceRecord],
    device: cairn_wire::DeviceId,
) -> Result<cairn_wire::DeviceCertificate, (cairn_wire::ErrorCode, &'static str)> {
    use cairn_wire::ErrorCode;
    let not_registered = (
        ErrorCode::UNKNOWN_DEVICE,
        "device not registered; approve it from another device",
    );
    match Standing::of(records, device) {
        Standing::Active => records
            .iter()
            .find(|r| r.device == device)
            .and_then(|r| r.certificate.clone())
            .ok_or(not_registered),
        Standing::Revoked => Err((ErrorCode::DEVICE_REVOKED, "device revoked by its user")),
        Standing::UnknownDevice | Standing::NewUser => Err(not_registered),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(pending: u32, validated: bool) -> Attempt {
        Attempt {
            pending,
            validated,
            may_retry: !validated,
        }
    }

    #[test]
    fn below_pressure_every_attempt_is_accepted() {
        let limits = Limits::default();
        let calm = limits.validate_addresses_above - 1;
        assert_eq!(gate(attempt(0, false), &limits), Gate::Accept);
        assert_eq!(gate(attempt(calm, false), &limits), Gate::Accept);
    }

    #[test]
    fn under_pressure_unproven_addresses_are_asked_to_retry() {
        let limits = Limits::default();
        let busy = limits.validate_addresses_above;
        assert_eq!(gate(attempt(busy, false), &limits), Gate::Retry);
        assert_eq!(gate(attempt(busy, true), &limits), Gate::Accept);
        let no_retry = Attempt {
            may_retry: false,
            ..attempt(busy, false)
        };
        assert_eq!(gate(no_retry, &limits), Gate::Refuse(Refused::Pressure));
    }

    #[test]
    fn past_the_pending_bound_attempts_are_refused_even_with_a_proven_address() {
        let limits = Limits::default();
        let full = attempt(limits.max_pending_logins, true);
        assert_eq!(gate(full, &limits), Gate::Refuse(Refused::Pressure));
    }

    #[test]
    fn a_settled_login_is_no_longer_pending() {
        let pending = PendingLogins::default();
        let mut first = pending.begin();
        let second = pending.begin();
        assert_eq!(pending.now(), 2);
        first.settle();
        first.settle();
        assert_eq!(pending.now(), 1);
        drop(second);
        drop(first);
        assert_eq!(pending.now(), 0);
    }

    #[test]
    fn every_login_case_has_its_verdict() {
        use cairn_wire::ErrorCode;
        let code = |verdict: Login| match verdict {
            Login::Refuse(code, _) => Some(code),
            _ => None,
        };
        for dated in [true, false] {
            assert_eq!(login(Standing::Active, dated), Login::Admit);
            assert_eq!(
                code(login(Standing::Revoked, dated)),
                Some(ErrorCode::DEVICE_REVOKED)
            );
            assert_eq!(
                code(login(Standing::UnknownDevice, dated)),
                Some(ErrorCode::UNKNOWN_DEVICE)
            );
        }
        assert_eq!(
            code(login(Standing::NewUser, false)),
            Some(ErrorCode::FUTURE_STATEMENT)
        );
        assert_eq!(login(Standing::NewUser, true), Login::Register);
    }

    #[test]
    fn only_a_registered_unrevoked_device_is_enrolled_with_its_certificate() {
        use cairn_store::DeviceRecord;
        use cairn_testkit::User;
        use cairn_wire::ErrorCode;
        let alice = User::new(1);
        let (phone, old, stranger) = (alice.device(1), alice.device(2), alice.device(3));
        let record = |device: &cairn_testkit::Device, revoked: bool| DeviceRecord {
            user: alice.id,
            device: device.id,
            certificate: Some(device.certificate.clone()),
            revocation: revoked.then(|| alice.revoke(device.id)),
            last_seq: 0,
        };
        let records = [record(&phone, false), record(&old, true)];
        assert_eq!(enrolment(&records, phone.id), Ok(phone.certificate.clone()));
        let code = |records: &[DeviceRecord], device| enrolment(records, device).err().map(|e| e.0);
        assert_eq!(code(&records, old.id), Some(ErrorCode::DEVICE_REVOKED));
        assert_eq!(code(&records, stranger.id), Some(ErrorCode::UNKNOWN_DEVICE));
        assert_eq!(
            code(&[], stranger.id),
            Some(ErrorCode::UNKNOWN_DEVICE),
            "no user"
        );
        let uncertified = DeviceRecord {
            certificate: None,
            ..record(&stranger, true)
        };
        assert_eq!(
            code(&[uncertified], stranger.id),
            Some(ErrorCode::DEVICE_REVOKED)
        );
    }
}
