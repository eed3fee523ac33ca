//! The command line, as clap parses it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// cairn: end-to-end-encrypted notes and posts, synced through a relay.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options of every command.
#[derive(Debug, Args)]
pub struct Global {
    /// Where this device keeps its keys and data [default: the platform
    /// config directory's `cairn`].
    #[arg(long, global = true, env = "CAIRN_HOME")]
    pub home: Option<PathBuf>,
    /// Machine-readable output: JSON (JSON lines for `watch`); errors as
    /// JSON on stderr.
    #[arg(long, global = true)]
    pub json: bool,
    /// Show times in UTC instead of the local time zone (`TZ`).
    #[arg(long, global = true)]
    pub utc: bool,
    /// Give up on reaching the relay after this long (e.g. `2s`).
    #[arg(long, global = true, env = "CAIRN_CONNECT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
    /// After a change, wait at most this long for the relay before
    /// leaving the change queued for the next sync (it is saved either
    /// way); raise it on a slow link.
    #[arg(long, global = true, env = "CAIRN_PUSH_WAIT", default_value = "800ms", value_parser = humantime::parse_duration)]
    pub push_wait: Duration,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create your user and this first device, and register with a relay.
    Init {
        /// The relay, HOST:PORT.
        #[arg(long)]
        relay: String,
        /// The relay's fingerprint, as `cairn-relay fingerprint` prints it.
        /// Without it, the relay's certificate must be one this system's
        /// certificate authorities issue for its host name.
        #[arg(long)]
        fingerprint: Option<String>,
        /// A name for this device.
        #[arg(long)]
        name: Option<String>,
        /// Invite code, if the relay asks for one.
        #[arg(long, env = "CAIRN_INVITE")]
        invite: Option<String>,
    },
    /// Show your user id and this device.
    Whoami,
    /// Private notes, on all your devices.
    #[command(subcommand)]
    Note(NoteCommand),
    /// Push what is queued and pull everything new.
    Sync {
        /// Read every stream again from the start, as a new device would:
        /// checks the whole history the relay serves and takes in anything
        /// this home lacks.
        #[arg(long)]
        from_scratch: bool,
    },
    /// Keep this home unlocked for a while: an agent holds its key, and
    /// commands stop asking for the passphrase until it times out or
    /// `cairn lock`.
    Unlock {
        /// How long (e.g. `15m`, `2h`).
        #[arg(long = "for", default_value = "15m", value_parser = humantime::parse_duration)]
        hold: Duration,
    },
    /// Stop the agent `cairn unlock` started: commands ask again.
    Lock,
    /// The history of your records, oldest first: notes added, edited and
    /// removed, posts, friend and audience changes, device events, each
    /// with who wrote it and from which device.
    Log,
    /// Write your notes, feed, friends and audiences, decrypted, as JSON
    /// lines: your history, to read or keep (plaintext: keep it safe).
    Export {
        /// File to create (mode 0600; never over an existing one), or `-`
        /// for standard output.
        #[arg(long)]
        out: PathBuf,
    },
    /// The agent process `cairn unlock` starts (not for people).
    #[command(hide = true)]
    Agent {
        /// How long it holds the key.
        #[arg(long = "for", value_parser = humantime::parse_duration)]
        hold: Duration,
    },
    /// Print what arrived since this device last showed it (in `watch`,
    /// `feed`, `inbox` or `note list`), then new notes, posts and direct
    /// messages as they arrive, until interrupted.
    Watch {
        /// Also print again what was created in this last stretch of time
        /// (e.g. `2h`, `3d`), even if shown before.
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<Duration>,
    },
    /// Link, list and revoke devices.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Friends: who may read your posts' stream, and whose you follow.
    #[command(subcommand)]
    Friend(FriendCommand),
    /// Named groups of friends that posts are sealed to.
    #[command(subcommand)]
    Audience(AudienceCommand),
    /// Post to one or more audiences.
    Post {
        /// An audience to post to (repeat for several).
        #[arg(long = "to", required = true)]
        to: Vec<String>,
        /// The text, or `-` to read it from stdin.
        text: String,
    },
    /// Your posts and the friends' posts you can read.
    Feed,
    /// Send a direct message to a friend (only they and your devices can
    /// read it; they must have added you as a friend).
    Send {
        /// The friend's name.
        friend: String,
        /// The text, or `-` to read it from stdin; at a terminal, without
        /// it, `$VISUAL` or `$EDITOR` (else `vi`) opens.
        text: Option<String>,
    },
    /// Direct messages sent and received, oldest first.
    Inbox {
        /// Only the conversation with this friend.
        #[arg(long)]
        with: Option<String>,
    },
    /// What is queued, what waits for keys, and how the relay last
    /// answered: without the network.
    Status,
    /// Where this home reaches its relay: show it, or re-point it after a
    /// deliberate move.
    #[command(subcommand)]
    Relay(RelayCommand),
    /// Print a completion script for a shell (bash, zsh, fish, elvish,
    /// powershell), e.g. `cairn completions bash > ~/.local/share/bash-completion/completions/cairn`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `cairn man | man -l -`.
    Man,
}

#[derive(Debug, Subcommand)]
pub enum RelayCommand {
    /// Show the relay and how it is trusted (the pinned fingerprint, or
    /// the system's certificate authorities).
    Show,
    /// Re-point this home: after the relay moved to another address, or
    /// changed its key (the operator says so and gives the new
    /// fingerprint). Says what changed; the next sync heals as after a
    /// restore.
    #[command(group(clap::ArgGroup::new("what").required(true).multiple(true)))]
    Set {
        /// The relay's new address, HOST:PORT.
        #[arg(long, group = "what")]
        relay: Option<String>,
        /// The relay's new fingerprint, as `cairn-relay fingerprint`
        /// prints it.
        #[arg(long, group = "what")]
        fingerprint: Option<String>,
        /// Trust this system's certificate authorities for the relay's
        /// host name instead of a pinned key (a relay with a CA-issued
        /// certificate).
        #[arg(long, group = "what", conflicts_with = "fingerprint")]
        authorities: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum NoteCommand {
    /// Add a note.
    Add {
        /// The text, or `-` to read it from stdin; at a terminal, without
        /// it, `$VISUAL` or `$EDITOR` (else `vi`) opens.
        text: Option<String>,
    },
    /// List notes, oldest first.
    List,
    /// Replace a note's text.
    Edit {
        /// The note's id (or a unique prefix of it).
        id: String,
        /// The new text, or `-` to read it from stdin; at a terminal,
        /// without it, the editor opens on the current text.
        text: Option<String>,
    },
    /// Remove a note.
    Rm {
        /// The note's id (or a unique prefix of it).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Make this home a new device of an existing user: prints a link
    /// code (and a QR code at a terminal) to approve on a linked device
    /// within 15 minutes, then run `cairn sync` here.
    Join {
        /// The relay, HOST:PORT.
        #[arg(long, required_unless_present = "show_code")]
        relay: Option<String>,
        /// The relay's fingerprint (without it: checked by this system's
        /// certificate authorities, as at `init`).
        #[arg(long)]
        fingerprint: Option<String>,
        /// The user id to join (`cairn whoami` on a linked device).
        #[arg(long, required_unless_present = "show_code")]
        user: Option<String>,
        /// A name for this device.
        #[arg(long)]
        name: Option<String>,
        /// Show this joining device's link code again (a fresh one once
        /// the last has expired).
        #[arg(long, conflicts_with_all = ["relay", "fingerprint", "user", "name"])]
        show_code: bool,
    },
    /// Approve a joining device with the code it printed.
    Approve {
        /// The link code.
        code: String,
        /// Give the new device the root key too, so that it can approve
        /// and revoke devices and add or remove friends. Without it, a
        /// lost or revoked device cannot speak for you.
        #[arg(long)]
        with_root: bool,
    },
    /// Print your recovery code (the root key: keep it offline, never
    /// share it).
    RecoveryCode,
    /// Give this device the root key from your recovery code (read from
    /// stdin when not given).
    Recover {
        /// The recovery code (`cairnroot1…`).
        code: Option<String>,
    },
    /// List your devices with their sync positions.
    List,
    /// Revoke a device for good.
    Revoke {
        /// The device: its name, its id (`cd1…`), or a unique prefix of it.
        device: String,
    },
    /// Give a device another name, on all your devices.
    Rename {
        /// The device: its name, its id (`cd1…`), or a unique prefix of it.
        device: String,
        /// Its new name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum FriendCommand {
    /// Let a user read your posts' stream, and follow theirs.
    Add {
        /// Their user id (`cu1…`).
        user: String,
        /// What to call them.
        #[arg(long)]
        name: String,
    },
    /// Stop a friend reading your stream; they leave your audiences.
    Rm {
        /// The friend's name.
        name: String,
    },
    /// List friends.
    List,
}

#[derive(Debug, Subcommand)]
pub enum AudienceCommand {
    /// Create an audience.
    Create {
        /// Its name.
        name: String,
        /// A friend to include (repeat for several).
        #[arg(long = "member")]
        members: Vec<String>,
    },
    /// Add a friend to an audience: its key rotates, and they read what is
    /// posted from now on.
    Add {
        /// The audience.
        name: String,
        /// The friend.
        member: String,
        /// Let them read what was posted to the audience before too.
        #[arg(long)]
        with_history: bool,
    },
    /// Remove a member; the audience's key rotates.
    Remove {
        /// The audience.
        name: String,
        /// The member.
        member: String,
    },
    /// Delete an audience, on all your devices: nothing is posted to it
    /// again (its members keep what was posted to it before).
    Delete {
        /// The audience.
        name: String,
    },
    /// List audiences.
    List,
}
