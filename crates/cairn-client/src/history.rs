//! `cairn log`: the decrypted record history this device holds, in author
//! order: every note operation, post, friend and audience change and
//! device event, by whom and from which device (`spec/client.md` section
//! 7). The log is already the audit trail; this shows it.

use std::collections::HashMap;

use cairn_crypto::AudienceId;
use cairn_wire::{DeviceId, EnvelopeId, Scope, UserId};

use crate::client::Client;
use crate::error::Error;
use crate::open::Item;
use crate::record::{FriendOp, NoteOp, RecordBody};
use crate::state::{Author, State};

/// One record of the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Its envelope's id.
    pub id: EnvelopeId,
    /// Who wrote it.
    pub author: Author,
    /// The device that signed it.
    pub device: DeviceId,
    /// That device's name, when this user's device.
    pub device_name: Option<String>,
    /// When it was made (ms since the Unix epoch, the author's clock).
    pub created: u64,
    /// What it did.
    pub event: LogEvent,
}

/// What a record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    /// A note added.
    NoteAdded {
        /// Its text.
        text: String,
    },
    /// A note's text replaced.
    NoteEdited {
        /// The note.
        note: EnvelopeId,
        /// The new text.
        text: String,
    },
    /// A note removed.
    NoteRemoved {
        /// The note.
        note: EnvelopeId,
    },
    /// A post.
    Posted {
        /// Its text.
        text: String,
    },
    /// A friend added under a name.
    FriendAdded {
        /// The name.
        name: String,
        /// The user.
        user: UserId,
    },
    /// A friend removed.
    FriendRemoved {
        /// The user.
        user: UserId,
    },
    /// An audience's state after a change.
    Audience {
        /// Its name.
        name: String,
        /// Its key generation.
        epoch: u32,
        /// Its members then.
        members: Vec<Author>,
    },
    /// The exchange key friends seal audience keys to, announced.
    ExchangeKey,
    /// A device certified or renamed.
    DeviceNamed {
        /// The device.
        device: DeviceId,
        /// Its name.
        name: String,
    },
    /// A device revoked.
    DeviceRevoked {
        /// The device.
        device: DeviceId,
    },
    /// A direct message, sent or received.
    Message {
        /// The other side.
        with: Author,
        /// Whether this user sent it.
        sent: bool,
        /// Its text.
        text: String,
    },
    /// An audience deleted.
    AudienceDeleted {
        /// Its name, when this device still knows it.
        name: Option<String>,
    },
}

impl Client {
    /// Every record held, in author order, as a history.
    pub fn history(&self) -> Result<Vec<LogEntry>, Error> {
        let me = self.user()?;
        let mut items = self.items()?;
        items.sort_by(Item::author_order);
        let state = State::fold(me, items.clone());
        let names = audience_names(&items);
        Ok(items
            .iter()
            .map(|item| {
                let header = &item.header;
                LogEntry {
                    id: item.id,
                    author: state.author(me, header.author),
                    device: header.device,
                    device_name: (header.author == me)
                        .then(|| state.device_names.get(&header.device).cloned())
                        .flatten(),
                    created: header.timestamp_ms,
                    event: event(&state, me, item, &names),
                }
            })
            .collect())
    }
}

/// The last name each audience had in the records held: a deleted one is
/// no longer in the state.
fn audience_names(items: &[Item]) -> HashMap<AudienceId, String> {
    items
        .iter()
        .filter_map(|item| match &item.record.body {
            RecordBody::Audience(audience) => Some((audience.id(), audience.name().to_owned())),
            _ => None,
        })
        .collect()
}

fn event(state: &State, me: UserId, item: &Item, names: &HashMap<AudienceId, String>) -> LogEvent {
    match &item.record.body {
        RecordBody::Note(NoteOp::Add { text }) => LogEvent::NoteAdded { text: text.clone() },
        RecordBody::Note(NoteOp::Edit { target, text }) => LogEvent::NoteEdited {
            note: *target,
            text: text.clone(),
        },
        RecordBody::Note(NoteOp::Remove { target }) => LogEvent::NoteRemoved { note: *target },
        RecordBody::Post { text } => LogEvent::Posted { text: text.clone() },
        RecordBody::Friend(FriendOp::Add { name, user }) => LogEvent::FriendAdded {
            name: name.clone(),
            user: *user,
        },
        RecordBody::Friend(FriendOp::Remove { user }) => LogEvent::FriendRemoved { user: *user },
        RecordBody::Audience(audience) => LogEvent::Audience {
            name: audience.name().to_owned(),
            epoch: audience.epoch().0,
            members: audience
                .members()
                .map(|m| state.author(me, m.user))
                .collect(),
        },
        RecordBody::ExchangeKey(_) => LogEvent::ExchangeKey,
        RecordBody::Device { certificate, name } => LogEvent::DeviceNamed {
            device: certificate.body().device,
            name: name.clone(),
        },
        RecordBody::DeviceRevoked { revocation, .. } => LogEvent::DeviceRevoked {
            device: revocation.body().device,
        },
        RecordBody::Message { text } => {
            let sent = item.header.author == me;
            let with = match (sent, item.header.scope) {
                (true, Scope::Direct(to)) => to,
                _ => item.header.author,
            };
            LogEvent::Message {
                with: state.author(me, with),
                sent,
                text: text.clone(),
            }
        }
        RecordBody::AudienceDeleted { audience } => LogEvent::AudienceDeleted {
            name: names.get(audience).cloned(),
        },
    }
}
