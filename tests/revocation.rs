//! A revoked device, even with the relay's full cooperation, reads nothing
//! written after its revocation and gets nothing it writes accepted, by
//! the user's other devices or by friends. Real `cairn` and `cairn-relay`
//! binaries; the relay's cooperation is its database edited while it is
//! stopped, so that it serves the revoked device again as if nothing
//! happened.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod cli;
mod support;

use cli::{Home, Relay, link};
use redb::ReadableTableMetadata;

/// Alice's laptop and phone, her friend Bob; each has an audience holding
/// the other.
struct Scene {
    relay: Relay,
    laptop: Home,
    phone: Home,
    bob: Home,
}

impl Scene {
    fn start() -> Self {
        let relay = Relay::start();
        let (laptop, phone, bob) = (Home::new(), Home::new(), Home::new());
        let alice = laptop.init(&relay.target, "laptop");
        link(&relay.target, &laptop, &phone, "phone");
        let bob_id = bob.init(&relay.target, "bob");
        laptop.ok(&["friend", "add", &bob_id, "--name", "bob"]);
        bob.ok(&["friend", "add", &alice, "--name", "alice"]);
        laptop.ok(&["sync"]);
        bob.ok(&["sync"]);
        laptop.ok(&["audience", "create", "close", "--member", "bob"]);
        bob.ok(&["audience", "create", "pals", "--member", "alice"]);
        laptop.ok(&["note", "add", "note before"]);
        laptop.ok(&["post", "--to", "close", "alice before"]);
        bob.ok(&["post", "--to", "pals", "bob before"]);
        let scene = Self {
            relay,
            laptop,
            phone,
            bob,
        };
        scene.sync_all();
        scene
    }

    fn sync_all(&self) {
        for home in [&self.laptop, &self.bob, &self.laptop, &self.phone] {
            home.ok(&["sync"]);
        }
    }

    /// The relay, stopped, forgets every device revocation, and serves
    /// again.
    fn relay_helps_the_revoked(&mut self) {
        self.relay.terminate();
        forget_revocations(self.relay.data_dir());
        self.relay.restart();
    }
}

/// Deletes every device revocation from a stopped relay's database, as
/// whoever holds the file can.
fn forget_revocations(data_dir: &std::path::Path) {
    let table: redb::TableDefinition<'_, &[u8], &[u8]> =
        redb::TableDefinition::new("cairn_device_revocations");
    let db = redb::Database::open(data_dir.join("relay.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut revocations = txn.open_table(table).unwrap();
        assert!(revocations.len().unwrap() > 0, "a revocation to forget");
        revocations.retain(|_, _| false).unwrap();
    }
    txn.commit().unwrap();
}

fn has(texts: &[String], text: &str) -> bool {
    texts.iter().any(|t| t == text)
}

/// Revoking used to rotate only the private audience: the revoked device
/// kept the user exchange secret (every later grant from friends opened
/// for it) and the keys of the user's own audiences, friends never heard
/// of the revocation, and the next revocation sealed the new keys to the
/// device revoked before.
#[test]
fn a_revoked_device_helped_by_the_relay_reads_nothing_new_and_plants_nothing() {
    let mut s = Scene::start();
    assert!(
        has(&s.phone.feed_texts(), "bob before"),
        "the phone could read"
    );
    // The phone was linked without the root key: it cannot speak for
    // Alice, before or after its revocation.
    assert_eq!(s.phone.json(&["whoami"])["root_key"], false);
    assert_eq!(s.laptop.json(&["whoami"])["root_key"], true);
    let phone = s.phone.device_id();
    s.laptop.ok(&["device", "revoke", &phone]);
    // Bob learns of it with Alice's new exchange key, and moves "pals" to
    // a new epoch sealed to that key.
    s.bob.ok(&["sync"]);
    s.laptop.ok(&["sync"]);
    s.laptop.ok(&["note", "add", "note after"]);
    s.laptop.ok(&["post", "--to", "close", "alice after"]);
    s.bob.ok(&["post", "--to", "pals", "bob after"]);
    s.bob.ok(&["sync"]);
    s.laptop.ok(&["sync"]);
    assert!(has(&s.laptop.feed_texts(), "bob after"), "alice reads bob");
    assert!(has(&s.bob.feed_texts(), "alice after"), "bob reads alice");

    // A second device comes and goes: nothing of its revocation reaches
    // the phone either.
    let desktop = Home::new();
    link(&s.relay.target, &s.laptop, &desktop, "desktop");
    s.laptop.ok(&["device", "revoke", &desktop.device_id()]);
    s.laptop.ok(&["note", "add", "note after the second"]);
    s.laptop.ok(&["sync"]);

    s.relay_helps_the_revoked();
    s.phone.ok(&["sync"]);
    let (notes, feed) = (s.phone.note_texts(), s.phone.feed_texts());
    assert!(has(&notes, "note before") && has(&feed, "alice before"));
    for text in ["note after", "note after the second"] {
        assert!(!has(&notes, text), "the revoked phone read {text:?}");
    }
    for text in ["alice after", "bob after"] {
        assert!(!has(&feed, text), "the revoked phone read {text:?}");
    }

    // With the relay's help it still cannot add a friend for Alice (a
    // statement the relay would accept only with her root key).
    let bob = s.bob.json(&["whoami"])["user"].as_str().unwrap().to_owned();
    let (exit, message) = s.phone.fails(&["friend", "add", &bob, "--name", "bob2"]);
    assert_eq!(exit, 11, "{message}");
    assert!(message.contains("root key"), "{message}");

    // What the phone writes now, the relay stores, and nobody takes in.
    s.phone.ok(&["note", "add", "planted note"]);
    s.phone.ok(&["post", "--to", "close", "planted post"]);
    s.phone.ok(&["sync"]);
    s.laptop.ok(&["sync"]);
    s.bob.ok(&["sync"]);
    assert!(!has(&s.laptop.note_texts(), "planted note"));
    assert!(!has(&s.laptop.feed_texts(), "planted post"));
    assert!(!has(&s.bob.feed_texts(), "planted post"));
    assert!(has(&s.laptop.note_texts(), "note after the second"));
}
