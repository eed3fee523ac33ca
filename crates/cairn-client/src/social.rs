//! Friends, audiences and posts.
//!
//! `friend add` grants the friend read access to this user's friends
//! stream (a `GrantFriend` statement the relay enforces) and records the
//! name privately. A friend's user exchange key comes from the
//! announcement at the start of their friends stream, readable once they
//! have added this user back. Audience keys reach members as key grants
//! in direct envelopes sealed to that exchange key; the audience itself
//! (keys and members) is kept as a private record after every change.

use cairn_crypto::{Audience, AudienceId, Epoch, KeyGrant, KeyLookup, Member, os};
use cairn_wire::{EnvelopeId, ExchangeKey, Request, Response, Scope, UserId};

use crate::client::{Client, now_ms};
use crate::connection::Connection;
use crate::error::Error;
use crate::record::{FriendOp, RecordBody};
use crate::state::{AudienceView, FeedItem, Friend, State};
use crate::sync::NoProgress;

impl Client {
    /// Lets `user` read this user's friends stream, names them, and syncs
    /// (needs the relay: the grant is a statement, not an envelope).
    pub async fn add_friend(&mut self, user: UserId, name: &str) -> Result<(), Error> {
        check_name(name)?;
        if user == self.user()? {
            return Err(Error::Invalid("that is your own user id".into()));
        }
        if let Some(other) = self.state()?.friend(name)
            && other != user
        {
            return Err(Error::Exists(format!("a friend is already named {name:?}")));
        }
        let connection = self.connect().await?;
        let grant = self.identity.linked()?.root()?.grant_friend(user, now_ms());
        statement(&connection, Request::GrantFriend(grant)).await?;
        let op = FriendOp::Add {
            name: name.to_owned(),
            user,
        };
        self.append_private(RecordBody::Friend(op))?;
        self.sync_on(&connection, &mut NoProgress).await?;
        connection.close().await;
        Ok(())
    }

    /// Withdraws the friend's access, removes them from every audience
    /// (each rotates), and forgets the name.
    pub async fn remove_friend(&mut self, name: &str) -> Result<(), Error> {
        let state = self.state()?;
        let user = state
            .friend(name)
            .ok_or_else(|| Error::UnknownFriend(name.to_owned()))?;
        let connection = self.connect().await?;
        let revocation = self
            .identity
            .linked()?
            .root()?
            .revoke_friend(user, now_ms());
        statement(&connection, Request::RevokeFriend(revocation)).await?;
        for audience in state.audiences.values().filter(|a| a.is_member(&user)) {
            self.remove_from(audience.clone(), &user)?;
        }
        self.append_private(RecordBody::Friend(FriendOp::Remove { user }))?;
        self.sync_on(&connection, &mut NoProgress).await?;
        connection.close().await;
        Ok(())
    }

    /// The friends.
    pub fn friends(&self) -> Result<Vec<Friend>, Error> {
        Ok(self.state()?.friend_views())
    }

    /// Creates an audience with `members` (friend names) and grants them
    /// its key. Local: pushed on the next sync.
    pub async fn create_audience(&mut self, name: &str, members: &[String]) -> Result<(), Error> {
        check_name(name)?;
        let state = self.state_knowing(&[], members).await?;
        if state.audience(name).is_some() {
            return Err(Error::Exists(format!(
                "an audience is already named {name:?}"
            )));
        }
        let resolved = members
            .iter()
            .map(|m| self.member(&state, m))
            .collect::<Result<Vec<_>, _>>()?;
        let mut audience = Audience::new(&mut os::rng(), name)?;
        for member in &resolved {
            audience.add_member(*member)?;
        }
        for member in &resolved {
            self.append_grant(
                member.user,
                &member.exchange_key,
                &[audience.current_grant()],
            )?;
        }
        self.append_private(RecordBody::Audience(audience))?;
        Ok(())
    }

    /// Adds a friend to an audience. The audience moves to a new epoch,
    /// granted to every member: the new one reads what is posted from now
    /// on, nothing earlier, unless `with_history`, which grants them every
    /// earlier epoch too.
    pub async fn add_member(
        &mut self,
        audience: &str,
        member: &str,
        with_history: bool,
    ) -> Result<(), Error> {
        let state = self
            .state_knowing(&[audience.to_owned()], &[member.to_owned()])
            .await?;
        let mut current = state
            .audience(audience)
            .cloned()
            .ok_or_else(|| Error::UnknownAudience(audience.to_owned()))?;
        let name = member;
        let member = self.member(&state, name)?;
        if current.is_member(&member.user) {
            return Err(Error::Invalid(format!("{name} is already in {audience}")));
        }
        current.add_member(member)?;
        let history_for = match with_history {
            true => vec![member.user],
            false => Vec::new(),
        };
        self.rotate_granting(current, &history_for)?;
        Ok(())
    }

    /// Removes a member: the audience rotates to a new epoch whose key
    /// only the remaining members get.
    pub async fn remove_member(&mut self, audience: &str, member: &str) -> Result<(), Error> {
        let state = self.state_knowing(&[audience.to_owned()], &[]).await?;
        let current = state
            .audience(audience)
            .cloned()
            .ok_or_else(|| Error::UnknownAudience(audience.to_owned()))?;
        let user = state
            .friend(member)
            .or_else(|| member.parse().ok())
            .ok_or_else(|| Error::UnknownFriend(member.to_owned()))?;
        if !current.is_member(&user) {
            return Err(Error::Invalid(format!("{member} is not in {audience}")));
        }
        self.remove_from(current, &user)
    }

    /// Deletes an audience: it is gone from every device of the user, for
    /// good (a snapshot of it that another device makes later in author
    /// order does not bring it back), and nothing is sealed to it again.
    /// Its members keep the keys they were granted, so they can still read
    /// what was posted to it before. Local: pushed on the next sync.
    pub async fn delete_audience(&mut self, name: &str) -> Result<(), Error> {
        let state = self.state_knowing(&[name.to_owned()], &[]).await?;
        let audience = state
            .audience(name)
            .ok_or_else(|| Error::UnknownAudience(name.to_owned()))?;
        self.append_private(RecordBody::AudienceDeleted {
            audience: audience.id(),
        })?;
        Ok(())
    }

    /// The audiences.
    pub fn audiences(&self) -> Result<Vec<AudienceView>, Error> {
        Ok(self.state()?.audience_views(self.user()?))
    }

    /// Posts `text` to the friends stream, readable by the members of
    /// `audiences` (names). Local: pushed on the next sync.
    pub async fn post(&mut self, audiences: &[String], text: &str) -> Result<EnvelopeId, Error> {
        if audiences.is_empty() {
            return Err(Error::Invalid(
                "name at least one audience with --to".into(),
            ));
        }
        crate::notes::check_text("post", text)?;
        let state = self.state_knowing(audiences, &[]).await?;
        let mut chosen = Vec::new();
        for name in audiences {
            let audience = state
                .audience(name)
                .cloned()
                .ok_or_else(|| Error::UnknownAudience(name.clone()))?;
            // A forked epoch's keys reached members of either edit: seal
            // nothing more to it before a new epoch for the merged members.
            chosen.push(match state.forked.contains(&audience.id()) {
                true => self.rotate_granting(audience, &[])?,
                false => audience,
            });
        }
        let targets: Vec<_> = chosen.iter().map(Audience::target).collect();
        let body = RecordBody::Post {
            text: text.to_owned(),
        };
        self.append_record(Scope::Friends, &targets, body)
    }

    /// This user's posts and the friends' posts this device can read,
    /// oldest first.
    pub fn feed(&self) -> Result<Vec<FeedItem>, Error> {
        Ok(self.state()?.feed)
    }

    /// Every epoch key of this user's own audiences, the private one
    /// included. They are secret: this is for checks that they stay on the
    /// user's devices (that a relay's files or traffic hold none of them).
    pub fn own_audience_keys(&self) -> Result<Vec<KeyGrant>, Error> {
        let private = self.identity.linked()?.private.all_grants();
        let audiences = self.state()?.audiences;
        let own = audiences.values().flat_map(Audience::all_grants);
        Ok(private.into_iter().chain(own).collect())
    }

    /// Whether this device holds the key of `owner`'s `audience` at
    /// `epoch`, as the owner or from a grant: a member removed before
    /// `epoch` never does.
    pub fn holds_audience_key(
        &self,
        owner: UserId,
        audience: AudienceId,
        epoch: Epoch,
    ) -> Result<bool, Error> {
        let keys = self.key_state()?;
        Ok(keys
            .keyring
            .audience_key(&owner, &audience, epoch)
            .is_some())
    }

    fn remove_from(&mut self, mut audience: Audience, user: &UserId) -> Result<(), Error> {
        if !audience.forget_member(user) {
            return Err(Error::Invalid("not a member".into()));
        }
        self.rotate_granting(audience, &[])?;
        Ok(())
    }

    /// A friend as an audience member, with their exchange key.
    pub(crate) fn member(&self, state: &State, name: &str) -> Result<Member, Error> {
        let user = state
            .friend(name)
            .ok_or_else(|| Error::UnknownFriend(name.to_owned()))?;
        let you = self.user()?;
        let exchange_key: ExchangeKey = state
            .exchange_keys
            .get(&user)
            .map(|(_, key)| *key)
            .ok_or_else(|| Error::ExchangeKeyUnknown {
                name: name.to_owned(),
                you,
            })?;
        Ok(Member { user, exchange_key })
    }

    /// The state, synced first when it lacks a named audience, friend or
    /// friend's key and the relay can be reached: another device of the
    /// user may have made them since this one last synced.
    pub(crate) async fn state_knowing(
        &mut self,
        audiences: &[String],
        friends: &[String],
    ) -> Result<State, Error> {
        let state = self.state()?;
        let knows_friend = |name: &String| {
            state
                .friend(name)
                .is_some_and(|user| state.exchange_keys.contains_key(&user))
        };
        let complete = audiences.iter().all(|a| state.audience(a).is_some())
            && friends.iter().all(knows_friend);
        if complete {
            return Ok(state);
        }
        self.push().await?;
        self.state()
    }
}

/// Sends a root-signed statement; the relay must answer `Done`.
async fn statement(connection: &Connection, request: Request) -> Result<(), Error> {
    match connection.request(&request).await? {
        Response::Done => Ok(()),
        Response::Error(e) => Err(Error::Refused(e)),
        other => Err(Error::Protocol(format!("statement answered {other:?}"))),
    }
}

/// Longest name a user may give a friend, audience or device, in bytes.
pub(crate) const MAX_NAME: usize = 64;

/// Names that would read as something else where names are shown: a
/// friend called "me" would look like the user.
const RESERVED_NAMES: &[&str] = &["me", "you", "private"];

/// Names are for people: non-empty, one line, at most [`MAX_NAME`] bytes.
pub(crate) fn check_name(name: &str) -> Result<(), Error> {
    let ok = !name.trim().is_empty() && name.len() <= MAX_NAME && !name.contains(['\n', '\r']);
    if !ok {
        return Err(Error::Invalid(format!(
            "{name:?} is not a usable name (1 to 64 bytes, one line)"
        )));
    }
    if RESERVED_NAMES.contains(&name.trim().to_lowercase().as_str()) {
        return Err(Error::Invalid(format!(
            "{name:?} is reserved: it would read as something else; choose another name"
        )));
    }
    Ok(())
}
