//! Keeping audiences sealed to their members' current keys. A friend who
//! revokes one of their devices announces a new user exchange key; the
//! revoked device still holds the old one and every audience key granted
//! to it. So when a member's announced key differs from the one an
//! audience holds for them, the audience moves to a new epoch: every
//! member gets the new key, and the member whose key changed gets every
//! epoch again under the new key (their new and remaining devices keep
//! the history). One device of the user does this (the lowest device id
//! among the user's devices that are not revoked), so that two devices
//! never start the same epoch with different keys.

use cairn_crypto::{Member, os};

use crate::client::Client;
use crate::error::Error;
use crate::record::RecordBody;
use crate::state::State;

impl Client {
    /// Rotates every owned audience holding a stale key for a member (see
    /// the module documentation); whether anything was appended.
    pub(crate) fn rekey_audiences(&mut self) -> Result<bool, Error> {
        let state = self.state()?;
        if !self.is_rekeying_device(&state) {
            return Ok(false);
        }
        let mut changed = false;
        for audience in state.audiences.values() {
            let stale: Vec<Member> = audience
                .members()
                .filter_map(|member| {
                    let (_, current) = state.exchange_keys.get(&member.user)?;
                    (*current != member.exchange_key).then_some(Member {
                        user: member.user,
                        exchange_key: *current,
                    })
                })
                .collect();
            if stale.is_empty() {
                continue;
            }
            let mut audience = audience.clone();
            for member in &stale {
                audience.add_member(*member)?;
            }
            audience.rotate(&mut os::rng())?;
            let grant = audience.current_grant();
            let history = audience.all_grants();
            let members: Vec<Member> = audience.members().collect();
            for member in members {
                let rekeyed = stale.iter().any(|s| s.user == member.user);
                let keys = if rekeyed {
                    history.as_slice()
                } else {
                    std::slice::from_ref(&grant)
                };
                self.append_grant(member.user, &member.exchange_key, keys)?;
            }
            tracing::info!(
                audience = audience.name(),
                epoch = audience.epoch().0,
                "a member's key changed: the audience moved to a new epoch"
            );
            self.append_private(RecordBody::Audience(audience))?;
            changed = true;
        }
        Ok(changed)
    }

    /// Whether this device is the one that rekeys: the lowest device id
    /// among the user's devices that are not revoked.
    fn is_rekeying_device(&self, state: &State) -> bool {
        let this = self.device();
        state.device_keys.keys().all(|device| *device >= this)
    }
}
