//! The `cairn-relay` command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use cairn_relay::admin_file::{ADMIN_FILE, AdminFile};
use cairn_relay::config::{Backend, ConfigSource, FlagOverrides, LogFormat, RelayConfig};
use cairn_relay::invites::{self, CreateRequest};
use cairn_relay::ready::Ready;
use cairn_relay::server::start_with;
use cairn_relay::tls::TlsIdentity;
use cairn_relay::{carry, clock, ops, removal, retention, tables};
use cairn_store::{RedbStore, Store};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

/// A zero-knowledge relay for end-to-end-encrypted, audience-scoped messages.
#[derive(Debug, Parser)]
#[command(name = "cairn-relay", version)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Global {
    /// TOML configuration file (layered under `CAIRN_RELAY_*` variables and flags).
    #[arg(long, global = true, env = "CAIRN_RELAY_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory: database, certificate, key.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Log format: text or json (filter with RUST_LOG).
    #[arg(long, global = true, value_parser = parse_log_format)]
    log_format: Option<LogFormat>,
}

/// Where `serve` listens. The other commands find a running relay through
/// the `admin.json` it writes in its data directory.
#[derive(Debug, Clone, Copy, Args)]
struct Listeners {
    /// QUIC listen address.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Admin HTTP listen address (metrics, health, admin API).
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// A second HTTP listener serving only /metrics and /healthz.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the relay (creates the data directory and certificate on first start).
    Serve {
        /// Once listening, write the addresses and fingerprint here as JSON.
        #[arg(long)]
        ready_file: Option<PathBuf>,
        #[command(flatten)]
        listeners: Listeners,
    },
    /// Print the certificate fingerprint clients pin (`cairn init --fingerprint`).
    Fingerprint,
    /// Verify the database's invariants (relay stopped).
    Check,
    /// Print counts of users, devices, streams and envelopes.
    Stats {
        /// Print the operator API's JSON instead, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Write a consistent snapshot of the database, online or offline.
    Backup {
        /// Snapshot file to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Replace the database with a backup (relay stopped).
    Restore {
        /// Backup file written by `backup`.
        #[arg(long)]
        from: PathBuf,
        /// Replace an existing database.
        #[arg(long)]
        force: bool,
    },
    /// Write every statement and envelope in the export line format (relay stopped).
    Export {
        /// Export file to create (`-` for standard output).
        #[arg(long)]
        out: PathBuf,
    },
    /// Load an export into a data directory that has no database yet.
    Import {
        /// Export file to read.
        #[arg(long)]
        from: PathBuf,
        /// A backup whose certificate, key and ban list to put in the data
        /// directory too, so that the relay comes back as itself (the
        /// fingerprint its clients pinned).
        #[arg(long)]
        identity_from: Option<PathBuf>,
    },
    /// List users, their devices and what they store against the quota.
    Users {
        /// Print the operator API's JSON instead (with every device id),
        /// for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Ban a device from this relay and close its connections.
    Ban {
        /// The device id (`cd1...`).
        device: String,
    },
    /// Lift a device's ban.
    Unban {
        /// The device id (`cd1...`).
        device: String,
    },
    /// Make the running relay read its configuration file and ban list
    /// again (as `SIGHUP` does): registration and limits change at once,
    /// devices newly banned are disconnected, and settings that need a
    /// restart are named.
    Reload,
    /// Remove now what the retention policy (`[retention]`) expires,
    /// rather than at the next pass, online or offline.
    Compact,
    /// Make, list and revoke invites (for `[registration] policy = "invite"`).
    #[command(subcommand)]
    Invite(InviteCommand),
    /// Remove a user and everything their devices stored.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Delete a user's streams, devices and grants; their devices are
    /// refused from then on (`user_removed`). Refused while one of their
    /// devices is connected, unless `--force`.
    Remove {
        /// The user id (`cu1...`), as `cairn-relay users` shows it.
        user: String,
        /// Disconnect their devices and remove them anyway.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
enum InviteCommand {
    /// Make an invite and print its code (shown this once).
    Create {
        /// Registrations it admits.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// How long it stays valid (e.g. `7d`, `12h`); default: until used.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<std::time::Duration>,
    },
    /// List invites (ids, uses left, expiry; never codes).
    List,
    /// Revoke an invite by its id (or a unique prefix of it).
    Revoke {
        /// The id `invite list` shows.
        id: String,
    },
}

/// Writes a line to stdout like `println!`, but returns an error (a reader
/// that closed the pipe, above all) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {
        line(format_args!($($arg)*))
    };
}

fn line(args: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)?;
    out.write_all(b"\n")?;
    out.flush()
}

fn is_closed_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Runs the command line and maps failures to exit code 1.
pub fn main() -> ExitCode {
    let matches = command_with_defaults().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match run(cli) {
        Ok(code) => code,
        // A reader that closed stdout early (`cairn-relay users | head -1`)
        // is not a failure.
        Err(e) if is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cairn-relay: {}", explained(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, each cause once: a message that
/// already quotes its cause is not followed by it again.
fn explained(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// The command line, its `--help` showing the defaults the flags fall
/// back on (under the config file and `CAIRN_RELAY_*`), from the same
/// values the relay uses: clap's own defaults would override the file.
fn command_with_defaults() -> clap::Command {
    let defaults = RelayConfig::default();
    let with = |help: &str, default: String| format!("{help} [default: {default}]");
    Cli::command()
        .mut_arg("data_dir", |arg| {
            arg.help(with(
                "Data directory: database, certificate, key, ban list",
                defaults.data_dir.display().to_string(),
            ))
        })
        .mut_subcommand("serve", |serve| {
            serve
                .mut_arg("listen", |arg| {
                    arg.help(with("QUIC listen address", defaults.listen.to_string()))
                })
                .mut_arg("admin_listen", |arg| {
                    arg.help(with(
                        "Admin HTTP listen address (metrics, health, admin API)",
                        defaults.admin_listen.to_string(),
                    ))
                })
        })
        .mut_arg("log_format", |arg| {
            arg.help(with(
                "Log format: text or json (filter with RUST_LOG)",
                "text".to_owned(),
            ))
        })
}

fn run(cli: Cli) -> Result<ExitCode> {
    let listeners = match &cli.command {
        Command::Serve { listeners, .. } => Some(*listeners),
        _ => None,
    };
    let flags = FlagOverrides {
        data_dir: cli.global.data_dir,
        listen: listeners.and_then(|l| l.listen),
        admin_listen: listeners.and_then(|l| l.admin_listen),
        metrics_listen: listeners.and_then(|l| l.metrics_listen),
        log_format: cli.global.log_format,
    };
    let source = ConfigSource {
        file: cli.global.config.clone(),
        flags,
    };
    let config = source.load()?;
    init_logging(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve { ready_file, .. } => serve(config, source, ready_file.as_deref()).await,
            Command::Fingerprint => fingerprint(&config),
            Command::Check => check(&config).await,
            Command::Stats { json } => stats(&config, json).await,
            Command::Backup { out } => backup(&config, &out).await,
            Command::Restore { from, force } => restore(&config, &from, force).await,
            Command::Export { out } => export(&config, &out).await,
            Command::Import {
                from,
                identity_from,
            } => import(&config, &from, identity_from.as_deref()).await,
            Command::Users { json } => users(&config, json).await,
            Command::Ban { device } => ban(&config, &device),
            Command::Unban { device } => unban(&config, &device),
            Command::Reload => reload(&config),
            Command::Invite(command) => invite(&config, command).await,
            Command::Compact => compact(&config).await,
            Command::User(UserCommand::Remove { user, force }) => {
                remove_user(&config, &user, force).await
            }
        }
    })
}

async fn serve(
    config: RelayConfig,
    source: ConfigSource,
    ready_file: Option<&Path>,
) -> Result<ExitCode> {
    let format = config.log_format;
    let relay = start_with(config, Some(source)).await?;
    if let Some(path) = ready_file {
        Ready::of(&relay)
            .write(path)
            .with_context(|| format!("writing the ready file {}", path.display()))?;
    }
    // For people watching the terminal (one JSON object in JSON mode); a
    // closed stdout must not stop the relay (scripts read the ready file).
    let _ = match format {
        LogFormat::Json => say!(
            "{}",
            serde_json::json!({
                "listening": relay.addr,
                "admin": relay.admin_addr,
                "fingerprint": relay.fingerprint.to_string(),
            })
        ),
        LogFormat::Text => say!(
            "cairn relay listening on {} (admin {})\nfingerprint {}",
            relay.addr,
            relay.admin_addr,
            relay.fingerprint
        ),
    };
    let trigger = relay.trigger();
    tokio::spawn(async move {
        wait_for_signal().await;
        trigger.cancel();
    });
    reload_on_hangup(relay.reloader());
    relay.wait().await;
    Ok(ExitCode::SUCCESS)
}

fn fingerprint(config: &RelayConfig) -> Result<ExitCode> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let identity = TlsIdentity::load_or_create(config)?;
    say!("{}", identity.fingerprint()?)?;
    Ok(ExitCode::SUCCESS)
}

async fn check(config: &RelayConfig) -> Result<ExitCode> {
    let store = open_offline(config)?;
    let report = store.verify().await?;
    say!(
        "checked {} streams, {} envelopes, {} devices",
        report.streams,
        report.envelopes,
        report.devices
    )?;
    if report.is_ok() {
        say!("database is consistent")?;
        return Ok(ExitCode::SUCCESS);
    }
    for problem in &report.problems {
        say!("problem: {problem}")?;
    }
    Ok(ExitCode::FAILURE)
}

async fn stats(config: &RelayConfig, as_json: bool) -> Result<ExitCode> {
    let json = match try_open(config)? {
        Some(store) => serde_json::to_value(ops::stats_json(&store, config.limits.quota()).await?)?,
        None => admin_get(config, "/admin/stats")?,
    };
    match as_json {
        true => say!("{}", serde_json::to_string_pretty(&json)?)?,
        false => say!("{}", tables::stats(&json).trim_end())?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn backup(config: &RelayConfig, out: &Path) -> Result<ExitCode> {
    if out.exists() {
        bail!("{} exists; choose a new file", out.display());
    }
    let out = std::path::absolute(out)?;
    match try_open(config)? {
        Some(store) => {
            store.backup(&out).await?;
            store.close().await;
        }
        None => {
            admin_post(config, "/admin/backup", &serde_json::json!({ "out": out }))?;
        }
    }
    let files = carry::gather(config).context("reading the relay's certificate, key and bans")?;
    cairn_store::attach_files(&out, &files)?;
    let names: Vec<&str> = files.iter().map(|(name, _)| *name).collect();
    say!(
        "backup written to {}: the database and {}; it holds the relay's private key: keep \
         it as secret",
        out.display(),
        names.join(", ")
    )?;
    Ok(ExitCode::SUCCESS)
}

async fn users(config: &RelayConfig, as_json: bool) -> Result<ExitCode> {
    let json = match try_open(config)? {
        Some(store) => serde_json::to_value(ops::users(&store, config.limits.quota()).await?)?,
        None => admin_get(config, "/admin/users")?,
    };
    match as_json {
        true => say!("{}", serde_json::to_string_pretty(&json)?)?,
        false => say!("{}", tables::users(&json).trim_end())?,
    }
    Ok(ExitCode::SUCCESS)
}

fn ban(config: &RelayConfig, device: &str) -> Result<ExitCode> {
    let device: cairn_wire::DeviceId = device.parse()?;
    if try_open_blocking(config)?.is_some() {
        let bans = cairn_relay::bans::Bans::load(&config.data_dir)?;
        bans.add(device)?;
    } else {
        admin_post(
            config,
            &format!("/admin/devices/{device}/ban"),
            &serde_json::json!({}),
        )?;
    }
    say!("banned {device}")?;
    Ok(ExitCode::SUCCESS)
}

async fn compact(config: &RelayConfig) -> Result<ExitCode> {
    let compacted: retention::Compacted = match try_open(config)? {
        Some(store) => {
            let done = retention::compact(&store, &config.retention, clock::now_ms()).await;
            store.close().await;
            done?
        }
        None => serde_json::from_value(admin_post(
            config,
            "/admin/compact",
            &serde_json::json!({}),
        )?)?,
    };
    say!(
        "expired {} envelopes ({}) in {} streams",
        compacted.envelopes,
        tables::size(compacted.bytes),
        compacted.streams
    )?;
    Ok(ExitCode::SUCCESS)
}

async fn remove_user(config: &RelayConfig, user: &str, force: bool) -> Result<ExitCode> {
    let user: cairn_wire::UserId = user
        .parse()
        .with_context(|| format!("{user:?} is not a user id (`cairn-relay users` lists them)"))?;
    let removed: removal::Removed = match try_open(config)? {
        Some(store) => {
            let removed = removal::remove(&store, None, user, force, clock::now_ms()).await;
            store.close().await;
            removed?
        }
        None => {
            let body = serde_json::to_value(removal::RemoveRequest { force })?;
            serde_json::from_value(admin_post(
                config,
                &format!("/admin/users/{user}/remove"),
                &body,
            )?)?
        }
    };
    match removed.already {
        true => say!("{} was removed before; nothing changed", removed.user)?,
        false => say!(
            "removed {}: {} envelopes ({}) in {} streams, {} devices; {} disconnected",
            removed.user,
            removed.envelopes,
            tables::size(removed.bytes),
            removed.streams,
            removed.devices,
            removed.disconnected
        )?,
    }
    Ok(ExitCode::SUCCESS)
}

fn unban(config: &RelayConfig, device: &str) -> Result<ExitCode> {
    let device: cairn_wire::DeviceId = device.parse()?;
    let was = if try_open_blocking(config)?.is_some() {
        cairn_relay::bans::Bans::load(&config.data_dir)?.remove(&device)?
    } else {
        let answer = admin_post(
            config,
            &format!("/admin/devices/{device}/unban"),
            &serde_json::json!({}),
        )?;
        answer
            .get("was_banned")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false)
    };
    match was {
        true => say!("unbanned {device}")?,
        false => say!("{device} was not banned")?,
    }
    Ok(ExitCode::SUCCESS)
}

fn reload(config: &RelayConfig) -> Result<ExitCode> {
    if try_open_blocking(config)?.is_some() {
        bail!("no relay is running on {}", config.data_dir.display());
    }
    let answer = admin_post(config, "/admin/reload", &serde_json::json!({}))?;
    say!("{}", serde_json::to_string_pretty(&answer)?)?;
    Ok(ExitCode::SUCCESS)
}

async fn invite(config: &RelayConfig, command: InviteCommand) -> Result<ExitCode> {
    let answer = match command {
        InviteCommand::Create { uses, expires } => {
            let request = CreateRequest {
                uses,
                expires_secs: expires.map(|d| d.as_secs().max(1)),
            };
            match try_open(config)? {
                Some(store) => {
                    let made = invites::create(&store, request, clock::now_ms()).await;
                    store.close().await;
                    serde_json::to_value(made?)?
                }
                None => admin_post(config, "/admin/invites", &serde_json::to_value(request)?)?,
            }
        }
        InviteCommand::List => match try_open(config)? {
            Some(store) => serde_json::to_value(invites::list(&store).await?)?,
            None => admin_get(config, "/admin/invites")?,
        },
        InviteCommand::Revoke { id } => match try_open(config)? {
            Some(store) => {
                let revoked = invites::revoke(&store, &id).await;
                store.close().await;
                serde_json::to_value(revoked?)?
            }
            None => admin_post(
                config,
                &format!("/admin/invites/{id}/revoke"),
                &serde_json::json!({}),
            )?,
        },
    };
    say!("{}", serde_json::to_string_pretty(&answer)?)?;
    Ok(ExitCode::SUCCESS)
}

/// A restore's copy under its temporary name: removed unless it was moved
/// into place, so that a failed restore leaves nothing behind.
struct Staging(PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        // After the rename there is nothing here to remove.
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Copies `from` into the data directory under a temporary name, checks
/// that it opens as a consistent store, then moves it into place.
///
/// The restored database gets a new log id, so that clients see that its
/// positions no longer continue what they read and heal it (`spec/client.md`
/// section 6.1); what it lacks compared with the database it replaces is
/// said before it replaces it.
async fn restore(config: &RelayConfig, from: &Path, force: bool) -> Result<ExitCode> {
    let target = config.database_path();
    let replaced = match target.exists() {
        false => None,
        true if !force => bail!("{} exists; pass --force to replace it", target.display()),
        true => Some(try_open(config)?.with_context(|| {
            format!(
                "{} is in use by a running relay; stop it first",
                target.display()
            )
        })?),
    };
    std::fs::create_dir_all(&config.data_dir)?;
    let staging = Staging(config.data_dir.join("relay.redb.restoring"));
    std::fs::copy(from, &staging.0).with_context(|| format!("copying {}", from.display()))?;
    let carried = cairn_store::take_files(&staging.0)
        .with_context(|| format!("{} is not a usable backup", from.display()))?;
    let store = RedbStore::open(&staging.0)
        .with_context(|| format!("{} is not a usable backup", from.display()))?;
    let report = store.verify().await?;
    let lacking = match &replaced {
        Some(replaced) => Some(ops::lacking(replaced, &store).await?),
        None => None,
    };
    store.close().await;
    if let Some(replaced) = replaced {
        replaced.close().await;
    }
    if !report.is_ok() {
        bail!(
            "{} is inconsistent: {}",
            from.display(),
            report.problems.join("; ")
        );
    }
    let log = match config.storage.backend {
        // A node of a cluster keeps the log its backup follows, and
        // catches up from the record after the one it had applied.
        Backend::Jetstream => "the cluster's log, from the backup's last applied record".to_owned(),
        Backend::Redb => format!("new log {}", cairn_store::start_new_log(&staging.0)?),
    };
    std::fs::rename(&staging.0, &target)?;
    say!(
        "restored {} envelopes in {} streams into {} ({log})",
        report.envelopes,
        report.streams,
        target.display()
    )?;
    if let Some(lacking) = lacking {
        say!("{}", describe_lacking(&lacking))?;
    }
    for line in carry::put_back(config, &carried)? {
        say!("{line}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What a restore lost, in words: clients heal it by sending again what
/// they hold.
fn describe_lacking(lacking: &ops::Lacking) -> String {
    if lacking.is_nothing() {
        return "the restored database holds everything the replaced one held".into();
    }
    format!(
        "the restored database lacks {} envelopes in {} streams and {} signed statements \
         that the replaced one held; devices that hold them send them again when they next sync",
        lacking.envelopes, lacking.streams, lacking.statements
    )
}

#[allow(clippy::print_stderr)]
async fn export(config: &RelayConfig, out: &Path) -> Result<ExitCode> {
    let store = open_offline(config)?;
    let counts = if out == Path::new("-") {
        cairn_relay::export::export(
            &store,
            &mut std::io::BufWriter::new(std::io::stdout().lock()),
        )
        .await?
    } else {
        let file = std::fs::File::create_new(out)
            .with_context(|| format!("creating {}", out.display()))?;
        let mut writer = std::io::BufWriter::new(file);
        let counts = cairn_relay::export::export(&store, &mut writer).await?;
        writer
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()?;
        counts
    };
    eprintln!(
        "exported {} statements and {} envelopes",
        counts.statements, counts.envelopes
    );
    Ok(ExitCode::SUCCESS)
}

async fn import(
    config: &RelayConfig,
    from: &Path,
    identity_from: Option<&Path>,
) -> Result<ExitCode> {
    if config.storage.backend == Backend::Jetstream {
        bail!(
            "a node of a cluster does not import: its data comes from the cluster's log \
             (spec/cluster.md); import into a single relay instead"
        );
    }
    if config.database_path().exists() {
        bail!(
            "{} already has a database; import into an empty data directory",
            config.data_dir.display()
        );
    }
    std::fs::create_dir_all(&config.data_dir)?;
    // Read before anything is written: a backup that is not one stops the
    // import with nothing done.
    let identity = match identity_from {
        Some(backup) => Some(files_carried_by(config, backup)?),
        None => None,
    };
    let file = std::fs::File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let store = RedbStore::open(config.database_path())?;
    let result = cairn_relay::export::import(&store, std::io::BufReader::new(file)).await;
    store.close().await;
    match result {
        Ok(counts) => {
            say!(
                "imported {} statements and {} envelopes",
                counts.statements,
                counts.envelopes
            )?;
            for line in carry::put_back(config, identity.as_deref().unwrap_or_default())? {
                say!("{line}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let _ = std::fs::remove_file(config.database_path());
            Err(e).context(format!("importing {}", from.display()))
        }
    }
}

/// The files (certificate, key, bans) a backup carries, read from a copy
/// so that the backup itself is left as it is.
fn files_carried_by(config: &RelayConfig, backup: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let copy = Staging(config.data_dir.join("relay.redb.identity"));
    std::fs::copy(backup, &copy.0).with_context(|| format!("copying {}", backup.display()))?;
    cairn_store::take_files(&copy.0)
        .with_context(|| format!("{} is not a usable backup", backup.display()))
}

/// Opens the database, failing if it is missing or in use.
fn open_offline(config: &RelayConfig) -> Result<RedbStore> {
    try_open(config)?.with_context(|| {
        format!(
            "{} is in use by a running relay; stop it first",
            config.database_path().display()
        )
    })
}

/// Opens the database if no relay holds it; `None` when one does.
fn try_open(config: &RelayConfig) -> Result<Option<RedbStore>> {
    try_open_blocking(config)
}

fn try_open_blocking(config: &RelayConfig) -> Result<Option<RedbStore>> {
    let path = config.database_path();
    if !path.exists() {
        bail!(
            "no relay database at {}; is --data-dir right?",
            path.display()
        );
    }
    match RedbStore::open(&path) {
        Ok(store) => Ok(Some(store)),
        Err(cairn_store::OpenError::AlreadyOpen { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Where the running relay's admin API listens and its token, from the
/// `admin.json` it wrote in the data directory.
fn admin_endpoint(config: &RelayConfig) -> Result<AdminFile> {
    AdminFile::read(&config.data_dir)?.with_context(|| {
        format!(
            "the relay is running but {} has no {ADMIN_FILE}; is it an older relay?",
            config.data_dir.display()
        )
    })
}

fn admin_get(config: &RelayConfig, path: &str) -> Result<serde_json::Value> {
    let admin = admin_endpoint(config)?;
    let url = format!("http://{}{path}", admin.listen);
    let response = admin_agent()
        .get(&url)
        .header("Authorization", &format!("Bearer {}", admin.token))
        .call();
    admin_answer(&url, response)
}

fn admin_post(
    config: &RelayConfig,
    path: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value> {
    let admin = admin_endpoint(config)?;
    let url = format!("http://{}{path}", admin.listen);
    let response = admin_agent()
        .post(&url)
        .header("Authorization", &format!("Bearer {}", admin.token))
        .send_json(body);
    admin_answer(&url, response)
}

fn admin_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(60)))
        .build()
        .into()
}

/// The JSON answer, or an error carrying the relay's own reason.
fn admin_answer(
    url: &str,
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<serde_json::Value> {
    let mut response = response.with_context(|| format!("asking the running relay at {url}"))?;
    let status = response.status();
    let body: serde_json::Value = response
        .body_mut()
        .read_json()
        .with_context(|| format!("the relay at {url} answered {status} without JSON"))?;
    if !status.is_success() {
        let reason = body
            .get("error")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("no reason given");
        bail!("the relay at {url} refused ({status}): {reason}");
    }
    Ok(body)
}

/// Reads the configuration and ban list again at each `SIGHUP`, as `cairn-relay reload`
/// does, rather than dying of it.
fn reload_on_hangup(relay: cairn_relay::server::Reloader) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hangups) => {
                tokio::spawn(async move {
                    while hangups.recv().await.is_some() {
                        if let Err(e) = relay.reload() {
                            tracing::error!(error = %e, "reload failed; nothing changed");
                        }
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for SIGHUP"),
        }
    }
    #[cfg(not(unix))]
    let _ = relay;
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a person at a terminal, never into a log file.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    match text {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!(
            "unknown log format `{other}`; expected text or json"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_shows_the_defaults_the_relay_uses() {
        let mut command = command_with_defaults();
        let defaults = RelayConfig::default();
        let top = command.render_help().to_string();
        let data_dir = defaults.data_dir.display().to_string();
        assert!(top.contains(&format!("[default: {data_dir}]")), "{top}");
        let serve = command
            .find_subcommand_mut("serve")
            .map(|serve| serve.render_help().to_string())
            .unwrap_or_default();
        for default in [defaults.listen, defaults.admin_listen] {
            assert!(serve.contains(&format!("[default: {default}]")), "{serve}");
        }
    }

    #[test]
    fn only_serve_takes_listen_addresses() {
        let mut command = command_with_defaults();
        for name in ["fingerprint", "check", "stats", "backup", "export", "users"] {
            let help = command
                .find_subcommand_mut(name)
                .map(|c| c.render_help().to_string())
                .unwrap_or_default();
            assert!(!help.is_empty(), "{name}");
            assert!(
                !help.contains("--listen") && !help.contains("--admin-listen"),
                "{name}: {help}"
            );
        }
    }
}
