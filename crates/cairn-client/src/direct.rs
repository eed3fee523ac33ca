//! Direct messages: `cairn send FRIEND TEXT` and `cairn inbox`
//! (`spec/client.md` section 4.1).
//!
//! A message to a friend is a post in the author's direct stream to them,
//! `Direct(friend)`, which the relay lets the author write only while the
//! friend has added them, and serves to the friend's devices and the
//! author's own. Its key is wrapped twice: for the private audience (the
//! author's other devices read what was sent) and for the author's
//! *direct audience* for that friend, an audience whose one member is the
//! friend. It is an ordinary audience, so everything audiences do holds
//! for it: its key reaches the friend as a grant sealed to their exchange
//! key, it rotates when the friend is removed or a device of the author is
//! revoked, and a friend removed reads nothing sent after. It is kept out
//! of `audience list` and cannot be named where audiences are: its name,
//! `direct to <user id>`, is longer than any name a user may give.

use cairn_crypto::{Audience, os};
use cairn_wire::{EnvelopeId, Scope, UserId};

use crate::client::Client;
use crate::error::Error;
use crate::record::RecordBody;
use crate::state::{Author, State};

/// A direct message, sent or received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its envelope's id.
    pub id: EnvelopeId,
    /// The other side: the friend it was sent to or came from.
    pub with: Author,
    /// Their user id.
    pub user: UserId,
    /// Whether this user sent it.
    pub sent: bool,
    /// The text.
    pub text: String,
    /// When it was written (ms since the Unix epoch, the author's clock).
    pub created: u64,
}

/// A message before its other side is named, which needs the whole fold.
#[derive(Debug, Clone)]
pub(crate) struct RawMessage {
    pub id: EnvelopeId,
    pub with: UserId,
    pub sent: bool,
    pub text: String,
    pub created: u64,
}

/// The name of the direct audience for `friend`: longer than the 64 bytes
/// a user's names may have, so no audience a user creates has it.
pub(crate) fn direct_audience_name(friend: &UserId) -> String {
    format!("direct to {}", friend.to_text())
}

/// Whether `audience` is a direct audience rather than one the user made.
pub(crate) fn is_direct_audience(audience: &Audience) -> bool {
    audience.name().starts_with("direct to ") && audience.name().len() > crate::social::MAX_NAME
}

/// The messages as shown: every one this user sent, and those received
/// from current friends (a stranger's, or a removed friend's, stay out, as
/// their posts do).
pub(crate) fn name_messages(state: &State, me: UserId, raw: Vec<RawMessage>) -> Vec<Message> {
    raw.into_iter()
        .filter_map(|message| {
            let with = state.author(me, message.with);
            if !message.sent && matches!(with, Author::Stranger(_)) {
                return None;
            }
            Some(Message {
                id: message.id,
                with,
                user: message.with,
                sent: message.sent,
                text: message.text,
                created: message.created,
            })
        })
        .collect()
}

impl Client {
    /// Sends `text` to the friend named `name`. Local: pushed on the next
    /// sync. The friend must have added this user back (their exchange key
    /// is needed to give them the direct audience's key).
    pub async fn send_message(&mut self, name: &str, text: &str) -> Result<EnvelopeId, Error> {
        crate::notes::check_text("message", text)?;
        let state = self.state_knowing(&[], &[name.to_owned()]).await?;
        let friend = self.member(&state, name)?;
        let audience = match state.direct_audience(&friend.user).cloned() {
            None => {
                let mut audience =
                    Audience::new(&mut os::rng(), &direct_audience_name(&friend.user))?;
                audience.add_member(friend)?;
                self.append_grant(
                    friend.user,
                    &friend.exchange_key,
                    &[audience.current_grant()],
                )?;
                self.append_private(RecordBody::Audience(audience.clone()))?;
                audience
            }
            // Removed with the friend, and a friend again since: a new
            // epoch, so that nothing sent meanwhile opens with its key.
            Some(mut audience) if !audience.is_member(&friend.user) => {
                audience.add_member(friend)?;
                self.rotate_granting(audience, &[])?
            }
            Some(audience) if state.forked.contains(&audience.id()) => {
                self.rotate_granting(audience, &[])?
            }
            Some(audience) => audience,
        };
        let private = self.identity.linked()?.private.clone();
        let targets = [private.target(), audience.target()];
        let body = RecordBody::Message {
            text: text.to_owned(),
        };
        self.append_record(Scope::Direct(friend.user), &targets, body)
    }

    /// A message set aside (`spec/client.md` section 6.3) written again
    /// for `to`, if they are still a member of their direct audience.
    pub(crate) fn reseal_message(
        &mut self,
        to: UserId,
        text: String,
    ) -> Result<Option<EnvelopeId>, Error> {
        let state = self.state()?;
        let Some(audience) = state.direct_audience(&to).filter(|a| a.is_member(&to)) else {
            return Ok(None);
        };
        let private = self.identity.linked()?.private.clone();
        let targets = [private.target(), audience.target()];
        self.append_record(Scope::Direct(to), &targets, RecordBody::Message { text })
            .map(Some)
    }

    /// The user id of the friend named `name`.
    pub fn friend_id(&self, name: &str) -> Result<UserId, Error> {
        self.state()?
            .friend(name)
            .ok_or_else(|| Error::UnknownFriend(name.to_owned()))
    }

    /// The direct messages this device holds, sent and received, oldest
    /// first (author order).
    pub fn messages(&self) -> Result<Vec<Message>, Error> {
        Ok(self.state()?.messages)
    }
}
