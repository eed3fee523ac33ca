//! Notes across two linked devices, one of them offline for a while,
//! driven through the real `cairn` and `cairn-relay` binaries.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use support::{Home, Relay, link};

#[test]
fn notes_flow_across_two_devices_with_one_offline() {
    let mut relay = Relay::start();
    let laptop = Home::new();
    let phone = Home::new();
    let user = laptop.init(&relay, "laptop");
    let first = laptop.json(&["note", "add", "buy bread"]);
    assert_eq!(first["queued"], false);

    link(&relay, &laptop, &phone);
    assert_eq!(phone.json(&["whoami"])["user"], user.as_str());
    assert_eq!(
        phone.note_texts(),
        ["buy bread"],
        "a linked device gets the history"
    );

    relay.stop();
    let offline = phone.json(&["note", "add", "written offline"]);
    assert_eq!(offline["queued"], true, "offline appends are queued");
    let id = first["id"].as_str().unwrap();
    phone.ok(&["note", "edit", &id[..12], "buy bread and milk"]);
    let (code, message) = phone.fails(&["sync"]);
    assert_eq!(code, 4, "unreachable relay: {message}");
    assert!(message.contains("cannot reach the relay"), "{message}");

    relay.restart();
    laptop.ok(&["note", "add", "from the laptop"]);
    phone.ok(&["sync"]);
    laptop.ok(&["sync"]);
    phone.ok(&["sync"]);
    let expected = ["buy bread and milk", "written offline", "from the laptop"];
    assert_eq!(laptop.note_texts(), expected);
    assert_eq!(phone.note_texts(), expected);

    let removed = phone.json(&["note", "rm", id]);
    assert_eq!(removed["queued"], false);
    laptop.ok(&["sync"]);
    laptop.ok(&["sync"]);
    assert_eq!(laptop.note_texts(), ["written offline", "from the laptop"]);

    let devices = laptop.json(&["device", "list"]);
    let devices = devices.as_array().unwrap();
    assert_eq!(devices.len(), 2);
    assert!(devices.iter().all(|d| d["revoked"] == false));
    assert!(devices.iter().any(|d| d["name"] == "phone"));
}

#[test]
fn a_device_linked_later_and_a_revoked_one() {
    let relay = Relay::start();
    let laptop = Home::new();
    let phone = Home::new();
    let tablet = Home::new();
    laptop.init(&relay, "laptop");
    link(&relay, &laptop, &phone);
    let phone_device = phone.json(&["whoami"])["device"]
        .as_str()
        .unwrap()
        .to_owned();
    laptop.ok(&["device", "revoke", &phone_device]);

    let (code, message) = phone.fails(&["sync"]);
    assert_eq!(code, 7, "revoked device: {message}");
    assert!(message.contains("revoked"), "{message}");

    laptop.ok(&["note", "add", "after the revocation"]);
    link(&relay, &laptop, &tablet);
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
    let (code, message) = fresh.fails(&["init", "--relay", &relay.addr, "--fingerprint", &wrong]);
    assert_eq!(code, 5, "{message}");
    assert!(
        message.contains("does not match the pinned fingerprint"),
        "{message}"
    );
    assert!(!fresh.path().join(cairn_client::STORE_FILE).exists());

    let home = Home::new();
    home.init(&relay, "laptop");
    let (code, message) = home.fails(&["note", "edit", "ce1nothing", "x"]);
    assert_eq!(code, 8, "{message}");

    let output = home
        .cmd(&["note", "list"])
        .env("CAIRN_PASSPHRASE", "wrong")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(9));
    let output = home
        .cmd(&["note", "list"])
        .env_remove("CAIRN_PASSPHRASE")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(9));
    assert!(String::from_utf8_lossy(&output.stderr).contains("CAIRN_PASSPHRASE"));
}

#[test]
fn a_sync_replayed_after_an_interruption_neither_loses_nor_doubles() {
    let mut relay = Relay::start();
    let laptop = Home::new();
    let phone = Home::new();
    laptop.init(&relay, "laptop");
    link(&relay, &laptop, &phone);

    relay.stop();
    for text in ["one", "two", "three"] {
        assert_eq!(laptop.json(&["note", "add", text])["queued"], true);
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
    home.init(&relay, "laptop");
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
