//! Per-user and per-IP request rate limits (token buckets, `governor`), and
//! the per-IP connection count.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_wire::UserId;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::Limits;

/// Request, connection and registration rate limits.
#[derive(Debug)]
pub struct RateLimits {
    per_user: DefaultKeyedRateLimiter<UserId>,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    handshakes: DefaultKeyedRateLimiter<IpAddr>,
    registrations: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl RateLimits {
    /// Limits from the configuration (a zero rate or burst counts as one).
    pub fn new(limits: &Limits) -> Self {
        Self {
            per_user: RateLimiter::keyed(quota(
                limits.requests_per_second_per_user,
                limits.request_burst_per_user,
            )),
            per_ip: RateLimiter::keyed(quota(
                limits.requests_per_second_per_ip,
                limits.request_burst_per_ip,
            )),
            handshakes: RateLimiter::keyed(quota(
                limits.handshakes_per_second_per_ip,
                limits.handshake_burst_per_ip,
            )),
            registrations: RateLimiter::keyed(hourly_quota(
                limits.registrations_per_hour_per_ip,
                limits.registration_burst_per_ip,
            )),
            clock: DefaultClock::default(),
        }
    }

    /// Whether `a` and `b` set any rate or burst differently.
    pub fn differ(a: &Limits, b: &Limits) -> bool {
        let rates = |l: &Limits| {
            [
                l.requests_per_second_per_user,
                l.request_burst_per_user,
                l.requests_per_second_per_ip,
                l.request_burst_per_ip,
                l.handshakes_per_second_per_ip,
                l.handshake_burst_per_ip,
                l.registrations_per_hour_per_ip,
                l.registration_burst_per_ip,
            ]
        };
        rates(a) != rates(b)
    }

    /// Takes one request from both buckets, or says how long to wait.
    pub fn check(&self, user: UserId, ip: IpAddr) -> Result<(), Duration> {
        self.take(&self.per_ip, &ip)?;
        self.take(&self.per_user, &user)
    }

    /// Takes one new connection of `ip`, or says how long to wait.
    pub fn check_handshake(&self, ip: IpAddr) -> Result<(), Duration> {
        self.take(&self.handshakes, &ip)
    }

    /// Takes one new user registration of `ip`, or says how long to wait.
    pub fn check_registration(&self, ip: IpAddr) -> Result<(), Duration> {
        self.take(&self.registrations, &ip)
    }

    fn take<K: Clone + Eq + std::hash::Hash>(
        &self,
        bucket: &DefaultKeyedRateLimiter<K>,
        key: &K,
    ) -> Result<(), Duration> {
        bucket
            .check_key(key)
            .map_err(|n| n.wait_time_from(self.clock.now()))
    }

    /// Forgets idle keys, so that the maps stay as small as the set of
    /// recently active users and addresses.
    pub fn forget_idle(&self) {
        self.per_user.retain_recent();
        self.per_ip.retain_recent();
        self.handshakes.retain_recent();
        self.registrations.retain_recent();
    }
}

fn quota(per_second: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
}

fn hourly_quota(per_hour: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(per_hour).unwrap_or(NonZeroU32::MIN);
    Quota::per_hour(rate).allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
}

/// Counts open connections per IP address.
#[derive(Debug, Clone, Default)]
pub struct ConnectionCounts {
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

/// Holds one connection slot of an address; gives it back when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    counts: ConnectionCounts,
    ip: IpAddr,
}

impl ConnectionCounts {
    /// Takes a slot for `ip` unless it already holds `max`.
    pub fn acquire(&self, ip: IpAddr, max: u32) -> Option<ConnectionSlot> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(ConnectionSlot {
            counts: self.clone(),
            ip,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self
            .counts
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}
