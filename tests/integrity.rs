//! A relay that lies about history, played by editing its database while
//! it is stopped (what whoever holds the file can do): readers catch an
//! envelope left out and a device's second history, with the signed
//! envelopes that show it, and say so with exit code 13 at every sync.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod cli;
mod support;

use cairn_wire::EnvelopeId;
use cli::{Home, Relay, link, tamper};

/// The exit code of a history that breaks what devices signed.
const HISTORY: i32 = 13;

/// Adds a note and returns its id (the id of its envelope).
fn add_note(home: &Home, text: &str) -> EnvelopeId {
    let added = home.json(&["note", "add", text]);
    assert_eq!(added["queued"], false, "{added}");
    added["id"].as_str().unwrap().parse().unwrap()
}

#[test]
fn a_reader_catches_an_envelope_the_relay_leaves_out() {
    let mut relay = Relay::start();
    let (laptop, phone) = (Home::new(), Home::new());
    laptop.init(&relay.target, "laptop");
    link(&relay.target, &laptop, &phone, "phone");
    phone.ok(&["sync"]);
    add_note(&laptop, "one");
    let two = add_note(&laptop, "two");
    let three = add_note(&laptop, "three");

    relay.terminate();
    tamper::withhold(relay.data_dir(), two);
    relay.restart();

    for _ in 0..2 {
        let (code, message) = phone.fails(&["sync"]);
        assert_eq!(code, HISTORY, "{message}");
        assert!(message.contains("left out"), "{message}");
        assert!(
            message.contains(&three.to_text()) && message.contains(&two.to_text()),
            "the message names the envelope served and the one missing: {message}"
        );
    }
    // Nothing of what broke was taken in.
    assert!(!phone.note_texts().contains(&"three".to_owned()));
}

#[test]
fn two_histories_of_one_device_are_caught_with_both_envelopes() {
    let mut relay = Relay::start();
    let (laptop, phone, desktop) = (Home::new(), Home::new(), Home::new());
    laptop.init(&relay.target, "laptop");
    link(&relay.target, &laptop, &phone, "phone");
    link(&relay.target, &laptop, &desktop, "desktop");
    laptop.ok(&["sync"]);
    phone.ok(&["sync"]);
    desktop.ok(&["sync"]);
    // A copy of the laptop's home, as an old backup of it would be.
    let stale = laptop.copy();
    let original = add_note(&laptop, "the original");
    phone.ok(&["sync"]);

    // The copy signs another envelope in the same place of the laptop's
    // history; an honest relay would refuse it, this one stores it too.
    relay.terminate();
    stale.json_offline(&["note", "add", "the second history"]);
    let second = tamper::outbox(stale.path()).pop().unwrap();
    let second_id = cairn_wire::Envelope::id_of_encoding(&second);

    // The desktop is shown only the second history...
    tamper::replace(relay.data_dir(), original, &second);
    relay.restart();
    desktop.ok(&["sync"]);
    assert!(
        desktop
            .note_texts()
            .contains(&"the second history".to_owned())
    );
    // ...until the phone writes a private record, which says what it holds
    // of the laptop: the desktop, holding another envelope there, says so.
    phone.ok(&["note", "add", "from the phone"]);
    let (code, message) = desktop.fails(&["sync"]);
    assert_eq!(code, HISTORY, "{message}");
    assert!(message.contains("two histories"), "{message}");
    assert!(
        message.contains(&original.to_text()) && message.contains(&second_id.to_text()),
        "{message}"
    );
    // And when the laptop goes on from the first history, the desktop is
    // served an envelope that follows one it was never shown.
    let next = add_note(&laptop, "after the original");
    let (code, message) = desktop.fails(&["sync"]);
    assert_eq!(code, HISTORY, "{message}");
    assert!(
        message.contains(&next.to_text()) && message.contains(&original.to_text()),
        "{message}"
    );

    // A relay that serves both histories to one reader is caught with the
    // two envelopes the device signed.
    relay.terminate();
    tamper::append_beside(relay.data_dir(), next, &second);
    relay.restart();
    let (code, message) = phone.fails(&["sync"]);
    assert_eq!(code, HISTORY, "{message}");
    assert!(message.contains("two histories"), "{message}");
    assert!(
        message.contains(&original.to_text()) && message.contains(&second_id.to_text()),
        "{message}"
    );
}

#[test]
fn a_home_restored_from_an_older_copy_adopts_the_relays_history_and_loses_nothing() {
    let mut relay = Relay::start();
    let (laptop, phone) = (Home::new(), Home::new());
    laptop.init(&relay.target, "laptop");
    link(&relay.target, &laptop, &phone, "phone");
    laptop.ok(&["sync"]);
    let stale = laptop.copy();
    add_note(&laptop, "after the copy");

    // The old copy goes on as the laptop: its next envelope takes a seq
    // the relay already holds from this device.
    let added = stale.json(&["note", "add", "on the old copy"]);
    assert_eq!(added["queued"], false, "the copy is stuck: {added}");
    // Changes made offline on it, one editing another, follow too.
    relay.terminate();
    let draft = stale.json_offline(&["note", "add", "a draft"]);
    stale.json_offline(&[
        "note",
        "edit",
        draft["id"].as_str().unwrap(),
        "the final text",
    ]);
    relay.restart();
    let report = stale.json(&["sync"]);
    assert_eq!(report["queued"], 0, "{report}");
    assert_eq!(stale.json(&["sync"])["queued"], 0, "a second sync is stuck");

    let everything = ["after the copy", "on the old copy", "the final text"];
    for (name, home) in [("old copy", &stale), ("phone", &phone), ("laptop", &laptop)] {
        home.ok(&["sync"]);
        let mut texts = home.note_texts();
        texts.sort();
        let mut expected = everything.map(String::from).to_vec();
        expected.sort();
        assert_eq!(texts, expected, "{name}");
    }
}

#[test]
fn the_newest_envelope_of_a_stream_left_out_is_caught_once_the_device_writes_elsewhere() {
    let mut relay = Relay::start();
    let (laptop, phone, bob) = (Home::new(), Home::new(), Home::new());
    let alice_id = laptop.init(&relay.target, "laptop");
    link(&relay.target, &laptop, &phone, "phone");
    let bob_id = bob.init(&relay.target, "bob");
    laptop.ok(&["friend", "add", &bob_id, "--name", "bob"]);
    bob.ok(&["friend", "add", &alice_id, "--name", "alice"]);
    laptop.ok(&["sync"]);
    laptop.ok(&["audience", "create", "close", "--member", "bob"]);
    phone.ok(&["sync"]);
    // The newest note is the last envelope of the private stream: nothing
    // there names it. The post after it, in the friends stream, has the
    // next seq.
    let newest = add_note(&laptop, "the newest note");
    laptop.ok(&["post", "--to", "close", "a post after it"]);

    relay.terminate();
    tamper::withhold(relay.data_dir(), newest);
    relay.restart();

    let (code, message) = phone.fails(&["sync"]);
    assert_eq!(code, HISTORY, "{message}");
    assert!(message.contains("left out"), "{message}");
    // A friend reads only the friends stream, whose chain is whole: the
    // post reaches them.
    bob.ok(&["sync"]);
    assert_eq!(bob.feed_texts(), ["a post after it"]);
}

/// A relay cannot pass off withholding a user's notes as retention: a
/// private stream never expires, and a claim that it did is a history
/// break.
#[test]
fn a_claim_that_private_notes_expired_is_a_history_break() {
    let mut relay = Relay::start();
    let (laptop, phone) = (Home::new(), Home::new());
    laptop.init(&relay.target, "laptop");
    link(&relay.target, &laptop, &phone, "phone");
    phone.ok(&["sync"]);
    add_note(&laptop, "one");
    let two = add_note(&laptop, "two");
    add_note(&laptop, "three");

    relay.terminate();
    tamper::expire_through(relay.data_dir(), two);
    relay.restart();

    let (code, message) = phone.fails(&["sync"]);
    assert_eq!(code, HISTORY, "{message}");
    assert!(message.contains("never expire"), "{message}");
    assert!(!phone.note_texts().contains(&"three".to_owned()));
}

/// Takes the envelope `id` and its decrypted item out of a stopped home's
/// store, as a damaged disk or a faulty copy might, leaving its cursors
/// past it.
fn lose_from_home(home: &Home, id: EnvelopeId) {
    type Bytes = redb::TableDefinition<'static, &'static [u8], &'static [u8]>;
    let db = redb::Database::open(home.path().join(cairn_client::STORE_FILE)).unwrap();
    let txn = db.begin_write().unwrap();
    for name in ["envelopes", "items"] {
        let mut table = txn.open_table(Bytes::new(name)).unwrap();
        assert!(table.remove(id.as_bytes().as_slice()).unwrap().is_some());
    }
    txn.commit().unwrap();
}

/// `sync --from-scratch` reads every stream again from position 0: what a
/// home lost from its store comes back, checked like anything else,
/// where a plain sync (its cursors past it) brings nothing.
#[test]
fn sync_from_scratch_takes_in_again_what_a_home_lost() {
    let relay = Relay::start();
    let (alice, bob) = (Home::new(), Home::new());
    let a = alice.init(&relay.target, "alice");
    let b = bob.init(&relay.target, "bob");
    alice.ok(&["friend", "add", &b, "--name", "bob"]);
    bob.ok(&["friend", "add", &a, "--name", "alice"]);
    bob.ok(&["audience", "create", "close", "--member", "alice"]);
    let one = bob.json(&["post", "--to", "close", "one"]);
    bob.ok(&["post", "--to", "close", "two"]);
    alice.ok(&["sync"]);
    assert_eq!(alice.feed_texts(), ["one", "two"]);

    lose_from_home(&alice, one["id"].as_str().unwrap().parse().unwrap());
    assert_eq!(alice.feed_texts(), ["two"]);
    assert_eq!(alice.json(&["sync"])["pulled"], 0);
    assert_eq!(alice.feed_texts(), ["two"]);
    let report = alice.json(&["sync", "--from-scratch"]);
    assert_eq!(report["pulled"], 1, "{report}");
    assert_eq!(alice.feed_texts(), ["one", "two"]);
    alice.ok(&["note", "add", "after"]);
    assert_eq!(
        alice.json(&["sync"])["pulled"],
        0,
        "the cursors are back at the heads"
    );
}
