//! The workspace's binaries, and server processes that announce where
//! they listen through a ready file (`cairn-relay serve --ready-file`,
//! `spec/relay.md`) rather than through log lines.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cairn_wire::Fingerprint;
use tempfile::TempDir;

use crate::WAIT;

/// The `cairn-relay` binary of this workspace, built (release) once per
/// test binary.
pub fn relay_binary() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| build("cairn-relay", "cairn-relay"))
}

/// The `cairn` binary of this workspace, built (release) once per test
/// binary.
pub fn cairn_binary() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| build("cairn-cli", "cairn"))
}

fn build(package: &str, bin: &str) -> PathBuf {
    escargot::CargoBuild::new()
        .package(package)
        .bin(bin)
        .current_release()
        .current_target()
        .run()
        .unwrap_or_else(|e| panic!("building {bin}: {e}"))
        .path()
        .to_owned()
}

/// What a server wrote in its ready file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// The QUIC address.
    pub listen: SocketAddr,
    /// The admin HTTP address, for a relay.
    pub admin: Option<SocketAddr>,
    /// The metrics-only HTTP address, if configured.
    pub metrics: Option<SocketAddr>,
    /// The certificate fingerprint.
    pub fingerprint: Fingerprint,
    /// The server's process id.
    pub pid: u32,
}

impl Ready {
    /// Parses a ready file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let json: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let addr = |field: &str| -> Result<Option<SocketAddr>, String> {
            match &json[field] {
                serde_json::Value::Null => Ok(None),
                value => value
                    .as_str()
                    .and_then(|text| text.parse().ok())
                    .map(Some)
                    .ok_or_else(|| format!("{field} is not an address: {value}")),
            }
        };
        Ok(Self {
            listen: addr("listen")?.ok_or("no listen address")?,
            admin: addr("admin")?,
            metrics: addr("metrics")?,
            fingerprint: json["fingerprint"]
                .as_str()
                .and_then(|text| text.parse().ok())
                .ok_or("no fingerprint")?,
            pid: json["pid"]
                .as_u64()
                .and_then(|pid| u32::try_from(pid).ok())
                .ok_or("no pid")?,
        })
    }
}

/// A server process started with `--ready-file` in a run directory of its
/// own (which also collects its stderr); killed when dropped.
#[derive(Debug)]
pub struct Announced {
    /// The process.
    pub child: Child,
    /// What it announced.
    pub ready: Ready,
    run_dir: TempDir,
}

impl Announced {
    /// Runs `command` with `--ready-file PATH` appended and waits (up to
    /// [`WAIT`]) for the file; if the process exits first, or the wait
    /// ends, the error holds its stderr.
    pub fn spawn(mut command: Command) -> Result<Self, String> {
        let run_dir = TempDir::new().map_err(|e| e.to_string())?;
        let ready_file = run_dir.path().join("ready.json");
        let stderr =
            std::fs::File::create(run_dir.path().join("stderr.log")).map_err(|e| e.to_string())?;
        command
            .arg("--ready-file")
            .arg(&ready_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = command.spawn().map_err(|e| format!("{command:?}: {e}"))?;
        let mut announced = Self {
            child,
            ready: Ready {
                listen: SocketAddr::from(([0, 0, 0, 0], 0)),
                admin: None,
                metrics: None,
                fingerprint: Fingerprint::from_bytes([0; 32]),
                pid: 0,
            },
            run_dir,
        };
        announced.ready = announced.wait_ready(&ready_file)?;
        Ok(announced)
    }

    fn wait_ready(&mut self, path: &Path) -> Result<Ready, String> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(text) = std::fs::read_to_string(path) {
                return Ready::parse(&text);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}: {}", self.stderr()));
            }
            if Instant::now() > deadline {
                return Err(format!("not ready within {WAIT:?}: {}", self.stderr()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The ready file as the process wrote it.
    pub fn ready_text(&self) -> String {
        std::fs::read_to_string(self.run_dir.path().join("ready.json")).unwrap_or_default()
    }

    /// What the process has written to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.run_dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// SIGTERM, then waits (up to [`WAIT`]) for the exit; its status.
    pub fn terminate(&mut self) -> ExitStatus {
        let signalled = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(signalled.success(), "could not signal {}", self.child.id());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the process") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "no exit within {WAIT:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Announced {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The configuration variables every test relay gets unless it asks for
/// the defaults: a test connects many devices from one address, so the
/// per-address limits are lifted (they are tested where they are the
/// point).
pub const GENEROUS_LIMITS: [(&str, &str); 7] = [
    ("CAIRN_RELAY_LIMITS__REQUESTS_PER_SECOND_PER_IP", "1000000"),
    ("CAIRN_RELAY_LIMITS__REQUEST_BURST_PER_IP", "1000000"),
    ("CAIRN_RELAY_LIMITS__CONNECTIONS_PER_IP", "1000"),
    (
        "CAIRN_RELAY_LIMITS__HANDSHAKES_PER_SECOND_PER_IP",
        "1000000",
    ),
    ("CAIRN_RELAY_LIMITS__HANDSHAKE_BURST_PER_IP", "1000000"),
    (
        "CAIRN_RELAY_LIMITS__REGISTRATIONS_PER_HOUR_PER_IP",
        "1000000",
    ),
    ("CAIRN_RELAY_LIMITS__REGISTRATION_BURST_PER_IP", "1000000"),
];

/// How to start a `cairn-relay serve` process.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    binary: PathBuf,
    listen: SocketAddr,
    env: Vec<(OsString, OsString)>,
    args: Vec<OsString>,
}

impl Default for RelayOptions {
    /// This workspace's relay on any loopback port, with
    /// [`GENEROUS_LIMITS`].
    fn default() -> Self {
        Self {
            binary: relay_binary().to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            env: GENEROUS_LIMITS
                .iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            args: Vec::new(),
        }
    }
}

impl RelayOptions {
    /// The relay's own defaults for everything but the addresses.
    pub fn defaults() -> Self {
        Self {
            env: Vec::new(),
            ..Self::default()
        }
    }

    /// Another `cairn-relay` binary.
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = path.into();
        self
    }

    /// The QUIC address to listen on.
    pub fn listen(mut self, listen: SocketAddr) -> Self {
        self.listen = listen;
        self
    }

    /// A configuration variable (later ones win).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// An argument before `serve` (e.g. `--config FILE`).
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Starts the relay on `data_dir`.
    pub fn spawn(&self, data_dir: &Path) -> RelayProcess {
        self.try_spawn(data_dir)
            .unwrap_or_else(|e| panic!("cairn-relay serve: {e}"))
    }

    /// Starts the relay on `data_dir`, or says why it did not start.
    pub fn try_spawn(&self, data_dir: &Path) -> Result<RelayProcess, String> {
        let mut command = Command::new(&self.binary);
        command
            .args(&self.args)
            .arg("serve")
            .arg("--listen")
            .arg(self.listen.to_string())
            .args(["--admin-listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        let process = Announced::spawn(command)?;
        let admin = process
            .ready
            .admin
            .ok_or("the relay announced no admin address")?;
        Ok(RelayProcess {
            addr: process.ready.listen,
            admin,
            metrics: process.ready.metrics,
            fingerprint: process.ready.fingerprint,
            data_dir: data_dir.to_owned(),
            process,
        })
    }
}

/// A `cairn-relay serve` process; killed when dropped.
#[derive(Debug)]
pub struct RelayProcess {
    /// Its QUIC address.
    pub addr: SocketAddr,
    /// Its admin HTTP address.
    pub admin: SocketAddr,
    /// Its metrics-only address, if configured.
    pub metrics: Option<SocketAddr>,
    /// The fingerprint clients pin.
    pub fingerprint: Fingerprint,
    /// The data directory it serves.
    pub data_dir: PathBuf,
    process: Announced,
}

impl RelayProcess {
    /// A relay on `data_dir` listening on `listen` (port 0 for any), with
    /// [`GENEROUS_LIMITS`].
    pub fn spawn(data_dir: &Path, listen: SocketAddr) -> Self {
        RelayOptions::default().listen(listen).spawn(data_dir)
    }

    /// Like [`RelayProcess::spawn`], with extra `CAIRN_RELAY_*` variables.
    pub fn spawn_with_env(data_dir: &Path, listen: SocketAddr, env: &[(&str, &str)]) -> Self {
        env.iter()
            .fold(RelayOptions::default().listen(listen), |options, (k, v)| {
                options.env(k, v)
            })
            .spawn(data_dir)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.process.child.id()
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.process.child.try_wait(), Ok(None))
    }

    /// Its ready file, as it wrote it.
    pub fn ready_text(&self) -> String {
        self.process.ready_text()
    }

    /// What it has written to stderr (its log).
    pub fn stderr(&self) -> String {
        self.process.stderr()
    }

    /// SIGTERM, and a bounded wait for the graceful exit; its status.
    pub fn stop(mut self) -> ExitStatus {
        self.process.terminate()
    }

    /// SIGKILL, and reap.
    pub fn kill9(mut self) {
        let _ = self.process.child.kill();
        let _ = self.process.child.wait();
    }

    /// `GET` on its admin listener: the status and the body.
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        http_get(self.admin, path)
    }

    /// Its resident memory now, in bytes.
    pub fn resident_bytes(&self) -> Option<u64> {
        resident_bytes(self.pid())
    }
}

/// `GET http://ADDR{path}` (bounded by [`WAIT`]): the status, whatever it
/// is, and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut response = ureq::get(format!("http://{addr}{path}"))
        .config()
        .http_status_as_error(false)
        .timeout_global(Some(WAIT))
        .build()
        .call()
        .unwrap_or_else(|e| panic!("GET {addr}{path}: {e}"));
    let body = response.body_mut().read_to_string().expect("a body");
    (response.status().as_u16(), body)
}

/// Runs `command` with its stdout reader closed at once (`| head` that has
/// read enough): it must end quietly with success, not panic on the
/// closed pipe.
pub fn assert_quiet_when_reader_closes(mut command: Command) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the command");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("waiting for the command");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{command:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{command:?}: {stderr}");
}

/// A loopback UDP port that was free a moment ago.
pub fn free_udp_port() -> SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .expect("a free loopback port")
}

/// The resident memory of a process, where the platform tells.
pub fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}
