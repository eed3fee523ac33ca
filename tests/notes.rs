//! Private multi-device notes through the real `cairn` and `cairn-relay`
//! binaries: three devices of one user edit offline, sync, and agree on
//! one folded state; a device linked later gets the whole history.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod cli;
mod support;

use cli::{Home, Relay, link, link_with};
use serde_json::Value;

/// The id of the note whose text is `text`, as `note list` shows it.
fn note_id(home: &Home, text: &str) -> String {
    let notes = home.json(&["note", "list"]);
    let note = notes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["text"] == text)
        .unwrap_or_else(|| panic!("no note {text:?} in {notes}"));
    note["id"].as_str().unwrap().to_owned()
}

/// Runs a note command while the relay is down: it must be queued.
fn offline(home: &Home, args: &[&str]) {
    let out = home.json_offline(args);
    assert_eq!(out["queued"], true, "{args:?} while the relay is down");
}

#[test]
fn three_devices_edit_offline_and_converge_then_a_new_device_gets_everything() {
    let mut relay = Relay::start();
    let (laptop, phone, tablet) = (Home::new(), Home::new(), Home::new());
    let user = laptop.init(&relay.target, "laptop");
    for text in ["groceries", "call mum", "book flights"] {
        assert_eq!(laptop.json(&["note", "add", text])["queued"], false);
    }
    link(&relay.target, &laptop, &phone, "phone");
    link_with(&relay.target, &laptop, &tablet, "tablet", &["--with-root"]);
    for device in [&phone, &tablet] {
        assert_eq!(device.json(&["whoami"])["user"], user.as_str());
        assert_eq!(
            device.note_texts(),
            ["groceries", "call mum", "book flights"]
        );
    }
    let groceries = note_id(&laptop, "groceries");
    let call_mum = note_id(&laptop, "call mum");
    let flights = note_id(&laptop, "book flights");

    relay.stop();
    let failed = phone.offline_cmd(&["sync"]).output().unwrap();
    assert_eq!(failed.status.code(), Some(4), "unreachable relay");
    let message = String::from_utf8_lossy(&failed.stderr);
    assert!(message.contains("cannot reach the relay"), "{message}");
    // The phone goes first, so every laptop change below is later in
    // author order: the laptop's edit of the groceries wins, and its edit
    // of the flights note comes after the phone removed it (removal is
    // final).
    offline(&phone, &["note", "add", "phone offline"]);
    offline(&phone, &["note", "rm", &flights]);
    offline(
        &phone,
        &["note", "edit", &groceries[..12], "groceries: eggs"],
    );
    offline(
        &laptop,
        &["note", "edit", &flights, "book flights to Lisbon"],
    );
    offline(
        &laptop,
        &["note", "edit", &groceries, "groceries: bread, milk"],
    );
    offline(&laptop, &["note", "add", "laptop offline"]);
    offline(&laptop, &["note", "rm", &call_mum]);
    assert_eq!(
        phone.note_texts(),
        ["groceries: eggs", "call mum", "phone offline"]
    );
    assert_eq!(
        laptop.note_texts(),
        [
            "groceries: bread, milk",
            "book flights to Lisbon",
            "laptop offline"
        ]
    );

    relay.restart();
    for device in [&laptop, &phone, &tablet, &laptop] {
        device.ok(&["sync"]);
    }
    let folded = laptop.json(&["note", "list"]);
    assert_eq!(
        cli::texts(&folded),
        ["groceries: bread, milk", "phone offline", "laptop offline"]
    );
    let groceries_note = &folded[0];
    assert_eq!(groceries_note["id"], groceries.as_str());
    assert!(groceries_note["edited"].as_u64().unwrap() > 0);
    assert_eq!(folded[1]["edited"], Value::Null);
    assert_eq!(phone.json(&["note", "list"]), folded, "phone");
    assert_eq!(tablet.json(&["note", "list"]), folded, "tablet");

    let devices = laptop.json(&["device", "list"]);
    let devices = devices.as_array().unwrap();
    assert_eq!(devices.len(), 3);
    assert!(devices.iter().all(|d| d["revoked"] == false));

    let desktop = Home::new();
    link(&relay.target, &tablet, &desktop, "desktop");
    assert_eq!(
        desktop.json(&["note", "list"]),
        folded,
        "a device linked later replays the whole history"
    );
}

#[test]
fn a_device_linked_later_and_a_revoked_one() {
    let relay = Relay::start();
    let (laptop, phone, tablet) = (Home::new(), Home::new(), Home::new());
    laptop.init(&relay.target, "laptop");
    link(&relay.target, &laptop, &phone, "phone");
    let phone_device = phone.device_id();
    let newest_private_key = |home: &Home| {
        let keys = home.client().own_audience_keys().unwrap();
        let newest = keys.into_iter().max_by_key(|k| k.epoch.0).unwrap();
        (newest.audience, newest.epoch)
    };
    let user = laptop.client().user().unwrap();
    let (audience, shared_epoch) = newest_private_key(&laptop);
    assert!(
        phone
            .client()
            .holds_audience_key(user, audience, shared_epoch)
            .unwrap()
    );
    // Devices are named by name (or a unique prefix of their id).
    let (code, message) = laptop.fails(&["device", "revoke", "cd1"]);
    assert_eq!(code, 11, "cd1 matches both devices: {message}");
    let revoked = laptop.json(&["device", "revoke", "phone"]);
    assert_eq!(revoked["revoked"], phone_device.as_str());
    // The private audience rotated to a key the phone never got.
    let (rotated, epoch) = newest_private_key(&laptop);
    assert_eq!(rotated, audience);
    assert!(
        epoch.0 > shared_epoch.0,
        "the private audience did not rotate"
    );
    assert!(
        !phone
            .client()
            .holds_audience_key(user, audience, epoch)
            .unwrap()
    );

    let (code, message) = phone.fails(&["sync"]);
    assert_eq!(code, 7, "revoked device: {message}");
    assert!(message.contains("revoked"), "{message}");
    // Knowing it is revoked, the phone refuses new writes up front instead
    // of queueing what can never be sent.
    let (code, message) = phone.fails(&["note", "add", "never sent"]);
    assert_eq!(code, 7, "{message}");
    assert!(!phone.note_texts().contains(&"never sent".to_owned()));

    laptop.ok(&["note", "add", "after the revocation"]);
    link(&relay.target, &laptop, &tablet, "tablet");
    assert_eq!(tablet.note_texts(), ["after the revocation"]);
    let devices = laptop.json(&["device", "list"]);
    let revoked: Vec<_> = devices
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["revoked"] == true)
        .collect();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["device"], phone_device.as_str());
}

#[test]
fn errors_say_what_to_do() {
    let relay = Relay::start();
    let fresh = Home::new();
    let (code, message) = fresh.fails(&["whoami"]);
    assert_eq!(code, 3, "{message}");
    assert!(message.contains("cairn init"), "{message}");

    let wrong = format!("sha256:{}", "0".repeat(64));
    let addr = relay.target.addr.as_str();
    let (code, message) = fresh.fails(&["init", "--relay", addr, "--fingerprint", &wrong]);
    assert_eq!(code, 5, "{message}");
    assert!(
        message.contains("does not match the pinned fingerprint"),
        "{message}"
    );
    assert!(!fresh.path().join(cairn_client::STORE_FILE).exists());

    let home = Home::new();
    home.init(&relay.target, "laptop");
    let (code, message) = home.fails(&["note", "edit", "ce1nothing", "x"]);
    assert_eq!(code, 8, "{message}");

    let output = home
        .cmd(&["note", "list"])
        .env("CAIRN_PASSPHRASE", "wrong")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(9));
    // Without the variable and without a terminal to ask on (a new
    // session has no controlling terminal, even when the tests run at one).
    let output = std::process::Command::new("setsid")
        .arg(cairn_testkit::process::cairn_binary())
        .args(["--home", home.path().to_str().unwrap(), "note", "list"])
        .env_remove("CAIRN_PASSPHRASE")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(9));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("CAIRN_PASSPHRASE") && said.contains("no terminal"),
        "{said}"
    );
}

/// What a person would not mean to save is refused in their terms; a
/// prefix matching several notes says so; several lines stay in their
/// column; edits and removals say what they did.
#[test]
fn notes_are_checked_and_shown_as_people_expect() {
    let relay = Relay::start();
    let home = Home::new();
    home.init(&relay.target, "laptop");
    for empty in ["", "   ", "\n\t"] {
        let (code, message) = home.fails(&["note", "add", empty]);
        assert_eq!(code, 11, "{message}");
        assert!(message.contains("needs some text"), "{message}");
    }
    let long = "x".repeat(cairn_client::MAX_TEXT_LEN + 1);
    let (code, message) = home.fails(&["note", "add", &long]);
    assert_eq!(code, 11, "{message}");
    assert!(message.contains("at most 60 KiB"), "{message}");
    home.ok(&["note", "add", &"y".repeat(cairn_client::MAX_TEXT_LEN)]);

    home.ok(&["note", "add", "first line\nsecond line"]);
    let listed = home.ok(&["note", "list"]);
    let lines: Vec<&str> = listed.lines().collect();
    let first = lines
        .iter()
        .position(|l| l.ends_with("first line"))
        .unwrap();
    let column = lines[first].len() - "first line".len();
    assert_eq!(
        lines[first + 1],
        format!("{}second line", " ".repeat(column))
    );

    let (code, message) = home.fails(&["note", "rm", "ce1"]);
    assert_eq!(code, 11, "{message}");
    assert!(message.contains("\"ce1\" matches 2"), "{message}");
    let id = note_id(&home, "first line\nsecond line");
    let edited = home
        .cmd(&["note", "edit", &id[..12], "one line"])
        .output()
        .unwrap();
    assert!(edited.status.success());
    assert!(
        String::from_utf8_lossy(&edited.stderr).contains(&format!("edited note {}", &id[..12]))
    );
    let removed = home.cmd(&["note", "rm", &id]).output().unwrap();
    assert!(String::from_utf8_lossy(&removed.stderr).contains("removed note"));

    // Without --name, a device is named after the OS's host name (shells
    // rarely export HOSTNAME).
    let unnamed = Home::new();
    unnamed.json(&[
        "init",
        "--relay",
        &relay.target.addr,
        "--fingerprint",
        &relay.target.fingerprint,
    ]);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(unnamed.json(&["whoami"])["name"], host.trim());

    let empty = Home::new();
    let other = empty.init(&relay.target, "other");
    let (code, message) = home.fails(&["friend", "add", &other, "--name", "me"]);
    assert_eq!(code, 11, "{message}");
    assert!(message.contains("reserved"), "{message}");
    for (args, said) in [
        (&["feed"][..], "the feed is empty"),
        (&["inbox"][..], "no messages"),
        (&["friend", "list"][..], "no friends yet"),
        (&["audience", "list"][..], "no audiences"),
        (&["note", "list"][..], "no notes"),
    ] {
        let output = empty.cmd(args).output().unwrap();
        assert!(output.status.success(), "{args:?}: {output:?}");
        assert!(output.stdout.is_empty(), "{args:?}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(said), "{args:?}: {stderr}");
    }
}

/// A change saved here is not lost or reported as failed when the relay
/// shows another certificate: it stays queued, the command says why it
/// was not sent and what to do, and succeeds (a retry would have made a
/// duplicate).
#[test]
fn a_saved_change_succeeds_even_when_it_cannot_be_sent() {
    let mut relay = Relay::start();
    let home = Home::new();
    home.init(&relay.target, "laptop");
    relay.stop();
    let impostor = Relay::serve(tempfile::TempDir::new().unwrap(), relay.addr);
    assert_ne!(impostor.target.fingerprint, relay.target.fingerprint);
    let output = home
        .cmd(&["--json", "note", "add", "kept"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["queued"], true);
    assert!(stderr.contains("saved here, not sent"), "{stderr}");
    assert!(
        stderr.contains("does not match the pinned fingerprint"),
        "{stderr}"
    );
    assert_eq!(home.note_texts(), ["kept"]);
    assert_eq!(home.cmd(&["sync"]).output().unwrap().status.code(), Some(5));
}

/// `status` says, without the network, what is queued and how the relay
/// last answered; after the relay failed to answer, a change is queued at
/// once without trying it again (`sync` always tries).
#[test]
fn status_shows_what_is_queued_and_how_the_relay_last_answered() {
    let mut relay = Relay::start();
    let home = Home::new();
    home.init(&relay.target, "laptop");
    assert!(home.json_offline(&["status"])["last_contact"].is_null());
    home.ok(&["sync"]);
    let synced = home.json_offline(&["status"]);
    assert_eq!(synced["queued"], 0);
    assert_eq!(synced["last_contact"]["outcome"], "synced");
    assert_eq!(synced["last_sync"], synced["last_contact"]["at"]);

    relay.stop();
    assert_eq!(
        home.json_offline(&["note", "add", "offline one"])["queued"],
        true
    );
    let failed = home.json_offline(&["status"]);
    assert_eq!(failed["last_contact"]["outcome"], "unreachable", "{failed}");
    assert_eq!(failed["last_sync"], synced["last_sync"]);
    assert_eq!(
        home.json_offline(&["note", "add", "offline two"])["queued"],
        true
    );
    let after = home.json_offline(&["status"]);
    assert_eq!(after["queued"], 2);
    assert_eq!(after["last_contact"]["outcome"], "unreachable");
    let text = home.offline_cmd(&["status"]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.contains("queued    2") && text.contains("did not answer"),
        "{text}"
    );
    // A sync says the relay is silent once, names UDP and what is queued.
    let output = home.offline_cmd(&["sync"]).output().unwrap();
    assert_eq!(output.status.code(), Some(4), "{output:?}");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("no answer within"), "{said}");
    assert!(
        said.contains(&format!("UDP port {}", relay.addr.port())),
        "{said}"
    );
    assert!(said.contains("2 changes are queued here"), "{said}");

    relay.restart();
    home.ok(&["sync"]);
    let back = home.json_offline(&["status"]);
    assert_eq!(back["queued"], 0);
    assert_eq!(back["last_contact"]["outcome"], "synced");
}

/// Times are shown in the local time zone (`TZ`), or in UTC with `--utc`.
#[test]
fn times_are_local_unless_asked_for_utc() {
    let relay = Relay::start();
    let home = Home::new();
    home.init(&relay.target, "laptop");
    home.ok(&["note", "add", "when"]);
    let listed = |args: &[&str]| {
        let output = home.cmd(args).env("TZ", "JST-9").output().unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let local = listed(&["note", "list"]);
    assert!(local.contains(" +09:00  when"), "{local}");
    let utc = listed(&["--utc", "note", "list"]);
    assert!(utc.contains("Z  when"), "{utc}");
}

/// Shell completions and a manual page come from the same definition as
/// the parser.
#[test]
fn completions_and_the_manual_are_printed() {
    let home = Home::new();
    for shell in ["bash", "zsh", "fish"] {
        let script = home.ok(&["completions", shell]);
        assert!(
            script.contains("cairn") && script.contains("audience"),
            "{shell}"
        );
    }
    let manual = home.ok(&["man"]);
    assert!(
        manual.starts_with(".ie") && manual.contains(".TH cairn 1"),
        "{manual}"
    );
}

#[test]
fn a_sync_replayed_after_an_interruption_neither_loses_nor_doubles() {
    let mut relay = Relay::start();
    let (laptop, phone) = (Home::new(), Home::new());
    laptop.init(&relay.target, "laptop");
    link(&relay.target, &laptop, &phone, "phone");

    relay.stop();
    for text in ["one", "two", "three"] {
        offline(&laptop, &["note", "add", text]);
    }
    relay.restart();
    // Keep the store as it was before the sync: the relay will have the
    // envelopes while this copy still has them queued, as after a crash
    // between the relay's acknowledgement and the local commit.
    let store = laptop.path().join(cairn_client::STORE_FILE);
    let before = std::fs::read(&store).unwrap();
    let first = laptop.json(&["sync"]);
    assert_eq!(first["pushed"], 3);
    std::fs::write(&store, before).unwrap();
    let replay = laptop.json(&["sync"]);
    assert_eq!(replay["pushed"], 3, "the relay answers duplicates");
    assert_eq!(replay["queued"], 0);
    assert_eq!(laptop.note_texts(), ["one", "two", "three"]);
    phone.ok(&["sync"]);
    assert_eq!(phone.note_texts(), ["one", "two", "three"]);
}

#[test]
fn note_text_can_come_from_stdin() {
    use std::io::Write;
    use std::process::Stdio;

    let relay = Relay::start();
    let home = Home::new();
    home.init(&relay.target, "laptop");
    let mut child = home
        .cmd(&["--json", "note", "add", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"line one\nline two\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(home.note_texts(), ["line one\nline two"]);
}

/// `cairn note list | head -1`: the reader goes away with output still to
/// come. The command ends quietly with success, as `ls | head -1` does,
/// instead of panicking on the closed pipe.
#[test]
fn a_reader_that_closes_the_pipe_early_is_not_a_failure() {
    let relay = Relay::start();
    let home = Home::new();
    home.init(&relay.target, "laptop");
    // Two notes of 60 000 bytes: more than a pipe holds, so the listing
    // writes into the closed pipe whatever the timing.
    let long = "x".repeat(60_000);
    home.ok(&["note", "add", &long]);
    home.ok(&["note", "add", &long]);
    cairn_testkit::process::assert_quiet_when_reader_closes(home.cmd(&["note", "list"]));
}

/// At a terminal, `init` asks again when the passphrase is empty or the
/// two differ, and warns of a weak one; later, a command whose stdin is a
/// pipe still asks on the terminal, as age and ssh do.
#[test]
fn at_a_terminal_the_passphrase_is_asked_again_judged_and_asked_even_when_stdin_is_a_pipe() {
    use rexpect::process::WaitStatus;
    let relay = Relay::start();
    let home = Home::new();
    let target = &relay.target;
    let mut command = home.cmd(&[
        "init",
        "--relay",
        &target.addr,
        "--fingerprint",
        &target.fingerprint,
        "--name",
        "laptop",
    ]);
    command.env_remove("CAIRN_PASSPHRASE");
    let mut init = rexpect::session::spawn_command(command, Some(20_000)).unwrap();
    init.exp_string("choose a passphrase").unwrap();
    init.send_line("").unwrap();
    init.exp_string("the passphrase is empty").unwrap();
    init.exp_string("choose a passphrase").unwrap();
    init.send_line("abc123").unwrap();
    init.exp_string("this passphrase is weak").unwrap();
    init.exp_string("repeat it").unwrap();
    init.send_line("abc124").unwrap();
    init.exp_string("the two passphrases differ").unwrap();
    init.exp_string("choose a passphrase").unwrap();
    init.send_line(cli::PASSPHRASE).unwrap();
    init.exp_string("repeat it").unwrap();
    init.send_line(cli::PASSPHRASE).unwrap();
    let said = init.exp_eof().unwrap();
    let status = init.process().wait().unwrap();
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "{status:?}: {said}"
    );
    assert!(
        !said.contains("weak"),
        "a strong passphrase is not called weak: {said}"
    );

    let piped = format!(
        "echo 'from a pipe' | {} --home {} note add -",
        cairn_testkit::process::cairn_binary().display(),
        home.path().display()
    );
    let mut command = std::process::Command::new("sh");
    command
        .args(["-c", &piped])
        .env_remove("CAIRN_PASSPHRASE")
        .env(cairn_client::INSECURE_FAST_KDF_ENV, "1");
    let mut add = rexpect::session::spawn_command(command, Some(20_000)).unwrap();
    add.exp_string("cairn passphrase:").unwrap();
    add.send_line(cli::PASSPHRASE).unwrap();
    let said = add.exp_eof().unwrap();
    let status = add.process().wait().unwrap();
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "{status:?}: {said}"
    );
    assert_eq!(home.note_texts(), ["from a pipe"]);
}

/// `cairn ARGS...` on `home` as a script without the passphrase and
/// without a terminal (a new session), with `runtime` as the runtime
/// directory: its exit code and stdout.
fn without_passphrase(home: &Home, runtime: &std::path::Path, args: &[&str]) -> (i32, String) {
    let output = std::process::Command::new("setsid")
        .arg(cairn_testkit::process::cairn_binary())
        .args(["--home", home.path().to_str().unwrap()])
        .args(args)
        .env_remove("CAIRN_PASSPHRASE")
        .env("XDG_RUNTIME_DIR", runtime)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let code = output.status.code().unwrap_or(-1);
    (code, String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `cairn unlock` hands the home's key to an agent on a private socket:
/// commands stop asking until `cairn lock` or the time is up.
#[test]
fn an_agent_keeps_the_home_unlocked_until_it_is_locked_or_times_out() {
    use std::os::unix::fs::PermissionsExt;
    let relay = Relay::start();
    let home = Home::new();
    home.init(&relay.target, "laptop");
    let runtime = tempfile::TempDir::new().unwrap();
    assert_eq!(
        without_passphrase(&home, runtime.path(), &["note", "list"]).0,
        9
    );

    let unlocked = home
        .cmd(&["--json", "unlock", "--for", "1m"])
        .env("XDG_RUNTIME_DIR", runtime.path())
        .output()
        .unwrap();
    assert!(unlocked.status.success(), "{unlocked:?}");
    let said: Value = serde_json::from_slice(&unlocked.stdout).unwrap();
    let socket = std::path::PathBuf::from(said["agent"].as_str().unwrap());
    assert!(socket.starts_with(runtime.path()), "{socket:?}");
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&socket), 0o600);
    assert_eq!(mode(socket.parent().unwrap()), 0o700);

    let (code, _) = without_passphrase(&home, runtime.path(), &["note", "add", "while unlocked"]);
    assert_eq!(code, 0, "the agent answered");
    let (code, said) = without_passphrase(&home, runtime.path(), &["lock"]);
    assert_eq!(
        (code, said.trim()),
        (0, "locked: commands ask for the passphrase again")
    );
    assert_eq!(
        without_passphrase(&home, runtime.path(), &["note", "list"]).0,
        9
    );
    assert!(!socket.exists(), "the agent is gone");

    let short = home
        .cmd(&["unlock", "--for", "1s"])
        .env("XDG_RUNTIME_DIR", runtime.path())
        .output()
        .unwrap();
    assert!(short.status.success());
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(
        without_passphrase(&home, runtime.path(), &["note", "list"]).0,
        9,
        "timed out"
    );
    assert_eq!(home.note_texts(), ["while unlocked"]);
}

/// `cairn log` shows the history every device of the user holds: note
/// operations, friend and audience changes, posts and device events, in
/// author order, with who wrote each and from which device.
#[test]
fn the_log_shows_the_record_history_with_its_devices() {
    let relay = Relay::start();
    let (laptop, phone, bob) = (Home::new(), Home::new(), Home::new());
    let a = laptop.init(&relay.target, "laptop");
    let b = bob.init(&relay.target, "bob");
    bob.ok(&["friend", "add", &a, "--name", "alice"]);
    link(&relay.target, &laptop, &phone, "phone");
    laptop.ok(&["note", "add", "first"]);
    let id = note_id(&laptop, "first");
    laptop.ok(&["note", "edit", &id, "first, edited"]);
    phone.ok(&["sync"]);
    phone.ok(&["note", "rm", &id]);
    laptop.ok(&["friend", "add", &b, "--name", "bob"]);
    laptop.ok(&["audience", "create", "close", "--member", "bob"]);
    laptop.ok(&["post", "--to", "close", "hello"]);
    phone.ok(&["sync"]);

    let log = phone.json(&["log"]);
    let events: Vec<(&str, &str)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap(),
                e["device_name"].as_str().unwrap_or(""),
            )
        })
        .filter(|(event, _)| *event != "exchange_key" && *event != "device_named")
        .collect();
    assert_eq!(
        events,
        [
            ("note_added", "laptop"),
            ("note_edited", "laptop"),
            ("note_removed", "phone"),
            ("friend_added", "laptop"),
            ("audience", "laptop"),
            ("posted", "laptop"),
        ],
        "{log}"
    );
    let audience = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "audience")
        .unwrap();
    assert_eq!(audience["members"], serde_json::json!(["bob"]));
    assert!(
        log.to_string().contains("\"device_named\""),
        "device events are there: {log}"
    );
    let text = phone.ok(&["log"]);
    assert!(text.contains("me on phone  removed note"), "{text}");
}

/// At a terminal, `note add` without text opens `$EDITOR` (on a private
/// file, removed afterwards), and `note edit` without text opens it on the
/// note's current text; without a terminal the command says to give the
/// text.
#[test]
fn without_text_at_a_terminal_the_editor_opens() {
    use rexpect::process::WaitStatus;
    use std::os::unix::fs::PermissionsExt;
    let relay = Relay::start();
    let home = Home::new();
    home.init(&relay.target, "laptop");
    let tools = tempfile::TempDir::new().unwrap();
    // An "editor" that appends to what it was given, and says what mode
    // its file has.
    let editor = tools.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nstat -c 'mode %a' \"$1\"\nprintf '%s written in the editor\\n' \"$(cat \"$1\")\" > \"$1.new\"\nmv \"$1.new\" \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).unwrap();
    let at_terminal = |args: &[&str]| {
        let mut command = home.cmd(args);
        command
            .env("EDITOR", &editor)
            .env_remove("VISUAL")
            .stdin(std::process::Stdio::inherit());
        let mut session = rexpect::session::spawn_command(command, Some(20_000)).unwrap();
        let said = session.exp_eof().unwrap();
        let status = session.process().wait().unwrap();
        assert!(
            matches!(status, WaitStatus::Exited(_, 0)),
            "{status:?}: {said}"
        );
        said
    };
    let said = at_terminal(&["note", "add"]);
    assert!(said.contains("mode 600"), "{said}");
    assert_eq!(home.note_texts(), [" written in the editor"]);
    let id = note_id(&home, " written in the editor");
    at_terminal(&["note", "edit", &id[..12]]);
    assert_eq!(
        home.note_texts(),
        [" written in the editor written in the editor"]
    );
    let leftovers: Vec<_> = std::fs::read_dir(home.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("note-"))
        .collect();
    assert!(leftovers.is_empty(), "the editor's file is removed");

    let (code, message) = home.fails(&["note", "add"]);
    assert_eq!(code, 11, "{message}");
    assert!(message.contains("no terminal for an editor"), "{message}");
}
