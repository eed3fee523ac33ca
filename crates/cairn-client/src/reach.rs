//! How a device reaches its relay: [`Options`], and connecting with
//! backoff while the relay is unreachable.

use std::time::Duration;

use cairn_wire::Fingerprint;

use crate::connection::{ConnectError, Connection};
use crate::error::Error;
use crate::identity::Identity;

/// The default [`Options::push_wait`]: a relay that is up answers a
/// handshake within a few round trips; one that is away must not cost a
/// change more than this.
pub const DEFAULT_PUSH_WAIT: Duration = Duration::from_millis(800);

/// How the client reaches the relay.
#[derive(Debug, Clone)]
pub struct Options {
    /// Give up on one connection attempt after this long.
    pub connect_timeout: Duration,
    /// Connection attempts before a sync gives up (with backoff between).
    pub attempts: u32,
    /// Longest a push after a local change waits to reach the relay
    /// before leaving the change queued (it is saved either way).
    pub push_wait: Duration,
    /// Invite code for relays that require one for new users.
    pub invite: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            attempts: 3,
            push_wait: DEFAULT_PUSH_WAIT,
            invite: None,
        }
    }
}

/// Connects and authenticates as `identity`'s device, retrying with
/// backoff while the relay is unreachable.
pub(crate) async fn connect_identity(
    identity: &Identity,
    options: &Options,
) -> Result<Connection, Error> {
    let linked = identity.linked()?;
    connect_as(
        &identity.relay,
        identity.fingerprint,
        identity.device.signing_key(),
        linked.certificate.clone(),
        options,
    )
    .await
}

/// Connects to `relay` and authenticates with `certificate`.
pub(crate) async fn connect_as(
    relay: &str,
    fingerprint: Fingerprint,
    key: &cairn_wire::SigningKey,
    certificate: cairn_wire::DeviceCertificate,
    options: &Options,
) -> Result<Connection, Error> {
    let host = host_of(relay);
    with_retries(relay, options, |addr| {
        Connection::open_named(
            (addr, host),
            fingerprint,
            key,
            certificate.clone(),
            options.invite.as_deref(),
        )
    })
    .await
}

/// Connects to `relay` as a device that another device of `user`
/// registered, and learns its certificate (see [`Connection::enrol`]).
pub(crate) async fn enrol_as(
    relay: &str,
    fingerprint: Fingerprint,
    key: &cairn_wire::SigningKey,
    user: cairn_wire::UserId,
    options: &Options,
) -> Result<(Connection, cairn_wire::DeviceCertificate), Error> {
    let host = host_of(relay);
    with_retries(relay, options, |addr| {
        Connection::enrol((addr, host), fingerprint, key, user)
    })
    .await
}

/// Makes `attempt` up to `options.attempts` times with backoff while the
/// relay is unreachable; any other failure ends at once, and so does an
/// attempt that got no answer at all within the timeout: waiting as long
/// again for a relay that is silent only multiplies the wait.
async fn with_retries<T, F>(
    relay: &str,
    options: &Options,
    mut attempt: impl FnMut(std::net::SocketAddr) -> F,
) -> Result<T, Error>
where
    F: Future<Output = Result<T, ConnectError>>,
{
    let addr = resolve(relay).await?;
    let mut delay = Duration::from_millis(200);
    let attempts = options.attempts.max(1);
    for made in 1..=attempts {
        let error = match tokio::time::timeout(options.connect_timeout, attempt(addr)).await {
            Ok(Ok(connected)) => return Ok(connected),
            Ok(Err(ConnectError::Unreachable { reason, .. })) => reason,
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => {
                return Err(ConnectError::Unreachable {
                    addr,
                    reason: format!("no answer within {:?}", options.connect_timeout),
                }
                .into());
            }
        };
        if made == attempts {
            return Err(ConnectError::Unreachable {
                addr,
                reason: error,
            }
            .into());
        }
        tracing::debug!(%error, attempt = made, "relay unreachable; retrying");
        tokio::time::sleep(delay).await;
        delay = delay.saturating_mul(2);
    }
    Err(Error::Invalid("no connection attempt made".into()))
}

/// The host of `HOST:PORT` (an IPv6 literal without its brackets).
pub fn host_of(relay: &str) -> &str {
    let host = relay.rsplit_once(':').map_or(relay, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Whether a home reaching `relay` with `fingerprint` trusts the system's
/// certificate authorities rather than a pinned key.
pub fn trusts_authorities(relay: &str, fingerprint: &Fingerprint) -> bool {
    *fingerprint == Fingerprint::of_relay_name(host_of(relay))
}

/// Resolves `HOST:PORT`.
pub(crate) async fn resolve(relay: &str) -> Result<std::net::SocketAddr, Error> {
    let invalid = || {
        Error::Invalid(format!(
            "cannot resolve the relay address {relay:?} (HOST:PORT)"
        ))
    };
    let mut addrs = tokio::net::lookup_host(relay)
        .await
        .map_err(|_| invalid())?;
    addrs.next().ok_or_else(invalid)
}

/// Where a home reaches its relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayTarget {
    /// `HOST:PORT`.
    pub relay: String,
    /// The pinned public key.
    pub fingerprint: Fingerprint,
}

/// How a home trusts its relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// The relay's public key (or, as pinned before, its certificate).
    Pinned(Fingerprint),
    /// Whatever certificate this system's certificate authorities issue
    /// for the relay's host name.
    Authorities,
}

impl RelayTarget {
    /// How this home trusts the relay.
    pub fn trust(&self) -> Trust {
        match trusts_authorities(&self.relay, &self.fingerprint) {
            true => Trust::Authorities,
            false => Trust::Pinned(self.fingerprint),
        }
    }
}

impl crate::Client {
    /// Where this home reaches its relay.
    pub fn relay_target(&self) -> RelayTarget {
        RelayTarget {
            relay: self.identity.relay.clone(),
            fingerprint: self.identity.fingerprint,
        }
    }

    /// Re-points this home after a deliberate move: another address,
    /// another pinned key, or both. Returns where it pointed before. The
    /// next sync finds the relay's log and heals as after a restore
    /// (`spec/client.md` section 6.1); a relay that never saw this user
    /// gets its whole history.
    /// A home that trusts the system's authorities keeps trusting them for
    /// its new address unless told otherwise.
    pub fn set_relay_target(
        &mut self,
        relay: Option<String>,
        trust: Option<Trust>,
    ) -> Result<RelayTarget, Error> {
        let before = self.relay_target();
        if let Some(relay) = relay {
            if relay.trim().is_empty() {
                return Err(Error::Invalid("a relay is HOST:PORT".into()));
            }
            self.identity.relay = relay.trim().to_owned();
        }
        self.identity.fingerprint = match trust.unwrap_or_else(|| before.trust()) {
            Trust::Pinned(fingerprint) => fingerprint,
            Trust::Authorities => Fingerprint::of_relay_name(host_of(&self.identity.relay)),
        };
        let mut batch = crate::local::Batch::default();
        self.save_identity(&mut batch)?;
        self.local.store().commit(batch)?;
        Ok(before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_of_an_address_is_what_a_certificate_names() {
        assert_eq!(host_of("relay.example.org:4433"), "relay.example.org");
        assert_eq!(host_of("127.0.0.1:7439"), "127.0.0.1");
        assert_eq!(host_of("[::1]:7439"), "::1");
        assert_eq!(host_of("relay.example.org"), "relay.example.org");
        let name = Fingerprint::of_relay_name("relay.example.org");
        assert!(trusts_authorities("relay.example.org:4433", &name));
        assert!(!trusts_authorities("other.example.org:4433", &name));
        assert!(!trusts_authorities(
            "relay.example.org:4433",
            &Fingerprint::from_bytes([7; 32])
        ));
    }
}
