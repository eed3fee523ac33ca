//! One function per command: open the client, call the library, print.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use cairn_client::{
    Client, Confirmation, Contact, Error, ErrorKind, LINK_CODE_LIFETIME, LinkCode, Options,
    Passphrase, RecoveryCode, RelayTarget, SyncReport, Trust, Unopened, WatchEvent,
};
use cairn_wire::{Fingerprint, UserId};
use serde_json::json;
use tokio::sync::Notify;
use zeroize::Zeroizing;

use crate::cli::{
    AudienceCommand, Cli, Command, DeviceCommand, FriendCommand, Global, NoteCommand, RelayCommand,
};
use crate::output::{self, say, short, time};
use crate::passphrase;
use crate::progress::Bar;
use crate::qr;
use crate::views;
use crate::views::{
    AudienceJson, DeviceJson, FriendJson, NoteJson, PostJson, StatusJson, SyncJson, WatchJson,
    WhoamiJson, author_name, change_name,
};

/// Runs one command.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Completions { shell } => return completions(shell),
        Command::Man => return manual(),
        _ => {}
    }
    let ctx = Ctx::new(cli.global)?;
    match cli.command {
        Command::Init {
            relay,
            fingerprint,
            name,
            invite,
        } => init(&ctx, &relay, fingerprint.as_deref(), name, invite).await,
        Command::Whoami => whoami(&ctx),
        Command::Note(command) => note(&ctx, command).await,
        Command::Sync { from_scratch } => sync(&ctx, from_scratch).await,
        Command::Unlock { hold } => unlock(&ctx, hold),
        Command::Lock => lock(&ctx),
        Command::Log => history(&ctx),
        Command::Export { out } => export_history(&ctx, &out),
        Command::Agent { hold } => Ok(crate::agent::serve(&ctx.home, hold).await?),
        Command::Watch { since } => watch(&ctx, since).await,
        Command::Device(command) => device(&ctx, command).await,
        Command::Friend(command) => friend(&ctx, command).await,
        Command::Audience(command) => audience(&ctx, command).await,
        Command::Post { to, text } => post(&ctx, &to, &text).await,
        Command::Feed => feed(&ctx),
        Command::Send { friend, text } => crate::direct::send(&ctx, &friend, text.as_deref()).await,
        Command::Inbox { with } => crate::direct::inbox(&ctx, with.as_deref()),
        Command::Status => status(&ctx),
        Command::Relay(command) => relay(&ctx, command),
        Command::Completions { .. } | Command::Man => Ok(()),
    }
}

/// `cairn unlock`: opens the home (asking for the passphrase as usual),
/// then hands its key to an agent for `hold`.
fn unlock(ctx: &Ctx, hold: std::time::Duration) -> Result<()> {
    let client = ctx.client()?;
    let socket = crate::agent::start(&ctx.home, &client.unlocked_key(), hold)?;
    let until = std::time::SystemTime::now() + hold;
    if ctx.json {
        return output::json(&json!({
            "agent": socket,
            "for_secs": hold.as_secs(),
        }));
    }
    say!(
        "unlocked for {} (until {}); `cairn lock` locks now",
        humantime::format_duration(hold),
        humantime::format_rfc3339_seconds(until)
    )?;
    Ok(())
}

/// `cairn log`.
fn history(ctx: &Ctx) -> Result<()> {
    let entries = ctx.client()?.history()?;
    if ctx.json {
        let json: Vec<crate::log::LogJson> = entries.iter().map(Into::into).collect();
        return output::json(&json);
    }
    if entries.is_empty() {
        eprintln!("nothing yet");
    }
    for entry in &entries {
        let device = entry
            .device_name
            .as_ref()
            .map_or_else(String::new, |name| format!(" on {name}"));
        say!(
            "{}  {}{device}  {}",
            time(entry.created),
            author_name(&entry.author),
            crate::log::describe(entry, |text| short(text).to_owned())
        )?;
    }
    Ok(())
}

/// `cairn export --out FILE`.
fn export_history(ctx: &Ctx, out: &std::path::Path) -> Result<()> {
    let client = ctx.client()?;
    let written = crate::export::export(&client, out)?;
    if out == std::path::Path::new("-") {
        return Ok(());
    }
    if ctx.json {
        return output::json(&written);
    }
    say!(
        "wrote {} (plaintext: keep it as safe as this device)",
        out.display()
    )?;
    Ok(())
}

/// `cairn lock`: the agent forgets the key.
fn lock(ctx: &Ctx) -> Result<()> {
    let was = crate::agent::lock(&ctx.home)?;
    if ctx.json {
        return output::json(&json!({ "locked": was }));
    }
    match was {
        true => say!("locked: commands ask for the passphrase again")?,
        false => say!("no agent was holding this home's key")?,
    }
    Ok(())
}

/// The completion script for `shell`, on stdout.
fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut command = <Cli as clap::CommandFactory>::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "cairn", &mut out);
    say!("{}", String::from_utf8_lossy(&out).trim_end())?;
    Ok(())
}

/// The manual page, on stdout.
fn manual() -> Result<()> {
    let command = <Cli as clap::CommandFactory>::command();
    let mut out = Vec::new();
    clap_mangen::Man::new(command).render(&mut out)?;
    say!("{}", String::from_utf8_lossy(&out).trim_end())?;
    Ok(())
}

/// What every command needs.
pub(crate) struct Ctx {
    pub(crate) home: PathBuf,
    pub(crate) json: bool,
    options: Options,
}

impl Ctx {
    fn new(global: Global) -> Result<Self> {
        let home = match global.home {
            Some(home) => home,
            None => dirs::config_dir()
                .map(|dir| dir.join("cairn"))
                .ok_or_else(|| anyhow!("no platform config directory: pass --home"))?,
        };
        let options = Options {
            connect_timeout: global.connect_timeout,
            push_wait: global.push_wait,
            ..Options::default()
        };
        Ok(Self {
            home,
            json: global.json,
            options,
        })
    }

    /// Opens this home's client: with `CAIRN_PASSPHRASE`, else with the
    /// key an agent (`cairn unlock`) holds, else asking for the passphrase.
    pub(crate) fn client(&self) -> Result<Client> {
        if !Client::exists(&self.home) {
            return Err(Error::NotInitialised {
                home: self.home.clone(),
            }
            .into());
        }
        if std::env::var_os(passphrase::ENV).is_none()
            && let Some(key) = crate::agent::key(&self.home)
            && let Ok(client) = Client::open_with_key(&self.home, &key, self.options.clone())
        {
            return Ok(client);
        }
        let passphrase = passphrase::existing()?;
        Ok(Client::open(&self.home, &passphrase, self.options.clone())?)
    }

    fn with_invite(&self, invite: Option<String>) -> Options {
        Options {
            invite,
            ..self.options.clone()
        }
    }
}

/// What `init` and `device join` both need before creating a home: a
/// valid pin, an empty home, a new passphrase, a device name, options.
struct NewHome {
    fingerprint: Fingerprint,
    passphrase: Passphrase,
    name: String,
    options: Options,
}

impl NewHome {
    fn prepare(
        ctx: &Ctx,
        (relay, fingerprint): (&str, Option<&str>),
        name: Option<String>,
        invite: Option<String>,
    ) -> Result<Self> {
        let fingerprint = match fingerprint {
            Some(text) => parse_fingerprint(text)?,
            None => Fingerprint::of_relay_name(cairn_client::host_of(relay)),
        };
        check_fresh(ctx)?;
        Ok(Self {
            fingerprint,
            passphrase: passphrase::new()?,
            name: name.unwrap_or_else(default_device_name),
            options: ctx.with_invite(invite),
        })
    }
}

async fn init(
    ctx: &Ctx,
    relay: &str,
    fingerprint: Option<&str>,
    name: Option<String>,
    invite: Option<String>,
) -> Result<()> {
    let NewHome {
        fingerprint,
        passphrase,
        name,
        options,
    } = NewHome::prepare(ctx, (relay, fingerprint), name, invite)?;
    let client = Client::init(&ctx.home, &passphrase, relay, fingerprint, &name, options).await?;
    let who = client.whoami();
    let recovery = client.recovery_code()?.reveal()?;
    if ctx.json {
        return output::json(&json!({
            "user": who.user,
            "device": who.device,
            "recovery_code": recovery.as_str(),
        }));
    }
    say!("{}", who.user.unwrap_or_default())?;
    eprintln!("created your user and this device ({name}); share the line above with friends");
    eprintln!(
        "your recovery code (the root key: write it down, keep it offline, never share it; \
         `cairn device recovery-code` shows it again on this device):\n{}",
        recovery.as_str()
    );
    Ok(())
}

fn recovery_code(ctx: &Ctx) -> Result<()> {
    let recovery = ctx.client()?.recovery_code()?.reveal()?;
    if ctx.json {
        return output::json(&json!({ "recovery_code": recovery.as_str() }));
    }
    say!("{}", recovery.as_str())?;
    Ok(())
}

fn recover(ctx: &Ctx, code: Option<String>) -> Result<()> {
    let text = match code {
        Some(text) => Zeroizing::new(text),
        None => {
            let mut line = Zeroizing::new(String::new());
            std::io::stdin().read_line(&mut line)?;
            line
        }
    };
    let code: RecoveryCode = text.parse()?;
    let mut client = ctx.client()?;
    client.recover_root(&code)?;
    if ctx.json {
        return output::json(&json!({ "root_key": true }));
    }
    eprintln!("this device now holds your root key");
    Ok(())
}

fn whoami(ctx: &Ctx) -> Result<()> {
    let who = ctx.client()?.whoami();
    if ctx.json {
        return output::json(&WhoamiJson::from(&who));
    }
    say!(
        "user    {}",
        who.user.as_deref().unwrap_or("(waiting for approval)")
    )?;
    say!("device  {} ({})", who.device, who.name)?;
    let root = match (who.pending, who.root_key) {
        (true, _) => "(waiting for approval)",
        (false, true) => "held here: this device can approve and revoke devices and add friends",
        (false, false) => "not held here",
    };
    say!("root    {root}")?;
    say!("relay   {}", who.relay)?;
    Ok(())
}

async fn note(ctx: &Ctx, command: NoteCommand) -> Result<()> {
    let mut client = ctx.client()?;
    let (verb, id) = match command {
        NoteCommand::List => return note_list(ctx, &client),
        NoteCommand::Add { text } => {
            let text = match text {
                Some(text) => read_text(&text)?,
                None => crate::editor::edit(&ctx.home, "")?,
            };
            ("added", client.add_note(&text)?)
        }
        NoteCommand::Edit { id, text } => {
            let text = match text {
                Some(text) => read_text(&text)?,
                None => crate::editor::edit(&ctx.home, &client.note(&id)?.text)?,
            };
            ("edited", client.edit_note(&id, &text)?)
        }
        NoteCommand::Rm { id } => ("removed", client.remove_note(&id)?),
    };
    let queued = push(&mut client).await?;
    if ctx.json {
        return output::json(&json!({ "id": id.to_text(), "queued": queued }));
    }
    say!("{}", id.to_text())?;
    if verb != "added" {
        eprintln!("{verb} note {}", short(&id.to_text()));
    }
    report_change(verb, queued);
    Ok(())
}

fn note_list(ctx: &Ctx, client: &Client) -> Result<()> {
    let notes = client.notes()?;
    client.mark_listed(cairn_client::Listed::Notes)?;
    if ctx.json {
        return output::json(&notes.iter().map(NoteJson::from).collect::<Vec<_>>());
    }
    if notes.is_empty() {
        eprintln!("no notes yet (`cairn note add TEXT` adds one)");
    }
    for note in notes {
        let edited = if note.edited.is_some() {
            " (edited)"
        } else {
            ""
        };
        let head = format!(
            "{}  {}{edited}  ",
            short(&note.id.to_text()),
            time(note.created)
        );
        say!("{head}{}", indented(&note.text, head.chars().count()))?;
    }
    Ok(())
}

/// `text` with every line after the first indented by `width` columns, so
/// that a note of several lines stays in its column.
pub(crate) fn indented(text: &str, width: usize) -> String {
    let pad = format!("\n{}", " ".repeat(width));
    text.trim_end_matches('\n').replace('\n', &pad)
}

async fn sync(ctx: &Ctx, from_scratch: bool) -> Result<()> {
    let mut client = ctx.client()?;
    let confirmed = confirm_link(ctx, &mut client).await?;
    let mut bar = Bar::new(ctx.json);
    let report = match from_scratch {
        true => client.sync_from_scratch(&mut bar).await,
        false => client.sync(&mut bar).await,
    };
    bar.finish();
    let mut report = match report {
        Ok(report) => report,
        Err(e) => {
            say_what_is_queued(&client, &e);
            return Err(e.into());
        }
    };
    if let Some(confirmation) = confirmed {
        report.linked = true;
        report.confirmation = Some(confirmation);
    }
    if ctx.json {
        return output::json(&SyncJson::from(&report));
    }
    print_sync(&client, &report)
}

/// When the relay could not be reached: how many changes wait here.
fn say_what_is_queued(client: &Client, error: &Error) {
    if !error.is_unreachable() {
        return;
    }
    if let Ok(status) = client.status()
        && status.queued > 0
    {
        eprintln!(
            "{} changes are queued here; the next sync that reaches the relay sends them",
            status.queued
        );
    }
}

/// On a pending device at a terminal: shows who approved it and the
/// confirmation, and links only if the person says it matches what the
/// approving device showed. Elsewhere the sync links without asking.
async fn confirm_link(ctx: &Ctx, client: &mut Client) -> Result<Option<Confirmation>> {
    if !client.whoami().pending || ctx.json || !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let offer = client.link_offer().await?;
    let confirmation = offer.confirmation;
    eprintln!(
        "approved as a device of {}; confirmation {confirmation}",
        offer.user.to_text()
    );
    eprint!("Does the approving device show the same six digits? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        return Err(Error::Invalid(
            "not linked: the confirmation was not confirmed; nothing was adopted".into(),
        )
        .into());
    }
    client.accept_link(offer)?;
    Ok(Some(confirmation))
}

fn print_sync(client: &Client, report: &SyncReport) -> Result<()> {
    if report.linked {
        say!(
            "linked: this device is now a device of {}",
            client.user()?.to_text()
        )?;
        if let Some(confirmation) = report.confirmation {
            say!("confirmation: {confirmation} (the approving device showed the same)")?;
        }
    }
    say!(
        "synced: {} pushed, {} pulled, {} queued",
        report.pushed,
        report.pulled,
        report.queued
    )?;
    if report.resent > 0 {
        say!(
            "re-sent {} envelopes the relay had lost (restored from a backup?)",
            report.resent
        )?;
    }
    if report.expired > 0 {
        say!(
            "{} envelopes of friends' and direct streams were no longer on the relay (its \
             retention policy removed them, or their author was removed) before this device \
             read them",
            report.expired
        )?;
    }
    if report.relay_full {
        say!(
            "the relay is out of storage space: {} changes stay queued here, and the next sync \
             sends them once it has room (tell the relay's operator)",
            report.queued
        )?;
    }
    if report.undeliverable > 0 {
        say!(
            "{} direct messages or key grants were refused by the relay: their recipient no \
             longer has you as a friend. They were dropped (`cairn friend list` shows who still \
             does)",
            report.undeliverable
        )?;
    }
    if report.set_aside > 0 {
        say!(
            "the relay holds a later history of this device (this home was restored from an \
             older copy?): adopted it, and wrote again on top of it {} of the {} changes this \
             copy had queued",
            report.rewritten,
            report.set_aside
        )?;
    }
    if let Some(relogged) = report.relogged {
        say!(
            "the relay's log changed since the last sync (restored from a backup?): read {} \
             streams again from where this device and the relay agree, sent again {} envelopes \
             and {} statements this device holds",
            relogged.rewound,
            relogged.resent,
            relogged.restated
        )?;
    }
    print_unopened(report)?;
    if report.ignored > 0 {
        eprintln!(
            "warning: the relay sent {} envelopes from users you have not added; they were ignored",
            report.ignored
        );
    }
    Ok(())
}

/// Why held envelopes do not open, each reason on its own line.
fn print_unopened(report: &SyncReport) -> std::io::Result<()> {
    let Unopened {
        later_epoch,
        no_key,
    } = report.unopened;
    if later_epoch > 0 {
        say!(
            "{later_epoch} posts are sealed to a later epoch of an audience you had keys for: \
             you were removed from it, or its new key has not reached you yet"
        )?;
    }
    if no_key > 0 {
        say!(
            "{no_key} posts are sealed to audiences you hold no key of: not shared with you, \
             or the key has not reached you yet"
        )?;
    }
    let other = report.waiting.saturating_sub(later_epoch + no_key);
    if other > 0 {
        say!("{other} more envelopes wait for keys or for their sender to be known")?;
    }
    Ok(())
}

async fn watch(ctx: &Ctx, since: Option<std::time::Duration>) -> Result<()> {
    let mut client = ctx.client()?;
    let since = since.map(|ago| {
        let ago = u64::try_from(ago.as_millis()).unwrap_or(u64::MAX);
        cairn_client::now_ms().saturating_sub(ago)
    });
    let json = ctx.json;
    // A reader that went away (`cairn watch | head -3`) ends the watch.
    let gone = Arc::new(Notify::new());
    let reader_gone = gone.clone();
    let mut print = move |event: WatchEvent| {
        if print_event(json, &event).is_err() {
            reader_gone.notify_one();
        }
    };
    tokio::select! {
        outcome = client.watch(since, &mut print) => Ok(outcome?),
        _ = tokio::signal::ctrl_c() => Ok(()),
        () = gone.notified() => Ok(()),
    }
}

fn print_event(json: bool, event: &WatchEvent) -> std::io::Result<()> {
    if *event == WatchEvent::Live {
        eprintln!("watching for new notes, posts and messages (Ctrl-C to stop)");
        return Ok(());
    }
    if let WatchEvent::Reconnecting { after } = event {
        eprintln!(
            "the relay is unreachable; reconnecting in {}...",
            humantime::format_duration(*after)
        );
        return Ok(());
    }
    if json {
        if let Some(line) = WatchJson::of(event).and_then(|l| serde_json::to_string(&l).ok()) {
            say!("{line}")?;
        }
        return Ok(());
    }
    match event {
        WatchEvent::Post(post) => say!(
            "{}  {}: {}",
            time(post.created),
            author_name(&post.from),
            post.text
        ),
        WatchEvent::Note {
            change,
            id,
            text,
            created,
        } => say!(
            "{}  note {} {}  {}",
            time(*created),
            change_name(*change),
            short(&id.to_text()),
            text.as_deref().unwrap_or("")
        ),
        WatchEvent::Message(message) => say!(
            "{}  {} (direct): {}",
            time(message.created),
            crate::direct::direction(message),
            message.text
        ),
        WatchEvent::Live | WatchEvent::Reconnecting { .. } => Ok(()),
    }
}

async fn device(ctx: &Ctx, command: DeviceCommand) -> Result<()> {
    match command {
        DeviceCommand::Join {
            show_code: true, ..
        } => show_code(ctx),
        DeviceCommand::Join {
            relay: Some(relay),
            fingerprint,
            user: Some(user),
            name,
            show_code: false,
        } => join(ctx, &relay, fingerprint.as_deref(), &user, name).await,
        DeviceCommand::Join { .. } => {
            Err(Error::Invalid("--relay and --user are needed".into()).into())
        }
        DeviceCommand::Approve { code, with_root } => approve(ctx, &code, with_root).await,
        DeviceCommand::RecoveryCode => recovery_code(ctx),
        DeviceCommand::Recover { code } => recover(ctx, code),
        DeviceCommand::List => device_list(ctx).await,
        DeviceCommand::Revoke { device } => revoke(ctx, &device).await,
        DeviceCommand::Rename { device, name } => rename_device(ctx, &device, &name).await,
    }
}

async fn rename_device(ctx: &Ctx, device: &str, name: &str) -> Result<()> {
    let mut client = ctx.client()?;
    let id = client.rename_device(device, name)?;
    let queued = push(&mut client).await?;
    if ctx.json {
        return output::json(&json!({ "device": id.to_text(), "name": name, "queued": queued }));
    }
    say!("renamed {} to {name}", id.to_text())?;
    Ok(())
}

async fn join(
    ctx: &Ctx,
    relay: &str,
    fingerprint: Option<&str>,
    user: &str,
    name: Option<String>,
) -> Result<()> {
    let user: UserId = user.parse().map_err(|e| {
        Error::Invalid(format!(
            "--user is not a user id ({e}); `cairn whoami` on a linked device shows it"
        ))
    })?;
    let NewHome {
        fingerprint,
        passphrase,
        name,
        options,
    } = NewHome::prepare(ctx, (relay, fingerprint), name, None)?;
    let (_, code) = Client::join(
        &ctx.home,
        &passphrase,
        relay,
        fingerprint,
        user,
        &name,
        options,
    )
    .await?;
    print_code(ctx, &code)
}

fn show_code(ctx: &Ctx) -> Result<()> {
    let code = ctx.client()?.link_code()?;
    print_code(ctx, &code)
}

/// The code on stdout (the one line to copy); at a terminal, a QR code of
/// it and what to do next on stderr.
fn print_code(ctx: &Ctx, code: &LinkCode) -> Result<()> {
    let minutes = LINK_CODE_LIFETIME.as_secs() / 60;
    if ctx.json {
        return output::json(&json!({
            "code": code.to_string(),
            "expires_ms": code.issued_ms.saturating_add(LINK_CODE_LIFETIME.as_secs() * 1000),
        }));
    }
    say!("{code}")?;
    if std::io::stderr().is_terminal()
        && let Some(qr) = qr::render(&code.to_string())
    {
        eprintln!("{qr}");
    }
    eprintln!(
        "on a linked device run `cairn device approve CODE` with the line above within \
         {minutes} minutes (`cairn device join --show-code` shows it again), then `cairn sync` here"
    );
    Ok(())
}

async fn approve(ctx: &Ctx, code: &str, with_root: bool) -> Result<()> {
    let code: LinkCode = code
        .parse()
        .context("the code to approve (copy the whole line `cairn device join` printed)")?;
    let mut client = ctx.client()?;
    let approval = client.approve(&code, with_root).await?;
    if ctx.json {
        return output::json(&json!({
            "device": approval.device.to_text(),
            "name": code.name.as_str(),
            "confirmation": approval.confirmation.to_string(),
        }));
    }
    say!("{}", approval.device.to_text())?;
    eprintln!(
        "approved {:?}; run `cairn sync` on it to finish linking: it will show {}",
        code.name.as_str(),
        approval.confirmation
    );
    Ok(())
}

async fn device_list(ctx: &Ctx) -> Result<()> {
    let mut client = ctx.client()?;
    let devices = client.devices().await?;
    if ctx.json {
        return output::json(&devices.iter().map(DeviceJson::from).collect::<Vec<_>>());
    }
    for d in devices {
        let state = if d.revoked { "revoked" } else { "active" };
        let this = if d.this { " (this device)" } else { "" };
        let name = d.name.as_deref().unwrap_or("-");
        say!(
            "{}  {name:<12} {state:<8} seq {:<6} synced private@{}{this}",
            d.device,
            d.last_seq,
            d.private_position
        )?;
    }
    Ok(())
}

async fn revoke(ctx: &Ctx, device: &str) -> Result<()> {
    let mut client = ctx.client()?;
    let device = client.find_device(device)?;
    client.revoke_device(device).await?;
    if ctx.json {
        return output::json(&json!({ "revoked": device.to_text() }));
    }
    say!("revoked {}", device.to_text())?;
    Ok(())
}

async fn friend(ctx: &Ctx, command: FriendCommand) -> Result<()> {
    let mut client = ctx.client()?;
    match command {
        FriendCommand::Add { user, name } => {
            let user: UserId = user.parse().map_err(|e| Error::Invalid(format!("{e}")))?;
            client.add_friend(user, &name).await?;
            done(
                ctx,
                json!({ "friend": name, "user": user.to_text() }),
                &format!("added friend {name}"),
            )
        }
        FriendCommand::Rm { name } => {
            client.remove_friend(&name).await?;
            done(
                ctx,
                json!({ "removed": name }),
                &format!("removed friend {name}"),
            )
        }
        FriendCommand::List => {
            let friends = client.friends()?;
            if ctx.json {
                return output::json(&friends.iter().map(FriendJson::from).collect::<Vec<_>>());
            }
            if friends.is_empty() {
                eprintln!("no friends yet (`cairn friend add USER_ID --name NAME` adds one)");
            }
            for f in friends {
                let key = if f.key_known {
                    ""
                } else {
                    "  (has not added you yet)"
                };
                say!("{:<16} {}{key}", f.name, f.user.to_text())?;
            }
            Ok(())
        }
    }
}

async fn audience(ctx: &Ctx, command: AudienceCommand) -> Result<()> {
    let mut client = ctx.client()?;
    let message = match command {
        AudienceCommand::List => return audience_list(ctx, &client),
        AudienceCommand::Create { name, members } => {
            client.create_audience(&name, &members).await?;
            format!("created audience {name}")
        }
        AudienceCommand::Add {
            name,
            member,
            with_history,
        } => {
            client.add_member(&name, &member, with_history).await?;
            format!("added {member} to {name}")
        }
        AudienceCommand::Remove { name, member } => {
            client.remove_member(&name, &member).await?;
            format!("removed {member} from {name}; its key rotated")
        }
        AudienceCommand::Delete { name } => {
            client.delete_audience(&name).await?;
            format!("deleted audience {name}")
        }
    };
    let queued = push(&mut client).await?;
    if ctx.json {
        return output::json(&json!({ "ok": true, "queued": queued }));
    }
    say!("{message}")?;
    report_change("saved", queued);
    Ok(())
}

fn audience_list(ctx: &Ctx, client: &Client) -> Result<()> {
    let audiences: Vec<AudienceJson> = client.audiences()?.iter().map(AudienceJson::from).collect();
    if ctx.json {
        return output::json(&audiences);
    }
    if audiences.is_empty() {
        eprintln!("no audiences (`cairn audience create NAME --member FRIEND` makes one)");
    }
    for a in audiences {
        say!(
            "{:<16} epoch {:<4} {}",
            a.name,
            a.epoch,
            a.members.join(", ")
        )?;
    }
    Ok(())
}

async fn post(ctx: &Ctx, to: &[String], text: &str) -> Result<()> {
    let mut client = ctx.client()?;
    let id = client.post(to, &read_text(text)?).await?;
    warn_of_empty_audiences(&client, to)?;
    let queued = push(&mut client).await?;
    if ctx.json {
        return output::json(&json!({ "id": id.to_text(), "queued": queued }));
    }
    say!("{}", id.to_text())?;
    report_change("posted", queued);
    Ok(())
}

/// A post to an audience with no member reaches only the user's own
/// devices: said on stderr, so that nobody believes friends will read it.
fn warn_of_empty_audiences(client: &Client, to: &[String]) -> Result<()> {
    for audience in client.audiences()? {
        if audience.members.is_empty() && to.contains(&audience.name) {
            eprintln!(
                "warning: {} has no members: only your own devices can read this post \
                 (`cairn audience add {} FRIEND` adds one)",
                audience.name, audience.name
            );
        }
    }
    Ok(())
}

fn feed(ctx: &Ctx) -> Result<()> {
    let client = ctx.client()?;
    let feed: Vec<PostJson> = client.feed()?.iter().map(PostJson::from).collect();
    client.mark_listed(cairn_client::Listed::Posts)?;
    if ctx.json {
        return output::json(&feed);
    }
    if feed.is_empty() {
        eprintln!("the feed is empty (`cairn sync` fetches what friends posted)");
    }
    for post in feed {
        // Friends' audience names are theirs alone; show only ours.
        let to = match post.mine {
            true => format!(" [{}]", post.audiences.join(", ")),
            false => String::new(),
        };
        let head = format!("{}  {}{to}: ", time(post.created), post.from);
        say!("{head}{}", indented(&post.text, head.chars().count()))?;
    }
    Ok(())
}

fn status(ctx: &Ctx) -> Result<()> {
    let status = ctx.client()?.status()?;
    if ctx.json {
        return output::json(&StatusJson::from(&status));
    }
    say!("queued    {} (sent by the next sync)", status.queued)?;
    say!(
        "waiting   {} (held until their keys arrive)",
        status.waiting
    )?;
    let last_sync = status.last_sync_ms.map_or("never".to_owned(), time);
    say!("last sync {last_sync}")?;
    let relay = match &status.last_contact {
        None => "not tried yet".to_owned(),
        Some(contact) => match &contact.outcome {
            Contact::Synced => format!("answered at {}", time(contact.at_ms)),
            Contact::Unreachable(why) => {
                format!("did not answer at {}: {why}", time(contact.at_ms))
            }
            Contact::Failed(why) => format!("failed at {}: {why}", time(contact.at_ms)),
        },
    };
    say!("relay     {relay}")?;
    Ok(())
}

/// Pushes queued work if the relay answers; returns whether it stays
/// queued. What was saved here stays saved whatever the push meets: a
/// relay that cannot be reached, or that shows another certificate or
/// refuses, leaves it queued, said with what to do, and the command
/// succeeds. Only a device the relay says is revoked or banned fails (it
/// will never send anything).
pub(crate) async fn push(client: &mut Client) -> Result<bool> {
    match client.push().await {
        Ok(Some(report)) if report.relay_full => {
            eprintln!(
                "warning: saved here, not sent: the relay is out of storage space; `cairn sync` \
                 sends it once the relay has room (tell its operator)"
            );
            Ok(true)
        }
        Ok(Some(report)) if report.undeliverable > 0 => {
            eprintln!(
                "warning: the relay refused {} direct messages or key grants: their recipient no \
                 longer has you as a friend; they were dropped",
                report.undeliverable
            );
            Ok(false)
        }
        Ok(report) => Ok(report.is_none()),
        Err(e) if matches!(e.kind(), ErrorKind::Revoked | ErrorKind::Banned) => Err(e.into()),
        Err(e) => {
            eprintln!("warning: saved here, not sent: {e}");
            if let Some(hint) = views::hint(&e) {
                eprintln!("hint: {hint}");
            }
            Ok(true)
        }
    }
}

pub(crate) fn report_change(verb: &str, queued: bool) {
    if queued {
        eprintln!("{verb} here and queued: `cairn sync` sends it once the relay takes it");
    }
}

fn done(ctx: &Ctx, value: serde_json::Value, text: &str) -> Result<()> {
    if ctx.json {
        return output::json(&value);
    }
    say!("{text}")?;
    Ok(())
}

fn check_fresh(ctx: &Ctx) -> Result<()> {
    if Client::exists(&ctx.home) {
        return Err(Error::AlreadyInitialised {
            home: ctx.home.clone(),
        }
        .into());
    }
    Ok(())
}

/// `cairn relay show|set`.
fn relay(ctx: &Ctx, command: RelayCommand) -> Result<()> {
    let mut client = ctx.client()?;
    let (before, after) = match command {
        RelayCommand::Show => {
            let now = client.relay_target();
            (now.clone(), now)
        }
        RelayCommand::Set {
            relay,
            fingerprint,
            authorities,
        } => {
            let trust = match (fingerprint, authorities) {
                (Some(text), _) => Some(Trust::Pinned(parse_fingerprint(&text)?)),
                (None, true) => Some(Trust::Authorities),
                (None, false) => None,
            };
            let before = client.set_relay_target(relay, trust)?;
            (before, client.relay_target())
        }
    };
    if ctx.json {
        let view = |t: &RelayTarget| {
            let (trust, fingerprint) = match t.trust() {
                Trust::Pinned(fingerprint) => ("pinned", Some(fingerprint.to_string())),
                Trust::Authorities => ("authorities", None),
            };
            json!({ "relay": t.relay, "trust": trust, "fingerprint": fingerprint })
        };
        let mut value = view(&after);
        if let Some(fields) = value.as_object_mut() {
            fields.insert("before".into(), view(&before));
        }
        return output::json(&value);
    }
    let line = |what: &str, old: String, new: String| match old == new {
        true => say!("{what:<12}{new}"),
        false => say!("{what:<12}{new} (was {old})"),
    };
    line("relay", before.relay.clone(), after.relay.clone())?;
    line("trust", trust_text(&before), trust_text(&after))?;
    Ok(())
}

/// How a home trusts its relay, in words.
fn trust_text(target: &RelayTarget) -> String {
    match target.trust() {
        Trust::Pinned(fingerprint) => format!("fingerprint {fingerprint}"),
        Trust::Authorities => format!(
            "this system's certificate authorities, for {}",
            cairn_client::host_of(&target.relay)
        ),
    }
}

fn parse_fingerprint(text: &str) -> Result<Fingerprint> {
    text.parse()
        .map_err(|e| Error::Invalid(format!("{e}")).into())
}

/// The text argument, or stdin for `-`.
pub(crate) fn read_text(text: &str) -> Result<String> {
    if text != "-" {
        return Ok(text.to_owned());
    }
    let mut buffer = String::new();
    std::io::stdin()
        .read_to_string(&mut buffer)
        .context("cannot read the text from stdin")?;
    Ok(buffer.trim_end_matches('\n').to_owned())
}

/// The operating system's host name (shells rarely export `HOSTNAME`),
/// or "device" when it has none.
fn default_device_name() -> String {
    gethostname::gethostname()
        .into_string()
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "device".to_owned())
}
