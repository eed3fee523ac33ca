//! `cairn watch` receives a friend's post live.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::time::{Duration, Instant};

use support::{Home, Relay, line_reader, link};

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn watch_receives_a_post_live() {
    let relay = Relay::start();
    let (alice, alice_phone, bob) = (Home::new(), Home::new(), Home::new());
    let a = alice.init(&relay, "alice");
    link(&relay, &alice, &alice_phone);
    let b = bob.init(&relay, "bob");
    alice.ok(&["friend", "add", &b, "--name", "bob"]);
    bob.ok(&["friend", "add", &a, "--name", "alice"]);
    alice.ok(&["audience", "create", "close", "--member", "bob"]);

    let (mut child, lines, stderr) = bob.spawn(&["--json", "watch"]);
    let status = line_reader(stderr);
    let ready = status.recv_timeout(WAIT).expect("watch reports it is live");
    assert!(ready.contains("watching"), "{ready}");

    // The phone has not synced since the audience was made: posting
    // pulls it first.
    alice_phone.ok(&["post", "--to", "close", "live hello"]);
    bob.ok(&["note", "add", "a note while watching"]);
    let mut seen = Vec::new();
    let deadline = Instant::now() + WAIT;
    while seen.len() < 2 && Instant::now() < deadline {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            seen.push(serde_json::from_str::<serde_json::Value>(&line).unwrap());
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let post = seen
        .iter()
        .find(|e| e["kind"] == "post")
        .expect("the post arrived live");
    assert_eq!(post["text"], "live hello");
    assert_eq!(post["from"], "alice");
    assert_eq!(post["author"], a.as_str());
    let note = seen
        .iter()
        .find(|e| e["kind"] == "note")
        .expect("the note arrived live");
    assert_eq!(note["op"], "add");
    assert_eq!(note["text"], "a note while watching");
}
