//! Relays under test: in the load generator's process (most scenarios),
//! or as a child process of its own, so that its memory can be read apart
//! from the load generator's.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};
use cairn_relay::config::{FlagOverrides, Limits, RelayConfig, Retention, Storage};
use cairn_relay::ready::Ready;
use cairn_relay::{RelayHandle, start};
use cairn_testkit::process::Announced;
use cairn_wire::Fingerprint;
use clap::ValueEnum;
use nix::sys::time::TimeSpec;
use nix::time::{ClockId, clock_getcpuclockid};
use nix::unistd::Pid;
use serde::Serialize;
use tempfile::TempDir;

use crate::net::BareTransport;

/// Limits high enough that only the machine bounds the load: every
/// scenario connects from one address, as one or few users, with many
/// streams and subscriptions per connection.
pub fn bench_limits() -> Limits {
    Limits {
        connections_per_ip: 100_000,
        streams_per_connection: crate::net::STREAMS_PER_CONNECTION,
        subscriptions_per_connection: 1024,
        idle_timeout_secs: 120,
        request_timeout_secs: 60,
        requests_per_second_per_user: 10_000_000,
        request_burst_per_user: 10_000_000,
        requests_per_second_per_ip: 10_000_000,
        request_burst_per_ip: 10_000_000,
        handshakes_per_second_per_ip: 10_000_000,
        handshake_burst_per_ip: 10_000_000,
        registrations_per_hour_per_ip: 10_000_000,
        registration_burst_per_ip: 10_000_000,
        validate_addresses_above: 1_000_000,
        max_pending_logins: 1_000_000,
        ..Limits::default()
    }
}

/// A relay running in this process on loopback, with its data directory.
#[derive(Debug)]
pub struct InProcess {
    /// The running relay.
    pub handle: RelayHandle,
    _dir: TempDir,
}

impl InProcess {
    /// Starts a relay on a fresh data directory.
    pub async fn start() -> Result<Self> {
        Self::start_in(TempDir::new()?).await
    }

    /// Starts a relay on `dir`, which may already hold a database.
    pub async fn start_in(dir: TempDir) -> Result<Self> {
        Self::start_with(dir, |_| {}).await
    }

    /// Starts a relay on `dir` with the benchmark configuration as
    /// `tweak` changes it.
    pub async fn start_with(dir: TempDir, tweak: impl FnOnce(&mut RelayConfig)) -> Result<Self> {
        let mut config = config_in(dir.path());
        tweak(&mut config);
        let handle = start(config).await?;
        Ok(Self { handle, _dir: dir })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.handle.addr
    }

    /// The pin of its certificate.
    pub fn pin(&self) -> Fingerprint {
        self.handle.fingerprint
    }

    /// Shuts it down gracefully and removes its data.
    pub async fn stop(self) {
        self.handle.shutdown().await;
    }
}

/// The benchmark configuration of a relay on `dir`.
pub fn config_in(dir: &Path) -> RelayConfig {
    RelayConfig {
        data_dir: dir.to_owned(),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        admin_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        limits: bench_limits(),
        ..RelayConfig::default()
    }
}

/// A relay (or bare server) in a child process, killed when dropped.
#[derive(Debug)]
pub struct Child {
    process: Announced,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The pin of its certificate.
    pub pin: Fingerprint,
    _dir: TempDir,
}

/// The configuration file a child relay reads: the benchmark limits, and
/// a page cache of [`CHILD_CACHE_BYTES`].
#[derive(Serialize)]
struct ConfigFile {
    limits: Limits,
    storage: Storage,
    retention: Retention,
}

/// The page cache of a child relay unless a scenario says otherwise:
/// small, so that its resident memory shows what the relay itself holds rather than redb's cache filling up
/// with the database (256 MiB by default, reached as the soak's database
/// grows past it).
pub const CHILD_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// What a child process serves.
#[derive(Debug, Clone, Copy)]
pub enum Serves<'a> {
    /// A relay: `cairn-relay serve` from this binary, or, without one,
    /// this program's `serve-relay`, which runs the same library entry
    /// point.
    Relay(Option<&'a Path>),
    /// A bare quinn server (this program's `serve-bare`).
    Bare,
}

/// How a child is set up.
#[derive(Debug, Clone)]
pub struct Setup {
    /// A relay child's limits.
    pub limits: Limits,
    /// A relay child's retention policy.
    pub retention: Retention,
    /// A bare child's transport.
    pub bare: BareTransport,
    /// A relay child's data directory, if not a new one.
    pub data_dir: Option<PathBuf>,
    /// A relay child's page cache.
    pub cache_bytes: usize,
}

impl Setup {
    /// The benchmark limits, but the transport limits a relay ships with
    /// (streams and subscriptions per connection), with room for
    /// `subscriptions` per connection: what an operator's relay holds per
    /// connection.
    pub fn shipped_transport(subscriptions: usize) -> Self {
        let defaults = Limits::default();
        let wanted = u32::try_from(subscriptions).unwrap_or(u32::MAX);
        let subscriptions = defaults.subscriptions_per_connection.max(wanted);
        Self {
            limits: Limits {
                streams_per_connection: defaults.streams_per_connection.max(subscriptions),
                subscriptions_per_connection: subscriptions,
                ..bench_limits()
            },
            ..Self::default()
        }
    }
}

impl Default for Setup {
    /// The benchmark limits, no retention, the benchmark transport.
    fn default() -> Self {
        Self {
            limits: bench_limits(),
            retention: Retention::default(),
            bare: BareTransport::Bench,
            data_dir: None,
            cache_bytes: CHILD_CACHE_BYTES,
        }
    }
}

impl Child {
    /// Starts a child process serving on loopback, set up as `setup`
    /// says; it says where through its ready file.
    pub fn spawn_with(serves: Serves<'_>, setup: Setup) -> Result<Self> {
        let dir = TempDir::new()?;
        let config = dir.path().join("relay.toml");
        let storage = Storage {
            cache_bytes: setup.cache_bytes,
            ..Storage::default()
        };
        let file = ConfigFile {
            limits: setup.limits,
            storage,
            retention: setup.retention,
        };
        std::fs::write(&config, toml::to_string(&file)?)?;
        let data = setup
            .data_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("data"));
        let mut command = match serves {
            Serves::Relay(Some(bin)) => {
                let mut relay = Command::new(bin);
                relay.arg("--config").arg(&config).arg("serve");
                relay.args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"]);
                relay.arg("--data-dir").arg(&data);
                relay
            }
            Serves::Relay(None) => {
                let mut own = Command::new(std::env::current_exe()?);
                own.arg("serve-relay").arg("--config").arg(&config);
                own.arg("--data-dir").arg(&data);
                own
            }
            Serves::Bare => {
                let mut own = Command::new(std::env::current_exe()?);
                own.arg("serve-bare").arg("--transport");
                own.arg(
                    setup
                        .bare
                        .to_possible_value()
                        .context("a transport")?
                        .get_name(),
                );
                own
            }
        };
        command.env("RUST_LOG", "warn");
        let process = Announced::spawn(command).map_err(|e| anyhow!("the server: {e}"))?;
        Ok(Self {
            addr: process.ready.listen,
            pin: process.ready.fingerprint,
            process,
            _dir: dir,
        })
    }

    /// The child process's resident memory now, in bytes.
    pub fn rss_bytes(&self) -> Result<u64> {
        status_bytes(&self.status_file(), "VmRSS:")
    }

    /// The most resident memory the child process has had, in bytes.
    pub fn peak_rss_bytes(&self) -> Result<u64> {
        status_bytes(&self.status_file(), "VmHWM:")
    }

    /// CPU time the child process has used so far (user and system).
    pub fn cpu_seconds(&self) -> Result<f64> {
        cpu_seconds_of(self.process.child.id())
    }

    fn status_file(&self) -> String {
        format!("/proc/{}/status", self.process.child.id())
    }
}

/// The field `name` (in kB) of a `/proc/<pid>/status` file, in bytes.
fn status_bytes(status: &str, name: &str) -> Result<u64> {
    let text = std::fs::read_to_string(status).with_context(|| format!("reading {status}"))?;
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .with_context(|| format!("no {name} line"))?;
    let kib: u64 = line.trim().trim_end_matches("kB").trim().parse()?;
    Ok(kib * 1024)
}

/// CPU time this process has used (user and system), to the nanosecond.
pub fn cpu_seconds() -> Result<f64> {
    Ok(seconds(ClockId::CLOCK_PROCESS_CPUTIME_ID.now()?))
}

/// CPU time process `pid` has used (user and system), to the nanosecond:
/// its CPU-time clock.
fn cpu_seconds_of(pid: u32) -> Result<f64> {
    let pid = Pid::from_raw(i32::try_from(pid)?);
    Ok(seconds(clock_getcpuclockid(pid)?.now()?))
}

fn seconds(time: TimeSpec) -> f64 {
    time.tv_sec() as f64 + time.tv_nsec() as f64 / 1e9
}

/// Context switches of every thread of this process so far (voluntary
/// and not), from `/proc/self/task/*/status`.
pub fn context_switches() -> Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task")? {
        let status = std::fs::read_to_string(task?.path().join("status")).unwrap_or_default();
        total += status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
            .sum::<u64>();
    }
    Ok(total)
}

/// `cairn-load serve-relay`: what `cairn-relay serve` does, from the
/// library, for runs that were not given the relay binary.
pub fn serve_in_this_process(config_file: &Path, data_dir: PathBuf, ready: &Path) -> Result<()> {
    let flags = FlagOverrides {
        data_dir: Some(data_dir),
        listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        admin_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        metrics_listen: None,
        log_format: None,
    };
    let config = RelayConfig::load(Some(config_file), &flags)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let relay = start(config).await?;
        Ready::of(&relay).write(ready)?;
        relay.wait().await;
        bail!("the relay stopped")
    })
}

/// `cairn-load serve-bare`: a bare quinn server with the relay's TLS
/// set-up that completes handshakes and holds connections until their
/// clients close them, for the memory baseline. Its ready file has the
/// relay's fields, without an admin address.
pub fn serve_bare_in_this_process(ready: &Path, transport: BareTransport) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (server, pin) = crate::net::bare_server_with(transport)?;
        let announced = serde_json::json!({
            "listen": server.local_addr()?,
            "admin": null,
            "metrics": null,
            "fingerprint": pin.to_string(),
            "pid": std::process::id(),
        });
        std::fs::write(ready, serde_json::to_vec(&announced)?)?;
        crate::net::accept_and_hold(server).await;
        bail!("the bare server stopped")
    })
}

/// Where the relay under test runs.
#[derive(Debug, Clone, Copy)]
pub enum Placement<'a> {
    /// In this process, on its runtime.
    InProcess,
    /// As a process of its own: this binary, or this program's
    /// `serve-relay`.
    Process(Option<&'a Path>),
}

/// A relay under test.
pub enum UnderTest {
    /// In this process.
    InProcess(InProcess),
    /// A child process.
    Process(Child),
}

/// What a relay process spent on a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cost {
    /// CPU time, user and system.
    pub cpu_seconds: f64,
    /// The most resident memory the process had.
    pub peak_rss: u64,
    /// Its resident memory once its clients were connected, before the
    /// work measured.
    pub ready_rss: u64,
}

impl UnderTest {
    /// Starts a relay where `placement` says, with the benchmark limits.
    pub async fn start(placement: Placement<'_>) -> Result<Self> {
        Self::start_with(placement, Setup::default()).await
    }

    /// Starts a relay where `placement` says, set up as `setup` says.
    pub async fn start_with(placement: Placement<'_>, setup: Setup) -> Result<Self> {
        Ok(match placement {
            Placement::InProcess => {
                let limits = setup.limits;
                let dir = TempDir::new()?;
                Self::InProcess(InProcess::start_with(dir, |c| c.limits = limits).await?)
            }
            Placement::Process(bin) => Self::Process(Child::spawn_with(Serves::Relay(bin), setup)?),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Self::InProcess(relay) => relay.addr(),
            Self::Process(child) => child.addr,
        }
    }

    /// The pin of its certificate.
    pub fn pin(&self) -> Fingerprint {
        match self {
            Self::InProcess(relay) => relay.pin(),
            Self::Process(child) => child.pin,
        }
    }

    /// The process's CPU time so far (0 in this process: not told apart).
    pub fn cpu_seconds(&self) -> Result<f64> {
        match self {
            Self::InProcess(_) => Ok(0.0),
            Self::Process(child) => child.cpu_seconds(),
        }
    }

    /// The most resident memory the process had (0 in this process).
    pub fn peak_rss(&self) -> Result<u64> {
        match self {
            Self::InProcess(_) => Ok(0),
            Self::Process(child) => child.peak_rss_bytes(),
        }
    }

    /// The resident memory of the process now (0 in this process).
    pub fn rss(&self) -> Result<u64> {
        match self {
            Self::InProcess(_) => Ok(0),
            Self::Process(child) => child.rss_bytes(),
        }
    }

    /// Stops it.
    pub async fn stop(self) {
        match self {
            Self::InProcess(relay) => relay.stop().await,
            Self::Process(child) => drop(child),
        }
    }
}
