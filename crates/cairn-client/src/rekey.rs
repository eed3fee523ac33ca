//! Keeping audiences sealed to their members' current keys. A friend who
//! revokes one of their devices announces a new user exchange key; the
//! revoked device still holds the old one and every audience key granted
//! to it. So when a member's announced key differs from the one an
//! audience holds for them, the audience moves to a new epoch: every
//! member gets the new key, and the member whose key changed gets every
//! epoch again under the new key (their new and remaining devices keep
//! the history). One device of the user does this (the lowest device id
//! among the user's devices that are not revoked), so that two devices
//! never start the same epoch with different keys (should two devices
//! still do so, the fold merges their members and marks the audience
//! forked, and it is rotated here, or by the next device that posts to it,
//! before anything more is sealed to it).

use cairn_crypto::{Audience, Member, os};
use cairn_wire::UserId;

use crate::client::Client;
use crate::error::Error;
use crate::record::RecordBody;
use crate::state::State;

impl Client {
    /// Rotates every owned audience that holds a stale key for a member,
    /// or whose latest epoch forked (see the module documentation);
    /// whether anything was appended.
    pub(crate) fn rekey_audiences(&mut self) -> Result<bool, Error> {
        let state = self.state()?;
        if !self.is_rekeying_device(&state) {
            return Ok(false);
        }
        let mut changed = false;
        for audience in state.audiences.values() {
            let stale = stale_members(&state, audience);
            if stale.is_empty() && !state.forked.contains(&audience.id()) {
                continue;
            }
            let mut audience = audience.clone();
            for member in &stale {
                audience.add_member(*member)?;
            }
            let rekeyed: Vec<_> = stale.iter().map(|m| m.user).collect();
            let audience = self.rotate_granting(audience, &rekeyed)?;
            tracing::info!(
                audience = audience.name(),
                epoch = audience.epoch().0,
                "a member's key changed, or two edits forked the audience: it moved to a new epoch"
            );
            changed = true;
        }
        Ok(changed)
    }

    /// Starts a new epoch of `audience`, grants it to every member (and
    /// every epoch to the members in `history_for`), and records it.
    pub(crate) fn rotate_granting(
        &mut self,
        mut audience: Audience,
        history_for: &[UserId],
    ) -> Result<Audience, Error> {
        audience.rotate(&mut os::rng())?;
        let grant = audience.current_grant();
        let history = audience.all_grants();
        let members: Vec<Member> = audience.members().collect();
        for member in members {
            let keys = match history_for.contains(&member.user) {
                true => history.as_slice(),
                false => std::slice::from_ref(&grant),
            };
            self.append_grant(member.user, &member.exchange_key, keys)?;
        }
        self.append_private(RecordBody::Audience(audience.clone()))?;
        Ok(audience)
    }

    /// Whether this device is the one that rekeys: the lowest device id
    /// among the user's devices that are not revoked.
    fn is_rekeying_device(&self, state: &State) -> bool {
        let this = self.device();
        state.device_keys.keys().all(|device| *device >= this)
    }
}

/// The members of `audience` whose announced exchange key differs from the
/// one it holds for them, with the announced key.
fn stale_members(state: &State, audience: &Audience) -> Vec<Member> {
    audience
        .members()
        .filter_map(|member| {
            let (_, current) = state.exchange_keys.get(&member.user)?;
            (*current != member.exchange_key).then_some(Member {
                user: member.user,
                exchange_key: *current,
            })
        })
        .collect()
}
