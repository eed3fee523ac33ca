//! Driving cairn the way a user does: real `cairn-relay` processes (from
//! `support`) and the real `cairn` binary, one home directory per device.
//! Every wait is bounded by `support::WAIT`.
#![allow(dead_code)]

pub mod tamper;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Instant;

use cairn_client::{Client, Options, Passphrase};
use serde_json::Value;
use tempfile::TempDir;

pub use cairn_testkit::cairn_binary;

use crate::support::{RelayProcess, WAIT};

/// The passphrase of every home in these scenarios.
pub const PASSPHRASE: &str = "correct horse battery staple";

/// Where a client reaches a relay: what `cairn init` and `cairn device
/// join` are given.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: String,
    pub fingerprint: String,
}

/// A relay serving a data directory it owns; killed when dropped.
pub struct Relay {
    pub target: Target,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    dir: TempDir,
    process: Option<RelayProcess>,
}

impl Relay {
    /// A relay on a new data directory and a free loopback port.
    pub fn start() -> Self {
        Self::serve(TempDir::new().unwrap(), "127.0.0.1:0".parse().unwrap())
    }

    /// A relay on a new data directory with extra `CAIRN_RELAY_*` (or
    /// `RUST_LOG`) variables.
    pub fn start_with_env(env: &[(&str, &str)]) -> Self {
        let dir = TempDir::new().unwrap();
        let process = RelayProcess::spawn_with_env(dir.path(), "127.0.0.1:0".parse().unwrap(), env);
        Self::around(dir, process)
    }

    /// A relay serving `dir` on `listen`.
    pub fn serve(dir: TempDir, listen: SocketAddr) -> Self {
        let process = RelayProcess::spawn(dir.path(), listen);
        Self::around(dir, process)
    }

    fn around(dir: TempDir, process: RelayProcess) -> Self {
        Self {
            target: Target {
                addr: process.addr.to_string(),
                fingerprint: process.fingerprint.to_string(),
            },
            addr: process.addr,
            admin: process.admin,
            dir,
            process: Some(process),
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the running relay has logged (its stderr).
    pub fn log(&self) -> String {
        self.process
            .as_ref()
            .map(RelayProcess::stderr)
            .unwrap_or_default()
    }

    /// SIGKILL: the clients find the relay unreachable.
    pub fn stop(&mut self) {
        if let Some(process) = self.process.take() {
            process.kill9();
        }
    }

    /// SIGTERM, and a clean exit within the bounded wait.
    pub fn terminate(&mut self) {
        if let Some(process) = self.process.take() {
            let status = process.stop();
            assert!(status.success(), "relay exited with {status}");
        }
    }

    /// Sends the running relay `SIGHUP`.
    pub fn hangup(&self) {
        let pid = self.process.as_ref().expect("running").pid();
        let status = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -HUP {pid}");
    }

    /// `GET http://ADMIN{path}`: the status and the body.
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        cairn_testkit::process::http_get(self.admin, path)
    }

    /// Starts it again on the same address and data directory.
    pub fn restart(&mut self) {
        self.restart_with_env(&[]);
    }

    /// Starts it again on the same address and data directory, with extra
    /// `CAIRN_RELAY_*` variables.
    pub fn restart_with_env(&mut self, env: &[(&str, &str)]) {
        self.restart_as(env);
        assert_eq!(
            self.process.as_ref().map(|p| p.fingerprint.to_string()),
            Some(self.target.fingerprint.clone()),
            "the relay kept its certificate"
        );
    }

    /// Starts it again on the same address and data directory, serving
    /// whatever certificate `env` names now (a renewal with a new key).
    pub fn restart_as(&mut self, env: &[(&str, &str)]) {
        self.stop();
        let process = RelayProcess::spawn_with_env(self.dir.path(), self.addr, env);
        assert_eq!(process.addr, self.addr);
        self.target.fingerprint = process.fingerprint.to_string();
        self.admin = process.admin;
        self.process = Some(process);
    }

    /// `cairn-relay ARGS... --data-dir DIR`, which must succeed; its stdout.
    pub fn operate(&self, args: &[&str]) -> String {
        relay_command(args, self.data_dir())
    }
}

/// `cairn-relay ARGS... --data-dir DIR`, which must succeed; its stdout.
pub fn relay_command(args: &[&str], data_dir: &Path) -> String {
    let output = Command::new(crate::support::relay_binary())
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cairn-relay {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// One cairn home directory: one device.
pub struct Home {
    dir: TempDir,
}

impl Home {
    pub fn new() -> Self {
        Self {
            dir: TempDir::new().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Another home holding a copy of this one's files, as a copy or an
    /// older backup of a home directory would. No `cairn` process may be
    /// using this home meanwhile.
    pub fn copy(&self) -> Self {
        let copy = Self::new();
        for entry in std::fs::read_dir(self.path()).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
            }
        }
        copy
    }

    /// `cairn --home HOME ARGS...`, with the passphrase in the environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut command = Command::new(cairn_binary());
        command
            .arg("--home")
            .arg(self.path())
            .args(args)
            .env_remove("CAIRN_HOME")
            .env("CAIRN_PASSPHRASE", PASSPHRASE)
            .env(cairn_client::INSECURE_FAST_KDF_ENV, "1")
            .env("CAIRN_CONNECT_TIMEOUT", "2s")
            // Tests share two cores with many relays: a change pushes
            // unless the relay is really away.
            .env("CAIRN_PUSH_WAIT", "2s")
            .stdin(Stdio::null());
        command
    }

    /// Like [`Home::cmd`], for when the relay is known to be down: gives
    /// up on reaching it quickly.
    pub fn offline_cmd(&self, args: &[&str]) -> Command {
        let mut command = self.cmd(args);
        command.env("CAIRN_CONNECT_TIMEOUT", "200ms");
        command
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        succeeded(args, &mut self.cmd(args))
    }

    /// Runs a command with `--json` while the relay is down; it must
    /// succeed (the change is queued). Parses its stdout.
    pub fn json_offline(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let stdout = succeeded(&all, &mut self.offline_cmd(&all));
        serde_json::from_str(stdout.trim()).expect("JSON output")
    }

    /// Runs a command with `--json` that must succeed; parses its stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(self.ok(&all).trim()).expect("JSON output")
    }

    /// Runs a command that must fail; returns its exit code and stderr.
    pub fn fails(&self, args: &[&str]) -> (i32, String) {
        let output = self.cmd(args).output().unwrap();
        assert!(
            !output.status.success(),
            "cairn {args:?} should have failed"
        );
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.code().unwrap_or(-1), stderr)
    }

    /// `cairn init` against `target`; returns the user id.
    pub fn init(&self, target: &Target, name: &str) -> String {
        let out = self.create(&["init"], target, name);
        out["user"].as_str().expect("user id").to_owned()
    }

    /// `cairn --json COMMAND... --relay R --fingerprint FP --name NAME`:
    /// what makes a new home (`init`, `device join`).
    pub fn create(&self, command: &[&str], target: &Target, name: &str) -> Value {
        let mut args = command.to_vec();
        args.extend([
            "--relay",
            &target.addr,
            "--fingerprint",
            &target.fingerprint,
            "--name",
            name,
        ]);
        self.json(&args)
    }

    /// The note texts, in order.
    pub fn note_texts(&self) -> Vec<String> {
        texts(&self.json(&["note", "list"]))
    }

    /// The feed texts, in order.
    pub fn feed_texts(&self) -> Vec<String> {
        texts(&self.json(&["feed"]))
    }

    /// This device's id (`cd1…`).
    pub fn device_id(&self) -> String {
        self.json(&["whoami"])["device"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Opens this home with the library, to look at what the device holds.
    /// No `cairn` process may be using the home meanwhile.
    pub fn client(&self) -> Client {
        let passphrase = Passphrase::new(PASSPHRASE.to_owned());
        Client::open(self.path(), &passphrase, Options::default()).unwrap()
    }

    /// Starts `cairn --json watch` and waits until it is live.
    pub fn watch(&self) -> Watch {
        self.watch_with(&[])
    }

    /// Starts `cairn --json watch ARGS...` and waits until it is live.
    pub fn watch_with(&self, args: &[&str]) -> Watch {
        let mut command = vec!["--json", "watch"];
        command.extend(args);
        let mut child = self
            .cmd(&command)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut watch = Watch {
            lines: line_reader(child.stdout.take().unwrap()),
            status: line_reader(child.stderr.take().unwrap()),
            child,
            live: 0,
        };
        watch.wait_live(1);
        watch
    }
}

/// Runs `command`, which must succeed; returns its stdout.
fn succeeded(args: &[&str], command: &mut Command) -> String {
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "cairn {args:?} failed ({:?}): {}\n{stdout}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The `text` fields of a JSON array.
pub fn texts(value: &Value) -> Vec<String> {
    value
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|v| v["text"].as_str().expect("text").to_owned())
        .collect()
}

/// Links `new` to the user of `linked` the way the README says: join,
/// approve, sync. The new device does not get the root key.
pub fn link(target: &Target, linked: &Home, new: &Home, name: &str) -> Value {
    link_with(target, linked, new, name, &[])
}

/// [`link`], with extra `device approve` arguments (`--with-root`).
pub fn link_with(
    target: &Target,
    linked: &Home,
    new: &Home,
    name: &str,
    approve: &[&str],
) -> Value {
    let user = linked.json(&["whoami"])["user"]
        .as_str()
        .expect("user id")
        .to_owned();
    let joined = new.create(&["device", "join", "--user", &user], target, name);
    let code = joined["code"].as_str().unwrap().to_owned();
    let (before, message) = new.fails(&["sync"]);
    assert_eq!(before, 10, "not approved yet: {message}");
    assert!(message.contains("not approved yet"), "{message}");
    let mut args = vec!["device", "approve", code.as_str()];
    args.extend(approve);
    let approved = linked.json(&args);
    let report = new.json(&["sync"]);
    assert_eq!(report["linked"], true);
    assert_eq!(
        report["confirmation"], approved["confirmation"],
        "both devices show the same confirmation"
    );
    report
}

/// Lines of a child's output, read on a thread.
pub fn line_reader<R: std::io::Read + Send + 'static>(output: R) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// A running `cairn --json watch`; killed when dropped.
pub struct Watch {
    child: Child,
    lines: Receiver<String>,
    status: Receiver<String>,
    /// How many times it said it was live (once per connection).
    live: usize,
}

impl Watch {
    /// Waits until it has gone live `times` times in all.
    pub fn wait_live(&mut self, times: usize) {
        let deadline = Instant::now() + WAIT;
        while self.live < times {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .status
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("watch went live {} times, not {times}", self.live));
            if line.contains("watching") {
                self.live += 1;
            }
        }
    }

    /// Waits until it writes a line containing `needle` on stderr.
    pub fn says(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .status
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("watch never said {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// Every event printed until one satisfies `last` (included).
    pub fn events_until(&self, last: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        let mut events = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("watch printed only {events:?}"));
            let event: Value = serde_json::from_str(&line).unwrap();
            let done = last(&event);
            events.push(event);
            if done {
                return events;
            }
        }
    }
}

impl Watch {
    /// Waits (bounded) for it to exit by itself; its exit code and the
    /// last line it wrote on stderr.
    pub fn exited(&mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut last = String::new();
                let left = deadline.saturating_duration_since(Instant::now());
                while let Ok(line) = self.status.recv_timeout(left) {
                    last = line;
                }
                return (status.code(), last);
            }
            assert!(Instant::now() < deadline, "watch did not exit");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
