//! Shared by the CLI tests: a real `cairn-relay` process on loopback and
//! a way to run the real `cairn` binary against it. Every wait is bounded.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin;
use serde_json::Value;
use tempfile::TempDir;

/// How long a relay may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The `cairn-relay` binary, built once per test binary.
pub fn relay_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        escargot::CargoBuild::new()
            .package("cairn-relay")
            .bin("cairn-relay")
            .current_release()
            .current_target()
            .run()
            .expect("building cairn-relay")
            .path()
            .to_owned()
    })
}

/// A relay process; killed when dropped.
pub struct Relay {
    pub addr: String,
    pub fingerprint: String,
    data: TempDir,
    child: Option<Child>,
}

impl Relay {
    /// Starts a relay on a free loopback port.
    pub fn start() -> Self {
        let data = tempfile::tempdir().expect("tempdir");
        let (child, addr, fingerprint) = spawn(data.path(), "127.0.0.1:0");
        Self {
            addr,
            fingerprint,
            data,
            child: Some(child),
        }
    }

    /// Stops the relay (the clients see it unreachable).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same address and data.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let (mut child, addr, fingerprint) = spawn(self.data.path(), &self.addr);
            if addr == self.addr {
                assert_eq!(
                    fingerprint, self.fingerprint,
                    "the relay kept its certificate"
                );
                self.child = Some(child);
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(
                Instant::now() < deadline,
                "relay did not restart on {}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Spawns `cairn-relay serve` and reads its address and fingerprint.
fn spawn(data: &Path, listen: &str) -> (Child, String, String) {
    let mut child = Command::new(relay_bin())
        .args(["serve", "--data-dir"])
        .arg(data)
        .args(["--listen", listen, "--admin-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning cairn-relay");
    let lines = line_reader(child.stdout.take().expect("relay stdout"));
    let first = next_line(&lines, START_TIMEOUT).expect("relay start line");
    let addr = first
        .split_whitespace()
        .nth(4)
        .expect("address in the start line")
        .to_owned();
    let second = next_line(&lines, START_TIMEOUT).expect("fingerprint line");
    let fingerprint = second
        .strip_prefix("fingerprint ")
        .expect("fingerprint line")
        .to_owned();
    (child, addr, fingerprint)
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

/// The next line within `timeout`.
pub fn next_line(lines: &Receiver<String>, timeout: Duration) -> Option<String> {
    lines.recv_timeout(timeout).ok()
}

/// One cairn home directory (one device).
pub struct Home {
    dir: TempDir,
}

impl Home {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `cairn --home HOME ARGS...`, with the passphrase in the environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut command = Command::new(cargo_bin("cairn"));
        command
            .arg("--home")
            .arg(self.path())
            .args(args)
            .env_remove("CAIRN_HOME")
            .env("CAIRN_PASSPHRASE", "correct horse battery staple")
            .env("CAIRN_INSECURE_FAST_KDF", "1")
            .env("CAIRN_CONNECT_TIMEOUT", "2s")
            .stdin(Stdio::null());
        command
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.cmd(args).output().expect("running cairn");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "cairn {args:?} failed ({:?}): {stderr}\n{stdout}",
            output.status.code()
        );
        stdout
    }

    /// Runs a command with `--json` that must succeed; parses its stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let stdout = self.ok(&all);
        serde_json::from_str(stdout.trim()).expect("JSON output")
    }

    /// Runs a command that must fail; returns its exit code and stderr.
    pub fn fails(&self, args: &[&str]) -> (i32, String) {
        let output = self.cmd(args).output().expect("running cairn");
        assert!(
            !output.status.success(),
            "cairn {args:?} should have failed"
        );
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.code().unwrap_or(-1), stderr)
    }

    /// `cairn init` against `relay`; returns the user id.
    pub fn init(&self, relay: &Relay, name: &str) -> String {
        let out = self.json(&[
            "init",
            "--relay",
            &relay.addr,
            "--fingerprint",
            &relay.fingerprint,
            "--name",
            name,
        ]);
        out["user"].as_str().expect("user id").to_owned()
    }

    /// The note texts, in order.
    pub fn note_texts(&self) -> Vec<String> {
        texts(&self.json(&["note", "list"]))
    }

    /// The feed texts, in order.
    pub fn feed_texts(&self) -> Vec<String> {
        texts(&self.json(&["feed"]))
    }

    /// Spawns a long-running command (e.g. `watch`) with piped output.
    pub fn spawn(&self, args: &[&str]) -> (Child, Receiver<String>, ChildStderr) {
        let mut child = self
            .cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning cairn");
        let stdout: ChildStdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        (child, line_reader(stdout), stderr)
    }
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

/// Links `phone` to the user of `laptop` the way the README says.
pub fn link(relay: &Relay, laptop: &Home, phone: &Home) {
    let joined = phone.json(&[
        "device",
        "join",
        "--relay",
        &relay.addr,
        "--fingerprint",
        &relay.fingerprint,
        "--name",
        "phone",
    ]);
    let code = joined["code"].as_str().unwrap().to_owned();
    let (code_before, message) = phone.fails(&["sync"]);
    assert_eq!(code_before, 10, "not approved yet: {message}");
    assert!(message.contains("not approved yet"), "{message}");
    laptop.ok(&["device", "approve", &code]);
    let report = phone.json(&["sync"]);
    assert_eq!(report["linked"], true);
}
