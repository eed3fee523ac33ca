//! The settings a running relay reads again on reload (`SIGHUP`,
//! `cairn-relay reload`): who may register, the retention policy, the
//! database's size limit, and the limits read per request or per
//! connection. Everything else (addresses, the data
//! directory, TLS files, the database, log format, the idle timeout and
//! quotas) takes effect at the next start; a reload says which of those
//! changed in the file (`spec/relay.md` §7).

use std::sync::{Arc, PoisonError, RwLock};

use serde_json::Value;

use cairn_store::backend::SizeLimit;

use crate::config::{Limits, RelayConfig};
use crate::limits::RateLimits;

/// Limits a reload does not apply: the idle timeout is part of the
/// endpoint's transport settings, and quotas are held by the store.
const LIMITS_AT_RESTART: [&str; 4] = [
    "idle_timeout_secs",
    "send_window_per_connection",
    "user_quota_bytes",
    "user_quota_envelopes",
];

/// Settings that may change while the relay runs.
#[derive(Debug)]
pub struct Live {
    config: RwLock<Arc<RelayConfig>>,
    rates: RwLock<Arc<RateLimits>>,
    /// `[storage] max_database_bytes`, shared with the store's file.
    size_limit: Arc<SizeLimit>,
}

/// What a reload of the configuration changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigChanges {
    /// Settings now in force, as `name: old -> new`.
    pub applied: Vec<String>,
    /// Settings changed in the file that take effect at the next start.
    pub at_restart: Vec<String>,
}

impl Live {
    /// The settings of `config`.
    pub fn new(config: &RelayConfig) -> Self {
        Self {
            config: RwLock::new(Arc::new(config.clone())),
            rates: RwLock::new(Arc::new(RateLimits::new(&config.limits))),
            size_limit: Arc::new(SizeLimit::new(config.storage.max_database_bytes)),
        }
    }

    /// The database's size limit, for the store to enforce.
    pub fn size_limit(&self) -> Arc<SizeLimit> {
        Arc::clone(&self.size_limit)
    }

    /// The configuration in force (its reloadable parts are current).
    pub fn config(&self) -> Arc<RelayConfig> {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.config().limits.clone()
    }

    /// The rate limiters in force.
    pub fn rates(&self) -> Arc<RateLimits> {
        self.rates
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts the reloadable settings of `new` in force; says what changed.
    /// Rate limiters are made anew only when a rate changed (which forgets
    /// how much of their budgets peers have used).
    pub fn replace(&self, new: &RelayConfig) -> ConfigChanges {
        let old = self.config();
        let mut next = (*old).clone();
        next.registration = new.registration.clone();
        next.retention = new.retention.clone();
        next.storage.max_database_bytes = new.storage.max_database_bytes;
        self.size_limit.set(new.storage.max_database_bytes);
        next.limits = Limits {
            idle_timeout_secs: old.limits.idle_timeout_secs,
            user_quota_bytes: old.limits.user_quota_bytes,
            user_quota_envelopes: old.limits.user_quota_envelopes,
            ..new.limits.clone()
        };
        let changes = compare(&old, new);
        if RateLimits::differ(&old.limits, &next.limits) {
            *self.rates.write().unwrap_or_else(PoisonError::into_inner) =
                Arc::new(RateLimits::new(&next.limits));
        }
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
        changes
    }
}

/// Every setting that differs between `old` and `new`, sorted into those
/// a reload applies and those that wait for a restart.
pub fn compare(old: &RelayConfig, new: &RelayConfig) -> ConfigChanges {
    let mut changes = ConfigChanges::default();
    let (old, new) = (flatten(old), flatten(new));
    let value = |settings: &[(String, Value)], name: &str| {
        settings
            .iter()
            .find(|(n, _)| n == name)
            .map_or(Value::Null, |(_, v)| v.clone())
    };
    // A setting left out when unset (an `Option`) appears on one side only.
    let mut names: Vec<&String> = old.iter().chain(&new).map(|(name, _)| name).collect();
    names.sort();
    names.dedup();
    for name in names {
        let (before, after) = (value(&old, name), value(&new, name));
        if before == after {
            continue;
        }
        let before = &before;
        let line = describe(name, before, &after);
        if reloadable(name) {
            changes.applied.push(line);
        } else {
            changes.at_restart.push(line);
        }
    }
    changes
}

fn reloadable(name: &str) -> bool {
    if name.starts_with("registration.")
        || name.starts_with("retention.")
        || name == "storage.max_database_bytes"
    {
        return true;
    }
    name.strip_prefix("limits.")
        .is_some_and(|limit| !LIMITS_AT_RESTART.contains(&limit))
}

/// `name: old -> new`; invite codes are secrets and are only counted.
fn describe(name: &str, before: &Value, after: &Value) -> String {
    if name == "registration.invites" {
        let count = |v: &Value| v.as_array().map_or(0, Vec::len);
        return format!("{name}: {} codes -> {} codes", count(before), count(after));
    }
    format!("{name}: {before} -> {after}")
}

/// `section.setting -> value` for every setting, in a stable order.
fn flatten(config: &RelayConfig) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    if let Ok(Value::Object(top)) = serde_json::to_value(config) {
        for (section, value) in top {
            match value {
                Value::Object(inner) => {
                    for (name, v) in inner {
                        out.push((format!("{section}.{name}"), v));
                    }
                }
                other => out.push((section, other)),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RegistrationPolicy;

    #[test]
    fn a_reload_applies_registration_and_rates_and_defers_the_rest() {
        let old = RelayConfig::default();
        let mut new = old.clone();
        new.registration.policy = RegistrationPolicy::Invite;
        new.registration.invites = vec!["secret-code".into()];
        new.limits.requests_per_second_per_user = 7;
        new.limits.user_quota_bytes = 1;
        new.listen = "127.0.0.1:9".parse().unwrap_or(old.listen);
        let live = Live::new(&old);
        let changes = live.replace(&new);
        assert_eq!(
            changes.applied,
            [
                "limits.requests_per_second_per_user: 500 -> 7",
                "registration.invites: 0 codes -> 1 codes",
                "registration.policy: \"open\" -> \"invite\"",
            ]
        );
        assert_eq!(
            changes.at_restart,
            [
                "limits.user_quota_bytes: 1073741824 -> 1".to_owned(),
                format!("listen: \"{}\" -> \"127.0.0.1:9\"", old.listen),
            ]
        );
        let now = live.config();
        assert_eq!(now.registration.policy, RegistrationPolicy::Invite);
        assert_eq!(now.limits.requests_per_second_per_user, 7);
        assert_eq!(now.limits.user_quota_bytes, old.limits.user_quota_bytes);
        assert_eq!(now.listen, old.listen);
        assert!(!changes.applied.concat().contains("secret-code"));
    }
}
