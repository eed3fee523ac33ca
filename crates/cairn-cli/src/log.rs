//! `cairn log`: the record history in words, or as JSON.

use cairn_client::{LogEntry, LogEvent};
use serde::Serialize;

use crate::views::author_name;

/// One entry as `--json` shows it.
#[derive(Debug, Serialize)]
pub struct LogJson {
    id: String,
    from: String,
    device: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_name: Option<String>,
    created: u64,
    event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    epoch: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    members: Option<Vec<String>>,
}

impl From<&LogEntry> for LogJson {
    fn from(entry: &LogEntry) -> Self {
        let mut json = Self {
            id: entry.id.to_text(),
            from: author_name(&entry.author),
            device: entry.device.to_text(),
            device_name: entry.device_name.clone(),
            created: entry.created,
            event: "",
            text: None,
            subject: None,
            name: None,
            epoch: None,
            members: None,
        };
        match &entry.event {
            LogEvent::NoteAdded { text } => {
                (json.event, json.text) = ("note_added", Some(text.clone()))
            }
            LogEvent::NoteEdited { note, text } => {
                (json.event, json.subject, json.text) =
                    ("note_edited", Some(note.to_text()), Some(text.clone()));
            }
            LogEvent::NoteRemoved { note } => {
                (json.event, json.subject) = ("note_removed", Some(note.to_text()));
            }
            LogEvent::Posted { text } => (json.event, json.text) = ("posted", Some(text.clone())),
            LogEvent::FriendAdded { name, user } => {
                (json.event, json.name, json.subject) =
                    ("friend_added", Some(name.clone()), Some(user.to_text()));
            }
            LogEvent::FriendRemoved { user } => {
                (json.event, json.subject) = ("friend_removed", Some(user.to_text()));
            }
            LogEvent::Audience {
                name,
                epoch,
                members,
            } => {
                json.event = "audience";
                json.name = Some(name.clone());
                json.epoch = Some(*epoch);
                json.members = Some(members.iter().map(author_name).collect());
            }
            LogEvent::ExchangeKey => json.event = "exchange_key",
            LogEvent::DeviceNamed { device, name } => {
                (json.event, json.subject, json.name) =
                    ("device_named", Some(device.to_text()), Some(name.clone()));
            }
            LogEvent::DeviceRevoked { device } => {
                (json.event, json.subject) = ("device_revoked", Some(device.to_text()));
            }
            LogEvent::Message { with, sent, text } => {
                json.event = match sent {
                    true => "message_sent",
                    false => "message_received",
                };
                (json.name, json.text) = (Some(author_name(with)), Some(text.clone()));
            }
            LogEvent::AudienceDeleted { name } => {
                (json.event, json.name) = ("audience_deleted", name.clone());
            }
        }
        json
    }
}

/// The entry in words, after its time and author.
pub fn describe(entry: &LogEntry, short: impl Fn(&str) -> String) -> String {
    match &entry.event {
        LogEvent::NoteAdded { text } => {
            format!("added note {}: {text}", short(&entry.id.to_text()))
        }
        LogEvent::NoteEdited { note, text } => {
            format!("edited note {}: {text}", short(&note.to_text()))
        }
        LogEvent::NoteRemoved { note } => format!("removed note {}", short(&note.to_text())),
        LogEvent::Posted { text } => format!("posted: {text}"),
        LogEvent::FriendAdded { name, user } => {
            format!("added friend {name} ({})", short(&user.to_text()))
        }
        LogEvent::FriendRemoved { user } => format!("removed friend {}", short(&user.to_text())),
        LogEvent::Audience {
            name,
            epoch,
            members,
        } => {
            let members: Vec<String> = members.iter().map(author_name).collect();
            format!("audience {name} (key {epoch}): {}", members.join(", "))
        }
        LogEvent::ExchangeKey => "announced the key friends seal audience keys to".to_owned(),
        LogEvent::DeviceNamed { device, name } => {
            format!("device {} is {name}", short(&device.to_text()))
        }
        LogEvent::DeviceRevoked { device } => {
            format!("revoked device {}", short(&device.to_text()))
        }
        LogEvent::Message {
            with,
            sent: true,
            text,
        } => format!("sent {}: {text}", author_name(with)),
        LogEvent::Message {
            sent: false, text, ..
        } => format!("sent me: {text}"),
        LogEvent::AudienceDeleted { name } => match name {
            Some(name) => format!("deleted audience {name}"),
            None => "deleted an audience".to_owned(),
        },
    }
}
