//! How the library's typed views are worded for people and shaped as JSON
//! for scripts. The JSON field names are the CLI's interface (`spec/client.md`
//! §7); the library holds ids and authors as types, never as text.

use std::collections::BTreeMap;

use cairn_client::{
    AudienceLabel, AudienceView, Author, DeviceView, FeedItem, Friend, Message, Note, NoteChange,
    SyncReport, WatchEvent, Whoami,
};
use cairn_client::{ConnectError, Contact, Error, Status};
use cairn_wire::ErrorCode;
use serde::Serialize;

/// An author as the CLI names them: `me`, a friend's name, or a user id.
pub fn author_name(author: &Author) -> String {
    match author {
        Author::Me => "me".to_owned(),
        Author::Friend(name) => name.clone(),
        Author::Stranger(user) => user.to_text(),
    }
}

fn audience_label(label: &AudienceLabel) -> String {
    match label {
        AudienceLabel::Named(name) => name.clone(),
        AudienceLabel::Id(id) => id.to_string(),
    }
}

/// A note in `note list --json`.
#[derive(Debug, Serialize)]
pub struct NoteJson {
    id: String,
    text: String,
    created: u64,
    edited: Option<u64>,
    device: String,
}

impl From<&Note> for NoteJson {
    fn from(note: &Note) -> Self {
        Self {
            id: note.id.to_text(),
            text: note.text.clone(),
            created: note.created,
            edited: note.edited,
            device: note.device.to_text(),
        }
    }
}

/// A friend in `friend list --json`.
#[derive(Debug, Serialize)]
pub struct FriendJson {
    name: String,
    user: String,
    key_known: bool,
}

impl From<&Friend> for FriendJson {
    fn from(friend: &Friend) -> Self {
        Self {
            name: friend.name.clone(),
            user: friend.user.to_text(),
            key_known: friend.key_known,
        }
    }
}

/// An audience in `audience list --json`: members by name, sorted.
#[derive(Debug, Serialize)]
pub struct AudienceJson {
    pub name: String,
    pub epoch: u32,
    pub members: Vec<String>,
}

impl From<&AudienceView> for AudienceJson {
    fn from(audience: &AudienceView) -> Self {
        let mut members: Vec<String> = audience.members.iter().map(author_name).collect();
        members.sort();
        Self {
            name: audience.name.clone(),
            epoch: audience.epoch,
            members,
        }
    }
}

/// A post in `feed --json` and `watch --json`. `mine` tells the user's
/// own posts apart even from a friend they named "me".
#[derive(Debug, Serialize)]
pub struct PostJson {
    pub id: String,
    pub author: String,
    pub from: String,
    pub mine: bool,
    pub text: String,
    pub audiences: Vec<String>,
    pub created: u64,
}

impl From<&FeedItem> for PostJson {
    fn from(post: &FeedItem) -> Self {
        Self {
            id: post.id.to_text(),
            author: post.author.to_text(),
            from: author_name(&post.from),
            mine: post.from == Author::Me,
            text: post.text.clone(),
            audiences: post.audiences.iter().map(audience_label).collect(),
            created: post.created,
        }
    }
}

/// A direct message in `inbox --json` and `watch --json`: `with` names the
/// other side (a friend's name), `user` is their user id, `sent` says
/// whether this user wrote it.
#[derive(Debug, Serialize)]
pub struct MessageJson {
    pub id: String,
    pub with: String,
    pub user: String,
    pub sent: bool,
    pub text: String,
    pub created: u64,
}

impl From<&Message> for MessageJson {
    fn from(message: &Message) -> Self {
        Self {
            id: message.id.to_text(),
            with: author_name(&message.with),
            user: message.user.to_text(),
            sent: message.sent,
            text: message.text.clone(),
            created: message.created,
        }
    }
}

/// A device in `device list --json`.
#[derive(Debug, Serialize)]
pub struct DeviceJson {
    device: String,
    name: Option<String>,
    revoked: bool,
    this: bool,
    last_seq: u64,
    private_position: u64,
    positions: BTreeMap<String, u64>,
}

impl From<&DeviceView> for DeviceJson {
    fn from(device: &DeviceView) -> Self {
        Self {
            device: device.device.to_text(),
            name: device.name.clone(),
            revoked: device.revoked,
            this: device.this,
            last_seq: device.last_seq,
            private_position: device.private_position,
            positions: device
                .positions
                .iter()
                .map(|(stream, position)| (stream.to_string(), *position))
                .collect(),
        }
    }
}

/// `whoami --json`.
#[derive(Debug, Serialize)]
pub struct WhoamiJson {
    user: Option<String>,
    device: String,
    name: String,
    relay: String,
    pending: bool,
    root_key: bool,
}

impl From<&Whoami> for WhoamiJson {
    fn from(who: &Whoami) -> Self {
        Self {
            user: who.user.clone(),
            device: who.device.clone(),
            name: who.name.clone(),
            relay: who.relay.clone(),
            pending: who.pending,
            root_key: who.root_key,
        }
    }
}

/// `status --json`.
#[derive(Debug, Serialize)]
pub struct StatusJson {
    queued: u64,
    waiting: u64,
    last_sync: Option<u64>,
    last_contact: Option<ContactJson>,
}

/// How the relay was last tried.
#[derive(Debug, Serialize)]
pub struct ContactJson {
    at: u64,
    outcome: &'static str,
    error: Option<String>,
}

impl From<&Status> for StatusJson {
    fn from(status: &Status) -> Self {
        Self {
            queued: status.queued,
            waiting: status.waiting,
            last_sync: status.last_sync_ms,
            last_contact: status.last_contact.as_ref().map(|c| {
                let (outcome, error) = match &c.outcome {
                    Contact::Synced => ("synced", None),
                    Contact::Unreachable(why) => ("unreachable", Some(why.clone())),
                    Contact::Failed(why) => ("failed", Some(why.clone())),
                };
                ContactJson {
                    at: c.at_ms,
                    outcome,
                    error,
                }
            }),
        }
    }
}

/// `sync --json`.
#[derive(Debug, Serialize)]
pub struct SyncJson {
    pushed: u64,
    pulled: u64,
    items: u64,
    queued: u64,
    ignored: u64,
    waiting: u64,
    resent: u64,
    expired: u64,
    set_aside: u64,
    rewritten: u64,
    undeliverable: u64,
    relay_full: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    relogged: Option<RelogJson>,
    unopened: UnopenedJson,
    linked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    confirmation: Option<String>,
}

/// What following a new relay log did.
#[derive(Debug, Serialize)]
pub struct RelogJson {
    rewound: u64,
    resent: u64,
    restated: u64,
}

/// Why held posts do not open.
#[derive(Debug, Serialize)]
pub struct UnopenedJson {
    later_epoch: u64,
    no_key: u64,
}

impl From<&SyncReport> for SyncJson {
    fn from(report: &SyncReport) -> Self {
        Self {
            pushed: report.pushed,
            pulled: report.pulled,
            items: report.items,
            queued: report.queued,
            ignored: report.ignored,
            waiting: report.waiting,
            resent: report.resent,
            expired: report.expired,
            set_aside: report.set_aside,
            rewritten: report.rewritten,
            undeliverable: report.undeliverable,
            relay_full: report.relay_full,
            relogged: report.relogged.map(|r| RelogJson {
                rewound: r.rewound,
                resent: r.resent,
                restated: r.restated,
            }),
            unopened: UnopenedJson {
                later_epoch: report.unopened.later_epoch,
                no_key: report.unopened.no_key,
            },
            linked: report.linked,
            confirmation: report.confirmation.map(|c| c.to_string()),
        }
    }
}

/// One line of `watch --json`.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WatchJson {
    Post(PostJson),
    Message(MessageJson),
    Note {
        op: &'static str,
        id: String,
        text: Option<String>,
        created: u64,
    },
}

impl WatchJson {
    /// The line for `event`; none for `Live`, which goes to stderr.
    pub fn of(event: &WatchEvent) -> Option<Self> {
        match event {
            WatchEvent::Live | WatchEvent::Reconnecting { .. } => None,
            WatchEvent::Post(post) => Some(Self::Post(post.into())),
            WatchEvent::Message(message) => Some(Self::Message(message.into())),
            WatchEvent::Note {
                change,
                id,
                text,
                created,
            } => Some(Self::Note {
                op: change_name(*change),
                id: id.to_text(),
                text: text.clone(),
                created: *created,
            }),
        }
    }
}

/// `add`, `edit` or `remove`.
pub fn change_name(change: NoteChange) -> &'static str {
    match change {
        NoteChange::Add => "add",
        NoteChange::Edit => "edit",
        NoteChange::Remove => "remove",
    }
}

/// What to do about a failure, in this CLI's commands.
pub fn hint(error: &Error) -> Option<String> {
    let hint = match error {
        Error::NotInitialised { .. } => {
            "run `cairn init` (or `cairn device join --user USER_ID`) first".to_owned()
        }
        Error::UnknownFriend(_) => "`cairn friend list` shows your friends".to_owned(),
        Error::UnknownAudience(_) => "`cairn audience list` shows your audiences".to_owned(),
        Error::UnknownNote(_) => "`cairn note list` shows your notes".to_owned(),
        Error::ExchangeKeyUnknown { name, you } => format!(
            "{name} must add you as a friend (`cairn friend add {} --name ...`), then run `cairn sync` here",
            you.to_text()
        ),
        Error::NotLinked => {
            "run `cairn device approve CODE` on a linked device (`cairn device join --show-code` \
             shows the code again), then `cairn sync` here"
                .to_owned()
        }
        Error::Connect(ConnectError::Untrusted { .. }) => {
            "a relay with a self-signed certificate is set up with `--fingerprint` (its operator \
             prints it with `cairn-relay fingerprint`); `cairn relay set --fingerprint FP` \
             pins it for an existing home"
                .to_owned()
        }
        Error::Connect(ConnectError::Refused(e)) | Error::Refused(e)
            if e.code == ErrorCode::USER_REMOVED =>
        {
            "what this device holds is untouched; `cairn relay set --relay HOST:PORT` moves it \
             to another relay"
                .to_owned()
        }
        Error::Pending => "run `cairn sync` once a linked device has approved this one".to_owned(),
        Error::Connect(ConnectError::Unreachable { addr, .. }) => format!(
            "check that the relay is running; cairn speaks QUIC, over UDP: a firewall or network \
             that passes only TCP must let UDP port {} through. Changes made meanwhile are saved \
             here and sent by the next sync",
            addr.port()
        ),
        Error::Connect(ConnectError::Refused(e)) | Error::Refused(e)
            if e.code == ErrorCode::REGISTRATION_REFUSED =>
        {
            "ask the relay's operator for an invite and pass it with `--invite CODE`".to_owned()
        }
        Error::NoRootKey => "approve and revoke devices and add or remove friends on a device \
                             that holds it (your first one, or one approved with \
                             `--with-root`), or give this one the root key with \
                             `cairn device recover` and your recovery code"
            .to_owned(),
        Error::History(broken) => match **broken {
            cairn_client::HistoryBreak::Withheld { .. }
            | cairn_client::HistoryBreak::Skipped { .. }
            | cairn_client::HistoryBreak::Unserved { .. }
            | cairn_client::HistoryBreak::Disagree { .. }
            | cairn_client::HistoryBreak::Unexpirable { .. } => {
                "the relay (or whoever holds its database) is not serving everything its devices \
                 wrote; nothing from this sync was taken in. Tell the relay's operator; if it \
                 goes on, move to another relay"
                    .to_owned()
            }
            cairn_client::HistoryBreak::Forked { .. }
            | cairn_client::HistoryBreak::SignedTwice { .. } => {
                "if that device's home was restored from a backup or copied, stop using the \
                 copy; if not, its key may be in other hands: revoke it with `cairn device \
                 revoke`"
                    .to_owned()
            }
        },
        Error::OutdatedJoin => {
            "remove this home and make a new one with `cairn device join --user USER_ID`".to_owned()
        }
        Error::AlreadyApproved { .. } => {
            "run `cairn sync` on the new device to finish linking".to_owned()
        }
        _ => return None,
    };
    Some(hint)
}
