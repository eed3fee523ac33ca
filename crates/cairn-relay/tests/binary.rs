//! The `cairn-relay` binary as an operator runs it: serve on defaults in a
//! data directory, health and metrics, graceful stop on SIGTERM, online
//! backup, restore, export and import, check and fingerprint.

// Test code: a panic is the failure report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::Path;

use cairn_testkit::process::RelayOptions;
use cairn_testkit::raw::connect;
use cairn_testkit::{RelayProcess, relay_binary};

use cairn_wire::*;
use support::*;
use tempfile::TempDir;

/// A relay on `data_dir` with the relay's own defaults.
fn spawn(data_dir: &Path) -> RelayProcess {
    RelayOptions::defaults().spawn(data_dir)
}

/// SIGTERM, and a clean exit.
fn terminate(relay: RelayProcess) {
    let status = relay.stop();
    assert!(status.success(), "relay exited with {status}");
}

fn relay_cmd(args: &[&str], data_dir: &Path) -> assert_cmd::assert::Assert {
    assert_cmd::Command::new(relay_binary())
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .assert()
}

fn stdout(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(assert.get_output().stdout.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_an_empty_data_dir_then_stop_gracefully_on_sigterm() {
    let dir = TempDir::new().unwrap();
    let relay = spawn(dir.path());
    assert_eq!(relay.admin_get("/healthz"), (200, "ok\n".to_owned()));
    // The ready file says where the relay is, and nothing secret: not the
    // operator token, which stays in admin.json (mode 0600).
    let admin: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("admin.json")).unwrap())
            .unwrap();
    let ready = relay.ready_text();
    assert!(ready.contains(&relay.fingerprint.to_string()), "{ready}");
    assert!(!ready.contains(admin["token"].as_str().unwrap()), "{ready}");
    let alice = User::new(1);
    let device = alice.device(2);
    let c = connect(&relay, &device).await;
    append_one(&c, device.envelope(1, Scope::Private, b"hello")).await;
    let (status, metrics) = relay.admin_get("/metrics");
    assert_eq!(status, 200);
    assert!(
        Metrics::from_text(metrics.clone()).value("cairn_envelopes_stored_total") >= 1.0,
        "{metrics}"
    );
    assert!(
        !metrics.contains(&alice.id.to_text()),
        "metrics must not name users"
    );
    // The fingerprint subcommand prints exactly what clients pin.
    let printed = stdout(&relay_cmd(&["fingerprint"], dir.path()).success());
    assert_eq!(printed.trim(), relay.fingerprint.to_string());
    terminate(relay);
    // After a clean stop, the database checks out.
    let check = stdout(&relay_cmd(&["check"], dir.path()).success());
    assert!(check.contains("database is consistent"), "{check}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_backup_restores_to_the_same_log_and_export_import_round_trips() {
    let dir = TempDir::new().unwrap();
    let relay = spawn(dir.path());
    let (alice, bob) = (User::new(1), User::new(4));
    let (laptop, phone, bob_device) = (alice.device(2), alice.device(3), bob.device(5));
    let a = connect(&relay, &laptop).await;
    request(&a, Request::RegisterDevice(phone.certificate.clone())).await;
    request(&a, Request::GrantFriend(alice.grant(bob.id))).await;
    let b = connect(&relay, &bob_device).await;
    request(&b, Request::GrantFriend(bob.grant(alice.id))).await;
    for seq in 1..=20 {
        let scope = [Scope::Private, Scope::Friends, Scope::Direct(bob.id)]
            [usize::try_from(seq % 3).unwrap()];
        append_one(
            &a,
            laptop.envelope(seq, scope, format!("alice {seq}").as_bytes()),
        )
        .await;
    }
    append_one(&b, bob_device.envelope(1, Scope::Friends, b"bob")).await;
    request(&a, Request::RevokeDevice(alice.revoke(phone.id))).await;

    // Online backup while the relay serves, through its admin listener.
    let backup_dir = TempDir::new().unwrap();
    let backup = backup_dir.path().join("relay.backup");
    relay_cmd(&["backup", "--out", backup.to_str().unwrap()], dir.path()).success();
    let before = snapshot(&a, &alice, &bob).await;
    drop((a, b));
    terminate(relay);

    // Restore into a new data directory and serve it: the same log.
    let restored = TempDir::new().unwrap();
    relay_cmd(
        &["restore", "--from", backup.to_str().unwrap()],
        restored.path(),
    )
    .success();
    std::fs::copy(
        dir.path().join("relay-cert.pem"),
        restored.path().join("relay-cert.pem"),
    )
    .unwrap();
    std::fs::copy(
        dir.path().join("relay-key.pem"),
        restored.path().join("relay-key.pem"),
    )
    .unwrap();
    let relay = spawn(restored.path());
    let a = connect(&relay, &laptop).await;
    assert_eq!(snapshot(&a, &alice, &bob).await, before);
    // The revoked device stays revoked.
    let refused = cairn_client::Connection::open(
        relay.addr,
        relay.fingerprint,
        &phone.key,
        phone.certificate.clone(),
        None,
    )
    .await;
    assert!(refused.is_err());
    drop(a);
    terminate(relay);

    // Export, import into an empty directory, export again: identical.
    let first = backup_dir.path().join("first.export");
    relay_cmd(
        &["export", "--out", first.to_str().unwrap()],
        restored.path(),
    )
    .success();
    let imported = TempDir::new().unwrap();
    let out = stdout(
        &relay_cmd(
            &["import", "--from", first.to_str().unwrap()],
            imported.path(),
        )
        .success(),
    );
    assert!(
        out.contains("imported 6 statements and 21 envelopes"),
        "{out}"
    );
    let second = backup_dir.path().join("second.export");
    relay_cmd(
        &["export", "--out", second.to_str().unwrap()],
        imported.path(),
    )
    .success();
    assert_eq!(
        std::fs::read(&first).unwrap(),
        std::fs::read(&second).unwrap()
    );
    relay_cmd(&["check"], imported.path()).success();
}

/// After expiry and a user's removal, an export carries what is gone
/// (tombstones, floors, the removal) and an import reproduces it: the
/// second export is identical and both databases check clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_import_carry_what_expired_and_who_was_removed() {
    let dir = TempDir::new().unwrap();
    let relay = spawn(dir.path());
    let (alice, bob) = (User::new(1), User::new(4));
    let (laptop, bob_device) = (alice.device(2), bob.device(5));
    let a = connect(&relay, &laptop).await;
    let b = connect(&relay, &bob_device).await;
    request(&a, Request::GrantFriend(alice.grant(bob.id))).await;
    request(&b, Request::GrantFriend(bob.grant(alice.id))).await;
    for seq in 1..=12 {
        let scope = [Scope::Private, Scope::Friends, Scope::Direct(bob.id)]
            [usize::try_from(seq % 3).unwrap()];
        append_one(
            &a,
            laptop.envelope(seq, scope, format!("alice {seq}").as_bytes()),
        )
        .await;
    }
    append_one(&b, bob_device.envelope(1, Scope::Friends, b"bob")).await;
    drop((a, b));
    terminate(relay);

    // The test kit dates envelopes in 1970: a day of retention expires
    // every friends and direct envelope.
    let compacted = assert_cmd::Command::new(relay_binary())
        .args(["compact", "--data-dir"])
        .arg(dir.path())
        .env("CAIRN_RELAY_RETENTION__FRIENDS", "1d")
        .env("CAIRN_RELAY_RETENTION__DIRECT", "1d")
        .assert()
        .success();
    assert!(
        stdout(&compacted).contains("expired 9 envelopes"),
        "{}",
        stdout(&compacted)
    );
    let bob_text = bob.id.to_text();
    relay_cmd(&["user", "remove", &bob_text], dir.path()).success();
    relay_cmd(&["check"], dir.path()).success();

    let out = TempDir::new().unwrap();
    let first = out.path().join("first.export");
    relay_cmd(&["export", "--out", first.to_str().unwrap()], dir.path()).success();
    let text = std::fs::read_to_string(&first).unwrap();
    assert_eq!(text.matches(r#""type":"expired""#).count(), 8, "{text}");
    assert!(text.contains(r#""type":"removed""#) && text.contains(r#""type":"floor""#));
    let imported = TempDir::new().unwrap();
    relay_cmd(
        &["import", "--from", first.to_str().unwrap()],
        imported.path(),
    )
    .success();
    relay_cmd(&["check"], imported.path()).success();
    let second = out.path().join("second.export");
    relay_cmd(
        &["export", "--out", second.to_str().unwrap()],
        imported.path(),
    )
    .success();
    assert_eq!(std::fs::read_to_string(&second).unwrap(), text);

    // Tombstones carry no signature, so an import checks each against the
    // registry, positions and seqs: one moved to another seq is refused,
    // and nothing is left behind.
    let tampered = out.path().join("tampered.export");
    std::fs::write(&tampered, text.replacen(r#""seq":1,"#, r#""seq":2,"#, 1)).unwrap();
    let refused = TempDir::new().unwrap();
    let failed = relay_cmd(
        &["import", "--from", tampered.to_str().unwrap()],
        refused.path(),
    )
    .failure();
    let said = String::from_utf8_lossy(&failed.get_output().stderr).into_owned();
    assert!(
        said.contains("import inconsistent") && said.contains("seq"),
        "{said}"
    );
    assert!(!refused.path().join("relay.redb").exists());
}

#[test]
fn import_refuses_a_truncated_or_tampered_export() {
    let dir = TempDir::new().unwrap();
    let header = r#"{"type":"header","format":"cairn-relay-export","version":1}"#;
    let truncated = dir.path().join("truncated.export");
    std::fs::write(&truncated, format!("{header}\n")).unwrap();
    let target = TempDir::new().unwrap();
    let err = relay_cmd(
        &["import", "--from", truncated.to_str().unwrap()],
        target.path(),
    )
    .failure();
    assert!(String::from_utf8_lossy(&err.get_output().stderr).contains("truncated"));
    let tampered = dir.path().join("tampered.export");
    let device = User::new(1).device(2);
    let mut bytes = device.envelope(1, Scope::Private, b"x").encode();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let line = format!(
        r#"{{"type":"envelope","position":1,"hex":"{}"}}"#,
        hex::encode(bytes)
    );
    std::fs::write(&tampered, format!("{header}\n{line}\n")).unwrap();
    let target = TempDir::new().unwrap();
    let err = relay_cmd(
        &["import", "--from", tampered.to_str().unwrap()],
        target.path(),
    )
    .failure();
    assert!(
        String::from_utf8_lossy(&err.get_output().stderr).contains("signature"),
        "{err:?}"
    );
    assert!(
        !target.path().join("relay.redb").exists(),
        "a failed import leaves no database behind"
    );
}

/// Every readable stream's ids in order, as seen by `connection`.
async fn snapshot(
    connection: &cairn_client::Connection,
    alice: &User,
    bob: &User,
) -> Vec<(StreamId, Vec<(u64, EnvelopeId)>)> {
    let streams = [
        StreamId::new(alice.id, Scope::Private),
        StreamId::new(alice.id, Scope::Friends),
        StreamId::new(alice.id, Scope::Direct(bob.id)),
    ];
    let mut out = Vec::new();
    for stream in streams {
        match read(connection, stream, 0).await {
            Response::Page(page) => out.push((
                stream,
                page.entries
                    .iter()
                    .map(|e| (e.position, e.envelope.id()))
                    .collect(),
            )),
            other => panic!("{other:?}"),
        }
    }
    out
}

#[test]
fn json_logs_are_one_object_per_line_with_the_fingerprint() {
    let dir = TempDir::new().unwrap();
    let relay = RelayOptions::defaults()
        .arg("--log-format")
        .arg("json")
        .spawn(dir.path());
    let log = relay.stderr();
    let first = log.lines().next().expect("a log line before it is ready");
    terminate(relay);
    let line: serde_json::Value = serde_json::from_str(first).unwrap();
    assert_eq!(line["level"], "INFO", "{line}");
    assert!(
        line["fields"]["fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"),
        "{line}"
    );
}

/// Logs written to a file carry no colour codes, and in JSON mode what
/// `serve` prints on stdout is JSON too.
#[test]
fn log_files_have_no_colour_and_json_mode_prints_only_json() {
    let dir = TempDir::new().unwrap();
    let relay = RelayOptions::defaults().spawn(dir.path());
    let log = relay.stderr();
    terminate(relay);
    assert!(log.contains("fingerprint"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log file: {log:?}"
    );

    let json_dir = TempDir::new().unwrap();
    let mut child = std::process::Command::new(relay_binary())
        .args(["serve", "--log-format", "json", "--listen", "127.0.0.1:0"])
        .args(["--admin-listen", "127.0.0.1:0", "--data-dir"])
        .arg(json_dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let first = std::io::BufRead::lines(std::io::BufReader::new(stdout))
        .next()
        .unwrap()
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let announced: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert!(
        announced["fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"),
        "{first}"
    );
    assert!(announced["listening"].is_string(), "{first}");
}

/// A restore from something that is not a backup fails and leaves nothing
/// behind in the data directory.
#[test]
fn a_failed_restore_leaves_nothing_behind() {
    let dir = TempDir::new().unwrap();
    let junk = dir.path().join("not-a-backup");
    std::fs::write(&junk, vec![7u8; 64 * 1024]).unwrap();
    let data = dir.path().join("data");
    let output = std::process::Command::new(relay_binary())
        .args(["restore", "--from"])
        .arg(&junk)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a usable backup"), "{stderr}");
    assert_eq!(
        stderr.matches("magic number").count(),
        1,
        "each cause once: {stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name.to_string_lossy().contains("restoring"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// The test kit reads the ready file the relay writes, field for field.
#[test]
fn the_ready_file_is_what_the_test_kit_reads() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("ready.json");
    let written = cairn_relay::ready::Ready {
        listen: "127.0.0.1:7443".parse().unwrap(),
        admin: "127.0.0.1:7440".parse().unwrap(),
        metrics: Some("127.0.0.1:9090".parse().unwrap()),
        fingerprint: Fingerprint::from_bytes([3; 32]).to_string(),
        pid: 7,
    };
    written.write(&path).unwrap();
    let read =
        cairn_testkit::process::Ready::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(read.listen, written.listen);
    assert_eq!(read.admin, Some(written.admin));
    assert_eq!(read.metrics, written.metrics);
    assert_eq!(read.fingerprint.to_string(), written.fingerprint);
    assert_eq!(read.pid, written.pid);
}

/// `cairn-relay fingerprint | head -1` with the reader already gone: the
/// command ends quietly with success instead of panicking on the closed
/// pipe.
#[test]
fn a_reader_that_closes_the_pipe_early_is_not_a_failure() {
    let dir = TempDir::new().unwrap();
    let mut command = std::process::Command::new(relay_binary());
    command.args(["fingerprint", "--data-dir"]).arg(dir.path());
    cairn_testkit::process::assert_quiet_when_reader_closes(command);
}
